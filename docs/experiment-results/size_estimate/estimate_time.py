"""Time per dev C image end to end (nucleus size estimated), with the size estimate's first
pass only and with its refinement, at the stored size and enlarged 2x (experiments.md step 22).

OMP_NUM_THREADS=2 python estimate_time.py DATA SPLIT
"""

import sys
import time
from pathlib import Path

import numpy as np

import napari_cellseg.inference.segment as segment
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.training.holdout import holdout_ids

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from bench_robustness import _resize  # the benchmark's own resizing


def time_settings(data: str, split: str, setting: str, values, label: str) -> None:
    """Print the time per dev C image, as stored and enlarged 2x, for each value of ``segment.<setting>``."""
    model, config = resolve_model(None, device="cpu")
    dataset = CellDataset.open(data)
    images = [dataset.load_image(i) for i, _ in holdout_ids(split, dataset, "dev", "C")]
    for factor in (1, 2):
        cases = [_resize(im, np.zeros(im.shape[:2], np.int32), factor)[0] for im in images]
        for value in values:
            setattr(segment, setting, value)
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                for image in cases:
                    segment_image(model, config, image, device="cpu", keep_probabilities=False)
                runs.append(time.perf_counter() - start)
            per_image = np.median(runs) / len(cases) * 1000
            print(f"x{factor} {label} {value}: {per_image:.0f} ms per image "
                  f"(median of 3 runs over {len(cases)} images)", flush=True)  # fmt: skip


if __name__ == "__main__":
    time_settings(
        *sys.argv[1:3], "ESTIMATE_REFINE_PASSES", (0, segment.ESTIMATE_REFINE_PASSES), "refine passes"
    )
