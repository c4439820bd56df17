"""What each kind of error costs a model: AP@0.5 if it were fixed by the expert's cells.

For every held-out C image of a split, the model's instances are compared with
the expert masks (``instance_errors.error_maps``), then each error class is
replaced by the truth in turn: merged predictions by the cells they hold,
split cells' pieces by the cell, spurious objects removed, missed cells added.
The pooled AP@0.5 and DSB score of each repaired set say how far fixing that
kind of error alone could take the model. A last row keeps the network's
foreground and watershed elevation but seeds the watershed with the expert's
markers (each cell's core: its pixels at least half its deepest distance from
its edge): what perfect markers alone would give. Run::

    python scripts/error_ceilings.py --data ../shared/data/dsb2018-dev \\
        --split runs/split_C.csv [--subset dev] [--model DIR]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

FIXES = ("none", "merges", "splits", "spurious", "missed", "merges+splits", "all")
MARKERS_ROW = "expert markers, network foreground"
CORE_FRACTION = 0.5


def expert_cores(gt: np.ndarray, fraction: float = CORE_FRACTION) -> np.ndarray:
    """int32 markers: each cell's pixels at >= ``fraction`` of its deepest distance to its edge."""
    from scipy import ndimage as ndi

    cores = np.zeros(gt.shape, np.int32)
    for cell, box in enumerate(ndi.find_objects(gt), 1):
        if box is None:
            continue
        inside = gt[box] == cell
        distance = ndi.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        cores[box][inside & (distance >= fraction * distance.max())] = cell
    return cores


def seeded_by_expert(gt: np.ndarray, probabilities: np.ndarray, params) -> np.ndarray:
    """The network's watershed with the expert's cores as markers (inside its foreground)."""
    from napari_cellseg.inference import watershed as ws

    mask = ws.foreground_mask(probabilities, params)
    labels = ws.watershed_from_markers(
        ws.elevation_from_probabilities(probabilities, params), expert_cores(gt) * mask, mask,
        compactness=params.compactness, keep_unmarked=False,
    )  # fmt: skip
    return ws.finalize_labels(labels, params.min_size)


def repaired(gt: np.ndarray, pred: np.ndarray, errors: dict, fix: str) -> np.ndarray:
    """``pred`` with the error classes named in ``fix`` replaced by the ground truth."""
    out = pred.astype(np.int64)
    next_id = int(out.max()) + 1

    def paste(cell_ids) -> None:
        nonlocal next_id
        for cell in cell_ids:
            out[gt == cell] = next_id
            next_id += 1

    every = fix == "all"
    if every or "merges" in fix:
        out[np.isin(out, errors["merged_ids"])] = 0
        paste(errors["merged_gt_ids"])
    if every or "splits" in fix:
        out[np.isin(out, errors["split_pred_ids"])] = 0
        paste(errors["split_ids"])
    if every or fix == "spurious":
        out[np.isin(out, errors["false_positive_ids"])] = 0
    if every or fix == "missed":
        paste(errors["false_negative_ids"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--subset", default="dev", help="split subset to score (default dev)")
    parser.add_argument("--microscope", default="C")
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    args = parser.parse_args()

    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.segment import segment_image, watershed_params
    from napari_cellseg.instance_errors import error_maps
    from napari_cellseg.metrics import image_metrics, pool_metrics
    from napari_cellseg.training.holdout import holdout_ids

    model, config = resolve_model(args.model, device="cpu")
    dataset = CellDataset.open(args.data)
    params = watershed_params(config)
    scores = {fix: [] for fix in (*FIXES, MARKERS_ROW)}
    ids = holdout_ids(args.split, dataset, args.subset, args.microscope)
    for image_id, _group in ids:
        gt = dataset.load_reference_instances(image_id)
        result = segment_image(model, config, dataset.load_image(image_id))
        pred = result.labels
        errors = error_maps(gt, pred)
        for fix in FIXES:
            scores[fix].append(image_metrics(gt, repaired(gt, pred, errors, fix)))
        scores[MARKERS_ROW].append(image_metrics(gt, seeded_by_expert(gt, result.probabilities, params)))
    print(f"{len(ids)} {args.subset} {args.microscope} images\n")
    print("| fixed by the expert's cells | AP@0.5 | DSB score | TP | FP | FN |\n|---|---|---|---|---|---|")
    for fix, row in scores.items():
        pooled = pool_metrics(row)
        print(
            f"| {fix} | {pooled.ap[0]:.3f} | {pooled.dsb_score:.3f} | {pooled.tp[0]} | {pooled.fp[0]} "
            f"| {pooled.fn[0]} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
