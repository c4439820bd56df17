"""Output files of the inference commands: refused up front when they cannot be written."""

from __future__ import annotations

from pathlib import Path


def check_writable_file(path: Path | None, option: str) -> None:
    """Refuse an output file that is a folder before the work, not after it."""
    from ..cli import CommandError

    if path is not None and path.is_dir():
        raise CommandError(f"{option} {path} is a folder; give a .json file")


def write_text(path: Path, text: str) -> None:
    from ..cli import CommandError
    from ..config import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as err:  # full disk, no permission...
        raise CommandError(f"cannot write {path}: {err.strerror or err}") from None
