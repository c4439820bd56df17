"""The images of 1 MP or more: default tiles (512) with overlap 64 or 128 against one pass and the masks.

python seams_gt.py DATA
"""

import csv
import sys
import time

import imageio.v3 as iio
import tifffile
import torch

from napari_cellseg.inference.predict import resolve_model, segment_image
from napari_cellseg.metrics import dataset_metrics

TILINGS = {
    "whole": {"tile_size": 4096},
    "ov64": {"tile_size": 512, "overlap": 64},
    "ov128": {"tile_size": 512, "overlap": 128},
}

torch.set_num_threads(2)
data = sys.argv[1]
rows = [
    r for r in csv.DictReader(open(f"{data}/manifest.csv")) if int(r["height"]) * int(r["width"]) >= 10**6
]
print(len(rows), "images of 1 MP or more:", sorted({r["microscope"] for r in rows}))
model, config = resolve_model(None, device="cpu")
out = {name: [] for name in TILINGS}
seconds = dict.fromkeys(TILINGS, 0.0)
gts = []
for row in rows:
    image = iio.imread(f"{data}/images/{row['id']}.png")
    image = image[..., :3] if image.ndim == 3 else image
    gts.append(tifffile.imread(f"{data}/masks/{row['id']}.tif"))
    for name, tiling in TILINGS.items():
        start = time.perf_counter()
        out[name].append(segment_image(model, config, image, keep_probabilities=False, **tiling).labels)
        seconds[name] += time.perf_counter() - start
for name in TILINGS:
    _, masks = dataset_metrics(gts, out[name])
    _, one_pass = dataset_metrics(out["whole"], out[name])
    print(
        f"{name}: {len(rows)} images, vs masks AP@0.5 {masks.at('ap', 0.5):.4f} DSB {masks.dsb_score:.4f}; "
        f"vs one pass AP@0.5 {one_pass.at('ap', 0.5):.4f}; {seconds[name]:.1f} s"
    )
