"""Network surgery: M2 -> CellSegNet with the hyperparameters ``l``, ``l_a``, ``l_f``.

- ``l`` (``transfer_layers``): keep the first ``l`` stages of M2's feature
  extractor (see :mod:`.stages`), drop the rest and the classifier;
- ``l_a`` (``new_layers``): add ``l_a`` new decoder blocks (see :mod:`.decoder`)
  and a 1x1 convolution to the loss's output channels;
- ``l_f`` (``frozen_layers``): freeze the first ``l_f`` transferred stages:
  ``requires_grad`` is False and their BatchNorm layers stay in eval mode
  (running statistics frozen) even after ``model.train()``.

Valid ranges: ``1 <= l <= depth(M2)`` (5 for the default M2),
``1 <= l_a <= l + 2``, ``0 <= l_f <= l``.

The output has the input's size for any input size: the input is padded
(reflect, bottom/right) to a multiple of the deepest kept stride and the
logits are cropped back.

This module imports torch at import time: import it lazily from command-line
and plugin-discovery code.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import is_whole_number
from .decoder import DEFAULT_DECODER_CHANNELS, MAX_EXTRA_BLOCKS, UNetDecoder
from .defaults import layer_problems
from .m2 import M2Config, build_classifier, load_m2
from .stages import StageInfo, check_stages, split_stages

M2Source = str | os.PathLike | tuple[nn.Module, M2Config] | M2Config | None


class SurgeryError(ValueError):
    """An invalid combination of ``l``, ``l_a``, ``l_f`` or decoder settings."""


@dataclasses.dataclass(frozen=True)
class LayerSummary:
    """One row of :meth:`CellSegNet.summary`.

    Attributes
    ----------
    name : str
        ``"stage 1"``..., ``"decoder 1"``..., ``"head"``.
    origin : str
        ``"M2"`` (transferred) or ``"new"``.
    state : str
        ``"frozen"`` or ``"trainable"``.
    params : int
        Number of parameters.
    stride : int
        Output stride relative to the input.
    channels : int
        Output channels.
    detail : str
        What it is made of.
    """

    name: str
    origin: str
    state: str
    params: int
    stride: int
    channels: int
    detail: str


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class CellSegNet(nn.Module):
    """First ``l`` stages of M2, ``l_a`` new decoder blocks, 1x1 output convolution.

    Build it with :func:`build_model`. ``forward(x)`` maps ``(N, 3, H, W)``
    normalised images to ``(N, out_channels, H, W)`` logits.

    Attributes
    ----------
    encoder : torch.nn.ModuleList
        The ``l`` transferred stages (``nn.Sequential`` of M2 modules).
    decoder : UNetDecoder
        The ``l_a`` new blocks.
    head : torch.nn.Conv2d
        1x1 convolution to ``out_channels``.
    transfer_layers, new_layers, frozen_layers, out_channels : int
        ``l``, ``l_a``, ``l_f`` and the logit channels.
    decoder_channels : tuple of int
    stage_infos : tuple of StageInfo
        Modules, stride and channels of each transferred stage.
    m2_config : M2Config
        The M2 it was cut from (architecture, mean/std, identity).
    m2_pretrained : bool
        Whether training started from M2's weights (False: ``pretrained=False``,
        random weights of its architecture).
    input_multiple : int
        Deepest kept stride: inputs are padded to a multiple of it, and tiles
        aligned on it see the same pixel grid as the whole image.
    """

    def __init__(
        self,
        stages: Sequence[nn.Module],
        stage_infos: Sequence[StageInfo],
        new_layers: int,
        frozen_layers: int,
        out_channels: int,
        decoder_channels: Sequence[int],
        m2_config: M2Config,
    ):
        super().__init__()
        self.encoder = nn.ModuleList(stages)
        self.stage_infos = tuple(stage_infos)
        self.decoder = UNetDecoder([i.channels for i in stage_infos], new_layers, decoder_channels)
        self.head = nn.Conv2d(self.decoder.out_channels, out_channels, kernel_size=1)
        self.transfer_layers = len(stages)
        self.new_layers = new_layers
        self.out_channels = out_channels
        self.decoder_channels = tuple(int(c) for c in decoder_channels)
        self.m2_config = m2_config
        self.m2_pretrained = True  # build_model sets it: False for random weights (from scratch)
        self.input_multiple = max(info.reduction for info in stage_infos)
        self.freeze_stages(frozen_layers)

    def freeze_stages(self, frozen_layers: int) -> None:
        """Freeze the first ``frozen_layers`` transferred stages (``l_f``) and unfreeze the rest.

        Raises
        ------
        SurgeryError
            If ``frozen_layers`` is not in ``0..l``.
        """
        if not is_whole_number(frozen_layers) or not (0 <= frozen_layers <= self.transfer_layers):
            raise SurgeryError(
                f"frozen_layers l_f={frozen_layers!r} is out of range for l={self.transfer_layers} "
                f"(0..{self.transfer_layers}: at most the transferred stages)"
            )
        self.frozen_layers = frozen_layers
        for index, stage in enumerate(self.encoder):
            stage.requires_grad_(index >= frozen_layers)
        self.train(self.training)

    def train(self, mode: bool = True) -> CellSegNet:
        """Set train/eval mode; frozen stages (BatchNorm included) always stay in eval mode."""
        super().train(mode)
        for stage in self.encoder[: self.frozen_layers]:
            stage.eval()
        return self

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.input_multiple, -width % self.input_multiple
        if not (pad_h or pad_w):
            return x
        # Reflect needs the pad to be smaller than the side; tiny inputs replicate instead.
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"CellSegNet expects (N, 3, H, W) normalised images, got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        x = self._pad(x)
        features = []
        y = x
        for stage in self.encoder:
            y = stage(y)
            features.append(y)
        logits = self.head(self.decoder(x, features))
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :height, :width]

    def summary_rows(self) -> list[LayerSummary]:
        """Per stage and new layer: origin, frozen or trainable, parameters, stride, channels."""
        rows = []
        for i, (stage, info) in enumerate(zip(self.encoder, self.stage_infos)):
            state = "frozen" if i < self.frozen_layers else "trainable"
            rows.append(
                LayerSummary(
                    f"stage {info.index}",
                    "M2",
                    state,
                    _count(stage),
                    info.reduction,
                    info.channels,
                    " + ".join(info.modules),
                )
            )
        strides = [1, *(info.reduction for info in self.stage_infos)]
        previous = self.transfer_layers
        for i, (block, level) in enumerate(zip(self.decoder.blocks, self.decoder.levels)):
            if block.skip_channels:
                skip = "input image" if level == 0 else f"stage {level}"
                detail = f"up x{strides[previous] // strides[level]} + skip {skip} + 2x conv3x3"
            else:
                detail = "2x conv3x3 at full resolution"
            rows.append(
                LayerSummary(
                    f"decoder {i + 1}",
                    "new",
                    "trainable",
                    _count(block),
                    strides[level],
                    block.conv2[0].out_channels,
                    detail,
                )
            )
            previous = level
        out_stride = strides[self.decoder.out_level]
        detail = "conv1x1" + (f", logits up x{out_stride} (bilinear)" if out_stride > 1 else "")
        rows.append(LayerSummary("head", "new", "trainable", _count(self.head), 1, self.out_channels, detail))
        return rows

    def summary(self) -> str:
        """A table of :meth:`summary_rows` with parameter totals."""
        rows = self.summary_rows()
        lines = [
            f"CellSegNet from M2 {self.m2_config.name or self.m2_config.arch!r} ({self.m2_config.arch}): "
            f"l={self.transfer_layers} transferred, l_a={self.new_layers} new, l_f={self.frozen_layers} frozen",
            f"{'layer':<10} {'origin':<6} {'state':<9} {'params':>10} {'stride':>6} {'ch':>4}  detail",
        ]
        for r in rows:
            lines.append(
                f"{r.name:<10} {r.origin:<6} {r.state:<9} {r.params:>10,} {r.stride:>6} {r.channels:>4}  {r.detail}"
            )
        total = sum(r.params for r in rows)
        trainable = sum(r.params for r in rows if r.state == "trainable")
        lines.append(f"total {total:,} parameters: {trainable:,} trainable, {total - trainable:,} frozen")
        return "\n".join(lines)


def _resolve_m2(m2: M2Source, pretrained: bool) -> tuple[nn.Module, M2Config, bool]:
    """The classifier to cut, its config, and whether it belongs to the caller."""
    if isinstance(m2, M2Config):
        if pretrained:
            raise SurgeryError("an M2Config alone holds no weights: pass pretrained=False, or an M2 path")
        return build_classifier(m2.arch, 0), m2, False
    if isinstance(m2, tuple):
        if len(m2) != 2 or not isinstance(m2[0], nn.Module) or not isinstance(m2[1], M2Config):
            raise SurgeryError("m2 as a tuple must be (timm model, M2Config)")
        model, config = m2
        if pretrained:
            return model, config, True
        return build_classifier(config.arch, 0), config, False
    model, config = load_m2(None if m2 in (None, "default") else m2)
    if not pretrained:
        model = build_classifier(config.arch, 0)  # same architecture, random weights
    return model, config, False


def valid_ranges(depth: int, transfer_layers: int | None = None) -> str:
    """The valid ``l``/``l_a``/``l_f`` ranges, in words, for an M2 with ``depth`` stages."""
    l_text = "l" if transfer_layers is None else str(transfer_layers)
    top = "l+2" if transfer_layers is None else str(transfer_layers + MAX_EXTRA_BLOCKS)
    return f"transfer_layers l in 1..{depth}, new_layers l_a in 1..{top}, frozen_layers l_f in 0..{l_text}"


def build_model(
    m2: M2Source = "default",
    transfer_layers: int | None = None,
    new_layers: int | None = None,
    frozen_layers: int = 0,
    out_channels: int = 3,
    decoder_channels: Sequence[int] = DEFAULT_DECODER_CHANNELS,
    pretrained: bool = True,
    channels_last: bool = False,
) -> CellSegNet:
    """Build a segmentation network from M2 by surgery.

    Parameters
    ----------
    m2 : "default", path, (model, M2Config) or M2Config
        The M2: the bundled default, an M2 checkpoint path (see
        :func:`~napari_cellseg.models.m2.load_m2`), an already loaded
        classifier with its config, or a config alone (``pretrained=False`` only).
    transfer_layers : int, optional
        ``l``, stages of M2 kept; default all of them.
    new_layers : int, optional
        ``l_a``, new decoder blocks; default ``l`` (a full U-Net).
    frozen_layers : int
        ``l_f``, transferred stages frozen (default 0).
    out_channels : int
        3 for ``weighted-ce``, 2 for ``weighted-bce``.
    decoder_channels : sequence of int
        Channels per decoder level, deepest first, last at the input resolution
        (at least ``l`` entries).
    pretrained : bool
        False: same architecture with random weights ("from scratch" ablation).
    channels_last : bool
        Convert the network to the ``channels_last`` memory format.

    Returns
    -------
    CellSegNet
        In train mode (frozen stages in eval mode).

    Raises
    ------
    SurgeryError
        If ``l``, ``l_a``, ``l_f``, ``out_channels`` or ``decoder_channels`` are out of range.
    ModelLoadError
        If the M2 cannot be loaded or split into stages.
    """
    classifier, config, callers = _resolve_m2(m2, pretrained)
    stages, infos = split_stages(classifier, config.arch)
    check_stages(stages, infos, config.arch)
    depth = len(stages)
    l = depth if transfer_layers is None else transfer_layers  # noqa: E741
    l_a = l if new_layers is None else new_layers
    problems = layer_problems(l, l_a, frozen_layers, depth)
    if problems:
        fits = is_whole_number(l) and 1 <= l <= depth
        valid = valid_ranges(depth, l if fits else None)
        raise SurgeryError(f"M2 {config.arch!r}: {'; '.join(problems)}; valid: {valid}")
    if out_channels not in (2, 3):
        raise SurgeryError(f"out_channels must be 3 (weighted-ce) or 2 (weighted-bce), got {out_channels!r}")
    if len(decoder_channels) < l or any(int(c) < 1 for c in decoder_channels):
        raise SurgeryError(
            f"decoder_channels {tuple(decoder_channels)} needs at least l={l} positive "
            "entries (deepest level first, the input resolution last)"
        )
    # Copy the caller's modules: the network must not share (and freeze) them.
    kept = copy.deepcopy(stages[:l]) if callers else stages[:l]
    model = CellSegNet(kept, infos[:l], l_a, frozen_layers, out_channels, decoder_channels, config)
    model.m2_pretrained = bool(pretrained)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
