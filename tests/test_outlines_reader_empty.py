"""The outlines reader: files of no cell reopen as empty labels, and outlines it leaves out are said."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_cellseg.io import write_tiff_layer
from napari_cellseg.napari_io import write_labels_geojson, write_labels_imagej_rois


def _read(path):
    import npe2

    npe2.PluginManager.instance().discover()
    return npe2.read([str(path)], stack=False, plugin_name="napari-cellseg")


def _warnings_since(before: int) -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    new = notification_manager.records[before:]
    return [str(n.message) for n in new if n.severity == NotificationSeverity.WARNING]


def _n_records() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


@pytest.mark.parametrize("suffix", [".geojson", ".zip"])
def test_a_labels_layer_of_no_cell_saved_as_outlines_reopens(tmp_path, suffix):
    """What Save results writes for an image without cells: sized by the labels TIFF beside it."""
    empty = np.zeros((50, 60), np.uint16)
    attributes = {"name": "slide9", "scale": (0.5, 0.5)}
    write_tiff_layer(tmp_path / "slide9.tif", empty, "labels", attributes)
    writer = write_labels_geojson if suffix == ".geojson" else write_labels_imagej_rois
    (written,) = writer(str(tmp_path / f"slide9{suffix}"), empty, attributes)
    before = _n_records()
    ((data, placed, kind),) = _read(written)
    assert kind == "labels" and data.shape == (50, 60) and not data.any()
    assert placed["scale"] == (0.5, 0.5) and placed["metadata"]["notes"] == ["no outline: no cell"]
    assert _warnings_since(before) == []  # no cell was the file's own answer, not a loss


def test_an_empty_stacks_outlines_reopen_as_its_stack(tmp_path):
    from napari_cellseg.outlines_io import read_outlines_layers

    stack = np.zeros((3, 12, 14), np.uint16)
    write_tiff_layer(tmp_path / "stack.tif", stack, "labels", {"name": "stack"})
    write_labels_imagej_rois(str(tmp_path / "stack_rois.zip"), stack, {})
    ((data, _, _),) = read_outlines_layers(str(tmp_path / "stack_rois.zip"))
    assert data.shape == (3, 12, 14) and not data.any()


def test_without_an_image_beside_it_an_empty_file_says_its_size_is_unknown(tmp_path):
    from napari_cellseg.data.outlines_import import OutlinesError
    from napari_cellseg.inference.outlines import write_geojson
    from napari_cellseg.outlines_io import read_outlines_layers

    # segment's file (napari's writer records the layer's size, see test_napari_writers.py)
    written = write_geojson(tmp_path / "lone.geojson", np.zeros((8, 8), np.uint16))
    with pytest.raises(OutlinesError, match=r"lone\.geojson: holds no cell outline, and no readable image"):
        read_outlines_layers(written)


def test_outlines_that_fall_outside_the_image_are_warned_of(tmp_path):
    import imageio.v3 as iio

    from napari_cellseg.outlines_io import read_outlines_layers

    iio.imwrite(tmp_path / "slide7.png", np.zeros((40, 50), np.uint8))
    ring = [[5000, 5000], [5012, 5000], [5012, 5012], [5000, 5012], [5000, 5000]]
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {}}
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [3, 3]}, "properties": {}}
    path = tmp_path / "slide7.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature, point]}))
    before = _n_records()
    ((data, attributes, _),) = read_outlines_layers(str(path))
    assert data.shape == (40, 50) and not data.any()
    (warning,) = _warnings_since(before)
    assert warning.startswith("slide7.geojson: no cell drawn: feature 2: Point skipped")
    assert "1 outline(s) hold no pixel centre of the image" in warning
    assert len(attributes["metadata"]["notes"]) == 2


def test_a_file_written_by_the_plugin_opens_without_a_warning(tmp_path):
    from napari_cellseg.outlines_io import read_outlines_layers

    labels = np.zeros((20, 20), np.uint16)
    labels[2:6, 3:8], labels[10:15, 10:16] = 4, 9
    write_tiff_layer(tmp_path / "cells.tif", labels, "labels")
    (written,) = write_labels_imagej_rois(str(tmp_path / "cells_rois.zip"), labels, {})
    before = _n_records()
    ((data, _, _),) = read_outlines_layers(written)
    np.testing.assert_array_equal(data, labels)
    assert _warnings_since(before) == []
