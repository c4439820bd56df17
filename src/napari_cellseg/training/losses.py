"""Training losses for the 3-class (background / boundary / interior) targets.

Two losses, chosen by name in the model's config (``loss``):

``weighted-ce``
    Weighted multi-class cross-entropy over 3 softmax channels,
    ``l_i = -w[y_i] log p[y_i]``, default weights 1 / 5 / 3 for background /
    boundary / interior. It also takes soft targets ``t`` (``(N, 3, H, W)``
    class probabilities, :mod:`napari_cellseg.data.soft_targets`):
    ``l_i = -w_i sum_c t_ic log p_ic`` with ``w_i = sum_c w[c] t_ic``, which is
    the hard loss wherever ``t`` is one-hot.
``weighted-bce``
    Two sigmoid channels, foreground and boundary, the boundary's positives
    weighted 3 by default: :mod:`.binary_loss` (re-exported here).

``contact_weight`` (``weighted-ce``, hard targets): pixels whose target is
``CONTACT_TARGET`` (3) are boundary pixels between two cells
(``training.data.CropDataset`` marks them); they count as boundary with their
weight multiplied by ``contact_weight``, so merges of touching cells cost more.

``dice_weight`` (``weighted-ce``): adds ``dice_weight`` times the soft Dice loss
``1 - mean_c 2 sum_i p_ic t_ic / (sum_i p_ic + sum_i t_ic)`` over the boundary and
interior classes (nnU-Net's "CE + Dice"; background left out, as it dominates). The
sums run over the whole batch (batch Dice), so a crop without cells does not count
as a failure; under DDP each rank takes its own batch's Dice and the gradients are
averaged. 0 (default): off.

Reduction (both losses): the **weighted mean** over the valid pixels,
``L = sum_i l_i / sum_i w_i``, where ``w_i`` is the weight that multiplies pixel
``i``'s log-likelihood. For ``weighted-ce`` this is exactly PyTorch's
``cross_entropy(weight=..., reduction="mean")``. For ``weighted-bce`` the two
channels are reduced separately and added. Pixels equal to ``ignore_index``
(255) count in neither sum; a batch with no valid pixel gives 0. Each loss also
gives its ``(loss sum, weight sum)`` terms (``loss.terms``), so that data-parallel
training can divide by the weight sums of the whole batch (``training.steps``;
the terms and their reduction: :mod:`.loss_terms`).

torch is imported inside the functions, so importing this module is light.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..classes import BOUNDARY, DEFAULT_CLASS_WEIGHTS, INTERIOR
from ..models.probabilities import LOSS_OUT_CHANNELS
from .binary_loss import (
    WeightedBinaryBoundaryLoss,
    weighted_binary_boundary_loss,
    weighted_binary_boundary_terms,
)
from .loss_terms import IGNORE_INDEX, _at_least_float32, _check_inputs, combine_terms

if TYPE_CHECKING:
    import torch

__all__ = [
    "CONTACT_TARGET", "IGNORE_INDEX", "LOSS_NAMES", "WeightedBinaryBoundaryLoss", "WeightedCrossEntropy",
    "build_loss", "combine_terms", "weighted_binary_boundary_loss", "weighted_binary_boundary_terms",
    "weighted_cross_entropy", "weighted_cross_entropy_terms",
]  # fmt: skip

CONTACT_TARGET = 3  # training targets only: a boundary pixel between two cells (see contact_weight)
LOSS_NAMES = tuple(LOSS_OUT_CHANNELS)  # ("weighted-ce", "weighted-bce")


def weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weights: Sequence[float] = DEFAULT_CLASS_WEIGHTS,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Weighted cross-entropy, reduced by the weighted mean.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, 3, H, W)`` float logits.
    target : torch.Tensor
        ``(N, H, W)`` integer classes (0 background, 1 boundary, 2 interior);
        ``ignore_index`` marks pixels to exclude. Or ``(N, 3, H, W)`` float
        class probabilities (soft targets, see the module doc).
    class_weights : sequence of 3 floats
        Weight of each class, default ``(1, 5, 3)``.
    ignore_index : int
        Target value of pixels that count nowhere.

    Returns
    -------
    torch.Tensor
        Scalar ``sum_i w[y_i] (-log p[y_i]) / sum_i w[y_i]`` over valid pixels.
    """
    return combine_terms(weighted_cross_entropy_terms(logits, target, class_weights, ignore_index))


def weighted_cross_entropy_terms(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weights: Sequence[float] = DEFAULT_CLASS_WEIGHTS,
    ignore_index: int = IGNORE_INDEX,
    contact_weight: float = 1.0,
    dice_weight: float = 0.0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`weighted_cross_entropy` before its division: ``[(sum_i w l_i, sum_i w_i)]``,
    and a ``(dice_weight * Dice loss, 1)`` term when ``dice_weight`` > 0 (module doc)."""
    import torch
    import torch.nn.functional as F

    n_classes = len(class_weights)
    _check_inputs(logits, target, n_classes, "weighted-ce")
    logits = _at_least_float32(logits)
    if target.ndim == 4:
        terms = _soft_cross_entropy_terms(logits, target, class_weights)
        return terms + (_dice_terms(logits, target, None, dice_weight) if dice_weight > 0 else [])
    target = target.long()
    contact = target == CONTACT_TARGET if contact_weight != 1.0 else None
    if contact is not None:
        target = torch.where(contact, torch.full_like(target, BOUNDARY), target)
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= n_classes))
    if bool(bad.any()):
        values = sorted(torch.unique(target[bad]).tolist())
        raise ValueError(
            f"weighted-ce: target holds class value(s) {values}; expected 0..{n_classes - 1} "
            f"or {ignore_index} (ignored)"
        )
    weights = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    log_p = F.log_softmax(logits, dim=1).gather(1, safe_target[:, None])[:, 0]
    pixel_weight = weights[safe_target] * valid
    if contact is not None:
        pixel_weight = pixel_weight * torch.where(contact, float(contact_weight), 1.0).to(pixel_weight.dtype)
    terms = [(-(pixel_weight * log_p).sum(), pixel_weight.sum())]
    if dice_weight > 0:
        one_hot = F.one_hot(safe_target, n_classes).permute(0, 3, 1, 2).to(logits.dtype)
        terms += _dice_terms(logits, one_hot, valid, dice_weight)
    return terms


DICE_CLASSES = (BOUNDARY, INTERIOR)  # the classes of the cells
DICE_EPS = 1.0  # keeps a batch without boundary pixels at a finite, near-zero loss


def _dice_terms(logits, target_probs, valid, dice_weight: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(dice_weight * (1 - mean Dice of DICE_CLASSES), 1)]``; ``valid`` (None: all) masks pixels."""
    import torch

    probs = torch.softmax(logits, dim=1)
    if valid is not None:
        mask = valid[:, None].to(probs.dtype)
        probs, target_probs = probs * mask, target_probs * mask
    classes = list(DICE_CLASSES)
    p, t = probs[:, classes], target_probs[:, classes].to(probs.dtype)
    overlap = (p * t).sum(dim=(0, 2, 3))
    dice = (2 * overlap + DICE_EPS) / (p.sum(dim=(0, 2, 3)) + t.sum(dim=(0, 2, 3)) + DICE_EPS)
    return [(float(dice_weight) * (1 - dice.mean()), torch.ones((), dtype=probs.dtype, device=probs.device))]


def _soft_cross_entropy_terms(
    logits: torch.Tensor, target: torch.Tensor, class_weights: Sequence[float]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    import torch
    import torch.nn.functional as F

    target = target.to(logits.dtype)
    weights = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
    pixel_weight = (target * weights[None, :, None, None]).sum(1)
    pixel_loss = -(target * F.log_softmax(logits, dim=1)).sum(1)
    return [((pixel_weight * pixel_loss).sum(), pixel_weight.sum())]


class WeightedCrossEntropy:
    """Callable ``loss(logits, target)``: :func:`weighted_cross_entropy` with fixed weights.

    A plain callable rather than a ``torch.nn.Module``: it holds no tensors
    (weights are built on the logits' device), so nothing needs moving.

    Parameters
    ----------
    class_weights : sequence of 3 floats
        Background, boundary, interior weights (default 1, 5, 3).
    ignore_index : int
        Target value excluded from the loss (default 255).
    contact_weight : float
        Weight multiplier of the boundary pixels between two cells (target
        value ``CONTACT_TARGET``); 1 (default): off, and 3 is not a valid target.
    dice_weight : float
        Weight of the soft Dice loss added to the cross-entropy (module doc);
        0 (default): off.
    """

    name = "weighted-ce"
    out_channels = 3

    def __init__(
        self,
        class_weights: Sequence[float] = DEFAULT_CLASS_WEIGHTS,
        ignore_index: int = IGNORE_INDEX,
        contact_weight: float = 1.0,
        dice_weight: float = 0.0,
    ):
        if not float(contact_weight) > 0:
            raise ValueError(f"contact_weight must be > 0, got {contact_weight!r}")
        if not float(dice_weight) >= 0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight!r}")
        self.contact_weight = float(contact_weight)
        self.dice_weight = float(dice_weight)
        weights = tuple(float(w) for w in class_weights)
        if len(weights) != 3 or min(weights) < 0 or sum(weights) == 0:
            raise ValueError(
                f"class_weights must be 3 non-negative numbers, not all 0, got {class_weights!r}"
            )
        self.class_weights = weights
        self.ignore_index = int(ignore_index)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return combine_terms(self.terms(logits, target))

    def terms(self, logits: torch.Tensor, target: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The ``(loss sum, weight sum)`` terms (see :func:`combine_terms`)."""
        return weighted_cross_entropy_terms(
            logits, target, self.class_weights, self.ignore_index, self.contact_weight, self.dice_weight
        )

    forward = __call__

    def __repr__(self) -> str:
        contact = f", contact_weight={self.contact_weight}" if self.contact_weight != 1.0 else ""
        dice = f", dice_weight={self.dice_weight}" if self.dice_weight else ""
        return f"WeightedCrossEntropy(class_weights={self.class_weights}{contact}{dice})"


def build_loss(name: str, **kwargs) -> WeightedCrossEntropy | WeightedBinaryBoundaryLoss:
    """Build a loss by name.

    Parameters
    ----------
    name : {"weighted-ce", "weighted-bce"}
        The loss.
    **kwargs
        ``class_weights`` / ``ignore_index`` / ``contact_weight`` / ``dice_weight`` for ``weighted-ce``;
        ``boundary_weight`` / ``foreground_weight`` / ``ignore_index`` for
        ``weighted-bce``. The other loss's keywords are accepted and unused,
        and a keyword that is ``None`` takes its default, so a model config's
        ``class_weights`` and ``boundary_weight`` can both be passed as is.

    Returns
    -------
    WeightedCrossEntropy or WeightedBinaryBoundaryLoss
        A callable ``loss(logits, target)``; ``loss.out_channels`` is the
        number of network output channels it trains.
    """
    keys = {
        "weighted-ce": ("class_weights", "ignore_index", "contact_weight", "dice_weight"),
        "weighted-bce": ("boundary_weight", "foreground_weight", "ignore_index"),
    }
    if name not in keys:
        raise ValueError(f"unknown loss {name!r}; valid losses are {list(LOSS_NAMES)}")
    unknown = sorted(set(kwargs) - set(keys["weighted-ce"]) - set(keys["weighted-bce"]))
    if unknown:
        raise ValueError(f"loss {name!r}: unknown keyword(s) {unknown}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None and k in keys[name]}
    cls = WeightedCrossEntropy if name == "weighted-ce" else WeightedBinaryBoundaryLoss
    return cls(**kwargs)
