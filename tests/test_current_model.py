"""The current-model registry and the settings file (no Qt, no torch)."""

from __future__ import annotations

import json

import pytest

from napari_cellseg.app import current_model
from napari_cellseg.models.checkpoint import ModelConfig


def fake_model_dir(path, **fields):
    """A model folder as far as the registry can tell: config.json and a weights file."""
    path.mkdir(parents=True)
    ModelConfig(**fields).save(path / "config.json")
    (path / "model.safetensors").write_bytes(b"")
    return path


def test_settings_file_lives_under_xdg_config_home(tmp_path):
    assert current_model.settings_path() == tmp_path / "xdg-config" / "napari-cellseg" / "settings.json"
    assert current_model.read_settings() == {}


def test_set_get_persist_and_notify(tmp_path, monkeypatch):
    model = fake_model_dir(tmp_path / "run-1")
    heard = []
    current_model.add_listener(heard.append)
    assert current_model.set_current_model(model) == model.resolve()
    assert current_model.get_current_model_dir() == model.resolve()
    assert heard == [model.resolve()]
    stored = json.loads(current_model.settings_path().read_text())
    assert stored == {"current_model": str(model.resolve())}
    monkeypatch.setattr(current_model, "_current", None)  # as after a restart
    assert current_model.get_current_model_dir() == model.resolve()
    current_model.clear_current_model()
    assert current_model.get_current_model_dir(default=False) is None
    assert "current_model" not in current_model.read_settings()


def test_a_vanished_model_is_not_current(tmp_path, monkeypatch):
    model = fake_model_dir(tmp_path / "run-2")
    current_model.set_current_model(model)
    (model / "model.safetensors").unlink()
    assert current_model.get_current_model_dir(default=False) is None
    monkeypatch.setattr(current_model, "_current", None)
    assert current_model.get_current_model_dir(default=False) is None


def test_bad_folders_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="no such model directory"):
        current_model.set_current_model(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"half: not a model directory, missing model\.safetensors"):
        current_model.set_current_model(tmp_path / "half")
    assert current_model.get_current_model_dir(default=False) is None


def test_settings_keep_other_keys_and_survive_a_corrupt_file(tmp_path):
    current_model.update_settings(other_panel={"x": 1})
    model = fake_model_dir(tmp_path / "run-3")
    current_model.set_current_model(model)
    assert current_model.read_settings()["other_panel"] == {"x": 1}
    current_model.settings_path().write_text("{ not json")
    assert current_model.read_settings() == {}  # ignored with a warning, never a crash
    current_model.set_current_model(model)  # and rewritten
    assert current_model.read_settings() == {"current_model": str(model.resolve())}


def test_a_failing_listener_does_not_stop_the_others(tmp_path):
    def broken(directory):
        raise RuntimeError("widget deleted")

    heard = []
    current_model.add_listener(broken)
    current_model.add_listener(heard.append)
    current_model.set_current_model(fake_model_dir(tmp_path / "run-4"))
    assert len(heard) == 1


def test_describe_model_and_its_watershed(tmp_path):
    model = fake_model_dir(
        tmp_path / "run-5",
        transfer_layers=3,
        new_layers=2,
        metrics={"dev_score": 0.712, "score_name": "ap50"},
        watershed={"interior_threshold": 0.7, "min_size": 30},
    )
    assert current_model.describe_model(model) == "run-5 (l=3, l_a=2, l_f=0; dev ap50 0.712)"
    tuned = fake_model_dir(
        tmp_path / "run-6",
        metrics={"dev_score": 0.593, "score_name": "ap50",
                 "watershed_tuned": {"subset": "dev", "microscope": "C", "ap_50": 0.6841, "dsb_score": 0.3691}},
    )  # fmt: skip
    assert current_model.describe_model(tuned).endswith(
        "; dev C AP@0.5 0.684, DSB 0.369 with the tuned watershed)"
    )
    assert current_model.model_watershed(model) == {"interior_threshold": 0.7, "min_size": 30}
    assert "train one in the Fine-tune panel" in current_model.describe_model(None)
    (model / "config.json").write_text("{ broken")
    assert current_model.describe_model(model).startswith("unusable model:")
    assert current_model.model_watershed(model) == {}
