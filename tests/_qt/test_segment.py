"""The Segment dock widget in a real napari viewer: one click, probabilities, live watershed sliders."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.app import current_model
from napari_cellseg.inference.runtime import default_model_dir
from napari_cellseg.inference.watershed import WatershedParams, instances_from_probabilities
from napari_cellseg.metrics import image_metrics
from napari_cellseg.models.checkpoint import load_model_config
from napari_cellseg.sample_data import load_sample

SAMPLE = "c_histology_1"
# AP@0.5 the bundled default model must reach on the C sample (the DSB 2018 expert mask).
DEFAULT_MODEL_AP_FLOOR = 0.5


def _dock(make_napari_viewer, scale=(1.0, 1.0), translate=(0.0, 0.0)):
    viewer = make_napari_viewer()
    image, mask, _sample = load_sample(SAMPLE)
    layer = viewer.add_image(
        image, name="[C] sample", rgb=True, scale=scale, translate=translate, metadata={"microscope": "C"}
    )
    viewer.add_labels(mask, name="expert mask", scale=scale, translate=translate)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    return viewer, widget, layer, mask


def _segment(widget, wait_for_job, layer=None, timeout=60000):
    widget.segment(layer) if layer is not None else widget.segment_button.click()
    task = wait_for_job(widget, timeout=timeout)
    assert task is not None and task.error is None, task.error if task else "no job started"
    return task


def test_without_a_model_the_button_explains(make_napari_viewer, tmp_path, monkeypatch):
    # As in an install without the bundled model: the default folder holds nothing.
    from napari_cellseg.inference import runtime

    monkeypatch.setattr(runtime, "default_model_dir", lambda: tmp_path / "no-default-model")
    viewer, widget, _, _ = _dock(make_napari_viewer)
    assert "No model available" in widget.segment_button.text()
    assert "Fine-tune" in widget.segment_button.toolTip()
    widget.segment_button.click()
    assert widget.task is None  # nothing started
    assert "train one in the Fine-tune panel" in widget.message.text()
    assert "segmented cells" not in " ".join(layer.name for layer in viewer.layers)


def test_one_click_then_sliders_follow_the_core_watershed(
    make_napari_viewer, tiny_model_dir, wait_for_job, qtbot
):
    current_model.set_current_model(tiny_model_dir)
    viewer, widget, _layer, mask = _dock(make_napari_viewer, scale=(0.5, 0.5), translate=(10.0, 20.0))
    assert widget.segment_button.text() == "Segment microscope C image"
    assert "tiny-model" in widget.model_label.text()
    widget.interior_check.setChecked(True)
    _segment(widget, wait_for_job)

    cells = viewer.layers["[C] sample segmented cells"]
    boundary = viewer.layers["[C] sample boundary probability"]
    interior = viewer.layers["[C] sample interior probability"]
    assert type(cells).__name__ == "Labels" and cells.data.shape == mask.shape
    assert cells.data.dtype == np.uint16
    for added in (cells, boundary, interior):
        assert tuple(added.scale) == (0.5, 0.5) and tuple(added.translate) == (10.0, 20.0)
    probabilities = widget.probabilities
    assert probabilities.shape == (3, *mask.shape) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(boundary.data, probabilities[1])
    np.testing.assert_array_equal(interior.data, probabilities[2])
    params = widget.watershed_params()
    np.testing.assert_array_equal(cells.data, instances_from_probabilities(probabilities, params))
    assert viewer.layers.selection.active is cells or viewer.layers.selection.active == cells
    # A random tiny network finds no real nuclei: the run is checked mechanically, no AP floor.
    ap = image_metrics(mask, np.asarray(cells.data)).at("ap", 0.5)
    assert 0.0 <= ap <= 1.0

    # Sliders: the labels become the core watershed at the new values (stale runs dropped).
    # The random network's P(interior) is nearly flat: a threshold inside its range makes seeds.
    threshold = round(float(np.quantile(probabilities[2], 0.9)), 2)
    before = widget.watershed_updates
    widget.interior_slider.setValue(threshold)
    widget.boundary_slider.setValue(2.5)
    widget.split_slider.setValue(0.5)
    widget.peak_slider.setValue(0.15)
    widget.min_size_slider.setValue(40)
    changes = {
        "interior_threshold": threshold, "boundary_weight": 2.5, "split_height": 0.5, "peak_height": 0.15,
        "min_size": 40,
    }  # fmt: skip
    expected_params = WatershedParams(**{**params.to_dict(), **changes})
    qtbot.waitUntil(lambda: widget.watershed_updates > before and not widget.watershed_busy, timeout=20000)
    assert widget.watershed_params() == expected_params
    updated = instances_from_probabilities(probabilities, expected_params)
    assert not np.array_equal(updated, instances_from_probabilities(probabilities, params))
    np.testing.assert_array_equal(cells.data, updated)
    assert cells.metadata["watershed"]["min_size"] == 40
    cells.undo()  # the slider update is one undo step
    np.testing.assert_array_equal(cells.data, instances_from_probabilities(probabilities, params))


def test_default_model_reaches_the_ap_floor(make_napari_viewer, wait_for_job):
    if not current_model.is_model_dir(default_model_dir()):
        pytest.skip(
            f"no bundled default model at {default_model_dir()}: the AP@0.5 floor "
            f"({DEFAULT_MODEL_AP_FLOOR}) needs it; the tiny-model test checks the mechanics"
        )
    viewer, widget, _layer, mask = _dock(make_napari_viewer)
    _segment(widget, wait_for_job, timeout=180000)
    cells = viewer.layers["[C] sample segmented cells"]
    ap = image_metrics(mask, np.asarray(cells.data)).at("ap", 0.5)
    assert ap >= DEFAULT_MODEL_AP_FLOOR, f"AP@0.5 {ap:.3f} on {SAMPLE}"
    if load_model_config(default_model_dir()).default_diameter == 0:  # the model measures the nuclei
        assert 0.25 < cells.metadata["scale_factor"] < 4 and cells.metadata["diameter"] > 3
        assert "Nuclei measure about" in widget.message.text()


def test_send_to_annotate_and_model_changes(make_napari_viewer, tiny_model_dir, wait_for_job):
    viewer, widget, layer, _ = _dock(make_napari_viewer)
    widget.send_button.click()
    assert "segment an image first" in widget.message.text()
    current_model.set_current_model(tiny_model_dir)  # e.g. Fine-tune finished: the panel follows
    assert "tiny-model" in widget.model_label.text()
    assert widget.segment_button.text() == "Segment microscope C image"
    _segment(widget, wait_for_job, layer=layer)
    widget.send_button.click()
    annotate = next(w for w in viewer.window.dock_widgets.values() if type(w).__name__ == "AnnotateWidget")
    assert annotate.cells_combo.currentText() == "[C] sample segmented cells"
    assert annotate.image_combo.currentText() == "[C] sample"
    assert "Annotate has" in widget.message.text()


def test_bad_model_folder_and_shortcut(make_napari_viewer, tiny_model_dir, tmp_path, qtbot):
    from napari.utils.key_bindings import KeyBinding

    viewer, widget, layer, _ = _dock(make_napari_viewer)
    (tmp_path / "empty").mkdir()
    widget.model_edit.setText(str(tmp_path / "empty"))
    assert "missing config.json and model.safetensors" in widget.message.text()
    bound = viewer.keymap.get(KeyBinding.from_str("Control-Shift-S"))
    assert bound is not None and bound.__name__ == "_segment_key"
    # Opening the panel again (another viewer or a re-dock) must not fail on the binding.
    viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    widget.model_edit.setText(str(tiny_model_dir))  # a good folder becomes the current model
    assert current_model.get_current_model_dir() == tiny_model_dir.resolve()
    viewer.layers.selection.active = layer
    assert viewer.window._qt_viewer._key_map_handler.press_key("Control-Shift-S")  # as the keyboard does
    qtbot.waitUntil(lambda: "[C] sample segmented cells" in viewer.layers, timeout=60000)


def test_test_time_augmentation_box_reaches_the_prediction(make_napari_viewer, tiny_model_dir, wait_for_job):
    from napari_cellseg.app.segment_session import load_model_cached
    from napari_cellseg.inference.predict import predict_probabilities

    current_model.set_current_model(tiny_model_dir)
    _viewer, widget, layer, _mask = _dock(make_napari_viewer)
    assert not widget.tta_check.isChecked()  # off by default: 8x the network time
    widget.tta_check.setChecked(True)
    _segment(widget, wait_for_job)
    model, config = load_model_cached(tiny_model_dir)
    expected = predict_probabilities(model, config, layer.data, channel_axis=-1, tta=True)
    np.testing.assert_allclose(widget.probabilities, expected, atol=1e-5)
    assert not widget.zoom_check.isChecked()  # off by default: 3x the network time
    widget.tta_check.setChecked(False)
    widget.zoom_check.setChecked(True)
    _segment(widget, wait_for_job)
    expected = predict_probabilities(model, config, layer.data, channel_axis=-1, tta_zooms=(0.8, 1.0, 1.25))
    np.testing.assert_allclose(widget.probabilities, expected, atol=1e-5)
    assert not widget.haematoxylin_check.isChecked()  # off by default: H&E slides need their eosin
    widget.zoom_check.setChecked(False)
    widget.haematoxylin_check.setChecked(True)
    _segment(widget, wait_for_job)
    from napari_cellseg.inference.stains import haematoxylin_only

    expected = predict_probabilities(model, config, haematoxylin_only(layer.data), channel_axis=-1)
    np.testing.assert_allclose(widget.probabilities, expected, atol=1e-5)


def test_opening_the_panel_loads_the_current_model_in_the_background(
    make_napari_viewer, tiny_model_dir, qtbot
):
    from napari_cellseg.app import segment_session

    segment_session.clear_model_cache()
    current_model.set_current_model(tiny_model_dir)
    _viewer, widget, _layer, _mask = _dock(make_napari_viewer)
    # Nothing was clicked: only the panel's warm-up can have loaded the model.
    qtbot.waitUntil(lambda: segment_session._cached.get("model") is not None, timeout=30000)
    assert widget._warm_worker is not None
    assert segment_session.load_model_cached(tiny_model_dir)[0] is segment_session._cached["model"]


def test_save_results_writes_the_corrected_cells_table_and_outlines(
    make_napari_viewer, tiny_model_dir, wait_for_job, tmp_path, monkeypatch
):
    import json

    from napari_cellseg.inference.measure import read_measurements
    from napari_cellseg.io import read_tiff_layer

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where results go without a folder or a file
    viewer, widget, layer, mask = _dock(make_napari_viewer, scale=(0.5, 0.5))
    layer.rotate = 10  # the saved cells reopen over the image as it lies
    widget.results_box.save_button.click()
    assert "segment an image first" in widget.message.text()
    current_model.set_current_model(tiny_model_dir)
    _segment(widget, wait_for_job, layer=layer)
    cells = viewer.layers["[C] sample segmented cells"]
    cells.data = np.where(mask == 1, 0, mask).astype(cells.data.dtype)  # the doctor's corrections
    widget.results_box.save_button.click()
    assert wait_for_job(widget).error is None
    folder = tmp_path / "home" / "cellseg-results"  # the sample came from no file
    labels, attributes, _ = read_tiff_layer(folder / "C_sample.tif")
    np.testing.assert_array_equal(labels, cells.data)
    assert list(attributes["scale"]) == [0.5, 0.5] and attributes["metadata"]["watershed"]
    np.testing.assert_allclose(attributes["rotate"], layer.rotate)
    rows = read_measurements(folder / "C_sample.csv")
    assert len(rows) == len(np.unique(cells.data)) - 1 and "mean_intensity_0" in rows[0]
    assert len(json.loads((folder / "C_sample.geojson").read_text())["features"]) == len(rows)
    assert f"Saved {len(rows)} cells to {folder}" in widget.message.text()

    widget.results_box.folder_edit.setText(str(tmp_path / "chosen"))
    widget.results_box.save_button.click()
    wait_for_job(widget)
    assert sorted(p.name for p in (tmp_path / "chosen").iterdir()) == [
        "C_sample.csv",
        "C_sample.geojson",
        "C_sample.tif",
    ]
    widget.results_box.save_button.click()  # again: kept, and a second set beside it
    wait_for_job(widget)
    assert (tmp_path / "chosen" / "C_sample-2.geojson").is_file()


def test_segment_every_image_of_a_folder(make_napari_viewer, tiny_model_dir, wait_for_job, tmp_path):
    import shutil

    from napari_cellseg.sample_data import list_samples

    folder = tmp_path / "slides"
    folder.mkdir()
    for key in ("c_histology_1", "c_histology_2"):
        shutil.copyfile(list_samples()[key].image_path, folder / f"{key}.png")
    _, widget, _, _ = _dock(make_napari_viewer)
    box = widget.results_box
    box.batch_button.click()
    assert "choose a folder of images first" in widget.message.text()
    box.images_edit.setText(str(folder))
    current_model.set_current_model(tiny_model_dir)
    box.batch_button.click()
    assert wait_for_job(widget, timeout=60000).error is None
    out = folder / "cellseg-results"
    for suffix in (".tif", ".csv", ".geojson"):
        assert sorted(p.name for p in out.glob(f"c_histology_*{suffix}")) == [
            f"c_histology_1{suffix}", f"c_histology_2{suffix}",
        ]  # fmt: skip
    assert (out / "measurements.csv").is_file()  # every cell of the folder in one table
    assert "2 image(s): 2 segmented" in widget.message.text() and str(out) in widget.message.text()


def _tiny_model(directory, watershed):
    import torch

    from napari_cellseg.models.checkpoint import ModelConfig, save_model_dir
    from napari_cellseg.models.m2 import M2Config
    from napari_cellseg.models.surgery import build_model

    torch.manual_seed(0)
    m2 = M2Config(arch="mobilenetv3_small_050", num_classes=0, name="tiny", source="random init (tests)")
    model = build_model(m2, transfer_layers=2, new_layers=2, out_channels=3, decoder_channels=(8, 8, 8),
                        pretrained=False)  # fmt: skip
    return save_model_dir(directory, model.eval(), ModelConfig.for_model(model, watershed=watershed))


def test_a_new_current_model_brings_its_own_watershed_settings(make_napari_viewer, tmp_path, wait_for_job):
    # e.g. Fine-tune finished: the next Segment must not run the new network with the old settings
    first = _tiny_model(
        tmp_path / "first", {"foreground_threshold": 0.6, "marker_smoothing": 1.0, "min_size": 32}
    )
    second = _tiny_model(
        tmp_path / "second", {"foreground_threshold": 0.3, "marker_smoothing": 0.0, "min_size": 8}
    )
    current_model.set_current_model(first)
    viewer, widget, layer, _ = _dock(make_napari_viewer)
    _segment(widget, wait_for_job, layer=layer)
    current_model.set_current_model(second)
    assert "Segment again" in widget.message.text()
    _segment(widget, wait_for_job, layer=layer)
    used = viewer.layers["[C] sample segmented cells"].metadata["watershed"]
    assert (used["foreground_threshold"], used["marker_smoothing"], used["min_size"]) == (0.3, 0.0, 8)


def test_the_shortcut_on_a_probability_map_segments_its_image(
    make_napari_viewer, tiny_model_dir, wait_for_job
):
    from napari_cellseg._qt.segment import _segment_key, segment_selected_layer

    current_model.set_current_model(tiny_model_dir)
    viewer, widget, layer, _ = _dock(make_napari_viewer)
    _segment(widget, wait_for_job, layer=layer)
    viewer.layers.selection.active = viewer.layers["[C] sample boundary probability"]  # clicked to look at it
    _segment_key(viewer)
    wait_for_job(widget, 60000)
    assert not any("probability segmented" in name or "probability boundary" in name for name in
                   [lay.name for lay in viewer.layers])  # fmt: skip
    # the menu names the selected layer: with a map (or labels) selected it refuses, never the panel's image
    cells = viewer.layers["[C] sample segmented cells"]
    viewer.layers.selection.active = cells
    segment_selected_layer(viewer)
    assert not widget.busy and "'[C] sample segmented cells' is not an image layer" in widget.message.text()
    viewer.layers.selection.active = viewer.layers["[C] sample boundary probability"]
    segment_selected_layer(viewer)
    assert "'[C] sample boundary probability' is a probability map Segment made" in widget.message.text()


def test_save_results_saves_the_cells_of_the_image_shown(
    make_napari_viewer, tiny_model_dir, wait_for_job, tmp_path
):
    from napari_cellseg.io import read_tiff_layer

    current_model.set_current_model(tiny_model_dir)
    viewer, widget, first, _ = _dock(make_napari_viewer)
    second = viewer.add_image(np.asarray(first.data)[::-1].copy(), name="second", rgb=True)
    _segment(widget, wait_for_job, layer=first)
    _segment(widget, wait_for_job, layer=second)
    widget.image_combo.set_layer(first)  # back to the first image
    widget.results_box.folder_edit.setText(str(tmp_path / "out"))
    widget.results_box.save_button.click()
    assert wait_for_job(widget).error is None
    (saved,) = (tmp_path / "out").glob("*.tif")
    assert saved.stem == "C_sample"
    np.testing.assert_array_equal(read_tiff_layer(saved)[0], viewer.layers["[C] sample segmented cells"].data)


def test_cells_and_probabilities_sit_on_the_image_rotated_sheared_or_moved(
    make_napari_viewer, tiny_model_dir, wait_for_job
):
    """Every output layer maps each pixel to the image's world point, with its units, and
    follows the image when it is moved and segmented again."""
    current_model.set_current_model(tiny_model_dir)
    viewer, widget, layer, _mask = _dock(make_napari_viewer, scale=(0.25, 0.25), translate=(5.0, 7.0))
    layer.rotate, layer.shear, layer.units = 30, [0.2], ("um", "um")
    _segment(widget, wait_for_job, layer)
    outputs = [viewer.layers[f"[C] sample {what}"] for what in ("segmented cells", "boundary probability")]
    pixel = np.array([100.0, 150.0])
    for added in outputs:
        np.testing.assert_allclose(added.data_to_world(pixel), layer.data_to_world(pixel))
        assert tuple(str(u) for u in added.units) == ("micrometer", "micrometer")
    layer.rotate, layer.shear, layer.scale, layer.translate = 0, [0.0], (0.5, 0.5), (10.0, 10.0)
    layer.affine = np.array([[1.0, 0.1, 3.0], [0.0, 1.0, 4.0], [0.0, 0.0, 1.0]])
    _segment(widget, wait_for_job, layer)  # into the same layers: they move with the image
    for added in outputs:
        assert added in viewer.layers
        np.testing.assert_allclose(added.data_to_world(pixel), layer.data_to_world(pixel))


def test_a_stack_says_every_plane_was_segmented(make_napari_viewer, tiny_model_dir, wait_for_job):
    current_model.set_current_model(tiny_model_dir)
    viewer = make_napari_viewer()
    image, _mask, _ = load_sample(SAMPLE)
    stack = viewer.add_image(np.stack([image[:96, :96, 0]] * 3), name="three planes")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    _segment(widget, wait_for_job, stack)
    assert viewer.layers["three planes segmented cells"].data.shape == (3, 96, 96)
    message = widget.message.text()
    assert "All 3 planes were segmented" in message and "colour channels" in message
