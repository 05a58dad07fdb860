"""``@`` completion in the composer: typing ``@`` lists the room's members, filtered as
the user types; Up/Down choose, Enter or Tab insert, Escape closes.

What is inserted is plain text any client reads: ``@<display name>`` when that name is
shown exactly as written and no other member goes by it, else ``@<user id>``. The
controller turns mentions in the text into the message's ``mentions`` field
(``protocol/mentions.py``). Names and ids come from storage: the list shows each name
cleaned (``display_name_safe``) with the real id beside it, always.

An id that may imitate another member's (the room's ``Names.warning``, the rule that marks
their rows) is marked as the timeline marks it: ⚠ before the entry, in the warning colour,
and the warning in its tooltip. Marked members are listed after every unmarked one, so
the entry chosen when the list opens is never an impostor when anyone else matches:
"@Car" then Enter mentions Carol, not "саrol" (Cyrillic с and а) calling themself Carol.

A room may have tens of thousands of members: they are indexed once per roster
(``MemberIndex``: names cleaned and casefolded, sorted), and a keystroke only filters and
ranks them, asking the look-alike rule once about each member it gets to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QBrush, QColor, QKeyEvent, QTextCursor
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QPlainTextEdit

from ...protocol.room_state import Names
from ...protocol.untrusted_text import display_name_safe, html_escape, one_line, shown_id
from ..safe import guard
from ..style import TRUST_COLORS, WARNING_MARK

MAX_SHOWN = 8  # members listed at once
MAX_QUERY = 48  # characters after "@" still read as a name being typed

RoomNames = Callable[[], Names]  # the room's display names and ids, as last received


def mention_query(text: str, cursor: int) -> tuple[int, str] | None:
    """The ``@`` being completed in ``text`` at ``cursor``: (position of the ``@``, what
    follows it up to the cursor), or None. The ``@`` starts a word (nothing but space or
    punctuation before it) and what follows holds no line break; a space is allowed (names
    have them), at most ``MAX_QUERY`` characters."""
    start = text.rfind("@", max(0, cursor - MAX_QUERY - 1), cursor)
    if start < 0:
        return None
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_@"):
        return None
    query = text[start + 1 : cursor]
    if "\n" in query or "\u2029" in query or query.startswith(" ") or "  " in query:
        return None
    return start, query


@dataclass(frozen=True, slots=True)
class _Entry:
    user_id: str
    name: str  # as the room has it
    shown: str  # cleaned (``display_name_safe``), "" for none
    folded_name: str  # ``shown`` casefolded
    folded_id: str


class MemberIndex:
    """A room's members as the ``@`` list searches them, made once per ``Names`` (it is
    immutable: a new roster is a new object): each name cleaned and casefolded once, the
    members sorted by what is shown for them, then id. A keystroke only filters and ranks;
    the look-alike rule (``Names.warning``) is asked about a member at most once, and
    only for those the list gets as far as (``matches``)."""

    def __init__(self, names: Names) -> None:
        self.names = names
        entries = []
        for user_id, name in names.members():
            shown = display_name_safe(name)
            entries.append(_Entry(user_id, name, shown, shown.casefold(), user_id.casefold()))
        entries.sort(key=lambda e: (e.folded_name or e.folded_id, e.user_id))
        self.entries: tuple[_Entry, ...] = tuple(entries)
        self._warnings: dict[str, str | None] = {}
        # the last query and the entries it found: a query that extends it looks there
        self._last: tuple[str, list[int]] = ("", list(range(len(entries))))

    def warning(self, user_id: str) -> str | None:
        """Why the id may imitate another member's (``Names.warning``), asked once."""
        if user_id not in self._warnings:
            self._warnings[user_id] = self.names.warning(user_id)
        return self._warnings[user_id]

    def matches(self, query: str, leave_out: str = "") -> list[_Entry]:
        """Members whose name or id contains ``query`` (case-insensitive): those whose id
        the look-alike rule marks after all others, then those starting with the query
        first, then by name; at most ``MAX_SHOWN``. Never ``leave_out`` (the user)."""
        q = query.casefold()
        entries = self.entries
        last, found = self._last
        pool: Iterable[int] = found if q.startswith(last) else range(len(entries))
        hits = [i for i in pool if q in entries[i].folded_name or q in entries[i].folded_id]
        self._last = (q, hits)
        starting = [
            i
            for i in hits
            if entries[i].folded_name.startswith(q) or entries[i].folded_id.startswith(q)
        ]
        starts = set(starting)
        plain: list[_Entry] = []
        marked: list[_Entry] = []
        for i in (*starting, *(i for i in hits if i not in starts)):
            entry = entries[i]
            if entry.user_id == leave_out:
                continue
            (marked if self.warning(entry.user_id) else plain).append(entry)
            if len(plain) >= MAX_SHOWN:
                break
        return (plain + marked)[:MAX_SHOWN]

    def inserted(self, user_id: str, name: str) -> str:
        """What choosing a member inserts (without the ``@``): the display name when it is
        shown as written and names this member alone (``MentionTargets``: the rule the
        sent message's ``mentions`` field is made by), else the user id."""
        plain = name and display_name_safe(name) == name
        if plain and self.names.mention_targets().owner(name) == user_id:
            return name
        return user_id


class MentionPopup(QListWidget):
    """The completion list for one composer. It never takes the focus: the composer
    forwards the keys it uses (``handle_key``)."""

    def __init__(self, editor: QPlainTextEdit, names: RoomNames) -> None:
        super().__init__(editor.window())
        self.editor = editor
        self.names = names  # the room's members, and its look-alike rule (``warning``)
        self._index: MemberIndex | None = None  # for the ``Names`` last listed
        self.own_user = ""  # left out of the list
        self._dismissed: int | None = None  # "@" position the user closed the list for
        self._start = -1
        # (text, cursor, anchor) the list was last made for: a keystroke emits both
        # textChanged and cursorPositionChanged, the second finds it answered already
        self._answered: tuple[str, int, int] | None = None
        self.setObjectName("mentions")
        self.setStyleSheet(
            "QListWidget#mentions { border: 1px solid palette(mid); border-radius: 6px;"
            " padding: 2px; } QListWidget#mentions::item { padding: 3px 8px; }"
        )
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setUniformItemSizes(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.itemClicked.connect(lambda _item: self.accept())
        self.hide()
        editor.textChanged.connect(self.refresh)
        editor.cursorPositionChanged.connect(self.refresh)
        editor.installEventFilter(self)

    # -- following the text ------------------------------------------------------------------

    def index(self) -> MemberIndex:
        """The room's members as searched, made again only when its ``Names`` changed."""
        names = self.names()
        if self._index is None or self._index.names is not names:
            self._index = MemberIndex(names)
        return self._index

    @guard()
    def refresh(self) -> None:
        cursor = self.editor.textCursor()
        text = self.editor.toPlainText()
        state = (text, cursor.position(), cursor.anchor())
        if state == self._answered:
            return
        self._answered = state
        found = mention_query(text, cursor.position())
        if found is None or cursor.hasSelection():
            self._dismissed = None
            self.hide()
            return
        start, query = found
        if self._dismissed == start:
            return
        index = self.index()
        hits = index.matches(query, self.own_user)
        if not hits:
            self.hide()
            return
        same = self.isVisible() and start == self._start  # the same "@": keep the choice
        current = self.currentItem()
        chosen = current.data(Qt.ItemDataRole.UserRole) if same and current else None
        self._start = start
        self.clear()
        for hit in hits:
            user_id, shown = hit.user_id, hit.shown
            label = f"{shown}   {shown_id(user_id)}" if shown else shown_id(user_id)
            why = index.warning(user_id)
            # the mark first: a long entry is cut at its end, the mark must stay
            item = QListWidgetItem(f"{WARNING_MARK} {label}" if why else label)
            item.setData(Qt.ItemDataRole.UserRole, (user_id, hit.name))
            # rich text, escaped: Qt takes a tip that looks like markup as rich text
            tip = f"<p>{html_escape(shown_id(user_id))}</p>"
            if why:
                item.setForeground(QBrush(QColor(TRUST_COLORS["key-changed"])))
                tip += f"<p>{WARNING_MARK} {html_escape(one_line(why, 600))}</p>"
            item.setToolTip(tip)
            self.addItem(item)
        rows = [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())]
        self.setCurrentRow(rows.index(chosen) if chosen in rows else 0)
        self._place()
        self.show()
        self.raise_()

    def _place(self) -> None:
        """Just above the text cursor, inside the window."""
        window = self.parentWidget()
        if window is None:
            return
        row_h = max(self.sizeHintForRow(0), 20)
        h = row_h * self.count() + 2 * self.frameWidth() + 4
        w = min(420, max(260, window.width() // 3))
        at = self.editor.cursorRect().topLeft()
        corner = self.editor.viewport().mapTo(window, at)
        x = max(4, min(corner.x(), window.width() - w - 4))
        y = max(4, self.editor.mapTo(window, QPoint(0, 0)).y() - h - 4)
        self.setGeometry(x, y, w, h)

    # -- keys ------------------------------------------------------------------------------------

    @guard(False)
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.editor and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            return self.handle_key(event)
        if watched is self.editor and event.type() == QEvent.Type.FocusOut:
            self._answered = None  # the next change lists the members again
            self.hide()
        return False

    def handle_key(self, event: QKeyEvent) -> bool:
        """Act on a key typed in the composer while the list is open; True if used."""
        if not self.isVisible():
            return False
        key = event.key()
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            step = -1 if key == Qt.Key.Key_Up else 1
            self.setCurrentRow((self.currentRow() + step) % self.count())
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Tab):
            self.accept()
            return True
        if key == Qt.Key.Key_Escape:
            self._dismissed = self._start
            self.hide()
            return True
        return False

    def accept(self) -> None:
        """Replace the ``@`` and what follows it with the chosen member's mention."""
        item = self.currentItem()
        if item is None:
            return
        user_id, name = item.data(Qt.ItemDataRole.UserRole)
        text = "@" + self.index().inserted(user_id, name) + " "
        cursor = self.editor.textCursor()
        end = cursor.position()
        cursor.setPosition(self._start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        self.hide()
        cursor.insertText(text)
        self.editor.setTextCursor(cursor)
        self.hide()
