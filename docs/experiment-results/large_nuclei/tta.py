"""The bundled model with --tta, --tta-zoom and both on dev C and test C.

python tta.py DATA SPLIT
"""

import sys

import torch

from napari_cellseg.generators import run_to_end
from napari_cellseg.inference.runtime import TTA_ZOOMS, resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.training.holdout import iter_score_holdout

torch.set_num_threads(2)
net, cfg = resolve_model(None, device="cpu")
for name, kw in (
    ("--tta-zoom", {"tta_zooms": TTA_ZOOMS}),
    ("--tta", {"tta": True}),
    ("both", {"tta": True, "tta_zooms": TTA_ZOOMS}),
):

    def segment(image, kw=kw):
        return segment_image(net, cfg, image, keep_probabilities=False, **kw).labels

    for subset in ("dev", "test"):
        s = run_to_end(
            iter_score_holdout(segment, sys.argv[1], sys.argv[2], subset=subset, microscope="C", name=name)
        )
        print(
            f"{name} {subset} C {s.ap50:.3f} / {s.dsb_score:.3f} merged {s.merged_touching:.3f}", flush=True
        )
