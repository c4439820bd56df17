"""``sweep``: a grid that trains nothing, or holds values of the wrong type, is refused up front."""

from __future__ import annotations

import json

import pytest

from napari_cellseg.cli import main
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.sweep_grid import SweepError, grid_from_dict


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"grid": {"l": 3}}, r"grid\.l must be a list, e\.g\. \[3\]"),
        ({"grid": {"lr": ["fast"]}}, r'grid\.lr: "fast" is not a number'),
        ({"grid": {"lr": [True]}}, r"grid\.lr: true is not a number"),
        ({"grid": {"epochs": [1.5]}}, r"grid\.epochs: 1\.5 is not a whole number"),
        (
            {"grid": {"class_weights": [1, 5, 3]}},
            r"grid\.class_weights: each value is a list of 3 numbers; did you mean \[\[1, 5, 3\]\]\?",
        ),
        (
            {"grid": {"class_weights": [[1, "x", 3]]}},
            r'grid\.class_weights: in \[1, "x", 3\], "x" is not a number',
        ),
        ({"base": {"epochs": "2"}, "grid": {"l": [2]}}, r'base\.epochs must be a whole number, got "2"'),
        ({"grid": {"l": [2]}, "points": [{"lr": True}]}, r"points\[0\]\.lr must be a number, got true"),
    ],
)
def test_grid_values_of_the_wrong_type_are_named(grid, message):
    with pytest.raises(SweepError, match=r"^g\.json: " + message):
        grid_from_dict(grid, where="g.json")


def test_valid_nested_and_aliased_values_pass():
    grid = grid_from_dict({"grid": {"l": [2, 3], "class_weights": [[1, 5, 3]], "microscopes": [["C"]]}})
    assert grid.grid == {"transfer_layers": [2, 3], "class_weights": [[1, 5, 3]], "microscopes": [["C"]]}


@pytest.fixture
def sweep_args(tmp_path, sample_split):
    def make(grid, data=SAMPLE_DIR, split=sample_split):
        path = tmp_path / "grid.json"
        path.write_text(json.dumps(grid))
        return ["sweep", "--data", str(data), "--split", str(split), "--grid", str(path),
                "--out", str(tmp_path / "out"), "--quiet"]  # fmt: skip

    return make


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["run", "dry-run"])
def test_a_grid_whose_every_combination_is_skipped_fails(tmp_path, sweep_args, capsys, dry_run):
    assert main([*sweep_args({"base": {"epochs": 1}, "grid": {"l": [9]}}), *dry_run]) == 2
    err = capsys.readouterr().err
    assert "sweep: error: no runnable combination: all 1 are skipped" in err
    assert "transfer_layers l=9 is out of range" in err
    assert not (tmp_path / "out").exists()


def test_dry_run_refuses_a_missing_dataset_or_split(tmp_path, sweep_args, capsys):
    grid = {"grid": {"l": [2]}}
    assert main([*sweep_args(grid, data=tmp_path / "nope"), "--dry-run"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main([*sweep_args(grid, split=tmp_path / "nope.csv"), "--dry-run"]) == 2
    assert "nope.csv: no such split file" in capsys.readouterr().err
    assert main([*sweep_args(grid), "--dry-run"]) == 0  # the same plan with real inputs is fine
