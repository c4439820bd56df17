"""Check that a speed-up left the outputs alone: save them before, compare after.

Outputs of the one-click path and of the label conversions, on real images:

- ``segment_image`` with the bundled model and its defaults (nucleus size estimated by a
  first pass): the two microscope C samples, a 1024 x 1024 mosaic of them, and dev images
  of ``../shared/data/dsb2018-dev`` (``--dev-c`` C images, ``--dev-other`` A and B images of
  other sizes), with AP@0.5 and the DSB score against their masks;
- the watershed on 2048 x 2048 probabilities made from a mosaic of the samples' masks
  (class defaults and the bundled model's settings);
- ``instances_to_targets`` (thickness 1 and 2, with its report) and ``targets_to_instances``
  on that 2048 x 2048 mosaic and on every dev mask.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/check_identical.py --save /tmp/before    # old code
    OMP_NUM_THREADS=2 python benchmarks/check_identical.py --compare /tmp/before # new code

The comparison lists every output that differs (labels must be bit-identical; the
probabilities are compared too) and exits with status 1 if any does.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018-dev"


def dev_rows(microscopes: str, count: int) -> list[dict]:
    """The first ``count`` dev rows (by id) of the given microscopes, of distinct sizes for A and B."""
    with open(SHARED / "manifest.csv", newline="") as fh:
        rows = sorted(
            (r for r in csv.DictReader(fh) if r["microscope"] in microscopes), key=lambda r: r["id"]
        )
    if microscopes == "C":
        return rows[:count]
    picked, seen = [], set()
    for row in rows:  # one image per size and microscope first, then the rest
        key = (row["microscope"], row["height"], row["width"])
        if key not in seen:
            seen.add(key)
            picked.append(row)
    picked += [r for r in rows if r not in picked]
    return picked[:count]


def read_dev(row: dict) -> tuple[np.ndarray, np.ndarray]:
    import imageio.v3 as iio
    import tifffile

    image = iio.imread(SHARED / "images" / f"{row['id']}.png")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    return image, tifffile.imread(SHARED / "masks" / f"{row['id']}.tif")


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def collect(args) -> dict[str, np.ndarray]:
    """Every output, by name (labels and targets as arrays, probabilities by digest)."""
    import torch
    from bench_inference import mosaic

    from napari_cellseg.data.targets import instances_to_targets, targets_to_instances
    from napari_cellseg.inference.predict import resolve_model, segment_image
    from napari_cellseg.inference.synthetic import probabilities_from_instances
    from napari_cellseg.inference.watershed import WatershedParams, instances_from_probabilities
    from napari_cellseg.metrics import dataset_metrics
    from napari_cellseg.sample_data import load_sample

    torch.set_num_threads(args.threads)
    model, config = resolve_model(None, device="cpu")
    out: dict[str, np.ndarray] = {}

    def segment(name: str, image: np.ndarray) -> np.ndarray:
        result = segment_image(model, config, image)
        out[f"labels/{name}"] = result.labels
        out[f"probabilities/{name}"] = np.array(digest(result.probabilities))
        out[f"factor/{name}"] = np.array(result.scale_factor)
        return result.labels

    start = time.perf_counter()
    for key in ("c_histology_1", "c_histology_2"):
        segment(key, load_sample(key)[0])
    segment("mosaic1024", mosaic((1024, 1024)))
    if SHARED.is_dir():
        for group, rows in (("C", dev_rows("C", args.dev_c)), ("AB", dev_rows("AB", args.dev_other))):
            gts, preds = [], []
            for row in rows:
                image, mask = read_dev(row)
                preds.append(segment(f"dev/{row['id'][:12]}", image))
                gts.append(mask)
            if rows:
                pooled = dataset_metrics(gts, preds)[1]
                out[f"metrics/dev{group}"] = np.array([pooled.at("ap", 0.5), pooled.dsb_score])
    print(f"segmentation: {time.perf_counter() - start:.1f} s", file=sys.stderr)

    start = time.perf_counter()
    from skimage.segmentation import relabel_sequential

    big = relabel_sequential(mosaic((2048, 2048), masks=True))[0]
    probabilities = probabilities_from_instances(big)
    bundled = WatershedParams.from_dict(config.watershed)
    for name, params in (("default", WatershedParams()), ("bundled", bundled)):
        out[f"watershed2048/{name}"] = instances_from_probabilities(probabilities, params)
    masks = {"mosaic2048": big}
    if SHARED.is_dir():
        for row in dev_rows("ABC", 10_000):
            masks[f"dev/{row['id'][:12]}"] = read_dev(row)[1]
    for name, labels in masks.items():
        for thickness in (1, 2):
            target, report = instances_to_targets(labels, thickness, return_report=True)
            out[f"targets{thickness}/{name}"] = target
            out[f"report{thickness}/{name}"] = np.array(repr(report))
            out[f"instances{thickness}/{name}"] = targets_to_instances(target)
        out[f"targets_norepair/{name}"] = instances_to_targets(labels, repair=False)
    print(f"watershed and targets: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--save", type=Path, help="folder to write the outputs to (before the change)")
    what.add_argument("--compare", type=Path, help="folder of saved outputs to compare with (after it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dev-c", type=int, default=20, help="dev C images to segment (default 20)")
    parser.add_argument("--dev-other", type=int, default=8, help="dev A and B images to segment (default 8)")
    args = parser.parse_args()
    outputs = collect(args)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.save / "outputs.npz", **outputs)
        print(f"saved {len(outputs)} outputs to {args.save / 'outputs.npz'}")
        for name in sorted(k for k in outputs if k.startswith("metrics/")):
            print(f"{name}: AP@0.5 {outputs[name][0]:.4f}, DSB {outputs[name][1]:.4f}")
        return 0
    with np.load(args.compare / "outputs.npz") as saved:
        before = {name: saved[name] for name in saved.files}
    differ = sorted(set(before) ^ set(outputs))
    for name in sorted(set(before) & set(outputs)):
        old, new = before[name], outputs[name]
        if old.shape != new.shape or old.dtype != new.dtype or not np.array_equal(old, new):
            differ.append(name)
    for name in sorted(k for k in outputs if k.startswith("metrics/")):
        print(f"{name}: AP@0.5 {before[name][0]:.4f} -> {outputs[name][0]:.4f}, DSB {before[name][1]:.4f} -> {outputs[name][1]:.4f}")  # fmt: skip
    n_labels = sum(k.startswith("labels/") for k in outputs)
    print(f"compared {len(outputs)} outputs ({n_labels} segmented images): {len(differ)} differ")
    for name in differ:
        print(f"  differs: {name}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
