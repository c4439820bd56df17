"""The Dataset dock widget."""

from __future__ import annotations

from ._common import PlannedWidget


class DatasetWidget(PlannedWidget):
    title = "Dataset"
    plan = (
        "Not available yet. This panel will validate a dataset folder, split it into "
        "train/dev/test with dev and test from the target microscope (C), show the counts "
        "per subset and microscope, and preview augmented samples."
    )
