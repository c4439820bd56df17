"""Time instances_to_targets, targets_to_instances and the normalisation, one core.

Cases: the 256x320 microscope C sample (97 nuclei), the 1024x1024 B sample,
a synthetic 1024x1024 image with 500 touching cells, and (when ``../shared/data``
is there) the slowest kind of real mask, a 1024x1024 dev image with ~100 nuclei.
Normalisation: ``normalize_image`` of the 1024x1024 sample and
``compute_percentiles`` of a 10000x10000 uint16 dask array.
Medians over several runs. Run: ``python benchmarks/bench_targets.py [--repeats 15]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2
import numpy as np
from _synthetic_cells import random_cells

from napari_cellseg.data.normalize import compute_percentiles, normalize_image
from napari_cellseg.data.targets import instances_to_targets, targets_to_instances
from napari_cellseg.sample_data import load_sample

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018-dev"


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def label_images() -> dict[str, np.ndarray]:
    cases = {
        "C sample 256x320, 97 nuclei": load_sample("c_histology_1")[1],
        "B sample 1024x1024, 57 nuclei": load_sample("b_brightfield")[1],
        "synthetic 1024x1024, 500 touching cells": random_cells((1024, 1024), 500),
    }
    manifest = SHARED / "manifest.csv"
    if manifest.is_file():
        import csv

        import tifffile

        with open(manifest, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if (r["height"], r["width"]) == ("1024", "1024")]
        row = max(rows, key=lambda r: int(r["n_nuclei"]))
        cases[f"dev mask 1024x1024, {row['n_nuclei']} nuclei"] = tifffile.imread(
            SHARED / "masks" / f"{row['id']}.tif"
        )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    for name, labels in label_images().items():
        print(f"\n{name}")
        target = instances_to_targets(labels)
        cases = {
            "instances_to_targets (repair, default)": (instances_to_targets, (labels,), {}),
            "instances_to_targets (repair=False)": (instances_to_targets, (labels,), {"repair": False}),
            "instances_to_targets thickness=2": (instances_to_targets, (labels, 2), {}),
            "targets_to_instances": (targets_to_instances, (target,), {}),
        }
        for label, (fn, fn_args, kwargs) in cases.items():
            ms = median_ms(lambda fn=fn, a=fn_args, k=kwargs: fn(*a, **k), args.repeats)
            print(f"  {label:<40} {ms:7.2f} ms")

    image = load_sample("b_brightfield")[0]
    print(
        f"\nnormalize_image 1024x1024 uint8 grey: {median_ms(lambda: normalize_image(image), args.repeats):.1f} ms"
    )
    rgb = load_sample("c_histology_1")[0]
    print(
        f"normalize_image 256x320 uint8 RGB:    {median_ms(lambda: normalize_image(rgb), args.repeats):.1f} ms"
    )
    import dask.array as da

    big = da.random.default_rng(0).integers(0, 65535, size=(10000, 10000), chunks=2048, dtype=np.uint16)
    big = big.persist()  # time the percentiles, not the random generator
    ms = median_ms(lambda: compute_percentiles(big), 3)
    print(f"compute_percentiles 10000x10000 uint16 dask (1M-pixel strided subsample): {ms:.0f} ms")


if __name__ == "__main__":
    main()
