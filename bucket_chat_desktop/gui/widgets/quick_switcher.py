"""Ctrl+K: jump to a room by typing a few letters of its name or id.

A card over a dimmed window: a search field and the matching rooms, best match first.
Matching is "all typed characters, in order" (``fcn`` finds *Project Falcon*), ranked so
that a prefix beats a word start beats a scattered match; ties go to the most recent room.
Up/Down/PageUp/PageDown move, Enter opens, Esc or a click outside closes.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractProxyModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QHideEvent,
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

Facts = tuple[str, str, int]  # a room's name, its id and its last activity, as read once
Place = tuple[int, int, str]  # sorted by: best score, newest, name
_UNSCORED = object()


def _no_index(*_args: Any) -> QModelIndex:
    """What a guarded look-up answers when it failed: no index."""
    return QModelIndex()


class RoomFilter(QAbstractProxyModel):
    """Rooms whose name or id holds the typed characters in order, best first.

    A list of its own rather than a ``QSortFilterProxyModel``: that one sorted through
    ``lessThan``, a call into Python at each of its n·log n comparisons (red team rt68:
    20,000 rooms took 0.7 s per letter and 0.9 s to open even with each room scored once).
    Here a query scores each room once and Python's own sort orders the keys; a letter
    typed after the query so far scores only the rooms the query matched (the typed
    characters must all occur in order: a longer query matches fewer rooms). A room's
    name, id and last activity are read from the model once and kept until its row
    changes; a room whose place changed is moved alone (found and put back by bisection),
    and a change that does not move it (unread, online) only repaints it."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._query = ""
        self._facts: dict[int, Facts] = {}  # source row -> what its place is made of
        self._places: dict[int, Place | None] = {}  # source row -> its place for the query
        self._placed: list[tuple[Place, int]] = []  # the matches, in order, with their rows
        self._rows: list[int] = []  # shown row -> source row
        self._at: dict[int, int] = {}  # source row -> shown row
        self._renewing = False  # the source is renumbering its rows: made anew after
        # Only while shown (``set_query`` makes it so, ``rest`` ends it) is the list kept
        # in order: hidden, a room's change costs a fact forgotten, nothing more — the app
        # renames every room at start (20,000 rooms: 52 s of the window's time when each
        # change re-placed a room in a list nobody saw: a review of this stop's change).
        self._active = False

    @property
    def query(self) -> str:
        return self._query

    def set_query(self, text: str) -> None:
        query = text.strip()
        narrower = self._active and bool(self._query) and query.startswith(self._query)
        self._active = True
        candidates = sorted(self._at) if narrower else None
        self._query = query
        self._places.clear()
        self._order(candidates)

    def row_of(self, key: str) -> int | None:
        """Where the room of ``key`` is shown, if it is."""
        for row, source in enumerate(self._rows):
            if self.sourceModel().index(source, 0).data(RoomRoles.Key) == key:
                return row
        return None

    # -- following the rooms -------------------------------------------------------------------

    @guard()
    def setSourceModel(self, model: QAbstractItemModel) -> None:
        old = self.sourceModel()
        if old is not None:
            for before, after in self._renumbering(old):
                before.disconnect(self._renumbering_starts)
                after.disconnect(self._renumbered)
            old.dataChanged.disconnect(self._data_changed)
        self.beginResetModel()
        super().setSourceModel(model)
        for before, after in self._renumbering(model):
            before.connect(self._renumbering_starts)
            after.connect(self._renumbered)
        model.dataChanged.connect(self._data_changed)
        self._facts.clear()
        self._places.clear()
        self._rows, self._at = [], {}
        self.endResetModel()
        self._order(None)

    @staticmethod
    def _renumbering(model: QAbstractItemModel) -> list[tuple[Any, Any]]:
        """The source's signals before and after which its rows may have other numbers."""
        return [
            (model.rowsAboutToBeInserted, model.rowsInserted),
            (model.rowsAboutToBeRemoved, model.rowsRemoved),
            (model.rowsAboutToBeMoved, model.rowsMoved),
            (model.modelAboutToBeReset, model.modelReset),
            (model.layoutAboutToBeChanged, model.layoutChanged),
        ]

    def rest(self) -> None:
        """Hidden: the list is emptied and not kept in order until the next query."""
        if not self._active:
            return
        self.beginResetModel()
        self._active = False
        self._rows, self._at, self._placed = [], {}, []
        self._places.clear()
        self.endResetModel()

    def _renumbering_starts(self, *_args: Any) -> None:
        """Before the source renumbers its rows: the list is made anew around it, so
        what reads it meanwhile (the chosen room, kept by its key: red team rt81) reads
        the rows under their old numbers, not the source's new ones."""
        if self._active and not self._renewing:
            self._renewing = True
            self.beginResetModel()

    def _renumbered(self, *_args: Any) -> None:
        self._facts.clear()
        self._places.clear()
        if not self._renewing:  # resting: nothing shown, nothing to place
            return
        self._placed = self._scored(None)
        self._rows = [row for _, row in self._placed]
        self._at = {row: n for n, row in enumerate(self._rows)}
        self._renewing = False
        self.endResetModel()

    def _data_changed(
        self, top: QModelIndex, bottom: QModelIndex, roles: Sequence[int] = ()
    ) -> None:
        rows = range(top.row(), bottom.row() + 1)
        if not self._active:  # resting: what is read again is read when next shown
            if not roles or not PLACE_ROLES.isdisjoint(roles):
                for row in rows:
                    self._facts.pop(row, None)
            return
        if not roles or not PLACE_ROLES.isdisjoint(roles):
            moved = []
            for row in rows:
                before = self._facts.get(row)
                if self._read(row) != before:
                    moved.append(row)
            if moved:
                self._move(moved)
        shown = sorted(self._at[r] for r in rows if r in self._at)
        if shown:
            self.dataChanged.emit(self.index(shown[0], 0), self.index(shown[-1], 0), roles)

    # -- the order -------------------------------------------------------------------------------

    def _order(self, candidates: list[int] | None) -> None:
        """Score the rooms (those of ``candidates`` only, when given) and show the matches."""
        self._placed = self._scored(candidates)
        self._show()

    def _scored(self, candidates: list[int] | None) -> list[tuple[Place, int]]:
        """The matches among the rooms (those of ``candidates`` only), in order."""
        model = self.sourceModel()
        pool = range(model.rowCount() if model is not None else 0)
        placed = []
        for row in pool if candidates is None else candidates:
            place = self._place(row)
            if place is not None:
                placed.append((place, row))
        placed.sort()
        return placed

    def _move(self, rows: list[int]) -> None:
        """Put the rooms of ``rows``, whose facts changed, in their new places."""
        placed = self._placed
        for row in rows:
            old = self._places.pop(row, _UNSCORED)
            if old is not _UNSCORED and old is not None:
                at = bisect_left(placed, (old, row))
                if at < len(placed) and placed[at] == (old, row):
                    del placed[at]
            new = self._place(row)
            if new is not None:
                insort(placed, (new, row))
        self._show()

    def _show(self) -> None:
        """Show ``_placed``: the same rooms in another order move (persistent indexes, and
        so the selection, follow their rooms); other rooms make a new list."""
        rows = [row for _, row in self._placed]
        if rows == self._rows:
            return
        at = {row: n for n, row in enumerate(rows)}
        if at.keys() != self._at.keys():
            self.beginResetModel()
            self._rows, self._at = rows, at
            self.endResetModel()
            return
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        after = [self.index(at[self._rows[index.row()]], index.column()) for index in before]
        self._rows, self._at = rows, at
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit()

    def _read(self, source_row: int) -> Facts:
        """What the room's place is made of, read from the model (and kept)."""
        index = self.sourceModel().index(source_row, 0)
        name = str(index.data(RoomRoles.Name) or "")
        key = str(index.data(RoomRoles.Key) or "")
        facts = (name, RoomRef.from_key(key).room_id, int(index.data(RoomRoles.LastTs) or 0))
        self._facts[source_row] = facts
        return facts

    def _score(self, name: str, room_id: str) -> int | None:
        by_name = match_score(self._query, name)
        by_id = match_score(self._query, room_id)
        if by_name is None and by_id is None:
            return None
        # The name is what people read: a name match counts a little more.
        return max(by_name + 5 if by_name is not None else -(10**6), by_id or -(10**6))

    def _place(self, source_row: int) -> Place | None:
        """The room's sort key for the query (None: it does not match): the best score
        first, then the most recent, then by name. Scored once per query and row."""
        place = self._places.get(source_row, _UNSCORED)
        if place is not _UNSCORED:
            return place  # type: ignore[return-value]
        facts = self._facts.get(source_row) or self._read(source_row)
        name, room_id, last = facts
        score = self._score(name, room_id)
        new = None if score is None else (-score, -last, name.casefold())
        self._places[source_row] = new
        return new

    # -- the proxy's side of the model ----------------------------------------------------------

    @guard(_no_index)
    def index(self, row: int, column: int = 0, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        if parent.isValid() or not 0 <= row < len(self._rows) or column != 0:
            return QModelIndex()
        return self.createIndex(row, column)

    @guard(lambda _self, *args: QModelIndex() if args else None)
    def parent(self, *args: Any) -> Any:
        if not args:  # QObject.parent()
            return super().parent()
        return QModelIndex()

    @guard(0)
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    @guard(0)
    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 1

    @guard(_no_index)
    def mapToSource(self, proxy_index: Index) -> QModelIndex:
        model = self.sourceModel()
        if model is None or not proxy_index.isValid() or proxy_index.row() >= len(self._rows):
            return QModelIndex()
        return model.index(self._rows[proxy_index.row()], proxy_index.column())

    @guard(_no_index)
    def mapFromSource(self, source_index: Index) -> QModelIndex:
        if not source_index.isValid():
            return QModelIndex()
        row = self._at.get(source_index.row())
        return QModelIndex() if row is None else self.index(row, source_index.column())


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
    _made = False  # set at the end of ``__init__``
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
        self._kept: str | None = None  # the chosen room's key while the list is made anew
        self._typing = False
        self.proxy.modelAboutToBeReset.connect(self._keep_choice)
        self.proxy.modelReset.connect(self._after_filter)
        self.proxy.layoutChanged.connect(self._after_filter)
        self._made = True

    # -- showing ---------------------------------------------------------------------------------

    def open(self) -> None:
        if self.search.text():
            self.search.clear()  # its textChanged sets the query
        else:
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
        self._typing = True  # the best match is chosen, not the room chosen before
        try:
            self.proxy.set_query(text)
        finally:
            self._typing = False
        if self.proxy.rowCount():  # after typing, Enter opens the best match
            self.list.setCurrentIndex(self.proxy.index(0, 0))

    def _keep_choice(self) -> None:
        current = self.list.currentIndex()
        keep = current.isValid() and not self._typing
        self._kept = str(current.data(RoomRoles.Key)) if keep else None

    @guard()
    def hideEvent(self, event: QHideEvent) -> None:
        if self._made:  # the frame hides itself while it is made, before the list is
            self.proxy.rest()  # hidden: the list is not kept in order (``RoomFilter.rest``)
        super().hideEvent(event)

    def _after_filter(self, *_args: Any) -> None:
        count = self.proxy.rowCount()
        self.empty.setVisible(count == 0)
        self.list.setVisible(count > 0)
        kept, self._kept = self._kept, None
        if count and not self.list.currentIndex().isValid():
            # a room that arrived or left keeps the one chosen (the list was made anew)
            row = self.proxy.row_of(kept) if kept is not None else None
            self.list.setCurrentIndex(self.proxy.index(row or 0, 0))
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
