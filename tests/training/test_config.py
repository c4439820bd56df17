"""TrainConfig: JSON round trip, validation, resume compatibility, derived configs."""

from __future__ import annotations

import pytest

from napari_cellseg.config import ConfigError
from napari_cellseg.training.config import TrainConfig


def test_round_trips_through_json(tmp_path):
    config = TrainConfig(
        data_dir="d", out_dir="o", microscopes=("C",), sample_weights={"C": 3.0},
        class_weights=(1.0, 4.0, 2.0), augment={"p_flip": 0.0}, decoder_channels=(32, 16),
    )  # fmt: skip
    config.save(tmp_path / "train.json")
    again = TrainConfig.load(tmp_path / "train.json")
    assert again == config
    assert again.microscopes == ("C",) and isinstance(again.class_weights, tuple)


def test_unknown_key_in_a_file_is_refused(tmp_path):
    (tmp_path / "t.json").write_text('{"data_dir": "d", "epoch": 3}')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epoch'\]"):
        TrainConfig.load(tmp_path / "t.json")


def test_validate_lists_every_problem():
    config = TrainConfig(data_dir="d", out_dir="o", epochs=0, loss="dice", sample_weights={"D": 0}, lr=-1)
    with pytest.raises(ConfigError) as info:
        config.validate()
    message = str(info.value)
    for expected in ("epochs must be >= 1", "loss must be one of", "sample_weights: D=0", "lr must be > 0"):
        assert expected in message
    assert TrainConfig(data_dir="d", out_dir="o").validate().problems() == []


def test_incompatible_with_ignores_runtime_settings():
    a = TrainConfig(data_dir="d", out_dir="o", num_threads=1, lr=1e-3)
    b = TrainConfig(data_dir="elsewhere", out_dir="o2", num_threads=4, num_workers=2, lr=1e-3)
    assert a.incompatible_with(b) == []
    c = TrainConfig(data_dir="d", out_dir="o", lr=2e-3, seed=5)
    assert [p.split(":")[0] for p in c.incompatible_with(a)] == ["lr", "seed"]


def test_augment_config_takes_the_patch_size_and_the_preset():
    config = TrainConfig(patch_size=96, augment_preset="none")
    augment = config.augment_config()
    assert augment.patch_size == (96, 96)
    assert augment.p_flip == 0.0
    custom = TrainConfig(patch_size=64, augment={"p_flip": 0.25, "patch_size": [10, 10]}).augment_config()
    assert custom.p_flip == 0.25 and custom.patch_size == (64, 64)
    with pytest.raises(ConfigError, match="unknown augmentation preset"):
        TrainConfig(augment_preset="wild").augment_config()


def test_normalization_defaults_to_m2_statistics():
    norm = TrainConfig().normalization_config(mean=(0.1, 0.2, 0.3), std=(1.0, 1.0, 2.0))
    assert norm.mean == (0.1, 0.2, 0.3) and norm.std == (1.0, 1.0, 2.0)
    given = TrainConfig(normalization={"low_percentile": 2.0}).normalization_config()
    assert given.low_percentile == 2.0
    # A run's own percentiles still standardise with the M2's statistics, as the saved model will.
    both = TrainConfig(normalization={"low_percentile": 2.0}).normalization_config((0.1,) * 3, (2.0,) * 3)
    assert both.low_percentile == 2.0 and both.mean == (0.1,) * 3 and both.std == (2.0,) * 3
    with pytest.raises(ConfigError, match="differs from the M2's"):
        TrainConfig(normalization={"mean": [0.5] * 3}).normalization_config((0.1,) * 3, (2.0,) * 3)


def test_default_threads_leave_a_core_and_share_among_local_ranks(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 9)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert TrainConfig().resolved_threads() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert TrainConfig().resolved_threads() == 4
    assert TrainConfig(num_threads=3).resolved_threads() == 3


def test_target_profile_is_checked_and_needs_weighted_ce():
    from napari_cellseg.training.config import TrainConfig

    base = dict(data_dir="d", out_dir="o")
    assert TrainConfig(**base, target_profile="distance").problems() == []
    assert any(
        "target_profile must be one of" in p for p in TrainConfig(**base, target_profile="soft").problems()
    )
    problems = TrainConfig(**base, target_profile="distance", loss="weighted-bce").problems()
    assert problems == ["target_profile='distance' needs loss 'weighted-ce', got 'weighted-bce'"]
    again = TrainConfig.from_dict(TrainConfig(**base, target_profile="distance").to_dict())
    assert again.target_profile == "distance"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"lr": true}', "lr must be a number, got true"),
        ('{"lr": "0.001"}', 'lr must be a number, got "0.001"'),
        ('{"epochs": "1"}', 'epochs must be a whole number, got "1"'),
        ('{"epochs": 2.5}', "epochs must be a whole number, got 2.5"),
        ('{"pretrained": 1}', "pretrained must be true or false, got 1"),
        ('{"microscopes": "C"}', 'microscopes must be a list of strings, got "C"'),
        ('{"class_weights": [1, 5]}', r"class_weights must be a list of 3 numbers, got \[1, 5\]"),
        ('{"sample_weights": {"C": "x"}}', 'sample_weights.C must be a number, got "x"'),
        ('{"object_diameter": "big"}', 'object_diameter must be a number or null, got "big"'),
        ("[1, 2]", r"must be a JSON object, got \[1, 2\]"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_file(tmp_path, text, message):
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(
        ConfigError, match=r"^" + str(tmp_path / "c.json").replace(".", r"\.") + ": " + message
    ):
        TrainConfig.load(tmp_path / "c.json")


def test_json_numbers_convert_where_the_value_is_exact():
    config = TrainConfig.from_dict({"lr": 1, "epochs": 3.0, "object_diameter": 20})
    assert isinstance(config.lr, float) and config.lr == 1.0
    assert isinstance(config.epochs, int) and config.epochs == 3
    assert isinstance(config.object_diameter, float)


def test_a_nested_config_names_the_field_path():
    from napari_cellseg.models.checkpoint import ModelConfig

    with pytest.raises(
        ConfigError, match=r'^ModelConfig: normalization\.mean\[1\] must be a number, got "a"$'
    ):
        ModelConfig.from_dict({"normalization": {"mean": [0.5, "a", 0.5]}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['meen'\] in normalization"):
        ModelConfig.from_dict({"normalization": {"meen": [0.5, 0.5, 0.5]}})


def test_numpy_scalars_set_from_code_become_json_values():
    import json

    import numpy as np

    from napari_cellseg.inference.watershed import WatershedParams

    params = WatershedParams.from_dict(
        {"min_size": np.int64(3), "interior_threshold": np.float32(0.5), "keep_unmarked": np.bool_(False)}
    )
    assert json.loads(params.to_json())["min_size"] == 3 and params.keep_unmarked is False
    assert type(params.interior_threshold) is float


def test_a_run_configured_with_paths_and_numpy_numbers_trains(tiny_config, tmp_path):
    # TrainConfig takes them from code; the run used to fail writing train_config.json.
    from pathlib import Path

    import numpy as np

    from napari_cellseg.training.engine import run_training

    base = tiny_config(epochs=1, steps_per_epoch=1)
    config = TrainConfig.from_dict(
        {**base.to_dict(), "data_dir": Path(base.data_dir), "out_dir": tmp_path / "run"}
    )
    config.lr, config.batch_size = np.float32(1e-3), np.int64(2)
    assert run_training(config).epochs_done == 1
    stored = TrainConfig.load(tmp_path / "run" / "train_config.json")
    assert stored.out_dir == str(tmp_path / "run") and stored.batch_size == 2


def test_an_unknown_augment_preset_or_a_bad_augment_dict_is_refused_up_front():
    # checked when the run built its augmentation: a sweep trained its other runs first
    base = dict(data_dir="d", out_dir="o")
    assert TrainConfig(**base, augment_preset="light").problems() == []
    (problem,) = TrainConfig(**base, augment_preset="nonsense").problems()
    assert problem.startswith("augment_preset must be one of [") and "got 'nonsense'" in problem
    assert TrainConfig(**base, augment={"p_flip": 0.2}).problems() == []
    (problem,) = TrainConfig(**base, augment={"p_flip": 2.0}).problems()
    assert problem == "augment: p_flip is a probability in [0, 1], got 2.0"
    (problem,) = TrainConfig(**base, augment={"p_flipp": 0.2}).problems()
    assert problem.startswith("augment: AugmentConfig: unknown key(s) ['p_flipp']")
