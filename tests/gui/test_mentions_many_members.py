"""Mentions in a room with many members, as a hostile member makes them (each id its own
valid Ed25519 key signing its own chain: a join, then a message). Red team rt80:

- The composer's ``@`` list judged every member again on every keystroke (look-alike
  warning, name cleaning): 50,000 members with hostile names cost 2.3 s a keystroke.
- The timeline highlighted "@<member>" from the first 500 ids and names only, the user's
  own last: a flood of joins dated back took the user's own mention.

Counted, not timed: look-alike judgements (``RoomIds.warning``), name cleanings
(``display_name_safe``), the Python lines a highlight runs.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from conftest import roster_of
from nacl.signing import SigningKey
from PySide6.QtWidgets import QMainWindow, QPlainTextEdit

from bucket_chat_desktop.gui.widgets import mention_popup as popup_module
from bucket_chat_desktop.gui.widgets.mention_popup import MentionPopup
from bucket_chat_desktop.protocol import untrusted_text
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "falcon"
T0 = 1_764_000_000_000
_n = itertools.count(1)


def _uuid() -> str:
    n = next(_n)
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def _member_events(i: int, sender: str, name: str) -> list[Any]:
    """One member: its own key, a join naming it, then a message chained to the join."""
    key = SigningKey((i + 1000).to_bytes(4, "big") * 8)
    join = build_event(
        room_id=ROOM,
        sender_id=sender,
        event_type=MEMBER,
        content={"membership": "join", "displayname": name},
        timestamp_ms=T0 + 2 * i,
        unique=_uuid(),
        prev_event_hash=None,
        signing_key=key,
    )
    say = build_event(
        room_id=ROOM,
        sender_id=sender,
        event_type=MESSAGE,
        content={"msgtype": "m.text", "body": f"hello {i}"},
        timestamp_ms=T0 + 2 * i + 1,
        unique=_uuid(),
        prev_event_hash=join.hash,
        signing_key=key,
    )
    return [join, say]


def _ledger(count: int, name: Any = lambda i: f"Member {i}") -> RoomLedger:
    ledger = RoomLedger(ROOM)
    events: list[Any] = []
    for i in range(count):
        events += _member_events(i, f"user{i:06d}@example.com", name(i))
        if len(events) >= 400:
            ledger.add_segment(path_for(events, f"c{i}"), encode_segment(events))
            events = []
    if events:
        ledger.add_segment(path_for(events, "last"), encode_segment(events))
    return ledger


def test_typing_after_at_does_not_judge_every_member_again_on_each_keystroke(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``@`` list ran the look-alike rule (``RoomIds.warning``, skeletons and code-point
    differences) and ``display_name_safe`` on every member for every keystroke: with
    50,000 members named with look-alike letters that was 2.3 s a keystroke (20,000: 1 s),
    "@al" freezing the composer for 7 s. What the room's names say does not change between
    keystrokes: each member is judged at most once for them."""
    members = 1_500
    name = lambda i: ("Аlicе Ꮪmith " * 4)[:40] + str(i)  # noqa: E731 - look-alike letters
    roster = roster_of(_ledger(members, name).audit())
    names = roster.names
    assert len(names.members()) == members

    judged: list[str] = []
    warning = untrusted_text.RoomIds.warning

    def counted_warning(self: Any, sender_id: str, *args: Any) -> Any:
        judged.append(sender_id)
        return warning(self, sender_id, *args)

    monkeypatch.setattr(untrusted_text.RoomIds, "warning", counted_warning)
    cleaned: list[object] = []
    clean = popup_module.display_name_safe

    def counted_clean(value: object, *args: Any) -> str:
        cleaned.append(value)
        return clean(value, *args)

    monkeypatch.setattr(popup_module, "display_name_safe", counted_clean)

    window = QMainWindow()
    qtbot.addWidget(window)
    editor = QPlainTextEdit()
    window.setCentralWidget(editor)
    window.resize(800, 600)
    window.show()
    popup = MentionPopup(editor, lambda: names)
    editor.setFocus()
    keystrokes = "@use"
    for ch in keystrokes:
        qtbot.keyClicks(editor, ch)
    assert popup.isVisible() and popup.count() > 0  # it still lists members
    per_member = max(len(judged), len(cleaned)) / members
    assert per_member <= 1.5, (
        f"{len(keystrokes)} keystrokes judged {len(judged):,} ids and cleaned "
        f"{len(cleaned):,} names for {members:,} members"
    )


class _Model:
    def __init__(self, names: Any) -> None:
        self.names = names


class _Row:
    """What the delegate reads of a row to find its mentions (a stand-in index)."""

    def __init__(self, names: Any, body: str) -> None:
        self._model = _Model(names)
        self.body = body

    def model(self) -> _Model:
        return self._model

    def data(self, role: int) -> Any:
        from bucket_chat_desktop.gui.models.timeline_model import Roles

        return {
            Roles.EventId: "ev-1",
            Roles.Location: "seg#1",
            Roles.Version: "",
            Roles.Body: self.body,
            Roles.Kind: "text",
            Roles.Content: {"msgtype": "m.text", "body": self.body},
        }.get(role)


def test_the_users_own_mention_is_highlighted_as_theirs_in_a_room_of_300_members(
    qtbot: Any,
) -> None:
    """The timeline highlights "@<member>" in bodies, the user's own name more strongly,
    from the room's ids and names in first-seen order with the user's own names last, cut
    at the first 500. In a room where 300 members were seen first (a member's flood of
    joins dated back) Carol's own name is cut off: "@Carol Smith" in a message to her is
    drawn as a mention of "Carol" (the flood's first member calls itself that) followed by
    " Smith" — the wrong person highlighted, never her own."""
    from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate

    ledger = RoomLedger(ROOM)
    events = _member_events(0, "carol@example.com", "Carol Smith")
    ledger.add_segment(path_for(events, "carol"), encode_segment(events))
    # 300 joins dated back, each its own key; the first calls itself "Carol"
    flood: list[Any] = []
    for i in range(300):
        key = SigningKey((i + 5000).to_bytes(4, "big") * 8)
        flood.append(
            build_event(
                room_id=ROOM,
                sender_id=f"m{i:05d}@evil.example",
                event_type=MEMBER,
                content={"membership": "join", "displayname": "Carol" if i == 0 else f"M {i}"},
                timestamp_ms=T0 - 10**11 + i,
                unique=_uuid(),
                prev_event_hash=None,
                signing_key=key,
            )
        )
    ledger.add_segment(path_for(flood, "flood"), encode_segment(flood))
    names = roster_of(ledger.audit()).names
    assert names.members()[0] == ("m00000@evil.example", "Carol")
    delegate = MessageDelegate()
    delegate.own_user = "carol@example.com"
    delegate.own_names = ("Carol Smith",)
    body = "@Carol Smith can you look at this?"
    row = _Row(names, body)
    assert delegate.mentions_me(row)  # the row's accent: it is for her
    html = delegate._html(row, body)
    assert ">@Carol Smith</span>" in html, html  # her whole name, highlighted as hers
    assert ">@Carol</span>" not in html


def _names(members: list[tuple[str, str]]) -> Any:
    from types import MappingProxyType

    from bucket_chat_desktop.protocol.room_state import Names

    return Names(
        MappingProxyType({uid: name for uid, name in members if name}),
        tuple(uid for uid, _ in members),
    )


def test_the_at_list_inserts_an_id_for_a_shared_name_whatever_the_room_size() -> None:
    """In a room of 2,000 members, two go by "Carol Smith" (the impostor's joins dated
    first): either is inserted by id, the list orders them by id (not by who came
    first), and a name of one member alone is inserted as written."""
    from bucket_chat_desktop.gui.widgets.mention_popup import MemberIndex

    flood = [(f"m{i:05d}@evil.example", f"M {i}") for i in range(2_000)]
    impostor = ("zz@evil.example", "Carol Smith")
    carol = ("carol@example.com", "Carol Smith")
    index = MemberIndex(_names([impostor, *flood, carol, ("dave@example.com", "Dave")]))
    assert [e.user_id for e in index.matches("carol s")] == [carol[0], impostor[0]]
    assert index.inserted(*carol) == carol[0]
    assert index.inserted(*impostor) == impostor[0]
    assert index.inserted("dave@example.com", "Dave") == "Dave"
    assert index.inserted("m01999@evil.example", "M 1999") == "M 1999"
    # a name spelled like another member's id is inserted as the member's own id
    index = MemberIndex(_names([("m0@evil.example", "carol@example.com"), carol]))
    assert index.inserted("m0@evil.example", "carol@example.com") == "m0@evil.example"
    assert index.inserted(*carol) == "Carol Smith"


def test_a_keystroke_lists_at_most_a_screen_those_starting_with_the_query_first() -> None:
    """Also when the query is extended, shortened, extended again (an extended query looks
    among what the shorter one found: the answers must be the same)."""
    from bucket_chat_desktop.gui.widgets.mention_popup import MAX_SHOWN, MemberIndex

    members = [(f"user{i:05d}@example.com", f"Member {i}") for i in range(5_000)]
    index = MemberIndex(_names(members))
    assert len(index.matches("")) == MAX_SHOWN
    assert [e.name for e in index.matches("member 4999")] == ["Member 4999"]
    listed = index.matches("member 49")
    assert len(listed) == MAX_SHOWN and listed[0].name == "Member 49"  # starts with it
    assert [e.name for e in index.matches("member 4999")] == ["Member 4999"]
    assert index.matches("nobody") == []


def test_a_message_is_highlighted_without_going_over_every_member() -> None:
    """Each body with "@" escaped every member's id and name (17.6 ms a message at 20,000
    members): the targets are prepared once per roster, a message costs what its text
    does. Only real members are highlighted, the user's own first."""
    import sys

    from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate

    members = [(f"user{i:05d}@example.com", f"Member <{i}>") for i in range(20_000)]
    members.append(("carol@example.com", "Carol Smith"))
    names = _names(members)
    delegate = MessageDelegate()
    delegate.own_user = "carol@example.com"
    delegate.own_names = ("Carol",)
    body = "@Carol Smith & @Member <19999>: ask @carol, not @Nobody or @user0@example.com"

    def html() -> str:
        return delegate._html(_Row(names, body), body)

    first = html()  # prepares the targets
    assert first.count("<span") == 3, first
    own = 'background-color:#dce8fb; color:#1f5fbf; font-weight:bold">'
    assert own + "@Carol Smith</span>" in first and own + "@carol</span>" in first
    assert 'color:#1f5fbf; font-weight:bold">@Member &lt;19999&gt;</span>' in first

    lines = 0

    def trace(frame: object, event: str, arg: object) -> object:
        nonlocal lines
        lines += event == "line"
        return trace

    sys.settrace(trace)
    try:
        again = [html() for _ in range(3)]
    finally:
        sys.settrace(None)
    assert again == [first] * 3
    assert lines < 3 * 2_000, f"{lines:,} lines for 3 messages in a room of 20,001"


def test_a_longer_name_of_another_member_gives_the_user_no_accent() -> None:
    """Red team rt81: "@Alice Cooper" in a room where Frank goes by it is highlighted as
    his; the row's accent ("mentions you") agrees, and follows a roster change."""
    from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate

    alice = ("alice@example.com", "Alice")
    frank = ("frank@example.com", "Alice Cooper")
    delegate = MessageDelegate()
    delegate.own_user, delegate.own_names = alice[0], ("Alice",)
    body = "@Alice Cooper the deploy is yours"
    row = _Row(_names([alice, frank]), body)
    assert not delegate.mentions_me(row)
    html = delegate._html(row, body)
    assert ">@Alice Cooper</span>" in html and "background-color" not in html  # his
    # in a room without Frank, the same body does name her (and the answer is not kept)
    assert delegate.mentions_me(_Row(_names([alice]), body))
    assert ">@Alice</span>" in delegate._html(_Row(_names([alice]), body), body)
