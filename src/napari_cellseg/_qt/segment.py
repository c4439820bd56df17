"""The Segment dock widget: one click from an image to its cells, then live watershed sliders.

The current model (:mod:`napari_cellseg.app.current_model`: the one Fine-tune
trained last, a chosen folder, or the bundled default) segments the chosen
image in a thread worker. The panel adds the boundary probability (and,
optionally, the interior one) and the cells as a Labels layer, all with the
image's scale and translate. The sliders re-run only the watershed on the
stored probabilities (debounced, in a worker; stale results are dropped).
Each segmented image keeps its own probabilities and settings: the sliders and
Send to Annotate act on the image the panel shows.
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
    Segmented,
    SegmentedImages,
    cells_metadata,
    image_plane_data,
    initial_watershed,
    iter_segment_one_click,
    result_notes,
    warm_up,
    with_slider_values,
)
from ..classes import BOUNDARY, INTERIOR
from ..inference.watershed import WatershedParams
from ._closing import finish_before_close
from ._common import LayerCombo, PathEdit, follow_current_model, in_viewer, is_layer_type
from ._layers import placement, put_labels, put_probability
from ._panel import TaskPanel
from ._results_box import ResultsBox
from ._segment_sliders import WatershedSliders

BUTTON_TEXT = "Segment microscope C image"
# check boxes and buttons never wrap: their long texts break by hand, to fit a laptop-wide dock
NO_MODEL_TEXT = "No model available: train one in Fine-tune,\nor choose a model folder below"
SHORTCUT = "Control-Shift-S"
DEBOUNCE_MS = 60


def segment_selected_layer(viewer: Viewer) -> None:
    """Layers > Segment: segment the selected image layer with the current model (the Segment panel opens).

    Another kind of layer selected is refused: the menu names the selected layer, so the
    panel's own image would be a surprise (the Ctrl+Shift+S key falls back to it).
    """
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    layer = viewer.layers.selection.active
    if not segmentable(layer):
        if layer is None:
            what = "no layer is selected"
        elif is_layer_type(layer, "Image"):
            what = f"{layer.name!r} is a probability map Segment made"
        else:
            what = f"{layer.name!r} is not an image layer"
        widget.fail(f"{what}: select the image layer to segment, then Layers > Segment")
        return
    widget.segment(layer)


def _segment_key(viewer: Viewer) -> None:
    """Ctrl+Shift+S: the selected image layer, else the Segment panel's image."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    widget.segment(viewer.layers.selection.active)


def segmentable(layer) -> bool:
    """An Image layer of the user's, none the plugin made (those carry a KIND_KEY: its probability maps)."""
    return layer is not None and is_layer_type(layer, "Image") and not layer.metadata.get(KIND_KEY)


def _slider(kind, low: float, high: float, tip: str):
    slider = kind()
    slider.setOrientation(Qt.Orientation.Horizontal)
    slider.setRange(low, high)
    slider.setToolTip(tip)
    return slider


class SegmentWidget(WatershedSliders, TaskPanel):
    """Segment the chosen image with the current model; tune the watershed live."""

    title = "Segment"

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.image_combo = LayerCombo(self.viewer, "Image", accept=segmentable)
        self.segment_button = QPushButton(BUTTON_TEXT)
        font = QFont(self.segment_button.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.segment_button.setFont(font)
        self.segment_button.setMinimumHeight(48)
        self.interior_check = QCheckBox("Also show the interior probability")
        self.tta_check = QCheckBox("Test-time augmentation\n(8x slower, a little more accurate)")
        self.tta_check.setToolTip("Average the predictions over the 8 flips and quarter turns of the image")
        self.zoom_check = QCheckBox("Also average over zooms 0.8x-1.25x\n(3x slower)")
        self.zoom_check.setToolTip(
            "Average the predictions over the image zoomed by 0.8, 1 and 1.25 around the nucleus size"
        )
        top = QFormLayout()
        top.addRow("Image", self.image_combo)
        top.addRow(self.segment_button)
        top.addRow(self.interior_check)
        top.addRow(self.tta_check)
        top.addRow(self.zoom_check)
        self.haematoxylin_check = QCheckBox("IHC slide: segment the haematoxylin only\n(removes brown DAB)")
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

        self.segmented = SegmentedImages()
        self._tuned: Segmented | None = None  # the shown image's entry: the one the sliders re-run
        self.base_params = initial_watershed(None)
        self.watershed_updates = 0  # results applied to the labels (tests wait on it)
        self._watershed_task = None
        self._watershed_waiting: list[Segmented] = []  # re-runs asked for while one runs
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
        self.image_combo.currentTextChanged.connect(self._shown_changed)
        self.viewer.layers.events.removed.connect(self._layers_removed)
        follow_current_model(self, SegmentWidget._model_changed)
        self.viewer.bind_key(SHORTCUT, _segment_key, overwrite=True)
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
        if self._tuned is not None and self._tuned.model != str(directory):
            # The sliders tuned the previous model's cells; its settings do not carry to another network.
            self._tuned = None
            self.say("The model changed: Segment again to see its cells; the sliders show its settings.")
        if self._tuned is None:  # nothing tuned: start from the model's settings
            self.set_params(initial_watershed(directory))
        self._warm_up(directory)

    def _warm_up(self, directory) -> None:
        """Import torch and load the model in the background, so the first click is fast."""
        if directory is None:
            return
        from superqt.utils import create_worker  # napari's files it under the viewer active now

        from ._workers import avoid_llvm_clash

        avoid_llvm_clash()  # as before every job: torch must not load triton next to Mesa's LLVM
        self._warm_worker = create_worker(warm_up, directory, _start_thread=False)
        finish_before_close(self._warm_worker, self)
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
        if segmentable(layer):
            self.image_combo.set_layer(layer)

    def _shown_changed(self, _name: str = "") -> None:
        """The panel shows another image: the sliders show (and re-run) its cells, if it has some."""
        item = self.segmented.find(self.image_combo.layer())
        if item is not None and item.model != str(get_current_model_dir()):
            item = None  # another network's cells: the sliders keep this model's settings
        if item is self._tuned:
            return
        self._flush_sliders()
        self._tuned = item
        if item is not None:
            self.set_params(item.params)

    def _layers_removed(self, event=None) -> None:
        self.segmented.keep(lambda layer: in_viewer(self.viewer, layer))  # frees their probabilities
        if self._tuned not in self.segmented:
            self._tuned = None

    def shown_cells(self) -> Segmented | None:
        """The shown image's segmentation, else the last one (as Save results picks)."""
        return self.segmented.find(self.image_combo.layer()) or self.segmented.latest

    @property
    def probabilities(self) -> np.ndarray | None:
        """The probabilities the sliders re-run (the shown image's), or None."""
        return None if self._tuned is None else self._tuned.probabilities

    labels_layer = property(lambda self: getattr(self.shown_cells(), "labels", None))
    image_layer = property(lambda self: getattr(self.shown_cells(), "image", None))

    def segment(self, layer=None) -> None:
        """Segment ``layer`` (an Image layer), else the chosen image, with the current model."""
        # the shortcut with a probability map selected segments the chosen image, never the map
        image = layer if segmentable(layer) else self.image_combo.layer()
        if image is None:
            self.fail("no image to segment: open or choose an image layer (not a probability map)")
            return
        model_dir = get_current_model_dir()
        if model_dir is None:
            self.fail(NO_MODEL_HELP)
            return
        try:
            data = image_plane_data(image.data, rgb=image.rgb, multiscale=image.multiscale, name=image.name)
        except ValueError as err:
            self.fail(f"{image.name!r}: {err}")
            return
        self.image_combo.set_layer(image)
        params = self.watershed_params()
        started = time.perf_counter()
        self.start(
            iter_segment_one_click, data, model_dir, params, rgb=image.rgb, tta=self.tta_check.isChecked(),
            tta_zoom=self.zoom_check.isChecked(), haematoxylin_only=self.haematoxylin_check.isChecked(),
            name=image.name, title=f"Segment {image.name!r}",
            on_result=lambda result: self._show(image, model_dir, result, time.perf_counter() - started),
        )  # fmt: skip

    def _show(self, image, model_dir, result, seconds: float) -> None:
        if not in_viewer(self.viewer, image):  # a layer of the same name may be another image
            self.say(
                f"{image.name!r} was removed while it was segmented: its cells were not added.", error=True
            )
            return
        self._flush_sliders()  # a move just made goes to the cells it was made for
        spatial = placement(image, result.labels.ndim)
        maps = [(BOUNDARY, "boundary", "yellow")]
        if self.interior_check.isChecked():
            maps.append((INTERIOR, "interior", "cyan"))
        for channel, name, colour in maps:
            probability = result.probabilities[channel]
            put_probability(self.viewer, f"{image.name} {name} probability", probability, spatial, colour)
        tag = image.metadata.get("microscope")
        metadata = cells_metadata(result, model_dir, tag)
        labels, added = put_labels(
            self.viewer, f"{image.name} segmented cells", result.labels, like=image, metadata=metadata
        )
        if not added:
            labels.metadata.update(metadata)
        ran = WatershedParams.from_dict(result.watershed)
        # Sliders moved for this image during the run win: its cells must end up matching them.
        shown = self.image_combo.layer() == image  # == : napari's layer proxies differ at each access
        wanted = with_slider_values(ran, self._slider_values()) if shown else ran
        item = Segmented(image, labels, result.probabilities, wanted, str(model_dir))
        self._tuned = self.segmented.add(item)
        self.image_combo.set_layer(image)
        self.set_params(wanted)
        if wanted != ran:
            self._rerun(item)
        self.viewer.layers.selection.active = labels
        self.say(
            f"{result.n_instances} cells in {image.name!r} ({seconds:.1f} s) → {labels.name!r}."
            f"{result_notes(result, tag)} "
            "Move the sliders to tune, correct with napari's label tools, then Send to Annotate."
        )

    # --- hand over to Annotate --------------------------------------------------

    def send_to_annotate(self) -> None:
        """Open the Annotate panel with the shown image's cells (and the image) chosen."""
        labels, image = self.labels_layer, self.image_layer
        if labels is None or not in_viewer(self.viewer, labels):
            self.fail("segment an image first: there are no segmented cells to send")
            return
        _, annotate = self.viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
        if image is not None and in_viewer(self.viewer, image):
            annotate.image_combo.set_layer(image)
        annotate.cells_combo.set_layer(labels)
        self.viewer.layers.selection.active = labels
        self.say(f"Annotate has {labels.name!r} as its cells: correct them, then save them into a dataset.")

    def closeEvent(self, event) -> None:
        self._debounce.stop()
        super().closeEvent(event)
