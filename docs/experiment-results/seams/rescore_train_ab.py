"""The model card's train A and B rows: python rescore_train_ab.py DATA SPLIT (deletes the holdout caches after)."""

import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3] / "scripts"))
import bundle_default_model as b

from napari_cellseg.inference.runtime import default_model_dir
from napari_cellseg.training.holdout import score_model

data, split = sys.argv[1], sys.argv[2]
out = default_model_dir()
for m in ("B", "A"):
    s = score_model(out, data, split, subset="train", microscope=m, device="cpu")
    print(b._row(f"train {m} (seen in training)", s), flush=True)
for p in out.iterdir():
    if p.name.startswith("holdout_"):
        p.unlink()
