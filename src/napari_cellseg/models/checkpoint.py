"""Model directories: ``model.safetensors`` + ``config.json`` (a :class:`ModelConfig`).

One layout serves every command (train, segment, evaluate, export, the GUI).
The config holds everything needed to rebuild the network (M2 architecture,
``l``/``l_a``/``l_f``, decoder channels, output channels) and to use it
(normalisation, loss, training scale, watershed settings); loading refuses a
config lacking one of those keys (see :mod:`.model_config_checks`). Weights are
stored as safetensors, fp32 or fp16; nothing is ever unpickled.

Saving writes the weights, then the config, each atomically (temporary file +
``os.replace``); the config records the sha256 of the weights, so a directory
left half-updated by a crash between the two files is detected on load instead
of silently pairing new weights with an old config. Other files in the
directory (e.g. a training run's ``last/``) are left alone.

torch is imported inside functions: importing this module is light.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..classes import DEFAULT_BOUNDARY_WEIGHT_BCE, DEFAULT_CLASS_WEIGHTS
from ..config import ConfigError, JsonConfig, atomic_write_bytes
from ..data.normalize import NormalizationConfig
from .defaults import DEFAULT_ARCH, DEFAULT_DECODER_CHANNELS
from .device import resolve_device
from .m2 import M2Config, config_kind
from .model_config_checks import model_config_problems, read_model_config_data
from .probabilities import LOSS_OUT_CHANNELS, logits_to_probabilities
from .weights_io import ModelLoadError, load_weights_into, read_state_dict, state_dict_sha256

__all__ = [
    "MODEL_CONFIG",
    "MODEL_WEIGHTS",
    "M2Identity",
    "ModelConfig",
    "ModelLoadError",
    "build_model_from_config",
    "check_model_dir",
    "load_model_config",
    "load_model_dir",
    "logits_to_probabilities",
    "resolve_device",
    "save_model_dir",
]

if TYPE_CHECKING:
    import torch

    from .surgery import CellSegNet

MODEL_WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
MODEL_FORMAT_VERSION = 1
# Key of metrics holding what `tune-watershed` measured with the stored watershed parameters.
TUNED_WATERSHED_METRICS = "watershed_tuned"


@dataclasses.dataclass
class M2Identity(JsonConfig):
    """Which M2 a model was fine-tuned from.

    ``pretrained`` is False for a network of M2's architecture trained from random
    weights (``--from-scratch``): then no M2 weights were used, and ``source`` and
    ``sha256`` are empty. Configs written before the field existed read True.
    """

    name: str = ""
    arch: str = ""
    source: str = ""
    sha256: str = ""
    pretrained: bool = True

    @classmethod
    def from_m2_config(cls, config: M2Config, pretrained: bool = True) -> M2Identity:
        if not pretrained:  # only the architecture came from this M2, not its weights
            return cls(config.name, config.arch, "", "", pretrained=False)
        return cls(config.name, config.arch, config.source, config.weights_sha256 or "")


@dataclasses.dataclass
class ModelConfig(JsonConfig):
    """Everything needed to rebuild and use a fine-tuned network (``config.json``).

    Attributes
    ----------
    format_version : int
        Layout version of the model directory.
    arch : str
        timm architecture of M2 (rebuilds the transferred stages).
    m2 : M2Identity
        Name, architecture, source and weights sha256 of the M2.
    transfer_layers, new_layers, frozen_layers : int
        ``l``, ``l_a``, ``l_f`` (see :mod:`napari_cellseg.models.surgery`).
    decoder_channels : tuple of int
        Decoder channels per level, deepest first.
    loss : {"weighted-ce", "weighted-bce"}
        Decides the output channels and :func:`logits_to_probabilities`.
    class_weights : tuple of 3 floats
        ``weighted-ce`` weights (background, boundary, interior).
    boundary_weight : float
        ``weighted-bce`` boundary weight.
    out_channels : int
        3 for ``weighted-ce``, 2 for ``weighted-bce``.
    normalization : NormalizationConfig
        The input rule, with M2's mean/std.
    target_thickness : int
        Boundary thickness of the training targets, in pixels.
    object_diameter : float or None
        Training scale: median nucleus diameter in pixels.
    default_diameter : float or None
        The nucleus diameter segmentation assumes when none is given: None
        uses images at their own scale, 0 estimates each image's diameter and
        resamples it to ``object_diameter`` (models trained with size
        normalisation, ``train --object-diameter``).
    watershed : dict
        Watershed settings (defaults filled by the inference package).
    split_hash : str or None
        Hash of the train/dev/test split used.
    metrics : dict
        Dev/test metrics; ``metrics["watershed_tuned"]`` holds what
        ``tune-watershed`` measured with the stored ``watershed``.
    training : dict
        Epochs, device, time, ... of the run.
    weights_sha256 : str or None
        :func:`~napari_cellseg.models.m2.state_dict_sha256` of ``model.safetensors``,
        as stored (fp16 or fp32); set by :func:`save_model_dir`.
    """

    FORMAT_VERSION: ClassVar[int] = MODEL_FORMAT_VERSION

    format_version: int = MODEL_FORMAT_VERSION
    arch: str = DEFAULT_ARCH
    m2: M2Identity = dataclasses.field(default_factory=M2Identity)
    transfer_layers: int = 4
    new_layers: int = 4
    frozen_layers: int = 0
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS
    loss: str = "weighted-ce"
    class_weights: tuple[float, float, float] = DEFAULT_CLASS_WEIGHTS
    boundary_weight: float = DEFAULT_BOUNDARY_WEIGHT_BCE
    out_channels: int = 3
    normalization: NormalizationConfig = dataclasses.field(default_factory=NormalizationConfig)
    target_thickness: int = 1
    object_diameter: float | None = None
    default_diameter: float | None = None
    watershed: dict[str, Any] = dataclasses.field(default_factory=dict)
    split_hash: str | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    weights_sha256: str | None = None

    def __post_init__(self) -> None:
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        self.class_weights = tuple(float(w) for w in self.class_weights)
        if self.format_version > MODEL_FORMAT_VERSION:
            raise ConfigError(
                f"written by a newer napari-cellseg (format {self.format_version}; this one reads "
                f"{MODEL_FORMAT_VERSION}): update napari-cellseg"
            )
        problems = model_config_problems(self)
        if problems:
            raise ConfigError("; ".join(problems))

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        """Read a model's ``config.json``, refusing one that lacks a key defining the network.

        :class:`ConfigError` names the file and the missing keys or invalid values.
        """
        path = Path(path)
        data = read_model_config_data(path, MODEL_FORMAT_VERSION)
        try:
            return cls.from_dict(data, _where=str(path))
        except (TypeError, ValueError) as err:  # __post_init__'s ConfigError comes without the file
            text = str(err)
            raise ConfigError(text if str(path) in text else f"{path}: {text}") from None

    @classmethod
    def for_model(cls, model: CellSegNet, loss: str = "weighted-ce", **fields: Any) -> ModelConfig:
        """A config describing ``model`` (architecture fields and M2 mean/std filled in).

        ``fields`` sets the other attributes (``class_weights``, ``metrics``...);
        a ``normalization`` passed there keeps its percentiles but takes M2's mean/std.
        """
        m2 = model.m2_config
        norm = fields.pop("normalization", None) or NormalizationConfig()
        norm = dataclasses.replace(norm, mean=tuple(m2.mean), std=tuple(m2.std))
        return cls(
            arch=m2.arch,
            m2=M2Identity.from_m2_config(m2, pretrained=getattr(model, "m2_pretrained", True)),
            transfer_layers=model.transfer_layers,
            new_layers=model.new_layers,
            frozen_layers=model.frozen_layers,
            decoder_channels=model.decoder_channels,
            loss=loss,
            out_channels=LOSS_OUT_CHANNELS.get(loss, model.out_channels),
            normalization=norm,
            **fields,
        )


def _check_config_fits(model: CellSegNet, config: ModelConfig) -> None:
    pairs = {
        "arch": (model.m2_config.arch, config.arch),
        "transfer_layers": (model.transfer_layers, config.transfer_layers),
        "new_layers": (model.new_layers, config.new_layers),
        "frozen_layers": (model.frozen_layers, config.frozen_layers),
        "out_channels": (model.out_channels, config.out_channels),
        "decoder_channels": (tuple(model.decoder_channels), tuple(config.decoder_channels)),
    }
    wrong = [f"{k}: model {a!r} vs config {b!r}" for k, (a, b) in pairs.items() if a != b]
    if wrong:
        raise ValueError(
            f"the config does not describe this model ({'; '.join(wrong)}); "
            "use ModelConfig.for_model(model, ...)"
        )


def build_model_from_config(config: ModelConfig) -> CellSegNet:
    """The network described by ``config``, with random weights (fill them from a file)."""
    from .surgery import build_model

    m2 = M2Config(
        arch=config.arch,
        num_classes=0,
        name=config.m2.name,
        mean=tuple(config.normalization.mean),
        std=tuple(config.normalization.std),
        source=config.m2.source,
        weights_sha256=config.m2.sha256 or None,
    )
    model = build_model(
        m2,
        transfer_layers=config.transfer_layers,
        new_layers=config.new_layers,
        frozen_layers=config.frozen_layers,
        out_channels=config.out_channels,
        decoder_channels=config.decoder_channels,
        pretrained=False,
    )
    model.m2_pretrained = config.m2.pretrained  # what the stored weights started from
    return model


def save_model_dir(
    directory: str | os.PathLike, model: CellSegNet, config: ModelConfig, half: bool = False
) -> Path:
    """Save a model directory: ``model.safetensors`` then ``config.json``, each atomically.

    Parameters
    ----------
    directory : str or PathLike
        Created if needed; other files in it are left alone.
    model : CellSegNet
        The network (any device or memory format; saved from CPU copies), or
        a DistributedDataParallel / ``torch.compile`` wrapper of it.
    config : ModelConfig
        Must describe ``model`` (see :meth:`ModelConfig.for_model`).
    half : bool
        Store floating-point tensors as fp16 (half the size; loading restores fp32).

    Returns
    -------
    pathlib.Path
        The directory.
    """
    import torch
    from safetensors.torch import save as save_bytes

    # Unwrap DistributedDataParallel (.module) and torch.compile (._orig_mod).
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    _check_config_fits(model, config)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.to(torch.float16 if half else torch.float32)
        state[key] = value.contiguous()
    config = dataclasses.replace(config, weights_sha256=state_dict_sha256(state))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / MODEL_WEIGHTS, save_bytes(state, metadata={"format": "pt"}))
    config.save(directory / MODEL_CONFIG)
    return directory


def missing_model_files(directory: str | os.PathLike) -> list[str]:
    """The files of a model directory (``config.json``, ``model.safetensors``) that ``directory`` lacks."""
    return [name for name in (MODEL_CONFIG, MODEL_WEIGHTS) if not (Path(directory) / name).is_file()]


def model_dir_problem(directory: str | os.PathLike) -> str | None:
    """Why ``directory`` is not a model directory, as a sentence naming it; None when it is one."""
    directory = Path(directory)
    if directory.is_file():
        return f"{directory} is a file; give the folder that holds model.safetensors and config.json"
    if not directory.is_dir():
        return f"{directory}: no such model directory"
    missing = missing_model_files(directory)
    if missing:
        return (
            f"{directory}: not a model directory, missing {' and '.join(missing)} "
            "(a model directory holds model.safetensors and config.json, as `train` and Fine-tune write it)"
        )
    if config_kind(directory / MODEL_CONFIG) == "m2":  # same file names: say which kind it is
        return f"{directory} is an M2 classifier, not a segmentation model (train from it with --m2)"
    return None


def load_model_config(directory: str | os.PathLike) -> ModelConfig:
    """Read only ``config.json`` of a model directory (no torch needed).

    Raises
    ------
    ModelLoadError
        If the directory or its files are missing, or the config is invalid.
    """
    directory = Path(directory)
    problem = model_dir_problem(directory)
    if problem:
        raise ModelLoadError(problem)
    try:
        return ModelConfig.load(directory / MODEL_CONFIG)
    except ConfigError as err:
        text, path = str(err), str(directory / MODEL_CONFIG)
        raise ModelLoadError(text if path in text else f"{path}: {text}") from None


def _read_model_dir(directory: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """The config and the weights of a model directory, the weights checked against the config's hash."""
    config = load_model_config(directory)
    weights = Path(directory) / MODEL_WEIGHTS
    state, _ = read_state_dict(weights)
    if config.weights_sha256 and state_dict_sha256(state) != config.weights_sha256:
        raise ModelLoadError(
            f"{weights}: the weights do not match config.json's weights_sha256: the two files "
            "come from different saves (an interrupted save, or a file copied from elsewhere)"
        )
    return config, state


def check_model_dir(directory: str | os.PathLike) -> ModelConfig:
    """The config of a model directory whose files belong together (no network is built).

    Raises
    ------
    ModelLoadError
        As :func:`load_model_dir` does for missing files, an invalid config or
        weights that do not match the config's sha256.
    """
    return _read_model_dir(directory)[0]


def load_model_dir(
    directory: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[CellSegNet, ModelConfig]:
    """Rebuild the network of a model directory and load its weights.

    The architecture comes from ``config.json`` (``pretrained=False``: the
    weights come from ``model.safetensors``, read without unpickling).

    Parameters
    ----------
    directory : str or PathLike
    device : str or torch.device
        Where to put the network; ``"auto"`` picks with :func:`resolve_device`.

    Returns
    -------
    model : CellSegNet
        In eval mode, fp32, on ``device``.
    config : ModelConfig

    Raises
    ------
    ModelLoadError
        For missing files, an invalid config, weights that do not match the
        config's sha256, or missing/unexpected keys and shape mismatches.
    """
    import torch

    from .surgery import SurgeryError

    config, state = _read_model_dir(directory)
    weights = Path(directory) / MODEL_WEIGHTS
    try:
        model = build_model_from_config(config)
    except (SurgeryError, ModelLoadError) as err:  # e.g. more transfer_layers than the M2 has stages
        raise ModelLoadError(f"{Path(directory) / MODEL_CONFIG}: {err}") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    load_weights_into(model, state, str(weights), config.arch)
    if isinstance(device, str) and device == "auto":
        device = resolve_device("auto")[0]
    return model.to(torch.device(device)).eval(), config
