"""Training state without pickle: pack/unpack, files, RNG, atomic directories."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from napari_cellseg.training.state import (
    STATE_JSON,
    STATE_TENSORS,
    TrainingStateError,
    capture_rng_state,
    load_training_state,
    new_temp_dir,
    pack_state,
    recover_dir,
    replace_dir,
    restore_rng_state,
    save_training_state,
    unpack_state,
)

torch.set_num_threads(1)


def _optimizer_state():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    scheduler.step()
    return optimizer.state_dict(), scheduler.state_dict()


def test_pack_unpack_restores_optimizer_state_exactly():
    opt, sched = _optimizer_state()
    tree, tensors = pack_state({"optimizer": opt, "scheduler": sched, "pair": (1, 2.5)})
    # The tree is plain JSON: integer keys and tuples survive through tags.
    again = unpack_state(json.loads(json.dumps(tree)), tensors)
    assert again["pair"] == (1, 2.5)
    assert set(again["optimizer"]["state"]) == set(opt["state"])  # int keys, not "0"
    assert again["optimizer"]["param_groups"] == opt["param_groups"]  # betas stay a tuple
    for key, state in opt["state"].items():
        for name, value in state.items():
            assert torch.equal(again["optimizer"]["state"][key][name], value)
    assert again["scheduler"] == sched


def test_pack_refuses_objects_that_json_cannot_hold():
    with pytest.raises(TypeError, match=r"state\.bad: cannot store a object"):
        pack_state({"bad": object()})


def test_state_files_round_trip_and_load_into_a_fresh_optimizer(tmp_path):
    opt, sched = _optimizer_state()
    save_training_state(tmp_path, {"optimizer": opt, "scheduler": sched, "position": {"global_step": 7}})
    assert (tmp_path / STATE_TENSORS).is_file() and (tmp_path / STATE_JSON).is_file()
    loaded = load_training_state(tmp_path)
    assert loaded["position"] == {"global_step": 7}
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fresh.load_state_dict(loaded["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt["state"][0]["exp_avg"])


def test_missing_or_corrupt_state_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingStateError, match=r"training_state\.json: missing"):
        load_training_state(tmp_path)
    save_training_state(tmp_path, {"x": torch.ones(2)})
    (tmp_path / STATE_TENSORS).write_bytes(b"not safetensors")
    with pytest.raises(TrainingStateError, match="not a readable safetensors file"):
        load_training_state(tmp_path)
    (tmp_path / STATE_JSON).write_text("{")
    with pytest.raises(TrainingStateError, match="not readable JSON"):
        load_training_state(tmp_path)


def test_rng_states_are_restored():
    state = capture_rng_state()
    tree, tensors = pack_state(state)
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    restore_rng_state(unpack_state(json.loads(json.dumps(tree)), tensors))
    again = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


def test_replace_dir_swaps_and_recovers_from_a_crash_between_renames(tmp_path):
    final = tmp_path / "last"
    first = new_temp_dir(final)
    (first / "f").write_text("1")
    replace_dir(first, final)
    second = new_temp_dir(final)
    (second / "f").write_text("2")
    replace_dir(second, final)
    assert (final / "f").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    # A crash after "last -> .last.old" and before ".last.new -> last":
    final.rename(tmp_path / ".last.old")
    assert not final.exists()
    recover_dir(final)
    assert (final / "f").read_text() == "2"
