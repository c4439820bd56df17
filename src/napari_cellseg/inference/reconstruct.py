"""Grey-level reconstruction by dilation, the step behind the watershed's h-maxima markers.

Repeated 3x3 dilations capped by the mask converge in as many steps as the longest
path a value travels (a large nucleus: 100 steps and more), while most of the image
stops changing after a few. So once few pixels still change, the regions they lie in
go on alone, packed side by side into a smaller image. A region is a connected set of
pixels below the mask: every other pixel already equals the mask and never changes
again, so regions do not affect each other, and the result is exactly the full-image
iteration's (the reconstruction is unique; only min and max of the inputs are taken).
"""

from __future__ import annotations

import numpy as np

_KERNEL = np.ones((3, 3), np.uint8)
# Go region by region once fewer than 1 pixel in this many still changes.
_SPARSE_SHARE = 16
# Below this many pixels the whole-image loop is faster than labelling and packing regions
# (a 256x320 sample: 3.3 ms against 9.6 ms, median of 20 runs).
_SPARSE_MIN_PIXELS = 512 * 512
# Repack the regions still changing once their boxes fill less than half of the packed ones;
# look for them every few steps.
_REPACK_SHARE = 0.5
_STEPS_PER_CHECK = 4


def reconstruct_by_dilation(seed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey-level reconstruction of ``seed`` under ``mask`` (8-connected), as ``seed``'s float dtype.

    Parameters
    ----------
    seed, mask : ndarray of float, shape (H, W)
        The values to spread and the ceiling they spread under (finite).

    Returns
    -------
    ndarray, shape (H, W)
        The limit of ``minimum(dilate(current), mask)`` from ``minimum(seed, mask)``.
    """
    import cv2

    current = np.minimum(seed, mask)
    while True:
        grown = np.minimum(cv2.dilate(current, _KERNEL), mask)
        changed = grown != current
        n_changed = int(np.count_nonzero(changed))
        if n_changed == 0:
            return grown
        current = grown
        if current.size >= _SPARSE_MIN_PIXELS and n_changed * _SPARSE_SHARE < current.size:
            _finish_by_region(current, mask, changed)
            return current


def _finish_by_region(current: np.ndarray, mask: np.ndarray, changed: np.ndarray) -> None:
    """Iterate the regions next to a ``changed`` pixel to their limit, packed together; in place."""
    import cv2
    from scipy import ndimage as ndi

    regions, _ = ndi.label(current < mask, structure=np.ones((3, 3), bool))
    boxes = ndi.find_objects(regions)
    # a region moves on where a pixel of it or next to it changed (one now equal to the mask, too)
    near = cv2.dilate(changed.view(np.uint8), _KERNEL).view(bool)
    active = np.unique(regions[near])
    active = active[active > 0]
    # -inf around the image takes no part in a dilation, as cv2's own border
    height, width = current.shape
    padded = np.pad(current, 1, constant_values=-np.inf)
    ceiling = np.pad(mask, 1, constant_values=-np.inf)
    padded_regions = np.pad(regions, 1)
    while active.size:
        # each region's box and a ring of 1 px, in padded coordinates
        crops = [(boxes[r - 1][0].start, boxes[r - 1][0].stop + 2, boxes[r - 1][1].start, boxes[r - 1][1].stop + 2) for r in active]  # fmt: skip
        places, shape = _shelves([(y1 - y0, x1 - x0) for y0, y1, x0, x1 in crops])
        values = np.full(shape, -np.inf, current.dtype)
        limit = np.full(shape, -np.inf, mask.dtype)
        owner = np.zeros(shape, np.intp)  # 1 + the index in active of the region a packed pixel is of
        for number, (region, (y0, y1, x0, x1), (py, px)) in enumerate(zip(active, crops, places), 1):
            target = (slice(py, py + y1 - y0), slice(px, px + x1 - x0))
            values[target] = padded[y0:y1, x0:x1]
            limit[target] = ceiling[y0:y1, x0:x1]
            owner[target][padded_regions[y0:y1, x0:x1] == region] = number
        areas = np.array([(y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in crops])
        grown = np.empty_like(values)
        while True:  # the other pixels of a box are equal to the mask (constant) or another region's
            before = values.copy()
            for _ in range(_STEPS_PER_CHECK):  # a region that stopped changing stays put: checks can wait
                np.minimum(cv2.dilate(values, _KERNEL, dst=grown), limit, out=values)
            moved = np.bincount(owner[values != before], minlength=active.size + 1)[1:] > 0
            if areas[moved].sum() < _REPACK_SHARE * areas.sum():
                break
        for number, (y0, y1, x0, x1), (py, px) in zip(range(1, active.size + 1), crops, places):
            box = (slice(py, py + y1 - y0), slice(px, px + x1 - x0))
            np.copyto(padded[y0:y1, x0:x1], values[box], where=owner[box] == number)
        active = active[moved]
    current[...] = padded[1 : height + 1, 1 : width + 1]


def _shelves(sizes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Top-left corners that pack boxes of ``sizes`` in rows (tallest first), and the packed shape."""
    widest = max(w for _, w in sizes)
    width = max(widest, int(np.sqrt(sum(h * w for h, w in sizes))))
    places: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    y = x = shelf = 0
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i][0]):
        h, w = sizes[index]
        if x + w > width:  # this row is full: start the next below its tallest box
            y, x, shelf = y + shelf, 0, 0
        places[index] = (y, x)
        x += w
        shelf = max(shelf, h)
    return places, (y + shelf, width)
