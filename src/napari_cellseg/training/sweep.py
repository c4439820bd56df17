"""Hyperparameter sweeps: a grid over ``l``, ``l_a``, ``l_f`` (and lr, loss, weights...).

:func:`iter_sweep` expands a grid file (see :mod:`.sweep_grid`) into runs,
trains each into ``OUT/runs/NAME`` (a model directory with ``run.json``),
scores it on the dev set by AP@0.5 after the watershed (the engine's
``dev_metric="ap50"``), and keeps ``OUT/sweep_results.csv`` and
``OUT/sweep_results.md`` ranked by dev score, rewritten after every run. It
yields :class:`SweepReport`\\ s and returns a :class:`SweepResult`;
:func:`run_sweep` is the synchronous wrapper.

- **Resume**: running the same sweep again skips finished runs (once their
  model loads, restored from ``last/`` after a torn save) and resumes a run
  interrupted mid-way from its ``last/`` checkpoint. Changing a run's settings
  under the same ``OUT``, a finished run whose model is lost, or runs trained
  on another split (its hash), is refused.
- **Where**: serially in this process (default), as tasks of a Dask cluster
  (``scheduler="local"`` or a scheduler address, or a ``client``), or one
  subprocess per GPU (``gpus``).

Layout::

    OUT/sweep.json                      grid, settings, planned runs, skipped combinations
    OUT/sweep_results.csv, .md          ranked table
    OUT/runs/NAME/                      model directory (best epoch) + last/ + run.json
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import JsonConfig, atomic_write_text
from ..generators import run_to_end
from ..worker_signals import stop_signals_ignored
from .reports import EpochReport, StepReport
from .sweep_checks import _check_done_model as _check_done_model  # re-exported: tests import it here
from .sweep_checks import check_inputs, check_split_unchanged, check_stored_runs
from .sweep_exec import RunEvent, default_threads, run_dask, run_gpus, run_serial, worker_command
from .sweep_grid import (
    InvalidPoint,
    SweepError,
    SweepGrid,
    SweepPoint,
    expand_grid,
    load_grid,
)
from .sweep_run import RunRecord
from .sweep_table import is_ranked, rank_records, write_tables

__all__ = [
    "SweepConfig", "SweepError", "SweepReport", "SweepResult", "check_inputs", "check_stored_runs", "iter_sweep",
    "plan_sweep", "run_sweep",
]  # fmt: skip

SWEEP_FILE = "sweep.json"


@dataclass
class SweepConfig(JsonConfig):
    """Where a sweep reads, writes and runs.

    Parameters
    ----------
    data_dir, split_path : str
        Dataset folder and its split (train rows train, dev rows score).
    out_dir : str
        The sweep folder.
    scheduler : str
        ``""``: serially in this process; ``"local"``: a Dask ``LocalCluster``
        of ``local_workers`` processes; otherwise a Dask scheduler address.
    gpus : tuple of str
        Run one subprocess per listed GPU at a time (``CUDA_VISIBLE_DEVICES``).
    threads : int
        torch threads per run; 0: the grid's ``num_threads`` serially, 1 per
        Dask task, the cores shared among the GPUs with ``gpus``.
    local_workers : int
        Worker processes of the local cluster (0: the cores / ``threads``).
    """

    data_dir: str = ""
    split_path: str | None = None
    out_dir: str = ""
    scheduler: str = ""
    gpus: tuple[str, ...] = ()
    threads: int = 0
    local_workers: int = 0


@dataclass(frozen=True)
class SweepReport:
    """Progress of a sweep.

    ``kind``: ``plan`` (once: ``total`` runs, ``message`` on skipped
    combinations), ``skip`` (a finished run reused), ``start``, ``step`` (an
    in-process run's optimizer step ``step`` of ``total_steps``), ``epoch``
    (an in-process run's dev score, in ``message``), ``end``
    (``record`` says how it went). ``done`` counts the runs finished so far.
    """

    kind: str
    done: int
    total: int
    name: str = ""
    record: RunRecord | None = None
    step: int = 0
    total_steps: int = 0
    message: str = ""


@dataclass(frozen=True)
class SweepResult:
    """The ranked runs (best first), the skipped combinations and the table files."""

    out_dir: str
    records: list[RunRecord]
    invalid: list[InvalidPoint]
    csv_path: str
    markdown_path: str
    reused: list[str] = field(default_factory=list)
    cancelled: bool = False

    @property
    def best(self) -> RunRecord | None:
        return next((r for r in self.records if is_ranked(r)), None)

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def unfinished(self) -> list[RunRecord]:
        """Runs this sweep did not end: left to another process training them, or not reached."""
        return [r for r in self.records if r.status in ("pending", "running")]


def plan_sweep(
    grid: SweepGrid | str | os.PathLike, config: SweepConfig, *, where: str = ""
) -> tuple[list[SweepPoint], list[InvalidPoint]]:
    """The runs of a sweep and the combinations skipped, without running anything.

    ``where`` names the grid file in errors (default: ``grid`` when it is a path).
    """
    if not config.data_dir or not config.out_dir:
        raise SweepError("a sweep needs a dataset folder (--data) and an output folder (--out)")
    if not isinstance(grid, SweepGrid):
        where = where or str(grid)
        grid = _load_grid(grid, config)
    threads = default_threads(config.threads, config.scheduler, config.gpus)
    overrides: dict[str, Any] = {} if threads is None else {"num_threads": threads}
    try:
        points, invalid = expand_grid(grid, config.data_dir, config.split_path, config.out_dir, overrides)
    except SweepError as err:  # a value refused per run (lr <= 0, a loss): say which file holds it
        raise SweepError(f"{where}: {err}" if where else str(err)) from None
    if not points:  # every combination skipped: a sweep that trains nothing is a mistake, not a success
        shown = "; ".join(
            f"{', '.join(f'{k}={v}' for k, v in p.params.items())}: {p.reason}" for p in invalid[:3]
        )
        more = f"; and {len(invalid) - 3} more" if len(invalid) > 3 else ""
        raise SweepError(f"no runnable combination: all {len(invalid)} are skipped ({shown}{more})")
    return points, invalid


def _load_grid(path: str | os.PathLike, config: SweepConfig) -> SweepGrid:
    """The grid file ``path``, refused when it is the ``sweep.json`` the sweep writes (it would be replaced)."""
    own = Path(config.out_dir, SWEEP_FILE)
    if Path(path).exists() and own.exists() and Path(path).resolve() == own.resolve():
        raise SweepError(
            f"{path}: the grid file is the sweep's own {SWEEP_FILE}, which the sweep rewrites: "
            "keep the grid file outside --out (or give it another name)"
        )
    return load_grid(path)


def iter_sweep(
    grid: SweepGrid | str | os.PathLike,
    config: SweepConfig,
    *,
    client: Any = None,
    cancel: Callable[[], bool] | None = None,
    train_fn: Callable[..., Generator] | None = None,
    command: Callable[[Path], list[str]] = worker_command,
) -> Generator[SweepReport, None, SweepResult]:
    """Run a sweep, yielding :class:`SweepReport`\\ s; return the :class:`SweepResult`.

    Parameters
    ----------
    grid : SweepGrid or path
        The grid, or a JSON/YAML grid file.
    config : SweepConfig
    client : dask.distributed.Client, optional
        Run on this client (overrides ``config.scheduler``).
    cancel : callable, optional
        True stops the sweep: no further run starts, and the running ones save
        their position and end ``cancelled`` (in-process runs poll it before
        every step; Dask and ``gpus`` runs through their stop files).
    train_fn : callable, optional
        The training generator (default :func:`.engine.train`), for tests.
    command : callable, optional
        ``command(task_path) -> argv`` of a ``gpus`` subprocess.

    Raises
    ------
    SweepError
        Bad grid, dataset or split, or a run directory holding other settings.
    """
    where = "" if isinstance(grid, SweepGrid) else str(grid)
    if not isinstance(grid, SweepGrid):
        grid = _load_grid(grid, config) if config.out_dir else load_grid(grid)
    points, invalid = plan_sweep(grid, config, where=where)
    check_inputs(config, points)
    check_split_unchanged(config, points)
    out_dir = Path(config.out_dir)
    records: dict[str, RunRecord] = {}
    todo: list[SweepPoint] = []
    stored_runs = check_stored_runs(points)
    for point in points:
        stored = stored_runs[point.name]
        if stored is None:
            stored = RunRecord(name=point.name, train_config=point.config.to_dict())
        # this sweep's varied settings, not those of the sweep that stored it (another grid's point)
        records[point.name] = dataclasses.replace(stored, params=dict(point.params))
        if not stored.done:
            todo.append(point)
    atomic_write_text(out_dir / SWEEP_FILE, json.dumps({
        "sweep": config.to_dict(), "grid": grid.to_dict(), "runs": [p.name for p in points],
        "invalid": [p.to_dict() for p in invalid]}, indent=2) + "\n")  # fmt: skip
    write_tables(out_dir, list(records.values()), invalid)
    total, reused = len(points), [n for n, r in records.items() if r.done]
    message = f"{len(invalid)} invalid combination(s) skipped" if invalid else ""
    yield SweepReport("plan", len(reused), total, message=message)
    for index, name in enumerate(reused):
        yield SweepReport("skip", index + 1, total, name=name, record=records[name])
    finished = len(reused)
    cancelled = False
    for event in _events(todo, config, client, cancel, train_fn, command):
        if event.kind == "end":
            records[event.point.name] = event.payload
            finished += 1
            cancelled = cancelled or event.payload.status == "cancelled"
            write_tables(out_dir, list(records.values()), invalid)
        report = _report(event, finished, total)
        if report is not None:
            yield report
    # stopped between two runs: the runs never started make it a cancelled sweep, not an unfinished one
    cancelled = cancelled or (finished < total and cancel is not None and cancel())
    csv_path, md_path = write_tables(out_dir, list(records.values()), invalid)
    return SweepResult(str(out_dir), rank_records(records.values()), invalid, str(csv_path), str(md_path),
                       reused, cancelled)  # fmt: skip


def _events(todo, config, client, cancel, train_fn, command) -> Generator[RunEvent, None, None]:
    if not todo:
        return
    if client is not None:
        yield from run_dask(todo, client, cancel)
    elif config.scheduler:
        with _dask_client(config) as own_client:
            yield from run_dask(todo, own_client, cancel)
    elif config.gpus:
        yield from run_gpus(todo, config.gpus, command, cancel=cancel)
    else:
        yield from run_serial(todo, cancel, train_fn)


@contextlib.contextmanager
def _dask_client(config: SweepConfig) -> Iterator[Any]:
    """A Dask client for ``config.scheduler`` (``local``: a LocalCluster of processes), closed on exit."""
    from distributed import Client, LocalCluster

    if config.scheduler != "local":
        try:
            client = Client(config.scheduler, timeout=30)
        except (OSError, TimeoutError) as err:
            raise SweepError(f"cannot reach the Dask scheduler at {config.scheduler} ({err})") from None
        with client:
            yield client
        return
    threads = max(1, config.threads)
    workers = config.local_workers or max(1, (os.cpu_count() or 1) // threads)
    with stop_signals_ignored():  # the workers leave Ctrl-C and SIGTERM to this process
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
    with cluster, Client(cluster) as client:
        yield client


def _report(event: RunEvent, finished: int, total: int) -> SweepReport | None:
    """The sweep's report of a run event (None for engine reports a sweep does not show)."""
    name = event.point.name
    if event.kind == "step":
        report = event.payload
        if isinstance(report, StepReport):
            return SweepReport("step", finished, total, name=name, step=report.global_step,
                               total_steps=report.total_steps)  # fmt: skip
        if isinstance(report, EpochReport) and report.dev_score is not None:
            text = f"epoch {report.epoch}/{report.epochs}: dev {report.score_name} {report.dev_score:.4f}"
            return SweepReport("epoch", finished, total, name=name, message=text)
        return None
    if event.kind == "end":
        return SweepReport("end", finished, total, name=name, record=event.payload,
                           message=event.payload.error)  # fmt: skip
    return SweepReport(event.kind, finished, total, name=name, message=str(event.payload or ""))


def run_sweep(
    grid: SweepGrid | str | os.PathLike,
    config: SweepConfig,
    *,
    callback: Callable[[SweepReport], None] | None = None,
    **kwargs: Any,
) -> SweepResult:
    """Synchronous :func:`iter_sweep`; ``callback`` gets each report."""
    generator = iter_sweep(grid, config, **kwargs)
    return run_to_end(generator, callback)
