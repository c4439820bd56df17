"""One run of a sweep: its ``run.json`` record, and running it in this or another process.

Every run trains into its own model directory (``OUT/runs/NAME``) and keeps
``run.json`` there: its parameters, status, dev scores, time and device.
:func:`iter_run` drives the training engine in this process (resuming from
``last/`` when a previous attempt stopped mid-way); :func:`execute_run` is its
picklable synchronous form for Dask workers, and ``python -m
napari_cellseg.training.sweep_run TASK.json`` runs a task in a subprocess (the
``--gpus`` mode). torch is imported only by the engine.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, JsonConfig
from ..generators import run_to_end
from .config import TrainConfig
from .reports import StartReport

RUN_RECORD = "run.json"
TASK_FILE = "task.json"
RUN_LOCK = ".training"  # held while a process trains the run; touched at every report
STOP_FILE = ".stop"  # a cancelled sweep's token: its runs on Dask workers stop at the next step
RUN_LOCK_STALE_S = 600.0  # a lock not touched for this long (or whose pid is gone here) is a dead one's
RUN_LOCK_WAIT_S = 300.0  # how long a Dask task waits for a cancelled task of its run to stop
GPUS_LOCK_WAIT_S = 0.0  # a --gpus worker's: the sweep launched no other, so a lock is a foreign process's
STATUSES = ("pending", "running", "done", "failed", "cancelled")
LEFT_ALONE_EXIT = 75  # a worker's exit status when another live process trains its run (EX_TEMPFAIL)


@dataclass
class RunRecord(JsonConfig):
    """``run.json``: what a run is and how it went.

    Attributes
    ----------
    name : str
        The run's directory name under ``OUT/runs``.
    params : dict
        The settings the sweep varies for this run.
    status : {"pending", "running", "done", "failed", "cancelled"}
    score_name : str
        The dev metric that ranks runs (``ap50``: AP at IoU 0.5 after the watershed).
    dev_score : float or None
        ``score_name`` of the best epoch.
    dev_metrics : dict
        Every dev metric of the best epoch (``ap50``, ``pixel_f1``, ``mean_iou``...).
    best_epoch, epochs_done : int
    trainable_params, total_params : int or None
    device : str
        Where it trained (``cpu``, ``cuda``; with ``CUDA_VISIBLE_DEVICES`` in ``gpu``).
    gpu : str
        The GPU given by ``--gpus`` (empty otherwise).
    elapsed_s : float
        Training time of the last attempt (as reported by the engine, resumed parts included).
    attempts : int
        How many times the run was started (resumes included).
    started, finished : str
        Local times, ISO format.
    error : str
        Why the run failed.
    train_config : dict
        The full ``TrainConfig``; a resumed sweep refuses to mix other settings in.
    """

    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    score_name: str = "ap50"
    dev_score: float | None = None
    dev_metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_done: int = 0
    trainable_params: int | None = None
    total_params: int | None = None
    device: str = ""
    gpu: str = ""
    elapsed_s: float = 0.0
    attempts: int = 0
    started: str = ""
    finished: str = ""
    error: str = ""
    train_config: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status == "done"

    def metric(self, name: str) -> float | None:
        value = self.dev_metrics.get(name)
        return None if value is None else float(value)


def record_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / RUN_RECORD


def read_record(run_dir: str | os.PathLike) -> RunRecord | None:
    """The ``run.json`` of a run directory, or None when there is none (or it is unreadable)."""
    path = record_path(run_dir)
    if not path.is_file():
        return None
    try:
        return RunRecord.load(path)
    except ConfigError:
        return None  # a foreign or damaged file: the run starts over


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def new_record(
    name: str, params: dict[str, Any], config: TrainConfig, previous: RunRecord | None, gpu: str = ""
) -> RunRecord:
    """The record of a run about to start (keeps the attempt count of ``previous``)."""
    return RunRecord(
        name=name, params=dict(params), status="running", attempts=(previous.attempts if previous else 0) + 1,
        started=_now(), train_config=config.to_dict(), gpu=gpu,
    )  # fmt: skip


def _best_metrics(history: list[dict[str, Any]], best_epoch: int) -> dict[str, float]:
    for entry in history:
        if entry.get("epoch") == best_epoch and entry.get("dev"):
            return {k: float(v) for k, v in entry["dev"].items()}
    return {}


def iter_run(
    name: str,
    params: dict[str, Any],
    config: TrainConfig,
    *,
    cancel: Callable[[], bool] | None = None,
    train_fn: Callable[..., Generator] | None = None,
    gpu: str = "",
    lock_wait_s: float = 0.0,
    sweep_token: str | None = None,
) -> Generator[Any, None, RunRecord]:
    """Train one run, yielding the engine's reports; return its final :class:`RunRecord`.

    The run resumes from ``config.out_dir/last`` when a previous attempt left
    one. Errors do not propagate: they end the run as ``failed`` with the
    message in the record (``run.json`` is written at start and end). While
    another process trains the run (its lock file), this one waits up to
    ``lock_wait_s`` (a cancelled task stopping at its next step), then leaves it alone.
    ``sweep_token`` names the sweep that started this task: a stop file holding another
    token was written for an earlier sweep's task and is removed once this one holds the lock.
    """
    from .checkpoints import has_last

    if train_fn is None:
        from .engine import train as train_fn
    run_dir = Path(config.out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = _take_run_lock(run_dir, lock_wait_s)
    if lock is None:  # e.g. a sweep run again while a Dask worker still trains it
        return left_alone_record(name, params, run_dir)
    if sweep_token is not None and _stop_token(run_dir) not in (None, sweep_token):
        (run_dir / STOP_FILE).unlink(missing_ok=True)  # an earlier sweep's task, which has stopped
    previous = read_record(run_dir)
    record = new_record(name, params, config, previous, gpu)
    record.save(record_path(run_dir))
    generator = None
    try:
        generator = train_fn(config, resume=has_last(run_dir), cancel=cancel)
        while True:
            try:
                report = next(generator)
            except StopIteration as stop:
                result = stop.value
                break
            if isinstance(report, StartReport):
                record.device, record.score_name = report.device, report.score_name
                record.trainable_params, record.total_params = report.trainable_params, report.total_params
            yield report
    except GeneratorExit:  # closed from outside: the engine saves its position in last/
        if generator is not None:
            generator.close()
        record.status, record.finished = "cancelled", _now()
        record.save(record_path(run_dir))
        raise
    except Exception as err:  # a run's failure must not end the sweep
        record.status, record.finished = "failed", _now()
        record.error = f"{type(err).__name__}: {err}"
        record.save(record_path(run_dir))
        return record
    finally:
        lock.unlink(missing_ok=True)
    record.finished = _now()
    record.status = "cancelled" if result.cancelled else "done"
    record.epochs_done, record.best_epoch = result.epochs_done, result.best_epoch
    record.dev_score = result.best_score
    record.dev_metrics = _best_metrics(result.history, result.best_epoch)
    record.elapsed_s = round(_stored_elapsed(run_dir, result.elapsed_s), 3)
    record.save(record_path(run_dir))
    return record


def left_alone_record(name: str, params: dict[str, Any], run_dir: str | os.PathLike) -> RunRecord:
    """The record of a run another process is training (its lock held): not trained, ``run.json`` untouched."""
    from .locks import describe_owner

    run_dir = Path(run_dir)
    busy = read_record(run_dir) or RunRecord(name=name, params=dict(params), status="running")
    busy.params = dict(params)
    if busy.status not in ("pending", "running"):  # its run.json is from before that process began
        busy.status = "running"
    owner = describe_owner(run_dir / RUN_LOCK)
    busy.error = (
        f"another process ({owner}) is training this run (lock {run_dir / RUN_LOCK}); left alone: "
        "run the sweep again once it has finished (or delete the lock if that process is gone)"
    )
    return busy


def _take_run_lock(run_dir: Path, wait_s: float = 0.0) -> Path | None:
    """``run_dir/RUN_LOCK``, created for this process; None while another one holds it past ``wait_s``."""
    from .locks import take_lock

    return take_lock(run_dir / RUN_LOCK, RUN_LOCK_STALE_S, wait_s)


def _stop_token(run_dir: Path) -> str | None:
    try:
        return (run_dir / STOP_FILE).read_text().strip()
    except OSError:
        return None


def stop_requested(run_dir: str | os.PathLike, sweep_token: str) -> Callable[[], bool]:
    """A ``cancel`` callable: True once the sweep ``sweep_token`` wrote its token in ``run_dir/STOP_FILE``."""
    run_dir = Path(run_dir)
    return lambda: _stop_token(run_dir) == sweep_token


def _stored_elapsed(run_dir: Path, fallback: float) -> float:
    """Training time over every attempt, as ``last/config.json`` keeps it."""
    try:
        training = json.loads((run_dir / "last" / "config.json").read_text()).get("training", {})
        return float(training.get("elapsed_s", fallback))
    except (OSError, ValueError, AttributeError):
        return float(fallback)


def stored_split_hash(run_dir: str | os.PathLike) -> str | None:
    """The split hash a run trained with (``last/`` or its best model's ``config.json``), None if none is saved."""
    for path in (Path(run_dir) / "last" / "config.json", Path(run_dir) / "config.json"):
        try:
            value = json.loads(path.read_text()).get("split_hash")
        except (OSError, ValueError, AttributeError):
            continue
        if value:
            return str(value)
    return None


def execute_run(task: dict[str, Any], cancel: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run a task (``name``, ``params``, ``config``) to the end; return the record as a dict.

    Picklable entry point for Dask workers: settings travel as plain dicts. The run
    stops when its sweep writes its stop file, or when ``cancel`` returns True. A run
    another process trains is waited for ``task["lock_wait_s"]`` seconds (missing or
    None: :data:`RUN_LOCK_WAIT_S`, a Dask task's cancelled predecessor stopping).
    """
    config = TrainConfig.from_dict(task["config"])
    token = str(task.get("sweep_token", ""))
    requested = stop_requested(config.out_dir, token)
    stop = requested if cancel is None else (lambda: cancel() or requested())
    wait_s = task.get("lock_wait_s")
    generator = iter_run(task["name"], task["params"], config, cancel=stop, gpu=str(task.get("gpu", "")),
                         lock_wait_s=RUN_LOCK_WAIT_S if wait_s is None else float(wait_s),
                         sweep_token=token)  # fmt: skip
    return run_to_end(generator).to_dict()


def task_dict(
    name: str,
    params: dict[str, Any],
    config: TrainConfig,
    gpu: str = "",
    sweep_token: str = "",
    lock_wait_s: float | None = None,
) -> dict[str, Any]:
    """A run as plain data, for Dask workers and ``--gpus`` subprocesses (``lock_wait_s``: see :func:`execute_run`)."""
    return {"name": name, "params": dict(params), "config": config.to_dict(), "gpu": gpu,
            "sweep_token": sweep_token, "lock_wait_s": lock_wait_s}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m napari_cellseg.training.sweep_run TASK.json``: one run in this process."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m napari_cellseg.training.sweep_run TASK.json", file=sys.stderr)
        return 2
    from .commands import _GracefulStop

    # A terminal's Ctrl-C reaches this process too (the sweep's process group): stop after
    # the step and save, as the sweep itself asks through the stop file, not die mid-step.
    with _GracefulStop() as stop:
        try:
            task = json.loads(Path(argv[0]).read_text())
            record = execute_run(task, cancel=stop)
        except Exception:  # reported through the log and the exit status
            traceback.print_exc()
            return 1
    print(f"{record['name']}: {record['status']} {record.get('error', '')}".rstrip(), file=sys.stderr)
    return {"done": 0, "cancelled": 130, "running": LEFT_ALONE_EXIT}.get(record["status"], 1)


if __name__ == "__main__":
    sys.exit(main())
