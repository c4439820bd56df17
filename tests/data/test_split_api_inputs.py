"""split_dataset called from a notebook: a dataset folder works as the opened dataset does."""

from __future__ import annotations

import pytest

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.split import split_dataset


def test_a_dataset_folder_splits_as_the_opened_dataset(tiny_dataset):
    from_folder = split_dataset(str(tiny_dataset), "C", grouping=False)
    assert from_folder.subsets == split_dataset(CellDataset.open(tiny_dataset), "C", grouping=False).subsets
    assert split_dataset(tiny_dataset, "C", grouping=False).subsets == from_folder.subsets  # a Path
    assert set(from_folder.subsets.values()) == {"train", "dev", "test"}


@pytest.mark.parametrize("dataset", [None, ["img1", "img2"]])
def test_something_else_than_a_dataset_is_a_type_error(dataset):
    with pytest.raises(TypeError, match=r"dataset must be a CellDataset or a dataset folder, got"):
        split_dataset(dataset, "C")
