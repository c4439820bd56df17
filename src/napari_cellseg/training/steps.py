"""One optimizer step, and the clock behind throughput and ETA.

Kept apart from :mod:`.engine` so that the loop stays readable; the benchmark
(``benchmarks/bench_training.py``) times :func:`train_step` directly.
"""

from __future__ import annotations

import math
import time
from typing import Any

from .distributed import all_reduce_sum, all_reduce_tensor_sum
from .losses import combine_terms
from .setup import Run, TrainingError


def train_step(run: Run, images: Any, targets: Any) -> float:
    """Forward, loss, backward and optimizer/scheduler step on one batch; the loss value."""
    import torch

    device = run.device
    images = images.to(device, non_blocking=True)
    if run.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = targets.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None):
        logits = run.net(images)
    loss, objective = union_objective(run, logits.float(), targets)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(objective).backward()
        run.scaler.unscale_(run.optimizer)
    else:
        objective.backward()
    if run.config.grad_clip:
        params = [p for p in run.model.parameters() if p.requires_grad]
        torch.nn.utils.clip_grad_norm_(params, run.config.grad_clip)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.scheduler.step()
    value = float(loss.detach())
    if run.context.enabled:
        value = all_reduce_sum(value, run.context, device) / run.context.world_size
    return value


def check_finite_loss(run: Run, loss: float, step: int) -> None:
    """TrainingError when step ``step``'s loss is NaN or infinite: the run has diverged."""
    if math.isfinite(loss):
        return
    config = run.config
    raise TrainingError(
        f"step {step} (epoch {(step - 1) // config.steps_per_epoch + 1}): the training loss is {loss}, so the "
        f"network diverged and the run stops. Try a lower learning rate (--lr, now {config.lr:g}, e.g. "
        f"{config.lr / 10:g}){_amp_hint(run)}, and check the training images and labels for NaN or infinite "
        f"values; {config.out_dir} keeps only the epochs saved before"
    )


def _amp_hint(run: Run) -> str:
    return " or --amp off (mixed precision can overflow)" if run.amp_dtype is not None else ""


def check_finite_weights(run: Run, step: int) -> None:
    """TrainingError when a weight or buffer of the network is NaN or infinite after step ``step``.

    Such a network must never be scored or saved (a NaN dev score would make it the best).
    """
    import torch

    tensors = [
        (n, t)
        for n, t in (*run.model.named_parameters(), *run.model.named_buffers())
        if t.is_floating_point()
    ]
    if not tensors or bool(torch.stack([torch.isfinite(t).all() for _, t in tensors]).all()):
        return  # one device sync, not one per tensor
    name = next(n for n, t in tensors if not bool(torch.isfinite(t).all()))
    raise TrainingError(
        f"after step {step}: the network's weights hold NaN or infinite values (first: {name}), so the "
        f"network diverged and the run stops without saving them. Try a lower learning rate (--lr, now "
        f"{run.config.lr:g}){_amp_hint(run)}, and check the training images and labels; {run.config.out_dir} "
        "keeps only the epochs saved before"
    )


def union_objective(run: Run, logits: Any, targets: Any) -> tuple[Any, Any]:
    """The rank's loss, and its share of the loss such that DDP's gradient mean is the union batch's.

    Both losses are sums of weighted means ``sum_t (sum_i w l_i) / (sum_i w_i)``
    (one term for ``weighted-ce``, one per channel for ``weighted-bce``). Each
    rank divides its loss sums by the weight sums over every rank, times the
    world size as DDP divides the gradients by it: a DDP step then equals a
    one-process step on the union of the shards.
    """
    terms = run.loss_fn.terms(logits, targets)
    loss = combine_terms(terms)
    context = run.context
    if not context.enabled:
        return loss, loss
    import torch

    local = torch.stack([weight_sum.detach().double() for _, weight_sum in terms])
    total = all_reduce_tensor_sum(local, context)
    shares = [(loss_sum * context.world_size, weight_sum.to(loss_sum.dtype)) for (loss_sum, _), weight_sum in
              zip(terms, total)]  # fmt: skip
    return loss, combine_terms(shares)


class StepTimer:
    """Throughput and ETA from the steps and evaluations of this session."""

    def __init__(self, start_step: int, total: int, per_epoch: int, dev_every: int):
        self.start_step, self.total, self.per_epoch, self.dev_every = start_step, total, per_epoch, dev_every
        self.step_seconds: list[float] = []
        self.eval_seconds: list[float] = []
        self._mark = time.perf_counter()
        self._eval_start = 0.0

    def step_done(self) -> None:
        now = time.perf_counter()
        self.step_seconds.append(now - self._mark)
        self._mark = now

    def eval_started(self) -> None:
        self._eval_start = time.perf_counter()

    def eval_done(self) -> None:
        self.eval_seconds.append(time.perf_counter() - self._eval_start)

    def resume_clock(self) -> None:
        self._mark = time.perf_counter()  # checkpoint and dev time do not count as step time

    def _step_mean(self) -> float:
        recent = self.step_seconds[1:][-50:] or self.step_seconds  # the first step warms up
        return sum(recent) / len(recent) if recent else 0.0

    def samples_per_s(self, batch: int) -> float:
        mean = self._step_mean()
        return batch / mean if mean > 0 else 0.0

    def eta(self, step: int) -> float:
        remaining = self.total - step
        seconds = remaining * self._step_mean()
        if self.dev_every and self.eval_seconds:
            epochs_left = self.total // self.per_epoch - step // self.per_epoch
            seconds += (epochs_left // self.dev_every) * (sum(self.eval_seconds) / len(self.eval_seconds))
        return seconds
