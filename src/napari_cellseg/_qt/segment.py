"""The Segment dock widget."""

from __future__ import annotations

from ._common import PlannedWidget


class SegmentWidget(PlannedWidget):
    title = "Segment"
    plan = (
        "Not available yet. This panel will hold the one-click "
        '"Segment microscope C image" button and watershed sliders that update the cells live.'
    )
