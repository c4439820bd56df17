"""The label files of a folder that ``napari-cellseg evaluate`` scores, and reading them.

Files are paired by stem (``<id>.tif``, ``.png``, outlines ``<id>.geojson`` or
``<id>_rois.zip``...). Where one id has both a label image and outlines, one is chosen
(:func:`find_label_files`); the other outputs that ``segment`` writes beside its labels
(``<id>_overlay.png``, ``<id>_probabilities.tif``) are not predictions and are left out.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import IMAGEJ_ROI_SUFFIXES

# GeoJSON (QuPath) and ImageJ ROI sets (Fiji; "<id>_rois.zip" pairs with "<id>") hold outlines.
LABEL_SUFFIXES = (".tif", ".tiff", ".png", ".geojson", ".zip", ".roi")
OUTLINE_SUFFIXES = (".geojson", *IMAGEJ_ROI_SUFFIXES)


class EvaluationError(ValueError):
    """The folders, files or manifest cannot be evaluated; the message says why."""


def find_label_files(
    directory: str | os.PathLike, what: str, notes: list[str] | None = None
) -> dict[str, Path]:
    """``{stem: path}`` of the label images in ``directory``.

    A stem with both a label image and outlines (``<id>.tif`` + ``<id>.geojson``) is one
    file: the labels when they are labels the plugin wrote (``segment --geojson`` writes
    outlines beside them; the header says so) or matched object for object by the outlines;
    the outlines when the other
    file is an image (RGB, floating point, recorded as an image), as QuPath and
    ``import-outlines`` users keep the image beside its outlines. Anything else is refused,
    naming both files: scoring a grey image as labels gave 0 without a word. Which file was
    taken, when not the plugin's own labels, is appended to ``notes``. The other outputs
    ``segment`` writes beside an image's labels ``<id>.tif`` (``<id>_overlay.png``,
    ``<id>_probabilities.tif``) are left out while those labels are there.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise EvaluationError(f"{what} folder {directory} does not exist")
    files: dict[str, Path] = {}
    listed = sorted(directory.iterdir())
    extras = _batch_extras({path.name for path in listed})
    for path in listed:
        if path.is_file() and path.suffix.lower() in LABEL_SUFFIXES and path.name not in extras:
            stem = path.stem.removesuffix("_rois") if is_outlines(path) else path.stem
            if stem in files and is_outlines(files[stem]) != is_outlines(path):
                labels, outlines = (path, files[stem]) if is_outlines(files[stem]) else (files[stem], path)
                files[stem] = _labels_or_outlines(labels, outlines, stem, what, notes)
                continue
            if stem in files:
                raise EvaluationError(f"{what}: two files for id {stem}: {files[stem].name}, {path.name}")
            files[stem] = path
    if not files:
        raise EvaluationError(
            f"{what} folder {directory} holds no label images ({', '.join(LABEL_SUFFIXES)})"
        )
    return files


def _batch_extras(names: set[str]) -> set[str]:
    """Those of ``names`` that are the batch's extra outputs (not outlines: those pair with their
    labels by stem) of an image whose labels file is among ``names`` too."""
    from .batch_outputs import output_paths

    placeholder = "<id>"
    endings = [
        path.name.removeprefix(placeholder)
        for key, path in output_paths(Path(), placeholder).items()
        if key != "labels" and path.suffix.lower() in LABEL_SUFFIXES and not is_outlines(path)
    ]
    labels_ending = output_paths(Path(), placeholder)["labels"].name.removeprefix(placeholder)
    return {
        name
        for name in names
        for ending in endings
        if name.endswith(ending) and name.removesuffix(ending) + labels_ending in names
    }


def _labels_or_outlines(labels: Path, outlines: Path, stem: str, what: str, notes: list[str] | None) -> Path:
    """Which of ``<id>.tif`` (or ``.png``) and its outlines is the label file; see :func:`find_label_files`."""
    kind, why = _label_file_kind(labels)
    if kind == "labels":
        if why and notes is not None:
            notes.append(f"{what} {stem}: scored {labels.name} ({why}), not {outlines.name} beside it")
        return labels
    if kind == "image":
        if notes is not None:
            notes.append(
                f"{what} {stem}: scored {outlines.name}; {labels.name} beside it is an image ({why})"
            )
        return outlines
    if _outlines_drawn_from(labels, outlines):
        if notes is not None:
            notes.append(
                f"{what} {stem}: scored {labels.name}, the labels {outlines.name} beside it outlines"
            )
        return labels
    raise EvaluationError(
        f"{what}: two files for id {stem}: {labels.name}, {outlines.name}; {labels.name} {why}, so it may be "
        f"the image the outlines were drawn on as well as labels: move the one not to be scored out of "
        f"the folder (labels written by napari-cellseg are recognised)"
    )


def _outlines_drawn_from(labels: Path, outlines: Path) -> bool:
    """Whether ``outlines`` are those of the objects in ``labels`` (one outline per id, same cells).

    A grey image has far more values than outlines and no background of zeros; labels that
    the outlines were exported from (another tool, or ``segment`` before labels were marked)
    match them object for object.
    """
    from ..data.outlines_import import OutlinesError, read_outlines
    from ..io import ImageReadError, read_image

    try:
        pixels = read_image(labels)
        if pixels.ndim != 2 or not np.issubdtype(pixels.dtype, np.integer):
            return False
        drawn = read_outlines(outlines, pixels.shape, empty_ok=True).labels
    except (ImageReadError, OutlinesError, ValueError):
        return False
    ids = np.unique(pixels)
    n_objects = len(ids) - (1 if ids[0] == 0 else 0)
    if drawn.shape != pixels.shape or n_objects != len(np.unique(drawn[drawn > 0])):
        return False
    inside, drawn_inside = pixels > 0, drawn > 0
    union = np.count_nonzero(inside | drawn_inside)
    return union == 0 or np.count_nonzero(inside & drawn_inside) >= 0.9 * union


def _label_file_kind(path: Path) -> tuple[str, str]:
    """``("labels" | "image" | "unknown", why)`` for a TIFF or PNG, from its header only."""
    from ..data.headers import HeaderError, read_header
    from ..io import TIFF_SUFFIXES, stored_layer

    if path.suffix.lower() in TIFF_SUFFIXES:
        layer_type = stored_layer(path).get("layer_type")
        if layer_type == "labels":
            return "labels", ""
        if layer_type == "image":
            return "image", "saved as an image layer"
    try:
        header = read_header(path)
    except HeaderError as err:
        return "unknown", f"has no readable 2D header ({err})"
    if header.channels != 1:
        return "image", f"{header.channels} colour channels"
    dtype = np.dtype(header.dtype)
    if not np.issubdtype(dtype, np.integer):
        return "image", f"{dtype.name} pixels"
    # a folder named masks/labels proves nothing (an image may sit there beside its outlines):
    # such a file counts as labels only if the outlines beside it match it (see _labels_or_outlines)
    return "unknown", f"holds {dtype.name} grey pixels and does not record being labels"


def read_labels(path: Path, what: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A 2D integer label image, or :class:`EvaluationError` naming the file.

    A ``.geojson`` file's outlines are drawn into labels of ``shape`` (that of
    the image it is compared with), else just large enough for them.
    """
    from ..data.outlines_import import OutlinesError, read_outlines
    from ..io import ImageReadError, read_image

    try:
        # empty outlines are a prediction (or truth) of no cells, sized like the other file
        labels = read_outlines(path, shape, empty_ok=True).labels if is_outlines(path) else read_image(path)
    except (ImageReadError, OutlinesError) as err:
        raise EvaluationError(f"{what}: {err}") from None
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise EvaluationError(
            f"{what} {path}: expected 2D integer instance labels, got shape {labels.shape} "
            f"and dtype {labels.dtype}"
        )
    if labels.size and labels.min() < 0:  # signed labels: scoring would fail without the file name
        raise EvaluationError(f"{what} {path}: instance labels must be >= 0, found {labels.min()}")
    from ..data.pixels import PixelError, refuse_binary_mask

    try:
        refuse_binary_mask(labels)  # a semantic mask would score as one object
    except PixelError as err:
        raise EvaluationError(f"{what} {path}: {err}") from None
    return labels


def is_outlines(path: Path) -> bool:
    """Whether ``path`` is an outlines file (GeoJSON, ImageJ ROIs) rather than a label image."""
    return path.suffix.lower() in OUTLINE_SUFFIXES
