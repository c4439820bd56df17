"""The bundled model on dev C and test C, plain and with the test-time options (step 22).

python tta_scores.py DATA SPLIT
"""

import sys

from napari_cellseg.generators import run_to_end
from napari_cellseg.inference.runtime import TTA_ZOOMS, resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.training.holdout import iter_score_holdout

data, split = sys.argv[1:3]
model, config = resolve_model(None, device="cpu")
VARIANTS = {"plain": {}, "--tta-zoom": {"tta_zooms": TTA_ZOOMS}, "--tta": {"tta": True},
            "both": {"tta": True, "tta_zooms": TTA_ZOOMS}}  # fmt: skip
for subset in ("dev", "test"):
    for name, options in VARIANTS.items():

        def segment(image, options=options):
            return segment_image(
                model, config, image, device="cpu", keep_probabilities=False, **options
            ).labels

        s = run_to_end(iter_score_holdout(segment, data, split, subset=subset, microscope="C", name=name))
        mean, low, high = s.group_stats()
        print(f"{subset} C, {name}: AP@0.5 {s.ap50:.3f} DSB {s.dsb_score:.3f} groups {mean:.3f} "
              f"[{low:.3f}-{high:.3f}] merged {s.merged_touching:.3f}", flush=True)  # fmt: skip
