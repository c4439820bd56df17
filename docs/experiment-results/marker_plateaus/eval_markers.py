"""Dev C and test C scores of the bundled model with each marker rule of eval_markers_lib.

python eval_markers.py DATA SPLIT
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import eval_markers_lib as rules

import napari_cellseg.inference.watershed as ws
from napari_cellseg.generators import run_to_end
from napari_cellseg.inference import segment as segment_module
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.training.holdout import iter_score_holdout

torch.set_num_threads(2)
data, split = sys.argv[1:3]
net, cfg = resolve_model(None, device="cpu")


def segment(image):
    return segment_module.segment_image(net, cfg, image, device="cpu", keep_probabilities=False).labels


for name, rule in rules.RULES.items():
    ws._h_maxima_markers = rule
    for subset in ("dev", "test"):
        s = run_to_end(iter_score_holdout(segment, data, split, subset=subset, microscope="C", name=name))
        print(
            f"{name:24s} {subset} C AP@0.5 {s.ap50:.3f} DSB {s.dsb_score:.3f} merged {s.merged_touching:.3f}",
            flush=True,
        )
