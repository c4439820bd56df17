"""The Fine-tune dock widget in a real napari viewer: bounds, estimate, live run, Stop, Resume.

Training runs in a spawned process (about 10 s to import torch and timm on a
loaded 2-core machine), so the run tests are the slowest of the widget tier.
"""

from __future__ import annotations

import itertools
import json
import math
import time

import pytest

from napari_cellseg._qt import _closing
from napari_cellseg.app import current_model
from napari_cellseg.app.finetune_estimate import estimate_cpu, format_duration
from napari_cellseg.training.checkpoints import has_last

TICK_MS = 50
MAX_GAP_MS = 200
TRAIN_SECONDS = 5.0


def _dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Fine-tune")
    return viewer, widget


def test_bounds_follow_the_m2_and_the_estimate_is_computed(make_napari_viewer, qtbot, tmp_path):
    _viewer, widget = _dock(make_napari_viewer)
    form = widget.form
    assert form.l_spin.maximum() == 5 and form.l_spin.value() == 4  # default M2 (EfficientNet-Lite0)
    form.l_spin.setValue(2)
    assert (form.la_spin.maximum(), form.lf_spin.maximum()) == (4, 2)
    form.lf_spin.setValue(2)
    form.l_spin.setValue(1)
    assert form.lf_spin.value() == 1  # l_f <= l holds when l shrinks
    qtbot.waitUntil(lambda: widget.device_kind is not None, timeout=60000)
    assert widget.device_label.text().startswith("CPU: slow, expect ")  # no GPU in the test machine
    form.epochs_spin.setValue(7)
    expected = estimate_cpu(widget.config_draft())
    assert widget.device_label.text() == f"CPU: slow, expect {format_duration(expected.seconds)}"
    form.epochs_spin.setValue(70)  # ten times the steps, ten times the time
    assert estimate_cpu(widget.config_draft()).seconds == pytest.approx(10 * expected.seconds)
    assert widget.device_label.text() == f"CPU: slow, expect {format_duration(10 * expected.seconds)}"

    # An M2 folder of another architecture: its depth is read from timm (4 stages for ConvNeXt).
    m2_dir = tmp_path / "m2"
    m2_dir.mkdir()
    (m2_dir / "config.json").write_text(json.dumps({"arch": "convnext_atto", "num_classes": 0}))
    form.m2_edit.setText(str(m2_dir / "config.json"))  # as the Browse dialog gives it
    assert form.m2_edit.text() == str(m2_dir)
    # a short job its window waits for on close (it emits on deleted signals otherwise)
    assert widget in _closing._SHORT_JOBS.values()
    qtbot.waitUntil(lambda: "4 stages" in form.depth_label.text(), timeout=60000)
    assert form.l_spin.maximum() == 4 and form.l_spin.value() == 1
    form.m2_edit.setText("")
    assert form.l_spin.maximum() == 5  # back to the default M2, without a job


def test_bad_settings_are_refused_before_any_process(make_napari_viewer, tmp_path):
    _viewer, widget = _dock(make_napari_viewer)
    widget.start_button.click()
    assert widget.process is None and widget.task is None
    assert "choose the dataset folder" in widget.message.text()
    widget.form.dataset_edit.setText(str(tmp_path))  # not a dataset
    assert str(tmp_path / "models") in widget.form.out_edit.text()  # an output folder is proposed
    widget.start_button.click()
    assert "not a dataset folder (no manifest.csv)" in widget.message.text() and widget.process is None
    assert not widget.resume_button.isEnabled()


def test_live_run_keeps_napari_responsive_then_stop_and_resume(
    make_napari_viewer, qtbot, split_dataset, tmp_path, wait_for_job, tiny_finetune_settings
):
    from qtpy.QtCore import QTimer

    _viewer, widget = _dock(make_napari_viewer)
    out = tmp_path / "model"
    tiny_finetune_settings(widget, split_dataset, out, epochs=40, steps=25)
    ticks: list[tuple[float, bool]] = []  # (time, training has produced a step)
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append((time.perf_counter(), widget.last_step is not None)))
    timer.start(TICK_MS)
    try:
        widget.start_button.click()
        assert widget.busy and widget.stop_button.isEnabled() and not widget.start_button.isEnabled()

        def trained_long_enough() -> bool:
            training = [t for t, stepping in ticks if stepping]
            return bool(training) and training[-1] - training[0] >= TRAIN_SECONDS and bool(widget.plot.epochs)

        qtbot.waitUntil(trained_long_enough, timeout=120000)
        timer.stop()
        training = [t for t, stepping in ticks if stepping]
        gaps_ms = [1000 * (b - a) for a, b in itertools.pairwise(training)]
        print(f"\n{len(gaps_ms)} ticks over {training[-1] - training[0]:.1f} s of training: "
              f"largest gap {max(gaps_ms):.0f} ms")  # fmt: skip
        assert max(gaps_ms) < MAX_GAP_MS
        assert widget.progress_bar.value() > 0 and widget.progress_bar.maximum() == 40 * 25
        assert "left" in widget.eta_label.text() and "crops/s" in widget.eta_label.text()
        assert widget.plot.epochs[0] == 1 and all(math.isfinite(v) for v in widget.plot.losses)
        assert widget.plot.scores[0] is not None  # the dev image was scored

        widget.stop_button.click()
        assert widget.stop_button.text() == "Stop now"
        task = wait_for_job(widget, timeout=60000)
        assert task.error is None and widget.result.cancelled
        assert (
            has_last(out) and widget.resume_button.isEnabled() and "Resume continues" in widget.message.text()
        )
        assert current_model.get_current_model_dir(default=False) is None  # a stopped run is not made current
        done = widget.result.epochs_done
        step = widget.last_step.global_step

        widget.form.epochs_spin.setValue(1)  # Resume takes the stored run's settings, not the form's
        other = tmp_path / "next-dataset"
        other.mkdir()
        widget.form.dataset_edit.setText(str(other))  # nor the dataset the box names now
        widget.resume_button.click()
        assert widget.form.epochs_spin.value() == 40
        assert widget.form.dataset_edit.text() == str(split_dataset)
        qtbot.waitUntil(
            lambda: widget.last_step is not None and widget.last_step.global_step > step, timeout=60000
        )
        assert len(widget.plot.epochs) >= done  # the stored history is shown again
        widget.stop_button.click()
        widget.stop_button.click()  # "Stop now": ends the process at once
        wait_for_job(widget, timeout=30000)
        assert widget.result is None and "Stopped at once" in widget.message.text()
        assert not widget.process.running and has_last(out)

    finally:  # a failed check must not leave a training process behind
        if widget.process is not None:
            widget.process.kill()


def test_a_finished_run_becomes_the_current_model(
    make_napari_viewer, split_dataset, tmp_path, wait_for_job, tiny_finetune_settings
):
    viewer, widget = _dock(make_napari_viewer)
    _, segment = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    out = tmp_path / "finished"
    tiny_finetune_settings(widget, split_dataset, out, epochs=1, steps=2)
    widget.start_button.click()
    task = wait_for_job(widget, timeout=120000)
    assert task.error is None and not widget.result.cancelled and widget.result.epochs_done == 1
    assert current_model.get_current_model_dir() == out.resolve()
    assert current_model.read_settings()["current_model"] == str(out.resolve())  # kept after a restart
    assert "Segment now uses" in widget.message.text()
    assert out.name in segment.model_label.text()  # the Segment panel follows
    assert widget.plot.epochs == [1] and widget.progress_bar.value() == 2
    assert widget.start_button.isEnabled() and widget.use_button.isEnabled()
    # nothing is left to resume: Resume off, and Start into it says the run is finished
    assert not widget.resume_button.isEnabled()
    widget.start_button.click()
    assert "holds a finished run (all 1 epochs)" in widget.message.text()
    assert "Resume it" not in widget.message.text() and not widget.busy


def test_an_m2_error_goes_once_the_m2_is_put_right(make_napari_viewer, qtbot, tmp_path):
    _viewer, widget = _dock(make_napari_viewer)
    form = widget.form
    form.m2_edit.setText(str(tmp_path))  # a folder without config.json
    qtbot.waitUntil(lambda: "reading" not in form.depth_label.text(), timeout=120000)
    assert "not an M2 folder" in widget.message.text()
    form.m2_edit.setText("")  # the default M2 again
    assert form.depth_label.text().startswith("5 stages") and widget.message.text() == ""


def test_start_from_the_current_model_keeps_its_network(
    make_napari_viewer, split_dataset, tmp_path, wait_for_job, tiny_finetune_settings
):
    from napari_cellseg.inference.runtime import default_model_dir
    from napari_cellseg.models.checkpoint import load_model_config

    _viewer, widget = _dock(make_napari_viewer)
    form = widget.form
    bundled = load_model_config(default_model_dir())
    tiny_finetune_settings(widget, split_dataset, tmp_path / "adapted", epochs=1, steps=2)
    form.start_combo.setCurrentText("Current model")  # no choice yet: the bundled default model
    assert "bundled default model" in form.start_label.text() and "network is kept" in form.start_label.text()
    assert (form.l_spin.value(), form.la_spin.value()) == (bundled.transfer_layers, bundled.new_layers)
    assert not form.l_spin.isEnabled() and form.lf_spin.isEnabled()
    assert widget.config_draft().init_model == str(default_model_dir())
    # l_a can only grow: the model's decoder blocks are kept, finer ones added
    assert form.la_spin.isEnabled() and form.la_spin.minimum() == bundled.new_layers
    assert not widget.config_draft().grow_decoder
    form.la_spin.setValue(bundled.new_layers + 1)
    assert widget.config_draft().grow_decoder and widget.config_draft().new_layers == bundled.new_layers + 1
    form.la_spin.setValue(bundled.new_layers)
    if bundled.default_diameter == 0:  # it segments at one nucleus size: it is adapted there too
        assert form.diameter_spin.value() == pytest.approx(bundled.object_diameter, abs=0.05)

    form.start_combo.setCurrentText("Model folder")
    form.start_edit.setText(str(tmp_path))  # not a model
    assert "unusable model" in form.start_label.text() and form.l_spin.isEnabled()
    widget.start_button.click()
    assert widget.process is None and "is not a model folder" in widget.message.text()

    form.start_combo.setCurrentText("Current model")
    form.lf_spin.setValue(1)
    widget.start_button.click()
    task = wait_for_job(widget, timeout=120000)
    assert task.error is None and widget.result.epochs_done == 1
    adapted = load_model_config(tmp_path / "adapted")
    assert adapted.training["train_config"]["init_model"] == str(default_model_dir())
    assert (adapted.transfer_layers, adapted.new_layers, adapted.frozen_layers) == (
        bundled.transfer_layers, bundled.new_layers, 1)  # fmt: skip
    form.start_combo.setCurrentText("M2 (a new network)")
    assert form.l_spin.isEnabled() and widget.config_draft().init_model is None
    assert form.la_spin.minimum() == 1 and not widget.config_draft().grow_decoder
    assert widget.config_draft().object_diameter is None and form.diameter_spin.text() == "own scale"
    form.start_combo.setCurrentText("Current model")
    form.diameter_spin.setValue(0.0)  # own scale, although the model resamples images
    assert form.diameter_spin.text() == "own scale" and widget.config_draft().object_diameter == 0.0
    form.start_combo.setCurrentText("M2 (a new network)")
    form.diameter_spin.setValue(22.0)  # size normalisation
    assert widget.config_draft().object_diameter == 22.0


def test_training_into_a_model_folder_is_refused(
    make_napari_viewer, split_dataset, tiny_model_dir, tiny_finetune_settings
):
    # e.g. the output set to the model the run starts from: its weights would be replaced unasked
    _viewer, widget = _dock(make_napari_viewer)
    before = (tiny_model_dir / "model.safetensors").read_bytes()
    tiny_finetune_settings(widget, split_dataset, tiny_model_dir, epochs=1, steps=2)
    widget.start_button.click()
    assert widget.process is None and "already holds a model" in widget.message.text()
    assert (tiny_model_dir / "model.safetensors").read_bytes() == before


def test_start_from_the_current_model_follows_a_new_current_model(make_napari_viewer, tiny_model_dir):
    _viewer, widget = _dock(make_napari_viewer)
    form = widget.form
    form.start_combo.setCurrentText("Current model")  # the bundled model's network (l = 4)
    current_model.set_current_model(tiny_model_dir)  # e.g. another run just finished
    assert "tiny-model" in form.start_label.text()
    assert (form.l_spin.value(), form.la_spin.value()) == (2, 2)
    assert widget.config_draft().init_model == str(tiny_model_dir.resolve())


def test_resuming_a_run_without_a_split_shows_the_warning(
    make_napari_viewer, qtbot, tiny_dataset, tmp_path, wait_for_job
):
    # The panel starts no run without a split file, but Resume continues one started by `train`
    # without --split: it trains on every image, and says so as the command line does.
    from napari_cellseg.training.config import TrainConfig
    from napari_cellseg.training.engine import run_training
    from napari_cellseg.training.reports import StepReport

    out = tmp_path / "no-split"
    config = TrainConfig(
        data_dir=str(tiny_dataset), split_path=None, out_dir=str(out), transfer_layers=2, new_layers=2,
        epochs=1, steps_per_epoch=500, batch_size=2, patch_size=64, num_threads=1, augment_preset="light",
    )  # fmt: skip
    steps = []
    count = lambda report: steps.append(report) if isinstance(report, StepReport) else None  # noqa: E731
    assert run_training(config, cancel=lambda: len(steps) >= 1, callback=count).cancelled
    _viewer, widget = _dock(make_napari_viewer)
    widget.form.out_edit.setText(str(out))
    try:
        assert widget.resume_button.isEnabled()
        widget.resume_button.click()
        qtbot.waitUntil(lambda: "no split file" in widget.message.text(), timeout=120000)
        text = widget.message.text()
        assert text.startswith("Warning:") and "trains on every image" in text and "no dev set" in text
        widget.stop_button.click()
        widget.stop_button.click()  # "Stop now"
        wait_for_job(widget, timeout=30000)  # the run ended: the next test's panel may start one
    finally:
        if widget.process is not None:
            widget.process.kill()
