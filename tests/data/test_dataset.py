"""CellDataset: manifest and header checks up front, lazy pixels, checks at read time."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseg.data import pixels
from napari_cellseg.data.dataset import CellDataset, DatasetError
from napari_cellseg.data.headers import HeaderError, read_header
from napari_cellseg.sample_data import SAMPLE_DIR, list_samples

C_ID = list_samples()["c_histology_1"].id
A_ID = list_samples()["a_fluorescence_1"].id
B_ID = list_samples()["b_brightfield"].id


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A writable copy of the package's sample dataset."""
    root = tmp_path / "ds"
    shutil.copytree(SAMPLE_DIR, root, ignore=shutil.ignore_patterns("*.md"))
    return root


def _append_rows(root: Path, *rows: str) -> None:
    with open(root / "manifest.csv", "a") as fh:
        fh.writelines(row + "\n" for row in rows)


def _minimal_dataset(root: Path, labels: np.ndarray, folder: str = "masks") -> Path:
    """One 8x8 grey image ``x`` with the given label file."""
    (root / "images").mkdir(parents=True)
    (root / folder).mkdir()
    tifffile.imwrite(root / "images" / "x.tif", np.full(labels.shape, 7, np.uint8))
    tifffile.imwrite(root / folder / "x.tif", labels)
    (root / "manifest.csv").write_text("id,microscope\nx,C\n")
    return root


def test_open_sample_data_records_and_counts():
    ds = CellDataset.open(SAMPLE_DIR)
    assert len(ds) == 6
    assert ds.counts() == {"A": 3, "B": 1, "C": 2}
    record = ds[C_ID]
    assert record.microscope == "C"
    assert record.shape == (256, 320)
    assert (record.channels, record.dtype, record.label_kind) == (3, "uint8", "masks")
    assert record.extra["modality"] == "histology_color"  # extra columns are kept
    assert record.group is None
    assert ds.ids[0] == ds.records[0].id and C_ID in ds


def test_grey_stored_as_rgb_loads_as_grey_and_rgb_stays_rgb():
    ds = CellDataset.open(SAMPLE_DIR)
    assert ds[A_ID].channels == 3  # the PNG header says RGB
    grey = ds.load_image(A_ID)
    assert grey.shape == (256, 256) and grey.dtype == np.uint8
    colour = ds.load_image(C_ID)
    assert colour.shape == (256, 320, 3)


def test_load_instances_and_target_from_masks():
    ds = CellDataset.open(SAMPLE_DIR)
    labels = ds.load_instances(C_ID)
    assert labels.dtype == np.uint16 and labels.shape == (256, 320)
    assert labels.max() == len(np.unique(labels)) - 1  # consecutive 1..N
    target = ds.load_target(C_ID)
    assert target.dtype == np.uint8 and target.shape == (256, 320)
    assert set(np.unique(target)) == {0, 1, 2}


def test_open_reads_no_pixels(monkeypatch):
    calls = []

    def counting(path):
        calls.append(path)
        return original(path)

    original = pixels.read_pixels
    monkeypatch.setattr(pixels, "read_pixels", counting)

    def refuse(*args, **kwargs):
        raise AssertionError("opening decoded pixels")

    monkeypatch.setattr(tifffile, "imread", refuse)
    monkeypatch.setattr("imageio.v3.imread", refuse)
    ds = CellDataset.open(SAMPLE_DIR)
    assert calls == []
    monkeypatch.undo()
    monkeypatch.setattr(pixels, "read_pixels", counting)
    ds.load_image(B_ID)
    assert len(calls) == 1 and calls[0].name.startswith(B_ID)


def test_every_problem_is_reported_at_once(sample_copy):
    root = sample_copy
    (root / "images" / f"{A_ID}.png").unlink()  # missing image
    b_mask = root / "masks" / f"{B_ID}.tif"
    tifffile.imwrite(b_mask, np.zeros((10, 10), np.uint16))  # wrong shape
    c_image = root / "images" / f"{C_ID}.png"
    c_image.write_bytes(b"not a png at all, just text")  # unreadable
    c2 = list_samples()["c_histology_2"].id
    (root / "masks" / f"{c2}.tif").unlink()  # missing mask
    _append_rows(root, f"{C_ID},C,x,y,256,320,1", "newid,D,x,y,1,1,1")  # duplicate id, unknown microscope
    with pytest.raises(DatasetError) as info:
        CellDataset.open(root, microscopes=("A", "B", "C"))  # as check and split open it
    err = info.value
    reasons = {Path(file).name: reason for file, reason in err.problems}
    assert len(err.problems) == 6
    assert "missing image" in reasons[f"{A_ID}.*"]
    assert "does not match" in reasons[f"{B_ID}.tif"] and "(10, 10)" in reasons[f"{B_ID}.tif"]
    assert "PNG" in reasons[f"{C_ID}.png"]
    assert "missing mask" in reasons[f"{c2}.*"]
    manifest_reasons = [r for f, r in err.problems if f.endswith("manifest.csv")]
    assert any("duplicate id" in r and "line 8" in r for r in manifest_reasons)
    assert any("unknown microscope 'D'" in r for r in manifest_reasons)
    message = str(err)
    assert "6 problems" in message
    for name in (f"images/{C_ID}.png", f"masks/{B_ID}.tif", "manifest.csv"):
        assert name in message


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (None, "no manifest.csv"),
        ("id,scope\nx,C\n", "lacks column(s) ['microscope']"),
        ("id,microscope\n", "lists no images"),
        ("id,microscope\nbad/id,C\n", "cannot name a file"),
        ("id,microscope\nx,C,extra\n", "3 fields, the header has 2"),
    ],
)
def test_manifest_errors(tmp_path, manifest, expected):
    root = _minimal_dataset(tmp_path / "ds", np.zeros((8, 8), np.uint16))
    if manifest is None:
        (root / "manifest.csv").unlink()
    else:
        (root / "manifest.csv").write_text(manifest)
    with pytest.raises(DatasetError, match=r"manifest\.csv") as info:
        CellDataset.open(root)
    assert expected in str(info.value)


def test_a_manifest_saved_as_windows_csv_says_to_save_it_as_utf8(tmp_path):
    root = _minimal_dataset(tmp_path / "ds", np.zeros((8, 8), np.uint16))
    excel_csv = "id,microscope,group\nx,C,Hôpital\n".encode("cp1252")  # Excel's plain "CSV" on Windows
    (root / "manifest.csv").write_bytes(excel_csv)
    with pytest.raises(DatasetError) as info:
        CellDataset.open(root)
    assert "manifest.csv: not UTF-8 (byte 0xf4 on line 2): save it as CSV UTF-8" in str(info.value)


def test_missing_folders_and_ambiguous_files(tmp_path, sample_copy):
    with pytest.raises(DatasetError, match="no such folder"):
        CellDataset.open(tmp_path / "nowhere")
    shutil.rmtree(sample_copy / "masks")
    with pytest.raises(DatasetError, match="no masks/ or targets/ folder"):
        CellDataset.open(sample_copy)
    root = _minimal_dataset(tmp_path / "amb", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(root / "images" / "x.tiff", np.zeros((8, 8), np.uint8))
    with pytest.raises(DatasetError, match=r"ambiguous.*x\.tif, x\.tiff"):
        CellDataset.open(root)


def test_manifest_size_columns_must_match_the_file(sample_copy):
    manifest = sample_copy / "manifest.csv"
    manifest.write_text(manifest.read_text().replace(",256,320,97", ",250,320,97"))  # C_ID's row
    with pytest.raises(DatasetError, match="says 250x320, the file is 256x320"):
        CellDataset.open(sample_copy)


def test_float_labels_fail_at_open_and_negative_ones_when_read_naming_the_file(tmp_path):
    floats = _minimal_dataset(tmp_path / "f", np.ones((8, 8), np.float32))
    with pytest.raises(
        DatasetError, match=r"masks/x\.tif: instance labels must be integers, the file holds float32"
    ):
        CellDataset.open(floats)  # the header tells, so split and Check dataset catch it
    negative = np.zeros((8, 8), np.int32)
    negative[2, 2] = -4
    ds = CellDataset.open(_minimal_dataset(tmp_path / "n", negative))
    with pytest.raises(DatasetError, match=r"masks/x\.tif: instance labels must be >= 0, found -4"):
        ds.load_instances("x")


def test_a_binary_mask_of_many_cells_is_named_and_one_cell_is_fine(tmp_path):
    binary = np.zeros((8, 8), np.uint8)
    binary[0:2, 0:2] = binary[4:6, 0:2] = binary[0:2, 5:7] = 255  # three cells, one value
    ds = CellDataset.open(_minimal_dataset(tmp_path / "b", binary))
    with pytest.raises(DatasetError, match=r"masks/x\.tif: one label \(255\) covers 3 separate regions"):
        ds.load_instances("x")
    one_cell = np.zeros((8, 8), np.uint8)
    one_cell[2:5, 2:5] = 1
    assert CellDataset.open(_minimal_dataset(tmp_path / "o", one_cell)).load_instances("x").max() == 1


def test_labels_are_renumbered_consecutively(tmp_path):
    labels = np.zeros((8, 8), np.int32)
    labels[:2, :2], labels[4:, 4:] = 5, 70000
    ds = CellDataset.open(_minimal_dataset(tmp_path / "r", labels))
    loaded = ds.load_instances("x")
    assert loaded.dtype == np.uint16
    assert loaded[0, 0] == 1 and loaded[7, 7] == 2 and loaded[3, 3] == 0


def test_targets_folder(tmp_path):
    target = np.zeros((8, 8), np.uint8)
    target[2:6, 2:6], target[3:5, 3:5] = 1, 2
    ds = CellDataset.open(_minimal_dataset(tmp_path / "t", target, folder="targets"))
    assert ds["x"].label_kind == "targets"
    np.testing.assert_array_equal(ds.load_target("x"), target)
    with pytest.raises(DatasetError, match="3-class target map, not instance labels"):
        ds.load_instances("x")
    target[0, 0] = 3
    ds = CellDataset.open(_minimal_dataset(tmp_path / "bad", target, folder="targets"))
    with pytest.raises(DatasetError, match=r"targets/x\.tif: target maps hold 0/1/2 only"):
        ds.load_target("x")


def test_subset_keeps_order_and_refuses_unknown_ids():
    ds = CellDataset.open(SAMPLE_DIR)
    sub = ds.subset([C_ID, A_ID])
    assert sub.ids == [C_ID, A_ID]
    assert sub.counts() == {"A": 1, "B": 0, "C": 1}
    with pytest.raises(KeyError, match="not in dataset"):
        ds.subset(["nope"])
    with pytest.raises(KeyError, match="no image 'nope'"):
        ds["nope"]


def test_unsupported_image_dtype_is_a_header_problem(tmp_path):
    root = _minimal_dataset(tmp_path / "ds", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(root / "images" / "x.tif", np.zeros((8, 8), np.float32))
    with pytest.raises(DatasetError, match="dtype float32 not supported"):
        CellDataset.open(root)


def test_headers_of_tiff_variants_and_png(tmp_path):
    cases = {
        "grey16": (np.zeros((5, 7), np.uint16), {}, (1, "uint16")),
        "rgb": (np.zeros((5, 7, 3), np.uint8), {"photometric": "rgb"}, (3, "uint8")),
        "big": (np.zeros((5, 7), np.uint8), {"bigtiff": True}, (1, "uint8")),
    }
    for name, (data, kwargs, (channels, dtype)) in cases.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", data, **kwargs)
        header = read_header(tmp_path / f"{name}.tif")
        assert (header.shape, header.channels, header.dtype) == ((5, 7), channels, dtype)
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 5, 7), np.uint16), photometric="minisblack")
    with pytest.raises(HeaderError, match=r"shape \(3, 5, 7\)"):
        read_header(tmp_path / "stack.tif")
    header = read_header(SAMPLE_DIR / "images" / f"{C_ID}.png")
    assert (header.shape, header.channels, header.dtype) == ((256, 320), 3, "uint8")
    with pytest.raises(HeaderError, match="no such file"):
        read_header(tmp_path / "absent.png")


def test_16bit_rgb_png_keeps_its_bits(tmp_path):
    import cv2

    rgb = np.random.default_rng(0).integers(0, 65535, (8, 8, 3), dtype=np.uint16)
    root = _minimal_dataset(tmp_path / "ds", np.zeros((8, 8), np.uint16))
    (root / "images" / "x.tif").unlink()
    cv2.imwrite(str(root / "images" / "x.png"), rgb[..., ::-1])
    ds = CellDataset.open(root)
    assert ds["x"].dtype == "uint16"
    np.testing.assert_array_equal(ds.load_image("x"), rgb)


def test_unsupported_file_type_is_named(tmp_path):
    root = _minimal_dataset(tmp_path / "ds", np.zeros((8, 8), np.uint16))
    (root / "images" / "x.tif").rename(root / "images" / "x.jpg")
    with pytest.raises(
        DatasetError, match=r"images/x\.jpg: unsupported file type \(x\.jpg\): use PNG or TIFF"
    ):
        CellDataset.open(root)


def test_dataset_error_survives_pickling():
    import pickle

    err = DatasetError("/data", [("/data/images/a.png", "no such file")])
    copy = pickle.loads(pickle.dumps(err))
    assert copy.problems == err.problems and str(copy) == str(err)


def test_spreadsheet_manifests_with_empty_trailing_columns_open(tmp_path):
    root = _minimal_dataset(tmp_path / "ds", np.zeros((8, 8), np.uint16))
    (root / "manifest.csv").write_text("id,microscope,,\nx,C,,\n")
    assert CellDataset.open(root).ids == ["x"]
    (root / "manifest.csv").write_text("id,microscope,,\nx,C,,stray\n")
    with pytest.raises(DatasetError, match="'stray' in a column without a name"):
        CellDataset.open(root)
    (root / "manifest.csv").write_text("id;microscope\nx;C\n")
    with pytest.raises(DatasetError, match="separated by ';'"):
        CellDataset.open(root)


@pytest.mark.parametrize("stored", [(1, 8, 8), (8, 8, 1)])
def test_one_plane_tiffs_with_a_unit_axis_load_as_the_header_says(tmp_path, stored):
    labels = np.zeros((8, 8), np.uint16)
    labels[2:5, 2:5] = 1
    root = _minimal_dataset(tmp_path / "ds", labels.reshape(stored))
    tifffile.imwrite(root / "images" / "x.tif", np.full(stored, 7, np.uint8))
    dataset = CellDataset.open(root)
    assert dataset.load_image("x").shape == (8, 8)
    np.testing.assert_array_equal(dataset.load_instances("x"), labels)


def test_planar_rgb_tiff_images_open_as_rgb(tmp_path):
    root = _minimal_dataset(tmp_path / "ds", np.zeros((8, 10), np.uint16))
    planar = np.random.default_rng(0).integers(0, 255, (3, 8, 10), dtype=np.uint8)
    tifffile.imwrite(root / "images" / "x.tif", planar, photometric="rgb", planarconfig="separate")
    dataset = CellDataset.open(root)
    assert (dataset["x"].shape, dataset["x"].channels) == ((8, 10), 3)
    np.testing.assert_array_equal(dataset.load_image("x"), np.moveaxis(planar, 0, -1))
