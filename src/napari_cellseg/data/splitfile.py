"""Split files: ``split.csv`` with columns ``id, microscope, subset, group``.

:func:`split_hash` fingerprints the ``id -> subset`` mapping only (sorted
rows), so a model config that stores it shows whether a split file still
matches the one the model was trained with, whatever the row order or extra
columns.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import atomic_write_text
from .manifest import not_utf8

SUBSETS = ("train", "dev", "test")
SPLIT_COLUMNS = ("id", "microscope", "subset", "group")


class SplitError(ValueError):
    """A split cannot be made as asked, or a split file is not valid."""


def read_split(path: str | os.PathLike) -> dict[str, str]:
    """Read a split file into ``{id: subset}``.

    Parameters
    ----------
    path : str or PathLike
        A CSV with at least the columns ``id`` and ``subset``.

    Returns
    -------
    dict
        ``id -> "train" | "dev" | "test"``, in file order.

    Raises
    ------
    SplitError
        Listing every problem: missing file or columns, empty or duplicate
        ids, unknown subsets.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SplitError(f"{path}: no such split file") from None
    except UnicodeDecodeError as err:
        raise SplitError(f"{path}: {not_utf8(err)}") from None
    except OSError as err:
        raise SplitError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "id" not in columns or "subset" not in columns:
        raise SplitError(f"{path}: header {columns} needs columns 'id' and 'subset'")
    reader.fieldnames = columns
    subsets: dict[str, str] = {}
    problems = []
    for row in reader:
        line = reader.line_num
        image_id, subset = (row.get("id") or "").strip(), (row.get("subset") or "").strip()
        if not image_id:
            problems.append(f"line {line}: empty id")
        elif image_id in subsets:
            problems.append(f"line {line}: duplicate id {image_id!r}")
        elif subset not in SUBSETS:
            problems.append(f"line {line}: id {image_id!r} has subset {subset!r}, not one of {SUBSETS}")
        else:
            subsets[image_id] = subset
    if problems:
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise SplitError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:20]) + more)
    if not subsets:
        raise SplitError(f"{path}: the split lists no images")
    return subsets


def peek_split_ids(path: str | os.PathLike) -> set[str] | None:
    """The ids a file lists under ``id`` if its header has ``id`` and ``subset`` (or it is empty), else None.

    Lenient where :func:`read_split` is strict (undecodable bytes, duplicate
    ids, bad subsets pass): enough to tell whose split a file is before
    replacing it, without demanding that a file about to go be fixed first.
    """
    text = Path(path).read_bytes().decode("utf-8-sig", errors="replace")
    if not text.strip():
        return set()  # an empty file holds no one's split
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "id" not in columns or "subset" not in columns:
        return None
    reader.fieldnames = columns
    return {i for row in reader if (i := (row.get("id") or "").strip())}


def format_split(
    subsets: Mapping[str, str],
    microscopes: Mapping[str, str] | None = None,
    groups: Mapping[str, str] | None = None,
) -> str:
    """CSV text of a split, one row per id in mapping order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SPLIT_COLUMNS)
    for image_id, subset in subsets.items():
        microscope = (microscopes or {}).get(image_id, "")
        writer.writerow([image_id, microscope, subset, (groups or {}).get(image_id, "")])
    return buffer.getvalue()


def write_split(
    path: str | os.PathLike,
    subsets: Mapping[str, str],
    microscopes: Mapping[str, str] | None = None,
    groups: Mapping[str, str] | None = None,
) -> Path:
    """Write a split file atomically; ``subsets`` maps id to train/dev/test (at least one id)."""
    # An empty split would be written and then refused by read_split.
    check_subsets(subsets, allow_empty=False)
    return atomic_write_text(path, format_split(subsets, microscopes, groups))


def check_subsets(subsets: Any, allow_empty: bool = True) -> Mapping[str, str]:
    """``subsets`` if it maps non-empty string ids to train/dev/test, else :class:`SplitError`.

    A mapping is required (``TypeError`` otherwise); ``allow_empty=False`` refuses one with no id.
    """
    if not isinstance(subsets, Mapping):
        raise TypeError(f"subsets must be a mapping of id -> subset, got {type(subsets).__name__}")
    if not subsets and not allow_empty:
        raise SplitError("the split lists no images")
    bad_ids = [i for i in subsets if not isinstance(i, str) or not i.strip()]
    if bad_ids:
        raise SplitError(f"split ids must be non-empty strings, got {bad_ids[:5]}")
    bad = sorted({repr(s) for s in subsets.values() if s not in SUBSETS})
    if bad:
        raise SplitError(f"unknown subset(s) {', '.join(bad)}; a split uses {SUBSETS}")
    return subsets


def split_hash(split: str | os.PathLike | Mapping[str, str]) -> str:
    """SHA-256 (hex) of the sorted ``id,subset`` rows of a split file or mapping."""
    subsets = check_subsets(split, allow_empty=False) if isinstance(split, Mapping) else read_split(split)
    text = "".join(f"{image_id},{subsets[image_id]}\n" for image_id in sorted(subsets))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ids_by_subset(subsets: Mapping[str, str]) -> dict[str, list[str]]:
    """``{"train": [...], "dev": [...], "test": [...]}`` from ``{id: subset}``."""
    check_subsets(subsets)
    result: dict[str, list[str]] = {s: [] for s in SUBSETS}
    for image_id, subset in subsets.items():
        result[subset].append(image_id)
    return result
