"""Re-measure the model card rows of the bundled model (its watershed unchanged): python rescore_card.py DATA SPLIT."""

import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3] / "scripts"))
import bundle_default_model as b

from napari_cellseg.inference.runtime import default_model_dir
from napari_cellseg.training.holdout import score_classical, score_model

data, split = sys.argv[1], sys.argv[2]
out = default_model_dir()
scores = {}
scores["test C"] = score_model(out, data, split, subset="test", microscope="C", device="cpu")
print(b._row("test C", scores["test C"]), flush=True)
scores["dev C"] = score_model(out, data, split, subset="dev", microscope="C", device="cpu")
print(b._row("dev C", scores["dev C"]), flush=True)
for m in ("A", "B"):
    name = f"train {m} (seen in training)"
    scores[name] = score_model(out, data, split, subset="train", microscope=m, device="cpu")
    print(b._row(name, scores[name]), flush=True)
stain, ihc = b.score_other_stains(out, data, split, device="cpu")
for name, s in stain.items():
    print(b._row(name, s), flush=True)
print("IHC nuclei", ihc)
classical = score_classical(data, split, subset="test", microscope="C")
print(b._row("classical baseline (Otsu + distance watershed), test C", classical))
for p in out.iterdir():
    if p.name.startswith("holdout_"):
        print("left cache", p)
for p in out.iterdir():
    if p.name.startswith("holdout_"):
        p.unlink()
