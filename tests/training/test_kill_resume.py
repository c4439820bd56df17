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
