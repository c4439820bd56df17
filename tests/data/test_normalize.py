"""The normalisation rule: channels, whole-image percentiles, scaling, network statistics."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.config import ConfigError
from napari_cellseg.data.normalize import (
    NormalizationConfig,
    compute_percentiles,
    normalize_image,
    scale_intensity,
    standardize,
    subsample_stride,
)
from napari_cellseg.sample_data import list_samples, load_sample


def _ramp(shape, dtype=np.uint8, top=255):
    return (np.linspace(0, top, int(np.prod(shape))).reshape(shape)).astype(dtype)


@pytest.mark.parametrize("key", sorted(list_samples()))
def test_samples_become_three_channels_in_minus_one_to_one(key):
    image, _, _ = load_sample(key)
    x = normalize_image(image)
    assert x.shape == (3, *image.shape[:2]) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x.min() == pytest.approx(-1.0) and x.max() == pytest.approx(1.0)
    if image.ndim == 2:
        assert np.array_equal(x[0], x[1]) and np.array_equal(x[0], x[2])


def test_grey_rgb_and_sixteen_bit_follow_the_same_rule():
    grey = _ramp((20, 30))
    x8 = normalize_image(grey)
    x16 = normalize_image(grey.astype(np.uint16) * 257)  # the same image in 16 bits
    rgb = normalize_image(np.repeat(grey[..., None], 3, axis=2))
    single = normalize_image(grey[..., None])
    np.testing.assert_allclose(x8, x16, atol=1e-5)
    np.testing.assert_allclose(x8, rgb, atol=1e-6)
    np.testing.assert_array_equal(x8, single)


def test_rgba_drops_alpha():
    rgb = _ramp((10, 12, 3))
    rgba = np.concatenate([rgb, np.full((10, 12, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(normalize_image(rgba), normalize_image(rgb))


def test_percentiles_map_to_zero_and_one_then_mean_and_std():
    image = np.arange(1000, dtype=np.float32).reshape(25, 40)
    config = NormalizationConfig(low_percentile=10, high_percentile=90, mean=(0.2, 0.4, 0.6), std=(0.5, 1, 2))
    low, high = compute_percentiles(image, config)
    assert low.shape == high.shape == (1,)
    assert low[0] == pytest.approx(np.percentile(image, 10)) and high[0] == pytest.approx(
        np.percentile(image, 90)
    )
    scaled = scale_intensity(image, config)
    assert scaled.min() == 0.0 and scaled.max() == 1.0  # clipped beyond the percentiles
    pixel = (500 - low[0]) / (high[0] - low[0])
    assert scaled.flat[500] == pytest.approx(pixel, rel=1e-5)
    x = normalize_image(image, config)
    for c, (m, s) in enumerate(zip(config.mean, config.std)):
        assert x[c].flat[500] == pytest.approx((pixel - m) / s, rel=1e-5)


def test_without_clip_outliers_stay_above_one():
    image = _ramp((50, 50), np.uint16, 1000)
    image[0, 0] = 60000
    assert scale_intensity(image, NormalizationConfig(clip=False)).max() > 50
    assert scale_intensity(image).max() == 1.0


def test_joint_percentiles_keep_hue_and_per_channel_ones_remove_a_cast():
    grey = _ramp((16, 16)).astype(np.float32)
    cast = np.stack([grey, grey * 0.5, grey * 0.25], axis=-1)  # a colour cast
    low, high = compute_percentiles(cast)
    assert np.all(low == low[0]) and np.all(high == high[0])
    joint = scale_intensity(cast)
    assert joint[..., 0].max() > 2 * joint[..., 2].max()
    per_channel = scale_intensity(cast, NormalizationConfig(per_channel=True))
    np.testing.assert_allclose(per_channel[..., 0], per_channel[..., 2], atol=1e-5)


@pytest.mark.parametrize("value", [0, 7, 65535])
def test_constant_images_do_not_divide_by_zero(value):
    with np.errstate(all="raise"):
        x = normalize_image(np.full((8, 9), value, np.uint16))
    assert np.all(np.isfinite(x)) and np.all(x == -1.0)


def test_nans_become_zero():
    image = np.random.default_rng(0).random((10, 10)).astype(np.float32)
    image[3, 4] = np.nan
    scaled = scale_intensity(image)
    assert np.isfinite(scaled).all() and scaled[3, 4] == 0.0


def test_an_image_of_no_finite_pixel_warns_nothing(recwarn):
    image = np.full((10, 10), np.nan, np.float32)
    assert np.all(scale_intensity(image) == 0.0)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # "All-NaN slice"


def test_tiles_use_the_whole_image_percentiles():
    image = _ramp((64, 64))
    whole = normalize_image(image)
    percentiles = compute_percentiles(image)
    tile = normalize_image(image[:16, :16], percentiles=percentiles)
    np.testing.assert_array_equal(tile, whole[:, :16, :16])
    assert not np.array_equal(normalize_image(image[:16, :16]), tile)  # per-tile would differ


def test_large_images_use_a_strided_subsample():
    config = NormalizationConfig(max_samples=10_000)
    assert subsample_stride((1000, 1000), config.max_samples) == 10
    assert subsample_stride((50, 50), config.max_samples) == 1
    image = _ramp((1000, 1000), np.uint16, 60000)
    low, high = compute_percentiles(image, config)
    np.testing.assert_allclose([low[0], high[0]], np.percentile(image, [1, 99.8]), rtol=0.02)


class _CountingArray:
    """An array-like that records the pixels read (like a zarr array)."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.read = data, data.shape, data.dtype, 0

    def __getitem__(self, key):
        out = self.data[key]
        self.read += out.size
        return out


def test_percentiles_read_only_the_subsample():
    lazy = _CountingArray(_ramp((2000, 1500, 3)))
    low, high = compute_percentiles(lazy, NormalizationConfig(max_samples=30_000))
    assert lazy.read <= 3 * 30_000 and low.shape == high.shape == (3,)


def test_dask_and_zarr_arrays():
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    image = _ramp((300, 200, 3))
    expected = compute_percentiles(image)
    for lazy in (da.from_array(image, chunks=64), zarr.array(image, chunks=(64, 64, 3))):
        np.testing.assert_allclose(compute_percentiles(lazy), expected)
        np.testing.assert_array_equal(normalize_image(lazy), normalize_image(image))


def test_standardize_accepts_augmented_scaled_images():
    scaled = np.random.default_rng(1).random((6, 7, 3)).astype(np.float32)
    x = standardize(scaled)
    np.testing.assert_allclose(x, np.moveaxis(scaled, -1, 0) * 2 - 1, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(6, 7, 2\)"):
        standardize(scaled[..., :2])


def test_config_round_trips_and_reads_model_statistics(tmp_path):
    config = NormalizationConfig.from_pretrained_cfg(
        {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "num_classes": 1000},
        per_channel=True,
    )
    assert config.mean == (0.485, 0.456, 0.406) and config.per_channel
    path = config.save(tmp_path / "normalization.json")
    assert NormalizationConfig.load(path) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low_percentile": 50, "high_percentile": 10}, "low_percentile < high_percentile"),
        ({"std": (0.5, 0.0, 0.5)}, "std must be positive"),
        ({"mean": (0.5, 0.5)}, "3 values"),
        ({"max_samples": 10}, "max_samples"),
    ],
)
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        NormalizationConfig(**kwargs)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((4, 5, 2), np.uint8), r"got shape \(4, 5, 2\)"),
        (np.zeros((2, 4, 5, 3), np.uint8), r"got shape \(2, 4, 5, 3\)"),
        (np.zeros((0, 5), np.uint8), "empty"),
        (np.array([["a", "b"]]), "dtype <U1"),
    ],
)
def test_bad_images_are_refused_clearly(image, message):
    with pytest.raises(ValueError, match=message):
        normalize_image(image)


def test_non_finite_statistics_and_inverted_percentiles_are_refused():
    with pytest.raises(ConfigError, match="mean and std must be finite"):
        NormalizationConfig(mean=(float("nan"),) * 3)  # every normalised pixel was NaN
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    with pytest.raises(ValueError, match=r"percentiles must be finite with low <= high, got low \[255\.\]"):
        normalize_image(image, None, (255, 0))  # inverted the image silently
