"""A segment rewritten in a bucket at the same size is noticed (the vanish check).

History is write-once: a segment this device read and checked that later lists with
other bytes is someone with write access (or the provider) tampering. Sizes alone missed
a rewrite of the same length; each cloud service gives a checksum of the bytes in its
listing (S3's ETag, GCS's MD5, Azure's Content-MD5), kept with the segment in memory and
in the index. A change of metadata only (a label, a storage class) is no rewrite and
raises nothing. Runs on the three emulators."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.schedule import SAFETY_BURST, UNREAD_RETRY
from bucket_chat_desktop.sync.writer import RoomWriter

from . import _emulators as emu
from .conftest import Stores
from .test_conformance import _send

ROOM = "team"
ALICE = "alice@example.com"


def _same_size_other_bytes(data: bytes) -> bytes:
    """The segment with one letter of a body changed: its length stays."""
    at = data.index(b"hello") + 1
    return data[:at] + (b"a" if data[at : at + 1] != b"a" else b"b") + data[at + 1 :]


def put_object(stores: Stores, path: str, data: bytes) -> None:
    """Someone with write access writes ``path`` (under the store's prefix) with the
    service's own client, past this app's create-only writes."""
    proc = stores.emulators.get(stores.kind) if stores.emulators else None
    assert proc is not None
    emu.rewrite_object(
        stores.kind,
        proc.endpoint,
        stores.bucket,
        f"{stores.location.prefix}/{path}",
        data,
        stores.emulators.s3_admin if stores.emulators else None,
    )


async def _rewrite_at_the_same_size(stores: Stores, path: str) -> None:
    """Someone with write access replaces the segment's bytes, keeping its length."""
    put_object(stores, path, _same_size_other_bytes(await stores.new().get(path)))


async def room_written(stores: Stores, key: SigningKey, *sends: tuple[str, ...]) -> None:
    """The room created, then each of ``sends`` (its bodies in one segment) sent through
    a device's engine and outbox, as the app sends."""
    await RoomWriter(stores.new(), ROOM, ALICE, key).create_room(
        "Team room", "2025-01-01T12:00:00.000Z"
    )
    writer = SyncEngine(stores.new(), outbox=Outbox(None))
    try:
        for bodies in sends:
            await _send(writer, ALICE, key, *bodies)
    finally:
        await writer.close()
        assert writer.outbox is not None
        writer.outbox.close()


async def test_a_segment_rewritten_at_the_same_size_is_reported(
    cloud_stores: Stores, tmp_path: Path
) -> None:
    stores = cloud_stores
    await room_written(
        stores, SigningKey.generate(), ("hello one",), ("hello two",), ("hello three",)
    )
    segments = [i.path for i in await stores.new().list_objects(f"rooms/{ROOM}/logs/")]
    assert len(segments) >= 4  # the room's creation and three messages

    db = tmp_path / "index.sqlite3"

    def reader() -> tuple[SyncEngine, Index]:
        index = Index.open(db)
        return SyncEngine(stores.new(), index=index), index

    engine, index = reader()
    try:
        room = await engine.open_room(ROOM, background=False)
        assert room.result is not None and room.result.clean and not room.partial
        assert set(room.tags) == set(segments), "every listed segment keeps its tag"
        # Someone with write access rewrites a message at the same size; someone else
        # only labels another segment.
        store = stores.new()
        rewritten, labelled = segments[-1], segments[-2]
        full = lambda path: f"{stores.location.prefix}/{path}"  # noqa: E731
        proc = stores.emulators.get(stores.kind) if stores.emulators else None
        assert proc is not None
        data = await store.get(rewritten)
        emu.rewrite_object(
            stores.kind,
            proc.endpoint,
            stores.bucket,
            full(rewritten),
            _same_size_other_bytes(data),
            stores.emulators.s3_admin if stores.emulators else None,
        )
        emu.set_object_metadata(
            stores.kind,
            proc.endpoint,
            stores.bucket,
            full(labelled),
            stores.emulators.s3_admin if stores.emulators else None,
        )
        assert len(await store.get(rewritten)) == len(data)
    finally:
        await engine.close()
        index.close()

    # The next pass (here after a restart: the tags come from the index) notices the
    # rewrite, and only it; what was checked stays shown as it was read.
    engine, index = reader()
    try:
        room = await engine.open_room(ROOM, background=False)
        assert set(room.vanished) == {rewritten} and not room.unread, room.vanished
        assert "the same size" in room.vanished[rewritten]
        assert "checksum of its bytes" in room.vanished[rewritten]
        assert room.partial and room.result is not None and not room.result.clean
        named = [f.path for f in room.result.findings if f.kind is Kind.SEGMENT_VANISHED]
        assert named == [rewritten]
        bodies = [a.event.body for a in room.result.timeline if a.event.type == MESSAGE]
        assert bodies == ["hello one", "hello two", "hello three"]
    finally:
        await engine.close()
        index.close()


async def test_a_cache_from_before_tags_raises_no_alarm_and_learns_them(
    cloud_stores: Stores, tmp_path: Path
) -> None:
    """An index written before content tags holds the service's ETag (on GCS and Azure
    it changes with metadata): it is not compared, and the listing's tag is learnt, so a
    later rewrite is still noticed."""
    stores = cloud_stores
    await room_written(stores, SigningKey.generate(), ("hello one",))
    db = tmp_path / "index.sqlite3"
    engine = SyncEngine(stores.new(), index=(index := Index.open(db)))
    try:
        await engine.open_room(ROOM, background=False)
    finally:
        await engine.close()
        index.close()
    with sqlite3.connect(db) as conn:  # as an older version of the app left it
        conn.execute("UPDATE segments SET etag = '\"0x8DC0FFEE\"'")
    engine = SyncEngine(stores.new(), index=(index := Index.open(db)))
    try:
        room = await engine.open_room(ROOM, background=False)
        assert room.unread == {} == room.vanished and not room.partial
        assert room.tags and all(":" in tag for tag in room.tags.values())
        message = max(room.tags)  # the newest segment: the message
    finally:
        await engine.close()
        index.close()
    proc = stores.emulators.get(stores.kind) if stores.emulators else None
    assert proc is not None
    data = await stores.new().get(message)
    emu.rewrite_object(
        stores.kind,
        proc.endpoint,
        stores.bucket,
        f"{stores.location.prefix}/{message}",
        _same_size_other_bytes(data),
        stores.emulators.s3_admin if stores.emulators else None,
    )
    # The learnt tags were written back to the index, so the next run compares them.
    engine = SyncEngine(stores.new(), index=(index := Index.open(db)))
    try:
        room = await engine.open_room(ROOM, background=False)
        assert set(room.vanished) == {message} and not room.unread, room.vanished
    finally:
        await engine.close()
        index.close()


async def test_a_rewrite_while_the_app_runs_is_reported_at_the_next_safety_listing(
    cloud_stores: Stores, tmp_path: Path
) -> None:
    """Noticed while the room is open (the periodic listing of its newest days), not only
    when it is next opened; the verdict shown is audited again at once. Once found
    changed by its bytes, a segment is not downloaded again at every listing."""
    stores = cloud_stores
    await room_written(stores, SigningKey.generate(), ("hello one",), ("hello two",))
    engine = SyncEngine(stores.new(), index=(index := Index.open(tmp_path / "index.sqlite3")))
    try:
        room = await engine.open_room(ROOM, background=False)
        assert room.result is not None and room.result.clean and not room.partial
        before = engine.requests
        await engine.refresh(ROOM)  # an honest room: nothing noted, listings only
        listings = engine.requests - before
        assert room.unread == {} == room.vanished and room.result.clean
        rewritten = max(room.tags)
        await _rewrite_at_the_same_size(stores, rewritten)
        await engine.refresh(ROOM)
        assert set(room.vanished) == {rewritten} and not room.unread, room.vanished
        assert "changed in storage" in room.vanished[rewritten]
        if room.reaudit is not None:  # paced: put off a moment after the last audit
            await room.reaudit
        result = room.result
        assert result is not None and not result.clean and room.partial
        named = [f.path for f in result.findings if f.kind is Kind.SEGMENT_VANISHED]
        assert named == [rewritten]
        bodies = [a.event.body for a in result.timeline if a.event.type == MESSAGE]
        assert bodies == ["hello one", "hello two"]
        # The next listings: still reported, and only listed (no download of it again).
        for _ in range(2):
            before = engine.requests
            await engine.refresh(ROOM)
            assert set(room.vanished) == {rewritten} and not room.unread
            assert engine.requests - before == listings
    finally:
        await engine.close()
        index.close()


async def test_a_rewrite_does_not_make_each_safety_round_read_the_room_again(
    cloud_stores: Stores, tmp_path: Path
) -> None:
    """A room with a note was read all over again at each safety round (every minute
    for a room read only partly): a pass starts over, clears the note, lists every day
    and downloads the rewritten segment again, forever (no pass can bring the old bytes
    back). The rounds after the report list the newest days, as for an honest room."""
    stores = cloud_stores
    await room_written(stores, SigningKey.generate(), ("hello one",), ("hello two",))
    engine = SyncEngine(stores.new(), index=(index := Index.open(tmp_path / "index.sqlite3")))

    async def round_() -> int:
        room.last_safety = -1e9  # due now,
        engine._poller.safety_pace.tokens = SAFETY_BURST  # and the hours between passed
        before = engine.requests
        await engine.poll_once(markers=False)
        if room.backfill is not None:
            await room.backfill
        if room.reaudit is not None:
            await room.reaudit
        return engine.requests - before

    try:
        room = await engine.open_room(ROOM, background=False)
        assert room.result is not None and room.result.clean
        honest = await round_()
        rewritten = max(room.tags)
        await _rewrite_at_the_same_size(stores, rewritten)
        await round_()
        assert set(room.vanished) == {rewritten} and not room.unread
        assert "changed in storage" in room.vanished[rewritten]
        for _ in range(2):
            assert await round_() == honest  # listed only: no download, no older day
            assert set(room.vanished) == {rewritten} and not room.unread
            assert room.result is not None and not room.result.clean and room.partial
        # Nor is it listed as often as a room read only partly (every minute while
        # someone looks at it): what no pass brings back waits for the usual listing.
        engine.focus(ROOM)
        engine.set_window_focused(True)
        await engine.poll_once(markers=False)  # the round coming to the front makes
        before = engine.requests
        room.last_safety = time.monotonic() - UNREAD_RETRY - 1
        await engine.poll_once(markers=False)
        assert engine.requests == before, "listed again as if part of it was unread"
        assert set(room.vanished) == {rewritten}
    finally:
        await engine.close()
        index.close()


async def test_a_rewrite_put_back_in_another_way_is_taken_back_at_the_next_listing(
    cloud_stores: Stores, tmp_path: Path
) -> None:
    """A segment found rewritten (its bytes read again) is not read again at each
    listing while the listing shows it as it was then. Put back with its own bytes in a
    way that gives the listing another tag (in parts, composed, blocks without an MD5: a
    backup tool's restore), it is read again and the note goes at the next safety
    listing; kept, the note stuck until the room was next opened. Rewritten once more
    with other bytes, it stays reported."""
    stores = cloud_stores
    await room_written(stores, SigningKey.generate(), ("hello one",), ("hello two",))
    engine = SyncEngine(stores.new(), index=(index := Index.open(tmp_path / "index.sqlite3")))
    proc = stores.emulators.get(stores.kind) if stores.emulators else None
    assert proc is not None
    admin = stores.emulators.s3_admin if stores.emulators else None
    full = lambda path: f"{stores.location.prefix}/{path}"  # noqa: E731
    try:
        room = await engine.open_room(ROOM, background=False)
        assert room.result is not None and room.result.clean and not room.partial
        rewritten = max(room.tags)
        original = await stores.new().get(rewritten)
        await _rewrite_at_the_same_size(stores, rewritten)
        await engine.refresh(ROOM)
        assert set(room.vanished) == {rewritten} and not room.unread, room.vanished
        # Put back, the same bytes, uploaded so the listing shows another tag (or none).
        emu.rewrite_object_unhashed(
            stores.kind, proc.endpoint, stores.bucket, full(rewritten), original, admin
        )
        await engine.refresh(ROOM)
        assert room.vanished == {} == room.unread, room.vanished
        if room.reaudit is not None:
            await room.reaudit
        assert not room.partial and room.result is not None and room.result.clean
        # Rewritten again, other bytes in parts: reported again.
        emu.rewrite_object_unhashed(
            stores.kind,
            proc.endpoint,
            stores.bucket,
            full(rewritten),
            _same_size_other_bytes(original),
            admin,
        )
        await engine.refresh(ROOM)
        assert set(room.vanished) == {rewritten} and not room.unread, room.vanished
        assert "changed in storage" in room.vanished[rewritten]
    finally:
        await engine.close()
        index.close()
