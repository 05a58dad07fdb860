"""A hostile writer puts an object under a day folder whose name this app refuses as an
object path (a backslash in it: S3 and GCS take any key). The listing of days named it;
listing that day raised "refusing unsafe object path", so every pass of every reader
ended as the storage offline and the room not completely read, for good. Such a name
holds no segment (a day is named as a date): it is passed over, and the room reads
whole. Runs on the emulators that keep such a key (Azure turns the backslash into a
slash)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.sync.engine import SyncEngine

from .conftest import Stores
from .test_rewritten_segments import ROOM, put_object, room_written


async def test_a_day_folder_with_an_unsafe_name_does_not_stop_the_room_being_read(
    cloud_stores: Stores, tmp_path: Path
) -> None:
    stores = cloud_stores
    if stores.kind == "az":
        pytest.skip("Azure names blobs with a slash where a backslash is given")
    await room_written(stores, SigningKey.generate(), ("hello one",), ("hello two",))
    put_object(stores, f"rooms/{ROOM}/logs/zz\\z/junk.jsonl", b"junk")
    engine = SyncEngine(stores.new(), index=(index := Index.open(tmp_path / "index.sqlite3")))
    try:
        room = await engine.open_room(ROOM, background=False)
        assert engine.online, engine.status_message
        assert room.result is not None and not room.partial, room.unlisted
        bodies = [a.event.body for a in room.result.timeline if a.event.type == MESSAGE]
        assert bodies == ["hello one", "hello two"]
        await engine.refresh(ROOM)
        assert not room.partial and engine.online
    finally:
        await engine.close()
        index.close()
