"""Training throughput on this CPU, and a short fine-tune's dev curve.

``throughput`` (default): 256x256 training crops per second for the default M2
(ImageNet EfficientNet-Lite0) at ``l=4, l_a=4`` (and ``l=5``), batch 8:

- data: crops/s of the crop pipeline alone (read from the cache, scale,
  augment, targets, standardise) with the ``default`` and ``none`` presets;
- step: crops/s of the optimizer step alone on a ready batch (forward,
  weighted CE, backward, AdamW), with 1 and 2 torch threads;
- end to end: crops/s of the engine's loader + step, augmentation on and off,
  no worker (and 1 worker with 1 thread), so it shows whether augmentation is
  the bottleneck.

Figures are medians over ``--runs`` runs. Data: ``../shared/data/dsb2018-dev``
(its C-target split) when present, else the package samples.

``finetune``: trains from M2 on dsb2018-dev with the C-target split (made with
``napari-cellseg split`` if ``--split`` is not given) and prints the dev curve
per epoch (AP@0.5 after the watershed, pixel F1). Run it in the background::

    python benchmarks/bench_training.py finetune --out /tmp/ft > ft.log 2>&1 &
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "dsb2018-dev"


def _data(args) -> tuple[str, str | None]:
    if SHARED.joinpath("manifest.csv").is_file():
        split = args.split or str(Path(args.workdir) / "split-dev-C.csv")
        if not Path(split).is_file():
            cmd = [
                sys.executable,
                "-m",
                "napari_cellseg.cli",
                "split",
                "--data",
                str(SHARED),
                "--target",
                "C",
            ]
            subprocess.run([*cmd, "--out", split], check=True, capture_output=True)
        return str(SHARED), split
    from napari_cellseg.sample_data import SAMPLE_DIR

    return str(SAMPLE_DIR), None


def _run(config):
    from napari_cellseg.training.distributed import DistributedContext
    from napari_cellseg.training.setup import build_run

    return build_run(config, DistributedContext())


def _interleaved(conditions: dict, runs: int) -> dict:
    """Median rate per condition; runs alternate conditions so that load changes hit all alike."""
    rates: dict = {name: [] for name in conditions}
    for _ in range(runs):
        for name, measure in conditions.items():
            rates[name].append(measure())
    return {name: statistics.median(values) for name, values in rates.items()}


def _timed(fn, items: int) -> float:
    start = time.perf_counter()
    fn()
    return items / (time.perf_counter() - start)


def throughput(args) -> None:
    import cv2
    import torch

    from napari_cellseg.training.config import TrainConfig
    from napari_cellseg.training.data import StepSampler, make_loader
    from napari_cellseg.training.steps import train_step

    data_dir, split = _data(args)
    batch, patch = args.batch_size, 256
    print(f"data {data_dir}, split {split}; crops {patch}x{patch}, batch {batch}, median of {args.runs} "
          f"interleaved runs; load average {os.getloadavg()[0]:.1f} at start; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}", flush=True)  # fmt: skip

    def config(**kw) -> TrainConfig:
        base = dict(data_dir=data_dir, split_path=split, out_dir=str(Path(args.workdir) / "unused"),
                    patch_size=patch, batch_size=batch, num_threads=1, transfer_layers=4, new_layers=4)  # fmt: skip
        return TrainConfig(**{**base, **kw})

    runs = {preset: _run(config(augment_preset=preset)) for preset in ("default", "none")}
    runs["l5"] = _run(config(transfer_layers=5))
    cv2.setNumThreads(1)
    for run in runs.values():
        for image_id in run.train_ids:
            run.crops.cache.get(image_id)
    counter = iter(range(10**9))

    def data_rate(run):
        return lambda: _timed(lambda: [run.crops.sample(next(counter)) for _ in range(32)], 32)

    for name, rate in _interleaved({p: data_rate(runs[p]) for p in ("default", "none")}, args.runs).items():
        print(f"data pipeline alone, augment {name:<7}: {rate:6.1f} crops/s on 1 core", flush=True)

    images, targets = next(iter(make_loader(runs["default"].crops, StepSampler(batch, 0, 1))))

    def step_rate(run, threads):
        def measure():
            torch.set_num_threads(threads)
            train_step(run, images, targets)  # warm-up at this thread count
            return _timed(lambda: train_step(run, images, targets), batch)

        return measure

    steps = {(layers, threads): step_rate(runs["default" if layers == 4 else "l5"], threads)
             for layers in (4, 5) for threads in (1, 2)}  # fmt: skip
    for (layers, threads), rate in _interleaved(steps, args.runs).items():
        print(f"optimizer step alone, l={layers} l_a=4, {threads} thread(s): {rate:6.2f} crops/s", flush=True)

    position = iter(range(10**6))

    def end_to_end(run, threads, workers):
        def measure():
            torch.set_num_threads(threads)
            first = next(position) * args.steps
            loader = make_loader(run.crops, StepSampler(batch, first, first + args.steps), workers)
            iterator = iter(loader)
            train_step(run, *next(iterator))  # warm-up (and worker start)
            return _timed(lambda: [train_step(run, x, y) for x, y in iterator], (args.steps - 1) * batch)

        return measure

    combos = {("default", 1, 0), ("none", 1, 0), ("default", 2, 0), ("default", 1, 1)}
    rates = _interleaved({c: end_to_end(runs[c[0]], c[1], c[2]) for c in sorted(combos)}, args.runs)
    for (preset, threads, workers), rate in rates.items():
        print(f"end to end (loader + step), l=4, augment {preset:<7}, {threads} thread(s), {workers} worker(s): "
              f"{rate:6.2f} crops/s", flush=True)  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.1f} at the end (2 cores; other jobs share them)")


def finetune(args) -> None:
    from napari_cellseg.training.config import TrainConfig
    from napari_cellseg.training.engine import run_training
    from napari_cellseg.training.reports import EpochReport, StartReport

    data_dir, split = _data(args)
    config = TrainConfig(
        data_dir=data_dir, split_path=split, out_dir=args.out, transfer_layers=args.l, new_layers=args.la,
        frozen_layers=args.lf, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
        patch_size=args.patch_size, sample_weights={"C": args.oversample_c}, num_threads=args.threads,
        lr=args.lr, dev_metric="ap50",
    )  # fmt: skip

    def show(report) -> None:
        if isinstance(report, StartReport):
            print(f"device {report.device}: {report.device_reason}; train {report.train_counts}, "
                  f"dev {report.n_dev_images}; {report.trainable_params:,} trainable parameters", flush=True)  # fmt: skip
        elif isinstance(report, EpochReport):
            m = report.dev_metrics
            print(f"epoch {report.epoch:2d}  loss {report.train_loss:.4f}  dev AP@0.5 {m.get('ap50', 0):.3f}  "
                  f"AP@0.75 {m.get('ap75', 0):.3f}  pixel F1 {m.get('pixel_f1', 0):.3f} "
                  f"(boundary {m.get('f1_boundary', 0):.3f}, interior {m.get('f1_interior', 0):.3f})  "
                  f"{report.samples_per_s:.2f} crops/s  {report.elapsed_s / 60:.1f} min", flush=True)  # fmt: skip

    result = run_training(config, callback=show, resume=args.resume)
    print(
        f"best AP@0.5 {result.best_score:.3f} at epoch {result.best_epoch}; {result.elapsed_s / 60:.1f} min"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", choices=("throughput", "finetune"), default="throughput")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="steps per end-to-end run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--split", help="split CSV (default: made with `napari-cellseg split --target C`)")
    parser.add_argument("--workdir", default="/tmp/napari-cellseg-bench-training")
    parser.add_argument("--out", default="/tmp/napari-cellseg-bench-training/finetune")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, default=40)
    parser.add_argument("--l", type=int, default=4)
    parser.add_argument("--la", type=int, default=4)
    parser.add_argument("--lf", type=int, default=0)
    parser.add_argument("--patch-size", type=int, default=256)
    parser.add_argument("--oversample-c", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--omp-wait-policy", choices=("active", "passive"),
        help="OMP_WAIT_POLICY for torch's threads (passive: idle threads sleep instead of spinning)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.omp_wait_policy:  # before torch is imported
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.mode == "finetune":
        finetune(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
