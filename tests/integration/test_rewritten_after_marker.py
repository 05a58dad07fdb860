"""Red team rt70: a segment read first on its activity marker, rewritten in the bucket.

Write-once segments: one this device read and checked that a later listing shows with
other bytes is reported "changed in storage" (docs/SECURITY.md). A read on a marker (a
hint: no listed size, no listed checksum) kept no checksum, so the first listing's tag
of the rewritten bytes was taken as the one to compare from then on: a same-size
rewrite between the marker read and that listing was never reported, not even after a
restart. The hint's read keeps the MD5 of the bytes read now, as this device's own
writes do (``storage.tag_of_written``). Runs on the three emulators."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox

from . import _emulators as emu
from .conftest import Stores
from .test_conformance import _send
from .test_rewritten_segments import (
    ALICE,
    ROOM,
    _rewrite_at_the_same_size,
    _same_size_other_bytes,
    room_written,
)


async def _read_on_its_marker(reader: SyncEngine, writer: SyncEngine, key: SigningKey) -> str:
    """The writer sends "hello two"; the reader reads it on its activity marker (a hint
    read, no listing). The segment's path."""
    room = reader.rooms[ROOM]
    held = set(room.known)
    await _send(writer, ALICE, key, "hello two")
    await reader.poll_once()  # the activity marker names it: read on the hint
    for task in list(reader._poller._hint_readers.values()):
        await task
    new = set(room.known) - held
    assert len(new) == 1, new
    (segment,) = new
    assert room.reaudit is None or await room.reaudit is None
    assert room.result is not None
    bodies = [a.event.body for a in room.result.timeline if a.event.type == MESSAGE]
    assert bodies == ["hello one", "hello two"]
    return segment


def _rewrite_unhashed(stores: Stores, path: str, data: bytes) -> None:
    """Rewritten so that the service lists no MD5 of the new bytes (Azure blocks, a GCS
    compose, an S3 multipart upload): the bytes read again must decide."""
    proc = stores.emulators.get(stores.kind) if stores.emulators else None
    assert proc is not None and stores.emulators is not None
    emu.rewrite_object_unhashed(
        stores.kind,
        proc.endpoint,
        stores.bucket,
        f"{stores.location.prefix}/{path}",
        _same_size_other_bytes(data),
        stores.emulators.s3_admin,
    )


@pytest.mark.parametrize("how", ["put whole", "unhashed"])
async def test_a_segment_first_read_on_a_marker_then_rewritten_at_the_same_size_is_reported(
    cloud_stores: Stores, tmp_path: Path, how: str
) -> None:
    """A member sends a message; every reader online reads it at once, on its activity
    marker (a hint: no listed size, no listed checksum). The member then rewrites the
    segment with other bytes of the same length (their own message changed, or junk).
    The reader holds the MD5 of the bytes it read; the first listing after must compare
    with it, not take the listing's ETag of the rewritten bytes as the one to compare
    from then on (red team rt70). Rewritten whole (the service lists the new bytes' MD5)
    or so that it lists none (the bytes read again decide)."""
    stores = cloud_stores
    key = SigningKey.generate()
    await room_written(stores, key, ("hello one",))
    db = tmp_path / "index.sqlite3"
    reader = SyncEngine(stores.new(), index=(index := Index.open(db)))
    writer = SyncEngine(stores.new(), outbox=Outbox(None))
    try:
        room = await reader.open_room(ROOM, background=False)
        assert room.result is not None and room.result.clean and not room.partial
        segment = await _read_on_its_marker(reader, writer, key)
        # The member rewrites it, the same length, other bytes.
        if how == "put whole":
            await _rewrite_at_the_same_size(stores, segment)
        else:
            _rewrite_unhashed(stores, segment, await stores.new().get(segment))
        await reader.refresh(ROOM)
        assert segment in room.vanished, (
            "a segment read and checked here, rewritten in storage, is not reported"
        )
        assert "changed in storage" in room.vanished[segment]
        assert room.partial and not room.result.clean
        bodies = [a.event.body for a in room.result.timeline if a.event.type == MESSAGE]
        assert bodies == ["hello one", "hello two"]  # the copy checked here stays shown
    finally:
        await reader.close()
        index.close()
        await writer.close()
        assert writer.outbox is not None
        writer.outbox.close()
    # And a restart, through the index: still reported, the copy checked here shown.
    reader = SyncEngine(stores.new(), index=(index := Index.open(db)))
    try:
        room = await reader.open_room(ROOM, background=False)
        assert segment in room.vanished
        assert room.result is not None and not room.result.clean
        assert [f.path for f in room.result.findings if f.kind is Kind.SEGMENT_VANISHED] == [
            segment
        ]
        bodies = [a.event.body for a in room.result.timeline if a.event.type == MESSAGE]
        assert bodies == ["hello one", "hello two"]
    finally:
        await reader.close()
        index.close()


async def test_a_segment_read_on_a_marker_and_left_alone_costs_no_read_again(
    cloud_stores: Stores, tmp_path: Path
) -> None:
    """The common case: nobody rewrites it. The checksum the hint's read keeps is the one
    the service lists for a segment put whole, so the safety listings that follow confirm
    it as they list it: each costs what it cost before the message (its listings), no
    download of the segment again, and the room stays clean."""
    stores = cloud_stores
    key = SigningKey.generate()
    await room_written(stores, key, ("hello one",))
    reader = SyncEngine(stores.new())
    writer = SyncEngine(stores.new(), outbox=Outbox(None))
    try:
        room = await reader.open_room(ROOM, background=False)
        assert room.result is not None and room.result.clean
        segment = await _read_on_its_marker(reader, writer, key)
        before = reader.requests
        await reader.refresh(ROOM)
        first = reader.requests - before
        listed = await stores.new().list_objects(f"rooms/{ROOM}/logs/")
        days = {item.path.split("/")[3] for item in listed}
        assert first == 1 + len(days), "a listing of the days and one of each: no read"
        for _ in range(3):
            before = reader.requests
            await reader.refresh(ROOM)
            assert reader.requests - before == first
        assert segment not in room.vanished and not room.partial
        assert room.result.clean
    finally:
        await reader.close()
        await writer.close()
        assert writer.outbox is not None
        writer.outbox.close()
