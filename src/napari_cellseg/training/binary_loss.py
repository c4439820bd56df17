"""The binary loss variant (``weighted-bce``): a foreground and a boundary sigmoid channel.

A boundary map alone gives the watershed no markers, hence the foreground
channel. Each channel's pixel loss is
``l_i = -(w y_i log p_i + (1 - y_i) log(1 - p_i))``, with ``w = 1`` for the
foreground channel and ``w = boundary_weight`` (default 3) for the boundary
channel; each channel is reduced by its weighted mean and the two are added
(:mod:`.loss_terms`). torch is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..classes import BACKGROUND, BOUNDARY, DEFAULT_BOUNDARY_WEIGHT_BCE
from .loss_terms import IGNORE_INDEX, _at_least_float32, _check_inputs, combine_terms

if TYPE_CHECKING:
    import torch


def _weighted_bce_channel(
    logit: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor, positive_weight: float
):
    import torch.nn.functional as F

    y = positive.to(logit.dtype)
    # -(w y log p + (1 - y) log(1 - p)), computed stably from the logit.
    pixel_loss = positive_weight * y * F.softplus(-logit) + (1 - y) * F.softplus(logit)
    pixel_weight = (positive_weight * y + (1 - y)) * valid
    return (pixel_loss * valid).sum(), pixel_weight.sum()


def weighted_binary_boundary_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    boundary_weight: float = DEFAULT_BOUNDARY_WEIGHT_BCE,
    foreground_weight: float = 1.0,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Weighted binary cross-entropy on a foreground and a boundary channel.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, 2, H, W)``: channel 0 the foreground logit, channel 1 the boundary logit.
    target : torch.Tensor
        ``(N, H, W)`` 3-class map (0 background, 1 boundary, 2 interior);
        foreground is ``target != 0``, boundary is ``target == 1``.
    boundary_weight : float
        Weight ``w`` of boundary pixels in the boundary channel (default 3).
    foreground_weight : float
        Weight of foreground pixels in the foreground channel (default 1).
    ignore_index : int
        Target value of pixels that count nowhere.

    Returns
    -------
    torch.Tensor
        Scalar: the sum of the two channels' weighted means
        ``sum_i -(w y_i log p_i + (1 - y_i) log(1 - p_i)) / sum_i (w y_i + 1 - y_i)``.
    """
    return combine_terms(
        weighted_binary_boundary_terms(logits, target, boundary_weight, foreground_weight, ignore_index)
    )


def weighted_binary_boundary_terms(
    logits: torch.Tensor,
    target: torch.Tensor,
    boundary_weight: float = DEFAULT_BOUNDARY_WEIGHT_BCE,
    foreground_weight: float = 1.0,
    ignore_index: int = IGNORE_INDEX,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`weighted_binary_boundary_loss` before its divisions: one ``(loss sum, weight sum)`` per channel."""
    import torch

    _check_inputs(logits, target, 2, "weighted-bce")
    logits = _at_least_float32(logits)
    target = target.long()
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target > 2))
    if bool(bad.any()):
        values = sorted(torch.unique(target[bad]).tolist())
        raise ValueError(
            f"weighted-bce: target holds class value(s) {values}; expected 0, 1, 2 "
            f"or {ignore_index} (ignored)"
        )
    validf = valid.to(logits.dtype)
    channels = (
        (target != BACKGROUND, foreground_weight),
        (target == BOUNDARY, boundary_weight),
    )
    return [
        _weighted_bce_channel(logits[:, channel], positive, validf, weight)
        for channel, (positive, weight) in enumerate(channels)
    ]


class WeightedBinaryBoundaryLoss:
    """Callable ``loss(logits, target)``: :func:`weighted_binary_boundary_loss`.

    Parameters
    ----------
    boundary_weight : float
        Weight of boundary pixels in the boundary channel (default 3).
    foreground_weight : float
        Weight of foreground pixels in the foreground channel (default 1).
    ignore_index : int
        Target value excluded from the loss (default 255).
    """

    name = "weighted-bce"
    out_channels = 2

    def __init__(
        self,
        boundary_weight: float = DEFAULT_BOUNDARY_WEIGHT_BCE,
        foreground_weight: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
    ):
        if boundary_weight <= 0 or foreground_weight <= 0:
            raise ValueError(
                f"boundary_weight and foreground_weight must be > 0, got "
                f"{boundary_weight!r} and {foreground_weight!r}"
            )
        self.boundary_weight = float(boundary_weight)
        self.foreground_weight = float(foreground_weight)
        self.ignore_index = int(ignore_index)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return combine_terms(self.terms(logits, target))

    def terms(self, logits: torch.Tensor, target: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The ``(loss sum, weight sum)`` terms, one per channel (see :func:`combine_terms`)."""
        return weighted_binary_boundary_terms(
            logits, target, self.boundary_weight, self.foreground_weight, self.ignore_index
        )

    forward = __call__

    def __repr__(self) -> str:
        return f"WeightedBinaryBoundaryLoss(boundary_weight={self.boundary_weight})"
