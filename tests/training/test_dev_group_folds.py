"""scripts/dev_group_folds.py: dev groups cut into folds, the other folds moved to train."""

from __future__ import annotations

import csv

import pytest


@pytest.fixture(scope="module")
def folds_script(load_script):
    return load_script("dev_group_folds")


def test_fold_groups_cut_in_name_order_by_image_count(folds_script):
    groups = {"a": 4, "b": 4, "c": 4, "d": 4, "e": 2, "f": 4, "g": 4, "h": 4, "i": 3}
    assert folds_script.fold_groups(groups, 2) == [["a", "b", "c", "d", "e"], ["f", "g", "h", "i"]]
    with pytest.raises(ValueError, match="between 2 and the 2 dev groups"):
        folds_script.fold_groups({"a": 1, "b": 1}, 3)


def test_write_folds_moves_the_other_dev_groups_to_train(folds_script, tmp_path):
    split = tmp_path / "split.csv"
    rows = [("t1", "C", "train", "g0"), ("d1", "C", "dev", "g1"), ("d2", "C", "dev", "g1"),
            ("d3", "C", "dev", "g2"), ("x1", "C", "test", "g3")]  # fmt: skip
    split.write_text("id,microscope,subset,group\n" + "".join(",".join(r) + "\n" for r in rows))
    paths = folds_script.write_folds(split, 2, tmp_path / "folds")
    subsets = [{r["id"]: r["subset"] for r in csv.DictReader(open(p))} for p in paths]
    assert subsets[0] == {"t1": "train", "d1": "dev", "d2": "dev", "d3": "train", "x1": "test"}
    assert subsets[1] == {"t1": "train", "d1": "train", "d2": "train", "d3": "dev", "x1": "test"}
    (tmp_path / "bad.csv").write_text("id,microscope,subset\nd1,C,dev\n")
    with pytest.raises(ValueError, match=r"bad\.csv: expected a split CSV with a 'group' column"):
        folds_script.write_folds(tmp_path / "bad.csv", 2, tmp_path / "folds")
