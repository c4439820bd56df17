"""The Segment panel's "Save results" box: where results go, and the two buttons that write them.

The work is in :mod:`napari_cellseg.app.segment_results`: the shown image's
cells, table and QuPath outlines, or every image of a folder. The box runs it
through its panel (one job at a time, progress, cancel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QFormLayout, QGroupBox, QPushButton

from ..app.current_model import NO_MODEL_HELP, get_current_model_dir
from ..app.segment_results import DEFAULT_FOLDER_NAME, default_results_folder
from ._common import PathEdit
from ._layers import find_layer, placement


class ResultsBox(QGroupBox):
    """A results folder, "save this image's results", and "segment a whole folder" of a Segment panel."""

    def __init__(self, panel, parent=None):
        super().__init__("Save results", parent)
        self.panel = panel
        form = QFormLayout(self)
        self.folder_edit = PathEdit("dir", f"default: {DEFAULT_FOLDER_NAME}/ by the images")
        self.folder_edit.setToolTip(
            "Folder for <image>.tif (cells), <image>.csv (one row per cell) and <image>.geojson "
            "(outlines for QuPath); existing results are kept, new ones get -2, -3..."
        )
        self.save_button = QPushButton("Save cells, table and QuPath outlines")
        self.images_edit = PathEdit("dir", "a folder of images to segment")
        self.batch_button = QPushButton("Segment every image in the folder")
        self.batch_button.setToolTip(
            "Each image gets the same three files; images already segmented there are skipped, "
            "so a cancelled folder resumes. The boxes above (test-time augmentation, IHC) apply."
        )
        form.addRow("Folder", self.folder_edit)
        form.addRow(self.save_button)
        form.addRow("Images", self.images_edit)
        form.addRow(self.batch_button)
        self.save_button.clicked.connect(self.save_results)
        self.batch_button.clicked.connect(self.segment_folder)

    def folder_for(self, source: str | None) -> Path:
        """The chosen folder, else ``cellseg-results`` beside the image file (or in the images folder),
        else in the home folder."""
        chosen = self.folder_edit.path()
        if chosen is not None:
            return chosen
        return default_results_folder(source) if source else Path.home() / DEFAULT_FOLDER_NAME

    def save_results(self) -> None:
        """Write the shown cells (as corrected), their table and their QuPath outlines; never overwrite."""
        from ..app.annotation import suggest_image_id
        from ..app.segment_results import save_segmentation
        from ..app.segment_session import image_plane_data

        panel = self.panel
        labels, image = panel.labels_layer, panel.image_layer
        chosen = panel.image_combo.layer()  # the image shown in the panel, if it was segmented
        own = find_layer(panel.viewer, f"{chosen.name} segmented cells") if chosen is not None else None
        if own is not None:
            labels, image = own, chosen
        if labels is None or labels not in panel.viewer.layers:
            panel.fail("segment an image first: there are no segmented cells to save")
            return
        have_image = image is not None and image in panel.viewer.layers
        pixels = None
        if have_image:
            pixels = np.asarray(image_plane_data(image.data, rgb=image.rgb, multiscale=image.multiscale))
        image_id = (
            suggest_image_id(image.name, image.metadata) if have_image else suggest_image_id(labels.name)
        )
        folder = self.folder_for(image.source.path if have_image else None)
        attributes = {**placement(labels, labels.ndim), "metadata": dict(labels.metadata)}

        def show(saved) -> None:
            names = ", ".join(p.name for p in saved.paths)
            panel.say(f"Saved {saved.n_cells} cells to {saved.labels.parent}: {names} (the .geojson opens in QuPath).")  # fmt: skip

        panel.start(  # a copy: cells painted while it saves must not land half in the files
            save_segmentation, folder, image_id, np.array(labels.data, copy=True), pixels, attributes,
            title="Save results", on_result=show,
        )  # fmt: skip

    def segment_folder(self) -> None:
        """Segment every image of the chosen folder with the current model (labels, tables, outlines)."""
        from ..app.segment_results import iter_segment_folder
        from ..inference.batch import plain_message

        panel = self.panel
        images, model_dir = self.images_edit.path(), get_current_model_dir()
        if images is None or not images.is_dir():
            panel.fail("choose a folder of images first (Images, under Save results)")
            return
        if model_dir is None:
            panel.fail(NO_MODEL_HELP)
            return
        out = self.folder_for(str(images))

        def show(summary) -> None:
            # the reports' own words, less the CLI's --overwrite advice: the panel has no such option
            failed = [plain_message(r) for r in summary.reports if r.status == "failed"]
            table = f" (every cell in {summary.table.name})" if summary.table is not None else ""
            text = f"{summary.describe()}; results in {out}{table}."
            panel.say(text + (f" First failure: {failed[0]}" if failed else ""), error=bool(failed))

        last = []  # the last image's report: how far a cancelled folder got

        def remember(report) -> None:
            last[:] = [report]

        def cancelled() -> str:
            done = f"after {last[0].done} of {last[0].total} images" if last else "before any image ended"
            return (
                f"Segment folder {images.name!r} cancelled {done}; results in {out}. Click again to go on: "
                "the images done are skipped."
            )

        panel.start(
            iter_segment_folder, images, model_dir, out, tta=panel.tta_check.isChecked(),
            tta_zoom=panel.zoom_check.isChecked(), haematoxylin_only=panel.haematoxylin_check.isChecked(),
            title=f"Segment folder {images.name!r}", on_result=show, on_report=remember, cancelled=cancelled,
        )  # fmt: skip
