"""What ``train`` tells the user: no split, a finished run resumed, help texts, the device line, NaN scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from napari_cellseg.cli import build_parser, main
from napari_cellseg.sample_data import SAMPLE_DIR, list_samples
from napari_cellseg.training.config import TrainConfig
from napari_cellseg.training.distributed import DistributedContext
from napari_cellseg.training.engine import run_training
from napari_cellseg.training.pretrain import PretrainConfig
from napari_cellseg.training.progress import TrainProgress, format_epoch
from napari_cellseg.training.reports import EpochReport, StartReport, TrainResult
from napari_cellseg.training.setup import no_split_warning, pick_device

torch.set_num_threads(1)
TINY = ["-l", "2", "--la", "2", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "64",
        "--threads", "1", "--max-dev-images", "1", "--dev-metric", "pixel_f1"]  # fmt: skip


def _help(*command: str) -> str:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices  # the subcommands' parsers
    for name in command:
        parser = sub[name]
    text = " ".join(parser.format_help().split())  # one line: help texts wrap anywhere
    return text[text.index("options:") :]  # not the usage line


def test_training_without_a_split_warns_even_when_quiet(tmp_path, capsys):
    out = tmp_path / "nosplit"
    assert (
        main(["train", "--data", str(SAMPLE_DIR), "--out", str(out), "--epochs", "1", "--quiet", *TINY]) == 0
    )
    err = " ".join(capsys.readouterr().err.split())
    warning = err[err.index("warning: no split file") :]
    assert "trains on every image" in warning and "test images included" in warning
    assert "no dev set to choose the best epoch" in warning and "no held-out test set" in warning
    assert "napari-cellseg split --data" in warning and "--split split.csv" in warning
    # with a split file in the dataset folder, the warning names it
    data = tmp_path / "data"
    data.mkdir()
    (data / "split.csv").write_text("id,subset\n")
    found = no_split_warning(TrainConfig(data_dir=str(data), out_dir="o"))
    assert f"{data / 'split.csv'} exists: pass --split {data / 'split.csv'}" in found
    assert no_split_warning(TrainConfig(data_dir=str(data), split_path="s.csv", out_dir="o")) is None
    text = _help("train")
    assert "Without it: every image trains (test images too), no dev score (the last epoch is kept)" in text


def test_resuming_a_finished_run_says_so_and_builds_nothing(tmp_path, sample_split, capsys, monkeypatch):
    out = tmp_path / "run"
    args = ["train", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--out", str(out), "--quiet"]
    assert main([*args, "--epochs", "1", *TINY]) == 0
    best = json.loads((out / "config.json").read_text())
    capsys.readouterr()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was built again")

    monkeypatch.setattr("napari_cellseg.training.engine.train", no_training)
    monkeypatch.setattr("napari_cellseg.training.engine.build_run", no_training)
    (out / "config.json").unlink()  # torn while the best model was copied: made whole again
    assert main(["train", "--resume", "--out", str(out), "--threads", "1"]) == 0
    captured = capsys.readouterr()  # where the model is, a result: stdout
    assert f"{out} already finished (epoch 1 of 1): nothing to resume" in captured.out
    assert "resuming " not in captured.out + captured.err
    epoch, score = best["training"]["epoch"], best["metrics"]["dev_score"]
    assert (
        f"Its best model (epoch {epoch}, dev pixel_f1 {score:.4f}) is {out}/model.safetensors" in captured.out
    )
    assert json.loads((out / "config.json").read_text()) == best
    assert not (out / ".train.lock").exists()


def test_every_train_and_pretrain_option_says_what_it_does_and_its_default():
    train = _help("train")
    for option, default in (
        ("--loss", TrainConfig.loss), ("--class-weights", "1 5 3"), ("--epochs", TrainConfig.epochs),
        ("--weight-decay", f"{TrainConfig.weight_decay:g}"), ("--scheduler", TrainConfig.scheduler),
        ("--seed", TrainConfig.seed), ("--device", TrainConfig.device),
    ):  # fmt: skip
        assert f"(default: {default})" in train[train.index(f"{option} ") :].split(" --")[0], option
    assert "--max-dev-images N score only the first N dev images" in train
    assert "--quiet no progress: no bar, start lines or epoch lines" in train  # a log has no bar to drop
    pretrain = _help("pretrain")
    for option, default in (
        ("--epochs", PretrainConfig.epochs), ("--batch-size", PretrainConfig.batch_size),
        ("--lr", f"{PretrainConfig.lr:g}"), ("--seed", PretrainConfig.seed),
    ):  # fmt: skip
        assert f"(default: {default})" in pretrain[pretrain.index(f"{option} ") :].split(" --")[0], option
    assert "--quiet no line per epoch" in pretrain
    args = build_parser().parse_args(["pretrain", "--data", "d", "--arch", "a", "--out", "o"])
    assert (args.epochs, args.batch_size, args.lr, args.seed) == (
        PretrainConfig.epochs, PretrainConfig.batch_size, PretrainConfig.lr, PretrainConfig.seed,
    )  # fmt: skip
    demo = _help("demo")
    assert all(key in demo for key in list_samples())


def test_the_device_line_gives_the_thread_count_once():
    _, reason = pick_device(TrainConfig(device="auto"), DistributedContext())
    assert "thread" not in reason  # the start line says it
    lines = []
    progress = TrainProgress()
    progress.write = lines.append
    for threads, workers in ((1, 1), (2, 0)):
        progress._start(StartReport(
            "cpu", reason, None, threads, workers, 1, 1, 0, {"C": 1}, 10, 20, 1, 1, 2, 1, 0, False, "ap50", "/o",
        ))  # fmt: skip
        progress.__exit__(None, None, None)  # closes a bar (on a terminal) before the next start
    assert lines[0] == f"device: cpu ({reason}), 1 thread, 1 worker"
    assert lines[1] == "train: 1 image (C 1); dev: 0 images, score ap50; 10 of 20 parameters trainable"
    assert lines[2] == f"device: cpu ({reason}), 2 threads, 0 workers"


def test_a_nan_dev_score_is_never_the_best(tiny_config, capsys):
    scores = iter([math.nan, 0.4, math.nan])

    class Fake:
        score_name = "fake"

        def add(self, probabilities, target, instances):
            pass

        def result(self):
            return {"fake": next(scores)}

    epochs = []
    config = tiny_config(epochs=3, steps_per_epoch=1)
    keep = lambda report: epochs.append(report) if isinstance(report, EpochReport) else None  # noqa: E731
    result = run_training(config, evaluator=Fake, callback=keep)
    assert [e.is_best for e in epochs] == [False, True, False]
    assert (result.best_epoch, result.best_score) == (2, 0.4)
    assert "dev fake nan (not a number: never the best epoch)" in format_epoch(epochs[0])
    assert "best" not in format_epoch(epochs[0]).split("never the best epoch")[1]  # no best yet

    # every score NaN: no best model, and the summary says so
    scores = iter([math.nan])
    alone = tiny_config(out_dir=str(Path(config.out_dir).parent / "nan"), epochs=1, steps_per_epoch=1)
    result = run_training(alone, evaluator=Fake)
    assert result.best_epoch == 0 and not Path(alone.out_dir, "model.safetensors").exists()
    TrainProgress(enabled=False).summary(result)
    assert "no epoch had a finite dev fake: no best model was saved" in capsys.readouterr().err
    # stopped before its first scored epoch (dev every 3 epochs): not a NaN, not "no dev set"
    history = [{"epoch": k, "train_loss": 0.5, "lr": 1e-3, "dev": {}} for k in (1, 2)]
    TrainProgress(enabled=False).summary(TrainResult(alone.out_dir, 2, True, 0, None, "fake", 1.0, history))
    assert "no epoch was scored on dev yet: no best model was saved" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
