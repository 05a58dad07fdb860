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
from bucket_chat_desktop.sync.client import RoomRef
from bucket_chat_desktop.sync.engine import CachedRoom, RoomView
from bucket_chat_desktop.sync.events import RoomLoaded

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
            assert before == frozenset() and after == frozenset({bob_key})
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
    index = Index.open(index_path_for(tmp_path / "data", entry.spec))
    try:
        assert index.user_verified_keys() == {bob_key}
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
