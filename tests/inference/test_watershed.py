"""Watershed on class probabilities: pieces, parameters, dtypes and tuning."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from skimage.segmentation import watershed

from napari_cellseg.config import ConfigError
from napari_cellseg.inference.synthetic import probabilities_from_instances
from napari_cellseg.inference.tune_watershed import (
    iter_tune_watershed,
    tune_watershed,
    write_watershed_params,
)
from napari_cellseg.inference.watershed import (
    WatershedParams,
    check_probabilities,
    elevation_from_probabilities,
    finalize_labels,
    foreground_mask,
    instances_from_probabilities,
    markers_from_probabilities,
    split_at_necks,
    split_at_peaks,
    watershed_from_markers,
)
from napari_cellseg.metrics import image_metrics
from napari_cellseg.sample_data import load_sample


def one_hot(target: np.ndarray) -> np.ndarray:
    """Certain probabilities of a 3-class target map."""
    return np.stack([target == k for k in range(3)]).astype(np.float32)


def two_touching_cells() -> np.ndarray:
    """Two 8x8 cells side by side with a 2-pixel boundary wall between their interiors."""
    target = np.zeros((12, 20), np.uint8)
    target[2:10, 2:10] = 1
    target[2:10, 10:18] = 1
    target[3:9, 3:9] = 2
    target[3:9, 11:17] = 2
    return target


@pytest.fixture(scope="module")
def histology():
    _, gt, _ = load_sample("c_histology_1")
    return gt[:96, :128], probabilities_from_instances(gt[:96, :128])


def test_touching_cells_are_separated_and_labels_consecutive():
    labels = instances_from_probabilities(one_hot(two_touching_cells()), WatershedParams(min_size=1))
    assert labels.dtype == np.uint16
    assert sorted(np.unique(labels)) == [0, 1, 2]
    assert (labels[2:10, 2:10] == labels[5, 5]).all() and (labels[2:10, 10:18] == labels[5, 14]).all()
    assert labels[5, 5] != labels[5, 14]
    assert (labels[0] == 0).all()


def test_min_size_removes_small_instances():
    target = two_touching_cells()
    target[0, 0] = 2  # a one-pixel cell
    probabilities = one_hot(target)
    params = WatershedParams(min_size=1, min_marker_size=1)
    assert instances_from_probabilities(probabilities, params).max() == 3
    assert instances_from_probabilities(probabilities, WatershedParams(min_size=2)).max() == 2


def test_foreground_without_marker_is_kept_or_dropped():
    target = two_touching_cells()
    target[:, 10] = 0  # the cells no longer touch...
    target[3:9, 11:17] = 1  # ...and the right one has no confident interior
    probabilities = one_hot(target)
    kept = instances_from_probabilities(probabilities, WatershedParams(min_size=1))
    dropped = instances_from_probabilities(probabilities, WatershedParams(keep_unmarked=False))
    assert kept.max() == 2 and (kept[2:10, 11:18] == 2).all()
    assert dropped.max() == 1 and (dropped[2:10, 11:18] == 0).all()


def test_interior_threshold_decides_merging(histology):
    gt, probabilities = histology
    low = instances_from_probabilities(probabilities, WatershedParams(interior_threshold=0.2))
    high = instances_from_probabilities(probabilities, WatershedParams(interior_threshold=0.7))
    # A low threshold joins the interiors of touching cells: fewer instances, worse AP.
    assert low.max() < high.max()
    assert image_metrics(gt, high).at("ap", 0.5) > image_metrics(gt, low).at("ap", 0.5)


def test_clean_probabilities_reproduce_the_ground_truth(histology):
    gt, _ = histology
    labels = instances_from_probabilities(probabilities_from_instances(gt, noise=0, blur=0))
    m = image_metrics(gt, labels)
    assert m.at("ap", 0.5) > 0.95 and m.dsb_score > 0.9
    assert labels.max() == len(np.unique(labels)) - 1  # consecutive


def test_elevation_formula():
    p = np.array([0.2, 0.3, 0.5], np.float32)[:, None, None] * np.ones((3, 2, 2), np.float32)
    elevation = elevation_from_probabilities(p, WatershedParams(boundary_weight=2.0))
    assert elevation.dtype == np.float32 and elevation.shape == (2, 2)
    assert np.allclose(elevation, 0.2 + 2.0 * 0.3)
    assert np.allclose(elevation_from_probabilities(p), 1 - 0.5)  # weight 1: 1 - P(interior)


def test_pieces_compose_to_the_whole_on_any_chunk(histology):
    _, probabilities = histology
    chunk = probabilities[:, 7:50, 3:70]  # odd shape, non-contiguous view
    params = WatershedParams()
    mask = foreground_mask(chunk, params)
    markers = markers_from_probabilities(chunk, params, mask=mask)
    elevation = elevation_from_probabilities(chunk, params)
    assert markers.shape == mask.shape == elevation.shape == (43, 67)
    assert not markers[~mask].any()
    labels = watershed_from_markers(elevation, markers, mask)
    expected = instances_from_probabilities(chunk, params)
    assert np.array_equal(finalize_labels(labels, params.min_size), expected)


def test_fast_watershed_matches_plain_scikit_image(histology):
    _, probabilities = histology
    params = WatershedParams(keep_unmarked=False)
    mask = foreground_mask(probabilities, params)
    markers = markers_from_probabilities(probabilities, params, mask=mask)
    elevation = elevation_from_probabilities(probabilities, params)
    fast = watershed_from_markers(elevation, markers, mask, keep_unmarked=False)
    plain = watershed(elevation, markers, mask=mask)
    assert np.mean(fast == plain) > 0.999  # ties between equal elevations may differ


def test_compactness_and_smoothing_run(histology):
    _, probabilities = histology
    for params in (WatershedParams(compactness=0.1), WatershedParams(marker_smoothing=1.0)):
        labels = instances_from_probabilities(probabilities, params)
        assert labels.max() > 10


def test_finalize_labels_uses_uint32_past_65535():
    labels = np.zeros((400, 400), np.int32)
    labels[::2, ::2] = np.arange(1, 200 * 200 + 1).reshape(200, 200) * 3  # sparse ids
    small = finalize_labels(labels)
    assert small.dtype == np.uint16 and small.max() == 40000
    labels[1::2, 1::2] = np.arange(1, 200 * 200 + 1).reshape(200, 200) * 3 + 1
    big = finalize_labels(labels)
    assert big.dtype == np.uint32 and big.max() == 80000
    assert finalize_labels(np.zeros((3, 3), np.int32)).dtype == np.uint16


def test_params_round_trip_and_validate(tmp_path):
    params = WatershedParams(interior_threshold=0.7, compactness=0.01, min_size=5)
    params.save(tmp_path / "w.json")
    assert WatershedParams.load(tmp_path / "w.json") == params
    with pytest.raises(ValueError, match="interior_threshold"):
        WatershedParams(interior_threshold=1.5)
    with pytest.raises(ValueError, match="min_size"):
        WatershedParams(min_size=-1)
    with pytest.raises(ConfigError, match="unknown key"):
        WatershedParams.from_dict({"interior": 0.5})


def test_bad_probabilities_are_named():
    with pytest.raises(ValueError, match=r"\(3, H, W\).*\(20, 20, 3\)"):
        check_probabilities(np.zeros((20, 20, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        check_probabilities(np.zeros((3, 20, 20), np.uint8))
    bad = np.zeros((3, 4, 4), np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        instances_from_probabilities(bad)


def test_tune_picks_the_best_grid_point(histology):
    gt, probabilities = histology
    grid = {"interior_threshold": (0.2, 0.7), "min_size": (8, 16)}
    reports = []
    best, table = tune_watershed([probabilities], [gt], grid, callback=reports.append)
    assert len(table) == 4 and len(reports) == 4 and reports[-1].done == 4
    assert best.interior_threshold == 0.7
    assert table[0]["dsb_score"] == max(row["dsb_score"] for row in table)
    assert table[0]["dsb_score"] > table[-1]["dsb_score"]
    assert set(table[0]) >= {"interior_threshold", "min_size", "ap_50", "aji"}
    with pytest.raises(ValueError, match="unknown watershed parameter"):
        next(iter_tune_watershed([probabilities], [gt], {"threshold": (0.5,)}))


def test_write_params_keeps_other_keys(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"loss": "weighted-ce", "watershed": {}}))
    write_watershed_params(tmp_path, WatershedParams(min_size=9))
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["loss"] == "weighted-ce"
    assert WatershedParams.from_dict(stored["watershed"]).min_size == 9
    with pytest.raises(ConfigError, match="no such model config"):
        write_watershed_params(tmp_path / "nope", WatershedParams())


def test_write_params_records_their_scores_and_drops_stale_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"metrics": {"dev_score": 0.5}}))
    write_watershed_params(tmp_path, WatershedParams(min_size=9), {"subset": "dev", "ap_50": 0.7})
    metrics = json.loads((tmp_path / "config.json").read_text())["metrics"]
    assert metrics == {"dev_score": 0.5, "watershed_tuned": {"subset": "dev", "ap_50": 0.7}}
    write_watershed_params(tmp_path, WatershedParams(min_size=16))  # no scores: the old ones are stale
    assert json.loads((tmp_path / "config.json").read_text())["metrics"] == {"dev_score": 0.5}


def test_background_only_and_markerless_maps():
    probabilities = np.zeros((3, 20, 20), np.float32)
    probabilities[0] = 1
    assert instances_from_probabilities(probabilities).max() == 0
    probabilities[0, 5:15, 5:15], probabilities[1, 5:15, 5:15] = 0, 1  # a cell of boundary only
    assert instances_from_probabilities(probabilities).max() == 1
    assert instances_from_probabilities(probabilities, WatershedParams(keep_unmarked=False)).max() == 0


def test_touching_markers_of_different_labels_are_flooded_exactly():
    # Markers from another source may touch; the outline speed-up must not change the result.
    rng = np.random.default_rng(3)
    elevation = rng.random((30, 30)).astype(np.float32)
    markers = np.zeros((30, 30), np.int32)
    markers[5:15, 5:10], markers[5:15, 10:15] = 1, 2  # touching
    markers[20:25, 20:25] = 7
    mask = np.ones((30, 30), bool)
    fast = watershed_from_markers(elevation, markers, mask)
    plain = watershed(elevation, markers, mask=mask)
    assert np.array_equal(fast, plain) and set(np.unique(fast)) == {1, 2, 7}


def _disc(shape, centre, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_split_height_parts_touching_nuclei_at_their_neck_but_not_single_cells():
    shape = (40, 70)
    # Two nuclei whose confident interiors touch along a neck, with no boundary predicted.
    pair = _disc(shape, (20, 20), 10) | _disc(shape, (20, 36), 10)
    # One elongated nucleus: a flat ridge, no neck.
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    ellipse = ((yy - 20) / 8.0) ** 2 + ((xx - 35) / 25.0) ** 2 <= 1
    for mask, expected in ((pair, 2), (ellipse, 1), (_disc(shape, (20, 30), 12), 1)):
        probabilities = one_hot(np.where(mask, 2, 0))
        merged = instances_from_probabilities(probabilities, WatershedParams(min_size=1))
        split = instances_from_probabilities(probabilities, WatershedParams(min_size=1, split_height=1.0))
        assert merged.max() == 1
        assert split.max() == expected
        assert ((split > 0) == mask).all()  # splitting moves no pixel in or out
    labels = instances_from_probabilities(
        one_hot(np.where(pair, 2, 0)), WatershedParams(min_size=1, split_height=1.0)
    )
    assert labels[20, 15] != labels[20, 41]  # each disc centre in its own cell
    with pytest.raises(ValueError, match="split_height"):
        WatershedParams(split_height=-1)


def test_split_markers_give_every_component_a_marker():
    components = np.zeros((30, 30), np.int32)
    components[2:4, 2:4] = 1  # too thin for a peak of height 3: kept whole
    components[10:28, 10:28] = 2
    markers = split_at_necks(components, height=3.0)
    assert set(np.unique(markers[components == 1])) - {0} and set(np.unique(markers[components == 2])) - {0}
    assert not (markers[components == 0]).any()


def _two_bumps() -> np.ndarray:
    """Probabilities of two touching nuclei: P(interior) peaks 0.9 and 0.8, saddle 0.65 between."""
    xx = np.arange(60)
    profile = np.interp(xx, [8, 20, 30, 40, 52], [0.5, 0.9, 0.65, 0.8, 0.5]).astype(np.float32)
    profile[(xx < 8) | (xx > 52)] = 0
    interior = np.zeros((30, 60), np.float32)
    interior[5:25] = profile
    return np.stack([1 - interior, np.zeros_like(interior), interior])


def test_peak_height_parts_nuclei_at_a_dip_of_the_interior_probability():
    probabilities = _two_bumps()  # one thresholded component at 0.5; the lower peak rises 0.15
    params = WatershedParams(interior_threshold=0.5, foreground_threshold=0.1, min_size=1)
    merged = instances_from_probabilities(probabilities, params)
    assert merged.max() == 1
    for height, expected in ((0.1, 2), (0.2, 1)):
        split = instances_from_probabilities(probabilities, replace(params, peak_height=height))
        assert split.max() == expected
        assert ((split > 0) == (merged > 0)).all()  # splitting moves no pixel in or out
    split = instances_from_probabilities(probabilities, replace(params, peak_height=0.1))
    assert split[15, 20] != split[15, 40]
    with pytest.raises(ValueError, match="peak_height"):
        WatershedParams(peak_height=-0.1)


def test_two_equal_tops_over_a_shallow_dip_are_one_nucleus():
    # P(interior) saturated at 1 on both sides of a 0.002 dip: one h-maximum, so one marker,
    # and rounding the probabilities to fp16 (AMP, the block-wise path) changes nothing.
    xx = np.arange(60)
    profile = np.where(np.abs(xx - 30) < 4, np.float32(0.998), np.float32(1.0))
    profile[(xx < 8) | (xx > 52)] = 0
    interior = np.zeros((30, 60), np.float32)
    interior[5:25] = profile
    probabilities = np.stack([1 - interior, np.zeros_like(interior), interior])
    params = WatershedParams(interior_threshold=0.5, foreground_threshold=0.1, min_size=1, peak_height=0.3)
    assert instances_from_probabilities(probabilities, params).max() == 1
    assert len(np.unique(split_at_peaks((interior > 0.5).astype(np.int32), interior, 0.3))) == 2
    two_bumps = _two_bumps()  # a dip deeper than the height still parts them
    assert instances_from_probabilities(two_bumps, replace(params, peak_height=0.1)).max() == 2


def test_split_at_peaks_keeps_peakless_components_whole():
    components = np.zeros((20, 20), np.int32)
    components[2:6, 2:6] = 4
    components[10:18, 10:18] = 9
    relief = np.zeros((20, 20), np.float32)
    relief[2:6, 2:6] = 0.05  # flat and below the height: no peak
    relief[10:18, 10:18] = 0.6
    relief[13, 13] = relief[15, 16] = 0.9  # two peaks 0.3 above their saddle
    markers = split_at_peaks(components, relief, height=0.2)
    assert (markers[components == 4] == markers[3, 3]).all() and markers[3, 3] > 0
    assert len(set(np.unique(markers[components == 9])) - {0}) == 2
    assert not markers[components == 0].any()
    with pytest.raises(ValueError, match=r"relief shape \(3, 3\)"):
        split_at_peaks(components, np.zeros((3, 3), np.float32), 0.1)


def test_tune_searches_a_list_of_grids_and_the_default_has_both_marker_kinds(histology):
    from napari_cellseg.inference.tune_watershed import DEFAULT_GRID

    gt, probabilities = histology
    grids = [{"interior_threshold": (0.5,), "split_height": (0.0, 1.0)}, {"peak_height": (0.1, 0.2)}]
    best, table = tune_watershed([probabilities], [gt], grids)
    assert len(table) == 4
    assert (best.split_height, best.peak_height) == (table[0]["split_height"], table[0]["peak_height"])
    assert all({"interior_threshold", "split_height", "peak_height"} <= set(row) for row in table)
    assert {(row["split_height"], row["peak_height"]) for row in table} == {
        (0.0, 0.0),
        (1.0, 0.0),
        (0.0, 0.1),
        (0.0, 0.2),
    }
    assert any("peak_height" in g for g in DEFAULT_GRID) and any("split_height" in g for g in DEFAULT_GRID)
    with pytest.raises(ValueError, match="non-empty list"):
        tune_watershed([probabilities], [gt], [])
