"""Find near-duplicate images so that a split never puts them on both sides.

Two cues, both deterministic:

* **seams**: tiles cut from one larger field. The last row (column) of one
  image continues into the first row (column) of another: the two edges
  correlate (> ``seam_correlation``) and differ by no more than the images'
  own neighbouring rows differ (ratio < ``seam_ratio``). dsb2018's 107 C images
  are mostly 2x2 tiles of larger fields; their seams score ~1.0 against > 2.1
  for every unrelated pair.
* **thumbnails**: the same field imaged or cropped twice. Grey 16x16
  thumbnails, standardised, correlate > ``thumbnail_correlation``.

Near-duplicate pairs are joined by single-linkage agglomerative clustering
(connected components of the pair graph), together with the manifest's
explicit groups: images that share a manifest group, or are linked by a
near-duplicate chain, form one group.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import JsonConfig

_SIDES = (("bottom", "top"), ("right", "left"))  # (side of the first image, of the second)
_BLOCK = 1024  # rows of a correlation matrix computed at once (bounds memory)


@dataclass
class GroupingConfig(JsonConfig):
    """Thresholds of the near-duplicate cues (see the module docstring)."""

    seam_correlation: float = 0.8
    seam_ratio: float = 1.5
    thumbnail_correlation: float = 0.9
    thumbnail_size: int = 16


@dataclass(frozen=True)
class NearDuplicatePair:
    """Two images found to be near-duplicates; ``cue`` is "seam" or "thumbnail"."""

    first: str
    second: str
    cue: str
    score: float


@dataclass(frozen=True)
class GroupingProgress:
    """Report of :func:`iter_near_duplicates`; the last one carries ``pairs``."""

    done: int
    total: int
    pairs: tuple[NearDuplicatePair, ...] | None = None


@dataclass(frozen=True)
class Fingerprint:
    """Edges (outermost and next row/column, per side) and a standardised thumbnail."""

    edges: dict[str, tuple[np.ndarray, np.ndarray]]
    thumbnail: np.ndarray


def fingerprint(image: np.ndarray, thumbnail_size: int = 16) -> Fingerprint:
    """Summarise an ``(H, W)`` or ``(H, W, C)`` integer image for near-duplicate search."""
    import cv2

    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 2:
        raise ValueError(f"fingerprint needs an (H, W) or (H, W, C) image of 2x2 or more, got {image.shape}")
    scale = float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else 1.0
    pixels = image.astype(np.float32) / scale
    pixels = pixels if pixels.ndim == 3 else pixels[..., None]
    edges = {
        "top": (pixels[0], pixels[1]),
        "bottom": (pixels[-1], pixels[-2]),
        "left": (pixels[:, 0], pixels[:, 1]),
        "right": (pixels[:, -1], pixels[:, -2]),
    }
    grey = pixels.mean(axis=-1)
    small = cv2.resize(grey, (thumbnail_size, thumbnail_size), interpolation=cv2.INTER_AREA)
    return Fingerprint({k: (a.copy(), b.copy()) for k, (a, b) in edges.items()}, _standardise(small.ravel()))


def _standardise(vector: np.ndarray) -> np.ndarray:
    """Zero mean, unit norm (all zeros for a flat vector, which then matches nothing)."""
    vector = vector.astype(np.float64) - vector.mean()
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 1e-9 else np.zeros_like(vector)


def _pairs_above(a: np.ndarray, b: np.ndarray, threshold: float) -> Iterator[tuple[int, int, float]]:
    """(i, j, a_i . b_j) for every product above ``threshold``, block by block."""
    for start in range(0, len(a), _BLOCK):
        scores = a[start : start + _BLOCK] @ b.T
        for i, j in zip(*np.nonzero(scores > threshold)):
            yield start + int(i), int(j), float(scores[i, j])


def find_seams(fingerprints: Sequence[Fingerprint], config: GroupingConfig) -> list[tuple[int, int, float]]:
    """``(i, j, ratio)`` where image ``i``'s bottom/right edge continues into ``j``'s top/left."""
    found = []
    for first_side, second_side in _SIDES:
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, fp in enumerate(fingerprints):
            by_shape.setdefault(fp.edges[first_side][0].shape, []).append(index)
        for shape, members in by_shape.items():
            others = [k for k, fp in enumerate(fingerprints) if fp.edges[second_side][0].shape == shape]
            if not others:
                continue
            outer_a = np.stack([fingerprints[k].edges[first_side][0] for k in members])
            inner_a = np.stack([fingerprints[k].edges[first_side][1] for k in members])
            outer_b = np.stack([fingerprints[k].edges[second_side][0] for k in others])
            inner_b = np.stack([fingerprints[k].edges[second_side][1] for k in others])
            grey_a = np.stack([_standardise(e.mean(axis=-1)) for e in outer_a])
            grey_b = np.stack([_standardise(e.mean(axis=-1)) for e in outer_b])
            for i, j, _ in _pairs_above(grey_a, grey_b, config.seam_correlation):
                a, b = members[i], others[j]
                if a == b:
                    continue
                step = np.abs(outer_a[i] - outer_b[j]).mean()
                own = (np.abs(outer_a[i] - inner_a[i]).mean() + np.abs(outer_b[j] - inner_b[j]).mean()) / 2
                ratio = float(step / (own + 1e-4))
                if ratio < config.seam_ratio:
                    found.append((a, b, ratio))
    return found


def find_similar_thumbnails(
    fingerprints: Sequence[Fingerprint], config: GroupingConfig
) -> list[tuple[int, int, float]]:
    """``(i, j, correlation)``, ``i < j``, for thumbnails correlating above the threshold."""
    if not fingerprints:
        return []
    thumbs = np.stack([fp.thumbnail for fp in fingerprints])
    return [(i, j, c) for i, j, c in _pairs_above(thumbs, thumbs, config.thumbnail_correlation) if i < j]


def iter_near_duplicates(
    dataset, ids: Sequence[str] | None = None, config: GroupingConfig | None = None
) -> Iterator[GroupingProgress]:
    """Read each image once, then compare them all; the last report holds the pairs.

    Parameters
    ----------
    dataset : CellDataset
        Where the images come from.
    ids : sequence of str, optional
        The images to compare (default: all).
    config : GroupingConfig, optional
        Thresholds.

    Yields
    ------
    GroupingProgress
        One per image read, then a last one whose ``pairs`` lists every
        near-duplicate pair (by id, sorted).
    """
    config = config or GroupingConfig()
    ids = list(dataset.ids if ids is None else ids)
    fingerprints, compared = [], []
    for done, image_id in enumerate(ids, start=1):
        image = dataset.load_image(image_id)
        if min(image.shape[:2]) >= 2:  # a one-pixel line has neither seams nor a thumbnail
            fingerprints.append(fingerprint(image, config.thumbnail_size))
            compared.append(image_id)
        yield GroupingProgress(done, len(ids))
    pairs = {}
    for cue, found in (
        ("seam", find_seams(fingerprints, config)),
        ("thumbnail", find_similar_thumbnails(fingerprints, config)),
    ):
        for i, j, score in found:
            first, second = sorted((compared[i], compared[j]))
            pairs.setdefault((first, second), NearDuplicatePair(first, second, cue, round(score, 4)))
    yield GroupingProgress(len(ids), len(ids), tuple(pairs[k] for k in sorted(pairs)))


def find_near_duplicates(
    dataset, ids: Sequence[str] | None = None, config: GroupingConfig | None = None
) -> list[NearDuplicatePair]:
    """Synchronous :func:`iter_near_duplicates`: the near-duplicate pairs among ``ids``."""
    pairs: tuple[NearDuplicatePair, ...] = ()
    for report in iter_near_duplicates(dataset, ids, config):
        pairs = report.pairs or pairs
    return list(pairs)


def merge_groups(
    ids: Sequence[str],
    explicit: Mapping[str, str | None],
    pairs: Sequence[NearDuplicatePair] = (),
) -> dict[str, str]:
    """One group key per id: connected components of manifest groups and near-duplicate pairs.

    A component holding manifest groups is named after the first of them
    (sorted); one formed by near-duplicates only is ``auto:<first id>``; an
    image alone keeps its id as key. Keys are unique per component.
    """
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first_of_group: dict[str, str] = {}
    for i in ids:
        group = explicit.get(i)
        if group:
            join(i, first_of_group.setdefault(group, i))
    for pair in pairs:
        if pair.first in parent and pair.second in parent:
            join(pair.first, pair.second)
    members: dict[str, list[str]] = {}
    for i in ids:
        members.setdefault(root(i), []).append(i)
    keys: dict[str, str] = {}
    taken = set(first_of_group)
    for component in members.values():
        named = sorted({explicit[i] for i in component if explicit.get(i)})
        if named:
            key = named[0]
        elif len(component) > 1:
            key = f"auto:{min(component)}"
        else:
            key = component[0] if component[0] not in taken else f"id:{component[0]}"
        keys.update(dict.fromkeys(component, key))
    return keys
