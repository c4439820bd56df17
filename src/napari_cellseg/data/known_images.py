"""Whether a dataset already holds an image: listed in its manifest, stored with the same pixels.

One rule for the Annotate panel and ``import-outlines``: an image saved or imported under the id
an earlier version gave it (before names with accents got a hash) is found again under that id.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def manifest_row(root: str | os.PathLike, image_id: str) -> dict[str, str] | None:
    """The manifest's values for ``image_id`` (``extra`` columns included), or None.

    No manifest, or none listing ``image_id``: None.
    """
    from .manifest import MANIFEST_NAME, read_manifest

    _, rows, _ = read_manifest(Path(root) / MANIFEST_NAME, None)  # a lab's own tags (D, E) too
    row = next((r for r in rows if r.id == image_id), None)
    return None if row is None else {**row.extra, "id": row.id}


def is_listed(root: str | os.PathLike, image_id: str) -> bool:
    """Whether the dataset's manifest lists ``image_id`` (no manifest: False)."""
    return manifest_row(root, image_id) is not None


def same_pixels(root: str | os.PathLike, image_id: str, image: Any) -> bool:
    """Whether the dataset's stored image ``image_id`` holds exactly ``image``'s pixels.

    Read as the dataset reads it (``pixels.image_pixels``); no such file, an unreadable one or
    one of another size: False.
    """
    from .dataset import DATASET_SUFFIXES, IMAGE_DIR
    from .pixels import PixelError, image_pixels

    image = np.asarray(image)
    for path in sorted((Path(root) / IMAGE_DIR).glob(f"{image_id}.*")):
        if path.stem != image_id or path.suffix.lower() not in DATASET_SUFFIXES:
            continue
        try:
            stored = image_pixels(path, image.shape[:2])
        except (PixelError, OSError, ValueError):  # unreadable or another size: not this image
            return False
        return stored.shape == image.shape and np.array_equal(stored, image)
    return False


def earlier_id(
    root: str | os.PathLike | None, older: str, current: str, pixels: Callable[[], Any]
) -> str | None:
    """``older``, the id an earlier rule gave this very image, where the dataset holds it so.

    The dataset in ``root`` must list ``older`` (not ``current``'s own id) with the same pixels
    as ``pixels()``, which is called only then (a large layer is read only when needed). Saving or
    importing the image again then replaces it rather than adding it a second time. None otherwise.
    """
    if root is None or older == current or not is_listed(root, older):
        return None
    return older if same_pixels(root, older, pixels()) else None
