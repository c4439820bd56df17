"""Resampling as sparse matrices, so that any window of an image resamples on the whole image's grid.

``cv2.resize`` maps an output pixel ``i`` to input coordinate ``(i + 0.5) * src / dst - 0.5``
(bilinear) or averages the input over ``[i, i + 1) * src / dst`` (area). Both are linear
and act on each axis apart, so one axis is a ``(dst, src)`` matrix with a few entries per
row. Rows ``a:b`` of it resample a window exactly as resizing the whole image would: tiles
cut in the network's pixels then see the whole image's grid at any scale factor
(:mod:`.tiled`). The weights are cv2's, so one tile covering the image gives what
:func:`.scale.resize_channels_first` gives (to float rounding).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _linear(src: int, dst: int):
    scale = src / dst
    position = (np.arange(dst) + 0.5) * scale - 0.5
    left = np.floor(position).astype(np.int64)
    fraction = position - left
    # cv2 clamps at the edges: the edge pixel, weight 1
    low, high = left < 0, left >= src - 1
    fraction[low | high] = 0.0
    left[low] = 0
    left[high] = src - 1
    right = np.minimum(left + 1, src - 1)
    rows = np.repeat(np.arange(dst), 2)
    cols = np.stack([left, right], axis=1).ravel()
    values = np.stack([1.0 - fraction, fraction], axis=1).ravel()
    return rows, cols, values


def _area(src: int, dst: int):
    scale = src / dst
    rows, cols, values = [], [], []
    for i in range(dst):
        start, stop = i * scale, (i + 1) * scale
        width = min(scale, src - start)
        first, last = math.ceil(start), math.floor(stop)
        if first - start > 1e-3:  # part of the pixel before
            rows.append(i), cols.append(first - 1), values.append((first - start) / width)
        for j in range(first, min(last, src)):
            rows.append(i), cols.append(j), values.append(1.0 / width)
        if stop - last > 1e-3 and last < src:  # part of the pixel after
            rows.append(i), cols.append(last), values.append(min(stop - last, 1.0, width) / width)
    return np.asarray(rows), np.asarray(cols), np.asarray(values)


@lru_cache(maxsize=16)
def resample_matrix(src: int, dst: int, area: bool):
    """The ``(dst, src)`` CSR matrix that resamples one axis of ``src`` pixels to ``dst``.

    ``area``: average over each output pixel's footprint (for shrinking, as
    ``cv2.INTER_AREA``); otherwise bilinear (``cv2.INTER_LINEAR``).
    """
    from scipy import sparse

    if src < 1 or dst < 1:
        raise ValueError(f"cannot resample an axis of {src} pixels to {dst}")
    if src == dst:
        return sparse.identity(src, dtype=np.float64, format="csr")
    rows, cols, values = (_area if area else _linear)(src, dst)
    matrix = sparse.csr_matrix((values, (rows, cols)), shape=(dst, src))
    matrix.eliminate_zeros()
    return matrix


def support(matrix, start: int, stop: int) -> tuple[int, int]:
    """``(first, last + 1)`` of the columns that rows ``start:stop`` of ``matrix`` use."""
    part = matrix[start:stop]
    if part.nnz == 0:
        return 0, 0
    return int(part.indices.min()), int(part.indices.max()) + 1


def apply_axes(array: np.ndarray, rows, cols) -> np.ndarray:
    """``rows @ array[c] @ cols.T`` for each channel of a ``(C, H, W)`` array, as float32.

    ``rows`` is ``(h, H)`` and ``cols`` ``(w, W)`` (sparse or dense); returns ``(C, h, w)``.
    """
    channels, height, width = array.shape
    stacked = np.moveaxis(array, 0, -1).reshape(height, width * channels)  # (H, W*C)
    out = np.asarray(rows @ stacked).reshape(rows.shape[0], width, channels)  # (h, W, C)
    out = np.moveaxis(out, 1, 0).reshape(width, rows.shape[0] * channels)  # (W, h*C)
    out = np.asarray(cols @ out).reshape(cols.shape[0], rows.shape[0], channels)  # (w, h, C)
    return np.ascontiguousarray(np.transpose(out, (2, 1, 0)), dtype=np.float32)
