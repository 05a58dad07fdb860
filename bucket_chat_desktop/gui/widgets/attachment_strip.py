"""The strip above the composer that shows file transfers: one row per upload or
download with its name, what it is doing, a progress bar and Cancel; a failed transfer
keeps its row, in red, with the reason, until dismissed — or tried again, where the
storage did not answer (offline, a slow link: a later try may go through)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .. import icons
from ..safe import guard
from ..style import TRUST_COLORS

ERROR_COLOR = TRUST_COLORS["invalid"]


class TransferRow(QFrame):
    """One transfer. ``cancel_requested`` while it runs; ``dismissed`` once it has failed,
    ``retry_requested`` when it failed in a way a later try may not (``set_error``)."""

    cancel_requested = Signal()
    dismissed = Signal()
    retry_requested = Signal()
    grown = Signal()  # its text wraps onto more lines (``AttachmentStrip`` fits it)

    def __init__(
        self, name: str, status: str, parent: QWidget | None = None, room: str = ""
    ) -> None:
        super().__init__(parent)
        self.setObjectName("transferRow")
        self.name = name
        self.room = room  # the room it is for: the strip is every room's
        self.failed = False
        self.error = ""  # why it failed, as said (the label may break it for display)
        self.started = False  # set by the owner once the transfer left the queue
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 4, 8, 4)
        layout.setSpacing(10)
        self.icon = QLabel()
        self.icon.setPixmap(icons.paperclip().pixmap(18, 18))
        self.icon.setFixedWidth(20)
        layout.addWidget(self.icon)
        texts = QVBoxLayout()
        texts.setSpacing(0)
        self.name_label = QLabel()
        self.name_label.setTextFormat(Qt.TextFormat.PlainText)
        self.name_label.setMinimumWidth(120)
        self.name_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label = QLabel(status)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setObjectName("transferStatus")
        palette = self.status_label.palette()
        muted = palette.color(palette.ColorRole.WindowText)
        muted.setAlpha(160)
        palette.setColor(palette.ColorRole.WindowText, muted)
        self.status_label.setPalette(palette)
        self.status_label.setWordWrap(True)
        texts.addWidget(self.name_label)
        texts.addWidget(self.status_label)
        layout.addLayout(texts, 2)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        layout.addWidget(self.bar, 3)
        self.retry_button = QPushButton("Try again")
        self.retry_button.clicked.connect(self.retry_requested)
        self.retry_button.hide()
        layout.addWidget(self.retry_button)
        self.button = QPushButton("Cancel")
        self.button.clicked.connect(self._on_button)
        layout.addWidget(self.button)
        self._set_name(name)

    def _set_name(self, name: str) -> None:
        shown = f"{name} — {self.room}" if self.room else name
        metrics = self.name_label.fontMetrics()
        self.name_label.setText(metrics.elidedText(shown, Qt.TextElideMode.ElideMiddle, 420))
        self.name_label.setToolTip(f"{name}\nin {self.room}" if self.room else name)

    def _on_button(self) -> None:
        if self.failed:
            self.dismissed.emit()
        else:
            self.button.setEnabled(False)
            self.status_label.setText("Cancelling…")
            self.cancel_requested.emit()

    def set_status(self, text: str) -> None:
        if not self.failed:
            self.status_label.setText(text)

    def set_progress(self, done: int, total: int) -> None:
        """Determinate progress; ``total`` 0 (or unknown) shows a busy bar."""
        if self.failed:
            return
        if total <= 0:
            self.set_busy()
            return
        # QProgressBar holds ints: scale to per mille so files over 2 GiB fit.
        self.bar.setRange(0, 1000)
        self.bar.setValue(min(1000, done * 1000 // total))

    def set_busy(self) -> None:
        self.bar.setRange(0, 0)

    def set_error(self, message: str, *, retry: bool = False) -> None:
        """Failed, for ``message``; with "Try again" beside "Dismiss" when ``retry``."""
        self.failed = True
        self.error = message
        self.retry_button.setVisible(retry)
        self.bar.hide()
        self.icon.setText("⚠")
        self.icon.setStyleSheet(f"color: {ERROR_COLOR}; font-size: 14pt;")
        # A storage's message names the object (a long path): it may break after each
        # "/" rather than run out of the row.
        self.status_label.setText(message.replace("/", "/\u200b"))
        self.status_label.setStyleSheet(f"color: {ERROR_COLOR};")
        self.button.setText("Dismiss")
        self.button.setEnabled(True)
        self.grown.emit()


class AttachmentStrip(QScrollArea):
    """A column of ``TransferRow``; hidden while it has none, and never taller than
    ``MAX_VISIBLE_ROWS`` rows (dropping fifty files scrolls the strip, not the window)."""

    MAX_VISIBLE_ROWS = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("attachmentStrip")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = QWidget()
        self._layout = QVBoxLayout(inner)
        self._layout.setContentsMargins(0, 4, 0, 0)
        self._layout.setSpacing(2)
        self._layout.addStretch(1)
        self.setWidget(inner)
        self.rows: list[TransferRow] = []
        self.hide()

    def add_row(self, name: str, status: str, room: str = "") -> TransferRow:
        """A row for a transfer of ``name``; ``room``: the room it is for, named on it
        (the strip stays while another room is shown)."""
        row = TransferRow(name, status, self.widget(), room)
        row.dismissed.connect(lambda: self.remove_row(row))
        # Once the row is laid out at its width (its wrapped lines are known then).
        row.grown.connect(lambda: QTimer.singleShot(0, self._fit))
        self.rows.append(row)
        self._layout.insertWidget(self._layout.count() - 1, row)
        self._fit()
        self.show()
        return row

    def remove_row(self, row: TransferRow) -> None:
        if row in self.rows:
            self.rows.remove(row)
            self._layout.removeWidget(row)
            row.hide()
            row.deleteLater()
        self._fit()
        if not self.rows:
            self.hide()

    def _fit(self) -> None:
        shown = self.rows[: self.MAX_VISIBLE_ROWS]
        margins = self._layout.contentsMargins()
        width = self.viewport().width()
        height = sum(_height(r, width) for r in shown) + self._layout.spacing() * len(shown)
        self.setFixedHeight(height + margins.top() + margins.bottom())

    def errors(self) -> list[str]:
        """The messages of the failed rows still shown (what a user reads)."""
        return [r.error for r in self.rows if r.failed]

    @guard()
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.rows:
            self._fit()  # wrapped texts take more or fewer lines at another width


def _height(row: TransferRow, width: int) -> int:
    """The row's height at ``width``: a wrapped message's lines counted."""
    layout = row.layout()
    if width > 0 and layout is not None and layout.hasHeightForWidth():
        return max(row.sizeHint().height(), layout.totalHeightForWidth(width))
    return row.sizeHint().height()
