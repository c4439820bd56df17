"""Qt-free logic behind the Dataset widget: check a folder, split it, preview augmentation.

The split keeps an existing split file's assignments by default (new ids go
to train), so correcting predictions and saving them into the dataset adds
training data without moving anything into dev or test: the
human-in-the-loop cycle.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..classes import MICROSCOPES
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
    root: str | os.PathLike, microscopes: Sequence[str] = MICROSCOPES, *, pixels: bool = True
) -> Generator[Any, None, DatasetCheck]:
    """Open and validate a dataset folder, returning every problem instead of raising.

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
    root: str | os.PathLike, microscopes: Sequence[str] = MICROSCOPES, *, pixels: bool = True
) -> DatasetCheck:
    """:func:`iter_check_dataset` run to its end."""
    from ..generators import run_to_end

    return run_to_end(iter_check_dataset(root, microscopes, pixels=pixels))


def default_split_path(root: str | os.PathLike) -> Path:
    """Where the Dataset widget writes a dataset's split: ``<root>/split.csv``."""
    return Path(root) / SPLIT_FILE_NAME


@dataclass(frozen=True)
class SplitRun:
    """A split made and written by :func:`iter_run_split`.

    ``kept`` counts ids whose subset came from the previous split file,
    ``new_ids`` those it did not list (they went to train unless grouped with
    a dev/test image).
    """

    result: Any  # napari_cellseg.data.split.SplitResult
    path: Path
    previous_used: bool
    kept: int
    new_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def table(self) -> tuple[list[str], list[list[Any]]]:
        return counts_table(self.result.counts())


def iter_run_split(
    root: str | os.PathLike,
    config: Any = None,
    out_path: str | os.PathLike | None = None,
    *,
    keep_previous: bool = True,
) -> Generator[Any, None, SplitRun]:
    """Open a dataset, split it and write the split file.

    Parameters
    ----------
    root : path
        The dataset folder.
    config : SplitConfig, optional
        Target microscope, ratios, seed, grouping.
    out_path : path, optional
        The split file; default ``<root>/split.csv``.
    keep_previous : bool
        When ``out_path`` exists, keep its assignments (new ids go to train);
        otherwise make a fresh split and replace the file.

    Yields
    ------
    napari_cellseg.data.split.SplitProgress

    Raises
    ------
    DatasetError
        The dataset has problems (``.problems`` lists them by file).
    SplitError
        The split cannot be made (too few target images, bad ratios...).
    """
    from ..data.dataset import CellDataset
    from ..data.split import SplitConfig, iter_split
    from ..data.splitfile import SplitError, read_split, write_split

    config = config or SplitConfig()
    dataset = CellDataset.open(root)
    path = Path(out_path) if out_path else default_split_path(root)
    existing = read_split(path) if path.is_file() else None
    if existing and not set(existing) & set(dataset.ids):  # e.g. a split file chosen for another dataset
        raise SplitError(
            f"{path} is the split of another dataset: none of its {len(existing)} ids are in {root}; "
            "choose another split file (or delete that one)"
        )
    previous = existing if keep_previous else None
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
    return SplitRun(result, path, previous is not None, kept, new_ids, tuple(result.notes))


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
