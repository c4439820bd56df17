"""Add an annotated image to a dataset folder (the Annotate widget's "save").

The image and its labels are first written whole under hidden names, then both
renamed into place, and the manifest is rewritten last, so a failure (a full
disk, a crash) leaves either the old image with its old labels or the new pair:
at worst an image file that no manifest row names yet, which opening ignores.
Writers of one folder (two napari windows, the GUI and a script) take turns
through a lock file, so none of them rewrites the manifest without the rows
another has just added.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..classes import check_microscope_tag
from ..config import atomic_write_bytes
from ..io import collapse_grey_rgb, write_tiff_layer
from .dataset import IMAGE_DIR, MASK_DIR, TARGET_DIR, ImageRecord
from .headers import read_header
from .manifest import MANIFEST_NAME, MAX_ID_LENGTH, check_id, read_manifest, write_manifest
from .pixels import COLOUR_LABELS, NUMBER_EACH_CELL


def add_to_dataset(
    root: str | os.PathLike,
    image_id: str,
    image: np.ndarray,
    labels: np.ndarray,
    microscope: str,
    kind: str = "masks",
    group: str | None = None,
    overwrite: bool = False,
    extra: Mapping[str, str] | None = None,
    microscopes: Sequence[str] | None = None,
) -> ImageRecord:
    """Save one image and its labels into a dataset folder, creating it if new.

    Parameters
    ----------
    root : str or PathLike
        The dataset folder; created with ``images/``, ``masks/`` or ``targets/``
        and ``manifest.csv`` when absent.
    image_id : str
        The id, also the file stem: letters, digits, ``_``, ``-``, ``.``.
    image : ndarray
        ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8 (saved as PNG) or uint16
        (saved as TIFF).
    labels : ndarray
        ``(H, W)`` non-negative integer instance labels (``kind="masks"``) or a
        0/1/2 map (``kind="targets"``).
    microscope : str
        The microscope tag: one of ``microscopes``, or any tag when that is None.
    kind : {"masks", "targets"}
        What ``labels`` holds.
    group : str, optional
        Slide or patient key; images of a group are never split apart. When
        replacing an image, None keeps its group and ``""`` clears it.
    overwrite : bool
        Replace an image already listed under ``image_id`` (its other manifest
        columns are kept); otherwise refuse.
    extra : mapping, optional
        Values for other manifest columns (new columns are added); not
        ``id``, ``microscope`` or ``group``.
    microscopes : sequence of str or None
        Allowed microscope tags (the manifest's rows are held to them too); None (the
        default): any tag (:func:`~napari_cellseg.classes.check_microscope_tag`), such as a
        lab's D and E, as :meth:`CellDataset.open` opens them.

    Returns
    -------
    ImageRecord
        The record of the saved image, as :meth:`CellDataset.open` would give.

    Raises
    ------
    ValueError
        On a bad id, microscope, kind, shape or dtype.
    FileExistsError
        If ``image_id`` is already in the manifest and ``overwrite`` is False.
    """
    root = Path(root)
    _check_inputs(image_id, image, labels, microscope, kind, microscopes, extra)
    root.mkdir(parents=True, exist_ok=True)
    with manifest_lock(root):
        return _add_locked(
            root, image_id, image, labels, microscope, kind, group, overwrite, extra, microscopes
        )


LOCK_NAME = ".manifest.lock"
LOCK_STALE_S = 120.0  # a lock older than this was left by a crashed writer


@contextlib.contextmanager
def manifest_lock(root: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold ``root/.manifest.lock`` (created exclusively) while the manifest is read and rewritten."""
    path = root / LOCK_NAME
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > LOCK_STALE_S:
                    path.unlink(missing_ok=True)
                    continue
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{root}: another program has been saving into this dataset for {timeout:.0f} s "
                    f"(lock file {path}); try again, or delete the lock file if no other program is saving"
                ) from None
            time.sleep(0.02)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        path.unlink(missing_ok=True)


def _add_locked(root, image_id, image, labels, microscope, kind, group, overwrite, extra, microscopes):
    manifest = root / MANIFEST_NAME
    columns, rows = _read_rows(manifest, microscopes)
    if image_id not in rows and len(image_id) > MAX_ID_LENGTH:
        raise ValueError(
            f"id {image_id[:20]!r}... has {len(image_id)} characters: a new id takes {MAX_ID_LENGTH} at most "
            "(its files' names must fit the file system's 255)"
        )
    if image_id in rows and not overwrite:
        raise FileExistsError(
            f"{root}: id {image_id!r} is already in the dataset (replace it with overwrite=True, "
            "--overwrite on the command line)"
        )
    old_files = _files_of(root, image_id)

    image, labels = np.asarray(image), np.asarray(labels)
    image_path = root / IMAGE_DIR / f"{image_id}{'.tif' if image.dtype == np.uint16 else '.png'}"
    label_path = root / kind / f"{image_id}.tif"
    staged = [_staged(image_path), _staged(label_path)]
    try:  # both files whole before either replaces a file of the old pair
        _write_image(staged[0], image_id, image)
        _write_labels(staged[1], image_id, labels, kind)
        os.replace(staged[0], image_path)
        os.replace(staged[1], label_path)
    finally:
        for path in staged:
            path.unlink(missing_ok=True)

    # A replaced image keeps its row's other columns, and its group unless a new one is given.
    values = {**rows.get(image_id, {}), "id": image_id, "microscope": microscope}
    if group is not None or "group" not in values:
        values["group"] = group or ""
    _refresh_recorded_sizes(values, np.asarray(labels), kind)
    values.update({str(k): str(v) for k, v in (extra or {}).items()})
    for column in values:
        if column not in columns and (column != "group" or values["group"]):
            columns.append(column)
    rows[image_id] = values
    write_manifest(manifest, columns, rows.values())
    for stale in old_files - {image_path, label_path}:  # e.g. a .png replaced by a .tif
        stale.unlink(missing_ok=True)
    header = read_header(image_path)  # what opening the folder would report
    extras = {k: v for k, v in values.items() if k not in ("id", "microscope", "group")}
    return ImageRecord(
        image_id, microscope, values["group"] or None, image_path, label_path, kind,
        header.shape, header.channels, header.dtype, extras,
    )  # fmt: skip


def _refresh_recorded_sizes(values: dict[str, str], labels: np.ndarray, kind: str) -> None:
    """Columns that describe the files (dsb2018's) follow a replaced image, or opening would refuse it."""
    if "height" in values and "width" in values:
        values["height"], values["width"] = str(labels.shape[0]), str(labels.shape[1])
    if "n_nuclei" in values and kind == MASK_DIR:
        values["n_nuclei"] = str(np.count_nonzero(np.unique(labels)))


def _check_inputs(image_id, image, labels, microscope, kind, microscopes, extra) -> None:
    if not isinstance(image_id, str):
        raise TypeError(f"image_id must be a string, got {type(image_id).__name__} {image_id!r}")
    bad_id = check_id(image_id)
    if bad_id:
        raise ValueError(bad_id)
    reserved = sorted({"id", "microscope", "group"} & {str(k) for k in (extra or {})})
    if reserved:  # they are the row's own: given as arguments, never as extra columns
        raise ValueError(f"extra must not set {reserved}: pass image_id, microscope and group instead")
    if microscopes is None:
        bad_tag = check_microscope_tag(microscope)
        if bad_tag:
            raise ValueError(bad_tag)
    elif microscope not in microscopes:
        raise ValueError(f"unknown microscope {microscope!r}; choose from {tuple(microscopes)}")
    if kind not in (MASK_DIR, TARGET_DIR):
        raise ValueError(f"kind must be 'masks' or 'targets', got {kind!r}")
    image, labels = np.asarray(image), np.asarray(labels)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)) or 0 in image.shape:
        raise ValueError(f"image must be (H, W) or (H, W, 3) with H, W >= 1, got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be uint8 or uint16, got dtype {image.dtype}")
    if labels.shape != image.shape[:2]:
        colour = labels.ndim == 3 and labels.shape[:2] == image.shape[:2] and labels.shape[-1] in (3, 4)
        raise ValueError(
            f"labels have shape {labels.shape}; the image is {image.shape[:2]}"
            + (f": {COLOUR_LABELS}" if colour else "")
        )
    if labels.dtype == bool and kind == MASK_DIR:
        raise ValueError(f"labels are a binary mask (True/False), not instance labels: {NUMBER_EACH_CELL}")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if low < 0:
        raise ValueError(f"labels must be >= 0, found {low}")
    if kind == TARGET_DIR and high > 2:
        raise ValueError(f"targets hold 0 (background), 1 (boundary), 2 (interior); found {high}")
    if kind == MASK_DIR:  # as opening the dataset would refuse it, before anything is written
        from .pixels import refuse_binary_mask

        refuse_binary_mask(labels)


def _read_rows(manifest: Path, microscopes) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Existing columns and rows (as dicts) of a manifest; a new one if absent."""
    if not manifest.exists():
        return ["id", "microscope"], {}
    columns, rows, problems = read_manifest(manifest, microscopes)
    if problems:
        listing = "; ".join(problems[:5])
        raise ValueError(f"{manifest}: fix the manifest before adding images ({listing})")
    records = {}
    for row in rows:
        values = {"id": row.id, "microscope": row.microscope, "group": row.group or ""}
        values.update(row.extra)
        records[row.id] = values
    return columns, records


def _files_of(root: Path, image_id: str) -> set[Path]:
    found = set()
    for folder in (IMAGE_DIR, MASK_DIR, TARGET_DIR):
        for suffix in (".png", ".tif", ".tiff"):
            path = root / folder / f"{image_id}{suffix}"
            if path.exists():
                found.add(path)
    return found


def _staged(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place (hidden: opening ignores it)."""
    return path.with_name(f".{path.name}.staged")


def _write_image(path: Path, image_id: str, image: np.ndarray) -> Path:
    if image.dtype == np.uint16:  # Pillow cannot write 16-bit RGB PNG; TIFF holds any
        return write_tiff_layer(path, image, "image", {"name": image_id})
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def _write_labels(path: Path, image_id: str, labels: np.ndarray, kind: str) -> Path:
    if kind == TARGET_DIR:
        labels = labels.astype(np.uint8)
    else:
        high = int(labels.max(initial=0))
        if high > np.iinfo(np.uint32).max:  # numbered 1..N rather than wrapped onto each other
            ids, inverse = np.unique(labels, return_inverse=True)
            labels = (inverse.reshape(labels.shape) + (ids[0] != 0)).astype(np.int64)
            high = int(labels.max(initial=0))
        labels = labels.astype(np.uint16 if high <= 65535 else np.uint32)
    return write_tiff_layer(path, labels, "labels", {"name": image_id})


def image_for_dataset(data: Any, name: str = "image") -> np.ndarray:
    """An image layer's data as a dataset image: ``(H, W)`` or ``(H, W, 3)``, uint8/uint16.

    RGBA drops alpha; three equal channels become grey. Other dtypes or
    shapes raise a ``ValueError`` that says what the layer holds.
    """
    image = np.asarray(data)
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise ValueError(
            f"{name}: only 2D grey (H, W) or RGB (H, W, 3) images can be saved into a dataset, "
            f"got shape {image.shape}"
        )
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"{name}: dataset images are unsigned 8- or 16-bit integers (uint8, uint16), got dtype "
            f"{image.dtype}; convert the image first (Fiji: Image > Type > 16-bit)"
        )
    return collapse_grey_rgb(np.ascontiguousarray(image))
