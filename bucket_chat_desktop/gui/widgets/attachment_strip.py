"""The strip above the composer that shows file transfers: one row per upload or
download with its name, what it is doing, a progress bar and Cancel; a failed transfer
keeps its row, in red, with the reason, until dismissed."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
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
from ..style import TRUST_COLORS

ERROR_COLOR = TRUST_COLORS["invalid"]


class TransferRow(QFrame):
    """One transfer. ``cancel_requested`` while it runs; ``dismissed`` once it has failed."""

    cancel_requested = Signal()
    dismissed = Signal()

    def __init__(self, name: str, status: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transferRow")
        self.name = name
        self.failed = False
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
        self.button = QPushButton("Cancel")
        self.button.clicked.connect(self._on_button)
        layout.addWidget(self.button)
        self._set_name(name)

    def _set_name(self, name: str) -> None:
        metrics = self.name_label.fontMetrics()
        self.name_label.setText(metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, 320))
        self.name_label.setToolTip(name)

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

    def set_error(self, message: str) -> None:
        self.failed = True
        self.bar.hide()
        self.icon.setText("⚠")
        self.icon.setStyleSheet(f"color: {ERROR_COLOR}; font-size: 14pt;")
        self.status_label.setText(message)
        self.status_label.setStyleSheet(f"color: {ERROR_COLOR};")
        self.button.setText("Dismiss")
        self.button.setEnabled(True)


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

    def add_row(self, name: str, status: str) -> TransferRow:
        row = TransferRow(name, status, self.widget())
        row.dismissed.connect(lambda: self.remove_row(row))
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
        height = sum(r.sizeHint().height() for r in shown) + self._layout.spacing() * len(shown)
        self.setFixedHeight(height + margins.top() + margins.bottom())

    def errors(self) -> list[str]:
        """The messages of the failed rows still shown (what a user reads)."""
        return [r.status_label.text() for r in self.rows if r.failed]
