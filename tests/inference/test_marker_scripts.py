"""scripts/error_ceilings.py (expert markers), inference_variants.py (ensemble, stain), centre_branch.py, offset_branch.py."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.inference.watershed import WatershedParams, instances_from_probabilities


@pytest.fixture(scope="module")
def ceilings(load_script):
    return load_script("error_ceilings")


@pytest.fixture(scope="module")
def variants(load_script):
    return load_script("inference_variants")


@pytest.fixture(scope="module")
def centre(load_script):
    return load_script("centre_branch")


def two_touching_cells() -> np.ndarray:
    gt = np.zeros((24, 40), np.int32)
    gt[4:20, 4:20] = 1
    gt[4:20, 20:36] = 2  # shares a whole side with cell 1
    return gt


def merged_probabilities(gt: np.ndarray) -> np.ndarray:
    """A network that sees one blob: interior all over both cells, no boundary between them."""
    p = np.zeros((3, *gt.shape), np.float32)
    p[0] = gt == 0
    p[2] = gt > 0
    return p


def test_expert_cores_are_one_separate_core_per_cell(ceilings):
    gt = two_touching_cells()
    cores = ceilings.expert_cores(gt)
    assert set(np.unique(cores)) == {0, 1, 2}
    for cell in (1, 2):
        core = cores == cell
        assert core.sum() < (gt == cell).sum() / 2  # the core, not the whole cell
        assert np.all(gt[core] == cell)
    # the cores do not touch: a gap of at least the cells' half-depth between them
    assert not np.any((cores[:, :-1] == 1) & (cores[:, 1:] == 2))


def test_expert_markers_split_what_the_network_merges(ceilings):
    gt = two_touching_cells()
    probabilities = merged_probabilities(gt)
    params = WatershedParams(min_size=0)
    assert instances_from_probabilities(probabilities, params).max() == 1  # its own markers merge
    seeded = ceilings.seeded_by_expert(gt, probabilities, params)
    assert seeded.max() == 2
    for cell in (1, 2):
        _, counts = np.unique(seeded[gt == cell], return_counts=True)
        assert counts.max() / counts.sum() > 0.9  # each cell is (almost) one predicted object


def test_averaged_network_softmax_is_the_mean_of_the_members(variants):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    members = [torch.nn.Conv2d(3, 3, 1), torch.nn.Conv2d(3, 3, 3, padding=1)]
    members[1].input_multiple = 8
    ensemble = variants.averaged_network(members)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = (torch.softmax(members[0](x), 1) + torch.softmax(members[1](x), 1)) / 2
        got = torch.softmax(ensemble(x), 1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert ensemble.input_multiple == 8


def test_stain_transforms(variants):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert variants.stain_transform("none", [])(image) is image
    grey = variants.stain_transform("grey", [])(image)
    assert grey.shape == (16, 16) and grey.dtype == np.uint8
    haematoxylin = variants.stain_transform("haematoxylin", [])
    white, purple = np.full((1, 1, 3), 255, np.uint8), np.array([[[80, 40, 140]]], np.uint8)
    assert haematoxylin(white)[0, 0] == 255
    assert haematoxylin(purple)[0, 0] < 150  # a haematoxylin-stained pixel is dark
    reference = [rng.integers(100, 200, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    moved = variants.stain_transform("reinhard", reference)(image)
    assert moved.shape == image.shape and moved.dtype == np.uint8
    # the moved image's mean colour is the references', not the input's
    assert np.abs(moved.mean((0, 1)) - np.mean(reference, (0, 1, 2))).max() < 20


def test_centre_targets_peak_at_one_in_each_cell(centre):
    gt = two_touching_cells()
    target = centre.centre_targets(gt)
    assert target.dtype == np.float32
    assert np.all(target[gt == 0] == 0)
    assert target.min() >= 0 and target.max() <= 1
    for cell in (1, 2):
        assert target[gt == cell].max() == pytest.approx(1.0)
        assert target[gt == cell].min() < 0.2  # the cell's edge, the shared side included
    assert target[11, 11] > 0.8 and target[11, 19] < 0.2  # cell 1's centre; its side by cell 2


def test_centre_markers_split_what_the_network_merges(centre):
    gt = two_touching_cells()
    probabilities = merged_probabilities(gt)
    params = WatershedParams(min_size=0)
    assert instances_from_probabilities(probabilities, params).max() == 1  # P(interior) markers merge
    markers = centre.centre_markers(centre.centre_targets(gt), gt > 0, threshold=0.5, height=0.0)
    assert markers.max() == 2
    labels = centre.segment_with_centre(probabilities, centre.centre_targets(gt), params, 0.5, 0.0)
    assert labels.max() == 2
    for cell in (1, 2):
        _, counts = np.unique(labels[gt == cell], return_counts=True)
        assert counts.max() / counts.sum() > 0.9


def test_centre_branch_runs_beside_the_class_head(centre):
    torch = pytest.importorskip("torch")
    from napari_cellseg.models.m2 import M2Config
    from napari_cellseg.models.surgery import build_model

    torch.manual_seed(0)
    m2 = M2Config(arch="mobilenetv3_small_050", num_classes=0, name="tiny")
    net = build_model(m2, 2, 2, out_channels=3, decoder_channels=(8, 8, 8), pretrained=False).eval()
    branch, forward = centre.build_branch(net)
    x = torch.randn(2, 3, 37, 45)
    with torch.no_grad():
        logits, centre_logit = forward(x)
        torch.testing.assert_close(logits, net(x))  # the class head is the network's own
    assert centre_logit.shape == (2, 1, 37, 45)
    # the branch starts from a copy of the last decoder block, then learns apart from it
    first = next(branch["block"].parameters())
    torch.testing.assert_close(first, next(net.decoder.blocks[-1].parameters()))
    assert first.data_ptr() != next(net.decoder.blocks[-1].parameters()).data_ptr()


def test_audit_tile_outlines_a_merge_in_its_colour(load_script):
    audit = load_script("error_audit_tiles")
    gt = two_touching_cells()
    image = np.full((*gt.shape, 3), 200, np.uint8)
    merged = gt > 0  # one predicted object over both cells
    tile = audit.tile(image, gt, merged, audit.COLOURS["merged"])
    assert tile.shape == (audit.TILE, 2 * audit.TILE, 3)  # small images are padded to a whole tile
    plain, outlined = tile[:, : audit.TILE], tile[:, audit.TILE :]
    assert not np.any(np.all(plain == audit.COLOURS["merged"], axis=-1))
    assert np.any(np.all(outlined == audit.COLOURS["merged"], axis=-1))
    assert np.any(np.all(outlined == (0, 200, 0), axis=-1))  # the expert's outlines, the shared side too
    assert "merged" in audit.PREDICTED_KINDS and "false_negative" not in audit.PREDICTED_KINDS


def test_audit_tile_shows_the_cut_through_a_split_cell(load_script):
    from napari_cellseg.instance_errors import error_maps

    audit = load_script("error_audit_tiles")
    gt = np.zeros((40, 40), np.int32)
    gt[8:32, 8:32] = 1
    pred = np.zeros_like(gt)
    pred[8:32, 8:20], pred[8:32, 20:32] = 1, 2  # one cell cut in two halves
    pieces = audit.split_pieces(gt, pred, error_maps(gt, pred), cell=1)
    assert set(np.unique(pieces)) == {0, 1, 2}
    tile = audit.tile(np.full((40, 40, 3), 200, np.uint8), gt, pieces, audit.COLOURS["split"])
    outlined = tile[:, audit.TILE :]
    magenta = np.all(outlined == audit.COLOURS["split"], axis=-1)
    assert magenta[12:28, 18:22].any(), "the cut inside the cell must be drawn"


@pytest.fixture(scope="module")
def offsets(load_script):
    return load_script("offset_branch")


def test_offset_targets_point_to_each_cells_deepest_point(offsets):
    gt = two_touching_cells()
    target, cells = offsets.offset_targets(gt)
    assert target.shape == (2, *gt.shape) and target.dtype == np.float32
    assert np.array_equal(cells, gt > 0)
    assert np.all(target[:, gt == 0] == 0)
    rows, cols = np.indices(gt.shape)
    unit = offsets.OFFSET_UNIT
    for cell in (1, 2):
        inside = gt == cell
        centre_y = rows[inside] + target[0][inside] * unit
        centre_x = cols[inside] + target[1][inside] * unit
        # every pixel of a cell points to one place, inside that cell and near its middle
        assert np.ptp(centre_y) < 1e-4 and np.ptp(centre_x) < 1e-4
        cy, cx = round(centre_y[0]), round(centre_x[0])
        assert gt[cy, cx] == cell
        assert abs(cy - 11.5) <= 1 and abs(cx - (11.5 if cell == 1 else 27.5)) <= 1
    # at the contact the offsets point apart: left into cell 1, right into cell 2
    assert target[1][11, 19] < 0 < target[1][11, 20]


def test_vote_markers_split_what_the_network_merges(offsets):
    gt = two_touching_cells()
    probabilities = merged_probabilities(gt)
    params = WatershedParams(min_size=0)
    assert instances_from_probabilities(probabilities, params).max() == 1  # P(interior) markers merge
    target, cells = offsets.offset_targets(gt)
    markers = offsets.vote_markers(target * offsets.OFFSET_UNIT, cells, 16, min_votes=0.2, near=1.0)
    assert np.array_equal(markers > 0, cells)
    for cell in (1, 2):  # one marker per cell, covering it
        assert len(np.unique(markers[gt == cell])) == 1
    assert markers[gt == 1][0] != markers[gt == 2][0]
    # following the offsets (many small steps) ends each cell's pixels at its centre too
    flowed = offsets.vote_markers(target * offsets.OFFSET_UNIT, cells, 16, 0.2, 0.25, iterations=40, step=0.3)
    assert len(np.unique(flowed[gt == 1])) == 1 and len(np.unique(flowed[gt == 2])) == 1
    assert flowed[gt == 1][0] != flowed[gt == 2][0] and flowed[gt == 1][0] > 0
    # votes below the threshold make no centre; no cells, no markers
    assert offsets.vote_markers(target * offsets.OFFSET_UNIT, cells, 16, min_votes=5.0, near=1.0).max() == 0
    assert offsets.vote_markers(target, np.zeros_like(cells), 16, 0.2, 1.0).max() == 0


def test_offset_branch_has_two_channels(offsets):
    torch = pytest.importorskip("torch")
    from napari_cellseg.models.m2 import M2Config
    from napari_cellseg.models.surgery import build_model

    torch.manual_seed(0)
    m2 = M2Config(arch="mobilenetv3_small_050", num_classes=0, name="tiny")
    net = build_model(m2, 2, 2, out_channels=3, decoder_channels=(8, 8, 8), pretrained=False).eval()
    _branch, forward = offsets.build_branch(net, out_channels=2)
    with torch.no_grad():
        logits, predicted = forward(torch.randn(1, 3, 37, 45))
    assert logits.shape == (1, 3, 37, 45) and predicted.shape == (1, 2, 37, 45)
