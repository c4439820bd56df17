"""Time the outlines: labels -> GeoJSON or Fiji ROI set (write), and back to labels (read).

On a 4x4 mosaic of the C sample's expert mask (1024x1280, 1552 cells) and on the
mask itself (97 cells); median of several runs, one core. Also checks that the
outlines read back to the same labels.
Run: ``python benchmarks/bench_outlines.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _timing import median_time, ms

from napari_cellseg.data.outlines_import import read_outlines
from napari_cellseg.inference.outlines import write_geojson, write_imagej_rois
from napari_cellseg.sample_data import load_sample


def mosaic(mask: np.ndarray, n: int = 4) -> np.ndarray:
    """``n x n`` copies of ``mask``, each with its own label values."""
    rows = []
    for i in range(n):
        tiles = [
            np.where(mask > 0, mask.astype(np.uint32) + (i * n + j) * int(mask.max()), 0) for j in range(n)
        ]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    _, mask, _ = load_sample("c_histology_1")
    with tempfile.TemporaryDirectory() as tmp:
        for name, labels in (("C sample", mask), ("4x4 mosaic", mosaic(mask))):
            for kind, writer, suffix in (("GeoJSON", write_geojson, ".geojson"), ("ROI set", write_imagej_rois, "_rois.zip")):  # fmt: skip
                path = Path(tmp) / f"{name}{suffix}"
                n = int(labels.max())
                write = median_time(
                    lambda labels=labels, path=path, writer=writer: writer(path, labels), args.repeats
                )
                read = median_time(
                    lambda labels=labels, path=path: read_outlines(path, labels.shape), args.repeats
                )
                back = read_outlines(path, labels.shape).labels
                print(
                    f"{name} {labels.shape}, {n} cells, {kind} {path.stat().st_size / 1e3:.0f} kB: "
                    f"write {ms(write)} = {write[0] / n * 1e3:.2f} ms a cell; "
                    f"read {ms(read)} = {read[0] / n * 1e3:.2f} ms a cell; "
                    f"read back identical: {np.array_equal(back, labels)}"
                )


if __name__ == "__main__":
    main()
