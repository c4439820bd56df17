"""Output files of the inference commands: refused up front when they cannot be written."""

from __future__ import annotations

from pathlib import Path


def check_writable_file(path: Path | None, option: str, inputs=()) -> None:
    """Refuse an output file before the work, not after it: a folder, not writable, or an input."""
    from ..cli import check_out_file

    if path is not None:
        check_out_file(path, option, inputs, hint="give a .json file")


def model_files(model_dir: Path) -> list[tuple[Path, str]]:
    """A model folder's files as ``check_writable_file`` inputs."""
    return [
        (model_dir / "config.json", "the model's config"),
        (model_dir / "model.safetensors", "the model's weights"),
    ]


def write_text(path: Path, text: str) -> None:
    from ..cli import CommandError
    from ..config import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as err:  # full disk, no permission...
        raise CommandError(f"cannot write {path}: {err.strerror or err}") from None
