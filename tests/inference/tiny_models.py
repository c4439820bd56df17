"""A small real segmentation model, briefly fitted on a package sample, for inference tests.

The network is the default architecture (``tf_efficientnet_lite0`` stages,
TF-"same" padding) cut to two stages with a light decoder and random initial
weights, fitted for a few dozen steps on ``c_histology_1`` so that its output
depends on the image content (nuclei vs background) as a trained model's does.
Built once per test session (a few seconds on one CPU thread).
"""

from __future__ import annotations

from functools import cache

import numpy as np

FIT_SAMPLE = "c_histology_1"


@cache
def fitted_model(steps: int = 30, seed: int = 0):
    """``(model, config)``: a CellSegNet fitted on one sample, in eval mode, and its ModelConfig."""
    import torch
    import torch.nn.functional as F

    from napari_cellseg.classes import DEFAULT_CLASS_WEIGHTS
    from napari_cellseg.data.normalize import normalize_image
    from napari_cellseg.data.targets import instances_to_targets
    from napari_cellseg.inference.scale import median_diameter
    from napari_cellseg.models.checkpoint import ModelConfig
    from napari_cellseg.models.m2 import M2Config
    from napari_cellseg.models.surgery import build_model
    from napari_cellseg.sample_data import load_sample

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    m2 = M2Config(arch="tf_efficientnet_lite0", num_classes=0, mean=(0.5,) * 3, std=(0.5,) * 3)
    model = build_model(
        m2, transfer_layers=2, new_layers=2, out_channels=3, decoder_channels=(16, 16, 16), pretrained=False
    )
    config = ModelConfig.for_model(model, loss="weighted-ce")
    image, labels, _ = load_sample(FIT_SAMPLE)
    config.object_diameter = median_diameter(labels)
    x_full = torch.from_numpy(normalize_image(image, config.normalization))
    y_full = torch.from_numpy(instances_to_targets(labels).astype(np.int64))
    weights = torch.tensor(DEFAULT_CLASS_WEIGHTS, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(seed)
    crop, batch = 96, 4
    model.train()
    for _ in range(steps):
        ys = rng.integers(0, x_full.shape[1] - crop, batch)
        xs = rng.integers(0, x_full.shape[2] - crop, batch)
        x = torch.stack([x_full[:, y : y + crop, c : c + crop] for y, c in zip(ys, xs)])
        y = torch.stack([y_full[y : y + crop, c : c + crop] for y, c in zip(ys, xs)])
        loss = F.cross_entropy(model(x), y, weight=weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), config


def save_fitted_model(directory):
    """Write :func:`fitted_model` as a model directory (model.safetensors + config.json)."""
    from napari_cellseg.models.checkpoint import save_model_dir

    model, config = fitted_model()
    return save_model_dir(directory, model, config)


def write_sample_images(folder, keys=("c_histology_1", "c_histology_2")):
    """Copy package sample images into ``folder`` as PNG files named by key; return the paths."""
    import shutil
    from pathlib import Path

    from napari_cellseg.sample_data import list_samples

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for key in keys:
        path = folder / f"{key}.png"
        shutil.copyfile(list_samples()[key].image_path, path)
        paths.append(path)
    return paths
