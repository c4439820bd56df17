"""Segment panel fixes: the results folder as the images folder, an image called measurements,
messages that fit the panel (no --overwrite), and an Image box without probability maps."""

from __future__ import annotations

import json
import shutil

import pytest

from napari_cellseg.app import current_model
from napari_cellseg.sample_data import list_samples, load_sample

pytest.importorskip("torch")


def _images(folder, names=("a",)):
    folder.mkdir()
    for name in names:
        shutil.copyfile(list_samples()["c_histology_2"].image_path, folder / f"{name}.png")
    return folder


def _panel(make_napari_viewer, model_dir):
    current_model.set_current_model(model_dir)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    return viewer, widget


def _segment_folder(widget, wait_for_job, folder, out=None):
    box = widget.results_box
    box.images_edit.setText(str(folder))
    box.folder_edit.setText(str(out) if out is not None else "")
    box.batch_button.click()
    wait_for_job(widget, timeout=60000)
    return widget.message.text()


def test_the_images_folder_as_results_folder_is_refused_plainly(
    make_napari_viewer, tiny_model_dir, wait_for_job, tmp_path
):
    folder = _images(tmp_path / "imgs")
    _, widget = _panel(make_napari_viewer, tiny_model_dir)
    text = _segment_folder(widget, wait_for_job, folder, out=folder)
    assert "no image files" not in text and "choose another one" in text, text
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]


def test_an_image_called_measurements_keeps_its_table_over_reruns(
    make_napari_viewer, tiny_model_dir, wait_for_job, tmp_path
):
    from napari_cellseg.inference.measure import read_measurements

    folder = _images(tmp_path / "imgs", names=("a", "measurements"))
    _, widget = _panel(make_napari_viewer, tiny_model_dir)
    out = folder / "cellseg-results"
    combined = []
    for _ in range(2):
        text = _segment_folder(widget, wait_for_job, folder)
        assert "0 failed" in text and "measurements-all.csv" in text, text
        combined.append((out / "measurements-all.csv").read_text())
    assert combined[0] == combined[1]  # the rerun skipped both images: the same table
    own = read_measurements(out / "measurements.csv")  # the image's own table, as segmented
    assert own and {row["image_id"] for row in own} == {"measurements"}


def test_an_existing_output_is_reported_without_cli_flags(
    make_napari_viewer, tiny_model_dir, wait_for_job, tmp_path
):
    folder = _images(tmp_path / "imgs")
    out = folder / "cellseg-results"
    out.mkdir()
    kept = json.dumps({"type": "FeatureCollection", "features": []})
    (out / "a.geojson").write_text(kept)
    _, widget = _panel(make_napari_viewer, tiny_model_dir)
    text = _segment_folder(widget, wait_for_job, folder)
    assert "1 failed" in text and "a.geojson" in text and "another output folder" in text, text
    assert "--overwrite" not in text
    assert (out / "a.geojson").read_text() == kept


def test_the_image_box_lists_no_probability_map(make_napari_viewer, tiny_model_dir, wait_for_job):
    image, _, _ = load_sample("c_histology_2")
    viewer, widget = _panel(make_napari_viewer, tiny_model_dir)
    first = viewer.add_image(image, name="A")
    widget.segment_button.click()
    assert wait_for_job(widget, timeout=60000).error is None
    assert "A boundary probability" in viewer.layers
    listed = [widget.image_combo.itemText(i) for i in range(widget.image_combo.count())]
    assert listed == ["A"]
    viewer.layers.remove(first)
    assert widget.image_combo.count() == 0 and widget.image_combo.layer() is None
    viewer.layers.selection.active = viewer.layers["A boundary probability"]
    widget.segment_button.click()
    assert widget.task is None or wait_for_job(widget).error is None
    assert "A boundary probability segmented cells" not in viewer.layers
    assert "no image to segment" in widget.message.text()
    second = viewer.add_image(image, name="B")  # a new image is offered again
    assert widget.image_combo.layer() == second  # == : napari hands out proxies
