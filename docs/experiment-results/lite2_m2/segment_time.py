"""Seconds to segment a dev C image (size estimate and watershed included), one thread.

python segment_time.py DATA SPLIT default MODEL_DIR ...   ('default': the bundled model)
"""

import sys
import time

import torch

from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.io import read_image

torch.set_num_threads(1)
data, split = sys.argv[1:3]
rows = [line.split(",") for line in open(split).read().splitlines()[1:]]
images = [read_image(f"{data}/images/{r[0]}.png") for r in rows if r[1] == "C" and r[2] == "dev"][:8]
for name in sys.argv[3:]:
    model, config = resolve_model(None if name == "default" else name, device="cpu")
    segment_image(model, config, images[0], device="cpu")  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for image in images:
            segment_image(model, config, image, device="cpu")
        times.append((time.perf_counter() - start) / len(images))
    print(
        f"{name}: median {sorted(times)[1]:.3f} s an image ({', '.join(f'{t:.3f}' for t in times)})",
        flush=True,
    )
