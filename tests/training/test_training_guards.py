"""Settings refused up front (non-finite numbers, seed, cache, fp16 off CUDA, the default l_a),
and a run that diverges: stopped at the step, never saved."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from napari_cellseg.cli import main
from napari_cellseg.sample_data import SAMPLE_DIR

torch = pytest.importorskip("torch")

TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "1", "--patch-size", "64", "--threads", "1",
        "--max-dev-images", "1", "--dev-metric", "pixel_f1", "--quiet"]  # fmt: skip


def _train(sample_split, out, *options):
    return main(["train", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--out", str(out),
                 *TINY, *options])  # fmt: skip


BAD_NUMBERS = [
    (
        ["--class-weights", "1", "nan", "3"],
        r"class_weights must be 3 positive finite numbers, got \[1.0, nan, 3.0\]",
    ),
    (["--lr", "inf"], "lr must be > 0 and finite, got inf"),
    (["--boundary-weight", "nan"], "boundary_weight must be > 0 and finite, got nan"),
    (["--weight-decay", "nan"], "weight_decay must be >= 0 and finite, got nan"),
    (["--object-diameter", "inf"], r"object_diameter must be > 0 pixels, .* and finite, got inf"),
    (["--contact-weight", "inf"], "contact_weight must be > 0 and finite"),
    (["--dice-weight", "nan"], "dice_weight must be >= 0 and finite"),
    (["--oversample", "C=inf"], r"--oversample 'C=inf': expected TAG=WEIGHT .* WEIGHT > 0 \(finite\)"),
    (["--seed", "-1"], r"seed must be a whole number from 0 to 2\*\*64 - 1, got -1"),
    (["--amp", "fp16", "--device", "cpu"], "amp 'fp16' trains on CUDA only .* use --amp bf16"),
]


@pytest.mark.parametrize(("options", "message"), BAD_NUMBERS, ids=[o[0].lstrip("-") for o, _ in BAD_NUMBERS])
def test_bad_numbers_are_refused_before_training(tmp_path, sample_split, capsys, options, message):
    out = tmp_path / "out"
    assert _train(sample_split, out, "-l", "2", "--la", "2", *options) == 2
    err = capsys.readouterr().err
    assert "train: error:" in err and re.search(message, err) and "Traceback" not in err, err
    assert not out.exists()


def test_a_negative_cache_in_a_config_file_is_refused(tmp_path, sample_split, capsys):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"cache_mb": -5}))
    out = tmp_path / "out"
    assert _train(sample_split, out, "-l", "2", "--la", "2", "--config", str(config)) == 2
    assert "cache_mb must be >= 0" in capsys.readouterr().err and not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fp16_off_cuda_is_refused_when_the_device_is_chosen(tiny_config):
    from napari_cellseg.training.engine import train
    from napari_cellseg.training.setup import TrainingError

    config = tiny_config(amp="fp16", epochs=1, steps_per_epoch=1, batch_size=1)  # device auto: the CPU here
    with pytest.raises(
        TrainingError, match=r"amp 'fp16' \(--amp fp16\) trains on CUDA only.*the CPU: use --amp bf16"
    ):
        next(train(config))
    assert not Path(config.out_dir).exists()


def test_l_below_2_without_la_names_the_default_and_the_option(tmp_path, sample_split, capsys):
    out = tmp_path / "out"
    assert _train(sample_split, out, "-l", "1") == 2
    err = capsys.readouterr().err
    assert "new_layers l_a=4 is out of range for l=1 (1..3): 4 is the default of l_a" in err, err
    assert "give it with --la N (--new-layers N), N from 1 to 3" in err and not out.exists()
    assert _train(sample_split, tmp_path / "given", "-l", "1", "--la", "5") == 2  # not the default: as before
    assert "default" not in capsys.readouterr().err


def test_the_train_help_gives_the_layer_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "l: M2 stages transferred (default: 4)" in help_text
    assert "l_a: new decoder layers, 1 to L + 2 (give it with -l below 2) (default: 4)" in help_text


def test_a_sweep_varying_l_alone_says_l_a_is_the_default(tmp_path):
    from napari_cellseg.training.sweep_grid import expand_grid, grid_from_dict

    _, invalid = expand_grid(grid_from_dict({"grid": {"l": [1, 2]}}), "d", None, tmp_path)
    (skipped,) = invalid
    assert skipped.params == {"transfer_layers": 1}
    assert "l_a=4 is the default of new_layers, as neither the grid nor its base gives one" in skipped.reason
    assert 'add l_a to the grid or its base (e.g. "la": [1, 2])' in skipped.reason
    _, invalid = expand_grid(grid_from_dict({"base": {"la": 4}, "grid": {"l": [1, 2]}}), "d", None, tmp_path)
    assert "default" not in invalid[0].reason  # chosen in the base: no note


def test_a_non_finite_loss_stops_the_run_at_its_step(tiny_config, monkeypatch):
    from napari_cellseg.training import engine
    from napari_cellseg.training.setup import TrainingError

    real_step, calls = engine.train_step, []

    def diverging(run, images, targets):
        calls.append(1)
        loss = real_step(run, images, targets)
        return float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(engine, "train_step", diverging)
    config = tiny_config(epochs=2, steps_per_epoch=2, batch_size=1)
    with pytest.raises(
        TrainingError, match=r"step 3 \(epoch 2\): the training loss is nan.*lower learning rate \(--lr"
    ):
        engine.run_training(config)
    assert len(calls) == 3  # stopped there
    history = json.loads((Path(config.out_dir) / "last" / "config.json").read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == [1]  # epoch 1's checkpoint stays as it was


def test_a_network_with_non_finite_weights_is_never_scored_or_saved(tiny_config, monkeypatch):
    from napari_cellseg.training import engine
    from napari_cellseg.training.setup import TrainingError

    real_step = engine.train_step

    def poisoning(run, images, targets):
        loss = real_step(run, images, targets)  # finite: the update made the weights NaN
        with torch.no_grad():
            run.model.head.weight.view(-1)[0] = float("nan")
        return loss

    monkeypatch.setattr(engine, "train_step", poisoning)
    scored = []
    monkeypatch.setattr(engine, "evaluate_dev", lambda *args, **kwargs: scored.append(1) or {"pixel_f1": 0.5})
    config = tiny_config(epochs=1, steps_per_epoch=1, batch_size=1)
    with pytest.raises(
        TrainingError, match=r"after step 1: the network's weights hold NaN .*\(first: head\.weight\)"
    ):
        engine.run_training(config)
    assert not scored and not (Path(config.out_dir) / "model.safetensors").exists()
