"""The Fine-tune dock widget: train a segmentation network and watch it learn.

A run starts from M2 (a new network with ``l``, ``l_a``, ``l_f``) or from a
trained model (the current one or a folder: ``init_model``, its network kept).

The run goes in a separate process (:mod:`napari_cellseg.app.finetune_session`):
napari stays responsive however busy the training is; the process server
is warmed up when the panel opens, so Start responds at once. Its reports come back
through a thread worker (``run_task``) and drive the progress bar, the ETA
and the live plot. Stop asks the run to save its position (Resume continues
there; a second click stops at once). When a run ends, its best model
becomes the current model (:mod:`napari_cellseg.app.current_model`), the one the
Segment panel uses.

Closing the panel stops its run as Stop does. napari's close button (and
``remove_dock_widget``) only takes the panel out of its dock, so the panel stops
its run when it loses its parent, and when it is deleted (the viewer closed).
Such a run still saves its position and never becomes the current model; no other
run starts from any Fine-tune panel until it ended.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

from napari.utils.notifications import show_info
from qtpy.QtCore import QEvent

from ..app.current_model import set_current_model
from ..app.finetune_estimate import (
    epoch_text,
    format_duration,
    probe_device,
    remember_crops_per_s,
    result_text,
    saved_in,
    start_text,
    step_text,
)
from ..app.finetune_session import (
    TrainingProcess,
    add_run,
    add_run_listener,
    call_in_training_process,
    going_text,
    remove_run_listener,
    run_going,
    run_task_of,
    start_problems,
    warm_up,
)
from ..training.checkpoints import LAST_DIR, TRAIN_CONFIG, has_last
from ..training.config import RUNTIME_FIELDS, TrainConfig
from ..training.reports import EpochReport, StartReport, StepReport, TrainResult
from ._closing import finish_before_close
from ._common import follow, follow_current_model
from ._finetune_choices import FinetuneChoices
from ._finetune_form import START_M2, FinetuneForm, RunBox
from ._panel import TaskPanel
from ._workers import run_task, while_shown

logger = logging.getLogger(__name__)


def _stop_quietly(process: TrainingProcess) -> None:
    """The panel is gone: let the run save its position and end."""
    process.stop()


class FinetuneWidget(FinetuneChoices, TaskPanel):
    """Fine-tune a network (from M2 or a trained model) on a dataset's train images, scored on dev."""

    title = "Fine-tune"

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.cancel_button.hide()  # Stop replaces it: it saves the position for Resume
        self.form = FinetuneForm()
        self.body.addWidget(self.form)  # the panel scrolls (one scroll bar, not one inside another)
        run = RunBox(getattr(self.viewer, "theme", None))
        self.body.addWidget(run)
        self.device_label, self.progress_bar, self.eta_label, self.plot = (
            run.device_label, run.progress_bar, run.eta_label, run.plot)  # fmt: skip
        self.start_button, self.stop_button = run.start_button, run.stop_button
        self.resume_button, self.use_button = run.resume_button, run.use_button

        self.process: TrainingProcess | None = None
        self.device_kind: str | None = None
        self.device_name = ""
        self.threads = 1
        self.last_step: StepReport | None = None
        self.result: TrainResult | None = None
        self.dev_images: int | None = None
        self.closed_run: TrainingProcess | None = None  # stopped because the panel was closed
        self.action_buttons = [self.start_button, self.resume_button, self.use_button]

        self.start_button.clicked.connect(self.start_training)
        self.stop_button.clicked.connect(self.stop_training)
        self.resume_button.clicked.connect(self.resume_training)
        self.use_button.clicked.connect(self.use_output_model)
        self.form.m2_edit.changed.connect(self._m2_changed)
        self.form.start_combo.currentTextChanged.connect(self._start_changed)
        self.form.start_edit.changed.connect(self._start_changed)
        self.form.dataset_edit.changed.connect(self._dataset_changed)
        follow_current_model(self, FinetuneWidget._current_model_changed)
        self.form.out_edit.changed.connect(self._update_buttons)
        for signal in self.form.changed_signals():
            signal.connect(self.update_estimate)
        try:
            warm_up()  # the fork server imports torch now, in its own process: Start is then instant
        except OSError as err:  # training still works, each run imports torch itself
            logger.warning("could not start the training process server early: %s", err)
        self._probe = run_task(
            call_in_training_process, probe_device, title="Find the training device", show_progress=False,
            on_result=self._device_found,
        )  # fmt: skip
        finish_before_close(self._probe.worker, self)
        self._update_buttons()
        self.say("Choose the dataset and an output folder, then Start.")
        other = run_going(reporting=True)
        if other is not None:  # e.g. the run of this panel's closed predecessor, still saving
            run_task_of(other).worker.finished.connect(self._other_run_ended)
            self.say(f"{going_text(other)}; Start and Resume wait for it.")
        # runs another panel (another viewer's) starts later
        follow(self, FinetuneWidget._other_run_started, add_run_listener, remove_run_listener)

    def _other_run_started(self, process: TrainingProcess, task) -> None:
        if process is self.process:
            return
        task.worker.finished.connect(self._other_run_ended)
        self._update_buttons()
        if not self.busy:
            self.say(f"{going_text(process)}; Start and Resume wait for it.")

    def _dataset_changed(self, text: str) -> None:
        root = self.form.dataset_edit.path()
        if root is not None and not self.form.out_edit.text():
            self.form.out_edit.setText(str(root / "models" / time.strftime("model-%Y%m%d-%H%M")))
        self._update_buttons()

    def _update_buttons(self, *_) -> None:
        out = self.form.out_edit.path()
        # another panel's run whose reports still come: wait (its task's end updates these)
        idle = not self.busy and run_going(self.process, reporting=True) is None
        # saved_in is read-only: has_last may repair, never while a run writes
        self.resume_button.setEnabled(idle and out is not None and saved_in(out).resumable)
        self.use_button.setEnabled(idle and out is not None and (out / "config.json").is_file())
        self.start_button.setEnabled(idle)

    # --- start, stop, resume ---------------------------------------------------

    def _checked_config(self, config: TrainConfig) -> TrainConfig | None:
        """``config``, or None after saying every problem (no process is started)."""
        problems = start_problems(config, self.form.start_combo.currentText() != START_M2)
        if problems:
            self.fail("; ".join(problems))
            return None
        return config

    def _refused_while_another_runs(self) -> bool:
        """One run at a time: two would share the device and race for the current model."""
        other = run_going(exclude=self.process if self.busy else None)
        if other is not None:
            self.fail(f"{going_text(other)}: wait for it to end (or Stop it where it runs)")
        return other is not None

    @while_shown
    def _other_run_ended(self) -> None:
        self._update_buttons()
        if not self.busy and run_going() is None:
            self.say("The other run has ended: Start and Resume are free again.")

    def start_training(self) -> None:
        """Start a new run into the output folder."""
        if self._refused_while_another_runs():
            return
        config = self._checked_config(self.config_draft())
        if config is None:
            return
        if has_last(config.out_dir):
            done = saved_in(config.out_dir)
            what = f"a finished run (all {done.epochs} epochs):" if done.finished else "a run: Resume it, or"
            self.fail(f"{config.out_dir} already holds {what} choose another output folder")
            return
        if Path(config.out_dir, "model.safetensors").is_file():  # e.g. the model it starts from
            self.fail(f"{config.out_dir} already holds a model that training would replace: choose another output folder")  # fmt: skip
            return
        self.plot.clear()
        self._launch(config, resume=False)

    def resume_training(self) -> None:
        """Continue the run stored in the output folder with its own settings."""
        if self._refused_while_another_runs():  # before has_last, which may repair a folder being written
            return
        out = self.form.out_edit.path()
        if out is None or not has_last(out):
            self.fail("the output folder holds no stopped run to resume")
            return
        try:
            stored = TrainConfig.load(out / LAST_DIR / TRAIN_CONFIG)
        except ValueError as err:
            self.fail(str(err))
            return
        given = {k: v for k, v in self.config_draft().to_dict().items() if k in RUNTIME_FIELDS and v}
        given.pop("num_threads", None)
        if stored.data_dir and Path(stored.data_dir).is_dir():
            # its own dataset and split (shown in the form below), whatever the box says now;
            # only a dataset that moved is taken from the box
            given.pop("data_dir", None)
            given.pop("split_path", None)
        config = self._checked_config(
            TrainConfig.from_dict({**stored.to_dict(), **given, "out_dir": str(out)})
        )
        if config is None:
            return
        self.form.show_config(config)
        if config.data_dir and self.form.dataset_edit.text() != config.data_dir:
            self.form.dataset_edit.setText(config.data_dir)  # the dataset it resumes on
        self._show_stored_history(out / LAST_DIR)
        self._launch(config, resume=True)

    def _show_stored_history(self, directory: Path) -> None:
        from ..models.checkpoint import load_model_config

        try:
            stored = load_model_config(directory)
        except ValueError:
            return
        self.plot.set_history(stored.training.get("history", []), stored.metrics.get("score_name", ""))

    def _launch(self, config: TrainConfig, resume: bool) -> None:
        self.process = process = TrainingProcess(config, resume=resume)
        self.destroyed.connect(functools.partial(_stop_quietly, process))
        self.last_step, self.result, self.dev_images, self.closed_run = None, None, None, None
        self.progress_bar.setRange(0, config.epochs * config.steps_per_epoch)
        self.progress_bar.setValue(0)
        self.eta_label.setText("starting the training process…")
        task = self.start(
            process.reports, title="Fine-tune", on_report=self._on_report, on_result=self._on_result,
            show_progress=False,
        )  # fmt: skip
        if task is None:
            return
        add_run(process, task)
        self.stop_button.setText("Stop")
        self.stop_button.setEnabled(True)
        task.worker.finished.connect(self._finished)
        task.worker.aborted.connect(process.stop)
        self.say(f"{'Resuming' if resume else 'Training'} into {config.out_dir}…")

    def stop_training(self) -> None:
        """First click: stop after this step and save; second click: stop at once."""
        process = self.process
        if process is None or not self.busy:
            return
        if not process.stop_requested:
            process.stop()
            self.stop_button.setText("Stop now")
            self.say("Stopping after this step; the position is saved so that Resume continues there.")
        else:
            process.kill()
            self.stop_button.setEnabled(False)
            self.say("Stopping at once…")  # what was saved is said once the run ended

    def use_output_model(self) -> None:
        out = self.form.out_edit.path()
        try:
            path = set_current_model(out) if out is not None else None
        except ValueError as err:
            self.fail(str(err))
            return
        if path is not None:
            self.say(f"Segment now uses {path}.")

    # --- reports ----------------------------------------------------------------

    @while_shown
    def _on_report(self, report) -> None:
        if isinstance(report, StartReport):
            self.threads = report.threads
            self.dev_images = report.n_dev_images
            self.progress_bar.setValue(report.start_step)
            on_gpu = not report.device.startswith("cpu")
            self.device_label.setText(f"GPU: {self.device_name}" if on_gpu else "CPU: slow")
            self.device_label.setToolTip(report.device_reason)
            self.eta_label.setText(start_text(report))
            if report.warnings:  # e.g. dev images without a cell: the best epoch is not chosen by score
                self.say("Warning: " + " ".join(report.warnings), error=True)
        elif isinstance(report, StepReport):
            self.last_step = report
            self.progress_bar.setMaximum(report.total_steps)
            self.progress_bar.setValue(report.global_step)
            self.eta_label.setText(step_text(report))
            if self.device_label.text().startswith("CPU"):
                self.device_label.setText(f"CPU: slow, {format_duration(report.eta_s)} left")
        elif isinstance(report, EpochReport):
            self.plot.add_epoch(report.epoch, report.train_loss, report.dev_score, report.score_name)
            self.say(epoch_text(report))

    @while_shown
    def _on_result(self, result: TrainResult | None) -> None:
        self.result = result
        process = self.process
        if process is not None and self.last_step is not None and self.device_kind == "cpu":
            remember_crops_per_s(process.config, self.threads, self.last_step.samples_per_s)
        closed = process is not None and process is self.closed_run
        current = None
        if result is not None and not result.cancelled and not closed:  # a closed panel's run: never
            current = set_current_model(result.out_dir)  # Segment uses it from now on
        saved = saved_in(process.config.out_dir) if process is not None else None
        text = result_text(result, str(current) if current else None, saved, self.dev_images)
        self.say(text)
        if closed:
            show_info(f"Fine-tune (panel closed): {text}")

    @while_shown
    def _finished(self) -> None:
        self.stop_button.setEnabled(False)
        self.stop_button.setText("Stop")
        self._update_buttons()
        self.update_estimate()

    # --- the panel closed ---------------------------------------------------------

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        # napari's X and remove_dock_widget take the panel out of its dock without closing it
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.panel_closed()

    def closeEvent(self, event) -> None:
        self.panel_closed()
        super().closeEvent(event)

    def panel_closed(self) -> None:
        """Stop the run as Stop does (its position is saved); it will not become the current model."""
        process = self.process
        if process is None or not self.busy or process is self.closed_run:
            return
        self.closed_run = process
        if not process.stop_requested:
            process.stop()
        show_info(f"Fine-tune panel closed: its run into {process.config.out_dir} stops after this step.")
