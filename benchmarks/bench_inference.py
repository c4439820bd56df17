"""Inference speed on this CPU: network alone, watershed alone, end to end (also with TTA), classical baseline.

The network is the bundled default model (``--model``: another model directory,
or ``arch`` for ``build_model(m2="default", transfer_layers=4, new_layers=4)``). Images are real: a 1024 x 1024 RGB mosaic of the microscope
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


def median_time(function, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``function()`` (CPU time is steadier on a shared machine)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def line(what: str, times: tuple[float, float], megapixels: float) -> str:
    wall, cpu = times
    return f"{what:42s} {wall:7.3f} s wall ({megapixels / wall:5.2f} MP/s), {cpu:7.3f} s CPU"


def mosaic(shape: tuple[int, int], masks: bool = False) -> np.ndarray:
    """An RGB image (or its expert masks) of ``shape`` tiled from the microscope C samples."""
    from napari_cellseg.sample_data import load_sample

    pieces = [load_sample(k)[1 if masks else 0][:256, :320] for k in ("c_histology_1", "c_histology_2")]
    rows = []
    for i in range(-(-shape[0] // 256)):
        row = []
        for j in range(-(-shape[1] // 320)):
            piece = pieces[(i + j) % 2]
            if masks:  # every copy of a piece gets its own ids
                piece = np.where(piece > 0, piece.astype(np.int64) + 1000 * (i * 100 + j), 0)
            row.append(piece)
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
    parser.add_argument(
        "--model", default="bundled",
        help="model directory, 'bundled' (the shipped default model) or 'arch' (l=4, l_a=4, untrained decoder)",
    )  # fmt: skip
    args = parser.parse_args()

    import torch

    from napari_cellseg.inference.classical import classical_segmentation
    from napari_cellseg.inference.predict import segment_image
    from napari_cellseg.inference.runtime import TTA_ZOOMS, compiled_for_shape
    from napari_cellseg.inference.watershed import instances_from_probabilities
    from napari_cellseg.sample_data import load_sample

    torch.set_num_threads(args.threads)
    if args.model == "arch":
        model, config = default_model()
    else:
        from napari_cellseg.inference.runtime import resolve_model

        model, config = resolve_model(None if args.model == "bundled" else args.model, device="cpu")
    image = mosaic((1024, 1024))
    mp = image.shape[0] * image.shape[1] / 1e6
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); median of {args.repeats} runs")
    print(f"model: default arch {config.arch}, l={config.transfer_layers}, l_a={config.new_layers}")
    x = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        model(x)  # warm-up
        print(line("network alone, 1024x1024 forward", median_time(lambda: model(x), args.repeats), mp))
        start = time.process_time()
        compiled = compiled_for_shape(model, tuple(x.shape))
        compiled(x)
        print(f"  (optimize: compiling for one tile shape took {time.process_time() - start:.1f} s CPU)")
        print(line("network alone, optimized", median_time(lambda: compiled(x), args.repeats), mp))
    # Realistic probabilities (the untrained decoder's are flat): from the expert masks.
    from skimage.segmentation import relabel_sequential

    from napari_cellseg.inference.synthetic import probabilities_from_instances

    labels = relabel_sequential(mosaic((1024, 1024), masks=True))[0]
    probabilities = probabilities_from_instances(labels)
    n = int(instances_from_probabilities(probabilities).max())
    ws = median_time(lambda: instances_from_probabilities(probabilities), args.repeats)
    print(line(f"watershed alone, 1024x1024 ({n} cells)", ws, mp))
    for tile in (1024, 512):
        for optimize in (False, True):
            run = lambda t=tile, o=optimize: segment_image(model, config, image, tile_size=t, optimize=o)  # noqa: E731
            run()  # warm-up (and compilation when optimized: the model is loaded and ready)
            name = f"end to end 1024x1024 RGB, tile {tile}" + (", optimized" if optimize else "")
            print(line(name, median_time(run, args.repeats), mp))
    tta = lambda: segment_image(model, config, image, tile_size=512, tta=True)  # noqa: E731
    print(line("end to end 1024x1024 RGB, tile 512, --tta", median_time(tta, args.repeats), mp))
    zoom = lambda: segment_image(model, config, image, tile_size=512, tta_zooms=TTA_ZOOMS)  # noqa: E731
    print(line("end to end 1024x1024 RGB, tile 512, --tta-zoom", median_time(zoom, args.repeats), mp))
    print(line("classical baseline, 1024x1024 RGB", median_time(lambda: classical_segmentation(image), args.repeats), mp))  # fmt: skip
    crop = load_sample("c_histology_1")[0]
    small_mp = crop.shape[0] * crop.shape[1] / 1e6
    for optimize in (False, True):
        run = lambda o=optimize: segment_image(model, config, crop, optimize=o)  # noqa: E731
        run()
        name = "per microscope C image (256x320), model" + (", optimized" if optimize else "")
        print(line(name, median_time(run, 2 * args.repeats), small_mp))
    run = lambda: segment_image(model, config, crop, tta=True)  # noqa: E731
    print(
        line("per microscope C image (256x320), model, --tta", median_time(run, 2 * args.repeats), small_mp)
    )
    run = lambda: segment_image(model, config, crop, tta_zooms=TTA_ZOOMS)  # noqa: E731
    print(
        line(
            "per microscope C image (256x320), model, --tta-zoom",
            median_time(run, 2 * args.repeats),
            small_mp,
        )
    )
    print(line("per microscope C image (256x320), classical", median_time(lambda: classical_segmentation(crop), 2 * args.repeats), small_mp))  # fmt: skip


if __name__ == "__main__":
    main()
