"""Time the watershed on stored probabilities: 1024x1024, ~500 cells, one core.

The Segment widget re-runs it when a slider moves, so the target is < 0.3 s.
Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_watershed.py [--repeats 9]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic_cells import random_cells
from _timing import median_time, ms

from napari_cellseg.inference.synthetic import probabilities_from_instances
from napari_cellseg.inference.watershed import (
    WatershedParams,
    elevation_from_probabilities,
    instances_from_probabilities,
    markers_from_probabilities,
)
from napari_cellseg.metrics import image_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--cells", type=int, default=500)
    args = parser.parse_args()
    gt = random_cells((args.size, args.size), args.cells)
    probabilities = probabilities_from_instances(gt)
    print(f"image {gt.shape}, {int(gt.max())} cells, probabilities {probabilities.dtype}")
    default = WatershedParams()
    cases = {
        "default": default,
        "compactness=0.01": WatershedParams(compactness=0.01),
        "marker_smoothing=1": WatershedParams(marker_smoothing=1.0),
        "split_height=1": WatershedParams(split_height=1.0),
        "peak_height=0.3, smoothing 1, threshold 0.2 (bundled model)": WatershedParams(
            interior_threshold=0.2, marker_smoothing=1.0, peak_height=0.3
        ),
    }
    for name, params in cases.items():
        times = median_time(lambda p=params: instances_from_probabilities(probabilities, p), args.repeats)
        labels = instances_from_probabilities(probabilities, params)
        m = image_metrics(gt, labels)
        print(
            f"instances_from_probabilities [{name}]: {ms(times)} "
            f"over {args.repeats} runs; {int(labels.max())} instances, "
            f"AP@0.5 {m.at('ap', 0.5):.3f}"
        )
    markers = median_time(lambda: markers_from_probabilities(probabilities, default), args.repeats)
    elevation = median_time(lambda: elevation_from_probabilities(probabilities, default), args.repeats)
    print(f"  of which markers {ms(markers)}, elevation {ms(elevation)}")


if __name__ == "__main__":
    main()
