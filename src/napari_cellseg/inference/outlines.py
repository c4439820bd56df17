"""Cell outlines as polygons, as GeoJSON for QuPath, as ROI sets for Fiji, and drawn on the image.

Pathologists count and classify nuclei in QuPath, which imports GeoJSON
(*File > Import objects from file*, or drag the file onto the image). Each
cell becomes one ``Feature``: a ``Polygon`` (``MultiPolygon`` when a label has
several pieces) in pixel coordinates of the image, x to the right and y down,
with QuPath's properties: ``objectType`` ``"detection"``, a ``classification``,
and ``measurements`` (area in pixels, centroid). Stacks get one plane per
feature (``geometry.plane.z``).

Outlines run along the pixel edges: each object's mask is traced at level 0.5
(:func:`skimage.measure.find_contours`), so a vertex lies half-way between an
inside and an outside pixel centre, and the coordinates are shifted by half a
pixel so that pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``, as
in QuPath. Corners are cut diagonally, so a polygon's area is the pixel count
less an eighth of a pixel per corner.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..classes import BOUNDARY, CLASS_COLORS
from ..config import atomic_write_bytes, atomic_write_text

OBJECT_TYPES = ("detection", "annotation")
DEFAULT_CLASS = "Nucleus"
DEFAULT_COLOR = tuple(round(255 * c) for c in CLASS_COLORS[BOUNDARY][:3])  # the plugin's boundary yellow


def label_polygons(labels: np.ndarray) -> dict[int, list[list[np.ndarray]]]:
    """Each label's outline as polygons, holes included.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 background.

    Returns
    -------
    dict
        ``{label: [polygon, ...]}``, one polygon per separate piece of the
        label; a polygon is ``[exterior, hole, ...]``, each ring an ``(N, 2)``
        float array of ``(x, y)`` vertices, closed (first vertex repeated),
        exterior counter-clockwise and holes clockwise in x-y axes (RFC 7946).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label_polygons needs a 2D label image, got shape {labels.shape}")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"label_polygons needs integer instance labels, got dtype {labels.dtype}")
    return {label: _object_polygons(labels, label, box) for label, box in _objects(labels)}


SPARSE_IDS = 1_000_000  # above this label value, number the cells 1..N first (find_objects lists every id)


def _objects(labels: np.ndarray) -> list[tuple[int, tuple[slice, slice]]]:
    """``(label, bounding box)`` of every cell, in label order."""
    from scipy import ndimage as ndi

    if labels.size == 0:
        return []
    if int(labels.min()) < 0:
        raise ValueError(f"instance labels must be >= 0, found {int(labels.min())}")
    if int(labels.max()) <= SPARSE_IDS:
        return [(k, box) for k, box in enumerate(ndi.find_objects(labels), start=1) if box is not None]
    from skimage.segmentation import relabel_sequential

    sequential, _, back = relabel_sequential(labels)
    return [
        (int(back[k]), box) for k, box in enumerate(ndi.find_objects(sequential), start=1) if box is not None
    ]


def _object_polygons(labels: np.ndarray, label: int, box) -> list[list[np.ndarray]]:
    mask = np.pad(labels[box] == label, 1)
    offset = np.array([box[1].start - 1, box[0].start - 1], dtype=np.float64)
    return _mask_polygons(mask, offset)


def _mask_polygons(mask: np.ndarray, offset: np.ndarray) -> list[list[np.ndarray]]:
    from skimage.measure import find_contours, points_in_poly

    exteriors, holes = [], []
    for contour in find_contours(mask.astype(np.uint8), 0.5):
        ring = _drop_collinear(contour[:, ::-1] + offset + 0.5)  # (row, col) -> (x, y), corner-based
        if len(ring) < 4:  # a closed ring needs three distinct vertices
            continue
        # find_contours winds round the mask's pieces one way (positive area in x-y
        # axes: counter-clockwise) and round its holes the other.
        (exteriors if _signed_area(ring) > 0 else holes).append(ring)
    polygons = [[ring] for ring in exteriors]
    for hole in holes:
        for polygon in polygons:
            if points_in_poly(hole[:1], polygon[0])[0]:
                polygon.append(hole)
                break
    return polygons


def _drop_collinear(ring: np.ndarray) -> np.ndarray:
    """A closed ring without the vertices that lie on a straight run (one per pixel edge)."""
    points = ring[:-1]
    before, after = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
    turn = (points - before)[:, 0] * (after - points)[:, 1] - (points - before)[:, 1] * (after - points)[:, 0]
    kept = points[np.abs(turn) > 1e-9]
    return np.concatenate([kept, kept[:1]]) if len(kept) else kept


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def polygon_area(polygon: list[np.ndarray]) -> float:
    """Area of ``[exterior, hole, ...]`` as from :func:`label_polygons`, in pixels."""
    return abs(_signed_area(polygon[0])) - sum(abs(_signed_area(hole)) for hole in polygon[1:])


def labels_to_geojson(
    labels: np.ndarray,
    *,
    object_type: str = "detection",
    classification: str | None = DEFAULT_CLASS,
    image_id: str | None = None,
) -> dict:
    """A GeoJSON ``FeatureCollection`` with one feature per cell, as QuPath imports it.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W) or (Z, H, W)
        Instance labels, 0 background; a stack puts its plane index in each
        feature's ``geometry.plane``.
    object_type : {"detection", "annotation"}
        QuPath's object type: detections are light (thousands per slide),
        annotations can be edited one by one.
    classification : str or None
        The QuPath class of every cell (None: unclassified).
    image_id : str, optional
        Written in each feature's ``name`` as ``"<image_id> cell <label>"``.

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...]}``; each feature's
        properties hold ``objectType``, ``classification``, ``name``,
        ``label`` (its value in ``labels``) and ``measurements`` (``Area px``,
        ``Centroid X px``, ``Centroid Y px``, from the pixels).
    """
    if object_type not in OBJECT_TYPES:
        raise ValueError(f"object_type must be one of {OBJECT_TYPES}, got {object_type!r}")
    labels = np.asarray(labels)
    features = []
    for z, plane in enumerate(_planes(labels)):
        features.extend(
            _plane_features(plane, z if labels.ndim == 3 else None, object_type, classification, image_id)
        )
    return {"type": "FeatureCollection", "features": features}


def _planes(labels: np.ndarray) -> list[np.ndarray]:
    """The 2D planes of ``(H, W)`` or ``(Z, H, W)`` labels."""
    if labels.ndim not in (2, 3):
        raise ValueError(f"labels must be (H, W) or (Z, H, W), got shape {labels.shape}")
    return [labels] if labels.ndim == 2 else list(labels)


def _plane_features(plane, z, object_type, classification, image_id) -> list[dict]:
    if plane.dtype == bool or not np.issubdtype(plane.dtype, np.integer):
        raise ValueError(f"labels must be integer instance labels, got dtype {plane.dtype}")
    features = []
    for label, box in _objects(plane):  # one cell's box at a time: memory stays small
        pieces = _object_polygons(plane, label, box)
        if not pieces:
            continue  # a label of single pixels on a diagonal has no area to outline
        rows, cols = np.nonzero(plane[box] == label)
        rings = [[_rounded(ring) for ring in polygon] for polygon in pieces]
        geometry: dict = (
            {"type": "Polygon", "coordinates": rings[0]}
            if len(rings) == 1
            else {"type": "MultiPolygon", "coordinates": rings}
        )
        if z is not None:
            geometry["plane"] = {"c": -1, "z": z, "t": 0}
        properties = {
            "objectType": object_type,
            "label": label,
            "measurements": {
                "Area px": float(len(rows)),
                "Centroid X px": round(float(cols.mean()) + box[1].start + 0.5, 3),
                "Centroid Y px": round(float(rows.mean()) + box[0].start + 0.5, 3),
            },
        }
        if image_id is not None:
            properties["name"] = f"{image_id} cell {label}"
        if classification is not None:
            properties["classification"] = {"name": classification, "color": list(DEFAULT_COLOR)}
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    return features


def _rounded(ring: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 3), round(float(y), 3)] for x, y in ring]


def write_geojson(
    path: str | os.PathLike, labels: np.ndarray, *, members: dict | None = None, **kwargs
) -> Path:
    """Write :func:`labels_to_geojson` of ``labels`` to ``path`` atomically; returns the path.

    ``members``: more members of the FeatureCollection (RFC 7946, 6.1; QuPath reads the
    features alone). Other keywords go to :func:`labels_to_geojson`.
    """
    collection = {**labels_to_geojson(labels, **kwargs), **(members or {})}
    return atomic_write_text(path, json.dumps(collection, separators=(",", ":")) + "\n")


def outline_overlay(image: np.ndarray, labels: np.ndarray, color=DEFAULT_COLOR) -> np.ndarray:
    """The image as 8-bit RGB with each cell's outline drawn in ``color``, to look through results.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Any dtype; 8-bit images keep their values, others are stretched between
        their 0.5th and 99.5th percentiles. One channel is shown grey; of more
        than three, the first three.
    labels : ndarray of int, shape (H, W)
        The cells (bool: one cell).
    color : sequence of 3 int
        RGB of the outlines, each in ``[0, 255]``; default the plugin's boundary yellow.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        A new array: ``image`` is never drawn on.
    """
    from skimage.segmentation import find_boundaries

    image, labels = np.asarray(image), np.asarray(labels)
    if image.shape[:2] != labels.shape or labels.ndim != 2 or image.ndim not in (2, 3):
        raise ValueError(
            f"overlay needs an (H, W[, C]) image and (H, W) labels, got {image.shape} and {labels.shape}"
        )
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integer instance labels, got dtype {labels.dtype}")
    if image.dtype.kind not in "biuf":
        raise ValueError(f"image must be a numeric (bool, integer or float) array, got dtype {image.dtype}")
    color = _check_color(color)
    rgb = image[..., None] if image.ndim == 2 else image[..., :3]
    if rgb.dtype != np.uint8:
        values = rgb.astype(np.float32)
        finite = values[np.isfinite(values)]
        low, high = np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 1.0)
        scaled = np.clip((np.nan_to_num(values, nan=low) - low) / max(high - low, 1e-6), 0, 1)
        rgb = (scaled * 255).round().astype(np.uint8)
    if rgb.shape[-1] != 3:
        rgb = np.repeat(rgb[..., :1], 3, axis=-1)
    # A copy even for uint8 RGB: the caller's image (maybe read-only) stays untouched.
    out = np.array(rgb, dtype=np.uint8, order="C")
    out[find_boundaries(labels, mode="inner")] = color
    return out


def _check_color(color) -> tuple[int, int, int]:
    values = np.asarray(color)
    if values.shape != (3,) or values.dtype.kind not in "iuf":
        raise ValueError(f"color must be 3 values (R, G, B) in [0, 255], got {color!r}")
    if not (np.all(values >= 0) and np.all(values <= 255)):  # also refuses NaN
        raise ValueError(f"color values must be in [0, 255], got {color!r}")
    return tuple(round(float(v)) for v in values)


def write_overlay(path: str | os.PathLike, image: np.ndarray, labels: np.ndarray) -> Path:
    """Write :func:`outline_overlay` as a PNG, atomically; returns the path."""
    import imageio.v3 as iio

    return atomic_write_bytes(path, iio.imwrite("<bytes>", outline_overlay(image, labels), extension=".png"))


def labels_to_imagej_rois(labels: np.ndarray) -> list:
    """One ImageJ freehand ROI per cell (Fiji's ROI Manager), named ``"cell <label>"``.

    A label of several pieces gives one ROI a piece (``"cell <label> piece <k>"``);
    a piece with holes (a cell around another) is a composite selection, ImageJ's
    shape ROI, so Fiji measures the ring alone. A stack ``(Z, H, W)`` sets each
    ROI's slice (its z position) and adds ``" slice <z>"`` to its name. Coordinates are
    sub-pixel, on the pixel edges as in :func:`label_polygons` (ImageJ, like QuPath, puts
    pixel ``(row, col)`` at ``[col, col + 1) x [row, row + 1)``).
    """
    from roifile import ImagejRoi

    labels = np.asarray(labels)
    rois = []
    for z, plane in enumerate(_planes(labels)):
        for label, pieces in label_polygons(plane).items():
            for k, polygon in enumerate(pieces, start=1):
                name = f"cell {label}" if len(pieces) == 1 else f"cell {label} piece {k}"
                position = {}
                if labels.ndim == 3:  # names are the zip's file names: one per slice
                    # roifile stores both 1-based; a plain stack in Fiji reads position, a hyperstack z
                    name, position = f"{name} slice {z + 1}", {"z": z, "position": z}
                if len(polygon) == 1:
                    rois.append(ImagejRoi.frompoints(polygon[0][:-1], name=name, **position))
                else:
                    rois.append(_composite_roi(polygon, name, **position))
    return rois


def _composite_roi(polygon: list[np.ndarray], name: str, z: int | None = None, position: int | None = None):
    """A shape ROI of closed rings (exterior and holes; ImageJ fills them even-odd)."""
    from roifile import ROI_OPTIONS, ROI_TYPE, ImagejRoi

    path = []
    for ring in polygon:  # x, y, closed (last point = first)
        ops = np.ones((len(ring) - 1, 1), np.float32)
        ops[0] = 0  # MOVETO, then LINETO
        path += [np.hstack([ops, ring[:-1].astype(np.float32)]).ravel(), np.float32([4])]  # CLOSE
    roi = ImagejRoi()
    roi.roitype, roi.name = ROI_TYPE.RECT, name
    roi.options = ROI_OPTIONS.OVERLAY_BACKGROUNDS | ROI_OPTIONS.OVERLAY_LABELS
    roi.multi_coordinates = np.concatenate(path)
    roi.shape_roi_size = len(roi.multi_coordinates)
    low, high = np.floor(polygon[0].min(axis=0)), np.ceil(polygon[0].max(axis=0))
    roi.left, roi.top, roi.right, roi.bottom = int(low[0]), int(low[1]), int(high[0]), int(high[1])
    if z is not None:
        roi.z_position, roi.position = z + 1, position + 1
    return roi


def write_imagej_rois(path: str | os.PathLike, labels: np.ndarray, *, comment: bytes = b"") -> Path:
    """Write :func:`labels_to_imagej_rois` as a ROI-set zip (drag it onto Fiji), atomically.

    The zip holds ``<ROI name>.roi`` files, as Fiji's ROI Manager saves them; no cell
    gives an empty set. ``comment`` is the zip's comment (Fiji ignores it).
    """
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for roi in labels_to_imagej_rois(labels):
            archive.writestr(f"{roi.name}.roi", roi.tobytes())
        archive.comment = comment
    return atomic_write_bytes(path, buffer.getvalue())
