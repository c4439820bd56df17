"""Outlines as QuPath and Fiji draw them: the pixel-centre rule, composites, QuPath's objects."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from napari_cellseg.data.outline_fill import polygon_mask
from napari_cellseg.data.outlines_import import OutlinesError, read_outlines

roifile = pytest.importorskip("roifile")


def _filled(rings, shape):
    box, inside = polygon_mask([np.asarray(r, float) for r in rings], shape)
    out = np.zeros(shape, bool)
    if box is not None and inside is not None:
        out[box] = inside
    return out


def test_pixel_centres_on_an_edge_go_to_one_side_only():
    # A square from (0.5, 0.5) to (3.5, 3.5): centres on its left and top edges are in, right and bottom out.
    square = _filled([[(0.5, 0.5), (3.5, 0.5), (3.5, 3.5), (0.5, 3.5)]], (6, 6))
    assert square.sum() == 9 and square[0:3, 0:3].all()
    # Two triangles sharing the diagonal of a 10 x 10 square take its pixels once between them.
    upper = _filled([[(0, 0), (10, 0), (0, 10)]], (10, 10))
    lower = _filled([[(10, 0), (10, 10), (0, 10)]], (10, 10))
    assert not (upper & lower).any() and (upper | lower).all() and upper.sum() == 45


def test_a_fiji_composite_keeps_its_hole_and_curves_are_named(tmp_path):
    outer, hole = [(2, 2), (18, 2), (18, 18), (2, 18)], [(7, 7), (7, 13), (13, 13), (13, 7)]
    path = []
    for ring in (outer, hole):  # a ShapeRoi path: MOVETO, LINETO..., CLOSE
        path += [0, *ring[0]] + [v for p in ring[1:] for v in (1, *p)] + [4]
    roi = roifile.ImagejRoi(roitype=roifile.ROI_TYPE.RECT, left=2, top=2, right=18, bottom=18, name="donut")
    roi.multi_coordinates, roi.shape_roi_size = np.array(path, np.float32), len(path)
    roi.tofile(tmp_path / "donut.roi")
    labels = read_outlines(tmp_path / "donut.roi", (20, 20)).labels
    assert labels[10, 10] == 0 and labels[4, 4] == 1 and np.count_nonzero(labels) == 16 * 16 - 6 * 6
    roi.multi_coordinates = np.array([0, 2, 2, 3, 5, 5, 8, 8, 9, 9, 4], np.float32)  # a cubic curve (oval)
    roi.shape_roi_size = 11
    roi.tofile(tmp_path / "curve.roi")
    with pytest.raises(OutlinesError, match=r"curve\.roi: holds no polygon outline.*Interpolate"):
        read_outlines(tmp_path / "curve.roi", (20, 20))


def test_ovals_rounded_rectangles_and_what_is_not_a_cell(tmp_path):
    rois = [
        roifile.ImagejRoi(roitype=roifile.ROI_TYPE.OVAL, left=10, top=5, right=160, bottom=115, name="oval"),
        roifile.ImagejRoi(
            roitype=roifile.ROI_TYPE.RECT,
            left=0,
            top=120,
            right=40,
            bottom=150,
            name="rounded",
            rounded_rect_arc_size=20,
        ),
        roifile.ImagejRoi.frompoints([[1, 1], [5, 5]], name="two points"),
        roifile.ImagejRoi(
            roitype=roifile.ROI_TYPE.RECT,
            subtype=roifile.ROI_SUBTYPE.TEXT,
            left=50,
            top=130,
            right=60,
            bottom=140,
            name="label text",
        ),
        roifile.ImagejRoi.frompoints([[60, 130], [70, 130], [70, 140]], name="cell 2"),
        roifile.ImagejRoi.frompoints([[80, 130], [90, 130], [90, 140]], name="cell 2"),  # hand-named twice
    ]
    with zipfile.ZipFile(tmp_path / "RoiSet.zip", "w") as archive:  # Fiji names repeats "cell 2-1.roi"
        for number, roi in enumerate(rois):
            archive.writestr(f"{roi.name}-{number}.roi", roi.tobytes())
        archive.writestr("__MACOSX/._oval.roi", b"\x00\x05\x16\x07junk")  # what re-zipping on a Mac adds
        archive.writestr("README.txt", "my rois")
    imported = read_outlines(tmp_path / "RoiSet.zip", (160, 170))
    yy, xx = np.mgrid[0:160, 0:170] + 0.5
    ellipse = ((xx - 85) / 75) ** 2 + ((yy - 60) / 55) ** 2 < 1  # ImageJ fills the ellipse's pixel centres
    oval = imported.labels == imported.labels[60, 85]
    assert (oval == ellipse).all()
    rounded = imported.labels == imported.labels[135, 20]
    assert 1100 < rounded.sum() < 1200 and not rounded[120, 0]  # its corners are cut
    assert len(np.unique(imported.labels)) - 1 == 4  # oval, rounded, and both "cell 2"
    notes = " | ".join(imported.notes)
    for said in ("two points): skipped, fewer than 3 points", "label text): text skipped",
                 "name repeats another ROI's", "README.txt: not a .roi entry"):  # fmt: skip
        assert said in notes


def test_qupath_regions_are_not_cells_and_cells_give_their_nuclei(tmp_path):
    def feature(kind, ring, **more):
        return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"objectType": kind}, **more}  # fmt: skip

    def square(x, y, size):
        return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]

    features = [
        feature("annotation", square(0, 0, 100)),  # the region the doctor drew
        feature("cell", square(10, 10, 24), nucleusGeometry={"type": "Polygon", "coordinates": [square(17, 17, 10)]}),
        feature("detection", square(50, 50, 10)),
    ]  # fmt: skip
    (tmp_path / "slide.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    imported = read_outlines(tmp_path / "slide.geojson", (100, 100))
    assert imported.labels[80, 80] == 0 and np.count_nonzero(imported.labels) == 200  # two 10 x 10 nuclei
    assert any("annotation(s) skipped" in n for n in imported.notes)
    assert any("nucleus outlines used" in n for n in imported.notes)
    features[2]["geometry"] = {"type": "Polygon"}  # no coordinates
    (tmp_path / "bad.geojson").write_text(json.dumps(features))
    with pytest.raises(OutlinesError, match=r"bad\.geojson: feature 3: malformed Polygon"):
        read_outlines(tmp_path / "bad.geojson", (100, 100))
