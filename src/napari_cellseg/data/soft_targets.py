"""Soft 3-class targets: a cell's interior share rises from its edge to its centre.

The hard targets of :mod:`napari_cellseg.data.targets` part two touching
nuclei by a rim ``2 * thickness`` pixels wide, thinner than one output pixel
of a network that predicts at stride 4. The *distance* profile asks for a
smooth map instead, which a coarse output can draw: in a cell, the interior
probability is the pixel's distance to the cell's edge divided by the largest
such distance in that cell (1 at the centre, near 0 on the rim), and the
boundary probability is the rest; background pixels stay background.

The network's ``P(interior)`` then peaks at each cell's centre and
thresholding it gives a core per cell even where cells touch, while
``1 - P(background)`` still outlines the cells; the watershed's elevation
``P(background) + P(boundary)`` becomes a cone per cell, whose ridges follow
the necks between touching nuclei (the deep-watershed idea of Bai & Urtasun,
2017, within the project's 3-class contract). On the shared data it did not
beat the hard targets (docs/experiments.md, step 9).

A cell's edge is where a pixel of another label (another cell or background)
is one 8-connected step away. The image border is not an edge, as in the hard
targets: a cell cut by a crop continues outside it.
"""

from __future__ import annotations

import numpy as np

from ..classes import BACKGROUND, BOUNDARY, INTERIOR
from .targets import check_label_image

__all__ = ["TARGET_PROFILES", "distance_targets"]

#: ``hard``: one class per pixel (:func:`~napari_cellseg.data.targets.instances_to_targets`);
#: ``distance``: :func:`distance_targets`.
TARGET_PROFILES = ("hard", "distance")


def distance_targets(labels) -> np.ndarray:
    """Soft ``(3, H, W)`` float32 class probabilities from instance labels.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 background.

    Returns
    -------
    ndarray, shape (3, H, W)
        Background, boundary and interior probabilities; they sum to 1 at
        every pixel. Background pixels are ``(1, 0, 0)``. A cell pixel at
        distance ``d`` from its cell's edge (rim pixels count 1) in a cell
        whose deepest pixel is at ``d_max`` is ``(0, 1 - d / d_max, d / d_max)``.

    Examples
    --------
    >>> labels = np.zeros((9, 9), np.uint8); labels[1:8, 1:8] = 1
    >>> t = distance_targets(labels)
    >>> float(t[2, 4, 4]), float(t[2, 1, 4]), float(t[0, 0, 0])
    (1.0, 0.25, 1.0)
    """
    import cv2

    labels = check_label_image(labels)
    height, width = labels.shape
    out = np.zeros((3, height, width), np.float32)
    cells = labels > 0
    out[BACKGROUND] = ~cells
    if not cells.any():
        return out
    ids = _dense(labels)
    values = ids.astype(np.float32)  # exact below 2**24 cells
    kernel = np.ones((3, 3), np.uint8)
    # A pixel is on a rim when its 3x3 neighbourhood holds another label; the
    # replicated border keeps the image edge from counting.
    high = cv2.dilate(values, kernel, borderType=cv2.BORDER_REPLICATE)
    low = cv2.erode(values, kernel, borderType=cv2.BORDER_REPLICATE)
    rim = cells & ((high != values) | (low != values))
    depth = cv2.distanceTransform((cells & ~rim).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # No rim at all (a crop inside one cell): the distance is "infinite"; every pixel is centre.
    depth = np.minimum(depth, np.float32(height + width)) + np.float32(1)
    deepest = np.zeros(int(ids.max()) + 1, np.float32)
    np.maximum.at(deepest, ids[cells], depth[cells])
    share = np.where(cells, depth / np.maximum(deepest[ids], np.float32(1)), np.float32(0))
    out[INTERIOR] = share
    out[BOUNDARY] = np.where(cells, np.float32(1) - share, np.float32(0))
    return out


def _dense(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered ``0..N`` (0 stays background), for small lookup tables."""
    values, inverse = np.unique(labels, return_inverse=True)
    if values[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(labels.shape)
