"""How long a fine-tuning run will take, the device, and the run's reports in plain words.

On the CPU the estimate is ``planned crops / crops per second``. The rate is
the one measured by the last run of the same network, crop size and thread
count on this computer (kept in the settings file), else a configured
figure scaled to the crop size and threads. The live ETA during training
comes from the engine's own reports. How a stopped run ended is said from
what its output folder holds (:func:`saved_in`): no epoch ended means no
model and nothing or only a mid-epoch position to resume.

No torch here except in :func:`probe_device`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..training.checkpoints import LAST_DIR
from ..training.config import TrainConfig
from ..training.reports import EpochReport, StartReport, StepReport, TrainResult
from .current_model import read_settings, update_settings

# 256x256 crops per second of the default network (l=4, l_a=4, batch 8) on one
# CPU thread: the engine's own figure on a busy shared 2-core cloud VM (a
# conservative start; the first run on a computer replaces it with its own).
REFERENCE_CPU_CROPS_PER_S = 1.5
REFERENCE_PATCH = 256
# Gain of each extra thread (convolutions do not scale perfectly).
THREAD_EXPONENT = 0.7
RATES_KEY = "cpu_training_rates"
MAX_STORED_RATES = 20


@dataclass(frozen=True)
class Estimate:
    """Planned training time on the CPU."""

    seconds: float
    crops_per_s: float
    measured: bool  # the rate comes from an earlier run on this computer

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / 60))

    def source(self) -> str:
        how = (
            "measured by an earlier run here" if self.measured else "configured figure, not measured here yet"
        )
        return f"{self.crops_per_s:.2g} crops/s ({how})"


def planned_crops(config: TrainConfig) -> int:
    return config.epochs * config.steps_per_epoch * config.batch_size


def rate_signature(config: TrainConfig, threads: int) -> str:
    """What the CPU speed depends on: M2, ``l``, ``l_a``, crop size, threads."""
    return (
        f"m2={config.m2}|l={config.transfer_layers}|l_a={config.new_layers}|"
        f"patch={config.patch_size}|threads={threads}"
    )


def configured_crops_per_s(config: TrainConfig, threads: int) -> float:
    """The reference rate scaled by crop area and threads."""
    area = (REFERENCE_PATCH / config.patch_size) ** 2
    return REFERENCE_CPU_CROPS_PER_S * area * max(1, threads) ** THREAD_EXPONENT


def measured_crops_per_s(config: TrainConfig, threads: int) -> float | None:
    rates = read_settings().get(RATES_KEY)
    if not isinstance(rates, dict):
        return None
    value = rates.get(rate_signature(config, threads))
    return float(value) if isinstance(value, int | float) and value > 0 else None


def remember_crops_per_s(config: TrainConfig, threads: int, crops_per_s: float) -> None:
    """Store a measured CPU rate for later estimates (the most recent few are kept)."""
    if not crops_per_s > 0:
        return
    rates = read_settings().get(RATES_KEY)
    rates = dict(rates) if isinstance(rates, dict) else {}
    signature = rate_signature(config, threads)
    rates.pop(signature, None)
    rates[signature] = round(float(crops_per_s), 4)
    while len(rates) > MAX_STORED_RATES:
        rates.pop(next(iter(rates)))
    try:
        update_settings(**{RATES_KEY: rates})
    except OSError:  # an estimate is not worth an error
        pass


def estimate_cpu(config: TrainConfig, threads: int | None = None) -> Estimate:
    """Expected duration of ``config`` on the CPU (training steps; dev scoring adds a little)."""
    threads = config.resolved_threads() if threads is None else threads
    measured = measured_crops_per_s(config, threads)
    rate = measured if measured is not None else configured_crops_per_s(config, threads)
    return Estimate(planned_crops(config) / rate, rate, measured is not None)


def format_duration(seconds: float) -> str:
    """``"about 12 min"``, ``"about 3 h 10 min"``, ``"under a minute"``."""
    if seconds < 60:
        return "under a minute"
    minutes = math.ceil(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"about {hours} h {rest:02d} min"


def device_text(kind: str, name: str, estimate: Estimate | None = None) -> str:
    """``"GPU: <name>"`` or ``"CPU: slow, expect about N min"``."""
    if kind in ("cuda", "mps"):
        return f"GPU: {name}"
    if estimate is None:
        return "CPU: slow"
    return f"CPU: slow, expect {format_duration(estimate.seconds)}"


def probe_device() -> tuple[str, str]:
    """``(kind, name)`` of the device training will use: ``cuda``, ``mps`` or ``cpu`` (imports torch)."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_name(torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", "Apple GPU (MPS)"
    return "cpu", "CPU"


# --- reports in words (the Fine-tune panel's status lines) ----------------------


def start_text(report: StartReport) -> str:
    return (
        f"{report.n_train_images} train images, {report.n_dev_images} dev images; "
        f"{report.trainable_params:,} of {report.total_params:,} parameters trained"
    )


def step_text(report: StepReport) -> str:
    epochs = report.total_steps // report.steps_per_epoch
    return (
        f"epoch {report.epoch}/{epochs}, step {report.step}/{report.steps_per_epoch}; "
        f"loss {report.loss:.4f}; {report.samples_per_s:.1f} crops/s; {format_duration(report.eta_s)} left"
    )


def epoch_text(report: EpochReport) -> str:
    text = f"Epoch {report.epoch}/{report.epochs}: loss {report.train_loss:.4f}"
    if report.dev_score is not None:
        text += f", dev {report.score_name} {report.dev_score:.3f}"
    if report.best_score is not None:
        text += f", best {report.best_score:.3f} (epoch {report.best_epoch})"
    return text + (" — best model saved." if report.is_best else ".")


@dataclass(frozen=True)
class Saved:
    """What a run left in its output folder once it ended (see :func:`saved_in`)."""

    model: bool = False  # a best model (config.json): 'Use for Segment' takes it
    resumable: bool = False  # last/ holds a position with work left: Resume continues there
    epochs: int = 0  # epochs finished in that position
    step: int = 0  # steps of the next epoch already done (a stop mid-epoch)
    finished: bool = False  # every planned epoch is done: nothing left to resume


def saved_in(out_dir: str | os.PathLike) -> Saved:
    """Read-only look at ``out_dir`` (also its ``.last.old`` left by a crash mid-swap)."""
    out = Path(out_dir)
    for last in (out / LAST_DIR, out / f".{LAST_DIR}.old"):
        if (last / "training_state.json").is_file():
            try:
                training = json.loads((last / "config.json").read_text()).get("training", {})
                step, per_epoch = int(training["global_step"]), int(training["steps_per_epoch"])
                planned = int(training.get("epochs") or 0)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):  # position unknown
                return Saved((out / "config.json").is_file(), True)
            epochs, step = divmod(step, per_epoch) if per_epoch > 0 else (0, step)
            finished = planned > 0 and epochs >= planned
            return Saved((out / "config.json").is_file(), not finished, epochs, step, finished)
    return Saved((out / "config.json").is_file())


def _resume_point(saved: Saved) -> str:
    if saved.step:
        return f"Resume continues after step {saved.step} of epoch {saved.epochs + 1}"
    if saved.epochs:
        return f"Resume continues after epoch {saved.epochs}"
    return "Resume continues where it stopped"


def result_text(
    result: TrainResult | None,
    current: str | None = None,
    saved: Saved | None = None,
    dev_images: int | None = None,
) -> str:
    """How a run ended; ``current`` is the model folder Segment now uses (finished runs).

    ``saved`` (what the output folder holds now) and ``dev_images`` (from the start report)
    make a stopped run's text exact: without them it stays general.
    """
    if saved is not None and not (saved.resumable or saved.finished) and (result is None or result.cancelled):
        how = "at once " if result is None else ""
        return f"Stopped {how}before the first epoch ended: nothing was saved; Start again."
    if result is None:
        if saved is None:
            return "Stopped at once; Resume continues from the last finished epoch."
        return f"Stopped at once; {_resume_point(saved)}."
    if result.best_score is not None:
        best = f"{result.best_score:.3f}"
    else:
        best = "n/a (no dev images)" if dev_images in (None, 0) else "n/a (not scored yet)"
    if result.cancelled:
        if saved is None:
            return (
                f"Stopped after {result.epochs_done} epoch(s); best dev {result.score_name} {best}. "
                "Resume continues; 'Use for Segment' takes the best model so far."
            )
        if result.epochs_done == 0:
            text = "Stopped before the first epoch ended: no model yet (one is saved at each epoch's end)"
        else:
            text = f"Stopped after {result.epochs_done} epoch(s); best dev {result.score_name} {best}"
        model = "; 'Use for Segment' takes the best model so far" if saved.model else ""
        return f"{text}. {_resume_point(saved)}{model}."
    took = format_duration(result.elapsed_s).replace("about ", "")
    text = f"Done in {took}: best dev {result.score_name} {best} at epoch {result.best_epoch}."
    return text + (f" Segment now uses {current}." if current else "")
