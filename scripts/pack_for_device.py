"""Pack a dataset small enough to travel to a device machine (64 MiB with the repo).

    .venv/bin/python scripts/pack_for_device.py --data ../shared/data/dsb2018-dev \
        --split split_C.csv --out .gpu/data

Lossless for every image a training run reads: grey images stored as RGB are
re-encoded as one-channel PNGs (the dataset loads both as the same grey array),
colour images are copied. The test rows' images become black images of the same
size and mode, so the manifest stays valid while the test pixels stay behind:
score the test split where the real data is. Every train and dev image is then
loaded from both folders and checked to be identical.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from napari_cellseg.data.dataset import CellDataset


def _pack_image(source: Path, target: Path, blank: bool) -> None:
    with Image.open(source) as image:
        pixels = np.asarray(image)
        mode = image.mode
    if blank:
        Image.fromarray(np.zeros_like(pixels), mode).save(target, optimize=True)
    elif pixels.ndim == 3 and pixels.shape[-1] == 3 and (pixels == pixels[..., :1]).all():
        Image.fromarray(np.ascontiguousarray(pixels[..., 0])).save(target, optimize=True)
    else:
        shutil.copy2(source, target)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset folder (images/, masks/, manifest.csv)")
    parser.add_argument("--split", required=True, help="split CSV (id, subset)")
    parser.add_argument("--out", required=True, help="folder to write (must not exist)")
    args = parser.parse_args()
    source, out = Path(args.data), Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists; remove it first")
    with open(args.split, newline="") as file:
        subsets = {row["id"]: row["subset"] for row in csv.DictReader(file)}
    (out / "images").mkdir(parents=True)
    shutil.copytree(source / "masks", out / "masks")
    shutil.copy2(source / "manifest.csv", out / "manifest.csv")
    for path in sorted((source / "images").iterdir()):
        if path.suffix.lower() != ".png":
            sys.exit(f"{path}: only PNG images are packed")
        _pack_image(path, out / "images" / path.name, blank=subsets.get(path.stem) == "test")

    original, packed = CellDataset.open(source), CellDataset.open(out)
    checked = 0
    for image_id, subset in subsets.items():
        if subset == "test":
            continue
        a, b = original.load_image(image_id), packed.load_image(image_id)
        if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b):
            sys.exit(f"{image_id}: packed pixels differ from {source}")
        checked += 1
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"{out}: {checked} train/dev images identical to {source}; test images blanked; {size / 2**20:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
