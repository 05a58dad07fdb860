"""Colours, fonts and palette helpers shared by the widgets."""

from __future__ import annotations

import hashlib

from PySide6.QtGui import QColor, QGuiApplication, QPalette

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
