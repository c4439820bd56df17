"""The training engine: reports, model directory, best checkpoint, cancel and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from napari_cellseg.config import ConfigError
from napari_cellseg.training.engine import run_training, train
from napari_cellseg.training.reports import EpochReport, StartReport, StepReport, TrainResult
from napari_cellseg.training.setup import TrainingError

torch.set_num_threads(1)


def test_reports_and_the_model_directory(tiny_config, sample_split):
    from napari_cellseg.data.splitfile import split_hash
    from napari_cellseg.models.checkpoint import load_model_dir

    config = tiny_config()
    reports = list(train(config))
    kinds = [type(r).__name__ for r in reports]
    assert kinds == ["StartReport"] + ["StepReport"] * 2 + ["EpochReport"] + ["StepReport"] * 2 + [
        "EpochReport", "TrainResult"]  # fmt: skip
    start, result = reports[0], reports[-1]
    assert isinstance(start, StartReport) and start.device == "cpu" and "CPU" in start.device_reason
    assert start.threads == 1 and start.n_train_images == 5 and start.n_dev_images == 1
    steps = [r for r in reports if isinstance(r, StepReport)]
    assert [s.global_step for s in steps] == [1, 2, 3, 4] and all(s.loss > 0 and s.lr > 0 for s in steps)
    assert steps[-1].eta_s == 0 and steps[0].eta_s > 0
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert all("pixel_f1" in e.dev_metrics and "mean_iou" in e.dev_metrics for e in epochs)
    assert isinstance(result, TrainResult) and not result.cancelled and result.epochs_done == 2
    best = max(epochs, key=lambda e: (e.dev_score, -e.epoch))
    assert result.best_epoch == best.epoch and result.best_score == best.dev_score
    out = config.out_dir
    model, model_config = load_model_dir(out)
    assert model_config.split_hash == split_hash(sample_split)
    assert model_config.metrics["epoch"] == best.epoch and model_config.metrics["score_name"] == "pixel_f1"
    assert model_config.transfer_layers == 2 and model_config.normalization.mean == (0.5, 0.5, 0.5)
    assert model_config.object_diameter and 5 < model_config.object_diameter < 60
    assert model_config.training["train_config"]["seed"] == 0
    _, last_config = load_model_dir(f"{out}/last")
    assert last_config.training["epoch"] == 2
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 70, 90)).shape == (1, 3, 70, 90)


def test_cancel_close_and_resume_give_the_uninterrupted_weights(tiny_config, tmp_path, same_weights):
    whole = tiny_config(out_dir=str(tmp_path / "whole"), epochs=3)
    expected = run_training(whole)
    parts = tiny_config(out_dir=str(tmp_path / "parts"), epochs=3)
    steps = []
    count = lambda report: steps.append(report) if isinstance(report, StepReport) else None  # noqa: E731
    first = run_training(parts, cancel=lambda: len(steps) >= 3, callback=count)
    assert first.cancelled and first.epochs_done == 1  # stopped mid-epoch 2, position saved
    generator = train(parts, resume=True)
    start = next(generator)
    assert start.resumed and start.start_step == 3
    assert isinstance(next(generator), StepReport)
    generator.close()  # the GUI's stop: saves the position (step 4)
    rest = run_training(parts, resume=True)
    assert not rest.cancelled and rest.epochs_done == 3
    assert rest.history == expected.history
    assert same_weights(tmp_path / "whole" / "last", tmp_path / "parts" / "last") > 10
    same_weights(tmp_path / "whole", tmp_path / "parts")  # the best checkpoint too


def test_fresh_start_over_a_run_and_changed_resume_are_refused(tiny_config):
    config = tiny_config(epochs=1, steps_per_epoch=1)
    run_training(config)
    with pytest.raises(ConfigError, match="already holds a training run"):
        next(train(config))
    changed = tiny_config(epochs=1, steps_per_epoch=1, lr=0.5, num_threads=1)
    with pytest.raises(ConfigError, match=r"settings differ.*lr: 0\.001 -> 0\.5"):
        next(train(changed, resume=True))
    with pytest.raises(ConfigError, match="nothing to resume"):
        next(train(tiny_config(out_dir=config.out_dir + "-new"), resume=True))


def test_pluggable_evaluator_picks_the_best_epoch(tiny_config):
    scores = iter([0.2, 0.9, 0.5])

    class Fake:
        score_name = "fake"

        def add(self, probabilities, target, instances):
            assert probabilities.shape == (3, *target.shape)

        def result(self):
            return {"fake": next(scores)}

    config = tiny_config(epochs=3, steps_per_epoch=1)
    result = run_training(config, evaluator=Fake)
    assert (result.best_epoch, result.best_score, result.score_name) == (2, 0.9, "fake")
    stored = json.loads(Path(config.out_dir, "config.json").read_text())
    assert stored["metrics"]["epoch"] == 2 and stored["metrics"]["dev_score"] == 0.9
    assert stored["training"]["epoch"] == 2  # the best epoch, while last/ moved on
    last = json.loads(Path(config.out_dir, "last", "config.json").read_text())
    assert last["training"]["epoch"] == 3 and last["metrics"]["dev_score"] == 0.5


def test_without_a_dev_set_the_last_epoch_is_kept_and_bce_works(tiny_config):
    from napari_cellseg.models.checkpoint import load_model_dir

    config = tiny_config(
        split_path=None, loss="weighted-bce", epochs=2, steps_per_epoch=1, microscopes=("C",)
    )
    reports = list(train(config))
    assert reports[0].n_train_images == 2 and reports[0].n_dev_images == 0
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert [e.is_best for e in epochs] == [True, True] and epochs[-1].dev_score is None
    model, model_config = load_model_dir(config.out_dir)
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    assert model_config.loss == "weighted-bce" and model_config.out_channels == 2
    assert model_config.training["epoch"] == 2


def test_clear_errors_before_training(tiny_config, tmp_path):
    bad_split = tmp_path / "bad.csv"
    bad_split.write_text("id,subset\nnot-an-image,train\n")
    with pytest.raises(TrainingError, match="not in the dataset"):
        next(train(tiny_config(split_path=str(bad_split))))
    dev_only = tmp_path / "dev.csv"
    dev_only.write_text(Path(tiny_config().split_path).read_text().replace(",train,", ",dev,"))
    with pytest.raises(TrainingError, match="no training images"):
        next(train(tiny_config(split_path=str(dev_only), out_dir=str(tmp_path / "o2"))))


def test_autocast_path_runs_in_bf16_on_the_cpu(tiny_config):
    # The mixed-precision branch that CUDA takes, exercised on the CPU with bfloat16.
    config = tiny_config(split_path=None, amp="bf16", epochs=1, steps_per_epoch=2, microscopes=("A",),
                         scheduler="one-cycle", grad_clip=1.0)  # fmt: skip
    reports = list(train(config))
    assert reports[0].amp == "bfloat16"
    steps = [r for r in reports if isinstance(r, StepReport)]
    assert all(s.loss == s.loss and s.loss > 0 for s in steps)  # finite
    assert steps[1].lr < 1e-6 < steps[0].lr  # one-cycle anneals to max_lr / 25e4 at the end
    assert not reports[-1].cancelled


def test_generator_close_before_any_step_writes_nothing(tiny_config):
    config = tiny_config()
    generator = train(config)
    assert isinstance(next(generator), StartReport)
    generator.close()
    assert not (Path(config.out_dir) / "last").exists()
    assert (Path(config.out_dir) / "train_config.json").is_file()


def test_size_normalised_training_resamples_crops_and_dev_and_the_model_estimates(tiny_config):
    from napari_cellseg.data.size import size_factor
    from napari_cellseg.models.checkpoint import load_model_config
    from napari_cellseg.training.distributed import DistributedContext
    from napari_cellseg.training.evaluate import load_dev_images
    from napari_cellseg.training.setup import build_run

    config = tiny_config(object_diameter=30.0, epochs=1)
    run = build_run(config, DistributedContext())
    assert set(run.size_factors) == {*run.train_ids, *run.dev_ids} and run.object_diameter == 30.0
    image_id = run.train_ids[0]
    factor = run.size_factors[image_id]
    original = run.dataset.load_reference_instances(image_id)
    assert factor == size_factor(original, 30.0) and factor != 1.0
    image, labels, _ = run.crops.cache.get(image_id)
    assert labels.shape == (round(original.shape[0] * factor), round(original.shape[1] * factor))
    assert image.shape[:2] == labels.shape and size_factor(labels, 30.0) == pytest.approx(1.0, rel=0.1)
    dev = load_dev_images(run.dataset, run.dev_ids, size_factors=run.size_factors)[0]
    # dev images keep their own scale, as segment sees them; the network resamples them
    assert dev.image.shape[:2] == dev.target.shape == dev.instances.shape
    assert dev.instances.shape == run.dataset.load_instances(dev.id).shape
    assert dev.factor == run.size_factors[dev.id] != 1.0

    run_training(config)
    saved = load_model_config(config.out_dir)
    assert saved.object_diameter == 30.0 and saved.default_diameter == 0.0
    native = load_model_config(
        run_training(tiny_config(out_dir=config.out_dir + "-native", epochs=1)).out_dir
    )
    assert native.default_diameter is None and native.object_diameter != 30.0


def test_distance_profile_trains_and_is_recorded(tiny_config):
    from napari_cellseg.models.checkpoint import load_model_config

    result = run_training(tiny_config(target_profile="distance", epochs=1))
    saved = load_model_config(result.out_dir)
    assert saved.training["train_config"]["target_profile"] == "distance"
    assert saved.training["history"][-1]["train_loss"] > 0


def test_resume_with_another_number_of_processes_is_refused(tiny_config):
    """A torchrun run resumed with another --nproc-per-node would change each step's crops."""
    config = tiny_config(epochs=2, steps_per_epoch=1)
    run_training(config)
    state_json = Path(config.out_dir, "last", "training_state.json")
    payload = json.loads(state_json.read_text())
    assert payload["state"]["world_size"] == 1
    payload["state"]["world_size"] = 2
    state_json.write_text(json.dumps(payload))
    with pytest.raises(
        ConfigError, match=r"trained by 2 process\(es\) and would resume with 1.*--nproc-per-node 2"
    ):
        next(train(config, resume=True))
    del payload["state"]["world_size"]  # a state from before the count was kept still resumes
    state_json.write_text(json.dumps(payload))
    assert next(train(config, resume=True)).resumed


def test_a_run_stores_its_data_absolute_so_resume_works_from_another_folder(
    tiny_config, tmp_path, monkeypatch
):
    # train_config.json kept --data as typed: `train --resume` elsewhere said "no such folder".
    import dataclasses
    import os

    from napari_cellseg.cli import main
    from napari_cellseg.training.config import TrainConfig

    base = tiny_config(epochs=2, steps_per_epoch=1, out_dir=str(tmp_path / "project" / "run"))
    monkeypatch.chdir(Path(base.data_dir).parent)
    relative = dataclasses.replace(
        base, data_dir=Path(base.data_dir).name, split_path=os.path.relpath(base.split_path)
    )
    assert run_training(relative, cancel=_stop_after_the_first_step()).cancelled
    stored = TrainConfig.load(tmp_path / "project" / "run" / "last" / "train_config.json")
    assert os.path.isabs(stored.data_dir) and Path(stored.data_dir).samefile(base.data_dir)
    assert os.path.isabs(stored.split_path) and Path(stored.split_path).samefile(base.split_path)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", "--out", "project/run", "--quiet"]) == 0


def test_resume_after_the_data_moved_says_to_give_it_again(tiny_config, tmp_path, capsys):
    import os

    from napari_cellseg.cli import main

    config = tiny_config(epochs=2, steps_per_epoch=1)
    assert run_training(config, cancel=_stop_after_the_first_step()).cancelled
    stored_path = Path(config.out_dir, "last", "train_config.json")
    stored = json.loads(stored_path.read_text())
    stored["data_dir"] = str(tmp_path / "moved-away" / "data")  # the project was renamed
    stored_path.write_text(json.dumps(stored))
    assert main(["train", "--resume", "--out", config.out_dir, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "moved-away" in err and "is gone" in err and "resume with --data DIR --split FILE" in err
    again = ["--data", config.data_dir, "--split", os.fspath(config.split_path)]
    assert main(["train", "--resume", "--out", config.out_dir, "--quiet", *again]) == 0


def test_a_from_scratch_run_of_an_older_version_resumes_still_from_scratch(tiny_config):
    """Its last/config.json has no m2.pretrained (it then reads as True): the run's setting decides."""
    config = tiny_config(epochs=2, steps_per_epoch=1, pretrained=False)
    assert run_training(config, cancel=_stop_after_the_first_step()).cancelled
    model_json = Path(config.out_dir, "last", "config.json")
    stored = json.loads(model_json.read_text())
    del stored["m2"]["pretrained"]  # as written before the field existed
    model_json.write_text(json.dumps(stored))
    run_training(config, resume=True)
    for folder in (Path(config.out_dir, "last"), Path(config.out_dir)):
        assert json.loads((folder / "config.json").read_text())["m2"]["pretrained"] is False


def _stop_after_the_first_step():
    """A ``cancel`` that lets one step run, then stops the run (its position is saved)."""
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    return cancel
