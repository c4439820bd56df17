"""Fixtures of the training tests: a split of the package's sample data and tiny runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_cellseg.sample_data import SAMPLE_DIR, list_samples

# Keys of the package samples that train; the other C sample is the dev set.
TRAIN_KEYS = ("a_fluorescence_1", "a_fluorescence_2", "a_fluorescence_3", "b_brightfield", "c_histology_1")
DEV_KEY = "c_histology_2"


def write_split(path: Path, dev: bool = True) -> Path:
    samples = list_samples()
    lines = ["id,microscope,subset,group"]
    for key, sample in samples.items():
        subset = "dev" if key == DEV_KEY and dev else "train"
        lines.append(f"{sample.id},{sample.microscope},{subset},")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def sample_split(tmp_path_factory) -> Path:
    """split.csv of the package samples: 5 train images (A, A, A, B, C), 1 dev image (C)."""
    return write_split(tmp_path_factory.mktemp("split") / "split.csv")


@pytest.fixture
def tiny_config(tmp_path, sample_split):
    """Factory of small, fast TrainConfigs (default M2 with l=2, 64x64 crops, 1 thread)."""
    from napari_cellseg.training.config import TrainConfig

    def make(**overrides):
        settings = dict(
            data_dir=str(SAMPLE_DIR), split_path=str(sample_split), out_dir=str(tmp_path / "run"),
            transfer_layers=2, new_layers=2, epochs=2, steps_per_epoch=2, batch_size=2,
            patch_size=64, num_threads=1, max_dev_images=1, dev_metric="pixel_f1",
        )  # fmt: skip
        settings.update(overrides)
        return TrainConfig(**settings)

    return make


@pytest.fixture
def same_weights():
    """``same_weights(dir_a, dir_b)``: assert two model directories hold identical tensors."""
    import torch
    from safetensors.torch import load_file

    def compare(a: Path, b: Path) -> int:
        wa, wb = (load_file(str(Path(d) / "model.safetensors")) for d in (a, b))
        assert sorted(wa) == sorted(wb)
        different = [k for k in wa if not torch.equal(wa[k], wb[k])]
        assert not different, f"{len(different)} of {len(wa)} tensors differ, e.g. {different[:3]}"
        return len(wa)

    return compare
