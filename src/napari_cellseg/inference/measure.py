"""Per-cell measurements as CellProfiler and QuPath users expect: one CSV row per cell."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..config import atomic_write_bytes

BASE_COLUMNS = ("image_id", "label", "area", "centroid_y", "centroid_x")


def measure_cells(labels: np.ndarray, image: np.ndarray, image_id: str) -> list[dict]:
    """One row per cell: label, area (px), centroid (row, column), mean intensity.

    Parameters
    ----------
    labels : array_like of int, shape (H, W) or (Z, H, W)
        Instance labels >= 0, 0 background (bool: one cell).
    image : array_like
        The segmented image with the same spatial shape, grey or with a
        trailing channel axis (one mean intensity column per channel);
        integer, float or bool.
    image_id : str
        Written in each row's ``image_id`` column.

    Returns
    -------
    list of dict
        Rows with ``image_id, label, area, [centroid_z,] centroid_y, centroid_x``
        and ``mean_intensity`` (grey) or ``mean_intensity_0..C-1``.
    """
    from skimage.measure import regionprops_table

    from ..instance_matching import check_labels

    labels = check_labels(labels, f"{image_id}: labels")  # integers >= 0 (a negative id was dropped)
    if labels.ndim not in (2, 3):
        raise ValueError(f"{image_id}: labels must be (H, W) or (Z, H, W), got shape {labels.shape}")
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise ValueError(f"{image_id}: image must be numeric, got dtype {image.dtype}")
    if image.dtype == bool:
        image = image.view(np.uint8)
    if image.shape[: labels.ndim] != labels.shape:
        raise ValueError(f"{image_id}: image shape {image.shape} does not match labels shape {labels.shape}")
    if image.ndim > labels.ndim + 1:
        raise ValueError(f"{image_id}: image shape {image.shape} has too many axes for labels {labels.shape}")
    table = regionprops_table(
        labels, intensity_image=image, properties=("label", "area", "centroid", "intensity_mean")
    )
    axes = ("centroid_z", "centroid_y", "centroid_x")[3 - labels.ndim :]
    renamed: dict[str, np.ndarray] = {"label": table["label"], "area": table["area"]}
    for i, name in enumerate(axes):
        renamed[name] = table[f"centroid-{i}"]
    if image.ndim == labels.ndim:
        renamed["mean_intensity"] = table["intensity_mean"]
    else:
        for c in range(image.shape[-1]):
            renamed[f"mean_intensity_{c}"] = table[f"intensity_mean-{c}"]
    rows = []
    for i in range(len(renamed["label"])):
        row = {"image_id": image_id}
        for key, values in renamed.items():
            value = values[i]
            row[key] = int(value) if key in ("label", "area") else round(float(value), 4)
        rows.append(row)
    return rows


def write_measurements(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write rows (as from :func:`measure_cells`, possibly of several images) to a CSV."""
    rows = list(rows)
    columns = list(BASE_COLUMNS)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    if any("centroid_z" in row for row in rows):
        columns.remove("centroid_z")
        columns.insert(columns.index("centroid_y"), "centroid_z")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    # An image id from a file name that is not UTF-8 (b"caf\xe9.png" gives "caf\udce9") is written
    # as its escape, "caf\\udce9", as the GeoJSON and TIFF headers write it: the table stays UTF-8.
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8", errors="backslashreplace"))


def read_measurements(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
