"""The Segment panel's "Save results" box: a folder and one button (the work is in app.segment_results)."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QFormLayout, QGroupBox, QPushButton

from ._common import PathEdit

DEFAULT_FOLDER_NAME = "cellseg-results"


class ResultsBox(QGroupBox):
    """Where to save the cells, their table and their QuPath outlines, and the button that does it."""

    def __init__(self, parent=None):
        super().__init__("Save results", parent)
        form = QFormLayout(self)
        self.folder_edit = PathEdit("dir", f"default: {DEFAULT_FOLDER_NAME}/ beside the image")
        self.folder_edit.setToolTip(
            "Folder for <image>.tif (cells), <image>.csv (one row per cell) and <image>.geojson "
            "(outlines for QuPath); existing results are kept, new ones get -2, -3..."
        )
        self.save_button = QPushButton("Save cells, table and QuPath outlines")
        form.addRow("Folder", self.folder_edit)
        form.addRow(self.save_button)

    def folder_for(self, image_source: str | None) -> Path:
        """The chosen folder, else ``cellseg-results`` beside the image file, else in the home folder."""
        chosen = self.folder_edit.path()
        if chosen is not None:
            return chosen
        if image_source:
            return Path(image_source).expanduser().parent / DEFAULT_FOLDER_NAME
        return Path.home() / DEFAULT_FOLDER_NAME
