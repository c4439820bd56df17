"""Qt-free logic behind the Review widget.

- :func:`compare_labels`: metrics (AP@0.5, F1, DSB score...) of a predicted
  label image against ground truth, and the error maps (false positives,
  false negatives, split and merged cells) of :mod:`napari_cellseg.instance_errors`.
- :func:`iter_evaluate_model`: segment every image of one subset of a split
  (dev or test) with a model and pool the metrics per microscope; a
  generator of :class:`EvaluateModelProgress` reports returning an
  :class:`~napari_cellseg.inference.evaluate.EvaluationResult`
  (:func:`evaluate_model` is its synchronous form).
- :func:`metrics_rows`: the table the widget shows.

Torch is imported only when a model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import ImageMetrics, PooledMetrics, error_maps, image_metrics, pool_metrics

ERROR_KINDS = ("false_positive", "false_negative", "split", "merged")
# Colours of the error layers: bright hues that stand out on H&E purple and on dark fluorescence.
ERROR_COLORS = {
    "false_positive": (1.0, 0.35, 0.0, 1.0),  # orange
    "false_negative": (1.0, 0.9, 0.0, 1.0),  # yellow
    "split": (0.0, 0.9, 1.0, 1.0),  # cyan
    "merged": (0.2, 1.0, 0.3, 1.0),  # green
}
METRICS_HEADER = ("microscope", "images", "cells", "AP@0.5", "F1@0.5", "AP@0.75", "DSB score", "AJI")


@dataclass(frozen=True)
class LabelComparison:
    """Metrics of one prediction against ground truth, and its error maps.

    ``errors`` is the dict of :func:`napari_cellseg.metrics.error_maps`: label
    images ``false_positive``, ``merged`` (predicted objects), ``false_negative``,
    ``split`` (ground-truth cells), and their id lists.
    """

    metrics: ImageMetrics
    errors: dict[str, Any]

    def rows(self) -> list[tuple[str, float | int]]:
        """``(name, value)`` rows: the scores, then the object counts and error classes."""
        m, e = self.metrics, self.errors
        return [
            ("AP@0.5", m.at("ap", 0.5)),
            ("F1@0.5", m.at("f1", 0.5)),
            ("AP@0.75", m.at("ap", 0.75)),
            ("DSB score", float(m.dsb_score)),
            ("AJI", float(m.aji)),
            ("true cells", m.n_gt),
            ("predicted cells", m.n_pred),
            ("false positives", len(e["false_positive_ids"])),
            ("false negatives", len(e["false_negative_ids"])),
            ("split cells", len(e["split_ids"])),
            ("merged cells", len(e["merged_ids"])),
        ]

    def summary(self) -> str:
        m, e = self.metrics, self.errors
        return (
            f"AP@0.5 {m.at('ap', 0.5):.3f}, F1@0.5 {m.at('f1', 0.5):.3f}, DSB score {m.dsb_score:.3f} "
            f"({m.n_gt} true, {m.n_pred} predicted cells; {len(e['false_positive_ids'])} false positive, "
            f"{len(e['false_negative_ids'])} false negative, {len(e['split_ids'])} split, "
            f"{len(e['merged_ids'])} merged)"
        )


def compare_labels(gt: Any, pred: Any, *, iou: float = 0.5, name: str = "") -> LabelComparison:
    """Compare a predicted instance label image with ground truth.

    Parameters
    ----------
    gt, pred : (H, W) integer arrays
        Ground-truth and predicted instances, 0 background.
    iou : float
        IoU threshold of a match for the error maps.
    name : str
        Stored in the metrics (e.g. the image id).

    Returns
    -------
    LabelComparison

    Raises
    ------
    ValueError
        If the arrays are not integer label images of the same 2D shape.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    for what, labels in (("the ground truth", gt), ("the prediction", pred)):
        if labels.ndim == 3:  # not a shape mismatch: say what the user has, and what to do
            raise ValueError(
                f"Review compares one 2D image at a time; {what} is a stack of {labels.shape[0]} planes "
                f"(shape {labels.shape}): compare one plane at a time"
            )
    if gt.ndim != 2 or pred.ndim != 2:
        raise ValueError(
            f"compare 2D label images: ground truth has shape {gt.shape}, prediction {pred.shape}"
        )
    if gt.shape != pred.shape:
        raise ValueError(
            f"ground truth has shape {gt.shape} but the prediction {pred.shape}: "
            "they must label the same image"
        )
    return LabelComparison(image_metrics(gt, pred, name=name), error_maps(gt, pred, iou=iou))


def metrics_row(name: str, metrics: ImageMetrics | PooledMetrics) -> list[Any]:
    """One row under :data:`METRICS_HEADER` (pooled metrics: counts summed over images)."""
    n_images = getattr(metrics, "n_images", 1)
    return [
        name,
        n_images,
        metrics.n_gt,
        metrics.at("ap", 0.5),
        metrics.at("f1", 0.5),
        metrics.at("ap", 0.75),
        float(metrics.dsb_score),
        float(metrics.aji),
    ]


def metrics_rows(groups: Mapping[str, PooledMetrics]) -> list[list[Any]]:
    """Rows of the per-microscope table (``groups`` as in an ``EvaluationResult``)."""
    return [metrics_row(name, pooled) for name, pooled in groups.items()]


@dataclass(frozen=True)
class EvaluateModelProgress:
    """Progress of :func:`iter_evaluate_model`: image ``done`` of ``total``."""

    stage: str  # "model", "segment" or "metrics"
    done: int
    total: int
    id: str = ""


def model_status(model_dir: str | os.PathLike | None) -> tuple[bool, str]:
    """Whether a model is available at ``model_dir`` (None: the bundled default), and a sentence."""
    from ..inference.runtime import ModelNotFoundError, resolve_model_dir

    try:
        directory = resolve_model_dir(model_dir)
    except ModelNotFoundError as err:
        return False, str(err)
    return True, f"model: {directory}"


def subset_ids(split: Mapping[str, str], dataset, subset: str) -> list[str]:
    """Ids of ``subset`` in a split, in dataset order; a clear error when there are none."""
    missing = [i for i, s in split.items() if s == subset and i not in dataset]
    if missing:
        raise ValueError(
            f"{len(missing)} {subset} id(s) of the split are not in the dataset {dataset.root} "
            f"(e.g. {missing[:3]}): is the split from another dataset?"
        )
    ids = [i for i in dataset.ids if split.get(i) == subset]
    if not ids:
        raise ValueError(f"the split holds no {subset} images")
    return ids


def iter_evaluate_model(
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    subset: str = "dev",
    model_dir: str | os.PathLike | None = None,
    *,
    device: Any = "auto",
    model_loader: Callable[..., tuple[Any, Any]] | None = None,
    segment_options: Mapping[str, Any] | None = None,
) -> Generator[EvaluateModelProgress, None, Any]:
    """Segment the ``subset`` images of a split with a model and score them.

    Parameters
    ----------
    data_dir : path
        The dataset folder.
    split_path : path
        Its ``split.csv`` (see :mod:`napari_cellseg.data.splitfile`).
    subset : {"dev", "test", "train"}
        Which images to evaluate.
    model_dir : path, optional
        A model directory; None uses the bundled default model.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda:0"``...
    model_loader : callable, optional
        ``model_loader(model_dir, device=...) -> (model, config)``; default
        :func:`napari_cellseg.inference.runtime.resolve_model`.
    segment_options : mapping, optional
        Extra keyword arguments of ``iter_segment_image`` (tile size...).

    Yields
    ------
    EvaluateModelProgress

    Returns
    -------
    napari_cellseg.inference.evaluate.EvaluationResult
        Per-image metrics, and metrics pooled per microscope and over ``"all"``.
    """
    from ..data.dataset import CellDataset
    from ..data.splitfile import SUBSETS, read_split
    from ..inference.evaluate import ALL, EvaluationResult
    from ..inference.segment import iter_segment_image

    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    dataset = CellDataset.open(data_dir)
    ids = subset_ids(read_split(Path(split_path)), dataset, subset)
    total = len(ids)
    yield EvaluateModelProgress("model", 0, total)
    if model_loader is None:
        from ..inference.runtime import resolve_model as model_loader
    model, config = model_loader(model_dir, device=device)
    per_image: list[ImageMetrics] = []
    for index, image_id in enumerate(ids):
        image = dataset.load_image(image_id)
        gt = dataset.load_reference_instances(image_id)
        steps = iter_segment_image(
            model, config, image, keep_probabilities=False, **dict(segment_options or {})
        )
        # Each tile is a cancel point; the bar moves per image.
        segmentation = yield from _as_image_progress(steps, index, total, image_id)
        per_image.append(image_metrics(gt, segmentation.labels, name=image_id))
        yield EvaluateModelProgress("metrics", index + 1, total, image_id)
    microscopes = {i: dataset[i].microscope for i in ids}
    groups = {
        tag: pool_metrics([m for m in per_image if microscopes[m.name] == tag])
        for tag in sorted(set(microscopes.values()))
    }
    groups[ALL] = pool_metrics(per_image)
    return EvaluationResult(per_image, microscopes, groups)


def _as_image_progress(
    generator: Generator, index: int, total: int, image_id: str
) -> Generator[EvaluateModelProgress, None, Any]:
    """Run a segmentation generator, reporting it as image ``index`` of ``total``."""
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value
        yield EvaluateModelProgress("segment", index, total, image_id)


def evaluate_model(*args: Any, callback: Callable[[Any], None] | None = None, **kwargs: Any):
    """Synchronous :func:`iter_evaluate_model`; ``callback`` gets each report."""
    from ..inference.predict import run_to_end

    return run_to_end(iter_evaluate_model(*args, **kwargs), callback)
