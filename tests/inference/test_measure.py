"""measure_cells checks its labels: no cell is dropped silently, no error from inside scikit-image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.inference.measure import measure_cells


@pytest.fixture
def cells():
    labels = np.zeros((32, 32), np.int32)
    labels[2:10, 2:10], labels[15:25, 15:25] = 1, 2
    return labels, np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)


def test_negative_labels_are_refused_not_dropped(cells):
    labels, image = cells
    # labels - 1 made the background -1 and cell 1 background: one cell vanished.
    with pytest.raises(ValueError, match="x: labels: instance labels must be >= 0, found -1"):
        measure_cells(labels - 1, image, "x")


@pytest.mark.parametrize(
    ("labels", "image", "message"),
    [
        (np.zeros((32, 32)), np.zeros((32, 32)), "instance labels must be integers, got dtype float64"),
        (np.zeros((1, 1, 32, 32), np.uint16), np.zeros((1, 1, 32, 32)), r"\(H, W\) or \(Z, H, W\)"),
        (
            np.zeros((32, 32), np.uint16),
            np.zeros((32, 32), object),
            "image must be numeric, got dtype object",
        ),
    ],
)
def test_bad_inputs_are_named(labels, image, message):
    with pytest.raises(ValueError, match=message):
        measure_cells(labels, image, "x")


def test_a_bool_mask_is_one_cell_and_lists_work(cells):
    labels, image = cells
    rows = measure_cells(labels > 0, image, "x")
    assert [(r["label"], r["area"]) for r in rows] == [(1, 164)]
    assert measure_cells(labels.tolist(), image.tolist(), "x") == measure_cells(labels, image, "x")
