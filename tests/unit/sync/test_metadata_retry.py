"""A room's metadata read that failed (a timeout, a server error) is made again on the
poller's rounds, with a backoff, until it succeeds: the room gets its name without being
opened again, and the front end learns it from a ``RoomLoaded``. Then it is read no more."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from held_storage import ROUNDS, AsBucket, Held, until
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.ids import metadata_path
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded
from bucket_chat_desktop.sync.schedule import METADATA_RETRY_MAX, metadata_retry_delay
from bucket_chat_desktop.sync.writer import RoomWriter

ROOM = "quiet-room"
ALICE = "alice@example.com"
KEY = SigningKey(bytes([1]) * 32)
CREATED = "2025-09-14T12:00:45.000Z"
# A failed metadata read is due again at once.
AT_ONCE = dataclasses.replace(ROUNDS, metadata_retry=0.0)


def test_a_failed_metadata_read_is_made_again_by_the_rounds_until_it_succeeds(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        root = tmp_path / "store"
        await RoomWriter(LocalStorage(root), ROOM, ALICE, KEY).create_room("Quiet", CREATED)
        meta = metadata_path(ROOM)
        store = Held(root, fail=lambda what, path: path == meta)  # it times out, for now
        seen: list[EngineEvent] = []
        index = Index.open(tmp_path / "index.sqlite3")
        engine = SyncEngine(AsBucket(store), index=index, listener=seen.append, config=AT_ONCE)
        try:
            await engine.open_room(ROOM, background=False)
            view = await engine.room_view(ROOM)
            assert view is not None and view.result is not None and view.metadata is None
            await engine.start()

            def metadata_reads() -> int:
                return store.asked.count(("get", meta))

            await until("reads again", lambda: metadata_reads() >= 3)  # each round, failing

            store.fail = lambda what, path: False  # the storage answers again
            told = [e for e in seen if isinstance(e, RoomLoaded)]
            await until(
                "the name, told",
                lambda: any(
                    isinstance(e, RoomLoaded) and e.metadata and e.metadata.name == "Quiet"
                    for e in seen[len(told) :]
                ),
            )
            assert await engine.room_name(ROOM) == "Quiet"  # in the index too
            view = await engine.room_view(ROOM)
            assert view is not None and view.metadata is not None

            reads, polls = metadata_reads(), engine.polls
            await until("two more rounds", lambda: engine.polls >= polls + 2)
            assert metadata_reads() == reads  # read: not asked again
        finally:
            await engine.close()
            index.close()

    asyncio.run(go())


def test_the_wait_before_reading_metadata_again_doubles_up_to_a_bound() -> None:
    assert [metadata_retry_delay(5.0, n) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert metadata_retry_delay(5.0, 30) == METADATA_RETRY_MAX
    # a storage out for a week (a failure every 10 minutes): 2.0 ** 1100 overflowed, the
    # read failed with an OverflowError before its next time was set, and every polling
    # round read the metadata again
    assert metadata_retry_delay(5.0, 1100) == METADATA_RETRY_MAX
