"""Dev + test C with tiles forced (tile 256 or 192): overlaps against one pass and the masks.

python seams_c.py DATA SPLIT
"""

import csv
import sys

import imageio.v3 as iio
import tifffile
import torch

from napari_cellseg.inference.predict import resolve_model, segment_image
from napari_cellseg.metrics import dataset_metrics

TILINGS = {
    "whole": {"tile_size": 1024},
    "t256 ov64": {"tile_size": 256, "overlap": 64},
    "t256 ov128": {"tile_size": 256, "overlap": 128},
    "t192 ov64": {"tile_size": 192, "overlap": 64},
}

torch.set_num_threads(2)
data, split = sys.argv[1:3]
ids = [r["id"] for r in csv.DictReader(open(split)) if r["subset"] in ("dev", "test")]
model, config = resolve_model(None, device="cpu")
out = {name: [] for name in TILINGS}
gts = []
for image_id in ids:
    image = iio.imread(f"{data}/images/{image_id}.png")[..., :3]
    gts.append(tifffile.imread(f"{data}/masks/{image_id}.tif"))
    for name, tiling in TILINGS.items():
        result = segment_image(
            model, config, image, keep_probabilities=False, diameter=config.object_diameter, **tiling
        )
        out[name].append(result.labels)
for name in TILINGS:
    _, masks = dataset_metrics(gts, out[name])
    _, one_pass = dataset_metrics(out["whole"], out[name])
    print(
        f"{name}: {len(ids)} images at the training scale, vs masks AP@0.5 {masks.at('ap', 0.5):.4f} "
        f"DSB {masks.dsb_score:.4f}; vs one pass AP@0.5 {one_pass.at('ap', 0.5):.4f} AP@0.9 {one_pass.at('ap', 0.9):.4f}"
    )
