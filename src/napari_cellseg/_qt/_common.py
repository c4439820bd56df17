"""Small Qt helpers shared by the dock widgets.

- :class:`PlannedWidget`: a panel whose capability has not landed yet.
- :func:`annotation_colormap`: the fixed colours of the 3-class annotation.
- :class:`LayerCombo`: a combo box of the viewer's layers of one type, kept
  up to date as layers are added, removed or renamed.
- :class:`PathEdit`: a path field with a Browse button.
- :func:`fill_table`, :func:`clear_table`: a header and rows in a ``QTableWidget``.
- :func:`set_message`: the one-line status under a panel (errors in red).
- :func:`legend_label`: colour swatches and their names, wrapped between entries.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qtpy.QtCore import QEvent, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..classes import CLASS_COLORS, CLASS_NAMES

# Values outside 0/1/2 in an annotation layer show in magenta: something to fix.
INVALID_CLASS_COLOR = (1.0, 0.0, 1.0, 1.0)


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


def annotation_colormap():
    """napari ``DirectLabelColormap`` of the 3-class annotation (CLASS_COLORS)."""
    from napari.utils.colormaps import DirectLabelColormap

    colors: dict[Any, Any] = {None: INVALID_CLASS_COLOR}
    colors.update(CLASS_COLORS)
    return DirectLabelColormap(color_dict=colors)


def class_legend() -> str:
    """Rich text naming each class in its colour (for :func:`legend_label`)."""
    parts = []
    for value, name in enumerate(CLASS_NAMES):
        r, g, b, a = (int(255 * c) for c in CLASS_COLORS[value])
        swatch = f"rgba({r},{g},{b},{a})" if a else "transparent"
        parts.append(legend_entry(swatch, f"{value} {name}"))
    return legend_text(parts)


def legend_entry(background: str, name: str) -> str:
    """A colour swatch and its name, never split across lines."""
    name = name.replace(" ", "&nbsp;")
    return f"<span style='background:{background}'>&nbsp;&nbsp;&nbsp;</span>&nbsp;{name}"


def legend_text(entries: Sequence[str]) -> str:
    """Legend entries on one line, wrapped between entries when the panel is narrow."""
    return "&nbsp;&nbsp; ".join(entries)


def legend_label(text: str) -> QLabel:
    """A legend that wraps between its entries: on one line it set a wide panel's minimum width."""
    label = QLabel(text)
    label.setWordWrap(True)
    return label


def set_message(label: QLabel, text: str, error: bool = False) -> None:
    """Show ``text`` in a panel's status line; errors in red."""
    label.setStyleSheet("color: #ff6b6b;" if error else "")
    label.setText(text)


def is_layer_type(layer, layer_type: str) -> bool:
    """``isinstance(layer, napari.layers.<layer_type>)``; works through npe2's viewer proxy."""
    import napari.layers

    return isinstance(layer, getattr(napari.layers, layer_type))


def in_viewer(viewer, layer) -> bool:
    """Whether ``layer`` itself is still in the viewer: a job's result for a removed layer is dropped,
    never given to a layer that merely took its name (napari hands plugins proxies: compare ids)."""
    key = layer.unique_id
    return any(other.unique_id == key for other in viewer.layers)


class LayerCombo(QComboBox):
    """The names of the viewer's layers of ``layer_type`` (e.g. ``"Labels"``).

    Follows ``viewer.layers`` (insert, remove, rename). ``layer()`` returns
    the chosen layer or None; ``allow_none`` adds a first "(none)" entry;
    ``accept(layer)``, if given, must be true of a listed layer (e.g. not a
    probability map the plugin added).
    """

    NONE = "(none)"

    def __init__(
        self,
        viewer,
        layer_type: str,
        allow_none: bool = False,
        parent=None,
        accept: Callable[[Any], bool] | None = None,
    ):
        super().__init__(parent)
        self.viewer = viewer
        self.layer_type = layer_type
        self.allow_none = allow_none
        self.accept = accept
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self._chosen = None  # the layer itself, so that a rename keeps the choice
        self.currentTextChanged.connect(self._remember)
        events = viewer.layers.events
        for emitter in (events.inserted, events.removed, events.moved):
            emitter.connect(self.refresh)
        self.refresh()

    def _remember(self, name: str) -> None:
        self._chosen = self.viewer.layers[name] if name in self.viewer.layers else None

    def layers(self) -> list:
        return [
            layer for layer in self.viewer.layers
            if is_layer_type(layer, self.layer_type) and (self.accept is None or self.accept(layer))
        ]  # fmt: skip

    def refresh(self, event: Any = None) -> None:
        """Re-list the layers, keeping the current choice when it still exists."""
        try:
            self._refresh()
        except RuntimeError:  # the Qt side is gone (the viewer is closing)
            return

    def _refresh(self) -> None:
        chosen = self._chosen
        before = self.currentText()
        current = chosen.name if chosen is not None and chosen in self.viewer.layers else before
        names = [layer.name for layer in self.layers()]
        for layer in self.layers():
            layer.events.name.disconnect(self.refresh)
            layer.events.name.connect(self.refresh)
        items = ([self.NONE] if self.allow_none else []) + names
        if items == [self.itemText(i) for i in range(self.count())]:
            return
        self.blockSignals(True)
        self.clear()
        self.addItems(items)
        if current in items:
            self.setCurrentText(current)
        self.blockSignals(False)
        # Say so only when the choice changed (a rename, a removal): another layer added or
        # removed must not make the panels start over (a typed id, a chosen cells layer).
        if self.currentText() != before or (chosen is not None and chosen not in self.viewer.layers):
            self.currentTextChanged.emit(self.currentText())

    def layer(self):
        name = self.currentText()
        if not name or name == self.NONE or name not in self.viewer.layers:
            return None
        layer = self.viewer.layers[name]
        usable = is_layer_type(layer, self.layer_type) and (self.accept is None or self.accept(layer))
        return layer if usable else None

    def set_layer(self, layer) -> None:
        self.refresh()
        self.setCurrentText(layer.name)


class PathEdit(QWidget):
    """A path field with a Browse button (``mode``: ``"dir"``, ``"open"`` or ``"save"``)."""

    changed = Signal(str)

    def __init__(self, mode: str = "dir", placeholder: str = "", file_filter: str = "", parent=None):
        super().__init__(parent)
        self.mode = mode
        self.file_filter = file_filter
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.button = QPushButton("Browse…")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)
        self.button.clicked.connect(self._browse)
        self.edit.editingFinished.connect(lambda: self.changed.emit(self.text()))
        self.edit.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        # a narrow dock cuts the path (or the hint) short: its tooltip shows it whole, then the box's own tip
        if watched is self.edit and event.type() == QEvent.Type.ToolTip:
            whole = self.edit.text() or self.edit.placeholderText()
            self.edit.setToolTip("\n".join(tip for tip in (whole, self.toolTip()) if tip))
        return super().eventFilter(watched, event)

    def text(self) -> str:
        return self.edit.text().strip()

    def path(self) -> Path | None:
        return Path(self.text()).expanduser() if self.text() else None

    def setText(self, text: str) -> None:
        self.edit.setText(str(text))
        self.changed.emit(self.text())

    def _browse(self) -> None:
        start = self.text() or str(Path.home())
        if self.mode == "dir":
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        elif self.mode == "save":
            chosen, _ = QFileDialog.getSaveFileName(self, "Save as", start, self.file_filter)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Open", start, self.file_filter)
        if chosen:
            self.setText(chosen)


def fill_table(table: QTableWidget, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Show ``rows`` under ``header``; floats with 3 decimals, read-only cells, all rows visible."""
    from qtpy.QtCore import Qt

    table.clear()
    table.setColumnCount(len(header))
    table.setRowCount(len(rows))
    table.setHorizontalHeaderLabels([str(h) for h in header])
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            text = f"{value:.3f}" if isinstance(value, float) else str(value)
            item = QTableWidgetItem(text)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if c > 0:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()
    table.verticalHeader().setVisible(False)
    # Show every row without a scroll bar (up to a screenful).
    height = table.horizontalHeader().height() + table.verticalHeader().length() + 2 * table.frameWidth()
    table.setFixedHeight(min(height + 2, 420))


def clear_table(table: QTableWidget) -> None:
    """Empty a table filled by :func:`fill_table` and fold it away."""
    table.clear()
    table.setRowCount(0)
    table.setColumnCount(0)
    table.setFixedHeight(0)


def follow(widget: Any, method: Callable[..., None], add: Callable, remove: Callable) -> None:
    """Call ``method(widget, *args)`` for each event the listener list of ``add``/``remove`` sends,
    while ``widget`` lives: the listener holds it weakly and leaves once it (or its Qt side) is gone."""
    ref = weakref.ref(widget)

    def listener(*args) -> None:
        alive = ref()
        try:
            if alive is not None:
                method(alive, *args)
                return
        except RuntimeError:  # the Qt side was deleted
            pass
        remove(listener)

    add(listener)


def follow_current_model(widget: Any, method: Callable[[Any, Path | None], None]) -> None:
    """Call ``method(widget, directory)`` whenever the current model changes, while ``widget`` lives."""
    from ..app.current_model import add_listener, remove_listener

    follow(widget, method, add_listener, remove_listener)
