"""Colours, fonts and palette helpers shared by the widgets."""

from __future__ import annotations

import hashlib

from PySide6.QtGui import QColor, QGuiApplication, QPalette

from ..protocol.untrusted_text import display_name_safe, html_escape, isolate, shown_id

TRUST_COLORS = {
    "verified": "#2e9d5b",
    "unverified": "#8a8f98",
    "key-changed": "#d9822b",
    "invalid": "#d64545",
    "": "#8a8f98",
}
TRUST_SYMBOLS = {"verified": "✔", "unverified": "?", "key-changed": "!", "invalid": "✖", "": "…"}
# What each trust state (``TrustState``: an event's verdict) and device state
# (``DeviceState``: the members panel) is called wherever it is shown. A row not checked
# yet has the state "": each view words that itself (a row being sent, a search hit).
TRUST_LABELS = {
    "verified": "Verified",
    "unverified": "Unverified",
    "key-changed": "Key changed",
    "invalid": "Invalid",
    "confirmed": "Confirmed by you",
    "disputed": "Disputed",
}


# What every view says of a message whose event id another device signed too (PROTOCOL.md
# 18.1): its row, its room list preview, its search hit.
REPEATED_ID_NOTE = (
    "Another device used this message's id: edits, deletion and reactions are not shown"
)
NOT_FINAL = "Not final yet"  # a row verified only on trial (``audit.provisional``)
REPEATED_ID_SHORT = "id used twice: edits and deletion not shown"  # where room is short


def trust_label(state: str, *, signed: bool = True) -> str:
    """What a verdict is called wherever one row's is shown (its badge's tooltip, the
    tray's notification, the room list's preview): ``TRUST_LABELS``, except that lines
    without a signature under a signing person's name are "Not from them" (no key of theirs
    changed: none of their devices wrote them)."""
    if state == "key-changed" and not signed:
        return "Not from them"
    return TRUST_LABELS.get(state, state)


ACCENT = "#3a7bd5"


def key_color(key: str, dark: bool = False) -> QColor:
    """A stable, readable colour derived from a key's fingerprint."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") % 360
    color = QColor()
    color.setHsl(hue, 150, 170 if dark else 95)
    return color


def is_dark() -> bool:
    palette = QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def initials(name: str) -> str:
    base = name.split("@", 1)[0].replace(".", " ").replace("_", " ").replace("-", " ")
    parts = [p for p in base.split() if p]
    if not parts:
        return "?"
    if len(parts) == 1:
        return parts[0][:2].upper()
    return (parts[0][0] + parts[1][0]).upper()


def muted_text() -> str:
    """The colour of secondary text in rich-text labels (ids beside names, previews)."""
    return "#9aa0a8" if is_dark() else "#6b717a"


WARNING_MARK = "⚠"  # beside a sender id that may imitate another's (the GUI's one mark)


def sender_html(name: str, sender_id: str, warning: str | None, muted: str, limit: int = 80) -> str:
    """A sender in a rich-text label as a row's header names them: the cleaned display
    name in bold (isolated: its letters cannot reorder what follows), the real id beside
    it, and the look-alike mark in the warning colour when the id (or the name) may
    imitate another's (``Names.warning``; the label's tooltip says why). Every piece
    escaped; without an id (not known) the name alone, as before."""
    clean = display_name_safe(name, limit) if name and name != sender_id else ""
    if not sender_id:
        return f"<b>{html_escape(clean)}</b>"
    ident = html_escape(shown_id(sender_id))
    who = (
        f"<b>{html_escape(isolate(clean))}</b> <span style='color:{muted}'>({ident})</span>"
        if clean
        else f"<b>{ident}</b>"
    )
    if warning:
        who += f" <span style='color:{TRUST_COLORS['key-changed']}'>{WARNING_MARK}</span>"
    return who
