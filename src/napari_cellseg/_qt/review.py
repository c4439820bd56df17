"""The Review dock widget: score a prediction against ground truth, show its errors.

Two jobs, both run in a thread worker with the logic in :mod:`napari_cellseg.app.review`:

- compare two Labels layers: AP@0.5, F1, DSB score, and layers marking false
  positives, false negatives, split and merged cells;
- evaluate a model on the dev or test images of a split: the metrics table
  per microscope.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QPushButton,
    QTableWidget,
)

from ..app.annotation import KIND_KEY
from ..app.current_model import add_listener, get_current_model_dir, remove_listener
from ..app.review import (
    ERROR_COLORS,
    ERROR_KINDS,
    METRICS_HEADER,
    compare_labels,
    iter_evaluate_model,
    metrics_rows,
    model_status,
)
from ._common import (
    LayerCombo,
    PathEdit,
    clear_table,
    fill_table,
    in_viewer,
    legend_entry,
    legend_label,
    legend_text,
)
from ._layers import KIND_REVIEW, find_layer, placement, set_placement
from ._panel import TaskPanel

ERROR_LAYER_NAMES = {
    "false_positive": "review: false positives",
    "false_negative": "review: false negatives",
    "split": "review: split cells",
    "merged": "review: merged cells",
}


def _error_legend() -> str:
    swatches = []
    for kind in ERROR_KINDS:
        r, g, b, _ = (int(255 * c) for c in ERROR_COLORS[kind])
        label = ERROR_LAYER_NAMES[kind].removeprefix("review: ")
        swatches.append(legend_entry(f"rgb({r},{g},{b})", label))
    return legend_text(swatches)


def _segmented(layer) -> bool:
    """A Labels layer made by Segment (its metadata names the model)."""
    return "model" in (layer.metadata or {})


def _single_colour(rgba):
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: rgba, 0: (0.0, 0.0, 0.0, 0.0)})


class ReviewWidget(TaskPanel):
    """Compare predicted cells with ground truth; evaluate a model per microscope."""

    title = "Review"

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        compare = QGroupBox("Compare two label layers")
        form = QFormLayout(compare)
        self.gt_combo = LayerCombo(self.viewer, "Labels")
        self.pred_combo = LayerCombo(self.viewer, "Labels")
        self.iou_spin = QDoubleSpinBox()
        self.iou_spin.setRange(0.05, 1.0)
        self.iou_spin.setSingleStep(0.05)
        self.iou_spin.setValue(0.5)
        self.iou_spin.setToolTip("IoU a predicted cell needs with a true cell to count as found")
        self.compare_button = QPushButton("Compare")
        self.image_table = QTableWidget()
        self.image_table.setFixedHeight(0)  # grows to its rows once filled
        form.addRow("Ground truth", self.gt_combo)
        form.addRow("Prediction", self.pred_combo)
        form.addRow("Match IoU\n(error layers)", self.iou_spin)  # on one line: 398 px wide
        form.addRow(self.compare_button)
        form.addRow(legend_label(_error_legend()))
        form.addRow(self.image_table)
        self.body.addWidget(compare)

        evaluate = QGroupBox("Evaluate a model on the split")
        form = QFormLayout(evaluate)
        self.dataset_edit = PathEdit("dir", "dataset folder")
        self.split_edit = PathEdit("open", "<dataset>/split.csv", "CSV (*.csv)")
        self.subset_combo = QComboBox()
        self.subset_combo.addItems(["dev", "test"])
        self.model_edit = PathEdit("dir", "model folder (empty: the current model)")
        self.evaluate_button = QPushButton("Evaluate the model")
        self.model_table = QTableWidget()
        self.model_table.setFixedHeight(0)
        form.addRow("Dataset", self.dataset_edit)
        form.addRow("Split file", self.split_edit)
        form.addRow("Subset", self.subset_combo)
        form.addRow("Model", self.model_edit)
        form.addRow(self.evaluate_button)
        form.addRow(self.model_table)
        self.body.addWidget(evaluate)

        self.action_buttons = [self.compare_button, self.evaluate_button]
        self._pick_other_prediction()
        self.viewer.layers.events.inserted.connect(self._pick_other_prediction)
        self.compare_button.clicked.connect(self.compare)
        self.evaluate_button.clicked.connect(self.evaluate)
        self.model_edit.changed.connect(self.update_model_status)
        add_listener(self._current_model_changed)
        self.destroyed.connect(lambda *_: remove_listener(self._current_model_changed))
        self.update_model_status()
        self.say("Choose ground truth and prediction layers, then Compare.")

    # --- compare two layers --------------------------------------------------

    def _pick_other_prediction(self, event=None) -> None:
        """While both boxes show one layer, give the other box the newest other Labels layer:
        Segment's cells (they carry their model) go to Prediction, anything else to Ground
        truth. A choice of two layers is left alone."""
        try:
            gt, pred = self.gt_combo.layer(), self.pred_combo.layer()
        except RuntimeError:  # the Qt side is gone (the viewer is closing)
            return
        if gt is None or pred is None or gt.name != pred.name:
            return
        others = [
            layer for layer in self.pred_combo.layers()
            if layer.name != gt.name and not layer.name.startswith("review:")  # its own error layers
        ]  # fmt: skip
        if not others:
            return
        newest = others[-1]
        if _segmented(gt) and not _segmented(newest):
            self.gt_combo.set_layer(newest)  # e.g. the expert mask opened after segmenting
        else:
            self.pred_combo.set_layer(newest)

    def compare(self) -> None:
        gt, pred = self.gt_combo.layer(), self.pred_combo.layer()
        if gt is None or pred is None:
            self.fail("choose a ground-truth and a prediction Labels layer")
            return
        if gt.name == pred.name:  # names are unique in a viewer; the plugin gets proxies, so never `is`
            self.fail(f"ground truth and prediction are the same layer ({gt.name!r})")
            return
        stacks = [layer for layer in (gt, pred) if layer.ndim == 3]
        if stacks:  # napari's Split Stack takes images only
            self.fail(
                f"Review compares one 2D image at a time; {stacks[0].name!r} is a stack of "
                f"{np.shape(stacks[0].data)[0]} planes. To compare one plane: right-click each layer > "
                "Convert to Image, then Split Stack, then Convert to Labels on the two planes to compare."
            )
            return

        def show(result) -> None:
            gone = [layer.name for layer in (gt, pred) if not in_viewer(self.viewer, layer)]
            if gone:  # never drawn on a layer that merely took the name
                self.say(f"{gone[0]!r} was removed while it was compared: nothing was shown.", error=True)
                return
            fill_table(self.image_table, ["", pred.name], result.rows())
            self._show_errors(result.errors, like=pred)
            note = "" if _lie_alike(gt, pred) else (
                " Note: the two layers lie differently in the viewer (scale, translate or rotation); "
                "they were compared pixel by pixel, as stored."
            )  # fmt: skip
            self.say(result.summary() + note)

        self.start(
            compare_labels, np.array(gt.data, copy=True), np.array(pred.data, copy=True),
            iou=self.iou_spin.value(), name=pred.name, title="Compare", on_result=show,
        )  # fmt: skip

    def _show_errors(self, errors: dict, like) -> None:
        for kind in ERROR_KINDS:
            name, data = ERROR_LAYER_NAMES[kind], errors[kind]
            ids = [int(v) for v in errors[f"{kind}_ids"]]
            layer = find_layer(self.viewer, name)
            if layer is not None and layer.data.shape == data.shape:
                layer.data = data  # a derived view, nothing to undo: refresh it in place
                layer.metadata["ids"] = ids
                set_placement(layer, placement(like, data.ndim))
                continue
            if layer is not None:
                self.viewer.layers.remove(name)
            self.viewer.add_labels(
                data, name=name, colormap=_single_colour(ERROR_COLORS[kind]), opacity=0.6,
                metadata={"ids": ids, KIND_KEY: KIND_REVIEW}, **placement(like, data.ndim),  # a view of errors, never a cells layer
            )  # fmt: skip

    # --- evaluate a model ---------------------------------------------------

    def model_dir(self):
        """The chosen folder, else the current model (the last fine-tuned one, else the default)."""
        return self.model_edit.path() or get_current_model_dir()

    def _current_model_changed(self, *_) -> None:
        try:
            self.update_model_status()
        except RuntimeError:  # the widget was deleted
            remove_listener(self._current_model_changed)

    def update_model_status(self, *_) -> bool:
        """Enable the Evaluate button only when a model is there; say why otherwise."""
        ok, text = model_status(self.model_dir())
        self.evaluate_button.setEnabled(ok and not self.busy)
        self.evaluate_button.setText(
            "Evaluate the model" if ok else "No model available: choose a model folder"
        )
        self.evaluate_button.setToolTip(text)
        if ok and self.evaluate_button not in self.action_buttons:
            self.action_buttons.append(self.evaluate_button)
        elif not ok and self.evaluate_button in self.action_buttons:
            self.action_buttons.remove(self.evaluate_button)
        return ok

    def evaluate(self) -> None:
        clear_table(self.model_table)  # a refused, failed or cancelled run leaves no earlier rows up
        if not self.update_model_status():
            self.fail(self.evaluate_button.toolTip())
            return
        root = self.dataset_edit.path()
        if root is None:
            self.fail("choose the dataset folder (and its split file)")
            return
        if not root.is_dir():  # before the split: "split it first" cannot help a mistyped folder
            self.fail(f"no dataset folder at {root}")
            return
        split = self.split_edit.path() or root / "split.csv"
        if not split.is_file():
            self.fail(f"no split file at {split}: split the dataset first (Dataset panel)")
            return
        subset = self.subset_combo.currentText()

        def show(result) -> None:
            fill_table(self.model_table, METRICS_HEADER, metrics_rows(result.groups))
            overall = result.groups["all"]
            self.say(
                f"{subset}: {overall.n_images} images, AP@0.5 {overall.at('ap', 0.5):.3f}, "
                f"DSB score {overall.dsb_score:.3f} (counts pooled over images)."
            )

        self.start(
            iter_evaluate_model, root, split, subset, self.model_dir(),
            title=f"Evaluate on {subset}", on_result=show,
        )  # fmt: skip


def _lie_alike(first, second) -> bool:
    """Whether two layers map their pixels to the same world points (checked at three corners)."""
    shape = np.shape(first.data)
    if len(shape) != len(np.shape(second.data)):
        return False
    corners = [np.zeros(len(shape)), np.array(shape, float), np.array([*shape[:-1], 0], float)]
    return all(np.allclose(first.data_to_world(c), second.data_to_world(c)) for c in corners)
