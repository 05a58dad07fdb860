"""Red team of the conversation features (round 24), through the real widgets
offscreen: what a hostile member writes into names, reactions, edits and threads must
not hide whose a message is. Each test names what it looked like before its fix."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRect
from PySide6.QtGui import QFont, QTextDocument
from PySide6.QtWidgets import QListView
from test_relations_view import ALICE, BOB, Scene, model_of, row_of

from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate, quote_tooltip
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


def test_a_quote_of_a_message_edited_says_so(qtbot: Any) -> None:
    """Bob asks for $500, Alice answers "Yes, go ahead", Bob edits his question to
    $5,000: Alice's reply quoted the new text as if she had said yes to it, with
    nothing to tell that the words she answered were others. The quote now says the
    message was edited (its versions are a click away), as the message's row does."""
    scene = Scene()
    for who in (ALICE, BOB):
        scene.join(who)
    ask = scene.msg(BOB, "Can I take $500 from the team budget?")
    yes = scene.msg(ALICE, "Yes, go ahead.", parent=ask.event_id)
    plain = scene.msg(ALICE, "And lunch is at noon.", parent=yes.event_id)
    scene.edit(BOB, ask, "Can I take $5,000 from the team budget?")
    model = model_of(scene)
    font = QFont()
    rect = QRect(0, 0, 600, 20)
    quote = model.index(row_of(model, yes.event_id)).data(Roles.Quote)
    assert quote.text == "Can I take $5,000 from the team budget?"
    pieces = MessageDelegate.quote_layout(quote, rect, font)
    edited = [p for p in pieces if p.what == "edited"]
    assert edited and "edited" in edited[0].text
    assert edited[0].rect.right() < next(p for p in pieces if p.what == "text").rect.left()
    assert "edited" in quote_tooltip(quote)
    calm = model.index(row_of(model, plain.event_id)).data(Roles.Quote)  # not edited
    assert not [p for p in MessageDelegate.quote_layout(calm, rect, font) if p.what == "edited"]
    assert "edited" not in quote_tooltip(calm)
