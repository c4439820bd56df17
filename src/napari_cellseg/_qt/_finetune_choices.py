"""The Fine-tune panel's reactions to its choices: device, M2 depth, model to start from.

A mixin of :class:`.finetune.FinetuneWidget` (it uses the panel's form, labels, ``say``
and ``busy``); reading an M2 goes through the training process, so napari never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from ..app.current_model import NO_MODEL_HELP, describe_model
from ..app.finetune_estimate import device_text, estimate_cpu
from ..app.finetune_session import call_in_training_process
from ..app.m2_info import m2_depth
from ..models.defaults import DEFAULT_M2_DEPTH
from ..training.config import TrainConfig
from ._closing import finish_before_close
from ._finetune_form import START_CURRENT, START_M2
from ._workers import run_task, while_shown

M2_ERROR = "M2: "  # starts the status line of an unreadable M2


class FinetuneChoices:
    """Device line and estimate, the M2's depth bounds, the start model's network."""

    @while_shown
    def _device_found(self, found) -> None:
        self.device_kind, self.device_name = found
        self.update_estimate()

    def config_draft(self) -> TrainConfig:
        """The form's settings (not validated)."""
        return TrainConfig(**self.form.values())

    def update_estimate(self, *_) -> None:
        """Device line: "GPU: <name>" or "CPU: slow, expect about N min" for the planned steps."""
        if self.device_kind is None or self.busy:
            return
        estimate = None
        if self.device_kind == "cpu":
            estimate = estimate_cpu(self.config_draft())
            self.device_label.setToolTip(f"estimated from {estimate.source()} and the planned steps")
        self.device_label.setText(device_text(self.device_kind, self.device_name, estimate))

    def _m2_changed(self, text: str) -> None:
        if Path(text).name == "config.json":  # an M2 folder, chosen by its config
            self.form.m2_edit.setText(str(Path(text).parent))  # comes back here with the folder
            return
        if not text or text == "default":
            self.form.set_depth(DEFAULT_M2_DEPTH)
            self._clear_m2_error()
            return
        self.form.depth_label.setText("reading the M2…")
        task = run_task(
            call_in_training_process, m2_depth, text, title="Read the M2", show_progress=False,
            on_result=lambda depth: self._depth_found(text, depth),
            on_error=lambda err: self._depth_found(text, None, err),
        )  # fmt: skip
        finish_before_close(task.worker, self)  # short: its window waits for it

    def _start_changed(self, *_) -> None:
        """Show the network of the model to start from (its config.json only, no torch)."""
        from ..models.checkpoint import load_model_config
        from ..models.weights_io import ModelLoadError

        if self.form.start_combo.currentText() == START_M2:
            self._m2_changed(self.form.m2_edit.text())  # the M2's bounds again
            return
        directory = self.form.start_model_dir()
        if directory is None:
            self.form.start_label.setText(
                NO_MODEL_HELP
                if self.form.start_combo.currentText() == START_CURRENT
                else "choose a model folder"
            )
            self.form.set_start_network(None)
            return
        try:
            model_config = load_model_config(directory)
        except ModelLoadError as err:
            self.form.start_label.setText(f"unusable model: {err}")
            self.form.set_start_network(None)
            return
        self.form.start_label.setText(
            describe_model(directory) + ": its network is kept (raise l_a for a finer output)"
        )
        self.form.set_start_network(model_config)
        self.update_estimate()

    def _current_model_changed(self, directory) -> None:
        if self.form.start_combo.currentText() == START_CURRENT:  # its network and size follow
            self._start_changed()

    @while_shown
    def _depth_found(self, m2: str, depth: int | None, error: BaseException | None = None) -> None:
        if m2 != self.form.m2_edit.text():  # the M2 changed again meanwhile: a newer answer follows
            return
        if depth is None:  # unreadable M2: keep the last bounds, say why
            self.form.depth_label.setText("could not read this M2")
            self.say(f"{M2_ERROR}{error}", error=True)
            return
        self.form.set_depth(depth)
        self._clear_m2_error()

    def _clear_m2_error(self) -> None:
        if self.message.text().startswith(M2_ERROR):  # the M2 it was about has been put right
            self.say("")
