"""Split files for the learning curve (experiments.md step 24): split_C.csv less the train C
images not drawn. k of the 42 train C images, drawn at random (seed S); dev and test unchanged.

python make_splits.py SPLIT SEED K [K ...]   -> split_kK.csv (seed 0) or split_kK_sS.csv
"""

import csv
import random
import sys

split, seed, ks = sys.argv[1], int(sys.argv[2]), [int(k) for k in sys.argv[3:]]
rows = list(csv.DictReader(open(split)))
train_c = [r["id"] for r in rows if r["subset"] == "train" and r["microscope"] == "C"]
order = train_c[:]
random.Random(seed).shuffle(order)
for k in ks:
    keep = set(order[:k])
    kept = [
        r for r in rows if not (r["subset"] == "train" and r["microscope"] == "C" and r["id"] not in keep)
    ]
    name = f"split_k{k}.csv" if seed == 0 else f"split_k{k}_s{seed}.csv"
    with open(name, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    groups = {r["group"] for r in rows if r["id"] in keep}
    print(f"{name}: {k} train C images from {len(groups)} of the train C groups")
