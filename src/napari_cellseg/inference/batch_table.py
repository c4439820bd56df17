"""One table of every cell of a batch: ``<out>/measurements.csv``.

The per-image tables that :mod:`.batch` writes beside the labels, combined after the run
(CLI ``segment --measurements`` and the Segment panel's folder mode).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .batch import BatchSummary

COMBINED_TABLE = "measurements"  # <out>/measurements.csv: every cell of a batch


def combined_table_path(out_dir: str | os.PathLike, summary: BatchSummary) -> Path:
    """``<out>/measurements.csv``, or ``measurements-all.csv`` (``-all-2``...) where an image owns that name.

    The table of an image ``measurements.png`` must be neither replaced nor read back
    as that image's by the next run. A name is an image's when it is the id of one of
    ``summary`` or ``<name>.tif`` (an image's labels, e.g. of an earlier run) is in ``out_dir``.
    """
    out_dir, ids = Path(out_dir), {report.image_id for report in summary.reports}
    stem, n = COMBINED_TABLE, 0
    while stem in ids or (out_dir / f"{stem}.tif").exists():
        n += 1
        stem = f"{COMBINED_TABLE}-all" + (f"-{n}" if n > 1 else "")
    return out_dir / f"{stem}.csv"


def combine_measurements(out_dir: str | os.PathLike, summary: BatchSummary) -> tuple[Path, int] | None:
    """``<out>/measurements.csv`` (:func:`combined_table_path`): the per-image tables of
    ``summary``'s images (done or skipped) in one.

    Returns ``(path, rows)``, or None when no image has a table. The path is kept as
    ``summary.table`` too.
    """
    from .measure import read_measurements, write_measurements

    out_dir, rows = Path(out_dir), []
    for report in summary.reports:
        table = out_dir / f"{report.image_id}.csv"
        if report.status != "failed" and table.is_file():
            rows.extend(read_measurements(table))
    if not rows:
        return None
    summary.table = write_measurements(combined_table_path(out_dir, summary), rows)
    return summary.table, len(rows)
