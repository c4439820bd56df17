"""A damaged ``last/training_state.json`` is refused in one message naming the file and the part."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from napari_cellseg.cli import main
from napari_cellseg.training.engine import run_training, train
from napari_cellseg.training.state import TrainingStateError

torch.set_num_threads(1)


def _no_optimizer(payload):
    del payload["state"]["optimizer"]


def _global_step_text(payload):
    payload["state"]["position"]["global_step"] = "x"


def _other_optimizer(payload):
    payload["state"]["optimizer"]["param_groups"] = []  # torch refuses it when it loads


def _history_of_strings(payload):
    payload["state"]["position"]["history"] = ["epoch 1"]


DAMAGES = [
    (lambda payload: payload.update(state={}), "'state' has no 'position'"),
    (lambda payload: payload.pop("state"), "it has no 'state'"),
    (_no_optimizer, "'state' has no 'optimizer'"),
    (_global_step_text, "'state.position.global_step' is 'x', not a whole number >= 0"),
    (_history_of_strings, "'state.position.history[0]' is 'epoch 1', not an epoch's record"),
    (_other_optimizer, "'state.optimizer' does not load (ValueError: "),
]


def test_a_damaged_training_state_is_named_with_what_to_do(tiny_config, capsys):
    config = tiny_config(epochs=2, steps_per_epoch=1, batch_size=1)
    run_training(config, cancel=lambda: bool(Path(config.out_dir, "last").is_dir()))  # stop after epoch 1
    state_json = Path(config.out_dir) / "last" / "training_state.json"
    intact = state_json.read_text()
    for damage, problem in DAMAGES:
        payload = json.loads(intact)
        damage(payload)
        state_json.write_text(json.dumps(payload))
        with pytest.raises(TrainingStateError) as info:
            next(train(config, resume=True))
        message = str(info.value)
        assert message.startswith(f"{state_json}: damaged training state") and problem in message, message
        assert "start a new run in another --out" in message and "split changed" not in message
    # The command line says it in one line, without a traceback.
    args = ["train", "--out", config.out_dir, "--resume", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        re.search(r"train: error: .*training_state\.json: damaged training state", err)
        and "Traceback" not in err
    )
    state_json.write_text(intact)  # repaired, it resumes
    assert run_training(config, resume=True).epochs_done == 2
