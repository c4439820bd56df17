"""``pretrain`` refuses a folder it cannot learn from, and an existing --out, before training."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.cli import main
from napari_cellseg.config import ConfigError
from napari_cellseg.training.pretrain import PretrainConfig, run_pretraining, scan_image_folder

ARCH = "mobilenetv3_small_050"  # tiny timm network


def _class_folder(root, classes=("A", "B"), per_class=2):
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            iio.imwrite(root / name / f"{k}.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    return root


def test_one_class_is_refused(tmp_path):
    root = _class_folder(tmp_path / "cls", classes=("A",))
    with pytest.raises(ConfigError, match=r"only one class folder \('A'\); a classifier needs at least 2"):
        scan_image_folder(root)


def test_every_unreadable_image_is_named_up_front(tmp_path):
    root = _class_folder(tmp_path / "cls")
    (root / "B" / "empty.png").write_bytes(b"")
    (root / "B" / "text.png").write_text("hi\n")
    with pytest.raises(ConfigError) as info:
        scan_image_folder(root)
    message = str(info.value)
    assert "2 image(s) cannot be read" in message
    assert f"{root / 'B' / 'empty.png'}: empty file (0 bytes)" in message
    assert f"{root / 'B' / 'text.png'}: not a PNG file" in message
    assert "0.png" not in message  # the good images are not listed


def test_an_existing_m2_folder_is_not_replaced(tmp_path, capsys):
    root = _class_folder(tmp_path / "cls")
    out = tmp_path / "m2"
    out.mkdir()
    (out / "config.json").write_text("{}")
    argv = ["pretrain", "--data", str(root), "--arch", ARCH, "--out", str(out), "--epochs", "1",
            "--input-size", "32", "--threads", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert f"pretrain: error: {out}: already exists; choose a new M2 directory" in capsys.readouterr().err
    assert (out / "config.json").read_text() == "{}"


def test_an_empty_out_folder_is_used(tmp_path):
    root = _class_folder(tmp_path / "cls")
    (tmp_path / "m2").mkdir()
    config = PretrainConfig(data_dir=str(root), out_dir=str(tmp_path / "m2"), arch=ARCH, epochs=1,
                            input_size=32, num_threads=1, val_fraction=0)  # fmt: skip
    result = run_pretraining(config)
    assert result.class_names == ["A", "B"] and (tmp_path / "m2" / "config.json").is_file()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch-size", "1", "batch_size must be >= 2 (the network's BatchNorm layers need more than one"),
        ("--seed", "-1", "seed must be a whole number from 0 to 2**64 - 1, got -1"),
        ("--seed", str(2**64), "seed must be a whole number from 0 to 2**64 - 1"),
    ],
)
def test_a_batch_of_one_and_a_bad_seed_are_refused_before_training(tmp_path, capsys, option, value, message):
    root = _class_folder(tmp_path / "cls")
    argv = ["pretrain", "--data", str(root), "--arch", ARCH, "--out", str(tmp_path / "m2"),
            "--epochs", "1", "--input-size", "32", "--threads", "1", "--quiet", option, value]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "m2").exists()
