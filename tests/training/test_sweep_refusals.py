"""``sweep``: settings, splits and stored runs that would waste or mix its runs are refused up front."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from napari_cellseg.cli import main
from napari_cellseg.data.splitfile import split_hash
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.sweep import SweepConfig, iter_sweep, plan_sweep
from napari_cellseg.training.sweep_grid import SweepError, SweepGrid

TINY_BASE = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 64, "num_threads": 1}


def _no_training(config, **kwargs):
    raise AssertionError(f"a run was trained: {config.out_dir}")


def _config(tmp_path: Path, split: Path) -> SweepConfig:
    return SweepConfig(data_dir=str(SAMPLE_DIR), split_path=str(split), out_dir=str(tmp_path / "sweep"))


def test_runs_trained_on_another_split_are_not_reused_or_ranked_with_new_ones(tmp_path, sample_split):
    grid = SweepGrid(base=TINY_BASE, grid={"lr": [0.1, 0.2, 0.3]})
    config = _config(tmp_path, sample_split)
    done, half, same = (Path(p.config.out_dir) for p in plan_sweep(grid, config)[0])
    for run_dir, where, value in ((done, "config.json", "a" * 64), (half, "last/config.json", "b" * 64),
                                  (same, "config.json", split_hash(sample_split))):  # fmt: skip
        (run_dir / where).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / where).write_text(json.dumps({"split_hash": value}))
    current = split_hash(sample_split)[:12]
    with pytest.raises(SweepError) as caught:
        next(iter_sweep(grid, config, train_fn=_no_training))
    message = str(caught.value)
    assert message.startswith(f"{sample_split} (split hash {current}) is not the split these runs were")
    assert (
        f"{done.name} (split hash {'a' * 12})" in message
        and f"{half.name} (split hash {'b' * 12})" in message
    )
    assert same.name not in message and "run the sweep with the old split, or into a new --out" in message


def test_a_split_without_dev_rows_or_train_rows_of_a_runs_microscopes_is_refused(tmp_path, sample_split):
    no_dev = tmp_path / "no_dev.csv"  # the dev image made a test image
    no_dev.write_text(sample_split.read_text().replace(",dev,", ",test,"))
    grid = SweepGrid(base=TINY_BASE, grid={"lr": [0.1]})
    with pytest.raises(
        SweepError, match=rf"^{no_dev}: no dev rows: a sweep ranks its runs by their dev AP@0\.5"
    ):
        next(iter_sweep(grid, _config(tmp_path, no_dev), train_fn=_no_training))
    c_dev = tmp_path / "c_dev.csv"  # every C image is a dev image: a run on C alone has nothing to train on
    rows = sample_split.read_text().splitlines()
    c_dev.write_text("\n".join(r.replace(",train,", ",dev,") if ",C," in r else r for r in rows) + "\n")
    grid = SweepGrid(base=TINY_BASE, grid={"microscopes": [["A", "B", "C"], ["C"]]})
    with pytest.raises(SweepError, match=r"no train rows of microscopes \['C'\], which run .*microscopes_C"):
        next(iter_sweep(grid, _config(tmp_path, c_dev), train_fn=_no_training))
    with pytest.raises(SweepError, match="give a split"):
        next(iter_sweep(grid, SweepConfig(data_dir=str(SAMPLE_DIR), out_dir=str(tmp_path / "s"))))


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"grid": {"lr": [-1]}}, r"run \{'lr': -1\}: invalid settings:\s+- lr must be > 0"),
        ({"base": {"dev_metric": "pixel_f1"}, "grid": {"l": [2]}}, r"dev_metric must be 'ap50'"),
        (
            {"grid": {"augment_preset": ["light", "nonsense"]}},
            r"augment_preset must be one of \[.*'nonsense'",
        ),
        (
            {"grid": {"lr": [0.1]}, "points": [{"normalization": {"low_percentil": 1}}]},
            r"normalization: NormalizationConfig: unknown key\(s\) \['low_percentil'\]",
        ),
        (
            {"grid": {"normalization": [None, {"low_percentile": 50, "high_percentile": 10}]}},
            r"normalization: need 0 <= low_percentile < high_percentile <= 100, got 50\.0 and 10\.0",
        ),
    ],
)
def test_grid_values_refused_per_run_name_the_grid_file(tmp_path, sample_split, capsys, grid, message):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid))
    args = ["sweep", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--grid", str(path),
            "--out", str(tmp_path / "out"), "--quiet"]  # fmt: skip
    for extra in (["--dry-run"], []):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert f"sweep: error: {path}: " in err and re.search(message, err), err
    assert not (tmp_path / "out").exists()
