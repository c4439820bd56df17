#!/bin/bash
# The class head of a scripts/offset_branch.py run as a package model directory:
#   bash as_model.sh WEIGHTS.safetensors OUT_DIR TEMPLATE_CONFIG.json
# TEMPLATE_CONFIG.json: config.json of a model trained with the same l, l_a, data and
# normalisation (step 17's Lite0 run, runs/lite0_s2). Nucleus size estimated (default_diameter 0).
set -e
mkdir -p "$2"
python - "$1" "$2" "$3" <<'PY'
import json, sys
from safetensors.torch import load_file, save_file
from napari_cellseg.models.checkpoint import state_dict_sha256
weights, out, template = sys.argv[1:]
tensors = {k[4:]: v for k, v in load_file(weights).items() if k.startswith("net.")}
save_file(tensors, f"{out}/model.safetensors", metadata={"format": "pt"})
config = json.load(open(template))
config.update(default_diameter=0, weights_sha256=state_dict_sha256(tensors), metrics={})
json.dump(config, open(f"{out}/config.json", "w"), indent=2)
PY
