"""Uniform weight average ("model soup") of checkpoints that share one architecture (step 21).

python soup.py OUT MODEL_DIR [MODEL_DIR ...]: OUT gets model.safetensors (fp32) and the
first ingredient's config.json with default_diameter 0 (the nucleus size estimated).
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

out, dirs = Path(sys.argv[1]), [Path(d) for d in sys.argv[2:]]
states = [load_file(d / "model.safetensors") for d in dirs]
keys = set(states[0])
assert all(set(s) == keys for s in states), "ingredients differ in their keys"
soup = {}
for key in states[0]:
    if states[0][key].is_floating_point():
        soup[key] = torch.stack([s[key].float() for s in states]).mean(0).contiguous()
    else:
        soup[key] = states[0][key].clone()
out.mkdir(parents=True, exist_ok=True)
save_file(soup, out / "model.safetensors")
config = json.loads((dirs[0] / "config.json").read_text())
config["default_diameter"] = 0
config.pop("weights_sha256", None)
(out / "ingredients.txt").write_text("\n".join(str(d) for d in dirs) + "\n")
(out / "config.json").write_text(json.dumps(config, indent=2))
print(f"{out}: mean of {len(dirs)} models")
