"""run_task: core generators in a napari thread worker, with progress, errors and cancel."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtWidgets import QPushButton

from napari_cellseg._qt._workers import avoid_llvm_clash, describe_report, error_message, run_task


@dataclass(frozen=True)
class Step:
    stage: str
    done: int
    total: int


def counting(n: int, delay: float = 0.0, fail_at: int | None = None, error=ValueError):
    for i in range(n):
        if i == fail_at:
            raise error(f"image-{i}.png: cannot be read")
        time.sleep(delay)
        yield Step("count", i + 1, n)
    return f"counted {n}"


def _messages_since(before: int) -> list[str]:
    return [str(n.message) for n in notification_manager.records[before:]]


def test_reports_drive_progress_and_result(qtbot):
    seen, bars = [], []
    threads = set()

    def on_report(report):
        seen.append(report.done)
        bars.append((task.progress.n, task.progress.total))
        threads.add(threading.current_thread() is threading.main_thread())

    task = run_task(counting, 3, title="Count", on_report=on_report)
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert task.result == "counted 3" and task.error is None and not task.cancelled
    assert seen == [1, 2, 3]
    assert bars == [(0, 0), (1, 3), (2, 3)]  # each report reaches on_report before it moves the bar
    assert threads == {True}  # callbacks run in the GUI thread


def test_reports_come_in_order_before_the_result_and_the_end(make_napari_viewer, qtbot):
    # napari's progress bar widget runs processEvents: a report handled after its bar moved
    # came after the next ones, and after on_result and on_finished (a status line overwritten)
    make_napari_viewer()  # its activity dock draws the bars

    def events_of_one_run() -> list:
        events = []
        task = run_task(
            counting, 3, title="Count", on_report=lambda r: events.append(r.done),
            on_result=lambda _: events.append("result"), on_finished=lambda _: events.append("finished"),
        )  # fmt: skip
        qtbot.waitUntil(lambda: task.finished, timeout=5000)
        qtbot.wait(20)
        return events

    for _ in range(3):
        assert events_of_one_run() == [1, 2, 3, "result", "finished"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError, "Count failed: image-1.png: cannot be read"),
        (RuntimeError, "Count failed: RuntimeError: image-1.png"),
    ],
)
def test_errors_become_one_clear_notification(qtbot, error, expected):
    before = len(notification_manager.records)
    failures = []
    task = run_task(counting, 3, fail_at=1, error=error, title="Count", on_error=failures.append)
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert isinstance(task.error, error) and failures == [task.error]
    assert task.result is None
    assert any(m.startswith(expected) for m in _messages_since(before))


def test_cancel_stops_between_reports(qtbot):
    button = QPushButton("Cancel")
    qtbot.addWidget(button)
    before = len(notification_manager.records)
    seen = []
    task = run_task(counting, 200, delay=0.02, title="Long job", on_report=seen.append, cancel_button=button)
    assert button.isEnabled()
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=5000)
    button.click()
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert task.cancelled and task.result is None and task.error is None
    assert len(seen) < 200 and not button.isEnabled()
    assert "Long job cancelled" in _messages_since(before)


def test_progress_bar_cancel_stops_the_worker(qtbot):
    task = run_task(counting, 200, delay=0.02, title="Long job")
    qtbot.waitUntil(lambda: task.progress.n >= 1, timeout=5000)
    task.progress.cancel()  # what the activity dock's Cancel button calls
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert task.cancelled and task.result is None


def test_a_plain_function_cannot_be_cancelled_so_cancel_is_not_offered(qtbot):
    # A save in a plain function would be written anyway; "cancelled" would be a lie.
    button = QPushButton("Cancel")
    qtbot.addWidget(button)
    started, release = threading.Event(), threading.Event()

    def save():
        started.set()
        release.wait(5)
        return "saved"

    task = run_task(save, title="Save", cancel_button=button)
    assert started.wait(5) and not button.isEnabled()
    task.cancel()
    release.set()
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert not task.cancelled and task.result == "saved"


def test_a_job_that_ends_after_its_panel_was_closed_ends_quietly(qtbot):
    # napari closed mid-job: the panel's buttons are gone when the worker reports its end
    from qtpy import sip

    button = QPushButton("Cancel")
    release = threading.Event()
    ended = []

    def wait():
        release.wait(5)
        return "done"

    def on_finished(task):
        button.setEnabled(True)  # what a panel does; raises on a deleted widget
        ended.append(task)

    task = run_task(wait, title="Save", cancel_button=button, on_result=lambda _: button.setText("x"),
                    on_finished=on_finished)  # fmt: skip
    sip.delete(button)
    release.set()
    qtbot.waitUntil(lambda: task.finished, timeout=5000)
    assert task.result == "done" and task.error is None and not ended


def test_describe_report_and_error_message():
    assert describe_report(Step("predict", 2, 5)) == (2, 5, "predict")

    @dataclass
    class TrainStep:
        global_step: int
        total_steps: int

    assert describe_report(TrainStep(7, 10)) == (7, 10, None)
    assert describe_report(object()) == (None, None, None)
    assert error_message(KeyError("no image 'x' in dataset")) == "no image 'x' in dataset"
    assert error_message(ZeroDivisionError("division by zero")) == "ZeroDivisionError: division by zero"


def test_avoid_llvm_clash_hides_triton_only_with_mesa_llvm(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    plain = tmp_path / "maps-plain"
    plain.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libc.so.6\n")
    assert avoid_llvm_clash(plain) is False and "triton" not in sys.modules
    mesa = tmp_path / "maps-mesa"
    mesa.write_text("7f00-7f01 r-xp 0 08:01 2 /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1\n")
    assert avoid_llvm_clash(mesa) is True
    assert sys.modules["triton"] is None
    assert avoid_llvm_clash(mesa) is False  # once is enough


def test_closing_the_window_waits_for_short_background_jobs(qtbot):
    # A warm-up still running when napari's widgets are deleted would abort the process on exit.
    from napari.qt.threading import create_worker
    from qtpy.QtWidgets import QMainWindow

    from napari_cellseg._qt._closing import finish_before_close, wait_for_jobs_on_close

    window = QMainWindow()
    qtbot.addWidget(window)
    wait_for_jobs_on_close(window)
    worker = create_worker(time.sleep, 0.5, _start_thread=False)
    finish_before_close(worker)
    worker.start()
    qtbot.waitUntil(lambda: worker.is_running, timeout=5000)
    window.close()
    assert not worker.is_running


def test_a_window_gone_takes_its_close_filter_with_it(qtbot):
    # Keyed by id(window): a new window reusing a deleted one's id must get its own filter.
    from qtpy.QtWidgets import QApplication, QMainWindow

    from napari_cellseg._qt import _closing

    window = QMainWindow()
    key = id(window)
    _closing.wait_for_jobs_on_close(window)
    assert key in _closing._CLOSE_FILTERS
    window.deleteLater()
    qtbot.waitUntil(lambda: key not in _closing._CLOSE_FILTERS, timeout=5000)
    QApplication.processEvents()


def test_a_finished_job_lets_go_of_its_arguments_and_result(qtbot):
    # Worker objects outlive their jobs; through their arguments and our callbacks every
    # segmented image's probabilities stayed alive until napari closed.
    import gc
    import weakref

    import numpy as np

    def doubled(image):
        yield Step("double", 1, 1)
        return image * 2

    image, results = np.ones((64, 64), np.float32), []
    task = run_task(doubled, image, title="Double", on_result=results.append)
    qtbot.waitUntil(lambda job=task: job.finished, timeout=10000)
    qtbot.wait(20)  # the release runs right after the job's last signal
    worker, argument, result = task.worker, weakref.ref(image), weakref.ref(results[0])
    assert float(results[0].sum()) == 2 * 64 * 64
    del image, task, results
    gc.collect()
    assert argument() is None and result() is None
    assert worker is not None  # the worker object itself may live on: it holds nothing big


@pytest.mark.parametrize(
    ("error", "traceback"), [(ValueError, False), (OSError, False), (TypeError, True), (IndexError, True)]
)
def test_user_errors_are_logged_without_a_traceback(qtbot, caplog, error, traceback):
    # A user's mistake is told in the panel: a traceback on the terminal would read like a crash.
    with caplog.at_level("WARNING", logger="napari_cellseg._qt._workers"):
        task = run_task(counting, 3, fail_at=1, error=error, title="Count")
        qtbot.waitUntil(lambda: task.finished, timeout=5000)
    records = [r for r in caplog.records if r.name == "napari_cellseg._qt._workers"]
    assert records and "Count failed" in records[0].getMessage()
    assert (records[0].exc_info is not None) is traceback


def test_a_user_error_keeps_its_traceback_at_debug(qtbot, caplog):
    # numpy's broadcast errors are ValueErrors too: whoever turns DEBUG on still gets the traceback
    with caplog.at_level("DEBUG", logger="napari_cellseg._qt._workers"):
        task = run_task(counting, 3, fail_at=1, error=ValueError, title="Count")
        qtbot.waitUntil(lambda: task.finished, timeout=5000)
    records = [r for r in caplog.records if r.name == "napari_cellseg._qt._workers"]
    assert [r.levelname for r in records if r.exc_info is not None] == ["DEBUG"]
