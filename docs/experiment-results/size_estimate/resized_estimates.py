"""Dev C resized by FACTOR: the nucleus size estimate on the resized image against FACTOR times
the estimate on the original, per image, and AP@0.5 / DSB with each (experiments.md step 22).

python resized_estimates.py DATA SPLIT FACTOR [--refine-passes N]   (N: 0 = the first pass only)
"""

import argparse
import sys
from pathlib import Path

import numpy as np

import napari_cellseg.inference.segment as segment
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.metrics import image_metrics, pool_metrics
from napari_cellseg.training.holdout import holdout_ids

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from bench_robustness import _resize  # the benchmark's own resizing

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("data")
parser.add_argument("split")
parser.add_argument("factor", type=float)
parser.add_argument("--refine-passes", type=int, default=None, help="default: the package's")
args = parser.parse_args()
if args.refine_passes is not None:
    segment.ESTIMATE_REFINE_PASSES = args.refine_passes
model, config = resolve_model(None, device="cpu")
largest = config.object_diameter / 0.1251  # just inside the allowed scale factors
dataset = CellDataset.open(args.data)
rows, estimated, consistent = [], [], []
for image_id, group in holdout_ids(args.split, dataset, "dev", "C"):
    image, truth = dataset.load_image(image_id), dataset.load_reference_instances(image_id)
    own = segment_image(model, config, image, device="cpu", keep_probabilities=False)
    d_own = own.diameter or config.object_diameter
    resized, resized_truth = _resize(image, truth, args.factor)
    est = segment_image(model, config, resized, device="cpu", keep_probabilities=False)
    given = min(args.factor * d_own, largest)
    cons = segment_image(model, config, resized, device="cpu", keep_probabilities=False, diameter=given)
    estimated.append(image_metrics(resized_truth, est.labels))
    consistent.append(image_metrics(resized_truth, cons.labels))
    d_est = est.diameter or config.object_diameter
    rows.append((group[:9], d_own, d_est, d_est / (args.factor * d_own)))
f = f"x{args.factor:g}"
for group, d_own, d_est, ratio in rows:
    print(
        f"{group} estimate on the original {d_own:.1f} px; on the image {f}: {d_est:.1f} px ({ratio:.2f} of {f} the first)"
    )
ratios = np.array([r[3] for r in rows])
print(
    f"ratio median {np.median(ratios):.2f}, 10-90 % {np.percentile(ratios, 10):.2f}-{np.percentile(ratios, 90):.2f}"
)
pe, pc = pool_metrics(estimated), pool_metrics(consistent)
print(f"{f}: estimated AP@0.5 {pe.at('ap', 0.5):.3f} DSB {pe.dsb_score:.3f}; "
      f"{f} the estimate on the original AP@0.5 {pc.at('ap', 0.5):.3f} DSB {pc.dsb_score:.3f}")  # fmt: skip
