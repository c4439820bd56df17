"""Fixtures of the dock-widget tests: a tiny dataset from the sample data, waiting for jobs."""

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


def build_tiny_dataset(root, crops_per_c_image: int = 4):
    """The six package samples plus quadrant crops of the two C images.

    3 A, 1 B and ``2 + 2 * crops_per_c_image`` C images: enough C images for
    the default 90/5/5 split (dev and test one C image each).
    """
    from napari_cellseg.data.writer import add_to_dataset
    from napari_cellseg.sample_data import list_samples, load_sample

    for key in list_samples():
        image, mask, sample = load_sample(key)
        add_to_dataset(root, sample.id, image, mask, sample.microscope)
        if sample.microscope != "C":
            continue
        h, w = mask.shape
        corners = [(0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)][:crops_per_c_image]
        for index, (y, x) in enumerate(corners):
            crop = (slice(y, y + h // 2), slice(x, x + w // 2))
            add_to_dataset(root, f"{key}_crop{index}", image[crop], mask[crop], "C")
    return root


@pytest.fixture
def tiny_dataset(tmp_path):
    """A dataset folder: 3 A, 1 B, 10 C images (sample data and crops of it)."""
    return build_tiny_dataset(tmp_path / "tiny-dataset")


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
