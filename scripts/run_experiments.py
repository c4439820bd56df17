"""Run the issue-6 experiments and write their Markdown tables (see docs/experiments.md).

1. ``sweep``: a grid over ``l``, ``l_a``, ``l_f`` (dev AP@0.5 ranks it).
2. ``transfer``: from M2 (ImageNet), from scratch, all transferred stages frozen.
3. ``microscopes``: train on the target microscope only versus A+B+C with the
   target over-sampled.
4. ``loss``: weighted cross-entropy 1/5/3, unweighted 1/1/1, weighted BCE.

Every run goes through the sweep machinery (``napari_cellseg.training.sweep``):
the sweep into ``OUT/sweep/runs/NAME``, experiments 2-4 into
``OUT/ablations/runs/NAME``. Running the script again resumes: finished runs
are reused, an interrupted run continues from its last epoch, and the reference
configuration shared by experiments 2-4 trains once. Experiments 2-4 use the
layers given by ``--layers``, else the sweep's best on dev, else 4 4 0; they
train on A+B+C with the target over-sampled to ``--target-share`` of the crops
(except the target-only run). Every run has the same budget: ``--budget-steps``
optimizer steps in ``--epochs`` epochs, the best epoch picked by dev AP@0.5.
Models are scored on the TEST rows of the target microscope (AP@0.5, DSB score,
share of touching cells merged, AP spread over the split's groups), next to the
classical baseline on the same images; the sweep's best run only, so that the
sweep selects on dev alone. Tables: ``OUT/results_<experiment>.md`` and
``OUT/results.md``.

Example (a GPU, a few minutes per run)::

    napari-cellseg split --data ../shared/data/dsb2018-dev --target C --out split.csv
    python scripts/run_experiments.py --data ../shared/data/dsb2018-dev --split split.csv \\
        --out experiments --budget-steps 2000 --epochs 5 --gpus 0
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

EXPERIMENTS = ("sweep", "transfer", "microscopes", "loss")
DEFAULT_SWEEP = {"transfer_layers": [3, 4, 5], "new_layers": [2, 3, 4], "frozen_layers": [0, 1, 2]}
LAYER_KEYS = ("transfer_layers", "new_layers", "frozen_layers")
FALLBACK_LAYERS = (4, 4, 0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--data", type=Path, required=True, help="dataset folder (e.g. ../shared/data/dsb2018-dev)")
    add("--split", type=Path, required=True, help="split CSV (napari-cellseg split --target C)")
    add("--out", type=Path, required=True, help="results folder (runs/, results_*.md)")
    add("--budget-steps", type=int, required=True, help="optimizer steps per run (the same for every run)")
    add(
        "--epochs",
        type=int,
        default=5,
        help="the budget is cut into this many epochs (dev scored after each)",
    )
    add("--only", action="append", choices=EXPERIMENTS, help="run only these experiments (repeatable)")
    add("--target", default="C", help="target microscope: test rows scored, over-sampled in A+B+C")
    add("--target-share", type=float, default=0.5, help="share of the crops from the target in A+B+C runs")
    add("--layers", type=int, nargs=3, metavar=("L", "LA", "LF"), help="l, l_a, l_f of experiments 2-4")
    add(
        "--sweep-grid", type=Path, help="grid file replacing the default l/l_a/l_f sweep (its base is merged)"
    )
    add("--batch-size", type=int, default=8)
    add("--patch-size", type=int, default=256)
    add("--lr", type=float, default=1e-3)
    add("--target-thickness", type=int, default=2, help="boundary target width in pixels")
    add("--seed", type=int, default=0)
    add("--max-dev-images", type=int, help="score dev on at most this many images")
    add("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    add("--scheduler", default="", help="Dask: 'local' or a scheduler address (default: in this process)")
    add("--gpus", default="", help="one run per GPU at a time, e.g. 0,1")
    add("--threads", type=int, default=0, help="torch threads per run (0: automatic)")
    add("--workers", type=int, default=0, help="worker processes with --scheduler local")
    add("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.budget_steps < 1 or args.epochs < 1 or args.epochs > args.budget_steps:
        p.error("need --budget-steps >= --epochs >= 1")
    if not 0 < args.target_share < 1:
        p.error("--target-share must lie strictly between 0 and 1")
    return args


def target_weight(data_dir: Path, split: Path, target: str, share: float, patch_size: int) -> float:
    """Over-sampling factor that gives the target ``share`` of the crops among the train rows."""
    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.data.splitfile import read_split
    from napari_cellseg.training.data import image_weights

    dataset = CellDataset.open(data_dir)
    ids = [i for i, s in read_split(split).items() if s == "train"]
    weights = image_weights(dataset, ids, {}, patch_size, area_weighted=True)
    on_target = sum(w for i, w in zip(ids, weights) if dataset[i].microscope == target)
    if on_target == 0 or on_target == 1:
        return 1.0
    return round(share / (1 - share) * (1 - on_target) / on_target, 3)


def base_settings(args: argparse.Namespace, weight: float) -> dict[str, Any]:
    """TrainConfig settings shared by every run: the budget and the reference configuration."""
    return {
        "epochs": args.epochs, "steps_per_epoch": math.ceil(args.budget_steps / args.epochs),
        "batch_size": args.batch_size, "patch_size": args.patch_size, "lr": args.lr, "seed": args.seed,
        "device": args.device, "max_dev_images": args.max_dev_images, "dev_metric": "ap50",
        "loss": "weighted-ce", "class_weights": [1.0, 5.0, 3.0], "pretrained": True,
        "target_thickness": args.target_thickness,
        "microscopes": ["A", "B", "C"], "sample_weights": {args.target: weight},
    }  # fmt: skip


def sweep_grid(args: argparse.Namespace, base: dict[str, Any]):
    from napari_cellseg.training.sweep_grid import SweepGrid, load_grid

    if args.sweep_grid is None:
        return SweepGrid(base=base, grid=dict(DEFAULT_SWEEP))
    custom = load_grid(args.sweep_grid)
    return SweepGrid(base={**base, **custom.base}, grid=custom.grid, points=custom.points)


def ablation_points(layers: tuple[int, int, int], target: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """``{experiment: [(label, params), ...]}``; every point names the layers explicitly."""
    l = layers[0]  # noqa: E741
    ref = dict(zip(LAYER_KEYS, layers))
    return {
        "transfer": [
            ("from M2 (ImageNet)", ref),
            ("from scratch (random init)", {**ref, "pretrained": False, "frozen_layers": 0}),
            (f"M2, all {l} transferred stages frozen", {**ref, "frozen_layers": l}),
        ],
        "microscopes": [
            (f"A+B+C, {target} over-sampled", ref),
            (f"{target} only", {**ref, "microscopes": [target]}),
        ],
        "loss": [
            ("weighted CE 1/5/3", ref),
            ("unweighted CE 1/1/1", {**ref, "class_weights": [1.0, 1.0, 1.0]}),
            ("weighted BCE (boundary x3)", {**ref, "loss": "weighted-bce"}),
        ],
    }


def progress(quiet: bool):
    def show(report) -> None:
        if quiet:
            return
        if report.kind == "plan" and report.message:
            print(report.message, file=sys.stderr)
        elif report.kind in ("skip", "end"):
            record = report.record
            score = "" if record.dev_score is None else f" dev AP@0.5 {record.dev_score:.4f}"
            print(f"[{report.done}/{report.total}] {report.name}: {record.status}{score} {record.error}".rstrip(),
                  file=sys.stderr)  # fmt: skip

    return show


def read_records(out: Path) -> list:
    """The ``run.json`` records of a sweep folder."""
    from napari_cellseg.training.sweep_grid import RUNS_DIR
    from napari_cellseg.training.sweep_run import read_record

    runs = out / RUNS_DIR
    found = (read_record(d) for d in sorted(runs.iterdir()) if d.is_dir()) if runs.is_dir() else ()
    return [r for r in found if r is not None]


def pick_layers(args: argparse.Namespace) -> tuple[tuple[int, int, int], str]:
    """``--layers``, else the best finished run of ``OUT/sweep`` on dev, else the fallback."""
    if args.layers:
        return tuple(args.layers), "given by --layers"
    from napari_cellseg.training.sweep_table import rank_records

    ranked = [r for r in rank_records(read_records(args.out / "sweep")) if r.done and r.dev_score is not None]
    if ranked:
        best = ranked[0].train_config
        return tuple(int(best[k]) for k in LAYER_KEYS), f"the sweep's best on dev ({ranked[0].name})"
    return FALLBACK_LAYERS, "the defaults (no finished sweep run)"


def score(args: argparse.Namespace, model_dir: Path):
    """Test scores of one model on the target microscope (cached next to the model)."""
    from napari_cellseg.training.holdout import score_model

    scores = score_model(model_dir, args.data, args.split, microscope=args.target)
    if not args.quiet:
        print(f"test {args.target}: {model_dir.name}: AP@0.5 {scores.ap50:.4f}", file=sys.stderr)
    return scores


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from napari_cellseg.training.experiment_tables import ExperimentContext, write_results
    from napari_cellseg.training.holdout import score_classical
    from napari_cellseg.training.sweep import SweepConfig, run_sweep
    from napari_cellseg.training.sweep_grid import SweepError, SweepGrid, expand_grid

    chosen = tuple(e for e in EXPERIMENTS if e in (args.only or EXPERIMENTS))
    gpus = tuple(g.strip() for g in args.gpus.split(",") if g.strip())

    def where(folder: str) -> SweepConfig:
        return SweepConfig(data_dir=str(args.data), split_path=str(args.split), out_dir=str(args.out / folder),
                           scheduler=args.scheduler, gpus=gpus, threads=args.threads,
                           local_workers=args.workers)  # fmt: skip

    weight = target_weight(args.data, args.split, args.target, args.target_share, args.patch_size)
    base = base_settings(args, weight)
    show = progress(args.quiet)
    sweep = None
    try:
        if "sweep" in chosen:
            sweep = run_sweep(sweep_grid(args, base), where("sweep"), callback=show)
            if sweep.cancelled:
                return 130
        layers, why = pick_layers(args)
        plan = {k: v for k, v in ablation_points(layers, args.target).items() if k in chosen}
        ablations = SweepGrid(base=base, points=[p for entries in plan.values() for _, p in entries])
        if plan and run_sweep(ablations, where("ablations"), callback=show).cancelled:
            return 130
    except SweepError as err:
        print(f"run_experiments: error: {err}", file=sys.stderr)
        return 2
    named = {}  # experiment -> [(label, run name)]
    for experiment, entries in plan.items():
        grid = SweepGrid(base=base, points=[p for _, p in entries])
        runs, _ = expand_grid(grid, args.data, args.split, args.out / "ablations")
        named[experiment] = [(label, run.name) for (label, _), run in zip(entries, runs)]
    records = {r.name: r for r in read_records(args.out / "ablations")}
    test = {}
    for name in sorted({name for entries in named.values() for _, name in entries}):
        if name in records and records[name].done:
            test[name] = score(args, args.out / "ablations" / "runs" / name)
    sweep_test = None
    if sweep is not None and sweep.best is not None:
        sweep_test = score(args, args.out / "sweep" / "runs" / sweep.best.name)
    classical = score_classical(args.data, args.split, microscope=args.target, cache_dir=args.out)
    context = ExperimentContext(settings=vars(args), layers=layers, layers_reason=why, target_weight=weight,
                                records=records, test=test, classical=classical, named=named,
                                sweep=sweep, sweep_test=sweep_test)  # fmt: skip
    for path in write_results(args.out, chosen, context):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
