"""Instance labels <-> 3-class targets: the rule, its properties and the repairs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi
from skimage.measure import label as label_regions

from napari_cellseg.classes import BACKGROUND, BOUNDARY, INTERIOR
from napari_cellseg.data.targets import (
    instances_to_targets,
    targets_to_binary,
    targets_to_instances,
)
from napari_cellseg.sample_data import list_samples, load_sample

STRUCTURES = {c: ndi.generate_binary_structure(2, c) for c in (1, 2)}


# --- label images for the property tests --------------------------------------


@st.composite
def painted_labels(draw) -> np.ndarray:
    """Rectangles and disks painted in turn (later wins): touching, thin, cut in pieces."""
    h, w = draw(st.integers(6, 28)), draw(st.integers(6, 28))
    labels = np.zeros((h, w), np.uint16)
    yy, xx = np.mgrid[:h, :w]
    for value in range(1, draw(st.integers(1, 9)) + 1):
        y, x = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        if draw(st.booleans()):
            labels[y : y + draw(st.integers(1, 10)), x : x + draw(st.integers(1, 10))] = value
        else:
            r = draw(st.floats(0.5, 6.0))
            labels[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = value
    return labels


# Random small labels on a small grid: every pathology at once.
noisy_labels = arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 4))
any_labels = st.one_of(painted_labels(), noisy_labels)
PROPERTY_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pieces(labels: np.ndarray, connectivity: int) -> np.ndarray:
    return label_regions(labels, background=0, connectivity=connectivity)


def _interior_components(target: np.ndarray, connectivity: int) -> np.ndarray:
    return ndi.label(target == INTERIOR, structure=STRUCTURES[connectivity])[0]


def _assert_one_interior_per_piece(
    labels: np.ndarray, target: np.ndarray, connectivity: int, lost: tuple[int, ...] = ()
) -> None:
    """Interior components (at ``connectivity``) <-> pieces (components of one label), one to one.

    Precisely: each interior component lies in exactly one piece, and each piece
    holds exactly one interior component, except pieces of ``lost`` labels,
    which may hold none.
    """
    pieces = _pieces(labels, connectivity)
    comps = _interior_components(target, connectivity)
    pairs = np.unique(np.stack([comps[comps > 0], pieces[comps > 0]]), axis=1)
    comp_ids, piece_of_comp = pairs
    assert np.array_equal(comp_ids, np.arange(1, comps.max() + 1)), "each component in one piece"
    per_piece = np.bincount(piece_of_comp, minlength=pieces.max() + 1)[1:]
    assert np.all(per_piece <= 1), "no piece holds two interior components"
    for piece in np.flatnonzero(per_piece == 0) + 1:
        assert labels[pieces == piece][0] in lost, f"piece {piece} lost its interior unreported"


def _contact_pairs(labels: np.ndarray, connectivity: int):
    """Pixel pairs (a, b) that are neighbours at ``connectivity`` with two different instances."""
    offsets = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if connectivity == 2 else [])
    h, w = labels.shape
    for dy, dx in offsets:
        a = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
        b = (slice(dy, h), slice(max(0, dx), w - max(0, -dx)))
        contact = (labels[a] != labels[b]) & (labels[a] != 0) & (labels[b] != 0)
        yield a, b, contact


# --- properties ---------------------------------------------------------------


@PROPERTY_SETTINGS
@given(labels=any_labels, connectivity=st.sampled_from([1, 2]), thickness=st.integers(1, 3))
def test_interior_components_match_pieces_one_to_one(labels, connectivity, thickness):
    target, report = instances_to_targets(labels, thickness, connectivity, return_report=True)
    assert target.dtype == np.uint8 and target.shape == labels.shape
    assert np.array_equal(target == BACKGROUND, labels == 0), "foreground is exactly the labels"
    _assert_one_interior_per_piece(labels, target, connectivity, report.lost_labels)
    # Only a thin piece can be lost, and only when it touches another instance.
    assert set(report.lost_labels) <= set(report.thin_labels)


@PROPERTY_SETTINGS
@given(labels=any_labels, connectivity=st.sampled_from([1, 2]), thickness=st.integers(1, 3))
def test_instances_touching_no_other_are_never_lost(labels, connectivity, thickness):
    apart = labels.copy()
    for a, _, contact in _contact_pairs(labels, connectivity):
        apart[a][contact] = 0  # clear one side of every contact
    assert not any(c.any() for _, _, c in _contact_pairs(apart, connectivity))
    target, report = instances_to_targets(apart, thickness, connectivity, return_report=True)
    assert report.lost_labels == ()
    _assert_one_interior_per_piece(apart, target, connectivity)


@PROPERTY_SETTINGS
@given(labels=any_labels, connectivity=st.sampled_from([1, 2]), thickness=st.integers(1, 3))
def test_boundary_covers_every_contact_between_instances(labels, connectivity, thickness):
    plain = instances_to_targets(labels, thickness, connectivity, repair=False)
    repaired = instances_to_targets(labels, thickness, connectivity)
    for a, b, contact in _contact_pairs(labels, connectivity):
        assert np.all(plain[a][contact] == BOUNDARY) and np.all(plain[b][contact] == BOUNDARY)
        # A repaired pixel may sit at a contact, but never facing another interior.
        assert np.all((repaired[a][contact] == BOUNDARY) | (repaired[b][contact] == BOUNDARY))


@PROPERTY_SETTINGS
@given(labels=any_labels, connectivity=st.sampled_from([1, 2]), thickness=st.integers(1, 3))
def test_report_names_multi_piece_thin_and_necked_labels(labels, connectivity, thickness):
    plain, report = instances_to_targets(labels, thickness, connectivity, repair=False, return_report=True)
    pieces = _pieces(labels, connectivity)
    comps = _interior_components(plain, connectivity)
    multi, thin, necked = set(), set(), set()  # computed here independently
    for piece in range(1, pieces.max() + 1):
        inside = pieces == piece
        value = int(labels[inside][0])
        if np.unique(pieces[labels == value]).size > 1:
            multi.add(value)
        n_interior = np.unique(comps[inside & (comps > 0)]).size
        (thin if n_interior == 0 else necked if n_interior > 1 else set()).add(value)
    assert report.n_pieces == pieces.max()
    assert report.n_instances == np.unique(labels[labels > 0]).size
    assert set(report.multi_piece_labels) == multi
    assert set(report.thin_labels) == thin
    assert set(report.necked_labels) == necked
    assert set(report.lost_labels) == thin, "without repair every thin piece is lost"
    assert not report.repaired


@PROPERTY_SETTINGS
@given(labels=any_labels, connectivity=st.sampled_from([1, 2]))
def test_targets_to_instances_recovers_one_instance_per_piece(labels, connectivity):
    target = instances_to_targets(labels, 1, connectivity)
    target, report = instances_to_targets(labels, 1, connectivity, return_report=True)
    instances = targets_to_instances(target, connectivity)
    pieces = _pieces(labels, connectivity)
    comps = _interior_components(target, connectivity)
    assert instances.dtype == np.uint16
    if not report.lost_labels:  # a lost piece may form a foreground component without interior
        assert np.array_equal(instances > 0, labels > 0), "every foreground pixel is assigned"
        assert instances.max() == pieces.max()
    assert instances.max() == comps.max()
    # Each output instance holds exactly one piece's interior, untouched.
    for comp in range(1, comps.max() + 1):
        assert np.unique(instances[comps == comp]).size == 1


# --- the rule on small examples -------------------------------------------------


def test_touching_cells_get_a_boundary_on_both_sides_and_thin_ones_a_seed():
    labels = np.zeros((5, 7), np.uint16)
    labels[:, :4], labels[:, 4:6] = 1, 2
    target, report = instances_to_targets(labels, return_report=True)
    assert target[2].tolist() == [2, 2, 2, 1, 1, 2, 0]  # the seed avoids the contact
    assert target[:, 3].tolist() == [1] * 5  # cell 1's rim facing cell 2
    assert report.thin_labels == (2,) and report.repaired
    plain = instances_to_targets(labels, repair=False)
    assert not np.any(plain[:, 4:6] == INTERIOR), "without repair the thin cell has no interior"


@pytest.mark.parametrize("connectivity", [1, 2])
@pytest.mark.parametrize("thickness", [1, 2, 3])
def test_boundary_thickness_is_measured_inwards(thickness, connectivity):
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 5:15] = 7
    target = instances_to_targets(labels, thickness, connectivity)
    inner = 10 - 2 * thickness
    assert np.count_nonzero(target == INTERIOR) == inner * inner
    assert np.all(target[5 + thickness : 15 - thickness, 5 + thickness : 15 - thickness] == INTERIOR)
    assert np.all(target[5:15, 5 : 5 + thickness] == BOUNDARY)


def test_connectivity_decides_whether_diagonal_contacts_are_boundary():
    labels = np.ones((10, 10), np.uint8)
    labels[5:, 5:] = 2  # (4, 4) meets label 2 only diagonally, at (5, 5)
    eight = instances_to_targets(labels, connectivity=2)
    four = instances_to_targets(labels, connectivity=1)
    assert eight[4, 4] == BOUNDARY and eight[5, 5] == BOUNDARY
    assert four[4, 4] == INTERIOR and four[5, 5] == BOUNDARY  # (5, 5) has (4, 5) above


def test_image_border_is_not_a_boundary():
    labels = np.ones((6, 8), np.uint16)
    assert np.all(instances_to_targets(labels) == INTERIOR)


def test_one_pixel_instances_are_kept_or_reported():
    labels = np.zeros((7, 7), np.int32)
    labels[1, 1], labels[1, 2], labels[5, 5] = 3, 4, 9
    target, report = instances_to_targets(labels, return_report=True)
    assert target[1, 1] == INTERIOR and target[5, 5] == INTERIOR
    # 4 touches 3's seed: a seed of its own would merge the two interiors.
    assert target[1, 2] == BOUNDARY and report.lost_labels == (4,)
    assert report.thin_labels == (3, 4, 9) and report.n_instances == 3


def test_thin_seed_avoids_pixels_touching_other_instances():
    labels = np.zeros((8, 10), np.uint16)
    labels[2:6, 0:5] = 1
    labels[2:4, 5:10] = 2  # 2 px wide: no interior of its own; touches 1 at column 5
    target = instances_to_targets(labels)
    seed = np.argwhere((labels == 2) & (target == INTERIOR))
    assert seed.shape == (1, 2) and seed[0, 1] > 6


def test_necked_lobes_are_bridged_and_rim_specks_dropped():
    labels = np.zeros((12, 26), np.uint16)
    labels[2:9, 1:8] = 1
    labels[2:9, 13:20] = 1
    labels[5, 8:13] = 1  # a 1-px neck between two 7x7 lobes
    labels[4:7, 21:24] = 1  # a 3x3 speck on a 1-px spur
    labels[5, 20] = 1
    plain, report = instances_to_targets(labels, repair=False, return_report=True)
    assert report.necked_labels == (1,)
    assert ndi.label(plain == INTERIOR, structure=STRUCTURES[2])[1] == 3
    target = instances_to_targets(labels)
    assert ndi.label(target == INTERIOR, structure=STRUCTURES[2])[1] == 1
    assert np.all(target[5, 8:13] == INTERIOR), "the neck carries the bridge"
    assert target[5, 22] == BOUNDARY, "the speck's interior became boundary"


def test_pieces_of_one_label_each_keep_an_interior():
    labels = np.zeros((10, 20), np.uint16)
    labels[1:8, 1:8] = 5
    labels[1:8, 12:19] = 5
    target, report = instances_to_targets(labels, return_report=True)
    assert report.multi_piece_labels == (5,) and report.n_pieces == 2 and report.n_instances == 1
    assert ndi.label(target == INTERIOR)[1] == 2


def test_large_and_sparse_label_values():
    labels = np.zeros((6, 12), np.uint32)
    labels[:, :6], labels[:, 6:] = 4_000_000_000, 17
    target, report = instances_to_targets(labels, return_report=True)
    assert report.n_instances == 2 and set(np.unique(target)) == {BOUNDARY, INTERIOR}


def test_bool_masks_are_one_instance():
    mask = np.zeros((8, 8), bool)
    mask[2:7, 2:7] = True
    assert np.count_nonzero(instances_to_targets(mask) == INTERIOR) == 9


@pytest.mark.parametrize("key", sorted(list_samples()))
def test_sample_masks(key):
    _, labels, _ = load_sample(key)
    for connectivity in (1, 2):
        target = instances_to_targets(labels, 1, connectivity)
        _assert_one_interior_per_piece(labels, target, connectivity)  # nothing lost


# --- inverse and binary helpers -------------------------------------------------


def test_targets_to_instances_grows_interiors_over_their_boundary():
    labels = np.zeros((10, 16), np.uint16)
    labels[1:9, 1:8], labels[1:9, 8:15] = 4, 9
    instances = targets_to_instances(instances_to_targets(labels))
    assert instances.dtype == np.uint16
    assert np.array_equal(instances[labels == 4], np.full(56, instances[4, 3]))
    assert np.array_equal(instances[labels == 9], np.full(56, instances[4, 12]))
    assert set(np.unique(instances)) == {0, 1, 2}


def test_targets_to_instances_orphans():
    target = np.zeros((6, 10), np.uint8)
    target[1:5, 1:5] = BOUNDARY
    target[2:4, 2:4] = INTERIOR
    target[1:3, 7:9] = BOUNDARY  # boundary without interior
    assert targets_to_instances(target).max() == 1
    kept = targets_to_instances(target, keep_orphans=True)
    assert kept.max() == 2 and np.all(kept[1:3, 7:9] == 2)


def test_targets_to_instances_uses_uint32_beyond_65535():
    target = np.zeros((600, 600), np.uint8)
    target[::2, ::2] = INTERIOR  # 90 000 separate one-pixel instances
    instances = targets_to_instances(target)
    assert instances.dtype == np.uint32 and instances.max() == 90_000


def test_targets_to_binary():
    target = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    foreground, boundary = targets_to_binary(target)
    assert foreground.tolist() == [[False, True, True], [True, True, False]]
    assert boundary.tolist() == [[False, True, False], [False, True, False]]


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        (np.zeros((2, 3, 4), np.uint16), {}, r"2D \(H, W\).*\(2, 3, 4\)"),
        (np.zeros((4, 4), np.float32), {}, "integer.*float32"),
        (np.full((4, 4), -1, np.int32), {}, ">= 0"),
        (np.zeros((4, 4), np.uint8), {"thickness": 0}, "thickness"),
        (np.zeros((4, 4), np.uint8), {"connectivity": 3}, "connectivity"),
    ],
)
def test_bad_labels_are_refused_clearly(labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        instances_to_targets(labels, **kwargs)


def test_bad_targets_are_refused_clearly():
    with pytest.raises(ValueError, match=r"\(3, 4, 5\)"):
        targets_to_instances(np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="float64"):
        targets_to_binary(np.zeros((3, 3)))


@pytest.mark.parametrize(
    ("target", "found"),
    [
        (np.where(np.eye(8, dtype=bool), 255, 0).astype(np.uint8), "0..255"),  # a 0/255 mask: 0 cells before
        (np.full((8, 8), 3, np.uint8), "3..3"),
        (np.full((8, 8), -1, np.int8), "-1..-1"),
    ],
)
def test_class_values_other_than_0_1_2_are_refused(target, found):
    from napari_cellseg.data.targets import targets_to_binary, targets_to_instances

    with pytest.raises(ValueError, match=f"target values must be 0 .* found {found}"):
        targets_to_instances(target)
    with pytest.raises(ValueError, match=f"target values must be 0 .* found {found}"):
        targets_to_binary(target)


def test_contact_pixels_of_an_empty_image_and_a_fractional_radius():
    from napari_cellseg.data.targets import contact_pixels

    # An empty image was numpy's "zero-size array to reduction operation maximum".
    assert contact_pixels(np.zeros((0, 32), np.uint16)).shape == (0, 32)
    with pytest.raises(TypeError, match=r"radius must be an integer, got 1\.9"):
        contact_pixels(np.zeros((8, 8), np.uint16), 1.9)
