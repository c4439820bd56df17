"""A small live plot of a training run: train loss and dev score per epoch (matplotlib)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy

LOSS_COLOR = "#4fa3ff"
SCORE_COLOR = "#ffb000"


def _theme_colors(theme_name: str | None) -> tuple[str, str]:
    """(background, text) colours of napari's theme, with safe fallbacks."""
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(theme_name or "dark")
        return theme.background.as_hex(), theme.text.as_hex()
    except Exception:  # an unknown or custom theme: readable defaults
        return "#262930", "#f0f1f2"


class TrainingPlot(FigureCanvasQTAgg):
    """Train loss (left axis, blue) and dev score (right axis, orange) against the epoch.

    ``epochs``, ``losses`` and ``scores`` hold what is drawn (tests read them).
    """

    def __init__(self, theme_name: str | None = None, parent=None):
        background, text = _theme_colors(theme_name)
        figure = Figure(figsize=(3.6, 2.2), dpi=90, facecolor=background, layout="constrained")
        super().__init__(figure)
        if parent is not None:
            self.setParent(parent)
        self.setMinimumHeight(170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.loss_axes = figure.add_subplot(111)
        self.score_axes = self.loss_axes.twinx()
        for axes in (self.loss_axes, self.score_axes):
            axes.set_facecolor(background)
            axes.tick_params(colors=text, labelsize=8)
            for spine in axes.spines.values():
                spine.set_color(text)
        self.loss_axes.set_xlabel("epoch", color=text, fontsize=8)
        self.loss_axes.set_ylabel("train loss", color=LOSS_COLOR, fontsize=8)
        self.score_axes.set_ylabel("dev score", color=SCORE_COLOR, fontsize=8)
        (self.loss_line,) = self.loss_axes.plot([], [], "o-", color=LOSS_COLOR, markersize=3, label="loss")
        (self.score_line,) = self.score_axes.plot([], [], "s-", color=SCORE_COLOR, markersize=3)
        self.epochs: list[int] = []
        self.losses: list[float] = []
        self.scores: list[float | None] = []
        self.score_name = "dev score"

    def clear(self) -> None:
        self.epochs, self.losses, self.scores = [], [], []
        self._redraw()

    def add_epoch(self, epoch: int, loss: float, score: float | None, score_name: str = "") -> None:
        """Add (or replace) one epoch's point and redraw."""
        if epoch in self.epochs:
            index = self.epochs.index(epoch)
            del self.epochs[index:], self.losses[index:], self.scores[index:]
        self.epochs.append(int(epoch))
        self.losses.append(float(loss))
        self.scores.append(None if score is None else float(score))
        if score_name:
            self.score_name = score_name
        self._redraw()

    def set_history(self, history: Iterable[Mapping[str, Any]], score_name: str = "") -> None:
        """Show a run's stored history (``TrainResult.history`` / ``config.json`` training)."""
        self.epochs, self.losses, self.scores = [], [], []
        for entry in history:
            dev = entry.get("dev") or {}
            score = dev.get(score_name) if score_name else None
            self.epochs.append(int(entry["epoch"]))
            self.losses.append(float(entry["train_loss"]))
            self.scores.append(None if score is None else float(score))
        if score_name:
            self.score_name = score_name
        self._redraw()

    def _redraw(self) -> None:
        self.loss_line.set_data(self.epochs, self.losses)
        scored = [(e, s) for e, s in zip(self.epochs, self.scores) if s is not None]
        self.score_line.set_data([e for e, _ in scored], [s for _, s in scored])
        self.score_axes.set_ylabel(f"dev {self.score_name}".replace("dev dev", "dev"), color=SCORE_COLOR)
        for axes in (self.loss_axes, self.score_axes):
            axes.relim()
            axes.autoscale_view()
        if self.epochs:
            self.loss_axes.set_xlim(0.5, max(self.epochs) + 0.5)
        self.draw_idle()
