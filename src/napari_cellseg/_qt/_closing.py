"""What a napari window does with the panels' jobs as it closes: cancels its own, waits for its short ones.

Each panel installs one shared :class:`_WaitOnClose` on its window (:func:`wait_for_jobs_on_close`).
Jobs belong to the panel that started them (their owner): a window acts on the jobs of
the panels it holds, never on another viewer's. A job without an owner counts as every window's.
"""

from __future__ import annotations

import time

from qtpy.QtCore import QEvent, QObject, QThread

# Short background jobs (model warm-up, device probe) -> their panel: its window waits for them on close.
_SHORT_JOBS: dict = {}
# Running jobs of panels (run_task's Task, with its owner): cancelled when their own window closes.
OWNED_TASKS: set = set()
CLOSE_WAIT_S = 30.0


def finish_before_close(worker, owner=None) -> None:
    """Have the window of ``owner`` wait for ``worker`` when it closes (a short job, not a training run)."""
    _SHORT_JOBS[worker] = owner
    worker.finished.connect(lambda: _SHORT_JOBS.pop(worker, None))
    if owner is not None:
        watch_window_of(owner)


def _holds(window, widget) -> bool:
    """Whether ``widget`` lies in ``window``; a floating dock stays a child of napari's window."""
    while widget is not None and widget is not window:
        widget = widget.parentWidget()
    return widget is not None


def _mine(window, owner) -> bool:
    """Whether a job of ``owner`` is one of ``window``'s (a job without owner: every window's)."""
    try:
        return owner is None or _holds(window, owner)
    except RuntimeError:  # the panel is deleted already: its window is gone
        return False


class _WaitOnClose(QObject):
    """Before napari's window closes, cancel its panels' jobs and let its short background jobs end.

    A worker still running when the window's widgets are deleted emits on a deleted superqt
    signals object, and the process aborts on exit. Training reports are not waited for: the
    Fine-tune panel stops its run as the window closes. Another viewer's jobs are left alone:
    waiting for them froze every window (a warm-up takes seconds).
    """

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Close:
            for task in [task for task in list(OWNED_TASKS) if _mine(watched, task.owner)]:
                task.cancel()
            waited = [worker for worker, owner in list(_SHORT_JOBS.items()) if _mine(watched, owner)]
            deadline = time.monotonic() + CLOSE_WAIT_S
            while any(w.is_running for w in waited) and time.monotonic() < deadline:
                QThread.msleep(20)
        return False


_CLOSE_FILTERS: dict[int, _WaitOnClose] = {}


def watch_window_of(panel) -> None:
    """:func:`wait_for_jobs_on_close` on the window holding ``panel``, once it is docked (its first
    show may come after a job started, or never before its window closes)."""
    window = panel.window()
    if window is not panel:
        wait_for_jobs_on_close(window)


def wait_for_jobs_on_close(window) -> None:
    """Install :class:`_WaitOnClose` on ``window`` once (every panel asks; one filter serves)."""
    key = id(window)  # napari hands plugins a proxy: no parenting, no attributes
    if key not in _CLOSE_FILTERS:
        _CLOSE_FILTERS[key] = _WaitOnClose()
        window.installEventFilter(_CLOSE_FILTERS[key])
        # a later window may get the same id once this one is gone: it needs its own filter
        window.destroyed.connect(lambda *_: _CLOSE_FILTERS.pop(key, None))
