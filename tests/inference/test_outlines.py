"""Cell outlines as polygons and as GeoJSON for QuPath."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.draw import polygon2mask

from napari_cellseg.inference.outlines import (
    _signed_area,
    label_polygons,
    labels_to_geojson,
    polygon_area,
    write_geojson,
)
from napari_cellseg.sample_data import load_sample


def _rasterised(polygon, shape) -> np.ndarray:
    """The pixels whose centres fall inside ``[exterior, hole, ...]`` (corner-based x, y)."""

    def inside(ring):
        return polygon2mask(shape, ring[:, ::-1] - 0.5)  # (x, y) corners -> (row, col) centres

    mask = inside(polygon[0])
    for hole in polygon[1:]:
        mask &= ~inside(hole)
    return mask


def test_a_square_with_a_hole_runs_along_the_pixel_edges():
    labels = np.zeros((12, 12), np.int32)
    labels[2:10, 2:10] = 1
    labels[4:7, 4:7] = 2  # a cell inside another: the outer one gets a hole
    polygons = label_polygons(labels)
    (outer,) = polygons[1]
    exterior, hole = outer
    assert polygon_area(outer) == (labels == 1).sum()  # the corners' chamfers cancel
    assert exterior[:, 0].min() == 2 and exterior[:, 0].max() == 10  # pixel edges, corner-based
    assert _signed_area(exterior) > 0 > _signed_area(hole)  # RFC 7946 winding in x-y axes
    assert np.array_equal(exterior[0], exterior[-1]) and len(exterior) == 9  # 4 sides, 4 chamfers
    assert len(polygons[2]) == 1 and len(polygons[2][0]) == 1


def test_sample_outlines_give_back_the_cells():
    _, mask, _ = load_sample("c_histology_1")
    polygons = label_polygons(mask)
    assert sorted(polygons) == sorted(set(np.unique(mask)) - {0})
    for label, pieces in polygons.items():
        cell = mask == label
        back = np.zeros_like(cell)
        for polygon in pieces:
            back |= _rasterised(polygon, mask.shape)
        assert (back & cell).sum() / (back | cell).sum() > 0.9, label
        area = sum(polygon_area(p) for p in pieces)
        assert abs(area - cell.sum()) <= 0.15 * cell.sum() + 1, label


def test_geojson_is_what_qupath_imports():
    _, mask, _ = load_sample("c_histology_2")
    collection = json.loads(json.dumps(labels_to_geojson(mask, image_id="slide")))
    features = collection["features"]
    assert collection["type"] == "FeatureCollection" and len(features) == len(np.unique(mask)) - 1
    first = features[0]
    assert first["geometry"]["type"] == "Polygon"
    ring = first["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) >= 4
    props = first["properties"]
    assert props["objectType"] == "detection" and props["classification"]["name"] == "Nucleus"
    assert props["name"] == f"slide cell {props['label']}"
    assert props["measurements"]["Area px"] == (mask == props["label"]).sum()
    ys, xs = np.nonzero(mask == props["label"])
    assert props["measurements"]["Centroid X px"] == pytest.approx(xs.mean() + 0.5, abs=1e-3)
    assert props["measurements"]["Centroid Y px"] == pytest.approx(ys.mean() + 0.5, abs=1e-3)
    annotation = labels_to_geojson(mask, object_type="annotation", classification=None)
    assert "classification" not in annotation["features"][0]["properties"]
    with pytest.raises(ValueError, match="object_type"):
        labels_to_geojson(mask, object_type="cell")


def test_pieces_stacks_and_bad_input():
    labels = np.zeros((2, 8, 8), np.uint16)
    labels[0, 1:3, 1:3] = labels[0, 5:7, 5:7] = 1  # one label, two pieces
    labels[1, 2:5, 2:5] = 3
    features = labels_to_geojson(labels)["features"]
    assert [f["geometry"]["type"] for f in features] == ["MultiPolygon", "Polygon"]
    assert [f["geometry"]["plane"]["z"] for f in features] == [0, 1]
    assert labels_to_geojson(np.zeros((4, 4), np.uint8))["features"] == []
    with pytest.raises(ValueError, match=r"shape \(2, 2, 4, 4\)"):
        labels_to_geojson(np.zeros((2, 2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="integer instance labels, got dtype float32"):
        label_polygons(np.zeros((4, 4), np.float32))


def test_write_geojson_writes_one_file_atomically(tmp_path):
    _, mask, _ = load_sample("c_histology_2")
    path = write_geojson(tmp_path / "out" / "slide.geojson", mask, image_id="slide")
    assert json.loads(path.read_text())["type"] == "FeatureCollection"
    assert [p.name for p in path.parent.iterdir()] == ["slide.geojson"]  # no temporary file left


def test_huge_label_values_are_outlined_without_a_list_of_every_id():
    labels = np.zeros((6, 6), np.uint32)
    labels[1:3, 1:3] = 4_000_000_000
    labels[4:6, 4:6] = 7
    features = labels_to_geojson(labels)["features"]
    assert [f["properties"]["label"] for f in features] == [7, 4_000_000_000]
    assert [f["properties"]["measurements"]["Area px"] for f in features] == [4.0, 4.0]
    with pytest.raises(ValueError, match="must be >= 0, found -2"):
        label_polygons(np.full((3, 3), -2, np.int16))


def test_overlay_draws_each_outline_on_an_8_bit_picture_of_any_image():
    from napari_cellseg.inference.outlines import DEFAULT_COLOR, outline_overlay

    image, mask, _ = load_sample("c_histology_2")
    overlay = outline_overlay(image, mask)
    drawn = (overlay == DEFAULT_COLOR).all(axis=-1)
    assert overlay.dtype == np.uint8 and overlay.shape == (*mask.shape, 3)
    assert drawn.any() and not drawn[mask == 0].any()  # the cells' own edge pixels only
    np.testing.assert_array_equal(overlay[~drawn], image[~drawn])  # 8-bit RGB kept as it is
    grey16 = (image.mean(-1) * 200).astype(np.uint16)
    stretched = outline_overlay(grey16, mask)
    assert stretched[..., 0].max() == 255 and (stretched[..., 0] == stretched[..., 1])[~drawn].all()
    with pytest.raises(ValueError, match="overlay needs"):
        outline_overlay(image[:10], mask)


def test_overlay_never_draws_on_the_callers_image():
    from napari_cellseg.inference.outlines import outline_overlay

    labels = np.zeros((16, 16), np.uint16)
    labels[4:12, 4:12] = 1
    image = np.full((16, 16, 3), 100, np.uint8)
    overlay = outline_overlay(image, labels)
    assert (image == 100).all() and not np.shares_memory(overlay, image)
    image.flags.writeable = False  # a read-only image used to fail: "assignment destination is read-only"
    np.testing.assert_array_equal(outline_overlay(image, labels), overlay)


@pytest.mark.parametrize(
    ("labels_dtype", "color", "message"),
    [
        (np.float16, (255, 0, 0), "labels must be integer instance labels, got dtype float16"),
        (object, (255, 0, 0), "labels must be integer instance labels, got dtype object"),
        (np.uint16, (300, 0, 0), r"color values must be in \[0, 255\], got \(300, 0, 0\)"),
        (np.uint16, (255, 0), r"color must be 3 values"),
    ],
)
def test_overlay_refuses_float_labels_and_bad_colours(labels_dtype, color, message):
    from napari_cellseg.inference.outlines import outline_overlay

    labels = np.zeros((16, 16), labels_dtype)
    with pytest.raises(ValueError, match=message):
        outline_overlay(np.zeros((16, 16), np.uint8), labels, color)
