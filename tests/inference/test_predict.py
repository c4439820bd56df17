"""Tiled prediction: tiles and blending, seams through real nuclei, layouts, scale, devices."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from tiny_models import fitted_model

from napari_cellseg.inference.images import describe_layout
from napari_cellseg.inference.predict import (
    PredictProgress,
    iter_predict_probabilities,
    predict_probabilities,
    segment_image,
)
from napari_cellseg.inference.scale import median_diameter, scale_factor
from napari_cellseg.inference.tiling import blend_window, cosine_ramp, tile_grid, tile_starts
from napari_cellseg.instance_matching import label_overlap, match_instances
from napari_cellseg.sample_data import load_sample

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_and_config():
    torch.set_num_threads(1)
    return fitted_model()


@pytest.fixture(scope="module")
def histology():
    image, labels, _ = load_sample("c_histology_1")
    return image, labels


def matched(a: np.ndarray, b: np.ndarray, iou: float) -> int:
    return match_instances(label_overlap(a, b), iou).n_matched


# --- tiles and blending --------------------------------------------------------


@pytest.mark.parametrize("length", [1, 7, 64, 100, 257, 1000])
@pytest.mark.parametrize("align", [1, 4, 32])
def test_tile_starts_cover_the_axis_with_the_overlap(length, align):
    tile, starts = tile_starts(length, 64, 16, align)
    assert starts[0] == 0 and starts[-1] + tile == length
    assert tile < 64 + align or tile == length
    assert all(s % align == 0 for s in starts)
    gaps = np.diff(starts)
    assert np.all(gaps <= tile - 16), (tile, starts)


def test_tiles_are_no_bigger_than_covering_needs():
    # 1024 px in tiles of at most 512 overlapping by 64: 3 tiles of 384, not 3 of 512.
    assert tile_starts(1024, 512, 64, align=16) == (384, [0, 320, 640])
    assert tile_starts(300, 512, 64) == (300, [0])


def test_tile_grid_tiles_share_one_shape_and_cover_the_image():
    tiles = tile_grid((300, 500), 128, 32, align=4)
    covered = np.zeros((300, 500), int)
    for tile in tiles:
        covered[tile.slices] += 1
        assert (tile.height, tile.width) == (tiles[0].height, tiles[0].width)
    assert covered.min() >= 1
    assert len(tiles) > 4


def test_blend_windows_form_a_partition_of_unity_where_tiles_overlap_exactly():
    ramp = cosine_ramp(64)
    np.testing.assert_allclose(ramp + ramp[::-1], 1.0, atol=1e-5)
    tiles = tile_grid((64, 160), (64, 96), 32)  # two tiles overlapping by exactly 32 px
    assert [t.x0 for t in tiles] == [0, 64]
    total = np.zeros((64, 160), np.float32)
    for tile in tiles:
        total[tile.slices] += blend_window(tile, 32)
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_blend_window_keeps_full_weight_on_the_image_edge():
    tile = tile_grid((100, 100), 100, 32)[0]
    assert np.all(blend_window(tile, 32) == 1.0)


def test_tile_starts_refuses_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, 32, 32)
    with pytest.raises(ValueError, match="length"):
        tile_starts(0, 32, 8)


# --- seams through real nuclei ---------------------------------------------------


def test_tiled_prediction_matches_whole_image_on_a_real_image(model_and_config, histology):
    model, config = model_and_config
    image, _ = histology
    whole = segment_image(model, config, image, tile_size=1024)
    tiled = segment_image(model, config, image, tile_size=128, overlap=64)
    # The seams of the tile grid really do cut through many nuclei.
    tiles = tile_grid(image.shape[:2], 128, 64, align=model.input_multiple)
    edges = {t.x0 for t in tiles} | {t.x0 + t.width for t in tiles}
    edges -= {0, image.shape[1]}
    crossing = set()
    for edge in edges:
        crossing |= set(np.unique(whole.labels[:, edge - 1])) & set(np.unique(whole.labels[:, edge]))
    assert len(crossing - {0}) >= 10
    assert whole.n_instances >= 30  # a content-dependent model finds the nuclei
    assert tiled.n_instances == whole.n_instances
    assert matched(whole.labels, tiled.labels, 0.9) == whole.n_instances
    np.testing.assert_allclose(tiled.probabilities, whole.probabilities, atol=2e-3)


def test_probabilities_are_class_maps_that_follow_the_nuclei(model_and_config, histology):
    model, config = model_and_config
    image, labels = histology
    probabilities = predict_probabilities(model, config, image, tile_size=128, overlap=64)
    assert probabilities.shape == (3, *image.shape[:2]) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
    foreground = 1 - probabilities[0]
    assert foreground[labels > 0].mean() > foreground[labels == 0].mean() + 0.2


def test_percentiles_come_from_the_whole_plane_once(model_and_config, histology, monkeypatch):
    import napari_cellseg.data.normalize as normalize

    model, config = model_and_config
    calls = []
    original = normalize.compute_percentiles

    def counting(image, cfg=None):
        calls.append(np.asarray(image).shape)
        return original(image, cfg)

    monkeypatch.setattr(normalize, "compute_percentiles", counting)
    predict_probabilities(model, config, histology[0], tile_size=128, overlap=32)
    assert calls == [histology[0].shape]


def test_batch_size_does_not_change_the_result(model_and_config, histology):
    model, config = model_and_config
    crop = histology[0][:128, :160]
    one = predict_probabilities(model, config, crop, tile_size=64, overlap=32, batch_size=1)
    many = predict_probabilities(model, config, crop, tile_size=64, overlap=32, batch_size=5)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_dask_and_zarr_inputs_give_the_numpy_result(model_and_config, histology):
    import dask.array as da
    import zarr

    model, config = model_and_config
    crop = np.ascontiguousarray(histology[0][:96, :128])
    expected = predict_probabilities(model, config, crop, tile_size=64, overlap=32)
    lazy = da.from_array(crop, chunks=(32, 32, 3))
    stored = zarr.create_array(store={}, shape=crop.shape, dtype=crop.dtype, chunks=(32, 32, 3))
    stored[...] = crop
    for array in (lazy, stored):
        got = predict_probabilities(model, config, array, tile_size=64, overlap=32)
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_generator_reports_tile_progress_and_returns_the_probabilities(model_and_config, histology):
    model, config = model_and_config
    crop = histology[0][:128, :128]
    gen = iter_predict_probabilities(model, config, crop, tile_size=64, overlap=32, batch_size=2)
    reports = []
    while True:
        try:
            reports.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    tiles = [r for r in reports if r.stage == "predict"]
    assert all(isinstance(r, PredictProgress) for r in reports)
    assert [r.done for r in tiles] == sorted(r.done for r in tiles)
    assert tiles[-1].done == tiles[-1].total == 9 and tiles[-1].fraction == 1.0
    assert result.shape == (3, 128, 128)


# --- layouts: grey, RGB, channels, stacks, scale ------------------------------------


def test_layout_rules():
    assert describe_layout(np.zeros((10, 12))).plane_shape == (10, 12)
    rgb = describe_layout(np.zeros((10, 12, 3), np.uint8))
    assert rgb.rgb and rgb.labels_shape == (10, 12)
    assert describe_layout(np.zeros((10, 12, 4))).rgb
    picked = describe_layout(np.zeros((10, 12, 2)), channel=1)
    assert picked.channel == 1 and not picked.rgb
    channel_first = describe_layout(np.zeros((5, 10, 12)), channel=2)
    assert channel_first.channel_axis == 0 and channel_first.labels_shape == (10, 12)
    stack = describe_layout(np.zeros((5, 10, 12, 3)))
    assert stack.stack and stack.n_planes == 5 and stack.labels_shape == (5, 10, 12)


def test_a_small_last_axis_holds_channels_and_channels_first_rgb_gets_a_note():
    from napari_cellseg.inference.images import stack_note

    with pytest.raises(ValueError, match="5 channels on axis 2"):
        describe_layout(np.zeros((64, 80, 5), np.uint8))
    picked = describe_layout(np.zeros((64, 80, 5), np.uint8), channel=1)
    assert picked.channel_axis == 2 and picked.labels_shape == (64, 80)
    planes = describe_layout(np.zeros((5, 64, 80), np.uint8))  # a stack stays a stack
    assert planes.stack and planes.labels_shape == (5, 64, 80) and stack_note(planes) is None
    rgb_first = describe_layout(np.zeros((3, 64, 80), np.uint8))
    assert rgb_first.stack and "(3, 64, 80)" in stack_note(rgb_first)
    assert stack_note(describe_layout(np.zeros((64, 80, 3), np.uint8))) is None


@pytest.mark.parametrize(
    ("shape", "dtype", "kwargs", "message"),
    [
        ((10, 12, 2), np.uint8, {}, "choose one with channel"),
        ((0, 12), np.uint8, {}, "empty"),
        ((10,), np.uint8, {}, "2D image"),
        ((2, 3, 10, 12, 3), np.uint8, {}, "stack"),
        ((10, 12), bool, {}, "dtype"),
        ((10, 12, 3), np.uint8, {"channel": 3}, "channel 3 does not exist"),
    ],
)
def test_bad_images_get_clear_errors(shape, dtype, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        describe_layout(np.zeros(shape, dtype), **kwargs)
    assert str(tuple(shape)) in str(info.value)


def test_grey_multichannel_and_stacks_segment_plane_by_plane(model_and_config, histology):
    model, config = model_and_config
    rgb = histology[0][:96, :96]
    grey = rgb.mean(axis=-1).astype(np.uint8)
    two_channels = np.stack([np.zeros_like(grey), grey], axis=-1)
    single = segment_image(model, config, grey, tile_size=128)
    picked = segment_image(model, config, two_channels, channel=1, tile_size=128)
    np.testing.assert_array_equal(picked.labels, single.labels)
    stack = np.stack([grey, grey[::-1]])
    result = segment_image(model, config, stack, tile_size=128, scale=(2.0, 0.5, 0.5), translate=(0, 10, 20))
    assert result.labels.shape == (2, 96, 96)
    assert result.probabilities.shape == (3, 2, 96, 96)
    np.testing.assert_array_equal(result.labels[0], single.labels)
    ids0, ids1 = set(np.unique(result.labels[0])) - {0}, set(np.unique(result.labels[1])) - {0}
    assert ids0 and ids1 and not ids0 & ids1  # ids are unique across planes
    assert result.n_instances == len(ids0) + len(ids1)
    assert result.scale == (2.0, 0.5, 0.5) and result.translate == (0.0, 10.0, 20.0)
    attributes = result.layer_attributes()
    assert attributes["scale"] == (2.0, 0.5, 0.5)


def test_scale_of_an_rgb_image_drops_the_channel_axis(model_and_config, histology):
    model, config = model_and_config
    crop = histology[0][:64, :64]
    result = segment_image(model, config, crop, scale=(0.25, 0.25, 1.0), keep_probabilities=False)
    assert result.scale == (0.25, 0.25) and result.probabilities is None


# --- object scale -----------------------------------------------------------------


def test_scale_factor_rules():
    assert scale_factor(20.0, 40.0) == 0.5
    assert scale_factor(None, 40.0) == 1.0 and scale_factor(20.0, None) == 1.0
    with pytest.raises(ValueError, match="> 0"):
        scale_factor(20.0, 0.0)
    with pytest.raises(ValueError, match="in pixels"):
        scale_factor(20.0, 1000.0)


def test_nuclei_at_another_magnification_are_rescaled_to_the_model(model_and_config, histology):
    import cv2

    model, config = model_and_config
    image = histology[0]
    reference = segment_image(model, config, image, tile_size=512)
    zoomed = cv2.resize(image, (image.shape[1] * 2, image.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    result = segment_image(model, config, zoomed, diameter=2 * config.object_diameter, tile_size=512)
    assert result.scale_factor == pytest.approx(0.5)
    assert result.labels.shape == zoomed.shape[:2]  # labels come back at the image's size
    shrunk = result.labels[::2, ::2]
    assert matched(reference.labels, shrunk, 0.5) >= 0.8 * reference.n_instances
    # Automatic estimate: a first pass measures nuclei about twice the model's size.
    estimated = segment_image(model, config, zoomed, diameter=0, tile_size=512)
    assert estimated.diameter == pytest.approx(2 * median_diameter(reference.labels), rel=0.3)
    assert 0.35 < estimated.scale_factor < 0.7
    # A model trained with size normalisation estimates by default (default_diameter 0).
    normalised = dataclasses.replace(config, default_diameter=0.0)
    by_default = segment_image(model, normalised, zoomed, tile_size=512)
    assert by_default.scale_factor == pytest.approx(estimated.scale_factor)
    assert by_default.diameter == pytest.approx(estimated.diameter)
    assert np.array_equal(by_default.labels, estimated.labels)
    given = segment_image(model, normalised, zoomed, diameter=2 * config.object_diameter, tile_size=512)
    assert given.scale_factor == pytest.approx(0.5)  # a given diameter still wins
    plain = predict_probabilities(model, normalised, zoomed, tile_size=512)
    assert np.allclose(plain, predict_probabilities(model, config, zoomed, diameter=0, tile_size=512))


def test_the_size_estimate_looks_further_only_when_the_centre_holds_few_nuclei(
    model_and_config, histology, monkeypatch
):
    import napari_cellseg.inference.segment as segment
    from napari_cellseg.inference.segment import ESTIMATE_CROPS, ESTIMATE_MIN_NUCLEI, iter_segment_image

    monkeypatch.setattr(segment, "ESTIMATE_REFINE_PASSES", 0)  # the first pass's crops only
    model, config = model_and_config
    image = histology[0]
    reps = (-(-1100 // image.shape[0]), -(-1100 // image.shape[1]), 1)
    mosaic = np.tile(image, reps)[:1100, :1100].copy()  # larger than the first crop, nuclei everywhere

    def diameter_passes(picture) -> tuple[int, float]:
        gen = iter_segment_image(model, config, picture, diameter=0, tile_size=512, keep_probabilities=False)
        passes, last = 0, (0, 0)  # a pass starts when the count restarts or its total changes
        while True:
            try:
                report = next(gen)
            except StopIteration as stop:
                return passes, stop.value.diameter
            if report.stage == "diameter":
                passes += report.done <= last[0] or report.total != last[1]
                last = (report.done, report.total)

    assert ESTIMATE_CROPS[0] < 1100 and ESTIMATE_MIN_NUCLEI > 3
    coarse = 1  # the image shrunk by 2, one crop; the own scale is surer here, so no further pass
    passes, dense = diameter_passes(mosaic)
    assert passes == 1 + coarse and dense == pytest.approx(median_diameter(histology[1]), rel=0.3)
    background = np.median(image.reshape(-1, image.shape[-1]), axis=0).astype(image.dtype)
    hollow = mosaic.copy()
    hollow[250:850, 250:850] = background  # nothing in the first crop
    passes, sparse = diameter_passes(hollow)
    assert passes == 2 + coarse and sparse == pytest.approx(dense, rel=0.2)


def _biased_measure(true_diameter: float, model_diameter: float, calls: list):
    """A stand-in for one estimate pass whose network pulls sizes towards its own, as real ones do:
    nuclei of ``s`` network px are measured as ``model + 0.5 (s - model)``."""

    def measure(runner, config, plane, percentiles, params, factor, tile_size, overlap, **_):
        calls.append(factor)
        yield from ()
        seen = true_diameter * factor
        certainty = 0.9 if factor == 1.0 else 0.8  # nuclei near the model's size: surest unshrunk
        return (model_diameter + 0.5 * (seen - model_diameter)) / factor, certainty

    return measure


def _fragmenting_measure(true_diameter: float, model_diameter: float, calls: list):
    """A pass as the real network makes it on nuclei far larger than its own: cut into
    fragments of about its size, with unsure interiors; whole and sure once shrunk near it."""

    def measure(runner, config, plane, percentiles, params, factor, tile_size, overlap, **_):
        calls.append(factor)
        yield from ()
        seen = true_diameter * factor
        if seen > 2.5 * model_diameter:  # the larger, the more fragments, the less sure
            return model_diameter / factor, 0.75 - 0.05 * np.log(seen / model_diameter)
        return seen / factor, 0.9 - 0.1 * abs(np.log(seen / model_diameter))

    return measure


@pytest.mark.parametrize("true_diameter", [40.0, 10.0])
def test_the_size_estimate_measures_again_at_the_scale_it_found(monkeypatch, true_diameter):
    import napari_cellseg.inference.segment as segment
    from napari_cellseg.generators import run_to_end

    model_diameter = 20.0
    config = SimpleNamespace(object_diameter=model_diameter, normalization=None, watershed={})
    monkeypatch.setattr(segment, "plane_percentiles", lambda plane, normalization: None)
    image = np.zeros((64, 64), np.uint8)
    layout = describe_layout(image, None, None)

    def estimate(passes: int) -> tuple[float, list]:
        calls: list = []
        monkeypatch.setattr(
            segment, "_measure_diameter", _biased_measure(true_diameter, model_diameter, calls)
        )
        monkeypatch.setattr(segment, "ESTIMATE_REFINE_PASSES", passes)
        return run_to_end(segment.iter_estimate_diameter(None, config, image, layout)), calls

    refine_passes = segment.ESTIMATE_REFINE_PASSES
    first_passes = [1.0, 0.5]  # the own scale is surest: no pass shrunk further
    first, calls = estimate(0)
    assert calls == first_passes and abs(first - true_diameter) > 0.25 * abs(true_diameter - model_diameter)
    refined, calls = estimate(refine_passes)
    refine_calls = calls[len(first_passes) :]
    assert refine_calls[0] == pytest.approx(model_diameter / first)  # resampled by the estimate
    assert refine_passes >= 1 and len(refine_calls) == refine_passes
    assert abs(refined - true_diameter) < 0.5 * abs(first - true_diameter)
    # An estimate within ESTIMATE_TOLERANCE of the model's size is kept after the first passes.
    calls = []
    monkeypatch.setattr(segment, "_measure_diameter", _biased_measure(22.0, model_diameter, calls))
    near = run_to_end(segment.iter_estimate_diameter(None, config, image, layout))
    assert calls == first_passes and near == pytest.approx(21.0)


@pytest.mark.parametrize("true_diameter", [80.0, 150.0])
def test_nuclei_far_larger_than_the_models_are_measured_whole_on_the_shrunk_image(monkeypatch, true_diameter):
    import napari_cellseg.inference.segment as segment
    from napari_cellseg.generators import run_to_end

    model_diameter = 20.0
    config = SimpleNamespace(object_diameter=model_diameter, normalization=None, watershed={})
    monkeypatch.setattr(segment, "plane_percentiles", lambda plane, normalization: None)
    calls: list = []
    monkeypatch.setattr(
        segment, "_measure_diameter", _fragmenting_measure(true_diameter, model_diameter, calls)
    )
    image = np.zeros((64, 64), np.uint8)
    estimate = run_to_end(
        segment.iter_estimate_diameter(None, config, image, describe_layout(image, None, None))
    )
    assert estimate == pytest.approx(true_diameter, rel=0.05)  # the own scale alone: 20 px fragments


@pytest.mark.parametrize("measured", [1e6, 1e-3])
def test_an_estimate_clipped_to_the_scale_limits_gives_an_allowed_factor(monkeypatch, measured):
    import napari_cellseg.inference.segment as segment
    from napari_cellseg.generators import run_to_end

    def measure(runner, config, plane, percentiles, params, factor, tile_size, overlap, **_):
        yield from ()
        return measured, 0.9

    config = SimpleNamespace(object_diameter=18.8, normalization=None, watershed={})
    monkeypatch.setattr(segment, "plane_percentiles", lambda plane, normalization: None)
    monkeypatch.setattr(segment, "_measure_diameter", measure)
    image = np.zeros((64, 64), np.uint8)
    diameter = run_to_end(
        segment.iter_estimate_diameter(None, config, image, describe_layout(image, None, None))
    )
    factor = scale_factor(config.object_diameter, diameter)  # accepted: within the limits
    assert factor == pytest.approx(0.125 if measured > 1 else 8.0)


# --- devices and models ----------------------------------------------------------------


def test_a_model_that_changes_the_size_is_refused(model_and_config):
    _, config = model_and_config
    shrinking = torch.nn.Conv2d(3, 3, 3, stride=2)
    with pytest.raises(RuntimeError, match="keep the input's size"):
        predict_probabilities(shrinking, config, np.zeros((32, 32), np.uint8))


def test_missing_default_model_is_reported(monkeypatch, tmp_path):
    import napari_cellseg.inference.runtime as runtime

    monkeypatch.setattr(runtime, "DEFAULT_MODEL_DIR", tmp_path / "default-model")
    with pytest.raises(runtime.ModelNotFoundError, match="--model"):
        runtime.resolve_model(None)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(runtime.ModelNotFoundError, match=r"model\.safetensors"):
        runtime.resolve_model(tmp_path / "half")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_mixed_precision_agrees_with_the_cpu(model_and_config, histology):
    import copy

    model, config = model_and_config
    image = histology[0]
    cpu = predict_probabilities(copy.deepcopy(model), config, image, device="cpu")
    gpu = predict_probabilities(copy.deepcopy(model), config, image, device="cuda", batch_size=4)
    assert np.abs(gpu - cpu).mean() < 0.01


def test_optimized_cpu_runs_match_eager_and_follow_weight_changes(model_and_config, histology):
    import copy

    from napari_cellseg.inference.runtime import _COMPILED

    model, config = model_and_config
    model = copy.deepcopy(model)
    crop = histology[0][:96, :128]
    eager = predict_probabilities(model, config, crop, tile_size=64, overlap=32)
    fast = predict_probabilities(model, config, crop, tile_size=64, overlap=32, optimize=True)
    np.testing.assert_allclose(fast, eager, atol=1e-5)
    assert len(_COMPILED[model][1]) == 1  # one tile shape, one batch shape: one compilation
    with torch.no_grad():
        model.head.bias.add_(torch.tensor([2.0, 0.0, 0.0]))  # in place, as an optimizer step
    changed = predict_probabilities(model, config, crop, tile_size=64, overlap=32, optimize=True)
    np.testing.assert_allclose(changed, predict_probabilities(model, config, crop, tile_size=64, overlap=32), atol=1e-5)  # fmt: skip
    assert not np.allclose(changed, fast, atol=1e-3)


def test_zoom_tta_averages_the_network_over_zoomed_tiles(model_and_config, histology):
    import torch

    from napari_cellseg.inference.runtime import TTA_ZOOMS, TileRunner, check_tta_zooms

    model, config = model_and_config
    crop = np.ascontiguousarray(histology[0][:96, :128])
    plain = predict_probabilities(model, config, crop, tile_size=1024)
    assert np.array_equal(predict_probabilities(model, config, crop, tile_size=1024, tta_zooms=(1.0,)), plain)
    zoomed = predict_probabilities(model, config, crop, tile_size=1024, tta_zooms=TTA_ZOOMS)
    assert zoomed.shape == plain.shape
    np.testing.assert_allclose(zoomed.sum(axis=0), 1.0, atol=1e-4)
    assert 1e-3 < np.abs(zoomed - plain).mean() < 0.1
    # The average is the mean of the three zooms, each mapped back to the tile's pixels.
    runner = TileRunner(model, config.loss, device="cpu")
    tile = np.random.default_rng(0).standard_normal((1, 3, 64, 80)).astype(np.float32)
    x = torch.from_numpy(tile)
    parts = []
    for zoom in TTA_ZOOMS:
        size = (round(64 * zoom), round(80 * zoom))
        view = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=zoom < 1)
        p = torch.from_numpy(runner(view.numpy()))
        parts.append(torch.nn.functional.interpolate(p, size=(64, 80), mode="bilinear", antialias=zoom > 1))
    expected = torch.stack(parts).mean(0).numpy()
    np.testing.assert_allclose(TileRunner(model, config.loss, device="cpu", tta_zooms=TTA_ZOOMS)(tile), expected, atol=1e-5)  # fmt: skip
    for bad in ([], [0.1], "x", [1.0, float("nan")]):
        with pytest.raises(ValueError, match="tta_zooms"):
            check_tta_zooms(bad)


def test_test_time_augmentation_averages_the_eight_flips_and_turns(model_and_config, histology):
    model, config = model_and_config
    square = histology[0][:128, :128]
    plain = predict_probabilities(model, config, square, tile_size=1024)
    tta = predict_probabilities(model, config, square, tile_size=1024, tta=True)
    assert tta.shape == plain.shape
    np.testing.assert_allclose(tta.sum(axis=0), 1.0, atol=1e-4)
    # The average over the dihedral group does not depend on how the image is turned...
    turned = np.ascontiguousarray(np.rot90(square))
    tta_turned = predict_probabilities(model, config, turned, tile_size=1024, tta=True)
    np.testing.assert_allclose(np.rot90(tta, axes=(1, 2)), tta_turned, atol=1e-4)
    # ...which the network alone is not, and it stays close to the network's own answer.
    plain_turned = predict_probabilities(model, config, turned, tile_size=1024)
    assert np.abs(np.rot90(plain, axes=(1, 2)) - plain_turned).max() > 1e-2
    assert np.abs(tta - plain).mean() < 0.1
    # Non-square tiles turn into tiles of the other shape and back.
    wide = predict_probabilities(model, config, histology[0][:128, :160], tile_size=1024, tta=True)
    assert wide.shape == (3, 128, 160)
    np.testing.assert_allclose(wide.sum(axis=0), 1.0, atol=1e-4)
