"""Command-line progress for training: a tqdm bar with ETA, and a line per epoch."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from .checkpoints import LAST_DIR, TRAIN_CONFIG
from .reports import EpochReport, PretrainEpochReport, StartReport, StepReport, TrainResult


def _seconds(value: float) -> str:
    value = round(value)
    hours, rest = divmod(value, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def plural(count: int, word: str) -> str:
    """``1 thread``, ``2 threads``, ``0 workers``."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def format_epoch(report: EpochReport) -> str:
    """One line: epoch, loss, dev score and best so far."""
    text = f"epoch {report.epoch}/{report.epochs}  loss {report.train_loss:.4f}  lr {report.lr:.2e}"
    if report.dev_score is not None and not math.isfinite(report.dev_score):
        text += f"  dev {report.score_name} {report.dev_score} (not a number: never the best epoch)"
    elif report.dev_score is not None:
        text += f"  dev {report.score_name} {report.dev_score:.4f}"
        extra = [
            f"{k} {report.dev_metrics[k]:.3f}" for k in ("pixel_f1", "mean_iou") if k in report.dev_metrics
        ]
        if extra and report.score_name not in ("pixel_f1",):
            text += f" ({', '.join(extra)})"
    if report.best_score is not None:
        text += f"  best {report.best_score:.4f} @ epoch {report.best_epoch}"
    text += f"  {report.samples_per_s:.1f} crops/s  eta {_seconds(report.eta_s)}"
    return text + ("  *saved best*" if report.is_best else "")


class TrainProgress:
    """Feeds training reports to a tqdm bar on a terminal (stderr) and a line per epoch; silent when disabled."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bar: Any = None

    def __enter__(self) -> TrainProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def write(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream)

    def update(self, report: Any) -> None:
        if isinstance(report, StartReport):
            for warning in report.warnings:  # shown with --quiet too
                print(f"warning: {warning}", file=self.stream)
        if not self.enabled:
            return
        if isinstance(report, StartReport):
            self._start(report)
        elif isinstance(report, StepReport) and self.bar is not None:
            self.bar.update(report.global_step - self.bar.n)
            self.bar.set_postfix(
                epoch=f"{report.epoch}/{report.total_steps // report.steps_per_epoch}",
                loss=f"{report.loss:.4f}", lr=f"{report.lr:.1e}", crops_s=f"{report.samples_per_s:.1f}",
                refresh=False,
            )  # fmt: skip
        elif isinstance(report, EpochReport):
            self.write(format_epoch(report))

    def _start(self, report: StartReport) -> None:
        from tqdm import tqdm

        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.train_counts.items()))
        self.write(f"device: {report.device} ({report.device_reason})"
                   + (f", mixed precision {report.amp}" if report.amp else "")
                   + f", {plural(report.threads, 'thread')}, {plural(report.workers, 'worker')}"
                   + (f", {report.world_size} processes" if report.world_size > 1 else ""))  # fmt: skip
        self.write(f"train: {plural(report.n_train_images, 'image')} ({counts}); "
                   f"dev: {plural(report.n_dev_images, 'image')}, "
                   f"score {report.score_name}; {report.trainable_params:,} of {report.total_params:,} "
                   f"parameters trainable")  # fmt: skip
        if report.resumed:
            self.write(f"resuming {report.out_dir} at epoch {report.start_epoch}, step {report.start_step}")
        from ..cli import is_terminal

        if not is_terminal(self.stream):  # a log file: the epoch lines alone, no bar redraws
            return
        total = report.epochs * report.steps_per_epoch
        self.bar = tqdm(total=total, initial=report.start_step, unit="step", file=self.stream,
                        dynamic_ncols=True, desc="train")  # fmt: skip

    def summary(self, result: TrainResult) -> None:
        self.__exit__()
        # the engine saves the position once a step has run; stopped during start-up, nothing is saved
        saved = (Path(result.out_dir) / LAST_DIR / "training_state.json").is_file()
        if result.cancelled and saved:
            print(f"stopped after {result.epochs_done} epoch(s); continue with --resume --out {result.out_dir}",
                  file=sys.stderr)  # fmt: skip
        if result.epochs_done == 0:  # stopped inside the first epoch: nothing scored yet
            if saved:
                print(f"no epoch finished; nothing saved in {result.out_dir} but the position to resume "
                      f"({_seconds(result.elapsed_s)})", file=sys.stderr)  # fmt: skip
            else:
                config = Path(result.out_dir) / TRAIN_CONFIG
                print(f"stopped before its first step: nothing to resume in {result.out_dir} "
                      f"({_seconds(result.elapsed_s)}); start it again with: "
                      f"napari-cellseg train --config {config} --out {result.out_dir}", file=sys.stderr)  # fmt: skip
            return
        if result.best_epoch == 0:  # no epoch taken as best: every dev score NaN, or none scored yet
            scored = any(result.score_name in entry.get("dev", {}) for entry in result.history)
            why = (
                f"no epoch had a finite dev {result.score_name}"
                if scored
                else "no epoch was scored on dev yet"
            )
            print(f"{why}: no best model was saved; the latest epoch is in {Path(result.out_dir) / LAST_DIR} "
                  f"({_seconds(result.elapsed_s)})", file=sys.stderr)  # fmt: skip
            return
        best = f"{result.best_score:.4f}" if result.best_score is not None else "n/a (no dev set)"
        # the result on stdout (`> result.txt`); progress and warnings went to stderr
        print(f"best {result.score_name} {best} at epoch {result.best_epoch}; model in {result.out_dir} "
              f"({_seconds(result.elapsed_s)})")  # fmt: skip


def finished_text(out_dir: str, position: dict[str, Any], epochs: int) -> str:
    """What ``train --resume`` says of a run whose epochs have all ended (see ``finished_position``)."""
    start = f"{out_dir} already finished (epoch {epochs} of {epochs}): nothing to resume. "
    best_epoch, score = position.get("best_epoch") or 0, position.get("best_score")
    if not best_epoch:
        return (
            start
            + f"No epoch had a finite dev score, so it has no best model; its last epoch is in {out_dir}/last"
        )
    name = position.get("score_name") or "score"
    how = (
        f" (epoch {best_epoch}, dev {name} {score:.4f})"
        if score is not None
        else " (its last epoch: no dev set)"
    )
    return (
        start
        + f"Its best model{how} is {out_dir}/model.safetensors with its config.json; to train on from it, "
        f"start a new run with --init-model {out_dir} --out NEW_OUT"
    )


class PretrainProgress:
    """One line per pretraining epoch."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr

    def __enter__(self) -> PretrainProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, report: Any) -> None:
        if not self.enabled or not isinstance(report, PretrainEpochReport):
            return
        val = f"  val acc {report.val_accuracy:.3f}" if report.val_accuracy is not None else ""
        print(f"epoch {report.epoch}/{report.epochs}  loss {report.train_loss:.4f}  "
              f"acc {report.train_accuracy:.3f}{val}  {report.samples_per_s:.1f} images/s  "
              f"eta {_seconds(report.eta_s)}", file=self.stream)  # fmt: skip
