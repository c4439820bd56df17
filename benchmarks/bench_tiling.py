"""What tiling and resampling cost around the network, per image.

The network is replaced by a stand-in that returns at once, so the figure is the
tiling engine alone: reading and normalising windows, resampling them to the
model's scale on the whole image's grid (``inference/resample.py``), blending and
resampling back. Medians of ``--repeats`` runs, CPU time, one thread.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_tiling.py [--size 1024 --repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np


class _InstantNetwork:
    align = 16  # the bundled network's stride

    def default_batch_size(self) -> int:
        return 2

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.full((batch.shape[0], 3, *batch.shape[2:]), 1 / 3, np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from napari_cellseg.data.normalize import NormalizationConfig
    from napari_cellseg.generators import run_to_end
    from napari_cellseg.inference.images import PlaneReader, describe_layout
    from napari_cellseg.inference.tiled import iter_predict_region, plane_percentiles

    image = np.random.default_rng(0).integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
    config = NormalizationConfig()
    plane = PlaneReader(image, describe_layout(image))
    percentiles = plane_percentiles(plane, config)
    print(f"{args.size}x{args.size} RGB, tiles 512 / overlap 64, network replaced by a stand-in")
    for factor in (1.0, 1.083, 0.7):
        times = []
        for _ in range(args.repeats):
            start = time.process_time()
            run_to_end(
                iter_predict_region(_InstantNetwork(), plane, config, percentiles, factor, None, 512, 64)
            )
            times.append(time.process_time() - start)
        print(f"  scale factor {factor:<5}: {1e3 * statistics.median(times):6.0f} ms CPU")


if __name__ == "__main__":
    main()
