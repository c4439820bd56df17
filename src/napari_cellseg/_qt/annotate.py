"""The Annotate dock widget: cells and boundary annotation layers, microscope tag, save.

The logic lives in :mod:`napari_cellseg.app.annotation`; this panel collects the
layers and settings, runs the work in a thread worker and shows the result.
Edits of existing layers are undoable with Ctrl+Z (see ``_layers``). A Labels box the
user set stays as set while layers come and go; 'Replace' holds for one image and labels.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
)

from ..app.annotation import (
    KIND_KEY,
    annotation_name,
    cells_name,
    earlier_id,
    fitting_cells,
    holds_cells,
    holds_labels,
    is_listed,
    opened_annotation,
    owner_image,
    save_annotation,
    saved_labels,
    saved_message,
    suggest_image_id,
)
from ..app.microscope_tags import dataset_tags
from ..app.segment_session import image_plane_data, layer_shape_help
from ..classes import BOUNDARY, INTERIOR, check_microscope_tag
from ._annotate_edits import AnnotationEdits
from ._common import LayerCombo, PathEdit, class_legend, in_viewer, legend_label
from ._layers import KIND_PROBABILITY, KIND_REVIEW, find_layer, put_labels
from ._microscope_combo import MicroscopeCombo
from ._panel import TaskPanel

UNTAGGED = "(untagged)"
SAVE_ANNOTATION, SAVE_CELLS = "boundary annotation (3 classes)", "cells (instances)"


class _LabelsCombo(LayerCombo):
    """A Labels box that reports every ``set_layer`` (Send to Annotate, a conversion), even of
    the layer it shows already: a choice that the panel keeps, unlike its own guesses."""

    def __init__(self, viewer, on_set):
        super().__init__(viewer, "Labels", allow_none=True)
        self._on_set = on_set

    def set_layer(self, layer) -> None:
        super().set_layer(layer)
        self._on_set(self)


class AnnotateWidget(AnnotationEdits, TaskPanel):
    """Annotate cells and the boundaries between them, tag the microscope, save to a dataset."""

    title = "Annotate"

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        viewer = self.viewer
        # ids, not layers: a closed image or labels layer held here stayed in memory with its pixels
        self._image = None  # unique_id of the image the boxes' choices and 'Replace' were made for
        self._shown: dict = {}  # Labels box -> unique_id of the layer it showed last
        self._user_set: set = set()  # Labels boxes set by the user, not guessed by the panel
        self._picking = False  # the panel is guessing
        self.image_combo = LayerCombo(viewer, "Image")
        self.microscope_combo = MicroscopeCombo("Which microscope took this image (stored with it)", UNTAGGED)
        self.open_button = QPushButton("Create / open label layers")
        self.open_button.setToolTip(
            "Add '<image> cells' and '<image> boundary annotation' layers; when the dataset "
            "folder below already holds this image, its saved labels are opened"
        )
        top = QFormLayout()
        top.addRow("Image", self.image_combo)
        top.addRow("Microscope", self.microscope_combo)
        top.addRow(self.open_button)
        self.body.addLayout(top)

        self.cells_combo = _LabelsCombo(viewer, self._labels_changed)
        self.annotation_combo = _LabelsCombo(viewer, self._labels_changed)
        self.thickness_spin = QSpinBox()
        self.thickness_spin.setRange(1, 5)
        self.thickness_spin.setToolTip("Boundary width in pixels, on each side of a contact")
        self.to_annotation_button = QPushButton("Cells → boundary annotation")
        self.to_cells_button = QPushButton("Boundary annotation → cells")
        convert = QGroupBox("Layers")
        form = QFormLayout(convert)
        form.addRow("Cells", self.cells_combo)
        form.addRow("Boundary annotation", self.annotation_combo)
        form.addRow("Boundary width", self.thickness_spin)
        form.addRow(self.to_annotation_button)
        form.addRow(self.to_cells_button)
        self.body.addWidget(convert)

        paint = QGroupBox("Paint")
        grid = QGridLayout(paint)
        self.paint_boundary_button = QPushButton("Paint boundary")
        self.paint_boundary_button.setToolTip("Brush the boundary class (thin brush) on the annotation")
        self.paint_interior_button = QPushButton("Paint interior")
        self.erase_button = QPushButton("Erase")
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(1, 40)
        self.brush_spin.setValue(2)
        self.touching_button = QPushButton("Add boundary between touching cells")
        self.touching_button.setToolTip(
            "Where two cells touch, mark both rims as boundary: cells of the annotation's "
            "interiors, and of the Cells layer when one is chosen (choose none if you joined "
            "cells by hand since it was made); Ctrl+Z undoes it"
        )
        grid.addWidget(self.paint_boundary_button, 0, 0)
        grid.addWidget(self.paint_interior_button, 0, 1)
        grid.addWidget(self.erase_button, 0, 2)
        grid.addWidget(QLabel("Brush size"), 1, 0)
        grid.addWidget(self.brush_spin, 1, 1)
        grid.addWidget(self.touching_button, 2, 0, 1, 3)
        legend = legend_label(class_legend())
        grid.addWidget(legend, 3, 0, 1, 3)
        self.body.addWidget(paint)

        save = QGroupBox("Save into a dataset")
        form = QFormLayout(save)
        self.dataset_edit = PathEdit("dir", "dataset folder (created if new)")
        self.id_edit = QLineEdit()
        self.id_edit.setPlaceholderText("image id (file name in the dataset)")
        self.save_what_combo = QComboBox()
        self.save_what_combo.addItems([SAVE_ANNOTATION, SAVE_CELLS])
        self.overwrite_check = QCheckBox("Replace the saved image if this id exists")
        self.save_button = QPushButton("Save to dataset")
        form.addRow("Dataset", self.dataset_edit)
        form.addRow("Image id", self.id_edit)
        form.addRow("Save", self.save_what_combo)
        form.addRow(self.overwrite_check)
        form.addRow(self.save_button)
        self.body.addWidget(save)

        self.action_buttons = [
            self.open_button, self.to_annotation_button, self.to_cells_button,
            self.touching_button, self.save_button,
        ]  # fmt: skip
        self.image_combo.currentTextChanged.connect(self._image_changed)
        for combo in (self.cells_combo, self.annotation_combo):
            combo.currentTextChanged.connect(lambda _text, combo=combo: self._labels_changed(combo))
        for edit in (self.id_edit, self.dataset_edit.edit):  # another id or dataset: not ticked for it
            edit.textChanged.connect(self._untick_replace)
        self.save_what_combo.currentTextChanged.connect(self._untick_replace)
        self.dataset_edit.changed.connect(self._find_earlier_id)
        self.dataset_edit.changed.connect(self._offer_dataset_tags)
        viewer.layers.events.inserted.connect(self._layer_added)
        self.microscope_combo.chosen.connect(self._tag_changed)
        self.microscope_combo.refused.connect(self.fail)
        self.open_button.clicked.connect(self.open_layers)
        self.to_annotation_button.clicked.connect(self.convert_to_annotation)
        self.to_cells_button.clicked.connect(self.convert_to_cells)
        self.paint_boundary_button.clicked.connect(lambda: self.paint(BOUNDARY))
        self.paint_interior_button.clicked.connect(lambda: self.paint(INTERIOR))
        self.erase_button.clicked.connect(lambda: self.paint(0))
        self.touching_button.clicked.connect(self.add_touching_boundaries)
        self.save_button.clicked.connect(self.save)
        self._image_changed()
        self.say("Choose an image, then create or open its label layers.")

    # --- the image and its tag ----------------------------------------------

    def image_layer(self):
        return self.image_combo.layer()

    def _image_changed(self, *_) -> None:
        image = self.image_layer()
        if image is None:
            return
        if image.unique_id != self._image:  # the boxes' choices and 'Replace' were the previous image's
            self._image = image.unique_id
            self._user_set.clear()
            self._untick_replace()
        tag = image.metadata.get("microscope")
        self.microscope_combo.show_tag(None if check_microscope_tag(tag) else tag)
        self.id_edit.setText(suggest_image_id(image.name, image.metadata, distinct=True))
        self._find_earlier_id()
        self._pick_layers()

    def _find_earlier_id(self, *_) -> None:
        """Take the id this image was saved under before accented names got a hash (same pixels)."""
        image = self.image_layer()
        if image is None or self.id_edit.text() != suggest_image_id(
            image.name, image.metadata, distinct=True
        ):
            return  # an id the user typed stays

        def pixels():  # read only when the dataset lists the older id
            return image_plane_data(image.data, rgb=image.rgb, multiscale=image.multiscale)

        earlier = earlier_id(self.dataset_edit.path(), image.name, image.metadata, pixels)
        if earlier is not None:
            self.id_edit.setText(earlier)
            self.say(f"{image.name!r} is in the dataset as {earlier!r} (its id before accents got a code).")

    def _untick_replace(self, *_) -> None:
        self.overwrite_check.setChecked(False)  # it was ticked for another image, id or labels

    def _labels_changed(self, combo: LayerCombo) -> None:
        """Un-tick 'Replace' when other labels are chosen; remember the user's own choices."""
        layer = combo.layer()
        before, now = self._shown.get(combo), None if layer is None else layer.unique_id
        self._shown[combo] = now
        if now != before:  # ids: each access gives a new proxy of the layer
            self._untick_replace()
        if self._picking:
            return
        if now is None and before is not None and before not in {x.unique_id for x in self.viewer.layers}:
            self._user_set.discard(combo)  # the chosen layer was deleted: the panel may choose again
        else:
            self._user_set.add(combo)  # "(none)" included: guide step 5

    def _layer_added(self, event=None) -> None:
        try:
            if self.image_layer() is not None:
                self._pick_layers()  # e.g. the image's mask opened after it: chosen without a click
        except RuntimeError:  # the panel was closed; the viewer lives on
            self.viewer.layers.events.inserted.disconnect(self._layer_added)

    def _pick_layers(self) -> None:
        """Choose the image's own cells and annotation layers; let go of another image's.

        A box the user set (to a layer or to "(none)") for this image is left alone.
        """
        self._picking = True
        try:
            self._pick(self.image_layer())
        finally:
            self._picking = False

    def _pick(self, image) -> None:
        images = [  # Segment's probability maps are not images of their own
            (layer.name, layer.metadata) for layer in self.image_combo.layers()
            if layer.metadata.get(KIND_KEY) != KIND_PROBABILITY
        ]  # fmt: skip

        def owner(layer):
            return owner_image(layer.name, layer.metadata, images)

        for combo, name in ((self.cells_combo, cells_name), (self.annotation_combo, annotation_name)):
            if combo in self._user_set:
                continue
            layer = find_layer(self.viewer, name(image.name))
            if layer is not None and np.shape(layer.data) == self._plane_shape(image):
                combo.set_layer(layer)
            elif combo.layer() is not None and owner(combo.layer()) not in (None, image.name):
                combo.setCurrentText(combo.NONE)  # another image's labels: never saved with this one
        if self.cells_combo.layer() is None and self.cells_combo not in self._user_set:
            # e.g. a sample's expert mask, or Segment's cells
            shape, layers = self._plane_shape(image), self.cells_combo.layers()
            layer = fitting_cells(image.name, shape, layers, images, skip_kinds=(KIND_REVIEW,))
            if layer is not None:
                self.cells_combo.set_layer(layer)

    def _offer_dataset_tags(self, *_) -> None:
        self.microscope_combo.set_dataset_tags(dataset_tags(self.dataset_edit.path()))

    def _tag_changed(self, tag: str | None) -> None:
        image = self.image_layer()
        if image is None:
            return
        if tag is None:
            image.metadata.pop("microscope", None)
        else:
            image.metadata["microscope"] = tag

    def _require_image(self):
        image = self.image_layer()
        if image is None:
            self.fail("open or choose an image layer first")
        elif image.ndim != 2:  # labels of one plane would show on every plane, and cannot be saved
            what, advice = layer_shape_help(image.name, image.level_shapes[0], image.rgb)
            self.fail(f"{image.name!r} {what}: Annotate works on one 2D image. {advice}.")
            return None
        return image

    @staticmethod
    def _plane_shape(image) -> tuple[int, int]:
        shape = tuple(np.shape(image.data))
        return shape[-3:-1] if image.rgb else shape[-2:]

    # --- layers ------------------------------------------------------------

    def open_layers(self) -> None:
        """Add the image's cells and annotation layers (from the dataset when saved there)."""
        image = self._require_image()
        if image is None:
            return
        root, image_id = self.dataset_edit.path(), self.id_edit.text().strip()
        if root is not None and image_id and (root / "manifest.csv").is_file():

            def show(saved) -> None:
                if not self.gone(image):
                    self._add_layers(image, saved)

            self.start(saved_labels, root, image_id, title="Open saved labels", on_result=show)
        else:
            self._add_layers(image, {})

    def _add_layers(self, image, saved: dict) -> None:
        shape, chosen = self._plane_shape(image), self.cells_combo.layer()
        # cells of this image in the box stay (chosen by hand, or proposed: a sample's expert mask),
        # except that cells saved in the dataset win over a proposal
        keep = holds_cells(chosen, shape) and (self.cells_combo in self._user_set or "cells" not in saved)
        # a layer of the image's name but another shape is not its own: a new one is added beside it
        cells = find_layer(self.viewer, cells_name(image.name))
        if cells is None or "cells" in saved or np.shape(cells.data) != shape:
            data = saved.get("cells", np.zeros(shape, np.uint16))
            cells, _ = put_labels(self.viewer, cells_name(image.name), data, like=image)
        annotation = find_layer(self.viewer, annotation_name(image.name))
        if annotation is None or saved or np.shape(annotation.data) != shape:
            data = opened_annotation(saved, shape, self.thickness_spin.value())
            annotation, _ = put_labels(
                self.viewer, annotation_name(image.name), data, like=image, annotation=True
            )
        self.cells_combo.set_layer(chosen if keep else cells)
        self.annotation_combo.set_layer(annotation)
        self.viewer.layers.selection.active = annotation
        opened = "opened the saved labels of" if saved else "label layers ready for"
        kept = f" (Cells stays {chosen.name!r})" if keep and chosen != cells else ""
        self.say(f"{opened} {image.name!r}{kept}: paint, convert, then save.")

    def gone(self, image) -> bool:
        """True, and said, when ``image`` left the viewer while a job ran for it: its result is dropped."""
        if in_viewer(self.viewer, image):
            return False
        self.say(f"{image.name!r} was removed meanwhile: no label layers were added for it.", error=True)
        return True

    def _labels(self, combo: LayerCombo, what: str):
        layer = combo.layer()
        if layer is None:
            self.fail(f"choose a {what} layer first (or click 'Create / open label layers')")
        return layer

    # --- saving ------------------------------------------------------------

    def save(self) -> None:
        """Save image, labels and microscope tag into the dataset folder (the chosen cells when no
        annotation is painted: the dataset makes their boundary annotation when it is read)."""
        image = self._require_image()
        if image is None:
            return
        root, image_id = self.dataset_edit.path(), self.id_edit.text().strip()
        if root is None or not image_id:
            self.fail("choose a dataset folder and an image id before saving")
            return
        as_annotation = self.save_what_combo.currentText() == SAVE_ANNOTATION
        # No annotation painted: the cells the user chose (e.g. sent from Segment) are saved; a
        # layer the panel guessed is not.
        instead = as_annotation and not holds_labels(self.annotation_combo.layer())
        instead = instead and self.cells_combo in self._user_set and holds_cells(self.cells_combo.layer())
        as_annotation = as_annotation and not instead
        combo = self.annotation_combo if as_annotation else self.cells_combo
        labels = self._labels(combo, "boundary annotation" if as_annotation else "cells")
        if labels is None:
            return
        try:  # a typed tag that is no tag is refused, saying why
            microscope = self.microscope_combo.tag()
        except ValueError as err:
            self.fail(str(err))
            return
        overwrite, listed = self.overwrite_check.isChecked(), is_listed(root, image_id)
        if listed and not overwrite:
            self.fail(
                f"{image_id!r} is already in {root}: tick 'Replace the saved image if this id "
                "exists' to overwrite it, or choose another id"
            )
            return

        def show(record) -> None:
            self.say(saved_message(record, root, replaced=listed, made_from=labels.name if instead else None))
            self._offer_dataset_tags()  # the dataset's tags now include this image's

        self.start(
            save_annotation, root, image_id,
            np.array(image_plane_data(image.data, rgb=image.rgb, multiscale=image.multiscale), copy=True),
            np.array(labels.data, copy=True), microscope, annotation=as_annotation,
            overwrite=overwrite, title=f"Save {image_id!r}", on_result=show,
        )  # fmt: skip
