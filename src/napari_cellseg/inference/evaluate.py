"""Evaluate a folder of predicted label images against a folder of ground truth.

Files are paired by stem (``<id>.tif`` in both folders); a manifest CSV with
``id`` and ``microscope`` columns groups the images by microscope. Used by
``napari-cellseg evaluate``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..generators import run_to_end
from ..metrics import DSB_THRESHOLDS, ImageMetrics, PooledMetrics, image_metrics, pool_metrics
from .evaluate_files import (  # noqa: F401  (LABEL_SUFFIXES, read_labels: this module's names too)
    LABEL_SUFFIXES,
    EvaluationError,
    find_label_files,
    is_outlines,
    read_labels,
)

UNKNOWN_MICROSCOPE = "?"
ALL = "all"


@dataclass(frozen=True)
class ScoredIds:
    """The ground-truth ids to score (a split's subset) and what they are, for messages:
    ``name`` such as ``"test images of split.csv"``."""

    ids: frozenset[str]
    name: str


@dataclass(frozen=True)
class EvaluateProgress:
    """One image evaluated."""

    done: int
    total: int
    id: str


@dataclass
class EvaluationResult:
    """Per-image metrics, pooled metrics per microscope (and ``"all"``), and what was skipped."""

    images: list[ImageMetrics]
    microscopes: dict[str, str]  # image id -> microscope
    groups: dict[str, PooledMetrics]
    missing_predictions: list[str] = field(default_factory=list)
    unmatched_predictions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # which file of an image + outlines pair was used
    # predictions of ground-truth images outside the ScoredIds asked for (a split's other subsets)
    left_out: list[str] = field(default_factory=list)
    scored: str = ""  # ScoredIds.name, when only those were scored

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": list(self.images[0].thresholds) if self.images else list(DSB_THRESHOLDS),
            "pooling": {
                "plain fields": "from TP/FP/FN (and AJI sums) summed over the group's images",
                "image_mean_* fields": "mean of the per-image scores",
            },
            "groups": {name: pooled.to_dict() for name, pooled in self.groups.items()},
            "images": [{**m.to_dict(), "microscope": self.microscopes[m.name]} for m in self.images],
            "missing_predictions": self.missing_predictions,
            "unmatched_predictions": self.unmatched_predictions,
            **({"scored": self.scored, "left_out_predictions": self.left_out} if self.scored else {}),
        }


def read_microscopes(manifest: str | os.PathLike) -> dict[str, str]:
    """``{id: microscope}`` from a manifest CSV with ``id`` and ``microscope`` columns."""
    path = Path(manifest)
    from ..data.manifest import not_utf8

    try:  # utf-8-sig: Excel's "CSV UTF-8" starts with a BOM, as check, split and train accept
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            if "id" not in columns or "microscope" not in columns:
                raise EvaluationError(f"{path}: needs columns 'id' and 'microscope', has {columns}")
            reader.fieldnames = columns
            rows = [((row["id"] or "").strip(), (row["microscope"] or "").strip()) for row in reader]
            return {image_id: microscope or UNKNOWN_MICROSCOPE for image_id, microscope in rows}
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such manifest") from None
    except UnicodeDecodeError as err:
        raise EvaluationError(f"{path}: {not_utf8(err)}") from None
    except csv.Error as err:
        raise EvaluationError(f"{path}: not a readable CSV ({err})") from None


def _read_pair(pred_path: Path, gt_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and ground truth; outlines take the shape of the label image they meet."""
    if is_outlines(pred_path) and not is_outlines(gt_path):
        gt = read_labels(gt_path, "ground truth")
        return read_labels(pred_path, "prediction", gt.shape), gt
    try:
        pred = read_labels(pred_path, "prediction")
    except EvaluationError:
        if not is_outlines(pred_path):
            raise
        # Empty outlines (no cells) have no size of their own: the other file gives it.
        gt = read_labels(gt_path, "ground truth")
        return read_labels(pred_path, "prediction", gt.shape), gt
    try:
        gt = read_labels(gt_path, "ground truth", pred.shape if not is_outlines(pred_path) else None)
    except EvaluationError:
        if not is_outlines(gt_path):
            raise
        gt = read_labels(gt_path, "ground truth", pred.shape)
    if is_outlines(pred_path) and is_outlines(gt_path) and pred.shape != gt.shape:
        shape = tuple(max(a, b) for a, b in zip(pred.shape, gt.shape))  # both sized by their outlines
        pred, gt = (np.pad(x, [(0, s - n) for s, n in zip(shape, x.shape)]) for x in (pred, gt))
    return pred, gt


def split_subset_ids(split: str | os.PathLike, subset: str) -> ScoredIds:
    """The ids of one subset (``train``, ``dev`` or ``test``) of a split file, or
    :class:`EvaluationError` naming the file (unreadable, or no image in that subset)."""
    from ..data.splitfile import SUBSETS, SplitError, read_split

    if subset not in SUBSETS:
        raise EvaluationError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    try:
        subsets = read_split(split)
    except SplitError as err:
        raise EvaluationError(str(err)) from None
    ids = frozenset(i for i, s in subsets.items() if s == subset)
    if not ids:
        counts = ", ".join(f"{s} {sum(v == s for v in subsets.values())}" for s in SUBSETS)
        raise EvaluationError(f"{split}: no {subset} images ({counts})")
    return ScoredIds(ids, f"{subset} images of {Path(split).name}")


def _listed(ids: list[str], shown: int = 5) -> str:
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def _pairs(pred_dir, gt_dir, skip_missing: bool, notes: list[str], only: ScoredIds | None):
    """``(pairs, missing, unmatched, left_out)``: what to score and what was not (see EvaluationResult)."""
    preds = find_label_files(pred_dir, "predictions", notes)
    gts = find_label_files(gt_dir, "ground truth", notes)
    unmatched = sorted(set(preds) - set(gts))
    left_out: list[str] = []
    if only is not None:
        absent = sorted(only.ids - set(gts))
        if absent:  # another dataset's split, or a ground-truth folder short of images
            raise EvaluationError(
                f"{len(absent)} of the {len(only.ids)} {only.name} have no ground truth in {gt_dir}: "
                f"{_listed(absent)} (is it the split of this dataset?)"
            )
        left_out = sorted(set(preds) & (set(gts) - only.ids))
        gts = {stem: path for stem, path in gts.items() if stem in only.ids}
    missing = sorted(set(gts) - set(preds))
    if missing and not skip_missing:
        what = only.name if only is not None else "ground-truth images"
        raise EvaluationError(
            f"{len(missing)} of {len(gts)} {what} have no prediction in {pred_dir}: "
            f"{_listed(missing)} (use --skip-missing to evaluate the others)"
        )
    pairs = [(stem, preds[stem], gts[stem]) for stem in sorted(set(gts) & set(preds))]
    if not pairs:
        raise EvaluationError(f"no file stem is in both {pred_dir} and {gt_dir}")
    return pairs, missing, unmatched, left_out


def iter_evaluate_directories(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    *,
    microscopes: Mapping[str, str] | None = None,
    skip_missing: bool = False,
    only: ScoredIds | None = None,
) -> Generator[EvaluateProgress, None, EvaluationResult]:
    """Generator form of :func:`evaluate_directories`."""
    notes: list[str] = []
    pairs, missing, unmatched, left_out = _pairs(pred_dir, gt_dir, skip_missing, notes, only)
    microscopes = dict(microscopes or {})
    per_image: list[ImageMetrics] = []
    for index, (stem, pred_path, gt_path) in enumerate(pairs):
        pred, gt = _read_pair(pred_path, gt_path)
        if pred.shape != gt.shape:
            raise EvaluationError(
                f"{pred_path} has shape {pred.shape} but its ground truth {gt_path} has {gt.shape}"
            )
        try:
            per_image.append(image_metrics(gt, pred, name=stem))
        except ValueError as err:  # the metrics' own label checks: name the files
            raise EvaluationError(f"{pred_path} against {gt_path}: {err}") from None
        yield EvaluateProgress(index + 1, len(pairs), stem)
    by_id = {m.name: microscopes.get(m.name, UNKNOWN_MICROSCOPE) for m in per_image}
    groups = {
        name: pool_metrics([m for m in per_image if by_id[m.name] == name])
        for name in sorted(set(by_id.values()))
    }
    groups[ALL] = pool_metrics(per_image)
    scored = only.name if only is not None else ""
    return EvaluationResult(per_image, by_id, groups, missing, unmatched, notes, left_out, scored)


def evaluate_directories(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    *,
    microscopes: Mapping[str, str] | None = None,
    skip_missing: bool = False,
    only: ScoredIds | None = None,
    callback: Callable[[EvaluateProgress], None] | None = None,
) -> EvaluationResult:
    """Metrics of every prediction in ``pred_dir`` against ``gt_dir``, by file stem.

    Parameters
    ----------
    pred_dir, gt_dir : path
        Folders of label images (``.tif``, ``.tiff`` or ``.png``).
    microscopes : mapping, optional
        Image id -> microscope; images not in it are grouped as ``"?"``.
    skip_missing : bool
        Evaluate the images that have a prediction instead of failing when
        some ground truth has none (they are listed in the result).
    only : ScoredIds, optional
        Score these ground-truth ids only (:func:`split_subset_ids`: a split's test
        images): the others need no prediction, and their predictions are left out
        (``left_out``). Each of them must have ground truth.
    callback : callable, optional
        Called with each :class:`EvaluateProgress`.

    Raises
    ------
    EvaluationError
        Missing folders or predictions, unreadable files, mismatched shapes.
    """
    gen = iter_evaluate_directories(
        pred_dir, gt_dir, microscopes=microscopes, skip_missing=skip_missing, only=only
    )
    return run_to_end(gen, callback)


def format_table(groups: Mapping[str, PooledMetrics]) -> str:
    """Two plain-text tables: scores from pooled counts, then means of per-image scores."""
    header = f"{'microscope':<11}{'images':>7}{'AP@0.5':>9}{'AP@0.75':>9}{'DSB':>8}{'F1@0.5':>9}{'AJI':>8}"
    lines = []
    for title, prefix in (
        ("Pooled over objects (TP/FP/FN summed over images):", ""),
        ("Mean of per-image scores:", "image_mean_"),
    ):
        lines += [title, header]
        for name, m in groups.items():
            ap = getattr(m, prefix + "ap")
            f1 = getattr(m, prefix + "f1")
            index_50 = list(m.thresholds).index(0.5) if 0.5 in m.thresholds else None
            index_75 = list(m.thresholds).index(0.75) if 0.75 in m.thresholds else None
            cells = [
                f"{ap[index_50]:>9.3f}" if index_50 is not None else f"{'-':>9}",
                f"{ap[index_75]:>9.3f}" if index_75 is not None else f"{'-':>9}",
                f"{getattr(m, prefix + 'dsb_score'):>8.3f}",
                f"{f1[index_50]:>9.3f}" if index_50 is not None else f"{'-':>9}",
                f"{getattr(m, prefix + 'aji'):>8.3f}",
            ]
            lines.append(f"{name:<11}{m.n_images:>7}" + "".join(cells))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
