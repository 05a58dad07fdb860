"""The thread side panel: a thread's root message and its replies beside the timeline,
with a small composer of its own whose messages are replies in that thread.

Replies written here answer the thread's *root* (``reply_to = root``), never the last
reply: every reader then finds them under the same root in one hop (PROTOCOL.md section
18.2 walks up to the root, but a flat thread keeps working when a middle reply is
deleted, and matches what the other clients write). The rows come from the owner
(``RelationActions``) as ``Assessed`` rows with the text to show; this widget only
shows them and says what it could not show.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...protocol.audit import Assessed, provisional
from ...protocol.relations import Relations
from ...protocol.room_state import Names
from ...protocol.untrusted_text import html_escape
from .. import icons
from ..models.timeline_model import TimelineModel
from ..safe import guard
from ..style import NOT_FINAL, TRUST_COLORS, WARNING_MARK, muted_text, sender_html, trust_label
from .composer import Composer
from .elided_label import never_widens
from .message_delegate import MessageDelegate

PANEL_WIDTH = 380


class ThreadPanel(QFrame):
    """``reply_written(text)``: the person sent ``text`` from the panel's composer."""

    reply_written = Signal(str)
    close_requested = Signal()

    def __init__(self, own_key: str, view: QListView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("threadPanel")
        self.setMinimumWidth(300)
        self.root_id = ""
        self._started = ""  # "started by <name> (<id>)": the subtitle before the count
        self._who = ""  # the root's sender, as ``sender_html`` names them
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)

        header = QHBoxLayout()
        header.setContentsMargins(14, 10, 8, 8)
        titles = QVBoxLayout()
        titles.setSpacing(0)
        self.title = QLabel("<b style='font-size:13pt'>Thread</b>")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.subtitle = QLabel()
        self.subtitle.setObjectName("roomSubtitle")
        self.subtitle.setTextFormat(Qt.TextFormat.RichText)  # escaped parts only
        # a sender's id can be long: wrapped at the panel's width, never widening it
        self.subtitle.setWordWrap(True)
        never_widens(self.subtitle)
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        header.addLayout(titles, 1)
        self.close_button = QToolButton()
        self.close_button.setIcon(icons.close_icon(icons.icon_color()))
        self.close_button.setIconSize(QSize(16, 16))
        self.close_button.setToolTip("Close the thread")
        self.close_button.clicked.connect(self.close_requested)
        header.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(header)

        self.note = QLabel()
        self.note.setObjectName("threadNote")
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setContentsMargins(14, 0, 14, 6)
        self.note.hide()
        layout.addWidget(self.note)

        self.model = TimelineModel(own_key, self)
        self.view = view
        self.view.setItemDelegate(MessageDelegate(self.view))
        self.view.setModel(self.model)
        layout.addWidget(self.view, 1)

        bar = QHBoxLayout()
        bar.setContentsMargins(10, 6, 10, 10)
        self.composer = Composer()
        self.composer.setPlaceholderText("Reply in thread…")
        self.composer.submitted.connect(self.reply_written)
        self.send_button = QPushButton(icons.send(), "")
        self.send_button.setToolTip("Send the reply (Enter)")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self._send_clicked)
        bar.addWidget(self.composer, 1)
        bar.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addLayout(bar)

    @guard()
    def sizeHint(self) -> QSize:
        return QSize(PANEL_WIDTH, 400)

    def _send_clicked(self) -> None:
        self.composer.submit()
        self.composer.setFocus()

    def start(
        self,
        root_id: str,
        name: str,
        note: str = "",
        *,
        sender_id: str = "",
        warning: str | None = None,
        trust: str = "verified",
    ) -> None:
        """A new thread: nothing shown until its rows arrive (``set_rows``). Its root's
        sender is named as their row names them (``sender_html``), after the words of
        its badge when the root is not verified (``trust``: its ``TrustState`` value):
        "started by Carol" of an impostor's root read as Carol's thread."""
        if root_id != self.root_id:
            self.root_id = root_id
            self.model.set_timeline([], True)
            self.composer.clear()
        self._who = sender_html(name, sender_id, warning, muted_text(), 60)
        self._started = f"{_doubt_html(trust)}started by {self._who}"
        self.subtitle.setText(self._started)
        self.subtitle.setToolTip(f"⚠ {html_escape(warning)}" if warning else "")
        self.set_note(note)

    def set_rows(
        self,
        rows: Sequence[Assessed],
        replies: int,
        names: Names | None = None,
        relations: Relations | None = None,
    ) -> None:
        """Show the root and replies (``rows``, display order); ``replies``: how many
        the thread has (more than shown when it is long); ``names``: the room's display
        names (the room timeline's, so a sender reads the same in both); ``relations``:
        what the room's relations say of those rows (edits, deletions, reactions)."""
        self.model.set_timeline(rows, True, relations, names)
        if rows and rows[0].event.event_id == self.root_id:  # the root as audited now
            root = rows[0]
            state = NOT_FINAL if provisional(root) else root.state.value
            self._started = f"{_doubt_html(state, signed=bool(root.event.sender_key))}"
            self._started += f"started by {self._who}"
        shown = max(0, len(rows) - 1)
        word = "reply" if replies == 1 else "replies"
        # Kept from ``start``, not cut from the label at its first " · ": a name holding
        # one lost its rest, the real id and the look-alike mark.
        self.subtitle.setText(f"{self._started} · {replies:,} {word}")
        if replies > shown:
            self.set_note(f"The {replies - shown:,} earliest replies are not shown here.")

    def set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))


def _doubt_html(trust: str, *, signed: bool = True) -> str:
    """What the thread's header says first when its root is not verified (``trust``: a
    ``TrustState`` value, or ``NOT_FINAL`` for a root verified only on trial while older
    history loads): its badge's words. "started by Carol" of an impostor's root read
    as Carol's thread."""
    if trust == "verified":
        return ""
    if trust == NOT_FINAL:
        color, words = TRUST_COLORS["unverified"], NOT_FINAL
    else:
        color = TRUST_COLORS.get(trust, TRUST_COLORS["invalid"])
        words = trust_label(trust, signed=signed)
    return f"<span style='color:{color}'>{WARNING_MARK} {html_escape(words)}:</span> "
