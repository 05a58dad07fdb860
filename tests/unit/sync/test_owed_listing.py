"""A read on a notice that failed owes its room a listing soon (``poller.HINT_RETRY``).
That debt must never make the poller start rounds back to back, nor be lost: a round
that ends early (the storage does not answer its marker listing) owes it again
``HINT_RETRY`` s on, a room still being read does not shorten the wait, and the
listing runs once the storage answers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from test_engine import ROOM, Recorder, create_room, write_history

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.storage.base import ObjectInfo, StorageOfflineError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine

QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


class Unanswered(LocalStorage):
    """The room's folder, whose activity folder stops answering while ``silent``."""

    silent = False

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        if self.silent and prefix.startswith("activity/"):
            raise StorageOfflineError(f"cannot list {prefix}: no answer within 30 s")
        return await super().list_objects(prefix)


def room_in(tmp_path: Path) -> Unanswered:
    """A room with a little history, in ``Unanswered`` (written before any loop runs)."""
    store = Unanswered(tmp_path / "store")
    create_room(store)
    write_history(store, days=1, per_day=2)
    return store


@contextlib.asynccontextmanager
async def following(store: Unanswered, tmp_path: Path) -> AsyncIterator[SyncEngine]:
    """An engine that read the room of ``store``."""
    engine = SyncEngine(
        store, index=Index.open(tmp_path / "db" / "i.sqlite3"), listener=Recorder(), config=QUIET
    )
    try:
        await engine.open_room(ROOM, background=False)
        yield engine
    finally:
        await engine.close()


def test_a_listing_owed_never_starts_rounds_back_to_back(tmp_path: Path) -> None:
    store = room_in(tmp_path)

    async def go() -> None:
        async with following(store, tmp_path) as engine:
            poller, room = engine._poller, engine.rooms[ROOM]
            assert poller.next_wait() > 60

            room.listing_owed_at = time.monotonic() - 1  # due
            assert poller.next_wait() == 0  # a round now: the listing is due
            store.silent = True
            listed = room.last_safety
            assert await poller.poll_once() == 0  # ended early: the markers got no answer
            assert room.last_safety == listed  # nothing listed the room
            assert room.listing_owed_at is not None  # owed on (red team: it was dropped,
            assert 10 < poller.next_wait() <= 15  # and the message waited 4 hours)

            store.silent = False  # the storage answers again: the owed listing runs
            room.listing_owed_at = time.monotonic() - 1
            await poller.poll_once()
            assert room.last_safety > listed and room.listing_owed_at is None
            assert poller.next_wait() > 60  # the schedule's wait again

            room.complete = False  # still being read: that read lists what was unread
            room.listing_owed_at = time.monotonic() - 1
            assert poller.next_wait() > 60

    asyncio.run(go())


def test_owed_listings_in_a_row_back_off(tmp_path: Path) -> None:
    """Red team: a member who writes a junk segment and its marker every few seconds
    made every reader read the whole room again every 15 s (a read not kept leaves the
    room worth reading again), behind other windows too. Owed listings in a row now
    wait 15 s, 1, 4, then 16 minutes; after a quiet hour, 15 s again."""
    from bucket_chat_desktop.sync import poller as poller_module

    store = room_in(tmp_path)

    async def go() -> None:
        async with following(store, tmp_path) as engine:
            poller, room = engine._poller, engine.rooms[ROOM]
            waits = []
            named = f"{logs_prefix(ROOM)}2026-01-01/messages_1_1_x.jsonl"
            for _ in range(5):
                poller._owe_listing(ROOM, named)
                assert room.listing_owed_at is not None
                waits.append(round(room.listing_owed_at - time.monotonic()))
                room.listing_owed_at = time.monotonic() - 1  # its time came
                await poller.poll_once()  # its listing runs
                assert room.listing_owed_at is None
            assert waits == [15, 60, 240, 960, 960]
            room.owed_taken_at -= poller_module.OWED_QUIET  # an hour without one
            poller._owe_listing(ROOM, named)
            assert room.listing_owed_at is not None
            assert round(room.listing_owed_at - time.monotonic()) == 15

    asyncio.run(go())
