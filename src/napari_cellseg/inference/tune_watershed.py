"""Choose watershed parameters on dev data by grid search.

The defaults a model ships with are chosen here, never by hand: predict the
dev images once, then re-run only the (fast) watershed for every grid point
and keep the one with the best pooled score. ``napari-cellseg tune-watershed``
writes the winner into the model's ``config.json`` (key ``watershed``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..config import ConfigError, atomic_write_text
from ..generators import run_to_end
from ..metrics import PooledMetrics, dataset_metrics
from ..models.checkpoint import TUNED_WATERSHED_METRICS
from .watershed import WatershedParams, finalize_labels, unfiltered_instances

# Markers from thresholded interior, cut at distance-transform necks:
# 5 x 3 x 2 x 4 x 3 = 360 points, 120 watersheds (min_size comes last: grid points
# that differ only in it share one watershed).
THRESHOLD_GRID: dict[str, tuple] = {
    "interior_threshold": (0.4, 0.5, 0.6, 0.7, 0.8),
    "foreground_threshold": (0.4, 0.5, 0.6),
    "boundary_weight": (1.0, 2.0),
    "split_height": (0.0, 0.5, 1.0, 1.5),
    "min_size": (8, 16, 32),
}
# Markers cut at the peaks of the smoothed interior probability:
# 3 x 3 x 3 x 2 x 2 = 108 points, 54 watersheds.
PEAK_GRID: dict[str, tuple] = {
    "interior_threshold": (0.2, 0.35, 0.5),
    "foreground_threshold": (0.4, 0.5, 0.6),
    "peak_height": (0.1, 0.2, 0.3),
    "marker_smoothing": (1.0, 2.0),
    "min_size": (16, 32),
}
# Both, one after the other: about 1.5 minutes for 33 dev crops of 256x320 on one core.
DEFAULT_GRID: tuple[dict[str, tuple], ...] = (THRESHOLD_GRID, PEAK_GRID)
SCORES = ("dsb_score", "aji", "image_mean_dsb_score", "image_mean_aji")


@dataclass(frozen=True)
class TuneProgress:
    """One grid point evaluated."""

    done: int
    total: int
    params: dict[str, Any]
    score: float
    best_score: float


def _grids(grid) -> list[Mapping[str, Sequence]]:
    """``grid`` as a list of mappings (one mapping, or a sequence of them)."""
    grids = [grid] if isinstance(grid, Mapping) else list(grid)
    if not grids or not all(isinstance(g, Mapping) for g in grids):
        raise ValueError("grid must be a mapping of parameter -> values, or a non-empty list of them")
    return grids


def _names(grids: Sequence[Mapping[str, Sequence]]) -> list[str]:
    """The varied parameters of all grids, in order of first appearance."""
    return list(dict.fromkeys(name for g in grids for name in g))


def _grid_points(grid: Mapping[str, Sequence], base: WatershedParams) -> list[WatershedParams]:
    valid = {f.name for f in fields(WatershedParams)}
    unknown = sorted(set(grid) - valid)
    if unknown:
        raise ValueError(f"unknown watershed parameter(s) {unknown} in grid; valid: {sorted(valid)}")
    for name, values in grid.items():
        # A string is a sequence too: "0.5" would be tried as "0", "." and "5".
        if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__len__"):
            raise ValueError(f"grid values for {name} must be a list of values, got {values!r}")
    empty = [name for name, values in grid.items() if len(values) == 0]
    if empty:
        raise ValueError(f"grid values for {empty} are empty")
    for name, values in grid.items():
        for value in values:
            _check_value(name, value)
    names = list(grid)
    points = []
    for values in itertools.product(*(grid[n] for n in names)):
        points.append(WatershedParams.from_dict({**base.to_dict(), **dict(zip(names, values))}))
    return points


def _check_value(name: str, value: Any) -> None:
    """Refuse a grid value of the wrong type in words (WatershedParams would fail on ``'<'``)."""
    kind = type(getattr(WatershedParams(), name))
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: {value!r} is not true or false")
        return
    # bool is an int in Python, but true/false for a threshold is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: {value!r} is not a number")
    if not math.isfinite(value):  # JSON allows NaN and Infinity
        raise ValueError(f"{name}: {value!r} is not a finite number")
    if kind is int and value != int(value):
        raise ValueError(f"{name}: {value!r} is not a whole number")


def grid_points(grid=None, base: WatershedParams | None = None) -> list[WatershedParams]:
    """Every point of ``grid`` (a mapping, a sequence of them, or None for :data:`DEFAULT_GRID`).

    Call it to check a grid before predicting any image.

    Raises
    ------
    ValueError
        Naming the parameter and what is wrong with its values.
    """
    grids = _grids(DEFAULT_GRID if grid is None else grid)
    return [point for g in grids for point in _grid_points(g, base or WatershedParams())]


def row_scores(row: Mapping[str, Any]) -> dict[str, Any]:
    """The scores of a tuning table row, without its watershed parameters."""
    params = {f.name for f in fields(WatershedParams)} | {"current"}
    return {k: v for k, v in row.items() if k not in params}


def _row(params: WatershedParams, pooled: PooledMetrics, names: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(params, name) for name in names}
    row.update(
        dsb_score=pooled.dsb_score,
        ap_50=pooled.at("ap", 0.5),
        ap_75=pooled.at("ap", 0.75),
        f1_50=pooled.at("f1", 0.5),
        aji=pooled.aji,
        image_mean_dsb_score=pooled.image_mean_dsb_score,
        image_mean_aji=pooled.image_mean_aji,
    )
    return row


def iter_tune_watershed(
    probabilities: Sequence,
    ground_truth: Sequence,
    grid: Mapping[str, Sequence] | None = None,
    *,
    base: WatershedParams | None = None,
    current: WatershedParams | None = None,
    score: str = "dsb_score",
) -> Generator[TuneProgress, None, tuple[WatershedParams, list[dict[str, Any]]]]:
    """Generator form of :func:`tune_watershed`: yields a :class:`TuneProgress`
    per grid point and returns ``(best params, table)``."""
    for name, items in (("probabilities", probabilities), ("ground_truth", ground_truth)):
        if not hasattr(items, "__iter__"):
            raise TypeError(f"{name} must be a sequence of arrays, one per image, got {type(items).__name__}")
    probabilities, ground_truth = list(probabilities), list(ground_truth)
    if len(probabilities) != len(ground_truth):
        raise ValueError(f"got {len(probabilities)} probability maps but {len(ground_truth)} ground truths")
    if len(probabilities) == 0:  # not `not probabilities`: a stacked (N, 3, H, W) array is fine
        raise ValueError("tune_watershed needs at least one image")
    for name, params in (("base", base), ("current", current)):
        if params is not None and not isinstance(params, WatershedParams):
            raise TypeError(f"{name} must be WatershedParams or None, got {type(params).__name__}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    grids = _grids(DEFAULT_GRID if grid is None else grid)
    points = grid_points(grids, base)
    names = _names(grids)
    if current is not None:
        # The incumbent goes first: ties keep the earlier point, so a grid point must beat it.
        points = [current] + [p for p in points if p != current]
    table: list[dict[str, Any]] = []
    best_index, best_score = 0, float("-inf")
    cached_key, unfiltered = None, []
    for index, params in enumerate(points):
        # min_size only filters the watershed's output: reuse it across min_size values.
        key = replace(params, min_size=0)
        if key != cached_key:
            unfiltered = [unfiltered_instances(p, params) for p in probabilities]
            cached_key = key
        predictions = [finalize_labels(u, params.min_size) for u in unfiltered]
        _, pooled = dataset_metrics(ground_truth, predictions)
        row = _row(params, pooled, names)
        if current is not None:
            row["current"] = index == 0
        table.append(row)
        if row[score] > best_score:  # ties keep the earlier (grid order) point
            best_index, best_score = index, row[score]
        yield TuneProgress(index + 1, len(points), dict(row), row[score], best_score)
    ranked = sorted(table, key=lambda r: -r[score])  # stable: ties stay in grid order
    return points[best_index], ranked


def tune_watershed(
    probabilities: Sequence,
    ground_truth: Sequence,
    grid: Mapping[str, Sequence] | None = None,
    *,
    base: WatershedParams | None = None,
    current: WatershedParams | None = None,
    score: str = "dsb_score",
    callback: Callable[[TuneProgress], None] | None = None,
) -> tuple[WatershedParams, list[dict[str, Any]]]:
    """Grid-search watershed parameters on predicted probabilities.

    Parameters
    ----------
    probabilities : sequence of ndarray
        ``(3, H, W)`` class probabilities, one per image.
    ground_truth : sequence of ndarray
        Instance labels of the same images.
    grid : mapping or sequence of mappings, optional
        Parameter name -> values to try (all combinations); a sequence of such
        grids is searched one after the other. Defaults to :data:`DEFAULT_GRID`
        (:data:`THRESHOLD_GRID`, then :data:`PEAK_GRID`). Parameters not in a
        grid keep ``base``'s values.
    base : WatershedParams, optional
        Starting parameters (defaults: ``WatershedParams()``).
    current : WatershedParams, optional
        Parameters in use now (a model's ``watershed``): scored first, and
        returned as best unless a grid point scores strictly higher. Rows then
        carry ``current`` (True for its row).
    score : str
        Pooled score to maximise, one of :data:`SCORES`. ``dsb_score`` pools
        the matches of all images (see :class:`~napari_cellseg.metrics.PooledMetrics`).
    callback : callable, optional
        Called with each :class:`TuneProgress`.

    Returns
    -------
    best : WatershedParams
    table : list of dict
        One row per grid point (the varied parameters and pooled scores),
        best first.
    """
    gen = iter_tune_watershed(probabilities, ground_truth, grid, base=base, current=current, score=score)
    return run_to_end(gen, callback)


def write_watershed_params(
    model_dir: str | os.PathLike, params: WatershedParams, scores: Mapping[str, Any] | None = None
) -> Path:
    """Store ``params`` under the ``watershed`` key of ``model_dir/config.json`` (atomic).

    ``scores`` (what the tuning measured with ``params``: images, subset,
    AP@0.5, DSB score...) go to ``metrics["watershed_tuned"]``, where the GUI
    shows them; without ``scores`` an earlier entry is dropped, since it no
    longer describes the stored parameters. Other keys are left as they are.
    """
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such model config") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(config).__name__}")
    config["watershed"] = params.to_dict()
    metrics = config.get("metrics") if isinstance(config.get("metrics"), dict) else {}
    metrics.pop(TUNED_WATERSHED_METRICS, None)
    if scores is not None:
        metrics[TUNED_WATERSHED_METRICS] = dict(scores)
    config["metrics"] = metrics
    return atomic_write_text(path, json.dumps(config, indent=2) + "\n")


def read_split_ids(split_csv: str | os.PathLike, subset: str = "dev") -> list[str]:
    """Ids of ``subset`` (train/dev/test) in a split file (``data.splitfile`` format)."""
    from ..data.splitfile import read_split

    subsets = read_split(split_csv)
    ids = [image_id for image_id, s in subsets.items() if s == subset]
    if not ids:
        found = sorted(set(subsets.values()))
        raise ValueError(f"{split_csv}: no image in subset {subset!r} (subsets found: {found})")
    return ids


def load_tuning_images(
    data_dir: str | os.PathLike,
    split_csv: str | os.PathLike | None = None,
    *,
    subset: str = "dev",
    microscope: str | None = None,
) -> tuple[list[str], list, list]:
    """``(ids, images, instance labels)`` of a dataset's ``subset`` (all images without a split).

    Raises
    ------
    ValueError
        (or its subclass ``DatasetError``) naming the file and the problem.
    """
    from ..data.dataset import CellDataset

    dataset = CellDataset.open(data_dir)
    if split_csv is not None:
        wanted = read_split_ids(split_csv, subset)
        unknown = [i for i in wanted if i not in dataset]
        if unknown:
            raise ValueError(f"{split_csv}: {len(unknown)} id(s) not in {data_dir}: {unknown[:5]}")
        dataset = dataset.subset(wanted)
    ids = [r.id for r in dataset.records if microscope is None or r.microscope == microscope]
    if not ids:
        raise ValueError(f"{data_dir}: no image to tune on (subset {subset!r}, microscope {microscope!r})")
    images = [dataset.load_image(i) for i in ids]
    labels = [dataset.load_instances(i) for i in ids]
    return ids, images, labels
