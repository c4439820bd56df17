"""Sweep grid files: load them, expand them into runs, skip invalid layer combinations.

A grid file (JSON, or YAML when PyYAML is installed) holds::

    {"base":   {TrainConfig fields shared by every run: epochs, steps_per_epoch, ...},
     "grid":   {field: [values...], ...},     # every combination (cartesian product)
     "points": [{field: value, ...}, ...]}    # and/or explicit runs

``l``/``l_a``/``l_f`` (also ``la``, ``lf``) are accepted for ``transfer_layers``,
``new_layers`` and ``frozen_layers``. Each run's settings are ``base``, then the
sweep's own settings (data, split, out), then the point. Combinations that the
network surgery refuses (``l_f > l``, ``l_a`` out of range for that ``l``) are
listed as :class:`InvalidPoint` instead of failing the sweep.

Nothing heavy is imported here (torch only to count the stages of a custom M2).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, FieldTypeError, JsonConfig, check_value, read_json_or_yaml, show_value
from ..models.defaults import DEFAULT_M2_DEPTH
from .config import TrainConfig, default_new_layers_problem

ALIASES = {"l": "transfer_layers", "l_a": "new_layers", "la": "new_layers",
           "l_f": "frozen_layers", "lf": "frozen_layers"}  # fmt: skip
# Settings a sweep sets itself: a grid file may not vary them.
SWEEP_OWNED = ("data_dir", "split_path", "out_dir")
# Settings that decide what a run's dev score is: every run of a sweep must share them (base only).
SCORING_FIELDS = ("dev_metric", "max_dev_images")
# Fields always spelled in a run's name, in this order.
NAMED_FIELDS = (
    "transfer_layers",
    "new_layers",
    "frozen_layers",
    "lr",
    "loss",
    "class_weights",
    "boundary_weight",
)
RUNS_DIR = "runs"


class SweepError(ValueError):
    """A grid file or sweep cannot be run as given; the message says why."""


@dataclass
class SweepGrid(JsonConfig):
    """The content of a grid file (see the module docstring)."""

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its stable ``name``, the settings it varies, its full config."""

    name: str
    params: dict[str, Any]
    config: TrainConfig


@dataclass(frozen=True)
class InvalidPoint:
    """A combination that was not run, and why."""

    params: dict[str, Any]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"params": dict(self.params), "reason": self.reason}


def load_grid(path: str | os.PathLike) -> SweepGrid:
    """Read a grid file (``.json``, or ``.yaml``/``.yml``).

    Raises
    ------
    SweepError
        Missing or unparsable file, wrong top-level keys, a ``grid`` entry that
        is not a non-empty list, a field that ``TrainConfig`` does not have.
    """
    path = Path(path)
    if not path.exists():
        raise SweepError(f"{path}: no such grid file")
    try:
        data = read_json_or_yaml(path)
    except ConfigError as err:
        raise SweepError(str(err)) from None
    return grid_from_dict(data, where=str(path))


def grid_from_dict(data: Any, where: str = "grid") -> SweepGrid:
    """A :class:`SweepGrid` from a dict, with aliases resolved and every key and value type checked."""
    if not isinstance(data, dict):
        raise SweepError(
            f"{where}: expected an object with 'base', 'grid' and/or 'points', got {type(data).__name__}"
        )
    unknown = sorted(set(data) - {"base", "grid", "points"}, key=str)
    if unknown:
        raise SweepError(f"{where}: unknown key(s) {unknown}; valid keys are ['base', 'grid', 'points']")
    raw_base, raw_grid, raw_points = data.get("base", {}), data.get("grid", {}), data.get("points", [])
    if not isinstance(raw_base, dict) or not isinstance(raw_grid, dict) or not isinstance(raw_points, list):
        raise SweepError(f"{where}: 'base' and 'grid' must be objects, 'points' a list of objects")
    base = _typed(_canonical(raw_base, f"{where}: base"), raw_base, "base", where)
    axes = _canonical(raw_grid, f"{where}: grid")
    for (key, values), name in zip(raw_grid.items(), axes):
        if not isinstance(values, list):
            raise SweepError(f"{where}: grid.{key} must be a list, e.g. [{show_value(values)}]")
        if not values:
            raise SweepError(f"{where}: grid.{name} must be a non-empty list of values, got {values!r}")
        axes[name] = _typed_axis(name, key, values, where)
    points = []
    for index, point in enumerate(raw_points):
        if not isinstance(point, dict):
            raise SweepError(f"{where}: points[{index}] must be an object, got {point!r}")
        label = f"points[{index}]"
        points.append(_typed(_canonical(point, f"{where}: {label}"), point, label, where))
    if not axes and not points:
        raise SweepError(f"{where}: nothing to run: give a 'grid' of values and/or a list of 'points'")
    return SweepGrid(base=base, grid=axes, points=points)


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _typed(settings: dict[str, Any], raw: dict[str, Any], label: str, where: str) -> dict[str, Any]:
    """``settings`` (canonical names) with each value checked against its TrainConfig field."""
    types_ = _field_types()
    out = {}
    for key, (name, value) in zip(raw, settings.items()):
        try:
            check_value(types_[name], value, f"{label}.{key}")
        except FieldTypeError as err:
            raise SweepError(f"{where}: {err}") from None
        out[name] = value  # kept as written: TrainConfig converts it when each run is built
    return out


def _typed_axis(name: str, key: str, values: list[Any], where: str) -> list[Any]:
    """A grid axis whose every value fits the field; a flat list for a list field gets a hint."""
    field_type = _field_types()[name]
    for value in values:
        try:
            check_value(field_type, value, f"grid.{key}")
        except FieldTypeError as err:
            try:  # the list itself is one valid value: the user meant a grid of one
                check_value(field_type, values, f"grid.{key}")
            except FieldTypeError:
                if err.name == f"grid.{key}":
                    raise SweepError(f"{where}: grid.{key}: {show_value(value)} is not {err.what}") from None
                inner = f"{show_value(err.value)} is not {err.what}"  # an element of a list value
                raise SweepError(f"{where}: grid.{key}: in {show_value(value)}, {inner}") from None
            raise SweepError(
                f"{where}: grid.{key}: each value is {err.what}; did you mean [{show_value(values)}]?"
            ) from None
    return values


def _canonical(settings: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f for f in TrainConfig.__dataclass_fields__}
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = ALIASES.get(key, key)
        if name not in known:
            raise SweepError(f"{where}: unknown setting {key!r}; TrainConfig has {sorted(known)}")
        if name in SWEEP_OWNED:
            raise SweepError(f"{where}: {key!r} is set by the sweep (--data, --split, --out), not the grid")
        if name in out:
            raise SweepError(f"{where}: {name!r} is given twice (as {key!r} and another alias)")
        out[name] = value
    return out


def combinations(grid: SweepGrid) -> list[dict[str, Any]]:
    """The varied settings of every run: the grid's product, then the points (duplicates dropped)."""
    keys = list(grid.grid)
    product = [dict(zip(keys, values)) for values in itertools.product(*(grid.grid[k] for k in keys))]
    out, seen = [], set()
    for params in (product if keys else []) + [dict(p) for p in grid.points]:
        key = json.dumps(params, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(params)
    return out


def layer_problem(transfer_layers: int, new_layers: int, frozen_layers: int, depth: int) -> str | None:
    """Why ``l``/``l_a``/``l_f`` cannot be built from an M2 with ``depth`` stages (None if they can)."""
    from ..models.defaults import layer_problems

    return "; ".join(layer_problems(transfer_layers, new_layers, frozen_layers, depth)) or None


def m2_depth(m2: str) -> int:
    """Number of transferable stages of an M2 (``"default"``: 5, without loading it)."""
    if m2 in ("", "default"):
        return DEFAULT_M2_DEPTH
    from ..models.m2 import load_m2
    from ..models.stages import split_stages

    model, config = load_m2(m2)
    return len(split_stages(model, config.arch)[0])


def _slug(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "_".join(_slug(v) for v in value)
    if isinstance(value, dict):
        return "_".join(f"{k}{_slug(v)}" for k, v in sorted(value.items()))
    return str(value)


def run_name(config: TrainConfig, params: dict[str, Any], reference: TrainConfig | None = None) -> str:
    """Stable directory name of a run, e.g. ``l4-la3-lf1-lr0.001-weighted-ce-w1_5_3``.

    ``l``, ``l_a``, ``l_f``, ``lr``, the loss and its weights always appear;
    the other settings in ``params`` are appended as ``field_value`` where
    they differ from ``reference`` (the grid's base; default: all of them),
    so one configuration always gets one name.
    """

    def differs(key: str) -> bool:
        return reference is None or getattr(config, key) != getattr(reference, key)

    parts = [
        f"l{config.transfer_layers}", f"la{config.new_layers}", f"lf{config.frozen_layers}",
        f"lr{_slug(float(config.lr))}", config.loss,
    ]  # fmt: skip
    if config.loss == "weighted-ce":
        parts.append("w" + _slug([float(w) for w in config.class_weights]))
    else:
        parts.append("bw" + _slug(float(config.boundary_weight)))
    parts += [
        f"{key}_{_slug(params[key])}" for key in sorted(params) if key not in NAMED_FIELDS and differs(key)
    ]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


def expand_grid(
    grid: SweepGrid,
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    overrides: dict[str, Any] | None = None,
) -> tuple[list[SweepPoint], list[InvalidPoint]]:
    """The runs of a sweep and the combinations skipped as invalid.

    Parameters
    ----------
    grid : SweepGrid
    data_dir, split_path : path
        The dataset and its split (every run uses them).
    out_dir : path
        The sweep folder; run ``name`` trains into ``out_dir/runs/name``.
    overrides : dict, optional
        Settings that win over ``base`` but not over the grid (e.g. ``num_threads``).

    Raises
    ------
    SweepError
        A setting that is invalid for another reason than the layer ranges
        (e.g. a negative ``lr``), naming the run.
    """
    grid = grid_from_dict(grid.to_dict())  # aliases resolved, keys checked
    fixed = {**grid.base, **(overrides or {}), "data_dir": os.path.abspath(data_dir),
             "split_path": os.path.abspath(split_path) if split_path else None}  # fmt: skip
    _check_scoring_fixed(grid)
    fixed.setdefault("dev_metric", "ap50")
    if fixed["dev_metric"] != "ap50":  # the table ranks and labels runs by AP@0.5
        raise SweepError(
            f"a sweep scores its runs by dev AP@0.5: dev_metric must be 'ap50', got {fixed['dev_metric']!r}"
        )
    runs_dir = Path(out_dir).absolute() / RUNS_DIR
    reference = _config_from({**fixed, "out_dir": str(runs_dir)}, {})
    points: list[SweepPoint] = []
    invalid: list[InvalidPoint] = []
    names: dict[str, TrainConfig] = {}
    depths: dict[str, int] = {}
    for params in combinations(grid):
        config = _config_from({**fixed, **params, "out_dir": str(runs_dir)}, params)
        if config.init_model:  # the run trains the starting model's network: name and check that one
            try:  # base settings other than the defaults are choices like grid values: both must fit the model
                config = _with_init_model(config, {**_non_defaults(grid.base), **params})
            except ConfigError as err:
                invalid.append(InvalidPoint(dict(params), str(err)))
                continue
        if config.m2 not in depths:
            depths[config.m2] = m2_depth(config.m2)
        reason = layer_problem(
            config.transfer_layers, config.new_layers, config.frozen_layers, depths[config.m2]
        )
        if reason is not None and "new_layers" not in {**fixed, **params} and not config.init_model:
            if default_new_layers_problem(config):  # l varied alone: say where l_a = 4 came from
                reason += (
                    f"; l_a={config.new_layers} is the default of new_layers, as neither the grid nor its "
                    'base gives one: add l_a to the grid or its base (e.g. "la": [1, 2])'
                )
        if reason is not None:
            invalid.append(InvalidPoint(dict(params), reason))
            continue
        name = run_name(config, params, reference)
        if name in names:
            if names[name] == config:  # the same run listed twice (e.g. a grid point and a point)
                continue
            unused = unused_by_loss(config)
            if _without(names[name], unused) == _without(config, unused):
                invalid.append(
                    InvalidPoint(dict(params), f"the same run as {name}: {config.loss} ignores {unused}")
                )
                continue
            raise SweepError(f"two different runs would share the directory {name}; the second is {params}")
        names[name] = config
        config = TrainConfig.from_dict({**config.to_dict(), "out_dir": str(runs_dir / name)})
        points.append(SweepPoint(name, dict(params), config))
    return points, invalid


def _check_scoring_fixed(grid: SweepGrid) -> None:
    """Refuse a grid or point that varies how runs are scored: their scores would not be comparable."""
    varied = [f"grid.{name}" for name in grid.grid if name in SCORING_FIELDS]
    varied += [
        f"points[{i}].{name}"
        for i, point in enumerate(grid.points)
        for name in point
        if name in SCORING_FIELDS
    ]
    if varied:
        raise SweepError(
            f"{', '.join(varied)}: a sweep ranks its runs on one dev score, so {' and '.join(SCORING_FIELDS)} "
            "may be set in 'base' only (the same for every run), not in 'grid' or 'points'"
        )


def _with_init_model(config: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """``config`` as training will run it; a grid value that contradicts the model raises ConfigError."""
    from ..models.checkpoint import ModelLoadError
    from .init_model import apply_init_model

    try:
        return apply_init_model(config, explicit=set(params))
    except ModelLoadError as err:
        raise SweepError(f"run {params}: {err}") from None


def unused_by_loss(config: TrainConfig) -> str:
    """The weight setting the run's loss does not use."""
    return "class_weights" if config.loss == "weighted-bce" else "boundary_weight"


def _without(config: TrainConfig, name: str) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k != name}


def _config_from(settings: dict[str, Any], params: dict[str, Any]) -> TrainConfig:
    try:
        config = TrainConfig.from_dict(settings)
    except (ConfigError, TypeError, ValueError) as err:
        raise SweepError(f"run {params}: {err}") from None
    problems = config.problems()
    if problems:
        raise SweepError(f"run {params}: invalid settings:\n  - " + "\n  - ".join(problems))
    return config


def _non_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that differ from TrainConfig's defaults (a base copied whole holds them all)."""

    def plain(value: Any) -> Any:  # tuples and lists alike
        return json.loads(json.dumps(value, default=str))

    defaults = plain(TrainConfig().to_dict())
    return {
        key: value for key, value in settings.items() if key not in defaults or defaults[key] != plain(value)
    }
