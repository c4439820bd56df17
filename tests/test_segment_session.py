"""One-click segmentation's core (no Qt): cached model, probabilities kept, watershed again."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

from napari_cellseg.app.current_model import NO_MODEL_HELP
from napari_cellseg.app.segment_session import (
    clear_model_cache,
    image_plane_data,
    initial_watershed,
    iter_segment_one_click,
    load_model_cached,
    result_notes,
    watershed_again,
    with_slider_values,
)
from napari_cellseg.inference.tiled import run_to_end
from napari_cellseg.inference.watershed import WatershedParams, instances_from_probabilities
from napari_cellseg.models.checkpoint import ModelConfig
from napari_cellseg.sample_data import load_sample


@pytest.fixture
def tiny_model(tmp_path):
    torch = pytest.importorskip("torch")
    from napari_cellseg.models.checkpoint import save_model_dir
    from napari_cellseg.models.m2 import M2Config
    from napari_cellseg.models.surgery import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    m2 = M2Config(arch="mobilenetv3_small_050", num_classes=0, name="tiny")
    model = build_model(m2, 2, 2, out_channels=3, decoder_channels=(8, 8, 8), pretrained=False)
    config = ModelConfig.for_model(model, watershed={"interior_threshold": 0.4, "min_size": 5})
    clear_model_cache()
    yield save_model_dir(tmp_path / "tiny", model.eval(), config)
    clear_model_cache()


def _probabilities(shape=(40, 50), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, *shape)).astype(np.float32)
    logits[2, 5:18, 5:20] += 4  # two confident cells
    logits[2, 22:35, 25:45] += 4
    e = np.exp(logits)
    return e / e.sum(axis=0)


def test_one_click_keeps_probabilities_and_uses_the_models_watershed(tiny_model):
    image, _, _ = load_sample("c_histology_1")
    result = run_to_end(iter_segment_one_click(image, tiny_model, rgb=True))
    assert result.labels.shape == image.shape[:2] and result.probabilities.shape == (3, *image.shape[:2])
    params = WatershedParams.from_dict(result.watershed)
    assert (params.interior_threshold, params.min_size) == (0.4, 5)  # from the model's config
    np.testing.assert_array_equal(result.labels, instances_from_probabilities(result.probabilities, params))


def test_the_model_is_loaded_once_while_its_files_are_unchanged(tiny_model):
    first = load_model_cached(tiny_model)
    assert load_model_cached(tiny_model)[0] is first[0]
    config = ModelConfig.load(tiny_model / "config.json")
    dataclasses.replace(config, watershed={"min_size": 9}).save(tiny_model / "config.json")
    reloaded = load_model_cached(tiny_model)
    assert reloaded[0] is not first[0] and reloaded[1].watershed == {"min_size": 9}


def test_no_model_and_bad_images_are_explained():
    with pytest.raises(ValueError, match="train one in the Fine-tune panel"):
        run_to_end(iter_segment_one_click(np.zeros((8, 8)), None))
    assert "Fine-tune" in NO_MODEL_HELP
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4, 5\).*2D image"):
        image_plane_data(np.zeros((2, 3, 4, 5)), rgb=False)
    assert image_plane_data([np.zeros((4, 4)), np.zeros((2, 2))], rgb=False, multiscale=True).shape == (4, 4)


def test_sliders_change_only_their_settings():
    base = WatershedParams(interior_threshold=0.6, compactness=0.5)
    values = {"interior_threshold": 0.3, "boundary_weight": 2.0, "split_height": 1.2, "min_size": 12.0}
    changed = with_slider_values(base, values)
    assert (changed.interior_threshold, changed.boundary_weight, changed.min_size) == (0.3, 2.0, 12)
    assert changed.split_height == 1.2
    assert changed.compactness == 0.5 and isinstance(changed.min_size, int)
    with pytest.raises(ValueError, match="unknown watershed slider"):
        with_slider_values(base, {"compactness": 1.0})
    with pytest.raises(ValueError, match="interior_threshold must be in"):
        with_slider_values(base, {"interior_threshold": 0.0})


def test_initial_watershed_falls_back_to_the_defaults(tmp_path):
    assert initial_watershed(None) == WatershedParams()
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    ModelConfig().save(folder / "config.json")
    data = json.loads((folder / "config.json").read_text())
    data["watershed"] = {"interior_threshold": 7.0}  # invalid value, as a hand edit would leave it
    (folder / "config.json").write_text(json.dumps(data))
    assert initial_watershed(folder) == WatershedParams()
    ModelConfig(watershed={"boundary_weight": 2.0}).save(folder / "config.json")
    assert initial_watershed(folder).boundary_weight == 2.0


def test_watershed_again_matches_the_core_per_plane():
    params = WatershedParams(min_size=5)
    plane = _probabilities()
    np.testing.assert_array_equal(watershed_again(plane, params), instances_from_probabilities(plane, params))
    stack = np.stack([plane, _probabilities(seed=1)], axis=1)  # (3, Z, H, W)
    labels = watershed_again(stack, params)
    first = instances_from_probabilities(stack[:, 0], params)
    second = instances_from_probabilities(stack[:, 1], params)
    np.testing.assert_array_equal(labels[0], first)
    np.testing.assert_array_equal(labels[1], np.where(second > 0, second + first.max(), 0))
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4\)"):
        watershed_again(np.zeros((2, 4, 4), np.float32), params)


def test_one_click_with_test_time_augmentation_uses_the_averaged_probabilities(tiny_model):
    from napari_cellseg.inference.predict import predict_probabilities
    from napari_cellseg.inference.stains import haematoxylin_only

    image, _, _ = load_sample("c_histology_1")
    plain = run_to_end(iter_segment_one_click(image, tiny_model, rgb=True))
    tta = run_to_end(iter_segment_one_click(image, tiny_model, rgb=True, tta=True))
    model, config = load_model_cached(tiny_model)
    expected = predict_probabilities(model, config, image, channel_axis=-1, tta=True)
    np.testing.assert_allclose(tta.probabilities, expected, atol=1e-5)
    assert np.abs(tta.probabilities - plain.probabilities).max() > 1e-3
    unmixed = run_to_end(iter_segment_one_click(image, tiny_model, rgb=True, haematoxylin_only=True))
    expected = predict_probabilities(model, config, haematoxylin_only(image), channel_axis=-1)
    np.testing.assert_allclose(unmixed.probabilities, expected, atol=1e-5)
    with pytest.raises(ValueError, match="RGB"):
        run_to_end(iter_segment_one_click(image[..., 0], tiny_model, haematoxylin_only=True))
    zoom = run_to_end(iter_segment_one_click(image, tiny_model, rgb=True, tta_zoom=True))
    expected = predict_probabilities(model, config, image, channel_axis=-1, tta_zooms=(0.8, 1.0, 1.25))
    np.testing.assert_allclose(zoom.probabilities, expected, atol=1e-5)


def test_warm_up_loads_once_even_when_a_click_comes_during_it(tiny_model, monkeypatch, tmp_path):
    import threading
    import time

    import napari_cellseg.inference.runtime as runtime
    from napari_cellseg.app.segment_session import warm_up

    assert warm_up(None) is False
    assert warm_up(tmp_path) is False  # not a model folder: the click will explain
    loads = []
    original = runtime.resolve_model

    def slow_resolve(*args, **kwargs):
        loads.append(args)
        time.sleep(0.3)
        return original(*args, **kwargs)

    monkeypatch.setattr(runtime, "resolve_model", slow_resolve)
    clear_model_cache()
    warming = threading.Thread(target=warm_up, args=(tiny_model,))
    warming.start()
    time.sleep(0.05)
    model, _ = load_model_cached(tiny_model)  # the click, while the warm-up loads
    warming.join()
    assert len(loads) == 1
    assert load_model_cached(tiny_model)[0] is model


def test_a_small_image_is_noted_for_the_panel_not_warned(tiny_model, recwarn):
    # The panel's user sees the status line, not Python warnings in a terminal.
    image, _, _ = load_sample("c_histology_1")
    result = run_to_end(iter_segment_one_click(image[:20, :20], tiny_model, rgb=True))
    assert "under 64 px a side" in result_notes(result, "C")
    assert not [w for w in recwarn if "64 px" in str(w.message)]
    whole = run_to_end(iter_segment_one_click(image, tiny_model, rgb=True))
    assert "64 px" not in result_notes(whole, "C")


def test_a_model_without_training_scale_is_noted_for_the_panel_not_warned(tiny_model):
    # A hand-edited config.json: a default_diameter (estimate) but no object_diameter to resample to.
    config = json.loads((tiny_model / "config.json").read_text())
    config.update(object_diameter=None, default_diameter=0.0)
    (tiny_model / "config.json").write_text(json.dumps(config))
    image, _, _ = load_sample("c_histology_1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_to_end(iter_segment_one_click(image[:96, :96], tiny_model, rgb=True))
    assert result.scale_factor == 1.0 and "no object_diameter" in result.unscaled
    notes = result_notes(result, "C")
    assert " Note: the model's config.json has no object_diameter" in notes
    assert notes.endswith("(its default_diameter): it is segmented at its own scale.")
    assert not [w for w in caught if "object_diameter" in str(w.message)]  # the panel's user sees no console


def test_a_model_with_its_training_scale_has_no_unscaled_note(tiny_model):
    image, _, _ = load_sample("c_histology_1")
    result = run_to_end(iter_segment_one_click(image[:96, :96], tiny_model, rgb=True))
    assert result.unscaled == "" and "object_diameter" not in result_notes(result, "C")


def test_two_channels_are_refused_in_the_panels_words(tiny_model):
    image, _, _ = load_sample("c_histology_1")
    with pytest.raises(ValueError, match="has 2 channels") as refused:
        run_to_end(iter_segment_one_click(image[..., :2], tiny_model))
    assert "--channel" not in str(refused.value) and "channel=N" not in str(refused.value)
    assert "image layer of its own" in str(refused.value)


def test_channels_on_the_last_axis_of_a_layer_that_is_not_rgb_are_refused(tiny_model):
    # (H, W, 3) shown by napari as planes (rgb=False) was segmented as a colour image
    image, _, _ = load_sample("c_histology_1")
    for channels in (image[:96, :96], image[:96, :96, :1]):
        with pytest.raises(ValueError, match="on its last axis and is not an RGB layer") as refused:
            run_to_end(iter_segment_one_click(channels, tiny_model))
        assert "image layer of its own" in str(refused.value)
    assert run_to_end(iter_segment_one_click(image[:96, :96], tiny_model, rgb=True)).labels.shape == (96, 96)


def test_a_stack_of_two_to_four_planes_is_told_how_to_split_channels():
    # DAPI and GFP as one layer of 2 planes: both segmented, and nothing said of channels
    from napari_cellseg.inference.segment import SegmentationResult

    def notes(planes):
        labels = np.zeros((planes, 96, 96), np.uint16)
        return result_notes(SegmentationResult(labels, None, 1.0, None, watershed={}), "C")

    assert "Split Stack and segment the nuclear one." in notes(2) and "RGB" not in notes(2)
    assert "Split Stack" in notes(4) and "open the image as RGB" in notes(4)
    assert "All 5 planes were segmented" in notes(5) and "Split Stack" not in notes(5)
