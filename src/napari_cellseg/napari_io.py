"""napari's readers and writers for TIFF layers (the npe2 contributions of ``napari.yaml``).

Thin hooks over :mod:`napari_cellseg.io`: one TIFF (or a stack of them) opens as a layer with
its name, placement and metadata (a TIFF whose axes name channels: a layer per channel); image and labels layers save as TIFF, labels also as QuPath
GeoJSON and Fiji ROI sets. Outline files open through :mod:`napari_cellseg.outlines_io`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .io import (
    _META_KEY,
    GEOJSON_SUFFIXES,
    IMAGE_SUFFIXES,
    IMAGEJ_ROI_SUFFIXES,
    TIFF_SUFFIXES,
    _is_tiff,
    _placement_to_json,
    read_tiff_layer,
    stored_layer,
    write_tiff_layer,
)


def napari_get_reader(path: str | Sequence[str]) -> Callable | None:
    """npe2 reader contribution: return a reader for TIFF paths, else None."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(_is_tiff(Path(p)) for p in paths):
        return None
    return _read_tiff_layers


def _read_tiff_layers(path: str | Sequence[str]) -> list[tuple]:
    """One layer; several paths (napari's *Open Files as Stack*) are its planes, in order."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    data, attributes, layer_type = read_tiff_layer(paths[0])
    if len(paths) == 1:
        return [(data, _channels_apart(paths[0], data, attributes, layer_type), layer_type)]
    planes = [data]
    for p in paths[1:]:
        plane, _, kind = read_tiff_layer(p)
        if (plane.shape, plane.dtype, kind) != (data.shape, data.dtype, layer_type):
            raise ValueError(
                f"{p}: cannot stack a {plane.dtype} {kind} of shape {plane.shape} on {paths[0]}, "
                f"a {data.dtype} {layer_type} of shape {data.shape}: stacked files must match"
            )
        planes.append(plane)
    attributes = {k: v for k, v in attributes.items() if k not in ("scale", "translate")}  # one more axis now
    return [(np.stack(planes), attributes, layer_type)]


def _channels_apart(path, data: np.ndarray, attributes: dict, layer_type: str) -> dict:
    """``attributes`` with napari's ``channel_axis`` where the TIFF's own axes name two or more
    channels: one layer per channel, named after it, so the nuclear one can be segmented.

    As one layer, DAPI and GFP were taken for two z-planes and both segmented.
    """
    from .image_formats import tiff_channels

    if layer_type != "image" or stored_layer(path):  # the plugin's own files keep their layer
        return attributes
    axis, names = tiff_channels(Path(path), data.shape)
    if axis is None:
        return attributes
    name = attributes.get("name", Path(path).stem)
    split = {key: value for key, value in attributes.items() if key not in ("rgb", "name")}
    return {**split, "channel_axis": axis, "name": [f"{name} {channel}" for channel in names]}


class LayerSaveError(RuntimeError):
    """A layer the writer cannot save in its format; the message names the file, the layer and why.

    Not a ValueError: napari's ``layer.save(path, plugin=...)`` takes a writer's ValueError
    for "no writer for this file", drops its message and writes nothing without saying why.
    """


@contextmanager
def _refusal_named(path: Path, attributes: dict, what: str) -> Iterator[None]:
    try:
        yield
    except ValueError as err:
        layer = attributes.get("name")
        layer = f" {layer!r}" if layer else ""
        raise LayerSaveError(f"{path}: cannot save the layer{layer} as {what}: {err}") from err


def write_image_layer(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 writer for one image layer (a pyramid's full-resolution level)."""
    target = _with_tif_suffix(path)
    with _refusal_named(target, attributes, "a TIFF"):
        return [str(write_tiff_layer(target, data, "image", attributes))]


def write_labels_layer(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 writer for one labels layer (a pyramid's full-resolution level)."""
    target = _with_tif_suffix(path)
    with _refusal_named(target, attributes, "a labels TIFF"):
        return [str(write_tiff_layer(target, data, "labels", attributes))]


def _full_resolution(data: Any, attributes: dict) -> np.ndarray:
    """A layer's pixels; of a pyramid its first level (``np.asarray`` of napari's gives the smallest)."""
    return np.asarray(data[0] if attributes.get("multiscale") else data)


def write_labels_imagej_rois(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 writer: one labels layer as a Fiji ROI set (``.zip``), one freehand ROI a cell.

    The zip's comment records the layer's shape and placement (:func:`layer_record`), which
    Fiji ignores, so that the set reopens in napari as this layer even without its image.
    """
    from .inference.outlines import write_imagej_rois

    target = _with_suffix(path, (".zip",))
    labels = _full_resolution(data, attributes)
    comment = json.dumps({_META_KEY: layer_record(labels, attributes)}).encode()
    with _refusal_named(target, attributes, "a Fiji ROI set"):
        return [str(write_imagej_rois(target, labels, comment=comment))]


def write_labels_geojson(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 writer: one labels layer as cell outlines in GeoJSON, for QuPath.

    Coordinates are the layer's pixels (its scale and translate are not applied),
    as QuPath places objects on the image they were segmented from. A foreign member
    ``napari_cellseg`` (RFC 7946, 6.1; QuPath reads the features alone) records the
    layer's shape and placement, so that the file reopens in napari as this layer even
    without its image beside it.
    """
    from .inference.outlines import write_geojson

    target = _with_suffix(path, (".geojson", ".json"))
    labels = _full_resolution(data, attributes)
    members = {_META_KEY: layer_record(labels, attributes)}
    with _refusal_named(target, attributes, "GeoJSON outlines"):
        return [str(write_geojson(target, labels, members=members, image_id=attributes.get("name")))]


def layer_record(labels: np.ndarray, attributes: dict) -> dict[str, Any]:
    """What outlines cannot tell of the labels layer they were drawn from: its shape (a layer
    of no cell, or cells clear of its far edges) and where it lies (scale, translate...)."""
    return {"shape": [int(n) for n in labels.shape], **_placement_to_json(attributes)}


def _with_suffix(path: str, suffixes: Sequence[str]) -> Path:
    """``path`` ending in ``suffixes[0]``: another image suffix is replaced; any other text after
    a dot stays part of the name (``slide.2 cells`` -> ``slide.2 cells.tif``, not ``slide.tif``)."""
    p = Path(path)
    if p.suffix.lower() in suffixes:
        return p
    if p.suffix.lower() in (*IMAGE_SUFFIXES, *GEOJSON_SUFFIXES, *IMAGEJ_ROI_SUFFIXES):
        return p.with_suffix(suffixes[0])
    return p.with_name(p.name + suffixes[0])


def _with_tif_suffix(path: str) -> Path:
    return _with_suffix(path, TIFF_SUFFIXES)
