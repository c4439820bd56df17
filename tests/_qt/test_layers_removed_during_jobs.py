"""A layer removed while a job ran for it: its result is dropped, never given to a layer of the same name.

Each test acts right after the click: the job's result reaches the panel through the event loop, later.
"""

from __future__ import annotations

import numpy as np

from napari_cellseg.app import current_model
from napari_cellseg.sample_data import load_sample

IMAGE, MASK, _ = load_sample("c_histology_1")


def _segment_then(make_napari_viewer, tiny_model_dir, wait_for_job, action):
    current_model.set_current_model(tiny_model_dir)
    viewer = make_napari_viewer()
    image = viewer.add_image(IMAGE, name="img", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    widget.segment_button.click()
    assert widget.busy
    action(viewer, image)
    wait_for_job(widget, timeout=60000)
    return viewer, widget


def test_segment_drops_the_cells_of_a_removed_image(make_napari_viewer, tiny_model_dir, wait_for_job):
    viewer, widget = _segment_then(
        make_napari_viewer, tiny_model_dir, wait_for_job, lambda viewer, image: viewer.layers.remove(image)
    )
    assert [layer.name for layer in viewer.layers] == []
    assert "'img' was removed while it was segmented" in widget.message.text()


def test_segment_never_gives_the_cells_to_another_image_of_that_name(
    make_napari_viewer, tiny_model_dir, wait_for_job
):
    def replace(viewer, image):
        viewer.layers.remove(image)
        viewer.add_image(IMAGE[::-1].copy(), name="img", rgb=True, translate=(500, 0))

    viewer, widget = _segment_then(make_napari_viewer, tiny_model_dir, wait_for_job, replace)
    assert [layer.name for layer in viewer.layers] == ["img"]
    assert "was removed while it was segmented" in widget.message.text()
    widget.send_button.click()  # nothing to pair with the new image
    assert "segment an image first" in widget.message.text()


def _annotate(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(IMAGE, name="img", rgb=True, metadata={"microscope": "C"})
    cells = viewer.add_labels(MASK, name="mask")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    widget.image_combo.set_layer(image)
    widget.cells_combo.set_layer(cells)
    return viewer, widget, image


def test_annotate_conversion_of_a_removed_image_adds_no_annotation(make_napari_viewer, wait_for_job):
    viewer, widget, image = _annotate(make_napari_viewer)
    widget.to_annotation_button.click()
    viewer.layers.remove(image)
    viewer.add_image(IMAGE[:100, :100].copy(), name="img", rgb=True)
    wait_for_job(widget)
    assert "img boundary annotation" not in viewer.layers
    assert "'img' was removed meanwhile" in widget.message.text()


def test_annotate_touching_boundaries_of_a_removed_annotation_are_not_claimed(
    make_napari_viewer, wait_for_job
):
    viewer, widget, _ = _annotate(make_napari_viewer)
    widget.thickness_spin.setValue(1)
    widget.to_annotation_button.click()
    wait_for_job(widget)
    annotation = viewer.layers["img boundary annotation"]
    annotation.data[annotation.data == 1] = 2  # boundaries painted over: the button has work to do
    widget.touching_button.click()
    viewer.layers.remove(annotation)
    wait_for_job(widget)
    assert "img boundary annotation" not in viewer.layers
    text = widget.message.text()
    assert "'img boundary annotation' was removed meanwhile" in text and "became boundary" not in text


def test_annotate_saved_labels_of_a_removed_image_are_not_opened(make_napari_viewer, wait_for_job, tmp_path):
    viewer, widget, image = _annotate(make_napari_viewer)
    widget.dataset_edit.setText(str(tmp_path / "ds"))
    widget.save_what_combo.setCurrentText("cells (instances)")
    widget.save_button.click()
    wait_for_job(widget)
    viewer.layers.remove("mask")
    widget.open_button.click()  # reads the saved labels in a job
    viewer.layers.remove(image)
    wait_for_job(widget)
    assert [layer.name for layer in viewer.layers] == []
    assert "was removed meanwhile" in widget.message.text()


def test_review_compare_of_a_removed_prediction_shows_nothing(make_napari_viewer, wait_for_job):
    viewer = make_napari_viewer()
    gt = viewer.add_labels(MASK, name="gt")
    pred = viewer.add_labels(np.roll(MASK, 3, axis=1), name="pred")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    widget.gt_combo.set_layer(gt)
    widget.pred_combo.set_layer(pred)
    widget.compare_button.click()
    viewer.layers.remove(pred)
    viewer.add_labels(MASK[:50, :50].copy(), name="pred")
    wait_for_job(widget)
    assert [layer.name for layer in viewer.layers] == ["gt", "pred"]  # no error layers
    assert "'pred' was removed while it was compared" in widget.message.text()
