"""Fine-tuning from the GUI: the run goes in a separate process; reports come back as dicts.

Why a process: on a small machine the training loop (numpy augmentation,
dev-set watershed) holds Python's GIL in bursts of hundreds of milliseconds,
which freezes napari when it runs in a thread. In another process with a
lower priority, napari keeps the CPU it needs and the GUI thread only
receives small report dicts. Processes come from a fork server that has
imported torch once (:func:`warm_up`), so a run starts at once.

- :class:`TrainingProcess`: starts :func:`napari_cellseg.training.engine.train`
  in a new process; :meth:`TrainingProcess.reports` is a generator of
  the engine's report dataclasses (rebuilt from dicts) returning the
  :class:`~napari_cellseg.training.reports.TrainResult`, as the engine does.
  :meth:`~TrainingProcess.stop` asks for a clean stop (the engine saves its
  position in ``out_dir/last`` so that Resume continues there);
  :meth:`~TrainingProcess.kill` ends the process at once.
- :func:`run_finetune`: the synchronous wrapper.
- :func:`start_problems`: what stops a run from the GUI before any process starts;
  :func:`add_run` and :func:`run_going`: the GUI's runs, one at a time.
- :func:`call_in_training_process`: a small torch question (device, M2 depth) asked
  of a process that has torch loaded.
- Time estimates and texts are in :mod:`napari_cellseg.app.finetune_estimate`, M2 depth
  in :mod:`napari_cellseg.app.m2_info`.

No Qt or napari here; torch is imported only inside the training process
and the process server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue as queue_module
import threading
import time
import traceback
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from ..generators import run_to_end
from ..training.config import TrainConfig
from ..training.reports import EpochReport, StartReport, StepReport, TrainResult

logger = logging.getLogger(__name__)

Report = StartReport | StepReport | EpochReport | TrainResult
REPORT_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (StartReport, StepReport, EpochReport, TrainResult)
}
# The training process runs at a lower priority: napari keeps the CPU it needs.
TRAINING_NICENESS = 5
# After a stop request, how long the process may take to save before it is killed.
STOP_GRACE_S = 120.0
# Imported once by the fork server, so that every run starts at once instead of
# spending ~10 s importing torch and timm (see warm_up).
PRELOAD = ("torch", "timm", "cv2", "skimage.segmentation", "napari_cellseg.models.surgery",
           "napari_cellseg.training.engine")  # fmt: skip


class FinetuneError(ValueError):
    """Training could not start or stopped on a problem the message explains."""


class FinetuneCrash(RuntimeError):
    """The training process failed unexpectedly (the message names the error)."""


# --- the training process ------------------------------------------------------


def training_context():
    """``forkserver`` with :data:`PRELOAD` where available (Linux, macOS), else ``spawn``.

    Training processes never fork napari itself (Qt and OpenGL do not survive
    a fork): they fork from a small server process started fresh, which has
    imported only torch, timm and the training engine.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
        return context
    return multiprocessing.get_context("spawn")


def warm_up() -> bool:
    """Start the fork server now: it imports torch in its own process while the user fills the form.

    Returns False where there is no fork server (Windows: each run imports torch itself).
    """
    if training_context().get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return True


def _train_in_child(config: dict[str, Any], resume: bool, messages, stop, niceness: int) -> None:
    """Entry point of the spawned process: run the engine, send every report as a dict."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in napari's terminal is the parent's
    if niceness and hasattr(os, "nice"):
        try:
            os.nice(niceness)
        except OSError:
            pass
    try:
        from ..training.engine import train

        run = TrainConfig.from_dict(config)
        for report in train(run, resume=resume, cancel=stop.is_set):
            messages.put(("report", type(report).__name__, report.to_dict()))
    except BaseException as err:  # every failure goes back to the GUI as a message
        user = isinstance(err, ValueError | OSError | LookupError)
        messages.put(("error", type(err).__name__, str(err), user, traceback.format_exc()))
    else:
        messages.put(("done",))
    finally:
        messages.close()
        messages.join_thread()  # flush before the process exits


def call_in_training_process(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a process of :func:`training_context` (blocks until it returns).

    For small torch questions (which device, how deep an M2 is) asked from
    napari: the answer comes from a process that has torch loaded already,
    and napari's own process never imports torch for them.
    """
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=training_context()) as pool:
        return pool.submit(function, *args).result()


def decode_report(name: str, data: dict[str, Any]) -> Report:
    """A report dataclass from ``(type name, to_dict())``."""
    try:
        cls = REPORT_TYPES[name]
    except KeyError:
        raise FinetuneCrash(f"the training process sent an unknown report {name!r}") from None
    return cls(**data)


class TrainingProcess:
    """One fine-tuning run of :func:`~napari_cellseg.training.engine.train` in a spawned process.

    Parameters
    ----------
    config : TrainConfig
        The run (validated before the process starts).
    resume : bool
        Continue the run stored in ``config.out_dir/last``.
    niceness : int
        Added to the process's nice value (lower priority); 0 keeps it.

    Examples
    --------
    >>> process = TrainingProcess(config)          # doctest: +SKIP
    >>> for report in process.reports():            # doctest: +SKIP
    ...     print(report)
    """

    def __init__(self, config: TrainConfig, *, resume: bool = False, niceness: int = TRAINING_NICENESS):
        config.validate()
        self.config = config
        self.resume = resume
        self.niceness = niceness
        self._context = training_context()
        self._stop = self._context.Event()
        self._messages = self._context.Queue()
        self.process = None
        self.result: TrainResult | None = None
        self.killed = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.is_alive()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError("this training process was already started")
        self.process = self._context.Process(
            target=_train_in_child,
            args=(self.config.to_dict(), self.resume, self._messages, self._stop, self.niceness),
            name="napari-cellseg fine-tune",
            daemon=True,  # never outlives napari
        )
        self.process.start()

    def stop(self) -> None:
        """Ask for a clean stop after the current step (the position is saved for Resume)."""
        self._stop.set()

    def kill(self) -> None:
        """End the process now; ``out_dir/last`` keeps the last finished epoch."""
        self._stop.set()
        self.killed = True
        if self.running:
            self.process.terminate()
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)

    def reports(self, poll_s: float = 0.2) -> Generator[Report, None, TrainResult | None]:
        """Start the run (if needed) and yield its reports as the engine does.

        Returns
        -------
        TrainResult
            Also yielded as the last report (``cancelled`` after :meth:`stop`).

        Raises
        ------
        FinetuneError
            The run could not start (bad dataset, split, settings...) or failed
            on a problem its message explains.
        FinetuneCrash
            The process failed unexpectedly or died.
        """
        if self.process is None:
            self.start()
        finished = False
        try:
            while True:
                message = self._next_message(poll_s)
                if message is None:
                    continue
                if message[0] == "report":
                    report = decode_report(message[1], message[2])
                    if isinstance(report, TrainResult):
                        self.result = report
                    yield report
                elif message[0] == "error":
                    _, name, text, user, trace = message
                    (logger.debug if user else logger.error)("fine-tuning process failed:\n%s", trace)
                    raise (FinetuneError(text) if user else FinetuneCrash(f"{name}: {text}"))
                else:  # "done"
                    finished = True
                    return self.result
        finally:
            if finished:
                self.process.join(10)
            else:  # closed early or failed: stop cleanly in the background
                self._stop.set()
                _drain_in_background(self.process, self._messages)

    def _next_message(self, timeout: float):
        try:
            return self._messages.get(timeout=timeout)
        except queue_module.Empty:
            pass
        if self.process.is_alive():
            return None
        try:  # it ended: its last words may still be in the pipe
            return self._messages.get(timeout=1.0)
        except queue_module.Empty:
            if self.killed:  # stopped at once on purpose: no result
                return ("done",)
            raise FinetuneCrash(
                f"the training process ended unexpectedly (exit code {self.process.exitcode}); "
                "out of memory? The last finished epoch is in the output folder's last/ (Resume)"
            ) from None


def _drain_in_background(process, messages, grace_s: float = STOP_GRACE_S) -> None:
    """Read a stopping process's messages until it exits (so it can flush), kill it after ``grace_s``."""

    def drain() -> None:
        deadline = time.monotonic() + grace_s
        while process.is_alive() and time.monotonic() < deadline:
            try:
                messages.get(timeout=0.2)
            except (queue_module.Empty, OSError, EOFError, ValueError):
                pass
        if process.is_alive():
            logger.warning("the training process did not stop within %.0f s: killing it", grace_s)
            process.kill()
        process.join(5)

    threading.Thread(target=drain, name="napari-cellseg fine-tune drain", daemon=True).start()


def run_finetune(
    config: TrainConfig,
    *,
    resume: bool = False,
    callback: Callable[[Report], None] | None = None,
    niceness: int = TRAINING_NICENESS,
) -> TrainResult | None:
    """Synchronous :meth:`TrainingProcess.reports`; ``callback`` gets each report."""
    generator = TrainingProcess(config, resume=resume, niceness=niceness).reports()
    return run_to_end(generator, callback)


# --- runs started from the GUI ---------------------------------------------------


def start_problems(config: TrainConfig, from_model: bool) -> list[str]:
    """Every reason not to start ``config`` (data, output, the model to start from, settings)."""
    from .current_model import is_model_dir

    problems = []
    if not config.data_dir:
        problems.append("choose the dataset folder")
    elif not Path(config.data_dir, "manifest.csv").is_file():
        problems.append(f"{config.data_dir} is not a dataset folder (no manifest.csv)")
    elif config.split_path and not Path(config.split_path).is_file():
        problems.append(f"no split file at {config.split_path}: split the dataset first (Dataset panel)")
    if not config.out_dir:
        problems.append("choose the output model folder")
    if from_model and not is_model_dir(config.init_model):
        problems.append(
            f"start from a model: {config.init_model or 'no model chosen'} is not a model folder "
            "(model.safetensors + config.json)"
        )
    return problems + [p for p in config.problems() if not p.startswith(("data_dir", "out_dir"))]


# The GUI's runs until their reports ended and their process exited: one at a time (a run whose
# panel was closed still saves its position meanwhile; two would race for the current model).
_RUNS: dict[TrainingProcess, Any] = {}


# Called with (process, task) when a run starts: the panels of other viewers wait for it too.
_RUN_LISTENERS: list[Callable[[TrainingProcess, Any], None]] = []


def add_run(process: TrainingProcess, task: Any) -> None:
    """Count ``process`` as going until ``task.finished`` (its reports ended) and its process exited."""
    _RUNS[process] = task
    for listener in list(_RUN_LISTENERS):
        listener(process, task)


def add_run_listener(callback: Callable[[TrainingProcess, Any], None]) -> None:
    if callback not in _RUN_LISTENERS:
        _RUN_LISTENERS.append(callback)


def remove_run_listener(callback: Callable[[TrainingProcess, Any], None]) -> None:
    if callback in _RUN_LISTENERS:
        _RUN_LISTENERS.remove(callback)


def run_going(exclude: TrainingProcess | None = None, reporting: bool = False) -> TrainingProcess | None:
    """A run other than ``exclude`` still going (``reporting``: whose reports still come)."""
    for process, task in list(_RUNS.items()):
        if task.finished and not process.running:
            del _RUNS[process]
    return next((p for p, t in _RUNS.items() if p is not exclude and not (reporting and t.finished)), None)


def run_task_of(process: TrainingProcess) -> Any:
    """The ``task`` given to :func:`add_run` with ``process``."""
    return _RUNS[process]


def going_text(process: TrainingProcess) -> str:
    if process.stop_requested:
        return f"A stopped run is still saving its position into {process.config.out_dir}"
    return f"Another Fine-tune run is training into {process.config.out_dir}"
