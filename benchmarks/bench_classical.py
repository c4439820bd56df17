"""Quality and speed of the classical baseline (Otsu + distance watershed).

Reports AP@0.5, AP@0.75, DSB score and AJI on the 6 package samples and on the
dsb2018-dev images of one microscope (default C, the target), if
``../shared/data`` is present. Run: ``python benchmarks/bench_classical.py``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from napari_cellseg.inference.classical import classical_segmentation
from napari_cellseg.io import collapse_grey_rgb, read_image
from napari_cellseg.metrics import dataset_metrics
from napari_cellseg.sample_data import list_samples, load_sample

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def report(title: str, gts, images, names) -> None:
    preds, seconds = [], []
    for image in images:
        start = time.perf_counter()
        preds.append(classical_segmentation(image))
        seconds.append(time.perf_counter() - start)
    per_image, pooled = dataset_metrics(gts, preds, names=names)
    print(
        f"{title}: {pooled.n_images} images, {pooled.n_gt} nuclei; pooled AP@0.5 "
        f"{pooled.at('ap', 0.5):.3f}, AP@0.75 {pooled.at('ap', 0.75):.3f}, DSB {pooled.dsb_score:.3f}, "
        f"AJI {pooled.aji:.3f} | mean of images: AP@0.5 {pooled.image_mean_ap[0]:.3f}, "
        f"DSB {pooled.image_mean_dsb_score:.3f} | median {statistics.median(seconds) * 1000:.0f} ms/image"
    )
    return per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--microscope", default="C")
    parser.add_argument("--data", type=Path, default=SHARED / "dsb2018-dev")
    args = parser.parse_args()

    samples = [load_sample(key) for key in list_samples()]
    per_image = report(
        "package samples", [s[1] for s in samples], [s[0] for s in samples], [s[2].key for s in samples]
    )
    for m in per_image:
        print(f"  {m.name:<18} AP@0.5 {m.at('ap', 0.5):.3f}  DSB {m.dsb_score:.3f}")

    manifest = args.data / "manifest.csv"
    if not manifest.is_file():
        print(f"{args.data} not found: skipping the dev images")
        return
    with open(manifest, newline="") as fh:
        ids = [row["id"] for row in csv.DictReader(fh) if row["microscope"] == args.microscope]
    images = [collapse_grey_rgb(read_image(args.data / "images" / f"{i}.png")) for i in ids]
    gts = [read_image(args.data / "masks" / f"{i}.tif") for i in ids]
    report(f"{args.data.name} microscope {args.microscope}", gts, images, ids)


if __name__ == "__main__":
    main()
