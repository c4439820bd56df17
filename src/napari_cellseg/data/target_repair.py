"""Pieces, thin instances and necks of a label image: the repairs behind
:func:`napari_cellseg.data.targets.instances_to_targets` (see its module docstring).

Invariant kept by every repair: a pixel only becomes interior if none of its
neighbours (at the connectivity used) is interior of *another* piece, so
interior components never merge two pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import BOUNDARY, INTERIOR

# Path cost of a pixel touching another instance: bridges avoid contacts where they can.
_CONTACT_COST = 1000.0


@dataclass(frozen=True)
class TargetReport:
    """What :func:`instances_to_targets` found (and repaired) in a label image.

    Attributes
    ----------
    n_instances : int
        Distinct non-zero labels.
    n_pieces : int
        Connected pieces of those labels at the connectivity used.
    multi_piece_labels : tuple of int
        Labels made of more than one piece (each piece gets its own interior).
    thin_labels : tuple of int
        Labels with a piece too thin for an interior (seeded when repaired).
    necked_labels : tuple of int
        Labels with a piece whose interior split at a neck (rejoined when repaired).
    lost_labels : tuple of int
        Labels with a piece left *without* interior in the returned target: all
        thin pieces without repair; with repair only pieces every pixel of which
        touches another piece's interior (e.g. two touching one-pixel cells:
        the second cannot get a seed without merging into the first).
    repaired : bool
        Whether thin and necked pieces were repaired in the target.
    """

    n_instances: int
    n_pieces: int
    multi_piece_labels: tuple[int, ...]
    thin_labels: tuple[int, ...]
    necked_labels: tuple[int, ...]
    lost_labels: tuple[int, ...]
    repaired: bool


def _offsets(connectivity: int) -> list[tuple[int, int]]:
    from scipy import ndimage as ndi

    structure = ndi.generate_binary_structure(2, connectivity)
    return [(int(dy), int(dx)) for dy, dx in np.argwhere(structure) - 1 if dy or dx]


def analyse_and_repair(
    labels: np.ndarray, target: np.ndarray, thickness: int, connectivity: int, repair: bool
) -> TargetReport:
    """Find pieces without or with several interior components; fix them in place if ``repair``."""
    from scipy import ndimage as ndi
    from skimage.measure import label as label_regions

    pieces, n_pieces = label_regions(labels, background=0, connectivity=connectivity, return_num=True)
    piece_label = np.zeros(n_pieces + 1, dtype=np.int64)
    piece_label[pieces.ravel()] = labels.ravel()
    interior = target == INTERIOR
    comps, n_comps = ndi.label(interior, structure=ndi.generate_binary_structure(2, connectivity))
    # Every interior component lies inside one piece: map component -> piece.
    comp_piece = np.zeros(n_comps + 1, dtype=np.int64)
    comp_piece[comps[interior]] = pieces[interior]
    per_piece = np.bincount(comp_piece[1:], minlength=n_pieces + 1)[1:]
    thin = np.flatnonzero(per_piece == 0) + 1
    necked = np.flatnonzero(per_piece > 1) + 1
    lost = thin
    if repair:
        # Necks first: bridges are the bigger structures; seeds then avoid them.
        if necked.size:
            _bridge_necks(pieces, necked, comps, target, connectivity, thickness)
        lost = _seed_thin_pieces(labels, pieces, thin, target, connectivity) if thin.size else thin
    # Labels need not be consecutive (or small): count pieces per label with unique.
    label_ids, n_per_label = np.unique(piece_label[1:], return_counts=True)

    def _labels_of(piece_ids: np.ndarray) -> tuple[int, ...]:
        return tuple(int(v) for v in np.unique(piece_label[piece_ids]))

    return TargetReport(
        n_instances=int(label_ids.size),
        n_pieces=int(n_pieces),
        multi_piece_labels=tuple(int(v) for v in label_ids[n_per_label > 1]),
        thin_labels=_labels_of(thin),
        necked_labels=_labels_of(necked),
        lost_labels=_labels_of(np.asarray(lost, dtype=np.int64)),
        repaired=bool(repair),
    )


def _neighbour_values(
    image: np.ndarray, ys: np.ndarray, xs: np.ndarray, connectivity: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(values, valid)``, each ``(n_offsets, n_pixels)``: the neighbours of pixels (ys, xs)."""
    h, w = image.shape
    offsets = _offsets(connectivity)
    values = np.zeros((len(offsets), ys.size), dtype=image.dtype)
    valid = np.zeros((len(offsets), ys.size), dtype=bool)
    for k, (dy, dx) in enumerate(offsets):
        ny, nx = ys + dy, xs + dx
        valid[k] = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        values[k, valid[k]] = image[ny[valid[k]], nx[valid[k]]]
    return values, valid


def _seed_thin_pieces(
    labels: np.ndarray, pieces: np.ndarray, thin: np.ndarray, target: np.ndarray, connectivity: int
) -> np.ndarray:
    """Mark one pixel of each thin piece interior; return the pieces that could not get one.

    Preference: a pixel touching no other instance, then most same-label
    neighbours, then nearest the piece's centroid. A seed touching another
    instance is placed only where no neighbour is interior (one at a time).
    """
    selected = np.zeros(int(pieces.max()) + 1, dtype=bool)
    selected[thin] = True
    ys, xs = np.nonzero(selected[pieces])
    ids, own = pieces[ys, xs], labels[ys, xs]
    values, valid = _neighbour_values(labels, ys, xs, connectivity)
    same = np.count_nonzero(valid & (values == own), axis=0)
    touches_other = np.any(valid & (values != own) & (values != 0), axis=0)
    count = np.bincount(ids)
    cy = np.bincount(ids, ys)[ids] / count[ids]
    cx = np.bincount(ids, xs)[ids] / count[ids]
    score = ~touches_other * 1e12 + same * 1e9 - ((ys - cy) ** 2 + (xs - cx) ** 2)
    order = np.lexsort((-score, ids))
    starts = np.searchsorted(ids[order], thin)
    best = order[starts]
    # A seed touching no other instance cannot touch another interior: place them all.
    safe = ~touches_other[best]
    target[ys[best[safe]], xs[best[safe]]] = INTERIOR
    lost = []
    stops = np.append(starts[1:], order.size)
    for piece, start, stop in zip(thin[~safe], starts[~safe], stops[~safe]):
        for candidate in order[start:stop]:
            y, x = ys[candidate : candidate + 1], xs[candidate : candidate + 1]
            around, inside = _neighbour_values(target, y, x, connectivity)
            if not np.any(inside & (around == INTERIOR)):
                target[y, x] = INTERIOR
                break
        else:
            lost.append(piece)
    return np.asarray(lost, dtype=np.int64)


def _bridge_necks(
    pieces: np.ndarray,
    necked: np.ndarray,
    comps: np.ndarray,
    target: np.ndarray,
    connectivity: int,
    thickness: int,
) -> None:
    """Keep one interior component per necked piece: drop specks, bridge lobes.

    The largest component stays. Others smaller than a ``(2 * thickness + 1)``
    square are lumps on a ragged rim and become boundary; larger ones are lobes
    and are joined to the largest by a shortest path inside the piece that
    avoids pixels touching other pieces where it can and never passes next to
    another piece's interior (a lobe that cannot be reached becomes boundary).
    """
    from scipy import ndimage as ndi
    from skimage.graph import MCP

    structure = ndi.generate_binary_structure(2, connectivity)
    speck = (2 * thickness + 1) ** 2
    h, w = pieces.shape
    boxes = ndi.find_objects(pieces, max_label=int(necked.max()))
    for piece_id in necked:
        rows, cols = boxes[piece_id - 1]
        # One pixel of margin to see the neighbours just outside the piece.
        box = (
            slice(max(rows.start - 1, 0), min(rows.stop + 1, h)),
            slice(max(cols.start - 1, 0), min(cols.stop + 1, w)),
        )
        inside = pieces[box] == piece_id
        piece_comps = np.where(inside, comps[box], 0)
        ids, sizes = np.unique(piece_comps[piece_comps > 0], return_counts=True)
        order = np.argsort(-sizes, kind="stable")
        sub_target = target[box]
        lobes = [ids[order[0]]]
        for i in order[1:]:
            if sizes[i] < speck:
                sub_target[piece_comps == ids[i]] = BOUNDARY
            else:
                lobes.append(ids[i])
        if len(lobes) == 1:
            continue
        other_pieces = (pieces[box] != piece_id) & (pieces[box] != 0)
        touching = ndi.binary_dilation(other_pieces, structure) & inside
        near_interior = ndi.binary_dilation(other_pieces & (sub_target == INTERIOR), structure)
        costs = np.where(touching, _CONTACT_COST, 1.0)
        costs[~inside | near_interior] = -1.0  # < 0: impassable
        mcp = MCP(costs, fully_connected=connectivity == 2)
        # One pixel per component: MCP's per-start overhead is in Python.
        start, *ends = (tuple(np.argwhere(piece_comps == comp)[0]) for comp in lobes)
        cumulative, _ = mcp.find_costs([start])
        for end, comp in zip(ends, lobes[1:]):
            if not np.isfinite(cumulative[end]):
                sub_target[piece_comps == comp] = BOUNDARY
                continue
            path = np.asarray(mcp.traceback(end))
            sub_target[path[:, 0], path[:, 1]] = INTERIOR
