"""scripts/run_experiments.py end to end at a tiny budget on the tiny dataset (one test, a few runs)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def run_experiments(load_script):
    return load_script("run_experiments")


def test_every_experiment_at_a_tiny_budget_and_resume(run_experiments, tiny_dataset, tmp_path):
    import torch

    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.data.split import split_dataset
    from napari_cellseg.data.splitfile import write_split

    torch.set_num_threads(1)
    result = split_dataset(CellDataset.open(tiny_dataset), target="C", grouping=False)
    split = write_split(tmp_path / "split.csv", result.subsets, result.microscopes, result.groups)
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"base": {"max_dev_images": 1}, "grid": {"l": [1], "l_a": [1, 4]}}))
    out = tmp_path / "experiments"
    argv = ["--data", str(tiny_dataset), "--split", str(split), "--out", str(out), "--budget-steps", "1",
            "--epochs", "1", "--batch-size", "2", "--patch-size", "64", "--threads", "1",
            "--sweep-grid", str(grid), "--quiet"]  # fmt: skip
    assert run_experiments.main(argv) == 0
    # The sweep: one run (l_a=4 is invalid for l=1); its best sets the layers of the ablations.
    assert [p.name for p in (out / "sweep" / "runs").iterdir()] == ["l1-la1-lf0-lr0.001-weighted-ce-w1_5_3"]
    runs = sorted(p.name for p in (out / "ablations" / "runs").iterdir())
    assert runs == sorted([
        "l1-la1-lf0-lr0.001-weighted-ce-w1_5_3",  # the reference, shared by the three ablations
        "l1-la1-lf0-lr0.001-weighted-ce-w1_5_3-pretrained_false", "l1-la1-lf1-lr0.001-weighted-ce-w1_5_3",
        "l1-la1-lf0-lr0.001-weighted-ce-w1_5_3-microscopes_C", "l1-la1-lf0-lr0.001-weighted-ce-w1_1_1",
        "l1-la1-lf0-lr0.001-weighted-bce-bw3",
    ])  # fmt: skip
    reference = json.loads((out / "ablations" / "runs" / runs[0] / "train_config.json").read_text())
    assert reference["sample_weights"]["C"] > 1 and reference["steps_per_epoch"] == 1
    text = (out / "results.md").read_text()
    for heading in ("Sweep over l, l_a, l_f", "What transfer learning buys", "What the other microscopes buy",
                    "The loss"):  # fmt: skip
        assert f"## {heading}" in text
    assert "l=1, l_a=1, l_f=0 (the sweep's best on dev (l1-la1-lf0" in text
    assert "l_a=4 is out of range for l=1" in text
    loss = (out / "results_loss.md").read_text().splitlines()
    rows = [line for line in loss if line.startswith("| ") and "configuration" not in line]
    assert len(rows) == 4 and rows[-1].startswith("| classical (Otsu + distance watershed)")
    assert all(row.count("|") == 10 and " of " in row for row in rows)  # every row has a merged share
    test_scores = out / "ablations" / "runs" / runs[0] / "holdout_test_C.json"
    assert json.loads(test_scores.read_text())["n_images"] == 1
    # Run again: everything is reused, nothing trains, the same tables come out.
    before = {p: p.stat().st_mtime_ns for p in (out / "ablations" / "runs").glob("*/model.safetensors")}
    assert run_experiments.main([*argv, "--only", "loss"]) == 0
    assert before == {
        p: p.stat().st_mtime_ns for p in (out / "ablations" / "runs").glob("*/model.safetensors")
    }
    assert (out / "results_loss.md").read_text().splitlines() == loss
