"""``sweep``: every run is ranked on the same dev score, and the table says why a run is not ranked."""

from __future__ import annotations

import csv

import pytest

from napari_cellseg.training.sweep import SweepConfig, SweepResult, plan_sweep
from napari_cellseg.training.sweep_grid import SweepError, grid_from_dict
from napari_cellseg.training.sweep_run import RunRecord
from napari_cellseg.training.sweep_table import rank_records, write_tables


def _record(name: str, score: float | None, status: str = "done", **kw) -> RunRecord:
    config = {"transfer_layers": 2, "new_layers": 2, "frozen_layers": 0, "lr": 0.001, "loss": "weighted-ce",
              "class_weights": [1.0, 5.0, 3.0]}  # fmt: skip
    return RunRecord(name=name, status=status, dev_score=score, train_config=config,
                     dev_metrics={} if score is None else {"ap50": score, "pixel_f1": 0.5}, **kw)  # fmt: skip


def test_a_grid_or_point_may_not_vary_how_runs_are_scored(tmp_path):
    config = SweepConfig(data_dir="d", out_dir=str(tmp_path))
    grid = grid_from_dict({"grid": {"dev_metric": ["ap50", "pixel_f1"]}, "points": [{"max_dev_images": 1}]})
    with pytest.raises(SweepError, match=r"grid\.dev_metric, points\[0\]\.max_dev_images: .*'base' only"):
        plan_sweep(grid, config)
    with pytest.raises(SweepError, match=r"points\[1\]\.dev_metric"):
        plan_sweep(grid_from_dict({"points": [{"lr": 0.1}, {"dev_metric": "ap50"}]}), config)
    # The base may set them: every run shares them.
    (point,), _ = plan_sweep(grid_from_dict({"base": {"max_dev_images": 1}, "grid": {"lr": [0.1]}}), config)
    assert point.config.max_dev_images == 1 and point.config.dev_metric == "ap50"


def test_a_run_scored_by_another_metric_is_not_ranked_or_shown_as_ap50(tmp_path):
    other = _record("f1-run", 0.95, score_name="pixel_f1")
    records = [_record("ap-run", 0.4), other]
    assert [r.name for r in rank_records(records)] == ["ap-run", "f1-run"]
    result = SweepResult(str(tmp_path), rank_records(records), [], "", "")
    assert result.best.name == "ap-run"
    csv_path, _ = write_tables(tmp_path, records)
    rows = {r["run"]: r for r in csv.DictReader(csv_path.open())}
    assert rows["ap-run"]["rank"] == "1" and rows["ap-run"]["dev_ap50"] == "0.4"
    assert rows["f1-run"]["rank"] == "" and rows["f1-run"]["dev_ap50"] == ""
    assert rows["f1-run"]["error"] == "scored by dev pixel_f1, not ap50: not ranked"


def test_a_failed_runs_error_is_in_the_table(tmp_path):
    long_error = "RuntimeError: CUDA out of memory. " + "x" * 300
    records = [_record("ok", 0.5), _record("bad", None, status="failed", error=long_error)]
    csv_path, md_path = write_tables(tmp_path, records)
    rows = {r["run"]: r for r in csv.DictReader(csv_path.open())}
    assert rows["ok"]["error"] == ""
    assert (
        rows["bad"]["error"].startswith("RuntimeError: CUDA out of memory.")
        and len(rows["bad"]["error"]) == 120
    )
    assert "| failed | RuntimeError: CUDA out of memory." in md_path.read_text()
