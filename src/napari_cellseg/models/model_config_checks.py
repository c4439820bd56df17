"""What a model's ``config.json`` must hold, and the values it may hold.

A hand-edited or damaged ``config.json`` must fail when the model loads, naming
the file and the key, not load with a default (a lost ``normalization`` would
feed the network the wrong mean/std, and the weights' hash would still match)
nor fail far away (an out-of-range ``transfer_layers`` in the network surgery,
a NaN ``default_diameter`` on each image segmented).

Kept apart from :mod:`.checkpoint` so that module stays short; no torch here.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ConfigError, is_whole_number, read_json_or_yaml
from ..data.normalize import NormalizationConfig
from .defaults import layer_problems
from .probabilities import LOSS_OUT_CHANNELS

if TYPE_CHECKING:
    from .checkpoint import ModelConfig

# Keys every model config.json has held since format 1 (the only format so far) whose default
# would silently change the network, its input or what a run started from it learns.
# Optional: default_diameter and m2.pretrained (added later within format 1: an older model
# lacks them, and their defaults say what such a model did), class_weights and boundary_weight
# (the loss weights of the finished run: nothing reads them back), and the records
# (format_version, watershed, split_hash, metrics, training, weights_sha256).
REQUIRED_MODEL_KEYS = (
    "arch",
    "m2",
    "transfer_layers",
    "new_layers",
    "frozen_layers",
    "decoder_channels",
    "loss",
    "out_channels",
    "normalization",
    "target_thickness",
    "object_diameter",
)
# All of the input rule: the percentiles as much as M2's mean/std decide what the network sees.
REQUIRED_NORMALIZATION_KEYS = tuple(f.name for f in dataclasses.fields(NormalizationConfig))


def missing_model_keys(data: dict[str, Any]) -> list[str]:
    """The required keys a model's ``config.json`` data lacks (``normalization.mean`` style)."""
    missing = [key for key in REQUIRED_MODEL_KEYS if key not in data]
    normalization = data.get("normalization")
    if isinstance(normalization, dict):  # another type is refused by the type check, naming it
        missing += [f"normalization.{key}" for key in REQUIRED_NORMALIZATION_KEYS if key not in normalization]
    return missing


def read_model_config_data(path: Path, newest_format: int) -> Any:
    """The data of a model's ``config.json``, its required keys checked.

    A file of a format newer than ``newest_format`` is passed on unchecked: its
    keys may differ, and :class:`~napari_cellseg.models.checkpoint.ModelConfig`
    says to update napari-cellseg.

    Raises
    ------
    ConfigError
        Naming the file: unreadable, not JSON, or missing required keys.
    """
    data = read_json_or_yaml(path)
    if not isinstance(data, dict):
        return data  # from_dict says it must be an object
    version = data.get("format_version")
    if isinstance(version, int) and version > newest_format:
        return data
    missing = missing_model_keys(data)
    if missing:
        raise ConfigError(
            f"{path}: missing key(s) {', '.join(missing)}: they define the network or its input, "
            "and a default would silently change its predictions (napari-cellseg writes them all: "
            "restore them from a copy of this file or from the run that trained it)"
        )
    return data


def _layer_problems(config: ModelConfig) -> list[str]:
    """``l``/``l_a``/``l_f`` and the decoder channels, as far as they can be judged without M2's depth."""
    l = config.transfer_layers  # noqa: E741
    out = layer_problems(l, config.new_layers, config.frozen_layers, depth=None)
    if out or l < 1:
        return out
    channels = list(config.decoder_channels)
    if len(channels) < l or any(c < 1 for c in channels):
        out.append(
            f"decoder_channels must be at least transfer_layers={l} positive numbers "
            f"(deepest level first), got {channels}"
        )
    return out


def model_config_problems(config: ModelConfig) -> list[str]:
    """Why ``config`` cannot describe a usable model, as sentences (empty when it can).

    The M2's depth is not known here: :func:`~napari_cellseg.models.surgery.build_model`
    checks ``transfer_layers`` against it when the network is built.
    """
    out = []
    if config.loss not in LOSS_OUT_CHANNELS:
        out.append(f"loss must be one of {list(LOSS_OUT_CHANNELS)}, got {config.loss!r}")
    elif config.out_channels != LOSS_OUT_CHANNELS[config.loss]:
        out.append(
            f"loss {config.loss!r} needs out_channels={LOSS_OUT_CHANNELS[config.loss]}, got {config.out_channels}"
        )
    if not isinstance(config.arch, str) or not config.arch:
        out.append(f"arch must be a timm model name, got {config.arch!r}")
    out += _layer_problems(config)
    weights = config.class_weights
    if len(weights) != 3 or not all(math.isfinite(w) and w > 0 for w in weights):
        out.append(f"class_weights must be 3 positive numbers, got {list(weights)}")
    if not (math.isfinite(config.boundary_weight) and config.boundary_weight > 0):
        out.append(f"boundary_weight must be a positive number, got {config.boundary_weight}")
    if not is_whole_number(config.target_thickness) or config.target_thickness < 1:
        out.append(f"target_thickness must be a whole number of pixels >= 1, got {config.target_thickness!r}")
    diameter = config.object_diameter
    if diameter is not None and not (math.isfinite(diameter) and diameter > 0):
        out.append(f"object_diameter must be > 0 px or None, got {diameter}")
    default = config.default_diameter
    if default is not None and not (math.isfinite(default) and default >= 0):
        out.append(f"default_diameter must be >= 0 (0 = estimate) or None, got {default}")
    if config.watershed:  # checked at load, not on the first image it would segment
        from ..inference.watershed import WatershedParams

        try:
            WatershedParams.from_dict(config.watershed)
        except (ConfigError, ValueError) as err:
            out.append(f"watershed: {err}")
    return out
