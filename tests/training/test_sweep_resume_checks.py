"""``sweep``: what a sweep run again (or its ``--dry-run``) does with the runs stored under ``OUT``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from napari_cellseg.cli import main
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.reports import StartReport, TrainResult
from napari_cellseg.training.sweep import SweepConfig, run_sweep
from napari_cellseg.training.sweep_grid import SweepGrid

TINY_BASE = {"epochs": 1, "steps_per_epoch": 1, "batch_size": 2, "patch_size": 64, "max_dev_images": 1,
             "num_threads": 1}  # fmt: skip


def _config(tmp_path: Path, split: Path) -> SweepConfig:
    return SweepConfig(data_dir=str(SAMPLE_DIR), split_path=str(split), out_dir=str(tmp_path / "sweep"))


def _fake_train(calls: list, cancelled: bool = False):
    """A training that ends at once (``cancelled``: as if stopped), recording which run it trained."""

    def train(config, *, resume, cancel):
        calls.append(Path(config.out_dir).name)
        yield StartReport(device="cpu", device_reason="", amp=None, threads=1, workers=0, world_size=1,
                          n_train_images=1, n_dev_images=1, train_counts={}, trainable_params=7, total_params=9,
                          epochs=1, steps_per_epoch=1, global_batch_size=1, start_epoch=1, start_step=0,
                          resumed=resume, score_name="ap50", out_dir=config.out_dir)  # fmt: skip
        return TrainResult(out_dir=config.out_dir, epochs_done=1, cancelled=cancelled, best_epoch=1,
                           best_score=0.5, score_name="ap50", elapsed_s=0.1,
                           history=[{"epoch": 1, "dev": {"ap50": 0.5}}])  # fmt: skip

    return train


def _cli(tmp_path: Path, split: Path, grid: dict | Path, *extra: str) -> int:
    path = grid if isinstance(grid, Path) else tmp_path / "grid.json"
    if not isinstance(grid, Path):
        path.write_text(json.dumps(grid))
    return main(["sweep", "--data", str(SAMPLE_DIR), "--split", str(split), "--grid", str(path),
                 "--out", str(tmp_path / "sweep"), "--quiet", *extra])  # fmt: skip


def test_a_reused_run_gets_this_sweeps_params_and_dry_run_says_it_is_done(tmp_path, sample_split, capsys):
    config = _config(tmp_path, sample_split)
    # seed 0 is the default: the run has the same name and settings with or without it in the grid
    (first,) = run_sweep(SweepGrid(base=TINY_BASE, grid={"lr": [0.1], "seed": [0]}), config).records
    assert first.params == {"lr": 0.1, "seed": 0}
    grid = {"base": TINY_BASE, "grid": {"lr": [0.1]}, "points": [{"lr": 0.2}]}
    assert _cli(tmp_path, sample_split, grid, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "2 run(s) in" in out and "(1 done, 0 to resume, 1 new)" in out
    assert f"  {first.name}  [done: reused, dev ap50" in out and "lr0.2-weighted-ce-w1_5_3  [new]" in out
    again = run_sweep(SweepGrid.from_dict(grid), config, train_fn=_fake_train([]))
    reused = next(r for r in again.records if r.name == first.name)
    assert again.reused == [first.name] and reused.params == {"lr": 0.1}
    rows = {r["run"]: r for r in csv.DictReader((tmp_path / "sweep" / "sweep_results.csv").open())}
    assert rows[first.name]["other"] == ""  # not "seed=0", which this sweep does not vary


def test_dry_run_refuses_what_the_sweep_refuses_and_lists_runs_to_resume(tmp_path, sample_split, capsys):
    grid = {"base": TINY_BASE, "grid": {"lr": [0.1, 0.2]}}
    result = run_sweep(SweepGrid.from_dict(grid), _config(tmp_path, sample_split),
                       train_fn=_fake_train([], cancelled=True))  # fmt: skip
    first = Path(tmp_path / "sweep" / "runs" / result.records[0].name)
    (first / "last").mkdir()
    (first / "last" / "training_state.json").write_text("{}")
    assert _cli(tmp_path, sample_split, grid, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "(0 done, 1 to resume, 1 new)" in out and f"{first.name}  [to resume from its last/]" in out
    changed = {"base": {**TINY_BASE, "epochs": 2}, "grid": {"lr": [0.1, 0.2]}}
    assert _cli(tmp_path, sample_split, changed, "--dry-run") == 2
    assert "other settings (epochs: 1 -> 2)" in capsys.readouterr().err
    (first / "config.json").write_text(json.dumps({"split_hash": "a" * 64}))  # trained on another split
    assert _cli(tmp_path, sample_split, grid, "--dry-run") == 2
    assert "is not the split these runs were trained" in capsys.readouterr().err


def test_a_weight_the_loss_ignores_does_not_block_resume(tmp_path, sample_split):
    config = _config(tmp_path, sample_split)
    calls: list = []
    grid = SweepGrid(base={**TINY_BASE, "loss": "weighted-ce"}, grid={"boundary_weight": [1.0]})
    run_sweep(grid, config, train_fn=_fake_train(calls, cancelled=True))
    resumed = run_sweep(SweepGrid(base=grid.base, grid={"boundary_weight": [3.0]}), config,
                        train_fn=_fake_train(calls))  # fmt: skip
    assert len(calls) == 2 and resumed.records[0].done


def test_a_stop_between_two_serial_runs_starts_no_further_run(tmp_path, sample_split):
    calls: list = []
    grid = SweepGrid(base=TINY_BASE, grid={"lr": [0.1, 0.2, 0.3]})
    result = run_sweep(grid, _config(tmp_path, sample_split), train_fn=_fake_train(calls),
                       cancel=lambda: len(calls) >= 1)  # Ctrl-C while the first run ends  # fmt: skip
    assert len(calls) == 1 and result.cancelled
    assert sorted(r.status for r in result.records) == ["done", "pending", "pending"]


def test_a_grid_file_that_is_the_sweeps_own_sweep_json_is_refused(tmp_path, sample_split, capsys):
    own = tmp_path / "sweep" / "sweep.json"
    own.parent.mkdir()
    text = json.dumps({"base": TINY_BASE, "grid": {"lr": [0.1]}})
    own.write_text(text)
    for extra in (["--dry-run"], []):
        assert _cli(tmp_path, sample_split, own, *extra) == 2
        assert "the grid file is the sweep's own sweep.json" in capsys.readouterr().err
    assert own.read_text() == text and not (tmp_path / "sweep" / "runs").exists()
