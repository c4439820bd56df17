"""Per-slide choice of the watershed, oracle bound, from oracle.py's counts.

python oracle_groups.py DATA SPLIT   (after python oracle.py DATA SPLIT dev, in this folder)
"""

import csv
import sys

import numpy as np

from napari_cellseg.inference.tune_watershed import load_tuning_images

counts = np.load("oracle_counts_dev.npy")  # (settings, images, [tp, fp, fn]) at IoU 0.5
ids, _, _ = load_tuning_images(sys.argv[1], sys.argv[2], subset="dev", microscope="C")
rows = {r["id"]: r for r in csv.DictReader(open(sys.argv[2]))}
groups = [rows[i]["group"] for i in ids]
n, settings = len(ids), range(counts.shape[0])


def ap(c):
    tp, fp, fn = c.sum(0)
    return tp / (tp + fp + fn)


print("bundled", round(ap(counts[0]), 3))
print("groups", len(set(groups)))
per_group = np.zeros(n, int)  # each slide its own best setting (knowing its masks)
held_out = np.zeros(n, int)  # each slide the best setting of the other slides
for g in sorted(set(groups)):
    idx = [j for j in range(n) if groups[j] == g]
    rest = [j for j in range(n) if groups[j] != g]
    per_group[idx] = max(settings, key=lambda i: counts[i, idx, 0].sum() - counts[i, idx, 1:].sum())
    held_out[idx] = max(settings, key=lambda i: ap(counts[i, rest]))
print("per-group oracle", round(ap(counts[per_group, np.arange(n)]), 3))
print("leave-one-group-out global", round(ap(counts[held_out, np.arange(n)]), 3))
