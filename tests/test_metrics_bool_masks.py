"""A bool mask given to the metrics is refused: scored as is, all its cells were one object."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.metrics import (
    aggregated_jaccard_index,
    dataset_metrics,
    error_maps,
    image_metrics,
    merged_touching_share,
)


def _labels() -> np.ndarray:
    gt = np.zeros((16, 16), np.uint16)
    gt[1:5, 1:5], gt[1:5, 5:9], gt[10:14, 10:14] = 1, 2, 3  # cells 1 and 2 touch
    return gt


@pytest.mark.parametrize("side", ["gt", "pred"])
def test_a_bool_mask_says_how_to_label_it(side):
    gt = _labels()
    args = {"gt": gt, "pred": gt.copy()}
    args[side] = args[side] > 0  # e.g. image_metrics(gt_mask > 0, pred): dsb_score 0.0, without a word
    message = rf"{side} is a binary \(bool\) mask .* skimage.measure.label\({side}\)"
    for score in (image_metrics, aggregated_jaccard_index, error_maps, merged_touching_share):
        with pytest.raises(ValueError, match=message):
            score(args["gt"], args["pred"])
    with pytest.raises(ValueError, match=message):
        dataset_metrics([args["gt"]], [args["pred"]])
    # what it says to do: label the mask (touching cells 1 and 2 become one), or say it is one object
    from skimage.measure import label

    assert image_metrics(label(gt > 0), gt).n_gt == 2
    assert image_metrics((gt > 0).astype(np.uint8), gt).n_gt == 1
