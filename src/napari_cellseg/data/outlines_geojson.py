"""Cell outlines from QuPath's GeoJSON: polygons, the plane they lie on, notes on what was skipped.

Read by :mod:`.outlines_import`; a QuPath cell gives its nucleus outline, and the regions a
doctor drew around detections are not cells.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import is_whole_number

POLYGON_TYPES = ("Polygon", "MultiPolygon")


class OutlinesError(ValueError):
    """A GeoJSON file cannot be read as cell outlines (the message names the file)."""


def geojson_polygons(path: Path) -> tuple[list, list[str], list[str]]:
    """Polygons, notes, and the notes on features that became no cell."""
    features = _features(path)
    # QuPath exports the region a doctor drew (an annotation) with the cells found in it:
    # beside detections or cells an annotation is a region, not a cell.
    has_objects = any(_object_type(f) in ("detection", "cell") for f in features)
    polygons, notes, lost, regions, nuclei = [], [], [], 0, 0
    for number, feature in enumerate(features, start=1):
        if has_objects and _object_type(feature) == "annotation":
            regions += 1
            continue
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        nucleus = _nucleus_geometry(feature)
        if nucleus is not None:  # a QuPath cell: its nucleus, not the cell grown around it
            geometry, nuclei = nucleus, nuclei + 1
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        if kind not in POLYGON_TYPES:
            lost.append(f"feature {number}: {kind or 'no geometry'} skipped (only polygons are cells)")
            notes.append(lost[-1])
            continue
        try:
            rings = _rings(geometry)
        except (KeyError, TypeError, ValueError, IndexError):
            raise OutlinesError(f"{path}: feature {number}: malformed {kind} coordinates") from None
        properties = feature.get("properties") or {}
        label = properties.get("label") if isinstance(properties, dict) else None
        z = _plane(geometry.get("plane"))
        if z is None:
            raise OutlinesError(
                f"{path}: feature {number}: plane z must be a whole number >= 0, got {geometry['plane'].get('z')!r}"
            )
        polygons.append((label, rings, z))
    if regions:
        notes.append(f"{regions} annotation(s) skipped: beside detections they are regions, not cells")
    if nuclei:
        notes.append(f"{nuclei} QuPath cell(s): their nucleus outlines used")
    return polygons, notes, lost


def _object_type(feature) -> str | None:
    """QuPath's ``objectType`` (``"annotation"``, ``"detection"``, ``"cell"``...), None if absent."""
    if not isinstance(feature, dict):
        return None
    properties = feature.get("properties") if isinstance(feature.get("properties"), dict) else {}
    kind = properties.get("objectType") or properties.get("object_type") or feature.get("objectType")
    return kind.lower() if isinstance(kind, str) else None


def _nucleus_geometry(feature) -> dict | None:
    if not isinstance(feature, dict) or _object_type(feature) != "cell":
        return None
    properties = feature.get("properties") if isinstance(feature.get("properties"), dict) else {}
    nucleus = feature.get("nucleusGeometry") or properties.get("nucleusGeometry")
    return nucleus if isinstance(nucleus, dict) else None


def _plane(plane) -> int | None:
    """The z index of a GeoJSON geometry's ``plane`` (QuPath's), 0 without one, None if invalid."""
    z = plane.get("z", 0) if isinstance(plane, dict) else 0
    if isinstance(z, float) and z.is_integer():  # 2.0 from some writers
        z = int(z)
    # Not clamped to 0: a cell of plane -3 is not a cell of plane 0.
    return z if is_whole_number(z) and z >= 0 else None


def _features(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutlinesError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise OutlinesError(f"{path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise OutlinesError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        data = data.get("features")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        data = [data]
    if not isinstance(data, list):
        raise OutlinesError(
            f"{path}: not GeoJSON features (expected a FeatureCollection or a list of features)"
        )
    return data


def _rings(geometry: dict) -> list[list[np.ndarray]]:
    """``[[exterior, hole, ...], ...]`` of (x, y) arrays, one entry per polygon."""
    coordinates = geometry["coordinates"]
    polygons = [coordinates] if geometry["type"] == "Polygon" else coordinates
    out = []
    for polygon in polygons:
        rings = [np.asarray(ring, dtype=np.float64)[:, :2] for ring in polygon]
        if not rings or any(len(ring) < 3 for ring in rings) or not all(np.isfinite(r).all() for r in rings):
            raise ValueError("ring")
        out.append(rings)
    return out
