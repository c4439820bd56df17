"""Names, formats and loaders of the files :mod:`.export` writes (no torch import at import time).

:func:`load_torchscript`, :func:`read_onnx_metadata` and
:func:`run_onnx_reference` raise :class:`ExportError` naming the file when it
is missing or not an export, never a parser's traceback.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

METADATA_KEY = "napari_cellseg"
EXTRA_FILE = "napari_cellseg.json"
FORMATS = ("torchscript", "onnx")
# File suffixes of each format: an export is refused under the other format's suffix.
SUFFIXES = {"torchscript": (".pt", ".pth", ".ts", ".torchscript"), "onnx": (".onnx",)}


class ExportError(ValueError):
    """The model cannot be exported faithfully in the requested format."""


def format_of(path: str | os.PathLike) -> str | None:
    """The export format a file name's suffix stands for (None for other suffixes)."""
    suffix = Path(path).suffix.lower()
    return next((fmt for fmt, suffixes in SUFFIXES.items() if suffix in suffixes), None)


def sidecar_path(out: str | os.PathLike) -> Path:
    """The JSON sidecar of an export: its full file name plus ``.json`` (``cells.onnx.json``).

    The full name, not the stem, so ``cells.pt`` and ``cells.onnx`` of one model keep
    sidecars of their own (each records its format).
    """
    out = Path(out)
    return out.with_name(out.name + ".json")


def _existing_file(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    return path


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def load_torchscript(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Load an exported TorchScript file: ``(module, metadata)``; :class:`ExportError` if it is not one."""
    import torch

    path = _existing_file(path)
    extra = {EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as err:  # torch raises RuntimeError/ValueError with pages of C++ context
            raise ExportError(f"{path}: not a TorchScript file ({_first_line(err)})") from None
    try:
        metadata = json.loads(extra[EXTRA_FILE] or "{}")
    except json.JSONDecodeError as err:
        raise ExportError(f"{path}: its {EXTRA_FILE} is not valid JSON ({err})") from None
    return module.eval(), metadata


def _load_onnx(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as err:  # protobuf's DecodeError and friends
        raise ExportError(f"{path}: not an ONNX file ({_first_line(err)})") from None


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``napari_cellseg`` metadata embedded in an exported ONNX file."""
    path = _existing_file(path)
    proto = _load_onnx(path)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            try:
                return json.loads(entry.value)
            except json.JSONDecodeError as err:
                raise ExportError(
                    f"{path}: its {METADATA_KEY!r} metadata is not valid JSON ({err})"
                ) from None
    raise ExportError(f"{path}: no {METADATA_KEY!r} metadata; not exported by napari-cellseg")


def run_onnx_reference(path: str | os.PathLike, image: np.ndarray) -> np.ndarray:
    """Run an exported ONNX file with onnx's pure-numpy reference evaluator (slow; for checks).

    ``image`` is the float ``(N, 3, H, W)`` normalised input; returns the
    ``(N, 3, H, W)`` probabilities.
    """
    from onnx.reference import ReferenceEvaluator

    path = _existing_file(path)
    array = np.asarray(image)
    if array.ndim != 4 or array.shape[1] != 3 or 0 in array.shape:
        raise ValueError(f"image: expected a normalised (N, 3, H, W) batch, got shape {array.shape}")
    if array.dtype.kind not in "fiub":
        raise ValueError(f"image: expected a float array, got dtype {array.dtype}")
    session = ReferenceEvaluator(_load_onnx(path))
    return session.run(None, {"image": array.astype(np.float32, copy=False)})[0]
