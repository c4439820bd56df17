"""M2 checkpoints: the pretrained classification network that fine-tuning starts from.

An M2 checkpoint names its architecture (a timm model name) and its input
statistics, and holds its weights. Three forms are read:

1. a directory with ``model.safetensors`` and ``config.json`` (an :class:`M2Config`),
   the form :func:`save_m2` writes;
2. a single ``.safetensors`` file whose metadata holds the config JSON under
   the key ``napari_cellseg.m2`` (or, without it, an explicit ``arch``);
3. a bare PyTorch state dict (``.pt``/``.pth``/...), only with an explicit
   ``arch`` and only through ``torch.load(weights_only=True)``: a file that
   would run code when unpickled is refused, and the code never runs.

The default M2 is ImageNet EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``),
bundled in ``napari_cellseg/weights/m2-efficientnet-lite0`` (see
:mod:`napari_cellseg.models.m2_convert`). Networks are built with
``timm.create_model(arch, pretrained=False)``: nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import ConfigError, JsonConfig, is_whole_number
from .weights_io import ModelLoadError, load_weights_into, read_state_dict, state_dict_sha256

__all__ = [
    "M2Config",
    "ModelLoadError",
    "build_classifier",
    "default_m2_dir",
    "load_m2",
    "load_weights_into",
    "read_state_dict",
    "save_m2",
    "state_dict_sha256",
]

if TYPE_CHECKING:
    import torch

M2_WEIGHTS = "model.safetensors"
M2_CONFIG = "config.json"
SAFETENSORS_CONFIG_KEY = "napari_cellseg.m2"
DEFAULT_M2_NAME = "m2-efficientnet-lite0"
M2_FORMAT_VERSION = 1  # the newest M2 config.json layout this version reads


@dataclasses.dataclass
class M2Config(JsonConfig):
    """What an M2 checkpoint is: architecture, classes, input statistics, provenance.

    Attributes
    ----------
    arch : str
        timm model name, e.g. ``"tf_efficientnet_lite0"``.
    num_classes : int
        Classifier outputs (1000 for ImageNet; 0 for a headless feature extractor).
    name : str
        Short human name of this M2.
    class_names : list of str, optional
        One name per class.
    mean, std : tuple of 3 floats
        Per-channel input statistics on the [0, 1] scale: the network sees
        ``(x - mean) / std``.
    input_size : int
        Side of the square images it was trained on.
    source : str
        Where the weights come from.
    licence : str
        Licence of the weights.
    weights_sha256 : str, optional
        :func:`state_dict_sha256` of the weights; checked on load when present.
    format_version : int
        Layout version of this config.
    """

    FORMAT_VERSION: ClassVar[int] = M2_FORMAT_VERSION

    arch: str
    num_classes: int
    name: str = ""
    class_names: list[str] | None = None
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    input_size: int = 224
    source: str = ""
    licence: str = ""
    weights_sha256: str | None = None
    format_version: int = M2_FORMAT_VERSION

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        problems = m2_config_problems(self)
        if problems:
            raise ConfigError("; ".join(problems))


def m2_config_problems(config: M2Config) -> list[str]:
    """Why ``config`` cannot describe an M2, as sentences (empty when it can)."""
    out = []
    if not isinstance(config.arch, str) or not config.arch:
        out.append(f"arch must be a timm model name, got {config.arch!r}")
    for name, least in (("num_classes", 0), ("input_size", 1), ("format_version", 1)):
        value = getattr(config, name)  # 0 classes: a headless feature extractor
        if not is_whole_number(value) or value < least:
            out.append(f"{name} must be a whole number >= {least}, got {value!r}")
    if len(config.mean) != 3 or len(config.std) != 3:
        out.append(f"mean and std need 3 values (R, G, B), got {list(config.mean)} and {list(config.std)}")
    elif not all(math.isfinite(v) and 0 <= v <= 1 for v in config.mean):
        out.append(f"mean must be 3 numbers on the [0, 1] scale, got {list(config.mean)}")
    if len(config.std) == 3 and not all(math.isfinite(v) and v > 0 for v in config.std):
        # the network sees (x - mean) / std: 0 divides by zero
        out.append(f"std must be 3 positive numbers, got {list(config.std)}")
    if config.class_names is not None and len(config.class_names) != config.num_classes:
        out.append(f"class_names has {len(config.class_names)} names for num_classes={config.num_classes}")
    return out


def default_m2_dir() -> Path:
    """The bundled default M2 directory (ImageNet EfficientNet-Lite0)."""
    return Path(__file__).resolve().parents[1] / "weights" / DEFAULT_M2_NAME


def build_classifier(arch: str, num_classes: int = 1000, pretrained: bool = False) -> torch.nn.Module:
    """Build a timm classifier with random weights (never downloads).

    This is what ``napari-cellseg pretrain`` trains and saves with :func:`save_m2`.

    Parameters
    ----------
    arch : str
        timm model name.
    num_classes : int
        Classifier outputs; 0 builds the network without a classifier.
    pretrained : bool
        Must be False; accepted so that callers can pass timm-style arguments.

    Raises
    ------
    ModelLoadError
        If timm has no model of that name.
    """
    import timm

    if pretrained:
        raise ValueError("build_classifier never downloads weights; load an M2 with load_m2()")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=8, cutoff=0.6) if arch else []
        raise ModelLoadError(
            f"unknown architecture {arch!r}: timm has no such model"
            + (f" (similar names: {', '.join(close)})" if close else "")
        )
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    return timm.create_model(arch, pretrained=False, num_classes=num_classes)


def _default_stats(model: torch.nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size", (3, 224, 224))
    return {
        "mean": tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),
        "std": tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))),
        "input_size": int(size[-1]),
    }


def save_m2(directory: str | os.PathLike, model: torch.nn.Module, config: M2Config) -> Path:
    """Save an M2 as a directory: ``model.safetensors`` (fp32) and ``config.json``.

    The weights file also carries the config in its metadata, so it stands alone.
    Each file is written atomically. ``config.weights_sha256`` is filled in.

    Returns
    -------
    pathlib.Path
        The directory.
    """
    from safetensors.torch import save as save_bytes

    from ..config import atomic_write_bytes

    actual = int(getattr(model, "num_classes", config.num_classes))
    if actual != config.num_classes:
        raise ValueError(f"config.num_classes is {config.num_classes} but the model has {actual} outputs")
    state = {
        k: v.detach().cpu().float().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    config = dataclasses.replace(config, weights_sha256=state_dict_sha256(state))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = save_bytes(state, metadata={SAFETENSORS_CONFIG_KEY: config.to_json(indent=None)})
    atomic_write_bytes(directory / M2_WEIGHTS, data)
    config.save(directory / M2_CONFIG)
    return directory


def config_kind(path: str | os.PathLike) -> str | None:
    """``"m2"`` or ``"segmentation"``: which kind of ``config.json`` this is (None: neither or unreadable).

    M2 directories and segmentation model directories both hold a ``config.json``;
    telling them apart turns a list of "unknown keys" into a sentence that says
    which option the folder belongs to.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if "transfer_layers" in data and "new_layers" in data:
        return "segmentation"
    if "num_classes" in data and "arch" in data:
        return "m2"
    return None


def _read_m2_source(path: Path, arch: str | None) -> tuple[dict, M2Config | None]:
    if path.is_dir():
        for name in (M2_WEIGHTS, M2_CONFIG):
            if not (path / name).is_file():
                raise ModelLoadError(f"{path}: not an M2 directory: {name} is missing")
        if config_kind(path / M2_CONFIG) == "segmentation":
            raise ModelLoadError(
                f"{path} is a segmentation model, not an M2 classifier (start training from it with --init-model)"
            )
        try:
            config = M2Config.load(path / M2_CONFIG)
        except ConfigError as err:  # a value refused by M2Config itself comes without the file
            text, where = str(err), str(path / M2_CONFIG)
            raise ModelLoadError(text if where in text else f"{where}: {text}") from None
        state, _ = read_state_dict(path / M2_WEIGHTS)
        return state, config
    state, metadata = read_state_dict(path)
    if SAFETENSORS_CONFIG_KEY in metadata:
        try:
            config = M2Config.from_dict(json.loads(metadata[SAFETENSORS_CONFIG_KEY]), _where=str(path))
        except (ConfigError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"{path}: bad M2 config in the safetensors metadata ({err})") from None
        return state, config
    if arch is None:
        raise ModelLoadError(
            f"{path}: a bare state dict does not name its architecture; make it an M2 directory with "
            f"`napari-cellseg import-m2 {path} --arch ARCH --out M2_DIR` (in Python: "
            "load_m2(path, arch='tf_efficientnet_lite0'), for example)"
        )
    return state, None


def load_m2(
    path: str | os.PathLike | None = None, arch: str | None = None
) -> tuple[torch.nn.Module, M2Config]:
    """Load an M2 checkpoint into a timm classifier.

    Parameters
    ----------
    path : str or PathLike, optional
        An M2 directory, a ``.safetensors`` file, or a bare state dict file.
        ``None`` or ``"default"`` loads the bundled EfficientNet-Lite0.
    arch : str, optional
        timm architecture; required for a bare state dict, and checked against
        the checkpoint's own when it names one.

    Returns
    -------
    model : torch.nn.Module
        The timm classifier in eval mode, on the CPU.
    config : M2Config
        Its config, with ``weights_sha256`` set to the loaded weights' hash.

    Raises
    ------
    ModelLoadError
        If the checkpoint is missing, unsafe, of another architecture, or has
        missing/unexpected keys or wrong shapes.
    """
    path = default_m2_dir() if path is None or str(path) == "default" else Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such M2 checkpoint (file or directory)")
    state, config = _read_m2_source(path, arch)
    if config is not None and arch is not None and arch != config.arch:
        raise ModelLoadError(f"{path}: the checkpoint is architecture {config.arch!r}, not {arch!r}")
    model = None
    if config is None:
        from .m2_convert import efficientnet_pytorch_to_timm, looks_like_efficientnet_pytorch

        model = build_classifier(arch, 1000)
        if looks_like_efficientnet_pytorch(state):
            state = efficientnet_pytorch_to_timm(state, model)
        classifier = model.pretrained_cfg.get("classifier", "classifier")
        head = state.get(f"{classifier}.weight")
        num_classes = int(head.shape[0]) if head is not None else 0
        if num_classes != model.num_classes:
            model.reset_classifier(num_classes)
        config = M2Config(
            arch=arch, num_classes=num_classes, name=path.stem, source=str(path), **_default_stats(model)
        )
    sha = state_dict_sha256(state)
    if config.weights_sha256 and config.weights_sha256 != sha:
        raise ModelLoadError(
            f"{path}: the weights do not match the sha256 recorded in the config "
            f"({config.weights_sha256[:12]}... vs {sha[:12]}...): the files are corrupt or were mixed"
        )
    if model is None:
        model = build_classifier(config.arch, config.num_classes)
    load_weights_into(model, state, str(path), config.arch)
    model.eval()
    return model, dataclasses.replace(config, weights_sha256=sha)
