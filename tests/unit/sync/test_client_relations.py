"""Replies, reactions, edits and deletions through the ChatClient on a real local folder,
index and engine: what is sent is what every reader's relations show (PROTOCOL.md 18)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from local_client import local_client
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import RoomLedger, prepare_segment
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import segment_path
from bucket_chat_desktop.protocol.relations import EDIT, REACTION, TYPING, Relations
from bucket_chat_desktop.protocol.relations import build as build_relations
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import room_state as room_state_module
from bucket_chat_desktop.sync.client import ChatClient, RoomRef
from bucket_chat_desktop.sync.events import EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.room_state import RoomState
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ALICE = "alice@example.com"
ROOM = "room-1"


async def _settled(client: ChatClient, ref: RoomRef, sent: list[str]) -> Relations:
    """The room's relations once every event id in ``sent`` is in the published result."""
    for _ in range(1000):
        view = await client.room_view(ref)
        if view is not None and view.result is not None and view.relations is not None:
            ids = {a.event.event_id for a in view.result.timeline}
            if set(sent) <= ids:
                return view.relations
        await asyncio.sleep(0.01)
    raise AssertionError("the sent events never reached the room's view")


def test_reply_react_edit_delete_through_the_client(tmp_path: Path) -> None:
    client, entry, events = local_client(tmp_path)

    async def scenario() -> None:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Plans")
            [msg] = await client.send_text(ref, "teh plan")
            [reply] = await client.send_text(ref, "sounds good", reply_to=msg.event_id)
            assert reply.parent_event_id == msg.event_id
            [r1] = await client.react(ref, msg.event_id, " 👍 ")
            assert r1.content == {"relates_to": msg.event_id, "reaction": "👍"}
            [e1] = await client.edit_message(ref, msg.event_id, "the plan")
            rel = await _settled(
                client, ref, [msg.event_id, reply.event_id, r1.event_id, e1.event_id]
            )
            agg = rel.of(msg.event_id)
            assert agg is not None and agg.latest is not None and agg.latest.body == "the plan"
            assert agg.reactions[0].key == "👍" and agg.reactions[0].all_verified
            assert agg.thread == (reply.event_id,) and rel.findings == ()
            assert len(rel.hidden) == 2  # the reaction and the edit are not rows

            # taking the reaction back redacts it; deleting the reply hides it
            [un] = await client.unreact(ref, msg.event_id, "👍")
            assert un.content == {"redacts": r1.event_id}
            assert await client.unreact(ref, msg.event_id, "🎉") == []  # none of mine
            [gone] = await client.delete_event(ref, reply.event_id, " sent too early ")
            rel = await _settled(client, ref, [un.event_id, gone.event_id])
            assert rel.of(msg.event_id).reactions == ()  # type: ignore[union-attr]
            red = rel.of(reply.event_id).redacted  # type: ignore[union-attr]
            assert red is not None and red.reason == "sent too early"

            # appends and full audits both carry the relations to front ends
            appended = [e for e in events if isinstance(e, EventsAppended) and e.relations]
            loaded = [e for e in events if isinstance(e, RoomLoaded)]
            assert appended or any(e.relations is not None for e in loaded)

            for bad in ("", "x" * 65, "a\nb", "\u202e"):
                with pytest.raises(ValueError):
                    await client.react(ref, msg.event_id, bad)
            with pytest.raises(ValueError, match="not an event of room"):
                await client.react(ref, "other-room::2025-01-01T00:00:00Z::u", "👍")
            with pytest.raises(ValueError):
                await client.edit_message(ref, msg.event_id, "   ")
        finally:
            await client.close()

    asyncio.run(scenario())


def test_relations_are_rebuilt_only_when_new_rows_can_change_them() -> None:
    """RoomState.relations on appended results (as the keeper makes them): plain rows keep
    the same Relations object; a relation, or the row a waiting relation names, makes new
    ones. A full audit makes new ones too."""
    key = SigningKey(bytes(range(32)))
    state: dict[str, Any] = {"prev": None, "n": 0}

    def ev(kind: str, content: dict[str, Any], ts: int) -> Event:
        state["n"] += 1
        e = build_event(
            room_id=ROOM,
            sender_id=ALICE,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=f"{state['n']:08x}-0000-4000-8000-000000000000",
            prev_event_hash=state["prev"],
            signing_key=key,
        )
        state["prev"] = e.hash
        return e

    ledger = RoomLedger(ROOM, keep_bodies=False)
    room = RoomState(ROOM, ledger)

    def append(*events: Event) -> None:
        prepared = prepare_segment(path_for(list(events), "c"), encode_segment(list(events)), ROOM)
        added = ledger.add_prepared(prepared)
        assert ledger.try_append(added) is not None  # an exact append
        assert ledger.result is not None
        room.result = ledger.result

    t = 1757851245000
    join = ev(MEMBER, {"membership": "join"}, t)
    first_msg = ev(MESSAGE, {"body": "x", "msgtype": "m.text"}, t + 1)
    ledger.add_prepared(
        prepare_segment(path_for([join, first_msg], "c"), encode_segment([join, first_msg]), ROOM)
    )
    room.result = ledger.audit()
    first = room.relations()
    assert first is not None and room.relations() is first

    append(ev(MESSAGE, {"body": "plain", "msgtype": "m.text"}, t + 2))
    assert room.relations() is first  # a plain row cannot change them

    later_id = f"{ROOM}::2025-09-14T12:00:45.900Z::ffffffff-0000-4000-8000-000000000000"
    append(ev(REACTION, {"relates_to": later_id, "reaction": "👍"}, t + 3))
    waiting = room.relations()
    assert waiting is not first and waiting is not None and waiting.waiting_for == {later_id}

    append(ev(MESSAGE, {"body": "more", "msgtype": "m.text"}, t + 4))
    assert room.relations() is waiting  # still waiting, and this row is not the target

    append(ev(REACTION, {"relates_to": first_msg.event_id, "reaction": "🎉"}, t + 5))
    now = room.relations()
    assert now is not waiting and now is not None
    assert now.of(first_msg.event_id).reactions[0].key == "🎉"  # type: ignore[union-attr]
    assert list(now.hidden) == [3, 5]

    room.result = ledger.audit()  # a full audit: rebuilt, the same content
    again = room.relations()
    assert again is not now and again == now

    # Typing notices, one append each (red team: a thousand of them rebuilt the room's
    # relations a thousand times): hidden without a rebuild, the same as a full build.
    calls: list[int] = []
    real = room_state_module.build_relations

    def counted(*args: Any) -> Relations:
        calls.append(1)
        return real(*args)

    room_state_module.build_relations = counted  # type: ignore[assignment]
    try:
        for i in range(20):
            append(ev(TYPING, {"typing": True}, t + 10 + i))
            typed = room.relations()
        assert typed is not None and calls == []
        assert list(typed.hidden) == [3, 5, *range(6, 26)]
        assert typed == build_relations(ROOM, room.result.timeline)  # type: ignore[union-attr]
        append(ev(REACTION, {"relates_to": first_msg.event_id, "reaction": "🚀"}, t + 40))
        rocket = room.relations()
        # A relation: extended by reading the new row only, the same as a full build.
        assert rocket is not typed and rocket is not None and calls == []
        assert rocket == build_relations(ROOM, room.result.timeline)  # type: ignore[union-attr]
        room.result = ledger.audit()  # a full audit: built anew
        assert room.relations() == rocket and calls == [1]
    finally:
        room_state_module.build_relations = real  # type: ignore[assignment]


def test_taking_back_a_reaction_redacts_only_ones_own(tmp_path: Path) -> None:
    """Red team: 500 unsigned reactions planted under Alice's id. They count (marked
    unverified), but they are not hers: her one click to take back her 👍 redacted every
    one of them (500 events written; 100,000 planted, 100,000 written). Now it redacts
    her verified reaction only; with none of hers, nothing is written at all."""
    client, entry, _ = local_client(tmp_path)

    def planted(target: str, key: str, name: str, n: int) -> bytes:
        lines = []
        for i in range(n):
            ev = {
                "event_id": f"{ROOM}::2026-01-01T00:00:00.000Z::{name}{i}",
                "room_id": ROOM,
                "timestamp_ms": 1_767_225_600_000 + i,
                "sender_id": ALICE,
                "type": REACTION,
                "parent_event_id": None,
                "prev_event_hash": None,
                "signature": "",
                "content": {"relates_to": target, "reaction": key},
            }
            lines.append(json.dumps(ev).encode() + b"\n")
        return b"".join(lines)

    async def scenario() -> None:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Plans")
            [msg] = await client.send_text(ref, "ship it?")
            [mine] = await client.react(ref, msg.event_id, "👍")
            for key, name, n in (("👍", "thumbs", 500), ("🎉", "party", 50)):
                where = segment_path(ROOM, 1_767_225_600_000, 1_767_225_600_999, name)
                path = Path(entry.spec) / where
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(planted(msg.event_id, key, name, n))
            await client.reaudit(ref)
            planted_id = f"{ROOM}::2026-01-01T00:00:00.000Z::party0"
            rel = await _settled(client, ref, [msg.event_id, mine.event_id, planted_id])
            chips = {c.key: c for c in rel.of(msg.event_id).reactions}  # type: ignore[union-attr]
            reactor = chips["👍"].by(ALICE)
            assert reactor is not None and len(reactor.event_ids) == 501
            assert reactor.state == "verified"  # her own among them (counted once)
            [un] = await client.unreact(ref, msg.event_id, "👍")
            assert un.content == {"redacts": mine.event_id}
            assert await client.unreact(ref, msg.event_id, "🎉") == []  # none is hers
        finally:
            await client.close()

    asyncio.run(scenario())


def test_an_edit_of_a_planted_edit_under_ones_id_is_refused(tmp_path: Path) -> None:
    """Red team: an unsigned edit planted under Alice's id that "replaces" someone else's
    message passed ``edit_message``'s sender check (it read the edit, not the message it
    edits): her signed edit of that message went out, ignored by every reader and
    reported as hers. Refused now; her own edit's edit names her message, keeps its text
    type, and the text shown already is not sent again."""
    client, entry, _ = local_client(tmp_path)
    other = f"{ROOM}::2026-01-01T00:00:00.000Z::bobs"
    line = {
        "event_id": other,
        "room_id": ROOM,
        "timestamp_ms": 1_767_225_600_000,
        "sender_id": "bob@example.com",
        "type": MESSAGE,
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "",
        "content": {"body": "bob's", "msgtype": "m.text"},
    }
    forged = {
        **line,
        "event_id": f"{ROOM}::2026-01-01T00:00:00.000Z::forged",
        "timestamp_ms": 1_767_225_600_001,
        "sender_id": ALICE,
        "type": "m.room.edit",
        "content": {"replaces": other, "new_content": {"body": "x", "msgtype": "m.text"}},
    }

    async def scenario() -> None:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Plans")
            [msg] = await client.send_content(ref, {"body": "note", "msgtype": "m.notice"})
            where = segment_path(ROOM, 1_767_225_600_000, 1_767_225_600_001, "mallory")
            path = Path(entry.spec) / where
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in (line, forged)))
            await client.reaudit(ref)
            await _settled(client, ref, [msg.event_id, forged["event_id"]])
            with pytest.raises(ValueError, match="readers ignore"):
                await client.edit_message(ref, forged["event_id"], "an innocent fix")
            [e1] = await client.edit_message(ref, msg.event_id, "a note")
            await _settled(client, ref, [e1.event_id])
            [e2] = await client.edit_message(ref, e1.event_id, "the note")
            assert e2.content == {
                "replaces": msg.event_id,
                "new_content": {"body": "the note", "msgtype": "m.notice"},
            }
            rel = await _settled(client, ref, [e2.event_id])
            assert rel.of(msg.event_id).latest.body == "the note"  # type: ignore[union-attr]
            assert await client.edit_message(ref, e2.event_id, "the note") == []
        finally:
            await client.close()

    asyncio.run(scenario())


def test_an_edit_of_ones_unsent_edit_of_a_notice_keeps_it_a_notice(tmp_path: Path) -> None:
    """The app's audit keeps no bodies (``keep_bodies=False``): an edit of one's own edit
    still in the outbox, of a notice with no applied edit yet, read the notice's msgtype
    from its bodiless row and went out as plain text."""
    client, entry, _ = local_client(tmp_path)

    async def scenario() -> None:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Plans")
            [msg] = await client.send_content(ref, {"body": "note", "msgtype": "m.notice"})
            await _settled(client, ref, [msg.event_id])
            # shown once delivered, but out of the outbox only after its marker: wait
            assert await client.flush(entry.id, 5)
            engine = client._storages[entry.id].engine
            assert not engine.config.keep_bodies  # as in the app
            # what is composed now waits in the outbox (a burst's window, made long)
            engine.config = dataclasses.replace(engine.config, batch_window=60.0)
            [e1] = await client.edit_message(ref, msg.event_id, "a note")
            assert [p.event_id for p in await client.pending(entry.id)] == [e1.event_id]
            [e2] = await client.edit_message(ref, e1.event_id, "the note")
            assert e2.content == {
                "replaces": msg.event_id,
                "new_content": {"body": "the note", "msgtype": "m.notice"},
            }
            # the same text as the message shows is not sent again
            assert await client.edit_message(ref, e1.event_id, "note") == []
        finally:
            await client.close()

    asyncio.run(scenario())


def test_what_the_audit_refuses_is_refused_before_the_edited_message_is_read(
    tmp_path: Path,
) -> None:
    """An edit of an edit read the message that edit edits before asking the audit whether
    the edit may be sent: with that message's cached line damaged, the person was told
    "cannot read" instead of why it is refused (not theirs, ignored by readers). The
    audit's verdict decides first; only an edit it would send reads the message, and then
    "cannot read" is the answer. A deletion of an edit needs no message: it goes out."""
    client, entry, _ = local_client(tmp_path)
    bob = RoomWriter(
        LocalStorage(Path(entry.spec)), ROOM, "bob@example.com", SigningKey(b"\2" * 32)
    )

    async def scenario() -> None:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Plans")
            assert await client.flush(entry.id, 5)
            _, [_join, theirs] = await bob.send([Draft.text("bob's")])
            replaces = {"replaces": theirs.event_id}
            new = {"new_content": {"body": "bob's!", "msgtype": "m.text"}}
            _, [their_edit] = await bob.send([Draft(EDIT, {**replaces, **new})])
            [mine] = await client.send_text(ref, "mine")
            [my_edit] = await client.edit_message(ref, mine.event_id, "mine!")
            # an unsigned edit of Bob's message planted under Alice's id: readers ignore it
            forged = {
                "event_id": f"{ROOM}::2026-01-01T00:00:00.000Z::forged",
                "room_id": ROOM,
                "timestamp_ms": 1_767_225_600_000,
                "sender_id": ALICE,
                "type": EDIT,
                "parent_event_id": None,
                "prev_event_hash": None,
                "signature": "",
                "content": {**replaces, **new},
            }
            where = Path(entry.spec) / segment_path(ROOM, *(2 * [forged["timestamp_ms"]]), "m")
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_bytes(json.dumps(forged).encode() + b"\n")
            await client.reaudit(ref)
            ids = [theirs.event_id, their_edit.event_id, mine.event_id, my_edit.event_id]
            rel = await _settled(client, ref, [*ids, str(forged["event_id"])])
            assert rel.edit_of.get(their_edit.event_id) == theirs.event_id
            assert rel.edit_of.get(my_edit.event_id) == mine.event_id
            assert str(forged["event_id"]) not in rel.edit_of
            # both messages' cached lines damaged (someone with access to this device)
            index = client._storages[entry.id].index
            assert index is not None and index.path is not None
            with sqlite3.connect(index.path) as conn:
                for ev in (theirs, mine):
                    conn.execute(
                        "UPDATE events SET raw = replace(raw, ?, ?) WHERE event_id = ?",
                        (ev.body, "tampered", ev.event_id),
                    )
            with pytest.raises(ValueError, match="is not yours"):
                await client.edit_message(ref, their_edit.event_id, "not mine to fix")
            with pytest.raises(ValueError, match="readers ignore"):
                await client.edit_message(ref, str(forged["event_id"]), "an innocent fix")
            with pytest.raises(ValueError, match="cannot read"):
                await client.edit_message(ref, my_edit.event_id, "mine!!")
            [deletion] = await client.delete_event(ref, my_edit.event_id)
            assert deletion.content == {"redacts": my_edit.event_id}
        finally:
            await client.close()

    asyncio.run(scenario())
