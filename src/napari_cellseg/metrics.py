"""Instance segmentation metrics: AP, precision/recall/F1, DSB 2018 score, AJI.

Definitions (those of StarDist and Cellpose; AP as the DSB 2018 defines it):

- Objects are matched one-to-one by IoU (see :mod:`napari_cellseg.instance_matching`;
  a pair counts when ``IoU >= t``; the DSB 2018 asked for ``IoU > t``, which
  makes ties at exactly ``t`` misses). At threshold ``t``: ``TP`` matched pairs,
  ``FP`` unmatched predictions, ``FN`` unmatched ground-truth objects.
- ``AP(t) = TP / (TP + FP + FN)`` (the DSB 2018 "average precision", not the
  area under a precision-recall curve); ``precision = TP / (TP + FP)``,
  ``recall = TP / (TP + FN)``, ``F1 = 2 TP / (2 TP + FP + FN)``.
- DSB score = mean of ``AP(t)`` over ``t = 0.50, 0.55, ..., 0.95``.
- Aggregated Jaccard index (Kumar et al. 2017): each ground-truth object takes
  the prediction of highest IoU; ``AJI = sum |G ∩ S| / (sum |G ∪ S| + area of
  predictions never taken)``.
- A ratio ``0 / 0`` is 1 when both images are empty (nothing to find, nothing
  found) and 0 otherwise. StarDist returns 0 for empty-vs-empty.

Pooling over a data set is reported two ways by :class:`PooledMetrics`: the
plain fields (``ap``, ``f1``, ``dsb_score``, ``aji``...) come from counts summed
over images (StarDist's ``matching_dataset(by_image=False)``; AJI sums its
intersections and unions), and the ``image_mean_*`` fields are the means of the
per-image scores.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import JsonConfig
from .instance_errors import error_maps, merged_touching_share, touching_pairs
from .instance_matching import LabelOverlap, Matching, label_overlap, match_instances

__all__ = [
    "DSB_THRESHOLDS",
    "ImageMetrics",
    "LabelOverlap",
    "Matching",
    "PooledMetrics",
    "aggregated_jaccard_index",
    "dataset_metrics",
    "error_maps",
    "image_metrics",
    "label_overlap",
    "match_instances",
    "merged_touching_share",
    "pool_metrics",
    "touching_pairs",
]

DSB_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _ratio(num: float, den: float, both_empty: bool) -> float:
    if den > 0:
        return float(num) / float(den)
    return 1.0 if both_empty else 0.0


def _scores(tp: int, fp: int, fn: int, both_empty: bool) -> tuple[float, float, float, float]:
    """precision, recall, F1, AP for one set of counts."""
    return (
        _ratio(tp, tp + fp, both_empty),
        _ratio(tp, tp + fn, both_empty),
        _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        _ratio(tp, tp + fp + fn, both_empty),
    )


def _index_of(thresholds: Sequence[float], threshold: float) -> int:
    for i, t in enumerate(thresholds):
        if math.isclose(t, threshold, abs_tol=1e-9):
            return i
    raise KeyError(f"threshold {threshold} not evaluated; have {list(thresholds)}")


class _AtThreshold:
    thresholds: tuple[float, ...]

    def at(self, metric: str, threshold: float = 0.5) -> float:
        """The value of a per-threshold field (``"ap"``, ``"f1"``, ``"tp"``...) at ``threshold``."""
        return getattr(self, metric)[_index_of(self.thresholds, threshold)]


@dataclass
class ImageMetrics(JsonConfig, _AtThreshold):
    """Metrics of one image. Per-threshold fields follow ``thresholds``."""

    name: str = ""
    n_gt: int = 0
    n_pred: int = 0
    thresholds: tuple[float, ...] = DSB_THRESHOLDS
    tp: tuple[int, ...] = ()
    fp: tuple[int, ...] = ()
    fn: tuple[int, ...] = ()
    precision: tuple[float, ...] = ()
    recall: tuple[float, ...] = ()
    f1: tuple[float, ...] = ()
    ap: tuple[float, ...] = ()
    dsb_score: float = 0.0
    aji: float = 0.0
    aji_intersection: int = 0
    aji_union: int = 0


@dataclass
class PooledMetrics(JsonConfig, _AtThreshold):
    """Metrics of a set of images, pooled two ways.

    ``tp``/``fp``/``fn`` are summed over images and ``precision``, ``recall``,
    ``f1``, ``ap``, ``dsb_score`` and ``aji`` are computed from those sums
    (objects pooled). ``image_mean_*`` are the means of per-image scores
    (images weighted equally).
    """

    n_images: int = 0
    n_gt: int = 0
    n_pred: int = 0
    thresholds: tuple[float, ...] = DSB_THRESHOLDS
    tp: tuple[int, ...] = ()
    fp: tuple[int, ...] = ()
    fn: tuple[int, ...] = ()
    precision: tuple[float, ...] = ()
    recall: tuple[float, ...] = ()
    f1: tuple[float, ...] = ()
    ap: tuple[float, ...] = ()
    dsb_score: float = 0.0
    aji: float = 0.0
    image_mean_precision: tuple[float, ...] = ()
    image_mean_recall: tuple[float, ...] = ()
    image_mean_f1: tuple[float, ...] = ()
    image_mean_ap: tuple[float, ...] = ()
    image_mean_dsb_score: float = 0.0
    image_mean_aji: float = 0.0


def _aji_sums(overlap: LabelOverlap) -> tuple[int, int]:
    """Intersection and union sums of the aggregated Jaccard index."""
    if overlap.pair_gt.size == 0:
        return 0, int(overlap.gt_areas.sum() + overlap.pred_areas.sum())
    # Best prediction of each gt object: sort pairs by gt, then by IoU descending.
    order = np.lexsort((-overlap.pair_iou, overlap.pair_gt))
    _, first = np.unique(overlap.pair_gt[order], return_index=True)
    best = order[first]
    inter = overlap.pair_intersection[best]
    gt_i, pred_i = overlap.pair_gt[best], overlap.pair_pred[best]
    union = overlap.gt_areas[gt_i] + overlap.pred_areas[pred_i] - inter
    gt_unpaired = np.ones(overlap.n_gt, bool)
    gt_unpaired[gt_i] = False
    pred_unused = np.ones(overlap.n_pred, bool)
    pred_unused[pred_i] = False
    total_union = union.sum() + overlap.gt_areas[gt_unpaired].sum() + overlap.pred_areas[pred_unused].sum()
    return int(inter.sum()), int(total_union)


def aggregated_jaccard_index(gt, pred) -> float:
    """Aggregated Jaccard index of two label images (1 when both are empty)."""
    overlap = label_overlap(gt, pred)
    inter, union = _aji_sums(overlap)
    return _ratio(inter, union, overlap.n_gt == 0 and overlap.n_pred == 0)


def image_metrics(
    gt, pred, *, thresholds: float | Sequence[float] = DSB_THRESHOLDS, name: str = ""
) -> ImageMetrics:
    """Match ``pred`` to ``gt`` and compute the metrics of one image.

    Parameters
    ----------
    gt, pred : array_like of int
        Ground-truth and predicted instance labels, same shape, 0 = background.
        A bool mask is refused: label its objects first (``skimage.measure.label``).
    thresholds : float or sequence of float
        IoU thresholds in ``(0, 1]``; the DSB score is the mean AP over them.
    name : str
        Stored in the result (an image id).

    Returns
    -------
    ImageMetrics

    Raises
    ------
    ValueError
        If ``gt`` or ``pred`` is a bool mask, not integers, negative or of another shape.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((8, 8), np.uint16); gt[1:4, 1:4] = 1
    >>> image_metrics(gt, gt).dsb_score
    1.0
    """
    thresholds = _check_thresholds(thresholds)
    return _metrics_from_overlap(label_overlap(gt, pred), thresholds, name)


def _check_thresholds(thresholds: float | Sequence[float]) -> tuple[float, ...]:
    """``thresholds`` as a tuple of floats in ``(0, 1]``; one number is one threshold."""
    if isinstance(thresholds, numbers.Real) and not isinstance(thresholds, bool):
        thresholds = (thresholds,)
    try:
        thresholds = tuple(float(t) for t in thresholds)
    except (TypeError, ValueError):
        raise TypeError(
            f"thresholds must be an IoU or a sequence of IoUs in (0, 1], got {thresholds!r}"
        ) from None
    if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
        raise ValueError(f"thresholds must be a non-empty sequence of IoUs in (0, 1], got {thresholds}")
    return thresholds


def _metrics_from_overlap(overlap: LabelOverlap, thresholds: tuple[float, ...], name: str):
    both_empty = overlap.n_gt == 0 and overlap.n_pred == 0
    tp = [match_instances(overlap, t).n_matched for t in thresholds]
    fp = [overlap.n_pred - n for n in tp]
    fn = [overlap.n_gt - n for n in tp]
    scores = [_scores(*counts, both_empty) for counts in zip(tp, fp, fn)]
    precision, recall, f1, ap = (tuple(column) for column in zip(*scores))
    inter, union = _aji_sums(overlap)
    return ImageMetrics(
        name=name,
        n_gt=overlap.n_gt,
        n_pred=overlap.n_pred,
        thresholds=thresholds,
        tp=tuple(tp),
        fp=tuple(fp),
        fn=tuple(fn),
        precision=precision,
        recall=recall,
        f1=f1,
        ap=ap,
        dsb_score=float(np.mean(ap)),
        aji=_ratio(inter, union, both_empty),
        aji_intersection=inter,
        aji_union=union,
    )


def pool_metrics(images: Sequence[ImageMetrics]) -> PooledMetrics:
    """Pool per-image metrics: summed counts and means of per-image scores.

    Raises
    ------
    ValueError
        If ``images`` is empty or the images were evaluated at different thresholds.
    """
    images = list(images)
    if not images:
        raise ValueError("pool_metrics needs at least one ImageMetrics, got none")
    thresholds = tuple(images[0].thresholds)
    for m in images:
        if tuple(m.thresholds) != thresholds:
            raise ValueError(
                f"image {m.name!r} was evaluated at thresholds {m.thresholds}, others at {thresholds}"
            )
    n_gt = sum(m.n_gt for m in images)
    n_pred = sum(m.n_pred for m in images)
    both_empty = n_gt == 0 and n_pred == 0
    tp, fp, fn = (
        tuple(int(v) for v in np.sum([getattr(m, k) for m in images], axis=0)) for k in ("tp", "fp", "fn")
    )
    scores = [_scores(*counts, both_empty) for counts in zip(tp, fp, fn)]
    precision, recall, f1, ap = (tuple(column) for column in zip(*scores))

    def mean(field: str) -> tuple[float, ...]:
        return tuple(float(v) for v in np.mean([getattr(m, field) for m in images], axis=0))

    return PooledMetrics(
        n_images=len(images),
        n_gt=n_gt,
        n_pred=n_pred,
        thresholds=thresholds,
        tp=tp,
        fp=fp,
        fn=fn,
        precision=precision,
        recall=recall,
        f1=f1,
        ap=ap,
        dsb_score=float(np.mean(ap)),
        aji=_ratio(sum(m.aji_intersection for m in images), sum(m.aji_union for m in images), both_empty),
        image_mean_precision=mean("precision"),
        image_mean_recall=mean("recall"),
        image_mean_f1=mean("f1"),
        image_mean_ap=mean("ap"),
        image_mean_dsb_score=float(np.mean([m.dsb_score for m in images])),
        image_mean_aji=float(np.mean([m.aji for m in images])),
    )


def dataset_metrics(
    gts: Sequence,
    preds: Sequence,
    *,
    names: Sequence[str] | None = None,
    thresholds: float | Sequence[float] = DSB_THRESHOLDS,
) -> tuple[list[ImageMetrics], PooledMetrics]:
    """Per-image metrics of paired label images and their pooled summary.

    Parameters
    ----------
    gts, preds : sequence of array_like of int
        Ground-truth and predicted instance labels, one pair per image (a list,
        or an ``(N, H, W)`` array); each pair of one shape.
    names : sequence of str, optional
        One per image (default ``"0"``, ``"1"``, ...).
    thresholds : float or sequence of float
        IoU thresholds in ``(0, 1]``.

    Returns
    -------
    per_image : list of ImageMetrics
    pooled : PooledMetrics
        TP/FP/FN summed over images, and the means of the per-image scores.
    """
    for side, images in (("gts", gts), ("preds", preds)):
        if getattr(images, "ndim", None) == 2:  # one image would be read as rows
            raise ValueError(
                f"{side} must be a sequence of label images (a list, or an (N, H, W) array), got one "
                f"image of shape {images.shape}: use image_metrics for one image, or put it in a list"
            )
    if len(gts) != len(preds):
        raise ValueError(f"got {len(gts)} ground-truth images but {len(preds)} predictions")
    names = list(names) if names is not None else [str(i) for i in range(len(gts))]
    if len(names) != len(gts):
        raise ValueError(f"got {len(names)} names for {len(gts)} images; give one name per image")
    per_image = [image_metrics(g, p, thresholds=thresholds, name=n) for g, p, n in zip(gts, preds, names)]
    return per_image, pool_metrics(per_image)
