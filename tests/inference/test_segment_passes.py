"""Work the one-click path does once, not twice: the plane's percentiles, the result's arrays."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import fitted_model

import napari_cellseg.inference.predict as predict
import napari_cellseg.inference.segment as segment
from napari_cellseg.sample_data import load_sample

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_and_config():
    torch.set_num_threads(1)
    return fitted_model()


def counting(monkeypatch) -> list:
    """Calls of plane_percentiles, wherever the one-click path makes them."""
    calls = []
    for module in (segment, predict):
        original = module.plane_percentiles
        monkeypatch.setattr(module, "plane_percentiles", lambda *a, f=original: calls.append(1) or f(*a))
    return calls


@pytest.mark.parametrize("module, run", [(segment, "segment_image"), (predict, "predict_probabilities")])
def test_the_size_estimate_and_the_pass_share_the_percentiles(model_and_config, monkeypatch, module, run):
    model, config = model_and_config
    image = load_sample("c_histology_1")[0]
    calls = counting(monkeypatch)
    getattr(module, run)(model, config, image, diameter=0)
    assert len(calls) == 1
    stack = np.stack([image, image[::-1]])  # (Z, H, W, 3): the middle plane's are shared, the other's not
    calls.clear()
    getattr(module, run)(model, config, stack, diameter=0)
    assert len(calls) == 2


def test_one_plane_keeps_its_arrays_and_a_stack_its_planes(model_and_config, monkeypatch):
    model, config = model_and_config
    image = load_sample("c_histology_1")[0]
    blended = []
    original = segment.iter_predict_region

    def keep(*args, **kwargs):
        blended.append((yield from original(*args, **kwargs)))
        return blended[-1]

    monkeypatch.setattr(segment, "iter_predict_region", keep)
    result = segment.segment_image(model, config, image, diameter=config.object_diameter)
    assert result.probabilities is blended[-1]  # no copy of (3, H, W) float32
    assert result.labels.dtype == np.uint16 and result.labels.shape == image.shape[:2]
    monkeypatch.undo()
    stack = segment.segment_image(model, config, np.stack([image, image]), diameter=config.object_diameter)
    first = stack.labels[0]
    assert np.array_equal(first, result.labels)
    assert np.array_equal(stack.labels[1][stack.labels[1] > 0] - first.max(), first[first > 0])
    assert np.array_equal(stack.probabilities[:, 0], result.probabilities)
