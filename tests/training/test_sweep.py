"""The sweep: grid files, run names, invalid combinations, ranking, tables, resume, Dask, GPUs, CLI."""

from __future__ import annotations

import csv
import itertools
import json
import sys
from pathlib import Path

import pytest

from napari_cellseg.generators import run_to_end
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training import locks
from napari_cellseg.training.config import TrainConfig
from napari_cellseg.training.sweep import SweepConfig, iter_sweep, plan_sweep, run_sweep
from napari_cellseg.training.sweep_grid import (
    SweepError,
    SweepGrid,
    expand_grid,
    grid_from_dict,
    layer_problem,
    load_grid,
    run_name,
)
from napari_cellseg.training.sweep_run import RunRecord, read_record
from napari_cellseg.training.sweep_table import format_markdown, rank_records, write_tables

# Tiny, fast runs: l <= 2 of the default M2, 64x64 crops, one dev image, one thread.
TINY_BASE = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 64, "max_dev_images": 1,
             "num_threads": 1}  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


def sweep_config(tmp_path: Path, split: Path, **kw) -> SweepConfig:
    return SweepConfig(data_dir=str(SAMPLE_DIR), split_path=str(split), out_dir=str(tmp_path / "sweep"), **kw)


def test_grid_expansion_skips_invalid_combinations_and_names_runs(tmp_path):
    grid = grid_from_dict({"base": {"epochs": 3}, "grid": {"l": [1, 5], "l_a": [1, 4], "lf": [0, 2]},
                           "points": [{"l": 5, "la": 4, "l_f": 2}, {"l": 2, "class_weights": [1, 1, 1]}]})  # fmt: skip
    points, invalid = expand_grid(grid, tmp_path / "data", tmp_path / "split.csv", tmp_path / "out")
    names = [p.name for p in points]
    # l=1 allows l_a 1..3 and l_f 0..1: three of its four combinations are invalid.
    assert len(invalid) == 3 and all(p.params["transfer_layers"] == 1 for p in invalid)
    reasons = " / ".join(p.reason for p in invalid)
    assert "l_a=4 is out of range for l=1 (1..3)" in reasons and "l_f=2 is out of range for l=1" in reasons
    # The point equal to a grid combination runs once.
    assert names == ["l1-la1-lf0-lr0.001-weighted-ce-w1_5_3", "l5-la1-lf0-lr0.001-weighted-ce-w1_5_3",
                     "l5-la1-lf2-lr0.001-weighted-ce-w1_5_3", "l5-la4-lf0-lr0.001-weighted-ce-w1_5_3",
                     "l5-la4-lf2-lr0.001-weighted-ce-w1_5_3", "l2-la4-lf0-lr0.001-weighted-ce-w1_1_1"]  # fmt: skip
    first = points[0].config
    assert first.epochs == 3 and first.dev_metric == "ap50" and Path(first.data_dir).is_absolute()
    assert Path(first.out_dir) == (tmp_path / "out" / "runs" / names[0]).absolute()


def test_weights_a_loss_ignores_do_not_make_extra_runs(tmp_path):
    grid = grid_from_dict(
        {"grid": {"loss": ["weighted-ce", "weighted-bce"], "class_weights": [[1, 5, 3], [1, 1, 1]]}}
    )
    points, invalid = expand_grid(grid, "d", None, tmp_path)
    assert [p.name for p in points] == ["l4-la4-lf0-lr0.001-weighted-ce-w1_5_3", "l4-la4-lf0-lr0.001-weighted-ce-w1_1_1",
                                        "l4-la4-lf0-lr0.001-weighted-bce-bw3"]  # fmt: skip
    assert [p.reason for p in invalid] == [
        "the same run as l4-la4-lf0-lr0.001-weighted-bce-bw3: weighted-bce ignores class_weights"]  # fmt: skip


def test_names_are_stable_and_only_spell_settings_that_differ_from_the_base():
    base = TrainConfig(data_dir="d", out_dir="o", pretrained=False)
    config = TrainConfig(data_dir="d", out_dir="o", loss="weighted-bce", lr=3e-4, microscopes=("C",))
    params = {"loss": "weighted-bce", "microscopes": ["C"], "pretrained": True}
    assert (
        run_name(config, params, base) == "l4-la4-lf0-lr0.0003-weighted-bce-bw3-microscopes_C-pretrained_true"
    )
    same_as_base = TrainConfig(data_dir="d", out_dir="o", pretrained=False)
    assert run_name(same_as_base, {"pretrained": False}, base) == "l4-la4-lf0-lr0.001-weighted-ce-w1_5_3"


def test_grid_files_json_and_yaml_and_their_errors(tmp_path):
    (tmp_path / "g.yaml").write_text("base:\n  epochs: 2\ngrid:\n  l: [2, 3]\n  lr: [0.001, 0.0001]\n")
    grid = load_grid(tmp_path / "g.yaml")
    assert grid.base == {"epochs": 2} and grid.grid == {"transfer_layers": [2, 3], "lr": [0.001, 0.0001]}
    (tmp_path / "g.json").write_text(json.dumps(grid.to_dict()))
    assert load_grid(tmp_path / "g.json") == grid
    cases = {
        "{not json": "not valid JSON",
        '{"grid": {"l": [2], "learning_rate": [1]}}': "unknown setting 'learning_rate'",
        '{"grid": {"l": []}}': "grid.transfer_layers must be a non-empty list",
        '{"base": {"out_dir": "x"}, "grid": {"l": [2]}}': "'out_dir' is set by the sweep",
        '{"grid": {"l": [2], "transfer_layers": [3]}}': "given twice",
        '{"base": {"epochs": 2}}': "nothing to run",
        '{"grids": {}}': "unknown key",
    }
    for text, message in cases.items():
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(SweepError, match=message):
            load_grid(tmp_path / "bad.json")
    with pytest.raises(SweepError, match="no such grid file"):
        load_grid(tmp_path / "missing.json")
    with pytest.raises(SweepError, match=r"lr must be > 0"):
        expand_grid(grid_from_dict({"grid": {"lr": [-1.0]}}), "d", None, tmp_path)


def test_layer_check_agrees_with_the_surgery(tmp_path):
    """The sweep's pure-Python check must skip exactly what build_model refuses."""
    from napari_cellseg.models.m2 import M2Config, build_classifier, save_m2
    from napari_cellseg.models.surgery import SurgeryError, build_model
    from napari_cellseg.training.sweep_grid import m2_depth

    arch = "mobilenetv3_small_050"
    model = build_classifier(arch, 0)
    config = M2Config(arch=arch, num_classes=0)
    depth = m2_depth(str(save_m2(tmp_path / "m2", model, config)))
    assert depth == 5 and m2_depth("default") == 5
    # Each bound of l, l_a and l_f, just inside and just outside.
    combos = [(1, 1, 0), (5, 7, 5), (0, 1, 0), (6, 1, 0), (2, 0, 0), (2, 4, 0), (2, 5, 0), (2, 1, -1),
              (2, 1, 2), (2, 1, 3)]  # fmt: skip
    for l, l_a, l_f in combos:  # noqa: E741
        try:
            build_model((model, config), l, l_a, l_f)
            built = True
        except SurgeryError:
            built = False
        assert (layer_problem(l, l_a, l_f, depth) is None) == built, (l, l_a, l_f)


def _record(name: str, score: float | None, status: str = "done", f1: float = 0.5, **params) -> RunRecord:
    config = {"transfer_layers": params.get("transfer_layers", 4), "new_layers": 3, "frozen_layers": 0,
              "lr": 0.001, "loss": "weighted-ce", "class_weights": [1.0, 5.0, 3.0]}  # fmt: skip
    return RunRecord(name=name, params=params, status=status, dev_score=score, device="cpu",
                     dev_metrics={} if score is None else {"ap50": score, "pixel_f1": f1},
                     trainable_params=1234, elapsed_s=12.5, train_config=config, best_epoch=2)  # fmt: skip


def test_ranking_and_the_csv_and_markdown_tables(tmp_path):
    records = [
        _record("b", 0.5, transfer_layers=3), _record("a", 0.5, f1=0.7, transfer_layers=4),
        _record("c", 0.9, transfer_layers=5), _record("d", None, status="failed", transfer_layers=5),
        _record("e", None, status="pending", transfer_layers=3),
    ]  # fmt: skip
    assert [r.name for r in rank_records(records)] == ["c", "a", "b", "d", "e"]  # ties: pixel F1
    csv_path, md_path = write_tables(tmp_path, records)
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["run"] for r in rows] == ["c", "a", "b", "d", "e"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "", ""]
    assert (
        rows[0]["dev_ap50"] == "0.9"
        and rows[0]["weights"] == "1/5/3"
        and rows[0]["trainable_params"] == "1234"
    )
    assert rows[3]["status"] == "failed" and rows[3]["dev_ap50"] == ""
    text = md_path.read_text()
    assert "| 1 | `c` | 5 | 3 | 0 | 0.001 | weighted-ce | 1/5/3 |" in text
    # By setting: l=5 has one finished run (0.9), l=3 one (0.5); the failed run does not count.
    assert "| transfer_layers | 3 | 1 | 0.500 | 0.500 |" in text
    assert "| transfer_layers | 5 | 1 | 0.900 | 0.900 |" in text
    assert "3 of 5 runs finished" in format_markdown(records)


def test_the_sweep_trains_resumes_an_interrupted_run_and_skips_finished_ones(tmp_path, sample_split):
    from napari_cellseg.training.engine import train

    grid = SweepGrid(base={**TINY_BASE, "epochs": 2, "steps_per_epoch": 1},
                     grid={"l": [1, 2], "l_a": [1, 4], "l_f": [0]})  # fmt: skip
    config = sweep_config(tmp_path, sample_split)
    calls = []

    def counting_train(train_config, **kwargs):
        calls.append((Path(train_config.out_dir).name, kwargs["resume"]))
        return train(train_config, **kwargs)

    steps = []
    reports = []

    def stop_in_second_run(report) -> None:
        reports.append(report)
        steps.extend([report] if report.kind == "step" else [])

    # Each run is 2 epochs x 1 step; stop after the first step of the second run (its epoch 1 is saved).
    first = run_sweep(grid, config, train_fn=counting_train, cancel=lambda: len(steps) >= 3,
                      callback=stop_in_second_run)  # fmt: skip
    names = ["l1-la1-lf0-lr0.001-weighted-ce-w1_5_3", "l2-la1-lf0-lr0.001-weighted-ce-w1_5_3",
             "l2-la4-lf0-lr0.001-weighted-ce-w1_5_3"]  # fmt: skip
    assert first.cancelled and [p.params for p in first.invalid] == [
        {"transfer_layers": 1, "new_layers": 4, "frozen_layers": 0}]  # fmt: skip
    assert calls == [(names[0], False), (names[1], False)]
    assert read_record(tmp_path / "sweep" / "runs" / names[1]).status == "cancelled"
    assert reports[0].kind == "plan" and reports[0].total == 3
    calls.clear()
    second = run_sweep(grid, config, train_fn=counting_train)
    assert calls == [(names[1], True), (names[2], False)]  # the finished run is skipped
    assert second.reused == [names[0]] and not second.cancelled
    assert all(r.done and r.dev_score is not None and r.device == "cpu" for r in second.records)
    resumed = read_record(tmp_path / "sweep" / "runs" / names[1])
    assert resumed.attempts == 2 and resumed.epochs_done == 2 and "ap50" in resumed.dev_metrics
    assert resumed.trainable_params and resumed.trainable_params > 0
    assert (tmp_path / "sweep" / "runs" / names[1] / "model.safetensors").is_file()
    calls.clear()
    third = run_sweep(grid, config, train_fn=counting_train)
    assert calls == [] and sorted(third.reused) == sorted(names)
    table = (tmp_path / "sweep" / "sweep_results.csv").read_text().splitlines()
    assert len(table) == 4 and all(line.endswith(",cpu,done,") for line in table[1:])
    assert "l_a=4 is out of range for l=1" in (tmp_path / "sweep" / "sweep_results.md").read_text()
    changed = SweepGrid(base={**grid.base, "epochs": 3}, grid=grid.grid)
    with pytest.raises(SweepError, match=r"other settings \(epochs: 2 -> 3\)"):
        next(iter_sweep(changed, config))


def test_a_done_run_whose_model_is_lost_is_restored_or_named(tmp_path, sample_split):
    # run.json alone used to count: the ranked run's folder then failed in segment --model.
    import shutil

    from napari_cellseg.models.checkpoint import check_model_dir

    grid = SweepGrid(base=TINY_BASE, grid={"lr": [0.1]})
    config = sweep_config(tmp_path, sample_split)
    (record,) = run_sweep(grid, config).records
    run_dir = tmp_path / "sweep" / "runs" / record.name
    (run_dir / "model.safetensors").unlink()  # lost; last/ holds the same (best, only) epoch
    again = run_sweep(grid, config)
    assert again.reused == [record.name] and check_model_dir(run_dir).training["epoch"] == 1
    shutil.rmtree(run_dir / "last")
    (run_dir / "config.json").unlink()
    with pytest.raises(
        SweepError, match=rf"run {record.name} is done but its model does not load: .*Move or delete"
    ):
        next(iter_sweep(grid, config))


def _fake_train(fail_on: str):
    from napari_cellseg.training.reports import StartReport, TrainResult

    def train(config, *, resume, cancel):
        if Path(config.out_dir).name.startswith(fail_on):
            raise ValueError("the dataset exploded")
        yield StartReport(device="cpu", device_reason="", amp=None, threads=1, workers=0, world_size=1,
                          n_train_images=1, n_dev_images=1, train_counts={}, trainable_params=7, total_params=9,
                          epochs=1, steps_per_epoch=1, global_batch_size=1, start_epoch=1, start_step=0,
                          resumed=resume, score_name="ap50", out_dir=config.out_dir)  # fmt: skip
        history = [{"epoch": 1, "dev": {"ap50": config.lr, "pixel_f1": 0.1}}]
        return TrainResult(out_dir=config.out_dir, epochs_done=1, cancelled=False, best_epoch=1,
                           best_score=config.lr, score_name="ap50", elapsed_s=0.1, history=history)  # fmt: skip

    return train


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, sample_split):
    grid = SweepGrid(base=TINY_BASE, grid={"l": [1, 2], "l_a": [1], "lr": [0.1, 0.2]})
    result = run_sweep(grid, sweep_config(tmp_path, sample_split), train_fn=_fake_train("l1"))
    assert [r.name for r in result.records][:2] == ["l2-la1-lf0-lr0.2-weighted-ce-w1_5_3",
                                                    "l2-la1-lf0-lr0.1-weighted-ce-w1_5_3"]  # fmt: skip
    assert [r.status for r in result.records] == ["done", "done", "failed", "failed"]
    assert result.failed[0].error == "ValueError: the dataset exploded"
    assert result.best.trainable_params == 7 and result.best.dev_metrics["pixel_f1"] == 0.1


def test_bad_data_or_split_fails_before_any_run(tmp_path, sample_split):
    grid = SweepGrid(grid={"l": [2]})
    bad_split = tmp_path / "other.csv"
    bad_split.write_text("id,subset\nnot-an-image,train\n")
    with pytest.raises(SweepError, match="1 id\\(s\\) are not in"):
        next(iter_sweep(grid, sweep_config(tmp_path, bad_split)))
    with pytest.raises(SweepError, match="no such split file"):
        next(iter_sweep(grid, sweep_config(tmp_path, tmp_path / "none.csv")))


def test_runs_as_tasks_of_a_dask_cluster(tmp_path, sample_split):
    from distributed import Client, LocalCluster

    grid = SweepGrid(base=TINY_BASE, grid={"l": [1, 2], "l_a": [1]})
    config = sweep_config(tmp_path, sample_split, scheduler="local")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            reports = []
            result = run_sweep(grid, config, client=client, callback=reports.append)
    assert [r.kind for r in reports] == ["plan", "start", "start", "end", "end"]
    assert len(result.records) == 2 and all(r.done and r.dev_score is not None for r in result.records)
    assert all(r.train_config["num_threads"] == 1 for r in result.records)  # 1 thread per Dask task
    assert (tmp_path / "sweep" / "sweep_results.md").is_file()


FAKE_WORKER = """
import json, os, sys, time
task = json.load(open(sys.argv[1]))
start = time.time()
time.sleep(0.3)
record = {"name": task["name"], "params": task["params"], "status": "done", "dev_score": 0.5,
          "gpu": os.environ["CUDA_VISIBLE_DEVICES"], "started": str(start), "finished": str(time.time()),
          "train_config": task["config"]}
if task["gpu"] != record["gpu"]:
    sys.exit(3)
os.makedirs(task["config"]["out_dir"], exist_ok=True)
json.dump(record, open(os.path.join(task["config"]["out_dir"], "run.json"), "w"))
"""


def test_gpus_run_one_subprocess_per_gpu_at_a_time(tmp_path, sample_split):
    worker = tmp_path / "worker.py"
    worker.write_text(FAKE_WORKER)
    grid = SweepGrid(base=TINY_BASE, grid={"lr": [0.1, 0.2, 0.3]})
    config = sweep_config(tmp_path, sample_split, gpus=("0", "1"))
    result = run_sweep(grid, config, command=lambda task: [sys.executable, str(worker), str(task)])
    assert all(r.done for r in result.records) and {r.gpu for r in result.records} == {"0", "1"}
    for gpu in ("0", "1"):
        spans = sorted((float(r.started), float(r.finished)) for r in result.records if r.gpu == gpu)
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans)), spans
    failing = SweepGrid(base=TINY_BASE, grid={"lr": [0.9]})
    crashed = run_sweep(
        failing, config, command=lambda task: [sys.executable, "-c", "import sys; sys.exit(4)"]
    )
    assert crashed.records[0].status == "failed" and "exited with status 4" in crashed.records[0].error


def test_threads_per_run_follow_the_executor(tmp_path):
    grid = SweepGrid(base={"num_threads": 3}, grid={"l": [2]})
    base = {"data_dir": "d", "split_path": None, "out_dir": str(tmp_path)}
    assert plan_sweep(grid, SweepConfig(**base))[0][0].config.num_threads == 3
    assert plan_sweep(grid, SweepConfig(**base, scheduler="local"))[0][0].config.num_threads == 1
    assert plan_sweep(grid, SweepConfig(**base, threads=2, gpus=("0",)))[0][0].config.num_threads == 2


def test_cli_dry_run_and_user_errors(tmp_path, sample_split, capsys):
    from napari_cellseg.cli import main

    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"grid": {"l": [1, 2], "l_f": [2]}}))
    common = ["sweep", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--grid", str(grid),
              "--out", str(tmp_path / "out")]  # fmt: skip
    assert main([*common, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "l2-la4-lf2-lr0.001-weighted-ce-w1_5_3" in out and "l_f=2 is out of range for l=1" in out
    assert main([*common, "--gpus", "0,x"]) == 2
    assert "expected GPU indices" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert main([*common, "--gpus", "0"]) == 2
        assert "no CUDA GPU on this machine" in capsys.readouterr().err
    grid.write_text('{"grid": {"l": [2], "epoch": [1]}}')
    assert main(common) == 2
    assert "unknown setting 'epoch'" in capsys.readouterr().err


def test_the_sweep_modules_import_without_torch():
    import subprocess

    code = (
        "import sys\n"
        "import napari_cellseg.training.sweep_commands, napari_cellseg.training.sweep\n"
        "import napari_cellseg.training.holdout, napari_cellseg.training.experiment_tables\n"
        "print(','.join(sorted(m for m in ('torch', 'timm', 'distributed') if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at module level: {result.stdout.strip()}"


def test_a_sweep_is_scored_by_ap50_only(tmp_path):
    grid = grid_from_dict({"base": {"dev_metric": "pixel_f1"}, "grid": {"lr": [1e-3]}})
    with pytest.raises(SweepError, match="dev_metric must be 'ap50'"):
        expand_grid(grid, "d", None, tmp_path)


def test_a_run_another_process_trains_is_left_alone_and_a_dead_ones_lock_is_taken(tmp_path, sample_split):
    import os
    import time

    from napari_cellseg.training import sweep_run
    from napari_cellseg.training.sweep_grid import expand_grid

    grid = SweepGrid(base=TINY_BASE, grid={"lr": [0.1]})
    (point,), _ = expand_grid(grid, sample_split.parent, sample_split, tmp_path / "sweep")
    run_dir = Path(point.config.out_dir)
    run_dir.mkdir(parents=True)
    lock = run_dir / sweep_run.RUN_LOCK
    lock.write_text("4242@elsewhere")  # a Dask task still training it
    busy = run_to_end(
        sweep_run.iter_run(point.name, point.params, point.config, train_fn=_fake_train("none"))
    )
    assert busy.status == "running" and "another process" in busy.error and lock.exists()
    old = time.time() - sweep_run.RUN_LOCK_STALE_S - 5
    os.utime(lock, (old, old))  # its process died
    (run_dir / sweep_run.STOP_FILE).write_text("earlier-sweep")  # written for it by a cancelled sweep
    done = run_to_end(sweep_run.iter_run(point.name, point.params, point.config, train_fn=_fake_train("none"),
                                         sweep_token="this-sweep"))  # fmt: skip
    assert done.status == "done" and not lock.exists() and not (run_dir / sweep_run.STOP_FILE).exists()
    stop = sweep_run.stop_requested(run_dir, "this-sweep")
    (run_dir / sweep_run.STOP_FILE).write_text("this-sweep")  # this sweep cancelled before the task began
    assert stop()
    run_to_end(sweep_run.iter_run(point.name, point.params, point.config, cancel=stop,
                                  train_fn=_fake_train("none"), sweep_token="this-sweep"))  # fmt: skip
    assert (run_dir / sweep_run.STOP_FILE).read_text() == "this-sweep"  # kept: it is this sweep's own


def test_a_killed_sweeps_lock_is_taken_at_once_and_a_run_left_alone_fails_the_command(
    tmp_path, sample_split, capsys
):
    import os
    import platform
    import subprocess

    from napari_cellseg.cli import main
    from napari_cellseg.training import sweep_run

    grid = SweepGrid(base=TINY_BASE, grid={"lr": [0.1]})
    (point,), _ = expand_grid(grid, SAMPLE_DIR, sample_split, tmp_path / "sweep")
    run_dir = Path(point.config.out_dir)
    run_dir.mkdir(parents=True)
    lock = run_dir / sweep_run.RUN_LOCK
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{dead.pid}@{platform.node()}")  # a sweep killed with SIGKILL a moment ago
    done = run_to_end(
        sweep_run.iter_run(point.name, point.params, point.config, train_fn=_fake_train("none"))
    )
    assert done.status == "done" and not lock.exists()

    (run_dir / sweep_run.RUN_RECORD).unlink()
    lock.write_text(f"{os.getpid()}@{platform.node()} {locks.TOKEN}")  # a live process trains it
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps(grid.to_dict()))
    status = main(["sweep", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--grid", str(grid_file),
                   "--out", str(tmp_path / "sweep"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and f"not trained: {point.name}: another process (pid {os.getpid()}" in err
    assert lock.exists()


def test_a_cancelled_dask_sweep_stops_the_runs_it_started(tmp_path, sample_split, monkeypatch):
    # Cancelling futures would leave a running task training on its worker: the stop file ends it.
    import time

    from distributed import Client, LocalCluster

    from napari_cellseg.training import sweep_exec, sweep_run
    from napari_cellseg.training.reports import TrainResult

    started = tmp_path / "started"  # a file: the task may run on a copy of this test's objects

    def slow_train(config, *, resume, cancel):
        started.write_text(str(config.out_dir))
        for step in range(400):  # 40 s unless stopped
            if cancel():
                break
            time.sleep(0.1)
            yield step
        return TrainResult(out_dir=config.out_dir, epochs_done=0, cancelled=cancel(), best_epoch=0,
                           best_score=None, score_name="ap50", elapsed_s=0.1, history=[])  # fmt: skip

    def execute(task):  # execute_run with the engine replaced
        config = TrainConfig.from_dict(task["config"])
        token = task["sweep_token"]
        cancel = sweep_run.stop_requested(config.out_dir, token)
        return run_to_end(sweep_run.iter_run(task["name"], task["params"], config, cancel=cancel,
                                             train_fn=slow_train, sweep_token=token)).to_dict()  # fmt: skip

    monkeypatch.setattr(sweep_exec, "execute_run", execute)
    grid = SweepGrid(base=TINY_BASE, grid={"lr": [0.1]})
    begun = time.monotonic()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            config = sweep_config(tmp_path, sample_split)
            result = run_sweep(grid, config, client=client, cancel=started.exists)  # Ctrl-C once it runs
    assert result.cancelled and result.records[0].status == "cancelled"
    assert read_record(started.read_text()).status == "cancelled" and time.monotonic() - begun < 30


def test_the_ranked_table_and_best_run_go_to_stdout_failures_to_stderr(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from napari_cellseg.cli import main
    from napari_cellseg.training import sweep

    best, failed = _record("lr-0.1", 0.7), _record("lr-1", None, status="failed")
    failed.error = "ValueError: boom"

    def fake_sweep(grid, config, cancel=None):
        yield from ()
        return SimpleNamespace(markdown_path=str(tmp_path / "sweep.md"), csv_path=str(tmp_path / "sweep.csv"),
                               best=best, failed=[failed], cancelled=False, unfinished=[])  # fmt: skip

    monkeypatch.setattr(sweep, "iter_sweep", fake_sweep)
    status = main(
        ["sweep", "--data", "d", "--split", "s.csv", "--grid", "g.json", "--out", str(tmp_path), "--quiet"]
    )
    out, err = capsys.readouterr()
    assert status == 1
    assert f"ranked table: {tmp_path / 'sweep.md'}" in out and "best: lr-0.1" in out
    assert "failed: lr-1: ValueError: boom" in err and "ranked table" not in err
