"""Fiji ROI sets written by the plugin: cells around other cells keep their holes.

The second test rasterises the written ROIs with ImageJ itself (``ij.jar``, e.g. Debian's
``imagej`` package, and a JDK): every pixel must come back with its cell's label.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from napari_cellseg.data.outlines_import import read_outlines
from napari_cellseg.inference.outlines import labels_to_imagej_rois, write_imagej_rois
from napari_cellseg.sample_data import load_sample

IJ_JARS = [Path("/usr/share/java/ij.jar"), Path("/usr/share/imagej/ij.jar")]


def _nested_cells() -> np.ndarray:
    labels = np.zeros((40, 50), np.uint16)
    labels[5:30, 5:35] = 5
    labels[12:20, 14:24] = 6  # inside cell 5: a hole in it
    labels[22:26, 8:11] = 0  # an empty hole too
    labels[2:8, 40:47] = 7
    labels[33:38, 10:12] = 8
    labels[33:38, 30:33] = 8  # two pieces
    return labels


def _speckled_cells(seed: int) -> np.ndarray:
    from skimage.segmentation import expand_labels

    rng = np.random.default_rng(seed)
    seeds = np.zeros((120, 140), np.int32)
    points = rng.integers(0, [120, 140], size=(40, 2))
    seeds[points[:, 0], points[:, 1]] = np.arange(1, 41)
    labels = expand_labels(seeds, 9)
    labels[rng.random(labels.shape) < 0.03] = 0  # one-pixel holes everywhere
    return labels.astype(np.uint16)


def test_a_cell_with_holes_is_a_composite_roi_and_reads_back_exactly(tmp_path):
    labels = _nested_cells()
    rois = {roi.name: roi for roi in labels_to_imagej_rois(labels)}
    assert rois["cell 5"].composite and not rois["cell 6"].composite
    assert {"cell 8 piece 1", "cell 8 piece 2"} <= set(rois)
    path = write_imagej_rois(tmp_path / "nested.zip", labels)
    np.testing.assert_array_equal(read_outlines(path, labels.shape).labels, labels)
    speckled = _speckled_cells(0)
    path = write_imagej_rois(tmp_path / "speckled.zip", speckled)
    np.testing.assert_array_equal(read_outlines(path, speckled.shape).labels, speckled)


def _imagej() -> tuple[str, Path]:
    jar = next((jar for jar in IJ_JARS if jar.is_file()), None)
    java, javac = shutil.which("java"), shutil.which("javac")
    if jar is None or java is None or javac is None:
        pytest.skip(
            "needs ImageJ (ij.jar, Debian's 'imagej' package) and a JDK to check ROIs in ImageJ itself"
        )
    return java, jar


@pytest.mark.parametrize("case", ["nested", "speckled", "sample"])
def test_imagej_fills_the_written_rois_to_the_same_labels(tmp_path, case):
    java, jar = _imagej()
    source = Path(__file__).parent / "imagej" / "RoiRaster.java"
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", str(jar), str(source)], check=True, timeout=120)
    labels = {
        "nested": _nested_cells,
        "speckled": lambda: _speckled_cells(1),
        "sample": lambda: load_sample("c_histology_2")[1].astype(np.uint16),
    }[case]()
    path = write_imagej_rois(tmp_path / f"{case}.zip", labels)
    raster = tmp_path / f"{case}.raw"
    height, width = labels.shape
    command = [java, "-Djava.awt.headless=true", "-cp", f"{jar}:{tmp_path}", "RoiRaster",
               str(path), str(width), str(height), str(raster)]  # fmt: skip
    listing = subprocess.run(command, check=True, timeout=120, capture_output=True, text=True).stdout
    filled = np.fromfile(raster, "<u2").reshape(labels.shape)
    assert np.count_nonzero(filled != labels) == 0, listing
    if case == "nested":
        assert "cell 5\tComposite\t" in listing
