"""``napari-cellseg sweep``: a grid of training runs ranked by dev AP@0.5.

Nothing heavy is imported here: the sweep modules (and torch) load when the
command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Train one model per combination of a grid (l, l_a, l_f, learning rate, loss,
class weights, or any TrainConfig setting), score each on the dev rows of the
split by AP@0.5 after the watershed, and rank them in OUT/sweep_results.csv
and OUT/sweep_results.md. Each run keeps its model directory, last/ and
run.json under OUT/runs/NAME. Run the same command again to resume: finished
runs are skipped (a finished run's model must load: one lost or torn is
restored from its last/, or named) and an interrupted run continues from its
last epoch (a run another live process is training is left alone, and the
command exits 1).
Combinations that cannot be built (l_f > l, l_a out of range) are skipped
and listed.

Grid file (JSON or YAML):
  {"base": {"epochs": 5, "steps_per_epoch": 100, "patch_size": 256},
   "grid": {"l": [3, 4, 5], "l_a": [2, 3, 4], "l_f": [0, 1, 2],
            "lr": [0.001], "class_weights": [[1, 5, 3], [1, 1, 1]]},
   "points": [{"pretrained": false}]}
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="train a grid of models over l, l_a, l_f and rank them by dev AP@0.5",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = p.add_argument
    add("--data", type=Path, required=True, help="dataset folder (images/, masks/ or targets/, manifest.csv)")
    add("--split", type=Path, required=True, help="split CSV: train rows train, dev rows score")
    add("--grid", type=Path, required=True, help="grid file (.json, .yaml): base settings, grid, points")
    add("--out", type=Path, required=True, help="sweep folder (runs/, sweep_results.csv/.md)")
    add("--scheduler", default="", metavar="local|ADDRESS",
        help="run on Dask: 'local' (a LocalCluster of processes) or a scheduler address")  # fmt: skip
    add("--workers", type=int, default=0, help="with --scheduler local: worker processes (default: cores)")
    add("--gpus", default="", metavar="0,1,...", help="one run per GPU at a time (CUDA_VISIBLE_DEVICES)")
    add("--threads", type=int, default=0,
        help="torch threads per run (default: the grid's; 1 per Dask task; cores / GPUs)")  # fmt: skip
    add("--dry-run", action="store_true",
        help="check everything a sweep checks, list the runs (done, to resume, new) and skipped combinations, "
             "train nothing")  # fmt: skip
    add("--quiet", action="store_true", help="no progress: no bar, no line per run (the results stay)")
    p.set_defaults(func=run_sweep_command)


def parse_gpus(text: str) -> tuple[str, ...]:
    """``"0,1"`` -> ``("0", "1")``; ValueError naming a bad entry."""
    gpus = tuple(g.strip() for g in text.split(",") if g.strip())
    bad = [g for g in gpus if not g.isdigit() and not g.startswith(("GPU-", "MIG-"))]
    if bad:
        raise ValueError(f"--gpus {text!r}: expected GPU indices such as 0,1 (or GPU-/MIG- UUIDs), got {bad}")
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus {text!r}: a GPU is listed twice")
    return gpus


class SweepProgress:
    """A tqdm bar over the runs, with the running run and its step; a line per finished run."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def write(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def update(self, report) -> None:
        if not self.enabled:
            return
        if report.kind == "plan":
            from tqdm.auto import tqdm

            from ..cli import is_terminal

            self.bar = tqdm(
                total=report.total, initial=report.done, unit="run", file=sys.stderr, dynamic_ncols=True,
                disable=not is_terminal(sys.stderr),  # a log file: the line per run alone
            )  # fmt: skip
            if report.message:
                self.write(report.message)
        elif report.kind == "skip":
            self.write(f"{report.name}: finished earlier, {_score_text(report.record)}")
        elif report.kind == "start":
            self.bar.set_postfix_str(report.name)
        elif report.kind == "step":
            self.bar.set_postfix_str(f"{report.name} step {report.step}/{report.total_steps}")
        elif report.kind == "end":
            self.bar.update(1)
            record = report.record
            detail = _score_text(record) if record.done else f"{record.status} {record.error}".rstrip()
            self.write(f"{report.name}: {detail}")


def _score_text(record) -> str:
    if record is None or record.dev_score is None:
        return "no dev score"
    return (
        f"dev {record.score_name} {record.dev_score:.4f} ({record.elapsed_s:.0f} s on {record.device or '?'})"
    )


def _dry_run(args: argparse.Namespace, config) -> int:
    """Make every check the sweep makes before its first run; print the runs and what each will do."""
    from .sweep import check_inputs, check_split_unchanged, check_stored_runs, plan_sweep

    points, invalid = plan_sweep(args.grid, config)
    check_inputs(config, points)  # a plan over a dataset or split that cannot be read is no plan
    check_split_unchanged(config, points)
    stored = check_stored_runs(points, repair=False)  # refuses changed settings; repairs no model
    states = [_run_state(point, stored[point.name]) for point in points]
    counts = {kind: sum(1 for k, _ in states if k == kind) for kind in ("done", "to resume", "new")}
    print(
        f"{len(points)} run(s) in {args.out / 'runs'} ({', '.join(f'{n} {k}' for k, n in counts.items())}):"
    )
    print("".join(f"  {p.name}  [{text}]\n" for p, (_, text) in zip(points, states)), end="")
    for point in invalid:
        settings = ", ".join(f"{k}={v}" for k, v in point.params.items())
        print(f"skipped {settings}: {point.reason}")
    return 0


def _run_state(point, record) -> tuple[str, str]:
    """(``done``, ``to resume`` or ``new``, and the text that says so) of a run the sweep is about to plan."""
    from ..models.checkpoint import ModelLoadError, check_model_dir
    from .checkpoints import has_last

    if record is not None and record.done:
        try:
            check_model_dir(point.config.out_dir)
        except ModelLoadError as err:
            return (
                "done",
                f"done, but its model does not load ({err}): the sweep restores it from last/ or refuses",
            )
        return "done", f"done: reused, {_score_text(record)}"
    if has_last(point.config.out_dir):
        return "to resume", "to resume from its last/"
    return "new", "new"


def run_sweep_command(args: argparse.Namespace) -> int:
    from ..cli import CommandError, check_out_folder
    from .commands import _GracefulStop
    from .sweep import SweepConfig, iter_sweep

    check_out_folder(args.out)
    try:
        config = SweepConfig(
            data_dir=str(args.data), split_path=str(args.split), out_dir=str(args.out),
            scheduler=args.scheduler.strip(), gpus=parse_gpus(args.gpus), threads=args.threads,
            local_workers=args.workers,
        )  # fmt: skip
        if args.threads < 0 or args.workers < 0:
            raise CommandError("--threads and --workers must be >= 0")
        if config.scheduler and config.gpus:
            raise CommandError("give --scheduler or --gpus, not both")
        if args.dry_run:
            return _dry_run(args, config)
        if config.gpus:
            import torch

            if not torch.cuda.is_available():  # CUDA_VISIBLE_DEVICES would be set for nothing
                raise CommandError(
                    f"--gpus {args.gpus}: no CUDA GPU on this machine; leave --gpus out to run on the CPU"
                )
        with _GracefulStop() as stop, SweepProgress(enabled=not args.quiet) as progress:
            generator = iter_sweep(args.grid, config, cancel=stop)
            while True:
                try:
                    progress.update(next(generator))
                except StopIteration as done:
                    result = done.value
                    break
    except ValueError as err:  # SweepError, ConfigError, a bad --gpus
        raise CommandError(str(err)) from None
    # the result on stdout; progress and the failures below on stderr
    print(f"ranked table: {result.markdown_path} (and {Path(result.csv_path).name})")
    if result.best is not None:
        print(f"best: {result.best.name}  {_score_text(result.best)}")
    for record in result.failed:
        print(f"failed: {record.name}: {record.error}", file=sys.stderr)
    if result.cancelled:
        return stop.exit_status
    for record in result.unfinished:  # e.g. left to another process that holds its lock
        print(f"not trained: {record.name}: {record.error or record.status}", file=sys.stderr)
    return 1 if result.failed or result.unfinished else 0
