"""Augmented 256x256 crops per second on one core: every step on, then each step alone.

Input: the microscope C sample (256x320 RGB histology, scaled to [0, 1]) and the
B sample (1024x1024 grey brightfield), with uint16 instance labels as target
(as training warps them). Figures are medians over several runs of ``--crops``
crops each, with ``cv2.setNumThreads(1)`` and ``OMP_NUM_THREADS=1``.
Run: ``python benchmarks/bench_augment.py [--runs 7] [--crops 100]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from napari_cellseg.data.augment import AugmentConfig, Augmenter
from napari_cellseg.data.normalize import scale_intensity, standardize
from napari_cellseg.data.targets import instances_to_targets
from napari_cellseg.sample_data import load_sample

STEPS = ["p_flip", "p_rot90", "p_rotate", "p_scale", "p_stain", "p_blur", "p_gamma", "p_contrast", "p_noise"]


def crops_per_second(augmenter: Augmenter, image, labels, runs: int, crops: int, then=None) -> float:
    rng = np.random.default_rng(0)
    for _ in range(5):
        augmenter(image, labels, rng)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(crops):
            out = augmenter(image, labels, rng)
            if then is not None:
                then(*out)
        rates.append(crops / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--crops", type=int, default=100)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    patch = (256, 256)
    all_on = AugmentConfig(patch_size=patch, **{p: 1.0 for p in STEPS})
    for key in ("c_histology_1", "b_brightfield"):
        raw, labels, _ = load_sample(key)
        image = scale_intensity(raw)
        print(f"\n{key}: {raw.shape} {raw.dtype} -> 256x256 crops (one core)")
        rate = crops_per_second(Augmenter(all_on), image, labels, args.runs, args.crops)
        print(f"  every step on:                      {rate:7.1f} crops/s ({1000 / rate:.2f} ms/crop)")

        def to_training_pair(crop, crop_labels):
            standardize(crop)
            instances_to_targets(crop_labels)

        rate = crops_per_second(Augmenter(all_on), image, labels, args.runs, args.crops, to_training_pair)
        print(f"  + instances_to_targets + standardize: {rate:5.1f} crops/s ({1000 / rate:.2f} ms/crop)")
        crop_only = crops_per_second(
            Augmenter.preset("none", patch_size=patch), image, labels, args.runs, args.crops
        )
        print(
            f"  crop only (preset none):            {crop_only:7.1f} crops/s ({1000 / crop_only:.2f} ms/crop)"
        )
        for step in STEPS:
            config = AugmentConfig.preset("none", patch_size=patch, **{step: 1.0})
            rate = crops_per_second(Augmenter(config), image, labels, args.runs, args.crops)
            extra = 1000 / rate - 1000 / crop_only
            print(f"  {step:<12} alone: {rate:7.1f} crops/s, +{max(extra, 0.0):.2f} ms over crop only")


if __name__ == "__main__":
    main()
