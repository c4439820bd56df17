"""Shared by the benchmarks: a large synthetic label image with many touching cells."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def random_cells(shape=(1024, 1024), n_cells: int = 500, radius: float = 16.0, seed: int = 0):
    """uint16 labels: Voronoi cells of random seeds, cut to discs of ``radius``.

    Neighbouring seeds closer than ``2 * radius`` give touching cells, as in
    dense tissue.
    """
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int32)
    points = rng.integers(0, shape, size=(n_cells, 2))
    seeds[points[:, 0], points[:, 1]] = np.arange(1, n_cells + 1)
    distance, (rows, cols) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[rows, cols]
    labels[distance > radius] = 0
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)[0].astype(np.uint16)
