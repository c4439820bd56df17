"""``kill -9`` a training process after its first checkpoint, resume: same weights as a whole run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from napari_cellseg.training.engine import run_training

torch.set_num_threads(1)

SETTINGS = dict(epochs=4, steps_per_epoch=3)


def _cli_args(config) -> list[str]:
    return [
        "train", "--data", config.data_dir, "--split", config.split_path, "--out", config.out_dir,
        "-l", str(config.transfer_layers), "--la", str(config.new_layers),
        "--epochs", str(config.epochs), "--steps-per-epoch", str(config.steps_per_epoch),
        "--batch-size", str(config.batch_size), "--patch-size", str(config.patch_size),
        "--threads", "1", "--max-dev-images", "1", "--dev-metric", config.dev_metric, "--quiet",
    ]  # fmt: skip


def test_kill_9_after_the_first_checkpoint_then_resume(tiny_config, tmp_path, same_weights):
    killed = tiny_config(out_dir=str(tmp_path / "killed"), **SETTINGS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "napari_cellseg.cli", *_cli_args(killed)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    marker = Path(killed.out_dir) / "last" / "training_state.json"
    deadline = time.monotonic() + 120
    try:
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), process.stderr.read().decode() if process.poll() is not None else "timed out"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    if process.returncode != -signal.SIGKILL:
        pytest.fail(f"the training finished (status {process.returncode}) before it could be killed")

    whole = tiny_config(out_dir=str(tmp_path / "whole"), **SETTINGS)
    expected = run_training(whole)
    resumed = run_training(killed, resume=True)
    assert resumed.epochs_done == SETTINGS["epochs"] and not resumed.cancelled
    assert resumed.history[-1] == expected.history[-1]
    assert same_weights(Path(whole.out_dir) / "last", Path(killed.out_dir) / "last") > 10
    same_weights(whole.out_dir, killed.out_dir)


def test_resume_before_the_first_epoch_says_so_and_how_to_start_again(tiny_config, tmp_path, capsys):
    import platform

    from napari_cellseg.cli import main
    from napari_cellseg.training.checkpoints import OUT_LOCK, write_train_config

    config = tiny_config(out_dir=str(tmp_path / "run"), epochs=1, steps_per_epoch=1)
    out = Path(config.out_dir)
    out.mkdir()
    write_train_config(out, config)  # what a run killed in its first epoch leaves
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # while another process still writes it, `--resume` names that process
        (out / OUT_LOCK).write_text(f"{sleeper.pid}@{platform.node()} token")
        assert main(["train", "--resume", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"another train process is writing {out} (pid {sleeper.pid}" in err and "no epoch yet" in err
    finally:
        sleeper.kill()
        sleeper.wait()
    assert main(["train", "--resume", "--out", str(out)]) == 2  # its process is gone: the lock is stale
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "data_dir is required" not in err
    again = err.split("its settings are in ", 1)[1].split("napari-cellseg ", 1)[1].split()
    assert again[:4] == ["train", "--config", str(out / "train_config.json"), "--out"]
    assert main([*again, "--threads", "1", "--quiet"]) == 0  # the command it suggests runs the run
    assert (out / "model.safetensors").is_file() and (out / "last" / "training_state.json").is_file()


def test_resume_of_a_finished_run_whose_last_is_gone_advises_a_new_out(tiny_config, tmp_path, capsys):
    # "start it again with --config OUT/train_config.json --out OUT" was refused: OUT holds a model
    from napari_cellseg.cli import main
    from napari_cellseg.training.checkpoints import write_train_config

    out = tmp_path / "run"
    out.mkdir()
    write_train_config(out, tiny_config(out_dir=str(out)))
    (out / "model.safetensors").write_bytes(b"the run's best model")  # last/ deleted to save space
    assert main(["train", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the run's model is there (model.safetensors) but its resumable state" in err and "is gone" in err
    assert f"--config {out / 'train_config.json'} --out NEW_OUT" in err and f"--init-model {out}" in err
    assert f"--out {out} " not in err and not err.rstrip().endswith(f"--out {out}")
