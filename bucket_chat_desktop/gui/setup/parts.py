"""The wizard's look: its style sheet, the step indicator on the left, and the small label,
card and passphrase-field helpers its pages are built from.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ..safe import guard
from ..storage.parts import ERROR_COLOR
from ..style import ACCENT, is_dark

STEPS = ("Who you are", "Where your rooms live", "Done")

WIZARD_QSS = """
QWidget#wizardSide { background: %(side)s; }
QLabel#pageTitle { font-size: 18pt; font-weight: 600; }
QLabel#pageSubtitle { color: palette(placeholder-text); }
QLabel#help { color: palette(placeholder-text); }
QLabel#error { color: %(error)s; }
QLabel#fingerprint { font-family: "DejaVu Sans Mono", "Menlo", "Consolas", monospace;
                     font-size: 12pt; letter-spacing: 1px; }
QFrame#card { border: 1px solid %(card_border)s; border-radius: 10px; background: %(card)s; }
QLabel#cardTitle { font-weight: 600; }
"""


def wizard_qss() -> str:
    dark = is_dark()
    return WIZARD_QSS % {
        "side": ACCENT,
        "error": ERROR_COLOR,
        # a surface the fields (palette base) stand out from, in both themes
        "card": "#272c33" if dark else "#ffffff",
        "card_border": "#3a3f47" if dark else "#d5d9df",
    }


def text_label(text: str, name: str, *, rich: bool = False) -> QLabel:
    """A wrapping label; plain text unless ``rich`` (then the caller escapes user text)."""
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    return label


def card_frame() -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(16, 14, 16, 14)
    layout.setSpacing(8)
    return frame, layout


def password_edit(placeholder: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    edit.setPlaceholderText(placeholder)
    return edit


# -- decorations -----------------------------------------------------------------------------


class StepsWidget(QWidget):
    """The wizard's side bar: numbered steps, the current one highlighted, done ones ticked."""

    def __init__(self, steps: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps = steps
        self.current = 0
        self.setMinimumHeight(60 + 52 * len(steps))

    def set_current(self, index: int) -> None:
        self.current = index
        self.update()

    @guard()
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        white = QColor("#ffffff")
        faded = QColor(255, 255, 255, 150)
        font = QFont(self.font())
        for i, name in enumerate(self.steps):
            y = 8 + i * 52
            circle = QRectF(4, y, 30, 30)
            if i < self.current:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(255, 255, 255, 60))
                p.drawEllipse(circle)
                pen = QPen(white, 2.4)
                pen.setCapStyle(Qt.PenCapStyle.RoundCap)
                p.setPen(pen)
                x = circle.left()
                p.drawLine(QPointF(x + 9, y + 15), QPointF(x + 13, y + 20))
                p.drawLine(QPointF(x + 13, y + 20), QPointF(x + 21, y + 10))
            elif i == self.current:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(white)
                p.drawEllipse(circle)
                p.setPen(QColor(ACCENT))
                font.setBold(True)
                p.setFont(font)
                p.drawText(circle, Qt.AlignmentFlag.AlignCenter, str(i + 1))
            else:
                p.setPen(QPen(faded, 1.6))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawEllipse(circle.adjusted(1, 1, -1, -1))
                font.setBold(False)
                p.setFont(font)
                p.drawText(circle, Qt.AlignmentFlag.AlignCenter, str(i + 1))
            font.setBold(i == self.current)
            p.setFont(font)
            p.setPen(white if i <= self.current else faded)
            p.drawText(
                QRectF(46, y, self.width() - 50, 30),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                name,
            )
            if i < len(self.steps) - 1:
                p.setPen(QPen(QColor(255, 255, 255, 70), 1.5))
                p.drawLine(19, int(y + 34), 19, int(y + 48))
        p.end()
