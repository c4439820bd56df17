"""Dev C, bundled model: are the outlines too large or too small? The area of each expert cell's
best-matching object (IoU >= 0.5) against the cell's, and the scores with every predicted object
grown or shrunk by 1-2 px (experiments.md step 23).

python outline_probe.py DATA SPLIT
"""

import sys

import numpy as np
from skimage.segmentation import expand_labels

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.metrics import dataset_metrics
from napari_cellseg.training.holdout import holdout_ids


def shrink(labels: np.ndarray) -> np.ndarray:
    """Each object less the pixels whose 4-neighbours are not all its own."""
    p = np.pad(labels, 1, mode="edge")
    keep = (p[:-2, 1:-1] == labels) & (p[2:, 1:-1] == labels) & (p[1:-1, :-2] == labels)
    keep &= p[1:-1, 2:] == labels
    return np.where(keep, labels, 0)


def matched_area_ratios(truths, preds) -> np.ndarray:
    ratios = []
    for truth, pred in zip(truths, preds):
        n_truth, n_pred = int(truth.max()) + 1, int(pred.max()) + 1
        pairs = truth.ravel().astype(np.int64) * n_pred + pred.ravel()
        inter = np.bincount(pairs, minlength=n_truth * n_pred).reshape(n_truth, n_pred)
        truth_area, pred_area = inter.sum(1), inter.sum(0)
        for cell in range(1, n_truth):
            if truth_area[cell] == 0 or n_pred == 1:
                continue
            iou = inter[cell, 1:] / (truth_area[cell] + pred_area[1:] - inter[cell, 1:])
            best = int(np.argmax(iou))
            if iou[best] >= 0.5:
                ratios.append(pred_area[best + 1] / truth_area[cell])
    return np.array(ratios)


def dev_c_predictions(data: str, split: str):
    """The expert's instances, the bundled model's and the ids of dev C (size estimated)."""
    model, config = resolve_model(None, device="cpu")
    dataset = CellDataset.open(data)
    truths, preds, names = [], [], []
    for image_id, _ in holdout_ids(split, dataset, "dev", "C"):
        truths.append(dataset.load_reference_instances(image_id))
        image = dataset.load_image(image_id)
        preds.append(segment_image(model, config, image, device="cpu", keep_probabilities=False).labels)
        names.append(image_id)
    return truths, preds, names


def main() -> None:
    truths, preds, names = dev_c_predictions(*sys.argv[1:3])
    r = matched_area_ratios(truths, preds)
    print(
        f"matched cells {len(r)}: area ratio pred/gt median {np.median(r):.3f} "
        f"(10-90%: {np.percentile(r, 10):.2f}-{np.percentile(r, 90):.2f}), share larger {np.mean(r > 1):.2f}"
    )
    variants = {
        "as predicted": lambda x: x,
        "grown 1 px": lambda x: expand_labels(x, 1),
        "grown 2 px": lambda x: expand_labels(x, 2),
        "shrunk 1 px": shrink,
    }
    for name, change in variants.items():
        _, pooled = dataset_metrics(truths, [change(x) for x in preds], names=names)
        ap = dict(zip(pooled.thresholds, pooled.ap))
        print(
            f"{name:14s} AP@0.5 {ap[0.5]:.3f} AP@0.75 {ap[0.75]:.3f} AP@0.9 {ap[0.9]:.3f} "
            f"DSB {pooled.dsb_score:.3f}"
        )


if __name__ == "__main__":
    main()
