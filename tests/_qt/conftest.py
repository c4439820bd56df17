"""Fixtures of the dock-widget tests: waiting for jobs, a known label pair, a tiny model.

The tiny dataset fixture (``tiny_dataset``) lives in ``tests/conftest.py``.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def wait_for_job(qtbot):
    """``wait_for_job(panel)``: wait until the panel's thread-worker job ended; return the task."""

    def wait(panel, timeout: int = 15000):
        qtbot.waitUntil(lambda: not panel.busy, timeout=timeout)
        return panel.task

    return wait


@pytest.fixture
def labels_pair():
    """Expert mask of ``c_histology_1`` and a corrupted copy: one cell removed, two merged, one split.

    Returns ``(gt, pred, info)``; ``info`` names the cells involved and the
    IoU of the merged and split objects with their best true cell.
    """
    from napari_cellseg.metrics import touching_pairs
    from napari_cellseg.sample_data import load_sample

    _, gt, _ = load_sample("c_histology_1")
    gt = gt.astype(np.uint16)
    areas = np.bincount(gt.ravel())
    a, b = (int(v) for v in touching_pairs(gt)[0])
    others = [i for i in range(1, int(gt.max()) + 1) if i not in (a, b) and areas[i] >= 20]
    removed, cut = others[-1], others[0]
    pred = gt.copy()
    pred[pred == removed] = 0
    pred[pred == b] = a
    ys, xs = np.nonzero(gt == cut)
    left = xs < np.median(xs)  # cut the cell into a left and a right piece
    pred[ys[left], xs[left]] = gt.max() + 1
    info = {
        "removed": removed,
        "merged": (a, b),
        "split": cut,
        "merge_iou": max(areas[a], areas[b]) / (areas[a] + areas[b]),
        "split_iou": max(left.sum(), (~left).sum()) / left.size,
        "n_gt": int(gt.max()),
    }
    return gt, pred, info


@pytest.fixture
def tiny_model_dir(tmp_path):
    """A model directory (model.safetensors + config.json) of a tiny random-weight network."""
    torch = pytest.importorskip("torch")
    from napari_cellseg.models.checkpoint import ModelConfig, save_model_dir
    from napari_cellseg.models.m2 import M2Config
    from napari_cellseg.models.surgery import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    m2 = M2Config(arch="mobilenetv3_small_050", num_classes=0, name="tiny", source="random init (tests)")
    model = build_model(
        m2, transfer_layers=2, new_layers=2, out_channels=3, decoder_channels=(8, 8, 8), pretrained=False
    )
    return save_model_dir(tmp_path / "tiny-model", model.eval(), ModelConfig.for_model(model))


DEV_ID = "c_histology_2_crop0"  # a small C crop of the tiny dataset: cheap dev scoring


@pytest.fixture
def split_dataset(tiny_dataset):
    """The tiny dataset with ``split.csv``: one C crop for dev, the rest train."""
    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.data.splitfile import write_split

    dataset = CellDataset.open(tiny_dataset)
    write_split(tiny_dataset / "split.csv", {i: "dev" if i == DEV_ID else "train" for i in dataset.ids})
    return tiny_dataset


def _tiny_finetune_settings(widget, root, out, epochs: int, steps: int, batch: int = 4) -> None:
    form = widget.form
    form.dataset_edit.setText(str(root))
    form.out_edit.setText(str(out))
    form.l_spin.setValue(2)
    form.la_spin.setValue(2)
    form.patch_spin.setValue(64)
    form.batch_spin.setValue(batch)
    form.augment_combo.setCurrentText("light")
    form.epochs_spin.setValue(epochs)
    form.steps_spin.setValue(steps)


@pytest.fixture
def tiny_finetune_settings():
    """``tiny_finetune_settings(panel, root, out, epochs, steps, batch=4)``: a Fine-tune panel set
    for a tiny run (l=2, l_a=2, 64 px crops, light augmentation)."""
    return _tiny_finetune_settings
