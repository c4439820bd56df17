"""Overlap of two instance label images and one-to-one matching of their objects.

The overlap is computed in one pass over the pixels (``np.bincount`` over the
joint labels, or ``np.unique`` when the label counts are too large for a dense
table), never with per-object loops. :func:`match_instances` then pairs objects
whose IoU reaches a threshold:

- for thresholds above 0.5 a pair is unique by construction (an object can have
  IoU > 0.5 with at most one object of the other image), so the candidate pairs
  *are* the matching;
- for thresholds of 0.5 or less candidates can conflict; each conflicting
  group (connected component of the candidate graph) is solved with the
  Hungarian algorithm (``scipy.optimize.linear_sum_assignment``), maximising
  first the number of matches and then their summed IoU, as StarDist does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Beyond this many cells a dense (n_gt + 1) x (n_pred + 1) table is replaced by np.unique.
_DENSE_TABLE_LIMIT = 1 << 22
# Raw label values up to this use a lookup table to relabel; beyond it np.unique.
_LUT_LIMIT = 1 << 22  # also used by inference.watershed and inference.scale


def check_labels(labels, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a non-negative integer numpy array, or raise ``ValueError``.

    Parameters
    ----------
    labels : array_like
        Instance labels: 0 background, any positive integer one object.
    name : str
        How the array is called in error messages (for example a file name).
    """
    array = np.asarray(labels)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{name}: instance labels must be integers, got dtype {array.dtype} (shape {array.shape})"
        )
    if array.ndim < 2:
        raise ValueError(f"{name}: instance labels must be 2D or more, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.signedinteger) and array.size and array.min() < 0:
        raise ValueError(f"{name}: instance labels must be >= 0, found {array.min()}")
    return array


def check_scored_labels(labels, name: str) -> np.ndarray:
    """:func:`check_labels` for scoring: a bool mask is refused rather than scored as one object.

    Elsewhere (sizes, measurements) a mask's True pixels may well be one object; a score
    against ground truth of a mask of many cells as one is meaningless, and silent.
    """
    array = np.asarray(labels)
    if array.dtype == bool:
        raise ValueError(
            f"{name} is a binary (bool) mask of shape {array.shape}, not instance labels: its True "
            f"pixels would be scored as one object. Label its objects first, e.g. "
            f"skimage.measure.label({name}), or pass {name}.astype(np.uint8) if it is one object"
        )
    return check_labels(array, name)


def consecutive_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relabel to ``0..n`` keeping 0 as background.

    Returns
    -------
    relabelled : ndarray of int64
        Same shape; object ``i`` (1-based) is ``ids[i - 1]`` in ``labels``.
    ids : ndarray of int64, shape (n,)
        The original label of each object, ascending.
    areas : ndarray of int64, shape (n,)
        Pixel count of each object.
    """
    flat = labels.ravel()
    top = int(flat.max()) if flat.size else 0
    if top <= _LUT_LIMIT:
        counts = np.bincount(flat, minlength=top + 1)
        ids = np.flatnonzero(counts[1:]) + 1
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[ids] = np.arange(1, ids.size + 1)
        return lut[labels], ids.astype(np.int64), counts[ids].astype(np.int64)
    values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if values[0] != 0:  # no background pixel: shift so that index 0 stays background
        values, inverse, counts = np.r_[0, values], inverse + 1, np.r_[0, counts]
    return (
        inverse.reshape(labels.shape).astype(np.int64),
        values[1:].astype(np.int64),
        counts[1:].astype(np.int64),
    )


@dataclass(frozen=True)
class LabelOverlap:
    """Sparse overlap of ground-truth and predicted objects.

    Objects are indexed ``0..n-1`` in the order of their labels; ``gt_ids`` and
    ``pred_ids`` give the label values. Only overlapping pairs are listed.
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    gt_areas: np.ndarray
    pred_areas: np.ndarray
    pair_gt: np.ndarray  # index into gt_ids, one entry per overlapping pair
    pair_pred: np.ndarray
    pair_intersection: np.ndarray
    pair_iou: np.ndarray

    @property
    def n_gt(self) -> int:
        return int(self.gt_ids.size)

    @property
    def n_pred(self) -> int:
        return int(self.pred_ids.size)

    def iou_matrix(self) -> np.ndarray:
        """Dense ``(n_gt, n_pred)`` IoU matrix (for small images and tests)."""
        matrix = np.zeros((self.n_gt, self.n_pred))
        matrix[self.pair_gt, self.pair_pred] = self.pair_iou
        return matrix


def label_overlap(gt, pred) -> LabelOverlap:
    """Areas, pairwise intersections and IoU of the objects of two label images.

    Parameters
    ----------
    gt, pred : array_like of int
        Ground-truth and predicted instance labels of the same shape.

    Returns
    -------
    LabelOverlap
    """
    gt = check_scored_labels(gt, "gt")
    pred = check_scored_labels(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred must have the same shape, got {gt.shape} and {pred.shape}")
    gt_c, gt_ids, gt_areas = consecutive_labels(gt)
    pred_c, pred_ids, pred_areas = consecutive_labels(pred)
    both = (gt_c > 0) & (pred_c > 0)
    stride = pred_ids.size + 1
    codes = gt_c[both] * stride + pred_c[both]
    if (gt_ids.size + 1) * stride <= _DENSE_TABLE_LIMIT:
        table = np.bincount(codes, minlength=(gt_ids.size + 1) * stride)
        pair_codes = np.flatnonzero(table)
        intersections = table[pair_codes]
    else:
        pair_codes, intersections = np.unique(codes, return_counts=True)
    pair_gt = pair_codes // stride - 1
    pair_pred = pair_codes % stride - 1
    intersections = intersections.astype(np.int64)
    unions = gt_areas[pair_gt] + pred_areas[pair_pred] - intersections
    return LabelOverlap(
        gt_ids=gt_ids,
        pred_ids=pred_ids,
        gt_areas=gt_areas,
        pred_areas=pred_areas,
        pair_gt=pair_gt,
        pair_pred=pair_pred,
        pair_intersection=intersections,
        pair_iou=intersections / unions,
    )


@dataclass(frozen=True)
class Matching:
    """Matched pairs at one IoU threshold (indices into the overlap's id arrays)."""

    gt_index: np.ndarray
    pred_index: np.ndarray
    iou: np.ndarray

    @property
    def n_matched(self) -> int:
        return int(self.gt_index.size)


def match_instances(overlap: LabelOverlap, iou_threshold: float = 0.5) -> Matching:
    """One-to-one matching of objects whose IoU is at least ``iou_threshold``.

    Parameters
    ----------
    overlap : LabelOverlap
        From :func:`label_overlap`.
    iou_threshold : float
        In ``(0, 1]``. Pairs with ``IoU >= iou_threshold`` are candidates.

    Returns
    -------
    Matching
        Above 0.5 the candidates are already unique. At 0.5 or below, each
        group of conflicting candidates is solved by the Hungarian algorithm,
        maximising the number of matches first and their summed IoU second.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    keep = overlap.pair_iou >= iou_threshold
    gt_index, pred_index, iou = overlap.pair_gt[keep], overlap.pair_pred[keep], overlap.pair_iou[keep]
    if _all_unique(gt_index) and _all_unique(pred_index):
        return Matching(gt_index, pred_index, iou)
    return _match_conflicts(gt_index, pred_index, iou, overlap.n_gt, overlap.n_pred)


def _all_unique(index: np.ndarray) -> bool:
    return index.size < 2 or np.unique(index).size == index.size


def _match_conflicts(gt_index, pred_index, iou, n_gt: int, n_pred: int) -> Matching:
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    # Nodes 0..n_gt-1 are gt objects, n_gt.. are predictions; edges are candidate pairs.
    n_nodes = n_gt + n_pred
    graph = coo_matrix((np.ones(gt_index.size), (gt_index, pred_index + n_gt)), (n_nodes, n_nodes))
    _, component = connected_components(graph, directed=False)
    edge_component = component[gt_index]
    order = np.argsort(edge_component, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_component[order])) + 1
    kept = []
    for edges in np.split(order, bounds):
        if edges.size == 1:
            kept.append(edges)
            continue
        rows, row_of = np.unique(gt_index[edges], return_inverse=True)
        cols, col_of = np.unique(pred_index[edges], return_inverse=True)
        # Each match is worth 1 plus a tie-break below 1/(2 k): cardinality always wins.
        weight = np.zeros((rows.size, cols.size))
        weight[row_of, col_of] = 1.0 + iou[edges] / (2 * min(rows.size, cols.size))
        r, c = linear_sum_assignment(weight, maximize=True)
        chosen = weight[r, c] > 0
        lookup = {(a, b): e for a, b, e in zip(row_of, col_of, edges)}
        kept.append(np.array([lookup[(a, b)] for a, b in zip(r[chosen], c[chosen])], dtype=int))
    keep = np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=int)
    return Matching(gt_index[keep], pred_index[keep], iou[keep])
