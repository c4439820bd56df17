"""Tiles around random errors of a model, to judge them by eye (a label audit).

Each tile is 80x80 px around one false positive (red), false negative (blue),
merge (yellow: one predicted object over two or more cells) or split cell
(magenta: the predicted pieces of one expert cell) of
``instance_errors.error_maps``, with the expert's outlines in green, next to
the same patch without outlines. Whether an error is the model's or the mask's
is for the reader to decide::

    python scripts/error_audit_tiles.py --data ../shared/data/dsb2018-dev \\
        --split runs/split_C.csv --kind false_positive --out fp_tiles.png
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

TILE = 80
COLOURS = {
    "false_positive": (255, 0, 0), "false_negative": (0, 80, 255), "merged": (255, 220, 0),
    "split": (255, 0, 255),
}  # fmt: skip
PREDICTED_KINDS = ("false_positive", "merged")  # the others are expert cells
PLURALS = {
    "false_positive": "false positives", "false_negative": "false negatives", "merged": "merges",
    "split": "split cells",
}  # fmt: skip


def tile(image: np.ndarray, truth: np.ndarray, error: np.ndarray, colour) -> np.ndarray:
    """The patch around ``error`` (a mask or labels), plain and with outlines, side by side."""
    from skimage.segmentation import find_boundaries

    # images smaller than a tile are padded so that every tile has the same shape
    pad = [(0, max(0, TILE - n)) for n in image.shape[:2]]
    image = np.pad(image, [*pad, (0, 0)])
    truth, error = np.pad(truth, pad), np.pad(error, pad)
    ys, xs = np.nonzero(error)
    y0 = int(np.clip(ys.mean() - TILE // 2, 0, max(0, image.shape[0] - TILE)))
    x0 = int(np.clip(xs.mean() - TILE // 2, 0, max(0, image.shape[1] - TILE)))
    outlined = image.copy()
    outlined[find_boundaries(truth)] = (0, 200, 0)
    outlined[find_boundaries(error)] = colour
    window = (slice(y0, y0 + TILE), slice(x0, x0 + TILE))
    return np.concatenate([image[window], outlined[window]], axis=1)


def split_pieces(truth: np.ndarray, labels: np.ndarray, errors: dict, cell: int) -> np.ndarray:
    """The predicted pieces of the split expert ``cell``, as labels (0 elsewhere)."""
    pieces = np.intersect1d(np.unique(labels[truth == cell]), errors["split_pred_ids"])
    return np.where(np.isin(labels, pieces), labels, 0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--kind", choices=sorted(COLOURS), default="false_positive")
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--subset", default="dev")
    parser.add_argument("--microscope", default="C")
    parser.add_argument("--count", type=int, default=24, help="number of tiles, a multiple of 4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from PIL import Image

    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.segment import segment_image
    from napari_cellseg.instance_errors import error_maps
    from napari_cellseg.training.holdout import holdout_ids

    dataset = CellDataset.open(args.data)
    model, config = resolve_model(args.model, device="cpu")
    found = []
    for image_id, _ in holdout_ids(args.split, dataset, args.subset, args.microscope):
        image = np.asarray(dataset.load_image(image_id))
        image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
        truth = dataset.load_reference_instances(image_id)
        labels = segment_image(model, config, image, keep_probabilities=False).labels
        errors = error_maps(truth, labels)
        if args.kind == "split":  # the cell's predicted pieces, as labels so the cuts show
            found += [(image, truth, split_pieces(truth, labels, errors, c)) for c in errors["split_ids"]]
            continue
        source = labels if args.kind in PREDICTED_KINDS else truth
        found += [(image, truth, source == i) for i in errors[f"{args.kind}_ids"]]
    if len(found) < 4:
        print(f"error: only {len(found)} {PLURALS[args.kind]} found", file=sys.stderr)
        return 2
    count = min(args.count, len(found)) // 4 * 4
    picked = np.random.default_rng(args.seed).choice(len(found), size=count, replace=False)
    tiles = [tile(*found[k], COLOURS[args.kind]) for k in picked]
    rows = [np.concatenate(tiles[r : r + 4], axis=1) for r in range(0, count, 4)]
    Image.fromarray(np.concatenate(rows, axis=0).astype(np.uint8)).save(args.out)
    print(f"{args.out}: {count} of {len(found)} {PLURALS[args.kind]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
