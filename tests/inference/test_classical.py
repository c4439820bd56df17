"""The classical baseline on the package samples."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.inference.classical import classical_segmentation
from napari_cellseg.metrics import image_metrics
from napari_cellseg.sample_data import load_sample


def test_fluorescence_sample_is_found():
    image, gt, _ = load_sample("a_fluorescence_1")
    labels = classical_segmentation(image)
    assert labels.dtype == np.uint16 and labels.shape == gt.shape
    assert image_metrics(gt, labels).at("ap", 0.5) > 0.8


def test_polarity_is_detected():
    image, gt, _ = load_sample("a_fluorescence_1")
    inverted = 255 - image  # dark nuclei on a bright background, as in histology
    bright = image_metrics(gt, classical_segmentation(image)).at("ap", 0.5)
    dark = image_metrics(gt, classical_segmentation(inverted)).at("ap", 0.5)
    assert dark == pytest.approx(bright, abs=0.1)
    forced_wrong = classical_segmentation(image, bright_foreground=False)
    assert image_metrics(gt, forced_wrong).at("ap", 0.5) < 0.5


def test_rgb_histology_runs():
    image, gt, _ = load_sample("c_histology_1")
    labels = classical_segmentation(image)
    assert labels.shape == gt.shape and labels.max() > 20


def test_flat_image_and_bad_shape():
    assert classical_segmentation(np.full((16, 16), 7, np.uint8)).max() == 0
    with pytest.raises(ValueError, match=r"\(4, 16, 16\)"):
        classical_segmentation(np.zeros((4, 16, 16), np.uint8))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_pixel_is_handled_like_the_network_path(bad):
    image = load_sample("a_fluorescence_1")[0].astype(np.float32)
    expected = classical_segmentation(image)
    image[5, 5] = bad  # was numpy's "autodetected range of [nan, nan] is not finite"
    labels = classical_segmentation(image)
    assert abs(int(labels.max()) - int(expected.max())) <= 1
    assert classical_segmentation(np.full((16, 16), np.nan, np.float32)).max() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"smoothing": -1}, "smoothing must be >= 0, got -1"),
        ({"smoothing": float("nan")}, "smoothing must be a finite number"),
        ({"min_distance": 0}, "min_distance must be >= 1, got 0"),
        ({"min_size": -5}, "min_size must be >= 0, got -5"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        classical_segmentation(np.zeros((16, 16), np.uint8), **kwargs)
