"""The training process of the Fine-tune panel (no Qt), its time estimate and its texts."""

from __future__ import annotations

import dataclasses
import os

import pytest

from napari_cellseg.app.finetune_estimate import (
    REFERENCE_CPU_CROPS_PER_S,
    configured_crops_per_s,
    device_text,
    epoch_text,
    estimate_cpu,
    format_duration,
    remember_crops_per_s,
    result_text,
)
from napari_cellseg.app.finetune_session import (
    FinetuneCrash,
    FinetuneError,
    TrainingProcess,
    call_in_training_process,
    decode_report,
    run_finetune,
)
from napari_cellseg.training.config import TrainConfig
from napari_cellseg.training.reports import EpochReport, StartReport, StepReport, TrainResult


def _epoch(**changes) -> EpochReport:
    fields = dict(
        epoch=2, epochs=5, train_loss=0.5, lr=1e-3, samples_per_s=3.0, elapsed_s=10.0, eta_s=30.0,
        dev_metrics={"ap50": 0.61}, dev_score=0.61, score_name="ap50", is_best=True, best_epoch=2,
        best_score=0.61, checkpoint="/x/last",
    )  # fmt: skip
    return EpochReport(**{**fields, **changes})


def test_reports_survive_the_trip_as_dicts():
    result = TrainResult("/out", 2, False, 1, 0.5, "ap50", 12.0, [{"epoch": 1, "train_loss": 0.4, "dev": {}}])
    step = StepReport(1, 3, 10, 3, 20, 0.7, 1e-3, 4.0, 2.0, 30.0)
    start = StartReport(
        "cpu", "no GPU", None, 1, 0, 1, 5, 1, {"C": 3}, 10, 20, 2, 3, 2, 1, 0, False, "ap50", "/out"
    )
    for report in (start, result, step, _epoch()):
        assert decode_report(type(report).__name__, report.to_dict()) == report
    with pytest.raises(FinetuneCrash, match="unknown report 'Nonsense'"):
        decode_report("Nonsense", {})


def test_a_training_process_runs_stops_and_resumes(tmp_path, sample_dataset_dir):
    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.data.splitfile import write_split

    ids = CellDataset.open(sample_dataset_dir).ids
    split = write_split(tmp_path / "split.csv", {i: "train" for i in ids})
    config = TrainConfig(
        data_dir=str(sample_dataset_dir), split_path=str(split), out_dir=str(tmp_path / "run"),
        transfer_layers=2, new_layers=2, epochs=2, steps_per_epoch=3, batch_size=2, patch_size=64,
    )  # fmt: skip
    process = TrainingProcess(config)
    kinds = []
    for report in process.reports():
        kinds.append(type(report).__name__)
        if kinds.count("StepReport") == 2:
            process.stop()
    assert kinds[0] == "StartReport" and kinds[-1] == "TrainResult"
    assert process.result.cancelled and not process.running
    assert os.path.isdir(tmp_path / "run" / "last")
    resumed = run_finetune(config, resume=True)
    assert not resumed.cancelled and resumed.epochs_done == 2 and len(resumed.history) == 2


def test_errors_in_the_process_come_back_with_their_message(tmp_path):
    config = TrainConfig(data_dir=str(tmp_path / "no-dataset"), out_dir=str(tmp_path / "out"))
    with pytest.raises(FinetuneError, match=r"(?s)no-dataset.*no such folder"):
        run_finetune(config)


def test_kill_ends_quietly_without_a_result(tmp_path):
    process = TrainingProcess(TrainConfig(data_dir=str(tmp_path), out_dir=str(tmp_path / "out")))
    process.start()
    process.kill()
    assert list(process.reports()) == [] and process.result is None and not process.running


def test_a_function_runs_in_a_training_process():
    assert call_in_training_process(os.getpid) != os.getpid()


def test_cpu_estimate_is_computed_from_the_planned_steps():
    config = TrainConfig(epochs=10, steps_per_epoch=100, batch_size=8, patch_size=128)
    rate = configured_crops_per_s(config, threads=1)
    assert rate == pytest.approx(REFERENCE_CPU_CROPS_PER_S * 4)  # a quarter of the pixels per crop
    estimate = estimate_cpu(config, threads=1)
    assert estimate.seconds == pytest.approx(8000 / rate) and not estimate.measured
    remember_crops_per_s(config, 1, 20.0)  # a run on this computer measured its own speed
    measured = estimate_cpu(config, threads=1)
    assert measured.measured and measured.seconds == pytest.approx(400.0)
    assert estimate_cpu(dataclasses.replace(config, transfer_layers=2), threads=1).measured is False
    assert device_text("cpu", "CPU", measured) == "CPU: slow, expect about 7 min"
    assert device_text("cuda", "NVIDIA H100 80GB HBM3") == "GPU: NVIDIA H100 80GB HBM3"


def test_durations_and_report_texts():
    assert format_duration(30) == "under a minute"
    assert format_duration(61) == "about 2 min"
    assert format_duration(3 * 3600 + 600) == "about 3 h 10 min"
    assert (
        epoch_text(_epoch())
        == "Epoch 2/5: loss 0.5000, dev ap50 0.610, best 0.610 (epoch 2) — best model saved."
    )
    assert epoch_text(_epoch(dev_score=None, best_score=None, is_best=False)) == "Epoch 2/5: loss 0.5000."
    done = TrainResult("/out", 5, False, 4, 0.7, "ap50", 125.0)
    assert (
        result_text(done, "/out") == "Done in 3 min: best dev ap50 0.700 at epoch 4. Segment now uses /out."
    )
    assert "Resume continues" in result_text(dataclasses.replace(done, cancelled=True))
    assert result_text(None).startswith("Stopped at once")
