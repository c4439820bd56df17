"""The reconstruction behind the h-maxima markers: region by region, exactly the full-image iteration."""

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cellseg.inference import reconstruct
from napari_cellseg.inference.reconstruct import reconstruct_by_dilation


def plain_reconstruction(seed, mask):
    """3x3 dilations capped by the mask over the whole image until nothing changes."""
    current = np.minimum(seed, mask)
    while True:
        grown = np.minimum(cv2.dilate(current, np.ones((3, 3), np.uint8)), mask)
        if np.array_equal(grown, current):
            return grown
        current = grown


def blobs(rng, shape):
    """Smooth relief in separate blobs (0 between them) and a seed below it, as the markers make."""
    relief = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 4)).astype(np.float32)
    relief /= relief.max()
    relief[relief < rng.uniform(0.2, 0.6)] = 0
    seed = np.where(relief > 0, relief - np.float32(rng.uniform(0.01, 0.3)), np.float32(0))
    return seed, relief


@pytest.mark.parametrize("share", [1, 16])
def test_region_by_region_equals_the_plain_iteration(monkeypatch, share):
    calls = []
    finish = reconstruct._finish_by_region
    monkeypatch.setattr(reconstruct, "_SPARSE_SHARE", share)  # 1: regions right after the first step
    monkeypatch.setattr(reconstruct, "_SPARSE_MIN_PIXELS", 0)
    monkeypatch.setattr(reconstruct, "_finish_by_region", lambda *a: calls.append(1) or finish(*a))
    rng = np.random.default_rng(0)
    for _ in range(40):
        seed, relief = blobs(rng, tuple(rng.integers(1, 120, 2)))
        expected = plain_reconstruction(seed, relief)
        got = reconstruct_by_dilation(seed, relief)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert calls  # the regions were packed and iterated on their own


def test_long_region_goes_on_alone_to_the_same_limit(monkeypatch):
    monkeypatch.setattr(reconstruct, "_SPARSE_MIN_PIXELS", 0)
    # A spiral-free snake: one region needs hundreds of steps while the rest stop at once.
    relief = np.zeros((200, 300), np.float32)
    relief[10:190:4, 5:295] = np.linspace(0.2, 1, 290, dtype=np.float32)
    relief[10:190, 5:7] = 0.5
    relief[10:190, 293:295] = 0.5
    relief[150:190, 20:60] = 0.8  # a block that converges fast
    seed = np.where(relief > 0, relief - np.float32(0.3), np.float32(0))
    seed[12, 100] = 1.0  # seed above the ceiling: clipped to it
    assert np.array_equal(reconstruct_by_dilation(seed, relief), plain_reconstruction(seed, relief))


def test_small_images_keep_the_whole_image_loop(monkeypatch):
    calls = []
    monkeypatch.setattr(reconstruct, "_finish_by_region", lambda *a: calls.append(1))
    seed, relief = blobs(np.random.default_rng(1), (256, 320))
    assert np.array_equal(reconstruct_by_dilation(seed, relief), plain_reconstruction(seed, relief))
    assert not calls
