"""Small pieces the storage form, the setup wizard and Settings share: a busy spinner, help
labels, the coloured result line, joined toggle buttons and `FormGrid`, a label/field grid
that gives wrapped help text its real height.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QLayout,
    QVBoxLayout,
    QWidget,
)

from ...protocol.untrusted_text import html_escape
from ..safe import guard

OK_COLOR, WARN_COLOR, ERROR_COLOR = "#2e9d5b", "#d9822b", "#d64545"


# -- small widgets -------------------------------------------------------------------------


class Spinner(QWidget):
    """A small busy indicator (a turning arc) drawn in the palette's accent colour."""

    def __init__(self, parent: QWidget | None = None, size: int = 18) -> None:
        super().__init__(parent)
        self._angle = 0
        self._size = size
        self._timer = QTimer(self)
        self._timer.setInterval(60)
        self._timer.timeout.connect(self._turn)
        self.setFixedSize(QSize(size, size))
        self.hide()

    def start(self) -> None:
        self.show()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self.hide()

    @property
    def spinning(self) -> bool:
        return self._timer.isActive()

    def _turn(self) -> None:
        self._angle = (self._angle + 30) % 360
        self.update()

    @guard()
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        width = max(2.0, self._size / 8)
        rect = QRectF(width, width, self._size - 2 * width, self._size - 2 * width)
        track = QColor(self.palette().color(QPalette.ColorRole.Mid))
        track.setAlpha(90)
        p.setPen(QPen(track, width))
        p.drawEllipse(rect)
        pen = QPen(self.palette().color(QPalette.ColorRole.Highlight), width)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        p.drawArc(rect, -self._angle * 16, 100 * 16)
        p.end()


def help_label(text: str) -> QLabel:
    """Muted, wrapping help text under a field."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setObjectName("help")
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setOpenExternalLinks(False)
    return label


def result_html(level: str, message: str) -> str:
    color = {"ok": OK_COLOR, "warning": WARN_COLOR, "error": ERROR_COLOR}.get(level, "")
    symbol = {"ok": "✔", "warning": "⚠", "error": "✖"}.get(level, "")
    text = message[:1].upper() + message[1:]
    return f"<span style='color:{color}; font-weight:600'>{symbol}</span>&nbsp; {html_escape(text)}"


def segment_qss(position: str) -> str:
    """Style of one button in a row of joined toggle buttons (``first``/``middle``/``last``)."""
    left = "6px" if position == "first" else "0"
    right = "6px" if position == "last" else "0"
    return (
        "QPushButton { padding: 6px 16px; margin: 0; border: 1px solid palette(mid);"
        " background: palette(button);"
        f" border-top-left-radius: {left}; border-bottom-left-radius: {left};"
        f" border-top-right-radius: {right}; border-bottom-right-radius: {right}; }}"
        " QPushButton:checked { background: palette(highlight);"
        " color: palette(highlighted-text); border: 1px solid palette(highlight); }"
    )


class FormGrid(QGridLayout):
    """A label/field form on a grid.

    Unlike ``QFormLayout`` it gives word-wrapped help labels their real height (no gaps),
    and a hidden row takes no space. ``add_row`` returns the row's field widget (layouts are
    wrapped in one), which is also the key for ``set_row_visible``.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setContentsMargins(0, 0, 0, 0)
        self.setHorizontalSpacing(14)
        self.setVerticalSpacing(10)
        self.setColumnStretch(1, 1)
        self._count = 0
        self._labels: dict[int, QLabel | None] = {}

    def add_row(self, label: str | QLabel | None, field: QWidget | QLayout) -> QWidget:
        if isinstance(field, QLayout):
            holder = QWidget()
            field.setContentsMargins(0, 0, 0, 0)
            holder.setLayout(field)
            field = holder
        row = self._count
        self._count += 1
        layout = field.layout()
        tall = isinstance(field, QLabel) or isinstance(layout, QVBoxLayout)
        label_widget = QLabel(label) if isinstance(label, str) and label else label
        if isinstance(label_widget, QLabel):
            align = Qt.AlignmentFlag.AlignRight | (
                Qt.AlignmentFlag.AlignTop if tall else Qt.AlignmentFlag.AlignVCenter
            )
            if tall:
                label_widget.setContentsMargins(0, 2, 0, 0)
            self.addWidget(label_widget, row, 0, align)
        self.addWidget(field, row, 1)
        self._labels[id(field)] = label_widget if isinstance(label_widget, QLabel) else None
        return field

    def set_row_visible(self, field: QWidget, visible: bool) -> None:
        field.setVisible(visible)
        label = self._labels.get(id(field))
        if label is not None:
            label.setVisible(visible)


def indented(*widgets: QWidget) -> QWidget:
    box = QFrame()
    v = QVBoxLayout(box)
    v.setContentsMargins(22, 0, 0, 4)
    v.setSpacing(6)
    for w in widgets:
        v.addWidget(w)
    return box
