"""Labels made by other tools (Cellpose, StarDist, Fiji, a colour export) in a dataset folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseg.data.dataset import CellDataset, DatasetError


def _dataset(root: Path, ids: list[str]) -> Path:
    """8x8 grey images listed in a manifest; masks/ empty."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for image_id in ids:
        tifffile.imwrite(root / "images" / f"{image_id}.tif", np.full((8, 8), 7, np.uint8))
    (root / "manifest.csv").write_text("id,microscope\n" + "".join(f"{i},D\n" for i in ids))
    return root


def test_a_mask_under_cellpose_or_stardist_names_is_pointed_at_with_the_name_it_needs(tmp_path):
    root = _dataset(tmp_path / "ds", ["field1", "field2", "field3"])
    labels = np.zeros((8, 8), np.uint16)
    labels[1:3, 1:3], labels[5:7, 5:7] = 3, 9  # Cellpose ids with gaps
    tifffile.imwrite(root / "masks" / "field1_cp_masks.tif", labels)  # copied as Cellpose names it
    tifffile.imwrite(root / "images" / "field2_masks.tif", labels)  # left beside its image
    with pytest.raises(DatasetError) as info:
        CellDataset.open(root)
    text = str(info.value)
    assert (
        "missing mask for id 'field1' (manifest line 2) (looked in masks/ and targets/); "
        "masks/field1_cp_masks.tif looks like its mask: rename it to masks/field1.tif"
    ) in text
    assert "images/field2_masks.tif looks like its mask: move it to masks/field2.tif" in text
    assert "missing mask for id 'field3' (manifest line 4) (looked in masks/ and targets/)\n" in text + "\n"
    # renamed as told, the dataset opens and the ids' gaps are renumbered
    (root / "masks" / "field1_cp_masks.tif").rename(root / "masks" / "field1.tif")
    (root / "images" / "field2_masks.tif").rename(root / "masks" / "field2.tif")
    tifffile.imwrite(root / "masks" / "field3.tif", labels)
    assert CellDataset.open(root).load_instances("field1").max() == 2


def test_colour_and_binary_label_files_and_signed_images_say_what_they_are(tmp_path):
    root = _dataset(tmp_path / "ds", ["rgb", "onoff", "signed"])
    cells = np.zeros((8, 8), np.uint8)
    cells[1:3, 1:3], cells[5:7, 5:7] = 1, 2
    palette = np.array([[0, 0, 0], [200, 10, 90], [30, 180, 60]], np.uint8)
    tifffile.imwrite(root / "masks" / "rgb.tif", palette[cells], photometric="rgb")  # a screenshot of labels
    tifffile.imwrite(root / "masks" / "onoff.tif", cells > 0)  # Fiji's binary mask, saved as bool
    tifffile.imwrite(root / "masks" / "signed.tif", cells)
    tifffile.imwrite(root / "images" / "signed.tif", np.full((8, 8), 300, np.int16))
    with pytest.raises(DatasetError) as info:
        CellDataset.open(root)
    text = str(info.value)
    assert (
        "masks/rgb.tif: labels must be one 2D plane, the file has 3 channels: this looks like labels " in text
    )
    assert "saved as a colour picture: cells must be numbers (0 background, 1..N), not colours" in text
    assert (
        "masks/onoff.tif: a binary mask (on/off pixels), not instance labels: give each cell its own" in text
    )
    assert (
        "images/signed.tif: dtype int16 not supported: images are unsigned 8- or 16-bit (uint8, uint16)"
        in text
    )


def test_add_to_dataset_names_colour_and_binary_labels(tmp_path):
    from napari_cellseg.data.writer import add_to_dataset

    image = np.full((8, 8), 7, np.uint8)
    cells = np.zeros((8, 8), np.uint16)
    cells[1:3, 1:3], cells[5:7, 5:7] = 1, 2
    with pytest.raises(
        ValueError, match=r"\(8, 8, 3\); the image is \(8, 8\): this looks like labels saved as a colour"
    ):
        add_to_dataset(tmp_path / "ds", "x", image, np.stack([cells * 40] * 3, axis=-1), "D")
    with pytest.raises(ValueError, match=r"binary mask \(True/False\), not instance labels: give each cell"):
        add_to_dataset(tmp_path / "ds", "x", image, cells > 0, "D")
    assert not (tmp_path / "ds").exists()  # refused before anything is written


def test_a_32_bit_fiji_image_imported_with_its_rois_is_told_how_to_convert_it(tmp_path):
    from napari_cellseg.data.outlines_import import iter_import_outlines
    from napari_cellseg.generators import run_to_end
    from napari_cellseg.inference.outlines import write_imagej_rois

    cells = np.zeros((16, 16), np.uint16)
    cells[2:6, 2:6], cells[9:14, 9:14] = 1, 2
    tifffile.imwrite(tmp_path / "scan.tif", np.full((16, 16), 0.5, np.float32), imagej=True)
    write_imagej_rois(tmp_path / "scan_rois.zip", cells)
    (report,) = run_to_end(iter_import_outlines([tmp_path / "scan.tif"], None, tmp_path / "ds", "D"))
    assert report.status == "failed"
    assert "unsigned 8- or 16-bit integers (uint8, uint16), got dtype float32" in report.message
    assert "convert the image first (Fiji: Image > Type > 16-bit)" in report.message
    assert "layer" not in report.message  # no napari layer on this route


def test_import_outlines_tells_a_cellpose_mask_beside_its_image_from_an_image(tmp_path):
    from napari_cellseg.data.outlines_import import iter_import_outlines
    from napari_cellseg.generators import run_to_end

    cells = np.zeros((16, 16), np.uint16)
    cells[2:6, 2:6], cells[9:14, 9:14] = 3, 7
    tifffile.imwrite(tmp_path / "field1.tif", np.full((16, 16), 9, np.uint16))
    tifffile.imwrite(tmp_path / "field1_cp_masks.tif", cells)
    reports = run_to_end(iter_import_outlines([tmp_path], None, tmp_path / "ds", "D"))
    by_id = {r.image_id: r for r in reports}
    assert by_id["field1"].status == "no outlines" and "none of field1.geojson" in by_id["field1"].message
    mask = by_id["field1_cp_masks"]
    assert mask.status == "no outlines"
    assert mask.message.startswith("looks like the mask of field1.tif, not an image: only QuPath and Fiji")
    assert "copy field1.tif to images/ and this file to masks/field1.tif of the dataset" in mask.message
