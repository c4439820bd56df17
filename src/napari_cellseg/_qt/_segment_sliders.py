"""The Segment panel's watershed sliders: re-run the watershed of the shown image's cells.

A mixin of :class:`.segment.SegmentWidget` (it uses the panel's sliders, debounce timer,
``segmented`` images and ``say``). Moves are debounced; one watershed runs at a time and
each image waiting runs once more with its latest values; stale results are dropped.
"""

from __future__ import annotations

import numpy as np

from ..app.segment_session import SLIDER_FIELDS, Segmented, watershed_again, with_slider_values
from ._closing import finish_before_close
from ._layers import replace_labels
from ._workers import run_task


class WatershedSliders:
    """Sliders <-> watershed parameters, and the re-runs they start."""

    def _sliders(self) -> tuple:
        return (self.interior_slider, self.boundary_slider, self.split_slider, self.peak_slider,
                self.min_size_slider)  # fmt: skip

    def set_params(self, params) -> None:
        """Show ``params`` on the sliders (without re-running the watershed)."""
        self.base_params = params
        for slider, name in zip(self._sliders(), SLIDER_FIELDS, strict=True):
            slider.blockSignals(True)
            slider.setValue(getattr(params, name))
            slider.blockSignals(False)

    def _slider_values(self) -> dict:
        return {
            name: round(float(s.value()), 4) for s, name in zip(self._sliders(), SLIDER_FIELDS, strict=True)
        }

    def watershed_params(self):
        """The model's settings with the sliders' values."""
        return with_slider_values(self.base_params, self._slider_values())

    @property
    def watershed_busy(self) -> bool:
        return (
            self._debounce.isActive()
            or bool(self._watershed_waiting)
            or (self._watershed_task is not None and not self._watershed_task.finished)
        )

    def _flush_sliders(self) -> None:
        """A slider move still in the debounce goes to the cells it was made for, before they change."""
        if self._debounce.isActive():
            self._debounce.stop()
            self.run_watershed()

    def run_watershed(self) -> None:
        """Re-run the watershed of the shown image's cells with the sliders' values."""
        if self._tuned is None:
            return  # the shown image has no cells yet: the values wait for its Segment
        self._tuned.params = self.watershed_params()
        self._rerun(self._tuned)

    def _rerun(self, item: Segmented) -> None:
        if self._watershed_task is not None and not self._watershed_task.finished:
            if item not in self._watershed_waiting:  # runs with its latest settings once this one ends
                self._watershed_waiting.append(item)
            return
        params = item.params
        self._watershed_task = run_task(
            watershed_again, item.probabilities, params, title="Watershed", show_progress=False,
            on_result=lambda labels: self._apply_watershed(item, labels, params),
            on_finished=self._watershed_finished,
        )  # fmt: skip
        finish_before_close(self._watershed_task.worker, self)  # short: its window waits for it

    def _apply_watershed(self, item: Segmented, labels: np.ndarray, params) -> None:
        layer = item.labels
        if item not in self.segmented or params != item.params or layer not in self.viewer.layers:
            return  # stale (the sliders moved on, or the image was segmented again), or the layer is gone
        if np.asarray(layer.data).shape != labels.shape:
            return
        if labels.max() > np.iinfo(np.asarray(layer.data).dtype).max:
            layer.data = labels  # more cells than the layer's dtype holds
        else:
            replace_labels(layer, labels)  # one undo step
        layer.metadata["watershed"] = params.to_dict()
        self.watershed_updates += 1
        self.say(f"{int(labels.max())} cells (interior {params.interior_threshold:.2f}, "
                 f"boundary weight {params.boundary_weight:.1f}, min size {params.min_size} px).")  # fmt: skip

    def _watershed_finished(self, task) -> None:
        if self._watershed_waiting:
            self._rerun(self._watershed_waiting.pop(0))
