"""``pretrain``: an M2 classifier from a folder per class, usable by ``train --m2``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellseg.cli import main
from napari_cellseg.config import ConfigError
from napari_cellseg.sample_data import list_samples, load_sample
from napari_cellseg.training.pretrain import PretrainConfig, run_pretraining, scan_image_folder, split_samples

torch.set_num_threads(1)
ARCH = "mobilenetv3_small_050"  # tiny timm network


@pytest.fixture(scope="module")
def microscope_folder(tmp_path_factory):
    """6 real 64x64 crops per microscope (A, B, C) from the package samples, as PNG."""
    import imageio.v3 as iio

    root = tmp_path_factory.mktemp("image_folder")
    crops: dict[str, list[np.ndarray]] = {"A": [], "B": [], "C": []}
    for key, sample in list_samples().items():
        image = load_sample(key)[0]
        per_image = 6 // sum(s.microscope == sample.microscope for s in list_samples().values())
        for k in range(per_image):
            y, x = 32 * k, 40 * k
            crops[sample.microscope].append(image[y : y + 64, x : x + 64])
    for microscope, images in crops.items():
        (root / microscope).mkdir()
        for k, image in enumerate(images):
            iio.imwrite(root / microscope / f"{k}.png", image)
    return root


def test_scan_and_split_the_folder(microscope_folder, tmp_path):
    classes, samples = scan_image_folder(microscope_folder)
    assert classes == ["A", "B", "C"] and len(samples) == 18
    train, val = split_samples(samples, 0.3, seed=0)
    assert sorted(c for _, c in val) == [0, 0, 1, 1, 2, 2] and len(train) == 12
    with pytest.raises(ConfigError, match="--classes 10 but the folder has 3 class subfolders"):
        scan_image_folder(microscope_folder, num_classes=10)
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.png").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"without images .*\['empty_class'\]"):
        scan_image_folder(tmp_path)


def test_pretrain_then_fine_tune_from_it(microscope_folder, tmp_path, sample_split):
    from napari_cellseg.models.checkpoint import load_model_dir
    from napari_cellseg.models.m2 import load_m2

    m2_dir = tmp_path / "m2"
    config = PretrainConfig(
        data_dir=str(microscope_folder), out_dir=str(m2_dir), arch=ARCH, num_classes=3, epochs=2,
        batch_size=6, input_size=64, val_fraction=0.3, num_threads=1, lr=3e-3,
    )  # fmt: skip
    reports = []
    result = run_pretraining(config, callback=reports.append)
    assert [r.epoch for r in reports] == [1, 2] and result.class_names == ["A", "B", "C"]
    assert 0.0 <= result.val_accuracy <= 1.0 and reports[-1].train_loss > 0
    classifier, m2_config = load_m2(m2_dir)
    assert m2_config.arch == ARCH and m2_config.class_names == ["A", "B", "C"]
    assert m2_config.input_size == 64 and m2_config.num_classes == 3
    with torch.inference_mode():
        assert classifier(torch.zeros(2, 3, 64, 64)).shape == (2, 3)

    from napari_cellseg.sample_data import SAMPLE_DIR

    out = tmp_path / "seg"
    status = main([
        "train", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--m2", str(m2_dir),
        "-l", "2", "--la", "2", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
        "--patch-size", "64", "--threads", "1", "--quiet", "--max-dev-images", "1", "--out", str(out),
    ])  # fmt: skip
    assert status == 0
    _, model_config = load_model_dir(out)
    assert model_config.arch == ARCH and model_config.m2.sha256 == m2_config.weights_sha256


def test_pretrain_cli_reports_a_bad_folder(tmp_path, capsys):
    status = main(
        ["pretrain", "--data", str(tmp_path / "nope"), "--arch", ARCH, "--out", str(tmp_path / "o")]
    )
    assert status == 2
    assert "no such folder" in capsys.readouterr().err


def test_a_training_batch_of_one_image_is_never_left_over(tmp_path):
    # BatchNorm cannot train on one image: 8 images in batches of 7 make one batch of 8.
    import imageio.v3 as iio

    from napari_cellseg.data.normalize import NormalizationConfig
    from napari_cellseg.training.pretrain import _batches

    iio.imwrite(tmp_path / "a.png", np.full((40, 40, 3), 90, np.uint8))
    samples = [(tmp_path / "a.png", k % 2) for k in range(8)]
    norm = NormalizationConfig()
    train = [labels.shape[0] for _, labels in _batches(samples, 7, 32, norm, seed=0, epoch=1)]
    validation = [labels.shape[0] for _, labels in _batches(samples, 7, 32, norm, seed=None, epoch=0)]
    assert train == [8] and validation == [7, 1]
