"""Where a sweep's runs execute: in this process, on a Dask cluster, or one per GPU.

Each executor takes the runs still to do and yields :class:`RunEvent`\\ s:
``start`` when a run begins (or is handed to the cluster), ``step`` for the
engine's reports (in-process runs only), ``end`` with the run's
:class:`~.sweep_run.RunRecord`. A run that crashes its worker or subprocess
ends as ``failed`` with the reason; the other runs go on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sweep_grid import SweepPoint
from .sweep_run import (
    GPUS_LOCK_WAIT_S,
    LEFT_ALONE_EXIT,
    STOP_FILE,
    TASK_FILE,
    RunRecord,
    execute_run,
    iter_run,
    left_alone_record,
    read_record,
    record_path,
    task_dict,
)

LOG_FILE = "train.log"
DASK_STOP_WAIT_S = 300.0  # once a Dask sweep is stopped, how long it waits for its runs to save and end
DASK_NO_WORKER_S = 10.0  # ... and how long while the cluster has no worker left to run them


@dataclass(frozen=True)
class RunEvent:
    """``kind`` is ``start``, ``step`` (``payload``: an engine report) or ``end`` (``payload``: the record)."""

    kind: str
    point: SweepPoint
    payload: Any = None


def _failed(point: SweepPoint, reason: str, gpu: str = "", record: RunRecord | None = None) -> RunRecord:
    """Record a run whose worker died before it could record its own end."""
    return _ended(point, "failed", reason, gpu, record)


def _ended(
    point: SweepPoint, status: str, reason: str, gpu: str = "", record: RunRecord | None = None
) -> RunRecord:
    """End ``record`` (default: the stored ``run.json``, else a new one) as ``status`` and save it."""
    if record is None:
        record = read_record(point.config.out_dir) or RunRecord(name=point.name, params=dict(point.params))
    record.status, record.error, record.gpu = status, reason, gpu or record.gpu
    record.train_config = record.train_config or point.config.to_dict()
    record.finished = _now()
    record.save(record_path(point.config.out_dir))
    return record


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def run_serial(
    points: Sequence[SweepPoint],
    cancel: Callable[[], bool] | None = None,
    train_fn: Callable[..., Generator] | None = None,
) -> Generator[RunEvent, None, None]:
    """One run after the other in this process, forwarding the engine's reports.

    A run that ends ``cancelled`` (``cancel`` returned True) stops the sweep.
    """
    for point in points:
        if cancel is not None and cancel():  # stopped between two runs: start no further one
            return
        yield RunEvent("start", point)
        record = yield from _forward(point, iter_run(point.name, point.params, point.config,
                                                     cancel=cancel, train_fn=train_fn))  # fmt: skip
        yield RunEvent("end", point, record)
        if record.status == "cancelled":
            return


def _forward(point: SweepPoint, generator: Generator) -> Generator[RunEvent, None, RunRecord]:
    try:
        while True:
            try:
                report = next(generator)
            except StopIteration as stop:
                return stop.value
            yield RunEvent("step", point, report)
    finally:
        generator.close()  # closing the sweep closes the run: the engine saves its position


def run_dask(
    points: Sequence[SweepPoint], client: Any, cancel: Callable[[], bool] | None = None, poll_s: float = 0.5
) -> Generator[RunEvent, None, None]:
    """Every run as a task of a ``dask.distributed`` client (each task calls the engine).

    ``cancel`` returning True, or closing the generator, writes each unfinished run's
    stop file: a run that is training saves its position at the next step and ends
    ``cancelled`` (it resumes next time), one not started yet ends at once. Cancelling
    the futures alone would leave running tasks training on the workers. Once stopping,
    it waits for the runs at most :data:`DASK_STOP_WAIT_S` (:data:`DASK_NO_WORKER_S`
    while the cluster has no worker left): then each run still out ends as its
    ``run.json`` says, ``cancelled`` if that says it is running, and a run never
    started stays pending.
    """
    token = uuid.uuid4().hex  # this sweep's: the stop files it writes name it
    futures = {}
    for point in points:
        future = client.submit(execute_run, task_dict(point.name, point.params, point.config, sweep_token=token),
                               key=f"sweep-{point.name}-{uuid.uuid4().hex[:8]}", pure=False)  # fmt: skip
        futures[future] = point
        yield RunEvent("start", point)
    pending = set(futures)
    stopping_at: float | None = None
    no_worker_at: float | None = None
    gave_up = ""
    try:
        while pending and not gave_up:
            finished = [future for future in pending if future.done()]
            if not finished:
                if stopping_at is None:
                    if cancel is not None and cancel():
                        stopping_at = time.monotonic()
                        _request_stop((futures[future] for future in pending), token)
                else:
                    now = time.monotonic()
                    no_worker_at = None if _has_workers(client) else (no_worker_at or now)
                    if no_worker_at is not None and now - no_worker_at >= DASK_NO_WORKER_S:
                        gave_up = "the Dask cluster has no worker left"
                    elif now - stopping_at >= DASK_STOP_WAIT_S:
                        gave_up = f"it had not stopped {DASK_STOP_WAIT_S:g} s after the sweep was stopped"
                    if gave_up:
                        continue
                time.sleep(poll_s)
                continue
            for future in finished:
                pending.discard(future)
                point = futures[future]
                try:
                    record = RunRecord.from_dict(future.result())
                except Exception as err:  # the worker died or the task could not run
                    record = _failed(point, f"Dask task failed: {type(err).__name__}: {err}")
                yield RunEvent("end", point, record)
        for future, point in futures.items():  # given up waiting: what each run's run.json says
            if future in pending:
                record = _record_when_given_up(point, gave_up)
                if record is not None:
                    yield RunEvent("end", point, record)
    finally:
        if pending:
            _request_stop((futures[future] for future in pending), token)
            client.cancel(list(pending))


def _has_workers(client: Any) -> bool:
    try:
        return bool(client.nthreads())
    except Exception:  # the scheduler cannot tell: count on the time limit
        return True


def _record_when_given_up(point: SweepPoint, reason: str) -> RunRecord | None:
    """A stopped sweep's record of a run it no longer waits for (None: the run never started)."""
    record = read_record(point.config.out_dir)
    if record is None:
        return None
    if record.status in ("done", "failed", "cancelled"):
        return record
    return _ended(point, "cancelled", f"the stopped sweep no longer waited for it: {reason}")


def _request_stop(points, token: str) -> None:
    for point in points:
        path = Path(point.config.out_dir, STOP_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token)


def worker_command(task_path: Path) -> list[str]:
    """The subprocess that runs one task (see :func:`.sweep_run.main`)."""
    return [sys.executable, "-m", "napari_cellseg.training.sweep_run", str(task_path)]


def run_gpus(
    points: Sequence[SweepPoint],
    gpus: Sequence[str],
    command: Callable[[Path], list[str]] = worker_command,
    poll_s: float = 0.5,
    cancel: Callable[[], bool] | None = None,
) -> Generator[RunEvent, None, None]:
    """One subprocess per GPU at a time, with ``CUDA_VISIBLE_DEVICES`` set to that GPU.

    Each subprocess writes its output to ``RUN/train.log`` and its result to
    ``RUN/run.json``. ``cancel`` returning True starts no further run and writes
    each running run's stop file: it saves its position at the next step and ends
    ``cancelled`` (as with Dask). Closing the generator terminates the running subprocesses.
    A run whose lock another process holds (not one of this sweep's) is left alone at
    once (:data:`~.sweep_run.GPUS_LOCK_WAIT_S`), freeing its GPU for the next run.
    """
    token = uuid.uuid4().hex  # this sweep's: the stop files it writes name it
    queue = list(points)
    free = [str(g) for g in gpus]
    running: dict[str, tuple[subprocess.Popen, SweepPoint, Any, _Before]] = {}
    stopping = False
    try:
        while queue or running:
            if not stopping and cancel is not None and cancel():
                stopping = True
                queue.clear()
                _request_stop((point for _, point, _, _ in running.values()), token)
            while queue and free:
                gpu, point = free.pop(0), queue.pop(0)
                running[gpu] = _launch(point, gpu, command, token)
                yield RunEvent("start", point, gpu)
            finished = [g for g, (proc, *_) in running.items() if proc.poll() is not None]
            if not finished:
                time.sleep(poll_s)
                continue
            for gpu in finished:
                proc, point, log, before = running.pop(gpu)
                log.close()
                free.append(gpu)
                yield RunEvent("end", point, _gpu_record(point, proc.returncode, gpu, stopping, before))
    finally:
        for proc, *_ in running.values():
            proc.terminate()
        for proc, _, log, _ in running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung worker
                proc.kill()
            log.close()


@dataclass(frozen=True)
class _Before:
    """What a run's ``run.json`` and log held when its subprocess started."""

    attempts: int | None  # None: no run.json
    started: str
    log_size: int
    launched: str = ""  # when this attempt's subprocess started

    def wrote(self, record: RunRecord) -> bool:
        """Whether ``record`` was written by the subprocess started after this (not left by an earlier attempt)."""
        return self.attempts is None or (record.attempts, record.started) != (self.attempts, self.started)


def _launch(point: SweepPoint, gpu: str, command: Callable[[Path], list[str]], token: str = ""):
    from ..config import atomic_write_text

    run_dir = Path(point.config.out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = read_record(run_dir)
    log_path = run_dir / LOG_FILE
    before = _Before(None if previous is None else previous.attempts, "" if previous is None else previous.started,
                     log_path.stat().st_size if log_path.is_file() else 0, _now())  # fmt: skip
    task_path = run_dir / TASK_FILE
    task = task_dict(point.name, point.params, point.config, gpu, token, lock_wait_s=GPUS_LOCK_WAIT_S)
    atomic_write_text(task_path, json.dumps(task, indent=2))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
    log = open(log_path, "ab")  # closed when the subprocess ends
    proc = subprocess.Popen(command(task_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, point, log, before


def _gpu_record(
    point: SweepPoint, returncode: int, gpu: str, stopping: bool = False, before: _Before | None = None
) -> RunRecord:
    """The record of a run whose subprocess ended: its own ``run.json``, or why it wrote none."""
    before = before or _Before(None, "", 0)
    if returncode == LEFT_ALONE_EXIT:  # another live process trains it: its run.json is that one's
        return left_alone_record(point.name, point.params, point.config.out_dir)
    record = read_record(point.config.out_dir)
    ours = record is not None and before.wrote(record)
    if ours and record.status in ("done", "failed", "cancelled"):
        return record
    tail = _log_tail(Path(point.config.out_dir) / LOG_FILE, offset=before.log_size)
    reason = f"worker exited with status {returncode} on GPU {gpu}: {tail}"
    if stopping:  # e.g. Ctrl-C while it was starting: not a failure, it runs next time
        return _ended(point, "cancelled", reason, gpu)
    # one that died before writing run.json left an earlier attempt's there: this attempt gets its own
    return _failed(point, reason, gpu, None if ours else _attempt_record(point, before))


def _attempt_record(point: SweepPoint, before: _Before) -> RunRecord:
    """The record of the attempt ``before`` describes: counted, and without an earlier attempt's scores."""
    return RunRecord(name=point.name, params=dict(point.params), attempts=(before.attempts or 0) + 1,
                     started=before.launched, train_config=point.config.to_dict())  # fmt: skip


def _log_tail(path: Path, lines: int = 3, offset: int = 0) -> str:
    """The last ``lines`` of ``path`` from byte ``offset`` on (this attempt's part of an appended log)."""
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " / ".join(text[-lines:]) or "(empty log)"


def default_threads(config_threads: int, scheduler: str, gpus: Sequence[str]) -> int | None:
    """torch threads per run: as asked, else 1 per Dask task, else the cores shared among GPUs.

    None keeps the grid's own ``num_threads``.
    """
    if config_threads > 0:
        return config_threads
    if scheduler:
        return 1
    if gpus:
        return max(1, (os.cpu_count() or 1) // len(gpus))
    return None
