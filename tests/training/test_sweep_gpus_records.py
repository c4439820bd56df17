"""``sweep --gpus``: what a run's subprocess leaves is read as this attempt's, never an earlier one's."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training import locks, sweep_run
from napari_cellseg.training.sweep import SweepConfig, plan_sweep, run_sweep
from napari_cellseg.training.sweep_grid import SweepGrid

GRID = SweepGrid(base={"epochs": 1, "steps_per_epoch": 1, "num_threads": 1}, grid={"lr": [0.1]})
# The real worker, with a Dask task's wait for a busy run's lock shortened to 30 s.
DASK_WAIT_S = 30
WORKER = (
    f"import sys; from napari_cellseg.training import sweep_run; sweep_run.RUN_LOCK_WAIT_S = {DASK_WAIT_S}; "
    "sys.exit(sweep_run.main(sys.argv[1:]))"
)


def _config(tmp_path: Path, split: Path) -> SweepConfig:
    return SweepConfig(data_dir=str(SAMPLE_DIR), split_path=str(split), out_dir=str(tmp_path / "sweep"),
                       gpus=("0",))  # fmt: skip


def _stored(tmp_path: Path, split: Path, **fields) -> Path:
    """The run's folder, holding a ``run.json`` with ``fields``."""
    ((point,), _) = plan_sweep(GRID, _config(tmp_path, split))
    run_dir = Path(point.config.out_dir)
    run_dir.mkdir(parents=True)
    record = sweep_run.RunRecord(name=point.name, params=dict(point.params), train_config=point.config.to_dict(),
                                 **fields)  # fmt: skip
    record.save(run_dir / sweep_run.RUN_RECORD)
    return run_dir


def test_a_worker_that_dies_before_writing_run_json_is_not_reported_from_the_last_attempt(
    tmp_path, sample_split
):
    run_dir = _stored(tmp_path, sample_split, status="failed", attempts=1, started="2020-01-01T00:00:00",
                      error="ValueError: the last attempt's error")  # fmt: skip
    (run_dir / "train.log").write_text("the last attempt's log\n")
    crash = "import sys; print('this attempt crashed at import', flush=True); sys.exit(4)"
    result = run_sweep(
        GRID, _config(tmp_path, sample_split), command=lambda task: [sys.executable, "-c", crash]
    )
    (record,) = result.records
    assert record.status == "failed" and "exited with status 4 on GPU 0" in record.error
    assert "this attempt crashed at import" in record.error and "last attempt" not in record.error
    assert sweep_run.read_record(run_dir).error == record.error


def test_a_dying_worker_records_this_attempt_not_the_last_ones_scores(tmp_path, sample_split):
    run_dir = _stored(tmp_path, sample_split, status="cancelled", attempts=2, started="2020-01-01T00:00:00",
                      dev_score=0.5, dev_metrics={"ap50": 0.5}, best_epoch=2, epochs_done=3, elapsed_s=100.0,
                      device="cuda")  # fmt: skip
    crash = "import sys; sys.exit(4)"
    result = run_sweep(
        GRID, _config(tmp_path, sample_split), command=lambda task: [sys.executable, "-c", crash]
    )
    (record,) = result.records
    assert record.status == "failed" and record.attempts == 3  # this attempt counted
    assert record.dev_score is None and record.dev_metrics == {} and record.best_epoch == 0
    assert record.epochs_done == 0 and record.elapsed_s == 0.0 and record.device == ""
    assert record.started > "2020-01-01T00:00:00" and record.gpu == "0"
    assert sweep_run.read_record(run_dir) == record


def test_a_gpus_worker_leaves_a_busy_run_at_once(tmp_path, sample_split):
    # The sweep launched no other worker: the lock's holder is not one it could wait for.
    run_dir = _stored(tmp_path, sample_split, status="running", attempts=1, started="2020-01-01T00:00:00")
    (run_dir / sweep_run.RUN_LOCK).write_text(f"{os.getpid()}@{platform.node()} {locks.TOKEN}")
    begun = time.monotonic()
    result = run_sweep(GRID, _config(tmp_path, sample_split),
                       command=lambda task: [sys.executable, "-c", WORKER, str(task)])  # fmt: skip
    assert time.monotonic() - begun < DASK_WAIT_S * 2 / 3, "the worker waited for the lock"
    (record,) = result.records
    assert result.unfinished == [record] and "another process" in record.error


def test_a_dask_task_still_waits_for_a_busy_run(tmp_path, sample_split, monkeypatch):
    # On Dask a task may be rescheduled while the cancelled one of its run is still stopping.
    ((point,), _) = plan_sweep(GRID, _config(tmp_path, sample_split))
    run_dir = Path(point.config.out_dir)
    run_dir.mkdir(parents=True)
    (run_dir / sweep_run.RUN_LOCK).write_text(f"{os.getpid()}@{platform.node()} {locks.TOKEN}")
    monkeypatch.setattr(sweep_run, "RUN_LOCK_WAIT_S", 1.5)
    begun = time.monotonic()
    record = sweep_run.execute_run(sweep_run.task_dict(point.name, point.params, point.config))
    assert time.monotonic() - begun >= 1.5 and record["status"] == "running"


def test_a_run_another_live_process_trains_is_left_alone(tmp_path, sample_split):
    run_dir = _stored(tmp_path, sample_split, status="running", attempts=1, started="2020-01-01T00:00:00")
    lock = run_dir / sweep_run.RUN_LOCK
    lock.write_text(f"{os.getpid()}@{platform.node()} {locks.TOKEN}")  # this test process trains it
    stored = (run_dir / sweep_run.RUN_RECORD).read_text()
    result = run_sweep(GRID, _config(tmp_path, sample_split),
                       command=lambda task: [sys.executable, "-c", WORKER, str(task)])  # fmt: skip
    (record,) = result.records
    assert not result.failed and result.unfinished == [record] and record.status == "running"
    assert f"another process (pid {os.getpid()}" in record.error
    assert (run_dir / sweep_run.RUN_RECORD).read_text() == stored and lock.exists()  # untouched
    assert json.loads(stored)["status"] == "running"
