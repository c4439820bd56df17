"""``train`` refuses bad input with one line (exit 2) and leaves no half-made --out folder."""

from __future__ import annotations

import pytest

from napari_cellseg.cli import main
from napari_cellseg.sample_data import SAMPLE_DIR

torch = pytest.importorskip("torch")

QUICK = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1", "--threads", "1", "--quiet",
         "-l", "2", "--la", "2", "--max-dev-images", "1", "--dev-metric", "pixel_f1"]  # fmt: skip


def _train(tmp_path, sample_split, out, *options):
    return main(["train", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--out", str(out),
                 *QUICK, *options])  # fmt: skip


@pytest.mark.parametrize("item", ["C=-3", "C3", "D E=2"])
def test_bad_oversample_is_a_user_error(tmp_path, sample_split, capsys, item):
    out = tmp_path / "out"
    assert _train(tmp_path, sample_split, out, "--patch-size", "64", "--oversample", item) == 2
    err = capsys.readouterr().err
    assert f"train: error: --oversample '{item}': expected TAG=WEIGHT" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_user_error_and_makes_no_folder(tmp_path, sample_split, capsys):
    out = tmp_path / "new" / "out"
    assert _train(tmp_path, sample_split, out, "--patch-size", "64", "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert "train: error: device 'cuda' asked for, but CUDA is not available" in err
    assert not (tmp_path / "new").exists()  # the parents it would have made are gone too


def test_a_patch_larger_than_every_image_is_refused_before_training(tmp_path, sample_split, capsys):
    out = tmp_path / "out"
    assert _train(tmp_path, sample_split, out, "--patch-size", "5000") == 2
    err = capsys.readouterr().err
    assert "patch_size 5000 (--patch-size) is larger than the largest training image" in err
    assert "1024x1024 px" in err and "choose at most 1024" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "options",
    [["--m2", "nope"], ["--augment", "wild"], ["-l", "9"], ["--lf", "5"]],
    ids=["m2", "augment", "l", "l_f"],
)
def test_a_failed_start_leaves_no_folder(tmp_path, sample_split, capsys, options):
    out = tmp_path / "out"
    assert _train(tmp_path, sample_split, out, "--patch-size", "64", *options) == 2
    assert "train: error:" in capsys.readouterr().err
    assert not out.exists()


def test_a_failure_after_the_config_is_written_takes_only_what_the_run_wrote(
    tmp_path, sample_split, capsys, monkeypatch
):
    from napari_cellseg.training import engine
    from napari_cellseg.training.setup import TrainingError

    def broken(*args, **kwargs):
        raise TrainingError("dev image unreadable")

    monkeypatch.setattr(engine, "load_dev_images", broken)
    new = tmp_path / "new"
    assert _train(tmp_path, sample_split, new, "--patch-size", "64") == 2
    assert "dev image unreadable" in capsys.readouterr().err
    assert not new.exists()
    # A folder that was there before stays, with what it held; only train_config.json goes.
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert _train(tmp_path, sample_split, kept, "--patch-size", "64") == 2
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
