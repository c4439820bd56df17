"""The watershed's steps check their arrays: no negative or wrapped ids, no deep numpy/cv2 errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.inference import watershed as ws
from napari_cellseg.inference.scale import median_diameter
from napari_cellseg.inference.synthetic import probabilities_from_instances


@pytest.fixture(scope="module")
def steps():
    labels = np.zeros((32, 32), np.uint16)
    labels[2:10, 2:10], labels[15:25, 15:25], labels[15:25, 25:31] = 1, 2, 3
    p = probabilities_from_instances(labels)
    return p, ws.elevation_from_probabilities(p), ws.markers_from_probabilities(p), ws.foreground_mask(p)


def test_negative_or_too_large_marker_ids_are_refused(steps):
    _, elevation, markers, mask = steps
    # Negative markers gave negative cell ids.
    with pytest.raises(ValueError, match=r"markers must be >= 0 .* found -3"):
        ws.watershed_from_markers(elevation, -markers, mask)
    # 2**32 + 1 wrapped onto 1 in int32 and merged two cells.
    big = markers.astype(np.int64)
    big[big == 3] = 2**32 + 1
    with pytest.raises(ValueError, match="markers ids must be <= 2147483647, found 4294967297"):
        ws.watershed_from_markers(elevation, big, mask)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda e, m, k: (np.stack([e] * 2), np.stack([m] * 2), np.stack([k] * 2)),
            r"non-empty 2D .*\(2, 32, 32\)",
        ),
        (lambda e, m, k: (e[:0], m[:0], k[:0]), r"non-empty 2D .*\(0, 32\)"),
        (lambda e, m, k: (e, m, k.astype(float)), "mask must be a bool array, got dtype float64"),
        (lambda e, m, k: (e, m + 0.5, k), "markers must be integer labels, got dtype float64"),
    ],
)
def test_bad_watershed_inputs_are_named(steps, change, message):
    _, elevation, markers, mask = steps
    with pytest.raises(ValueError, match=message):
        ws.watershed_from_markers(*change(elevation, markers, mask))


def test_lists_and_integer_masks_work(steps):
    p, elevation, markers, mask = steps
    expected = ws.watershed_from_markers(elevation, markers, mask)
    np.testing.assert_array_equal(
        ws.watershed_from_markers(elevation.tolist(), markers.tolist(), mask.astype(np.uint8).tolist()),
        expected,
    )
    np.testing.assert_array_equal(ws.markers_from_probabilities(p, None, mask.tolist()), markers)
    np.testing.assert_array_equal(
        ws.split_at_peaks(markers, p[2].tolist(), 0.2), ws.split_at_peaks(markers, p[2], 0.2)
    )


def test_split_steps_refuse_stacks_and_negative_heights(steps):
    p, _, markers, _ = steps
    with pytest.raises(ValueError, match=r"components must be a non-empty 2D"):
        ws.split_at_necks(np.stack([markers] * 2), 1.0)
    with pytest.raises(ValueError, match="height must be >= 0"):
        ws.split_at_peaks(markers, p[2], -0.2)
    with pytest.raises(ValueError, match="compactness must be >= 0"):
        ws.watershed_from_markers(*steps[1:], compactness=-1)


def test_finalize_and_median_diameter_take_huge_ids_bool_and_refuse_negatives():
    labels = np.zeros((32, 32), np.uint64)
    labels[2:10, 2:10], labels[15:25, 15:25], labels[26:30, 2:6] = 1, 2**40, 2**33
    # 2**40 was used as a bincount length: MemoryError for 8 TiB.
    out = ws.finalize_labels(labels, min_size=20)
    assert out.dtype == np.uint16 and sorted(np.unique(out)) == [0, 1, 2]
    assert (out[15:25, 15:25] == 2).all() and (out[26:30, 2:6] == 0).all()
    assert median_diameter(labels) == pytest.approx(np.sqrt(4 * 64 / np.pi))
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True  # a bool mask used to be an IndexError
    np.testing.assert_array_equal(ws.finalize_labels(mask), mask.astype(np.uint16))
    with pytest.raises(ValueError, match="instance labels must be >= 0, found -1"):
        ws.finalize_labels(np.where(mask, 1, -1))
    with pytest.raises(ValueError, match="instance labels must be >= 0, found -1"):
        median_diameter(np.where(mask, 1, -1))
