"""The Annotate dock widget."""

from __future__ import annotations

from ._common import PlannedWidget


class AnnotateWidget(PlannedWidget):
    title = "Annotate"
    plan = (
        "Not available yet. This panel will turn an instance Labels layer into the "
        "3-class boundary annotation (background / boundary / interior), let you paint "
        "boundaries between touching cells, tag the image with its microscope (A/B/C) and "
        "save it into a dataset folder."
    )
