"""The model directory a training run writes, and resuming from it.

Layout of ``out_dir`` (one layout for every command)::

    out_dir/
      model.safetensors, config.json   the BEST epoch by dev score (what
                                       ``segment --model out_dir`` and the GUI load)
      train_config.json                the TrainConfig of the run
      last/                            the LATEST epoch, for ``train --resume``:
        model.safetensors, config.json     a model directory of its own
        training_state.safetensors/.json   optimizer, scheduler, AMP scaler, RNG
        train_config.json                  states, step position, history

``last/`` is written completely under a temporary name and swapped in (see
:func:`.state.replace_dir`), once per epoch and when a run is cancelled, so a
``kill -9`` at any moment leaves a complete ``last/``. The best model is
copied from ``last/`` (weights, then config, each atomic; the config's weights
hash detects a torn pair, its epoch a pair not yet copied, and :func:`repair_best`
copies it again on resume).
Without a dev set, the best model is the latest one. Only rank 0 writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..config import ConfigError, atomic_write_bytes
from .config import TrainConfig
from .state import (
    STATE_JSON,
    TrainingStateError,
    load_training_state,
    new_temp_dir,
    recover_dir,
    replace_dir,
    resume_problem,
    save_training_state,
)

LAST_DIR = "last"
TRAIN_CONFIG = "train_config.json"
OUT_LOCK = ".train.lock"  # pid@host of the process writing out_dir (see .locks)


def model_config_for(run: Any, metrics: dict[str, Any], training: dict[str, Any]) -> Any:
    """The ``ModelConfig`` (``config.json``) describing the run's network."""
    from ..models.checkpoint import ModelConfig

    config: TrainConfig = run.config
    return ModelConfig.for_model(
        run.model,
        loss=config.loss,
        class_weights=tuple(config.class_weights),
        boundary_weight=float(config.boundary_weight),
        normalization=run.normalization,
        target_thickness=config.target_thickness,
        object_diameter=run.object_diameter,
        watershed=dict(run.watershed),  # a starting model's tuned settings; tune-watershed refines them
        # size-normalised training: segmentation estimates each image's diameter by default
        default_diameter=0.0 if config.size_diameter is not None else None,
        split_hash=run.split_hash,
        metrics=dict(metrics),
        training=dict(training),
    )


def capture_state(run: Any, position: dict[str, Any]) -> dict[str, Any]:
    """Everything besides the weights that resuming needs."""
    from .state import capture_rng_state

    return {
        "position": dict(position),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "rng": capture_rng_state(),
        "split_hash": run.split_hash,
        "world_size": run.context.world_size,
    }


def save_last(out_dir: str | os.PathLike, run: Any, state: dict[str, Any], model_config: Any) -> Path:
    """Write ``out_dir/last`` atomically: weights, config, training state, TrainConfig."""
    from ..models.checkpoint import save_model_dir

    final = Path(out_dir) / LAST_DIR
    tmp = new_temp_dir(final)
    save_model_dir(tmp, run.model, model_config)
    save_training_state(tmp, state)
    run.config.save(tmp / TRAIN_CONFIG)
    _fsync_dir(tmp)
    return replace_dir(tmp, final)


def save_best(out_dir: str | os.PathLike, last_dir: Path) -> None:
    """Copy the model files of ``last_dir`` to ``out_dir`` (weights first, each atomic)."""
    from ..models.checkpoint import MODEL_CONFIG, MODEL_WEIGHTS

    out_dir = Path(out_dir)
    for name in (MODEL_WEIGHTS, MODEL_CONFIG):
        atomic_write_bytes(out_dir / name, (last_dir / name).read_bytes())


def repair_best(out_dir: str | os.PathLike) -> str | None:
    """Make ``out_dir``'s best model whole and current again after a crash while it was written.

    The best pair is two files, copied from ``last/`` after ``last/`` is
    swapped in: a crash between them leaves weights and config of different
    epochs, or no config; a crash before the first leaves a pair that loads
    but is an earlier epoch than ``last/``'s best. Until the next epoch
    replaces ``last/``, the best epoch's files are still there: they are
    copied again. Returns None when the best model loads and is the run's best
    epoch (or none is due yet: no epoch has ended), else why it is not and
    cannot be restored.
    """
    from ..models.checkpoint import ModelLoadError, check_model_dir

    out_dir = Path(out_dir)
    try:
        stored_epoch = check_model_dir(out_dir).training.get("epoch")
        problem = None
    except ModelLoadError as err:
        stored_epoch, problem = None, str(err)
    last = recover_dir(out_dir / LAST_DIR)
    try:
        training = check_model_dir(last).training
    except ModelLoadError:
        return problem  # nothing to restore it from (or to compare it with)
    best_epoch, epoch = training.get("best_epoch") or 0, training.get("epoch") or 0
    if not best_epoch:
        return None
    if problem is None:
        if stored_epoch in (None, best_epoch):  # None: a config from before epochs were stored
            return None
        # killed after last/ of a new best epoch was swapped in, before the copy began
        problem = f"it holds epoch {stored_epoch}, not the run's best epoch {best_epoch}"
    history = training.get("history") or [{}]
    at_epoch_end = training.get("global_step") == epoch * (training.get("steps_per_epoch") or 0)
    if best_epoch == epoch and at_epoch_end and history[-1].get("epoch") == epoch:
        save_best(out_dir, last)
        return None
    return problem


def check_best(out_dir: str | os.PathLike, best_epoch: int) -> None:
    """Restore a best model torn by a crash (from ``last/``), or refuse to go on without it.

    Raises
    ------
    TrainingError
        The best model is damaged and ``last/`` holds a later epoch (what to do instead).
    """
    problem = repair_best(out_dir)
    if problem:
        from .setup import TrainingError

        raise TrainingError(
            f"{out_dir}: the best model (epoch {best_epoch}) is damaged: {problem}. last/ holds "
            "a later epoch, so it cannot be restored: copy last/model.safetensors and last/config.json into "
            f"{out_dir} to keep the latest epoch as the best model, or train into a new --out"
        )


def finished_position(out_dir: str | os.PathLike, config: TrainConfig) -> dict[str, Any] | None:
    """The stored position of ``out_dir``'s run when all of its epochs have ended, else None.

    Reads the JSON of ``last/`` alone (no tensors, no torch): resuming a finished run
    has nothing to build. The position gains ``score_name``, the dev score's name
    (``""`` when unknown). None too when the position cannot be read, so that
    resuming names the damage.
    """
    last = recover_dir(Path(out_dir) / LAST_DIR)
    try:
        position = json.loads((last / STATE_JSON).read_text())["state"]["position"]
        history = position["history"]
        ended = history[-1]["epoch"] == config.epochs if history else False
        done = ended and position["global_step"] == config.epochs * config.steps_per_epoch
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    if not done:
        return None
    try:  # the model's config.json names the score; a damaged one leaves it unnamed
        score_name = json.loads((last / "config.json").read_text())["metrics"]["score_name"]
    except (OSError, ValueError, KeyError, TypeError):
        score_name = ""
    return {**position, "score_name": score_name if isinstance(score_name, str) else ""}


def write_train_config(out_dir: str | os.PathLike, config: TrainConfig) -> None:
    config.save(Path(out_dir) / TRAIN_CONFIG)


def has_last(out_dir: str | os.PathLike) -> bool:
    """Whether ``out_dir`` holds a resumable ``last/`` (after crash recovery)."""
    last = recover_dir(Path(out_dir) / LAST_DIR)
    return (last / "training_state.json").is_file()


def load_last(out_dir: str | os.PathLike, config: TrainConfig) -> tuple[TrainConfig, dict[str, Any]]:
    """The stored TrainConfig (with ``config``'s runtime settings) and training state.

    Raises
    ------
    ConfigError
        If there is nothing to resume, or ``config`` changes a setting that
        is not a runtime one (listing them).
    """
    last = recover_dir(Path(out_dir) / LAST_DIR)
    if not (last / "training_state.json").is_file():
        raise ConfigError(f"{out_dir}: nothing to resume ({last} holds no training state)")
    stored = TrainConfig.load(last / TRAIN_CONFIG)
    from .init_model import apply_stored_init_model

    # stored with the starting model's network fields filled in; never read that model again
    check_resume_settings(out_dir, apply_stored_init_model(config, stored), stored)
    from .config import RUNTIME_FIELDS

    merged = TrainConfig.from_dict(
        {**stored.to_dict(), **{k: v for k, v in config.to_dict().items() if k in RUNTIME_FIELDS}}
    )
    for what, path in (("dataset", merged.data_dir), ("split file", merged.split_path)):
        if path and not Path(path).exists():  # stored absolute: a project moved or copied elsewhere
            raise ConfigError(
                f"{out_dir}: the run's {what} {path} is gone (was the project moved or copied?); "
                "resume with --data DIR --split FILE where they are now"
            )
    try:
        state = load_training_state(last)
    except TrainingStateError as err:
        raise TrainingStateError(f"{err}. {_start_anew(last)}") from None
    problem = resume_problem(state, merged.epochs * merged.steps_per_epoch)
    if problem:
        raise damaged_state(last, problem)
    return merged, state


def damaged_state(last: Path, problem: str) -> TrainingStateError:
    """The error for a ``last/`` whose training state cannot be resumed, and what to do instead."""
    return TrainingStateError(f"{last / STATE_JSON}: damaged training state: {problem}. {_start_anew(last)}")


def _start_anew(last: Path) -> str:
    return (
        "The run cannot resume from it: start a new run in another --out (add --init-model "
        f"{last.parent} to start from its best model, if it has one)"
    )


def check_resume_settings(out_dir: str | os.PathLike, config: TrainConfig, stored: TrainConfig) -> None:
    """Refuse to resume ``stored``'s run with ``config`` when a non-runtime setting differs (listing them)."""
    changed = config.incompatible_with(stored)
    if changed:
        raise ConfigError(
            f"{out_dir}: cannot resume: these settings differ from the stored run: {'; '.join(changed)}. "
            "Resume with the same settings, or train into a new --out directory."
        )


def restore_state(run: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Load the last weights and the training state into ``run``; return the position."""
    from ..models.checkpoint import MODEL_WEIGHTS
    from ..models.m2 import load_weights_into, read_state_dict
    from .state import restore_rng_state

    last = Path(run.config.out_dir) / LAST_DIR
    if state.get("split_hash") != run.split_hash:
        raise ConfigError(
            f"{run.config.split_path}: the split changed since the run started "
            f"(hash {str(state.get('split_hash'))[:12]} vs {str(run.split_hash)[:12]}); resuming would mix data"
        )
    stored_world = state.get("world_size")  # absent from states written before it was kept
    if stored_world is not None and stored_world != run.context.world_size:
        raise ConfigError(
            f"{run.config.out_dir}: the run was trained by {stored_world} process(es) and would resume with "
            f"{run.context.world_size}: each step would take {run.context.world_size * run.config.batch_size} "
            f"crops instead of {stored_world * run.config.batch_size}, so it would not continue as it started. "
            f"Resume with {stored_world} (torchrun --nproc-per-node {stored_world}), or start a new --out "
            "from its weights with --init-model"
        )
    weights, _ = read_state_dict(last / MODEL_WEIGHTS)
    load_weights_into(run.model, weights, str(last / MODEL_WEIGHTS), run.model.m2_config.arch)
    part = "optimizer"
    try:  # the structure was checked by load_last; the contents are torch's to judge
        run.optimizer.load_state_dict(state["optimizer"])
        part = "scheduler"
        run.scheduler.load_state_dict(state["scheduler"])
        part = "scaler"
        if run.scaler is not None and state.get("scaler"):
            run.scaler.load_state_dict(state["scaler"])
        part = "rng"
        restore_rng_state(state["rng"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        raise damaged_state(last, f"'state.{part}' does not load ({type(err).__name__}: {err})") from None
    return dict(state["position"])


def lock_out_dir(out_dir: str | os.PathLike) -> Path:
    """Take ``out_dir``'s lock (creating ``out_dir``); ConfigError while another live process holds it.

    Two runs writing one folder would mix their checkpoints; the second would die
    naming a temporary file. The caller removes the lock when done.
    """
    from .locks import LOCK_STALE_S, describe_owner, take_lock

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = take_lock(out_dir / OUT_LOCK, LOCK_STALE_S)
    if lock is None:
        raise ConfigError(
            f"another train process is writing {out_dir} ({describe_owner(out_dir / OUT_LOCK)}); wait for it "
            f"to end, or train into another --out (if that process is gone, delete {out_dir / OUT_LOCK})"
        )
    return lock


def prepare_out_dir(out_dir: str | os.PathLike, resume: bool, create: bool = True) -> None:
    """Refuse to start afresh over an existing run; create ``out_dir`` unless ``create`` is False."""
    out_dir = Path(out_dir)
    if not resume and has_last(out_dir):
        raise ConfigError(
            f"{out_dir} already holds a training run; pass resume (--resume) to continue it, "
            "or choose another --out directory"
        )
    if not resume and (out_dir / "model.safetensors").is_file():
        # e.g. the model a run starts from, a colleague's, or the bundled one: never replaced unasked
        raise ConfigError(
            f"{out_dir} already holds a model (model.safetensors) that training would replace; "
            "choose another --out directory"
        )
    if create:
        out_dir.mkdir(parents=True, exist_ok=True)


def out_dir_state(out_dir: str | os.PathLike) -> tuple[list[Path], set[str]]:
    """What a run starts from: the folders creating ``out_dir`` would make (deepest first)
    and the names already in ``out_dir``; see :func:`remove_unused_out_dir`."""
    missing = []
    path = Path(out_dir).absolute()
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    out_dir = Path(out_dir)
    before = {p.name for p in out_dir.iterdir()} if not missing and out_dir.is_dir() else set()
    return missing, before


def remove_unused_out_dir(out_dir: str | os.PathLike, state: tuple[list[Path], set[str]]) -> None:
    """Undo what a run that failed before its first checkpoint wrote into ``out_dir``.

    ``state`` comes from :func:`out_dir_state` before the run. When the run
    added nothing but its ``train_config.json``, that file goes, and so do the
    folders the run created (a failed start should not leave a folder that
    looks like a run). Anything that was there before stays.
    """
    created, before = state
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return
    added = {p.name for p in out_dir.iterdir()} - before
    if not added <= {TRAIN_CONFIG}:
        return  # a checkpoint or model was written: keep the run
    if TRAIN_CONFIG in added:
        (out_dir / TRAIN_CONFIG).unlink(missing_ok=True)
    for folder in created:
        try:
            folder.rmdir()  # only when empty: never deletes anything else
        except OSError:
            return


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not supported everywhere (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
