"""The panels on unusual layers and actions: what they refuse, and what they tell the user."""

from __future__ import annotations

import numpy as np

from napari_cellseg.sample_data import load_sample

IMAGE, MASK, _ = load_sample("c_histology_1")


def test_annotate_refuses_cells_of_another_shape(make_napari_viewer, wait_for_job):
    viewer = make_napari_viewer()
    image = viewer.add_image(IMAGE, name="img", rgb=True, metadata={"microscope": "C"})
    crop = viewer.add_labels(MASK[:100, :100].copy(), name="crop")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    widget.image_combo.set_layer(image)
    widget.cells_combo.set_layer(crop)
    widget.to_annotation_button.click()
    assert widget.task is None  # refused up front, not after the painting
    assert "'crop' has shape (100, 100) but 'img' (256, 320)" in widget.message.text()
    assert "img boundary annotation" not in viewer.layers
    # An annotation of the image's name but another shape is not the image's own: not painted on.
    viewer.add_labels(np.zeros((100, 100), np.uint8), name="img boundary annotation")
    widget.open_button.click()
    wait_for_job(widget)
    assert np.shape(widget.annotation_combo.layer().data) == (256, 320)


def test_a_check_of_the_previous_dataset_folder_fills_nothing(
    make_napari_viewer, tiny_dataset, wait_for_job, tmp_path
):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Dataset")
    widget.dataset_edit.setText(str(tiny_dataset))
    widget.check_button.click()
    widget.dataset_edit.setText(str(tmp_path / "another"))  # while the check runs
    wait_for_job(widget)
    assert widget.id_combo.count() == 0 and widget.dataset is None  # Preview would mix the two folders
    assert "the Dataset folder is now another: check that one" in widget.message.text()


def test_review_tells_how_to_compare_one_plane_of_label_stacks(make_napari_viewer):
    viewer = make_napari_viewer()
    gt = viewer.add_labels(np.stack([MASK] * 2), name="expert stack")
    pred = viewer.add_labels(np.stack([MASK, np.zeros_like(MASK)]), name="cells stack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    widget.gt_combo.set_layer(gt)
    widget.pred_combo.set_layer(pred)
    widget.compare_button.click()
    assert widget.task is None
    text = widget.message.text()
    assert "'expert stack' is a stack of 2 planes" in text and "Split Stack" in text


def _segment(make_napari_viewer, tiny_model_dir, wait_for_job, data, **kwargs):
    from napari_cellseg.app import current_model

    current_model.set_current_model(tiny_model_dir)
    viewer = make_napari_viewer()
    layer = viewer.add_image(data, name="img", **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    widget.segment(layer)
    wait_for_job(widget, timeout=60000)
    return widget


def test_segment_tells_that_a_small_image_is_too_small(make_napari_viewer, tiny_model_dir, wait_for_job):
    widget = _segment(make_napari_viewer, tiny_model_dir, wait_for_job, IMAGE[:20, :20].copy(), rgb=True)
    assert "cells in 'img'" in widget.message.text()
    assert "under 64 px a side" in widget.message.text()


def test_segment_of_two_channels_gives_no_command_line_advice(
    make_napari_viewer, tiny_model_dir, wait_for_job
):
    widget = _segment(make_napari_viewer, tiny_model_dir, wait_for_job, IMAGE[..., :2].copy())
    text = widget.message.text()
    assert "has 2 channels" in text and "image layer of its own" in text
    assert "--channel" not in text and "channel=N" not in text
