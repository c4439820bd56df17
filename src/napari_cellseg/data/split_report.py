"""Plain-text tables of split counts, as the ``split`` command prints them."""

from __future__ import annotations

from collections.abc import Mapping


def format_table(counts: Mapping[str, Mapping[str, int]]) -> str:
    """Rows per subset, columns per microscope plus a total column and row.

    Parameters
    ----------
    counts : mapping
        ``counts[subset][microscope]`` image counts.

    Returns
    -------
    str
        An aligned table without trailing newline.
    """
    tags = sorted({m for row in counts.values() for m in row})
    header = ["subset", *tags, "total"]
    rows = [[s, *(row.get(m, 0) for m in tags), sum(row.values())] for s, row in counts.items()]
    totals = [sum(counts[s].get(m, 0) for s in counts) for m in tags]
    rows.append(["total", *totals, sum(totals)])
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) if k == 0 else str(v).rjust(w) for k, (v, w) in enumerate(zip(r, widths)))
        for r in [header, *rows]
    ]
    return "\n".join(lines)
