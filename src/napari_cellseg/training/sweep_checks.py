"""A sweep's up-front checks: its dataset and split, and the runs a previous sweep stored under ``OUT``.

Each raises :class:`~.sweep_grid.SweepError` before any run trains (and in ``--dry-run``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .config import TrainConfig
from .sweep_grid import SweepError, SweepPoint, unused_by_loss
from .sweep_run import RunRecord, read_record, stored_split_hash

if TYPE_CHECKING:
    from .sweep import SweepConfig


def check_inputs(config: SweepConfig, points: list[SweepPoint] | tuple = ()) -> None:
    """Fail once, before any run, on a dataset or split that every run (or one of ``points``) would fail on."""
    from ..data.dataset import CellDataset, DatasetError
    from ..data.splitfile import SplitError, read_split
    from .setup import TrainingError, check_microscopes, train_microscopes

    if not config.split_path:  # no dev set: every run would train and none be ranked
        raise SweepError("a sweep ranks its runs by dev AP@0.5: give a split (--split) that has dev rows")
    try:
        dataset = CellDataset.open(config.data_dir, microscopes=None)  # the tags its manifest uses
        subsets = read_split(config.split_path)
    except (DatasetError, SplitError) as err:
        raise SweepError(str(err)) from None
    missing = [i for i in subsets if i not in dataset]
    if missing:
        raise SweepError(
            f"{config.split_path}: {len(missing)} id(s) are not in {config.data_dir} "
            f"(e.g. {', '.join(missing[:3])}): is it the split of another dataset?"
        )
    if "dev" not in subsets.values():  # the engine scores every dev row, whatever a run's microscopes
        raise SweepError(
            f"{config.split_path}: no dev rows: a sweep ranks its runs by their dev AP@0.5, so none would be "
            "ranked; use a split with dev rows (napari-cellseg split)"
        )
    trained = {dataset[i].microscope for i, subset in subsets.items() if subset == "train"}
    for point in points:
        try:
            check_microscopes(point.config, dataset, subsets)
        except TrainingError as err:
            raise SweepError(f"run {point.name}: {err}") from None
        wanted = train_microscopes(point.config, dataset)
        if not trained & set(wanted):
            raise SweepError(
                f"{config.split_path}: no train rows of microscopes {list(wanted)}, "
                f"which run {point.name} trains on"
            )


def check_split_unchanged(config: SweepConfig, points: list[SweepPoint]) -> None:
    """Refuse to go on with runs trained on another split: their dev scores are of another dev set."""
    from ..data.splitfile import split_hash

    current = split_hash(config.split_path) if config.split_path else None
    other: dict[str, list[str]] = {}
    for point in points:
        stored = stored_split_hash(point.config.out_dir)
        if stored is not None and stored != current:
            other.setdefault(stored, []).append(point.name)
    if other:
        runs = "; ".join(f"{', '.join(names)} (split hash {h[:12]})" for h, names in other.items())
        raise SweepError(
            f"{config.split_path} (split hash {str(current)[:12]}) is not the split these runs were trained "
            f"and scored with: {runs}. Ranking them with runs of this split would compare scores on "
            f"different dev sets: run the sweep with the old split, or into a new --out."
        )


def _stored_problem(point: SweepPoint, record: RunRecord | None) -> str | None:
    """Why the run stored under ``point``'s name cannot be reused (None: it can)."""
    if record is None or not record.train_config:
        return None
    try:
        stored = TrainConfig.from_dict(record.train_config)
    except (ValueError, TypeError) as err:
        return f"its run.json holds an unreadable TrainConfig ({err})"
    if stored.loss == point.config.loss:  # the weight this loss ignores did not change the run
        unused = unused_by_loss(point.config)
        stored = dataclasses.replace(stored, **{unused: getattr(point.config, unused)})
    changed = point.config.incompatible_with(stored)
    return f"it was trained with other settings ({'; '.join(changed)})" if changed else None


def _check_done_model(point: SweepPoint) -> None:
    """A run ``run.json`` calls done must hold a model that loads (restored from ``last/`` if it can be)."""
    from .checkpoints import repair_best

    problem = repair_best(point.config.out_dir)
    if problem:
        raise SweepError(
            f"run {point.name} is done but its model does not load: {problem}. Move or delete "
            f"{point.config.out_dir} and run the sweep again to train it anew."
        )


def check_stored_runs(points: list[SweepPoint], *, repair: bool = True) -> dict[str, RunRecord | None]:
    """Each run's stored ``run.json`` (None: none), refusing one that cannot be reused or resumed.

    A done run's model is checked to load, and restored from ``last/`` when it can be;
    ``repair=False`` (a dry run) leaves that check, and its repair, to the sweep.
    """
    stored: dict[str, RunRecord | None] = {}
    for point in points:
        record = read_record(point.config.out_dir)
        problem = _stored_problem(point, record)
        if problem:
            raise SweepError(
                f"{point.config.out_dir}: {problem}. Resume with the same settings, or use another --out."
            )
        if record is not None and record.done and repair:
            _check_done_model(point)
        stored[point.name] = record
    return stored
