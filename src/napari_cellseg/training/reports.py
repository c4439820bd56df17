"""Small report dataclasses yielded by the training generators.

:func:`napari_cellseg.training.engine.train` yields, in order, one
:class:`StartReport`, then a :class:`StepReport` per optimizer step and an
:class:`EpochReport` per epoch, and last a :class:`TrainResult`. The GUI shows
them live; the CLI drives a progress bar with them. Every report is a plain,
frozen dataclass whose ``to_dict()`` is JSON-able.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


class _Report:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class StartReport(_Report):
    """Training is set up: where it runs and what it trains on."""

    device: str
    device_reason: str
    amp: str | None
    threads: int
    workers: int
    world_size: int
    n_train_images: int
    n_dev_images: int
    train_counts: dict[str, int]
    trainable_params: int
    total_params: int
    epochs: int
    steps_per_epoch: int
    global_batch_size: int
    start_epoch: int
    start_step: int
    resumed: bool
    score_name: str
    out_dir: str
    warnings: tuple[str, ...] = ()  # what the user should know before trusting the run (printed even --quiet)


@dataclass(frozen=True)
class StepReport(_Report):
    """One optimizer step. ``epoch`` and ``step`` count from 1."""

    epoch: int
    step: int
    steps_per_epoch: int
    global_step: int
    total_steps: int
    loss: float
    lr: float
    samples_per_s: float
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True)
class EpochReport(_Report):
    """One finished epoch: its mean loss, dev metrics and checkpoint."""

    epoch: int
    epochs: int
    train_loss: float
    lr: float
    samples_per_s: float
    elapsed_s: float
    eta_s: float
    dev_metrics: dict[str, float]
    dev_score: float | None
    score_name: str
    is_best: bool
    best_epoch: int
    best_score: float | None
    checkpoint: str


@dataclass(frozen=True)
class TrainResult(_Report):
    """The end of a training run (finished or cancelled)."""

    out_dir: str
    epochs_done: int
    cancelled: bool
    best_epoch: int
    best_score: float | None
    score_name: str
    elapsed_s: float
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PretrainEpochReport(_Report):
    """One epoch of M2 classifier pretraining."""

    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float | None
    lr: float
    samples_per_s: float
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True)
class PretrainResult(_Report):
    """The saved M2 directory and its final accuracy."""

    out_dir: str
    arch: str
    class_names: list[str]
    epochs_done: int
    cancelled: bool
    val_accuracy: float | None
    train_accuracy: float
    elapsed_s: float
