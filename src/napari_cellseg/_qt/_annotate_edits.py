"""The Annotate panel's edits of its label layers: conversions, painting, touching boundaries.

A mixin of :class:`.annotate.AnnotateWidget` (it uses the panel's boxes, ``start``,
``say`` and ``fail``); the work itself is in :mod:`napari_cellseg.app.annotation`.
"""

from __future__ import annotations

import numpy as np

from ..app.annotation import (
    annotation_from_instances,
    annotation_name,
    cells_name,
    conversion_summary,
    holds_labels,
    instances_from_annotation,
    is_annotation,
    touching_boundary_pixels,
)
from ..classes import BOUNDARY, INTERIOR
from ._common import in_viewer
from ._layers import put_labels, set_pixels


def _edited_meanwhile(layer, converted: np.ndarray, result: str) -> str:
    """A note when ``layer`` was painted while its copy ``converted`` was converted into ``result``."""
    if np.array_equal(np.asarray(layer.data), converted):
        return ""
    return f" Note: {layer.name!r} was edited meanwhile; {result!r} lacks those edits: convert again."


class AnnotationEdits:
    """Cells <-> boundary annotation, paint, and boundaries between touching cells."""

    def convert_to_annotation(self) -> None:
        """Cells layer -> '<image> boundary annotation' (a new layer, or an undoable edit)."""
        image, cells = self._require_image(), self._labels(self.cells_combo, "cells")
        if image is None or cells is None:
            return
        if is_annotation(cells.name, cells.metadata):
            self.fail(f"{cells.name!r} is a boundary annotation; choose an instance (cells) layer")
            return
        shape, plane = np.shape(cells.data), self._plane_shape(image)
        if len(shape) == 2 and shape != plane:  # as Save would refuse it, after the painting
            self.fail(
                f"{cells.name!r} has shape {shape} but {image.name!r} {plane}: choose cells drawn on this image"
            )
            return

        def show(result) -> None:
            if self.gone(image):
                return
            annotation, report = result
            layer, _ = put_labels(
                self.viewer, annotation_name(image.name), annotation, like=image, annotation=True
            )
            self.annotation_combo.set_layer(layer)
            text, lost = conversion_summary(report, layer.name)
            note = _edited_meanwhile(cells, data, layer.name)
            self.say(text + note, error=lost or bool(note))

        data = np.array(cells.data, copy=True)
        self.start(
            annotation_from_instances, data, self.thickness_spin.value(),
            title="Cells → boundary annotation", on_result=show,
        )  # fmt: skip

    def convert_to_cells(self) -> None:
        """Annotation layer -> '<image> cells' (never overwrites another cells layer)."""
        image = self._require_image()
        annotation = self._labels(self.annotation_combo, "boundary annotation")
        if image is None or annotation is None:
            return

        def show(instances) -> None:
            if self.gone(image):
                return
            layer, _ = put_labels(self.viewer, cells_name(image.name), instances, like=image)
            self.cells_combo.set_layer(layer)
            note = _edited_meanwhile(annotation, data, layer.name)
            self.say(f"{int(instances.max())} cells → {layer.name!r}.{note}", error=bool(note))

        data = np.array(annotation.data, copy=True)
        self.start(instances_from_annotation, data, title="Boundary annotation → cells", on_result=show)

    # --- painting ----------------------------------------------------------

    def paint(self, value: int) -> None:
        """Select the annotation layer in paint mode with ``value`` and the brush size."""
        layer = self.annotation_combo.layer()
        if layer is None:
            image = self._require_image()
            if image is None:
                return
            self._add_layers(image, {})
            layer = self.annotation_combo.layer()
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        layer.selected_label = value
        layer.brush_size = self.brush_spin.value()
        names = {BOUNDARY: "boundary", INTERIOR: "interior", 0: "background (erase)"}
        self.say(f"painting {names[value]} on {layer.name!r}, brush {layer.brush_size}.")

    def add_touching_boundaries(self) -> None:
        """Mark both rims of every contact between two cells as boundary (one undo step)."""
        annotation = self._labels(self.annotation_combo, "boundary annotation")
        if annotation is None:
            return
        cells = self.cells_combo.layer()
        target = np.array(annotation.data, copy=True)
        instances = np.array(cells.data, copy=True) if holds_labels(cells, target.shape) else None

        def show(result) -> None:
            if not in_viewer(self.viewer, annotation):  # its pixels would change out of sight
                self.say(f"{annotation.name!r} was removed meanwhile: no boundary was added.", error=True)
                return
            indices, n_pairs = result
            changed = set_pixels(annotation, indices, BOUNDARY)
            source = (
                f"cells of the annotation and of {cells.name!r}"
                if instances is not None
                else "the annotation's cells"
            )
            self.say(f"{changed} pixels became boundary between {n_pairs} touching cell pairs ({source}).")

        self.start(
            touching_boundary_pixels, target, instances,
            title="Add boundary between touching cells", on_result=show,
        )  # fmt: skip
