"""``manifest.csv``: one row per image, columns ``id, microscope`` and optional ``group``.

Further columns (dsb2018 has ``modality, source, height, width, n_nuclei``) are
kept as strings in each row's ``extra``. Reading collects every problem instead
of stopping at the first, so a user fixes a manifest in one pass.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..classes import check_microscope_tag
from ..config import atomic_write_text

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS = ("id", "microscope")
# Ids name files (images/<id>.png), so they must be safe file stems.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# File names end at 255 bytes: room for the outputs' suffixes (``_probabilities.tif``). Checked for new
# ids only (data.writer): a dataset written before the limit still opens.
MAX_ID_LENGTH = 200


@dataclass(frozen=True)
class ManifestRow:
    """One manifest row: ``line`` is its 1-based line number in the file."""

    line: int
    id: str
    microscope: str
    group: str | None
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


def check_id(image_id: str) -> str | None:
    """Return why ``image_id`` cannot name a file, or None when it can."""
    if not image_id:
        return "empty id"
    if not _ID_PATTERN.match(image_id) or image_id.endswith("."):
        return (
            f"id {image_id!r} cannot name a file: use letters, digits, '_', '-' and '.' (not first or last)"
        )
    return None


def not_utf8(err: UnicodeDecodeError) -> str:
    """What to say of a CSV file that is not UTF-8 (Excel's plain "CSV" on Windows is cp1252)."""
    line = err.object.count(b"\n", 0, err.start) + 1
    return f"not UTF-8 (byte 0x{err.object[err.start]:02x} on line {line}): save it as CSV UTF-8"


def read_manifest(
    path: str | os.PathLike, microscopes: Sequence[str] | None
) -> tuple[list[str], list[ManifestRow], list[str]]:
    """Read and check a manifest.

    Parameters
    ----------
    path : str or PathLike
        The ``manifest.csv`` file.
    microscopes : sequence of str or None
        The microscope tags allowed in the ``microscope`` column; None: any
        tag (:func:`~napari_cellseg.classes.check_microscope_tag`), as training
        takes the tags of the dataset it is given.

    Returns
    -------
    columns : list of str
        The header, in file order.
    rows : list of ManifestRow
        The rows that passed the checks, in file order.
    problems : list of str
        One reason per bad row or header (duplicate ids, unknown microscope,
        bad ids, missing columns); empty when the manifest is sound.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return [], [], ["no manifest.csv (it lists id,microscope[,group] for each image)"]
    except UnicodeDecodeError as err:
        return [], [], [not_utf8(err)]
    except OSError as err:
        return [], [], [f"cannot be read ({type(err).__name__}: {err})"]
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    named = [h for h in header if h]  # spreadsheets end headers with ",,": unnamed columns are ignored
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        hint = ""
        if len(header) == 1 and ";" in header[0]:  # a spreadsheet set to a European locale
            hint = "; the file is separated by ';': save it as comma-separated CSV"
        return named, [], [f"header {header} lacks column(s) {missing}{hint}"]
    duplicated = sorted({h for h in named if named.count(h) > 1})
    if duplicated:
        return named, [], [f"header repeats column(s) {duplicated}"]
    rows, problems, first_line = [], [], {}
    allowed = ", ".join(microscopes or ())
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        values = _without_empty_tail(values, header)
        if len(values) != len(header):
            problems.append(f"line {line}: {len(values)} fields, the header has {len(header)}")
            continue
        unnamed = [v.strip() for h, v in zip(header, values) if not h and v.strip()]
        if unnamed:
            problems.append(f"line {line}: value {unnamed[0]!r} in a column without a name")
            continue
        record = {h: v.strip() for h, v in zip(header, values) if h}
        image_id, microscope = record.pop("id"), record.pop("microscope")
        group = record.pop("group", "") or None
        bad_id = check_id(image_id)
        if bad_id:
            problems.append(f"line {line}: {bad_id}")
            continue
        if image_id in first_line:
            problems.append(f"line {line}: duplicate id {image_id!r} (first on line {first_line[image_id]})")
            continue
        first_line[image_id] = line
        bad_tag = check_microscope_tag(microscope) if microscopes is None else None
        if bad_tag:
            problems.append(f"line {line}: id {image_id!r}: {bad_tag}")
            continue
        if microscopes is not None and microscope not in microscopes:
            problems.append(
                f"line {line}: id {image_id!r} has unknown microscope {microscope!r} (allowed: {allowed})"
            )
            continue
        rows.append(ManifestRow(line, image_id, microscope, group, record))
    return named, rows, problems


def _without_empty_tail(values: list[str], header: list[str]) -> list[str]:
    """A row padded or cut to the header where only unnamed, empty trailing fields differ."""
    named_width = max(i for i, h in enumerate(header) if h) + 1
    if len(values) > len(header) and not any(v.strip() for v in values[len(header) :]):
        values = values[: len(header)]
    if named_width <= len(values) < len(header):
        values = values + [""] * (len(header) - len(values))
    return values


def format_manifest(columns: Sequence[str], rows: Iterable[dict[str, str]]) -> str:
    """CSV text for ``rows`` (dicts keyed by column; missing keys write as empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") or "" for c in columns})
    return buffer.getvalue()


def write_manifest(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[dict[str, str]]) -> Path:
    """Write a manifest atomically (temporary file + rename)."""
    return atomic_write_text(path, format_manifest(columns, rows))
