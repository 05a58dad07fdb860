"""The room state (members, devices, display names) is made on the engine's state thread
and travels with each audit like its relations: ``RoomView``, ``RoomLoaded`` and
``EventsAppended`` carry a ``Roster`` equal to a full fold of the result they carry,
continued on appends (only the new rows folded), begun again on a full audit."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from local_client import local_client
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol import room_state as protocol_room_state
from bucket_chat_desktop.protocol.audit import (
    DEVICE_ACCEPT_FIELD,
    DEVICE_ADD_FIELD,
    RoomLedger,
    prepare_segment,
)
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import iso_utc_ms, segment_path
from bucket_chat_desktop.protocol.room_state import RoomState as MemberFold
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event, public_key_text
from bucket_chat_desktop.sync.events import EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.room_state import RoomState

ROOM = "room-1"
T = 1757851245000


class _Writer:
    """One device's signed chain."""

    counter = 0

    def __init__(self, user: str, seed: int) -> None:
        self.user, self.key, self.prev = user, SigningKey(bytes([seed]) * 32), None

    @property
    def public(self) -> str:
        return public_key_text(self.key)

    def ev(self, kind: str, content: dict[str, Any], ts: int) -> Event:
        _Writer.counter += 1
        e = build_event(
            room_id=ROOM,
            sender_id=self.user,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=f"{_Writer.counter:08x}-0000-4000-8000-000000000000",
            prev_event_hash=self.prev,
            signing_key=self.key,
        )
        self.prev = e.hash
        return e


def _full(room: RoomState) -> Any:
    assert room.result is not None
    return MemberFold.of(room.result).roster()


def test_the_roster_is_folded_on_appends_and_equals_a_full_fold() -> None:
    alice, bob, intruder = (
        _Writer("alice@example.com", 1),
        _Writer("bob@example.com", 2),
        _Writer("alice@example.com", 9),  # a key nobody introduced
    )
    phone = _Writer("bob@example.com", 4)
    ledger = RoomLedger(ROOM, keep_bodies=False)
    room = RoomState(ROOM, ledger)
    added_rows: list[int] = []
    real_add = MemberFold.add

    def counted(self: MemberFold, items: Any) -> None:
        items = list(items)
        added_rows.append(len(items))
        real_add(self, items)

    def append(*events: Event) -> int:
        """Add the events as the keeper does: appended when that is exact, else a full
        audit. How many rows the fold should take for it."""
        prepared = prepare_segment(path_for(list(events), "c"), encode_segment(list(events)), ROOM)
        got = ledger.try_append(ledger.add_prepared(prepared))
        if got is None:
            room.result = ledger.audit(pins)
            return len(room.result.timeline)
        assert ledger.result is not None
        room.result = ledger.result
        return len(got)

    first = [
        alice.ev(MEMBER, {"membership": "join", "displayname": "Alice"}, T),
        alice.ev(MESSAGE, {"body": "x", "msgtype": "m.text"}, T + 1),
    ]
    ledger.add_prepared(prepare_segment(path_for(first, "a"), encode_segment(first), ROOM))
    pins = {alice.user: {alice.public}, bob.user: {bob.public}}  # trusted on first use
    room.result = ledger.audit(pins)
    MemberFold.add = counted  # type: ignore[method-assign]
    try:
        start = room.roster()
        assert start is not None and room.roster() is start  # made once per result
        assert room.roster_made_for(room.result) is start
        assert [m.display_name for m in start.members()] == ["Alice"]
        assert added_rows == [2]

        steps = [
            [bob.ev(MEMBER, {"membership": "join", "displayname": "\u202eBob  "}, T + 2)],
            [alice.ev(MESSAGE, {"body": "hi", "msgtype": "m.text"}, T + 3)],
            [bob.ev(MEMBER, {"membership": "join", DEVICE_ADD_FIELD: phone.public}, T + 4)],
            [phone.ev(MEMBER, {"membership": "join", DEVICE_ACCEPT_FIELD: bob.public}, T + 5)],
            [bob.ev(MEMBER, {"membership": "join", "displayname": "Zed"}, T + 6)],
            [intruder.ev(MEMBER, {"membership": "leave"}, T + 7)],
            [bob.ev(MEMBER, {"membership": "ban"}, T + 8)],
        ]
        before, appends = start, 0
        for events in steps:
            rows = append(*events)
            mark = len(added_rows)
            made = room.roster()
            assert added_rows[mark:] == [rows]  # an append folds only its rows
            appends += rows == 1
            assert made is not None and made is not before
            assert made == _full(room)  # continued, yet the same as a full fold
            before = made
        assert appends >= 3  # (a message, a rename, a ban: appends)
        alice_now = before.members()
        assert [m.user_id for m in alice_now] == ["alice@example.com"]  # Bob was banned
        assert alice_now[0].display_name == "Alice"  # an unintroduced "leave" removes nobody
        bob_gone = next(m for m in before.everyone if m.user_id == "bob@example.com")
        assert bob_gone.display_name == "Zed" and bob_gone.membership == "ban"
        assert [d.state.value for d in bob_gone.devices] == ["verified", "verified"]
        intruder_key = {d.key: d.state.value for d in before.everyone[0].devices}
        assert intruder_key[intruder.public] == "key-changed"

        room.result = ledger.audit(pins)  # a full audit: folded from its first row again
        mark = len(added_rows)
        again = room.roster()
        assert added_rows[mark:] == [len(room.result.timeline)]
        assert again is not before and again == _full(room)
    finally:
        MemberFold.add = real_add  # type: ignore[method-assign]


def test_views_and_events_carry_the_roster_of_their_result(tmp_path: Path) -> None:
    """Through the ChatClient on a real folder, index and engine: each ``RoomLoaded`` and
    ``EventsAppended`` carries the roster of its own result, folded on the engine's state
    thread, never on the thread that runs the loop (the GUI thread in the app)."""
    client, entry, events = local_client(tmp_path)
    folded_on: set[str] = set()
    views: list[Any] = []
    real_add = protocol_room_state.RoomState._add

    def noted(self: MemberFold, item: Any) -> None:
        folded_on.add(threading.current_thread().name)
        real_add(self, item)

    async def scenario() -> None:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Plans")
            for text in ("one", "two", "three"):
                await client.send_text(ref, text)
            for _ in range(500):
                view = await client.room_view(ref)
                if view is not None and view.result is not None and len(view.result.timeline) >= 4:
                    break
                await asyncio.sleep(0.01)
            views.append(view)
        finally:
            await client.close()

    protocol_room_state.RoomState._add = noted  # type: ignore[method-assign]
    try:
        asyncio.run(scenario())
    finally:
        protocol_room_state.RoomState._add = real_add  # type: ignore[method-assign]
    assert folded_on and threading.main_thread().name not in folded_on
    (view,) = views
    assert view is not None and view.result is not None and view.roster is not None
    assert view.roster == MemberFold.of(view.result).roster()
    assert [m.display_name for m in view.roster.members()] == ["Alice"]
    carried = [e for e in events if isinstance(e, RoomLoaded | EventsAppended)]
    assert any(isinstance(e, EventsAppended) for e in carried)
    for e in carried:
        assert e.roster is not None and e.roster == MemberFold.of(e.result).roster()


def test_rows_placed_before_the_newest_are_folded_on_top() -> None:
    """Rows placed behind one dated a little ahead (``RoomLedger.try_place``, the keeper
    notes it in ``RoomState.moved``): the fold and the relations of the result before
    are carried over — the placed rows folded on top — equal to a full fold and build;
    a placed row of a sender not folded yet (listed first seen first) folds again."""
    from bucket_chat_desktop.protocol.relations import build as build_relations

    alice, bob = _Writer("alice@example.com", 1), _Writer("bob@example.com", 2)
    ledger = RoomLedger(ROOM, keep_bodies=False)
    room = RoomState(ROOM, ledger)
    now = T + 60_000
    first = [
        alice.ev(MEMBER, {"membership": "join", "displayname": "Alice"}, T),
        bob.ev(MEMBER, {"membership": "join", "displayname": "Bob"}, T + 1),
        bob.ev(MESSAGE, {"body": "fast clock", "msgtype": "m.text"}, now + 600_000),
    ]
    ledger.add_prepared(prepare_segment(path_for(first, "a"), encode_segment(first), ROOM))
    room.result = ledger.audit(now_ms=now)
    assert room.roster() is not None and room.relations() is not None
    fold = room.fold

    def place(*events: Event) -> None:
        prepared = prepare_segment(path_for(list(events), "c"), encode_segment(list(events)), ROOM)
        shown = room.result
        placed = ledger.try_place(ledger.add_prepared(prepared), now)
        assert placed is not None and placed.inserted and shown is not None
        room.result = ledger.result
        room.moved = (shown, room.result, placed.at, len(placed.rows))

    place(alice.ev(MESSAGE, {"body": "now", "msgtype": "m.text"}, now))
    assert room.roster() == _full(room) and room.fold is fold  # folded on top
    assert room.relations() == build_relations(ROOM, room.result.timeline)  # type: ignore[union-attr]
    # an unsigned line of someone not seen before (as the reference writes it)
    line = {
        "event_id": f"{ROOM}::{iso_utc_ms(now + 1)}::u1",
        "room_id": ROOM,
        "timestamp_ms": now + 1,
        "sender_id": "carol@example.com",
        "type": MESSAGE,
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "",
        "content": {"body": "unsigned", "msgtype": "m.text"},
    }
    shown = room.result
    data = json.dumps(line).encode() + b"\n"
    placed = ledger.try_place(
        ledger.add_prepared(prepare_segment(segment_path(ROOM, now + 1, now + 1, "u"), data, ROOM)),
        now,
    )
    assert placed is not None and placed.inserted and shown is not None
    room.result = ledger.result
    room.moved = (shown, room.result, placed.at, 1)
    assert room.roster() == _full(room) and room.fold is not fold  # a new sender: again
