"""Dev C scores of tuned models: AP@0.5, DSB, touching pairs merged (as the model card counts them).

python dev_scores.py DATA SPLIT default MODEL_DIR ...   ('default': the bundled model)
"""

import sys

from napari_cellseg.generators import run_to_end
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.training.holdout import iter_score_holdout


def dev_scores(name: str, data: str, split: str):
    model, config = resolve_model(None if name == "default" else name, device="cpu")

    def segment(image):
        return segment_image(model, config, image, device="cpu", keep_probabilities=False).labels

    return run_to_end(iter_score_holdout(segment, data, split, subset="dev", microscope="C", name=name))


data, split = sys.argv[1:3]
for name in sys.argv[3:]:
    s = dev_scores(name, data, split)
    print(
        f"{name}: dev C AP@0.5 {s.ap50:.3f} DSB {s.dsb_score:.3f} merged {s.merged_touching:.3f}", flush=True
    )
