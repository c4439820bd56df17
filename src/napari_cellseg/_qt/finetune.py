"""The Fine-tune dock widget."""

from __future__ import annotations

from ._common import PlannedWidget


class FinetuneWidget(PlannedWidget):
    title = "Fine-tune"
    plan = (
        "Not available yet. This panel will fine-tune a segmentation network from the "
        "pretrained M2 backbone: choose l (layers transferred), l_a (new layers) and l_f "
        "(frozen layers), the boundary-weighted loss, and watch loss and dev score live."
    )
