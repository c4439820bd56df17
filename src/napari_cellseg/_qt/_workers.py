"""Run core work off the GUI thread: one helper shared by every dock widget.

:func:`run_task` starts a core generator (or plain function) in a thread
worker, shows a cancelable ``napari.utils.progress`` bar in the
activity dock fed by the generator's reports, turns exceptions into one clear
``show_error`` notification, and supports cancel (between two reports)::

    task = run_task(
        iter_segment_image, model, config, image,
        title="Segment",
        on_result=self._show_labels,
        cancel_button=self.cancel_button,
    )

Reports are read by ``describe`` (default :func:`describe_report`: ``done`` and
``total`` attributes, or ``global_step`` and ``total_steps``, plus ``stage``).
Callbacks run in the GUI thread. ``task.finished`` is True once the worker
ended (returned, failed or cancelled), which tests wait on.

:func:`avoid_llvm_clash` runs on import and before every job: see its docstring.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_info
from napari.utils.progress import cancelable_progress
from qtpy.QtCore import QTimer

from ._closing import OWNED_TASKS

logger = logging.getLogger(__name__)

# Exceptions whose message is written for users: shown as is, without a type name.
USER_ERRORS = (ValueError, KeyError, OSError, LookupError)


def avoid_llvm_clash(maps: str | Path = "/proc/self/maps") -> bool:
    """Hide triton from torch when Mesa's software OpenGL has loaded its own LLVM.

    napari draws with OpenGL; without a GPU driver (Xvfb, remote desktops,
    virtual machines) Mesa's llvmpipe maps ``libLLVM`` into the process.
    Loading triton's LLVM after it segfaults the whole viewer, and
    ``import torch._dynamo`` loads triton (timm and torchvision import it).
    When ``libLLVM`` is mapped and triton not loaded yet, this makes
    ``import triton`` fail, so torch runs without it: inference and training
    are unaffected, only ``torch.compile`` on a GPU would lack its backend.

    Returns
    -------
    bool
        True when triton was hidden by this call.
    """
    if "triton" in sys.modules:  # loaded before OpenGL (safe), or already hidden
        return False
    try:
        mapped = Path(maps).read_text(errors="replace")
    except OSError:  # not Linux
        return False
    if "libLLVM" not in mapped:
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]
    logger.info("software OpenGL (Mesa llvmpipe) detected: torch will run without triton")
    return True


avoid_llvm_clash()


def describe_report(report: Any) -> tuple[int | None, int | None, str | None]:
    """``(done, total, stage)`` of a report dataclass; None where it has no such field."""
    for done_name, total_name in (("done", "total"), ("global_step", "total_steps")):
        done, total = getattr(report, done_name, None), getattr(report, total_name, None)
        if isinstance(done, int) and isinstance(total, int):
            stage = getattr(report, "stage", None)
            return done, total, stage if isinstance(stage, str) else None
    return None, None, None


def error_message(error: BaseException) -> str:
    """One readable line (or a few) for a notification; no traceback.

    Errors raised by the core for users (bad file, missing model, refused
    overwrite...) show their own message; anything else also names its type.
    """
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    else:
        text = str(error)
    if isinstance(error, USER_ERRORS) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Raised(Exception):
    """Carries an exception out of a generator worker.

    superqt's ``GeneratorWorker`` takes a ``RuntimeError`` raised by the
    generator for "worker deleted": it only warns, never emits ``errored`` nor
    ``finished``, and the panel would wait forever. torch raises RuntimeError
    (and subclasses such as ``OutOfMemoryError``) for many real failures.
    """

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _shielded(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with RuntimeErrors wrapped in :class:`_Raised` (generators only)."""
    if not inspect.isgeneratorfunction(function):
        return function

    @functools.wraps(function)
    def generator(*args: Any, **kwargs: Any):
        try:
            return (yield from function(*args, **kwargs))
        except RuntimeError as err:
            raise _Raised(err) from err

    return generator


class _Progress(cancelable_progress):
    """A progress bar whose Cancel button (activity dock) stops the worker at once."""

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


class Task:
    """A running core job: its worker, its progress bar, and how it ended.

    Attributes
    ----------
    worker : GeneratorWorker or FunctionWorker
        The napari worker (``worker.quit()`` requests cancel).
    finished : bool
        The worker ended (returned, failed or was cancelled).
    result : object
        The generator's return value (None until it returned).
    error : BaseException or None
        The exception that ended it, if any.
    cancelled : bool
        Cancel was requested and the worker stopped before returning.
    """

    def __init__(self, worker, title: str, owner=None):
        self.worker = worker
        self.title = title
        self.owner = owner  # the panel whose window's closing cancels the job
        # A plain function cannot be stopped half way (a save would be written anyway).
        self.interruptible = hasattr(worker, "yielded")
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.progress: _Progress | None = None
        self.on_cancel: Callable[[], None] | None = None

    def cancel(self) -> None:
        """Ask the worker to stop; a generator stops at its next report, a plain function runs on."""
        if not self.finished and self.interruptible and not self.cancelled:
            self.cancelled = True
            self.worker.quit()
            if self.on_cancel is not None:  # the job runs on until its next report: say so meanwhile
                with _panel_may_be_gone(self.title):
                    self.on_cancel()


def run_task(
    function: Callable[..., Any],
    *args: Any,
    title: str,
    on_report: Callable[[Any], None] | None = None,
    on_result: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finished: Callable[[Task], None] | None = None,
    on_cancel: Callable[[], None] | None = None,
    describe: Callable[[Any], tuple[int | None, int | None, str | None]] = describe_report,
    cancel_button=None,
    show_progress: bool = True,
    owner=None,
    **kwargs: Any,
) -> Task:
    """Run ``function(*args, **kwargs)`` in a thread worker.

    Parameters
    ----------
    function : callable
        A generator function yielding small report dataclasses and returning
        its result, or a plain function (then the bar is indeterminate).
    *args, **kwargs
        Passed to ``function``.
    title : str
        Names the job in the progress bar and in notifications ("Split").
    on_report, on_result : callable, optional
        Called in the GUI thread with each report and with the return value.
    on_error : callable, optional
        Called with the exception after the error notification is shown.
    on_finished : callable, optional
        Called with the :class:`Task` once it ended, however it ended.
    on_cancel : callable, optional
        Called once when a cancel is asked (Cancel, the activity dock's, the window closing),
        before the job stops at its next report.
    describe : callable
        Maps a report to ``(done, total, stage)`` for the progress bar.
    cancel_button : QAbstractButton, optional
        Enabled while the job runs; clicking it cancels the job.
    show_progress : bool
        Show a progress bar in the activity dock.
    owner : QWidget, optional
        The panel that started the job: closing its napari window (or deleting it) cancels the job.

    Returns
    -------
    Task
        Already started.
    """
    # not napari's: it files the job under the viewer active now, whose closing cancels it (owner's here)
    from superqt.utils import create_worker

    avoid_llvm_clash()
    worker = create_worker(_shielded(function), *args, _start_thread=False, _ignore_errors=True, **kwargs)
    task = Task(worker, title, owner)
    task.on_cancel = on_cancel
    if owner is not None:
        OWNED_TASKS.add(task)
        owner.destroyed.connect(task.cancel)  # a window closed unshown: no Close filter on it
    if show_progress:
        callback = task.cancel if task.interruptible else None
        task.progress = _Progress(total=0, desc=title, cancel_callback=callback)

    def _yielded(report: Any) -> None:
        # the report first: napari's bar runs processEvents, where the job's end may be handled
        if on_report is not None:
            on_report(report)
        done, total, stage = describe(report)
        bar = task.progress
        if bar is not None and done is not None and total:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)
            if stage:
                bar.set_description(f"{title}: {stage}")

    def _returned(value: Any) -> None:
        task.result = value
        if on_result is not None:
            with _panel_may_be_gone(title):
                on_result(value)

    def _errored(error: BaseException) -> None:
        error = error.error if isinstance(error, _Raised) else error
        task.error = error
        exc_info = (type(error), error, error.__traceback__)
        if isinstance(error, USER_ERRORS) and not isinstance(error, IndexError):
            # the message says it all: a traceback would alarm the user; kept at DEBUG for bugs
            # that raise these types too (numpy's broadcast errors, a missing key)
            logger.warning("%s failed: %s", title, error_message(error))
            logger.debug("%s failed", title, exc_info=exc_info)
        else:
            logger.error("%s failed", title, exc_info=exc_info)
        show_error(f"{title} failed: {error_message(error)}")
        if on_error is not None:
            on_error(error)

    def _aborted() -> None:
        task.cancelled = True
        show_info(f"{title} cancelled")

    def _finished() -> None:
        task.finished = True
        OWNED_TASKS.discard(task)
        if owner is not None:
            with contextlib.suppress(TypeError, RuntimeError):  # the panel is gone already
                owner.destroyed.disconnect(task.cancel)
        if task.progress is not None:
            task.progress.close()
        with _panel_may_be_gone(title):
            if cancel_button is not None:
                cancel_button.setEnabled(False)
            if on_finished is not None:
                on_finished(task)
        QTimer.singleShot(0, lambda: _release(worker))  # after the other receivers of `finished`

    if hasattr(worker, "yielded"):
        worker.yielded.connect(_yielded)
        worker.aborted.connect(_aborted)
    worker.returned.connect(_returned)
    worker.errored.connect(_errored)
    worker.finished.connect(_finished)
    if cancel_button is not None:
        cancel_button.setEnabled(task.interruptible)
        _connect_once(cancel_button, task)
    worker.start()
    return task


_WORKER_SIGNALS = ("started", "yielded", "aborted", "returned", "errored", "warned", "finished")


def _release(worker) -> None:
    """Drop what a finished worker holds. The worker objects outlive their jobs (napari keeps
    them), and through its arguments and our callbacks every segmented image's arrays did too."""
    for name, empty in (("_args", ()), ("_kwargs", {}), ("_func", None), ("_gen", None)):
        if hasattr(worker, name):
            setattr(worker, name, empty)
    for name in _WORKER_SIGNALS:
        signal = getattr(worker, name, None)
        if signal is not None:
            with contextlib.suppress(TypeError, RuntimeError):  # nothing connected, or Qt gone
                signal.disconnect()


@contextlib.contextmanager
def _panel_may_be_gone(title: str):
    """Results that arrive after their panel was closed (napari quit mid-job) are dropped quietly."""
    try:
        yield
    except RuntimeError as err:
        if "has been deleted" not in str(err):
            raise
        logger.debug("%s ended after its panel was closed", title)


def while_shown(method):
    """Drop a report that arrives after the panel was deleted (napari closing mid-run)."""

    @functools.wraps(method)
    def guarded(self, *args):
        with _panel_may_be_gone(type(self).__name__):
            return method(self, *args)

    return guarded


def _connect_once(button, task: Task) -> None:
    """Point ``button`` at this task's cancel, dropping the previous task's connection."""
    previous = getattr(button, "_cellseg_cancel", None)
    if previous is not None:
        try:
            button.clicked.disconnect(previous)
        except (TypeError, RuntimeError):
            pass

    def _cancel(*_: Any) -> None:
        task.cancel()

    button._cellseg_cancel = _cancel
    button.clicked.connect(_cancel)
