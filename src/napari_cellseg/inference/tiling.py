"""Overlapping tiles and their blending windows (numpy only).

A tile grid covers an image with equally sized tiles whose neighbours overlap
by at least ``overlap`` pixels; the last tile of a row or column ends at the
image's edge so that every tile has the same shape (tiles can then be
batched), and tile starts can be aligned to the network's stride. Predictions are blended with a ramp over the overlap (near zero on the outer
quarter, where the network lacks context, then a cosine rise): where two tiles
meet, the falling ramp of one and the rising ramp of the other sum to one, so
a seam leaves no trace. Sides on the image's edge keep full weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One tile: its position in the image and which sides have a neighbour."""

    y0: int
    x0: int
    height: int
    width: int
    # Neighbours on the (top, bottom, left, right) sides: those sides are blended.
    neighbours: tuple[bool, bool, bool, bool]

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y0 + self.height), slice(self.x0, self.x0 + self.width)


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> tuple[int, list[int]]:
    """Tile size and start positions covering ``length`` pixels.

    Parameters
    ----------
    length : int
        Size of the image along one axis.
    tile : int
        Largest tile size along that axis: the tiles are shrunk to the
        smallest size that covers ``length`` with as many tiles.
    overlap : int
        Minimum overlap between neighbouring tiles, ``0 <= overlap < tile``.
    align : int
        Starts are multiples of ``align`` (the network's stride, so every tile
        sees the pixel grid the whole image would); the tile grows by less than
        ``align`` pixels to make that possible.

    Returns
    -------
    tile : int
        The tile size used (at most the requested size plus ``align - 1``).
    starts : list of int
        Sorted starts; the first is 0 and the last is ``length - tile``.
    """
    if length < 1:
        raise ValueError(f"cannot tile an axis of length {length}")
    if tile < 1 or align < 1:
        raise ValueError(f"tile size and align must be >= 1, got {tile} and {align}")
    if tile >= length:
        return length, [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, {tile - 1}] for tile size {tile}, got {overlap}")
    # As few tiles as the requested size allows, then as small as covering needs:
    # 1024 px in tiles of 512 overlapping by 64 takes 3 tiles of 384, not 3 of 512.
    n_tiles = math.ceil((length - overlap) / (tile - overlap))
    tile = min(tile, math.ceil((length + (n_tiles - 1) * overlap) / n_tiles))
    # Grow the tile so that the last start, length - tile, is a multiple of align.
    tile = length - align * ((length - tile) // align)
    max_gap = max(1, (tile - overlap) // align)  # in units of align
    span = (length - tile) // align
    n_gaps = max(1, math.ceil(span / max_gap))
    units = np.round(np.linspace(0, span, n_gaps + 1)).astype(int)
    return tile, sorted({int(u) * align for u in units})


def tile_grid(
    shape: tuple[int, int], tile_size: int | tuple[int, int], overlap: int, align: int = 1
) -> list[Tile]:
    """All tiles covering an image of ``shape`` (H, W), row by row.

    Every tile has the same shape, at least ``min(tile, H) x min(tile, W)``;
    starts are multiples of ``align`` (see :func:`tile_starts`).

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the image.
    tile_size : int or tuple of int
        Largest tile size, one for both axes or ``(height, width)``; >= 1.
    overlap : int
        Minimum overlap of neighbouring tiles, ``0 <= overlap <= tile_size // 2``
        (a wider overlap would multiply the tiles: at ``tile_size - 1`` they
        step by one pixel).
    align : int
        Starts are multiples of ``align`` (>= 1).

    Returns
    -------
    list of Tile
    """
    from ..data.arguments import check_integer

    if len(shape) != 2:
        raise ValueError(f"tile_grid expects a 2D shape (H, W), got {tuple(shape)}")
    pair = (tile_size, tile_size) if not isinstance(tile_size, (tuple, list)) else tuple(tile_size)
    if len(pair) != 2:
        raise ValueError(f"tile_size must be one size or (height, width), got {tile_size!r}")
    th, tw = (check_integer(t, "tile_size", minimum=1) for t in pair)
    overlap = check_integer(overlap, "overlap", minimum=0)
    if overlap > min(th, tw) // 2:
        raise ValueError(f"overlap must be in [0, {min(th, tw) // 2}] (half the tile size), got {overlap}")
    align = check_integer(align, "align", minimum=1)
    height, width = int(shape[0]), int(shape[1])
    # An axis no longer than its tile takes one tile: the overlap plays no part there.
    th, ys = tile_starts(height, th, overlap if th < height else 0, align)
    tw, xs = tile_starts(width, tw, overlap if tw < width else 0, align)
    tiles = []
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            neighbours = (iy > 0, iy < len(ys) - 1, ix > 0, ix < len(xs) - 1)
            tiles.append(Tile(y, x, th, tw, neighbours))
    return tiles


def cosine_ramp(n: int) -> np.ndarray:
    """Rising float32 weights over ``n`` pixels: ~0, then a ``sin^2`` rise, then 1.

    The outer quarter stays near zero (1e-6) because the network sees too
    little context there; the middle half rises as ``sin^2``; the inner
    quarter is 1. ``ramp + ramp[::-1] == 1``, so two tiles overlapping by
    exactly ``n`` pixels blend to a partition of unity.
    """
    if n < 1:
        return np.ones(0, np.float32)
    margin = n // 4
    rise = n - 2 * margin
    t = (np.arange(rise, dtype=np.float64) + 0.5) / rise
    ramp = np.concatenate([np.zeros(margin), np.sin(0.5 * np.pi * t) ** 2, np.ones(margin)])
    return np.clip(ramp, 1e-6, 1.0).astype(np.float32)


def _axis_weights(size: int, ramp: int, before: bool, after: bool) -> np.ndarray:
    weights = np.ones(size, np.float32)
    ramp = min(ramp, size // 2) if (before and after) else min(ramp, size)
    if ramp < 1:
        return weights
    rising = cosine_ramp(ramp)
    if before:
        weights[:ramp] = rising
    if after:
        weights[size - ramp :] = np.minimum(weights[size - ramp :], rising[::-1])
    return weights


def blend_window(tile: Tile, overlap: int) -> np.ndarray:
    """float32 ``(height, width)`` weights of ``tile``, ramped on sides with a neighbour."""
    top, bottom, left, right = tile.neighbours
    wy = _axis_weights(tile.height, overlap, top, bottom)
    wx = _axis_weights(tile.width, overlap, left, right)
    return np.outer(wy, wx)


def blend_sums(tiles: list[Tile], overlap: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The sum of every tile's :func:`blend_window` over ``shape``, as its row and column factors.

    The tiles of :func:`tile_grid` form a grid and each window is an outer product, so
    the sum is ``np.outer(rows, cols)``: two 1-D arrays instead of a weight per pixel.
    """
    rows, cols = np.zeros(shape[0], np.float32), np.zeros(shape[1], np.float32)
    for start, length, before, after, sums in {
        *((t.y0, t.height, t.neighbours[0], t.neighbours[1], "rows") for t in tiles),
        *((t.x0, t.width, t.neighbours[2], t.neighbours[3], "cols") for t in tiles),
    }:
        target = rows if sums == "rows" else cols
        target[start : start + length] += _axis_weights(length, overlap, before, after)
    return rows, cols
