"""Dev C, as stored and enlarged 2x, with other settings of the size estimate's refinement
(a check that step 22's a-priori choice, tolerance 1.15 and 2 more passes, is not on an edge).

python refine_settings.py DATA SPLIT TOLERANCE PASSES
"""

import sys
from pathlib import Path

import napari_cellseg.inference.segment as segment
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.metrics import image_metrics, pool_metrics
from napari_cellseg.training.holdout import holdout_ids

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from bench_robustness import _resize  # the benchmark's own resizing

data, split, tolerance, passes = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
segment.ESTIMATE_TOLERANCE, segment.ESTIMATE_REFINE_PASSES = tolerance, passes
model, config = resolve_model(None, device="cpu")
dataset = CellDataset.open(data)
pairs = [
    (dataset.load_image(i), dataset.load_reference_instances(i))
    for i, _ in holdout_ids(split, dataset, "dev", "C")
]
for factor in (1, 2):
    metrics = []
    for image, truth in pairs:
        image, truth = _resize(image, truth, factor) if factor != 1 else (image, truth)
        metrics.append(image_metrics(truth, segment_image(model, config, image, device="cpu").labels))
    pooled = pool_metrics(metrics)
    print(f"tolerance {tolerance:g}, {passes} more passes, dev C x{factor}: "
          f"AP@0.5 {pooled.at('ap', 0.5):.3f} DSB {pooled.dsb_score:.3f}", flush=True)  # fmt: skip
