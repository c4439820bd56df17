"""Dev C per group: the bundled model with each image's nucleus size estimated, and with the
expert's median diameter given instead (AP@0.5 pooled per group; experiments.md step 21).

python size_by_group.py DATA SPLIT
"""

import sys

import numpy as np

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.scale import median_diameter
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.metrics import image_metrics, pool_metrics
from napari_cellseg.training.holdout import holdout_ids

data, split = sys.argv[1:3]
model, config = resolve_model(None, device="cpu")
dataset = CellDataset.open(data)
estimated, expert, groups = [], [], {}
for image_id, group in holdout_ids(split, dataset, "dev", "C"):
    truth, image = dataset.load_reference_instances(image_id), dataset.load_image(image_id)
    true_d = median_diameter(truth)
    own = segment_image(model, config, image, device="cpu", keep_probabilities=False, diameter=0)
    given = segment_image(model, config, image, device="cpu", keep_probabilities=False, diameter=true_d)
    pair = (image_metrics(truth, own.labels), image_metrics(truth, given.labels), true_d, own.diameter)
    estimated.append(pair[0])
    expert.append(pair[1])
    groups.setdefault(group[:9], []).append(pair)
for group, items in groups.items():
    ap_est = pool_metrics([i[0] for i in items]).at("ap", 0.5)
    ap_given = pool_metrics([i[1] for i in items]).at("ap", 0.5)
    print(f"{group} n={len(items)} true d {np.median([i[2] for i in items]):.1f} "
          f"est d {np.median([i[3] for i in items]):.1f} AP est {ap_est:.3f} oracle {ap_given:.3f}")  # fmt: skip
pe, po = pool_metrics(estimated), pool_metrics(expert)
print(f"dev C pooled: estimated {pe.at('ap', 0.5):.3f} / {pe.dsb_score:.3f}; "
      f"expert diameter {po.at('ap', 0.5):.3f} / {po.dsb_score:.3f}")  # fmt: skip
