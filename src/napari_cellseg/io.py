"""Reading and writing images and labels (the napari reader/writer hooks are in napari_io).

TIFF files written here carry the napari layer type, scale, translate and
metadata as JSON in the ImageDescription tag, so a labels layer saved and
reopened comes back as a labels layer with the same scale and metadata.

Every failure is reported as :class:`ImageReadError` naming the file, never as a
traceback from inside tifffile or imageio.
"""

from __future__ import annotations

import io as _io
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .config import atomic_write_bytes
from .image_formats import (
    MultiImageTiffError,
    allow_large_images,
    content_kind,
    is_png_colour16,
    read_jpeg,
    read_png_colour16,
    tiff_pixels,
)

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", *TIFF_SUFFIXES)
GEOJSON_SUFFIXES = (".geojson", ".json")
IMAGEJ_ROI_SUFFIXES = (".zip", ".roi")
_META_KEY = "napari_cellseg"


class ImageReadError(ValueError):
    """An image or labels file is missing, unreadable or not what was expected."""


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG, JPEG or TIFF file into a numpy array.

    Parameters
    ----------
    path : str or PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        The pixels, as stored (no conversion of dtype). PNGs with alpha lose it
        (RGBA becomes RGB, grey + alpha becomes grey).

    Raises
    ------
    ImageReadError
        If the file is missing, of an unknown type, or cannot be decoded.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: a folder, not an image file")
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path}: unsupported file type {suffix!r} (expected one of {IMAGE_SUFFIXES})")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    kind = content_kind(path)
    if kind is not None:
        raise ImageReadError(f"{path}: not a {suffix[1:].upper()} file (its first bytes are {kind})")
    try:
        if _is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                data = tiff_pixels(tif)
            if np.asarray(data).size == 0:
                raise ValueError("no image data found")
        elif suffix == ".png" and is_png_colour16(path):
            data = read_png_colour16(path)
        elif suffix in (".jpg", ".jpeg"):
            allow_large_images()
            data = read_jpeg(path)
        else:
            import imageio.v3 as iio

            allow_large_images()
            data = iio.imread(path)
    except MultiImageTiffError as err:
        raise ImageReadError(f"{path}: {err}") from None
    except Exception as err:  # decoders raise many types; name the file instead
        raise ImageReadError(f"{path}: cannot be read as an image ({type(err).__name__}: {err})") from None
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[-1] == 4 and not _is_tiff(path):
        data = data[..., :3]
    elif data.ndim == 3 and data.shape[-1] == 2 and not _is_tiff(path):  # grey + alpha (PNG "LA")
        data = data[..., 0]
    if data.size == 0:
        raise ImageReadError(f"{path}: the image is empty (shape {data.shape})")
    return data


def collapse_grey_rgb(image: np.ndarray) -> np.ndarray:
    """Return a 2D grey image if ``image`` is RGB(A) with three equal channels, else ``image`` (as an array)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return np.ascontiguousarray(rgb[..., 0])
    return image


def read_tiff_layer(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any], str]:
    """Read a TIFF written by :func:`write_tiff_layer` (or any TIFF).

    Returns
    -------
    data, attributes, layer_type
        ``attributes`` holds ``name``, ``scale``, ``translate`` and ``metadata``
        where the file recorded them; ``layer_type`` is ``"labels"`` or ``"image"``.
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with tifffile.TiffFile(path) as tif:
            description = tif.pages[0].description if len(tif.pages) else ""
            # our own files hold the layer's array as it was (older ones tagged 3 planes as RGB)
            data = tif.asarray() if _META_KEY in description else tiff_pixels(tif)
    except MultiImageTiffError as err:
        raise ImageReadError(f"{path}: {err}") from None
    except Exception as err:
        raise ImageReadError(f"{path}: not a readable TIFF ({type(err).__name__}: {err})") from None
    if data.size == 0:
        raise ImageReadError(f"{path}: not a readable TIFF (no image data found)")
    stored: dict[str, Any] = {}
    if description:
        try:
            parsed = json.loads(description)
            if isinstance(parsed, dict) and isinstance(parsed.get(_META_KEY), dict):
                stored = parsed[_META_KEY]
        except json.JSONDecodeError:
            pass
    shape = stored.get("array_shape")
    if isinstance(shape, list) and len(shape) != data.ndim and int(np.prod(shape)) == data.size:
        data = data.reshape(shape)
    layer_type = stored.get("layer_type")
    if layer_type not in ("image", "labels"):
        layer_type = "labels" if _looks_like_labels(path, data) else "image"
    attributes: dict[str, Any] = {"name": stored.get("name", path.stem), **_placement_from_json(stored)}
    if "metadata" in stored:
        attributes["metadata"] = stored["metadata"]
    if layer_type == "image":
        rgb = stored.get("rgb")  # files from before it was stored: guessed from the shape
        if rgb if rgb is not None else (data.ndim == 3 and data.shape[-1] in (3, 4)):
            attributes["rgb"] = True
        elif data.ndim == 3 and data.shape[-1] in (3, 4):
            attributes["rgb"] = False  # channels kept as an axis, as the layer had them
    return data, attributes, layer_type


def stored_layer(path: str | os.PathLike) -> dict[str, Any]:
    """What :func:`write_tiff_layer` stored in a TIFF (``layer_type``, ``metadata``...), read from
    the header only; ``{}`` for another file or a TIFF without it."""
    import tifffile

    _quiet_tifffile_log()
    _probing.on = True  # a garbage file logs "invalid offset" lines: muted in this thread only
    try:
        with tifffile.TiffFile(path) as tif:
            description = tif.pages[0].description if len(tif.pages) else ""
        stored = json.loads(description).get(_META_KEY) if description.startswith("{") else None
    except Exception:  # not a TIFF, no JSON description
        return {}
    finally:
        _probing.on = False
    return stored if isinstance(stored, dict) else {}


_probing = threading.local()  # set while this thread probes a header (:func:`stored_layer`)


def _quiet_tifffile_log() -> None:
    """Attach, once, a filter dropping tifffile's records from a thread that is probing.

    A filter, not ``logger.disabled``: threads (Dask workers, the GUI's) probing at once
    would save and restore that one flag out of order and could leave it off for good.
    """
    import logging

    log = logging.getLogger("tifffile")
    if not any(isinstance(f, _ProbeFilter) for f in log.filters):
        log.addFilter(_ProbeFilter())


class _ProbeFilter:
    def filter(self, record) -> bool:
        return not getattr(_probing, "on", False)


def _looks_like_labels(path: Path, data: np.ndarray) -> bool:
    """A foreign TIFF is labels if it is integer, 2D/3D and named or filed as masks."""
    if not np.issubdtype(data.dtype, np.integer) or data.dtype.itemsize < 2:
        return False
    hints = ("mask", "label", "target")
    return any(h in path.stem.lower() or h in path.parent.name.lower() for h in hints)


def write_tiff_layer(
    path: str | os.PathLike,
    data: np.ndarray,
    layer_type: str,
    attributes: dict[str, Any] | None = None,
) -> Path:
    """Write a layer's data and attributes to ``path`` atomically (zlib TIFF).

    Parameters
    ----------
    path : str or PathLike
        The TIFF file to write.
    data : array_like
        The layer's pixels: 2D or more, not empty; integer or bool for labels.
    layer_type : {"image", "labels"}
    attributes : dict, optional
        napari layer attributes: ``name``, ``scale``, ``translate``, ``rgb``,
        ``metadata``... (see :data:`PLACEMENT_KEYS`), kept in the file.

    Returns
    -------
    Path
        ``path``.
    """
    import tifffile

    if layer_type not in ("image", "labels"):
        raise ValueError(f"layer_type must be 'image' or 'labels', got {layer_type!r}")
    attributes = attributes or {}
    if attributes.get("multiscale"):  # a pyramid: its full-resolution level (np.asarray gives the smallest)
        data = data[0]
    data = np.asarray(data)
    # Refused here rather than written as a file read_image refuses, or failing inside tifffile.
    if data.ndim < 2 or data.size == 0:
        raise ValueError(f"data: a layer to save must be 2D or more and not empty, got shape {data.shape}")
    kinds = "biu" if layer_type == "labels" else "biuf"
    if data.dtype.kind not in kinds:
        what = "integer labels" if layer_type == "labels" else "numeric pixels"
        raise ValueError(f"data: {layer_type} must be {what}, got dtype {data.dtype}")
    stored = {"layer_type": layer_type, "name": attributes.get("name"), **_placement_to_json(attributes)}
    # a 4-D array's pages would read back as 3-D ("shape" itself would make tifffile read the JSON as its own)
    stored["array_shape"] = [int(n) for n in data.shape]
    if attributes.get("metadata"):
        stored["metadata"] = _jsonable(attributes["metadata"])
    rgb = attributes.get("rgb")
    if rgb is None:  # not said: guessed from the shape, as napari does
        rgb = data.ndim == 3 and data.shape[-1] in (3, 4)
    if layer_type == "image":
        stored["rgb"] = bool(rgb)
    buffer = _io.BytesIO()
    tifffile.imwrite(
        buffer,
        data,
        description=json.dumps({_META_KEY: stored}),
        metadata=None,
        compression="zlib",
        # minisblack, or tifffile takes a stack of 3 planes for planar RGB
        photometric="rgb" if layer_type == "image" and rgb else "minisblack",
    )
    return atomic_write_bytes(path, buffer.getvalue())


# Where a layer lies in the world: kept in the file so it reopens in place.
PLACEMENT_KEYS = ("scale", "translate", "rotate", "shear", "affine", "units", "axis_labels")


def _placement_to_json(attributes: dict[str, Any]) -> dict[str, Any]:
    stored = {}
    for key in PLACEMENT_KEYS:
        value = attributes.get(key)
        if value is None:
            continue
        if key in ("units", "axis_labels"):
            stored[key] = [str(v) for v in value]
        else:
            stored[key] = np.asarray(getattr(value, "affine_matrix", value), dtype=float).tolist()
    return stored


def _placement_from_json(stored: dict[str, Any]) -> dict[str, Any]:
    return {key: tuple(stored[key]) if key in ("units", "axis_labels", "scale", "translate")
            else np.asarray(stored[key], dtype=float) for key in PLACEMENT_KEYS if key in stored}  # fmt: skip


def _jsonable(value: Any) -> Any:
    """Keep what JSON can hold; drop the rest (napari metadata may hold arrays)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if _json_ok(v)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value if _json_ok(v)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_ok(value: Any) -> bool:
    if isinstance(value, (dict, list, tuple, str, int, float, bool, np.generic)) or value is None:
        return True
    return False


def find_images(
    paths: str | os.PathLike | Iterable[str | os.PathLike], exclude: str | os.PathLike | None = None
) -> list[Path]:
    """Image files among ``paths``; folders are expanded (sorted, not recursive).

    Parameters
    ----------
    paths : path or iterable of paths
        Files and folders; one string or path is one path, not its characters.
    exclude : path, optional
        A folder to leave out (the output folder, when it is also an input).

    Returns
    -------
    list of Path
        Paths that do not exist are kept so they are reported as failures; a
        file named twice is listed once.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    elif isinstance(paths, bytes) or not isinstance(paths, Iterable):
        raise TypeError(f"paths must be a path or an iterable of paths, got {type(paths).__name__}")
    paths = list(paths)
    bad = next((p for p in paths if not isinstance(p, (str, os.PathLike))), None)
    if bad is not None:
        raise TypeError(f"paths must hold file or folder paths, got {bad!r} ({type(bad).__name__})")
    if exclude is not None and not isinstance(exclude, (str, os.PathLike)):
        raise TypeError(f"exclude must be a folder path or None, got {type(exclude).__name__}")
    found: list[Path] = []
    exclude = Path(exclude).resolve() if exclude is not None else None
    for path in map(Path, paths):
        if path.is_dir():
            if exclude is not None and path.resolve() == exclude:
                continue
            found.extend(
                p for p in sorted(path.iterdir())
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )  # fmt: skip
        else:
            found.append(path)
    # one file under two spellings (relative and absolute, "dir/../dir/a.png", a folder and a
    # file in it) is listed once, under its first spelling; the name is part of the key so a
    # symlink named differently from its target stays an image of its own
    unique: dict[tuple[Path, str], Path] = {}
    for path in found:
        unique.setdefault((_resolved(path), path.name), path)
    return list(unique.values())


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as written
        return Path(os.path.abspath(path))
