"""dice_weight: a soft Dice loss over the boundary and interior classes added to weighted-ce."""

import pytest

torch = pytest.importorskip("torch")

from napari_cellseg.training.config import TrainConfig  # noqa: E402
from napari_cellseg.training.losses import IGNORE_INDEX, WeightedCrossEntropy, build_loss  # noqa: E402


def _target() -> "torch.Tensor":
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6] = 1
    target[:, 3:5, 3:5] = 2
    return target


def _logits_for(target: "torch.Tensor", margin: float) -> "torch.Tensor":
    return torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * margin


def test_dice_term_is_near_zero_when_right_and_near_one_when_wrong():
    target = _target()
    loss = build_loss("weighted-ce", dice_weight=2.0)
    ce_only = build_loss("weighted-ce")
    right = _logits_for(target, 20.0)
    wrong = _logits_for(torch.zeros_like(target), 20.0)  # everything background
    dice_right = float(loss(right, target) - ce_only(right, target))
    dice_wrong = float(loss(wrong, target) - ce_only(wrong, target))
    assert 0 <= dice_right < 1e-3
    assert 1.7 < dice_wrong <= 2.0  # dice_weight x (1 - Dice near 0; DICE_EPS keeps it above 0)
    assert len(loss.terms(right, target)) == 2 and len(ce_only.terms(right, target)) == 1


def test_dice_ignores_ignored_pixels_and_counts_contacts_as_boundary():
    target = _target()
    logits = _logits_for(target, 20.0)
    spoiled = target.clone()
    spoiled[:, 0, :] = IGNORE_INDEX  # background there in the logits: no effect when ignored
    loss = build_loss("weighted-ce", dice_weight=1.0, contact_weight=2.0)
    assert float(loss.terms(logits, spoiled)[1][0]) < 1e-3
    contact = target.clone()
    contact[:, 2, 2:6] = 3  # CONTACT_TARGET: a boundary pixel between two cells
    assert float(loss.terms(logits, contact)[1][0]) < 1e-3


def test_dice_gives_gradients_and_works_with_soft_targets():
    target = _target()
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    soft = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    for t in (target, soft):
        logits.grad = None
        WeightedCrossEntropy(dice_weight=1.0)(logits, t).backward()
        assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


def test_dice_weight_is_checked():
    with pytest.raises(ValueError, match="dice_weight must be >= 0"):
        WeightedCrossEntropy(dice_weight=-1)
    assert "dice_weight=0.5" in repr(build_loss("weighted-ce", dice_weight=0.5))
    assert "dice_weight" not in repr(build_loss("weighted-ce"))
    problems = TrainConfig(data_dir="d", out_dir="o", loss="weighted-bce", dice_weight=1.0).problems()
    assert any("dice_weight=1.0 needs loss 'weighted-ce'" in p for p in problems)
    assert not any("dice" in p for p in TrainConfig(data_dir="d", out_dir="o", dice_weight=1.0).problems())
