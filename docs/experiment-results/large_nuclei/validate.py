"""The size estimate of the code as it stands on the probe's images and magnifications: how often it
is off by more than 1.5x, against the estimate before step 27 (the probe's "est").

python validate.py DATA
"""

import glob
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.size import resize_image
from napari_cellseg.generators import run_to_end
from napari_cellseg.inference.images import describe_layout
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import iter_estimate_diameter
from napari_cellseg.inference.tiled import make_runner

model, config = resolve_model(None, device="cpu")
runner = make_runner(model, config, device="cpu")
torch.set_num_threads(1)
ds = CellDataset.open(sys.argv[1])
full = {i[:10]: i for i in ds.ids}
off = defaultdict(lambda: [0, 0, 0])
for path in sorted(glob.glob(str(Path(__file__).parent / "probe_*.jsonl"))):
    for line in open(path):
        r = json.loads(line)
        if not r["true"]:
            continue
        image = resize_image(ds.load_image(full[r["id"]]), r["scale"])
        est = run_to_end(iter_estimate_diameter(runner, config, image, describe_layout(image)))
        far = np.log(1.5)
        row = off[r["scale"]]
        row[0] += 1
        row[1] += (r["est"] is None) or abs(np.log(r["est"] / r["true"])) > far
        row[2] += (est is None) or abs(np.log(est / r["true"])) > far
for scale in sorted(off):
    n, before, now = off[scale]
    print(f"x{scale:g}: {n} images, estimate off by > 1.5x: before step 27 {before}, now {now}", flush=True)
