"""``train`` under torchrun: 2 CPU processes (gloo), disjoint shards, DDP step = union step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.distributed import DistributedContext, env_context

torch.set_num_threads(1)

# Runs the real CLI, recording which crops each rank reads and which checkpoints it
# writes. BatchNorm stays in eval mode: PyTorch's SyncBatchNorm needs GPUs, and with
# per-rank batch statistics a DDP step would not equal a step on the union batch.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from napari_cellseg.models import surgery
    from napari_cellseg.training import data, engine

    train = surgery.CellSegNet.train
    def train_bn_eval(self, mode=True):
        train(self, mode)
        for module in self.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self
    surgery.CellSegNet.train = train_bn_eval

    seen, saves = [], []
    getitem = data.CropDataset.__getitem__
    def record_getitem(self, index):
        seen.append(int(index))
        return getitem(self, index)
    data.CropDataset.__getitem__ = record_getitem
    for name in ("save_last", "save_best"):
        def record_save(*args, _save=getattr(engine, name), _name=name, **kwargs):
            saves.append(_name)
            return _save(*args, **kwargs)
        setattr(engine, name, record_save)

    from napari_cellseg.cli import main
    status = main(sys.argv[1:])
    name = f"rank{os.environ.get('RANK', 0)}-of-{os.environ.get('WORLD_SIZE', 1)}.json"
    with open(os.path.join(os.environ["RECORD_DIR"], name), "w") as fh:
        json.dump({"seen": seen, "saves": saves}, fh)
    sys.exit(status)
    """
)


def test_env_context_reads_torchrun_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env_context() == DistributedContext()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    context = env_context()
    assert (context.rank, context.world_size, context.local_rank, context.is_main) == (3, 4, 1, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="inconsistent"):
        env_context()


def _batchnorm_in_eval_mode(monkeypatch) -> None:
    from napari_cellseg.models import surgery

    train = surgery.CellSegNet.train

    def train_bn_eval(self, mode=True):
        train(self, mode)
        for module in self.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    monkeypatch.setattr(surgery.CellSegNet, "train", train_bn_eval)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["weighted-ce", "weighted-bce"])
def test_two_process_ddp_step_equals_the_union_step(tmp_path, monkeypatch, tiny_config, loss):
    from safetensors.torch import load_file

    from napari_cellseg.models.surgery import build_model
    from napari_cellseg.training import data
    from napari_cellseg.training.engine import run_training

    script = tmp_path / "train_recorded.py"
    script.write_text(SCRIPT)
    args = [
        "train", "--data", str(SAMPLE_DIR), "-l", "2", "--la", "2", "--epochs", "1",
        "--steps-per-epoch", "1", "--patch-size", "64", "--threads", "1", "--quiet",
        "--out", str(tmp_path / "ddp"), "--batch-size", "2", "--loss", loss,
    ]  # fmt: skip
    env = {**os.environ, "RECORD_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ddp = subprocess.Popen(
        [*torchrun, str(script), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )

    # Meanwhile, the same step in one process on the union batch (4 crops).
    _batchnorm_in_eval_mode(monkeypatch)
    seen = []
    getitem = data.CropDataset.__getitem__
    monkeypatch.setattr(data.CropDataset, "__getitem__", lambda self, k: seen.append(k) or getitem(self, k))
    single = tiny_config(split_path=None, out_dir=str(tmp_path / "single"), epochs=1, steps_per_epoch=1,
                         batch_size=4, loss=loss)  # fmt: skip
    run_training(single)
    ddp_output = ddp.communicate(timeout=300)[0].decode()
    assert ddp.returncode == 0, ddp_output

    rank0, rank1 = (json.loads((tmp_path / f"rank{r}-of-2.json").read_text()) for r in (0, 1))
    assert rank0["seen"] == [0, 1] and rank1["seen"] == [2, 3]  # disjoint shards of step 0
    assert sorted(rank0["seen"] + rank1["seen"]) == seen == [0, 1, 2, 3]
    assert rank0["saves"] == ["save_last", "save_best"] and rank1["saves"] == []

    ddp_weights = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    single_weights = load_file(str(tmp_path / "single" / "model.safetensors"))
    for key, value in single_weights.items():
        torch.testing.assert_close(ddp_weights[key], value, rtol=1e-5, atol=1e-6, msg=key)
    torch.manual_seed(0)  # the engine's initialisation: the step did change the weights
    initial = build_model(
        transfer_layers=2, new_layers=2, out_channels=3 if loss == "weighted-ce" else 2
    ).state_dict()
    assert not torch.allclose(initial["head.weight"], single_weights["head.weight"])


def test_every_rank_refuses_an_out_folder_that_holds_a_run(tiny_config, monkeypatch):
    # Rank 0 alone checked --out: rank 1 went on to the barrier and saw rank 0 leave
    # ("Connection closed by peer") instead of the reason.
    from napari_cellseg.config import ConfigError
    from napari_cellseg.training import engine

    config = tiny_config(epochs=1, steps_per_epoch=1, batch_size=1)
    engine.run_training(config)

    def barrier(context):
        raise AssertionError(f"rank {context.rank} reached the barrier before checking --out")

    monkeypatch.setattr(engine, "barrier", barrier)
    rank1 = DistributedContext(rank=1, world_size=2)
    with pytest.raises(ConfigError, match="already holds a training run; pass resume"):
        next(engine._train(config, rank1, False, None, None))
