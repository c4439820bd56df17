"""Base of the dock widgets: a titled panel with a status line and one job at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import QFrame, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from ._closing import watch_window_of
from ._common import set_message
from ._workers import Task, run_task


class _PanelScroll(QScrollArea):
    """The panel's contents, scrolled vertically: several panels docked one under another
    then fit the screen (each asked for its full height, and napari's window grew past it)."""

    MIN_HEIGHT = 100  # five panels docked one under another still fit a 1280 x 800 screen

    def __init__(self, content: QWidget):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(content)
        content.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        # the panel fills its contents after this is built: the dock must learn their new width
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def _bar(self) -> int:
        return self.verticalScrollBar().sizeHint().width()

    def minimumSizeHint(self) -> QSize:  # as wide as the contents need, as low as a few rows
        return QSize(self.widget().minimumSizeHint().width() + self._bar(), self.MIN_HEIGHT)

    def sizeHint(self) -> QSize:  # room for everything when the screen has it
        hint = self.widget().sizeHint()
        return QSize(hint.width() + self._bar(), hint.height())


class TaskPanel(QWidget):
    """A dock widget that runs core work through :func:`run_task`, one job at a time.

    Subclasses add their controls to ``self.body`` (a ``QVBoxLayout``) and list
    the buttons to disable while a job runs in ``self.action_buttons``.
    ``self.message`` is the status line under the panel; ``self.task`` the
    last job (tests wait for ``panel.busy`` to become False).
    """

    title = ""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.task: Task | None = None
        self.action_buttons: list[QPushButton] = []
        content = QWidget()
        inner = QVBoxLayout(content)
        self.body = QVBoxLayout()
        inner.addLayout(self.body)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop the running job")
        inner.addWidget(self.cancel_button)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        inner.addWidget(self.message)
        inner.addStretch(1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(_PanelScroll(content))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        watch_window_of(self)  # docked now: the window is napari's

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.finished

    def say(self, text: str, error: bool = False) -> None:
        set_message(self.message, text, error)

    def fail(self, text: str) -> None:
        """A problem found before any job starts: status line and notification."""
        from napari.utils.notifications import show_error

        self.say(text, error=True)
        show_error(f"{self.title}: {text}")

    def start(
        self,
        function: Callable[..., Any],
        *args: Any,
        title: str,
        on_result: Callable[[Any], None] | None = None,
        on_report: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        cancelled: Callable[[], str] | None = None,
        **kwargs: Any,
    ) -> Task | None:
        """Run ``function`` in a worker unless a job is already running.

        ``cancelled()``, if given, is the status line after a cancel (else "<title> cancelled").
        """
        if self.busy:  # a save cannot be stopped half way: Cancel is offered for the jobs it stops
            stop = " (or cancel it)" if self.task.interruptible else ""
            self.fail(f"wait for {self.task.title!r} to finish{stop}")
            return None
        for button in self.action_buttons:
            button.setEnabled(False)
        self.say(f"{title}…")
        watch_window_of(self)  # its window's closing cancels the job

        def _result(value: Any) -> None:
            if on_result is not None:
                try:
                    on_result(value)
                except (ValueError, KeyError, OSError) as err:
                    self.fail(f"{title}: {err}")

        def _error(error: BaseException) -> None:
            from ._workers import error_message

            self.say(f"{title} failed: {error_message(error)}", error=True)
            if on_error is not None:
                on_error(error)

        def _finished(task: Task) -> None:
            for button in self.action_buttons:
                button.setEnabled(True)
            if task.cancelled:
                self.say(cancelled() if cancelled is not None else f"{title} cancelled")

        def _cancelling() -> None:
            self.cancel_button.setEnabled(False)
            self.say(f"{title}: cancelling, it stops after its current step…")

        self.task = run_task(
            function, *args, title=title, on_result=_result, on_report=on_report,
            on_error=_error, on_finished=_finished, on_cancel=_cancelling, cancel_button=self.cancel_button,
            owner=self, **kwargs,
        )  # fmt: skip
        return self.task
