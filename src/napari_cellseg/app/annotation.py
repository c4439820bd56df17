"""Qt-free logic behind the Annotate widget: layers <-> dataset.

Two kinds of labels belong to an image:

- the **cells** layer: instance labels, 0 background, one id per cell;
- the **boundary annotation** layer: the 3-class map the network learns
  (0 background, 1 boundary, 2 interior; see :mod:`napari_cellseg.data.targets`).

Conversions go through :func:`annotation_from_instances` and
:func:`instances_from_annotation`. :func:`touching_boundary_pixels` finds the
pixels to turn into boundary where two cells touch, so that a hand-painted
annotation follows the same rule as the computed ones (both rims of a contact
are boundary). :func:`save_annotation` writes image, labels and microscope tag
into a dataset folder (atomically, never silently overwriting).
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..classes import BOUNDARY
from ..data import known_images
from ..data.known_images import is_listed as is_listed  # the Annotate panel's, from here
from ..data.manifest import MAX_ID_LENGTH
from ..data.targets import check_label_image
from ..data.writer import image_for_dataset
from .microscope_tags import tag_to_save

ANNOTATION_SUFFIX = " boundary annotation"
CELLS_SUFFIX = " cells"
# metadata["cellseg_kind"] marks the layers this package made.
KIND_KEY = "cellseg_kind"
KIND_ANNOTATION, KIND_CELLS = "annotation", "cells"


def annotation_name(image_name: str) -> str:
    """Name of an image's boundary annotation layer: ``"<image> boundary annotation"``."""
    return f"{image_name}{ANNOTATION_SUFFIX}"


def cells_name(image_name: str) -> str:
    """Name of an image's instance layer: ``"<image> cells"``."""
    return f"{image_name}{CELLS_SUFFIX}"


def owner_image(name: str, metadata: dict | None, images: Sequence[tuple[str, dict]]) -> str | None:
    """The image (of ``images``' ``(name, metadata)``) a labels layer belongs to, or None if unknown.

    A layer belongs to an image by its name (``"<image> cells"``, ``"<image> boundary
    annotation"``) or by a shared metadata ``id`` (a sample and its expert mask).
    """
    for image_name, _ in images:
        if name in (cells_name(image_name), annotation_name(image_name)):
            return image_name
    layer_id = (metadata or {}).get("id")
    owners = [
        image_name for image_name, image_meta in images if layer_id and image_meta.get("id") == layer_id
    ]
    return owners[0] if len(owners) == 1 else None


def fitting_cells(
    image_name: str,
    shape: tuple[int, ...],
    layers: Sequence[Any],
    images: Sequence[tuple[str, dict]],
    skip_kinds: Sequence[str] = (),
) -> Any | None:
    """The labels layer (of ``layers``) most likely to hold an image's cells, or None.

    Layers of the image's ``shape`` that are no annotation and no ``skip_kinds``: the
    image's own first (see :func:`owner_image`); one of unknown image only when a single
    image is open (with several, it may be another's).
    """

    def owner(layer):
        return owner_image(layer.name, layer.metadata, images)

    owners = (None, image_name) if len(images) == 1 else (image_name,)
    fitting = [
        layer for layer in layers
        if np.shape(layer.data) == tuple(shape) and not is_annotation(layer.name, layer.metadata)
        and layer.metadata.get(KIND_KEY) not in skip_kinds and owner(layer) in owners
    ]  # fmt: skip
    fitting.sort(key=lambda layer: owner(layer) != image_name)  # its own first
    return fitting[0] if fitting else None


def saved_message(record: Any, root: Any, *, replaced: bool, made_from: str | None = None) -> str:
    """What the Annotate panel says after a save; ``made_from``: the cells layer saved for want
    of a painted annotation."""
    kind = "3-class annotation" if record.label_kind == "targets" else "cells"
    if made_from:  # the dataset makes their boundary annotation when it is read
        kind = f"the cells of {made_from!r}, as no boundary annotation is painted"
    if replaced:  # the split keeps a replaced image in its subset
        return f"replaced {record.id!r} ({record.microscope}, {kind}) in {root}."
    return (
        f"saved {record.id!r} ({record.microscope}, {kind}) into {root}. "
        "Run the split again (Dataset panel): new images go to train."
    )


def is_annotation(name: str, metadata: dict | None = None) -> bool:
    """Whether a labels layer (by name and metadata) holds a 3-class annotation."""
    if metadata and metadata.get(KIND_KEY) in (KIND_ANNOTATION, KIND_CELLS):
        return metadata[KIND_KEY] == KIND_ANNOTATION
    return name.endswith(ANNOTATION_SUFFIX)


def check_annotation(annotation: Any, name: str = "annotation") -> np.ndarray:
    """A 3-class map as uint8, or a ``ValueError`` naming the values it holds."""
    array = check_label_image(annotation, name)
    top = int(array.max()) if array.size else 0
    if top > 2:
        raise ValueError(
            f"{name}: a boundary annotation holds 0 (background), 1 (boundary), 2 (interior); "
            f"found values up to {top}: is this an instance layer?"
        )
    return array.astype(np.uint8, copy=False)


def annotation_from_instances(instances: Any, thickness: int = 1):
    """The 3-class annotation of instance labels, and what the conversion found.

    Parameters
    ----------
    instances : (H, W) integer array
        0 background, one id per cell.
    thickness : int
        Boundary width in pixels (inner rim of each cell).

    Returns
    -------
    annotation : (H, W) uint8 array
        0 background, 1 boundary, 2 interior.
    report : napari_cellseg.data.targets.TargetReport
        Thin, necked and multi-piece cells (each kept, see the targets module).
    """
    from ..data.targets import instances_to_targets

    instances = check_label_image(instances, "instances")
    return instances_to_targets(instances, thickness=thickness, return_report=True)


def conversion_summary(report: Any, name: str) -> tuple[str, bool]:
    """What :func:`annotation_from_instances` found, said of the layer ``name``, and whether
    cells were lost (too small to keep an interior: they would come back merged or not at all)."""
    lost = set(report.lost_labels)
    kept = len((set(report.thin_labels) | set(report.necked_labels)) - lost)
    text = (
        f"{report.n_instances} cells → {name!r} "
        f"({kept} thin or necked cells kept, {len(report.multi_piece_labels)} in several pieces"
    )
    if lost:
        return f"{text}; {len(lost)} too small to keep: cells {sorted(lost)[:10]}).", True
    return f"{text}).", False


def instances_from_annotation(annotation: Any) -> np.ndarray:
    """Instances of a 3-class annotation: interiors grown over their boundary.

    Blobs painted entirely as boundary (no interior) are kept as cells of
    their own rather than dropped.

    Returns
    -------
    (H, W) uint16 array (uint32 beyond 65535 cells), consecutive 1..N.
    """
    from ..data.targets import targets_to_instances

    return targets_to_instances(check_annotation(annotation), keep_orphans=True)


def touching_boundary_pixels(
    annotation: Any, instances: Any | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """Pixels to mark as boundary where two cells touch.

    A foreground pixel of the annotation becomes boundary when one of its 8
    neighbours belongs to another cell. Cells come from the annotation itself
    (:func:`instances_from_annotation`: a one-pixel boundary line painted
    between two interiors then gets its second rim, as computed targets have)
    and, when given, from ``instances`` too (the image's cells layer: two cells
    whose interiors were painted as one blob are parted where they touch).

    Returns
    -------
    indices : tuple of two int arrays
        ``(rows, cols)`` of the pixels to set to ``BOUNDARY`` (none of them is
        boundary yet), ready for napari's ``Labels.data_setitem``.
    n_pairs : int
        Number of touching cell pairs found.
    """
    from ..instance_errors import touching_pairs

    annotation = check_annotation(annotation)
    # The annotation's own cells always count: lines painted since the cells layer was made
    # (a split drawn by hand) get their second rim too.
    sources = [instances_from_annotation(annotation).astype(np.int64, copy=False)]
    if instances is not None:
        cells = check_label_image(instances, "instances")
        if cells.shape != annotation.shape:
            raise ValueError(
                f"the cells layer has shape {cells.shape}, the annotation {annotation.shape}; "
                "they must belong to the same image"
            )
        sources.append(cells.astype(np.int64, copy=False))
    contact = np.zeros(annotation.shape, dtype=bool)
    for cells in sources:
        contact |= _contacts(cells)
    change = contact & (annotation != 0) & (annotation != BOUNDARY)
    rows, cols = np.nonzero(change)
    return (rows, cols), max(len(touching_pairs(cells)) for cells in sources)


def _contacts(cells: np.ndarray) -> np.ndarray:
    """Pixels of a cell with an 8-neighbour in another cell."""
    contact = np.zeros(cells.shape, dtype=bool)
    # Right, down, down-right and down-left neighbours cover the 8 directions once.
    for a, b in (
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
        ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
    ):
        differ = (cells[a] != cells[b]) & (cells[a] > 0) & (cells[b] > 0)
        contact[a] |= differ
        contact[b] |= differ
    return contact


_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
# A name longer than a new id may be keeps this much, plus its digest: readable, distinct, a file name.
ID_PREFIX_LENGTH = 100


def suggest_image_id(name: str, metadata: dict | None = None, *, distinct: bool = False) -> str:
    """A dataset id for an image layer: its ``metadata["id"]``, else its name made file-safe.

    Ids hold ASCII letters, digits, ``_``, ``-`` and ``.`` (see ``manifest.check_id``), so
    other characters are replaced by ``_``. With ``distinct`` (the Annotate panel), a name
    holding non-ASCII characters is transliterated where it can be and gets ``-`` and a
    short hash of the name: "Patient Müller 1" and "Patient Möller 1" would otherwise share
    an id, and saving one would replace the other. ASCII names (a dataset's own images are
    named by their id) keep the id they always had. Names longer than
    ``manifest.MAX_ID_LENGTH`` are cut to :data:`ID_PREFIX_LENGTH` and get the hash, so that
    the id names a file.
    """
    if metadata and isinstance(metadata.get("id"), str) and metadata["id"]:
        return metadata["id"]
    if distinct and not name.isascii():
        plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
        prefix = _file_safe(plain) or "image"
        if len(prefix) > MAX_ID_LENGTH - 9:  # room for "-" and the digest
            prefix = _file_safe(plain[:ID_PREFIX_LENGTH]) or "image"
        return f"{prefix}-{name_digest(name)}"
    safe = _file_safe(name) or "image"
    if len(safe) > MAX_ID_LENGTH:  # ids up to that length name files (and earlier saves): kept whole
        return f"{_file_safe(safe[:ID_PREFIX_LENGTH])}-{name_digest(name)}"
    return safe


def name_digest(name: str) -> str:
    """8 hex digits that tell apart names an id rule makes alike (one name, one digest)."""
    name = unicodedata.normalize("NFC", name)  # macOS file names come decomposed (NFD)
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]


def earlier_id(root: Any, name: str, metadata: dict | None, pixels: Callable[[], Any]) -> str | None:
    """The id under which this very image was saved before names with accents got a hash.

    ``root``'s dataset must list that older id (``suggest_image_id`` without ``distinct``)
    with the same pixels (``pixels()``, read only then; ``data.known_images.earlier_id``):
    reopening the image then finds its labels, and saving it again replaces them rather than
    adding the image a second time. None otherwise.
    """
    older, current = suggest_image_id(name, metadata), suggest_image_id(name, metadata, distinct=True)
    return known_images.earlier_id(root, older, current, pixels)


def _file_safe(name: str) -> str:
    return _ID_UNSAFE.sub("_", name).strip("_.-")


def holds_labels(layer: Any, shape: tuple[int, ...] | None = None) -> bool:
    """Whether a labels layer (or None) has any labelled pixel (and, when given, that shape)."""
    if layer is None or (shape is not None and np.shape(layer.data) != tuple(shape)):
        return False
    return bool(np.any(np.asarray(layer.data)))


def holds_cells(layer: Any, shape: tuple[int, ...] | None = None) -> bool:
    """Whether a labels layer (or None) holds cells: instances, not a 3-class annotation."""
    return holds_labels(layer, shape) and not is_annotation(layer.name, layer.metadata)


def save_annotation(
    root: str | os.PathLike,
    image_id: str,
    image: Any,
    labels: Any,
    microscope: str | None,
    *,
    annotation: bool,
    overwrite: bool = False,
    group: str | None = None,
):
    """Save an image, its labels and its microscope tag into a dataset folder.

    Parameters
    ----------
    root : str or PathLike
        The dataset folder (created when new).
    image_id : str
        The id (file stem) in the dataset.
    image : array_like
        The image layer's data (see :func:`image_for_dataset`).
    labels : array_like
        Instance labels (saved in ``masks/``) or, with ``annotation=True``, a
        3-class map (saved in ``targets/`` exactly as painted).
    microscope : str or None
        The image's microscope tag: A, B, C or a lab's own (``ValueError`` when None or no tag).
    annotation : bool
        Whether ``labels`` is a 3-class annotation.
    overwrite : bool
        Replace an id already in the dataset; otherwise raise ``FileExistsError``.
    group : str, optional
        Slide or patient key.

    Returns
    -------
    ImageRecord
        The record of the saved image.
    """
    from ..data.writer import add_to_dataset

    microscope = tag_to_save(microscope)  # A, B, C or a lab's own (D, zeiss2): a dataset takes any tag
    pixels = image_for_dataset(image, image_id)
    if annotation:
        values, kind = check_annotation(labels, f"{image_id} annotation"), "targets"
    else:
        values, kind = check_label_image(labels, f"{image_id} labels"), "masks"
    if values.shape != pixels.shape[:2]:
        raise ValueError(
            f"the labels have shape {values.shape} but the image {pixels.shape[:2]}; "
            "save labels drawn on this image"
        )
    if not values.any():
        raise ValueError(f"{image_id}: the labels are empty; annotate some cells before saving")
    return add_to_dataset(
        root, image_id, pixels, values, microscope, kind=kind, group=group, overwrite=overwrite
    )


def opened_annotation(saved: dict[str, np.ndarray], shape: tuple[int, ...], thickness: int) -> np.ndarray:
    """The annotation to show for :func:`saved_labels`' ``saved`` (made from saved cells), or an empty one."""
    if "annotation" in saved:
        return saved["annotation"]
    if "cells" in saved:
        return annotation_from_instances(saved["cells"], thickness)[0]
    return np.zeros(shape, np.uint8)


def saved_labels(root: str | os.PathLike, image_id: str) -> dict[str, np.ndarray]:
    """Labels saved for ``image_id`` in a dataset: ``{"cells": ...}`` or ``{"annotation": ...}``.

    Empty when the dataset does not hold that id. Raises ``DatasetError``
    (listing files and reasons) when the folder is not a valid dataset.
    """
    from ..data.dataset import CellDataset

    dataset = CellDataset.open(root, microscopes=None)  # a dataset with tags D, E opens its labels too
    if image_id not in dataset:
        return {}
    if dataset[image_id].label_kind == "masks":
        return {"cells": dataset.load_instances(image_id)}
    return {"annotation": dataset.load_target(image_id)}
