"""Dev C, bundled model: each expert cell's best IoU with a predicted object, and the area ratio
of that object to the cell (experiments.md step 21).

python best_iou.py DATA SPLIT
"""

import sys

import numpy as np

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.training.holdout import holdout_ids

data, split = sys.argv[1:3]
model, config = resolve_model(None, device="cpu")
dataset = CellDataset.open(data)
best, ratio, areas = [], [], []
for image_id, _ in holdout_ids(split, dataset, "dev", "C"):
    truth = dataset.load_reference_instances(image_id)
    image = dataset.load_image(image_id)
    pred = segment_image(model, config, image, device="cpu", keep_probabilities=False).labels
    n_truth, n_pred = int(truth.max()) + 1, int(pred.max()) + 1
    pairs = truth.ravel().astype(np.int64) * n_pred + pred.ravel()
    inter = np.bincount(pairs, minlength=n_truth * n_pred).reshape(n_truth, n_pred)
    truth_area, pred_area = inter.sum(1), inter.sum(0)
    for cell in range(1, n_truth):
        if truth_area[cell] == 0:
            continue
        iou = inter[cell, 1:] / (truth_area[cell] + pred_area[1:] - inter[cell, 1:])
        j = int(np.argmax(iou)) if len(iou) else -1
        b = float(iou[j]) if j >= 0 else 0.0
        best.append(b)
        areas.append(truth_area[cell])
        ratio.append(pred_area[j + 1] / truth_area[cell] if b > 0 else np.nan)
best, ratio, areas = np.array(best), np.array(ratio), np.array(areas)
edges = [0, 0.01, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01]
counts, _ = np.histogram(best, edges)
print("expert cells", len(best))
print(" ".join(f"[{a:.2f},{b:.2f}):{n}" for a, b, n in zip(edges, edges[1:], counts)))
for lo, hi in ((0.3, 0.5), (0.5, 0.7), (0.7, 1.01)):
    sel = (best >= lo) & (best < hi)
    r = ratio[sel]
    print(f"IoU [{lo},{hi}): n={sel.sum()} area ratio pred/gt median {np.nanmedian(r):.2f}, "
          f"share pred larger {np.mean(r > 1):.2f}, share >1.5x {np.mean(r > 1.5):.2f}, "
          f"share <0.67x {np.mean(r < 0.67):.2f}, median gt area {np.median(areas[sel]):.0f}")  # fmt: skip
