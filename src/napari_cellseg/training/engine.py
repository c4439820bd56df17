"""The training engine: a generator of reports, and a synchronous wrapper.

:func:`train` fine-tunes a network from M2 as a :class:`TrainConfig` says and
yields a :class:`StartReport`, a :class:`StepReport` per optimizer step, an
:class:`EpochReport` per epoch and, last, a :class:`TrainResult` (also the
generator's return value). :func:`run_training` runs it to the end for the
CLI and tests. The GUI runs :func:`train` in a thread worker (``_qt/_workers.run_task``).

- **Cancel** between steps: pass ``cancel`` (a callable returning True to
  stop), or call the generator's ``close()``. Either way the position is saved
  in ``out_dir/last`` and ``resume=True`` continues exactly there.
- **Checkpoints** (layout in :mod:`.checkpoints`): ``out_dir/last`` every
  epoch, atomically; ``out_dir`` itself holds the best epoch by dev score.
- **Resume** gives the same weights as an uninterrupted run with the same
  seed: crops are a pure function of ``(seed, crop number)`` (see
  :mod:`.data`), and the optimizer, scheduler, AMP scaler and RNG states are
  restored. On the CPU with one thread this holds bit for bit.
- **Devices**: CUDA, then MPS, then the CPU (the start report says which and
  why). On CUDA: bf16 autocast where supported (else fp16 with a gradient
  scaler), ``channels_last`` (also on the CPU, where it is faster too),
  pinned-memory loading with workers.
- **torchrun**: launched with ``RANK``/``WORLD_SIZE`` set, the engine joins
  the process group (gloo on CPU, nccl on CUDA), wraps the network in
  DistributedDataParallel with SyncBatchNorm, gives every rank a disjoint shard
  of each global batch, and only rank 0 evaluates and writes checkpoints.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Generator, Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any

from ..generators import run_to_end
from .checkpoints import (
    LAST_DIR,
    capture_state,
    check_best,
    load_last,
    lock_out_dir,
    model_config_for,
    out_dir_state,
    prepare_out_dir,
    remove_unused_out_dir,
    restore_state,
    save_best,
    save_last,
    write_train_config,
)
from .config import TrainConfig
from .data import StepSampler, make_loader
from .distributed import (
    DistributedContext,
    barrier,
    broadcast_float,
    init_distributed,
    shutdown_distributed,
)
from .evaluate import DevEvaluator, evaluate_dev, load_dev_images, make_evaluator
from .reports import EpochReport, StartReport, StepReport, TrainResult
from .setup import Run, build_run, no_split_warning, worker_count
from .steps import StepTimer, check_finite_loss, check_finite_weights, train_step

Report = StartReport | StepReport | EpochReport | TrainResult


def train(
    config: TrainConfig | Mapping[str, Any],
    *,
    resume: bool = False,
    cancel: Callable[[], bool] | None = None,
    evaluator: Callable[[], DevEvaluator] | None = None,
) -> Generator[Report, None, TrainResult]:
    """Fine-tune a segmentation network; yield reports as it goes.

    Parameters
    ----------
    config : TrainConfig or dict
        The run's settings, or a dict of them (:meth:`TrainConfig.from_dict`),
        checked at the call.
    resume : bool
        Continue the run stored in ``config.out_dir/last``. Settings other than
        the runtime ones (paths, threads, workers, device) must be unchanged.
    cancel : callable, optional
        Polled before every step; returning True stops after saving the position.
    evaluator : callable, optional
        Returns a fresh dev evaluator (see :mod:`.evaluate`) per evaluation;
        default ``make_evaluator(config.dev_metric)``.

    Yields
    ------
    StartReport, StepReport, EpochReport, TrainResult

    Returns
    -------
    TrainResult

    Raises
    ------
    TypeError, ConfigError
        At the call, before the generator is iterated: ``config`` is neither a
        TrainConfig nor a dict, or a setting is invalid (every one listed).
    TrainingError, DatasetError, SplitError, ModelLoadError
        Before the first step, with a message naming what is wrong.
    """
    return _locked(checked_config(config), resume, cancel, evaluator)


def checked_config(config: TrainConfig | Mapping[str, Any]) -> TrainConfig:
    """``config`` (or a dict of its settings) checked, with dataset and split as absolute paths.

    Values are checked against their fields again: one may have been set since (``config.lr =
    "0.1"``). Absolute paths let ``--resume`` work from any folder.
    """
    if isinstance(config, Mapping):
        config = TrainConfig.from_dict(dict(config))
    elif not isinstance(config, TrainConfig):
        load = (
            " (to read a saved one: TrainConfig.load(path))" if isinstance(config, str | os.PathLike) else ""
        )
        raise TypeError(
            f"config must be a TrainConfig or a dict of its settings, got {type(config).__name__} {config!r}{load}"
        )
    return TrainConfig.from_dict({**config.to_dict(), **_absolute_data(config)}).validate()


def _locked(config, resume, cancel, evaluator) -> Generator[Report, None, TrainResult]:
    """:func:`train` once its config is checked: one writer per ``out_dir``, undone if it fails to start."""
    started_from = out_dir_state(config.out_dir)  # to undo if the run fails to start
    owns_group = not _group_initialized()
    context = init_distributed(_device_type(config.device))
    lock = None
    try:
        lock = lock_out_dir(config.out_dir) if context.is_main else None  # one writer per out_dir
        return (yield from _train(config, context, resume, cancel, evaluator))  # the lock keeps itself fresh
    except Exception:
        if lock is not None:  # never undo what another process holding out_dir wrote
            lock.unlink(missing_ok=True)
            lock = None
            remove_unused_out_dir(config.out_dir, started_from)
        raise
    finally:
        if lock is not None:
            lock.unlink(missing_ok=True)
        if owns_group:
            shutdown_distributed(context)


def run_training(
    config: TrainConfig | Mapping[str, Any],
    *,
    resume: bool = False,
    cancel: Callable[[], bool] | None = None,
    callback: Callable[[Report], None] | None = None,
    evaluator: Callable[[], DevEvaluator] | None = None,
) -> TrainResult:
    """Run :func:`train` to the end, passing each report to ``callback``; return the result.

    ``config`` is a :class:`TrainConfig` or a dict of its settings; see :func:`train`.
    """
    generator = train(config, resume=resume, cancel=cancel, evaluator=evaluator)
    return run_to_end(generator, callback)


def _absolute_data(config: TrainConfig) -> dict[str, str]:
    """``data_dir`` and ``split_path`` as absolute paths (a run stored before kept them as typed)."""
    paths = {"data_dir": config.data_dir, "split_path": config.split_path}
    return {name: os.path.abspath(value) for name, value in paths.items() if value}


def _group_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def _device_type(preference: str) -> str:
    import torch

    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def _new_position() -> dict[str, Any]:
    return {"global_step": 0, "epoch_loss_sum": 0.0, "epoch_steps": 0, "best_score": None,
            "best_epoch": 0, "elapsed_s": 0.0, "history": [], "last_lr": None}  # fmt: skip


def _train(config, context, resume, cancel, evaluator) -> Generator[Report, None, TrainResult]:
    started = time.perf_counter()
    state = None
    if resume:
        config, state = load_last(config.out_dir, config)
    # Every rank checks (read-only): a refusal found by rank 0 alone left the others a bare
    # "Connection closed by peer" at the barrier.
    prepare_out_dir(config.out_dir, resume, create=False)
    barrier(context)
    # every check of the data, model and device first; a resumed run is built from what it stored
    run = build_run(config, context, Path(config.out_dir) / LAST_DIR if resume else None)
    config = run.config  # with the network fields of an init_model filled in
    if context.is_main:
        prepare_out_dir(config.out_dir, resume)
    position = restore_state(run, state) if state is not None else _new_position()
    if context.is_main and state is not None:
        check_best(config.out_dir, position["best_epoch"])
    if context.is_main and state is None:
        write_train_config(config.out_dir, config)
    make = evaluator or (lambda: make_evaluator(config.dev_metric, run.watershed))
    score_name = make().score_name
    dev_images = []
    if context.is_main and run.dev_ids:
        dev_images = load_dev_images(
            run.dataset, run.dev_ids, config.target_thickness, config.max_dev_images, run.size_factors
        )
    start_step, total, per_epoch = position["global_step"], run.total_steps, config.steps_per_epoch
    workers = worker_count(config, run.device)
    warnings = (*filter(None, [no_split_warning(config)]), *dev_warnings(dev_images))
    yield _start_report(run, position, resume, score_name, workers, len(dev_images), warnings)
    sampler = StepSampler(config.batch_size, start_step, total, context.rank, context.world_size)
    loader = make_loader(run.crops, sampler, workers, run.device)  # pinned for run.device on CUDA
    timer = StepTimer(start_step, total, per_epoch, config.dev_every if dev_images else 0)
    cancelled = False
    iterator = iter(loader)
    try:
        while True:
            if _epoch_end_pending(position, per_epoch):  # also after a stop right at an epoch's end
                yield _end_epoch(run, position, dev_images, make, score_name, timer, started)
            if position["global_step"] >= total:
                break
            if _cancelled(cancel, context, run.device):
                cancelled = True
                break
            images, targets = next(iterator)
            lr = _lr(run)  # the rate this step uses
            loss = train_step(run, images, targets)
            check_finite_loss(run, loss, position["global_step"] + 1)
            position["global_step"] += 1
            position["last_lr"] = lr
            position["epoch_loss_sum"] += loss
            position["epoch_steps"] += 1
            step = position["global_step"]
            timer.step_done()
            yield StepReport(
                epoch=(step - 1) // per_epoch + 1, step=(step - 1) % per_epoch + 1, steps_per_epoch=per_epoch,
                global_step=step, total_steps=total, loss=loss, lr=lr,
                samples_per_s=timer.samples_per_s(run.global_batch_size),
                elapsed_s=time.perf_counter() - started, eta_s=timer.eta(step),
            )  # fmt: skip
    except GeneratorExit:  # close(): keep the position so that resume continues here
        cancelled = True
        raise
    finally:
        if cancelled and context.is_main and position["global_step"] > start_step:
            check_finite_weights(run, position["global_step"])
            _save(run, position, started, score_name)
    result = _result(run, position, cancelled, score_name, started)
    yield result
    return result


def _epoch_end_pending(position: dict[str, Any], per_epoch: int) -> bool:
    step, history = position["global_step"], position["history"]
    done = history[-1]["epoch"] if history else 0
    return step > 0 and step % per_epoch == 0 and done < step // per_epoch


def _cancelled(cancel: Callable[[], bool] | None, context: DistributedContext, device: Any) -> bool:
    flag = bool(cancel()) if (cancel is not None and context.is_main) else False
    if context.enabled and cancel is not None:
        flag = broadcast_float(float(flag), context, device) > 0
    return flag


def _lr(run: Run) -> float:
    return float(run.optimizer.param_groups[0]["lr"])


def _last_lr(run: Run, position: dict[str, Any]) -> float:
    """The rate the last step used: the optimizer's is already the next step's (0 after the last one)."""
    last = position.get("last_lr")  # absent from states saved before it was kept
    return float(last) if last is not None else _lr(run)


def _end_epoch(run, position, dev_images, make, score_name, timer, started) -> EpochReport:
    config, context = run.config, run.context
    check_finite_weights(run, position["global_step"])  # on every rank: never scored, never saved
    epoch = position["global_step"] // config.steps_per_epoch
    has_dev = bool(run.dev_ids)  # on every rank; only rank 0 holds the images
    evaluate = has_dev and (epoch % config.dev_every == 0 or epoch == config.epochs)
    metrics: dict[str, float] = {}
    score = None
    if evaluate and dev_images:
        timer.eval_started()
        model_config = model_config_for(run, {}, {})
        # A copy: prediction may change the model (eval mode, memory format, traces), and
        # the training model must stay exactly as an uninterrupted run has it.
        copy = deepcopy(run.model)
        metrics = evaluate_dev(copy, model_config, dev_images, make(), device=run.device)
        del copy
        score = metrics.get(score_name)
        timer.eval_done()
    best = position["best_score"]
    # A tie keeps the later epoch: a score constant over epochs (dev images without cells) keeps the last.
    # NaN compares False with everything but would win against no best yet: it is never best.
    scored = score is not None and math.isfinite(score)
    is_best = (not has_dev) or (scored and (best is None or score >= best))
    if is_best:
        position["best_score"], position["best_epoch"] = score, epoch
    train_loss = position["epoch_loss_sum"] / max(1, position["epoch_steps"])
    lr = _last_lr(run, position)
    position["history"].append({"epoch": epoch, "train_loss": train_loss, "lr": lr, "dev": metrics})
    position["epoch_loss_sum"], position["epoch_steps"] = 0.0, 0
    checkpoint = ""
    if context.is_main:
        last = _save(run, position, started, score_name)
        if is_best:
            save_best(config.out_dir, last)
        checkpoint = str(last)
    barrier(context)
    timer.resume_clock()
    return EpochReport(
        epoch=epoch, epochs=config.epochs, train_loss=train_loss, lr=lr,
        samples_per_s=timer.samples_per_s(run.global_batch_size), elapsed_s=time.perf_counter() - started,
        eta_s=timer.eta(position["global_step"]), dev_metrics=metrics, dev_score=score,
        score_name=score_name, is_best=is_best, best_epoch=position["best_epoch"],
        best_score=position["best_score"], checkpoint=checkpoint,
    )  # fmt: skip


def _save(run: Run, position: dict[str, Any], started: float, score_name: str):
    saved = dict(position)
    saved["elapsed_s"] = position["elapsed_s"] + (time.perf_counter() - started)
    config = run.config
    epoch = position["global_step"] // config.steps_per_epoch
    last_dev = next((h["dev"] for h in reversed(position["history"]) if h["dev"]), {})
    metrics = {
        "score_name": score_name,
        "dev": last_dev,
        "dev_score": last_dev.get(score_name),
        "epoch": epoch,
    }
    training = {
        "epoch": epoch, "epochs": config.epochs, "global_step": position["global_step"],
        "steps_per_epoch": config.steps_per_epoch, "batch_size": config.batch_size,
        "world_size": run.context.world_size, "device": str(run.device), "device_reason": run.device_reason,
        "amp": str(run.amp_dtype).replace("torch.", "") if run.amp_dtype is not None else None,
        "elapsed_s": round(saved["elapsed_s"], 3), "best_epoch": position["best_epoch"],
        "train_ids": len(run.train_ids), "dev_ids": len(run.dev_ids),
        "history": position["history"], "train_config": config.to_dict(),
    }  # fmt: skip
    model_config = model_config_for(run, metrics, training)
    return save_last(config.out_dir, run, capture_state(run, saved), model_config)


def dev_warnings(dev_images: list) -> tuple[str, ...]:
    """A warning when the dev images scored hold no cell: their score cannot choose an epoch."""
    import numpy as np

    if not dev_images:
        return ()
    for image in dev_images:
        cells = image.instances if image.instances is not None else image.target
        if np.any(cells):
            return ()
    return (
        f"the {len(dev_images)} dev image(s) hold no labelled cell: the dev score cannot choose an epoch "
        "(it is the same for a good and a broken model); the last epoch is kept as the best. Put images "
        "with cells in the split's dev rows",
    )


def _start_report(run: Run, position, resume, score_name, workers, n_dev, warnings=()) -> StartReport:
    import torch

    trainable = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    return StartReport(
        device=str(run.device), device_reason=run.device_reason,
        amp=str(run.amp_dtype).replace("torch.", "") if run.amp_dtype is not None else None,
        threads=torch.get_num_threads(), workers=workers, world_size=run.context.world_size,
        n_train_images=len(run.train_ids), n_dev_images=n_dev, train_counts=dict(run.train_counts),
        trainable_params=trainable, total_params=sum(p.numel() for p in run.model.parameters()),
        epochs=run.config.epochs, steps_per_epoch=run.config.steps_per_epoch,
        global_batch_size=run.global_batch_size,
        start_epoch=position["global_step"] // run.config.steps_per_epoch + 1,
        start_step=position["global_step"], resumed=bool(resume), score_name=score_name,
        out_dir=str(run.config.out_dir), warnings=tuple(warnings),
    )  # fmt: skip


def _result(run: Run, position, cancelled: bool, score_name: str, started: float) -> TrainResult:
    return TrainResult(
        out_dir=str(run.config.out_dir), epochs_done=position["global_step"] // run.config.steps_per_epoch,
        cancelled=cancelled, best_epoch=position["best_epoch"], best_score=position["best_score"],
        score_name=score_name, elapsed_s=time.perf_counter() - started, history=list(position["history"]),
    )  # fmt: skip
