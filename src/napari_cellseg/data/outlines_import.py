"""Cell outlines drawn elsewhere (QuPath's GeoJSON, Fiji's ROI sets) as instance labels.

Doctors who outlined nuclei in QuPath (*File > Export objects as GeoJSON*) or
in Fiji's ROI Manager (*More > Save*) can open the file in napari and save it
into a dataset as training labels, or add many images at once
(:func:`iter_import_outlines`, ``napari-cellseg import-outlines``).
Polygons are in pixel coordinates with pixel ``(row, col)`` covering
``[col, col + 1) x [row, row + 1)``, as QuPath writes them and as
:mod:`napari_cellseg.inference.outlines` writes them, so a file written by the
plugin reads back to the same labels. A pixel belongs to an outline when its
centre lies inside it; where outlines overlap, the later feature wins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import is_whole_number
from ..io import IMAGEJ_ROI_SUFFIXES
from .imagej_import import RoiFileError, imagej_polygons
from .known_images import earlier_id, manifest_row, same_pixels
from .outline_fill import polygon_mask
from .outlines_geojson import OutlinesError, geojson_polygons

# What an image's outlines may be called beside it, in the order they are looked for.
OUTLINE_FILE_ENDINGS = (".geojson", "_rois.zip", ".zip", ".roi")
# The manifest column where an imported image's file is recorded (absolute path): a later import
# of another file under the same id is told apart from a re-import of this one.
SOURCE_COLUMN = "source_file"
MAX_PIXELS = 200_000_000  # labels sized from the outlines alone: 400 MB of uint16 at most
# Planes of a stack sized from the outlines alone (no (Z, H, W) shape given).
MAX_PLANES = 1000


class EmptyOutlinesError(OutlinesError):
    """The file holds no outline at all (as written for labels of no cell), and empty labels were
    not asked for or cannot be sized."""


@dataclass(frozen=True)
class ImportedOutlines:
    """Labels made from an outlines file, and what was left out or changed on the way: ``left_out``,
    the notes on outlines that became no cell (skipped, or outside the image), are worth a warning."""

    labels: np.ndarray
    notes: tuple[str, ...] = field(default_factory=tuple)
    left_out: tuple[str, ...] = field(default_factory=tuple)


def read_outlines(
    path: str | os.PathLike, shape: tuple[int, int] | None = None, *, empty_ok: bool = False
) -> ImportedOutlines:
    """Instance labels from the cell outlines of a GeoJSON file or an ImageJ ROI set.

    Parameters
    ----------
    path : path
        ``.geojson``: a ``FeatureCollection``, a list of features (QuPath's other
        export) or one feature; ``Polygon`` and ``MultiPolygon`` features become
        cells. ``.zip`` or ``.roi``: Fiji's ROI Manager (*More > Save*); polygon,
        freehand, traced, rectangle and oval ROIs become cells. Others (points,
        lines) are skipped with a note.
    shape : (H, W) or (Z, H, W), optional
        The image's shape (a stack's keeps planes without outlines). Default:
        just large enough for every outline.
    empty_ok : bool
        An empty file (no feature, no ROI: what ``segment`` writes for an image
        without cells) gives labels of zeros of ``shape`` instead of an error
        (``evaluate``: a prediction of no cells). Importing keeps refusing it.

    Returns
    -------
    ImportedOutlines
        ``labels`` (uint16, uint32 past 65535 cells), one label per outline in
        file order, or the outlines' own labels where each has a distinct one
        (files written by the plugin: a GeoJSON ``label`` property, an ImageJ
        ROI named ``"cell <label>"``); ``notes``, and among them ``left_out``:
        those on outlines that became no cell.

    Raises
    ------
    OutlinesError
        Naming the file: unreadable, not GeoJSON or ImageJ ROIs, or holding no
        outline (only points or lines, or empty without ``empty_ok`` and ``shape``:
        :class:`EmptyOutlinesError` for a file of no outline at all).
    """
    path = Path(path)
    if shape is not None:
        shape = _check_shape(shape)
    if path.suffix.lower() in IMAGEJ_ROI_SUFFIXES:
        try:
            polygons, notes, lost = imagej_polygons(path)
        except RoiFileError as err:
            raise OutlinesError(f"{path}: {err}") from None
    else:
        polygons, notes, lost = geojson_polygons(path)
    if not polygons:
        if empty_ok and shape is not None and not notes:  # segment's file for an image without cells
            return ImportedOutlines(np.zeros(shape, np.uint16), ("no outline: no cell",))
        why = f" ({'; '.join(notes[:3])})" if notes else ""
        error = OutlinesError if notes else EmptyOutlinesError
        raise error(f"{path}: holds no polygon outline: no cell to read{why}")
    planes = None
    deepest = max(z for _, _, z in polygons)
    if shape is not None and len(shape) == 3:
        planes, shape = shape[0], shape[1:]
        if deepest >= planes:
            raise OutlinesError(
                f"{path}: outlines lie on plane {deepest + 1}; the image has {planes} plane(s)"
            )
    if planes is None and deepest >= MAX_PLANES:
        raise OutlinesError(
            f"{path}: outlines lie on plane {deepest + 1}: a stack that deep is not made from the outlines "
            "alone; give the image's (Z, H, W) shape"
        )
    if shape is None:
        shape = _extent(polygons)
        if shape[0] * shape[1] * (deepest + 1) > MAX_PIXELS:
            raise OutlinesError(
                f"{path}: the outlines reach x {shape[1]}, y {shape[0]} (a whole-slide export?): "
                "labels that large would not fit in memory; export the objects of a region, "
                "or give the image's shape"
            )
        notes.append(f"no image given: labels sized {shape[0]} x {shape[1]} to hold every outline")
    labels, more, lost_more = _rasterise(polygons, tuple(int(n) for n in shape), planes)
    return ImportedOutlines(labels, tuple(notes + more), tuple(lost + lost_more))


def _check_shape(shape) -> tuple[int, ...]:
    from .arguments import check_integer

    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) not in (2, 3):
        raise ValueError(f"shape must be (H, W) or (Z, H, W), got {shape!r}")
    return tuple(check_integer(n, "shape", minimum=1) for n in shape)


def _extent(polygons) -> tuple[int, int]:
    high = np.zeros(2)
    for _, rings, _z in polygons:
        for polygon in rings:
            high = np.maximum(high, np.concatenate(polygon).max(axis=0))
    return int(np.ceil(high[1])), int(np.ceil(high[0]))  # (H, W) from (x, y)


def _rasterise(polygons, shape: tuple[int, int], planes: int | None = None) -> tuple[np.ndarray, list, list]:
    """Labels ``shape`` (a stack ``(Z, *shape)`` when ``planes`` is given or outlines lie on several),
    notes, and the notes on outlines that became no cell."""
    deepest = 1 + max(z for _, _, z in polygons)
    stack = planes is not None
    planes = planes or deepest
    values = [label for label, _, _ in polygons]
    own = all(is_whole_number(v) and v > 0 for v in values)
    own = own and len({(label, z) for label, _, z in polygons}) == len(polygons)  # distinct in a plane
    own = own and max(values) <= np.iinfo(np.uint32).max  # else numbered in file order
    top = max(values) if own else len(polygons)
    labels = np.zeros((planes, *shape), np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32)
    lost, overlapped, outside = [], 0, 0
    for number, (label, rings, z) in enumerate(polygons, start=1):
        painted = 0
        for polygon in rings:
            box, inside = polygon_mask(polygon, shape)
            if inside is None:
                continue
            window = labels[z][box]
            overlapped += int(np.count_nonzero(window[inside]))
            window[inside] = label if own else number
            painted += int(np.count_nonzero(inside))
        outside += painted == 0
    if outside:
        lost.append(f"{outside} outline(s) hold no pixel centre of the image (outside it, or too thin)")
    notes = list(lost)
    if overlapped:
        notes.append(f"outlines overlap on {overlapped} pixel(s): the later feature kept them")
    return (labels[0] if planes == 1 and not stack else labels), notes, lost


@dataclass(frozen=True)
class ImportReport:
    """One image of :func:`iter_import_outlines`: ``done`` of ``total``."""

    done: int
    total: int
    image_id: str
    status: str  # "added", "no outlines", "exists" (already in the dataset, not overwritten) or "failed"
    message: str = ""
    cells: int = 0
    # "exists" only: whether the image listed under that id is this one (recorded from this
    # file, or the same pixels), so replacing it loses nothing but its old labels
    same_image: bool = False


def iter_import_outlines(
    images: list[str | os.PathLike],
    outlines: str | os.PathLike | None,
    dataset: str | os.PathLike,
    microscope: str,
    *,
    group: str | None = None,
    overwrite: bool = False,
):
    """Add images and their outlines to a dataset folder, as masks.

    An image's outlines are ``<image stem>.geojson`` (QuPath) or ``<image stem>_rois.zip``,
    ``.zip``, ``.roi`` (Fiji's ROI Manager), beside it or in ``outlines``.

    Parameters
    ----------
    images : list of path
        Image files or folders of images (not recursive).
    outlines : path, optional
        The folder of the outline files; default: beside each image.
    dataset : path
        The dataset folder (created if new); each image's id is its file stem made
        file-safe (:func:`dataset_id`), or the id an earlier import gave this very image;
        the image file is recorded in the manifest's ``source_file`` column.
    microscope : str
        The microscope tag of every image.
    group : str, optional
        Their slide or patient key (kept together by the split).
    overwrite : bool
        Replace images already in the dataset under the same id (else: status ``"exists"``).

    Yields
    ------
    ImportReport
        One per image; an image without outlines or with a bad file is
        reported and the others go on.

    Returns
    -------
    list of ImportReport
        All of them.
    """
    from ..io import find_images

    files = find_images(images, exclude=Path(dataset))
    if not files:
        raise ValueError(f"no image files in {', '.join(map(str, images))}")
    reports, first_of_id = [], {}
    for done, image_path in enumerate(files, start=1):
        image_id = dataset_id(image_path.stem)
        # slideA/field1.png and slideB/field1.png: one id, and one would replace the other
        earlier = first_of_id.setdefault(image_id, image_path)
        mask_note = _mask_note(image_path, files, outlines)
        if mask_note is not None:  # Cellpose's field1_cp_masks.png beside field1.png: labels, not an image
            status, message, cells, same = "no outlines", mask_note, 0, False
        elif earlier != image_path:
            status, message, cells, same = (
                "failed", f"{image_path}: same id as {earlier} ({image_id}); rename one of them", 0, False
            )  # fmt: skip
        else:
            status, message, cells, image_id, same = _import_one(
                image_path, image_id, outlines, dataset, microscope, group, overwrite
            )
            if status == "added" and image_id != image_path.stem:
                message = "; ".join(filter(None, [f"from {image_path.name!r}", message]))
        reports.append(ImportReport(done, len(files), image_id, status, message, cells, same))
        yield reports[-1]
    return reports


def _mask_note(path: Path, files: list[Path], outlines) -> str | None:
    """Why ``path`` is no image to import: the mask of an image beside it, as Cellpose or StarDist
    name them (``field1_cp_masks.png`` for ``field1.png``) and without outlines of its own; else None."""
    from .dataset import FOREIGN_MASK_SUFFIXES

    if not any(path.stem.endswith(suffix) for suffix in FOREIGN_MASK_SUFFIXES):
        return None  # most files: no scan of the others (each did, a large import was quadratic)
    folder = Path(outlines) if outlines is not None else path.parent
    if any((folder / (path.stem + ending)).is_file() for ending in OUTLINE_FILE_ENDINGS):
        return None
    for suffix in FOREIGN_MASK_SUFFIXES:
        stem = path.stem.removesuffix(suffix)
        if stem == path.stem:
            continue
        image = next((f for f in files if f.parent == path.parent and f.stem == stem), None)
        if image is not None:
            return (
                f"looks like the mask of {image.name}, not an image: only QuPath and Fiji outlines are "
                f"imported here; copy {image.name} to images/ and this file to masks/{dataset_id(stem)}"
                f"{path.suffix} of the dataset (dataset.md: labels from other tools)"
            )
    return None


def dataset_id(stem: str, *, distinct: bool = True) -> str:
    """The dataset id of an image file: its name when that is an id already (as ``segment``
    names its outputs, and earlier imports named it), else the Annotate panel's rule
    (``suggest_image_id(..., distinct=True)``): unsafe characters to ``_``, and a name with
    accents transliterated plus ``-`` and a hash of the name, so ``Patient Müller 1`` and
    ``Patient Möller 1`` do not share an id (``Patient_Muller_1-6dd08d2c``).

    A name with nothing usable (``細胞.png``) gets ``image-`` and a hash of the name, so
    two such images do not both become ``image``. ``distinct=False``: the id earlier
    versions gave (accents to ``_``, no hash), which re-imports still recognise.
    """
    from ..app.annotation import name_digest, suggest_image_id
    from .manifest import check_id

    if check_id(stem) is None:
        return stem
    image_id = suggest_image_id(stem, distinct=distinct)
    if image_id == "image" and stem.strip("_.-") != "image":
        image_id = f"image-{name_digest(stem)}"
    return image_id


def _exists_message(dataset: Path, image_id: str, image_path: Path, image: np.ndarray) -> tuple[str, bool]:
    """Why ``image_id`` was refused, naming the file the dataset's image came from, and whether
    that image is this one (recorded from this file, or the same pixels)."""
    recorded = (manifest_row(dataset, image_id) or {}).get(SOURCE_COLUMN, "")
    if recorded and Path(recorded) == image_path.resolve():
        return f"already in the dataset, imported from this file ({recorded})", True
    origin = (
        f"imported from {recorded}"
        if recorded
        else f"the manifest records no source file for it (no {SOURCE_COLUMN} column: saved from the "
        "Annotate panel or imported by an earlier version)"
    )
    if same_pixels(dataset, image_id, image):
        return f"already in the dataset ({origin}), with the same pixels as {image_path}", True
    return (
        f"already in the dataset ({origin}) as another image: {image_path} is a different image "
        f"given the same id; rename {image_path.name} to give it an id of its own",
        False,
    )


def _import_one(
    image_path: Path, image_id: str, outlines, dataset, microscope, group, overwrite
) -> tuple[str, str, int, str, bool]:
    """``(status, message, cells, image_id, same_image)`` of one image (see :class:`ImportReport`);
    the id is the one it had before accented names got a hash where the dataset holds it so."""
    from ..io import ImageReadError, read_image
    from .dataset import DatasetError
    from .writer import add_to_dataset, image_for_dataset

    if not image_path.is_file():  # a mistyped image: not an image "without outlines"
        return "failed", f"{image_path}: no such file", 0, image_id, False
    folder = Path(outlines) if outlines is not None else image_path.parent
    names = [image_path.stem + ending for ending in OUTLINE_FILE_ENDINGS]
    source = next((folder / name for name in names if (folder / name).is_file()), None)
    if source is None:
        return "no outlines", f"none of {', '.join(names)} in {folder}", 0, image_id, False
    notes = []
    try:
        image = image_for_dataset(read_image(image_path), str(image_path))
        # the id this very image was imported under before accented names got a hash
        earlier = earlier_id(dataset, dataset_id(image_path.stem, distinct=False), image_id, lambda: image)
        if earlier is not None:  # re-imported: replace (or keep) it under its old id, never add it twice
            image_id = earlier
            notes.append(f"in the dataset as {earlier!r} (its id before accents got a code)")
        imported = read_outlines(source, image.shape[:2])
        if imported.labels.ndim == 3:  # e.g. Fiji ROIs saved on slice 3 of a stack
            raise OutlinesError(f"{source}: outlines lie on {imported.labels.shape[0]} slices; {image_path} is one image")  # fmt: skip
        add_to_dataset(
            dataset, image_id, image, imported.labels, microscope, group=group, overwrite=overwrite,
            extra={SOURCE_COLUMN: str(image_path.resolve())},
        )  # fmt: skip
    except FileExistsError:  # the front ends say what to do (the CLI: --overwrite if the same image)
        message, same = _exists_message(Path(dataset), image_id, image_path, image)
        return "exists", "; ".join([*notes, message]), 0, image_id, same
    except (ImageReadError, OutlinesError, DatasetError, ValueError, OSError) as err:
        return "failed", str(err), 0, image_id, False
    cells = int(len(np.unique(imported.labels)) - 1)
    return "added", "; ".join([*notes, *imported.notes]), cells, image_id, False
