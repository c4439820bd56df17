"""Tiles of a resampled image see the whole image's grid: the result does not depend on the tile size."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.data.normalize import NormalizationConfig, normalize_image
from napari_cellseg.generators import run_to_end
from napari_cellseg.inference.images import PlaneReader, describe_layout
from napari_cellseg.inference.resample import apply_axes, resample_matrix, support
from napari_cellseg.inference.scale import resize_channels_first, scaled_size
from napari_cellseg.inference.tiled import iter_predict_region, plane_percentiles

cv2 = pytest.importorskip("cv2")

SIZES = [
    (100, 80, 108, 87),  # enlarging by a non-integer factor
    (101, 99, 50, 49),  # shrinking by a non-integer factor
    (100, 100, 50, 50),  # shrinking by exactly 2 (cv2's fast area path)
    (7, 999, 6, 917),
    (33, 33, 99, 99),
    (3, 4, 1, 1),
]


@pytest.mark.parametrize(("h", "w", "out_h", "out_w"), SIZES)
def test_matrices_resample_as_cv2_does(h, w, out_h, out_w):
    image = np.random.default_rng(0).random((3, h, w), dtype=np.float32)
    shrinking = out_h * out_w < h * w
    expected = resize_channels_first(image, (out_h, out_w))
    got = apply_axes(image, resample_matrix(h, out_h, shrinking), resample_matrix(w, out_w, shrinking))
    assert got.shape == (3, out_h, out_w)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_support_is_the_window_a_row_range_reads():
    matrix = resample_matrix(100, 50, True)  # each output pixel averages two inputs
    assert support(matrix, 10, 20) == (20, 40)
    with pytest.raises(ValueError, match="cannot resample an axis of 0 pixels"):
        resample_matrix(0, 5, False)


class PointwiseRunner:
    """A 'network' without spatial context: any difference between tilings is the grid's."""

    align = 4

    def __init__(self):
        self.weights = np.array([[1.0, -2.0, 0.5], [-1.0, 1.5, 2.0], [0.3, 0.3, -1.0]], np.float32)
        self.calls = 0

    def default_batch_size(self) -> int:
        return 2

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        logits = np.einsum("kc,nchw->nkhw", self.weights, batch)
        logits = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (logits / logits.sum(axis=1, keepdims=True)).astype(np.float32)


def _predict(image, factor, tile_size, region=None):
    runner, config = PointwiseRunner(), NormalizationConfig()
    plane = PlaneReader(image, describe_layout(image))
    percentiles = plane_percentiles(plane, config)
    gen = iter_predict_region(runner, plane, config, percentiles, factor, region, tile_size, overlap=16)
    return run_to_end(gen), runner.calls


@pytest.mark.parametrize("factor", [1.37, 0.63])
def test_tile_size_does_not_change_a_resampled_prediction(factor):
    image = np.random.default_rng(1).integers(0, 255, (230, 170, 3), dtype=np.uint8)
    whole, one_call = _predict(image, factor, tile_size=512)
    tiled, calls = _predict(image, factor, tile_size=48)
    assert one_call == 1 and calls > 4  # one tile against many
    # Before, each tile was resampled on its own grid: differences all over the image.
    np.testing.assert_allclose(tiled, whole, atol=2e-5)
    # One tile is resize, network, resize back, as resize_channels_first does it.
    normalised = normalize_image(image, NormalizationConfig())
    net = (scaled_size(230, factor), scaled_size(170, factor))
    expected = resize_channels_first(
        PointwiseRunner()(resize_channels_first(normalised, net)[None])[0], (230, 170)
    )
    np.testing.assert_allclose(whole, expected, atol=2e-5)


def test_a_region_is_the_same_part_of_the_whole_prediction():
    image = np.random.default_rng(2).integers(0, 255, (200, 190), dtype=np.uint8)
    whole, _ = _predict(image, 1.21, tile_size=64)
    region = (slice(37, 151), slice(90, 190))
    part, _ = _predict(image, 1.21, tile_size=64, region=region)
    np.testing.assert_allclose(part, whole[(slice(None), *region)], atol=2e-5)


def test_the_windows_sum_is_an_outer_product_of_two_axis_sums():
    # the resampled path keeps these two 1-D sums, not a weight per network pixel (factor**2 memory)
    from napari_cellseg.inference.tiling import blend_sums, blend_window, tile_grid

    shape = (301, 517)
    tiles = tile_grid(shape, 128, 32, align=4)
    total = np.zeros(shape, np.float32)
    for tile in tiles:
        total[tile.slices] += blend_window(tile, 32)
    rows, cols = blend_sums(tiles, 32, shape)
    np.testing.assert_allclose(np.outer(rows, cols), total, rtol=1e-6)
