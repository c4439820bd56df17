"""Save what the Segment panel found: the cells, a table of them, and outlines for QuPath.

One click writes ``<id>.tif`` (the labels, as napari reopens them),
``<id>.csv`` (one row per cell: area, centroid, mean intensity per channel) and
``<id>.geojson`` (the outlines, for QuPath), the same three files that
``napari-cellseg segment --measurements --geojson`` writes. A result is never
overwritten: when one of the names is taken, the next free ``<id>-2``,
``<id>-3``... is used for all three. :func:`iter_segment_folder` does the same
for every image of a folder (skipping those already done), into a results folder
other than the images folder, as ``napari-cellseg segment`` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESULT_SUFFIXES = (".tif", ".csv", ".geojson")
DEFAULT_FOLDER_NAME = "cellseg-results"


@dataclass(frozen=True)
class SavedResults:
    """The files written by :func:`save_segmentation`, and the number of cells in them."""

    labels: Path
    measurements: Path
    outlines: Path
    n_cells: int

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        return self.labels, self.measurements, self.outlines


def free_stem(folder: Path, image_id: str) -> str:
    """``image_id``, or ``image_id-2``, ``-3``... : the first stem none of whose result files exists."""
    stem, n = image_id, 1
    while any((folder / f"{stem}{suffix}").exists() for suffix in RESULT_SUFFIXES):
        n += 1
        stem = f"{image_id}-{n}"
    return stem


def save_segmentation(
    folder: str | os.PathLike,
    image_id: str,
    labels: np.ndarray,
    image: np.ndarray | None = None,
    attributes: dict[str, Any] | None = None,
) -> SavedResults:
    """Write the labels, their measurements and their outlines into ``folder``.

    Parameters
    ----------
    folder : path
        Created if missing.
    image_id : str
        The file stem (see :func:`free_stem`).
    labels : ndarray of int, shape (H, W) or (Z, H, W)
        The cells, 0 background (as corrected in napari).
    image : ndarray, optional
        The segmented image, with the labels' shape and optionally a trailing
        channel axis: the table gets its
        mean intensities. Left out (or of another size), the table has
        geometry only.
    attributes : dict, optional
        The labels layer's ``scale``, ``translate`` and ``metadata`` (model,
        watershed...), stored in the TIFF so that it reopens over its image.

    Returns
    -------
    SavedResults
    """
    from ..inference.measure import measure_cells, write_measurements
    from ..inference.outlines import write_geojson
    from ..io import PLACEMENT_KEYS, write_tiff_layer

    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"cells must be an integer label image (H, W) or (Z, H, W), got shape {labels.shape} {labels.dtype}"
        )
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    stem = free_stem(folder, image_id)
    paths = [folder / f"{stem}{suffix}" for suffix in RESULT_SUFFIXES]
    intensity = None if image is None else np.asarray(image)
    if intensity is not None and (
        intensity.shape[: labels.ndim] != labels.shape or intensity.ndim > labels.ndim + 1
    ):
        intensity = None  # a cropped or resampled view: geometry only
    rows = measure_cells(labels, labels if intensity is None else intensity, stem)
    if intensity is None:
        rows = [{k: v for k, v in row.items() if not k.startswith("mean_intensity")} for row in rows]
    write_measurements(paths[1], rows)
    write_geojson(paths[2], labels, image_id=stem)
    stored = {k: v for k, v in (attributes or {}).items() if k in (*PLACEMENT_KEYS, "metadata")}
    write_tiff_layer(paths[0], labels, "labels", {**stored, "name": f"{stem} cells"})
    return SavedResults(*paths, n_cells=len(rows))


@dataclass(frozen=True)
class FolderProgress:
    """One image of a folder done (or skipped, or failed): ``done`` of ``total``."""

    done: int
    total: int
    image_id: str
    status: str
    message: str = ""
    stage: str = "segmenting"


def default_results_folder(source: str | os.PathLike) -> Path:
    """``cellseg-results`` beside an image file, or inside a folder of images."""
    source = Path(source).expanduser()
    return (source if source.is_dir() else source.parent) / DEFAULT_FOLDER_NAME


def iter_segment_folder(
    images: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    **options: Any,
):
    """Segment every image of a folder into labels, tables and QuPath outlines (the GUI's batch).

    Parameters
    ----------
    images : path
        A folder of images (PNG, JPEG, BMP, TIFF; not recursive).
    model_dir : path
        The model.
    out_dir : path, optional
        Default: ``cellseg-results`` inside ``images``.
    **options
        :class:`~napari_cellseg.inference.batch.SegmentOptions` fields (``tta``,
        ``tta_zoom``, ``haematoxylin_only``...). Measurements, outlines and overlay
        pictures are on, and ``measurements.csv`` in ``out_dir`` holds every cell of
        the folder (``measurements-all.csv`` where an image is called ``measurements``:
        :func:`~napari_cellseg.inference.batch_table.combined_table_path`).

    Raises
    ------
    ValueError
        ``images`` is no folder, holds no image, or is ``out_dir`` itself.

    Yields
    ------
    FolderProgress
        One per image, its ``message`` without ``--overwrite`` advice. Images already
        segmented in ``out_dir`` are skipped, so an interrupted folder resumes.

    Returns
    -------
    napari_cellseg.inference.batch.BatchSummary
    """
    from ..inference.batch import (
        SegmentOptions,
        find_images,
        input_folder_as_output,
        iter_segment_files,
        plain_message,
        without_outputs,
    )
    from ..inference.batch_table import combine_measurements

    images = Path(images).expanduser()
    if not images.is_dir():
        raise ValueError(f"{images}: not a folder of images")
    out = Path(out_dir).expanduser() if out_dir is not None else default_results_folder(images)
    if input_folder_as_output([images], out) is not None:  # refused as the CLI refuses it
        raise ValueError(
            f"{out}: the results folder is the images folder; choose another one, or leave Folder "
            f"empty for {DEFAULT_FOLDER_NAME} inside it (results beside the images would be taken "
            "for images by the next run)"
        )
    files = without_outputs(find_images([images], exclude=out), out)
    if not files:
        raise ValueError(f"{images}: no image files here (PNG, JPEG, BMP or TIFF)")
    total = len(files)
    settings = SegmentOptions(**{**options, "measurements": True, "geojson": True, "overlays": True})
    reports = iter_segment_files(files, model_dir, out, settings)
    done = 0
    while True:
        try:
            report = next(reports)
        except StopIteration as stop:
            combine_measurements(out, stop.value)  # one table of every cell of the folder
            return stop.value
        done += 1
        yield FolderProgress(done, total, report.image_id, report.status, plain_message(report))
