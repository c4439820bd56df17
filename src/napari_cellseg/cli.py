"""The ``napari-cellseg`` command line.

Each subcommand lives in the module that owns its work and exposes
``register(subparsers)``, which adds its parser and sets ``func``. Those modules
import torch lazily, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

# Modules that register subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "napari_cellseg.demo",
    "napari_cellseg.data.commands",
    "napari_cellseg.data.outlines_cli",
    "napari_cellseg.training.commands",
    "napari_cellseg.models.commands",
    "napari_cellseg.training.sweep_commands",
    "napari_cellseg.inference.commands",
)


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-cellseg",
        description="Segment cells in microscope images: split data, fine-tune from M2, segment, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"napari-cellseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # that capability has not landed yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):  # no command: usage, as argparse does for a bad one
        parser.print_help(sys.stderr)
        return 2
    try:
        result = args.func(args)
    except CommandError as err:
        print(f"napari-cellseg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    # ``python -m napari_cellseg.cli`` (torchrun) runs this file as __main__: call the imported
    # module's main, whose CommandError is the one the commands raise.
    from napari_cellseg.cli import main as _main

    sys.exit(_main())
