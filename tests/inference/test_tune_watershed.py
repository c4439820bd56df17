"""tune_watershed checks its grid and inputs by name."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.inference.synthetic import probabilities_from_instances
from napari_cellseg.inference.tune_watershed import tune_watershed


@pytest.fixture(scope="module")
def pair():
    labels = np.zeros((32, 32), np.uint16)
    labels[2:10, 2:10], labels[15:25, 15:25] = 1, 2
    return probabilities_from_instances(labels), labels


@pytest.mark.parametrize("values", ["0.5", 0.5])
def test_a_grid_value_that_is_not_a_list_is_named(pair, values):
    # "0.5" was tried letter by letter ("'0' is not a number"); 0.5 failed on len().
    with pytest.raises(ValueError, match=r"grid values for interior_threshold must be a list of values"):
        tune_watershed([pair[0]], [pair[1]], {"interior_threshold": values})


def test_stacked_arrays_and_generators_are_sequences_of_images(pair):
    probabilities, labels = pair
    grid = {"interior_threshold": [0.5]}
    best, _ = tune_watershed(np.stack([probabilities] * 2), np.stack([labels] * 2), grid)
    assert best.interior_threshold == 0.5
    best, _ = tune_watershed((p for p in [probabilities]), iter([labels]), grid)
    assert best.interior_threshold == 0.5
    with pytest.raises(TypeError, match="base must be WatershedParams or None, got dict"):
        tune_watershed([probabilities], [labels], grid, base={"min_size": 3})
