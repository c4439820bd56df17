"""Training that starts from a trained segmentation model (``init_model``, ``--init-model``)."""

from __future__ import annotations

import pytest
import torch

from napari_cellseg.cli import main
from napari_cellseg.config import ConfigError
from napari_cellseg.inference.runtime import default_model_dir
from napari_cellseg.models.checkpoint import load_model_config, load_model_dir
from napari_cellseg.models.m2 import ModelLoadError
from napari_cellseg.sample_data import SAMPLE_DIR
from napari_cellseg.training.config import TrainConfig
from napari_cellseg.training.distributed import DistributedContext
from napari_cellseg.training.engine import run_training
from napari_cellseg.training.init_model import apply_init_model
from napari_cellseg.training.setup import build_run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, sample_split):
    """A tiny trained model (l=2, l_a=3, weighted-bce): the run to start from."""
    from napari_cellseg.training.config import TrainConfig

    out = tmp_path_factory.mktemp("trained") / "model"
    config = TrainConfig(
        data_dir=str(SAMPLE_DIR), split_path=str(sample_split), out_dir=str(out), transfer_layers=2,
        new_layers=3, loss="weighted-bce", epochs=1, steps_per_epoch=2, batch_size=2, patch_size=64,
        num_threads=1, max_dev_images=1, dev_metric="pixel_f1",
    )  # fmt: skip
    run_training(config)
    return out


def test_the_network_and_its_weights_come_from_the_model(tiny_config, trained_dir):
    config = apply_init_model(tiny_config(init_model=str(trained_dir), frozen_layers=1))
    assert (config.transfer_layers, config.new_layers, config.loss) == (2, 3, "weighted-bce")
    run = build_run(config, DistributedContext())
    start, model_config = load_model_dir(trained_dir)
    assert run.config.new_layers == 3 and run.model.out_channels == 2
    own = run.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in start.state_dict().items())
    assert run.normalization == model_config.normalization
    # l_f of the new run, not of the model it starts from
    assert run.model.frozen_layers == 1
    assert not any(p.requires_grad for p in run.model.encoder[0].parameters())
    assert all(p.requires_grad for p in run.model.encoder[1].parameters())


def test_a_run_from_a_model_trains_on_and_records_where_it_started(tiny_config, trained_dir):
    config = tiny_config(init_model=str(trained_dir), frozen_layers=1, epochs=1)
    result = run_training(config)
    model, model_config = load_model_dir(config.out_dir)
    start, start_config = load_model_dir(trained_dir)
    assert result.epochs_done == 1 and model_config.new_layers == 3 and model_config.loss == "weighted-bce"
    assert model_config.m2 == start_config.m2  # the M2 identity travels on
    assert model_config.training["train_config"]["init_model"] == str(trained_dir)
    mine, theirs = model.state_dict(), start.state_dict()
    frozen = [k for k in mine if k.startswith("encoder.0.")]
    assert frozen and all(torch.equal(mine[k], theirs[k]) for k in frozen)  # l_f=1: stage 0 kept
    assert any(not torch.equal(mine[k], theirs[k]) for k in mine if k.startswith("decoder."))


def test_contradictions_are_clear_errors(tiny_config, trained_dir, tmp_path):
    config = tiny_config(init_model=str(trained_dir), transfer_layers=3)
    with pytest.raises(ConfigError, match=r"transfer_layers=3 but the model has 2.*leave these settings out"):
        apply_init_model(config, explicit={"transfer_layers"})
    assert apply_init_model(config).transfer_layers == 2  # not set on purpose: taken from the model
    with pytest.raises(ConfigError, match="pretrained=False contradict"):
        tiny_config(init_model=str(trained_dir), pretrained=False).validate()
    with pytest.raises(ModelLoadError, match="no such model directory"):
        apply_init_model(tiny_config(init_model=str(tmp_path / "nowhere")))


def test_cli_starts_from_the_bundled_model(tmp_path, sample_split, capsys, trained_dir):
    out = tmp_path / "adapted"
    common = ["--data", str(SAMPLE_DIR), "--split", str(sample_split), "--threads", "1", "--quiet",
              "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "64",
              "--max-dev-images", "1", "--dev-metric", "pixel_f1"]  # fmt: skip
    assert main(["train", *common, "--out", str(out), "--init-model", "default"]) == 0
    bundled = load_model_config(default_model_dir())
    adapted = load_model_dir(out)[1]
    assert (adapted.transfer_layers, adapted.new_layers) == (bundled.transfer_layers, bundled.new_layers)
    assert adapted.training["train_config"]["init_model"] == "default"
    status = main(
        ["train", *common, "--out", str(tmp_path / "x"), "--init-model", str(trained_dir), "--la", "2"]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "new_layers=2 but the model has 3" in err and "Traceback" not in err


def test_a_config_file_or_another_m2_that_contradicts_the_model_is_refused(
    tmp_path, sample_split, capsys, trained_dir
):
    # They used to train the starting model's network without a word (and record --m2 as used).
    import json

    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"transfer_layers": 3, "new_layers": 1, "lr": 0.01}))
    common = ["train", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--init-model", str(trained_dir),
              "--epochs", "1", "--quiet"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "a"), "--config", str(settings)]) == 2
    err = capsys.readouterr().err
    assert "transfer_layers=3 but the model has 2" in err and "new_layers=1 but the model has 3" in err
    # A whole config printed and edited (docs/tuning.md) holds every default: no choice, no
    # contradiction, and never a decoder grown because its default new_layers is larger.
    whole = tmp_path / "whole.json"
    whole.write_text(
        TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, patch_size=64, max_dev_images=1).to_json()
    )
    assert main([*common, "--out", str(tmp_path / "w"), "--config", str(whole)]) == 0
    stored = json.loads((tmp_path / "w" / "config.json").read_text())
    assert stored["new_layers"] == 3 and stored["transfer_layers"] == 2 and stored["loss"] == "weighted-bce"
    assert main([*common, "--out", str(tmp_path / "b"), "--m2", str(tmp_path / "other-m2")]) == 2
    assert "m2=" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="but the model was cut from M2"):
        apply_init_model(TrainConfig(data_dir="d", out_dir="o", init_model=str(trained_dir), m2="my-m2"))
    config = apply_init_model(
        TrainConfig(init_model=str(trained_dir), transfer_layers=2, lr=0.01), explicit={"transfer_layers"}
    )
    assert config.loss == "weighted-bce" and config.new_layers == 3


def test_a_size_normalised_model_passes_on_its_nucleus_size(tiny_config, trained_dir, tmp_path):
    import json
    import shutil

    normalised = tmp_path / "normalised"
    shutil.copytree(trained_dir, normalised)
    config_json = json.loads((normalised / "config.json").read_text())
    config_json.update(object_diameter=25.0, default_diameter=0.0)
    (normalised / "config.json").write_text(json.dumps(config_json))
    assert apply_init_model(tiny_config(init_model=str(normalised))).object_diameter == 25.0
    assert (
        apply_init_model(tiny_config(init_model=str(normalised), object_diameter=30.0)).object_diameter
        == 30.0
    )
    assert apply_init_model(tiny_config(init_model=str(trained_dir))).object_diameter is None  # native scale
    # 0: the images' own scale, even from a model that resamples them
    own = apply_init_model(tiny_config(init_model=str(normalised), object_diameter=0.0, epochs=1))
    assert own.object_diameter == 0.0 and own.size_diameter is None
    run = build_run(own, DistributedContext())
    assert set(run.size_factors.values()) == {1.0}
    run_training(own)
    assert load_model_config(own.out_dir).default_diameter is None  # segments at the image's scale
    with pytest.raises(ConfigError, match="object_diameter must be > 0 pixels, 0"):
        tiny_config(object_diameter=-1.0).validate()


def test_a_larger_l_a_grows_the_decoder_to_a_finer_output(tiny_config):
    from napari_cellseg.models.decoder import decoder_plan
    from napari_cellseg.training.init_model import load_init_model

    bundled, bundled_config = load_model_dir(default_model_dir())
    assert bundled.decoder.out_level > 0  # its logits are coarser than the image
    config = apply_init_model(tiny_config(init_model="default", new_layers=bundled_config.new_layers + 1),
                              explicit={"new_layers"})  # fmt: skip
    assert config.grow_decoder and config.new_layers == bundled_config.new_layers + 1
    assert apply_init_model(config).new_layers == config.new_layers  # kept when the run is built
    grown, grown_config = load_init_model(config)
    assert grown_config.new_layers == config.new_layers
    assert grown.decoder.out_level == decoder_plan(bundled_config.transfer_layers, config.new_layers)[-1]
    assert grown.decoder.out_level < bundled.decoder.out_level
    mine, theirs = grown.state_dict(), bundled.state_dict()
    kept = [k for k in theirs if not k.startswith("head.")]
    assert all(torch.equal(mine[k], theirs[k]) for k in kept)  # encoder and the model's blocks
    new_block = f"decoder.blocks.{bundled_config.new_layers}."
    assert any(k.startswith(new_block) for k in mine) and not any(k.startswith(new_block) for k in theirs)
    assert mine["head.weight"].shape != theirs["head.weight"].shape
    with torch.no_grad():
        out = grown.eval()(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, bundled_config.out_channels, 64, 64)


def test_growing_is_checked(tiny_config, trained_dir):
    with pytest.raises(ConfigError, match="grow_decoder=True needs init_model"):
        tiny_config(grow_decoder=True).validate()
    with pytest.raises(ConfigError, match="needs more new layers than the model's 3, got new_layers=3"):
        apply_init_model(tiny_config(init_model=str(trained_dir), new_layers=3, grow_decoder=True))


def test_a_grown_run_trains_and_saves_the_larger_network(tmp_path, sample_split, trained_dir):
    out = tmp_path / "grown"
    args = ["train", "--data", str(SAMPLE_DIR), "--split", str(sample_split), "--threads", "1", "--quiet",
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "64",
            "--max-dev-images", "1", "--dev-metric", "pixel_f1", "--out", str(out),
            "--init-model", str(trained_dir), "--la", "4"]  # fmt: skip
    assert main(args) == 0
    model, config = load_model_dir(out)
    assert config.new_layers == 4 and len(model.decoder.blocks) == 4
    assert config.training["train_config"]["grow_decoder"] is True


def test_a_run_from_a_model_resumes_with_the_settings_that_started_it(tiny_config, trained_dir):
    # The stored config has the model's network fields filled in; the caller's has not.
    config = tiny_config(init_model=str(trained_dir), epochs=2, steps_per_epoch=1)
    calls = {"n": 0}

    def cancel_after_the_first_step():
        calls["n"] += 1
        return calls["n"] > 1

    assert run_training(config, cancel=cancel_after_the_first_step).cancelled
    resumed = run_training(config, resume=True)
    assert not resumed.cancelled and resumed.epochs_done == 2


def test_a_sweep_from_a_model_names_and_checks_the_network_it_trains(tmp_path, trained_dir):
    from napari_cellseg.training.sweep_grid import expand_grid, grid_from_dict

    grid = grid_from_dict({"base": {"init_model": str(trained_dir)}, "grid": {"l_a": [2, 3, 4]}})
    points, invalid = expand_grid(grid, str(SAMPLE_DIR), None, tmp_path)
    # l_a=2 contradicts the model's 3; l_a=4 grows its decoder
    assert [(p.config.new_layers, p.config.grow_decoder) for p in points] == [(3, False), (4, True)]
    assert [p.params["new_layers"] for p in invalid] == [2] and "the model has 3" in invalid[0].reason
    assert all(p.name.startswith("l2-") for p in points)  # the model's l, not the default's
    # a base setting other than the default is a choice like a grid value: one contradicting the
    # model is no run (a default one, as in a base copied whole, is no choice)
    grid = grid_from_dict({"base": {"init_model": str(trained_dir), "l": 3}, "grid": {"lr": [0.1, 0.2]}})
    points, invalid = expand_grid(grid, str(SAMPLE_DIR), None, tmp_path)
    assert not points and all("transfer_layers=3 but the model has 2" in p.reason for p in invalid)
    copied = grid_from_dict(
        {"base": {"init_model": str(trained_dir), "l": 4, "l_a": 4}, "grid": {"lr": [0.1]}}
    )
    points, invalid = expand_grid(copied, str(SAMPLE_DIR), None, tmp_path / "copied")
    assert not invalid and [(p.config.transfer_layers, p.config.new_layers) for p in points] == [(2, 3)]


def test_a_run_never_trains_into_a_model_folder(tiny_config, trained_dir, tmp_path):
    # e.g. --out set to the model it starts from: its weights would be replaced unasked
    import shutil

    model = tmp_path / "colleagues-model"
    model.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(trained_dir / name, model / name)
    before = (model / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="already holds a model"):
        run_training(tiny_config(init_model=str(model), out_dir=str(model)))
    assert (model / "model.safetensors").read_bytes() == before


def test_a_run_from_a_model_keeps_its_watershed_settings_and_boundary_width(
    tiny_config, trained_dir, tmp_path
):
    # Without them a doctor's fine-tuned model would segment with the defaults (dev C: 0.61 against 0.67).
    import json
    import shutil

    start = tmp_path / "tuned"
    shutil.copytree(trained_dir, start, ignore=shutil.ignore_patterns("last"))
    stored = json.loads((start / "config.json").read_text())
    tuned = {"interior_threshold": 0.3, "peak_height": 0.2, "min_size": 12}
    stored.update(watershed=tuned, target_thickness=2)
    (start / "config.json").write_text(json.dumps(stored))
    config = tiny_config(init_model=str(start), epochs=1)
    assert apply_init_model(config).target_thickness == 2
    assert apply_init_model(config, explicit={"target_thickness"}).target_thickness == 1  # --thickness 1 wins
    run_training(config)
    saved = load_model_config(config.out_dir)
    assert saved.watershed == tuned and saved.target_thickness == 2


@pytest.mark.parametrize("how", ["python", "cli"])
def test_a_resumed_run_uses_what_it_stored_not_the_starting_models_folder(
    tiny_config, trained_dir, tmp_path, same_weights, how
):
    # The folder may move, or tune-watershed may rewrite its config.json, while the run is stopped.
    import json
    import shutil

    start = tmp_path / "start"
    shutil.copytree(trained_dir, start, ignore=shutil.ignore_patterns("last"))
    stored = json.loads((start / "config.json").read_text())
    stored.update(watershed={"interior_threshold": 0.3, "min_size": 12}, target_thickness=2)
    (start / "config.json").write_text(json.dumps(stored))
    config = tiny_config(init_model=str(start), epochs=2, steps_per_epoch=1)
    whole = run_training(tiny_config(init_model=str(start), epochs=2, steps_per_epoch=1,
                                     out_dir=str(tmp_path / "whole")))  # fmt: skip
    calls = {"n": 0}

    def cancel_after_the_first_step():
        calls["n"] += 1
        return calls["n"] > 1

    assert run_training(config, cancel=cancel_after_the_first_step).cancelled
    stored.update(watershed={"interior_threshold": 0.9, "min_size": 200}, target_thickness=3)
    (start / "config.json").write_text(json.dumps(stored))  # re-tuned ...
    shutil.move(start, tmp_path / "moved")  # ... and moved away
    if how == "python":
        resumed = run_training(config, resume=True)
        assert resumed.epochs_done == 2 and resumed.history[-1]["dev"] == whole.history[-1]["dev"]
    else:
        assert main(["train", "--resume", "--out", config.out_dir, "--quiet"]) == 0
        changed = ["train", "--resume", "--out", config.out_dir, "-l", "3", "--quiet"]
        assert main(changed) == 2  # another network is still refused
    saved = load_model_config(config.out_dir)
    assert saved.watershed == {"interior_threshold": 0.3, "min_size": 12} and saved.target_thickness == 2
    same_weights(tmp_path / "whole", config.out_dir)
