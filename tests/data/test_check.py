"""The pixel pass of a dataset check: what headers cannot show, found before training."""

from __future__ import annotations

import shutil

import numpy as np
import tifffile

from napari_cellseg.data.check import iter_check_pixels
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.generators import run_to_end
from napari_cellseg.sample_data import SAMPLE_DIR


def test_sample_data_passes_and_cells_are_counted_per_microscope():
    dataset = CellDataset.open(SAMPLE_DIR)
    reports = []
    found = run_to_end(iter_check_pixels(dataset), reports.append)
    assert found.ok and found.empty == ()
    assert [r.done for r in reports] == list(range(1, len(dataset) + 1))
    assert {r.total for r in reports} == {len(dataset)}
    expected = dict.fromkeys(dataset.microscopes, 0)
    for record in dataset:
        expected[record.microscope] += int(dataset.load_instances(record.id).max())
    assert found.cells == expected and found.cells["C"] > 0


def test_every_bad_file_is_listed_and_an_empty_mask_is_only_noted(tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(SAMPLE_DIR, root, ignore=shutil.ignore_patterns("*.md"))
    dataset = CellDataset.open(root)
    binary_id, empty_id, broken_id = dataset.ids[:3]
    mask = dataset.load_instances(binary_id)
    binary = np.where(mask > 0, 255, 0).astype(np.uint8)  # what a thresholding tool saves
    tifffile.imwrite(dataset[binary_id].label_path, binary)
    empty = np.zeros_like(dataset.load_instances(empty_id))
    tifffile.imwrite(dataset[empty_id].label_path, empty)
    image_path = dataset[broken_id].image_path
    image_path.write_bytes(image_path.read_bytes()[:200])  # truncated: the header survives

    found = run_to_end(iter_check_pixels(CellDataset.open(root)))
    files = {file: reason for file, reason in found.problems}
    assert set(files) == {str(dataset[binary_id].label_path), str(image_path)}
    assert "looks like a binary mask" in files[str(dataset[binary_id].label_path)]
    assert found.empty == (empty_id,) and not found.ok


def test_a_target_map_saved_in_masks_is_refused_and_two_real_cells_are_not(tmp_path):
    from napari_cellseg.data.targets import instances_to_targets

    root = tmp_path / "ds"
    shutil.copytree(SAMPLE_DIR, root, ignore=shutil.ignore_patterns("*.md"))
    dataset = CellDataset.open(root)
    target_id, two_cells_id = dataset.ids[:2]
    target = np.asarray(instances_to_targets(dataset.load_instances(target_id)), np.uint8)
    assert set(np.unique(target)) == {0, 1, 2}  # the 0/1/2 map of targets/, saved in masks/ by mistake
    tifffile.imwrite(dataset[target_id].label_path, target)
    two = np.zeros(dataset[two_cells_id].shape, np.uint8)  # two real cells: a ring (label 1) and a disc
    yy, xx = np.mgrid[: two.shape[0], : two.shape[1]]
    two[((yy - 40) ** 2 + (xx - 40) ** 2 < 400) & ((yy - 40) ** 2 + (xx - 40) ** 2 >= 100)] = 1
    two[(yy - 40) ** 2 + (xx - 100) ** 2 < 300] = 2
    two[5, 5] = two[70, 150] = 1  # stray pixels of cell 1: it lies in three pieces, still two cells
    two[50:52, 90:110] = 0  # an eraser stroke through cell 2
    tifffile.imwrite(dataset[two_cells_id].label_path, two)
    found = run_to_end(iter_check_pixels(CellDataset.open(root)))
    assert not found.ok
    reasons = {file: reason for file, reason in found.problems}
    assert list(reasons) == [str(dataset[target_id].label_path)]
    reason = reasons[str(dataset[target_id].label_path)]
    assert "looks like a 3-class target map" in reason and "move the file to targets/" in reason
    assert CellDataset.open(root).load_instances(two_cells_id).max() == 2
