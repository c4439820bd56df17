"""One spelling and one behaviour per option across the ``napari-cellseg`` subcommands."""

from __future__ import annotations

import shutil

import pytest

from napari_cellseg.cli import main
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.sample_data import SAMPLE_DIR


def _one_slide_with_outlines(tmp_path):
    from napari_cellseg.inference.outlines import write_geojson

    samples = CellDataset.open(SAMPLE_DIR)
    record = samples.records[0]
    slides = tmp_path / "slides"
    slides.mkdir()
    shutil.copyfile(record.image_path, slides / record.image_path.name)
    write_geojson(slides / f"{record.id}.geojson", samples.load_instances(record.id))
    return slides


def test_import_outlines_takes_data_as_every_command_and_still_dataset(tmp_path, capsys):
    slides = _one_slide_with_outlines(tmp_path)
    assert main(["import-outlines", str(slides), "--data", str(tmp_path / "new"), "--microscope", "C"]) == 0
    assert len(CellDataset.open(tmp_path / "new")) == 1
    assert (
        main(["import-outlines", str(slides), "--dataset", str(tmp_path / "old"), "--microscope", "C"]) == 0
    )
    assert len(CellDataset.open(tmp_path / "old")) == 1
    capsys.readouterr()
    (tmp_path / "file").write_text("")
    assert main(["import-outlines", str(slides), "--data", str(tmp_path / "file"), "--microscope", "C"]) == 2
    assert f"--data {tmp_path / 'file'} is a file" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "pretrain", "segment", "tune-watershed"])
def test_every_device_option_takes_the_same_names(command):
    from napari_cellseg.cli import build_parser

    parser = build_parser()
    required = {
        "train": ["--out", "o"],
        "pretrain": ["--data", "d", "--arch", "a", "--out", "o"],
        "segment": ["image.tif"],
        "tune-watershed": ["--model", "m", "--data", "d"],
    }[command]
    for name in ("auto", "cpu", "cuda", "cuda:0", "CUDA:1", "mps"):
        assert parser.parse_args([command, *required, "--device", name]).device == name.lower()
    with pytest.raises(SystemExit):
        parser.parse_args([command, *required, "--device", "gpu"])


def test_a_training_config_takes_a_gpu_index_but_torchrun_refuses_it_by_name():
    from napari_cellseg.config import ConfigError
    from napari_cellseg.training.config import TrainConfig
    from napari_cellseg.training.distributed import DistributedContext
    from napari_cellseg.training.setup import TrainingError, pick_device

    config = TrainConfig(data_dir="d", out_dir="o", device="cuda:1")
    assert config.validate().device == "cuda:1"
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        TrainConfig(data_dir="d", out_dir="o", device="gpu").validate()
    torchrun = DistributedContext(rank=1, world_size=2, local_rank=1)
    with pytest.raises(
        TrainingError, match=r"names one GPU, but under torchrun .* LOCAL_RANK \(this one: 1\)"
    ):
        pick_device(config, torchrun)


def test_every_option_with_a_default_shows_it_and_train_shows_train_configs_own():
    import argparse
    from dataclasses import fields

    from napari_cellseg.cli import build_parser
    from napari_cellseg.training.config import TrainConfig

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        for action in command._actions:
            shown = getattr(action, "shown_default", action.default)
            if action.option_strings and action.nargs != 0 and shown not in (None, (), "", argparse.SUPPRESS):
                help_text = " ".join(command._get_formatter()._expand_help(action).split())
                assert "default" in help_text, (name, action.dest)
    train = " ".join(commands["train"].format_help().split())
    config = {f.name: getattr(TrainConfig(), f.name) for f in fields(TrainConfig)}
    for option, field in (("--batch-size", "batch_size"), ("--lr", "lr"), ("--patch-size", "patch_size")):
        after = train[train.index(f"{option} {option.lstrip('-').upper().replace('-', '_')} ") :]
        assert f"(default: {config[field]:g})" in after.split(" --")[0], option


def test_a_config_device_is_read_as_the_option_reads_it():
    from napari_cellseg.models.device import resolve_device
    from napari_cellseg.training.config import TrainConfig

    # check_device_name takes " CPU" (case and spaces): what runs, and the fp16 check, read it the same
    assert str(resolve_device(" CPU ")[0]) == "cpu"
    problems = TrainConfig(data_dir="d", out_dir="o", device="CPU", amp="fp16").problems()
    assert any("amp 'fp16' trains on CUDA only" in p for p in problems)
