"""``napari_cellseg.config``: JSON dataclasses, their type checks and their files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from napari_cellseg.config import ConfigError, JsonConfig


@dataclass
class Example(JsonConfig):
    count: int = 1
    ratio: float | None = None
    names: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def test_null_is_refused_unless_the_field_may_be_none(tmp_path):
    path = tmp_path / "example.json"
    path.write_text(json.dumps({"count": None}))
    with pytest.raises(ConfigError, match=r"example\.json: count must be a whole number, got null"):
        Example.load(path)
    with pytest.raises(ConfigError, match=r"names must be a list of strings, got null"):
        Example.from_dict({"names": None})
    loaded = Example.from_dict({"ratio": None, "extra": {"anything": None}})
    assert loaded.ratio is None and loaded.extra == {"anything": None}


def test_train_config_file_with_null_names_the_file_and_the_key(tmp_path):
    from napari_cellseg.training.config import TrainConfig

    path = tmp_path / "run.json"
    path.write_text('{"epochs": null, "max_dev_images": null}')
    with pytest.raises(ConfigError, match=r"run\.json: epochs must be a whole number, got null"):
        TrainConfig.load(path)
    path.write_text('{"max_dev_images": null, "object_diameter": null}')
    assert TrainConfig.load(path).max_dev_images is None


@dataclass
class Versioned(JsonConfig):
    FORMAT_VERSION: ClassVar[int] = 1

    format_version: int = 1
    size: int = 0


def test_a_file_of_a_newer_format_is_named_as_such():
    with pytest.raises(
        ConfigError, match=r"v\.json: written by a newer napari-cellseg \(format 3; this one reads 1\)"
    ):
        Versioned.from_dict({"format_version": 3, "shape": "new"}, _where="v.json")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['shape'\]"):
        Versioned.from_dict({"format_version": 1, "shape": "typo"})
    assert Versioned.from_dict({}).to_dict() == {"format_version": 1, "size": 0}


def test_values_set_from_code_are_written_as_plain_json(tmp_path):
    from pathlib import Path

    import numpy as np

    @dataclass
    class Settings(JsonConfig):
        folder: str = ""
        size: int = 0
        rate: float = 0.0
        weights: tuple[float, ...] = ()

    settings = Settings(folder=tmp_path / "data", size=np.int64(3), rate=np.float32(0.5), weights=np.ones(2))
    data = settings.to_dict()  # a Path or numpy value used to fail: "not JSON serializable"
    assert data == {"folder": str(tmp_path / "data"), "size": 3, "rate": 0.5, "weights": [1.0, 1.0]}
    assert type(data["size"]) is int and type(data["rate"]) is float
    settings.save(tmp_path / "s.json")
    assert Settings.load(tmp_path / "s.json").folder == str(tmp_path / "data")
    assert Settings.from_dict({"folder": Path("x")}).folder == "x"


def test_atomic_writes_work_for_names_near_the_file_systems_limit(tmp_path):
    from napari_cellseg.config import atomic_write_text

    name = "é" * 100 + "x" * 50 + ".csv"  # 254 bytes: its temporary name must be shorter
    path = atomic_write_text(tmp_path / name, "id\n")
    assert path.read_text() == "id\n" and [p.name for p in tmp_path.iterdir()] == [name]


def test_yaml_reads_exponents_as_numbers(tmp_path):
    # YAML 1.1 (PyYAML's safe_load) reads 1e-3 as a string: a sweep grid then refused lr: [1e-3]
    from napari_cellseg.config import read_json_or_yaml

    path = tmp_path / "grid.yaml"
    path.write_text('lr: [1e-3, 3E-4, 1.0e-3, 2, .5]\nname: "1e-3"\n')
    assert read_json_or_yaml(path) == {"lr": [0.001, 0.0003, 0.001, 2, 0.5], "name": "1e-3"}
