"""Batch names and advice: the combined table never takes an image's table, the output folder is
never an input folder, and reasons that the GUI shows name no CLI flag."""

from __future__ import annotations

import json

import pytest
from tiny_models import save_fitted_model, write_sample_images

from napari_cellseg.cli import main
from napari_cellseg.inference.batch import (
    BatchSummary,
    FileReport,
    SegmentOptions,
    input_folder_as_output,
    plain_message,
    segment_file,
)
from napari_cellseg.inference.batch_table import combine_measurements, combined_table_path
from napari_cellseg.inference.measure import read_measurements, write_measurements


def _row(image_id: str, label: int) -> dict:
    return {"image_id": image_id, "label": label, "area": 10, "centroid_y": 1.0, "centroid_x": 2.0}


def _summary(*ids: str) -> BatchSummary:
    return BatchSummary([FileReport(f"/in/{i}.png", i, "skipped") for i in ids])


def test_the_combined_table_keeps_its_name_unless_an_image_owns_it(tmp_path):
    assert combined_table_path(tmp_path, _summary("a", "b")).name == "measurements.csv"
    assert combined_table_path(tmp_path, _summary("a", "measurements")).name == "measurements-all.csv"
    both = _summary("measurements", "measurements-all")
    assert combined_table_path(tmp_path, both).name == "measurements-all-2.csv"
    (tmp_path / "measurements.tif").write_bytes(b"")  # an image's labels from another run
    assert combined_table_path(tmp_path, _summary("a")).name == "measurements-all.csv"


def _stored(folder, image_id: str, n_rows: int):
    """An image's stored cells and its table in ``folder``, as segment writes them (digest recorded)."""
    import hashlib

    import numpy as np

    from napari_cellseg.io import write_tiff_layer

    table = write_measurements(folder / f"{image_id}.csv", [_row(image_id, i + 1) for i in range(n_rows)])
    digest = hashlib.sha256(table.read_bytes()).hexdigest()
    metadata = {"source": f"/in/{image_id}.png", "outputs": {"measurements": digest}}
    write_tiff_layer(folder / f"{image_id}.tif", np.ones((4, 4), np.uint16), "labels", {"metadata": metadata})
    return table


def test_an_image_called_measurements_keeps_its_table_and_reruns_are_stable(tmp_path):
    _stored(tmp_path, "a", 2)
    own = _stored(tmp_path, "measurements", 1)
    before = own.read_text()
    summary = _summary("a", "measurements")
    for _ in range(3):  # a rerun must not read the combined table back as the image's own
        path, rows = combine_measurements(tmp_path, summary)
        assert path.name == "measurements-all.csv" and rows == 3 and summary.table == path
        assert own.read_text() == before
    assert len(read_measurements(tmp_path / "measurements-all.csv")) == 3


def test_the_combined_table_follows_the_ids_not_the_order_images_finished(tmp_path):
    # a Dask run reports images as they finish: the table was in that order, another file each time
    for image_id in ("b", "a", "c"):
        _stored(tmp_path, image_id, 2)
    path, n_rows = combine_measurements(tmp_path, _summary("c", "a", "b"))
    assert n_rows == 6 and "".join(row["image_id"] for row in read_measurements(path)) == "aabbcc"


def test_an_input_folder_that_is_the_output_folder_is_found(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "a.png").write_bytes(b"")
    assert input_folder_as_output([images], images / ".") == images
    assert input_folder_as_output([images / "a.png"], images) is None  # files: results beside them
    assert input_folder_as_output([images], images / "cellseg-results") is None


def test_reasons_for_the_gui_name_no_overwrite_flag(tmp_path):
    # refused before any model is loaded: the model folder need not exist
    (image,) = write_sample_images(tmp_path / "imgs", keys=("c_histology_2",))
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{image.stem}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    report = segment_file(image, tmp_path / "no-model", out, SegmentOptions(geojson=True))
    assert report.status == "failed" and "--overwrite" in report.message  # the CLI's advice
    assert f"{image.stem}.geojson" in plain_message(report) and "--overwrite" not in plain_message(report)
    assert "another output folder" in plain_message(report)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pytest.importorskip("torch")
    import torch

    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("model"))


def test_cli_image_called_measurements_keeps_its_table(tmp_path, model_dir, capsys):
    (first,) = write_sample_images(tmp_path / "in", keys=("c_histology_2",))
    first.rename(first.with_name("measurements.png"))
    write_sample_images(tmp_path / "in", keys=("c_histology_1",))
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "in"), "--model", str(model_dir), "--out", str(out)]
    assert main([*args, "--tile", "128", "--measurements", "--quiet"]) == 0
    own = read_measurements(out / "measurements.csv")
    assert own and {row["image_id"] for row in own} == {"measurements"}
    combined = (out / "measurements-all.csv").read_text()
    assert "measurements-all.csv" in capsys.readouterr().out
    assert main([*args, "--tile", "128", "--measurements", "--quiet"]) == 0  # all skipped
    assert (out / "measurements-all.csv").read_text() == combined
    assert read_measurements(out / "measurements.csv") == own


def test_the_gui_batch_refuses_the_images_folder_as_results_folder(tmp_path):
    # as `napari-cellseg segment imgs --out imgs` does, not "no image files here"
    from napari_cellseg.app.segment_results import iter_segment_folder

    (image,) = write_sample_images(tmp_path / "imgs", keys=("c_histology_2",))
    with pytest.raises(ValueError, match="choose another one") as caught:
        next(iter_segment_folder(image.parent, tmp_path / "no-model", image.parent))
    assert "no image files" not in str(caught.value)
    assert sorted(p.name for p in image.parent.iterdir()) == [image.name]  # nothing written


def test_results_beside_the_images_are_not_taken_for_images_by_the_next_run(tmp_path, model_dir, capsys):
    # `segment imgs/*.png --out imgs` run again segmented a_overlay.png, then a_overlay_overlay.png
    from napari_cellseg.inference.batch_ownership import without_outputs

    folder = tmp_path / "imgs"
    paths = write_sample_images(folder, keys=("c_histology_1", "c_histology_2"))
    args = ["segment", *map(str, paths), "--model", str(model_dir), "--out", str(folder), "--overlays"]
    assert main([*args, "--tile", "128"]) == 0
    written = sorted(p.name for p in folder.iterdir())
    again = sorted(folder.glob("*.png"))  # the shell's glob now lists the overlays too
    assert len(again) == 4 and without_outputs(again, folder) == sorted(paths)
    capsys.readouterr()
    assert (
        main(["segment", *map(str, again), "--model", str(model_dir), "--out", str(folder), "--overlays"])
        == 0
    )
    assert "2 image(s): 0 segmented, 2 skipped" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == written
    own = folder / "notes_overlay.png"  # a user's image whose name only looks like an output
    own.write_bytes(paths[0].read_bytes())
    assert own in without_outputs([*paths, own], folder)
