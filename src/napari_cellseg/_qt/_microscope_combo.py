"""An editable box of microscope tags: A, B, C, the dataset's own tags, or one the user types.

The tag rules live in :mod:`napari_cellseg.app.microscope_tags`; this box lists the choices,
takes a typed tag into its list once it is valid and says why an invalid one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QComboBox

from ..app.microscope_tags import parse_tag, tag_choices


class MicroscopeCombo(QComboBox):
    """A, B, C, then the tags of the chosen dataset and those typed here; any valid tag can be typed.

    ``what`` starts the tooltip. ``untagged``, when given, is a first entry meaning "no tag"
    (Annotate). ``chosen`` carries the tag (None: untagged) when an entry is picked or set,
    and when a typed tag is taken: on Enter or on leaving the box, not at each key. A valid
    typed tag joins the list; an invalid one stays in the box for correcting, ``refused``
    says why, and ``tag()`` raises the same reason, so that no action runs with it.
    """

    chosen = Signal(object)
    refused = Signal(str)

    def __init__(self, what: str, untagged: str | None = None, default: str | None = None, parent=None):
        super().__init__(parent)
        self.untagged = untagged
        self._dataset_tags: tuple[str, ...] = ()
        self._typed: set[str] = set()  # tags typed in this box, offered until the panel closes
        self.setEditable(True)
        # Enter must not add whatever was typed: valid tags are added by _commit
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.completer().setCaseSensitivity(Qt.CaseSensitivity.CaseSensitive)  # 'c' is another tag than 'C'
        self.setToolTip(
            f"{what}: A, B, C, a tag the dataset uses, or type a tag of your own "
            "(1-32 letters, digits, '_', '-' or '.'; a letter or digit first)"
        )
        self._fill(default or untagged or "")
        self.currentTextChanged.connect(self._text_changed)
        self.lineEdit().editingFinished.connect(self._commit)

    def tag(self) -> str | None:
        """The tag shown; None for the untagged entry; ``ValueError`` saying why the text is no tag."""
        text = self.currentText().strip()
        if self.untagged is not None and text in ("", self.untagged):
            return None
        return parse_tag(text)

    def show_tag(self, tag: str | None) -> None:
        """Show ``tag`` (joining the list when new), or the untagged entry for None; no signal."""
        self.blockSignals(True)
        try:
            if tag is not None and tag not in self._choices():
                self._typed.add(tag)
            self._fill(tag if tag is not None else self.untagged or "")
        finally:
            self.blockSignals(False)

    def set_dataset_tags(self, tags: Iterable[str]) -> None:
        """Offer the tags a dataset uses (besides A, B, C and those typed); the text shown stays."""
        self._dataset_tags = tuple(tags)
        self.blockSignals(True)
        try:
            self._fill(self.currentText())
        finally:
            self.blockSignals(False)

    def _choices(self) -> list[str]:
        first = [self.untagged] if self.untagged is not None else []
        return first + list(tag_choices(self._dataset_tags, self._typed))

    def _fill(self, text: str) -> None:
        """List the choices and show ``text``: its entry, else as typed."""
        self.clear()
        self.addItems(self._choices())
        index = self.findText(text)
        if index >= 0:
            self.setCurrentIndex(index)
        else:
            self.setEditText(text)

    def _text_changed(self, _text: str) -> None:
        if self.lineEdit().isModified():  # being typed: taken on Enter or on leaving the box
            return
        try:
            self.chosen.emit(self.tag())
        except ValueError:  # set so by the panel: nothing to take
            pass

    def _commit(self) -> None:
        if not self.lineEdit().isModified():  # left without typing
            return
        try:
            tag = self.tag()
        except ValueError as err:
            self.refused.emit(str(err))
            return
        if tag is not None:  # a new tag joins the list; " D " shows as "D"
            self.show_tag(tag)
        self.lineEdit().setModified(False)
        self.chosen.emit(tag)
