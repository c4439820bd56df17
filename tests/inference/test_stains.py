"""Haematoxylin-only unmixing for immunohistochemistry slides (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.data.photometric import RGB_FROM_HED
from napari_cellseg.inference.stains import haematoxylin_only


def _light(concentrations) -> np.ndarray:
    """Transmitted light of stain concentrations (H, E, DAB) per pixel: (N, 3) -> (N, 3)."""
    return np.exp(-np.asarray(concentrations, np.float64) @ RGB_FROM_HED).astype(np.float32)


def test_dab_and_eosin_go_the_haematoxylin_stays():
    pixels = _light([[0.0, 0.0, 1.2], [0.0, 0.8, 0.0], [0.6, 0.0, 0.0], [0.6, 0.5, 0.9]])[None]
    out = haematoxylin_only(pixels)
    assert out.shape == pixels.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], 1.0, atol=1e-4)  # DAB alone: white
    np.testing.assert_allclose(out[0, 1], 1.0, atol=1e-4)  # eosin alone: white
    np.testing.assert_allclose(out[0, 2], pixels[0, 2], atol=1e-4)  # haematoxylin alone: as it was
    np.testing.assert_allclose(out[0, 3], pixels[0, 2], atol=1e-4)  # all three: its haematoxylin


def test_dtypes_stacks_and_alpha():
    rng = np.random.default_rng(0)
    light = rng.uniform(0.2, 1.0, (2, 8, 8, 3)).astype(np.float32)
    as_float = haematoxylin_only(light)
    as_uint8 = haematoxylin_only(np.round(light * 255).astype(np.uint8))
    as_uint16 = haematoxylin_only(np.round(light * 65535).astype(np.uint16))
    with_alpha = haematoxylin_only(np.concatenate([light, np.ones_like(light[..., :1])], -1))
    assert as_float.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(as_uint8, as_float, atol=0.02)
    np.testing.assert_allclose(as_uint16, as_float, atol=1e-3)
    np.testing.assert_allclose(with_alpha, as_float, atol=1e-6)
    np.testing.assert_allclose(haematoxylin_only(light * 4000.0), as_float / 1.0, atol=0.05)


def test_grey_images_are_refused_by_name():
    with pytest.raises(ValueError, match=r"slide.png: haematoxylin-only needs .* got shape \(8, 8\)"):
        haematoxylin_only(np.zeros((8, 8), np.uint8), name="slide.png")
