"""Size normalisation: per-image factors and resampling of images and labels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.data.size import (
    MAX_TRAIN_FACTOR,
    resize_image,
    resize_labels,
    size_factor,
    size_factors,
)


def discs(diameter: int, count: int = 4, size: int = 200) -> np.ndarray:
    """``count`` separate discs of ``diameter`` pixels in a row."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.uint16)
    for k in range(count):
        cy, cx = size // 2, (k + 1) * size // (count + 1)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2] = k + 1
    return labels


def test_factor_brings_the_median_diameter_to_the_target():
    assert size_factor(discs(10), 20.0) == pytest.approx(2.0, rel=0.05)
    assert size_factor(discs(30), 15.0) == pytest.approx(0.5, rel=0.05)
    assert size_factor(discs(10, count=2), 20.0) == 1.0  # too few nuclei to measure
    assert size_factor(discs(4), 40.0) == MAX_TRAIN_FACTOR  # clipped: 10x is a labelling problem


def test_resampling_keeps_dtypes_and_labels():
    labels = discs(20)
    image = np.dstack([labels.astype(np.uint8) * 40] * 3)
    bigger, big_labels = resize_image(image, 1.5), resize_labels(labels, 1.5)
    assert bigger.shape == (300, 300, 3) and bigger.dtype == np.uint8
    assert big_labels.shape == (300, 300) and big_labels.dtype == np.uint16
    assert set(np.unique(big_labels)) == set(np.unique(labels))  # nearest: no new ids
    assert size_factor(big_labels, 20.0) == pytest.approx(1 / 1.5, rel=0.05)
    floats = resize_image(np.random.default_rng(0).random((50, 40), dtype=np.float32), 0.5)
    assert floats.shape == (25, 20) and floats.dtype == np.float32
    assert resize_image(image, 1.0) is image and resize_labels(labels, 1.0) is labels


def test_factors_of_a_dataset(tiny_dataset):
    from napari_cellseg.data.dataset import CellDataset

    dataset = CellDataset.open(tiny_dataset)
    assert set(size_factors(dataset, dataset.ids, None).values()) == {1.0}
    factors = size_factors(dataset, dataset.ids, 40.0)
    for image_id, factor in factors.items():
        measured = size_factor(dataset.load_reference_instances(image_id), 40.0)
        assert factor == measured and 0.25 <= factor <= 4.0
    assert len(set(factors.values())) > 1  # the images differ in scale


@pytest.mark.parametrize("factor", [0.5, 0.7, 1.3, 2.5])
def test_resized_labels_stay_on_the_resized_image(factor):
    # A cell's labels and its bright pixels must land on the same place after resampling.
    image = np.zeros((120, 140), np.uint8)
    labels = np.zeros((120, 140), np.uint16)
    image[40:80, 50:90], labels[40:80, 50:90] = 255, 1
    small_image, small_labels = resize_image(image, factor), resize_labels(labels, factor)
    rows, cols = np.nonzero(small_image > 127)
    label_rows, label_cols = np.nonzero(small_labels == 1)
    assert abs(rows.mean() - label_rows.mean()) < 0.15 and abs(cols.mean() - label_cols.mean()) < 0.15


def test_resize_labels_keeps_ids_beyond_int32():

    labels = np.zeros((32, 32), np.int64)
    labels[2:10, 2:10], labels[15:25, 15:25] = 1, 2**31 + 1  # was cast to int32: came back negative
    resized = resize_labels(labels, 2.0)
    assert resized.dtype == np.int64 and sorted(np.unique(resized)) == [0, 1, 2**31 + 1]
    huge = labels.astype(np.uint64) * 2**20
    assert sorted(np.unique(resize_labels(huge, 0.5))) == [0, 2**20, (2**31 + 1) * 2**20]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            np.zeros((2, 32, 32), np.uint16),
            r"2D \(H, W\) array, got shape \(2, 32, 32\)",
        ),  # was read as (H, W, C)
        (np.zeros((32, 32)), "instance labels must be integers, got dtype float64"),
        (np.full((32, 32), -1, np.int32), "instance labels must be >= 0, found -1"),
    ],
)
def test_resize_labels_refuses_stacks_floats_and_negatives(labels, message):

    with pytest.raises(ValueError, match=message):
        resize_labels(labels, 2.0)


@pytest.mark.parametrize(
    ("factor", "error", "message"),
    [
        (0.0, ValueError, "factor must be > 0, got 0"),  # gave a 1x1 image
        (-1.0, ValueError, "factor must be > 0, got -1"),
        (float("inf"), ValueError, "factor must be a finite number, got inf"),  # OverflowError
        ("2", TypeError, "factor must be a number"),
    ],
)
def test_resize_factor_must_be_finite_and_positive(factor, error, message):

    with pytest.raises(error, match=message):
        resize_image(np.zeros((32, 32), np.uint8), factor)
    with pytest.raises(error, match=message):
        resize_labels(np.zeros((32, 32), np.uint16), factor)


def test_resize_image_checks_its_shape_and_takes_lists():

    for bad in (np.zeros((0, 32), np.uint8), np.zeros(32, np.uint8)):
        with pytest.raises(ValueError, match=r"non-empty \(H, W\) or \(H, W, C\)"):
            resize_image(bad, 2.0)
    assert resize_image(np.ones((4, 4)).tolist(), 2.0).shape == (8, 8)
    with pytest.raises(ValueError, match="object_diameter must be > 0, got 0"):
        size_factor(np.zeros((8, 8), np.uint16), 0)
