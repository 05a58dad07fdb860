"""The message composer: multi-line, Enter sends, Shift+Enter breaks the line, pasted
images and dropped or pasted files become attachments."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from ..safe import guard

MAX_LINES = 8


def local_files(mime: QMimeData) -> list[str]:
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


class Composer(QPlainTextEdit):
    submitted = Signal(str)
    files_dropped = Signal(list)  # [str paths]
    image_pasted = Signal(QImage)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText("Write a message…  (Enter sends, Shift+Enter for a new line)")
        self.setTabChangesFocus(True)
        self.setAcceptDrops(True)
        self.document().setDocumentMargin(6)
        self.document().contentsChanged.connect(self._fit)
        self._fit()

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
            text = self.toPlainText()
            if text.strip():
                self.submitted.emit(text)
                self.clear()
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
