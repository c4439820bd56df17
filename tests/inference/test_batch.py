"""Many files: outputs, failures that name the file, no overwriting, measurements, Dask."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import save_fitted_model, write_sample_images

from napari_cellseg.inference.batch import SegmentOptions, _load_model, segment_file, segment_files
from napari_cellseg.inference.measure import measure_cells, read_measurements
from napari_cellseg.io import read_tiff_layer

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("model"))


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "images"
    paths = write_sample_images(folder)
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "notes.txt").write_text("ignored: not an image")
    return folder, paths


def test_a_folder_is_segmented_and_a_bad_file_named(tmp_path, model_dir, images):
    folder, paths = images
    out = tmp_path / "out"
    summary = segment_files([folder], model_dir, out, SegmentOptions(tile_size=128, save_probabilities=True))
    by_id = {r.image_id: r for r in summary.reports}
    assert sorted(by_id) == ["broken", "c_histology_1", "c_histology_2"]
    assert by_id["broken"].status == "failed" and "broken.png" in by_id["broken"].message
    assert not summary.ok and summary.count("done") == 2
    for path in paths:
        labels, attributes, layer_type = read_tiff_layer(out / f"{path.stem}.tif")
        assert layer_type == "labels" and labels.shape == (256, 320) and labels.dtype == np.uint16
        assert labels.max() == by_id[path.stem].n_instances > 5
        assert attributes["metadata"]["source"] == str(path)
        probabilities, _, kind = read_tiff_layer(out / f"{path.stem}_probabilities.tif")
        assert kind == "image" and probabilities.shape == (3, 256, 320)
    assert not (out / "broken.tif").exists()


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, model_dir, images):
    _, paths = images
    out = tmp_path / "out"
    first = segment_file(paths[0], model_dir, out, SegmentOptions(tile_size=128))
    assert first.status == "done"
    labels = out / f"{paths[0].stem}.tif"
    stored = labels.read_bytes()
    again = segment_file(paths[0], model_dir, out, SegmentOptions(tile_size=128))
    assert again.status == "skipped" and "--overwrite" in again.message
    assert labels.read_bytes() == stored
    labels.unlink()
    forced = segment_file(paths[0], model_dir, out, {"tile_size": 128, "overwrite": True})
    assert forced.status == "done" and read_tiff_layer(labels)[0].max() == first.n_instances


def test_a_tif_that_is_not_stored_cells_is_never_read_nor_replaced(tmp_path, model_dir, images):
    # A zero-byte or garbage <id>.tif counted as done ("skipped"); a user's own RGB a.tif was
    # read as a.png's cells (218 nonsense cells in a.csv), and --overwrite replaced it.
    import tifffile

    _, paths = images
    out = tmp_path / "out"
    out.mkdir()
    labels = out / f"{paths[0].stem}.tif"
    rgb = np.zeros((32, 32, 3), np.uint8)
    cases = (
        (b"", "an empty file"),
        (b"II*\x00\xff\xff\xff\x00garbage", "not a labels TIFF"),
        (None, "not a labels TIFF"),
    )
    for content, why in cases:
        if content is None:
            tifffile.imwrite(labels, rgb)
        else:
            labels.write_bytes(content)
        before = labels.read_bytes()
        for options in ({}, {"measurements": True}, {"overwrite": True}):
            report = segment_file(paths[0], model_dir, out, SegmentOptions(tile_size=128, **options))
            assert report.status == "failed" and str(labels) in report.message and why in report.message
            assert "--overwrite" not in report.message  # it would not help: never replaced
            assert labels.read_bytes() == before
            assert sorted(p.name for p in out.iterdir()) == [labels.name]  # no table, no scratch


def test_a_requested_output_that_exists_without_labels_is_kept_unless_overwrite(tmp_path, model_dir, images):
    # <id>.csv beside the image with no labels is not a leftover of this command (it moves an
    # image's outputs into place labels first): it may be the user's own table.
    _, paths = images
    out = tmp_path / "out"
    out.mkdir()
    own = out / f"{paths[0].stem}.csv"
    own.write_text("the user's own table")
    report = segment_file(paths[0], model_dir, out, SegmentOptions(tile_size=128, measurements=True))
    assert report.status == "failed" and own.name in report.message and "--overwrite" in report.message
    assert own.read_text() == "the user's own table" and not (out / f"{paths[0].stem}.tif").exists()
    forced = segment_file(
        paths[0], model_dir, out, SegmentOptions(tile_size=128, measurements=True, overwrite=True)
    )
    assert forced.status == "done" and len(read_measurements(own)) == forced.n_instances > 5


def test_a_failed_image_leaves_the_files_beside_it_and_nothing_of_its_own(tmp_path, model_dir):
    # segment slides/s1.png --out slides: s1.geojson, s1_rois.zip, s1.csv are the user's annotations
    slides = tmp_path / "slides"
    slides.mkdir()
    bad = slides / "s1.png"
    bad.write_bytes(b"not a png")
    own = {name: f"user's {name}" for name in ("s1.geojson", "s1_rois.zip", "s1.csv", "s1_overlay.png")}
    for name, text in own.items():
        (slides / name).write_text(text)
    report = segment_file(bad, model_dir, slides, SegmentOptions())
    assert report.status == "failed" and "s1.png" in report.message
    assert {p.name: p.read_text() for p in slides.iterdir() if p.name != "s1.png"} == own


def test_an_image_that_fails_while_writing_leaves_nothing(tmp_path, model_dir, images, monkeypatch):
    from napari_cellseg.inference import batch

    def write_then_fail(*args, **kwargs):
        real_write_extras(*args, **kwargs)
        raise OSError(28, "No space left on device")

    real_write_extras = batch.write_extras
    monkeypatch.setattr(batch, "write_extras", write_then_fail)
    _, paths = images
    out = tmp_path / "out"
    report = segment_file(
        paths[0], model_dir, out, SegmentOptions(tile_size=128, measurements=True, geojson=True)
    )
    assert report.status == "failed" and "No space left" in report.message
    assert list(out.iterdir()) == []  # no table of cells whose labels were never written, no scratch


def test_the_same_file_named_twice_is_segmented_once(tmp_path, model_dir, images):
    _, paths = images
    summary = segment_files([paths[0], paths[0]], model_dir, tmp_path / "out", SegmentOptions(tile_size=128))
    assert [r.status for r in summary.reports] == ["done"]


def test_wrong_dimensions_and_missing_files_are_reported(tmp_path, model_dir):
    import tifffile

    bad = tmp_path / "volume.tif"
    tifffile.imwrite(bad, np.zeros((2, 3, 8, 8, 3), np.uint8))
    missing = tmp_path / "missing.png"
    summary = segment_files([bad, missing], model_dir, tmp_path / "out")
    messages = {r.image_id: r.message for r in summary.reports}
    assert "volume.tif" in messages["volume"] and "shape (2, 3, 8, 8, 3)" in messages["volume"]
    assert "missing.png" in messages["missing"] and "no such file" in messages["missing"]


def test_measurements_have_one_row_per_cell(tmp_path, model_dir, images):
    _, paths = images
    out = tmp_path / "out"
    report = segment_file(paths[0], model_dir, out, SegmentOptions(tile_size=128, measurements=True))
    rows = read_measurements(out / f"{paths[0].stem}.csv")
    labels = read_tiff_layer(out / f"{paths[0].stem}.tif")[0]
    assert len(rows) == report.n_instances
    assert list(rows[0])[:5] == ["image_id", "label", "area", "centroid_y", "centroid_x"]
    assert {"mean_intensity_0", "mean_intensity_1", "mean_intensity_2"} <= set(rows[0])
    assert sum(int(r["area"]) for r in rows) == int((labels > 0).sum())
    assert rows[0]["image_id"] == paths[0].stem


def test_measure_cells_by_hand():
    labels = np.zeros((4, 6), np.uint16)
    labels[0:2, 0:2] = 1
    labels[2:4, 3:6] = 2
    image = np.arange(24, dtype=np.float32).reshape(4, 6)
    rows = measure_cells(labels, image, "x")
    assert rows[0] == {"image_id": "x", "label": 1, "area": 4, "centroid_y": 0.5, "centroid_x": 0.5, "mean_intensity": 3.5}  # fmt: skip
    assert rows[1]["area"] == 6 and rows[1]["centroid_x"] == 4.0


def test_dask_cluster_gives_the_serial_labels_and_loads_the_model_once(tmp_path, model_dir, images):
    from distributed import Client, LocalCluster

    _, paths = images
    options = SegmentOptions(tile_size=128, torch_threads=1, save_probabilities=True)
    _load_model.cache_clear()  # a fresh model for each path, whatever earlier tests did with theirs
    serial = segment_files(paths, model_dir, tmp_path / "serial", options)
    assert serial.ok
    _load_model.cache_clear()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            spread = segment_files(paths, model_dir, tmp_path / "dask", options, scheduler=client)
    assert spread.ok and spread.count("done") == len(paths)
    from napari_cellseg.instance_matching import label_overlap, match_instances

    # The network gives the same probabilities on the cluster. Two forwards running at once in
    # one process need not round exactly as a serial one, and this tiny test model's
    # probabilities sit near the watershed's thresholds, so a few markers may come and go
    # (seen in two full-suite runs): the cells must still mostly be the same.
    for path in paths:
        p_a = read_tiff_layer(tmp_path / "serial" / f"{path.stem}_probabilities.tif")[0]
        p_b = read_tiff_layer(tmp_path / "dask" / f"{path.stem}_probabilities.tif")[0]
        np.testing.assert_allclose(p_a, p_b, atol=2e-3, err_msg=path.name)
        a = read_tiff_layer(tmp_path / "serial" / f"{path.stem}.tif")[0]
        b = read_tiff_layer(tmp_path / "dask" / f"{path.stem}.tif")[0]
        n_a = len(np.unique(a)) - 1
        assert match_instances(label_overlap(a, b), 0.5).n_matched >= 0.8 * n_a, path.name
    # Both workers live in this process (processes=False): one load for all images.
    assert _load_model.cache_info().misses == 1


def test_large_images_take_the_blockwise_path_with_the_same_outputs(tmp_path, model_dir, images):
    from napari_cellseg.instance_matching import label_overlap, match_instances

    _, paths = images
    normal = segment_file(paths[0], model_dir, tmp_path / "a", SegmentOptions(tile_size=128))
    options = SegmentOptions(tile_size=128, big_image_pixels=1000, save_probabilities=True)
    big = segment_file(paths[0], model_dir, tmp_path / "b", options)
    assert big.status == "done", big.message
    a = read_tiff_layer(tmp_path / "a" / f"{paths[0].stem}.tif")[0]
    b, attributes, _ = read_tiff_layer(tmp_path / "b" / f"{paths[0].stem}.tif")
    assert attributes["metadata"]["block_wise"] is True and b.dtype == np.uint16
    assert match_instances(label_overlap(a, b), 0.9).n_matched >= 0.9 * normal.n_instances
    assert read_tiff_layer(tmp_path / "b" / f"{paths[0].stem}_probabilities.tif")[0].shape == (3, 256, 320)
    assert not any(p.name.startswith(".cellseg-") for p in (tmp_path / "b").iterdir())  # scratch removed
    assert attributes["metadata"]["truncated"] >= 0
    lean = segment_file(
        paths[0], model_dir, tmp_path / "c", SegmentOptions(tile_size=128, big_image_pixels=1000)
    )
    assert lean.status == "done" and lean.n_instances == big.n_instances
    assert not (tmp_path / "c" / f"{paths[0].stem}_probabilities.tif").exists()


def test_the_guis_folder_batch_reports_progress_writes_three_files_and_resumes(tmp_path, model_dir, images):
    from napari_cellseg.app.segment_results import iter_segment_folder
    from napari_cellseg.generators import run_to_end

    folder, paths = images
    reports = []
    summary = run_to_end(iter_segment_folder(folder, model_dir, tile_size=128), reports.append)
    assert [(r.done, r.total) for r in reports] == [(1, 3), (2, 3), (3, 3)]
    out = folder / "cellseg-results"  # the default: inside the folder, not segmented itself
    for path in paths:
        assert {p.name for p in out.glob(f"{path.stem}.*")} == {
            f"{path.stem}{s}" for s in (".tif", ".csv", ".geojson")
        }
        assert (out / f"{path.stem}_overlay.png").is_file()  # to look through without napari
    assert summary.count("done") == 2 and summary.count("failed") == 1
    combined = read_measurements(out / "measurements.csv")
    assert {r["image_id"] for r in combined} == {p.stem for p in paths}
    again = run_to_end(iter_segment_folder(folder, model_dir, tile_size=128))
    assert again.count("skipped") == 2  # an interrupted folder resumes
    assert len(read_measurements(out / "measurements.csv")) == len(combined)  # skipped images still count
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty: no image files here"):
        run_to_end(iter_segment_folder(empty, model_dir))
    with pytest.raises(ValueError, match="not a folder of images"):
        run_to_end(iter_segment_folder(paths[0], model_dir))


def test_an_image_in_the_output_folder_is_never_replaced_by_its_labels(tmp_path, model_dir, images):
    _, paths = images
    import tifffile

    from napari_cellseg.io import read_image

    folder = tmp_path / "same"
    folder.mkdir()
    image_path = folder / "scan.tif"
    tifffile.imwrite(image_path, read_image(paths[0]))
    before = image_path.read_bytes()
    for overwrite in (False, True):
        report = segment_file(
            image_path, model_dir, folder, SegmentOptions(tile_size=128, overwrite=overwrite)
        )
        assert report.status == "failed" and "replace the image itself" in report.message
    assert image_path.read_bytes() == before


def test_a_chosen_channel_of_grey_stored_as_rgb_is_segmented(tmp_path, model_dir, images):
    from PIL import Image

    from napari_cellseg.io import read_image

    grey = read_image(images[1][0])[..., 0]
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "grey_as_rgb.png")
    report = segment_file(tmp_path / "grey_as_rgb.png", model_dir, tmp_path / "out", {"channel": 1})
    assert report.status == "done" and report.n_instances > 0


def test_a_model_replaced_in_place_is_loaded_again(tmp_path, model_dir):
    import os
    import shutil

    from napari_cellseg.inference.batch import cached_model

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    first, _ = cached_model(folder, "cpu")
    assert cached_model(folder, "cpu")[0] is first  # loaded once
    weights = folder / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # retrained into the same folder
    assert cached_model(folder, "cpu")[0] is not first


def test_a_second_run_asking_for_more_outputs_adds_them_from_the_stored_cells(tmp_path, model_dir, images):
    _, paths = images
    out = tmp_path / "out"
    first = segment_file(paths[0], model_dir, out, SegmentOptions(tile_size=128))
    stored = read_tiff_layer(out / f"{paths[0].stem}.tif")[0]
    again = segment_file(
        paths[0], model_dir, out, SegmentOptions(tile_size=128, measurements=True, geojson=True)
    )
    assert again.status == "done" and "added from the stored cells" in again.note
    assert (out / f"{paths[0].stem}.csv").is_file() and (out / f"{paths[0].stem}.geojson").is_file()
    np.testing.assert_array_equal(
        read_tiff_layer(out / f"{paths[0].stem}.tif")[0], stored
    )  # not segmented again
    assert again.n_instances == first.n_instances
    kept = segment_file(paths[0], model_dir, out, SegmentOptions(tile_size=128, save_probabilities=True))
    assert kept.status == "skipped" and "--overwrite segments it again" in kept.message


def test_two_channels_get_advice_without_flags_for_the_gui(tmp_path, model_dir, images):
    import tifffile

    from napari_cellseg.inference.batch import plain_message
    from napari_cellseg.io import read_image

    grey = read_image(images[1][0])[..., 0]
    tifffile.imwrite(tmp_path / "two.tif", np.stack([grey, grey[::-1]], axis=-1))
    report = segment_file(tmp_path / "two.tif", model_dir, tmp_path / "out")
    assert report.status == "failed" and "--channel N" in report.message  # the command line's advice
    assert "2 channels" in plain_message(report) and "image file of its own" in plain_message(report)
    assert "--channel" not in plain_message(report) and "channel=N" not in plain_message(report)
