"""A small live plot of a training run: train loss and dev score per epoch.

Drawn with QPainter: a repaint takes about a millisecond, where a matplotlib
canvas took 300-400 ms per draw on a loaded 2-core machine, long enough to
make napari stutter at every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS_COLOR = "#4fa3ff"
SCORE_COLOR = "#ffb000"
MARGINS = (46, 20, 40, 30)  # left, top, right, bottom (pixels)


def _theme_colors(theme_name: str | None) -> tuple[str, str]:
    """(background, text) colours of napari's theme, with safe fallbacks."""
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(theme_name or "dark")
        return theme.background.as_hex(), theme.text.as_hex()
    except Exception:  # an unknown or custom theme: readable defaults
        return "#262930", "#f0f1f2"


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About ``count`` round tick values covering ``[low, high]``."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + 1e-9 * step:
        if value >= low - 1e-9 * step:
            ticks.append(round(value, 10))
        value += step
    return ticks


class TrainingPlot(QWidget):
    """Train loss (left axis, blue) and dev score (right axis, orange) against the epoch.

    ``epochs``, ``losses`` and ``scores`` hold what is drawn (tests read them).
    """

    def __init__(self, theme_name: str | None = None, parent=None):
        super().__init__(parent)
        background, text = _theme_colors(theme_name)
        self.background, self.text = QColor(background), QColor(text)
        self.setMinimumHeight(170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.epochs: list[int] = []
        self.losses: list[float] = []
        self.scores: list[float | None] = []
        self.score_name = "score"

    def clear(self) -> None:
        self.epochs, self.losses, self.scores = [], [], []
        self.update()

    def add_epoch(self, epoch: int, loss: float, score: float | None, score_name: str = "") -> None:
        """Add (or replace) one epoch's point."""
        if epoch in self.epochs:
            index = self.epochs.index(epoch)
            del self.epochs[index:], self.losses[index:], self.scores[index:]
        self.epochs.append(int(epoch))
        self.losses.append(float(loss))
        self.scores.append(None if score is None else float(score))
        if score_name:
            self.score_name = score_name
        self.update()

    def set_history(self, history: Iterable[Mapping[str, Any]], score_name: str = "") -> None:
        """Show a stored run's history (``TrainResult.history``, a model config's ``training``)."""
        self.epochs, self.losses, self.scores = [], [], []
        for entry in history:
            score = (entry.get("dev") or {}).get(score_name) if score_name else None
            self.epochs.append(int(entry["epoch"]))
            self.losses.append(float(entry["train_loss"]))
            self.scores.append(None if score is None else float(score))
        if score_name:
            self.score_name = score_name
        self.update()

    # --- drawing ----------------------------------------------------------------

    def _frame(self) -> QRectF:
        left, top, right, bottom = MARGINS
        return QRectF(left, top, max(10, self.width() - left - right), max(10, self.height() - top - bottom))

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), self.background)
        font = painter.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        painter.setFont(font)
        frame = self._frame()
        last = max(self.epochs) if self.epochs else 1
        x_range = (0.5, last + 0.5)
        finite = [v for v in self.losses if math.isfinite(v)]
        loss_range = (0.0, max(finite) * 1.05 if finite and max(finite) > 0 else 1.0)
        scored = [s for s in self.scores if s is not None and math.isfinite(s)]
        score_range = (min([0.0, *scored]), max([1.0, *scored]))
        self._axes(painter, frame, x_range, loss_range, score_range)
        self._series(painter, frame, x_range, loss_range, self.epochs, self.losses, LOSS_COLOR)
        points = [(e, s) for e, s in zip(self.epochs, self.scores) if s is not None]
        if points:
            xs, ys = zip(*points)
            self._series(painter, frame, x_range, score_range, xs, ys, SCORE_COLOR)
        painter.end()

    @staticmethod
    def _map(frame: QRectF, x_range, y_range, x: float, y: float) -> QPointF:
        fx = (x - x_range[0]) / (x_range[1] - x_range[0])
        fy = (y - y_range[0]) / (y_range[1] - y_range[0])
        return QPointF(frame.left() + fx * frame.width(), frame.bottom() - fy * frame.height())

    def _axes(self, painter: QPainter, frame: QRectF, x_range, loss_range, score_range) -> None:
        painter.setPen(QPen(self.text, 1))
        painter.drawRect(frame)
        align_right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        align_left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        for value in nice_ticks(*loss_range):
            y = self._map(frame, x_range, loss_range, x_range[0], value).y()
            painter.drawText(QRectF(0, y - 8, frame.left() - 4, 16), align_right, f"{value:g}")
        for value in nice_ticks(*score_range):
            y = self._map(frame, x_range, score_range, x_range[0], value).y()
            painter.drawText(QRectF(frame.right() + 4, y - 8, 40, 16), align_left, f"{value:g}")
        epochs = [e for e in nice_ticks(1, max(2, x_range[1] - 0.5)) if float(e).is_integer()]
        for value in epochs:
            x = self._map(frame, x_range, loss_range, value, 0).x()
            painter.drawText(
                QRectF(x - 20, frame.bottom() + 2, 40, 14), Qt.AlignmentFlag.AlignCenter, f"{value:g}"
            )
        painter.drawText(
            QRectF(frame.left(), frame.bottom() + 14, frame.width(), 14),
            Qt.AlignmentFlag.AlignCenter,
            "epoch",
        )
        painter.setPen(QColor(LOSS_COLOR))
        painter.drawText(QRectF(frame.left(), 2, 120, 16), align_left, "train loss")
        painter.setPen(QColor(SCORE_COLOR))
        label = f"dev {self.score_name}"
        painter.drawText(QRectF(frame.right() - 160, 2, 160, 16), align_right, label)

    def _series(self, painter: QPainter, frame: QRectF, x_range, y_range, xs, ys, color: str) -> None:
        points = [self._map(frame, x_range, y_range, x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
        painter.setPen(QPen(QColor(color), 2))
        painter.drawPolyline(QPolygonF(points))
        painter.setBrush(QColor(color))
        radius = 3 if len(points) <= 40 else 1.5
        for point in points:
            painter.drawEllipse(point, radius, radius)
        painter.setBrush(Qt.BrushStyle.NoBrush)
