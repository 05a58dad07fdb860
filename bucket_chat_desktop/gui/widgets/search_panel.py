"""Ctrl+F / Ctrl+Shift+F: find messages as you type.

A card over the open room (the window dimmed behind it) holding a search field and the
messages found, newest first: room, sender (display name and id), date, trust state,
and a snippet with the matches highlighted. Up/Down/PageUp/PageDown move, Enter or a
click shows the message in its room, Esc or a click outside closes.

The panel only shows: typing is debounced (``DEBOUNCE_MS``) and then ``query_changed``
is emitted; whoever owns the panel runs the search off the GUI thread and hands the
frozen results to ``show_results``. Every string of a result came from storage: each
piece of a snippet is made safe on its own (``inline_safe``) and the highlight is drawn
by the delegate around the pieces the index marked, so no text can pose as a match.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    QTimer,
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

from ... import timestamps
from ...protocol.audit import on_trial
from ...protocol.untrusted_text import (
    display_name_safe,
    html_escape,
    inline_safe,
    one_line,
    shown_id,
)
from ...sync.client import SearchHit
from ..safe import SafeDelegate, guard
from ..style import (
    ACCENT,
    NOT_FINAL,
    REPEATED_ID_NOTE,
    REPEATED_ID_SHORT,
    TRUST_COLORS,
    TRUST_LABELS,
    TRUST_SYMBOLS,
    WARNING_MARK,
    is_dark,
)
from .card_popup import CardPopup, paint_choice_background

Index = QModelIndex | QPersistentModelIndex

DEBOUNCE_MS = 150  # typing pauses this long before a search runs
# A result's short word for a message that arrived long after its date (``ShownHit.late``:
# its tip has the row's whole sentence)
LATE_SHORT = "arrived late"
LATE_EDIT_SHORT = "edit arrived late"  # the edit a hit was found through (``late_edit``)
CARD_WIDTH = 680
ROW_H = 56
VISIBLE_ROWS = 8


@dataclass(frozen=True, slots=True)
class ShownHit:
    """A search hit with what the GUI knows about it: the room's name and the sender's
    display name (both untrusted: made safe where drawn), the room's key, and why the
    sender's id (or the name it goes by) may imitate another's, as the timeline says it
    (``Names.warning``; None: no reason). ``late``: what the message's row says when the
    app saw it arrive long after its date ("Arrived …, dated …: sent or delivered long
    after its date"), None otherwise: a result shows the date its sender chose.
    ``late_edit``: for a hit found through an edit's text, what Previous versions says
    beside that edit when it arrived long after its date ("This edit arrived …")."""

    hit: SearchHit
    room_key: str
    room_name: str
    sender_name: str
    sender_warning: str | None = None
    late: str | None = None
    late_edit: str | None = None


def sender_text(shown: ShownHit) -> str:
    """The sender as a result names them: display name and real id, after a ⚠ when the
    id may imitate another's (as the timeline marks it)."""
    name = display_name_safe(shown.sender_name, 48)
    who = shown_id(shown.hit.sender_id)
    text = f"{name} ({who})" if name and name != who else who
    return f"{WARNING_MARK} {text}" if shown.sender_warning else text


def tooltip_html(shown: ShownHit) -> str:
    """A result's tip: its trust state and why, the sender's real id and why it is
    marked. Rich text (Qt would guess so of a plain string holding anything that looks
    like markup, and every piece here came from storage): each piece escaped."""
    hit = shown.hit
    label = _verdict(hit)[1]
    warning = (
        f"<br>{WARNING_MARK} {html_escape(one_line(shown.sender_warning, 600))}"
        if shown.sender_warning
        else ""
    )
    if hit.copy is not None:
        warning += f"<br>{WARNING_MARK} {html_escape(REPEATED_ID_NOTE)}"
    if shown.late:
        warning += f"<br>{WARNING_MARK} {html_escape(shown.late)}"
    if shown.late_edit:
        warning += f"<br>{WARNING_MARK} {html_escape(shown.late_edit)}"
    return (
        f"<b>{html_escape(label)}</b><br>{html_escape(one_line(hit.trust_reason, 600))}"
        f"<br>Sender: {html_escape(shown_id(hit.sender_id))}{warning}"
    )


def _verdict(hit: SearchHit) -> tuple[str, str]:
    """A hit's verdict as its row's badge has it: the state its colour and symbol are
    of, and its words. One verified only on trial while older history loads
    (``audit.on_trial``) is not final, as its row's ring says."""
    state = hit.trust.value if hit.trust is not None else ""
    if on_trial(hit.trust, hit.trust_reason):
        return "", NOT_FINAL
    return state, TRUST_LABELS.get(state, state) if state else "Not checked yet"


class HitRoles(enum.IntEnum):
    Hit = Qt.ItemDataRole.UserRole + 1  # the ShownHit
    RoomKey = enum.auto()
    EventId = enum.auto()


class SearchResultsModel(QAbstractListModel):
    """The hits of the latest search (a new search replaces them: a reset), and the older
    ones paged in under them as the list is scrolled to its end (appended)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[ShownHit] = []

    @guard(0)
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    @guard(None)
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return inline_safe(row.hit.snippet.text)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip_html(row)
        if role == HitRoles.Hit:
            return row
        if role == HitRoles.RoomKey:
            return row.room_key
        if role == HitRoles.EventId:
            return row.hit.event_id
        return None

    def set_hits(self, rows: Sequence[ShownHit]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def add_hits(self, rows: Sequence[ShownHit]) -> None:
        if not rows:
            return
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(rows) - 1)
        self._rows.extend(rows)
        self.endInsertRows()

    def hit(self, row: int) -> ShownHit:
        return self._rows[row]


class SearchDelegate(SafeDelegate):
    """Two lines: room · sender (id) · date with the trust state on the right; then the
    snippet, its matches on a highlight."""

    def row_size(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(option.rect.width(), ROW_H)

    def paint_row(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        shown = index.data(HitRoles.Hit)
        if not isinstance(shown, ShownHit):
            return
        hit = shown.hit
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRect(option.rect)
        palette = option.palette
        text = palette.color(palette.ColorRole.Text)
        muted = QColor(text)
        muted.setAlpha(150)
        paint_choice_background(painter, option)
        left, right = rect.left() + 18, rect.right() - 18
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.88))
        sfm = QFontMetrics(small)
        bold = QFont(small)
        bold.setBold(True)
        top = rect.top() + 7

        # trust state, right-aligned
        state, word = _verdict(hit)
        label = f"{TRUST_SYMBOLS.get(state, '?')} {word}"
        painter.setFont(small)
        painter.setPen(QColor(TRUST_COLORS.get(state, TRUST_COLORS[""])))
        width = sfm.horizontalAdvance(label)
        painter.drawText(right - width, top + sfm.ascent(), label)
        right_of_header = right - width - 12
        # what the text is (the app's words, never cut: beside the trust state)
        words = (["edited"] if hit.edited else []) + (
            ["an earlier version"] if hit.superseded else []
        )
        if hit.copy is not None:  # as its row says (REPEATED_ID_NOTE), in short
            words.append(f"{WARNING_MARK} {REPEATED_ID_SHORT}")
        if shown.late:  # its date is not when it came: as its row says, in short
            words.append(f"{WARNING_MARK} {LATE_SHORT}")
        if shown.late_edit:  # nor the edit's, whose text was found
            words.append(f"{WARNING_MARK} {LATE_EDIT_SHORT}")
        if words:
            note = " · ".join(words)
            note_w = sfm.horizontalAdvance(note)
            warn = hit.copy is not None or bool(shown.late) or bool(shown.late_edit)
            painter.setPen(QColor(TRUST_COLORS["key-changed"]) if warn else muted)
            painter.drawText(right_of_header - note_w, top + sfm.ascent(), note)
            right_of_header -= note_w + 12

        # room · sender (id) · date
        room = display_name_safe(shown.room_name, 48) or shown_id(hit.room_id)
        x = left
        painter.setFont(bold)
        painter.setPen(text)
        bfm = QFontMetrics(bold)
        room_text = bfm.elidedText(room, Qt.TextElideMode.ElideRight, (right_of_header - x) // 3)
        painter.drawText(x, top + bfm.ascent(), room_text)
        x += bfm.horizontalAdvance(room_text)
        painter.setFont(small)
        painter.setPen(muted)
        self._paint_sender(painter, shown, QRect(x, top, max(0, right_of_header - x), sfm.height()))

        # snippet, matches highlighted
        font = QFont(option.font)
        fm = QFontMetrics(font)
        baseline = rect.bottom() - 9 - fm.descent()
        x = left
        limit = right
        painter.setFont(font)
        pieces = [("…", False)] if hit.snippet.cut_before else []
        pieces += [(inline_safe(t), m) for t, m in hit.snippet.parts()]
        highlight = QColor(ACCENT)
        highlight.setAlpha(70 if not is_dark() else 110)
        for i, (piece, matched) in enumerate(pieces):
            last = i == len(pieces) - 1 and not hit.snippet.cut_after
            room_left = limit - x - (0 if last else fm.horizontalAdvance("…"))
            shown_piece = piece
            if fm.horizontalAdvance(piece) > room_left:
                shown_piece = fm.elidedText(piece, Qt.TextElideMode.ElideRight, max(0, room_left))
            w = fm.horizontalAdvance(shown_piece)
            if matched and w:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(highlight)
                box = QRect(x - 1, baseline - fm.ascent(), w + 2, fm.height())
                painter.drawRoundedRect(box, 3, 3)
            painter.setPen(text)
            painter.drawText(x, baseline, shown_piece)
            x += w
            if shown_piece != piece:
                return
        if hit.snippet.cut_after and x + fm.horizontalAdvance("…") <= limit:
            painter.setPen(muted)
            painter.drawText(x, baseline, "…")

    @staticmethod
    def _paint_sender(painter: QPainter, shown: ShownHit, line: QRect) -> None:
        """`` · [⚠] name (id) · date`` in ``line``, as the timeline's header draws a
        sender: in separate pieces, the name on its own and at most 30% of the line, the
        id left to right and given at least 40% of it (its end kept), the date after.
        One string elided in its middle lost the whole id to a long name when the line
        ended in "· edited · an earlier version" (now drawn beside the trust state), and
        a right-to-left name turned the line around (the date before the sender, the id
        before the name)."""
        hit = shown.hit
        fm = QFontMetrics(painter.font())
        muted = QColor(painter.pen().color())  # the caller's pen
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        ltr = flags | int(Qt.TextFlag.TextForceLeftToRight)
        x, right = line.left(), line.right()

        def piece(text: str, width: int, how: int, color: QColor) -> None:
            nonlocal x
            if width <= 0 or x > right:
                return
            painter.setPen(color)
            painter.drawText(QRect(x, line.top(), width, line.height()), how, text)
            x += width

        dot = "  ·  "
        piece(dot, fm.horizontalAdvance(dot), ltr, muted)
        if shown.sender_warning:  # the mark in the warning colour, as the timeline's
            mark = f"{WARNING_MARK} "
            piece(mark, fm.horizontalAdvance(mark), ltr, QColor(TRUST_COLORS["key-changed"]))
        avail = max(0, right - x)
        name = display_name_safe(shown.sender_name, 48)
        ident = shown_id(hit.sender_id)
        if name == ident:
            name = ""
        label = f"({ident})" if name else ident
        tail = f"{dot}{timestamps.full(hit.timestamp_ms)}"
        if name:
            name = fm.elidedText(name, Qt.TextElideMode.ElideRight, avail * 3 // 10)
            piece(name, fm.horizontalAdvance(name) + 1, flags, muted)
            piece(" ", fm.horizontalAdvance(" "), ltr, muted)
        room_left = max(0, right - x)
        id_w = min(
            fm.horizontalAdvance(label) + 1,
            max(avail * 2 // 5, room_left - fm.horizontalAdvance(tail) - 1),
        )
        label = fm.elidedText(label, Qt.TextElideMode.ElideMiddle, id_w)
        piece(label, fm.horizontalAdvance(label) + 1, ltr, muted)
        tail = fm.elidedText(tail, Qt.TextElideMode.ElideRight, max(0, right - x))
        piece(tail, fm.horizontalAdvance(tail) + 1, ltr, muted)


class SearchPanel(CardPopup):
    """Covers its parent window; the card over the room area (``anchor``) holds the
    field and the results. ``open(scope_label, room_key)`` shows it; ``room_key`` is
    None for a search everywhere."""

    query_changed = Signal(str, str)  # text, room key ("" for everywhere)
    # the same search's older results are wanted: the list was scrolled to its end
    older_wanted = Signal(str, str)  # text, room key ("" for everywhere)
    hit_chosen = Signal(str, str, str, int)  # room key, event id, the hit's path and line
    visible_rows = VISIBLE_ROWS
    row_height = ROW_H
    card_width = CARD_WIDTH
    dim = (70, 120)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent, "search", "QLabel#scope { color: MUTED; padding: 10px 16px 0; }")
        self.room_key: str | None = None
        self._choose_first = False  # Enter came before the results: choose the first
        self._more = False  # the results shown have older ones: asked for at the list's end
        self._asked_older = False  # asked, and not answered yet
        self._filling = False  # results are going into the list (``show_results``)
        self._said: tuple[tuple[str, ...], int] = ((), 0)  # the last problems and backlog
        self.anchor: QWidget | None = None  # the card is placed over this widget
        self.model = SearchResultsModel(self)
        self.scope = QLabel()
        self.scope.setObjectName("scope")
        self.scope.setTextFormat(Qt.TextFormat.PlainText)  # holds a room's name
        self.layout_.addWidget(self.scope)
        self.field.setPlaceholderText("Search messages…")
        self.field.textChanged.connect(self._on_text)
        self.layout_.addWidget(self.field)
        self.list.setModel(self.model)
        self.list.setItemDelegate(SearchDelegate(self.list))
        # Older results come when the end of the list is reached, by scrolling or by
        # moving the current row there (↓, Page Down, End).
        self.list.verticalScrollBar().valueChanged.connect(lambda _v: self._near_end())
        self.list.selectionModel().currentChanged.connect(lambda _c, _p: self._near_end())
        self.layout_.addWidget(self.list)
        self.status = QLabel()
        self.status.setObjectName("hint")
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # may quote an error
        self.status.setWordWrap(True)
        self.layout_.addWidget(self.status)
        self.hint = QLabel("↑↓ to move · Enter to show in the room · Esc to close")
        self.hint.setObjectName("hint")
        self.layout_.addWidget(self.hint)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self._fire)

    # -- showing ---------------------------------------------------------------------------------

    def open(self, scope_label: str, room_key: str | None) -> None:
        """Show the panel for a search in one room (``room_key``) or everywhere; the text
        typed last is kept and selected, and searched again in the new scope."""
        changed = room_key != self.room_key
        self.room_key = room_key
        self._choose_first = False
        self.scope.setText(scope_label)
        self.place()
        self.show()
        self.raise_()
        self.field.setFocus(Qt.FocusReason.PopupFocusReason)
        self.field.selectAll()
        if changed:
            self.model.set_hits([])
            self._more = self._asked_older = False
            if self.field.text().strip():
                self._fire()
        self._after_results()
        # the same search, reopened: what was not asked for while closed is asked now
        self._near_end()

    def _area(self) -> QRect:
        parent = self.parentWidget()
        if parent is None or self.anchor is None or not self.anchor.isVisible():
            return QRect(self.rect())
        top_left = self.anchor.mapTo(parent, self.anchor.rect().topLeft())
        return QRect(top_left, self.anchor.size())

    def card_width_for(self) -> int:
        return min(self.card_width, max(300, self._area().width() - 32))

    def card_position(self, width: int) -> QPoint:
        """Over the room area (``anchor``): centred, near its top."""
        area = self._area()
        x = area.left() + (area.width() - width) // 2
        return QPoint(max(8, min(x, self.width() - width - 8)), area.top() + 12)

    # -- searching -------------------------------------------------------------------------------

    def _on_text(self, _text: str) -> None:
        self.timer.start()  # restarts: the search runs once typing pauses

    def _fire(self) -> None:
        self.timer.stop()
        text = self.field.text()
        self._more = self._asked_older = False  # a new search: older pages of the last go
        if not text.strip():
            self._choose_first = False
            self.model.set_hits([])
            self.status.setText("")
            self._after_results()
            return
        self.status.setText("Searching…")
        self.query_changed.emit(text, self.room_key or "")

    def show_results(
        self,
        text: str,
        room_key: str,
        hits: Sequence[ShownHit],
        more: bool,
        problems: Sequence[str],
        backlog: int = 0,
        *,
        older: bool = False,
    ) -> None:
        """The results of a search for ``text`` in ``room_key``'s room ("": everywhere);
        dropped if the field or the scope says something else by now (an older search
        finishing late, or the same text searched before the scope changed). ``more``:
        older results exist; they are asked for (``older_wanted``) when the list is
        scrolled to its end, and come back here with ``older``: added under those shown,
        the current row staying where it is (dropped when not asked for)."""
        if not self.is_current(text, room_key) or (older and not self._asked_older):
            return
        self._asked_older = False
        choose = False
        # The list scrolls and its current row moves while rows come, before its layout
        # has them: nothing is asked for until they are in (``_near_end`` below).
        self._filling = True
        try:
            if older:
                self.model.add_hits(hits)
                if hits and not self.list.currentIndex().isValid():
                    self.list.setCurrentIndex(self.model.index(0, 0))
            else:
                self.model.set_hits(hits)
                if hits:
                    self.list.setCurrentIndex(self.model.index(0, 0))
                choose, self._choose_first = self._choose_first, False
        finally:
            self._filling = False
        self._summarise(more, problems, backlog)
        self._after_results()
        if choose and hits:
            self.choose()
        # a short list that ends in view asks for the next page at once
        self._near_end(rows_changed=True)

    def is_current(self, text: str, room_key: str) -> bool:
        """Whether results for ``text`` in ``room_key`` are for what the panel asks now."""
        return text == self.field.text() and room_key == (self.room_key or "")

    def _summarise(self, more: bool, problems: Sequence[str], backlog: int) -> None:
        self._more = more
        self._said = (tuple(problems), backlog)
        n = self.model.rowCount()
        if not n and more:
            # every match read was hidden (deleted, an edit that does not apply) and the
            # search stopped reading: a member can write that many newer ones on purpose
            first = "No messages shown yet: the newest matches are deleted or edits that do "
            first += "not apply; searching older messages…"
        elif not n:
            first = "No messages found."
        else:
            first = f"{n:,} message{'s' if n != 1 else ''}"
            if more and self._asked_older:
                first += " (the newest) · searching older ones…"
            elif more:
                first += " (the newest: scroll down for older ones)"
        words = [first]
        if backlog:
            words.append(
                f"{backlog:,} part{'s' if backlog != 1 else ''} of what was read "
                "not searchable yet (being indexed)"
            )
        words += [f"Could not search {p}" for p in problems]
        self.status.setText(" · ".join(words))

    def _near_end(self, *, rows_changed: bool = False) -> None:
        """Ask for the next page of older results when the end of the list is in view or
        its last row is the current one, once at a time (the answer comes to
        ``show_results`` with ``older``)."""
        if not self._more or self._asked_older or self._filling or not self.isVisible():
            return
        count = self.model.rowCount()
        if rows_changed:
            self.list.doItemsLayout()  # rows just added: the scroll bar's range is theirs
        bar = self.list.verticalScrollBar()
        current = self.list.currentIndex()
        at_end = (
            count == 0
            or bar.value() >= bar.maximum()
            or (current.isValid() and current.row() >= count - 1)
        )
        if not at_end:
            return
        text = self.field.text()
        if not text.strip():
            return
        self._asked_older = True
        self._summarise(self._more, *self._said)
        self.older_wanted.emit(text, self.room_key or "")

    def _after_results(self) -> None:
        count = self.model.rowCount()
        self.list.setVisible(count > 0)
        self.status.setVisible(bool(self.status.text()))
        if self.isVisible():
            self.place()

    def choose(self, index: Index | None = None) -> None:
        if self.timer.isActive() or self.status.text() == "Searching…":
            # Enter right after typing: the first result is shown once it is in.
            self._choose_first = True
            if self.timer.isActive():
                self._fire()
            return
        index = index if index is not None and index.isValid() else self.list.currentIndex()
        if not index.isValid():
            return
        shown = self.model.hit(index.row())
        self.hide()
        self.hit_chosen.emit(shown.room_key, shown.hit.event_id, shown.hit.path, shown.hit.line)
