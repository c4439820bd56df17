"""Per-image watershed choice, oracle bound: dev C, PEAK_GRID, pooled AP@0.5.

python oracle.py DATA SPLIT dev   (about 6 min on one thread; writes oracle_counts_dev.npy)

If choosing each image's own parameters (with the ground truth, an upper bound) gains
little over one setting for all, adaptive per-image parameters are not worth a predictor.
"""

import json
import sys

import numpy as np
import torch

from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.inference.tune_watershed import PEAK_GRID, grid_points, load_tuning_images
from napari_cellseg.inference.watershed_params import WatershedParams
from napari_cellseg.metrics import image_metrics

torch.set_num_threads(1)
data, split, subset = sys.argv[1], sys.argv[2], sys.argv[3]
net, cfg = resolve_model(None, device="cpu")
ids, images, gts = load_tuning_images(data, split, subset=subset, microscope="C")
base = WatershedParams.from_dict(cfg.watershed) if isinstance(cfg.watershed, dict) else cfg.watershed
points = grid_points(PEAK_GRID, base)
points = [base] + [p for p in points if p != base]
counts = np.zeros((len(points), len(ids), 3), int)  # tp, fp, fn at 0.5
for j, (image, gt) in enumerate(zip(images, gts)):
    for i, p in enumerate(points):
        labels = segment_image(net, cfg, image, p, keep_probabilities=False).labels
        m = image_metrics(gt, labels, thresholds=(0.5,))
        counts[i, j] = m.tp[0], m.fp[0], m.fn[0]
    print(j, ids[j], flush=True)
np.save(f"oracle_counts_{subset}.npy", counts)


def ap(c):
    tp, fp, fn = c.sum(0)
    return tp / (tp + fp + fn)


pooled = [ap(counts[i]) for i in range(len(points))]
best = int(np.argmax(pooled))
choice = np.full(len(ids), best)
improved = True
while improved:
    improved = False
    for j in range(len(ids)):
        cur = ap(counts[choice, np.arange(len(ids))])
        for i in range(len(points)):
            trial = choice.copy()
            trial[j] = i
            if ap(counts[trial, np.arange(len(ids))]) > cur + 1e-12:
                choice, cur, improved = trial, ap(counts[trial, np.arange(len(ids))]), True
print(
    json.dumps(
        {
            "bundled": pooled[0],
            "best_one_setting": pooled[best],
            "best_params": str(points[best]),
            "oracle_per_image": ap(counts[choice, np.arange(len(ids))]),
            "distinct_choices": len(set(choice.tolist())),
        },
        indent=1,
    )
)
