"""``napari-cellseg import-m2``: turn a bare PyTorch state dict into an M2 directory.

Pretrained classifiers usually travel as a ``.pth`` state dict, which does not
name its architecture or input statistics. ``train --m2`` needs both, so the
file is read once here (``torch.load(weights_only=True)``: nothing in it runs),
checked against the timm architecture, and saved as the M2 directory that
``train --m2`` and the Fine-tune panel take. Torch loads only when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Read a pretrained classifier's weights (a bare state dict .pt/.pth, or a
.safetensors file) as the timm architecture ARCH and write an M2 directory
(model.safetensors + config.json) for `train --m2 OUT`. The number of classes
comes from the classifier's weights. Give the input statistics the network was
trained with (--mean, --std, on the [0, 1] scale); without them timm's defaults
for ARCH are used. State dicts in the efficientnet_pytorch layout (_conv_stem,
_blocks.N...) are renamed to timm's keys, and a 'module.' prefix on every key
(torch DataParallel) is removed. A checkpoint holding several state dicts
(state_dict and state_dict_ema) gives the one under state_dict, with a note.
A file that would run code when loaded is refused.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import-m2", help="make an M2 directory from a pretrained classifier's state dict",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = p.add_argument
    add("weights", type=Path, help="the state dict (.pt, .pth, .bin) or .safetensors file")
    add(
        "--arch",
        required=True,
        help="timm architecture the weights belong to, e.g. resnet50, tf_efficientnet_lite2",
    )
    add("--out", type=Path, required=True, help="M2 directory to write")
    add("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="input mean on the [0, 1] scale")
    add(
        "--std",
        type=float,
        nargs=3,
        metavar=("R", "G", "B"),
        help="input standard deviation on the [0, 1] scale",
    )
    add("--input-size", type=int, help="side of the images it was trained on (default: timm's for ARCH)")
    add("--class-names", type=Path, help="text file with one class name per line")
    add("--name", default="", help="short name stored in the config (default: the file's stem)")
    add("--source", default="", help="where the weights come from (default: the file's path)")
    add("--licence", default="", help="licence of the weights")
    p.set_defaults(func=run_import_m2)


def _read_class_names(path: Path, num_classes: int) -> list[str]:
    from ..cli import CommandError

    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise CommandError(f"{path}: cannot read the class names ({err})") from None
    if len(names) != num_classes:
        raise CommandError(f"{path}: {len(names)} class names for a classifier of {num_classes} classes")
    return names


def run_import_m2(args: argparse.Namespace) -> int:
    import dataclasses
    import sys
    import warnings

    from ..cli import CommandError, check_out_folder
    from .m2 import ModelLoadError, load_m2, save_m2
    from .weights_io import WeightsNote

    check_out_folder(args.out)
    if args.out.is_file() or (args.out.is_dir() and any(args.out.iterdir())):
        raise CommandError(f"{args.out}: already exists; choose a new M2 directory")
    if args.input_size is not None and args.input_size < 1:
        raise CommandError(f"--input-size {args.input_size}: must be a positive number of pixels")
    for option, values in (("--mean", args.mean), ("--std", args.std)):
        if values is not None and not all(0 <= v <= 1 for v in values):
            raise CommandError(f"{option} {' '.join(map(str, values))}: give values on the [0, 1] scale")
    if args.std is not None and min(args.std) <= 0:
        raise CommandError(f"--std {' '.join(map(str, args.std))}: must be positive")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", WeightsNote)
            model, config = load_m2(args.weights, arch=args.arch)
    except ModelLoadError as err:
        raise CommandError(str(err)) from None
    for warning in caught:  # which weights were taken: a note, not a Python warning
        if issubclass(warning.category, WeightsNote):
            print(f"note: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    changes = {"name": args.name or args.weights.stem, "source": args.source or str(args.weights.resolve())}
    if args.licence:
        changes["licence"] = args.licence
    if args.mean is not None:
        changes["mean"] = tuple(args.mean)
    if args.std is not None:
        changes["std"] = tuple(args.std)
    if args.input_size is not None:
        changes["input_size"] = args.input_size
    if args.class_names is not None:
        changes["class_names"] = _read_class_names(args.class_names, config.num_classes)
    config = dataclasses.replace(config, weights_sha256=None, **changes)
    out = save_m2(args.out, model, config)
    print(
        f"wrote {out}: {config.arch}, {config.num_classes} classes, input mean {config.mean} std {config.std}; "
        f"use it with `napari-cellseg train --m2 {out}`"
    )
    return 0
