"""A busy user: cells edited while they are saved or converted, a second click while a job runs,
a folder cancelled half way, a cancel that takes a while.

Jobs are held open by a gate, so the test acts while they run, as a user does.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_cellseg.app import segment_results
from napari_cellseg.io import read_tiff_layer


@pytest.fixture
def gated_save(monkeypatch):
    """``save_segmentation`` waits until ``gate.set()`` before it writes anything."""
    gate, real = threading.Event(), segment_results.save_segmentation

    def held(*args, **kwargs):
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(segment_results, "save_segmentation", held)
    return gate


def _segment_panel_with_cells(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    cells = np.zeros((32, 32), np.uint16)
    cells[4:12, 4:12] = 1
    layer = viewer.add_labels(cells, name="img segmented cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    widget.image_combo.set_layer(image)
    return viewer, widget, layer


def test_cells_edited_during_save_results_are_not_half_saved(
    make_napari_viewer, gated_save, wait_for_job, tmp_path
):
    _, widget, layer = _segment_panel_with_cells(make_napari_viewer)
    widget.results_box.folder_edit.setText(str(tmp_path / "results"))
    widget.results_box.save_button.click()
    assert widget.busy
    layer.data_setitem(np.nonzero(np.ones((4, 4), bool)), 7)  # a brush stroke while it saves
    gated_save.set()
    task = wait_for_job(widget)
    assert task.error is None, task.error
    saved, _, _ = read_tiff_layer(task.result.labels)
    assert sorted(np.unique(saved)) == [0, 1]  # the cells as they were at the click
    assert task.result.n_cells == 1  # and the table agrees with them


def test_a_second_click_while_a_save_runs_is_not_told_to_cancel_it(
    make_napari_viewer, gated_save, wait_for_job, tmp_path
):
    _, widget, _ = _segment_panel_with_cells(make_napari_viewer)
    widget.results_box.folder_edit.setText(str(tmp_path / "results"))
    widget.results_box.save_button.click()
    widget.results_box.save_button.click()  # saving twice quickly
    text = widget.message.text()
    assert not widget.cancel_button.isEnabled()  # a save cannot be stopped half way...
    assert "wait for 'Save results' to finish" in text and "cancel" not in text  # ...so not offered
    gated_save.set()
    assert wait_for_job(widget).error is None


@pytest.mark.parametrize("direction", ["to annotation", "to cells"])
def test_cells_painted_while_converted_are_said_to_be_missing(make_napari_viewer, wait_for_job, direction):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    cells = np.zeros((32, 32), np.uint16)
    cells[4:12, 4:12] = 1
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    widget.image_combo.set_layer(image)
    widget.cells_combo.set_layer(viewer.add_labels(cells, name="img cells"))
    widget.to_annotation_button.click()
    wait_for_job(widget)
    assert "edited meanwhile" not in widget.message.text()
    if direction == "to annotation":
        button, painted, result = widget.to_annotation_button, "img cells", "img boundary annotation"
    else:
        button, painted, result = widget.to_cells_button, "img boundary annotation", "img cells"
    button.click()
    viewer.layers[painted].data_setitem(np.nonzero(np.ones((4, 4), bool)), 2)  # a brush stroke meanwhile
    wait_for_job(widget)
    text = widget.message.text()
    assert f"'{painted}' was edited meanwhile; '{result}' lacks those edits: convert again" in text, text


def test_a_cancelled_folder_says_how_far_it_got_and_how_to_go_on(
    make_napari_viewer, tiny_model_dir, monkeypatch, wait_for_job, qtbot, tmp_path
):
    from napari_cellseg.app import current_model
    from napari_cellseg.app.segment_results import FolderProgress

    gate = threading.Event()

    def fake_folder(images, model_dir, out, **options):
        yield FolderProgress(1, 3, "a", "segmented")
        gate.wait(30)  # the second image: the cancel stops the folder once it is done
        yield FolderProgress(2, 3, "b", "segmented")

    monkeypatch.setattr(segment_results, "iter_segment_folder", fake_folder)
    current_model.set_current_model(tiny_model_dir)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    (tmp_path / "imgs").mkdir()
    widget.results_box.images_edit.setText(str(tmp_path / "imgs"))
    widget.results_box.batch_button.click()
    task = widget.task
    qtbot.waitUntil(lambda: task.progress.n == 1, timeout=10000)
    widget.cancel_button.click()
    gate.set()
    assert wait_for_job(widget).cancelled
    text = widget.message.text()
    assert "cancelled after 2 of 3 images" in text and "Click again to go on" in text, text
    assert widget.segment_button.isEnabled() and not widget.cancel_button.isEnabled()


@pytest.fixture
def held_segment(monkeypatch, tiny_model_dir):
    """Segment runs a fake: it reports, then holds its last step (no report) until ``gate.set()``."""
    from napari_cellseg._qt import segment as segment_module
    from napari_cellseg.app import current_model
    from napari_cellseg.app.segment_session import watershed_again
    from napari_cellseg.classes import BACKGROUND
    from napari_cellseg.inference.segment import SegmentationResult
    from napari_cellseg.inference.tiled import PredictProgress

    current_model.set_current_model(tiny_model_dir)
    gate = threading.Event()

    def fake_segment(image, model_dir, params, **_options):
        yield PredictProgress("tiles", 1, 1)
        gate.wait(30)  # the watershed: no report until it returns
        probabilities = np.zeros((3, *np.shape(image)), np.float32)
        probabilities[BACKGROUND] = 1.0
        return SegmentationResult(
            watershed_again(probabilities, params), probabilities, 1.0, None, watershed=params.to_dict()
        )

    monkeypatch.setattr(segment_module, "iter_segment_one_click", fake_segment)
    return gate


def test_cancel_says_at_once_that_the_job_is_stopping(make_napari_viewer, held_segment, wait_for_job, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    widget.segment_button.click()
    task = widget.task
    qtbot.waitUntil(lambda: task.progress.n == 1, timeout=10000)
    widget.cancel_button.click()
    assert "cancelling, it stops after its current step" in widget.message.text()
    assert not widget.cancel_button.isEnabled()  # asked once
    held_segment.set()
    assert wait_for_job(widget).cancelled
    assert [layer.name for layer in viewer.layers] == ["img"]  # its result is dropped
    assert widget.message.text() == "Segment 'img' cancelled" and widget.segment_button.isEnabled()
