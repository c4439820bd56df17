"""Start a training run from a trained segmentation model instead of M2.

This is how a user adapts a model (the bundled default, or one trained
earlier) to their own microscope: the whole network, decoder included,
starts from that model's weights, so a few labelled images and a short run
go further than starting again from M2.

- :func:`apply_init_model`: the :class:`~.config.TrainConfig` with the
  network fields (``l``, ``l_a``, decoder, loss outputs) taken from the model;
  a field the user set explicitly to another value is an error. A model
  that resamples images to one nucleus size (``default_diameter`` 0) passes
  that size on, so it is adapted at the scale it works at.
- :func:`load_init_model`: the network with the model's weights, ``l_f``
  frozen stages and train mode.
- :func:`apply_stored_init_model`: the same fields taken from a stored run,
  for resuming without the model's folder.

torch is imported inside functions.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .config import TrainConfig

DEFAULT_MODEL = "default"
# TrainConfig fields that must match the starting model (its network and outputs).
NETWORK_FIELDS = ("transfer_layers", "new_layers", "decoder_channels", "loss")


def init_model_dir(init_model: str | os.PathLike) -> Path:
    """The directory of ``init_model``: ``"default"`` is the bundled default model."""
    from ..inference.runtime import default_model_dir

    if str(init_model) == DEFAULT_MODEL:
        return default_model_dir()
    return Path(init_model)


def read_init_model_config(init_model: str | os.PathLike) -> Any:
    """The ``ModelConfig`` of the starting model (no torch needed).

    Raises
    ------
    ModelLoadError
        If the directory is missing or is not a model directory.
    """
    from ..models.checkpoint import load_model_config

    return load_model_config(init_model_dir(init_model))


def apply_init_model(config: TrainConfig, explicit: frozenset[str] | set[str] = frozenset()) -> TrainConfig:
    """``config`` with its network fields taken from ``config.init_model``.

    Parameters
    ----------
    config : TrainConfig
        Returned unchanged when ``init_model`` is None.
    explicit : set of str
        Fields the user set on purpose (the CLI's options): if one of them
        differs from the model, that is an error rather than a silent change.

    Raises
    ------
    ConfigError
        If an explicit field contradicts the model, ``m2`` is not the default
        (the model's own stages are trained), or ``pretrained`` is False.
    ModelLoadError
        If the model directory cannot be read.
    """
    if not config.init_model:
        return config
    if not config.pretrained:
        raise ConfigError(
            f"init_model={config.init_model!r} and pretrained=False (--from-scratch) contradict: "
            "a run starts either from a trained model or from random weights"
        )
    model = read_init_model_config(config.init_model)
    if "new_layers" in explicit and config.new_layers > model.new_layers:
        config = dataclasses.replace(config, grow_decoder=True)
    wanted = {
        "transfer_layers": model.transfer_layers,
        "new_layers": model.new_layers,
        "decoder_channels": tuple(model.decoder_channels),
        "loss": model.loss,
    }
    if config.grow_decoder:
        if config.new_layers <= model.new_layers:
            raise ConfigError(
                f"init_model {init_model_dir(config.init_model)}: grow_decoder needs more new layers "
                f"than the model's {model.new_layers}, got new_layers={config.new_layers}"
            )
        wanted["new_layers"] = config.new_layers
    conflicts = []
    if config.m2 != DEFAULT_MODEL:  # the model's own stages train on: another M2 would be recorded, not used
        conflicts.append(f"m2={config.m2!r} but the model was cut from M2 {model.m2.name or model.arch!r}")
    for name in NETWORK_FIELDS:
        value = getattr(config, name)
        if name == "decoder_channels" and value is not None:
            value = tuple(value)
        if name in explicit and value is not None and value != wanted[name]:
            conflicts.append(f"{name}={value!r} but the model has {wanted[name]!r}")
    if conflicts:
        raise ConfigError(
            f"init_model {init_model_dir(config.init_model)}: {'; '.join(conflicts)}. "
            "A run that starts from a trained model keeps its network: leave these settings out"
        )
    default_thickness = next(f.default for f in dataclasses.fields(config) if f.name == "target_thickness")
    if "target_thickness" not in explicit and config.target_thickness == default_thickness:
        wanted["target_thickness"] = model.target_thickness  # the boundary width it learnt to draw
    if config.object_diameter is None and model.default_diameter == 0 and model.object_diameter:
        # it segments at one nucleus size (each image resampled to it): adapt it at that size
        wanted["object_diameter"] = model.object_diameter
    return dataclasses.replace(config, **wanted)


def apply_stored_init_model(config: TrainConfig, stored: TrainConfig) -> TrainConfig:
    """``config`` with the fields :func:`apply_init_model` filled in at the start of ``stored``'s run.

    Resuming reads only what the run stored: the starting model's folder may
    have moved, or its config changed since (``tune-watershed`` rewrites it).
    The rules are :func:`apply_init_model`'s, with ``stored`` in the model's place.
    """
    if not config.init_model or config.init_model != stored.init_model:
        return config  # not a run from this model: the comparison with the stored run says so
    wanted: dict[str, Any] = {
        "transfer_layers": stored.transfer_layers,
        "decoder_channels": stored.decoder_channels,
        "loss": stored.loss,
    }
    if not config.grow_decoder:
        wanted["new_layers"] = stored.new_layers
    default_thickness = next(f.default for f in dataclasses.fields(config) if f.name == "target_thickness")
    if config.target_thickness == default_thickness:
        wanted["target_thickness"] = stored.target_thickness
    if config.object_diameter is None:
        wanted["object_diameter"] = stored.object_diameter
    return dataclasses.replace(config, **wanted)


def load_init_model(config: TrainConfig) -> tuple[Any, Any]:
    """The starting network (fp32, CPU, train mode, ``config.frozen_layers`` frozen) and its config.

    Raises
    ------
    ModelLoadError
        For a missing or damaged model directory.
    SurgeryError
        If ``frozen_layers`` is out of range for the model.
    """
    from ..models.checkpoint import load_model_dir

    model, model_config = load_model_dir(init_model_dir(config.init_model), device="cpu")
    if config.new_layers != model_config.new_layers:
        model, model_config = _grown(model, model_config, config.new_layers)
    model.freeze_stages(config.frozen_layers)
    return model.train(), model_config


def _grown(model: Any, model_config: Any, new_layers: int) -> tuple[Any, Any]:
    """``model`` with ``new_layers`` decoder blocks: its encoder and blocks kept, the rest new."""
    from ..models.checkpoint import build_model_from_config

    # A larger l_a only appends blocks (models.decoder.decoder_plan), so every block of the
    # model has the same place and shape in the grown network; only the head differs.
    grown_config = dataclasses.replace(model_config, new_layers=new_layers)
    grown = build_model_from_config(grown_config)  # new blocks and head: seeded random weights
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    grown.load_state_dict(kept, strict=False)
    return grown, grown_config
