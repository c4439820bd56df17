"""``sweep --gpus``: one Ctrl-C stops the sweep as the serial and Dask modes do."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training import sweep_run
from napari_cellseg.training.sweep import SweepConfig, run_sweep
from napari_cellseg.training.sweep_grid import SweepGrid

# A run that trains until its sweep's token is in its stop file (at most 20 s), then saves and ends.
STOPPABLE_WORKER = """
import json, os, sys, time
task = json.load(open(sys.argv[1]))
out = task["config"]["out_dir"]
record = {"name": task["name"], "params": task["params"], "status": "running", "train_config": task["config"]}
json.dump(record, open(os.path.join(out, "run.json"), "w"))
open(os.path.join(os.path.dirname(os.path.dirname(out)), "started"), "a").write(task["name"] + "\\n")
stop = os.path.join(out, ".stop")
for _ in range(200):
    if os.path.exists(stop) and open(stop).read() == task["sweep_token"]:
        record["status"] = "cancelled"
        break
    time.sleep(0.1)
else:
    record["status"] = "done"
json.dump(record, open(os.path.join(out, "run.json"), "w"))
"""


def test_a_cancelled_gpu_sweep_stops_its_running_run_and_starts_no_other(tmp_path, sample_split):
    worker = tmp_path / "worker.py"
    worker.write_text(STOPPABLE_WORKER)
    started = tmp_path / "sweep" / "started"
    config = SweepConfig(data_dir=str(SAMPLE_DIR), split_path=str(sample_split), out_dir=str(tmp_path / "sweep"),
                         gpus=("0",))  # fmt: skip
    grid = SweepGrid(base={"epochs": 1, "num_threads": 1}, grid={"lr": [0.1, 0.2, 0.3]})
    begun = time.monotonic()
    command = lambda task: [sys.executable, str(worker), str(task)]  # noqa: E731
    result = run_sweep(grid, config, command=command, cancel=started.exists)  # Ctrl-C once the first runs
    assert time.monotonic() - begun < 15, "the running run was not asked to stop"
    assert result.cancelled
    statuses = {r.name: r.status for r in result.records}
    assert sorted(statuses.values()) == ["cancelled", "pending", "pending"], statuses
    (first,) = started.read_text().split()  # no run started after the stop
    run_dir = tmp_path / "sweep" / "runs" / first
    token = json.loads((run_dir / sweep_run.TASK_FILE).read_text())["sweep_token"]
    assert token and (run_dir / sweep_run.STOP_FILE).read_text() == token


def test_the_gpu_worker_process_stops_gracefully_on_ctrl_c(tmp_path, monkeypatch):
    # The terminal's Ctrl-C reaches the worker too: it must save and end cancelled, not die.
    def execute(task, cancel=None):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            if cancel is not None and cancel():
                return {"name": task["name"], "status": "cancelled"}
            time.sleep(0.01)
        return {"name": task["name"], "status": "done"}

    monkeypatch.setattr(sweep_run, "execute_run", execute)
    task = Path(tmp_path / "task.json")
    task.write_text(json.dumps({"name": "run"}))

    def died(signum, frame):  # what an unhandled Ctrl-C does, without ending the test session
        raise RuntimeError("the worker died of the SIGINT")

    previous = signal.signal(signal.SIGINT, died)
    try:
        assert sweep_run.main([str(task)]) == 130
        assert signal.getsignal(signal.SIGINT) is died  # restored
    finally:
        signal.signal(signal.SIGINT, previous)
