"""Hand-checkable metric cases, pooling, error maps and input checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_cellseg import instance_matching
from napari_cellseg.metrics import (
    DSB_THRESHOLDS,
    ImageMetrics,
    LabelOverlap,
    PooledMetrics,
    aggregated_jaccard_index,
    dataset_metrics,
    error_maps,
    image_metrics,
    label_overlap,
    match_instances,
    merged_touching_share,
    pool_metrics,
    touching_pairs,
)
from napari_cellseg.sample_data import load_sample


def square(shape=(40, 40), top=5, left=5, size=10, value=1, labels=None):
    labels = np.zeros(shape, np.uint16) if labels is None else labels
    labels[top : top + size, left : left + size] = value
    return labels


def test_dsb_thresholds_are_the_ten_of_the_challenge():
    assert DSB_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_identical_labels_score_one_everywhere():
    gt = square(value=3, labels=square(top=20, left=20, value=7))
    m = image_metrics(gt, gt)
    assert m.n_gt == m.n_pred == 2
    assert m.tp == (2,) * 10 and m.fp == (0,) * 10 and m.fn == (0,) * 10
    assert m.ap == (1.0,) * 10 and m.f1 == (1.0,) * 10
    assert m.dsb_score == 1.0 and m.aji == 1.0


def test_shifted_object_iou_two_thirds():
    # 10x10 square shifted by 2 columns: intersection 80, union 120, IoU 2/3.
    gt = square()
    pred = square(left=7)
    overlap = label_overlap(gt, pred)
    assert overlap.pair_iou.tolist() == pytest.approx([2 / 3])
    m = image_metrics(gt, pred)
    # Matched at 0.50 ... 0.65 (2/3 >= 0.65), not from 0.70 on.
    assert m.tp == (1, 1, 1, 1, 0, 0, 0, 0, 0, 0)
    assert m.ap == (1.0,) * 4 + (0.0,) * 6  # unmatched: 0 / (0 + 1 + 1)
    assert m.dsb_score == pytest.approx(0.4)
    assert m.aji == pytest.approx(80 / 120)
    assert m.at("ap", 0.65) == 1.0 and m.at("ap", 0.7) == 0.0


def test_split_cell():
    # One 10x10 cell predicted as a 7-column (IoU 0.7) and a 3-column piece (IoU 0.3).
    gt = square()
    pred = np.zeros_like(gt)
    pred[5:15, 5:12] = 2
    pred[5:15, 12:15] = 3
    m = image_metrics(gt, pred)
    assert m.at("tp", 0.7) == 1 and m.at("fp", 0.7) == 1 and m.at("fn", 0.7) == 0
    assert m.at("ap", 0.7) == 0.5 and m.at("ap", 0.75) == 0.0
    assert m.at("precision", 0.5) == 0.5 and m.at("recall", 0.5) == 1.0
    assert m.at("f1", 0.5) == pytest.approx(2 / 3)
    assert m.dsb_score == pytest.approx(0.25)  # 5 thresholds at 1/2, 5 at 0
    assert m.aji == pytest.approx(70 / 130)  # best piece 70/100, unused piece adds 30
    errors = error_maps(gt, pred)
    assert errors["split_ids"] == [1] and errors["split_pred_ids"] == [2, 3]
    assert errors["false_positive_ids"] == [] and errors["false_negative_ids"] == []
    assert errors["matched_ids"] == [(1, 2)]
    assert np.array_equal(errors["split"], gt)


def test_merged_cells():
    # Two touching 10x10 cells predicted as one 10x20 object: IoU 0.5 with each.
    gt = square(value=1, labels=square(left=15, value=2))
    pred = (gt > 0).astype(np.uint16) * 5
    m = image_metrics(gt, pred)
    # At 0.5 one cell can take the prediction; above 0.5 none.
    assert m.tp[0] == 1 and m.fn[0] == 1 and m.fp[0] == 0
    assert m.ap[0] == 0.5 and m.ap[1:] == (0.0,) * 9
    assert m.dsb_score == pytest.approx(0.05)
    errors = error_maps(gt, pred)
    assert errors["merged_ids"] == [5] and errors["merged_gt_ids"] == [1, 2]
    assert errors["false_negative_ids"] == [] and errors["false_positive_ids"] == []
    assert np.array_equal(errors["merged"], pred)
    assert merged_touching_share(gt, pred) == 1.0
    assert merged_touching_share(gt, gt) == 0.0


def test_empty_prediction_and_empty_ground_truth():
    gt = square()
    empty = np.zeros_like(gt)
    missed = image_metrics(gt, empty)
    assert missed.tp[0] == 0 and missed.fn[0] == 1 and missed.ap[0] == 0.0
    assert missed.precision[0] == 0.0 and missed.recall[0] == 0.0 and missed.aji == 0.0
    spurious = image_metrics(empty, gt)
    assert spurious.fp[0] == 1 and spurious.ap[0] == 0.0 and spurious.dsb_score == 0.0
    nothing = image_metrics(empty, empty)  # nothing to find, nothing found
    assert nothing.ap == (1.0,) * 10 and nothing.aji == 1.0 and nothing.f1[0] == 1.0
    errors = error_maps(gt, empty)
    assert errors["false_negative_ids"] == [1] and errors["false_negative"].sum() > 0


def test_false_positive_and_false_negative_maps():
    gt = square(value=4, labels=square(top=25, left=25, value=9))
    pred = square(value=1, labels=square(top=25, left=2, value=2))  # one right, one elsewhere
    errors = error_maps(gt, pred)
    assert errors["false_positive_ids"] == [2] and errors["false_negative_ids"] == [9]
    assert set(np.unique(errors["false_positive"])) == {0, 2}
    assert set(np.unique(errors["false_negative"])) == {0, 9}
    assert errors["false_negative"].dtype == gt.dtype


def test_hungarian_beats_greedy_below_half():
    # gt 0 overlaps pred 0 (0.45) and pred 1 (0.35); gt 1 only pred 0 (0.40).
    # Greedy (best IoU first) would match 1 pair; the assignment matches 2.
    overlap = LabelOverlap(
        gt_ids=np.array([1, 2]),
        pred_ids=np.array([1, 2]),
        gt_areas=np.array([10, 10]),
        pred_areas=np.array([10, 10]),
        pair_gt=np.array([0, 0, 1]),
        pair_pred=np.array([0, 1, 0]),
        pair_intersection=np.array([5, 4, 5]),
        pair_iou=np.array([0.45, 0.35, 0.40]),
    )
    matching = match_instances(overlap, 0.3)
    assert sorted(zip(matching.gt_index.tolist(), matching.pred_index.tolist())) == [(0, 1), (1, 0)]
    assert match_instances(overlap, 0.42).n_matched == 1


def test_pooled_sums_counts_and_means_images():
    three = square(value=1, labels=square(top=20, value=2, labels=square(left=25, value=3)))
    one = square()
    per_image, pooled = dataset_metrics([three, one], [three, np.zeros_like(one)], names=["a", "b"])
    assert [m.name for m in per_image] == ["a", "b"]
    assert pooled.n_images == 2 and pooled.n_gt == 4 and pooled.n_pred == 3
    assert pooled.tp[0] == 3 and pooled.fn[0] == 1
    assert pooled.at("ap", 0.5) == pytest.approx(3 / 4)  # objects pooled
    assert pooled.image_mean_ap[0] == pytest.approx(0.5)  # images weighted equally
    assert pooled.dsb_score == pytest.approx(0.75) and pooled.image_mean_dsb_score == pytest.approx(0.5)
    assert pooled.aji == pytest.approx(300 / 400) and pooled.image_mean_aji == pytest.approx(0.5)
    with pytest.raises(ValueError, match="got 1 names for 2 images"):  # never an image dropped by zip
        dataset_metrics([three, one], [three, one], names=["a"])


def test_pool_refuses_nothing_and_mixed_thresholds():
    with pytest.raises(ValueError, match="at least one"):
        pool_metrics([])
    a = image_metrics(square(), square(), name="a")
    b = image_metrics(square(), square(), thresholds=(0.5,), name="b")
    with pytest.raises(ValueError, match="'b'"):
        pool_metrics([a, b])


def test_metrics_round_trip_json():
    m = image_metrics(square(), square(left=7), name="x")
    again = ImageMetrics.from_json(m.to_json())
    assert again == m
    pooled = pool_metrics([m, m])
    assert PooledMetrics.from_dict(json.loads(pooled.to_json())) == pooled


def test_label_values_do_not_matter():
    gt = square(value=1, labels=square(top=20, value=2))
    relabelled = np.where(gt == 1, 70000, np.where(gt == 2, 5_000_000, 0)).astype(np.uint32)
    assert image_metrics(gt, relabelled) == image_metrics(gt, gt)
    assert aggregated_jaccard_index(relabelled, gt) == 1.0


def test_dense_and_sparse_overlap_agree(monkeypatch):
    _, gt, _ = load_sample("c_histology_1")
    pred = np.roll(gt, 3, axis=0)
    dense = label_overlap(gt, pred)
    monkeypatch.setattr(instance_matching, "_DENSE_TABLE_LIMIT", 0)
    sparse = label_overlap(gt, pred)
    assert np.array_equal(dense.pair_intersection, sparse.pair_intersection)
    assert np.array_equal(dense.pair_gt, sparse.pair_gt)
    assert image_metrics(gt, gt).dsb_score == 1.0


def test_bad_inputs_name_the_problem():
    gt = square()
    with pytest.raises(ValueError, match=r"float32.*\(40, 40\)"):
        image_metrics(gt, gt.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(40, 40\) and \(40, 41\)"):
        image_metrics(gt, np.zeros((40, 41), np.uint16))
    with pytest.raises(ValueError, match=">= 0"):
        image_metrics(gt, -gt.astype(np.int32))
    with pytest.raises(ValueError, match="non-empty"):
        image_metrics(gt, gt, thresholds=())
    with pytest.raises(ValueError, match="iou_threshold"):
        match_instances(label_overlap(gt, gt), 0.0)


def test_touching_pairs_include_diagonal_contacts():
    labels = np.array([[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]], np.uint8)
    assert touching_pairs(labels).tolist() == [[1, 2], [2, 3]]
    huge = labels.astype(np.uint32) * np.uint32(1_000_000_000)
    assert touching_pairs(huge).tolist() == [[10**9, 2 * 10**9], [2 * 10**9, 3 * 10**9]]
    assert math.isnan(merged_touching_share(square(), square()))


def test_touching_uint64_ids_past_2_63_stay_two_cells():
    # the ids were cast to int64 first: negative, then dropped as background
    labels = np.array([[1, 2], [1, 2]], np.uint64) + np.uint64(2**63)
    assert len(touching_pairs(labels)) == 1
    assert merged_touching_share(labels, labels) == 0.0


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 6),
)
def test_swapping_gt_and_pred_swaps_fp_and_fn(seed, n_labels):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, n_labels + 1, (12, 12)).astype(np.uint16)
    pred = rng.integers(0, n_labels + 1, (12, 12)).astype(np.uint16)
    forward, backward = image_metrics(gt, pred), image_metrics(pred, gt)
    assert forward.tp == backward.tp
    assert forward.fp == backward.fn and forward.fn == backward.fp
    assert image_metrics(gt, gt).ap[-1] == 1.0
    assert all(0.0 <= v <= 1.0 for v in (*forward.ap, forward.aji))
