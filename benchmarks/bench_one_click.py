"""Time the one-click path around the network: segment end to end, the watershed, the targets.

- ``segment_image`` with the bundled model and its defaults (the nucleus size estimated
  by a first pass) on a 1024 x 1024 mosaic of the microscope C samples and on one
  C sample (256 x 320), ``--threads`` torch threads;
- the watershed alone (the bundled model's settings, then the class defaults) on
  2048 x 2048 probabilities made from a mosaic of the samples' expert masks;
- ``instances_to_targets`` (thickness 2, as the bundled model was trained, and 1) and
  ``targets_to_instances`` on that 2048 x 2048 label image.

Prints the median wall and CPU time of ``--repeats`` runs. Compare two versions of the code
by running this script alternately with each (``PYTHONPATH=<old checkout>/src``).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_one_click.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import cv2
    import torch
    from _timing import median_time
    from bench_inference import mosaic
    from skimage.segmentation import relabel_sequential

    import napari_cellseg
    from napari_cellseg.data.targets import instances_to_targets, targets_to_instances
    from napari_cellseg.inference.predict import resolve_model, segment_image
    from napari_cellseg.inference.synthetic import probabilities_from_instances
    from napari_cellseg.inference.watershed import WatershedParams, instances_from_probabilities
    from napari_cellseg.sample_data import load_sample

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model, config = resolve_model(None, device="cpu")
    print(f"{napari_cellseg.__file__}; torch {args.threads} thread(s), median of {args.repeats} runs")

    def line(what: str, times: tuple[float, float]) -> None:
        print(f"{what:58s} {times[0] * 1000:8.1f} ms wall {times[1] * 1000:8.1f} ms CPU", flush=True)

    big = mosaic((1024, 1024))
    line(
        "segment 1024x1024 RGB, defaults",
        median_time(lambda: segment_image(model, config, big), args.repeats),
    )
    crop = load_sample("c_histology_1")[0]
    run = lambda: segment_image(model, config, crop)  # noqa: E731
    line("segment C sample 256x320, defaults", median_time(run, 2 * args.repeats))
    labels = relabel_sequential(mosaic((2048, 2048), masks=True))[0].astype("uint16")
    probabilities = probabilities_from_instances(labels)
    for name, params in (
        ("bundled", WatershedParams.from_dict(config.watershed)),
        ("defaults", WatershedParams()),
    ):
        run = lambda p=params: instances_from_probabilities(probabilities, p)  # noqa: E731
        line(f"watershed 2048x2048, {int(labels.max())} cells, {name}", median_time(run, args.repeats))
    for thickness in (2, 1):
        run = lambda t=thickness: instances_to_targets(labels, t)  # noqa: E731
        line(f"instances_to_targets 2048x2048 uint16, thickness {thickness}", median_time(run, args.repeats))
    run = lambda: instances_to_targets(labels, 2, repair=False)  # noqa: E731
    line("instances_to_targets 2048x2048 uint16, thickness 2, repair=False", median_time(run, args.repeats))
    target = instances_to_targets(labels, 2)
    line("targets_to_instances 2048x2048", median_time(lambda: targets_to_instances(target), args.repeats))


if __name__ == "__main__":
    main()
