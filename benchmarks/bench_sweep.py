"""What the sweep machinery costs around the training itself.

Figures (medians over ``--runs`` repetitions), for grids of ``--points`` runs:

- plan: expanding a grid file into runs (configs, names, layer checks);
- bookkeeping per run: the serial executor with a training function that
  returns at once, leaving a tiny model (``run.json`` written twice, the ranked CSV and Markdown
  rewritten after the run), i.e. the overhead a sweep adds to each run;
- resume: a second ``run_sweep`` over the finished sweep (reads every
  ``run.json``, checks the settings and that each model loads, rewrites the
  tables, trains nothing);
- one tiny real run (default M2, ``l=2``, 2 steps of 2 crops of 64x64, one dev
  image scored by AP@0.5) in and out of the sweep, to put the overhead in scale.

Data: the package samples (the overhead does not depend on the dataset).
Run: ``python benchmarks/bench_sweep.py [--points 27 --runs 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _split(folder: Path) -> Path:
    from napari_cellseg.sample_data import list_samples

    lines = ["id,microscope,subset,group"]
    for key, sample in list_samples().items():
        lines.append(f"{sample.id},{sample.microscope},{'dev' if key == 'c_histology_2' else 'train'},")
    path = folder / "split.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


_TEMPLATE: list[Path] = []  # a small model folder, copied as each run's "trained" model


def _template_model(folder: Path) -> Path:
    """A tiny random model folder: a finished run must hold a model that loads (the sweep checks)."""
    import torch

    from napari_cellseg.models.checkpoint import ModelConfig, save_model_dir
    from napari_cellseg.models.m2 import M2Config
    from napari_cellseg.models.surgery import build_model

    torch.manual_seed(0)
    m2 = M2Config(arch="mobilenetv3_small_050", num_classes=0, name="tiny", source="random init (benchmark)")
    model = build_model(m2, transfer_layers=2, new_layers=2, out_channels=3, decoder_channels=(8, 8, 8),
                        pretrained=False)  # fmt: skip
    return save_model_dir(folder / "template-model", model.eval(), ModelConfig.for_model(model))


def _instant_train(config, *, resume, cancel):
    import shutil

    from napari_cellseg.training.reports import TrainResult

    for name in ("config.json", "model.safetensors"):  # what a finished run leaves
        Path(config.out_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_TEMPLATE[0] / name, Path(config.out_dir) / name)
    history = [{"epoch": 1, "dev": {"ap50": config.lr, "pixel_f1": 0.5}}]
    return TrainResult(out_dir=config.out_dir, epochs_done=1, cancelled=False, best_epoch=1,
                       best_score=config.lr, score_name="ap50", elapsed_s=0.0, history=history)  # fmt: skip
    yield  # a generator that yields nothing


def _grid(points: int):
    from napari_cellseg.training.sweep_grid import SweepGrid

    return SweepGrid(base={"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 64,
                           "max_dev_images": 1, "num_threads": 1},
                     grid={"l": [3, 4, 5], "lr": [1e-3 * (k + 1) for k in range(max(1, points // 3))]})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=27)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from napari_cellseg.sample_data import SAMPLE_DIR
    from napari_cellseg.training.sweep import SweepConfig, plan_sweep, run_sweep

    grid = _grid(args.points)
    plan_s, first_s, resume_s = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        split = _split(Path(tmp))
        _TEMPLATE.append(Path(_template_model(Path(tmp))))
        for index in range(args.runs):
            config = SweepConfig(data_dir=str(SAMPLE_DIR), split_path=str(split), out_dir=f"{tmp}/s{index}")
            start = time.perf_counter()
            points, _ = plan_sweep(grid, config)
            plan_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            run_sweep(grid, config, train_fn=_instant_train)
            first_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = run_sweep(grid, config, train_fn=_instant_train)
            resume_s.append(time.perf_counter() - start)
            assert len(result.reused) == len(points)
        n = len(points)
        print(f"grid of {n} runs, medians of {args.runs} repetitions")
        print(f"  plan (expand + check):        {1e3 * statistics.median(plan_s):8.1f} ms")
        print(f"  bookkeeping per run:          {1e3 * statistics.median(first_s) / n:8.1f} ms")
        print(f"  resume over finished sweep:   {1e3 * statistics.median(resume_s):8.1f} ms")
        _tiny_real_run(Path(tmp), split)


def _tiny_real_run(tmp: Path, split: Path) -> None:
    import torch

    from napari_cellseg.sample_data import SAMPLE_DIR
    from napari_cellseg.training.config import TrainConfig
    from napari_cellseg.training.engine import run_training
    from napari_cellseg.training.sweep import SweepConfig, run_sweep
    from napari_cellseg.training.sweep_grid import SweepGrid

    torch.set_num_threads(1)
    settings = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 64, "max_dev_images": 1,
                "num_threads": 1, "transfer_layers": 2, "new_layers": 2, "dev_metric": "ap50"}  # fmt: skip
    run_training(
        TrainConfig(data_dir=str(SAMPLE_DIR), split_path=str(split), out_dir=str(tmp / "warm"), **settings)
    )
    engine_s, sweep_s = [], []
    for index in range(3):
        start = time.perf_counter()
        run_training(TrainConfig(data_dir=str(SAMPLE_DIR), split_path=str(split),
                                 out_dir=str(tmp / f"engine{index}"), **settings))  # fmt: skip
        engine_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_sweep(
            SweepGrid(base=settings, grid={"seed": [0]}),
            SweepConfig(data_dir=str(SAMPLE_DIR), split_path=str(split), out_dir=str(tmp / f"sweep{index}")),
        )
        sweep_s.append(time.perf_counter() - start)  # fmt: skip
    print("one tiny real run (l=2, 2 steps of 2x64x64, 1 dev image), medians of 3:")
    print(f"  engine alone:                 {statistics.median(engine_s):8.2f} s")
    print(f"  as a one-run sweep:           {statistics.median(sweep_s):8.2f} s")


if __name__ == "__main__":
    main()
