"""Scores on held-out images (the test rows of a split) for experiment tables.

:func:`iter_score_holdout` segments the test images of one microscope with any
``segment(image) -> labels`` function and pools, over the images: AP@0.5
(TP / (TP + FP + FN), counts pooled), the DSB score, the share of touching
ground-truth cell pairs that end up merged, and the AP@0.5 of each group of
the split's ``group`` column (near-duplicate tiles of one slide), whose mean,
min and max show how much the score depends on which slides are tested.
:func:`score_model` does it for a model directory (cached next to the model),
:func:`score_classical` for the no-learning baseline. torch loads with a model.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError, JsonConfig
from ..generators import run_to_end

CACHE_PREFIX = "holdout"


@dataclass
class HoldoutScores(JsonConfig):
    """Scores of one segmenter on the held-out images of one microscope.

    Attributes
    ----------
    name : str
        What was scored (a run name, ``classical``).
    subset, microscope : str
        Which rows of the split (``test``, ``C``).
    n_images, n_cells : int
        Images scored and ground-truth cells in them.
    ap50, dsb_score : float
        AP at IoU 0.5 and the DSB score (mean AP over IoU 0.5..0.95), from
        counts pooled over the images.
    ap50_image_mean : float
        Mean of the per-image AP@0.5.
    merged_touching : float or None
        Share of touching ground-truth pairs whose two cells lie mostly in one
        predicted object, pooled over the images (None: no cells touch).
    touching_pairs : int
    group_ap50 : dict
        AP@0.5 per group of the split (an image without a group is its own group).
    key : str
        What the scores were computed from (weights hash and split hash): the cache key.
    """

    name: str = ""
    subset: str = "test"
    microscope: str = "C"
    n_images: int = 0
    n_cells: int = 0
    ap50: float = 0.0
    dsb_score: float = 0.0
    ap50_image_mean: float = 0.0
    merged_touching: float | None = None
    touching_pairs: int = 0
    group_ap50: dict[str, float] = field(default_factory=dict)
    key: str = ""

    def group_stats(self) -> tuple[float | None, float | None, float | None]:
        """Mean, min and max of the per-group AP@0.5 (None when there are no groups)."""
        values = list(self.group_ap50.values())
        if not values:
            return None, None, None
        return float(np.mean(values)), float(min(values)), float(max(values))


@dataclass(frozen=True)
class HoldoutProgress:
    """Image ``done`` of ``total`` scored."""

    done: int
    total: int
    id: str = ""


def holdout_ids(
    split_path: str | os.PathLike, dataset: Any, subset: str = "test", microscope: str | None = "C"
):
    """``[(id, group), ...]`` of the ``subset`` rows of ``microscope`` (None: all), in split order.

    Raises
    ------
    ValueError
        When the split names ids the dataset lacks, or leaves no image to score.
    """
    from ..data.splitfile import read_split

    path = Path(split_path)
    subsets = read_split(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        groups = {(r.get("id") or "").strip(): (r.get("group") or "").strip() for r in csv.DictReader(fh)}
    missing = [i for i, s in subsets.items() if s == subset and i not in dataset]
    if missing:
        raise ValueError(f"{path}: {len(missing)} {subset} id(s) are not in the dataset (e.g. {missing[:3]})")
    ids = [
        i
        for i, s in subsets.items()
        if s == subset and (microscope is None or dataset[i].microscope == microscope)
    ]
    if not ids:
        raise ValueError(f"{path}: no {subset} images of microscope {microscope!r} to score")
    return [(i, groups.get(i) or i) for i in ids]


def iter_score_holdout(
    segment: Callable[[np.ndarray], np.ndarray],
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    *,
    subset: str = "test",
    microscope: str | None = "C",
    name: str = "",
) -> Generator[HoldoutProgress, None, HoldoutScores]:
    """Segment the held-out images with ``segment`` and score them (see the module docstring)."""
    from ..data.dataset import CellDataset
    from ..metrics import image_metrics, merged_touching_share, pool_metrics, touching_pairs

    dataset = CellDataset.open(data_dir)
    chosen = holdout_ids(split_path, dataset, subset, microscope)
    per_image, by_group = [], {}
    merged_sum, pairs_total = 0.0, 0
    for index, (image_id, group) in enumerate(chosen):
        gt = dataset.load_reference_instances(image_id)
        labels = np.asarray(segment(dataset.load_image(image_id)))
        if labels.shape != gt.shape:
            raise ValueError(
                f"{name}: segmenting {image_id} gave shape {labels.shape}, the image is {gt.shape}"
            )
        metrics = image_metrics(gt, labels, name=image_id)
        per_image.append(metrics)
        by_group.setdefault(group, []).append(metrics)
        n_pairs = len(touching_pairs(gt))
        if n_pairs:
            merged_sum += merged_touching_share(gt, labels) * n_pairs
            pairs_total += n_pairs
        yield HoldoutProgress(index + 1, len(chosen), image_id)
    pooled = pool_metrics(per_image)
    return HoldoutScores(
        name=name, subset=subset, microscope=microscope or "all", n_images=len(per_image),
        n_cells=int(pooled.n_gt), ap50=float(pooled.at("ap", 0.5)), dsb_score=float(pooled.dsb_score),
        ap50_image_mean=float(pooled.at("image_mean_ap", 0.5)),
        merged_touching=merged_sum / pairs_total if pairs_total else None, touching_pairs=pairs_total,
        group_ap50={g: float(pool_metrics(m).at("ap", 0.5)) for g, m in sorted(by_group.items())},
    )  # fmt: skip


def _cache_path(directory: Path, subset: str, microscope: str | None) -> Path:
    return directory / f"{CACHE_PREFIX}_{subset}_{microscope or 'all'}.json"


def _cached(path: Path, key: str) -> HoldoutScores | None:
    if not path.is_file():
        return None
    try:
        scores = HoldoutScores.load(path)
    except ConfigError:
        return None
    return scores if scores.key == key else None


def score_model(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    *,
    subset: str = "test",
    microscope: str | None = "C",
    name: str = "",
    device: Any = "auto",
    callback: Callable[[HoldoutProgress], None] | None = None,
) -> HoldoutScores:
    """Scores of the model in ``model_dir`` (cached in ``model_dir/holdout_<subset>_<microscope>.json``).

    The cache is used while ``config.json`` (weights hash, watershed settings)
    and the split are unchanged.
    """
    from ..data.splitfile import split_hash
    from ..inference.runtime import resolve_model, resolve_model_dir
    from ..inference.segment import segment_image

    model_dir = resolve_model_dir(model_dir)
    # config.json holds the weights' hash and the watershed settings: both change the scores.
    config_hash = hashlib.sha256((model_dir / "config.json").read_bytes()).hexdigest()
    key = f"{config_hash}:{split_hash(split_path)}"
    cache = _cache_path(model_dir, subset, microscope)
    cached = _cached(cache, key)
    if cached is not None:
        return cached
    model, config = resolve_model(model_dir, device=device)

    def segment(image: np.ndarray) -> np.ndarray:
        return segment_image(model, config, image, keep_probabilities=False).labels

    scores = run_to_end(iter_score_holdout(segment, data_dir, split_path, subset=subset, microscope=microscope,
                                       name=name or model_dir.name), callback)  # fmt: skip
    scores.key = key
    scores.save(cache)
    return scores


def score_classical(
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    *,
    subset: str = "test",
    microscope: str | None = "C",
    cache_dir: str | os.PathLike | None = None,
    callback: Callable[[HoldoutProgress], None] | None = None,
) -> HoldoutScores:
    """Scores of the classical baseline (Otsu + distance watershed) on the same images."""
    from ..data.splitfile import split_hash
    from ..inference.classical import classical_segmentation

    key = f"classical:{split_hash(split_path)}"
    cache = _cache_path(Path(cache_dir), subset, microscope) if cache_dir else None
    cached = _cached(cache, key) if cache else None
    if cached is not None:
        return cached
    scores = run_to_end(iter_score_holdout(classical_segmentation, data_dir, split_path, subset=subset,
                                       microscope=microscope, name="classical"), callback)  # fmt: skip
    scores.key = key
    if cache:
        scores.save(cache)
    return scores
