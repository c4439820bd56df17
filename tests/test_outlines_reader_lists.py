"""The outlines reader takes several files at once (dropped together, or chosen in napari's reader dialog)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from napari_cellseg.inference.outlines import write_geojson, write_imagej_rois
from napari_cellseg.io import write_tiff_layer
from napari_cellseg.outlines_io import napari_get_outlines_reader, read_outlines_layers


def _labels(shape, box) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    labels[box] = 1
    return labels


@pytest.fixture
def outlines(tmp_path):
    """Two GeoJSON files, the first beside the TIFF it was drawn on (placed), the second alone."""
    first = _labels((20, 24), np.s_[2:8, 3:9])
    write_tiff_layer(tmp_path / "slide1.tif", first, "labels", {"name": "slide1", "scale": (0.5, 0.5)})
    second = _labels((16, 18), np.s_[4:10, 5:12])
    paths = [str(write_geojson(tmp_path / "slide1.geojson", first)), str(write_geojson(tmp_path / "slide2.geojson", second))]  # fmt: skip
    return paths, [first, second]


def _same_layers(got: list[tuple], paths: list[str]) -> None:
    """One layer per file, each as the file opened alone gives it (data, name, metadata, placement)."""
    assert len(got) == len(paths)
    for (data, attributes, kind), path in zip(got, paths):
        ((alone, alone_attributes, alone_kind),) = read_outlines_layers(path)
        np.testing.assert_array_equal(data, alone)
        assert attributes == alone_attributes and kind == alone_kind == "labels"
        assert attributes["metadata"]["source"] == path


def test_a_list_of_outline_files_opens_one_layer_per_file(outlines):
    paths, masks = outlines
    reader = napari_get_outlines_reader(paths)
    assert reader is not None
    layers = reader(paths)
    _same_layers(layers, paths)
    assert [a["name"] for _, a, _ in layers] == ["slide1", "slide2"]
    np.testing.assert_array_equal(layers[0][0], masks[0])  # sized and placed by the TIFF beside it
    assert layers[0][1]["scale"] == (0.5, 0.5) and layers[0][1]["metadata"]["image"].endswith("slide1.tif")
    assert layers[1][1]["metadata"]["image"] is None and int((layers[1][0] > 0).sum()) == 6 * 7


def test_a_list_is_read_only_when_every_file_is_outlines(outlines, tmp_path):
    paths, _ = outlines
    assert napari_get_outlines_reader(paths[1:]) is not None  # a list of one, as napari passes
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:  # a zip, but no ROI set
        archive.writestr("data/.zarray", "{}")
    write_imagej_rois(tmp_path / "cells_rois.zip", _labels((10, 10), np.s_[2:6, 2:6]))
    assert napari_get_outlines_reader([*paths, str(tmp_path / "slide1.tif")]) is None
    assert napari_get_outlines_reader([str(tmp_path / "cells_rois.zip"), str(tmp_path / "other.zip")]) is None
    assert napari_get_outlines_reader([]) is None
    assert napari_get_outlines_reader([str(tmp_path / "cells_rois.zip")]) is not None
    assert napari_get_outlines_reader([str(tmp_path / "cells_rois.zip"), *paths]) is not None


def test_several_files_open_through_the_manifest_and_napari(outlines, tmp_path):
    import npe2
    from napari.components import ViewerModel

    paths, _ = outlines
    npe2.PluginManager.instance().discover()
    _same_layers(npe2.read(paths, stack=True, plugin_name="napari-cellseg"), paths)
    # napari hands the list over as it is when several files are opened at once with this reader
    viewer = ViewerModel()
    added = viewer.open(paths, stack=True, plugin="napari-cellseg")
    assert [layer.name for layer in added] == ["slide1", "slide2"]
    assert [layer.source.path for layer in added] == paths
    assert added[0].scale.tolist() == [0.5, 0.5]
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("data/.zarray", "{}")
    write_imagej_rois(tmp_path / "cells_rois.zip", _labels((10, 10), np.s_[2:6, 2:6]))
    mixed = [str(tmp_path / "cells_rois.zip"), str(tmp_path / "other.zip")]
    with pytest.raises(ValueError, match="refused"):  # declined: napari may offer another reader
        npe2.read(mixed, stack=True, plugin_name="napari-cellseg")
