"""WatershedParams are checked on every assignment; probabilities outside [0, 1] are refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_cellseg.inference.synthetic import probabilities_from_instances
from napari_cellseg.inference.watershed import WatershedParams, instances_from_probabilities


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"boundary_weight": float("nan")}, "boundary_weight must be a finite number, got nan"),
        ({"compactness": float("nan")}, "compactness must be a finite number"),
        ({"marker_smoothing": float("inf")}, "marker_smoothing must be a finite number, got inf"),
        ({"split_height": float("nan")}, "split_height must be a finite number"),
        ({"peak_height": float("nan")}, "peak_height must be a finite number"),
        ({"min_size": float("inf")}, "min_size must be a whole number"),
        ({"min_size": True}, "min_size must be a whole number, got true"),
        ({"keep_unmarked": "no"}, "keep_unmarked must be true or false"),
        ({"interior_threshold": 5.0}, r"interior_threshold must be in \(0, 1\], got 5.0"),
    ],
)
def test_bad_settings_are_refused_at_construction_replace_and_assignment(changes, message):
    with pytest.raises(ValueError, match=message):
        WatershedParams(**changes)
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(WatershedParams(), **changes)
    params = WatershedParams()
    name, value = next(iter(changes.items()))
    with pytest.raises(ValueError, match=message):
        setattr(params, name, value)  # p.interior_threshold = 5.0 used to run, and find fewer cells
    assert getattr(params, name) == getattr(WatershedParams(), name)


def test_valid_assignment_still_works_and_round_trips():
    params = WatershedParams()
    params.min_size = 20.0  # a whole float, as JSON may give it
    params.marker_smoothing = 1
    assert params.min_size == 20 and isinstance(params.min_size, int)
    assert params.marker_smoothing == 1.0 and isinstance(params.marker_smoothing, float)
    assert WatershedParams.from_dict(params.to_dict()) == params


@pytest.fixture(scope="module")
def probabilities():
    labels = np.zeros((32, 32), np.uint16)
    labels[2:10, 2:10], labels[15:25, 15:25] = 1, 2
    return probabilities_from_instances(labels)


@pytest.mark.parametrize(
    ("scale", "offset", "found"),
    [(255.0, 0.0, r"found [\d.]+\.\.2\d\d"), (1.0, -2.0, "found -1.9"), (4.0, -2.0, r"found -1.9\d*\.\.1.9")],
)
def test_probabilities_outside_0_1_are_refused(probabilities, scale, offset, found):
    # A 0..255 map used to give 0 cells, silently.
    with pytest.raises(ValueError, match=rf"probabilities: values must lie in \[0, 1\], {found}"):
        instances_from_probabilities(probabilities * scale + offset)


def test_rounding_just_outside_0_1_is_accepted(probabilities):
    nudged = probabilities.copy()
    nudged[0, 0, 0], nudged[1, 0, 1] = 1.0 + 1e-4, -1e-4
    assert (
        instances_from_probabilities(nudged).max() == instances_from_probabilities(probabilities).max() == 2
    )
    assert instances_from_probabilities(probabilities.astype(np.float16)).max() == 2
