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


def _median_rate(fn, items: int, runs: int) -> float:
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates)


def throughput(args) -> None:
    import cv2
    import torch

    from napari_cellseg.training.config import TrainConfig
    from napari_cellseg.training.data import StepSampler, make_loader
    from napari_cellseg.training.steps import train_step

    data_dir, split = _data(args)
    batch, patch = args.batch_size, 256
    print(f"data {data_dir}, split {split}; crops {patch}x{patch}, batch {batch}, median of {args.runs} runs")
    for preset in ("default", "none"):
        config = TrainConfig(
            data_dir=data_dir, split_path=split, out_dir=str(Path(args.workdir) / "unused"),
            patch_size=patch, batch_size=batch, augment_preset=preset, num_threads=1, transfer_layers=4,
        )  # fmt: skip
        run = _run(config)
        cv2.setNumThreads(1)
        start = time.perf_counter()
        for image_id in run.train_ids:
            run.crops.cache.get(image_id)
        load = time.perf_counter() - start
        counter = iter(range(10**9))

        def crops(n=32, run=run, counter=counter):
            for _ in range(n):
                run.crops.sample(next(counter))

        rate = _median_rate(crops, 32, args.runs)
        print(f"data pipeline, augment {preset:<7}: {rate:6.1f} crops/s on 1 core "
              f"(cache of {len(run.train_ids)} images filled in {load:.1f} s)")  # fmt: skip
    for layers in (4, 5):
        config = TrainConfig(
            data_dir=data_dir, split_path=split, out_dir=str(Path(args.workdir) / "unused"),
            patch_size=patch, batch_size=batch, transfer_layers=layers, new_layers=4, num_threads=1,
        )  # fmt: skip
        run = _run(config)
        images, targets = next(iter(make_loader(run.crops, StepSampler(batch, 0, 1))))
        for threads in (1, 2):
            torch.set_num_threads(threads)
            train_step(run, images, targets)  # warm-up
            step = lambda run=run, x=images, y=targets: train_step(run, x, y)  # noqa: E731
            rate = _median_rate(step, batch, args.runs)
            print(f"optimizer step, l={layers} l_a=4, {threads} thread(s): {rate:6.2f} crops/s")
    for preset in ("default", "none"):
        for threads, workers in ((1, 0), (2, 0), (1, 1)):
            config = TrainConfig(
                data_dir=data_dir, split_path=split, out_dir=str(Path(args.workdir) / "unused"),
                patch_size=patch, batch_size=batch, augment_preset=preset, num_threads=threads,
                num_workers=workers, transfer_layers=4, new_layers=4,
            )  # fmt: skip
            run = _run(config)
            steps = args.steps
            rates = []
            for r in range(args.runs):
                loader = make_loader(run.crops, StepSampler(batch, r * steps, (r + 1) * steps), workers)
                iterator = iter(loader)
                train_step(run, *next(iterator))  # warm-up (and worker start)
                start = time.perf_counter()
                for images, targets in iterator:
                    train_step(run, images, targets)
                rates.append((steps - 1) * batch / (time.perf_counter() - start))
            print(f"end to end, augment {preset:<7}, {threads} thread(s), {workers} worker(s): "
                  f"{statistics.median(rates):6.2f} crops/s")  # fmt: skip


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
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="steps per end-to-end run")
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
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.mode == "finetune":
        finetune(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
