"""Tiles against one pass on a SIZE x SIZE mosaic of the two C samples, at scale factor 0.9675.

Run: ``python mosaic_tiles.py 2048``. The masks are the samples' own, tiled the same way.
"""

import sys
import warnings
from pathlib import Path

import numpy as np


def main(size: int) -> None:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    from bench_big_image import KEYS, tiled

    from napari_cellseg.inference.predict import segment_image
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.metrics import image_metrics
    from napari_cellseg.sample_data import load_sample

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    model, config = resolve_model(None, device="cpu")
    image = tiled([load_sample(k)[0][:256, :320] for k in KEYS], size)
    masks, offset = np.zeros((size, size), np.int64), 0
    for i in range(-(-size // 256)):
        for j in range(-(-size // 320)):
            piece = load_sample(KEYS[(i + j) % 2])[1][:256, :320].astype(np.int64)
            y, x = i * 256, j * 320
            h, w = min(256, size - y), min(320, size - x)
            masks[y : y + h, x : x + w] = np.where(piece[:h, :w] > 0, piece[:h, :w] + offset, 0)
            offset += int(piece.max())
    diameter = config.object_diameter / 0.9675
    one_pass = segment_image(model, config, image, diameter=diameter, tile_size=2100, overlap=0)
    for tile, overlap in ((2100, 0), (512, 64), (384, 64), (256, 64)):
        result = segment_image(model, config, image, diameter=diameter, tile_size=tile, overlap=overlap)
        vs_masks = image_metrics(masks, result.labels, thresholds=(0.5,)).at("ap", 0.5)
        vs_one = image_metrics(one_pass.labels, result.labels, thresholds=(0.5, 0.9))
        print(f"tile {tile}: AP50 vs masks {vs_masks:.4f}; vs one pass AP50 {vs_one.at('ap', 0.5):.4f} "
              f"AP90 {vs_one.at('ap', 0.9):.4f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]))
