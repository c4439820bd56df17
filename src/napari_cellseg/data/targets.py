"""Instance labels <-> 3-class targets (0 background, 1 boundary, 2 interior).

The rule
--------
A foreground pixel is **boundary** when a pixel with a different label (another
instance or background) lies within ``thickness`` steps of it, a step being a
move to a neighbour at ``connectivity`` (1: the 4 edge neighbours, 2: all 8
neighbours, the default). Every other foreground pixel is **interior**.

- Boundaries are *inner*: they lie on the instance's own pixels. Where two
  cells touch, both rims are boundary, so ``2 * thickness`` pixels separate
  their interiors.
- The image border is not a boundary: a cell cut by a crop continues outside.
- Consequence: no interior pixel has a neighbour (at ``connectivity``) in the
  interior of another instance, so labelling the interior class at that
  connectivity (``skimage.measure.label(target == 2, connectivity=...)``)
  never merges two instances. Connectivity 2 separates interiors at 8- and
  therefore also at 4-connectivity.

Pieces, thin instances and necks
--------------------------------
A *piece* is a connected component (at ``connectivity``) of one label; real
masks contain labels in several pieces. Each piece is treated as a blob of its
own, so the one-to-one match between interior components and instances holds
**per piece** (labels with several pieces are listed in the report). With
``repair=True`` (the default) every piece gets exactly one interior component:

- a piece too thin for an interior (one or two pixels wide) keeps one *seed*
  pixel instead of vanishing silently: preferably one touching no other
  instance, then the one with most same-label neighbours, then the one nearest
  the piece's centroid;
- a piece whose interior splits at a narrow neck keeps its largest interior
  component; other components smaller than a ``(2 * thickness + 1)`` square
  (lumps on a ragged rim) become boundary, larger ones (lobes) are joined to
  the largest by a one-pixel-wide shortest path inside the piece, which avoids
  pixels touching other instances where it can.

A repaired pixel never has a neighbour in another piece's interior, so
interiors still never merge, and every contact between two instances keeps
boundary on at least one side (on both sides without repair). The one case
that cannot be repaired is a thin piece every pixel of which touches another
piece's interior (e.g. the second of two touching one-pixel cells): it stays
without interior and is listed in ``report.lost_labels``. So, precisely: each
interior component lies in one piece, and each piece has exactly one interior
component unless its label is in ``lost_labels`` (then none).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..classes import BACKGROUND, BOUNDARY, INTERIOR
from .target_repair import TargetReport, analyse_and_repair

__all__ = [
    "TargetReport",
    "instances_to_targets",
    "targets_to_binary",
    "targets_to_instances",
]


def check_label_image(labels: Any, name: str = "labels") -> np.ndarray:
    """``labels`` as a 2D non-negative integer numpy array (bool as uint8), or a clear ``ValueError``."""
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2D (H, W) label image, got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers, got dtype {array.dtype} (shape {array.shape})")
    if np.issubdtype(array.dtype, np.signedinteger) and array.size and array.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0, found {array.min()} (dtype {array.dtype})")
    return array


def _check_connectivity(connectivity: int) -> None:
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), got {connectivity!r}")


def _structure(connectivity: int) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.generate_binary_structure(2, connectivity)


def _contacts(labels: np.ndarray, connectivity: int) -> np.ndarray:
    """Pixels with a differently labelled neighbour (both sides of every contact)."""
    if connectivity == 2 and labels.size and int(labels.max()) <= np.iinfo(np.uint16).max:
        import cv2

        # A neighbour differs where the 3x3 maximum or minimum does: 2 passes of cv2 instead of 8
        # of numpy (cv2's border takes no part in either, as the image border is no contact).
        small = np.ascontiguousarray(
            labels, labels.dtype if labels.dtype in (np.uint8, np.uint16) else np.uint16
        )
        square = np.ones((3, 3), np.uint8)
        return (cv2.dilate(small, square) != small) | (cv2.erode(small, square) != small)
    edge = np.zeros(labels.shape, dtype=bool)
    pairs = [((slice(None), slice(1, None)), (slice(None), slice(None, -1)))]
    pairs.append(((slice(1, None), slice(None)), (slice(None, -1), slice(None))))
    if connectivity == 2:
        pairs.append(((slice(1, None), slice(1, None)), (slice(None, -1), slice(None, -1))))
        pairs.append(((slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None))))
    for a, b in pairs:
        differ = labels[a] != labels[b]
        edge[a] |= differ
        edge[b] |= differ
    return edge


def _widen(edge: np.ndarray, steps: int, connectivity: int) -> np.ndarray:
    """Dilate ``edge`` by ``steps`` moves at ``connectivity`` (square or diamond kernel)."""
    if steps <= 0:
        return edge
    import cv2

    size = 2 * steps + 1
    if connectivity == 2:
        kernel = np.ones((size, size), np.uint8)
    else:
        yy, xx = np.mgrid[-steps : steps + 1, -steps : steps + 1]
        kernel = (np.abs(yy) + np.abs(xx) <= steps).astype(np.uint8)
    return cv2.dilate(edge.view(np.uint8), kernel).view(bool)


def contact_pixels(instances: Any, radius: int = 3) -> np.ndarray:
    """Pixels within ``radius`` (a square window) of two different cells.

    These are the gaps and boundaries between touching or nearly touching cells,
    where a merge happens; a lone cell's outer edge is not one.

    Parameters
    ----------
    instances : (H, W) array of int
        Instance labels (0 background).
    radius : int
        Half the window's side, in pixels (>= 1).

    Returns
    -------
    (H, W) bool array
    """
    from scipy import ndimage as ndi

    from .arguments import check_integer

    labels = check_label_image(instances, "instances").astype(np.int64, copy=False)
    radius = check_integer(radius, "radius", minimum=1)  # 1.9 is not rounded down silently
    if labels.size == 0:
        return np.zeros(labels.shape, bool)
    size = 2 * radius + 1
    absent = int(labels.max()) + 1  # background, for the minimum (scipy's filters go through float)
    highest = ndi.maximum_filter(labels, size=size)
    lowest = ndi.minimum_filter(np.where(labels > 0, labels, absent), size=size)
    return (lowest != absent) & (highest != lowest)


def instances_to_targets(
    labels: np.ndarray,
    thickness: int = 1,
    connectivity: int = 2,
    *,
    repair: bool = True,
    return_report: bool = False,
) -> np.ndarray | tuple[np.ndarray, TargetReport]:
    """Turn an instance label image into the 3-class target.

    See the module docstring for the exact rule.

    Parameters
    ----------
    labels : (H, W) integer or bool array
        0 is background; every other value is one instance.
    thickness : int, optional
        Boundary width in pixels, measured inwards from the instance's edge.
    connectivity : {1, 2}, optional
        Neighbourhood of one step (1: 4-neighbours, 2: 8-neighbours). The
        interiors of different instances are separated at this connectivity.
    repair : bool, optional
        Give every piece exactly one interior component (seed thin pieces,
        rejoin necked ones). Without it, thin pieces have no interior and
        necked pieces several interior components.
    return_report : bool, optional
        Also return a :class:`TargetReport`.

    Returns
    -------
    target : (H, W) uint8 array
        0 background, 1 boundary, 2 interior.
    report : TargetReport
        Only when ``return_report`` is true.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((5, 7), np.uint16)
    >>> labels[:, :4], labels[:, 4:6] = 1, 2
    >>> instances_to_targets(labels)[2]  # label 2 is too thin: one seed pixel
    array([2, 2, 2, 1, 1, 2, 0], dtype=uint8)
    """
    labels = check_label_image(labels)
    _check_connectivity(connectivity)
    if int(thickness) != thickness or thickness < 1:
        raise ValueError(f"thickness must be an integer >= 1, got {thickness!r}")
    foreground = labels != 0
    boundary = foreground & _widen(_contacts(labels, connectivity), int(thickness) - 1, connectivity)
    # boundary is a subset of foreground: 2 on foreground, minus 1 on boundary.
    target = foreground.view(np.uint8) * np.uint8(INTERIOR) - boundary.view(np.uint8)
    if not (repair or return_report):
        return target
    report = analyse_and_repair(labels, target, int(thickness), connectivity, repair)
    return (target, report) if return_report else target


def targets_to_binary(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a 3-class target into the masks of the binary (sigmoid) loss.

    Parameters
    ----------
    target : (..., H, W) integer array
        0 background, 1 boundary, 2 interior; other values are refused.

    Returns
    -------
    foreground, boundary : bool arrays of the target's shape
        ``foreground`` is boundary or interior; ``boundary`` is the boundary class.
    """
    target = _check_classes(target)
    return target != BACKGROUND, target == BOUNDARY


def _check_classes(target: Any, ndim: int | None = None) -> np.ndarray:
    """``target`` as an integer array of classes 0/1/2, or a ``ValueError`` quoting what it holds."""
    target = np.asarray(target)
    if target.dtype == bool or not np.issubdtype(target.dtype, np.integer):
        raise ValueError(f"target must be an integer class array (0, 1, 2), got dtype {target.dtype}")
    if (ndim is not None and target.ndim != ndim) or target.ndim < 2:
        raise ValueError(f"target must be a {ndim or 2}D (..., H, W) class array, got shape {target.shape}")
    if target.size:
        low, high = target.min(), target.max()
        if low < 0 or high > INTERIOR:
            # A 0/255 mask or another coding would otherwise give no cell, silently.
            raise ValueError(
                f"target values must be 0 (background), 1 (boundary) or 2 (interior), "
                f"found {low}..{high} (dtype {target.dtype}); instance labels go to instances_to_targets"
            )
    return target


def targets_to_instances(
    target: np.ndarray, connectivity: int = 2, *, keep_orphans: bool = False
) -> np.ndarray:
    """Instances from a 3-class target: interior components grown over their boundary.

    Interior components (at ``connectivity``) are the markers; all grow at
    once into the boundary pixels by a watershed on a flat image restricted to
    the foreground (boundary or interior), so every boundary pixel goes to the
    interior component it is fewest steps from inside the foreground (ties go
    to whichever flood arrives first). For targets made by
    :func:`instances_to_targets` this gives back one instance per piece.

    Parameters
    ----------
    target : (H, W) integer array
        0 background, 1 boundary, 2 interior; other values are refused.
    connectivity : {1, 2}, optional
        Connectivity of the interior components and of the growth.
    keep_orphans : bool, optional
        Give foreground components without any interior pixel a label of their
        own (appended after the others) instead of dropping them.

    Returns
    -------
    (H, W) uint16 array (uint32 above 65535 instances)
        0 background, consecutive labels 1..N.
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    target = _check_classes(target, ndim=2)
    _check_connectivity(connectivity)
    structure = _structure(connectivity)
    markers, n = ndi.label(target == INTERIOR, structure=structure)
    foreground = target != BACKGROUND
    grown = watershed(np.zeros(target.shape, np.uint8), markers, connectivity=connectivity, mask=foreground)
    if keep_orphans:
        orphans, n_orphans = ndi.label(foreground & (grown == 0), structure=structure)
        grown = np.where(orphans > 0, orphans + n, grown)
        n += n_orphans
    return grown.astype(np.uint16 if n <= np.iinfo(np.uint16).max else np.uint32)
