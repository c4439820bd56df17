"""Distance-profile soft targets: sums, ranges, centres, touching cells."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk
from skimage.measure import label

from napari_cellseg.classes import BACKGROUND, BOUNDARY, INTERIOR
from napari_cellseg.data.soft_targets import distance_targets


def _two_touching_disks():
    labels = np.zeros((40, 60), np.uint16)
    labels[disk((20, 20), 10, shape=labels.shape)] = 7
    labels[disk((20, 38), 10, shape=labels.shape)] = 300  # overlaps the first: they touch
    return labels


def test_probabilities_sum_to_one_and_background_is_one_hot():
    labels = _two_touching_disks()
    targets = distance_targets(labels)
    assert targets.shape == (3, 40, 60) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(0), 1.0, atol=1e-6)
    assert (targets[BACKGROUND][labels == 0] == 1).all()
    assert (targets[BACKGROUND][labels > 0] == 0).all()
    assert targets.min() >= 0 and targets.max() <= 1


def test_interior_peaks_at_each_centre_and_is_low_on_the_rim():
    labels = _two_touching_disks()
    interior = distance_targets(labels)[INTERIOR]
    for value in (7, 300):
        assert interior[labels == value].max() == pytest.approx(1.0)
    assert interior[20, 20] > 0.9 and interior[20, 38] > 0.9
    # the contact line between the two cells is rim: almost all boundary
    assert labels[20, 28] == 7 and labels[20, 29] == 300
    assert interior[20, 28] < 0.15 and interior[20, 29] < 0.15
    # the cores (interior >= 0.5) of the two touching cells are apart
    cores = label(interior >= 0.5, connectivity=2)
    assert cores.max() == 2 and cores[20, 20] != cores[20, 38]


def test_the_image_border_is_not_an_edge():
    labels = np.zeros((20, 20), np.uint8)
    labels[:, :10] = 1  # cut by the left border
    interior = distance_targets(labels)[INTERIOR]
    assert interior[10, 0] == pytest.approx(1.0)  # deepest at the border, not at x=5
    assert interior[10, 9] < interior[10, 5] < interior[10, 0]


def test_empty_and_full_images():
    empty = distance_targets(np.zeros((5, 6), np.int32))
    assert (empty[BACKGROUND] == 1).all() and not empty[1:].any()
    full = distance_targets(np.ones((5, 6), np.int32))  # a crop inside one cell
    assert (full[INTERIOR] == 1).all() and not full[BOUNDARY].any()


def test_bad_labels_are_refused_with_their_shape():
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\)"):
        distance_targets(np.zeros((2, 3, 4), np.int32))
    with pytest.raises(ValueError, match="integers"):
        distance_targets(np.zeros((3, 4), np.float32))
