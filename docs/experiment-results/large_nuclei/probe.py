"""The size estimate's first pass at the image's own scale and shrunk by 2 and 4, on dev C
(and 12 train A/B) images at several magnifications (experiments.md step 27).

python probe.py 1,3,5 DATA SPLIT    (then 0.5,2)

One line per image and magnification: the true median diameter, the estimate of the code
it runs with ("est": before step 27 for the outputs kept here), and for each pass the
nuclei found, their median diameter, the mean max probability and the mean P(interior)
where it is above 0.5 (the certainty step 27 picks the pass by).
"""

import json
import sys
import time

import numpy as np
import torch

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.size import resize_image
from napari_cellseg.generators import run_to_end
from napari_cellseg.inference.images import PlaneReader, describe_layout
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.scale import median_diameter
from napari_cellseg.inference.segment import iter_estimate_diameter, watershed_params
from napari_cellseg.inference.tiled import iter_predict_region, make_runner, plane_percentiles
from napari_cellseg.inference.watershed import instances_from_probabilities

torch.set_num_threads(1)
model, config = resolve_model(None, device="cpu")
runner = make_runner(model, config, device="cpu")
params = watershed_params(config)
scales = [float(s) for s in sys.argv[1].split(",")]
ds = CellDataset.open(sys.argv[2])
rows = [line.split(",") for line in open(sys.argv[3]).read().splitlines()[1:]]
subset = {row[0]: row[2] for row in rows}
ids = [i for i in ds.ids if subset.get(i) == "dev" and ds[i].microscope == "C"]
others = [i for i in ds.ids if subset.get(i) == "train" and ds[i].microscope in "AB"]
ids += list(np.random.default_rng(0).choice(others, 12, replace=False))
out = open(f"probe_{'_'.join(map(str, scales))}.jsonl", "w")


def one_pass(plane, percentiles, factor):
    height, width = plane.shape
    crop_h, crop_w = min(height, round(512 / factor)), min(width, round(512 / factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    region = (slice(top, top + crop_h), slice(left, left + crop_w))
    probs = run_to_end(iter_predict_region(runner, plane, config.normalization, percentiles, factor, region))
    labels = instances_from_probabilities(probs, params)
    foreground, interior = (probs[1] + probs[2]) > 0.5, probs[2] > 0.5
    return {
        "n": int(labels.max()),
        "d": median_diameter(labels),
        "conf": float(probs.max(axis=0).mean()),
        "conf_fg": float(probs.max(axis=0)[foreground].mean()) if foreground.any() else None,
        "int_sat": float(probs[2][interior].mean()) if interior.any() else None,
    }


for image_id in ids:
    image0, instances0 = ds.load_image(image_id), ds.load_instances(image_id)
    diameter0 = median_diameter(instances0)
    for scale in scales:
        if max(image0.shape[:2]) * scale > 5200:
            continue
        start = time.time()
        image = resize_image(image0, scale)
        layout = describe_layout(image)
        plane = PlaneReader(image, layout, 0)
        percentiles = plane_percentiles(plane, config.normalization)
        estimate = run_to_end(iter_estimate_diameter(runner, config, image, layout, params=params))
        passes = {str(f): one_pass(plane, percentiles, f) for f in (1.0, 0.5, 0.25)}
        record = {
            "id": image_id[:10], "mic": ds[image_id].microscope, "scale": scale,
            "true": diameter0 * scale if diameter0 else None, "est": estimate, "trials": passes,
            "shape": list(image.shape[:2]), "s": round(time.time() - start, 1),
        }  # fmt: skip
        out.write(json.dumps(record) + "\n")
        out.flush()
        print(json.dumps(record), flush=True)
