"""Image layouts: nested lists are arrays, scale/translate and channel choices are checked."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import fitted_model

from napari_cellseg.inference.images import describe_layout, spatial_metadata
from napari_cellseg.inference.predict import predict_probabilities, segment_image

torch = pytest.importorskip("torch")


def test_a_nested_list_is_read_as_an_image():
    # describe_layout read .shape without np.asarray: "got shape ()".
    layout = describe_layout(np.zeros((8, 8), np.uint8).tolist())
    assert layout.shape == (8, 8) and not layout.stack


def test_segment_image_takes_a_nested_list():
    torch.set_num_threads(1)
    model, config = fitted_model()
    image = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    expected = predict_probabilities(model, config, image)
    np.testing.assert_array_equal(predict_probabilities(model, config, image.tolist()), expected)
    assert segment_image(model, config, image.tolist()).labels.shape == (64, 64)


@pytest.mark.parametrize(
    ("values", "name", "error", "message"),
    [
        ((0, 1), "scale", ValueError, r"scale must be > 0 on every axis .*\(0.0, 1.0\)"),
        ((-1, 1), "scale", ValueError, "scale must be > 0"),
        ((float("nan"), 1), "scale", ValueError, r"scale must be finite, got \(nan, 1.0\)"),
        ((float("inf"), 0), "translate", ValueError, "translate must be finite"),
        (2.0, "scale", TypeError, "scale must be a sequence of numbers"),
        (("a", 1), "translate", TypeError, "translate must hold numbers, got 'a'"),
    ],
)
def test_bad_scale_and_translate_are_refused(values, name, error, message):
    layout = describe_layout(np.zeros((8, 8), np.uint8))
    with pytest.raises(error, match=message):
        spatial_metadata(values, layout, name)
    assert spatial_metadata((0.5, 0.25), layout, "scale") == (0.5, 0.25)
    assert spatial_metadata((-3, 2), layout, "translate") == (-3.0, 2.0)


def test_channel_must_be_an_integer():
    with pytest.raises(TypeError, match="channel must be an integer, got True"):
        describe_layout(np.zeros((8, 8, 3), np.uint8), True)


def _grey_sample():
    from napari_cellseg.sample_data import load_sample

    image = load_sample("c_histology_1")[0]
    return (image.mean(axis=-1) if image.ndim == 3 else image).astype(np.float32)


def test_infinite_pixels_count_as_nan_not_as_the_top_percentile():
    # 0.25 % of +inf pixels set the 99.8th percentile to inf: the whole image became 0, no cell.
    torch.set_num_threads(1)
    model, config = fitted_model()
    image = _grey_sample()
    where = np.random.default_rng(0).choice(image.size, image.size // 50, replace=False)
    with_inf, with_nan = image.copy(), image.copy()
    top = image.size // 400  # 0.25 % +inf, 1.75 % -inf: past both percentiles (99.8 and 1)
    with_inf.flat[where[:top]], with_inf.flat[where[top:]] = np.inf, -np.inf
    with_nan.flat[where] = np.nan
    expected = segment_image(model, config, with_nan).labels
    assert expected.max() > 5
    np.testing.assert_array_equal(segment_image(model, config, with_inf).labels, expected)


def test_a_large_offset_keeps_its_contrast_in_wide_dtypes():
    # uint32 / float64 near 4e9 lost their contrast in normalisation's float32 (steps of 256).
    torch.set_num_threads(1)
    model, config = fitted_model()
    image = _grey_sample().astype(np.uint8)
    expected = segment_image(model, config, image).labels
    for dtype in (np.uint32, np.float64):
        shifted = image.astype(dtype) + dtype(4_000_000_000)
        np.testing.assert_array_equal(segment_image(model, config, shifted).labels, expected)


def test_two_planes_read_as_a_stack_get_the_channel_note():
    from napari_cellseg.inference.images import stack_note

    note = stack_note(describe_layout(np.zeros((2, 64, 80), np.uint16)))
    assert (
        "read as 2 planes" in note
        and "pick the nuclear one with --channel N" in note
        and "(H, W, 3)" not in note
    )
    assert stack_note(describe_layout(np.zeros((5, 64, 80), np.uint16))) is None


def test_a_stack_of_stacks_is_refused_without_speaking_of_channels_it_has_not():
    with pytest.raises(ValueError) as refused:
        describe_layout(np.zeros((3, 2, 64, 80), np.uint16))  # (T, Z, H, W)
    text = str(refused.value)
    assert "shape (3, 2, 64, 80)" in text and "channels" not in text and "each time point" in text
