"""Dev images without a cell: the run warns that the dev score cannot choose an epoch, and keeps the last."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.sample_data import SAMPLE_DIR, list_samples
from napari_cellseg.training.engine import train
from napari_cellseg.training.progress import TrainProgress
from napari_cellseg.training.reports import StartReport, TrainResult

pytest.importorskip("torch")

DEV_KEY = "c_histology_2"  # as in conftest: the split's dev image


def test_a_dev_set_without_cells_warns_and_keeps_the_last_epoch(tmp_path, tiny_config, capsys):
    root = tmp_path / "data"
    shutil.copytree(SAMPLE_DIR, root, ignore=shutil.ignore_patterns("*.md"))
    dev = CellDataset.open(root)[list_samples()[DEV_KEY].id]
    tifffile.imwrite(dev.label_path, np.zeros(dev.shape, np.uint16))  # an image without a cell
    config = tiny_config(data_dir=str(root), epochs=3, steps_per_epoch=1)
    reports = list(train(config))
    start, result = reports[0], reports[-1]
    assert isinstance(start, StartReport) and isinstance(result, TrainResult)
    assert len(start.warnings) == 1 and "dev image(s) hold no labelled cell" in start.warnings[0]
    assert {e["dev"]["pixel_f1"] for e in result.history} == {0.0}  # constant: no epoch is better
    assert result.best_epoch == 3  # the last, not the first
    with TrainProgress(enabled=False) as progress:  # --quiet still prints it
        progress.update(start)
    assert "warning: the 1 dev image(s) hold no labelled cell" in capsys.readouterr().err


def test_dev_images_with_cells_give_no_warning(tiny_config):
    reports = list(train(tiny_config(epochs=1, steps_per_epoch=1)))
    assert reports[0].warnings == ()
