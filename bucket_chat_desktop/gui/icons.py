"""Small UI icons drawn with QPainter: crisp at any scale, no image files, no emoji font
needed (many Linux desktops have none)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from .style import is_dark

SIZE = 48


def _canvas() -> tuple[QPixmap, QPainter]:
    pix = QPixmap(SIZE, SIZE)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    return pix, p


def _pen(color: str, width: float = 4.0) -> QPen:
    pen = QPen(QColor(color), width)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


def plus(color: str = "#6b717a") -> QIcon:
    pix, p = _canvas()
    p.setPen(_pen(color, 4.5))
    p.drawLine(QPointF(24, 10), QPointF(24, 38))
    p.drawLine(QPointF(10, 24), QPointF(38, 24))
    p.end()
    return QIcon(pix)


def paperclip(color: str = "#6b717a") -> QIcon:
    pix, p = _canvas()
    p.setPen(_pen(color, 3.5))
    path = QPainterPath()
    path.moveTo(30, 14)
    path.lineTo(30, 32)
    path.arcTo(QRectF(18, 26, 12, 12), 0, -180)
    path.lineTo(18, 10)
    path.arcTo(QRectF(18, 4, 16, 12), 180, -180)
    path.lineTo(34, 34)
    path.arcTo(QRectF(14, 24, 20, 20), 0, -180)
    path.lineTo(14, 18)
    p.drawPath(path)
    p.end()
    return QIcon(pix)


def send(color: str = "#ffffff") -> QIcon:
    pix, p = _canvas()
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    path = QPainterPath()
    path.moveTo(8, 10)
    path.lineTo(42, 24)
    path.lineTo(8, 38)
    path.lineTo(13, 24)
    path.closeSubpath()
    p.drawPath(path)
    p.end()
    return QIcon(pix)


def shield(color: str = "#2e9d5b") -> QIcon:
    pix, p = _canvas()
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    path = QPainterPath()
    path.moveTo(24, 4)
    path.lineTo(40, 10)
    path.cubicTo(40, 28, 34, 38, 24, 44)
    path.cubicTo(14, 38, 8, 28, 8, 10)
    path.closeSubpath()
    p.drawPath(path)
    p.setPen(_pen("#ffffff", 4))
    p.drawLine(QPointF(16, 24), QPointF(22, 30))
    p.drawLine(QPointF(22, 30), QPointF(32, 18))
    p.end()
    return QIcon(pix)


def people(color: str = "#6b717a") -> QIcon:
    pix, p = _canvas()
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    p.drawEllipse(QRectF(12, 8, 14, 14))
    p.drawRoundedRect(QRectF(6, 26, 26, 14), 7, 7)
    c = QColor(color)
    c.setAlpha(150)
    p.setBrush(c)
    p.drawEllipse(QRectF(26, 10, 11, 11))
    p.drawRoundedRect(QRectF(28, 25, 16, 12), 6, 6)
    p.end()
    return QIcon(pix)


# -- message actions (the hover bar, the composer's reply/edit bar, the thread panel) -----


def icon_color() -> str:
    return "#aab0b8" if is_dark() else "#5f6670"


def reply_icon(color: str) -> QIcon:
    pix, p = _canvas()
    p.setPen(_pen(color))
    path = QPainterPath()
    path.moveTo(40, 38)
    path.cubicTo(40, 24, 32, 18, 12, 18)
    p.drawPath(path)
    p.drawLine(QPointF(12, 18), QPointF(22, 8))
    p.drawLine(QPointF(12, 18), QPointF(22, 28))
    p.end()
    return QIcon(pix)


def thread_icon(color: str) -> QIcon:
    pix, p = _canvas()
    p.setPen(_pen(color, 3.5))
    p.drawRoundedRect(QRectF(6, 8, 30, 20), 6, 6)
    p.drawLine(QPointF(14, 28), QPointF(12, 35))
    p.drawLine(QPointF(12, 35), QPointF(21, 28))
    p.drawLine(QPointF(40, 16), QPointF(42, 16))
    p.drawRoundedRect(QRectF(22, 24, 20, 14), 5, 5)
    p.end()
    return QIcon(pix)


def edit_icon(color: str) -> QIcon:
    pix, p = _canvas()
    p.setPen(_pen(color))
    p.drawLine(QPointF(12, 36), QPointF(34, 14))
    p.drawLine(QPointF(30, 10), QPointF(38, 18))
    p.drawLine(QPointF(12, 36), QPointF(10, 40))
    p.drawLine(QPointF(10, 40), QPointF(16, 38))
    p.end()
    return QIcon(pix)


def delete_icon(color: str) -> QIcon:
    pix, p = _canvas()
    p.setPen(_pen(color, 3.5))
    p.drawLine(QPointF(10, 13), QPointF(38, 13))
    p.drawLine(QPointF(19, 13), QPointF(20, 7))
    p.drawLine(QPointF(20, 7), QPointF(28, 7))
    p.drawLine(QPointF(28, 7), QPointF(29, 13))
    path = QPainterPath()
    path.moveTo(13, 13)
    path.lineTo(15, 41)
    path.lineTo(33, 41)
    path.lineTo(35, 13)
    p.drawPath(path)
    p.drawLine(QPointF(21, 20), QPointF(21, 34))
    p.drawLine(QPointF(27, 20), QPointF(27, 34))
    p.end()
    return QIcon(pix)


def more_icon(color: str) -> QIcon:
    pix, p = _canvas()
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    for x in (12, 24, 36):
        p.drawEllipse(QPointF(x, 24), 3.5, 3.5)
    p.end()
    return QIcon(pix)


def add_reaction_icon(color: str) -> QIcon:
    pix, p = _canvas()
    p.setPen(_pen(color, 3.5))
    p.drawEllipse(QRectF(5, 9, 30, 30))
    p.drawArc(QRectF(13, 18, 14, 12), -20 * 16, -140 * 16)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    p.drawEllipse(QPointF(15, 20), 2.2, 2.2)
    p.drawEllipse(QPointF(25, 20), 2.2, 2.2)
    p.setPen(_pen(color, 3.5))
    p.drawLine(QPointF(40, 4), QPointF(40, 16))
    p.drawLine(QPointF(34, 10), QPointF(46, 10))
    p.end()
    return QIcon(pix)


def close_icon(color: str) -> QIcon:
    pix, p = _canvas()
    p.setPen(_pen(color, 4))
    p.drawLine(QPointF(14, 14), QPointF(34, 34))
    p.drawLine(QPointF(34, 14), QPointF(14, 34))
    p.end()
    return QIcon(pix)
