"""Outlines to pixels the way QuPath and Fiji fill them, and the shapes Fiji draws without vertices.

A pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)`` and belongs to an outline
when its centre lies inside by the even-odd rule over all the outline's rings, so holes (and
the holes of Fiji's composite selections) stay empty. A centre exactly on an edge belongs to
the side the outline lies to its right or below (Java2D's rule, which QuPath and ImageJ use),
so two outlines sharing an edge never both take its pixels.
"""

from __future__ import annotations

import numpy as np

MAX_CHUNK = 4_000_000  # rows x edges handled at once (memory bound for large regions)


def polygon_mask(rings: list[np.ndarray], shape: tuple[int, int]):
    """``(box, inside)``: the window of ``shape`` the outline covers and its pixels there.

    ``rings`` are ``(N, 2)`` arrays of ``(x, y)`` vertices (closed or not). Returns
    ``(None, None)`` when no pixel centre of the image lies inside.
    """
    points = np.concatenate([np.asarray(r, dtype=np.float64) for r in rings])
    low = np.maximum(np.floor(points.min(axis=0)).astype(int), 0)  # (x, y)
    high = np.minimum(np.ceil(points.max(axis=0)).astype(int), (shape[1], shape[0]))
    if np.any(high <= low):
        return None, None
    x0, y0, x1, y1 = _edges(rings)
    n_rows, n_cols = int(high[1] - low[1]), int(high[0] - low[0])
    inside = np.zeros((n_rows, n_cols), bool)
    step = max(1, MAX_CHUNK // max(len(x0), 1))
    for start in range(0, n_rows, step):
        centres = (np.arange(start, min(start + step, n_rows)) + low[1] + 0.5)[:, None]
        crossing = ((y0 <= centres) & (centres < y1)) | ((y1 <= centres) & (centres < y0))
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x0 + (centres - y0) * (x1 - x0) / (y1 - y0)
        # A crossing at x counts for the pixels whose centres lie left of it: columns [0, k).
        k = np.clip(np.ceil(x_cross - 0.5 - low[0]), 0, n_cols).astype(int)
        counts = np.zeros((centres.shape[0], n_cols + 1), np.int32)
        counts[:, 0] = crossing.sum(axis=1)
        rows = np.broadcast_to(np.arange(centres.shape[0])[:, None], crossing.shape)
        np.add.at(counts, (rows[crossing], k[crossing]), -1)
        inside[start : start + centres.shape[0]] = np.cumsum(counts, axis=1)[:, :n_cols] % 2 == 1
    box = (slice(int(low[1]), int(high[1])), slice(int(low[0]), int(high[0])))
    return box, (inside if inside.any() else None)


def _edges(rings: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """``x0, y0, x1, y1`` of every non-horizontal edge, each ring closed."""
    starts, ends = [], []
    for ring in rings:
        ring = np.asarray(ring, dtype=np.float64)[:, :2]
        starts.append(ring)
        ends.append(np.roll(ring, -1, axis=0))
    start, end = np.concatenate(starts), np.concatenate(ends)
    slanted = start[:, 1] != end[:, 1]
    return start[slanted, 0], start[slanted, 1], end[slanted, 0], end[slanted, 1]


def ellipse_ring(left: float, top: float, width: float, height: float) -> np.ndarray:
    """Vertices of the ellipse in the box, dense enough that its pixels are the ellipse's own."""
    a, b = width / 2, height / 2
    n = max(64, int(np.ceil(8 * np.pi * max(a, b))))  # the chord's sag stays far below a pixel
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([left + a + a * np.cos(angle), top + b + b * np.sin(angle)])


def rounded_rect_ring(left: float, top: float, width: float, height: float, arc: float) -> np.ndarray:
    """Vertices of a rectangle whose corners are quarter ellipses of diameter ``arc`` (Fiji's)."""
    rx, ry = min(arc, width) / 2, min(arc, height) / 2
    if rx <= 0 or ry <= 0:
        return np.array(
            [[left, top], [left + width, top], [left + width, top + height], [left, top + height]]
        )
    n = max(8, int(np.ceil(4 * np.pi * max(rx, ry))))
    corners = (  # centre of each corner's arc and its start angle, clockwise in image coordinates
        (left + width - rx, top + ry, -np.pi / 2),
        (left + width - rx, top + height - ry, 0.0),
        (left + rx, top + height - ry, np.pi / 2),
        (left + rx, top + ry, np.pi),
    )
    parts = []
    for cx, cy, start in corners:
        angle = start + np.linspace(0, np.pi / 2, n)
        parts.append(np.column_stack([cx + rx * np.cos(angle), cy + ry * np.sin(angle)]))
    return np.concatenate(parts)
