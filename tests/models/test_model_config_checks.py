"""A model's config.json with a key missing or a value out of range fails at load, naming the file."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from napari_cellseg.cli import main
from napari_cellseg.models.checkpoint import (
    MODEL_CONFIG,
    ModelConfig,
    load_model_config,
    load_model_dir,
    save_model_dir,
)
from napari_cellseg.models.model_config_checks import REQUIRED_MODEL_KEYS
from napari_cellseg.models.weights_io import ModelLoadError

torch = pytest.importorskip("torch")

from napari_cellseg.models.surgery import build_model  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tiny_m2, tmp_path_factory):
    """A saved model of the tiny M2, whose ImageNet mean/std differ from the 0.5 defaults."""
    torch.manual_seed(0)
    model = build_model(tiny_m2, transfer_layers=3, new_layers=2, frozen_layers=1).eval()
    config = ModelConfig.for_model(model, target_thickness=2, object_diameter=20.0, default_diameter=0.0)
    return save_model_dir(tmp_path_factory.mktemp("model") / "m", model, config)


def _edited(model_dir, folder, edit):
    """A copy of ``model_dir`` whose config.json data went through ``edit`` (the weights' hash still matches)."""
    shutil.copytree(model_dir, folder)
    data = json.loads((folder / MODEL_CONFIG).read_text())
    edit(data)
    (folder / MODEL_CONFIG).write_text(json.dumps(data))
    return folder


def _error(call, *args):
    with pytest.raises(ModelLoadError) as info:
        call(*args)
    return str(info.value)


def test_a_lost_normalization_is_refused_not_replaced_by_the_defaults(model_dir, tmp_path):
    assert load_model_config(model_dir).normalization.mean != (0.5, 0.5, 0.5)  # ImageNet's
    folder = _edited(model_dir, tmp_path / "m", lambda data: data.pop("normalization"))
    message = _error(load_model_dir, folder)
    assert message.startswith(f"{folder / MODEL_CONFIG}: missing key(s) normalization:"), message


@pytest.mark.parametrize("key", [*REQUIRED_MODEL_KEYS, "normalization.mean", "normalization.std"])
def test_every_key_that_defines_the_model_is_required(model_dir, tmp_path, key):
    def drop(data):
        if "." in key:
            outer, inner = key.split(".")
            del data[outer][inner]
        else:
            del data[key]

    folder = _edited(model_dir, tmp_path / "m", drop)
    message = _error(load_model_config, folder)
    assert f"{folder / MODEL_CONFIG}: missing key(s) {key}:" in message
    assert "another architecture" not in message  # what a lost transfer_layers used to say


def test_keys_an_older_format_1_model_may_lack_still_load(model_dir, tmp_path):
    def old(data):  # added within format 1 (default_diameter, m2.pretrained), or records
        for key in ("default_diameter", "class_weights", "boundary_weight", "format_version", "watershed",
                    "split_hash", "metrics", "training"):  # fmt: skip
            del data[key]
        del data["m2"]["pretrained"]

    folder = _edited(model_dir, tmp_path / "m", old)
    _, config = load_model_dir(folder)
    assert config.default_diameter is None and config.m2.pretrained is True
    assert config.normalization == load_model_config(model_dir).normalization


def test_the_bundled_model_and_an_older_copy_of_it_load(tmp_path):
    from napari_cellseg.inference.runtime import default_model_dir

    bundled = default_model_dir()
    assert load_model_config(bundled).transfer_layers >= 1
    older = _edited(bundled, tmp_path / "older", lambda data: data.pop("default_diameter"))
    assert load_model_config(older).default_diameter is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"transfer_layers": 0}, r"transfer_layers l=0 is out of range \(at least 1"),
        ({"frozen_layers": 4}, r"frozen_layers l_f=4 is out of range for l=3 \(0\.\.3"),
        ({"new_layers": 0}, r"new_layers l_a=0 is out of range for l=3 \(1\.\.5\)"),
        ({"decoder_channels": [16, 8]}, r"decoder_channels must be at least transfer_layers=3 positive"),
        ({"decoder_channels": [16, 8, 0]}, r"decoder_channels must be at least transfer_layers=3 positive"),
        ({"default_diameter": float("nan")}, r"default_diameter must be >= 0 .*got nan"),
        ({"default_diameter": float("inf")}, r"default_diameter must be >= 0 .*got inf"),
        ({"object_diameter": float("inf")}, r"object_diameter must be > 0 px or None, got inf"),
        ({"class_weights": [1.0, -5.0, 3.0]}, r"class_weights must be 3 positive numbers"),
        ({"class_weights": [1.0, float("nan"), 3.0]}, r"class_weights must be 3 positive numbers"),
        ({"target_thickness": -1}, r"target_thickness must be a whole number of pixels >= 1, got -1"),
        ({"boundary_weight": -3.0}, r"boundary_weight must be a positive number, got -3\.0"),
        ({"arch": ""}, r"arch must be a timm model name"),
    ],
)
def test_out_of_range_values_fail_at_load_naming_the_file(model_dir, tmp_path, change, message):
    folder = _edited(model_dir, tmp_path / "m", lambda data: data.update(change))
    error = _error(load_model_config, folder)
    assert error.startswith(f"{folder / MODEL_CONFIG}: "), error
    assert re.search(message, error), error


def test_more_transfer_layers_than_the_m2_has_name_the_config_at_export(model_dir, tmp_path, capsys):
    # Only the network surgery knows the M2's depth (5 stages here): it says so naming config.json.
    folder = _edited(
        model_dir, tmp_path / "m", lambda data: data.update(transfer_layers=6, decoder_channels=[8] * 6)
    )
    message = _error(load_model_dir, folder)
    assert message.startswith(f"{folder / MODEL_CONFIG}: M2 "), message
    assert "transfer_layers l=6 is out of range" in message
    out = tmp_path / "x.pt"
    assert main(["export", "--model", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{folder / MODEL_CONFIG}: M2 " in err and "Traceback" not in err
    assert not out.exists()


def test_an_unknown_arch_at_load_names_the_config(model_dir, tmp_path):
    folder = _edited(model_dir, tmp_path / "m", lambda data: data.update(arch="no_such_net"))
    message = _error(load_model_dir, folder)
    assert message.startswith(f"{folder / MODEL_CONFIG}: unknown architecture 'no_such_net'"), message
