"""A dataset folder: ``images/``, ``masks/`` or ``targets/``, and ``manifest.csv``.

:meth:`CellDataset.open` checks the manifest and every file's header up front
and reports all problems in one :class:`DatasetError`; pixels are read only when
asked for (``load_image``, ``load_instances``, ``load_target``), so opening a
folder of 100,000 images reads no pixel. Writing lives in :mod:`.writer`.

Layout::

    root/
      manifest.csv        id,microscope[,group][,any other columns]
      images/<id>.png     grey or RGB, 8- or 16-bit, PNG or TIFF
      masks/<id>.tif      instance labels (0 background), or
      targets/<id>.tif    3-class maps (0 background, 1 boundary, 2 interior)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import MICROSCOPES
from .headers import HeaderError, ImageHeader, read_header
from .manifest import MANIFEST_NAME, ManifestRow, read_manifest
from .pixels import COLOUR_LABELS, NUMBER_EACH_CELL, PixelError, image_pixels, instance_pixels, target_pixels

IMAGE_DIR, MASK_DIR, TARGET_DIR = "images", "masks", "targets"
DATASET_SUFFIXES = (".png", ".tif", ".tiff")
IMAGE_DTYPES = ("uint8", "uint16")
_MAX_LISTED = 40  # problems shown in the message; ``.problems`` has them all


class DatasetError(ValueError):
    """A dataset has problems; ``problems`` lists ``(file, reason)`` for each of them."""

    def __init__(self, root: str | os.PathLike, problems: Sequence[tuple[str, str]]):
        self.root = Path(root)
        self.problems = list(problems)
        super().__init__(self._message())

    def __reduce__(self):  # picklable across processes (Dask workers)
        return type(self), (self.root, self.problems)

    def _message(self) -> str:
        n = len(self.problems)
        lines = [f"dataset {self.root}: {n} problem{'s' * (n != 1)}:"]
        for file, reason in self.problems[:_MAX_LISTED]:
            lines.append(f"  {_relative(file, self.root)}: {reason}")
        if n > _MAX_LISTED:
            lines.append(f"  ... and {n - _MAX_LISTED} more (see DatasetError.problems)")
        return "\n".join(lines)


def _relative(file: str, root: Path) -> str:
    try:
        relative = Path(file).relative_to(root)
    except ValueError:
        return file
    return str(relative) if relative.parts else file  # the root itself: its own name


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset and its labels, as the manifest and headers describe them.

    ``label_kind`` is ``"masks"`` (instance labels) or ``"targets"`` (3-class
    maps); ``channels`` is as stored (a grey image saved as RGB says 3 and loads
    as grey); ``extra`` holds the manifest's other columns as strings.
    """

    id: str
    microscope: str
    group: str | None
    image_path: Path
    label_path: Path
    label_kind: str
    shape: tuple[int, int]
    channels: int
    dtype: str
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


class CellDataset:
    """Records of a dataset folder, with lazy pixel loading.

    Build one with :meth:`open`; ``CellDataset(root, records)`` wraps records
    already checked (as :meth:`subset` does).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        records: Iterable[ImageRecord],
        microscopes: Sequence[str] = MICROSCOPES,
    ):
        self.root = Path(root)
        self.microscopes = tuple(microscopes)
        self._records = {r.id: r for r in records}

    @classmethod
    def open(cls, path: str | os.PathLike, microscopes: Sequence[str] | None = None) -> CellDataset:
        """Open a dataset folder, checking the manifest and every file's header.

        Parameters
        ----------
        path : str or PathLike
            The dataset folder.
        microscopes : sequence of str or None
            Microscope tags allowed in the manifest (``check`` and ``split
            --microscopes`` pass theirs); None (the default): whatever valid tags it
            uses (then ``.microscopes`` lists those, sorted), so a lab's D and E
            datasets check, split, train, tune and evaluate.

        Returns
        -------
        CellDataset

        Raises
        ------
        DatasetError
            Listing every problem at once: manifest errors (missing columns,
            duplicate or bad ids, unknown microscopes), missing or ambiguous
            image and label files, unreadable headers, unsupported dtypes,
            mismatched shapes.
        """
        root = Path(path)
        if not root.is_dir():
            raise DatasetError(root, [(str(root), "no such folder")])
        manifest = root / MANIFEST_NAME
        _, rows, manifest_problems = read_manifest(manifest, microscopes)
        problems = [(str(manifest), reason) for reason in manifest_problems]
        missing = []
        if not (root / IMAGE_DIR).is_dir():
            missing.append((str(root / IMAGE_DIR), "no images/ folder"))
        if not (root / MASK_DIR).is_dir() and not (root / TARGET_DIR).is_dir():
            missing.append((str(root / MASK_DIR), "no masks/ or targets/ folder"))
        if missing:  # without the folders every row would repeat the same problem
            raise DatasetError(root, problems + missing)
        files = {name: _index_folder(root / name, problems) for name in (IMAGE_DIR, MASK_DIR, TARGET_DIR)}
        if not rows and not problems:
            problems.append((str(manifest), "lists no images"))
        records = []
        for row in rows:
            record = _check_row(root, row, files, problems)
            if record is not None:
                records.append(record)
        if problems:
            raise DatasetError(root, problems)
        if microscopes is None:
            microscopes = sorted({r.microscope for r in records})
        return cls(root, records, microscopes)

    # --- records -----------------------------------------------------------

    @property
    def records(self) -> list[ImageRecord]:
        return list(self._records.values())

    @property
    def ids(self) -> list[str]:
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self._records.values())

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._records

    def __getitem__(self, image_id: str) -> ImageRecord:
        try:
            return self._records[image_id]
        except KeyError:
            raise KeyError(f"no image {image_id!r} in dataset {self.root}") from None

    def __repr__(self) -> str:
        counts = ", ".join(f"{m}={n}" for m, n in self.counts().items())
        return f"CellDataset({str(self.root)!r}, {len(self)} images: {counts})"

    def subset(self, ids: Iterable[str]) -> CellDataset:
        """A dataset of the given ids, in the order given."""
        ids = list(ids)
        unknown = [i for i in ids if i not in self._records]
        if unknown:
            raise KeyError(f"{len(unknown)} id(s) not in dataset {self.root}: {unknown[:5]}")
        if len(set(ids)) != len(ids):
            raise ValueError("subset ids repeat an id")
        return CellDataset(self.root, (self._records[i] for i in ids), self.microscopes)

    def counts(self) -> dict[str, int]:
        """Number of images per microscope tag (every allowed tag, zeros included)."""
        counts = dict.fromkeys(self.microscopes, 0)
        for record in self._records.values():
            counts[record.microscope] = counts.get(record.microscope, 0) + 1
        return counts

    # --- pixels ------------------------------------------------------------

    def load_image(self, image_id: str) -> np.ndarray:
        """The image as ``(H, W)`` grey or ``(H, W, 3)`` RGB, in its stored dtype."""
        record = self[image_id]
        return self._decode(record.image_path, image_pixels, record.shape)

    def load_instances(self, image_id: str) -> np.ndarray:
        """Instance labels, uint16 (uint32 past 65535), 0 background, consecutive 1..N.

        Raises
        ------
        DatasetError
            If the image has a target map instead of instance labels, or the
            labels are float, negative or of another shape than the image.
        """
        record = self[image_id]
        if record.label_kind != MASK_DIR:
            reason = "this image has a 3-class target map, not instance labels; use load_target"
            raise DatasetError(self.root, [(str(record.label_path), reason)])
        return self._decode(record.label_path, instance_pixels, record.shape)

    def load_reference_instances(self, image_id: str) -> np.ndarray:
        """Ground-truth instances for scoring: ``masks/`` as stored, or derived from ``targets/``.

        A target map's instances are its interior components grown into their
        boundary (``targets.targets_to_instances``, orphan boundary kept).
        """
        if self[image_id].label_kind == MASK_DIR:
            return self.load_instances(image_id)
        from .targets import targets_to_instances

        return targets_to_instances(self.load_target(image_id), keep_orphans=True)

    def load_target(self, image_id: str, thickness: int = 1) -> np.ndarray:
        """The 3-class map, uint8 (0 background, 1 boundary, 2 interior).

        Built from instance labels with ``targets.instances_to_targets`` (boundary
        ``thickness`` in pixels), or read from ``targets/`` as stored, in which
        case ``thickness`` has no effect.
        """
        record = self[image_id]
        if record.label_kind == TARGET_DIR:
            return self._decode(record.label_path, target_pixels, record.shape)
        from .targets import instances_to_targets

        return instances_to_targets(self.load_instances(image_id), thickness=thickness)

    def _decode(self, path: Path, reader, shape: tuple[int, int]) -> np.ndarray:
        try:
            return reader(path, shape)
        except (PixelError, OSError) as err:
            raise DatasetError(self.root, [(str(path), str(err))]) from None


def _index_folder(folder: Path, problems: list[tuple[str, str]]) -> dict[str, list[Path]]:
    """Files of ``folder`` by stem, with one directory listing (no stat per id)."""
    index: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return index
    try:
        entries = list(os.scandir(folder))
    except OSError as err:
        problems.append((str(folder), f"cannot be listed ({err})"))
        return index
    for entry in entries:
        if not entry.name.startswith("."):  # hidden: temporary files of atomic writes
            index.setdefault(os.path.splitext(entry.name)[0], []).append(Path(entry.path))
    return index


def _find(image_id: str, folder: Path, index: dict[str, list[Path]], problems) -> Path | None:
    candidates = index.get(image_id, [])
    found = [p for p in candidates if p.suffix.lower() in DATASET_SUFFIXES]
    if candidates and not found:
        names = ", ".join(sorted(p.name for p in candidates))
        problems.append((str(candidates[0]), f"unsupported file type ({names}): use PNG or TIFF"))
        return None
    if len(found) > 1:
        names = ", ".join(sorted(p.name for p in found))
        problems.append((str(folder / image_id), f"ambiguous: several files for one id ({names})"))
        return None
    return found[0] if found else None


# Suffixes other tools give a mask beside its image: Cellpose (_cp_masks, _masks), StarDist, Fiji.
FOREIGN_MASK_SUFFIXES = ("_cp_masks", "_masks", "_mask", "_labels", "_label")


def _renamed_mask_hint(image_id: str, files) -> str:
    """Where a mask saved under another tool's name lies, and the name it needs (else "")."""
    for folder in (MASK_DIR, IMAGE_DIR):
        for suffix in FOREIGN_MASK_SUFFIXES:
            found = [
                p for p in files[folder].get(image_id + suffix, []) if p.suffix.lower() in DATASET_SUFFIXES
            ]
            if found:
                path, action = found[0], "rename" if folder == MASK_DIR else "move"
                return (
                    f"; {folder}/{path.name} looks like its mask: {action} it to masks/{image_id}{path.suffix} "
                    "(a mask is named after its image's id)"
                )
    return ""


def _check_row(root: Path, row: ManifestRow, files, problems) -> ImageRecord | None:
    """Record for one manifest row, or None after appending its problems."""
    n_before = len(problems)
    image_path = _find(row.id, root / IMAGE_DIR, files[IMAGE_DIR], problems)
    mask_path = _find(row.id, root / MASK_DIR, files[MASK_DIR], problems)
    target_path = _find(row.id, root / TARGET_DIR, files[TARGET_DIR], problems)
    if len(problems) > n_before:
        return None
    where = f"(manifest line {row.line})"
    if image_path is None:
        problems.append((str(root / IMAGE_DIR / f"{row.id}.*"), f"missing image for id {row.id!r} {where}"))
    label_path, label_kind = (mask_path, MASK_DIR) if mask_path else (target_path, TARGET_DIR)
    if label_path is None:
        reason = f"missing mask for id {row.id!r} {where} (looked in masks/ and targets/)"
        reason += _renamed_mask_hint(row.id, files)
        problems.append((str(root / MASK_DIR / f"{row.id}.*"), reason))
    if image_path is None or label_path is None:
        return None
    image = _header(image_path, problems)
    labels = _header(label_path, problems)
    if image is None or labels is None:
        return None
    if image.dtype not in IMAGE_DTYPES:
        reason = f"dtype {image.dtype} not supported: images are unsigned 8- or 16-bit (uint8, uint16)"
        problems.append((str(image_path), reason + "; save it as one (Fiji: Image > Type > 16-bit)"))
    if labels.channels != 1:
        reason = f"labels must be one 2D plane, the file has {labels.channels} channels"
        problems.append((str(label_path), reason + (f": {COLOUR_LABELS}" if labels.channels == 3 else "")))
    elif labels.shape != image.shape:
        reason = f"shape {labels.shape} does not match the image's {image.shape} ({image_path.name})"
        problems.append((str(label_path), reason))
    if labels.dtype == "bool" and label_kind == MASK_DIR:  # 1-bit PNG or bool TIFF: on/off, no cell numbers
        problems.append(
            (str(label_path), f"a binary mask (on/off pixels), not instance labels: {NUMBER_EACH_CELL}")
        )
    elif str(labels.dtype).startswith(("float", "complex", "bool")):
        # caught here, at the first check, rather than when training reads the pixels
        what = "instance labels" if label_kind == MASK_DIR else "class targets"
        problems.append((str(label_path), f"{what} must be integers, the file holds {labels.dtype}"))
    _check_manifest_size(row, image, image_path, problems)
    if len(problems) > n_before:
        return None
    return ImageRecord(
        row.id, row.microscope, row.group, image_path, label_path, label_kind,
        image.shape, image.channels, image.dtype, dict(row.extra),
    )  # fmt: skip


def _header(path: Path, problems: list[tuple[str, str]]) -> ImageHeader | None:
    try:
        return read_header(path)
    except HeaderError as err:
        problems.append((str(path), str(err)))
        return None


def _check_manifest_size(row: ManifestRow, image: ImageHeader, path: Path, problems) -> None:
    """Manifests that record height/width (dsb2018 does) must agree with the file."""
    try:
        height, width = int(row.extra["height"]), int(row.extra["width"])
    except (KeyError, ValueError):
        return
    if (height, width) != image.shape:
        reason = (
            f"manifest line {row.line} says {height}x{width}, the file is {image.shape[0]}x{image.shape[1]}"
        )
        problems.append((str(path), reason))
