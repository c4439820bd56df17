"""Weighted CE and weighted BCE against hand-computed values (weighted-mean reduction)."""

from __future__ import annotations

import math

import pytest

from napari_cellseg.training.losses import (
    IGNORE_INDEX,
    WeightedBinaryBoundaryLoss,
    WeightedCrossEntropy,
    build_loss,
)

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _logits_from_probabilities(rows):
    """(H, W, C) nested lists of probabilities -> (1, C, H, W) logits whose softmax gives them."""
    return torch.tensor(rows, dtype=torch.float64).log().permute(2, 0, 1)[None]


def _logit(p):
    return math.log(p / (1 - p))


def test_weighted_cross_entropy_by_hand():
    probs = [
        [[0.7, 0.2, 0.1], [0.25, 0.5, 0.25]],
        [[0.1, 0.3, 0.6], [0.2, 0.2, 0.6]],
    ]
    target = torch.tensor([[[0, 1], [2, IGNORE_INDEX]]], dtype=torch.uint8)
    loss = WeightedCrossEntropy(class_weights=(1, 5, 3))(_logits_from_probabilities(probs), target)
    expected = -(1 * math.log(0.7) + 5 * math.log(0.5) + 3 * math.log(0.6)) / (1 + 5 + 3)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_weighted_cross_entropy_matches_pytorch_weighted_mean():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    target[0, :2] = IGNORE_INDEX
    ours = build_loss("weighted-ce")(logits, target)
    reference = torch.nn.functional.cross_entropy(
        logits, target, weight=torch.tensor([1.0, 5.0, 3.0]), ignore_index=IGNORE_INDEX
    )
    torch.testing.assert_close(ours, reference)
    ours.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_weighted_binary_boundary_loss_by_hand():
    foreground = [[0.2, 0.9], [0.6, 0.7]]
    boundary = [[0.1, 0.6], [0.3, 0.2]]
    logits = torch.tensor(
        [[[[_logit(p) for p in row] for row in foreground], [[_logit(p) for p in row] for row in boundary]]],
        dtype=torch.float64,
    )
    target = torch.tensor([[[0, 1], [2, 2]]])  # foreground [[0,1],[1,1]], boundary [[0,1],[0,0]]
    loss = WeightedBinaryBoundaryLoss(boundary_weight=3.0)(logits, target)
    foreground_term = -(math.log(0.8) + math.log(0.9) + math.log(0.6) + math.log(0.7)) / 4
    boundary_term = -(math.log(0.9) + 3 * math.log(0.6) + math.log(0.7) + math.log(0.8)) / (1 + 3 + 1 + 1)
    assert loss.item() == pytest.approx(foreground_term + boundary_term, rel=1e-9)


def test_binary_loss_ignores_pixels():
    logits = torch.zeros(1, 2, 1, 2, dtype=torch.float64)  # every probability 0.5
    target = torch.tensor([[[1, IGNORE_INDEX]]])
    loss = build_loss("weighted-bce", boundary_weight=3.0)(logits, target)
    # One valid boundary pixel: each channel's weighted mean is -log(0.5).
    assert loss.item() == pytest.approx(2 * math.log(2), rel=1e-9)


@pytest.mark.parametrize("name", ["weighted-ce", "weighted-bce"])
def test_all_ignored_gives_zero_with_a_gradient(name):
    loss_fn = build_loss(name)
    logits = torch.randn(1, loss_fn.out_channels, 4, 4, requires_grad=True)
    loss = loss_fn(logits, torch.full((1, 4, 4), IGNORE_INDEX, dtype=torch.uint8))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None


def test_build_loss_names_and_keywords():
    ce = build_loss("weighted-ce", class_weights=(1, 2, 3), boundary_weight=9.0)
    assert isinstance(ce, WeightedCrossEntropy) and ce.class_weights == (1.0, 2.0, 3.0)
    bce = build_loss("weighted-bce", class_weights=(1, 5, 3), boundary_weight=None)
    assert isinstance(bce, WeightedBinaryBoundaryLoss) and bce.boundary_weight == 3.0
    assert (ce.out_channels, bce.out_channels) == (3, 2)
    with pytest.raises(ValueError, match="unknown loss 'dice'"):
        build_loss("dice")
    with pytest.raises(ValueError, match=r"unknown keyword\(s\) \['gamma'\]"):
        build_loss("weighted-ce", gamma=2)
    with pytest.raises(ValueError, match="class_weights must be 3"):
        WeightedCrossEntropy(class_weights=(1, 2))


def test_bad_inputs_quote_shapes_and_values():
    ce = WeightedCrossEntropy()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got \(1, 2, 4, 4\)"):
        ce(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(N, H, W\) = \(1, 4, 4\).*got \(1, 4, 5\)"):
        ce(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class map"):
        ce(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"class value\(s\) \[7\]"):
        ce(torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 7], [1, 2]]]))
    with pytest.raises(ValueError, match=r"class value\(s\) \[3\]"):
        build_loss("weighted-bce")(torch.zeros(1, 2, 1, 2), torch.tensor([[[3, 0]]]))


@pytest.mark.parametrize("name", ["weighted-ce", "weighted-bce"])
def test_half_precision_logits_give_a_float32_loss(name):
    loss_fn = build_loss(name)
    torch.manual_seed(0)
    logits = torch.randn(2, loss_fn.out_channels, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    loss = loss_fn(logits.to(torch.bfloat16), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(loss_fn(logits, target).item(), rel=0.02)


@pytest.mark.parametrize("name", ["weighted-ce", "weighted-bce"])
def test_shards_divided_by_the_union_weight_sums_add_up_to_the_union_loss(name):
    # What DDP relies on (training.steps.union_objective): each rank's loss sums over the
    # weight sums of every rank, averaged over the ranks, times the world size.
    from napari_cellseg.training.losses import combine_terms

    loss_fn = build_loss(name)
    torch.manual_seed(0)
    logits = torch.randn(4, loss_fn.out_channels, 8, 8)
    target = torch.randint(0, 3, (4, 8, 8))
    target[0, :4] = 1  # shards with very different class mixes
    shards = [loss_fn.terms(logits[:1], target[:1]), loss_fn.terms(logits[1:], target[1:])]
    totals = [sum(shard[t][1] for shard in shards) for t in range(len(shards[0]))]
    shares = [combine_terms([(s * 2, w) for (s, _), w in zip(shard, totals)]) for shard in shards]
    union = loss_fn(logits, target)
    assert (shares[0] + shares[1]) / 2 == pytest.approx(union.item(), rel=1e-5)
    naive = (loss_fn(logits[:1], target[:1]) + loss_fn(logits[1:], target[1:])) / 2
    assert naive.item() != pytest.approx(union.item(), rel=1e-3)  # the plain mean of the ranks' losses is not


def test_soft_targets_give_the_hard_loss_where_one_hot_and_weigh_mixtures():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    hard = torch.randint(0, 3, (2, 5, 4))
    one_hot = torch.nn.functional.one_hot(hard, 3).permute(0, 3, 1, 2).double()
    loss = WeightedCrossEntropy((1, 5, 3))
    assert float(loss(logits, one_hot)) == pytest.approx(float(loss(logits, hard)))
    # one pixel, half boundary half interior: weight 4, loss -(0.5 log p1 + 0.5 log p2)
    pixel = torch.zeros(1, 3, 1, 1, dtype=torch.float64)
    target = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64).view(1, 3, 1, 1)
    p = torch.softmax(pixel, 1)[0, :, 0, 0]
    expected = -(0.5 * math.log(p[1]) + 0.5 * math.log(p[2]))
    assert float(loss(pixel, target)) == pytest.approx(expected)
    ((sum_loss, sum_weight),) = loss.terms(pixel, target)
    assert float(sum_weight) == pytest.approx(4.0) and float(sum_loss) == pytest.approx(4 * expected)


def test_soft_targets_are_refused_by_the_binary_loss_and_in_the_wrong_shape():
    logits = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"logits' shape \(1, 3, 4, 4\)"):
        WeightedCrossEntropy()(logits, torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="weighted-ce only"):
        WeightedBinaryBoundaryLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
