"""Grey crops of other microscopes drawn as H&E (``photometric.render_he``, preset ``rendered``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.data import photometric
from napari_cellseg.data.augment import AugmentConfig, Augmenter
from napari_cellseg.data.normalize import scale_intensity
from napari_cellseg.sample_data import load_sample


def haematoxylin(rgb: np.ndarray) -> np.ndarray:
    density = -np.log(np.maximum(rgb, 1e-3))
    return density @ photometric.HED_FROM_RGB[:, 0]


def render(image, cells, texture=None):
    flat = np.zeros(image.shape, np.float32)
    return photometric.render_he(image, cells, 1.2, 0.4, 0.5, flat, flat if texture is None else texture)


@pytest.mark.parametrize("key", ["a_fluorescence_1", "b_brightfield"])
def test_nuclei_come_out_dark_purple_whichever_way_they_were_bright(key):
    image, labels, _ = load_sample(key)
    grey = scale_intensity(image)[:256, :256]
    cells = labels[:256, :256] > 0
    rgb = render(grey, cells)
    assert rgb.shape == (256, 256, 3) and rgb.dtype == np.float32
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    h = haematoxylin(rgb)
    # fluorescence (bright nuclei) and brightfield (dark nuclei) both give haematoxylin-rich nuclei
    assert np.median(h[cells]) > np.median(h[~cells]) + 0.2, key
    nuclei = rgb[cells].mean(0)
    assert nuclei[1] < nuclei[0] and nuclei[1] < nuclei[2], f"nuclei should look purple, mean RGB {nuclei}"


def test_texture_adds_grain_inside_the_nuclei_only():
    image, labels, _ = load_sample("a_fluorescence_1")
    grey, cells = scale_intensity(image), labels > 0
    grain = np.random.default_rng(0).standard_normal(grey.shape).astype(np.float32) * 0.3
    change = np.abs(render(grey, cells, grain) - render(grey, cells)).mean(-1)
    assert change[cells].mean() > 0.02
    assert change[cells].mean() > 5 * np.median(change[~cells])


def test_wrong_shapes_are_named():
    with pytest.raises(ValueError, match=r"grey \(H, W\) image, got shape \(8, 8, 3\)"):
        render(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match=r"cells mask shape \(4, 4\)"):
        render(np.zeros((8, 8), np.float32), np.zeros((4, 4), bool))


def test_augmenter_renders_grey_labelled_crops_and_leaves_the_rest():
    grey, labels = scale_intensity(load_sample("a_fluorescence_2")[0]), load_sample("a_fluorescence_2")[1]
    colour, colour_labels = scale_intensity(load_sample("c_histology_1")[0]), load_sample("c_histology_1")[1]
    rendering = Augmenter(AugmentConfig.preset("none", patch_size=(64, 64), p_render_he=1.0))
    plain = Augmenter(AugmentConfig.preset("none", patch_size=(64, 64)))
    out, target = rendering(grey, labels, 3)
    reference, reference_target = plain(grey, labels, 3)
    assert out.shape == (64, 64, 3) and reference.shape == (64, 64)
    assert np.array_equal(target, reference_target), "rendering must not move the labels"
    # without labels nothing says where the nuclei are; colour crops are H&E already
    assert np.array_equal(rendering(grey, None, 3)[0], plain(grey, None, 3)[0])
    assert np.array_equal(rendering(colour, colour_labels, 3)[0], plain(colour, colour_labels, 3)[0])
    # the preset draws it for half the grey crops; off everywhere else, so older runs are as they were
    assert AugmentConfig.preset("rendered").p_render_he == 0.5
    assert AugmentConfig.preset("stains").p_render_he == 0.0


def test_render_ranges_are_checked():
    from napari_cellseg.config import ConfigError

    with pytest.raises(ConfigError, match="render_eosin"):
        AugmentConfig(render_eosin=(0.9, 0.1))
