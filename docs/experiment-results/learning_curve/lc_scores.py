"""Dev C scores of the learning-curve models (experiments.md step 24): AP@0.5, DSB and touching
pairs merged, at the images' own scale and with the nucleus size estimated.

python lc_scores.py DATA SPLIT MODEL_DIR ...
"""

import sys

from napari_cellseg.generators import run_to_end
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.training.holdout import iter_score_holdout


def dev_scores(model_dir: str, data: str, split: str, diameter):
    model, config = resolve_model(model_dir, device="cpu")

    def segment(image):
        return segment_image(
            model, config, image, device="cpu", diameter=diameter, keep_probabilities=False
        ).labels

    return run_to_end(iter_score_holdout(segment, data, split, subset="dev", microscope="C", name=model_dir))


data, split = sys.argv[1:3]
for model_dir in sys.argv[3:]:
    for label, diameter in (("own scale", None), ("size estimated", 0)):
        s = dev_scores(model_dir, data, split, diameter)
        print(
            f"{model_dir} ({label}): dev C AP@0.5 {s.ap50:.3f} DSB {s.dsb_score:.3f} "
            f"merged {s.merged_touching:.3f}",
            flush=True,
        )
