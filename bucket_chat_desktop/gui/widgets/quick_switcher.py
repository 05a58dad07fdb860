"""Ctrl+K: jump to a room by typing a few letters of its name or id.

A card over a dimmed window: a search field and the matching rooms, best match first.
Matching is "all typed characters, in order" (``fcn`` finds *Project Falcon*), ranked so
that a prefix beats a word start beats a scattered match; ties go to the most recent room.
Up/Down/PageUp/PageDown move, Enter opens, Esc or a click outside closes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
)
from PySide6.QtWidgets import (
    QLabel,
    QStyleOptionViewItem,
    QWidget,
)

from ...protocol.unread import unread_label
from ...sync.client import RoomRef
from ..models.rooms_model import RoomRoles
from ..safe import SafeDelegate, guard
from ..style import ACCENT, TRUST_COLORS, WARNING_MARK, initials, key_color
from .card_popup import CardPopup, paint_choice_background

Index = QModelIndex | QPersistentModelIndex

CARD_WIDTH = 520
ROW_H = 48
VISIBLE_ROWS = 7


def match_positions(query: str, text: str) -> list[int] | None:
    """Where the characters of ``query`` occur in order in ``text`` (case-insensitive),
    preferring word starts; None when they do not all occur."""
    q = query.casefold()
    t = text.casefold()
    if not q:
        return []
    # A contiguous run beats scattered letters: take the first prefix/word-start/substring.
    at = t.find(q)
    if at >= 0:
        starts = [i for i in range(len(t)) if _word_start(t, i) and t.startswith(q, i)]
        first = starts[0] if starts else at
        return list(range(first, first + len(q)))
    out: list[int] = []
    i = 0
    for ch in q:
        found = -1
        # Prefer the next word start holding the character, if it comes before any
        # scattered occurrence would leave us stuck.
        j = t.find(ch, i)
        while j >= 0:
            if _word_start(t, j):
                found = j
                break
            j = t.find(ch, j + 1)
        if found < 0 or not _rest_fits(q[len(out) + 1 :], t, found + 1):
            found = t.find(ch, i)
        if found < 0:
            return None
        out.append(found)
        i = found + 1
    return out


def _word_start(t: str, i: int) -> bool:
    return i == 0 or not t[i - 1].isalnum()


def _rest_fits(rest: str, t: str, start: int) -> bool:
    i = start
    for ch in rest:
        i = t.find(ch, i)
        if i < 0:
            return False
        i += 1
    return True


def match_score(query: str, text: str) -> int | None:
    """Higher is better; None means no match."""
    positions = match_positions(query, text)
    if positions is None:
        return None
    if not positions:
        return 0
    t = text.casefold()
    score = 0
    if positions[0] == 0:
        score += 100
    for n, p in enumerate(positions):
        if _word_start(t, p):
            score += 20
        if n and p == positions[n - 1] + 1:
            score += 10  # contiguous
    score -= positions[-1] - positions[0] - len(positions) + 1  # spread
    return score


# What a room's place in the list depends on: a change of anything else keeps its place.
PLACE_ROLES = frozenset(
    {Qt.ItemDataRole.DisplayRole, RoomRoles.Name, RoomRoles.Key, RoomRoles.LastTs}
)

Place = tuple[bool, tuple[int, int, str]]  # matches; then sorted by: best, newest, name


class RoomFilter(QSortFilterProxyModel):
    """Rooms whose name or id holds the typed characters in order, best first.

    Each room is scored once per query (``_place``, kept per source row until the row
    changes): the filter and each of the sort's n·log n comparisons read that, where
    they scored both rooms again at each one (red team rt68: 20,000 rooms took 4.5 s to
    open and 3 s per letter)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._query = ""
        self._places: dict[int, Place] = {}  # source row -> its place for this query
        self.setDynamicSortFilter(True)

    @property
    def query(self) -> str:
        return self._query

    def set_query(self, text: str) -> None:
        self._query = text.strip()
        self._places.clear()
        self.invalidate()
        self.sort(0)

    @guard()
    def setSourceModel(self, model: QAbstractItemModel) -> None:
        # Connected before the proxy's own handlers (Qt calls slots in the order they were
        # connected): the places are forgotten before it filters and sorts changed rows.
        old = self.sourceModel()
        if old is not None:
            for signal in self._forgetting(old):
                signal.disconnect(self._forget_all)
            old.dataChanged.disconnect(self._forget_rows)
        for signal in self._forgetting(model):
            signal.connect(self._forget_all)
        model.dataChanged.connect(self._forget_rows)
        self._places.clear()
        super().setSourceModel(model)

    @staticmethod
    def _forgetting(model: QAbstractItemModel) -> list[Any]:
        """The source's signals after which rows may have other numbers."""
        return [
            model.rowsAboutToBeInserted,
            model.rowsInserted,
            model.rowsAboutToBeRemoved,
            model.rowsRemoved,
            model.rowsAboutToBeMoved,
            model.rowsMoved,
            model.modelAboutToBeReset,
            model.modelReset,
            model.layoutAboutToBeChanged,
            model.layoutChanged,
        ]

    def _forget_all(self, *_args: Any) -> None:
        self._places.clear()

    def _forget_rows(
        self, top: QModelIndex, bottom: QModelIndex, roles: Sequence[int] = ()
    ) -> None:
        if roles and PLACE_ROLES.isdisjoint(roles):
            return  # only what does not move it (online, unread…)
        for row in range(top.row(), bottom.row() + 1):
            self._places.pop(row, None)

    def _score(self, name: str, room_id: str) -> int | None:
        by_name = match_score(self._query, name)
        by_id = match_score(self._query, room_id)
        if by_name is None and by_id is None:
            return None
        # The name is what people read: a name match counts a little more.
        return max(by_name + 5 if by_name is not None else -(10**6), by_id or -(10**6))

    def _place(self, source_row: int) -> Place:
        """Whether the room matches, and its sort key: the best score first, then the
        most recent, then by name. Read from the model once per query and row."""
        place = self._places.get(source_row)
        if place is None:
            index = self.sourceModel().index(source_row, 0)
            name = index.data(RoomRoles.Name)
            key = str(index.data(RoomRoles.Key) or "")
            score = self._score(str(name or ""), RoomRef.from_key(key).room_id)
            last = int(index.data(RoomRoles.LastTs) or 0)
            place = (score is not None, (-(score or 0), -last, str(name).casefold()))
            self._places[source_row] = place
        return place

    @guard()
    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        return self._place(source_row)[0]

    @guard()
    def lessThan(self, left: Index, right: Index) -> bool:
        return self._place(left.row())[1] < self._place(right.row())[1]


class SwitcherDelegate(SafeDelegate):
    """Avatar, name with the matched letters in bold, room id and storage, badges."""

    def __init__(self, proxy: RoomFilter, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.proxy = proxy

    def row_size(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(option.rect.width(), ROW_H)

    def paint_row(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRect(option.rect)
        palette = option.palette
        text = palette.color(palette.ColorRole.Text)
        muted = QColor(text)
        muted.setAlpha(140)
        paint_choice_background(painter, option)
        name = str(index.data(RoomRoles.Name) or "")
        key = str(index.data(RoomRoles.Key) or "")
        room_id = RoomRef.from_key(key).room_id
        avatar = QRect(rect.left() + 16, rect.top() + (ROW_H - 30) // 2, 30, 30)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(key_color(key))
        painter.drawRoundedRect(avatar, 8, 8)
        bold = QFont(option.font)
        bold.setBold(True)
        small_bold = QFont(bold)
        small_bold.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.85))
        painter.setFont(small_bold)
        painter.setPen(QColor("white"))
        painter.drawText(avatar, Qt.AlignmentFlag.AlignCenter, initials(name))

        x = avatar.right() + 12
        right = rect.right() - 16
        unread = int(index.data(RoomRoles.Unread) or 0)
        findings = int(index.data(RoomRoles.Findings) or 0)
        if unread:
            label = unread_label(unread)
            fm = QFontMetrics(small_bold)
            w = max(20, fm.horizontalAdvance(label) + 12)
            badge = QRect(right - w, rect.top() + (ROW_H - 18) // 2, w, 18)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#8a8f98" if index.data(RoomRoles.Muted) else ACCENT))
            painter.drawRoundedRect(badge, 9, 9)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)
            right = badge.left() - 8
        if findings:
            painter.setFont(bold)
            painter.setPen(QColor(TRUST_COLORS["key-changed"]))
            warn = QRect(right - 18, rect.top(), 18, ROW_H)
            painter.drawText(warn, Qt.AlignmentFlag.AlignCenter, "⚠")
            right = warn.left() - 6

        # name: matched characters bold
        top = rect.top() + 6
        if index.data(RoomRoles.NameWarning):  # it looks like another room's: its id below
            painter.setFont(bold)
            painter.setPen(QColor(TRUST_COLORS["key-changed"]))
            mark = f"{WARNING_MARK} "
            painter.drawText(x, top + QFontMetrics(bold).ascent(), mark)
            x += QFontMetrics(bold).horizontalAdvance(mark)
        positions = set(match_positions(self.proxy.query, name) or [])
        normal = QFont(option.font)
        cx = x
        limit = right
        for i, ch in enumerate(name):
            font = bold if i in positions else normal
            fm = QFontMetrics(font)
            w = fm.horizontalAdvance(ch)
            if cx + w > limit - fm.horizontalAdvance("…"):
                painter.setFont(normal)
                painter.setPen(text)
                painter.drawText(cx, top + fm.ascent(), "…")
                break
            painter.setFont(font)
            painter.setPen(QColor(ACCENT) if i in positions else text)
            painter.drawText(cx, top + fm.ascent(), ch)
            cx += w
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.88))
        painter.setFont(small)
        painter.setPen(muted)
        detail = f"{room_id} · {index.data(RoomRoles.StorageName) or ''}"
        if not index.data(RoomRoles.Online):
            detail += " · offline"
        sfm = QFontMetrics(small)
        detail = sfm.elidedText(detail, Qt.TextElideMode.ElideRight, max(10, right - x))
        painter.drawText(x, rect.top() + ROW_H - 8 - sfm.descent(), detail)
        painter.restore()


class QuickSwitcher(CardPopup):
    """Covers its parent window; the card in the middle holds the search and the list."""

    room_chosen = Signal(str)  # room key
    visible_rows = VISIBLE_ROWS
    row_height = ROW_H
    card_width = CARD_WIDTH

    def __init__(self, rooms: Any, parent: QWidget) -> None:
        super().__init__(parent, "quickSwitcher")
        self.proxy = RoomFilter(self)
        self.proxy.setSourceModel(rooms)
        self.search = self.field
        self.search.setPlaceholderText("Jump to a room…")
        self.search.textChanged.connect(self._on_text)
        self.layout_.addWidget(self.search)
        self.list.setModel(self.proxy)
        self.list.setItemDelegate(SwitcherDelegate(self.proxy, self.list))
        self.layout_.addWidget(self.list)
        self.empty = QLabel("No room matches.")
        self.empty.setObjectName("hint")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.layout_.addWidget(self.empty)
        self.hint = QLabel("↑↓ to move · Enter to open · Esc to close")
        self.hint.setObjectName("hint")
        self.layout_.addWidget(self.hint)
        self.proxy.modelReset.connect(self._after_filter)
        self.proxy.layoutChanged.connect(self._after_filter)
        self.proxy.rowsInserted.connect(self._after_filter)
        self.proxy.rowsRemoved.connect(self._after_filter)

    # -- showing ---------------------------------------------------------------------------------

    def open(self) -> None:
        self.search.clear()
        self.proxy.set_query("")
        self.place()
        self.show()
        self.raise_()
        self.search.setFocus(Qt.FocusReason.PopupFocusReason)
        self._after_filter()

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.open()

    # -- behaviour -------------------------------------------------------------------------------

    def _on_text(self, text: str) -> None:
        self.proxy.set_query(text)
        self._after_filter()
        if self.proxy.rowCount():  # after typing, Enter opens the best match
            self.list.setCurrentIndex(self.proxy.index(0, 0))

    def _after_filter(self, *_args: Any) -> None:
        count = self.proxy.rowCount()
        self.empty.setVisible(count == 0)
        self.list.setVisible(count > 0)
        if count and not self.list.currentIndex().isValid():
            self.list.setCurrentIndex(self.proxy.index(0, 0))
        if self.isVisible():
            self.place()

    def choose(self, index: Index | None = None) -> None:
        index = index if index is not None and index.isValid() else self.list.currentIndex()
        if not index.isValid():
            return
        key = str(index.data(RoomRoles.Key))
        self.hide()
        self.room_chosen.emit(key)

    def visible_keys(self) -> Sequence[str]:
        return [
            str(self.proxy.index(r, 0).data(RoomRoles.Key)) for r in range(self.proxy.rowCount())
        ]
