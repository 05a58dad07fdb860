"""Red team rt101, the app's side: Eve stores a message dated 30 minutes ahead (shown:
within the hour); Alice's laptop then sleeps 40 minutes while Mallory writes a message and
edits an older one, on time. Both are dated after everything this device had read of the
room but Eve's row, whose date was still ahead when it was read. Red team rt97/rt98's
rule says neither is late news (``test_late_notes_agree``: Eve 50 minutes ahead). But the
app weighs them against where the room was read *by the wake-up clock*
(``controller._seen_place`` / ``anchor_position`` with the arrival's ``now_ms``): Eve's
row, 30 minutes ahead when read, is "read" 40 minutes later, and Mallory's honest
message and edit are said "sent or delivered long after its date"."""

from __future__ import annotations

import time
from typing import Any

import pytest
from nacl.signing import SigningKey
from test_backdated_news import MALLORY, chain, store_segment, text
from test_late_edits_and_deletions import (  # noqa: F401 (fixtures)
    Room,
    _sleep_then_wake,
    room,
)

from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.protocol.relations import EDIT

EVE = ("eve@example.com", SigningKey(b"\x0e" * 32))
MIN = 60_000


def _shown(desk: Any, event_id: str) -> bool:
    model = desk.model("c")
    ids = (model.index(i, 0).data(Roles.EventId) for i in range(model.rowCount()))
    return event_id in ids


def test_a_row_dated_30_minutes_ahead_makes_nothing_late_after_a_40_minute_sleep(
    qtbot: Any,
    room: Room,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = int(time.time() * 1000)
    eve = chain(
        "c",
        EVE,
        [
            (now, MEMBER, {"membership": "join", "displayname": "Eve"}),
            (now + 30 * MIN, MESSAGE, text("from 30 minutes ahead")),
        ],
    )
    store_segment(room.root, EVE, eve)
    qtbot.waitUntil(lambda: _shown(room.desk, eve[1].event_id), timeout=30_000)
    _sleep_then_wake(monkeypatch)
    written = int(time.time() * 1000)  # the members' clock; the app's reads 40 min more
    message, edit = chain(
        "c",
        MALLORY,
        [
            (written, MESSAGE, text("written while Alice slept")),
            (written + 1, EDIT, {"replaces": room.on_time.event_id, "new_content": text("fix")}),
        ],
        prev=room.last.hash,
    )
    store_segment(room.root, MALLORY, [message, edit])
    room.wait_body(qtbot, room.on_time.event_id, "fix")
    qtbot.waitUntil(lambda: _shown(room.desk, message.event_id), timeout=30_000)
    noted = {e for e, _where in room.desk.controller.late_arrivals(room.desk.key("c"))}
    assert room.row(message.event_id).data(Roles.Late) is None, noted
    assert room.row(room.on_time.event_id).data(Roles.LateChange) is None, noted


def test_a_message_placed_behind_a_row_dated_ahead_when_read_is_not_late_after_a_sleep(
    qtbot: Any,
    room: Room,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same with Mallory's message alone: a plain message goes in before Eve's row one
    by one (``EventsAppended`` placed at a position, ``_on_events_placed``), not with a
    full audit, and every message placed so was noted late with no look at what this
    device had read (``_note_late``): Eve's row alone, dated ahead, put it among "rows
    seen already". It is noted by the rule of edits and of ``sync --follow`` now."""
    now = int(time.time() * 1000)
    eve = chain(
        "c",
        EVE,
        [
            (now, MEMBER, {"membership": "join", "displayname": "Eve"}),
            (now + 30 * MIN, MESSAGE, text("from 30 minutes ahead")),
        ],
    )
    store_segment(room.root, EVE, eve)
    qtbot.waitUntil(lambda: _shown(room.desk, eve[1].event_id), timeout=30_000)
    placed: list[list[str]] = []  # the ids the engine placed one by one
    room.desk.controller.bridge.events_placed.connect(
        lambda _key, items, *_: placed.append([a.event.event_id for a in items])
    )
    _sleep_then_wake(monkeypatch)
    written = int(time.time() * 1000)  # the members' clock; the app's reads 40 min more
    (message,) = chain(
        "c", MALLORY, [(written, MESSAGE, text("written while Alice slept"))], prev=room.last.hash
    )
    store_segment(room.root, MALLORY, [message])
    qtbot.waitUntil(lambda: _shown(room.desk, message.event_id), timeout=30_000)
    assert [message.event_id] in placed, "not placed one by one: this test is about those"
    noted = {e for e, _where in room.desk.controller.late_arrivals(room.desk.key("c"))}
    assert room.row(message.event_id).data(Roles.Late) is None, noted
