"""The reduction shared by the training losses: ``(loss sum, weight sum)`` terms.

Every loss gives its terms before dividing, so that data-parallel training can
divide by the weight sums of the whole batch (``training.steps``); the input
checks and the float32 rule of both losses live here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = 255


def _check_inputs(logits: torch.Tensor, target: torch.Tensor, channels: int, name: str) -> None:
    if logits.ndim != 4 or logits.shape[1] != channels:
        raise ValueError(f"{name}: logits must have shape (N, {channels}, H, W), got {tuple(logits.shape)}")
    if target.ndim == 4 and target.dtype.is_floating_point:
        if name != "weighted-ce":
            raise ValueError(
                f"{name}: needs an integer class map; soft (N, C, H, W) targets suit weighted-ce only"
            )
        if target.shape != logits.shape:
            raise ValueError(
                f"{name}: soft targets must have the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        return
    if target.ndim != 3 or target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"{name}: target must have shape (N, H, W) = {(logits.shape[0], *logits.shape[2:])} "
            f"matching the logits, got {tuple(target.shape)}"
        )
    import torch

    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise ValueError(f"{name}: target must be an integer class map (uint8/long), got {target.dtype}")


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    import torch

    # Under AMP the logits may be bf16/fp16: compute the loss in float32.
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _weighted_mean(loss_sum: torch.Tensor, weight_sum: torch.Tensor) -> torch.Tensor:
    # An all-ignored batch (weight_sum 0, loss_sum 0) gives 0, not NaN; no GPU sync.
    return loss_sum / weight_sum.clamp_min(1e-12)


def combine_terms(terms, weight_sums=None) -> torch.Tensor:
    """The loss from its ``(loss_sum, weight_sum)`` terms: ``sum_t loss_sum_t / weight_sum_t``.

    ``weight_sums`` replaces the terms' own weight sums (DDP: the sums over
    every rank, so that the ranks' shares add up to the union batch's loss).
    """
    if weight_sums is None:
        weight_sums = [weight_sum for _, weight_sum in terms]
    total = None
    for (loss_sum, _), weight_sum in zip(terms, weight_sums):
        term = _weighted_mean(loss_sum, weight_sum)
        total = term if total is None else total + term
    return total
