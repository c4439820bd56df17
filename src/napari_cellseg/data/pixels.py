"""Decode a dataset's image and label files, checking what headers cannot show.

Every failure raises ``PixelError`` with a reason; :mod:`.dataset` adds the file
name. Float or negative instance labels, and target maps with values other
than 0/1/2, are found here, when the pixels are read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import ImageReadError, collapse_grey_rgb, read_image


class PixelError(ValueError):
    """A file's pixels are not what the dataset needs (the message omits the path)."""


def read_pixels(path: Path) -> np.ndarray:
    """Decode ``path`` as :func:`~napari_cellseg.io.read_image` does, naming no file in errors."""
    try:
        data = read_image(path)
    except ImageReadError as err:
        # read_image names the file; drop it because the caller names it too.
        raise PixelError(str(err).removeprefix(f"{path}: ")) from None
    return data


def _one_plane(data: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(1, H, W)`` or ``(H, W, 1)`` TIFFs as the ``(H, W)`` plane their header reports."""
    if data.ndim == 3 and data.shape[0] == 1 and data.shape[1:] == tuple(shape):
        return data[0]
    if data.ndim == 3 and data.shape[-1] == 1 and data.shape[:2] == tuple(shape):
        return data[..., 0]
    return data


def image_pixels(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """An image as ``(H, W)`` grey or ``(H, W, 3)`` RGB; three equal channels become grey."""
    data = _one_plane(read_pixels(path), shape)
    if data.ndim == 3 and data.shape[-1] == 2:  # grey + alpha
        data = data[..., 0]
    elif data.ndim == 3 and data.shape[-1] == 4:  # RGBA TIFF
        data = data[..., :3]
    if data.shape[:2] != tuple(shape) or data.ndim not in (2, 3):
        raise PixelError(f"decoded shape {data.shape} differs from the header's {tuple(shape)}")
    return collapse_grey_rgb(data)


def instance_pixels(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Instance labels as uint16 (uint32 past 65535), 0 background, consecutive 1..N."""
    labels = _one_plane(read_pixels(path), shape)
    if labels.shape != tuple(shape):
        raise PixelError(f"labels have shape {labels.shape}; the image is {tuple(shape)}")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise PixelError(f"instance labels must be integers, got dtype {labels.dtype}")
    if np.issubdtype(labels.dtype, np.signedinteger):
        low = int(labels.min())
        if low < 0:
            raise PixelError(f"instance labels must be >= 0, found {low} (dtype {labels.dtype})")
    refuse_binary_mask(labels)
    return _consecutive(labels)


BINARY_MASK_REGIONS = 3  # one label over this many separate regions is a binary mask, not cells
NUMBER_EACH_CELL = "give each cell its own number (skimage.measure.label separates cells that do not touch)"
COLOUR_LABELS = (
    "this looks like labels saved as a colour picture: cells must be numbers (0 background, 1..N), "
    "not colours; save the label image itself (napari: the labels layer as .tif; Cellpose, StarDist: "
    "their masks TIFF)"
)


def refuse_binary_mask(labels: np.ndarray) -> None:
    """A 0/255 (or 0/1) mask of many cells would train as one giant cell: say so instead.

    A 3-class target map (0 background, 1 boundary, 2 interior) saved as labels
    is refused too: its label 1 (every boundary ring) or 2 (every interior)
    covers several separate regions, which two real cells do not.
    """
    top = int(labels.max())
    if top == 2 and not np.any(labels > 2) and (labels == 1).any():
        refuse_target_map(labels)
        return
    if top == 0 or np.any((labels > 0) & (labels != top)):
        return  # empty, or several labels: instance labels
    from scipy import ndimage as ndi

    _, regions = ndi.label(labels > 0)
    if regions >= BINARY_MASK_REGIONS:
        raise PixelError(
            f"one label ({top}) covers {regions} separate regions: this looks like a binary mask, "
            f"not instance labels; {NUMBER_EACH_CELL}"
        )


def refuse_target_map(labels: np.ndarray) -> None:
    """Labels of values 0/1/2 shaped like a target map: many interiors (2), each ringed by boundary (1).

    Two real cells numbered 1 and 2 can lie in pieces (stray pixels, eraser strokes), but
    their pieces are not each wrapped in the other cell's label.
    """
    from scipy import ndimage as ndi

    eight = np.ones((3, 3), bool)  # diagonal neighbours join: a real cell's thin parts stay one piece
    interiors, regions = ndi.label(labels == 2, structure=eight)
    if regions < BINARY_MASK_REGIONS:
        return
    near_boundary = ndi.binary_dilation(labels == 1, structure=eight)
    ringed = np.unique(interiors[near_boundary & (interiors > 0)]).size
    if ringed >= 0.9 * regions:
        raise PixelError(
            f"the labels hold only 0, 1 and 2, and {regions} separate regions of 2 each touch 1: this looks "
            "like a 3-class target map (0 background, 1 boundary, 2 interior), not instance labels; move "
            "the file to targets/ (same name), or give each cell its own number"
        )


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Renumber labels to 1..N (order kept) only when some numbers are unused."""
    top = int(labels.max())
    if top <= 4 * labels.size + 1:
        present = np.bincount(labels.ravel(), minlength=top + 1) > 0
        used = np.flatnonzero(present[1:]) + 1
    else:  # sparse huge ids: bincount would be large
        used = np.unique(labels)
        used = used[used > 0]
    dtype = np.uint16 if len(used) <= np.iinfo(np.uint16).max else np.uint32
    if len(used) == top:
        return labels.astype(dtype, copy=False)
    lookup_keys = np.concatenate(([0], used))
    new = np.searchsorted(lookup_keys, labels.ravel()).reshape(labels.shape)
    return new.astype(dtype)


def target_pixels(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A 3-class map as uint8 (0 background, 1 boundary, 2 interior)."""
    target = _one_plane(read_pixels(path), shape)
    if target.ndim == 3 and target.shape[-1] == 3:
        target = collapse_grey_rgb(target)
    if target.shape != tuple(shape):
        raise PixelError(f"target map has shape {target.shape}; the image is {tuple(shape)}")
    if target.dtype == bool or not np.issubdtype(target.dtype, np.integer):
        raise PixelError(f"target maps must be integers 0/1/2, got dtype {target.dtype}")
    low, high = int(target.min()), int(target.max())
    if low < 0 or high > 2:
        raise PixelError(f"target maps hold 0/1/2 only, found values in [{low}, {high}]")
    return target.astype(np.uint8, copy=False)
