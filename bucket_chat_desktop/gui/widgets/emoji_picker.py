"""The emoji picker: search by name as you type, browse by group, recent ones first.

One grid: the frequently used (recent picks, then the quick reactions), then every group
in turn; the group buttons scroll to theirs and follow the scrolling.

Keyboard: the search field keeps the focus; typing searches, the arrows (and Page Up/Down,
Home/End with Ctrl) move in the grid, Enter picks the emoji under the cursor (the first
found when none is), Escape closes. Names and aliases come from ``emoji_index`` (the
``emoji`` package's data, offline); the footer names the emoji under the cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .. import emoji_index
from ..emoji_index import Emoji
from ..safe import guard

Index = QModelIndex | QPersistentModelIndex
CELL = 40
COLUMNS = 9
FREQUENT_TAB = "Frequently used"
# The group buttons show one emoji each (the group's name is their tooltip).
TAB_ICONS = {
    FREQUENT_TAB: "🕘",
    "Smileys & people": "😀",
    "Animals & nature": "🌿",
    "Food & drink": "🍕",
    "Activities": "⚽",
    "Travel & places": "✈️",
    "Objects": "💡",
    "Symbols": "🔣",
    "Flags": "🏳️",
}


class EmojiModel(QAbstractListModel):
    """The emoji shown in the grid (display: the emoji; tooltip: its name)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.items: list[Emoji] = []

    def set_items(self, items: Sequence[Emoji]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    @guard(0)
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    @guard(None)
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        item = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item.char
        if role == Qt.ItemDataRole.ToolTipRole:
            return item.name
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return Qt.AlignmentFlag.AlignCenter
        if role == Qt.ItemDataRole.SizeHintRole:
            return QSize(CELL - 2, CELL - 2)  # the whole cell: a tall glyph is not clipped
        if role == Qt.ItemDataRole.UserRole:
            return item
        return None


class EmojiPicker(QFrame):
    """A popup; ``picked`` carries the emoji chosen (the picker then closes)."""

    picked = Signal(str)

    def __init__(self, recent: Sequence[str] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("emojiPicker")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "QToolButton:checked { background: palette(highlight); border-radius: 6px; }"
            " QToolButton { font-size: 14pt; padding: 1px 4px; }"
        )
        self.recent = list(recent)
        self.group = FREQUENT_TAB
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 6)
        layout.setSpacing(6)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search emoji by name (e.g. thumbs up)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._refresh)
        self.search.installEventFilter(self)
        layout.addWidget(self.search)

        tabs = QHBoxLayout()
        tabs.setSpacing(2)
        self.tab_group = QButtonGroup(self)
        self.tab_group.setExclusive(True)
        self.tabs: dict[str, QToolButton] = {}
        for name in (FREQUENT_TAB, *emoji_index.GROUP_NAMES):
            button = QToolButton()
            button.setText(TAB_ICONS.get(name, name[:1]))
            button.setToolTip(name)
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda _=False, n=name: self.show_group(n))
            self.tab_group.addButton(button)
            self.tabs[name] = button
            tabs.addWidget(button)
        tabs.addStretch(1)
        layout.addLayout(tabs)

        self.model = EmojiModel(self)
        self.grid = QListView()
        self.grid.setModel(self.model)
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setUniformItemSizes(True)
        self.grid.setGridSize(QSize(CELL, CELL))
        self.grid.setWrapping(True)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.grid.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the search field keeps it
        self.grid.setMouseTracking(True)
        font = QFont(self.font())
        font.setPointSizeF(17.0)  # a 40 px cell holds its glyph whole
        self.grid.setFont(font)
        self.grid.setMinimumSize(QSize(COLUMNS * CELL + 24, 6 * CELL + 4))
        self.grid.clicked.connect(self._pick_index)
        self.grid.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self._starts: dict[str, int] = {}  # group -> its first row in the grid
        self._scrolling = False
        self.grid.entered.connect(self._show_name)
        self.grid.selectionModel().currentChanged.connect(lambda cur, _p: self._show_name(cur))
        layout.addWidget(self.grid, 1)

        self.footer = QLabel()
        self.footer.setObjectName("emojiName")
        self.footer.setTextFormat(Qt.TextFormat.PlainText)
        self.footer.setMinimumHeight(self.fontMetrics().height() + 4)
        layout.addWidget(self.footer)
        self._refresh()
        self.tabs[FREQUENT_TAB].setChecked(True)

    # -- what is shown ------------------------------------------------------------------------

    def frequent(self) -> list[Emoji]:
        """Recent picks first, then the quick reactions (each once)."""
        out: list[Emoji] = []
        seen: set[str] = set()
        for char in (*self.recent, *emoji_index.FREQUENT):
            entry = emoji_index.lookup(char)
            if entry is not None and entry.char not in seen:
                seen.add(entry.char)
                out.append(entry)
        return out

    def show_group(self, name: str) -> None:
        """Scroll the grid to a group (the search is cleared first)."""
        if self.search.text():
            self.search.clear()  # _refresh runs through textChanged
        self.group = name
        self.tabs[name].setChecked(True)
        start = self._starts.get(name)
        if start is not None and start < self.model.rowCount():
            index = self.model.index(start)
            self._scrolling = True  # the scrolling below must not pick another group
            try:
                self.grid.setCurrentIndex(index)
                self.grid.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtTop)
            finally:
                self._scrolling = False

    def _refresh(self, *_args: Any) -> None:
        """The grid: what the search finds, or (no search) the frequent ones followed by
        every group, one after the other (the group buttons scroll to theirs)."""
        query = self.search.text().strip()
        self._starts = {}
        if query:
            items = emoji_index.search(query)
        else:
            items = self.frequent()
            self._starts[FREQUENT_TAB] = 0
            for e in emoji_index.all_emoji():
                self._starts.setdefault(e.group, len(items))
                items.append(e)
        for button in self.tabs.values():
            button.setEnabled(not query)
        self.model.set_items(items)
        if items:
            self.grid.setCurrentIndex(self.model.index(0))
            self.grid.scrollToTop()
        else:
            self.footer.setText("No emoji by that name" if query else "")

    def _on_scrolled(self, _value: int) -> None:
        """The group button of what is at the top of the grid is the checked one."""
        if self._scrolling or not self._starts:
            return
        top = self.grid.indexAt(QPoint(CELL // 2, CELL // 2))
        if not top.isValid():
            return
        # A group starting on the top line is the one shown (the first, when two do);
        # otherwise the group the top line is part of.
        first = top.row()
        columns = max(1, self.grid.viewport().width() // CELL)
        starting = [g for g, start in self._starts.items() if first <= start < first + columns]
        if starting:
            name = min(starting, key=lambda g: self._starts[g])
        else:
            name = max(
                ((start, group) for group, start in self._starts.items() if start <= first),
                default=(0, FREQUENT_TAB),
            )[1]
        self.group = name
        self.tabs[name].setChecked(True)

    def _show_name(self, index: Index) -> None:
        item = index.data(Qt.ItemDataRole.UserRole) if index.isValid() else None
        if isinstance(item, Emoji):
            also = (
                f"  ({', '.join(':' + a + ':' for a in item.aliases[:2])})" if item.aliases else ""
            )
            self.footer.setText(f"{item.char}  {item.name}{also}")

    # -- choosing ------------------------------------------------------------------------------

    def _pick_index(self, index: Index) -> None:
        item = index.data(Qt.ItemDataRole.UserRole) if index.isValid() else None
        if isinstance(item, Emoji):
            self.pick(item.char)

    def pick(self, char: str) -> None:
        self.recent = emoji_index.recent_list(self.recent, char)
        self.close()
        self.picked.emit(char)

    def popup_at(self, global_pos: Any) -> None:
        """Show below-left of ``global_pos``, kept on the screen, the search focused."""
        self.adjustSize()
        screen = self.screen().availableGeometry()
        x = min(max(screen.left(), global_pos.x() - self.width()), screen.right() - self.width())
        y = global_pos.y()
        if y + self.height() > screen.bottom():
            y = max(screen.top(), global_pos.y() - self.height())
        self.move(x, y)
        self.show()
        self.search.setFocus()

    @guard()
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                current = self.grid.currentIndex()
                if not current.isValid() and self.model.rowCount():
                    current = self.model.index(0)
                self._pick_index(current)
                return True
            if key == Qt.Key.Key_Escape:
                self.close()
                return True
            moves = (
                Qt.Key.Key_Up,
                Qt.Key.Key_Down,
                Qt.Key.Key_PageUp,
                Qt.Key.Key_PageDown,
            )
            sideways = (Qt.Key.Key_Left, Qt.Key.Key_Right)
            ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
            if key in moves or (key in sideways and not self.search.text()):
                self._move(event)
                return True
            if ctrl and key in (Qt.Key.Key_Home, Qt.Key.Key_End):
                self._move(event)
                return True
        return super().eventFilter(watched, event)

    def _move(self, event: QKeyEvent) -> None:
        """Arrows typed in the search field move the grid's cursor."""
        self.grid.keyPressEvent(
            QKeyEvent(event.type(), event.key(), Qt.KeyboardModifier.NoModifier)
        )

    @guard()
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            return
        super().keyPressEvent(event)
