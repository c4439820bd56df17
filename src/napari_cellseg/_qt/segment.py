"""The Segment dock widget: one click from an image to its cells, then live watershed sliders.

The current model (:mod:`napari_cellseg.app.current_model`: the one Fine-tune
trained last, a chosen folder, or the bundled default) segments the chosen
image in a thread worker. The panel adds the boundary probability (and,
optionally, the interior one) and the cells as a Labels layer, all with the
image's scale and translate. The sliders re-run only the watershed on the
stored probabilities (debounced, in a worker; stale results are dropped).
The same core runs from the layer menu (Layers > Segment) and, once the panel
has been opened in a viewer, Ctrl+Shift+S (:func:`segment_selected_layer`; napari
0.9 does not bind a manifest's keybindings, so the panel binds it).
"""

from __future__ import annotations

import time

import numpy as np
from napari.viewer import Viewer
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QFont
from qtpy.QtWidgets import QCheckBox, QFormLayout, QGroupBox, QLabel, QPushButton
from superqt import QLabeledDoubleSlider, QLabeledSlider

from ..app.annotation import KIND_KEY
from ..app.current_model import (
    NO_MODEL_HELP,
    describe_model,
    get_current_model_dir,
    set_current_model,
)
from ..app.segment_session import (
    image_plane_data,
    initial_watershed,
    iter_segment_one_click,
    warm_up,
    watershed_again,
    with_slider_values,
)
from ..classes import BOUNDARY, INTERIOR
from ..inference.watershed import WatershedParams
from ._common import LayerCombo, PathEdit, follow_current_model, is_layer_type
from ._layers import KIND_PROBABILITY, placement, put_labels, put_probability, replace_labels
from ._panel import TaskPanel
from ._results_box import ResultsBox
from ._workers import finish_before_close, run_task

BUTTON_TEXT = "Segment microscope C image"
NO_MODEL_TEXT = "No model available: train one in Fine-tune, or choose a model folder below"
SHORTCUT = "Control-Shift-S"
DEBOUNCE_MS = 60


def segment_selected_layer(viewer: Viewer) -> None:
    """Layers > Segment: segment the selected image layer with the current model (the Segment panel opens)."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    widget.segment(viewer.layers.selection.active)


def _slider(kind, low: float, high: float, tip: str):
    slider = kind()
    slider.setOrientation(Qt.Orientation.Horizontal)
    slider.setRange(low, high)
    slider.setToolTip(tip)
    return slider


class SegmentWidget(TaskPanel):
    """Segment the chosen image with the current model; tune the watershed live."""

    title = "Segment"

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.image_combo = LayerCombo(self.viewer, "Image")
        self.segment_button = QPushButton(BUTTON_TEXT)
        font = QFont(self.segment_button.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.segment_button.setFont(font)
        self.segment_button.setMinimumHeight(48)
        self.interior_check = QCheckBox("Also show the interior probability")
        self.tta_check = QCheckBox("Test-time augmentation (8x slower, a little more accurate)")
        self.tta_check.setToolTip("Average the predictions over the 8 flips and quarter turns of the image")
        self.zoom_check = QCheckBox("Also average over zooms 0.8x-1.25x (3x slower)")
        self.zoom_check.setToolTip(
            "Average the predictions over the image zoomed by 0.8, 1 and 1.25 around the nucleus size"
        )
        top = QFormLayout()
        top.addRow("Image", self.image_combo)
        top.addRow(self.segment_button)
        top.addRow(self.interior_check)
        top.addRow(self.tta_check)
        top.addRow(self.zoom_check)
        self.haematoxylin_check = QCheckBox("IHC slide: segment the haematoxylin only (removes brown DAB)")
        self.haematoxylin_check.setToolTip(
            "Unmix the stains and segment the blue haematoxylin alone: for DAB on cytoplasm or "
            "membranes. Leave it off for brown nuclei (Ki-67, ER/PR) and for H&E."
        )
        top.addRow(self.haematoxylin_check)
        self.body.addLayout(top)

        model = QGroupBox("Model")
        form = QFormLayout(model)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self.model_edit = PathEdit("dir", "another model folder (optional)")
        self.model_edit.setToolTip("Choosing a folder makes it the current model (Review uses it too)")
        form.addRow(self.model_label)
        form.addRow("Choose", self.model_edit)
        self.body.addWidget(model)

        tune = QGroupBox("Watershed (updates the cells live)")
        form = QFormLayout(tune)
        self.interior_slider = _slider(QLabeledDoubleSlider, 0.05, 1.0, "P(interior) a cell's seed needs")
        self.boundary_slider = _slider(
            QLabeledDoubleSlider, 0.0, 5.0, "how strongly boundaries separate cells"
        )
        self.split_slider = _slider(
            QLabeledDoubleSlider, 0.0, 3.0, "cut touching cells where they narrow: lower cuts more, 0 never"
        )
        self.peak_slider = _slider(
            QLabeledDoubleSlider, 0.0, 1.0,
            "cut touching cells where P(interior) dips between two peaks: lower cuts more, 0 never",
        )  # fmt: skip
        self.min_size_slider = _slider(QLabeledSlider, 0, 1000, "smaller cells are removed (pixels)")
        self.interior_slider.setSingleStep(0.01)
        self.peak_slider.setSingleStep(0.01)
        self.boundary_slider.setSingleStep(0.1)
        self.split_slider.setSingleStep(0.1)
        form.addRow("Interior threshold", self.interior_slider)
        form.addRow("Boundary weight", self.boundary_slider)
        form.addRow("Split at necks", self.split_slider)
        form.addRow("Split at peaks", self.peak_slider)
        form.addRow("Minimum size (px)", self.min_size_slider)
        self.send_button = QPushButton("Send to Annotate")
        self.send_button.setToolTip("Open Annotate with these cells chosen, to correct and save them")
        form.addRow(self.send_button)
        self.body.addWidget(tune)
        self.results_box = ResultsBox(self)
        self.body.addWidget(self.results_box)

        self.probabilities: np.ndarray | None = None
        self.labels_layer = None
        self.image_layer = None
        self.base_params = initial_watershed(None)
        self.watershed_updates = 0  # results applied to the labels (tests wait on it)
        self._watershed_task = None
        self._watershed_pending = False
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_watershed)
        self.action_buttons = [self.segment_button]

        self.segment_button.clicked.connect(lambda: self.segment())
        self.send_button.clicked.connect(self.send_to_annotate)
        self.model_edit.changed.connect(self._model_chosen)
        for slider in self._sliders():
            slider.valueChanged.connect(self._debounce.start)
        self.viewer.layers.selection.events.active.connect(self._active_changed)
        follow_current_model(self, SegmentWidget._model_changed)
        self.viewer.bind_key(SHORTCUT, segment_selected_layer, overwrite=True)
        self._warm_worker = None
        self._model_changed(get_current_model_dir())
        self._active_changed()

    # --- model ------------------------------------------------------------------

    def _model_changed(self, directory) -> None:
        self.model_label.setText(f"Current model: {describe_model(directory)}")
        self.segment_button.setText(BUTTON_TEXT if directory is not None else NO_MODEL_TEXT)
        self.segment_button.setToolTip(
            f"{SHORTCUT.replace('Control', 'Ctrl').replace('-', '+')}; model folder: {directory}"
            if directory is not None
            else NO_MODEL_HELP
        )
        shown_model = self.labels_layer.metadata.get("model") if self.labels_layer is not None else None
        if self.probabilities is not None and shown_model != str(directory):
            # The sliders tuned the previous model's cells; its settings do not carry to another network.
            self.probabilities = None
            self.say("The model changed: Segment again to see its cells; the sliders show its settings.")
        if self.probabilities is None:  # nothing tuned yet: start from the model's settings
            self.set_params(initial_watershed(directory))
        self._warm_up(directory)

    def _warm_up(self, directory) -> None:
        """Import torch and load the model in the background, so the first click is fast."""
        if directory is None:
            return
        from napari.qt.threading import create_worker

        from ._workers import avoid_llvm_clash

        avoid_llvm_clash()  # as before every job: torch must not load triton next to Mesa's LLVM
        self._warm_worker = create_worker(warm_up, directory, _start_thread=False)
        finish_before_close(self._warm_worker)
        self._warm_worker.start()

    def _model_chosen(self, text: str) -> None:
        if not text:
            return
        try:
            set_current_model(text)
        except ValueError as err:
            self.fail(str(err))

    # --- image ------------------------------------------------------------------

    def _active_changed(self, event=None) -> None:
        layer = self.viewer.layers.selection.active
        if (
            layer is not None
            and is_layer_type(layer, "Image")
            and layer.metadata.get(KIND_KEY) != KIND_PROBABILITY
        ):
            self.image_combo.set_layer(layer)

    def segment(self, layer=None) -> None:
        """Segment ``layer`` (an Image layer), else the chosen image, with the current model."""
        usable = (
            layer is not None
            and is_layer_type(layer, "Image")
            and layer.metadata.get(KIND_KEY) != KIND_PROBABILITY
        )  # the shortcut with a probability map selected segments its image, not the map
        image = layer if usable else self.image_combo.layer()
        if image is None:
            self.fail("open or choose an image layer first")
            return
        model_dir = get_current_model_dir()
        if model_dir is None:
            self.fail(NO_MODEL_HELP)
            return
        try:
            data = image_plane_data(image.data, rgb=image.rgb, multiscale=image.multiscale)
        except ValueError as err:
            self.fail(f"{image.name!r}: {err}")
            return
        self.image_combo.set_layer(image)
        params = self.watershed_params()
        started = time.perf_counter()
        self.start(
            iter_segment_one_click, data, model_dir, params, rgb=image.rgb, tta=self.tta_check.isChecked(),
            tta_zoom=self.zoom_check.isChecked(), haematoxylin_only=self.haematoxylin_check.isChecked(),
            title=f"Segment {image.name!r}",
            on_result=lambda result: self._show(image, model_dir, result, time.perf_counter() - started),
        )  # fmt: skip

    def _show(self, image, model_dir, result, seconds: float) -> None:
        spatial = placement(image, result.labels.ndim)
        put_probability(
            self.viewer,
            f"{image.name} boundary probability",
            result.probabilities[BOUNDARY],
            spatial,
            "yellow",
        )
        if self.interior_check.isChecked():
            put_probability(
                self.viewer,
                f"{image.name} interior probability",
                result.probabilities[INTERIOR],
                spatial,
                "cyan",
            )
        tag = image.metadata.get("microscope")
        metadata = {"model": str(model_dir), "watershed": dict(result.watershed)}
        if result.scale_factor != 1.0:
            metadata.update(diameter=result.diameter, scale_factor=result.scale_factor)
        if tag:
            metadata["microscope"] = tag
        labels, added = put_labels(
            self.viewer, f"{image.name} segmented cells", result.labels, like=image, metadata=metadata
        )
        if not added:
            labels.metadata.update(metadata)
        self.probabilities, self.labels_layer, self.image_layer = result.probabilities, labels, image
        self.base_params = WatershedParams.from_dict(result.watershed)
        self.viewer.layers.selection.active = labels
        note = (
            ""
            if tag in (None, "C")
            else f" Note: the image is tagged microscope {tag}; the model is meant for C."
        )
        if result.labels.ndim == 3:  # a stack: every plane, not only the one shown
            planes = result.labels.shape[0]
            note += f" All {planes} planes were segmented, each on its own (cell numbers run on across them)."
            if planes in (3, 4):
                note += " If these planes are colour channels, open the image as RGB (H, W, 3) instead."
        if result.scale_factor != 1.0 and result.diameter:
            note += (
                f" Nuclei measure about {result.diameter:.0f} px: the image was resampled "
                f"x{result.scale_factor:.2f} for the model."
            )
        self.say(
            f"{result.n_instances} cells in {image.name!r} ({seconds:.1f} s) → {labels.name!r}.{note} "
            "Move the sliders to tune, correct with napari's label tools, then Send to Annotate."
        )

    # --- watershed sliders ------------------------------------------------------

    def _sliders(self) -> tuple:
        return (self.interior_slider, self.boundary_slider, self.split_slider, self.peak_slider,
                self.min_size_slider)  # fmt: skip

    def set_params(self, params) -> None:
        """Show ``params`` on the sliders (without re-running the watershed)."""
        self.base_params = params
        pairs = (
            (self.interior_slider, params.interior_threshold),
            (self.boundary_slider, params.boundary_weight),
            (self.split_slider, params.split_height),
            (self.peak_slider, params.peak_height),
            (self.min_size_slider, params.min_size),
        )
        for slider, value in pairs:
            slider.blockSignals(True)
            slider.setValue(value)
            slider.blockSignals(False)

    def watershed_params(self):
        """The model's settings with the sliders' values."""
        return with_slider_values(
            self.base_params,
            {
                "interior_threshold": round(float(self.interior_slider.value()), 4),
                "boundary_weight": round(float(self.boundary_slider.value()), 4),
                "split_height": round(float(self.split_slider.value()), 4),
                "peak_height": round(float(self.peak_slider.value()), 4),
                "min_size": int(self.min_size_slider.value()),
            },
        )

    @property
    def watershed_busy(self) -> bool:
        return (
            self._debounce.isActive()
            or self._watershed_pending
            or (self._watershed_task is not None and not self._watershed_task.finished)
        )

    def run_watershed(self) -> None:
        """Re-run the watershed on the stored probabilities with the sliders' values."""
        if self.probabilities is None or self.labels_layer is None:
            return
        if self._watershed_task is not None and not self._watershed_task.finished:
            self._watershed_pending = True  # one more run with the latest values once this one ends
            return
        params, probabilities = self.watershed_params(), self.probabilities
        self._watershed_task = run_task(
            watershed_again, probabilities, params, title="Watershed", show_progress=False,
            on_result=lambda labels: self._apply_watershed(labels, params, probabilities),
            on_finished=self._watershed_finished,
        )  # fmt: skip

    def _apply_watershed(self, labels: np.ndarray, params, probabilities) -> None:
        current = params == self.watershed_params() and probabilities is self.probabilities
        if not current or self.labels_layer not in self.viewer.layers:
            return  # stale (the sliders moved on, or another image was segmented), or the layer is gone
        layer = self.labels_layer
        if np.asarray(layer.data).shape != labels.shape:
            return
        if labels.max() > np.iinfo(np.asarray(layer.data).dtype).max:
            layer.data = labels  # more cells than the layer's dtype holds
        else:
            replace_labels(layer, labels)  # one undo step
        layer.metadata["watershed"] = params.to_dict()
        self.watershed_updates += 1
        self.say(f"{int(labels.max())} cells (interior {params.interior_threshold:.2f}, "
                 f"boundary weight {params.boundary_weight:.1f}, min size {params.min_size} px).")  # fmt: skip

    def _watershed_finished(self, task) -> None:
        if self._watershed_pending:
            self._watershed_pending = False
            self.run_watershed()

    # --- hand over to Annotate --------------------------------------------------

    def send_to_annotate(self) -> None:
        """Open the Annotate panel with these cells (and their image) chosen."""
        labels = self.labels_layer
        if labels is None or labels not in self.viewer.layers:
            self.fail("segment an image first: there are no segmented cells to send")
            return
        _, annotate = self.viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
        if self.image_layer is not None and self.image_layer in self.viewer.layers:
            annotate.image_combo.set_layer(self.image_layer)
        annotate.cells_combo.set_layer(labels)
        self.viewer.layers.selection.active = labels
        self.say(f"Annotate has {labels.name!r} as its cells: correct them, then save them into a dataset.")

    def closeEvent(self, event) -> None:
        self._debounce.stop()
        super().closeEvent(event)
