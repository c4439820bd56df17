"""Qt-free logic behind the Dataset widget: check a folder, split it, preview augmentation.

The split keeps an existing split file's assignments by default (new ids go
to train), so correcting predictions and saving them into the dataset adds
training data without moving anything into dev or test: the
human-in-the-loop cycle. A split file inside another dataset folder is only
read (its subsets kept); the split goes to this dataset's own file. A fresh
split replaces the file without reading it as a split.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.augment import TRAINING_PRESET

SPLIT_FILE_NAME = "split.csv"


@dataclass(frozen=True)
class DatasetCheck:
    """Outcome of :func:`iter_check_dataset`: the dataset, or the problems found (file, reason).

    ``pixels`` is the pixel pass (:class:`~napari_cellseg.data.check.PixelCheck`),
    None when the headers already failed or it was not asked for.
    """

    root: Path
    dataset: Any = None  # CellDataset when it opened
    problems: tuple[tuple[str, str], ...] = ()
    pixels: Any = None

    @property
    def ok(self) -> bool:
        return self.dataset is not None and not self.problems

    def counts(self) -> dict[str, int]:
        return self.dataset.counts() if self.dataset is not None else {}

    def cells(self) -> dict[str, int]:
        """Cells per microscope, from the pixel pass ({} without one)."""
        return dict(self.pixels.cells) if self.pixels is not None else {}

    def tag_note(self) -> str:
        """Tags that differ only in case (``c`` beside ``C``), or "": likely one microscope mistyped."""
        from .microscope_tags import case_variant_note

        return case_variant_note(self.counts()) if self.dataset is not None else ""


def problem_lines(root: str | os.PathLike, problems: Sequence[tuple[str, str]]) -> list[str]:
    """``"file: reason"`` per problem, files relative to ``root`` where they lie inside it."""
    lines = []
    for file, reason in problems:
        try:
            shown = str(Path(file).relative_to(root))
        except ValueError:
            shown = str(file)
        lines.append(f"{shown}: {reason}")
    return lines


def iter_check_dataset(
    root: str | os.PathLike, microscopes: Sequence[str] | None = None, *, pixels: bool = True
) -> Generator[Any, None, DatasetCheck]:
    """Open and validate a dataset folder, returning every problem instead of raising.

    ``microscopes``: the tags the manifest may use (``napari-cellseg check --microscopes``);
    None (the default, the Dataset panel): the tags it uses, each a valid tag.

    The manifest and headers are checked first; with ``pixels`` every image
    and label file is then decoded (:func:`napari_cellseg.data.check.iter_check_pixels`),
    which finds binary masks and bad label values before training does.

    Yields
    ------
    napari_cellseg.data.check.PixelCheckProgress
        One per image of the pixel pass.
    """
    from ..data.check import iter_check_pixels
    from ..data.dataset import CellDataset, DatasetError

    root = Path(root)
    try:
        dataset = CellDataset.open(root, microscopes)
    except DatasetError as err:
        return DatasetCheck(root, None, tuple(err.problems))
    if not pixels:
        return DatasetCheck(root, dataset, ())
    found = yield from iter_check_pixels(dataset)
    return DatasetCheck(root, dataset, found.problems, found)


def check_dataset(
    root: str | os.PathLike, microscopes: Sequence[str] | None = None, *, pixels: bool = True
) -> DatasetCheck:
    """:func:`iter_check_dataset` run to its end."""
    from ..generators import run_to_end

    return run_to_end(iter_check_dataset(root, microscopes, pixels=pixels))


def default_split_path(root: str | os.PathLike) -> Path:
    """Where the Dataset widget writes a dataset's split: ``<root>/split.csv``."""
    return Path(root) / SPLIT_FILE_NAME


def dataset_folder_of(path: str | os.PathLike) -> Path | None:
    """The nearest folder holding ``path`` that has a ``manifest.csv`` (resolved), or None."""
    from ..data.manifest import MANIFEST_NAME

    for folder in Path(path).expanduser().resolve().parents:
        if (folder / MANIFEST_NAME).is_file():
            return folder
    return None


def split_file_owner(path: str | os.PathLike, root: str | os.PathLike) -> Path | None:
    """The other dataset folder that ``path`` lies in, or None when it is ``root``'s or no dataset's."""
    owner = dataset_folder_of(path)
    return owner if owner is not None and owner != Path(root).expanduser().resolve() else None


@dataclass(frozen=True)
class SplitRun:
    """A split made and written by :func:`iter_run_split`.

    ``kept`` counts ids whose subset came from the previous split file
    (``previous_path``), ``new_ids`` those it did not list (they went to train
    unless grouped with a dev/test image).
    """

    result: Any  # napari_cellseg.data.split.SplitResult
    path: Path
    previous_used: bool
    kept: int
    new_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    previous_path: Path | None = None

    def table(self) -> tuple[list[str], list[list[Any]]]:
        return counts_table(self.result.counts())


def iter_run_split(
    root: str | os.PathLike,
    config: Any = None,
    out_path: str | os.PathLike | None = None,
    *,
    keep_previous: bool = True,
    microscopes: Sequence[str] | None = None,
) -> Generator[Any, None, SplitRun]:
    """Open a dataset, split it and write the split file (atomically).

    Parameters
    ----------
    root : path
        The dataset folder.
    config : SplitConfig, optional
        Target microscope, ratios, seed, grouping.
    out_path : path, optional
        The split file; default ``<root>/split.csv``. A file inside another
        dataset folder is that dataset's: it is only read (as the previous
        split) and the split goes to ``<root>/split.csv``.
    keep_previous : bool
        When ``out_path`` exists, keep its assignments (new ids go to train);
        otherwise make a fresh split and replace the file without reading it
        as a split (only its ids are looked at, so another dataset's split is
        not replaced by mistake).
    microscopes : sequence of str, optional
        The tags the manifest may use (``split --microscopes``); None: the tags it
        uses (a lab's D and E), each a valid tag.

    Yields
    ------
    napari_cellseg.data.split.SplitProgress

    Raises
    ------
    DatasetError
        The dataset has problems (``.problems`` lists them by file).
    SplitError
        The split cannot be made (too few target images, bad ratios, a split
        file that is not this dataset's...).
    """
    from ..data.dataset import CellDataset
    from ..data.split import SplitConfig, iter_split
    from ..data.splitfile import write_split

    config = config or SplitConfig()
    dataset = CellDataset.open(root, microscopes)
    chosen = Path(out_path).expanduser() if out_path else default_split_path(root)
    owner = split_file_owner(chosen, root)
    path = default_split_path(root) if owner is not None else chosen
    previous = _previous_split(chosen, path, owner, dataset, keep_previous)
    result = None
    for report in iter_split(dataset, config, previous):
        if report.result is not None:
            result = report.result
        yield report
    if result is None:  # pragma: no cover - iter_split always ends with a result
        raise RuntimeError("the split ended without a result")
    write_split(path, result.subsets, result.microscopes, result.groups)
    listed = set(previous or {})
    new_ids = tuple(i for i in result.subsets if previous is not None and i not in listed)
    kept = sum(1 for i in result.subsets if i in listed)
    notes = tuple(result.notes) + tuple(f"Warning: {w}." for w in result.warnings)
    if owner is not None:
        notes += (f"{chosen} belongs to another dataset ({owner.name}) and was left as it was.",)
    return SplitRun(
        result, path, previous is not None, kept, new_ids, notes, chosen if previous is not None else None
    )


def _previous_split(chosen: Path, path: Path, owner, dataset, keep_previous: bool) -> dict | None:
    """The split to keep (``chosen``'s, read strictly), or None; refuse a file not to be replaced.

    ``path`` is where the split will be written: ``chosen`` itself, or this
    dataset's own split file when ``chosen`` belongs to the dataset ``owner``.
    """
    from ..data.manifest import MANIFEST_NAME
    from ..data.splitfile import SplitError, peek_split_ids, read_split

    if path.resolve() == (Path(dataset.root) / MANIFEST_NAME).resolve():
        raise SplitError(f"{path} is the dataset's manifest; choose a split file such as split.csv")
    if owner is not None and path.exists():
        # Not replaced unasked: the user pointed at the other dataset's file, not at this one.
        raise SplitError(
            f"{chosen} is the split file of the dataset {owner}, which is never rewritten; this split "
            f"would go to this dataset's own {path}, which exists already: choose that one as the split "
            "file, or move it away" + (f" to start from the subsets of {chosen}" if keep_previous else "")
        )
    ids = set(dataset.ids)
    if keep_previous:
        previous = read_split(chosen) if chosen.is_file() else None
        listed = set(previous or ())
    elif owner is None and path.is_file():  # replaced unread, once it is known to be this dataset's
        try:
            listed = peek_split_ids(path)
        except OSError as err:
            raise SplitError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None
        if listed is None:
            raise SplitError(f"{path} is not a split file (no 'id' and 'subset' columns); choose another")
        previous = None
    else:
        return None
    if listed and not listed & ids:  # e.g. a split file chosen for another dataset
        raise SplitError(
            f"{chosen} is the split of another dataset: none of its {len(listed)} ids are in "
            f"{dataset.root}; choose another split file (or delete that one)"
        )
    return previous


def counts_table(counts: dict[str, dict[str, int]]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the subset x microscope table, with totals."""
    tags = sorted({m for row in counts.values() for m in row})
    header = ["subset", *tags, "total"]
    rows = [[subset, *(row.get(m, 0) for m in tags), sum(row.values())] for subset, row in counts.items()]
    totals = [sum(row.get(m, 0) for row in counts.values()) for m in tags]
    rows.append(["total", *totals, sum(totals)])
    return header, rows


def preview_dataset_augmentations(
    root: str | os.PathLike,
    image_id: str,
    preset: str = TRAINING_PRESET,
    n: int = 4,
    patch_size: int = 256,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` augmented crops of one dataset image and their 3-class targets.

    Returns
    -------
    images : float32 array ``(n, patch, patch)`` or ``(n, patch, patch, 3)`` in [0, 1]
    targets : uint8 array ``(n, patch, patch)`` (0 background, 1 boundary, 2 interior)
    """
    from ..data.augment import AugmentConfig, preview_augmentations
    from ..data.dataset import CellDataset

    if n < 1 or patch_size < 8:
        raise ValueError(f"ask for at least 1 sample of at least 8 pixels, got n={n}, patch {patch_size}")
    dataset = CellDataset.open(root)
    config = AugmentConfig.preset(preset, patch_size=(patch_size, patch_size))
    samples = preview_augmentations(
        dataset.load_image(image_id), dataset.load_target(image_id), n=n, config=config, seed=seed
    )
    images = np.stack([s[0] for s in samples]).astype(np.float32, copy=False)
    targets = np.stack([s[1] for s in samples]).astype(np.uint8, copy=False)
    return images, targets
