"""probabilities_from_instances checks its parameters by name."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.inference.synthetic import probabilities_from_instances


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blur": -1}, "blur must be >= 0, got -1"),
        ({"noise": -1}, "noise must be >= 0, got -1"),
        ({"confidence": float("nan")}, "confidence must be a finite number, got nan"),  # gave all-NaN maps
        ({"confidence": -4}, "confidence must be > 0, got -4"),
        ({"noise_scale": -1}, "noise_scale must be >= 0, got -1"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    labels = np.zeros((16, 16), np.uint16)
    labels[4:12, 4:12] = 1
    with pytest.raises(ValueError, match=message):
        probabilities_from_instances(labels, **kwargs)


def test_white_noise_is_allowed_and_sums_to_one():
    labels = np.zeros((16, 16), np.uint16)
    labels[4:12, 4:12] = 1
    p = probabilities_from_instances(labels, noise_scale=0)
    assert np.isfinite(p).all() and np.allclose(p.sum(axis=0), 1, atol=1e-5)
