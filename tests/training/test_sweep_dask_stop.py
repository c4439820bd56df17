"""``sweep --scheduler``: one Ctrl-C stops a Dask sweep, never hangs it, and the table says how each run ended."""

from __future__ import annotations

import csv
import os
import signal
import time

import pytest

from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training import sweep_exec
from napari_cellseg.training.sweep import SweepConfig, _dask_client, plan_sweep, run_sweep
from napari_cellseg.training.sweep_grid import SweepGrid
from napari_cellseg.training.sweep_run import STOP_FILE, RunRecord, read_record, record_path


def test_local_cluster_workers_leave_ctrl_c_to_the_sweep(tmp_path):
    # A terminal's Ctrl-C reaches the whole process group: the local workers must not die of it.
    config = SweepConfig(data_dir=str(SAMPLE_DIR), out_dir=str(tmp_path), scheduler="local", local_workers=1,
                         threads=1)  # fmt: skip
    ours = signal.getsignal(signal.SIGINT)
    with _dask_client(config) as client:
        assert signal.getsignal(signal.SIGINT) is ours  # this process still gets Ctrl-C
        handlers = client.run(lambda: signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
        assert list(handlers.values()) == [True], handlers
        pids = client.run(os.getpid)
        os.kill(next(iter(pids.values())), signal.SIGINT)
        time.sleep(1.5)
        assert client.run(os.getpid) == pids  # the same worker, alive


class _NeverDone:
    def done(self) -> bool:
        return False


class _StuckClient:
    """A Dask client whose tasks never finish: its workers died, or a run does not stop."""

    def __init__(self, workers: bool):
        self.workers = workers
        self.cancelled: list = []

    def submit(self, fn, *args, **kwargs):
        return _NeverDone()

    def nthreads(self) -> dict:
        return {"tcp://127.0.0.1:1": 1} if self.workers else {}

    def cancel(self, futures) -> None:
        self.cancelled += futures


@pytest.mark.parametrize("workers", [False, True], ids=["no-worker-left", "run-does-not-stop"])
def test_a_stopped_dask_sweep_waits_a_bounded_time_and_tables_each_run_json(
    tmp_path, sample_split, monkeypatch, workers
):
    monkeypatch.setattr(sweep_exec, "DASK_NO_WORKER_S", 60.0 if workers else 0.2)
    monkeypatch.setattr(sweep_exec, "DASK_STOP_WAIT_S", 0.5 if workers else 60.0)
    config = SweepConfig(data_dir=str(SAMPLE_DIR), split_path=str(sample_split), out_dir=str(tmp_path / "sweep"),
                         scheduler="tcp://unused:8786")  # fmt: skip
    grid = SweepGrid(base={"epochs": 1, "num_threads": 1}, grid={"lr": [0.1, 0.2, 0.3]})
    points, _ = plan_sweep(grid, config)
    # What the workers wrote before the Ctrl-C: one run saved and ended, one was training, one never began.
    for point, status in zip(points[:2], ("cancelled", "running"), strict=True):
        os.makedirs(point.config.out_dir)
        RunRecord(name=point.name, params=dict(point.params), status=status,
                  train_config=point.config.to_dict()).save(record_path(point.config.out_dir))  # fmt: skip
    client = _StuckClient(workers)
    begun = time.monotonic()
    result = run_sweep(grid, config, client=client, cancel=lambda: True)  # Ctrl-C at once
    assert time.monotonic() - begun < 20, "the stopped sweep did not stop waiting"
    assert result.cancelled
    assert len(client.cancelled) == 3
    expected = {points[0].name: "cancelled", points[1].name: "cancelled", points[2].name: "pending"}
    with open(result.csv_path, newline="") as f:
        assert {row["run"]: row["status"] for row in csv.DictReader(f)} == expected
    for point in points:  # the table says what run.json says
        record = read_record(point.config.out_dir)
        assert (record.status if record else "pending") == expected[point.name]
        assert (tmp_path / "sweep" / "runs" / point.name / STOP_FILE).is_file()
    reason = "no worker left" if not workers else "had not stopped 0.5 s after"
    assert reason in read_record(points[1].config.out_dir).error
