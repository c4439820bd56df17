"""--device cuda:N without torchrun: every query about "the GPU" asks about GPU N, not GPU 0.

The process's current GPU is never set (the GUI trains in a thread of napari's
process), so torch's current-GPU helpers would answer for GPU 0. No GPU is needed:
torch.cuda's queries are replaced by fakes that record which GPU they were asked about.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from napari_cellseg.models.device import cuda_bf16_supported
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.data import CropDataset, StepSampler, make_loader
from napari_cellseg.training.setup import pick_amp

GPU1 = torch.device("cuda", 1)


@pytest.fixture
def two_gpus(monkeypatch):
    """GPU 0 a Volta (no native bf16), GPU 1 an Ampere; the current GPU stays 0. Returns the GPUs asked about."""
    asked: list = []

    def capability(device=None):
        index = torch.device(device).index if device is not None else 0
        asked.append(index)
        return (8, 0) if index == 1 else (7, 0)

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: capability(0) >= (8, 0))
    return asked


def test_bf16_is_judged_on_the_chosen_gpu(two_gpus):
    assert cuda_bf16_supported(GPU1) and not cuda_bf16_supported(torch.device("cuda", 0))
    two_gpus.clear()
    assert pick_amp("auto", GPU1) == torch.bfloat16  # GPU 0 would have given fp16
    assert two_gpus == [1]


def test_prediction_on_cuda_n_judges_bf16_on_that_gpu(two_gpus, monkeypatch):
    from napari_cellseg.inference import runtime

    class Model(torch.nn.Module):
        def to(self, *args, **kwargs):  # no GPU here: stays on the CPU
            return self

    monkeypatch.setattr(runtime, "pick_device", lambda device: torch.device(device))
    runner = runtime.TileRunner(Model(), "ce", device="cuda:1")
    assert runner.amp_dtype == torch.bfloat16 and two_gpus == [1]


class _CurrentGpu:
    """A stand-in for ``torch.cuda.device``: which GPU is current, 0 outside every block."""

    current = 0

    @classmethod
    @contextlib.contextmanager
    def device(cls, device):
        before, cls.current = cls.current, torch.device(device).index
        try:
            yield
        finally:
            cls.current = before


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")  # the GPUs are faked
def test_the_loader_draws_and_pins_with_the_chosen_gpu_current(monkeypatch):
    from napari_cellseg.data.augment import Augmenter
    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.data.normalize import NormalizationConfig
    from napari_cellseg.training.data import image_weights

    monkeypatch.setattr(torch.cuda, "device", _CurrentGpu.device)
    dataset = CellDataset.open(SAMPLE_DIR)
    ids = dataset.ids[:2]
    weights = image_weights(dataset, ids, None, patch_size=64, area_weighted=False)
    crops = CropDataset(
        dataset, ids, weights, Augmenter.preset("none", patch_size=(64, 64)), NormalizationConfig()
    )
    seen = []
    draw = CropDataset.__getitem__
    monkeypatch.setattr(
        CropDataset, "__getitem__", lambda self, k: seen.append(_CurrentGpu.current) or draw(self, k)
    )
    batches = list(make_loader(crops, StepSampler(2, 0, 2), num_workers=0, device=GPU1))
    assert len(batches) == 2 and batches[0][0].shape == (2, 3, 64, 64)
    assert seen == [1, 1, 1, 1]  # pinned as drawn, without workers: on GPU 1
    assert _CurrentGpu.current == 0  # the process's current GPU is left alone


def test_training_hands_its_device_to_the_loader(tiny_config, monkeypatch):
    from napari_cellseg.training import engine

    devices = []
    real = engine.make_loader

    def spy(*args, **kwargs):
        devices.append(kwargs.get("device", args[3] if len(args) > 3 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "make_loader", spy)
    engine.run_training(tiny_config(epochs=1, steps_per_epoch=1, split_path=None))
    assert devices == [torch.device("cpu")]
