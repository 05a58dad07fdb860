"""The message composer: multi-line, Enter sends, Shift+Enter breaks the line, pasted
images and dropped or pasted files become attachments.

Two modes besides writing a new message (the bar above the composer shows which):
replying to a message (``start_reply``: Enter sends a reply) and editing one of the
user's own messages (``start_edit``; Up in an empty composer asks for the last one, as in
Element and Slack: Enter saves, an unchanged text sends nothing). Escape leaves a mode;
the draft written before an edit comes back afterwards."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QKeyEvent, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from ..safe import guard

MAX_LINES = 8


def local_files(mime: QMimeData) -> list[str]:
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


class Composer(QPlainTextEdit):
    submitted = Signal(str)  # a new message (not a reply, not an edit)
    reply_submitted = Signal(str, str)  # text, the event id it replies to
    edit_submitted = Signal(str, str)  # the edited event's id, its new text (changed)
    edit_last_requested = Signal()  # Up in an empty composer: edit the last own message
    mode_changed = Signal()  # reply_to / editing changed
    files_dropped = Signal(list)  # [str paths]
    image_pasted = Signal(QImage)
    refused = Signal(str)  # a reply or an edit not sent, and why (its text stays)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText("Write a message…  (Enter sends, Shift+Enter for a new line)")
        self.setTabChangesFocus(True)
        self.setAcceptDrops(True)
        self.document().setDocumentMargin(6)
        self.document().contentsChanged.connect(self._fit)
        self.reply_to: str | None = None  # event id this message will answer
        self.editing: str | None = None  # event id whose text is being edited
        self._edit_text = ""  # the text the edit started from
        self._draft = ""  # what was written before the edit began
        # Why a reply to, or an edit of, an event id cannot be sent now ("": it can). Asked
        # before the text is cleared: what the room says since the reply or the edit began
        # (another device signed a copy of that id) must not cost the person their text.
        self.refusal: Callable[[str], str] = lambda _event_id: ""
        self._fit()

    # -- modes ------------------------------------------------------------------------------

    def start_reply(self, event_id: str) -> None:
        """The next message sent answers ``event_id`` (what is written stays)."""
        if self.editing is not None:
            self._leave_edit()
        self.reply_to = event_id
        self.mode_changed.emit()
        self.setFocus()

    def start_edit(self, event_id: str, text: str) -> None:
        """Edit ``event_id``, starting from its current ``text``."""
        if self.editing is None:
            self._draft = self.toPlainText()
        self.reply_to = None
        self.editing = event_id
        self._edit_text = text
        self.setPlainText(text)
        self.moveCursor(QTextCursor.MoveOperation.End)
        self.mode_changed.emit()
        self.setFocus()

    def cancel_mode(self) -> None:
        """Leave replying or editing (the ✕ of the bar, Escape)."""
        if self.editing is not None:
            self._leave_edit()
        elif self.reply_to is None:
            return
        self.reply_to = None
        self.mode_changed.emit()

    def _leave_edit(self) -> None:
        self.editing = None
        self._edit_text = ""
        self.setPlainText(self._draft)
        self._draft = ""
        self.moveCursor(QTextCursor.MoveOperation.End)

    def submit(self) -> None:
        """Send what is written, as the mode says (Enter, the Send button)."""
        text = self.toPlainText()
        acted_on = self.editing if self.editing is not None else self.reply_to
        if acted_on is not None and text.strip():
            why = self.refusal(acted_on)
            if why:  # nothing is sent, nothing cleared: the text and the mode stay
                self.refused.emit(why)
                return
        if self.editing is not None:
            target, before = self.editing, self._edit_text
            if not text.strip():
                return  # an edit cannot empty a message (delete it instead)
            self.cancel_mode()
            if text != before:
                self.edit_submitted.emit(target, text)
            return
        if not text.strip():
            return
        if self.reply_to is not None:
            target = self.reply_to
            self.clear()
            self.reply_to = None
            self.mode_changed.emit()
            self.reply_submitted.emit(text, target)
            return
        self.submitted.emit(text)
        self.clear()

    def _fit(self) -> None:
        lines = max(1, min(MAX_LINES, self.document().blockCount()))
        line_h = self.fontMetrics().lineSpacing()
        self.setFixedHeight(lines * line_h + 20)

    @guard()
    def sizeHint(self) -> QSize:
        return QSize(400, self.fontMetrics().lineSpacing() + 20)

    @guard()
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & (Qt.KeyboardModifier.ShiftModifier)
        ):
            self.submit()
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape and (
            self.editing is not None or self.reply_to is not None
        ):
            self.cancel_mode()
            event.accept()
            return
        if (
            event.key() == Qt.Key.Key_Up
            and not event.modifiers()
            and self.editing is None
            and not self.toPlainText()
        ):
            self.edit_last_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    @guard()
    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return (
            source.hasImage() or bool(local_files(source)) or super().canInsertFromMimeData(source)
        )

    @guard()
    def insertFromMimeData(self, source: QMimeData) -> None:
        files = local_files(source)
        if files:
            self.files_dropped.emit(files)
            return
        if source.hasImage():
            image = source.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.image_pasted.emit(image)
                return
        super().insertFromMimeData(source)

    @guard()
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_files(event.mimeData()):
            event.acceptProposedAction()
            return
        super().dragEnterEvent(event)

    @guard()
    def dropEvent(self, event: QDropEvent) -> None:
        files = local_files(event.mimeData())
        if files:
            self.files_dropped.emit(files)
            event.acceptProposedAction()
            return
        super().dropEvent(event)
