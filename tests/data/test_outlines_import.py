"""Cell outlines from GeoJSON (QuPath's export, or the plugin's own) as instance labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_cellseg.data.outlines_import import OutlinesError, read_outlines
from napari_cellseg.inference.outlines import labels_to_geojson, write_geojson
from napari_cellseg.sample_data import list_samples, load_sample


@pytest.mark.parametrize("key", sorted(list_samples()))
def test_the_plugins_own_outlines_read_back_to_the_same_labels(tmp_path, key):
    _, mask, _ = load_sample(key)
    path = write_geojson(tmp_path / "cells.geojson", mask)
    imported = read_outlines(path, mask.shape)
    np.testing.assert_array_equal(imported.labels, mask)
    assert imported.notes == ()


def test_holes_pieces_and_diagonal_pixels_survive_the_round_trip(tmp_path):
    labels = np.zeros((12, 12), np.uint16)
    labels[2:10, 2:10] = 1
    labels[4:7, 4:7] = 2  # inside a hole of cell 1
    labels[0, 0] = 3
    labels[0, 5] = labels[0, 7] = 5  # one label, two pieces
    labels[5, 11] = labels[6, 10] = 6  # touching at a corner only
    labels[11, 3:6] = 7  # on the last row: the labels just hold it
    imported = read_outlines(write_geojson(tmp_path / "x.geojson", labels))
    np.testing.assert_array_equal(imported.labels, labels)  # sized to the outlines: 12 x 12
    assert imported.notes == ("no image given: labels sized 12 x 12 to hold every outline",)


def _qupath_style(tmp_path, features) -> str:
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps(features))  # QuPath can export a bare list of features
    return path


def test_a_qupath_export_numbers_cells_in_file_order_and_skips_points(tmp_path):
    square = {"type": "Polygon", "coordinates": [[[1, 1], [4, 1], [4, 3], [1, 3], [1, 1]]]}
    shifted = {"type": "Polygon", "coordinates": [[[3, 2], [6, 2], [6, 5], [3, 5], [3, 2]]]}
    point = {"type": "Point", "coordinates": [7, 7]}
    features = [
        {"type": "Feature", "geometry": g, "properties": {"objectType": "annotation"}}
        for g in (square, point, shifted)
    ]
    imported = read_outlines(_qupath_style(tmp_path, features), shape=(8, 8))
    expected = np.zeros((8, 8), np.uint16)
    expected[1:3, 1:4] = 1
    expected[2:5, 3:6] = 2  # the later outline keeps the pixel they share
    np.testing.assert_array_equal(imported.labels, expected)
    assert imported.notes == (
        "feature 2: Point skipped (only polygons are cells)",
        "outlines overlap on 1 pixel(s): the later feature kept them",
    )
    outside = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[20, 20], [24, 20], [24, 24], [20, 20]]]},
        }
    ]
    notes = read_outlines(_qupath_style(tmp_path, features + outside), (8, 8)).notes
    assert any(note.startswith("1 outline(s) hold no pixel centre of the image") for note in notes)


def test_bad_files_are_named_with_the_reason(tmp_path):
    missing = tmp_path / "missing.geojson"
    with pytest.raises(OutlinesError, match=r"missing\.geojson: no such file"):
        read_outlines(missing)
    broken = tmp_path / "broken.geojson"
    broken.write_text("{not json")
    with pytest.raises(OutlinesError, match=r"broken\.geojson: not valid JSON"):
        read_outlines(broken)
    other = tmp_path / "other.geojson"
    other.write_text(json.dumps({"type": "Topology"}))
    with pytest.raises(OutlinesError, match="not GeoJSON features"):
        read_outlines(other)
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]}}))
    with pytest.raises(OutlinesError, match=r"points\.geojson: holds no polygon outline"):
        read_outlines(points)
    slide = tmp_path / "slide.geojson"
    far = [[[80000, 60000], [80010, 60000], [80010, 60010], [80000, 60000]]]
    slide.write_text(json.dumps([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": far}}]))
    with pytest.raises(OutlinesError, match=r"slide\.geojson: the outlines reach x 80010, y 60010"):
        read_outlines(slide)
    malformed = tmp_path / "malformed.geojson"
    malformed.write_text(
        json.dumps([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[1, 2]]}}])
    )
    with pytest.raises(OutlinesError, match="feature 1: malformed Polygon coordinates"):
        read_outlines(malformed)


def test_own_label_values_are_kept_only_when_distinct(tmp_path):
    _, mask, _ = load_sample("c_histology_2")
    collection = labels_to_geojson(mask)
    for feature in collection["features"]:
        feature["properties"]["label"] = 7  # every feature says 7: numbered in file order instead
    path = tmp_path / "same.geojson"
    path.write_text(json.dumps(collection))
    assert read_outlines(path, mask.shape).labels.max() == mask.max()


@pytest.mark.parametrize("key", ["c_histology_1", "b_brightfield"])
def test_fiji_roi_sets_written_by_the_plugin_read_back_to_the_same_labels(tmp_path, key):
    from napari_cellseg.inference.outlines import write_imagej_rois

    _, mask, _ = load_sample(key)
    path = write_imagej_rois(tmp_path / f"{key}_rois.zip", mask)
    imported = read_outlines(path, mask.shape)
    np.testing.assert_array_equal(imported.labels, mask)  # no cell of the samples has a hole


def test_a_fiji_roi_set_of_rectangles_ovals_and_a_line(tmp_path):
    from roifile import ROI_TYPE, ImagejRoi, roiwrite

    rois = [
        ImagejRoi(roitype=ROI_TYPE.RECT, left=1, top=1, right=4, bottom=3, name="a"),
        ImagejRoi(roitype=ROI_TYPE.OVAL, left=5, top=2, right=9, bottom=8, name="b"),
        ImagejRoi(roitype=ROI_TYPE.LINE, x1=0, y1=0, x2=5, y2=5, name="c"),
    ]
    roiwrite(tmp_path / "RoiSet.zip", rois, mode="w")
    imported = read_outlines(tmp_path / "RoiSet.zip", (10, 10))
    expected_rect = np.zeros((10, 10), bool)
    expected_rect[1:3, 1:4] = True
    np.testing.assert_array_equal(imported.labels == 1, expected_rect)
    oval = imported.labels == 2
    assert 16 <= oval.sum() <= 24 and oval[5, 7] and not oval[2, 5]  # a 4 x 6 ellipse, its corner out
    assert imported.notes == ("ROI 3 (c): line skipped (only areas are cells)",)
    (tmp_path / "junk.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    with pytest.raises(OutlinesError, match=r"junk\.zip: holds no polygon outline"):
        read_outlines(tmp_path / "junk.zip")
    (tmp_path / "bad.roi").write_bytes(b"not a roi")
    with pytest.raises(OutlinesError, match=r"bad\.roi: not an ImageJ ROI file"):
        read_outlines(tmp_path / "bad.roi")


def test_stacks_read_back_plane_by_plane_in_both_formats(tmp_path):
    from napari_cellseg.inference.outlines import write_imagej_rois

    _, mask, _ = load_sample("c_histology_2")
    stack = np.stack([mask, np.where(mask % 2 == 1, mask, 0)]).astype(np.uint16)  # cells on both planes
    for path in (
        write_geojson(tmp_path / "s.geojson", stack),
        write_imagej_rois(tmp_path / "s_rois.zip", stack),
    ):
        imported = read_outlines(path, mask.shape)
        assert imported.labels.shape == stack.shape, path.name
        np.testing.assert_array_equal(imported.labels, stack)


def _one_square_on_plane(path, z):
    square = [[[0, 0], [5, 0], [5, 5], [0, 5], [0, 0]]]
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square, "plane": {"z": z}}}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


@pytest.mark.parametrize(
    ("z", "message"),
    [
        # A negative plane was put on plane 0 of a 2-D result.
        (-3, "feature 1: plane z must be a whole number >= 0, got -3"),
        (1.5, "feature 1: plane z must be a whole number >= 0, got 1.5"),
        # A huge plane allocated a (z + 1, H, W) stack (MemoryError at 1e7).
        (100_000, r"plane 100001: .*give the image's \(Z, H, W\) shape"),
        (10**7, "plane 10000001"),
    ],
)
def test_a_bad_or_far_plane_index_is_refused(tmp_path, z, message):
    path = _one_square_on_plane(tmp_path / "cells.geojson", z)
    with pytest.raises(OutlinesError, match=message):
        read_outlines(path, (32, 32))


def test_a_plane_index_is_checked_against_the_given_stack(tmp_path):
    path = _one_square_on_plane(tmp_path / "cells.geojson", 4)
    with pytest.raises(OutlinesError, match=r"plane 5; the image has 3 plane\(s\)"):
        read_outlines(path, (3, 32, 32))
    assert read_outlines(path, (5, 32, 32)).labels[4].max() == 1
    with pytest.raises(ValueError, match="shape must be >= 1, got 0"):
        read_outlines(path, (0, 32))


def test_an_empty_file_is_no_cells_where_asked_and_sized(tmp_path):
    # what segment --geojson --imagej-rois writes for an image without cells
    from napari_cellseg.inference.outlines import write_geojson, write_imagej_rois

    empty = np.zeros((6, 9), np.uint16)
    write_geojson(tmp_path / "e.geojson", empty)
    write_imagej_rois(tmp_path / "e_rois.zip", empty)
    for name in ("e.geojson", "e_rois.zip"):
        labels = read_outlines(tmp_path / name, (2, 6, 9), empty_ok=True).labels
        assert labels.shape == (2, 6, 9) and not labels.any()
        for shape, empty_ok in (((6, 9), False), (None, True)):  # importing, or nothing to size it by
            with pytest.raises(OutlinesError, match="holds no polygon outline"):
                read_outlines(tmp_path / name, shape, empty_ok=empty_ok)
    points = tmp_path / "points.geojson"  # something, but no cell: still refused
    points.write_text(json.dumps({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]}}))
    with pytest.raises(OutlinesError, match="Point skipped"):
        read_outlines(points, (6, 9), empty_ok=True)
