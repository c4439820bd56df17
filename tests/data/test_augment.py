"""Joint augmentation: alignment, no invented classes, determinism, photometric steps."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from napari_cellseg.config import ConfigError
from napari_cellseg.data import photometric
from napari_cellseg.data.augment import PRESETS, AugmentConfig, Augmenter, preview_augmentations
from napari_cellseg.data.normalize import scale_intensity
from napari_cellseg.data.targets import instances_to_targets
from napari_cellseg.sample_data import load_sample

PROBABILITIES = [
    "p_flip",
    "p_rot90",
    "p_rotate",
    "p_scale",
    "p_restain",
    "p_grey",
    "p_haematoxylin_only",
    "p_stain",
    "p_blur",
    "p_lowres",
    "p_gamma",
    "p_contrast",
    "p_noise",
    "p_jpeg",
]
GEOMETRY = ["p_flip", "p_rot90", "p_rotate", "p_scale"]


def every_step(patch=(64, 64), **overrides) -> AugmentConfig:
    return AugmentConfig(patch_size=patch, **{**{p: 1.0 for p in PROBABILITIES}, **overrides})


def only(steps, patch=(64, 64), **overrides) -> AugmentConfig:
    return AugmentConfig.preset("none", patch_size=patch, **{**{p: 1.0 for p in steps}, **overrides})


@pytest.fixture(scope="module")
def histology():
    """A 3-class target and its scaled RGB image (microscope C sample)."""
    image, labels, _ = load_sample("c_histology_2")
    return scale_intensity(image), labels, instances_to_targets(labels)


def test_same_seed_same_output_other_seed_other_output(histology):
    image, _, target = histology
    augment = Augmenter(every_step())
    first = augment(image, target, np.random.default_rng(7))
    again = augment(image, target, np.random.default_rng(7))
    other = augment(image, target, 8)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("seed", range(6))
def test_no_augmentation_invents_a_class_or_label(histology, seed):
    image, labels, target = histology
    augment = Augmenter(every_step(max_angle=180.0, scale_range=(0.5, 2.0)))
    out_image, out_target = augment(image, target, seed)
    assert out_target.dtype == np.uint8 and set(np.unique(out_target)) <= {0, 1, 2}
    assert out_image.dtype == np.float32 and out_image.shape == (64, 64, 3)
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0
    _, out_labels = augment(image, labels, seed)
    assert out_labels.dtype == labels.dtype and set(np.unique(out_labels)) <= set(np.unique(labels))


@pytest.mark.parametrize("seed", range(8))
def test_a_marker_moves_with_image_and_target(seed):
    rng = np.random.default_rng(100 + seed)
    image = np.zeros((90, 110), np.float32)
    target = np.zeros((90, 110), np.uint8)
    y, x = rng.integers(30, 60), rng.integers(30, 80)
    image[y : y + 5, x : x + 5], target[y : y + 5, x : x + 5] = 1.0, 2
    image[y, x + 8], target[y, x + 8] = 1.0, 2  # an asymmetric tail: catches flips
    augment = Augmenter(
        every_step(patch=(80, 80), max_angle=180.0, p_noise=0.0, p_blur=0.0, p_lowres=0.0, p_jpeg=0.0)
    )
    out_image, out_target = augment(image, target, seed)
    marker_image, marker_target = out_image > 0.5, out_target == 2
    assert marker_target.any(), "the crop keeps the marker (it lies well inside the image)"
    np.testing.assert_allclose(ndi.center_of_mass(marker_image), ndi.center_of_mass(marker_target), atol=1.0)
    assert np.count_nonzero(marker_image & marker_target) >= 0.6 * np.count_nonzero(marker_target)


def test_flips_and_quarter_turns_are_exact_pixel_permutations():
    values = np.arange(40 * 50, dtype=np.int32).reshape(40, 50)
    augment = Augmenter(only(["p_flip", "p_rot90"], patch=(30, 30)))
    for seed in range(8):
        out_image, out_target = augment(values.astype(np.float32) / values.max(), values, seed)
        assert np.array_equal(np.round(out_image * values.max()).astype(np.int32), out_target)
        assert np.unique(out_target).size == out_target.size, "no pixel duplicated"
        # The output is a flipped/rotated window of the input (whose top-left is its minimum).
        y, x = np.argwhere(values == out_target.min())[0]
        window = values[y : y + 30, x : x + 30]
        assert np.array_equal(np.sort(window, axis=None), np.sort(out_target, axis=None))


def test_preset_none_is_a_crop_inside_the_image():
    values = np.arange(100 * 120, dtype=np.uint16).reshape(100, 120)
    augment = Augmenter.preset("none", patch_size=(32, 48))
    for seed in range(5):
        _, crop = augment(np.zeros(values.shape, np.float32), values, seed)
        y, x = np.argwhere(values == crop[0, 0])[0]
        assert np.array_equal(crop, values[y : y + 32, x : x + 48])


def test_small_images_are_padded_by_reflection_without_new_classes():
    image = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    target = np.zeros((20, 24), np.uint8)
    target[5:15, 5:15] = 2
    out_image, out_target = Augmenter(every_step(patch=(64, 64)))(image, target, 3)
    assert out_image.shape == (64, 64, 3) and out_target.shape == (64, 64)
    assert set(np.unique(out_target)) <= {0, 2}


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.uint32, bool])
def test_target_dtypes_are_kept(dtype):
    target = (np.arange(30 * 30).reshape(30, 30) % 3).astype(dtype)
    _, out = Augmenter(every_step(patch=(16, 16)))(np.zeros((30, 30), np.float32), target, 0)
    assert out.dtype == np.dtype(dtype) and set(np.unique(out)) <= set(np.unique(target))


def test_target_may_be_omitted():
    image, target = Augmenter(every_step())(np.zeros((70, 70), np.float32), None, 0)
    assert image.shape == (64, 64) and target is None


def test_grey_images_stay_grey_and_skip_stain_jitter():
    grey = np.full((64, 64), 0.5, np.float32)
    out, _ = Augmenter(only(["p_stain"]))(grey, None, 0)
    assert out.shape == (64, 64) and np.array_equal(out, grey)


def test_each_photometric_step_changes_the_image(histology):
    image, _, target = histology
    crop = np.ascontiguousarray(image[:64, :64])
    for step in ["p_stain", "p_blur", "p_lowres", "p_gamma", "p_contrast", "p_noise", "p_jpeg"]:
        out, out_target = Augmenter(only([step]))(crop, target[:64, :64], 1)
        assert not np.allclose(out, crop, atol=1e-3), step
        assert np.array_equal(out_target, target[:64, :64]), f"{step} must not move the target"


def test_stain_jitter_scales_and_shifts_each_stain():
    concentration = np.linspace(0.0, 2.0, 25).reshape(5, 5, 1)
    haematoxylin = np.exp(-concentration * photometric.RGB_FROM_HED[0]).astype(np.float32)
    eosin = np.exp(-concentration * photometric.RGB_FROM_HED[1]).astype(np.float32)
    np.testing.assert_allclose(
        photometric.stain_jitter(haematoxylin, np.ones(3), np.zeros(3)), haematoxylin, atol=1e-5
    )
    more_h = np.array([1.5, 1.0, 1.0])
    # 1.5 x the haematoxylin: optical density x 1.5, i.e. transmission ** 1.5; eosin untouched.
    np.testing.assert_allclose(
        photometric.stain_jitter(haematoxylin, more_h, np.zeros(3)), haematoxylin**1.5, atol=1e-5
    )
    np.testing.assert_allclose(photometric.stain_jitter(eosin, more_h, np.zeros(3)), eosin, atol=1e-5)
    shifted = photometric.stain_jitter(eosin, np.ones(3), np.array([0.0, 0.1, 0.0]))
    np.testing.assert_allclose(shifted, eosin * np.exp(-0.1 * photometric.RGB_FROM_HED[1]), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(5, 5\)"):
        photometric.stain_jitter(eosin[..., 0], np.ones(3), np.zeros(3))


def test_tone_curve_matches_the_formula():
    x = np.linspace(0, 1, 101, dtype=np.float32)
    gamma, contrast, brightness = 1.5, 1.2, 0.05
    pivot = float(x.mean()) ** gamma
    expected = (x**gamma - pivot) * contrast + pivot + brightness
    np.testing.assert_allclose(photometric.adjust_tone(x, gamma, contrast, brightness), expected, atol=1e-3)


def test_preview_returns_n_deterministic_samples_from_a_raw_image():
    image, labels, _ = load_sample("c_histology_1")
    target = instances_to_targets(labels)
    config = AugmentConfig.preset("strong", patch_size=(48, 48))
    samples = preview_augmentations(image, target, n=3, config=config, seed=5)
    again = preview_augmentations(image, target, n=3, config=config, seed=5)
    assert len(samples) == 3
    for (a, ta), (b, tb) in zip(samples, again):
        assert a.shape == (48, 48, 3) and a.dtype == np.float32 and ta.shape == (48, 48)
        assert np.array_equal(a, b) and np.array_equal(ta, tb)
    assert not np.array_equal(samples[0][0], samples[1][0])


def test_presets_and_config_round_trip(tmp_path):
    assert set(PRESETS) == {"none", "light", "default", "stains", "rendered", "scanners", "strong"}
    none = AugmentConfig.preset("none")
    assert all(getattr(none, p) == 0.0 for p in PROBABILITIES)
    strong, light = AugmentConfig.preset("strong"), AugmentConfig.preset("light")
    assert strong.noise_std > AugmentConfig().noise_std > light.noise_std
    config = AugmentConfig.preset("light", patch_size=(128, 96))
    assert AugmentConfig.load(config.save(tmp_path / "augment.json")) == config
    assert Augmenter.preset("strong").config == strong


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p_flip": 1.5}, "p_flip is a probability"),
        ({"noise_std": -0.1}, "noise_std must be >= 0"),
        ({"scale_range": (2.0, 1.0)}, "scale_range"),
        ({"patch_size": (0, 64)}, "patch_size"),
        ({"lowres_range": (0.5, 1.5)}, "lowres_range"),
        ({"jpeg_quality": (0, 50)}, "jpeg_quality"),
    ],
)
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AugmentConfig(**kwargs)
    with pytest.raises(ConfigError, match="unknown augmentation preset"):
        AugmentConfig.preset("extreme")


def test_bad_inputs_are_refused_clearly():
    augment = Augmenter()
    with pytest.raises(ValueError, match=r"scale_intensity.*uint8"):
        augment(np.zeros((8, 8), np.uint8), None, 0)
    with pytest.raises(ValueError, match=r"target shape \(8, 9\) does not match image shape \(8, 8\)"):
        augment(np.zeros((8, 8), np.float32), np.zeros((8, 9), np.uint8), 0)
    with pytest.raises(ValueError, match=r"\(8, 8, 2\)"):
        augment(np.zeros((8, 8, 2), np.float32), None, 0)
    with pytest.raises(ValueError, match="float32"):
        augment(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32), 0)


def _unmix(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin, eosin and DAB concentrations of transmitted light."""
    return -np.log(np.maximum(rgb, 1e-3)) @ photometric.HED_FROM_RGB


def test_restain_redraws_each_stain_as_asked():
    rng = np.random.default_rng(0)
    stains = np.stack([rng.uniform(0, 1.0, (6, 6)), rng.uniform(0, 0.8, (6, 6)), np.zeros((6, 6))], -1)
    he = np.exp(-stains @ photometric.RGB_FROM_HED).astype(np.float32)
    kept = photometric.restain(he, 1.0, 1.0, percentiles=None)
    np.testing.assert_allclose(kept, he, atol=1e-4)
    # Pale haematoxylin, no eosin, DAB added: a haematoxylin-DAB slide.
    dab = rng.uniform(0, 1.5, (6, 6))
    ihc = _unmix(photometric.restain(he, 0.4, 0.0, dab=dab, percentiles=None))
    np.testing.assert_allclose(ihc[..., 0], 0.4 * stains[..., 0], atol=1e-3)
    np.testing.assert_allclose(ihc[..., 1], 0.0, atol=1e-3)
    np.testing.assert_allclose(ihc[..., 2], dab, atol=1e-3)
    # Brown nuclei: the haematoxylin moves to DAB where the field is 1, stays where it is 0.
    field = np.zeros((6, 6), np.float32)
    field[:, 3:] = 1.0
    brown = _unmix(photometric.restain(he, 1.0, 1.0, nuclear_dab=field, percentiles=None))
    np.testing.assert_allclose(brown[:, 3:, 0], 0.0, atol=1e-3)
    np.testing.assert_allclose(brown[:, 3:, 2], stains[:, 3:, 0], atol=1e-3)
    np.testing.assert_allclose(brown[:, :3], stains[:, :3], atol=1e-3)
    stretched = photometric.restain(he, 0.4, 0.0)
    assert stretched.min() == 0.0 and stretched.max() == 1.0
    with pytest.raises(ValueError, match=r"\(6, 6\)"):
        photometric.restain(he[..., 0], 1.0, 1.0)


def test_smooth_field_has_regions_in_and_out():
    field = photometric.smooth_field(np.random.default_rng(3), (192, 160))
    again = photometric.smooth_field(np.random.default_rng(3), (192, 160))
    assert field.shape == (192, 160) and field.dtype == np.float32 and np.array_equal(field, again)
    assert 0.0 <= field.min() and field.max() <= 1.0
    assert np.abs(np.diff(field, axis=0)).max() < 0.2, "the field must vary smoothly"


def test_restaining_changes_colour_crops_only_and_not_the_target(histology):
    image, _, target = histology
    crop = np.ascontiguousarray(image[:64, :64])
    restained = only(["p_restain"])
    assert AugmentConfig.preset("default").p_restain == 0.0 < AugmentConfig.preset("stains").p_restain < 1
    out, out_target = Augmenter(restained)(crop, target[:64, :64], 1)
    assert not np.allclose(out, crop, atol=1e-3) and np.array_equal(out_target, target[:64, :64])
    grey = np.full((64, 64), 0.5, np.float32)
    assert np.array_equal(Augmenter(restained)(grey, None, 0)[0], grey)
    # DAB stays off the cells: a crop whose target is all cell gets none.
    all_cells = np.full((64, 64), 2, np.uint8)
    no_dab = only(["p_restain"], p_dab=1.0, p_nuclear_dab=0.0, restain_eosin=(1.0, 1.0))
    no_dab = AugmentConfig(**{**no_dab.to_dict(), "restain_haematoxylin": (1.0, 1.0)})
    kept, _ = Augmenter(no_dab)(crop, all_cells, 2)
    background, _ = Augmenter(no_dab)(crop, np.zeros_like(all_cells), 2)
    stretch = photometric.restain(crop, 1.0, 1.0)
    np.testing.assert_allclose(kept, stretch, atol=1e-4)
    assert np.abs(background - stretch).mean() > 0.02
    with pytest.raises(ConfigError, match="restain_dab"):
        AugmentConfig(restain_dab=(3.0, 1.0))
    # dab_on_cells lets a share of the DAB fall on the cells too: the all-cell crop gets some.
    on_cells = AugmentConfig(**{**no_dab.to_dict(), "dab_on_cells": (0.5, 0.5)})
    hazed, _ = Augmenter(on_cells)(crop, all_cells, 2)
    assert np.abs(hazed - stretch).mean() > 0.01
    with pytest.raises(ConfigError, match="dab_on_cells"):
        AugmentConfig(dab_on_cells=(0.2, 1.5))


def test_grey_step_gives_equal_channels_of_the_luminance(histology):
    image, _, _ = histology
    crop = np.ascontiguousarray(image[:64, :64])
    out, _ = Augmenter(only(["p_grey"]))(crop, None, 0)
    assert out.shape == crop.shape
    np.testing.assert_allclose(out[..., 0], crop @ np.array([0.299, 0.587, 0.114]), atol=1e-5)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_lower_resolution_loses_detail_but_keeps_size_and_mean(histology):
    image, _, _ = histology
    crop = np.ascontiguousarray(image[:96, :96])
    detail = lambda a: np.abs(np.diff(a, axis=0)).mean()  # noqa: E731
    halved, third = photometric.lower_resolution(crop, 0.5), photometric.lower_resolution(crop, 0.33)
    assert halved.shape == crop.shape and halved.dtype == np.float32
    assert detail(crop) > detail(halved) > detail(third)
    assert abs(float(halved.mean() - crop.mean())) < 0.01
    assert photometric.lower_resolution(crop, 1.0) is crop
    grey = np.ascontiguousarray(crop[..., :1])
    assert photometric.lower_resolution(grey, 0.5).shape == grey.shape


def test_jpeg_compression_costs_more_at_lower_quality(histology):
    image, _, _ = histology
    crop = np.ascontiguousarray(image[:96, :96])
    errors = [np.abs(photometric.jpeg_compress(crop, q) - crop).mean() for q in (95, 50, 10)]
    assert errors[0] < errors[1] < errors[2] and errors[0] < 0.02
    # The same as a JPEG file written and read by Pillow: colours in the order the codec expects.
    rgb = np.clip(crop * 255 + 0.5, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=40)
    pillow = np.asarray(Image.open(buffer), np.float32) / 255
    assert np.abs(photometric.jpeg_compress(crop, 40) - pillow).mean() < 1e-3
    for shaped in (crop[..., 0], crop[..., :1]):
        out = photometric.jpeg_compress(np.ascontiguousarray(shaped), 30)
        assert out.shape == shaped.shape and out.dtype == np.float32 and 0 <= out.min() <= out.max() <= 1


def test_steps_added_later_draw_nothing_when_off(histology):
    """Older settings (the scanner steps off) must give the crops they always gave."""
    image, _, target = histology
    stains = AugmentConfig.preset("stains", patch_size=(64, 64))
    scanners_off = AugmentConfig.preset("scanners", patch_size=(64, 64), p_lowres=0.0, p_jpeg=0.0)
    for seed in range(3):
        a, _ = Augmenter(stains)(image, target, seed)
        b, _ = Augmenter(scanners_off)(image, target, seed)
        assert np.array_equal(a, b)
    on = AugmentConfig.preset("scanners", patch_size=(64, 64), p_lowres=1.0, p_jpeg=1.0)
    assert not np.array_equal(Augmenter(on)(image, target, 0)[0], Augmenter(stains)(image, target, 0)[0])


def test_haematoxylin_only_step_gives_the_crop_as_the_inference_option_would(histology):
    from napari_cellseg.inference.stains import haematoxylin_only

    image, _, target = histology
    crop = np.ascontiguousarray(image[:64, :64])
    out, out_target = Augmenter(only(["p_haematoxylin_only"]))(crop, target[:64, :64], 0)
    np.testing.assert_allclose(out, np.clip(haematoxylin_only(crop), 0, 1), atol=1e-6)
    assert np.array_equal(out_target, target[:64, :64])
    grey = np.full((64, 64), 0.5, np.float32)
    assert np.array_equal(Augmenter(only(["p_haematoxylin_only"]))(grey, None, 0)[0], grey)
