"""The Review dock widget."""

from __future__ import annotations

from ._common import PlannedWidget


class ReviewWidget(PlannedWidget):
    title = "Review"
    plan = (
        "Not available yet. This panel will compare predicted cells with ground truth: "
        "AP@0.5, F1 and the DSB score, with layers marking false positives, false "
        "negatives, split and merged cells."
    )
