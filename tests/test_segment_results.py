"""Saving the Segment panel's result: labels, measurements and QuPath outlines, never overwriting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_cellseg.app.segment_results import free_stem, save_segmentation
from napari_cellseg.inference.measure import read_measurements
from napari_cellseg.io import read_tiff_layer
from napari_cellseg.sample_data import load_sample


def test_three_files_that_agree_and_a_second_save_keeps_the_first(tmp_path):
    image, mask, _ = load_sample("c_histology_2")
    attributes = {"scale": (0.5, 0.5), "translate": (3, 4), "metadata": {"model": "bundled"}}
    saved = save_segmentation(tmp_path / "results", "slide 7", mask, image, attributes)
    assert [p.name for p in saved.paths] == ["slide 7.tif", "slide 7.csv", "slide 7.geojson"]
    labels, stored, kind = read_tiff_layer(saved.labels)
    assert kind == "labels" and np.array_equal(labels, mask)
    assert list(stored["scale"]) == [0.5, 0.5] and stored["metadata"]["model"] == "bundled"
    rows = read_measurements(saved.measurements)
    assert saved.n_cells == len(rows) == mask.max()
    assert {"mean_intensity_0", "mean_intensity_1", "mean_intensity_2"} <= set(rows[0])
    assert len(json.loads(saved.outlines.read_text())["features"]) == mask.max()

    corrected = mask.copy()
    corrected[corrected == 1] = 0
    again = save_segmentation(tmp_path / "results", "slide 7", corrected)  # no image: geometry only
    assert again.labels.name == "slide 7-2.tif" and np.array_equal(read_tiff_layer(saved.labels)[0], mask)
    assert "mean_intensity" not in read_measurements(again.measurements)[0]
    assert free_stem(tmp_path / "results", "slide 7") == "slide 7-3"


def test_an_image_of_another_size_gives_geometry_only_and_bad_cells_are_refused(tmp_path):
    image, mask, _ = load_sample("c_histology_2")
    saved = save_segmentation(tmp_path, "x", mask, image[::2, ::2])
    assert list(read_measurements(saved.measurements)[0]) == [
        "image_id",
        "label",
        "area",
        "centroid_y",
        "centroid_x",
    ]
    stack = save_segmentation(tmp_path, "z", np.stack([mask, mask]))
    assert "centroid_z" in read_measurements(stack.measurements)[0] and stack.n_cells == mask.max()
    with pytest.raises(
        ValueError, match=r"integer label image \(H, W\) or \(Z, H, W\), got shape \(4, 4\) float32"
    ):
        save_segmentation(tmp_path, "y", np.zeros((4, 4), np.float32))
