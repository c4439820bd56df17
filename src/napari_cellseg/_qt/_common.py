"""Small Qt helpers shared by the dock widgets."""

from __future__ import annotations

from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget


class PlannedWidget(QWidget):
    """A dock widget whose capability has not landed yet: it says plainly what it will do."""

    title = ""
    plan = ""

    def __init__(self, napari_viewer=None, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        layout = QVBoxLayout(self)
        heading = QLabel(f"<b>{self.title}</b>")
        body = QLabel(self.plan)
        body.setWordWrap(True)
        layout.addWidget(heading)
        layout.addWidget(body)
        layout.addStretch(1)
        self.message = body
