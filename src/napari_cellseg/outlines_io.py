"""napari reader for cell outlines drawn elsewhere: QuPath GeoJSON and Fiji ROI sets.

Each file opens as a labels layer sized like the image of the same name beside it,
and placed like it when that image is a TIFF written by the plugin; without one, a file
napari's writers saved opens as the layer they saved (its shape and placement are in the
file). A file of no cell
(what the plugin's writers give for labels of none) opens as empty labels of that size;
outlines left out on the way (points, lines, outlines outside the image) are said in a
warning, not only in the layer's metadata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import (
    _META_KEY,
    GEOJSON_SUFFIXES,
    IMAGE_SUFFIXES,
    IMAGEJ_ROI_SUFFIXES,
    _is_tiff,
    _placement_from_json,
)


def napari_get_outlines_reader(path: str | Sequence[str]) -> Callable | None:
    """npe2 reader contribution: cell outlines (QuPath GeoJSON, Fiji ROI sets) as labels layers, else None.

    A list of paths (several files dropped together, or napari's reader dialog for them)
    gives one labels layer per file when every file is outlines; a list holding anything
    else is declined, so that other readers get their turn.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(_is_outlines_file(Path(p)) for p in paths):
        return None
    return read_outlines_layers


def _is_outlines_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in GEOJSON_SUFFIXES or suffix == ".roi":
        return True
    if suffix not in IMAGEJ_ROI_SUFFIXES:
        return False
    import zipfile

    try:  # a zip is a ROI set only if it holds .roi files (not, say, a zipped zarr)
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    # an empty zip is the plugin's ROI set of no cell (its writer's file for labels of none)
    return all(name.lower().endswith(".roi") for name in names)


def read_outlines_layers(path: str | Sequence[str]) -> list[tuple]:
    """One labels layer per outlines file, sized like the image of the same name beside it.

    ``slide7.geojson`` (or ``slide7_rois.zip``) next to ``slide7.tif`` (or .png,
    .jpg...) gets that image's height and width; without one the labels just hold
    every outline. An empty file (no cell) needs that image for its size.
    """
    from .data.outlines_import import EmptyOutlinesError, read_outlines

    layers = []
    for p in [path] if isinstance(path, (str, os.PathLike)) else list(path):
        p = Path(p)
        image = _image_beside(p)
        shape = _outlines_shape(image) if image is not None else None
        image = image if shape is not None else None
        record = _layer_record(p) if image is None else {}  # the napari writers' note of the layer
        shape = shape or record.get("shape")
        try:  # the writers' file for labels of no cell: empty labels of the image's size
            imported = read_outlines(p, shape, empty_ok=True)
        except EmptyOutlinesError:
            stem = p.stem.removesuffix("_rois") or p.stem
            raise EmptyOutlinesError(
                f"{p}: holds no cell outline, and no readable image of the same name ({stem}.tif, "
                f"{stem}.png...) lies beside it to give the size of labels without cells; put the "
                "image the outlines were drawn on beside the file and open it again"
            ) from None
        _warn_left_out(p, imported)
        metadata = {"source": str(p), "image": str(image) if image else None, "notes": list(imported.notes)}
        attributes = {"name": p.stem, "metadata": metadata}
        if image is not None and _is_tiff(image):  # drawn over the image as it reopens
            attributes.update(_stored_placement(image, imported.labels.ndim))
        elif record:  # where the layer saved lay
            attributes.update(_fitting_placement(_placement_from_json(record), imported.labels.ndim))
        layers.append((imported.labels, attributes, "labels"))
    return layers


def _warn_left_out(path: Path, imported) -> None:
    """A warning when outlines became no cell: the layer alone does not show what is missing."""
    if not imported.left_out:
        return
    from napari.utils.notifications import show_warning

    said, more = "; ".join(imported.left_out[:3]), len(imported.left_out) - 3
    said += f"; {more} more in the layer's metadata['notes']" if more > 0 else ""
    empty = "" if imported.labels.any() else ": no cell drawn"
    show_warning(f"{path.name}{empty}: {said}")


def _stored_placement(path: Path, ndim: int) -> dict[str, Any]:
    """The placement a TIFF written by :func:`write_tiff_layer` records, for an ``ndim``-D layer."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            stored = json.loads(tif.pages[0].description or "{}").get(_META_KEY) or {}
    except Exception:  # a foreign or odd TIFF: the outlines stay in pixels
        return {}
    return _fitting_placement(_placement_from_json(stored), ndim)


def _fitting_placement(placed: dict[str, Any], ndim: int) -> dict[str, Any]:
    """``placed``, or nothing where its scale or translate is not one per axis of an ``ndim``-D layer."""
    if any(np.ndim(v) != 1 or len(v) != ndim for k, v in placed.items() if k in ("scale", "translate")):
        return {}  # a layer of other dimensions (e.g. an RGB stack): pixels it is
    return placed


def _layer_record(path: Path) -> dict[str, Any]:
    """The shape and placement of the labels layer the napari writers saved ``path`` from
    (:func:`napari_cellseg.napari_io.layer_record`); ``{}`` for a file from elsewhere."""
    try:
        if path.suffix.lower() in GEOJSON_SUFFIXES:
            with open(path, encoding="utf-8") as fh:
                stored = json.load(fh).get(_META_KEY)
        else:
            import zipfile

            with zipfile.ZipFile(path) as archive:
                stored = json.loads(archive.comment or b"{}").get(_META_KEY)
        shape = tuple(int(n) for n in stored["shape"])
    except Exception:  # not written by the plugin, or not readable: read_outlines says why
        return {}
    if len(shape) not in (2, 3) or min(shape) < 1:
        return {}
    return {**stored, "shape": shape}


def _outlines_shape(image: Path) -> tuple[int, ...] | None:
    """``(H, W)`` of an image, ``(Z, H, W)`` of a stack (segment's labels of one); None if unreadable."""
    from .data.headers import HeaderError, read_header

    try:
        return read_header(image).shape
    except HeaderError:
        pass
    if not _is_tiff(image):
        return None
    import tifffile

    from .image_formats import main_series_index

    try:
        with tifffile.TiffFile(image) as tif:
            series = tif.series[main_series_index(tif)]
            shape = [n for n, axis in zip(series.shape, series.axes) if axis != "S"]
    except Exception:  # not a TIFF after all: the outlines size the labels
        return None
    return tuple(int(n) for n in shape) if len(shape) == 3 else None


def _image_beside(path: Path) -> Path | None:
    """The image ``slide7.*`` beside ``slide7.geojson`` or ``slide7_rois.zip``."""
    stems = [path.stem] + ([path.stem.removesuffix("_rois")] if path.stem.endswith("_rois") else [])
    for stem in stems:
        for suffix in IMAGE_SUFFIXES:
            for candidate in (path.with_name(stem + suffix), path.with_name(stem + suffix.upper())):
                if candidate.is_file():
                    return candidate
    return None
