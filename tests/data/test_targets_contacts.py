"""The contact pixels of instances_to_targets: cv2's 3x3 maximum and minimum, as the neighbour pairs say."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.data import targets
from napari_cellseg.data.targets import instances_to_targets


def neighbour_pairs(labels: np.ndarray, connectivity: int) -> np.ndarray:
    """Pixels with a differently labelled neighbour, by comparing shifted copies (the plain rule)."""
    padded = np.pad(labels.astype(np.int64), 1, constant_values=-1)
    h, w = labels.shape
    edge = np.zeros((h, w), bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if (dy, dx) == (0, 0) or (connectivity == 1 and dy and dx):
                continue
            other = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            edge |= (other != -1) & (other != labels)
    return edge


@pytest.mark.parametrize(
    "dtype, top", [(np.uint8, 5), (np.uint16, 65535), (np.int64, 300), (np.int64, 2**40)]
)
def test_contacts_are_the_pixels_with_a_differing_neighbour(dtype, top):
    rng = np.random.default_rng(1)
    for _ in range(30):
        shape = tuple(rng.integers(1, 40, 2))
        labels = rng.integers(0, 4, shape).astype(dtype) * np.asarray(top // 3, dtype)
        labels = np.repeat(labels, rng.integers(1, 4), axis=int(rng.integers(0, 2)))  # runs of one label
        view = labels[:, ::2] if rng.random() < 0.3 else labels  # not contiguous
        for connectivity in (1, 2):
            assert np.array_equal(targets._contacts(view, connectivity), neighbour_pairs(view, connectivity))


def test_default_contacts_take_cv2s_two_passes(monkeypatch):
    import cv2

    calls = []
    monkeypatch.setattr(cv2, "erode", lambda *a, f=cv2.erode: calls.append(1) or f(*a))
    labels = np.zeros((6, 8), np.uint16)
    labels[1:5, 1:4], labels[1:5, 4:7] = 1, 2
    target = instances_to_targets(labels, repair=False)
    assert calls == [1]
    assert target[2].tolist() == [0, 1, 2, 1, 1, 2, 1, 0]
