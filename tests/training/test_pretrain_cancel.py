"""A cancelled ``pretrain`` saves nothing: no half-trained M2 for ``train --m2`` to take."""

from __future__ import annotations

import numpy as np

from napari_cellseg.cli import main
from napari_cellseg.training import pretrain_commands
from napari_cellseg.training.pretrain import PretrainConfig, run_pretraining

ARCH = "mobilenetv3_small_050"  # tiny timm network


def _class_folder(root):
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    for name in ("A", "B"):
        (root / name).mkdir(parents=True)
        for k in range(3):
            iio.imwrite(root / name / f"{k}.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    return root


def test_a_cancelled_run_saves_no_m2(tmp_path):
    config = PretrainConfig(data_dir=str(_class_folder(tmp_path / "cls")), out_dir=str(tmp_path / "m2"),
                            arch=ARCH, epochs=3, input_size=32, num_threads=1, val_fraction=0)  # fmt: skip
    result = run_pretraining(config, cancel=lambda: True)
    assert result.cancelled and result.epochs_done == 0
    assert not (tmp_path / "m2").exists()


class _StopAtOnce(pretrain_commands._GracefulStop):
    def __call__(self) -> bool:  # as if Ctrl-C came before the first step
        return True


def test_ctrl_c_says_nothing_was_saved_and_a_rerun_can_use_the_folder(tmp_path, monkeypatch, capsys):
    root, out = _class_folder(tmp_path / "cls"), tmp_path / "m2"
    argv = ["pretrain", "--data", str(root), "--arch", ARCH, "--out", str(out), "--epochs", "2",
            "--input-size", "32", "--threads", "1", "--val-fraction", "0", "--quiet"]  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setattr(pretrain_commands, "_GracefulStop", _StopAtOnce)
        assert main(argv) == 130
    assert "stopped after 0 of 2 epoch(s): nothing saved" in capsys.readouterr().err
    assert not out.exists()
    assert main(argv) == 0  # not refused as "already exists"
    assert f"saved M2 {ARCH}" in capsys.readouterr().out  # the result: stdout, as segment's
    assert (out / "config.json").is_file()
