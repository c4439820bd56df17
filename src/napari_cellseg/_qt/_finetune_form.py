"""The Fine-tune panel's controls: the settings (network, loss, training, data) and the run box."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..app.current_model import get_current_model_dir
from ..classes import DEFAULT_BOUNDARY_WEIGHT_BCE, DEFAULT_CLASS_WEIGHTS
from ..data.augment import PRESETS as AUGMENT_PRESETS
from ..inference.runtime import default_model_dir
from ..models.defaults import DEFAULT_M2_DEPTH, MAX_EXTRA_BLOCKS
from ..training.config import LOSSES, TrainConfig
from ._common import PathEdit
from ._training_plot import TrainingPlot

START_M2, START_CURRENT, START_FOLDER = "M2 (a new network)", "Current model", "Model folder"
START_CHOICES = (START_M2, START_CURRENT, START_FOLDER)
LA_TOOLTIP = "l_a: new decoder layers"


def _form(box: QGroupBox) -> QFormLayout:
    form = QFormLayout(box)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow dock wraps, never clips
    return form


def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


def _double(
    low: float, high: float, value: float, decimals: int, step: float, tip: str = ""
) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


class FinetuneForm(QWidget):
    """Every setting of a fine-tuning run; :meth:`values` gives them as TrainConfig fields.

    The ``l`` / ``l_a`` / ``l_f`` spin boxes follow the chosen M2's depth
    (:meth:`set_depth`): ``1 <= l <= depth``, ``1 <= l_a <= l + 2``, ``0 <= l_f <= l``.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        defaults = TrainConfig()
        self.depth = DEFAULT_M2_DEPTH
        network = QGroupBox("Network")
        form = _form(network)
        self.start_combo = QComboBox()
        self.start_combo.addItems(list(START_CHOICES))
        self.start_combo.setToolTip(
            "M2: a new network cut from the pretrained classifier (l, l_a, l_f below). "
            "Current model / Model folder: go on training a segmentation model (for example the "
            "bundled one on your own microscope's images); it keeps its network, only l_f applies"
        )
        self.start_edit = PathEdit("dir", "a trained model folder (model.safetensors + config.json)")
        self.start_label = QLabel("")
        self.start_label.setWordWrap(True)
        form.addRow("Start from", self.start_combo)
        self.start_edit_label = QLabel("Model folder")
        form.addRow(self.start_edit_label, self.start_edit)
        form.addRow("", self.start_label)
        self.m2_edit = PathEdit("dir", "default: ImageNet EfficientNet-Lite0 (bundled)")
        self.m2_edit.setToolTip(
            "The pretrained network to start from: empty for the default, or an M2 folder"
        )
        self.depth_label = QLabel("")
        self.l_spin = _spin(1, self.depth, defaults.transfer_layers, "l: stages of M2 transferred")
        self._start_new_layers: int | None = None  # l_a of the model to start from
        self.la_spin = _spin(1, self.depth + MAX_EXTRA_BLOCKS, defaults.new_layers, LA_TOOLTIP)
        self.lf_spin = _spin(0, self.depth, defaults.frozen_layers, "l_f: transferred stages kept frozen")
        form.addRow("M2", self.m2_edit)
        form.addRow("", self.depth_label)
        form.addRow("l (layers transferred)", self.l_spin)
        form.addRow("l_a (new layers)", self.la_spin)
        form.addRow("l_f (frozen layers)", self.lf_spin)
        self.loss_combo = QComboBox()
        self.loss_combo.addItems(list(LOSSES))
        self.loss_combo.setToolTip(
            "weighted-ce: softmax over background/boundary/interior; "
            "weighted-bce: sigmoid foreground and boundary"
        )
        self.weight_spins = [
            _double(0.01, 100.0, w, 2, 0.5, f"weight of the {name} class")
            for w, name in zip(DEFAULT_CLASS_WEIGHTS, ("background", "boundary", "interior"))
        ]
        weights = QHBoxLayout()
        for spin in self.weight_spins:
            weights.addWidget(spin)
        self.weights_label = QLabel("Class weights")
        self.weights_label.setToolTip("background / boundary / interior: what a mistake on each costs")
        self.boundary_spin = _double(
            0.01, 100.0, DEFAULT_BOUNDARY_WEIGHT_BCE, 2, 0.5, "weight of the boundary term"
        )
        self.boundary_label = QLabel("Boundary weight")
        form.addRow("Loss", self.loss_combo)
        form.addRow(self.weights_label, weights)
        form.addRow(self.boundary_label, self.boundary_spin)

        training = QGroupBox("Training")
        form = _form(training)
        self.augment_combo = QComboBox()
        self.augment_combo.addItems(list(AUGMENT_PRESETS))
        self.augment_combo.setCurrentText(defaults.augment_preset)
        self.augment_combo.setToolTip("Random crops, flips, rotations, stain and contrast changes")
        self.epochs_spin = _spin(1, 10000, defaults.epochs, "passes; each is 'steps per epoch' batches")
        self.steps_spin = _spin(1, 100000, defaults.steps_per_epoch, "optimizer steps per epoch")
        self.batch_spin = _spin(1, 512, defaults.batch_size, "crops per step")
        self.patch_spin = _spin(32, 2048, defaults.patch_size, "side of the square training crops, pixels")
        self.patch_spin.setSingleStep(32)
        self.lr_spin = _double(1e-6, 1.0, defaults.lr, 6, 1e-4, "AdamW learning rate")
        self.diameter_spin = _double(
            0.0, 500.0, 0.0, 1, 1.0,
            "Size normalisation: every image is resampled so its nuclei measure this many pixels "
            "(median), and the model then measures each image's nuclei when it segments. "
            "'own scale' keeps the images as they are",
        )  # fmt: skip
        self.diameter_spin.setSpecialValueText("own scale")
        self._diameter_from_model = 0.0
        form.addRow("Augmentation", self.augment_combo)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Steps per epoch", self.steps_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Crop size", self.patch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Nucleus size (px)", self.diameter_spin)

        data = QGroupBox("Data and output")
        form = _form(data)
        self.dataset_edit = PathEdit("dir", "dataset folder (Dataset panel)")
        self.split_edit = PathEdit("open", "<dataset>/split.csv", "CSV (*.csv)")
        self.out_edit = PathEdit("dir", "output model folder")
        self.out_edit.setToolTip("Receives the best model, and last/ (the position for Resume)")
        form.addRow("Dataset", self.dataset_edit)
        form.addRow("Split file", self.split_edit)
        form.addRow("Output model", self.out_edit)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for box in (network, training, data):
            layout.addWidget(box)

        self.start_combo.currentTextChanged.connect(self._start_choice_changed)
        self._start_choice_changed(self.start_combo.currentText())
        self.l_spin.valueChanged.connect(self._l_changed)
        self.loss_combo.currentTextChanged.connect(self._loss_changed)
        self.set_depth(self.depth)
        self._loss_changed(self.loss_combo.currentText())

    def _start_choice_changed(self, choice: str) -> None:
        self.start_edit.setVisible(choice == START_FOLDER)
        self.start_edit_label.setVisible(choice == START_FOLDER)
        self.start_label.setVisible(choice != START_M2)
        if choice == START_M2:
            self.set_start_network(None)

    def start_model_dir(self) -> Path | None:
        """The model to start from: None for M2, else the current model or the chosen folder."""
        choice = self.start_combo.currentText()
        if choice == START_CURRENT:
            return get_current_model_dir()
        if choice == START_FOLDER:
            return self.start_edit.path()
        return None

    def set_start_network(self, model_config) -> None:
        """Show the starting model's network (fixed but for l_f, and l_a upwards), or free it (None)."""
        fixed = model_config is not None
        for widget in (self.m2_edit, self.l_spin, self.loss_combo):
            widget.setEnabled(not fixed)
        if not fixed:
            self._start_new_layers = None
            self._l_changed(self.l_spin.value())
            self.la_spin.setToolTip(LA_TOOLTIP)
            if self._diameter_from_model and self.diameter_spin.value() == self._diameter_from_model:
                self.diameter_spin.setValue(0.0)  # the model's size goes with the model
            self._diameter_from_model = 0.0
            return
        self.l_spin.setMaximum(max(self.l_spin.maximum(), model_config.transfer_layers))
        self.l_spin.setValue(model_config.transfer_layers)
        # l_a may only grow: the model's blocks are kept, finer ones added (init_model.grow_decoder)
        self._start_new_layers = model_config.new_layers
        self.la_spin.setRange(
            model_config.new_layers,
            max(model_config.new_layers, model_config.transfer_layers + MAX_EXTRA_BLOCKS),
        )
        self.la_spin.setValue(model_config.new_layers)
        self.la_spin.setToolTip(
            f"the model has {model_config.new_layers} new layers; more adds decoder blocks at a finer "
            "resolution (the model's blocks are kept, the new ones and the output layer start afresh)"
        )
        self.loss_combo.setCurrentText(model_config.loss)
        if model_config.default_diameter == 0 and model_config.object_diameter:
            # it segments at this nucleus size (each image resampled to it): adapt it there too
            self.diameter_spin.setValue(model_config.object_diameter)
            self._diameter_from_model = self.diameter_spin.value()

    def set_depth(self, depth: int) -> None:
        """Bound ``l`` by the M2's depth (and ``l_a``, ``l_f`` by ``l``)."""
        self.depth = int(depth)
        self.l_spin.setRange(1, self.depth)
        self.depth_label.setText(f"{self.depth} stages: l from 1 to {self.depth}")
        self._l_changed(self.l_spin.value())

    def _l_changed(self, value: int) -> None:
        if self._start_new_layers is None:
            self.la_spin.setRange(1, value + MAX_EXTRA_BLOCKS)
        self.lf_spin.setRange(0, value)

    def _loss_changed(self, loss: str) -> None:
        ce = loss == "weighted-ce"
        for widget in (self.weights_label, *self.weight_spins):
            widget.setVisible(ce)
        self.boundary_label.setVisible(not ce)
        self.boundary_spin.setVisible(not ce)

    def split_path(self):
        """The split file: as given, else ``<dataset>/split.csv``."""
        root = self.dataset_edit.path()
        return self.split_edit.path() or (root / "split.csv" if root is not None else None)

    def values(self) -> dict:
        """The settings as :class:`TrainConfig` fields."""
        root, split, out = self.dataset_edit.path(), self.split_path(), self.out_edit.path()
        start = self.start_model_dir()
        return dict(
            data_dir=str(root) if root else "",
            split_path=str(split) if split else None,
            out_dir=str(out) if out else "",
            m2=self.m2_edit.text() or "default",
            init_model=str(start) if start is not None else None,
            transfer_layers=self.l_spin.value(),
            new_layers=self.la_spin.value(),
            grow_decoder=self._start_new_layers is not None and self.la_spin.value() > self._start_new_layers,
            frozen_layers=self.lf_spin.value(),
            loss=self.loss_combo.currentText(),
            class_weights=tuple(spin.value() for spin in self.weight_spins),
            boundary_weight=self.boundary_spin.value(),
            augment_preset=self.augment_combo.currentText(),
            epochs=self.epochs_spin.value(),
            steps_per_epoch=self.steps_spin.value(),
            batch_size=self.batch_spin.value(),
            patch_size=self.patch_spin.value(),
            lr=self.lr_spin.value(),
            # "own scale" from a model that resamples images: 0, else the model's size would be taken
            object_diameter=self.diameter_spin.value() or (0.0 if start is not None else None),
        )

    def show_config(self, config: TrainConfig) -> None:
        """Fill the form from a stored run (Resume)."""
        if config.init_model:
            folder = default_model_dir() if config.init_model == "default" else config.init_model
            self.start_combo.setCurrentText(START_FOLDER)
            self.start_edit.setText(str(folder))
        else:
            self.start_combo.setCurrentText(START_M2)
        self.m2_edit.edit.setText("" if config.m2 == "default" else config.m2)
        if config.m2 == "default":
            self.set_depth(DEFAULT_M2_DEPTH)
        else:  # the run was checked when it started: show its values whatever the bounds say
            self.l_spin.setMaximum(max(self.l_spin.maximum(), config.transfer_layers))
        self.l_spin.setValue(config.transfer_layers)
        self.la_spin.setValue(config.new_layers)
        self.lf_spin.setValue(config.frozen_layers)
        self.loss_combo.setCurrentText(config.loss)
        for spin, weight in zip(self.weight_spins, config.class_weights):
            spin.setValue(weight)
        self.boundary_spin.setValue(config.boundary_weight)
        self.augment_combo.setCurrentText(config.augment_preset)
        self.epochs_spin.setValue(config.epochs)
        self.steps_spin.setValue(config.steps_per_epoch)
        self.batch_spin.setValue(config.batch_size)
        self.patch_spin.setValue(config.patch_size)
        self.lr_spin.setValue(config.lr)
        self.diameter_spin.setValue(config.object_diameter or 0.0)

    def changed_signals(self) -> list:
        """Signals of the settings the time estimate depends on."""
        spins = (
            self.l_spin,
            self.la_spin,
            self.epochs_spin,
            self.steps_spin,
            self.batch_spin,
            self.patch_spin,
        )
        return [spin.valueChanged for spin in spins]


class RunBox(QGroupBox):
    """The run's controls: device line, Start / Stop / Resume / Use for Segment, progress, live plot."""

    def __init__(self, theme: str | None = None, parent=None):
        super().__init__("Run", parent)
        grid = QGridLayout(self)
        self.device_label = QLabel("Device: checking…")
        self.device_label.setWordWrap(True)
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Train into the output folder (it must not hold another run)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after this step and save the position (click again: stop at once)")
        self.stop_button.setEnabled(False)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the stopped run stored in the output folder")
        self.use_button = QPushButton("Use for Segment")
        self.use_button.setToolTip("Make the best model in the output folder the one Segment uses")
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v / %m steps")
        self.eta_label = QLabel("")
        self.eta_label.setWordWrap(True)
        self.plot = TrainingPlot(theme)
        grid.addWidget(self.device_label, 0, 0, 1, 4)
        for column, button in enumerate(
            (self.start_button, self.stop_button, self.resume_button, self.use_button)
        ):
            grid.addWidget(button, 1, column)
        grid.addWidget(self.progress_bar, 2, 0, 1, 4)
        grid.addWidget(self.eta_label, 3, 0, 1, 4)
        grid.addWidget(self.plot, 4, 0, 1, 4)
