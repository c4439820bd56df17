"""add_to_dataset: atomic, refuses to overwrite unless asked, keeps the manifest's columns."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.writer import add_to_dataset
from napari_cellseg.sample_data import SAMPLE_DIR, load_sample


def _cells(shape=(32, 40)) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    labels[4:12, 5:15], labels[20:28, 20:35] = 1, 2
    return labels


def _binary_mask() -> np.ndarray:
    mask = np.zeros((32, 40), np.uint8)
    mask[2:8, 2:8] = mask[12:18, 12:18] = mask[22:28, 22:28] = 255  # three cells, one number
    return mask


def test_new_folder_is_created_and_reopens(tmp_path):
    root = tmp_path / "new"
    image = np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    record = add_to_dataset(root, "img-1", image, _cells(), "C", group="slide7")
    assert record.image_path == root / "images" / "img-1.png"
    assert (record.shape, record.channels, record.group, record.label_kind) == (
        (32, 40),
        3,
        "slide7",
        "masks",
    )
    ds = CellDataset.open(root)
    assert ds.ids == ["img-1"] and ds["img-1"].group == "slide7"
    np.testing.assert_array_equal(ds.load_image("img-1"), image)
    np.testing.assert_array_equal(ds.load_instances("img-1"), _cells())
    assert not list(root.rglob("*.tmp"))  # no temporary files left behind


def test_refuses_to_overwrite_unless_asked_and_removes_stale_files(tmp_path):
    root = tmp_path / "ds"
    add_to_dataset(root, "a", np.zeros((32, 40), np.uint8), _cells(), "A")
    with pytest.raises(FileExistsError, match="'a' is already in the dataset"):
        add_to_dataset(root, "a", np.zeros((32, 40), np.uint8), _cells(), "A")
    grey16 = np.full((32, 40), 1000, np.uint16)
    target = (_cells() > 0).astype(np.uint8) * 2
    record = add_to_dataset(root, "a", grey16, target, "B", kind="targets", overwrite=True)
    assert record.image_path.suffix == ".tif" and record.dtype == "uint16"
    assert not (root / "images" / "a.png").exists() and not (root / "masks" / "a.tif").exists()
    ds = CellDataset.open(root, microscopes=("A", "B", "C"))
    assert ds.counts() == {"A": 0, "B": 1, "C": 0}
    np.testing.assert_array_equal(ds.load_target("a"), target)


def test_existing_rows_keep_their_extra_columns(tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(SAMPLE_DIR, root)
    image, labels, _ = load_sample("c_histology_1")
    add_to_dataset(root, "crop", image[:64, :64], labels[:64, :64], "C", group="g1", extra={"modality": "h"})
    ds = CellDataset.open(root)
    assert len(ds) == 7
    assert ds["crop"].extra["modality"] == "h" and ds["crop"].group == "g1"
    old = ds.records[0]
    assert old.extra["n_nuclei"] and old.extra["source"].startswith("DSB2018") and old.group is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_id": "a/b"}, "cannot name a file"),
        ({"microscope": "Z Z"}, "microscope tag 'Z Z' is not a tag"),
        ({"kind": "other"}, "kind must be"),
        ({"image": np.zeros((32, 40), np.float32)}, "got dtype float32"),
        ({"image": np.zeros((32, 40, 2), np.uint8)}, r"got shape \(32, 40, 2\)"),
        ({"labels": np.zeros((30, 40), np.uint16)}, r"labels have shape \(30, 40\); the image is \(32, 40\)"),
        ({"labels": -np.ones((32, 40), np.int16)}, "labels must be >= 0"),
        ({"labels": np.ones((32, 40), np.float64)}, "labels must be integers"),
        ({"labels": np.full((32, 40), 3, np.uint8), "kind": "targets"}, "found 3"),
        ({"extra": {"id": "other"}}, r"extra must not set \['id'\]"),
        ({"extra": {"microscope": "B", "stain": "HE"}}, r"extra must not set \['microscope'\]"),
        ({"image": np.zeros((0, 40), np.uint8), "labels": np.zeros((0, 40), np.uint16)}, "H, W >= 1"),
        ({"labels": _binary_mask()}, "looks like a binary mask"),
        ({"image_id": 5}, "image_id must be a string, got int 5"),
    ],
)
def test_bad_inputs_are_refused_before_writing(tmp_path, kwargs, message):
    arguments = {
        "image_id": "a", "image": np.zeros((32, 40), np.uint8), "labels": _cells(), "microscope": "A",
    }  # fmt: skip
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        add_to_dataset(tmp_path / "ds", **arguments)
    assert not (tmp_path / "ds").exists()


def test_concurrent_saves_into_one_folder_keep_every_row(tmp_path, monkeypatch):
    import os
    import threading
    import time

    import napari_cellseg.data.writer as writer

    original = writer.write_manifest

    def slow_write(*args, **kwargs):  # widen the read-modify-write window
        time.sleep(0.05)
        return original(*args, **kwargs)

    monkeypatch.setattr(writer, "write_manifest", slow_write)
    image = np.zeros((32, 40), np.uint8)
    errors = []

    def save(i):
        try:
            add_to_dataset(tmp_path / "ds", f"img-{i}", image, _cells(), "C")
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(CellDataset.open(tmp_path / "ds").ids) == [f"img-{i}" for i in range(6)]
    assert not (tmp_path / "ds" / writer.LOCK_NAME).exists()

    # A lock left by a crashed writer is taken over once stale; a live one times out clearly.
    lock = tmp_path / "ds" / writer.LOCK_NAME
    lock.write_text("12345")
    old = time.time() - writer.LOCK_STALE_S - 5
    os.utime(lock, (old, old))
    add_to_dataset(tmp_path / "ds", "img-after-crash", image, _cells(), "C")
    lock.write_text("12345")
    with pytest.raises(TimeoutError, match="another program"):
        with writer.manifest_lock(tmp_path / "ds", timeout=0.1):
            pass


def test_replacing_an_image_keeps_its_group_and_columns_and_refreshes_its_sizes(tmp_path):
    # The Annotate panel's Save replaces an image without naming its group.
    root = tmp_path / "ds"
    shutil.copytree(SAMPLE_DIR, root)
    image_id = CellDataset.open(root).ids[0]
    add_to_dataset(
        root, image_id, np.zeros((32, 40), np.uint8), _cells(), "A", group="slide7", overwrite=True
    )
    add_to_dataset(
        root, image_id, np.zeros((32, 40), np.uint8), _cells() * (_cells() == 1), "A", overwrite=True
    )
    record = CellDataset.open(root)[image_id]
    assert record.group == "slide7" and record.extra["source"].startswith("DSB2018")
    assert (record.extra["height"], record.extra["width"], record.extra["n_nuclei"]) == ("32", "40", "1")
    add_to_dataset(root, image_id, np.zeros((32, 40), np.uint8), _cells(), "A", group="", overwrite=True)
    assert CellDataset.open(root)[image_id].group is None


def test_label_ids_past_uint32_are_renumbered_not_wrapped(tmp_path):
    labels = _cells().astype(np.int64)
    labels[labels == 2] = 2**32 + 1  # would wrap onto 1
    add_to_dataset(tmp_path / "ds", "a", np.zeros((32, 40), np.uint8), labels, "C")
    saved = CellDataset.open(tmp_path / "ds").load_instances("a")
    assert len(np.unique(saved)) == 3 and np.count_nonzero(saved) == np.count_nonzero(labels)


def test_a_failed_replacement_keeps_the_old_image_with_its_old_labels(tmp_path, monkeypatch):
    """A full disk while the new labels are written must not leave the new image beside the old labels."""
    from napari_cellseg.data import writer

    root = tmp_path / "ds"
    old_image = np.full((32, 40), 50, np.uint8)
    add_to_dataset(root, "a", old_image, _cells(), "C")
    real_write_labels = writer._write_labels

    def disk_full(path, *args):
        real_write_labels(path, *args)  # half-way: the file written, then the disk fills
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_write_labels", disk_full)
    with pytest.raises(OSError, match="No space left"):
        add_to_dataset(root, "a", np.full((32, 40), 200, np.uint8), np.zeros((32, 40), np.uint16), "C",
                       overwrite=True)  # fmt: skip
    ds = CellDataset.open(root)
    np.testing.assert_array_equal(ds.load_image("a"), old_image)
    np.testing.assert_array_equal(ds.load_instances("a"), _cells())
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["a.png", "a.tif", "manifest.csv"]


def test_any_valid_tag_is_taken_unless_the_tags_are_given(tmp_path):
    root = tmp_path / "ds"
    add_to_dataset(root, "a", np.zeros((32, 40), np.uint8), _cells(), "E")  # a lab's own microscope
    add_to_dataset(root, "b", np.zeros((32, 40), np.uint8), _cells(), "zeiss2")
    assert CellDataset.open(root).microscopes == ("E", "zeiss2")
    with pytest.raises(ValueError, match="microscope tag 'D E' is not a tag"):
        add_to_dataset(root, "c", np.zeros((32, 40), np.uint8), _cells(), "D E")
    with pytest.raises(ValueError, match=r"unknown microscope 'D'; choose from \('A', 'B', 'C'\)"):
        add_to_dataset(root, "c", np.zeros((32, 40), np.uint8), _cells(), "D", microscopes=("A", "B", "C"))
    assert len(CellDataset.open(root)) == 2
