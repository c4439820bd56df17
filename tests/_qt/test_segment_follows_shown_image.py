"""The Segment panel's sliders and Send to Annotate act on the image the panel shows.

The network is replaced by a fake that turns bright discs into probabilities, so the
cell counts are known (a small disc goes at min size 300, the big one stays) and a
run lasts until the test lets it end.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_cellseg._qt import segment as segment_module
from napari_cellseg.app import current_model
from napari_cellseg.app.segment_session import watershed_again
from napari_cellseg.classes import BACKGROUND, BOUNDARY, INTERIOR
from napari_cellseg.inference.segment import SegmentationResult
from napari_cellseg.inference.tiled import PredictProgress


def _discs(*discs) -> np.ndarray:
    """A 64x64 grey image with bright discs ``(y, x, radius)``."""
    yy, xx = np.mgrid[:64, :64]
    image = np.zeros((64, 64), np.uint8)
    for y, x, radius in discs:
        image[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = 200
    return image


def _probabilities(image) -> np.ndarray:
    inside = np.asarray(image) > 0
    probabilities = np.empty((3, *inside.shape), np.float32)
    probabilities[INTERIOR] = np.where(inside, 0.9, 0.02)
    probabilities[BOUNDARY] = np.where(inside, 0.05, 0.03)
    probabilities[BACKGROUND] = 1 - probabilities[INTERIOR] - probabilities[BOUNDARY]
    return probabilities


@pytest.fixture
def gate(monkeypatch, tiny_model_dir):
    """The current model is the tiny one, but a fake segments: each run waits until ``gate.set()``."""
    current_model.set_current_model(tiny_model_dir)
    opened = threading.Event()
    opened.set()

    def fake_segment(image, model_dir, params, **_options):
        opened.wait(30)
        yield PredictProgress("model", 1, 1)
        probabilities = _probabilities(image)
        labels = watershed_again(probabilities, params)
        return SegmentationResult(labels, probabilities, 1.0, None, watershed=params.to_dict())

    monkeypatch.setattr(segment_module, "iter_segment_one_click", fake_segment)
    return opened


def _panel(make_napari_viewer):
    viewer = make_napari_viewer()
    a = viewer.add_image(_discs((14, 14, 4), (44, 44, 12)), name="A")
    b = viewer.add_image(_discs((14, 48, 4), (44, 20, 12)), name="B")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    return viewer, widget, a, b


def _move_and_wait(widget, qtbot, slider, value) -> None:
    updates = widget.watershed_updates
    slider.setValue(value)
    qtbot.waitUntil(lambda: widget.watershed_updates > updates and not widget.watershed_busy, timeout=20000)


def test_sliders_and_send_act_on_the_image_shown(make_napari_viewer, gate, wait_for_job, qtbot):
    viewer, widget, a, b = _panel(make_napari_viewer)
    for image in (a, b):
        widget.segment(image)
        assert wait_for_job(widget).error is None
    cells_a, cells_b = viewer.layers["A segmented cells"], viewer.layers["B segmented cells"]
    before_b = cells_b.data.copy()
    assert int(cells_a.data.max()) == int(cells_b.data.max()) == 2
    start = widget.min_size_slider.value()
    assert start < 49  # both discs are cells at the model's settings

    viewer.layers.selection.active = a  # back to image A: the panel shows it
    assert widget.image_combo.currentText() == "A"
    _move_and_wait(widget, qtbot, widget.min_size_slider, 300)
    np.testing.assert_array_equal(cells_b.data, before_b)  # B's cells untouched
    assert cells_b.metadata["watershed"]["min_size"] == start
    np.testing.assert_array_equal(
        cells_a.data, watershed_again(_probabilities(a.data), widget.watershed_params())
    )
    assert int(cells_a.data.max()) == 1 and cells_a.metadata["watershed"]["min_size"] == 300
    np.testing.assert_array_equal(widget.probabilities, _probabilities(a.data))

    widget.send_button.click()  # A's cells and image, not the last segmented
    annotate = next(w for w in viewer.window.dock_widgets.values() if type(w).__name__ == "AnnotateWidget")
    assert annotate.image_combo.currentText() == "A"
    assert annotate.cells_combo.currentText() == "A segmented cells"

    viewer.layers.selection.active = b  # B's own settings come back on the sliders
    assert widget.min_size_slider.value() == start
    viewer.layers.selection.active = a
    assert widget.min_size_slider.value() == 300

    # An image not segmented yet: the sliders wait for its Segment, the others' cells stay.
    c = viewer.add_image(_discs((30, 30, 10)), name="C")
    viewer.layers.selection.active = c
    after_a = cells_a.data.copy()
    widget.min_size_slider.setValue(20)
    qtbot.waitUntil(lambda: not widget.watershed_busy, timeout=20000)
    np.testing.assert_array_equal(cells_a.data, after_a)
    np.testing.assert_array_equal(cells_b.data, before_b)

    viewer.layers.remove(cells_a)  # its probabilities are let go
    assert widget.segmented.find(a) is None and widget.segmented.find(b) is not None


def test_a_slider_moved_while_segmenting_is_applied_when_the_run_ends(
    make_napari_viewer, gate, wait_for_job, qtbot
):
    viewer, widget, a, _ = _panel(make_napari_viewer)
    viewer.layers.selection.active = a
    start = widget.min_size_slider.value()
    for during, cells in ((300, 1), (start, 2)):  # a first run, then again over its cells
        gate.clear()
        widget.segment_button.click()
        assert widget.busy
        widget.min_size_slider.setValue(during)  # moved while the network runs
        qtbot.wait(3 * segment_module.DEBOUNCE_MS)  # the debounce ends before the run does
        gate.set()
        qtbot.waitUntil(lambda: not widget.busy and not widget.watershed_busy, timeout=20000)
        layer = viewer.layers["A segmented cells"]
        assert widget.min_size_slider.value() == during
        assert layer.metadata["watershed"]["min_size"] == during
        np.testing.assert_array_equal(
            layer.data, watershed_again(_probabilities(a.data), widget.watershed_params())
        )
        assert int(layer.data.max()) == cells


def test_a_slider_moved_just_before_the_run_ends_is_applied(make_napari_viewer, gate, qtbot):
    viewer, widget, a, _ = _panel(make_napari_viewer)
    viewer.layers.selection.active = a
    gate.clear()
    widget.segment_button.click()
    gate.set()
    widget.min_size_slider.setValue(300)  # still in the debounce when the result comes
    qtbot.waitUntil(lambda: not widget.busy and not widget.watershed_busy, timeout=20000)
    layer = viewer.layers["A segmented cells"]
    assert layer.metadata["watershed"]["min_size"] == 300 and int(layer.data.max()) == 1


def test_a_slider_watershed_is_waited_for_by_its_window_on_close(
    make_napari_viewer, gate, wait_for_job, qtbot, monkeypatch
):
    from napari_cellseg._qt import _closing, _segment_sliders

    viewer, widget, a, _b = _panel(make_napari_viewer)
    widget.segment(a)
    assert wait_for_job(widget).error is None
    release = threading.Event()

    def slow_watershed(probabilities, params):
        release.wait(30)
        return watershed_again(probabilities, params)

    monkeypatch.setattr(_segment_sliders, "watershed_again", slow_watershed)
    viewer.layers.selection.active = a
    widget.min_size_slider.setValue(300)
    qtbot.waitUntil(
        lambda: widget._watershed_task is not None and not widget._watershed_task.finished, timeout=20000
    )
    # a plain function cannot be cancelled: the window closing must wait for it, as for the warm-up
    assert _closing._SHORT_JOBS.get(widget._watershed_task.worker) is widget
    release.set()
    qtbot.waitUntil(lambda: not widget.watershed_busy, timeout=20000)
