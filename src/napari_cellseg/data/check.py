"""Read every pixel of a dataset once: the problems that headers cannot show.

:meth:`CellDataset.open <napari_cellseg.data.dataset.CellDataset.open>` reads
headers only, so a binary mask (one label over many cells), float or negative
labels, target maps with values other than 0/1/2, or a file that does not
decode surface only when training reads it. :func:`iter_check_pixels` decodes
each image and its labels as training would and lists every such problem at
once, with the cells it counted per microscope.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from .dataset import CellDataset, DatasetError


@dataclass(frozen=True)
class PixelCheckProgress:
    """One image decoded: ``done`` of ``total``, and the problems found so far."""

    done: int
    total: int
    image_id: str
    problems: int
    stage: str = "reading pixels"


@dataclass(frozen=True)
class PixelCheck:
    """What :func:`iter_check_pixels` found.

    ``cells`` counts the cells per microscope (target maps: their interior
    components, as scoring counts them); ``empty`` lists the images whose
    labels hold no cell (allowed: the network learns background from them).
    """

    problems: tuple[tuple[str, str], ...] = ()
    cells: dict[str, int] = field(default_factory=dict)
    empty: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def iter_check_pixels(dataset: CellDataset) -> Generator[PixelCheckProgress, None, PixelCheck]:
    """Decode every image and label file of ``dataset``; yield after each image.

    Parameters
    ----------
    dataset : CellDataset
        An opened dataset (its headers are already checked).

    Yields
    ------
    PixelCheckProgress

    Returns
    -------
    PixelCheck
        ``(file, reason)`` for each file that training would refuse, cells per
        microscope, and the ids of images without cells.
    """
    problems: list[tuple[str, str]] = []
    cells = dict.fromkeys(dataset.microscopes, 0)
    empty = []
    total = len(dataset)
    for done, record in enumerate(dataset, start=1):
        try:
            dataset.load_image(record.id)
        except DatasetError as err:
            problems.extend(err.problems)
        try:
            count = int(dataset.load_reference_instances(record.id).max())
        except DatasetError as err:
            problems.extend(err.problems)
        else:
            cells[record.microscope] = cells.get(record.microscope, 0) + count
            if count == 0:
                empty.append(record.id)
        yield PixelCheckProgress(done, total, record.id, len(problems))
    return PixelCheck(tuple(problems), cells, tuple(empty))
