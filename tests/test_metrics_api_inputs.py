"""image_metrics and dataset_metrics called as StarDist's matching is: one IoU threshold, one image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.metrics import dataset_metrics, image_metrics


def _labels() -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((16, 16), np.uint16)
    gt[1:5, 1:5], gt[8:14, 8:14] = 1, 2
    pred = gt.copy()
    pred[8:14, 8:11] = 0  # half of cell 2: IoU 0.5
    return gt, pred


def test_one_threshold_is_taken_as_a_number():
    gt, pred = _labels()
    metrics = image_metrics(gt, pred, thresholds=0.5)
    assert metrics.thresholds == (0.5,)
    assert metrics.at("ap", 0.5) == 1.0
    assert image_metrics(gt, pred, thresholds=0.75).ap == pytest.approx((1 / 3,))  # 1 TP, 1 FP, 1 FN
    _, pooled = dataset_metrics([gt], [pred], thresholds=0.5)
    assert pooled.at("ap", 0.5) == 1.0
    with pytest.raises(
        TypeError, match=r"thresholds must be an IoU or a sequence of IoUs in \(0, 1\], got '0.5'"
    ):
        image_metrics(gt, pred, thresholds="0.5")


def test_one_image_given_to_dataset_metrics_says_to_use_image_metrics():
    gt, pred = _labels()
    with pytest.raises(
        ValueError, match=r"gts must be a sequence of label images .* got one image of shape \(16, 16\)"
    ):
        dataset_metrics(gt, pred)
    per_image, _ = dataset_metrics(np.stack([gt, gt]), np.stack([pred, gt]))  # (N, H, W) arrays
    assert len(per_image) == 2 and per_image[1].dsb_score == 1.0
