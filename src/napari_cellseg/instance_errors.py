"""Per-object error classes for review: false positives/negatives, splits, merges.

An object "lies mostly in" another when at least half of its pixels are inside
it; each object lies mostly in at most one other object.

- **split**: a ground-truth cell in which two or more predictions lie mostly;
- **merged**: a prediction in which two or more ground-truth cells lie mostly;
- **false negative**: a ground-truth cell unmatched at the IoU threshold that is
  neither split nor part of a merge (missed, or badly outlined);
- **false positive**: a prediction unmatched at the IoU threshold that is neither
  a piece of a split nor a merge (spurious, or badly outlined).

A split or merge may also hold a matched pair (a cell cut 70/30 keeps its 70 %
piece as a match): the classes describe what went wrong, not the AP counts.
"""

from __future__ import annotations

import numpy as np

from .instance_matching import (
    LabelOverlap,
    check_labels,
    check_scored_labels,
    consecutive_labels,
    label_overlap,
    match_instances,
)


def _mostly_in(overlap: LabelOverlap, of_gt: bool) -> np.ndarray:
    """For each gt (``of_gt``) or predicted object, the index of the other-side
    object holding at least half of its pixels, or -1."""
    own, other = (overlap.pair_gt, overlap.pair_pred) if of_gt else (overlap.pair_pred, overlap.pair_gt)
    areas = overlap.gt_areas if of_gt else overlap.pred_areas
    n = overlap.n_gt if of_gt else overlap.n_pred
    result = np.full(n, -1, dtype=np.int64)
    # Strictly more than half is unique; exactly half can tie, the first wins.
    ok = 2 * overlap.pair_intersection >= areas[own]
    result[own[ok][::-1]] = other[ok][::-1]
    return result


def _select(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``labels`` with only the objects in ``ids`` kept."""
    if ids.size == 0:
        return np.zeros_like(labels)
    return np.where(np.isin(labels, ids), labels, 0).astype(labels.dtype, copy=False)


def error_maps(gt, pred, iou: float = 0.5) -> dict:
    """Classify errors per object for review.

    Parameters
    ----------
    gt, pred : array_like of int
        Ground-truth and predicted instance labels of the same shape.
    iou : float
        IoU threshold of a match.

    Returns
    -------
    dict
        Label images (same shape and dtype as their source): ``"false_positive"``
        and ``"merged"`` hold predicted objects, ``"false_negative"`` and
        ``"split"`` hold ground-truth cells. Id lists (label values):
        ``"false_positive_ids"``, ``"merged_ids"`` (predictions),
        ``"merged_gt_ids"`` (the cells inside merges), ``"false_negative_ids"``,
        ``"split_ids"`` (gt cells), ``"split_pred_ids"`` (their pieces), and
        ``"matched_ids"``: ``(gt_id, pred_id)`` pairs.
    """
    gt = check_scored_labels(gt, "gt")
    pred = check_scored_labels(pred, "pred")
    overlap = label_overlap(gt, pred)
    matching = match_instances(overlap, iou)
    pred_home = _mostly_in(overlap, of_gt=False)
    gt_home = _mostly_in(overlap, of_gt=True)
    pieces_per_gt = np.bincount(pred_home[pred_home >= 0], minlength=overlap.n_gt)
    cells_per_pred = np.bincount(gt_home[gt_home >= 0], minlength=overlap.n_pred)

    split_gt = pieces_per_gt >= 2
    merged_pred = cells_per_pred >= 2
    split_piece = np.zeros(overlap.n_pred, bool)
    split_piece[pred_home >= 0] = split_gt[pred_home[pred_home >= 0]]
    merged_cell = np.zeros(overlap.n_gt, bool)
    merged_cell[gt_home >= 0] = merged_pred[gt_home[gt_home >= 0]]
    gt_matched = np.zeros(overlap.n_gt, bool)
    gt_matched[matching.gt_index] = True
    pred_matched = np.zeros(overlap.n_pred, bool)
    pred_matched[matching.pred_index] = True

    false_negative = ~gt_matched & ~split_gt & ~merged_cell
    false_positive = ~pred_matched & ~merged_pred & ~split_piece
    g, p = overlap.gt_ids, overlap.pred_ids
    return {
        "false_positive": _select(pred, p[false_positive]),
        "false_negative": _select(gt, g[false_negative]),
        "split": _select(gt, g[split_gt]),
        "merged": _select(pred, p[merged_pred]),
        "false_positive_ids": p[false_positive].tolist(),
        "false_negative_ids": g[false_negative].tolist(),
        "split_ids": g[split_gt].tolist(),
        "split_pred_ids": p[split_piece].tolist(),
        "merged_ids": p[merged_pred].tolist(),
        "merged_gt_ids": g[merged_cell].tolist(),
        "matched_ids": list(zip(g[matching.gt_index].tolist(), p[matching.pred_index].tolist())),
    }


def touching_pairs(labels) -> np.ndarray:
    """Pairs of different objects that touch (8-connected neighbours).

    Returns
    -------
    ndarray of int64, shape (k, 2)
        Label values ``(a, b)`` with ``a < b``, each pair once, sorted.
    """
    labels = check_labels(labels)
    if labels.ndim != 2:
        raise ValueError(f"touching_pairs needs a 2D label image, got shape {labels.shape}")
    ids = None
    if labels.size and int(labels.max()) >= 1 << 31:  # keep lo * stride + hi within int64
        lab, ids, _ = consecutive_labels(labels)  # before any cast: uint64 ids past 2**63 stay apart
    else:
        lab = labels.astype(np.int64, copy=False)
    stride = int(lab.max()) + 1 if lab.size else 1
    codes = []
    # Right, down, down-right and down-left neighbours cover all 8 directions once.
    for a, b in (
        (lab[:, :-1], lab[:, 1:]),
        (lab[:-1, :], lab[1:, :]),
        (lab[:-1, :-1], lab[1:, 1:]),
        (lab[:-1, 1:], lab[1:, :-1]),
    ):
        differ = (a != b) & (a > 0) & (b > 0)
        first, second = a[differ], b[differ]
        # One int64 code per unordered pair: 1D np.unique is far faster than axis=0.
        codes.append(np.minimum(first, second) * stride + np.maximum(first, second))
    unique = np.unique(np.concatenate(codes))
    pairs = np.stack([unique // stride, unique % stride], axis=1)
    return pairs if ids is None else ids[pairs - 1]


def merged_touching_share(gt, pred) -> float:
    """Share of touching ground-truth cell pairs that end up in one predicted instance.

    A pair counts as merged when both cells lie mostly (at least half of their
    pixels) in the same prediction. Returns ``nan`` when no cells touch.
    """
    gt = check_scored_labels(gt, "gt")
    pred = check_scored_labels(pred, "pred")
    pairs = touching_pairs(gt)
    if pairs.size == 0:
        return float("nan")
    overlap = label_overlap(gt, pred)
    home = _mostly_in(overlap, of_gt=True)
    first = home[np.searchsorted(overlap.gt_ids, pairs[:, 0])]
    second = home[np.searchsorted(overlap.gt_ids, pairs[:, 1])]
    return float(np.mean((first >= 0) & (first == second)))
