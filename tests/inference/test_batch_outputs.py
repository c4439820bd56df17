"""How segment puts an image's files in place: other images' cells, long names, scratch left by a kill."""

from __future__ import annotations

import shutil

import pytest
from tiny_models import save_fitted_model, write_sample_images

from napari_cellseg.inference.batch import SegmentOptions, segment_file
from napari_cellseg.inference.batch_outputs import SCRATCH_PREFIX, remove_abandoned_scratch, scratch_folder
from napari_cellseg.io import read_tiff_layer

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("model"))


def test_cells_of_another_image_with_the_same_name_are_not_reused(tmp_path, model_dir):
    # slideA/field1.png and slideB/field1.png segmented into one folder in two runs
    a, b = tmp_path / "slideA", tmp_path / "slideB"
    samples = write_sample_images(tmp_path / "samples")
    a.mkdir(), b.mkdir()
    shutil.copyfile(samples[0], a / "field1.png")
    shutil.copyfile(samples[1], b / "field1.png")
    out = tmp_path / "results"
    assert segment_file(a / "field1.png", model_dir, out, SegmentOptions(tile_size=128)).status == "done"
    stored = (out / "field1.tif").read_bytes()
    for options in (SegmentOptions(tile_size=128, measurements=True), SegmentOptions(tile_size=128)):
        report = segment_file(b / "field1.png", model_dir, out, options)
        assert report.status == "failed" and str(a / "field1.png") in report.message
        assert "--overwrite" in report.message and not (out / "field1.csv").exists()
    assert (out / "field1.tif").read_bytes() == stored
    # the image that made them still gets its outputs asked for since
    again = segment_file(a / "field1.png", model_dir, out, SegmentOptions(tile_size=128, measurements=True))
    assert again.status == "done" and (out / "field1.csv").is_file()
    forced = segment_file(b / "field1.png", model_dir, out, SegmentOptions(tile_size=128, overwrite=True))
    assert forced.status == "done"
    assert read_tiff_layer(out / "field1.tif")[1]["metadata"]["source"] == str(b / "field1.png")


def test_an_image_name_near_the_file_name_limit_is_segmented(tmp_path, model_dir):
    # <id>_overlay.png fits in 255 characters; a temporary name beside it would not
    (path,) = write_sample_images(tmp_path / "in", keys=("c_histology_1",))
    long = path.with_name("a" * 235 + ".png")
    path.rename(long)
    out = tmp_path / "out"
    options = SegmentOptions(tile_size=128, overlays=True, geojson=True, measurements=True)
    report = segment_file(long, model_dir, out, options)
    assert report.status == "done", report.message
    assert sorted(p.name[235:] for p in out.iterdir()) == [".csv", ".geojson", ".tif", "_overlay.png"]


def test_scratch_left_by_a_killed_run_is_removed_and_a_running_ones_kept(tmp_path):
    fcntl = pytest.importorskip("fcntl")  # elsewhere nothing counts as abandoned
    out = tmp_path / "out"
    out.mkdir()
    killed = out / f"{SCRATCH_PREFIX}killed"
    (killed / "labels.zarr").mkdir(parents=True)
    (killed / "in-use.lock").write_bytes(b"")  # its process held the lock, and died
    with scratch_folder(tmp_path / "other") as running:  # a run in progress elsewhere: locked
        moved = out / running.name
        shutil.copytree(running, moved)
        with open(moved / "in-use.lock", "rb+") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            remove_abandoned_scratch(out)
            assert moved.is_dir()
        assert not killed.exists()
    with scratch_folder(out) as mine:
        assert mine.parent == out and mine.name.startswith(SCRATCH_PREFIX)
    assert list(out.iterdir()) == [moved]
