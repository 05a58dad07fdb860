"""A room's metadata read that gets no answer (a real folder whose ``metadata.json``
request hangs, as one request on a dead connection does while others go through) holds
up nothing else in the room: this device's own message is delivered, indexed and shown
meanwhile, the metadata comes once the storage answers, and it is read once however many
opens wait for it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import RoomWriter

ROOM = "quiet-room"
ALICE = "alice@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
QUIET = SyncConfig(batch_window=0.0, local_rescan=3600.0, active_interval=3600.0)
KEY = SigningKey(bytes([1]) * 32)


class MetadataHangs(LocalStorage):
    """The folder, except that a room's metadata request gets no answer until
    ``answering`` is set (everything else answers as usual)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.answering = asyncio.Event()
        self.asked = 0

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if path.endswith("/metadata.json"):
            self.asked += 1
            await self.answering.wait()
        return await super().get(path, max_bytes=max_bytes)


def bodies(event: EngineEvent) -> list[str | None]:
    if isinstance(event, RoomLoaded):
        return [a.event.body for a in event.result.timeline]
    if isinstance(event, EventsAppended):
        return [a.event.body for a in event.items]
    return []


def test_a_send_is_delivered_and_shown_while_the_rooms_metadata_read_hangs(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        root = tmp_path / "store"
        await RoomWriter(LocalStorage(root), ROOM, ALICE, KEY).create_room("Quiet", CREATED)
        store = MetadataHangs(root)
        seen: list[EngineEvent] = []
        index = Index.open(tmp_path / "index.sqlite3")
        box = Outbox(tmp_path / "outbox.sqlite3")
        engine = SyncEngine(store, index=index, outbox=box, listener=seen.append, config=QUIET)
        try:
            first = asyncio.create_task(engine.open_room(ROOM))
            second = asyncio.create_task(engine.open_room(ROOM, focus=False))
            while store.asked == 0:
                await asyncio.sleep(0.01)
            msg = [(MESSAGE, {"body": "while it hangs", "msgtype": "m.text"})]
            await asyncio.wait_for(engine.send(ROOM, ALICE, KEY, msg), 5)
            # Delivered, then taken into the room as this device's own news (under the
            # room's lock), while the metadata read still waits.
            assert await asyncio.wait_for(engine.flush(timeout=5), 5)
            view = await engine.room_view(ROOM)
            assert view is not None and view.result is not None
            assert "while it hangs" in [a.event.body for a in view.result.timeline]
            assert any("while it hangs" in bodies(e) for e in seen)  # shown
            # Indexed (the join comes with the history, read once the metadata is there).
            assert await engine.timeline_length(ROOM) == 1
            assert view.metadata is None and not first.done() and not second.done()

            store.answering.set()  # the storage answers again
            await asyncio.wait_for(asyncio.gather(first, second), 5)
            assert store.asked == 1  # one read for both opens
            view = await engine.room_view(ROOM)
            assert view is not None and view.metadata is not None
            assert view.metadata.name == "Quiet"
            assert await engine.room_name(ROOM) == "Quiet"
            reading = engine.rooms[ROOM].backfill  # one history read for both opens
            assert reading is not None
            await asyncio.wait_for(reading, 5)
            assert await engine.timeline_length(ROOM) == 2  # the join and the message
        finally:
            await engine.close()
            box.close()
            index.close()

    asyncio.run(go())


def test_closing_while_the_metadata_read_hangs_ends_the_read_and_the_open(
    tmp_path: Path,
) -> None:
    """``close`` cancels the read; the open waiting for it returns (nothing is applied
    to a closed engine, nothing is left running)."""

    async def go() -> Any:
        root = tmp_path / "store"
        await RoomWriter(LocalStorage(root), ROOM, ALICE, KEY).create_room("Quiet", CREATED)
        store = MetadataHangs(root)
        engine = SyncEngine(store, config=QUIET)
        opening = asyncio.create_task(engine.open_room(ROOM))
        while store.asked == 0:
            await asyncio.sleep(0.01)
        await asyncio.wait_for(engine.close(), 5)
        room = await asyncio.wait_for(opening, 5)
        assert room.metadata is None and room.backfill is None
        read = room.metadata_read
        assert read is not None and read.cancelled()

    asyncio.run(go())
