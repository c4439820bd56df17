"""``napari-cellseg train`` and ``napari-cellseg pretrain``.

Nothing heavy is imported here: torch and the engine load when a command runs.
``register`` calls one ``_register_<command>`` per subcommand; ``pretrain``'s
lives in :mod:`.pretrain_commands`.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path
from typing import Any

from ..classes import check_microscope_tag
from ..models.device import DEVICE_HELP, device_option

TRAIN_DESCRIPTION = """\
Fine-tune a segmentation network from M2 on the train rows of a split and keep
the best epoch by dev score. Without --split every image of the dataset trains
(its test images too), no dev score chooses the epoch (the last one is kept) and
no image is left to test on; the run warns (make a split with `napari-cellseg
split`). OUT receives the best model (model.safetensors + config.json, what
`segment --model OUT` loads), train_config.json, and last/ (the latest epoch and
the training state: `--resume` continues from it and gives the same weights as
an uninterrupted run; on a finished run it says so and trains nothing). Settings
come from the defaults, then --config FILE.json (a TrainConfig), then the
options given.
--init-model MODEL starts from a trained model instead (the bundled one with
'default'): the way to adapt it to a new microscope with a short run.
With --init-model, --new-layers above the model's grows its decoder: its
blocks are kept and finer-resolution blocks and a new output layer added.
Ctrl-C or SIGTERM (Slurm's time limit) stops after the current step and saves
the position, exit status 130 or 143 (twice: at once).
Runs unchanged under `torchrun --nproc_per_node=N` (DistributedDataParallel).
"""

# option dest -> TrainConfig field, for options that map one to one
_TRAIN_FIELDS = {
    "data": "data_dir", "split": "split_path", "out": "out_dir", "m2": "m2", "init_model": "init_model",
    "transfer_layers": "transfer_layers", "new_layers": "new_layers", "frozen_layers": "frozen_layers",
    "loss": "loss", "class_weights": "class_weights", "boundary_weight": "boundary_weight",
    "epochs": "epochs", "steps_per_epoch": "steps_per_epoch", "batch_size": "batch_size", "lr": "lr",
    "weight_decay": "weight_decay", "scheduler": "scheduler", "patch_size": "patch_size",
    "microscopes": "microscopes", "threads": "num_threads", "workers": "num_workers", "device": "device",
    "amp": "amp", "seed": "seed", "augment": "augment_preset", "dev_metric": "dev_metric",
    "max_dev_images": "max_dev_images", "thickness": "target_thickness", "object_diameter": "object_diameter", "dev_every": "dev_every",
    "target_profile": "target_profile", "contact_weight": "contact_weight",
    "dice_weight": "dice_weight",
}  # fmt: skip


def register(subparsers) -> None:
    from .pretrain_commands import register_pretrain

    _register_train(subparsers)
    register_pretrain(subparsers)


def _register_train(subparsers) -> None:
    from ..cli import show_config_defaults
    from .config import TrainConfig

    p = subparsers.add_parser(
        "train", help="fine-tune a segmentation network from M2", description=TRAIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = p.add_argument
    add("--data", type=Path, help="dataset folder (images/, masks/ or targets/, manifest.csv)")
    add("--split", type=Path,
        help="split CSV (id, subset): train on train rows, score on dev rows. Without it: every image "
             "trains (test images too), no dev score (the last epoch is kept), a warning")  # fmt: skip
    add("--out", type=Path, required=True, help="model directory to write (or to resume)")
    add("--config", type=Path, help="TrainConfig JSON file; options given here override it")
    add("--resume", action="store_true", help="continue the run stored in OUT/last")
    add(
        "--m2",
        help="M2 checkpoint (directory or file); 'default' (also when not given): the bundled ImageNet EfficientNet-Lite0",
    )
    add("--transfer-layers", "-l", type=int, metavar="L", help="l: M2 stages transferred")
    add("--new-layers", "--la", type=int, metavar="LA",
        help="l_a: new decoder layers, 1 to L + 2 (give it with -l below 2)")  # fmt: skip
    add("--frozen-layers", "--lf", type=int, metavar="LF", help="l_f: transferred stages frozen")
    add("--from-scratch", action="store_true", help="random initialisation instead of M2's weights")
    add("--init-model", metavar="MODEL",
        help="start from this trained model directory ('default': the bundled model) instead of M2; "
             "its network (l, l_a, decoder, loss outputs) is kept; a larger --new-layers "
             "adds decoder blocks at finer resolution")  # fmt: skip
    add("--loss", choices=("weighted-ce", "weighted-bce"),
        help="weighted-ce: 3-class softmax (background, boundary, interior); weighted-bce: foreground "
             "and boundary sigmoids")  # fmt: skip
    add("--class-weights", type=float, nargs=3, metavar=("BG", "BOUNDARY", "INTERIOR"),
        help="weighted-ce loss weights of the three classes")  # fmt: skip
    add("--boundary-weight", type=float, help="boundary weight of weighted-bce")
    add("--thickness", type=int, help="boundary thickness of the targets in pixels")
    add("--target-profile", choices=("hard", "distance"),
        help="hard: one class per pixel; distance: soft targets whose interior share "
             "rises from each cell's edge to its centre (weighted-ce only)")  # fmt: skip
    add("--contact-weight", type=float, metavar="W",
        help="multiply the loss weight of boundary pixels between two cells, where touching cells "
             "merge, by W (weighted-ce, hard targets; 1: off)")  # fmt: skip
    add("--dice-weight", type=float, metavar="W",
        help="add W times a soft Dice loss over the boundary and interior classes to the "
             "cross-entropy (weighted-ce; 0: off)")  # fmt: skip
    add("--object-diameter", type=float, metavar="PX",
        help="size normalisation: resample each image so its nuclei measure PX pixels (median); "
             "the model then estimates each image's nucleus size when it segments; 0: each image's "
             "own scale, also when the --init-model model resamples images")  # fmt: skip
    add("--epochs", type=int, help="epochs to train")
    add("--steps-per-epoch", type=int, help="optimizer steps per epoch (an epoch is random crops)")
    add("--batch-size", type=int, help="crops per step (per process under torchrun)")
    add("--lr", type=float, help="AdamW learning rate")
    add("--weight-decay", type=float, help="AdamW weight decay")
    add("--scheduler", choices=("cosine", "one-cycle", "constant"),
        help="learning-rate schedule: cosine decay after a linear warm-up, one-cycle, or constant")  # fmt: skip
    add("--patch-size", type=int, help="side of the square training crops")
    add("--microscopes", nargs="+", metavar="TAG",
        help="train on these only (tags of the dataset's manifest, e.g. C, or D E; default: every one)")  # fmt: skip
    add("--oversample", nargs="+", default=None, metavar="TAG=W", help="e.g. C=3 draws C crops 3x as often")
    add(
        "--augment",
        help="augmentation preset: none, light, default, strong, scanners, rendered (stains plus "
        "grey crops of other microscopes drawn as H&E), or stains (preset default plus "
        "restaining to other stains and grey)",
    )
    add("--seed", type=int,
        help="seeds initialisation, crops and augmentation (a whole number >= 0)")  # fmt: skip
    add("--threads", type=int, help="torch threads (0: all cores but one)")
    add("--workers", type=int, help="data-loading processes (0: none; default: 0 on CPU, up to 8 on CUDA)")
    add("--device", type=device_option, metavar="DEVICE",
        help=f"{DEVICE_HELP}; under torchrun: "
             f"auto or cuda (each process takes the GPU of its LOCAL_RANK)")  # fmt: skip
    add("--amp", choices=("auto", "bf16", "fp16", "off"),
        help="mixed precision (auto: bf16 on CUDA, off elsewhere; fp16: CUDA only)")  # fmt: skip
    add("--dev-metric", choices=("auto", "ap50", "pixel_f1"), help="score that picks the best epoch")
    add("--dev-every", type=int, help="evaluate dev every N epochs")
    add("--max-dev-images", type=int, metavar="N",
        help="score only the first N dev images of the split (default: every one)")  # fmt: skip
    add("--quiet", action="store_true",
        help="no progress: no bar, start lines or epoch lines (warnings and the result stay)")  # fmt: skip
    show_config_defaults(p, TrainConfig, _TRAIN_FIELDS)  # "(default: X)" from TrainConfig itself
    p.set_defaults(func=run_train)


def parse_oversample(items: list[str] | None) -> dict[str, float]:
    """``["C=3", "B=2"]`` -> ``{"C": 3.0, "B": 2.0}``; ConfigError (a ValueError) naming the bad item."""
    from ..config import ConfigError

    weights = {}
    for item in items or []:
        tag, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or check_microscope_tag(tag) or not (math.isfinite(weight) and weight > 0):
            raise ConfigError(
                f"--oversample {item!r}: expected TAG=WEIGHT with TAG a microscope of the dataset, WEIGHT > 0 "
                "(finite)"
            )
        weights[tag] = weight
    return weights


def train_config_from_args(args: argparse.Namespace) -> Any:
    """Defaults < stored run (with --resume) < --config file < options given."""
    from ..config import ConfigError
    from .checkpoints import LAST_DIR, TRAIN_CONFIG, check_resume_settings
    from .config import TrainConfig
    from .init_model import apply_init_model

    data: dict[str, Any] = {}
    if args.resume:
        _check_resumable(Path(args.out))
    stored_path = Path(args.out) / LAST_DIR / TRAIN_CONFIG
    stored = TrainConfig.load(stored_path) if args.resume and stored_path.is_file() else None
    if stored is not None:
        data.update(stored.to_dict())
    given: set[str] = set()  # settings the user chose: in the --config file or as options
    if args.config:
        loaded = TrainConfig.load(args.config).to_dict()
        written = set(json.loads(Path(args.config).read_text()))  # valid: load read it
        data.update({k: v for k, v in loaded.items() if k in written})  # not the defaults of unwritten keys
        # a whole config printed and edited holds every default: those are no choice (of a network to grow)
        defaults = TrainConfig().to_dict()
        given = {k for k in written if loaded[k] != defaults.get(k)}
    for dest, name in _TRAIN_FIELDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            data[name] = str(value) if isinstance(value, Path) else value
    if args.from_scratch:
        data["pretrained"] = False
    if args.oversample is not None:
        data["sample_weights"] = parse_oversample(args.oversample)
    # Network settings given (file or options) must agree with --init-model's network.
    explicit = given | {name for dest, name in _TRAIN_FIELDS.items() if getattr(args, dest, None) is not None}
    for key in ("class_weights", "microscopes"):
        if key in data:
            data[key] = tuple(data[key])
    try:
        config = TrainConfig.from_dict(data).validate()
        if stored is not None:  # the run keeps what it started with: never read --init-model again
            check_resume_settings(args.out, config, stored)
            return config
        return apply_init_model(config, explicit=explicit)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None


def _check_resumable(out: Path) -> None:
    """ConfigError naming why ``--resume`` has nothing in ``out`` to continue (before any setting is read)."""
    from ..config import ConfigError
    from .checkpoints import OUT_LOCK, TRAIN_CONFIG, has_last
    from .locks import LOCK_STALE_S, describe_owner, is_stale

    if not out.is_dir():
        raise ConfigError(f"{out}: no such folder: nothing to resume (give the --out of the run to continue)")
    if has_last(out):
        return
    lock = out / OUT_LOCK
    try:
        running = lock.is_file() and not is_stale(lock, LOCK_STALE_S)
    except FileNotFoundError:  # released meanwhile
        running = False
    if running:
        raise ConfigError(
            f"another train process is writing {out} ({describe_owner(lock)}) and has saved no epoch yet: "
            "wait for it to end, or train into another --out"
        )
    settings = out / TRAIN_CONFIG
    if (out / "model.safetensors").is_file():  # starting again there would be refused: it holds a model
        raise ConfigError(
            f"{out}: nothing to resume: the run's model is there (model.safetensors) but its resumable state "
            f"({out / 'last'}) is gone. To train more, start a new run in another --out"
            + (f": napari-cellseg train --config {settings} --out NEW_OUT" if settings.is_file() else "")
            + f" (add --init-model {out} to start from this model)"
        )
    again = (
        f"; its settings are in {settings}: napari-cellseg train --config {settings} --out {out}"
        if settings.is_file()
        else ""
    )
    raise ConfigError(
        f"{out}: nothing to resume: no epoch was saved there (the run stopped before its first epoch "
        f"ended, or this is not a training run's folder). Start it again without --resume{again}"
    )


def _user_errors() -> tuple[type[BaseException], ...]:
    from ..config import ConfigError
    from ..data.dataset import DatasetError
    from ..data.splitfile import SplitError
    from ..models.m2 import ModelLoadError
    from ..models.surgery import SurgeryError
    from .setup import TrainingError
    from .state import TrainingStateError

    return (ConfigError, DatasetError, SplitError, ModelLoadError, SurgeryError, TrainingError,
            TrainingStateError, FileNotFoundError)  # fmt: skip


class _GracefulStop:
    """The first Ctrl-C or SIGTERM (Slurm's time limit) asks the engine to stop after the current
    step and save its position; a second interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None  # the signal that asked for the stop
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        if self.requested:
            from ..cli import Terminated

            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        self.requested, self.signum = True, signum
        again = "Ctrl-C" if signum == signal.SIGINT else "a second SIGTERM"
        print(f"\nstopping after this step ({again} to interrupt at once)", file=sys.stderr)

    @property
    def exit_status(self) -> int:
        """130 after Ctrl-C, 143 after SIGTERM, as a shell reports a process they end."""
        return 143 if self.signum == signal.SIGTERM else 130

    def __enter__(self) -> _GracefulStop:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread
                break
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():  # None: set outside Python (signal.signal refuses it)
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)


def run_train(args: argparse.Namespace) -> int:
    from ..cli import CommandError, check_out_folder
    from .distributed import env_context
    from .engine import train
    from .progress import TrainProgress

    check_out_folder(args.out)

    errors = _user_errors()
    try:
        config = train_config_from_args(args)
        if args.resume and _finished(config, env_context().is_main):
            return 0
    except errors as err:
        raise CommandError(str(err)) from None
    show = env_context().is_main and not args.quiet
    with _GracefulStop() as stop, TrainProgress(enabled=show) as progress:
        try:
            generator = train(config, resume=args.resume, cancel=stop)  # checks the settings at once
            while True:
                progress.update(next(generator))
        except StopIteration as done:
            result = done.value
        except errors as err:
            raise CommandError(str(err)) from None
    if env_context().is_main:
        progress.summary(result)
    return stop.exit_status if result.cancelled else 0


def _finished(config: Any, is_main: bool) -> bool:
    """Whether the run to resume has ended all its epochs; then say where its model is.

    Nothing is built (dataset, network): only its best model is made whole again
    after a crash while it was copied, under the run's lock, as resuming would.
    """
    from .checkpoints import check_best, finished_position, lock_out_dir
    from .progress import finished_text

    position = finished_position(config.out_dir, config)
    if position is None:
        return False
    if is_main:
        lock = lock_out_dir(config.out_dir)
        try:
            check_best(config.out_dir, position["best_epoch"])
        finally:
            lock.unlink(missing_ok=True)
        print(finished_text(config.out_dir, position, config.epochs))  # where its model is: a result
    return True
