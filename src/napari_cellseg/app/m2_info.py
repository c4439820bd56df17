"""What an M2 checkpoint is, read without torch where possible: its architecture and depth.

:func:`m2_depth` is the number of transferable stages, the upper bound of
``l`` in the Fine-tune panel. The default M2 and any checkpoint of its
architecture need no torch; another architecture is built by timm (random
weights, nothing downloaded) to count its stages.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from ..models.defaults import DEFAULT_ARCH, DEFAULT_M2_DEPTH


def _safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read from its header (no torch)."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header size)")
        (size,) = struct.unpack("<Q", head)
        if size > 100 << 20:
            raise ValueError(f"{path}: not a safetensors file (header size {size} bytes)")
        try:
            header = json.loads(fh.read(size))
        except ValueError:
            raise ValueError(f"{path}: not a safetensors file (its header is not JSON)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _is_safetensors(path: Path) -> bool:
    """Whether ``path`` holds safetensors, told by its content as weights are read.

    A ``.bin`` download or a ``.SAFETENSORS`` name counts by its bytes; a
    ``.safetensors`` name on other bytes is refused (ValueError).
    """
    from ..models.weights_io import weights_format

    with path.open("rb") as fh:
        head = fh.read(9)
    if weights_format(head, path.stat().st_size) == "safetensors":
        return True
    if path.suffix.lower() == ".safetensors":
        raise ValueError(f"{path}: not a safetensors file (it does not open with a safetensors header)")
    return False


def m2_arch(m2: str | os.PathLike) -> str:
    """The timm architecture an M2 checkpoint names (folder, or safetensors file whatever its name).

    Raises
    ------
    ValueError
        If the path does not exist or does not name its architecture.
    """
    from ..models.m2 import M2_CONFIG, SAFETENSORS_CONFIG_KEY

    path = Path(m2).expanduser()
    if path.is_dir():
        config_path = path / M2_CONFIG
        if not config_path.is_file():
            raise ValueError(f"{path}: not an M2 folder ({M2_CONFIG} is missing)")
        data = json.loads(config_path.read_text(encoding="utf-8"))
    elif path.is_file():
        text = _safetensors_metadata(path).get(SAFETENSORS_CONFIG_KEY) if _is_safetensors(path) else None
        if not text:
            raise ValueError(
                f"{path}: this file does not name its architecture; choose an M2 folder or a "
                ".safetensors file written by `napari-cellseg pretrain`"
            )
        data = json.loads(text)
    else:
        raise ValueError(f"{path}: no such M2 checkpoint (file or folder)")
    arch = data.get("arch") if isinstance(data, dict) else None
    if not isinstance(arch, str) or not arch:
        raise ValueError(f"{path}: the M2 config names no architecture ('arch')")
    return arch


def m2_depth(m2: str | os.PathLike | None = "default") -> int:
    """Number of transferable stages of an M2: ``l`` ranges over ``1..depth``.

    The default M2 needs no torch; another architecture is built (random
    weights, nothing downloaded) to count its stages.
    """
    if m2 is None or str(m2) in ("", "default"):
        return DEFAULT_M2_DEPTH
    arch = m2_arch(m2)
    if arch == DEFAULT_ARCH:
        return DEFAULT_M2_DEPTH
    from ..models.m2 import build_classifier
    from ..models.stages import split_stages

    stages, _ = split_stages(build_classifier(arch, 0), arch)
    return len(stages)
