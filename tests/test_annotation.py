"""Qt-free logic of the Annotate widget: conversions, touching boundaries, saving."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.app.annotation import (
    annotation_from_instances,
    annotation_name,
    check_annotation,
    image_for_dataset,
    instances_from_annotation,
    is_annotation,
    is_listed,
    save_annotation,
    saved_labels,
    suggest_image_id,
    touching_boundary_pixels,
)
from napari_cellseg.classes import BOUNDARY, INTERIOR
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.targets import check_label_image, instances_to_targets
from napari_cellseg.sample_data import load_sample


def _two_touching_cells() -> np.ndarray:
    cells = np.zeros((12, 30), np.uint16)
    cells[2:10, 2:15], cells[2:10, 15:25] = 1, 2
    return cells


def test_round_trip_on_sample_mask():
    _, mask, _ = load_sample("c_histology_1")
    annotation, report = annotation_from_instances(mask)
    np.testing.assert_array_equal(annotation, instances_to_targets(mask))
    assert report.n_instances == 97
    cells = instances_from_annotation(annotation)
    assert cells.max() == report.n_pieces
    # every sample cell comes back (single-piece cells: exactly)
    overlap = np.mean((cells > 0) == (mask > 0))
    assert overlap > 0.999


def test_boundary_only_blobs_are_kept_as_cells():
    annotation = np.zeros((8, 8), np.uint8)
    annotation[1:3, 1:3] = BOUNDARY  # painted with the boundary brush only
    annotation[4:8, 4:8] = BOUNDARY
    annotation[5:7, 5:7] = INTERIOR
    cells = instances_from_annotation(annotation)
    assert cells.max() == 2 and cells[1, 1] > 0 and cells[5, 5] > 0 and cells[1, 1] != cells[5, 5]


def test_checks_quote_shapes_dtypes_and_values():
    with pytest.raises(ValueError, match=r"dtype float32 \(shape \(4, 4\)\)"):
        check_label_image(np.zeros((4, 4), np.float32), "cells")
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4\)"):
        check_label_image(np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="found values up to 7: is this an instance layer"):
        check_annotation(np.full((4, 4), 7, np.uint16))
    with pytest.raises(ValueError, match=">= 0, found -1"):
        check_label_image(np.full((3, 3), -1, np.int32))


def test_touching_pixels_from_a_cells_layer():
    cells = _two_touching_cells()
    annotation = np.where(cells > 0, INTERIOR, 0).astype(np.uint8)  # interiors painted as one blob
    (rows, cols), n_pairs = touching_boundary_pixels(annotation, cells)
    assert n_pairs == 1
    assert set(zip(rows.tolist(), cols.tolist())) == {(y, x) for y in range(2, 10) for x in (14, 15)}
    annotation[rows, cols] = BOUNDARY
    assert touching_boundary_pixels(annotation, cells)[0][0].size == 0  # idempotent


def test_touching_pixels_from_the_annotation_alone():
    annotation = np.zeros((12, 30), np.uint8)
    annotation[2:10, 2:25] = INTERIOR
    annotation[2:10, 15] = BOUNDARY  # one painted line between two cells
    (rows, cols), n_pairs = touching_boundary_pixels(annotation)
    assert n_pairs == 1
    annotation[rows, cols] = BOUNDARY
    # the second rim: two boundary pixels per row between the interiors, as computed targets have
    assert all(np.count_nonzero(annotation[y, 13:18] == BOUNDARY) == 2 for y in range(2, 10))
    assert instances_from_annotation(annotation).max() == 2


def test_touching_refuses_mismatched_layers():
    with pytest.raises(ValueError, match=r"shape \(12, 30\).*\(12, 31\)"):
        touching_boundary_pixels(np.zeros((12, 31), np.uint8), _two_touching_cells())


def test_names_and_ids():
    assert annotation_name("scan") == "scan boundary annotation"
    assert is_annotation("scan boundary annotation") and not is_annotation("scan cells")
    assert is_annotation("anything", {"cellseg_kind": "annotation"})
    assert not is_annotation("x boundary annotation", {"cellseg_kind": "cells"})
    assert suggest_image_id("[C] histology color (97 nuclei)") == "C_histology_color_97_nuclei"
    assert suggest_image_id("whatever", {"id": "abc123"}) == "abc123"


def test_image_for_dataset():
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 0] = 9
    assert image_for_dataset(rgba).shape == (5, 6, 3)
    grey_rgb = np.repeat(np.arange(30, dtype=np.uint8).reshape(5, 6, 1), 3, axis=2)
    assert image_for_dataset(grey_rgb).shape == (5, 6)
    with pytest.raises(ValueError, match="dtype float64"):
        image_for_dataset(np.zeros((5, 6)), "scan")
    with pytest.raises(ValueError, match=r"shape \(2, 5, 6\)"):
        image_for_dataset(np.zeros((2, 5, 6), np.uint8))


def test_save_annotation_refuses_then_overwrites(tmp_path):
    image, mask, _ = load_sample("a_fluorescence_3")
    root = tmp_path / "ds"
    with pytest.raises(ValueError, match="tag the image with its microscope"):
        save_annotation(root, "x", image, mask, None, annotation=False)
    with pytest.raises(ValueError, match="labels are empty"):
        save_annotation(root, "x", image, np.zeros_like(mask), "A", annotation=False)
    with pytest.raises(ValueError, match=r"\(10, 10\).*\(256, 256\)"):
        save_annotation(root, "x", image, np.ones((10, 10), np.uint8), "A", annotation=False)
    assert not is_listed(root, "x")
    record = save_annotation(root, "x", image, mask, "A", annotation=False)
    assert record.label_kind == "masks" and is_listed(root, "x")
    with pytest.raises(FileExistsError, match="already in the dataset"):
        save_annotation(root, "x", image, mask, "A", annotation=False)
    target = instances_to_targets(mask)
    save_annotation(root, "x", image, target, "A", annotation=True, overwrite=True)
    dataset = CellDataset.open(root)
    assert dataset["x"].label_kind == "targets" and len(dataset) == 1
    assert not (root / "masks" / "x.tif").exists()  # the stale mask is gone
    np.testing.assert_array_equal(saved_labels(root, "x")["annotation"], target)
    assert saved_labels(root, "other") == {}


def test_a_long_name_gives_an_id_that_names_a_file(tmp_path):
    from napari_cellseg.data.manifest import check_id
    from napari_cellseg.data.writer import add_to_dataset

    long, other = "slide " + "x" * 294, "slide " + "x" * 293 + "y"
    ids = [suggest_image_id(name, distinct=True) for name in (long, other, long + " é")]
    assert all(len(i) <= 109 and i.startswith("slide_xxx") and check_id(i) is None for i in ids)
    assert len(set(ids)) == 3  # cut alike, told apart by the name's digest
    # up to 200 characters an id names its files: kept whole, so earlier saves under it are found
    assert suggest_image_id("y" * 200) == "y" * 200
    image, mask, _ = load_sample("c_histology_1")
    add_to_dataset(tmp_path / "ds", ids[0], image, mask, "C")  # no "File name too long"
    with pytest.raises(ValueError, match="300 characters: a new id takes 200 at most"):
        add_to_dataset(tmp_path / "ds", "a" * 300, image, mask, "C")
    # a dataset written before the limit still opens: the limit is for new ids only
    assert check_id("a" * 300) is None


def test_an_image_is_saved_with_a_labs_own_tag_and_a_bad_tag_is_refused(tmp_path):
    image, mask, _ = load_sample("a_fluorescence_3")
    root = tmp_path / "ds"
    save_annotation(root, "x", image, mask, "A", annotation=False)
    save_annotation(root, "y", image, mask, "D", annotation=False)  # beside A: one dataset, two tags
    assert CellDataset.open(root).microscopes == ("A", "D") and CellDataset.open(root)["y"].microscope == "D"
    with pytest.raises(ValueError, match=r"before saving: microscope tag 'my scope' is not a tag"):
        save_annotation(root, "z", image, mask, "my scope", annotation=False)
    assert not is_listed(root, "z") and not (root / "masks" / "z.tif").exists()
