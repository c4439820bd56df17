"""Do fp16-rounded probabilities give the same cells? Dev C, bundled model, before and since step 26.

python f16_consistency.py DATA SPLIT
"""

import csv
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import eval_markers_lib as rules

import napari_cellseg.inference.watershed as ws
from napari_cellseg.inference.predict import predict_probabilities
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import watershed_params
from napari_cellseg.metrics import dataset_metrics

torch.set_num_threads(2)
data, split = Path(sys.argv[1]), sys.argv[2]
net, cfg = resolve_model(None, device="cpu")
params = watershed_params(cfg)
ids = [r["id"] for r in csv.DictReader(open(split)) if r["subset"] == "dev"]
probs = [predict_probabilities(net, cfg, iio.imread(data / "images" / f"{i}.png")[..., :3]) for i in ids]
for name in ("each top (before)", "tops by plateau (since)"):
    ws._h_maxima_markers = rules.RULES[name]
    a = [ws.instances_from_probabilities(p, params) for p in probs]
    b = [ws.instances_from_probabilities(p.astype(np.float16).astype(np.float32), params) for p in probs]
    _, pooled = dataset_metrics(a, b)
    print(
        f"{name}: fp32 vs fp16 probabilities AP@0.5 {pooled.at('ap', 0.5):.4f} AP@0.9 {pooled.at('ap', 0.9):.4f}"
    )
