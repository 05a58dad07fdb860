"""What can be done with one message: the hover action bar, the bar above the composer
while replying or editing, the delete confirmation, the confirmation before a message kept
unsent is discarded, and the previous-versions dialog.

Everything here shows text read from storage (names, bodies, reasons): each piece goes
through the one escape (``html_escape``) or a plain-text label, bounded in length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ... import timestamps
from ...protocol.untrusted_text import html_escape, one_line, spell_marks
from ..emoji_index import FREQUENT, lookup
from ..icons import (
    add_reaction_icon,
    close_icon,
    delete_icon,
    edit_icon,
    icon_color,
    more_icon,
    reply_icon,
    thread_icon,
)
from ..markdown import BODY_STYLE, MAX_RICH_CHARS, is_plain, plain_html, to_html
from ..safe import guard
from ..style import ACCENT, TRUST_COLORS, TRUST_SYMBOLS, is_dark, muted_text, sender_html

MAX_REASON = 300  # characters of a deletion's reason
PREVIEW = 120  # characters of a quoted first line
TRUST_WORDS = {
    "verified": "verified",
    "unverified": "not verified",
    "key-changed": "key changed",
    "invalid": "invalid",
}


# -- the hover bar ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """The message an action is about, as the timeline shows it."""

    event_id: str
    sender_id: str
    name: str  # display name (already made safe by the model)
    text: str  # current text: the latest edit's, else the body
    kind: str  # "text", "file", "image"
    can_edit: bool
    can_delete: bool
    edited: bool
    trust: str = "verified"  # as the row shows it (no better than its applied edits)
    warning: str | None = None  # why the sender id may imitate another (``Names.warning``)
    # how a quote of it reads when not its text: a file as its card names it ("📎 a.pdf")
    quoted: str = ""


class HoverBar(QFrame):
    """A small floating bar over the message under the mouse (or the row the keyboard
    is on): quick reactions, more reactions, reply, reply in thread, edit and delete (own
    messages), and ⋯ for the rest (the same menu as a right click)."""

    reacted = Signal(str)  # one of the quick reactions
    more_clicked = Signal()
    reply_clicked = Signal()
    thread_clicked = Signal()
    edit_clicked = Signal()
    delete_clicked = Signal()
    menu_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hoverBar")
        self.setAutoFillBackground(True)
        self.setStyleSheet(
            "QFrame#hoverBar { background: palette(base); border: 1px solid palette(mid);"
            " border-radius: 8px; }"
            " QFrame#hoverBarLine { background: palette(mid); border: none; }"
        )
        self.target: Target | None = None
        self._icons_dark: bool | None = None  # the theme the icons were drawn for
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(0)
        self._drawn = []
        self.reaction_buttons: dict[str, QToolButton] = {}
        for char in FREQUENT:
            entry = lookup(char)
            b = self._button(f"React with {entry.name if entry else char}")
            b.setText(char)
            b.clicked.connect(lambda _=False, c=char: self.reacted.emit(c))
            self.reaction_buttons[char] = b
            layout.addWidget(b)
        self.more_button = self._button("More reactions…", add_reaction_icon)
        self.more_button.clicked.connect(self.more_clicked)
        layout.addWidget(self.more_button)
        sep = QFrame()
        sep.setObjectName("hoverBarLine")
        sep.setFixedSize(QSize(1, 18))
        layout.addSpacing(3)
        layout.addWidget(sep)
        layout.addSpacing(3)
        self.reply_button = self._button("Reply (R)", reply_icon)
        self.reply_button.clicked.connect(self.reply_clicked)
        self.thread_button = self._button("Reply in thread (T)", thread_icon)
        self.thread_button.clicked.connect(self.thread_clicked)
        self.edit_button = self._button("Edit (E)", edit_icon)
        self.edit_button.clicked.connect(self.edit_clicked)
        self.delete_button = self._button("Delete… (Del)", delete_icon)
        self.delete_button.clicked.connect(self.delete_clicked)
        self.more_menu_button = self._button("More actions", more_icon)
        self.more_menu_button.clicked.connect(self.menu_clicked)
        for b in (
            self.reply_button,
            self.thread_button,
            self.edit_button,
            self.delete_button,
            self.more_menu_button,
        ):
            layout.addWidget(b)
        self._refresh_icons()
        self.hide()

    def _button(self, tip: str, make_icon: Callable[[str], QIcon] | None = None) -> QToolButton:
        b = QToolButton()
        b.setToolTip(tip)
        b.setAccessibleName(tip)
        b.setAutoRaise(True)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the timeline keeps the keyboard
        b.setFixedSize(QSize(30, 28))
        b.setStyleSheet(
            "QToolButton { font-size: 13pt; padding: 0; border-radius: 6px; }"
            " QToolButton:hover { background: palette(alternate-base); }"
        )
        if make_icon is not None:
            b.setIconSize(QSize(18, 18))
            self._drawn.append((b, make_icon))
        return b

    _drawn: list[tuple[QToolButton, Callable[[str], QIcon]]]

    def _refresh_icons(self) -> None:
        dark = is_dark()
        if dark != self._icons_dark:
            self._icons_dark = dark
            color = icon_color()
            for button, make in self._drawn:
                button.setIcon(make(color))

    def set_target(self, target: Target, quick: int = len(FREQUENT)) -> None:
        """Show the actions for ``target``; ``quick``: how many quick reactions fit."""
        self.target = target
        self._refresh_icons()
        for i, button in enumerate(self.reaction_buttons.values()):
            button.setVisible(i < quick)
        self.edit_button.setVisible(target.can_edit)
        self.delete_button.setVisible(target.can_delete)
        self.adjustSize()


# -- the bar above the composer ---------------------------------------------------------------


class ComposerModeBar(QFrame):
    """ "Replying to <name>: <first line>" or "Editing message", with ✕ (Escape)."""

    cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composerMode")
        self.setStyleSheet(
            f"QFrame#composerMode {{ border-left: 3px solid {ACCENT};"
            " background: palette(alternate-base); border-radius: 4px; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.setSpacing(8)
        self.icon = QLabel()
        self.icon.setFixedSize(QSize(18, 18))
        layout.addWidget(self.icon)
        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.RichText)  # escaped parts only
        self.text.setMinimumWidth(50)
        layout.addWidget(self.text, 1)
        self.close_button = QToolButton()
        self.close_button.setIcon(close_icon(icon_color()))
        self.close_button.setIconSize(QSize(14, 14))
        self.close_button.setToolTip("Cancel (Escape)")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.cancelled)
        layout.addWidget(self.close_button)
        self.mode = ""
        self.hide()

    def show_reply(
        self,
        name: str,
        text: str,
        trust: str = "verified",
        *,
        sender_id: str = "",
        warning: str | None = None,
    ) -> None:
        """ "Replying to" the message's sender as its row names them (``sender_html``:
        name, real id, ⚠ on a look-alike, why in the tooltip), its trust and first line."""
        self.mode = "reply"
        self.icon.setPixmap(reply_icon(icon_color()).pixmap(18, 18))
        first = one_line(text.strip().split("\n", 1)[0], PREVIEW) or "(no text)"
        mark = ""
        if trust != "verified":  # the name is what the message claims, not who wrote it
            color = TRUST_COLORS.get(trust, TRUST_COLORS["invalid"])
            symbol = TRUST_SYMBOLS.get(trust, TRUST_SYMBOLS["invalid"])
            mark = f"<span style='color:{color}'>{symbol} {html_escape(trust)}</span> "
        who = sender_html(name, sender_id, warning, _muted())
        self.text.setText(
            f"Replying to {mark}{who}: <span style='color:{_muted()}'>{html_escape(first)}</span>"
        )
        self.text.setToolTip(f"⚠ {html_escape(warning)}" if warning else "")
        self.show()

    def show_edit(self) -> None:
        self.mode = "edit"
        self.icon.setPixmap(edit_icon(icon_color()).pixmap(18, 18))
        self.text.setText(
            "<b>Editing message</b> "
            f"<span style='color:{_muted()}'>· Enter saves · Escape cancels</span>"
        )
        self.show()

    def clear(self) -> None:
        self.mode = ""
        self.hide()


def _muted() -> str:
    return muted_text()


# -- delete -------------------------------------------------------------------------------------

DELETE_WORDING = (
    "The message will be hidden for everyone whose app follows the Bucket Chat protocol, "
    "this one included. It cannot be erased: the room's storage is write-once, so the "
    "original stays in its history, where anyone who can read the storage (and the "
    "storage provider) can still find it, and anyone who already read it may have kept "
    "a copy."
)


class DeleteDialog(QDialog):
    """Asks before a deletion, honestly; ``reason`` is what was typed (may be empty)."""

    def __init__(self, target: Target, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Delete message")
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        title = QLabel("<b>Delete this message?</b>")
        title.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(title)
        quote = QLabel(one_line(target.quoted or target.text, 300) or "(no text)")
        quote.setTextFormat(Qt.TextFormat.PlainText)
        quote.setWordWrap(True)
        quote.setObjectName("deleteQuote")
        quote.setStyleSheet(
            f"QLabel#deleteQuote {{ border-left: 3px solid {TRUST_COLORS['invalid']};"
            " padding: 4px 8px; }"
        )
        layout.addWidget(quote)
        self.explanation = QLabel(DELETE_WORDING)
        self.explanation.setWordWrap(True)
        self.explanation.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.explanation)
        self.reason_edit = QLineEdit()
        self.reason_edit.setMaxLength(MAX_REASON)
        self.reason_edit.setPlaceholderText("Reason (optional, shown to everyone)")
        layout.addWidget(self.reason_edit)
        buttons = QDialogButtonBox()
        self.delete_button = buttons.addButton("Delete", QDialogButtonBox.ButtonRole.AcceptRole)
        self.delete_button.setStyleSheet(
            f"QPushButton {{ background: {TRUST_COLORS['invalid']}; color: white; border: none; }}"
        )
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.delete_button.setAutoDefault(False)
        self.cancel_button.setDefault(True)  # Enter does not delete by accident

    @guard()
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.delete_button.setDefault(False)  # the button box made the accept button it
        self.cancel_button.setDefault(True)
        self.cancel_button.setFocus()

    @property
    def reason(self) -> str | None:
        text = self.reason_edit.text().strip()
        return text or None


DISCARD_WORDING = (
    "It was never sent, so nobody else has it. Discarding it removes its text from this "
    "device for good: it cannot be brought back. Copy the text first if you may want it."
)


class DiscardDialog(QDialog):
    """Asks before a message kept unsent on this device is discarded (``Discard…`` on
    its row): says that its text will be gone for good, and offers to copy it first.
    ``copy`` puts ``text`` on the clipboard; the dialog stays open."""

    def __init__(
        self,
        text: str,
        why: str,
        others: int,
        copy: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Discard unsent message")
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        title = QLabel("<b>Discard this unsent message?</b>")
        title.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(title)
        quote = QLabel(one_line(text, 300) or "(no text)")
        quote.setTextFormat(Qt.TextFormat.PlainText)
        quote.setWordWrap(True)
        quote.setObjectName("discardQuote")
        quote.setStyleSheet(
            f"QLabel#discardQuote {{ border-left: 3px solid {TRUST_COLORS['invalid']};"
            " padding: 4px 8px; }"
        )
        layout.addWidget(quote)
        said = DISCARD_WORDING
        if others:
            said += (
                f" It was typed together with {others} other message"
                f"{'' if others == 1 else 's'} kept with it, which "
                f"{'goes' if others == 1 else 'go'} too."
            )
        if why:
            why = one_line(why, 300)
            said = f"{why[:1].upper() + why[1:]}" + "\n\n" + said
        self.explanation = QLabel(said)
        self.explanation.setWordWrap(True)
        self.explanation.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.explanation)
        buttons = QDialogButtonBox()
        self.copy_button = buttons.addButton("Copy text", QDialogButtonBox.ButtonRole.ActionRole)
        self.discard_button = buttons.addButton("Discard", QDialogButtonBox.ButtonRole.AcceptRole)
        self.discard_button.setStyleSheet(
            f"QPushButton {{ background: {TRUST_COLORS['invalid']}; color: white; border: none; }}"
        )
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.copy_button.clicked.connect(lambda: self._copied(copy))
        layout.addWidget(buttons)
        for button in (self.copy_button, self.discard_button):
            button.setAutoDefault(False)
        self.cancel_button.setDefault(True)  # Enter does not discard by accident

    def _copied(self, copy: Callable[[], None]) -> None:
        copy()
        self.copy_button.setText("Copied")

    @guard()
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.discard_button.setDefault(False)  # the button box made the accept button it
        self.cancel_button.setDefault(True)
        self.cancel_button.setFocus()


# -- previous versions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Version:
    label: str  # "Original", "Edit 1", ...
    timestamp_ms: int
    state: str  # trust state
    body: str | None  # None: not readable now (the original not loaded)
    # it arrived long after its date, as this device saw it arrive
    # (``LateArrival.note``): its date is its sender's word
    late: str | None = None


MAX_SHOWN_EDITS = 50  # a message edited hundreds of times stays a page, not megabytes
# Characters of Markdown the versions window formats in all (newest first): the window is
# made on the GUI thread, and 50 versions each as costly as one body may be (~20 ms)
# would hold it for a second. Versions past it are shown as plain text with a note.
VERSIONS_RICH_CHARS = 2 * MAX_RICH_CHARS
BODY_MARKS = 4
"""Combining marks drawn on one letter of a version's body; the rest are spelled out
(``spell_marks``). The dialog's document has no per-body clip as the timeline's rows
have: a letter under dozens of marks was stacked over the versions above and below.
Four keep every script's real text (a vowel sign and a tone mark, a dot below and an
accent) as it is written."""


def versions_html(versions: Sequence[Version]) -> str:
    """The versions, newest first, each with its time and trust state; bodies rendered
    as the timeline renders them (``markdown.to_html``: escaped, bounded; combining
    marks past ``BODY_MARKS`` on a letter spelled out). The original
    (first) and the newest ``MAX_SHOWN_EDITS`` edits; a line says how many are left out.
    Past ``VERSIONS_RICH_CHARS`` of Markdown formatted, older versions are plain text."""
    parts = []
    muted = _muted()
    budget = VERSIONS_RICH_CHARS  # characters of Markdown still to be formatted
    left_out = max(0, len(versions) - 1 - MAX_SHOWN_EDITS)
    if left_out:
        versions = [versions[0], *versions[len(versions) - MAX_SHOWN_EDITS :]]
    for i, v in enumerate(reversed(versions)):
        if left_out and i == len(versions) - 1:
            parts.append(
                f"<p style='color:{muted}'><i>{left_out:,} earlier edits are not shown "
                "here (the export of the room has every one).</i></p><hr>"
            )
        color = TRUST_COLORS.get(v.state, TRUST_COLORS[""])
        symbol = TRUST_SYMBOLS.get(v.state, "?")
        word = TRUST_WORDS.get(v.state, "unknown")
        current = " · <b>shown now</b>" if i == 0 and len(versions) > 1 else ""
        head = (
            f"<p style='margin:0'><b>{html_escape(v.label)}</b>"
            f"<span style='color:{muted}'> · {html_escape(timestamps.full(v.timestamp_ms))}"
            f"</span> · <span style='color:{color}'>{symbol} {html_escape(word)}</span>"
            f"{current}</p>"
        )
        if v.late:  # beside its date, which is its sender's word
            warn = TRUST_COLORS["key-changed"]
            head += f"<p style='margin:0; color:{warn}'>⚠ {html_escape(v.late)}</p>"
        if v.body is None:
            body = f"<i style='color:{muted}'>The original text is not loaded yet.</i>"
        else:
            text = spell_marks(v.body, BODY_MARKS)
            # what to_html parses: not plain lines, nor bodies too long to format
            cost = 0 if is_plain(text) or len(text) > MAX_RICH_CHARS else len(text)
            if cost <= budget:
                body = to_html(text)
                budget -= cost
            else:
                budget = 0  # older versions: plain text too
                body = plain_html(
                    text,
                    "Shown as plain text: this window formats the newest versions only "
                    f"({VERSIONS_RICH_CHARS:,} characters of them).",
                )
        parts.append(
            f"{head}<div style='margin: 4px 0 14px 10px'>{body}</div>"
            + ("<hr>" if i < len(versions) - 1 else "")
        )
    return "".join(parts)


class VersionsDialog(QDialog):
    """Every version of an edited message: the original and each applied edit."""

    def __init__(
        self,
        name: str,
        parent: QWidget | None = None,
        *,
        sender_id: str = "",
        warning: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Previous versions")
        self.resize(560, 460)
        layout = QVBoxLayout(self)
        self.title = QLabel(
            f"Versions of a message by {sender_html(name, sender_id, warning, _muted())}, "
            "newest first. Each edit is a signed event of its own, checked like any message."
        )
        self.title.setToolTip(f"⚠ {html_escape(warning)}" if warning else "")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)
        self.browser.setOpenExternalLinks(False)
        # as the timeline lays bodies out (message_delegate: no paragraph margins)
        self.browser.document().setDefaultStyleSheet(BODY_STYLE)
        layout.addWidget(self.browser, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
        self.versions: list[Version] = []

    def set_versions(self, versions: Sequence[Version]) -> None:
        self.versions = list(versions)
        self.browser.setHtml(versions_html(self.versions))
