"""Red team of the conversation features (round 24), through the real widgets
offscreen: what a hostile member writes into names, reactions, edits and threads must
not hide whose a message is. Each test names what it looked like before its fix."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QListView

from bucket_chat_desktop.gui.widgets.thread_panel import ThreadPanel


def _plain(rich: str) -> str:
    doc = QTextDocument()
    doc.setHtml(rich)
    return doc.toPlainText()


def test_a_name_with_a_middle_dot_keeps_the_thread_starters_id(qtbot: Any) -> None:
    """The thread panel's subtitle "started by <name> (<id>)" had its reply count put
    after the part before its first " · ": a member named "Alice · Finance" (a dot is
    an ordinary character in a name) lost the rest of the name, the real id and the
    look-alike mark, and the thread read "started by Alice · 3 replies"."""
    panel = ThreadPanel("", QListView())
    qtbot.addWidget(panel)
    panel.start("room::1", "Alice · Finance", sender_id="mallory@evil.org", warning="may imitate")
    panel.set_rows([], 3)
    shown = _plain(panel.subtitle.text())
    assert shown.startswith("started by") and shown.endswith(" · 3 replies")
    assert "Alice · Finance" in shown and "(mallory@evil.org)" in shown and "⚠" in shown
    panel.set_rows([], 4)  # a later count replaces the earlier one
    assert _plain(panel.subtitle.text()).endswith("(mallory@evil.org) ⚠ · 4 replies")
