"""How segment puts an image's files in place: other images' cells, long names, scratch left by a kill."""

from __future__ import annotations

import shutil
from pathlib import Path

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
    copy = tmp_path / "slideA-copy"  # the folder copied, the run resumed from the copy: the same image
    shutil.copytree(a, copy)
    resumed = segment_file(copy / "field1.png", model_dir, out, SegmentOptions(tile_size=128))
    assert resumed.status == "skipped", resumed.message
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


def _grey():
    import numpy as np

    from napari_cellseg.sample_data import load_sample

    image = load_sample("c_histology_1")[0]
    return (image.mean(axis=-1) if image.ndim == 3 else image).astype(np.uint8)[:128, :160]


def test_a_tiffs_own_channel_axis_is_read_as_channels_not_planes(tmp_path, model_dir):
    # An OME CYX file of DAPI and GFP was segmented as two z-planes without a word.
    import numpy as np
    import tifffile

    grey = _grey()
    folder = tmp_path / "in"
    folder.mkdir()
    ome = folder / "dapi_gfp.ome.tif"
    tifffile.imwrite(ome, np.stack([grey, 255 - grey]), ome=True, metadata={"axes": "CYX"})
    out = tmp_path / "out"
    refused = segment_file(ome, model_dir, out, SegmentOptions(tile_size=128, measurements=True))
    assert refused.status == "failed" and "2 channels, not z-planes" in refused.message
    assert "--channel N (0 to 1)" in refused.message and "RGB" not in refused.message
    # three planar channels may be a colour image's: say how to store it as one
    he = folder / "he_planar.ome.tif"
    tifffile.imwrite(he, np.stack([grey, grey, 255 - grey]), ome=True, metadata={"axes": "CYX"})
    planar = segment_file(he, model_dir, tmp_path / "he_out", SegmentOptions(tile_size=128))
    assert planar.status == "failed" and "save it as RGB (tifffile: photometric='rgb'" in planar.message
    he.unlink()
    assert not out.exists() or not any(out.iterdir())
    chosen = segment_file(ome, model_dir, out, SegmentOptions(tile_size=128, measurements=True, channel=0))
    labels = read_tiff_layer(out / "dapi_gfp.ome.tif")[0]
    assert chosen.status == "done" and labels.shape == grey.shape and labels.max() > 0
    assert "centroid_z" not in (out / "dapi_gfp.ome.csv").read_text().splitlines()[0]
    # an ImageJ hyperstack of 2 planes x 2 channels: planes stay planes, channel 1 is read
    hyper = folder / "zc.tif"
    tifffile.imwrite(hyper, np.stack([[255 - grey, grey]] * 2), imagej=True, metadata={"axes": "ZCYX"})
    report = segment_file(hyper, model_dir, out, SegmentOptions(tile_size=128, channel=1))
    assert report.status == "done", report.message
    assert read_tiff_layer(out / "zc.tif")[0].shape == (2, *grey.shape)


def test_a_channel_is_not_chosen_from_a_tiff_whose_axes_are_planes(tmp_path, model_dir):
    # --channel 0 on a ZYX (or TYX) file segmented plane 0 alone, taken for a channel.
    import numpy as np
    import tifffile

    grey = _grey()
    folder = tmp_path / "in"
    folder.mkdir()
    for name, axes in (("z.ome.tif", "ZYX"), ("t.tif", "TYX")):
        tifffile.imwrite(
            folder / name, np.stack([grey, 255 - grey]), metadata={"axes": axes}, imagej=axes == "TYX"
        )
        refused = segment_file(
            folder / name, model_dir, tmp_path / "out", SegmentOptions(tile_size=128, channel=0)
        )
        assert refused.status == "failed" and f"its axes are {axes}: no channel" in refused.message
        assert "every plane is segmented" in refused.message and "save it with axes CYX" in refused.message
    planes = segment_file(folder / "z.ome.tif", model_dir, tmp_path / "out", SegmentOptions(tile_size=128))
    assert planes.status == "done" and read_tiff_layer(tmp_path / "out" / "z.ome.tif")[0].shape == (
        2,
        *grey.shape,
    )
    # its note offered the --channel N just refused; a file without axes may hold channels
    assert "read as 2 planes" not in planes.note and "--channel" not in planes.note
    tifffile.imwrite(folder / "no-axes.tif", np.stack([grey, 255 - grey]))
    unnamed = segment_file(folder / "no-axes.tif", model_dir, tmp_path / "out", SegmentOptions(tile_size=128))
    assert unnamed.status == "done" and "pick the nuclear one with --channel N" in unnamed.note


def test_leading_axes_of_one_are_dropped_and_a_stack_says_why_it_has_no_overlay(tmp_path, model_dir):
    # (1, H, W) was a one-plane stack: no overlay, no word, a centroid_z column.
    import numpy as np
    import tifffile

    grey = _grey()
    out = tmp_path / "out"
    options = SegmentOptions(tile_size=128, measurements=True, overlays=True)
    for name, image in (("one_z", grey[None]), ("one_t_one_z", grey[None, None])):
        tifffile.imwrite(tmp_path / f"{name}.tif", image)
        report = segment_file(tmp_path / f"{name}.tif", model_dir, out, options)
        assert report.status == "done" and report.note == "", report.message
        assert read_tiff_layer(out / f"{name}.tif")[0].shape == grey.shape
        assert (out / f"{name}_overlay.png").is_file()
        assert "centroid_z" not in (out / f"{name}.csv").read_text().splitlines()[0]
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([grey, grey]))
    report = segment_file(tmp_path / "stack.tif", model_dir, out, options)
    assert report.status == "done" and "no overlay: a stack" in report.note


def test_an_overwrite_killed_after_the_labels_leaves_no_old_extras_beside_them(
    tmp_path, model_dir, monkeypatch
):
    import os

    from napari_cellseg.inference import batch_outputs

    (path,) = write_sample_images(tmp_path / "in", keys=("c_histology_1",))
    out = tmp_path / "out"
    options = SegmentOptions(tile_size=128, measurements=True, geojson=True)
    assert segment_file(path, model_dir, out, options).status == "done"
    old_csv = (out / f"{path.stem}.csv").read_bytes()
    real_replace, moves = os.replace, []

    def killed_after_the_labels(src, dst):
        if Path(dst).parent == out:  # a move into place, not a write into the scratch folder
            if moves:
                raise KeyboardInterrupt  # the process dies between the labels and the extras
            moves.append(Path(dst))
        real_replace(src, dst)

    monkeypatch.setattr(batch_outputs.os, "replace", killed_after_the_labels)
    with pytest.raises(KeyboardInterrupt):
        segment_file(path, model_dir, out, SegmentOptions(tile_size=128, measurements=True, geojson=True,
                                                          overwrite=True, diameter=30))  # fmt: skip
    monkeypatch.undo()
    assert moves == [out / f"{path.stem}.tif"]
    assert not (out / f"{path.stem}.csv").exists() and not (out / f"{path.stem}.geojson").exists()
    # the next run draws the missing extras from the new labels
    report = segment_file(path, model_dir, out, options)
    assert report.status == "done" and "added from the stored cells" in report.note
    n_cells = int(read_tiff_layer(out / f"{path.stem}.tif")[0].max())
    new_csv = (out / f"{path.stem}.csv").read_text().strip().splitlines()
    assert len(new_csv) - 1 == n_cells and (out / f"{path.stem}.csv").read_bytes() != old_csv
