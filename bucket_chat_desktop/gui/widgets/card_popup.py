"""A card over a dimmed window holding a text field and a list: the quick switcher's and
the message search's shared frame.

``CardPopup`` covers its parent window (a click outside the card closes it), lays out
the card (a field on top, the list, then whatever the subclass adds) and handles the
keys typed in the field: Up/Down/PageUp/PageDown move in the list, Enter chooses
(``choose``), Esc closes. Subclasses fill the list's model and say where the card goes
(``place``) and what choosing does.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPersistentModelIndex, QPoint, Qt
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QLineEdit,
    QListView,
    QStyle,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from ..safe import guard
from ..style import ACCENT, is_dark

Index = QModelIndex | QPersistentModelIndex


class ChoiceList(QListView):
    """The card's list: rows of one fixed height (``uniformItemSizes``), painted by a
    delegate that reads the model at each paint.

    A row whose data changed is only repainted. ``QListView`` also walks every row of
    the model for its list-mode layout at each change (two ``index()`` calls a row: 60 ms
    a change at 20,000 rooms when the model's ``index`` is Python, as the quick switcher's
    is), which rows of one fixed height never need."""

    @guard()
    def dataChanged(self, top_left: Index, bottom_right: Index, roles: Sequence[int] = ()) -> None:
        QAbstractItemView.dataChanged(self, top_left, bottom_right, roles)


class CardPopup(QWidget):
    """See the module. ``visible_rows`` rows of ``row_height`` at most are shown at once;
    ``dim`` is the cover's opacity (light theme, dark theme)."""

    visible_rows = 7
    row_height = 48
    card_width = 520
    dim = (90, 130)

    def __init__(self, parent: QWidget, name: str, styles: str = "") -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, False)
        self.card = QFrame(self)
        card_name = f"{name}Card"
        self.card.setObjectName(card_name)
        dark = is_dark()
        border = "#3a3f47" if dark else "#d5d9df"
        bg = "#23272e" if dark else "#ffffff"
        muted = "#9aa0a8" if dark else "#6b717a"
        self.card.setStyleSheet(
            f"""
            QFrame#{card_name} {{ background: {bg}; border: 1px solid {border};
                                  border-radius: 12px; }}
            QLineEdit {{ border: none; border-bottom: 1px solid {border}; border-radius: 0;
                         padding: 12px 16px; font-size: 13pt; background: transparent; }}
            QListView {{ border: none; background: transparent; outline: 0; }}
            QLabel#hint {{ color: {muted}; padding: 6px 16px 10px 16px; }}
            """
            + styles.replace("MUTED", muted)
        )
        self.layout_ = QVBoxLayout(self.card)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(0)
        self.field = QLineEdit()
        self.field.setClearButtonEnabled(True)
        self.field.installEventFilter(self)
        self.list = ChoiceList()
        self.list.setUniformItemSizes(True)
        self.list.setMouseTracking(True)
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.clicked.connect(self.choose)
        parent.installEventFilter(self)
        self.hide()

    # -- to be given by subclasses --------------------------------------------------------------

    def choose(self, index: Index | None = None) -> None:
        """Enter, or a click on a row (``index``)."""

    def card_width_for(self) -> int:
        return min(self.card_width, max(280, self.width() - 48))

    def card_position(self, width: int) -> QPoint:
        """Where the card's top left goes (default: centred, a seventh down)."""
        return QPoint((self.width() - width) // 2, max(24, self.height() // 7))

    # -- placing --------------------------------------------------------------------------------

    def place(self) -> None:
        """Cover the parent; the card as wide as fits, its list as tall as its rows."""
        parent = self.parentWidget()
        if parent is None:
            return
        self.setGeometry(parent.rect())
        model = self.list.model()
        count = model.rowCount() if model is not None else 0
        rows = max(1, min(self.visible_rows, count))
        self.list.setFixedHeight(rows * self.row_height + 8)
        width = self.card_width_for()
        self.card.setFixedWidth(width)
        self.card.adjustSize()
        self.card.move(self.card_position(width))

    @guard()
    def paintEvent(self, event: QPaintEvent) -> None:
        """The dimmed window and the card's soft shadow, drawn here as a few translucent
        rounded rectangles: a blur effect on the card (``QGraphicsDropShadowEffect``) is
        computed again at every change inside it, ~8 ms a time in software — most of
        the time from a keystroke to the search results shown."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        light, dark = self.dim
        painter.fillRect(self.rect(), QColor(0, 0, 0, dark if is_dark() else light))
        card = self.card.geometry()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 7))
        for i in range(14, 0, -2):
            painter.drawRoundedRect(card.adjusted(-i, -i + 8, i, i + 8), 12 + i, 12 + i)
        painter.end()

    # -- keys and clicks ------------------------------------------------------------------------

    def move_current(self, delta: int) -> None:
        model = self.list.model()
        count = model.rowCount() if model is not None else 0
        if not count or model is None:
            return
        row = self.list.currentIndex().row()
        row = max(0, min(count - 1, (row if row >= 0 else -1) + delta))
        self.list.setCurrentIndex(model.index(row, 0))

    @guard()
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parentWidget() and event.type() == QEvent.Type.Resize:
            if self.isVisible():
                self.place()
            return False
        if watched is self.field and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            page = max(1, self.visible_rows - 1)
            moves = {
                Qt.Key.Key_Down: 1,
                Qt.Key.Key_Up: -1,
                Qt.Key.Key_PageDown: page,
                Qt.Key.Key_PageUp: -page,
            }
            if key in moves:
                self.move_current(moves[Qt.Key(key)])
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.choose()
                return True
            if key == Qt.Key.Key_Escape:
                self.hide()
                return True
        return super().eventFilter(watched, event)

    @guard()
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if not self.card.geometry().contains(event.position().toPoint()):
            self.hide()
            event.accept()
            return
        super().mousePressEvent(event)

    @guard()
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
            return
        super().keyPressEvent(event)


def paint_choice_background(painter: QPainter, option: QStyleOptionViewItem) -> None:
    """A card list row's background: the current row tinted, the hovered one faintly."""
    rect = option.rect.adjusted(6, 2, -6, -2)
    if option.state & QStyle.StateFlag.State_Selected:
        bg = QColor(ACCENT)
        bg.setAlpha(48 if not is_dark() else 90)
    elif option.state & QStyle.StateFlag.State_MouseOver:
        bg = QColor(option.palette.color(option.palette.ColorRole.Highlight))
        bg.setAlpha(18)
    else:
        return
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(bg)
    painter.drawRoundedRect(rect, 8, 8)
