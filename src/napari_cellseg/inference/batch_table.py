"""One table of every cell of a batch: ``<out>/measurements.csv``.

The per-image tables that :mod:`.batch` writes beside the labels, combined after the run
(CLI ``segment --measurements`` and the Segment panel's folder mode): every image's in the
output folder, earlier runs' too, as a CellProfiler export covers its whole experiment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .batch import BatchSummary

COMBINED_TABLE = "measurements"  # <out>/measurements.csv: every cell of a batch
# <out>/.cellseg_tables.json: {table name: SHA-256} of the combined tables this plugin wrote, so
# that only those are refreshed or removed unasked (a copied or edited table is the user's)
TABLE_RECORD = ".cellseg_tables.json"  # not ".cellseg-": that prefix is the scratch folders'


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


def is_combined_table(path: Path, image_id: str) -> bool:
    """Whether ``path`` (``<image_id>.csv``) is a combined table of an earlier run, not a table of its own.

    Where an image called ``measurements`` comes later, the combined table left by the run
    before holds its name: it is this plugin's table of other images' cells (the next
    combined table takes ``measurements-all.csv``). Told by the digest the plugin recorded
    when it wrote the file (:data:`TABLE_RECORD`), so a table copied in or edited since is
    the user's: never refreshed, replaced or removed unasked.
    """
    from .batch_ownership import file_digest

    if not re.fullmatch(rf"{COMBINED_TABLE}(-all(-\d+)?)?", image_id) or not path.is_file():
        return False
    recorded = _table_record(path.parent).get(path.name)
    try:
        return isinstance(recorded, str) and file_digest(path) == recorded
    except OSError:
        return False


def _table_record(out_dir: Path) -> dict:
    import json

    try:
        record = json.loads((out_dir / TABLE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _record_table(path: Path, written: bool) -> None:
    """Record (``written``) or forget ``path``'s digest in its folder's :data:`TABLE_RECORD`."""
    import json

    from ..config import atomic_write_text
    from .batch_ownership import file_digest

    record = _table_record(path.parent)
    if written:
        record[path.name] = file_digest(path)
    elif record.pop(path.name, None) is None:
        return
    if record:
        atomic_write_text(path.parent / TABLE_RECORD, json.dumps(record, indent=1) + "\n")
    else:
        (path.parent / TABLE_RECORD).unlink(missing_ok=True)


def combine_measurements(out_dir: str | os.PathLike, summary: BatchSummary) -> tuple[Path, int] | None:
    """``<out>/measurements.csv`` (:func:`combined_table_path`): every cell of the folder in one table.

    The tables of every image whose stored cells are in ``out_dir`` (this run's and earlier
    runs'; :mod:`.batch_ownership` tells them from a user's own ``<id>.csv``), in the order of
    their ids, so a serial run and a Dask run write the same file. Returns ``(path, rows)``,
    or None when no image has a table (an earlier combined table is then removed). The path
    is kept as ``summary.table`` too.
    """
    from .batch_outputs import output_paths
    from .batch_ownership import own_outputs
    from .measure import read_measurements, write_measurements

    out_dir, rows = Path(out_dir), []
    for image_id in sorted(p.stem for p in out_dir.glob("*.tif") if not p.name.startswith(".")):
        outputs = output_paths(out_dir, image_id)
        if "measurements" in own_outputs(outputs, ["measurements"]):
            rows.extend(read_measurements(outputs["measurements"]))
    target = combined_table_path(out_dir, summary)
    if not rows:  # the tables it held went with their labels (--overwrite without --measurements)
        if is_combined_table(target, target.stem):
            target.unlink()
            _record_table(target, written=False)
        return None
    summary.table = write_measurements(target, rows)
    _record_table(summary.table, written=True)
    return summary.table, len(rows)
