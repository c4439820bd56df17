"""TrainConfig and the training engine called from Python: wrong types and values refused at the call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_cellseg.config import ConfigError
from napari_cellseg.training.config import TrainConfig
from napari_cellseg.training.engine import run_training, train


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"epochs": "2"}, "epochs must be a whole number, got '2'"),
        ({"epochs": 2.5}, "epochs must be a whole number, got 2.5"),
        ({"lr": "1e-3"}, "lr must be a number, got '1e-3'"),
        ({"pretrained": "no"}, "pretrained must be True or False, got 'no'"),
        ({"m2": None}, "m2 must be a string, got None"),
        ({"class_weights": (1, "5", 3)}, r"class_weights\[1\] must be a number, got '5'"),
        ({"microscopes": "C"}, "microscopes must be a list of strings, got 'C'"),
    ],
)
def test_a_wrong_type_is_refused_where_the_config_is_built(settings, message):
    # was accepted, then int("2") passed problems() and the run failed at its start (or deeper)
    with pytest.raises(TypeError, match=f"^TrainConfig: {message}"):
        TrainConfig(data_dir="d", out_dir="o", **settings)


def test_values_from_code_become_the_field_types():
    config = TrainConfig(data_dir=Path("d"), epochs=np.int64(3), lr=np.float32(0.5), class_weights=[1, 5, 3])
    assert config.data_dir == "d" and type(config.epochs) is int and type(config.lr) is float
    assert config.class_weights == (1.0, 5.0, 3.0)


def test_train_refuses_invalid_settings_at_the_call():
    # a generator: the settings were only read at the first next()
    with pytest.raises(ConfigError, match="epochs must be >= 1, got 0"):
        train(TrainConfig(data_dir="d", out_dir="o", epochs=0))
    config = TrainConfig(data_dir="d", out_dir="o")
    config.lr = "0.1"  # set after it was built
    with pytest.raises(ConfigError, match=r'lr must be a number, got "0\.1"'):
        train(config)


@pytest.mark.parametrize("config", ["run.json", Path("run.json")])
def test_a_path_says_how_to_read_the_config(config):
    with pytest.raises(TypeError, match=r"config must be a TrainConfig or a dict .*TrainConfig.load\(path\)"):
        run_training(config)
    with pytest.raises(TypeError, match=r"got NoneType None$"):
        train(None)


def test_run_training_takes_a_dict_of_settings(tiny_config, tmp_path):
    # was AttributeError: 'dict' object has no attribute 'to_dict'
    settings = tiny_config(epochs=1, steps_per_epoch=1, out_dir=str(tmp_path / "run")).to_dict()
    assert run_training(settings).epochs_done == 1
    with pytest.raises(ConfigError, match="TrainConfig: unknown key"):
        run_training({**settings, "epoch": 1})
