"""The ranked sweep table (``sweep_results.csv`` and ``sweep_results.md``) and Markdown helpers.

Finished runs are ranked by dev score (AP@0.5 after the watershed), ties by
dev pixel F1, then by name; unfinished runs follow, unranked, and so does a
run scored by another metric (its ``error`` cell says so). The Markdown
file adds, for every setting the sweep varies, the mean and best dev score of
the runs with each value, and lists the combinations skipped as invalid.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..config import atomic_write_text
from .sweep_grid import NAMED_FIELDS, InvalidPoint
from .sweep_run import RunRecord

CSV_NAME = "sweep_results.csv"
MARKDOWN_NAME = "sweep_results.md"
COLUMNS = ("rank", "run", "l", "l_a", "l_f", "lr", "loss", "weights", "other", "trainable_params",
           "dev_ap50", "dev_pixel_f1", "best_epoch", "time_s", "device", "status", "error")  # fmt: skip
MARKDOWN_HEADER = ("rank", "run", "l", "l_a", "l_f", "lr", "loss", "weights", "other", "trainable params",
                   "dev AP@0.5", "dev pixel F1", "best epoch", "time", "device", "status", "error")  # fmt: skip
SCORE_NAME = "ap50"  # the dev metric a sweep ranks by
ERROR_CHARS = 120  # an error cell's length: the whole message is in the run's run.json


def _score(record: RunRecord) -> float | None:
    value = record.dev_score
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def is_ranked(record: RunRecord) -> bool:
    """A finished run with a dev AP@0.5 score (one scored by another metric is not comparable)."""
    return record.done and _score(record) is not None and record.score_name == SCORE_NAME


def rank_records(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Finished runs by dev score (best first; ties: pixel F1, then name), then the others by name.

    A run whose ``score_name`` is not ``ap50`` is not ranked: its dev score is another metric's.
    """
    records = list(records)
    scored = [r for r in records if is_ranked(r)]
    scored.sort(key=lambda r: (-_score(r), -(r.metric("pixel_f1") or 0.0), r.name))
    rest = [r for r in records if r not in scored]
    rest.sort(key=lambda r: (not r.done, r.status, r.name))
    return scored + rest


def _config(record: RunRecord, key: str, default: Any = None) -> Any:
    return record.train_config.get(key, record.params.get(key, default))


def weights_text(record: RunRecord) -> str:
    """``1/5/3`` (weighted-ce class weights) or ``boundary x3`` (weighted-bce)."""
    if _config(record, "loss", "weighted-ce") == "weighted-bce":
        return f"boundary x{float(_config(record, 'boundary_weight', 3.0)):g}"
    weights = _config(record, "class_weights") or ()
    return "/".join(f"{float(w):g}" for w in weights)


def other_text(record: RunRecord) -> str:
    """The varied settings that have no column of their own, as ``key=value; ...``."""
    return "; ".join(f"{k}={_plain(v)}" for k, v in sorted(record.params.items()) if k not in NAMED_FIELDS)


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{_plain(v)}" for k, v in sorted(value.items()))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def error_text(record: RunRecord) -> str:
    """The ``error`` cell: why a run failed or was not trained (shortened), or why it is not ranked."""
    if record.done and _score(record) is not None and record.score_name != SCORE_NAME:
        return f"scored by dev {record.score_name}, not {SCORE_NAME}: not ranked"
    text = " ".join(record.error.split()) if not record.done else ""
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def record_row(record: RunRecord, rank: int | None) -> dict[str, Any]:
    """One CSV row (plain values; empty strings for missing ones)."""
    score = _score(record) if record.score_name == SCORE_NAME else None
    f1 = record.metric("pixel_f1")
    return {
        "rank": rank if rank is not None else "", "run": record.name,
        "l": _config(record, "transfer_layers", ""), "l_a": _config(record, "new_layers", ""),
        "l_f": _config(record, "frozen_layers", ""), "lr": _plain(float(_config(record, "lr", 0.0))),
        "loss": _config(record, "loss", ""), "weights": weights_text(record), "other": other_text(record),
        "trainable_params": record.trainable_params if record.trainable_params is not None else "",
        "dev_ap50": "" if score is None else round(score, 4), "dev_pixel_f1": "" if f1 is None else round(f1, 4),
        "best_epoch": record.best_epoch if record.done else "",
        "time_s": round(record.elapsed_s, 1) if record.elapsed_s else "", "device": record.device,
        "status": record.status, "error": error_text(record),
    }  # fmt: skip


def table_rows(records: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """Rows of the ranked table (see :func:`rank_records`)."""
    rows = []
    for index, record in enumerate(rank_records(records)):
        rows.append(record_row(record, index + 1 if is_ranked(record) else None))
    return rows


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table; numbers right-aligned, ``|`` in cells escaped."""
    rows = [[_cell(v) for v in row] for row in rows]
    numeric = [all(_is_number(row[i]) for row in rows if row[i] != "") and any(row[i] for row in rows)
               for i in range(len(header))]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]  # fmt: skip
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"
    return str(value).replace("|", "\\|")


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _seconds(value: Any) -> str:
    if value in ("", None):
        return ""
    value = float(value)
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def parameter_summary(records: Iterable[RunRecord], fields: Sequence[str] | None = None) -> list[list[Any]]:
    """Per varied setting and value: runs, mean and best dev score of the finished runs.

    ``fields`` defaults to every setting that takes more than one value.
    """
    done = [r for r in records if is_ranked(r)]
    values: dict[str, dict[str, list[float]]] = {}
    for record in done:
        for key, value in record.params.items():
            values.setdefault(key, {}).setdefault(_plain(value), []).append(_score(record))
    rows = []
    for key in fields if fields is not None else [k for k, v in values.items() if len(v) > 1]:
        for value, scores in sorted(values.get(key, {}).items(), key=lambda kv: _sort_key(kv[0])):
            rows.append([key, value, len(scores), sum(scores) / len(scores), max(scores)])
    return rows


def _sort_key(text: str) -> tuple:
    return (0, float(text), "") if _is_number(text) else (1, 0.0, text)


def format_markdown(
    records: Sequence[RunRecord],
    invalid: Sequence[InvalidPoint] = (),
    title: str = "Sweep results",
    level: int = 1,
) -> str:
    """``sweep_results.md``: the ranked table, the by-setting summary, the skipped combinations.

    ``title`` heads it at heading ``level`` (no heading when empty); the sections below are one level deeper.
    """
    rows = table_rows(records)
    body = [[r["rank"], f"`{r['run']}`", r["l"], r["l_a"], r["l_f"], r["lr"], r["loss"], r["weights"],
             r["other"], f"{r['trainable_params']:,}" if r["trainable_params"] != "" else "", r["dev_ap50"],
             r["dev_pixel_f1"], r["best_epoch"], _seconds(r["time_s"]), r["device"], r["status"], r["error"]]
            for r in rows]  # fmt: skip
    done = sum(1 for r in records if r.done)
    sub = "#" * (level + 1)
    text = f"{'#' * level} {title}\n\n" if title else ""
    text += f"{done} of {len(records)} runs finished; ranked by dev AP@0.5 after the watershed "
    text += "(the best epoch of each run).\n\n" + markdown_table(MARKDOWN_HEADER, body)
    summary = parameter_summary(records)
    if summary:
        text += f"\n{sub} Dev AP@0.5 by setting\n\n"
        text += markdown_table(("setting", "value", "runs", "mean dev AP@0.5", "best dev AP@0.5"), summary)
    if invalid:
        text += f"\n{sub} Skipped combinations\n\n"
        text += "".join(f"- {_plain_params(p.params)}: {p.reason}\n" for p in invalid)
    return text


def _plain_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_plain(v)}" for k, v in params.items()) or "(base)"


def format_csv(records: Sequence[RunRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(records))
    return buffer.getvalue()


def write_tables(
    out_dir: str | os.PathLike, records: Sequence[RunRecord], invalid: Sequence[InvalidPoint] = ()
) -> tuple[Path, Path]:
    """Write ``sweep_results.csv`` and ``sweep_results.md`` (atomically) into ``out_dir``."""
    out_dir = Path(out_dir)
    csv_path = atomic_write_text(out_dir / CSV_NAME, format_csv(records))
    md_path = atomic_write_text(out_dir / MARKDOWN_NAME, format_markdown(records, invalid))
    return csv_path, md_path
