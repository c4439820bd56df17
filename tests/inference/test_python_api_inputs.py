"""The Python API called as a scikit-image or Cellpose user calls it: wrong kinds of input get
a TypeError or ValueError that says what was given and what is accepted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import fitted_model

from napari_cellseg.inference.predict import predict_probabilities, segment_image


@pytest.mark.parametrize("image", ["cells.png", Path("cells.png")])
def test_a_path_instead_of_pixels_says_to_read_the_file(image):
    model, config = fitted_model()
    with pytest.raises(TypeError, match=r"got the path 'cells.png': read the file first.*read_image"):
        segment_image(model, config, image)
    with pytest.raises(TypeError, match="got the path"):
        predict_probabilities(model, config, image)


@pytest.mark.parametrize("image", [None, 5, 2.5])
def test_none_or_a_number_is_not_an_image(image):
    model, config = fitted_model()
    with pytest.raises(TypeError, match=rf"image must be an array of pixels .*got {type(image).__name__}"):
        segment_image(model, config, image)


def test_a_list_of_images_of_different_shapes_says_to_segment_each():
    model, config = fitted_model()
    images = [np.zeros((64, 80), np.uint8), np.zeros((64, 96), np.uint8)]
    with pytest.raises(ValueError, match=r"different shapes \(\(64, 80\), \(64, 96\)\): segment each image"):
        segment_image(model, config, images)


def test_a_model_folder_or_swapped_arguments_say_how_to_load_the_model():
    model, config = fitted_model()
    image = np.zeros((64, 64), np.uint8)
    with pytest.raises(
        TypeError, match=r"model must be a torch.nn.Module, got str 'runs/model'.*resolve_model"
    ):
        segment_image("runs/model", config, image)
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got ModelConfig"):
        predict_probabilities(config, model, image)
    with pytest.raises(
        TypeError, match=r"config must be the model's ModelConfig, got NoneType.*resolve_model"
    ):
        segment_image(model, None, image)


@pytest.mark.parametrize(
    "diameter, error, message",
    [
        ("20", TypeError, r"diameter must be a number, got '20'"),
        (-3, ValueError, r"diameter must be >= 0, got -3"),
        (float("nan"), ValueError, r"diameter must be a finite number"),
    ],
)
def test_a_bad_diameter_names_the_argument_and_what_it_takes(diameter, error, message):
    model, config = fitted_model()
    image = np.zeros((64, 64), np.uint8)
    with pytest.raises(error, match=message + r".*0: estimate it; None: the model's default"):
        segment_image(model, config, image, diameter=diameter)
    with pytest.raises(error, match=message):
        predict_probabilities(model, config, image, diameter=diameter)


def _two_cells() -> np.ndarray:
    probabilities = np.zeros((3, 32, 32), np.float32)
    probabilities[0] = 1
    for rows, cols in ((slice(4, 14), slice(4, 14)), (slice(18, 28), slice(18, 28))):
        probabilities[:, rows, cols] = np.array([0, 0, 1], np.float32)[:, None, None]
    return probabilities


def test_the_watershed_takes_its_settings_as_a_dict_as_segment_image_does():
    from napari_cellseg.inference.watershed import WatershedParams, instances_from_probabilities

    probabilities = _two_cells()
    from_dict = instances_from_probabilities(probabilities, {"min_size": 200})
    assert from_dict.max() == 0  # both 100 px cells are under min_size
    assert instances_from_probabilities(probabilities, WatershedParams(min_size=200)).max() == 0
    assert instances_from_probabilities(probabilities, {"min_size": 1}).max() == 2
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['min_area'\]"):
        instances_from_probabilities(probabilities, {"min_area": 1})
    with pytest.raises(
        TypeError, match=r"params must be WatershedParams, a dict of its settings or None, got str"
    ):
        instances_from_probabilities(probabilities, "fast")


@pytest.mark.parametrize("path", [3, 2.0])
def test_a_model_named_by_a_number_is_a_type_error(path):
    from napari_cellseg.inference.predict import resolve_model

    with pytest.raises(
        TypeError, match=r"the model must be given as its folder \(str or Path\), or None or 'default'"
    ):
        resolve_model(path)
