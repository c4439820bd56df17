"""Cell outlines from Fiji's ROI Manager: a ``.zip`` of ``.roi`` files, or one ``.roi``.

Area ROIs become outlines: polygon, freehand, traced, rectangle (rounded corners kept),
oval, and composite selections (their holes kept). Lines, points, text and image
overlays are skipped with a note, as is anything else that is not a cell. The pieces of
one cell written by the plugin (``"cell 7 piece 2"``) are joined; every other ROI is a
cell of its own.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from .outline_fill import ellipse_ring, rounded_rect_ring

# The plugin's own names: "cell <label>[ piece <k>][ slice <z>]".
OWN_NAME = re.compile(r"cell (\d+)(?P<piece> piece \d+)?(?: slice \d+)?")


class RoiFileError(ValueError):
    """Not a ROI set (the message omits the path)."""


def imagej_polygons(path: Path) -> tuple[list, list[str], list[str]]:
    """``[(label or None, [outline, ...], z), ...]``, notes, and the notes on ROIs that became no cell:
    a cell's outlines (its pieces), each a list of rings filled by the even-odd rule (a composite
    selection's holes stay empty)."""
    from roifile import ROI_SUBTYPE, ROI_TYPE

    areas = (ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED, ROI_TYPE.RECT, ROI_TYPE.OVAL)
    overlays = (ROI_SUBTYPE.TEXT, ROI_SUBTYPE.IMAGE, ROI_SUBTYPE.ARROW)
    rois, lost = _read_rois(path)  # entries skipped: no cell from them
    repeated = []
    outlines: dict[object, list] = {}
    for number, roi in enumerate(rois, start=1):
        what = f"ROI {number} ({roi.name or 'unnamed'})"
        if roi.roitype not in areas or roi.subtype in overlays:
            kind = roi.subtype.name if roi.subtype in overlays else roi.roitype.name
            lost.append(f"{what}: {kind.lower()} skipped (only areas are cells)")
            continue
        try:
            rings = _rings(roi)
        except (NotImplementedError, ValueError, IndexError) as err:  # e.g. curves in a composite
            lost.append(f"{what}: skipped, its outline cannot be read ({err}); in Fiji, "
                        "Edit > Selection > Interpolate makes it a polygon")  # fmt: skip
            continue
        rings = [r for r in rings if len(r) >= 3 and np.isfinite(r).all()]
        if not rings:
            lost.append(f"{what}: skipped, fewer than 3 points")
            continue
        z = max(roi.z_position or roi.position or 1, 1) - 1  # ImageJ counts slices from 1
        match = OWN_NAME.fullmatch(roi.name or "")
        key = (int(match.group(1)), z) if match else (("roi", number), z)
        if match and key in outlines and not match.group("piece"):
            repeated.append(f"{what}: the name repeats another ROI's: kept as a cell of its own")
            key = (("roi", number), z)
        outlines.setdefault(key, []).append(rings)  # the pieces of one cell: one outline each
    entries = [
        (label if isinstance(label, int) else None, pieces, z) for (label, z), pieces in outlines.items()
    ]
    return entries, lost + repeated, lost


def _read_rois(path: Path) -> tuple[list, list[str]]:
    """The ROIs of a ``.roi`` file or of the ``.roi`` entries of a zip, and notes on other entries."""
    from roifile import ImagejRoi

    if not path.is_file():
        raise RoiFileError("no such file")
    notes = []
    try:
        if not zipfile.is_zipfile(path):
            return [ImagejRoi.fromfile(path)], notes
        rois = []
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename
                if info.is_dir() or name.startswith("__MACOSX/") or Path(name).name.startswith("._"):
                    continue  # folders, and the resource forks macOS adds when zipping
                if not name.lower().endswith(".roi"):
                    notes.append(f"{name}: not a .roi entry, skipped")
                    continue
                try:
                    rois.append(ImagejRoi.frombytes(archive.read(info)))
                except Exception as err:  # one damaged entry: the others still count
                    notes.append(f"{name}: not an ImageJ ROI ({type(err).__name__}: {err}), skipped")
    except Exception as err:  # roifile and zipfile raise many types on a file that is not a ROI set
        raise RoiFileError(f"not an ImageJ ROI file ({type(err).__name__}: {err})") from None
    return rois, notes


def _rings(roi) -> list[np.ndarray]:
    """The outline's rings as ImageJ fills them: boxes for rectangles and ovals, paths for composites."""
    from roifile import ROI_TYPE

    if roi.composite:
        return [np.asarray(r, dtype=np.float64) for r in roi.coordinates(multi=True)]
    if roi.roitype in (ROI_TYPE.RECT, ROI_TYPE.OVAL):
        if roi.subpixelrect:
            box = (roi.xd, roi.yd, roi.widthd, roi.heightd)
        else:
            box = (roi.left, roi.top, roi.right - roi.left, roi.bottom - roi.top)
        if roi.roitype == ROI_TYPE.OVAL:
            return [ellipse_ring(*box)]
        return [rounded_rect_ring(*box, roi.rounded_rect_arc_size)]
    return [np.asarray(roi.coordinates(), dtype=np.float64)]
