"""A one-line label for a name that comes from storage (a room's name, up to the
metadata's cap): it never asks the layout for the name's width, shows the name cut with
"…" at the label's width (cut again on every resize), and the whole name in its tooltip.

A plain QLabel asks for the whole text as its minimum width: a 200-character room name
asked for 4,400 px, and the splitter took that width from the room list.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from ...protocol.untrusted_text import html_escape
from ..safe import guard


class ElidedLabel(QLabel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)  # names from storage: never markup
        self.setWordWrap(False)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(0)

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        """Show ``text`` on one line, cut to the label's width; all of it in the tooltip."""
        self._full = text
        # rich text, escaped: Qt takes a tip that looks like markup as rich text
        self.setToolTip(f"<p>{html_escape(text)}</p>" if text else "")
        self._elide()

    def _elide(self) -> None:
        width = self.contentsRect().width()
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width)
        if shown != self.text():
            super().setText(shown)

    @guard()
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    @guard()
    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._elide()  # new widths

    @guard(QSize(0, 0))
    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    @guard(QSize(0, 0))
    def sizeHint(self) -> QSize:
        return QSize(0, super().sizeHint().height())


def never_widens(label: QLabel) -> QLabel:
    """Let a label that may hold a hostile-length word (a 128-character room id, a long
    sender id, a room name) take the width its layout gives it and never ask for more: a
    plain QLabel's minimum width is its longest word, and the splitter or the dialog took
    that width from the room list or grew past the screen. A word-wrapped label then
    wraps at its width (a mark after a long id starts the next line); a word longer than
    the line is cut at its end."""
    label.setSizePolicy(QSizePolicy.Policy.Ignored, label.sizePolicy().verticalPolicy())
    label.setMinimumWidth(0)
    return label
