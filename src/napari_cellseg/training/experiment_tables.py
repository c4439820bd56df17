"""Markdown tables of the issue-6 experiments (written by ``scripts/run_experiments.py``).

One file per experiment, ``results_<experiment>.md``, and ``results.md`` with
all of them under the settings they share. Each ablation row gives the dev
AP@0.5 that picked the run's best epoch, and on the TEST images of the target
microscope: AP@0.5, DSB score, the share of touching cells merged, and the
AP@0.5 spread over the split's groups; the classical baseline (Otsu +
watershed) is scored on the same images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import atomic_write_text
from .holdout import HoldoutScores
from .sweep_table import format_markdown, markdown_table

ABLATION_HEADER = ("configuration", "run", "trainable params", "dev AP@0.5", "test AP@0.5", "test DSB",
                   "group AP@0.5 mean [min, max]", "touching pairs merged", "time")  # fmt: skip
TITLES = {
    "sweep": "Sweep over l, l_a, l_f",
    "transfer": "What transfer learning buys",
    "microscopes": "What the other microscopes buy",
    "loss": "The loss",
}
QUESTIONS = {
    "transfer": "Same budget from three starting points: M2's ImageNet weights, a random "
    "initialisation of the same network, and M2 with every transferred stage frozen (l_f = l).",
    "microscopes": "Training on the target microscope only versus on A+B+C with the target "
    "over-sampled, scored on the target.",
    "loss": "Weighted cross-entropy 1/5/3 (background/boundary/interior) versus unweighted "
    "1/1/1, and the binary variant (sigmoid foreground + boundary, boundary weight 3). "
    "Touching pairs merged: the share of touching ground-truth cell pairs whose two cells "
    "end up mostly in one predicted object (lower is better; read it with AP: a model that "
    "finds nothing merges nothing).",
}


@dataclass
class ExperimentContext:
    """What the tables are made from (see ``scripts/run_experiments.py``)."""

    settings: dict[str, Any]
    layers: tuple[int, int, int]
    layers_reason: str
    target_weight: float
    records: dict[str, Any]  # run name -> RunRecord
    test: dict[str, HoldoutScores]  # run name -> test scores
    classical: HoldoutScores
    named: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # experiment -> (label, run)
    sweep: Any = None  # SweepResult of the sweep, when it ran
    sweep_test: HoldoutScores | None = None  # test scores of the sweep's best run


def _number(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _spread(scores: HoldoutScores | None) -> str:
    if scores is None:
        return ""
    mean, low, high = scores.group_stats()
    return "" if mean is None else f"{mean:.3f} [{low:.3f}, {high:.3f}] ({len(scores.group_ap50)})"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def scores_cells(scores: HoldoutScores | None) -> list[str]:
    """test AP@0.5, DSB, group spread and merged share of one scored model."""
    if scores is None:
        return ["", "", "", ""]
    merged = (
        "" if scores.merged_touching is None else f"{scores.merged_touching:.3f} of {scores.touching_pairs}"
    )
    return [_number(scores.ap50), _number(scores.dsb_score), _spread(scores), merged]


def ablation_rows(context: ExperimentContext, experiment: str) -> list[list[str]]:
    """One row per configuration of an experiment, then the classical baseline."""
    rows = []
    for label, name in context.named.get(experiment, []):
        record = context.records.get(name)
        if record is None or not record.done:
            status = record.status if record is not None else "not run"
            rows.append([label, f"`{name}`", "", status, "", "", "", "", ""])
            continue
        params = f"{record.trainable_params:,}" if record.trainable_params is not None else ""
        rows.append([label, f"`{name}`", params, _number(record.dev_score),
                     *scores_cells(context.test.get(name)), _minutes(record.elapsed_s)])  # fmt: skip
    rows.append(["classical (Otsu + distance watershed)", "", "0", "", *scores_cells(context.classical), ""])
    return rows


def settings_text(context: ExperimentContext) -> str:
    """The settings every table shares, as a short Markdown list."""
    s = context.settings
    per_epoch = -(-int(s["budget_steps"]) // int(s["epochs"]))
    l, l_a, l_f = context.layers  # noqa: E741
    test = context.classical
    lines = [
        f"- data: `{s['data']}`, split: `{s['split']}` (target microscope {s['target']})",
        f"- budget per run: {int(s['epochs']) * per_epoch} optimizer steps ({s['epochs']} epochs x {per_epoch}) "
        f"of {s['batch_size']} crops of {s['patch_size']}x{s['patch_size']}, lr {s['lr']:g}, seed {s['seed']}, "
        f"best epoch by dev AP@0.5",
        f"- reference run: l={l}, l_a={l_a}, l_f={l_f} ({context.layers_reason}), weighted CE 1/5/3, from M2, "
        f"A+B+C with {s['target']} over-sampled x{context.target_weight:g} "
        f"(about {s['target_share']:.0%} of the crops)",
        f"- test: {test.n_images} {s['target']} images, {test.n_cells} cells, {len(test.group_ap50)} groups",
    ]
    devices = sorted({r.device for r in context.records.values() if getattr(r, "device", "")})
    if devices:
        lines.append(f"- device: {', '.join(devices)}")
    return "\n".join(lines) + "\n"


def sweep_section(context: ExperimentContext) -> str:
    sweep = context.sweep
    if sweep is None:
        return "The sweep was not run.\n"
    text = format_markdown(sweep.records, sweep.invalid, title="", level=2)
    best = sweep.best
    if best is not None:
        scores = context.sweep_test
        text += f"\nBest on dev: `{best.name}` (dev AP@0.5 {best.dev_score:.3f})"
        if scores is not None:
            text += f"; on test {scores.microscope}: AP@0.5 {scores.ap50:.3f}, DSB {scores.dsb_score:.3f}"
        text += f" (classical baseline: AP@0.5 {context.classical.ap50:.3f}, DSB {context.classical.dsb_score:.3f}).\n"
    return text


def section(context: ExperimentContext, experiment: str) -> str:
    """The Markdown of one experiment (without the shared settings)."""
    text = f"## {TITLES[experiment]}\n\n"
    if experiment == "sweep":
        return text + sweep_section(context)
    text += QUESTIONS[experiment] + "\n\n"
    return text + markdown_table(ABLATION_HEADER, ablation_rows(context, experiment))


def write_results(
    out_dir: str | os.PathLike, experiments: Sequence[str], context: ExperimentContext
) -> list[Path]:
    """Write ``results_<experiment>.md`` for each experiment and ``results.md``; return the paths."""
    out_dir = Path(out_dir)
    settings = settings_text(context)
    paths, parts = [], []
    for experiment in experiments:
        body = section(context, experiment)
        parts.append(body)
        paths.append(atomic_write_text(out_dir / f"results_{experiment}.md", f"{settings}\n{body}"))
    combined = "# Experiments (issue 6)\n\n" + settings + "\n" + "\n".join(parts)
    paths.append(atomic_write_text(out_dir / "results.md", combined))
    return paths
