"""``napari-cellseg train``: options, config precedence, progress output, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from napari_cellseg.cli import build_parser, main
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.commands import parse_oversample, train_config_from_args
from napari_cellseg.training.config import TrainConfig


def test_registering_the_commands_imports_no_torch():
    code = (
        "import sys, argparse\n"
        "from napari_cellseg.training import commands\n"
        "commands.register(argparse.ArgumentParser().add_subparsers())\n"
        "print(sorted(m for m in ('torch', 'timm', 'cv2', 'skimage') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_parse_oversample():
    assert parse_oversample(["C=3", "B=1.5", "D=2"]) == {"C": 3.0, "B": 1.5, "D": 2.0}  # D: a lab's own tag
    for bad in ("C", "C=0", "C=x", "a b=2", "=2"):
        with pytest.raises(ValueError, match="expected TAG=WEIGHT"):
            parse_oversample([bad])


def test_options_override_the_config_file(tmp_path):
    TrainConfig(data_dir="from-file", out_dir="x", lr=0.1, epochs=7, seed=3).save(tmp_path / "t.json")
    args = build_parser().parse_args([
        "train", "--config", str(tmp_path / "t.json"), "--out", str(tmp_path / "out"), "--lr", "0.01",
        "--microscopes", "C", "--oversample", "C=3", "--class-weights", "1", "4", "2", "--from-scratch",
    ])  # fmt: skip
    config = train_config_from_args(args)
    assert (config.data_dir, config.epochs, config.seed) == ("from-file", 7, 3)  # from the file
    assert (config.lr, config.out_dir, config.microscopes) == (0.01, str(tmp_path / "out"), ("C",))
    assert config.sample_weights == {"C": 3.0} and config.class_weights == (1.0, 4.0, 2.0)
    assert config.pretrained is False


def test_train_prints_progress_and_resume_needs_only_out(tmp_path, sample_split, capsys):
    out = tmp_path / "run"
    common = ["--threads", "1", "--max-dev-images", "1", "--dev-metric", "pixel_f1"]
    status = main([
        "train", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--out", str(out),
        "-l", "2", "--la", "2", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
        "--patch-size", "64", "--oversample", "C=3", *common,
    ])  # fmt: skip
    assert status == 0
    captured = capsys.readouterr()
    err = captured.err
    assert "device: cpu" in err and "train: 5 images (A 3, B 1, C 1)" in err
    assert "epoch 1/1  loss" in err and "dev pixel_f1" in err
    assert "best pixel_f1" in captured.out  # the result on stdout, the progress on stderr
    assert TrainConfig.load(out / "train_config.json").sample_weights == {"C": 3.0}
    # Everything else comes from OUT/last; the run is complete, so resuming trains nothing more.
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--threads", "1"]) == 0
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--lr", "0.5"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "no such folder" in err and "Traceback" not in err
    assert main(["train", "--out", str(tmp_path / "o"), "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "data_dir is required" in err and "epochs must be >= 1" in err
    assert main(["train", "--data", str(SAMPLE_DIR), "--out", str(tmp_path / "o2"), "-l", "9"]) == 2
    assert "transfer_layers l=9 is out of range" in capsys.readouterr().err
