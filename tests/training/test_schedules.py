"""Learning-rate schedules at every run length, and the rate an epoch records."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from napari_cellseg.training.config import TrainConfig
from napari_cellseg.training.engine import train
from napari_cellseg.training.reports import EpochReport, StepReport
from napari_cellseg.training.setup import make_scheduler, one_cycle_warmup

torch.set_num_threads(1)

LR = 1e-3


def _rates(total: int, warmup: float, scheduler: str = "one-cycle") -> list[float]:
    """The rate each of ``total`` optimizer steps uses."""
    config = TrainConfig(data_dir="d", out_dir="o", epochs=1, steps_per_epoch=total, lr=LR,
                         scheduler=scheduler, warmup_fraction=warmup)  # fmt: skip
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    schedule = make_scheduler(config, optimizer)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


@pytest.mark.parametrize("warmup", [0.0, 0.05, 0.1, 0.5, 0.9])
def test_one_cycle_runs_at_every_length_and_warms_up_to_the_peak(warmup):
    # 20 steps at 5 % made OneCycleLR divide by zero; under 20 steps the warm-up was lost.
    for total in range(1, 61):
        rates = _rates(total, warmup)
        assert all(math.isfinite(r) and 0 < r <= LR * (1 + 1e-9) for r in rates), (total, rates)
        if total < 3:
            continue  # no room for a warm-up and an annealing
        steps = one_cycle_warmup(total, warmup)
        assert 2 <= steps <= total - 1
        peak = rates.index(max(rates))
        assert peak == steps - 1 and rates[peak] == pytest.approx(LR), (total, rates)
        assert rates[0] == pytest.approx(LR / 25)
        assert all(a < b for a, b in itertools.pairwise(rates[: peak + 1])), (total, rates)  # rises
        assert all(a >= b for a, b in itertools.pairwise(rates[peak:])), (total, rates)  # then falls


def test_one_cycle_keeps_the_warm_up_share_of_long_runs():
    assert one_cycle_warmup(2000, 0.05) == 100 and one_cycle_warmup(2000, 0.0) == 100  # 5 % at least
    assert one_cycle_warmup(2000, 0.3) == 600 and one_cycle_warmup(20, 0.05) == 2


def test_an_epoch_records_the_rate_of_its_last_step(tiny_config):
    # The optimizer's rate after an epoch's last step is the next step's: 0 after the run's last.
    config = tiny_config(split_path=None, microscopes=("A",), epochs=2, steps_per_epoch=2, batch_size=1,
                         warmup_fraction=0.0)  # fmt: skip
    reports = list(train(config))
    steps = [r for r in reports if isinstance(r, StepReport)]
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert [e.lr for e in epochs] == [steps[1].lr, steps[3].lr] and steps[3].lr > 0
    assert [h["lr"] for h in reports[-1].history] == [steps[1].lr, steps[3].lr]
