"""Time the metrics on a 1000x1000 image with hundreds of cells.

``image_metrics`` (overlap + matching at 10 thresholds + AJI), ``error_maps``
and ``merged_touching_share``; median of several runs, one core.
Run: ``python benchmarks/bench_metrics.py [--repeats 9] [--cells 500]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _synthetic_cells import random_cells
from _timing import median_time, ms

from napari_cellseg.metrics import (
    error_maps,
    image_metrics,
    label_overlap,
    match_instances,
    merged_touching_share,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--size", type=int, default=1000)
    args = parser.parse_args()
    gt = random_cells((args.size, args.size), args.cells)
    # A prediction with every kind of error: shifted, a few cells merged and split.
    pred = np.roll(gt, 2, axis=1).astype(np.uint32)
    pred[pred % 17 == 0] = 0
    pred[(pred > 0) & (pred % 13 == 0) & (np.arange(args.size)[None, :] % 20 < 10)] += 100_000
    print(f"image {gt.shape}, {int(gt.max())} gt cells, {len(np.unique(pred)) - 1} predicted")
    overlap = label_overlap(gt, pred)
    cases = {
        "image_metrics (10 thresholds + AJI)": lambda: image_metrics(gt, pred),
        "label_overlap": lambda: label_overlap(gt, pred),
        "match_instances at 0.3 (Hungarian path)": lambda: match_instances(overlap, 0.3),
        "error_maps": lambda: error_maps(gt, pred),
        "merged_touching_share": lambda: merged_touching_share(gt, pred),
    }
    for name, fn in cases.items():
        print(f"{name}: {ms(median_time(fn, args.repeats))} over {args.repeats} runs")
    m = image_metrics(gt, pred)
    print(f"(AP@0.5 {m.at('ap', 0.5):.3f}, DSB {m.dsb_score:.3f}, AJI {m.aji:.3f})")


if __name__ == "__main__":
    main()
