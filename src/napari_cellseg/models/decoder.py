"""The new layers (``l_a``): a light U-Net decoder over the transferred stages.

One *new layer* is one :class:`DecoderBlock`:

    upsample (bilinear) to the next finer level -> concatenate that level's
    skip tensor -> (3x3 conv, BatchNorm, ReLU) x 2

The levels are numbered by resolution: level ``j >= 1`` is the output of
transferred stage ``j`` and level 0 is the input resolution, whose "skip" is
the normalised input image itself (3 channels, cheap, sharp edges). With ``l``
stages kept, the decoder starts from stage ``l`` and its blocks target levels
``l-1, l-2, ..., 0``:

- ``l_a == l``: a full U-Net, the last block at the input resolution;
- ``l_a < l``: the blocks stop at level ``l - l_a``; the 1x1 output
  convolution runs there and its logits are upsampled bilinearly to the input
  size (like DeepLab's final upsampling);
- ``l_a > l``: the ``l_a - l`` extra blocks run at the input resolution
  (no upsampling, no skip), at most :data:`MAX_EXTRA_BLOCKS` of them.

A block targeting level ``j`` has ``decoder_channels[-(j + 1)]`` output
channels: the list runs from the deepest level to the input resolution, so
the default ``(64, 48, 32, 24, 16)`` gives 16 channels at full resolution
whatever ``l`` is, and the expensive high-resolution blocks stay thin.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .defaults import DEFAULT_DECODER_CHANNELS, MAX_EXTRA_BLOCKS

__all__ = ["DEFAULT_DECODER_CHANNELS", "MAX_EXTRA_BLOCKS", "DecoderBlock", "UNetDecoder", "decoder_plan"]


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias), BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DecoderBlock(nn.Module):
    """One new layer: [upsample to the skip's size, concatenate it], then two ConvBNReLU.

    Parameters
    ----------
    in_channels : int
        Channels of the coarser input.
    skip_channels : int
        Channels of the skip tensor; 0 for a block at full resolution without skip.
    out_channels : int
        Output channels.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.skip_channels = skip_channels
        self.conv1 = ConvBNReLU(in_channels + skip_channels, out_channels)
        self.conv2 = ConvBNReLU(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


def decoder_plan(transfer_layers: int, new_layers: int) -> list[int]:
    """The level each decoder block outputs at (see the module docstring).

    Examples
    --------
    >>> decoder_plan(5, 5)
    [4, 3, 2, 1, 0]
    >>> decoder_plan(5, 2)
    [4, 3]
    >>> decoder_plan(3, 5)
    [2, 1, 0, 0, 0]
    """
    natural = list(range(transfer_layers - 1, -1, -1))
    return natural[:new_layers] + [0] * max(0, new_layers - transfer_layers)


class UNetDecoder(nn.Module):
    """``l_a`` decoder blocks from the deepest kept stage towards the input resolution.

    Parameters
    ----------
    stage_channels : sequence of int
        Output channels of the kept stages 1..l.
    new_layers : int
        Number of decoder blocks ``l_a``.
    decoder_channels : sequence of int
        Channels per level, deepest first, the last at the input resolution;
        needs at least ``l`` entries.
    input_channels : int
        Channels of the level-0 skip (the network input).
    """

    def __init__(
        self,
        stage_channels: Sequence[int],
        new_layers: int,
        decoder_channels: Sequence[int] = DEFAULT_DECODER_CHANNELS,
        input_channels: int = 3,
    ):
        super().__init__()
        levels = decoder_plan(len(stage_channels), new_layers)
        skip_channels = [input_channels, *stage_channels[:-1]]  # index = level
        blocks, in_ch, previous_level = [], stage_channels[-1], len(stage_channels)
        for level in levels:
            out_ch = int(decoder_channels[len(decoder_channels) - 1 - level])
            has_skip = level < previous_level  # extra full-resolution blocks take no skip
            blocks.append(DecoderBlock(in_ch, skip_channels[level] if has_skip else 0, out_ch))
            in_ch, previous_level = out_ch, level
        self.blocks = nn.ModuleList(blocks)
        self.levels = levels
        self.out_channels = in_ch
        self.out_level = levels[-1]

    def forward(self, image: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        skips = [image, *features[:-1]]
        x = features[-1]
        for block, level in zip(self.blocks, self.levels):
            x = block(x, skips[level] if block.skip_channels else None)
        return x
