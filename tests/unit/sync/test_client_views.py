"""What a front end may ask the ChatClient, on a real local folder, index and engine: plain
values made on the engine's serial worker, never the engine's live room state or its index."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest
from local_client import local_client
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index, index_path_for
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.storage.local import folder_identity
from bucket_chat_desktop.sync.client import RoomRef
from bucket_chat_desktop.sync.engine import CachedRoom, RoomView
from bucket_chat_desktop.sync.events import RoomDiscovered, RoomLoaded, StorageStatus

ALICE = "alice@example.com"
ROOM = "room-1"


def test_room_view_confirmed_keys_and_mark_verified_hand_back_values(tmp_path: Path) -> None:
    client, entry, events = local_client(tmp_path)
    bob_key = b64encode(bytes(SigningKey(bytes(range(1, 33))).verify_key))

    async def scenario() -> tuple[RoomView | None, ...]:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Launch plans")
            before = await client.confirmed_keys(entry.id)
            await client.mark_verified(entry.id, "bob@example.com", bob_key)
            after = await client.confirmed_keys(entry.id)
            assert before == frozenset() and after == frozenset({("bob@example.com", bob_key)})
            assert isinstance(after, frozenset)
            assert await client.confirmed_keys("no-such-storage") == frozenset()
            with pytest.raises(KeyError):
                await client.mark_verified("no-such-storage", "bob@example.com", bob_key)
            # The view is what the engine's state thread last published (at once, never
            # queued behind its work): once the complete audit was reported, that one.
            while not any(isinstance(e, RoomLoaded) and e.complete for e in events):
                await asyncio.sleep(0.01)
            view = await client.room_view(ref)
            missing_room = await client.room_view(RoomRef(entry.id, "no-such-room"))
            missing_storage = await client.room_view(RoomRef("nowhere", ROOM))
            return view, missing_room, missing_storage
        finally:
            await client.close()

    view, missing_room, missing_storage = asyncio.run(scenario())
    assert missing_room is None and missing_storage is None
    assert view is not None and view.room_id == ROOM
    assert view.metadata is not None and view.metadata.name == "Launch plans"
    assert isinstance(view.metadata_findings, tuple) and not view.metadata_findings
    assert view.result is not None and view.complete and not view.partial
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.complete = False  # type: ignore[misc]

    # the room's metadata reaches the front end with the audit, not through engine.rooms
    loaded = [e for e in events if isinstance(e, RoomLoaded) and e.metadata is not None]
    assert loaded and loaded[-1].metadata is not None
    assert loaded[-1].metadata.name == "Launch plans"
    assert loaded[-1].metadata_findings == ()

    # the confirmation is in the storage's index file, as a pin the user made
    index = Index.open(index_path_for(tmp_path / "data", folder_identity(entry.spec)))
    try:
        assert index.user_verified_keys() == {("bob@example.com", bob_key)}
    finally:
        index.close()


def test_cached_rooms_hand_back_what_the_index_knows_as_values(tmp_path: Path) -> None:
    """What ``bucket-chat rooms`` shows when the storage does not answer: the index's rooms
    with their names and the time of the last complete read, asked through the engine."""
    client, entry, _ = local_client(tmp_path)

    async def scenario() -> tuple[CachedRoom, ...]:
        await client.attach(entry)
        try:
            assert await client.cached_rooms(entry.id) == ()
            await client.create_room(entry.id, ROOM, "Launch plans")
            for _ in range(500):  # the first complete read runs in the background
                known = await client.cached_rooms(entry.id)
                if known and known[0].last_read is not None:
                    break
                await asyncio.sleep(0.01)
            assert await client.cached_rooms("no-such-storage") == ()
            return known
        finally:
            await client.close()

    before = time.time()
    (room,) = asyncio.run(scenario())
    assert (room.room_id, room.name) == (ROOM, "Launch plans")
    assert room.last_read is not None and before <= room.last_read <= time.time()
    with pytest.raises(dataclasses.FrozenInstanceError):
        room.name = "changed"  # type: ignore[misc]


def test_event_by_id_hands_back_the_row_with_its_body_and_verdict(tmp_path: Path) -> None:
    """What a reaction, reply, edit or deletion is decided on, in the app and the command
    line alike: the app's audit keeps no bodies, so the body comes from the index, checked
    to be the event the audit judged; an id the audit does not show is None."""
    from bucket_chat_desktop.protocol.audit import TrustState
    from bucket_chat_desktop.protocol.event import Event

    client, entry, _ = local_client(tmp_path)

    async def scenario() -> tuple[object, ...]:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, ROOM, "Launch plans")
            (sent,) = await client.send_text(ref, "launch on Monday")
            await client.flush(entry.id, 5)
            while True:
                view = await client.room_view(ref)
                assert view is not None
                if view.result is not None and view.result.timeline.position_of(sent.event_id):
                    break
                await asyncio.sleep(0.01)
            assert view.result is not None
            slim = view.result.timeline[-1].event  # the app's audit: no body in memory
            found = await client.event_by_id(ref, view.result, sent.event_id)
            nowhere = await client.event_by_id(ref, view.result, f"{ROOM}::no-such-event")
            detached = await client.event_by_id(RoomRef("gone", ROOM), view.result, sent.event_id)
            return slim, found, nowhere, detached, sent
        finally:
            await client.close()

    slim, found, nowhere, detached, sent = asyncio.run(scenario())
    assert isinstance(sent, Event) and isinstance(slim, Event) and slim.body is None
    assert found is not None and nowhere is None and detached is None
    assert isinstance(found.event, Event) and found.event.body == "launch on Monday"  # type: ignore[attr-defined]
    assert found.verdict.event.event_id == sent.event_id  # type: ignore[attr-defined]
    assert found.verdict.state is TrustState.VERIFIED  # type: ignore[attr-defined]


def test_a_room_view_has_relations_and_a_roster_exactly_with_a_result(tmp_path: Path) -> None:
    """Front ends take a view's relations and roster as they are (no fallback that builds
    them again): a view that had a result without them could not be made."""
    from bucket_chat_desktop.protocol.audit import RoomLedger
    from bucket_chat_desktop.protocol.relations import Relations
    from bucket_chat_desktop.protocol.room_state import RoomState as MemberFold

    result = RoomLedger(ROOM).audit()
    rel, roster = Relations(ROOM), MemberFold().roster()
    assert RoomView(ROOM, result, None, (), True, False, rel, roster).relations is rel
    assert RoomView(ROOM, None, None, (), False, False).relations is None
    for made in ((None, roster), (rel, None), (None, None)):
        with pytest.raises(ValueError, match="exactly with a result"):
            RoomView(ROOM, result, None, (), True, False, *made)
    with pytest.raises(ValueError, match="exactly with a result"):
        RoomView(ROOM, None, None, (), False, False, rel, roster)


def test_an_engine_detached_speaks_no_more_for_its_storage(tmp_path: Path) -> None:
    """Detached, its engine still stopping, a storage is attached again under the same
    id: what the old engine says from then on (its last status, a room it found) is not
    the storage's; only the engine attached now speaks for it."""
    client, entry, events = local_client(tmp_path)
    late = StorageStatus(False, "not answering since 12:00")

    async def scenario() -> None:
        await client.attach(entry, start=False)
        old = client._storages[entry.id].engine
        old._emit(late)
        assert events == [late]  # attached: its engine speaks for it
        closing = client.detach(entry.id)
        assert not client.is_attached(entry.id)  # at once, before it stopped
        old._emit(late)
        await client.attach(entry, start=False)
        new = client._storages[entry.id].engine
        old._emit(late)  # still stopping
        await closing
        old._emit(RoomDiscovered(ROOM))  # stopped, late
        new._emit(late)
        await client.close()

    asyncio.run(scenario())
    assert events == [late, late]  # the first engine's while attached, the new one's
