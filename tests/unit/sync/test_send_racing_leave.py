"""A message whose segment is written while its room is left (``leave_room``: the send
was queued just before): the lane that wrote it hands it to the room as this device's
news, and the room left meanwhile must not take it — nothing of a room left is kept or
said (``SyncEngine.drop_room``), and a room joined again is read from the start, not
from the audit of the room object dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from held_storage import LIMIT, ROUNDS, until
from nacl.signing import SigningKey

from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import ChatClient
from bucket_chat_desktop.sync.events import EngineEvent, OutboxChanged
from bucket_chat_desktop.sync.writer import RoomWriter

ROOM = "left-room"
ALICE = "alice@example.com"
KEY = SigningKey(bytes([1]) * 32)


def test_a_send_written_while_its_room_is_left_is_not_kept_in_it(tmp_path: Path) -> None:
    async def go() -> None:
        root = tmp_path / "store"
        await RoomWriter(LocalStorage(root), ROOM, ALICE, KEY).create_room(
            "R", "2025-09-14T12:00:45.000Z"
        )
        events: list[EngineEvent] = []
        async with ChatClient.session(
            LocalStorage(root),
            identity=(ALICE, KEY),
            start=True,
            listener=events.append,
            config=ROUNDS,
            data_dir=tmp_path / "data",
        ) as client:
            ref = client.room(ROOM)
            await client.open_room(ref, wait=True)
            room = client._storages[ref.storage_id].engine.rooms[ROOM]
            # The room is busy (a poll's ingest holds its lock): the lane that wrote the
            # message waits for it to hand the message over as this device's news.
            await room.lock.acquire()
            await client.send_text(ref, "last words")
            await until("the lane waits for the room", lambda: bool(room.lock._waiters))
            await client.leave_room(ref)
            told = len(events)
            room.lock.release()
            assert await client.flush(ref.storage_id, LIMIT)  # the message and the leave
            await asyncio.sleep(0)
            said = [e for e in events[told:] if not isinstance(e, OutboxChanged)]
            assert said == [], "a room left said something"
            assert "last words" not in [a.event.body for a in room.ledger.result.timeline]  # type: ignore[union-attr]
            sent = [e for e in events if isinstance(e, OutboxChanged) and e.state == "sent"]
            assert [ev.body for e in sent for ev in e.events][-2:] == ["last words", None]

    asyncio.run(go())
