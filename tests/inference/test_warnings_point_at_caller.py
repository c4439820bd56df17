"""Warnings raised inside the generators point at the user's line, not at the package's driver."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tiny_models import fitted_model

from napari_cellseg.inference.predict import predict_probabilities
from napari_cellseg.inference.segment import (
    SmallImageWarning,
    UnscaledWarning,
    iter_segment_image,
    segment_image,
)


@pytest.fixture(scope="module")
def model_and_config():
    return fitted_model()


def _caught(call) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


def test_small_image_warning_points_at_the_call_of_segment_image(model_and_config):
    model, config = model_and_config
    image = np.zeros((20, 30), np.uint8)
    (caught,) = _caught(lambda: segment_image(model, config, image))
    assert caught.category is SmallImageWarning
    # was src/napari_cellseg/generators.py, the loop that drives segment_image's generator
    assert caught.filename == __file__
    (caught,) = _caught(lambda: list(iter_segment_image(model, config, image)))  # the user's own loop
    assert caught.category is SmallImageWarning and caught.filename == __file__


def test_unscaled_warnings_point_at_the_user(model_and_config):
    model, config = model_and_config
    unscaled = type(config).from_dict({**config.to_dict(), "object_diameter": None})
    image = np.zeros((64, 64), np.uint8)
    (caught,) = _caught(lambda: segment_image(model, unscaled, image, diameter=30, tile_size=64, overlap=16))
    assert caught.category is UnscaledWarning and caught.filename == __file__
    # was inference/predict.py, the generator that asked iter_scale_factor
    (caught,) = _caught(
        lambda: predict_probabilities(model, unscaled, image, diameter=30, tile_size=64, overlap=16)
    )
    assert "diameter 30.0 is ignored" in str(caught.message) and caught.filename == __file__
