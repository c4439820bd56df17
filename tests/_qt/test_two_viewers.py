"""Two napari viewers, each with the panels docked: closing one leaves the other's jobs alone.

napari files a thread worker under the viewer active when it starts; the panels' jobs went
under the newest viewer, so closing it cancelled a job (a Segment, a training run's reports)
of another viewer, and closing the viewer that ran the job cancelled nothing. A closing
window also waited for every viewer's short jobs (a model warm-up): every window froze.
The network is replaced by a fake whose run reports until the test lets it end.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_cellseg._qt import segment as segment_module
from napari_cellseg.app import current_model
from napari_cellseg.app.segment_session import watershed_again
from napari_cellseg.classes import BACKGROUND, BOUNDARY, INTERIOR
from napari_cellseg.inference.segment import SegmentationResult
from napari_cellseg.inference.tiled import PredictProgress


@pytest.fixture
def gate(monkeypatch, tiny_model_dir):
    """The current model is the tiny one, but a fake segments: a run reports until ``gate.set()``."""
    current_model.set_current_model(tiny_model_dir)
    opened = threading.Event()

    def fake_segment(image, model_dir, params, **_options):
        while not opened.wait(0.02):
            yield PredictProgress("tiles", 0, 1)  # a cancel stops the run here
        probabilities = np.zeros((3, *np.shape(image)), np.float32)
        probabilities[BACKGROUND] = 1.0
        probabilities[:, 8:24, 8:24] = 0.0
        probabilities[INTERIOR, 8:24, 8:24] = 0.9
        probabilities[BOUNDARY, 8:24, 8:24] = 0.1
        labels = watershed_again(probabilities, params)
        return SegmentationResult(labels, probabilities, 1.0, None, watershed=params.to_dict())

    monkeypatch.setattr(segment_module, "iter_segment_one_click", fake_segment)
    return opened


def _viewer_with_segment(make_napari_viewer):
    viewer = make_napari_viewer()  # not shown: two shown viewers draw with GL errors under Xvfb (napari's)
    viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    return viewer, widget


def test_closing_a_viewer_cancels_its_own_jobs_only(make_napari_viewer, gate, wait_for_job, qtbot):
    first, panel = _viewer_with_segment(make_napari_viewer)
    second, _ = _viewer_with_segment(make_napari_viewer)  # the active viewer now
    panel.segment_button.click()
    task = panel.task
    qtbot.wait(100)
    second.close()
    qtbot.wait(100)
    assert not task.finished and not task.cancelled  # another viewer closed: the job runs on
    gate.set()
    assert wait_for_job(panel) is task and not task.cancelled
    assert "img segmented cells" in first.layers

    gate.clear()
    panel.segment_button.click()
    task = panel.task
    qtbot.wait(100)
    first.close()  # its own viewer: the job ends at its next report
    qtbot.waitUntil(lambda: task.finished, timeout=10000)
    assert task.cancelled


def test_closing_a_viewer_waits_for_its_own_short_jobs_only(make_napari_viewer, qtbot):
    from superqt.utils import create_worker

    from napari_cellseg._qt._closing import finish_before_close, watch_window_of

    first = make_napari_viewer()
    _, other = first.window.add_plugin_dock_widget("napari-cellseg", "Review")
    watch_window_of(other)  # as its first show does
    second = make_napari_viewer()
    _, panel = second.window.add_plugin_dock_widget("napari-cellseg", "Review")
    warm_up = create_worker(time.sleep, 1.0, _start_thread=False)  # as a model warm-up
    finish_before_close(warm_up, panel)
    warm_up.start()
    qtbot.waitUntil(lambda: warm_up.is_running, timeout=5000)
    first.close()
    assert warm_up.is_running  # not waited for: the other viewer froze meanwhile
    second.close()
    assert not warm_up.is_running  # its own window waits for it


def test_a_model_warm_up_is_no_task_of_the_active_viewer(make_napari_viewer, tiny_model_dir):
    # napari's create_worker filed the Segment panel's warm-up under the viewer active then: closing
    # that viewer (another one's) listed 'Executing <function warm_up ...>' in its close dialog
    current_model.set_current_model(tiny_model_dir)
    first = make_napari_viewer()
    active = make_napari_viewer()
    _, panel = first.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    assert panel._warm_worker is not None
    assert active.window._task_status_manager.get_status() == []  # napari's private registry
