"""Qt-free logic of the Review widget: comparing label images, the metrics table, model checks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.app.review import (
    METRICS_HEADER,
    compare_labels,
    metrics_row,
    model_status,
    subset_ids,
)


def _hand_checkable_pair():
    """Four true cells; the prediction misses one, merges two and adds a spurious one."""
    gt = np.zeros((20, 40), np.uint16)
    gt[2:8, 2:8] = 1  # found exactly
    gt[2:8, 12:18] = 2  # missed
    gt[12:18, 2:10], gt[12:18, 10:14] = 3, 4  # touching, merged (48 + 24 px)
    pred = np.zeros_like(gt)
    pred[2:8, 2:8] = 7
    pred[12:18, 2:14] = 9
    pred[12:16, 30:34] = 5  # spurious
    return gt, pred


def test_compare_labels_hand_checked():
    gt, pred = _hand_checkable_pair()
    result = compare_labels(gt, pred, name="toy")
    m = result.metrics
    # at IoU 0.5: cell 1 and the merge (IoU 48/72 with cell 3) match; cells 2, 4 are missed; 5 is spurious
    assert (m.at("tp"), m.at("fp"), m.at("fn")) == (2, 1, 2)
    assert m.at("ap") == pytest.approx(2 / 5)
    assert m.at("f1") == pytest.approx(4 / 7)
    # from 0.70 on only cell 1 matches: AP 1/(1+2+3)
    expected = [2 / 5] * 4 + [1 / 6] * 6  # thresholds 0.50, 0.55, 0.60, 0.65 | 0.70 ... 0.95
    assert m.dsb_score == pytest.approx(np.mean(expected))
    errors = result.errors
    assert errors["false_negative_ids"] == [2]
    assert errors["false_positive_ids"] == [5]
    assert errors["merged_ids"] == [9] and errors["merged_gt_ids"] == [3, 4]
    assert errors["split_ids"] == []
    assert set(np.unique(errors["false_positive"])) == {0, 5}
    row = metrics_row("toy", m)
    assert len(row) == len(METRICS_HEADER) and row[:3] == ["toy", 1, 4]
    assert "AP@0.5 0.400" in result.summary()


def test_compare_labels_checks_inputs():
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4\)"):
        compare_labels(np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="dtype float64"):
        compare_labels(np.zeros((4, 4)), np.zeros((4, 4), np.uint8))


def test_model_status(tmp_path):
    ok, text = model_status(tmp_path / "absent")
    assert not ok and "no such model directory" in text
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    ok, text = model_status(tmp_path / "half")
    assert not ok and "model.safetensors" in text


def test_subset_ids_and_targets_ground_truth(tiny_dataset):
    from napari_cellseg.app.annotation import save_annotation
    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.data.targets import instances_to_targets
    from napari_cellseg.sample_data import load_sample

    image, mask, _ = load_sample("a_fluorescence_3")
    save_annotation(tiny_dataset, "painted", image, instances_to_targets(mask), "A", annotation=True)
    dataset = CellDataset.open(tiny_dataset)
    cells = dataset.load_reference_instances("painted")  # a targets/ entry: instances from its interiors
    assert cells.max() == mask.max()
    split = dict.fromkeys(dataset.ids, "train") | {"painted": "dev"}
    assert subset_ids(split, dataset, "dev") == ["painted"]
    with pytest.raises(ValueError, match="holds no test images"):
        subset_ids(split, dataset, "test")
    with pytest.raises(ValueError, match="not in the dataset"):
        subset_ids({"ghost": "dev"}, dataset, "dev")


def test_compare_labels_says_stacks_are_stacks():
    # Same shapes: "ground truth has shape (2, 8, 8), prediction (2, 8, 8)" read like a mismatch.
    stack = np.zeros((2, 8, 8), np.uint16)
    with pytest.raises(ValueError, match=r"one 2D image at a time; the ground truth is a stack of 2 planes"):
        compare_labels(stack, stack)
    with pytest.raises(ValueError, match=r"the prediction is a stack of 3 planes"):
        compare_labels(stack[0], np.zeros((3, 8, 8), np.uint16))
