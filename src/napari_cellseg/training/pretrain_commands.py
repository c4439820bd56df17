"""``napari-cellseg pretrain``: train an M2 classifier (torch loads when it runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli import field_default
from ..models.device import DEVICE_HELP, device_option
from .commands import _GracefulStop, _user_errors

PRETRAIN_DESCRIPTION = """\
Train an M2 classifier (any timm architecture) on a folder with one subfolder
of images per class, and save it as an M2 directory that `train --m2` uses.
"""


def register_pretrain(subparsers) -> None:
    from .pretrain import PretrainConfig

    def default(name: str) -> Any:
        return field_default(PretrainConfig, name)

    p = subparsers.add_parser(
        "pretrain", help="train an M2 classifier from a folder per class", description=PRETRAIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = p.add_argument
    add("--data", type=Path, required=True, help="folder with one subfolder of images per class")
    add("--arch", required=True, help="timm architecture, e.g. tf_efficientnet_lite0, resnet18")
    add("--classes", type=int, help="number of classes (checked against the subfolders)")
    add("--out", type=Path, required=True, help="M2 directory to write")
    add("--init", help="start from this M2 (same architecture; 'default' for the bundled one)")
    add("--epochs", type=int, default=default("epochs"), help="passes over the images")
    add("--batch-size", type=int, default=default("batch_size"), help="images per step")
    add("--lr", type=float, default=default("lr"),
        help="AdamW learning rate, cosine decay to 0")  # fmt: skip
    add("--input-size", type=int, default=default("input_size"),
        help="side of the square network input")  # fmt: skip
    add("--val-fraction", type=float, default=default("val_fraction"),
        help="share of each class held out for accuracy")  # fmt: skip
    add("--seed", type=int, default=default("seed"),
        help="seeds the held-out choice, initialisation and augmentation")  # fmt: skip
    add("--threads", type=int, default=default("num_threads"), help="torch threads (0: all cores but one)")
    add("--device", type=device_option, metavar="DEVICE", default=default("device"),
        help=DEVICE_HELP)  # fmt: skip
    add("--name", default=default("name"), help="name stored in the M2 config")
    add("--quiet", action="store_true", help="no line per epoch (the summary is still printed)")
    p.set_defaults(func=run_pretrain)


def run_pretrain(args: argparse.Namespace) -> int:
    from ..cli import CommandError, check_out_folder
    from .pretrain import PretrainConfig, run_pretraining
    from .progress import PretrainProgress

    check_out_folder(args.out)  # before training, not after it

    errors = _user_errors()
    try:
        config = PretrainConfig(
            data_dir=str(args.data), out_dir=str(args.out), arch=args.arch, num_classes=args.classes,
            init=args.init, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            input_size=args.input_size, val_fraction=args.val_fraction, seed=args.seed,
            num_threads=args.threads, device=args.device, name=args.name,
        ).validate()  # fmt: skip
        with _GracefulStop() as stop, PretrainProgress(enabled=not args.quiet) as progress:
            result = run_pretraining(config, cancel=stop, callback=progress.update)
    except errors as err:
        raise CommandError(str(err)) from None
    if result.cancelled:
        print(
            f"stopped after {result.epochs_done} of {config.epochs} epoch(s): nothing saved to "
            f"{result.out_dir} (an M2 is saved only when every epoch has run)",
            file=sys.stderr,
        )
        return stop.exit_status
    print(
        f"saved M2 {result.arch} ({len(result.class_names)} classes: {', '.join(result.class_names)}) "
        f"to {result.out_dir}; train accuracy {result.train_accuracy:.3f}"
        + (f", val accuracy {result.val_accuracy:.3f}" if result.val_accuracy is not None else "")
    )  # the result on stdout; progress went to stderr
    return 0
