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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QBrush, QColor, QKeyEvent, QTextCursor
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QPlainTextEdit

from ...protocol.untrusted_text import display_name_safe, html_escape, one_line, shown_id
from ..safe import guard
from ..style import TRUST_COLORS, WARNING_MARK

MAX_SHOWN = 8  # members listed at once
MAX_QUERY = 48  # characters after "@" still read as a name being typed

Members = Callable[[], Sequence[tuple[str, str]]]  # (user id, display name or "")
Warning = Callable[[str], str | None]  # why a user id may imitate another's, or None


def _no_warning(_user_id: str) -> str | None:
    return None


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


def matches(
    members: Sequence[tuple[str, str]], query: str, warning: Warning = _no_warning
) -> list[tuple[str, str]]:
    """Members whose name or id contains ``query`` (case-insensitive): those whose id
    ``warning`` marks (may imitate another's) after all others, then those starting with
    the query first, then by name; at most ``MAX_SHOWN``."""
    q = query.casefold()
    ranked: list[tuple[bool, int, str, tuple[str, str]]] = []
    for user_id, name in members:
        shown = display_name_safe(name)
        fields = [f.casefold() for f in (shown, user_id) if f]
        if not any(q in f for f in fields):
            continue
        rank = 0 if any(f.startswith(q) for f in fields) else 1
        marked = bool(warning(user_id))
        ranked.append((marked, rank, (shown or user_id).casefold(), (user_id, name)))
    ranked.sort(key=lambda r: (r[0], r[1], r[2]))
    return [r[3] for r in ranked[:MAX_SHOWN]]


def inserted_text(user_id: str, name: str, members: Sequence[tuple[str, str]]) -> str:
    """What choosing a member inserts (without the ``@``): the display name when it is
    shown as written and names nobody else, else the user id."""
    if name and display_name_safe(name) == name:
        folded = name.casefold()
        others = [u for u, n in members if u != user_id and folded in (n.casefold(), u.casefold())]
        if not others:
            return name
    return user_id


class MentionPopup(QListWidget):
    """The completion list for one composer. It never takes the focus: the composer
    forwards the keys it uses (``handle_key``)."""

    def __init__(
        self, editor: QPlainTextEdit, members: Members, warning: Warning = _no_warning
    ) -> None:
        super().__init__(editor.window())
        self.editor = editor
        self.members = members
        self.warning = warning  # the room's look-alike rule: ``Names.warning``
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
        members = [m for m in self.members() if m[0] != self.own_user]
        hits = matches(members, query, self.warning)
        if not hits:
            self.hide()
            return
        same = self.isVisible() and start == self._start  # the same "@": keep the choice
        current = self.currentItem()
        chosen = current.data(Qt.ItemDataRole.UserRole) if same and current else None
        self._start = start
        self.clear()
        for user_id, name in hits:
            shown = display_name_safe(name)
            label = f"{shown}   {shown_id(user_id)}" if shown else shown_id(user_id)
            why = self.warning(user_id)
            # the mark first: a long entry is cut at its end, the mark must stay
            item = QListWidgetItem(f"{WARNING_MARK} {label}" if why else label)
            item.setData(Qt.ItemDataRole.UserRole, (user_id, name))
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
        text = "@" + inserted_text(user_id, name, self.members()) + " "
        cursor = self.editor.textCursor()
        end = cursor.position()
        cursor.setPosition(self._start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        self.hide()
        cursor.insertText(text)
        self.editor.setTextCursor(cursor)
        self.hide()
