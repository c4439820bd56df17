"""What each kind of error costs a model: AP@0.5 if it were fixed by the expert's cells.

For every held-out C image of a split, the model's instances are compared with
the expert masks (``instance_errors.error_maps``), then each error class is
replaced by the truth in turn: merged predictions by the cells they hold,
split cells' pieces by the cell, spurious objects removed, missed cells added.
The pooled AP@0.5 and DSB score of each repaired set say how far fixing that
kind of error alone could take the model. Run::

    python scripts/error_ceilings.py --data ../shared/data/dsb2018-dev \\
        --split runs/split_C.csv [--subset dev] [--model DIR]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

FIXES = ("none", "merges", "splits", "spurious", "missed", "merges+splits", "all")


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
    from napari_cellseg.inference.segment import segment_image
    from napari_cellseg.instance_errors import error_maps
    from napari_cellseg.metrics import image_metrics, pool_metrics
    from napari_cellseg.training.holdout import holdout_ids

    model, config = resolve_model(args.model, device="cpu")
    dataset = CellDataset.open(args.data)
    scores = {fix: [] for fix in FIXES}
    ids = holdout_ids(args.split, dataset, args.subset, args.microscope)
    for image_id, _group in ids:
        gt = dataset.load_reference_instances(image_id)
        pred = segment_image(model, config, dataset.load_image(image_id), keep_probabilities=False).labels
        errors = error_maps(gt, pred)
        for fix in FIXES:
            scores[fix].append(image_metrics(gt, repaired(gt, pred, errors, fix)))
    print(f"{len(ids)} {args.subset} {args.microscope} images\n")
    print("| fixed by the expert's cells | AP@0.5 | DSB score | TP | FP | FN |\n|---|---|---|---|---|---|")
    for fix in FIXES:
        pooled = pool_metrics(scores[fix])
        print(
            f"| {fix} | {pooled.ap[0]:.3f} | {pooled.dsb_score:.3f} | {pooled.tp[0]} | {pooled.fp[0]} "
            f"| {pooled.fn[0]} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
