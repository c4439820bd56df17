"""Model directories, logits -> probabilities, device choice."""

from __future__ import annotations

import json
import math

import pytest

from napari_cellseg.config import ConfigError
from napari_cellseg.data.normalize import NormalizationConfig
from napari_cellseg.models.checkpoint import (
    MODEL_CONFIG,
    MODEL_WEIGHTS,
    ModelConfig,
    load_model_config,
    load_model_dir,
    logits_to_probabilities,
    resolve_device,
    save_model_dir,
)
from napari_cellseg.models.m2 import ModelLoadError

torch = pytest.importorskip("torch")

from napari_cellseg.models.surgery import build_model  # noqa: E402


@pytest.fixture(scope="module")
def bce_model(tiny_m2):
    torch.manual_seed(0)
    return build_model(tiny_m2, transfer_layers=3, new_layers=2, frozen_layers=1, out_channels=2).eval()


def _config(model, **fields):
    return ModelConfig.for_model(
        model,
        loss="weighted-bce",
        normalization=NormalizationConfig(low_percentile=2.0),
        object_diameter=21.5,
        watershed={"min_size": 3},
        metrics={"ap50": 0.8},
        training={"epochs": 2},
        split_hash="abc",
        **fields,
    )


def test_save_and_load_round_trip_fp32(tmp_path, bce_model):
    config = _config(bce_model)
    directory = save_model_dir(tmp_path / "model", bce_model, config)
    loaded, loaded_config = load_model_dir(directory)
    assert not loaded.training
    assert loaded_config.weights_sha256
    assert loaded_config.normalization.low_percentile == 2.0
    assert loaded_config.normalization.mean == tiny_mean(bce_model)
    assert (loaded_config.transfer_layers, loaded_config.new_layers, loaded_config.frozen_layers) == (3, 2, 1)
    assert loaded_config.m2.arch == "mobilenetv3_small_050" and loaded_config.m2.sha256
    assert loaded_config.watershed == {"min_size": 3} and loaded_config.object_diameter == 21.5
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        assert torch.equal(loaded(x), bce_model(x))
    # The frozen stage stays frozen after reloading.
    assert not any(p.requires_grad for p in loaded.encoder[0].parameters())


def tiny_mean(model):
    return tuple(model.m2_config.mean)


def test_fp16_storage_halves_the_file_and_stays_close(tmp_path, bce_model):
    config = _config(bce_model)
    full = save_model_dir(tmp_path / "fp32", bce_model, config)
    half = save_model_dir(tmp_path / "fp16", bce_model, config, half=True)
    ratio = (half / MODEL_WEIGHTS).stat().st_size / (full / MODEL_WEIGHTS).stat().st_size
    assert 0.45 < ratio < 0.55
    loaded, _ = load_model_dir(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), bce_model(x), atol=0.05, rtol=0.01)


def test_saving_keeps_other_files_in_the_directory(tmp_path, bce_model):
    directory = tmp_path / "run"
    (directory / "last").mkdir(parents=True)
    (directory / "last" / "state.json").write_text("{}")
    save_model_dir(directory, bce_model, _config(bce_model))
    assert (directory / "last" / "state.json").is_file()
    assert sorted(p.name for p in directory.iterdir() if p.is_file()) == [MODEL_CONFIG, MODEL_WEIGHTS]


def test_config_must_describe_the_model(tmp_path, bce_model):
    config = _config(bce_model)
    config.new_layers = 4
    with pytest.raises(ValueError, match="new_layers: model 2 vs config 4"):
        save_model_dir(tmp_path / "m", bce_model, config)


def test_missing_files_are_named(tmp_path, bce_model):
    directory = save_model_dir(tmp_path / "m", bce_model, _config(bce_model))
    (directory / MODEL_WEIGHTS).unlink()
    with pytest.raises(ModelLoadError, match=r"missing model\.safetensors"):
        load_model_dir(directory)
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_model_dir(tmp_path / "nowhere")


def test_weights_from_another_save_are_detected(tmp_path, bce_model, tiny_m2):
    a = save_model_dir(tmp_path / "a", bce_model, _config(bce_model))
    other = build_model(tiny_m2, transfer_layers=3, new_layers=2, frozen_layers=1, out_channels=2)
    b = save_model_dir(tmp_path / "b", other, _config(other))
    (a / MODEL_WEIGHTS).write_bytes((b / MODEL_WEIGHTS).read_bytes())
    with pytest.raises(ModelLoadError, match="different saves"):
        load_model_dir(a)


def test_shape_mismatch_between_config_and_weights_is_named(tmp_path, bce_model):
    directory = save_model_dir(tmp_path / "m", bce_model, _config(bce_model))
    data = json.loads((directory / MODEL_CONFIG).read_text())
    data["decoder_channels"] = [64, 48, 40, 24, 16]
    data["weights_sha256"] = None
    (directory / MODEL_CONFIG).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=r"shape mismatch.*decoder\.blocks\.0"):
        load_model_dir(directory)


def test_invalid_config_is_a_clear_error(tmp_path, bce_model):
    directory = save_model_dir(tmp_path / "m", bce_model, _config(bce_model))
    data = json.loads((directory / MODEL_CONFIG).read_text())
    data["loss"] = "dice"
    (directory / MODEL_CONFIG).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="loss must be one of"):
        load_model_config(directory)
    with pytest.raises(ConfigError, match="needs out_channels=2"):
        ModelConfig(loss="weighted-bce", out_channels=3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"watershed": {"min_size": -5}}, r"config\.json: watershed: WatershedParams\.min_size must be"),
        ({"object_diameter": -3.0}, r"config\.json: object_diameter must be > 0 px"),
        # null is no setting: never a silent default (watershed) nor a crash far away (normalization)
        ({"watershed": None}, r"config\.json: watershed must be an object, got null"),
        ({"normalization": None}, r"config\.json: normalization must be an object, got null"),
        ({"target_thickness": None}, r"config\.json: target_thickness must be a whole number, got null"),
    ],
)
def test_bad_segmentation_settings_fail_at_load_naming_the_file(tmp_path, bce_model, change, message):
    directory = save_model_dir(tmp_path / "m", bce_model, _config(bce_model))
    data = json.loads((directory / MODEL_CONFIG).read_text())
    data.update(change)
    (directory / MODEL_CONFIG).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=message):
        load_model_config(directory)


def test_a_model_of_a_newer_format_says_to_update_not_unknown_keys(tmp_path, bce_model):
    directory = save_model_dir(tmp_path / "m", bce_model, _config(bce_model))
    data = json.loads((directory / MODEL_CONFIG).read_text())
    data.update(format_version=2, tile_policy="auto")
    (directory / MODEL_CONFIG).write_text(json.dumps(data))
    with pytest.raises(
        ModelLoadError,
        match=r"config\.json: written by a newer napari-cellseg \(format 2; this one reads 1\): update",
    ):
        load_model_config(directory)
    del data["weights_sha256"], data["format_version"], data["tile_policy"]  # an old file: still loads
    (directory / MODEL_CONFIG).write_text(json.dumps(data))
    assert load_model_dir(directory)[1].weights_sha256 is None


def test_a_model_trained_from_scratch_records_that_no_m2_weights_were_used(tmp_path, tiny_m2, load_script):
    # It used to record the sha256 of the M2 weights it never loaded (and the model card printed it).
    scratch = build_model(tiny_m2, transfer_layers=2, new_layers=2, pretrained=False)
    directory = save_model_dir(tmp_path / "scratch", scratch, ModelConfig.for_model(scratch))
    model, config = load_model_dir(directory)
    assert config.m2.pretrained is False and config.m2.sha256 == "" and config.m2.arch == tiny_m2[1].arch
    assert (
        ModelConfig.for_model(model).m2 == config.m2
    )  # kept when the model trains on (resume, --init-model)
    pretrained = build_model(tiny_m2, transfer_layers=2, new_layers=2)
    identity = ModelConfig.for_model(pretrained).m2
    assert identity.pretrained is True and identity.sha256 == tiny_m2[1].weights_sha256
    m2_line = load_script("bundle_default_model")._m2_line
    assert "no pretrained weights used" in m2_line(config.to_dict())
    assert "ImageNet" in m2_line(ModelConfig.for_model(pretrained).to_dict())


def test_config_round_trips_through_json():
    config = ModelConfig(loss="weighted-bce", out_channels=2, metrics={"ap": [0.5, 0.7]})
    assert ModelConfig.from_json(config.to_json()) == config


def test_softmax_probabilities_for_cross_entropy():
    logits = torch.randn(2, 3, 4, 5)
    probs = logits_to_probabilities(logits, "weighted-ce")
    torch.testing.assert_close(probs, torch.softmax(logits, dim=1))


def test_bce_probabilities_by_hand():
    # Pixel 0: f=0.8, b=0.3 -> (0.2, 0.3, 0.5). Pixel 1: f=0.4, b=0.9 -> (0.6, 0.4, 0).
    def logit(p):
        return math.log(p / (1 - p))

    logits = torch.tensor([[[[logit(0.8), logit(0.4)]], [[logit(0.3), logit(0.9)]]]])
    probs = logits_to_probabilities(logits, "weighted-bce")
    expected = torch.tensor([[[[0.2, 0.6]], [[0.3, 0.4]], [[0.5, 0.0]]]])
    assert probs.shape == (1, 3, 1, 2)
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0)
    random = logits_to_probabilities(torch.randn(3, 2, 8, 8) * 4, "weighted-bce")
    torch.testing.assert_close(random.sum(1), torch.ones(3, 8, 8))
    assert random.min() >= 0


def test_probabilities_check_the_channels():
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\), got \(1, 3, 4, 4\)"):
        logits_to_probabilities(torch.zeros(1, 3, 4, 4), "weighted-bce")
    with pytest.raises(ValueError, match="unknown loss"):
        logits_to_probabilities(torch.zeros(1, 3, 4, 4), "dice")


def test_resolve_device_gives_a_reason():
    device, reason = resolve_device("cpu")
    assert device.type == "cpu" and "CPU" in reason
    device, reason = resolve_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda" and "CUDA" in reason
    else:
        assert device.type in ("cpu", "mps") and reason
    with pytest.raises(ValueError, match="unknown device 'gpu please'"):
        resolve_device("gpu please")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_asked_for_without_cuda_is_explained():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
