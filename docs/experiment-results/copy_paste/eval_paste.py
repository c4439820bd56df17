"""Tune a run's watershed on dev C and score it, as steps 14-21 scored their continuations.

python eval_paste.py DATA SPLIT RUN_DIR MODEL_DIR

Copies RUN_DIR's best model to MODEL_DIR with ``default_diameter`` 0 (the nucleus size
estimated), runs ``tune-watershed --rounds 3`` on dev C, then prints dev C AP@0.5, DSB and
touching pairs merged. Steps 14-21 measured with the size estimate's first pass alone, so
tuning and scoring run with ``ESTIMATE_REFINE_PASSES = 0`` first (comparable with their
controls), then the scores with today's estimate.
"""

import json
import shutil
import sys
from pathlib import Path

from napari_cellseg.generators import run_to_end
from napari_cellseg.inference import segment as segment_module
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.training.holdout import iter_score_holdout

data, split, run, model = sys.argv[1:5]
model_dir = Path(model)
model_dir.mkdir(parents=True, exist_ok=True)
for name in ("model.safetensors", "config.json"):
    shutil.copyfile(Path(run) / name, model_dir / name)
config = json.loads((model_dir / "config.json").read_text())
config["default_diameter"] = 0
(model_dir / "config.json").write_text(json.dumps(config, indent=2))

refine = segment_module.ESTIMATE_REFINE_PASSES
segment_module.ESTIMATE_REFINE_PASSES = 0
from napari_cellseg.cli import main  # noqa: E402

main(["tune-watershed", "--model", str(model_dir), "--data", data, "--split", split, "--subset", "dev",
      "--microscope", "C", "--device", "cpu", "--rounds", "3"])  # fmt: skip


def scores(label: str) -> None:
    net, cfg = resolve_model(str(model_dir), device="cpu")

    def segment(image):
        return segment_module.segment_image(net, cfg, image, device="cpu", keep_probabilities=False).labels

    s = run_to_end(iter_score_holdout(segment, data, split, subset="dev", microscope="C", name=model))
    print(f"{model} ({label}): dev C AP@0.5 {s.ap50:.3f} DSB {s.dsb_score:.3f} merged {s.merged_touching:.3f}", flush=True)  # fmt: skip


scores("first pass of the size estimate, as steps 14-21")
segment_module.ESTIMATE_REFINE_PASSES = refine
scores("size estimate measured again, as since step 22")
