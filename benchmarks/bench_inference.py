"""Inference speed on this CPU: network alone, watershed alone, end to end, classical baseline.

The network is the default architecture with its real M2 weights
(``build_model(m2="default", transfer_layers=4, new_layers=4)``); speed does not
depend on training. Images are real: a 1024 x 1024 RGB mosaic of the microscope
C samples, and the C samples themselves (256 x 320). Prints medians of
``--repeats`` runs, in seconds and megapixels per second.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_inference.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mosaic(shape: tuple[int, int]) -> np.ndarray:
    """An RGB image of ``shape`` tiled from the microscope C samples (real nuclei)."""
    from napari_cellseg.sample_data import load_sample

    pieces = [load_sample(k)[0] for k in ("c_histology_1", "c_histology_2")]
    rows = []
    for i in range(-(-shape[0] // 256)):
        row = [pieces[(i + j) % 2][:256, :320] for j in range(-(-shape[1] // 320))]
        rows.append(np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[: shape[0], : shape[1]])


def default_model():
    from napari_cellseg.models.checkpoint import ModelConfig
    from napari_cellseg.models.surgery import build_model

    model = build_model(m2="default", transfer_layers=4, new_layers=4).eval()
    return model, ModelConfig.for_model(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from napari_cellseg.inference.classical import classical_segmentation
    from napari_cellseg.inference.predict import predict_probabilities, segment_image
    from napari_cellseg.inference.watershed import instances_from_probabilities
    from napari_cellseg.sample_data import load_sample

    torch.set_num_threads(args.threads)
    model, config = default_model()
    image = mosaic((1024, 1024))
    mp = image.shape[0] * image.shape[1] / 1e6
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); median of {args.repeats} runs")
    print(f"model: default arch {config.arch}, l={config.transfer_layers}, l_a={config.new_layers}")
    x = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        model(x)  # warm-up
        net = median_time(lambda: model(x), args.repeats)
    print(f"network alone, 1024x1024 forward:       {net:6.3f} s  {mp / net:5.2f} MP/s")
    probabilities = predict_probabilities(model, config, image, tile_size=1024)
    ws = median_time(lambda: instances_from_probabilities(probabilities), args.repeats)
    n = int(instances_from_probabilities(probabilities).max())
    print(f"watershed alone, 1024x1024 ({n} cells):  {ws:6.3f} s  {mp / ws:5.2f} MP/s")
    for tile in (1024, 512):
        e2e = median_time(lambda t=tile: segment_image(model, config, image, tile_size=t), args.repeats)
        print(f"end to end 1024x1024 RGB, tile {tile:4d}:    {e2e:6.3f} s  {mp / e2e:5.2f} MP/s")
    classical = median_time(lambda: classical_segmentation(image), args.repeats)
    print(f"classical baseline, 1024x1024 RGB:      {classical:6.3f} s  {mp / classical:5.2f} MP/s")
    crop = load_sample("c_histology_1")[0]
    small = median_time(lambda: segment_image(model, config, crop), args.repeats * 2)
    small_classical = median_time(lambda: classical_segmentation(crop), args.repeats * 2)
    print(f"per microscope C image (256x320):        {small:6.3f} s end to end, {small_classical:.3f} s classical")  # fmt: skip


if __name__ == "__main__":
    main()
