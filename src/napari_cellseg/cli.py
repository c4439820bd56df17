"""The ``napari-cellseg`` command line.

Each subcommand lives in the module that owns its work and exposes
``register(subparsers)``, which adds its parser and sets ``func``. Those modules
import torch lazily, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
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


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, Slurm's time limit): the command stops as on Ctrl-C, exit status 143.

    A KeyboardInterrupt, so the ``finally`` blocks that remove scratch files run and the
    handlers that stop a run cleanly on Ctrl-C (a Dask cluster, a sweep) take it too.
    """


def raise_terminated(signum, frame) -> None:
    """SIGTERM handler of :func:`main`."""
    raise Terminated


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is a terminal: a live progress bar goes nowhere else.

    A bar's carriage returns and redraws fill a log file (``2> log``, a Slurm job's
    output) with thousands of lines; there the commands print plain lines instead.
    """
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def check_out_folder(path, option: str = "--out") -> None:
    """Refuse an output folder that cannot be made or written, before any work; creates nothing.

    Raises
    ------
    CommandError
        ``path`` is a file, lies under a file, or its nearest existing folder takes no new file.
    """
    from pathlib import Path

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CommandError(f"{option} {path} is a file, not a folder")
    problem = _unwritable(path)
    if problem:
        raise CommandError(f"{option} {path}: {problem}")


def check_out_file(path, option: str = "--out", inputs=(), hint: str = "give a file name") -> None:
    """Refuse an output file before any work: a folder, one that cannot be written, or an input.

    ``inputs`` are ``(path, what)`` pairs of the files the command reads: an output that
    is one of them by any name (``../``, a link) would replace what was just read.
    """
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise CommandError(f"{option} {path} is a folder; {hint}")
    for source, what in inputs:
        if source is not None and same_file(path, Path(source)):
            raise CommandError(
                f"{option} {path} is {what} {source}, which this command reads; choose another file"
            )
    problem = _unwritable(path.parent)
    if problem:
        raise CommandError(f"{option} {path}: {problem}")


def same_file(a, b) -> bool:
    """Whether two paths name one file (resolved, or by ``samefile`` for hard links)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _unwritable(folder) -> str | None:
    """Why no file can be made in ``folder`` (or the folders it needs), or None; creates nothing."""
    import tempfile

    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so the folder cannot be made"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        return f"cannot write in {existing} ({err.strerror or err})"
    return None


def format_default(value) -> str:
    """A default as it would be typed: ``1 5 3``, ``0.0001``, ``cosine``."""
    if isinstance(value, tuple | list):
        return " ".join(format_default(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


# help that names its default already: "%(default)s", "(default 8 on GPU...)", "; default: every one"
_SAYS_DEFAULT = re.compile(r"%\(default\)|[(;] ?default\b|\bdefault:")


class DefaultsShown(argparse.HelpFormatter):
    """Ends each option's help with ``(default: X)``: every subcommand's, from one place.

    X is the option's argparse default, or its ``shown_default`` (see
    :func:`show_config_defaults`) where None stands for "not given". Help that
    already speaks of its default (``%(default)s``, "default: the bundled model")
    is left as written; flags, empty and None defaults show nothing.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = getattr(action, "shown_default", action.default)
        if (
            not action.option_strings
            or action.nargs == 0  # flags, --help, --version
            or shown in (None, (), [], "", argparse.SUPPRESS)
            or _SAYS_DEFAULT.search(text)
        ):
            return text
        return f"{text} (default: {format_default(shown).replace('%', '%%')})"


def show_config_defaults(parser: argparse.ArgumentParser, config_class: type, fields: dict[str, str]) -> None:
    """Let ``--help`` show a config dataclass's defaults for options left None until given.

    ``fields`` maps an option's dest to its field; the figure comes from the
    dataclass, so it is never typed a second time in a help string.
    """
    from dataclasses import fields as all_fields

    names = {f.name for f in all_fields(config_class)}
    for action in parser._actions:
        name = fields.get(action.dest)
        if name in names and action.default is None:
            action.shown_default = field_default(config_class, name)  # type: ignore[attr-defined]


def field_default(config_class: type, name: str):
    """The default of a config dataclass's field: help texts and options show the one value."""
    from dataclasses import MISSING, fields

    field = next(f for f in fields(config_class) if f.name == name)
    return field.default if field.default is not MISSING else field.default_factory()  # type: ignore[misc]


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
    for command in subparsers.choices.values():  # every subcommand shows its defaults the same way
        base = command.formatter_class
        if not issubclass(base, DefaultsShown):
            command.formatter_class = type(f"DefaultsShown{base.__name__}", (DefaultsShown, base), {})
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):  # no command: usage, as argparse does for a bad one
        parser.print_help(sys.stderr)
        return 2
    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread: leave signals to the caller
        previous = raise_terminated  # nothing to hand back
    try:
        result = args.func(args)
    except CommandError as err:
        print(f"napari-cellseg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file that cannot be written mid-run (full disk, permissions...)
        where = f"{err.filename}: " if err.filename else ""
        print(f"napari-cellseg {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"napari-cellseg {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"napari-cellseg {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not raise_terminated:  # None: one set outside Python, which cannot be set again
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return int(result or 0)


if __name__ == "__main__":
    # ``python -m napari_cellseg.cli`` (torchrun) runs this file as __main__: call the imported
    # module's main, whose CommandError is the one the commands raise.
    from napari_cellseg.cli import main as _main

    sys.exit(_main())
