"""Red-team of the content-tag vanish check: a rewrite that leaves the service without
the kind of checksum it gave before (an Azure blob committed from blocks without a
Content-MD5, a GCS compose, an S3 multipart upload) is still noticed, and an honest
change that only drops the checksum (Azure ``set_http_headers``) raises nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from hashlib import md5
from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage.base import (
    DEFAULT_MAX_READ,
    StorageOfflineError,
    bytes_decide,
    same_content,
)
from bucket_chat_desktop.storage.s3 import S3Storage
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import RoomWriter

from . import _emulators as emu
from .conftest import Stores, StoresMaker
from .test_conformance import _send
from .test_rewritten_segments import _same_size_other_bytes, room_written

ROOM = "team"
ALICE = "alice@example.com"


async def _room_read_once(stores: Stores, db: Path) -> list[str]:
    await room_written(stores, SigningKey.generate(), ("hello one",), ("hello two",))
    engine = SyncEngine(stores.new(), index=(index := Index.open(db)))
    try:
        room = await engine.open_room(ROOM, background=False)
        assert room.result is not None and room.result.clean and not room.partial
        assert room.tags
        # What is kept says what the listing's tag says (computed from the bytes read:
        # of the same form, or every pass would read every segment again).
        listed = {}
        for date in {p.split("/")[3] for p in room.tags}:
            for item in await stores.new().list_objects(f"rooms/{ROOM}/logs/{date}/"):
                listed[item.path] = item.content_tag
        assert set(room.tags) == set(listed)
        assert all(same_content(room.tags[p], listed[p]) for p in listed), (room.tags, listed)
        # and one this device can compute again from the bytes where the service's is so
        assert all(bytes_decide(tag) for tag in room.tags.values()), room.tags
        return sorted(room.tags)
    finally:
        await engine.close()
        index.close()


async def _rewrite_is_reported(stores: Stores, db: Path, target: str, data: bytes) -> None:
    """Rewritten from blocks or parts, at the same size: the next pass reports it."""
    _tamper(stores)(emu.rewrite_object_unhashed, target, _same_size_other_bytes(data))
    unread = await _reopen(stores, db)
    assert set(unread) == {target} and "changed in storage" in unread[target]


def _kept_tags(db: Path) -> dict[str, str]:
    """The content tags the index keeps for the room's segments."""
    index = Index.open(db)
    try:
        return index.content_tags(ROOM)
    finally:
        index.close()


def _tamper(stores: Stores) -> Callable[..., None]:
    proc = stores.emulators.get(stores.kind) if stores.emulators else None
    assert proc is not None
    s3_admin = stores.emulators.s3_admin if stores.emulators else None

    def run(how: Callable[..., None], path: str, *data: bytes) -> None:
        full = f"{stores.location.prefix}/{path}"
        if how is emu.clear_content_settings:
            how(stores.kind, proc.endpoint, stores.bucket, full)
        else:
            how(stores.kind, proc.endpoint, stores.bucket, full, *data, s3_admin)

    return run


async def _reopen(stores: Stores, db: Path, times: int = 1) -> dict[str, str]:
    unread: dict[str, str] = {}
    for _ in range(times):
        engine = SyncEngine(stores.new(), index=(index := Index.open(db)))
        try:
            room = await engine.open_room(ROOM, background=False)
            unread = {**room.unread, **room.vanished}
            assert room.result is not None
            bodies = [a.event.body for a in room.result.timeline if a.event.type == MESSAGE]
            assert bodies == ["hello one", "hello two"]
        finally:
            await engine.close()
            index.close()
    return unread


async def test_a_rewrite_without_the_services_md5_is_reported(
    cloud_stores: Stores, tmp_path: Path
) -> None:
    stores = cloud_stores
    db = tmp_path / "index.sqlite3"
    segments = await _room_read_once(stores, db)
    rewritten = segments[-1]
    data = await stores.new().get(rewritten)
    _tamper(stores)(emu.rewrite_object_unhashed, rewritten, _same_size_other_bytes(data))
    assert await stores.new().get(rewritten) != data
    # noticed, and still noticed on the next run (the listing's tag is not adopted)
    for _ in range(2):
        unread = await _reopen(stores, db)
        assert set(unread) == {rewritten}, unread
        assert "changed in storage" in unread[rewritten]


async def test_an_azure_blob_whose_md5_an_sdk_user_cleared_raises_nothing(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    stores = stores_for("az")
    db = tmp_path / "index.sqlite3"
    segments = await _room_read_once(stores, db)
    _tamper(stores)(emu.clear_content_settings, segments[-1])
    assert await _reopen(stores, db, times=2) == {}


async def test_the_same_bytes_under_another_s3_etag_raise_nothing_and_a_later_rewrite_does(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """An S3 ETag is the MD5 of an object uploaded in one request, but another value for
    the same bytes uploaded in parts or copied in place with KMS encryption (an honest
    restore or re-encryption): the bytes decide, and the new ETag is kept from then on."""
    stores = stores_for("s3")
    db = tmp_path / "index.sqlite3"
    segments = await _room_read_once(stores, db)
    target = segments[-1]
    data = await stores.new().get(target)
    _tamper(stores)(emu.rewrite_object_unhashed, target, data)  # the same bytes, in parts
    [listed] = [
        i.content_tag
        for i in await stores.new().list_objects(target.rsplit("/", 1)[0] + "/")
        if i.path == target
    ]
    assert listed is not None and listed.endswith("-1")
    assert await _reopen(stores, db) == {}
    # kept with the MD5: not read again at every pass
    assert _kept_tags(db)[target] == f"s3-md5:{md5(data).hexdigest()}@{listed}"
    assert await _reopen(stores, db) == {}
    _tamper(stores)(emu.rewrite_object, target, data)  # back in one request: the MD5 again
    assert await _reopen(stores, db) == {}
    await _rewrite_is_reported(stores, db, target, data)


async def test_this_devices_own_segment_rewritten_before_it_is_listed_is_reported(
    cloud_stores: Stores, tmp_path: Path
) -> None:
    """A segment this device delivered is kept with the checksum of the bytes it wrote,
    not with whatever the first listing after says: a rewrite in between is noticed."""
    stores = cloud_stores
    db = tmp_path / "index.sqlite3"
    key = SigningKey.generate()
    await RoomWriter(stores.new(), ROOM, ALICE, key).create_room(
        "Team room", "2025-01-01T12:00:00.000Z"
    )
    engine = SyncEngine(stores.new(), index=(index := Index.open(db)), outbox=Outbox(None))
    try:
        room = await engine.open_room(ROOM, background=False)
        before = set(room.known)
        await _send(engine, ALICE, key, "hello one")
        [own] = set(room.known) - before
        assert bytes_decide(room.tags.get(own)), room.tags
    finally:
        await engine.close()
        index.close()
        assert engine.outbox is not None
        engine.outbox.close()
    data = await stores.new().get(own)
    _tamper(stores)(emu.rewrite_object, own, _same_size_other_bytes(data))
    engine = SyncEngine(stores.new(), index=(index := Index.open(db)))
    try:
        room = await engine.open_room(ROOM, background=False)
        assert set(room.vanished) == {own} and not room.unread, room.vanished
        assert "changed in storage" in room.vanished[own]
    finally:
        await engine.close()
        index.close()


async def test_an_azure_md5_set_wrong_by_hand_is_read_once_then_a_rewrite_is_reported(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """A Content-MD5 that is not the bytes' (set by hand, by a client's bug): the bytes
    read again are the same, so nothing is reported, and that value is kept with the MD5
    (not read again at every pass). A rewrite after it is reported."""
    stores = stores_for("az")
    db = tmp_path / "index.sqlite3"
    segments = await _room_read_once(stores, db)
    target = segments[-1]
    data = await stores.new().get(target)
    proc = stores.emulators.get("az") if stores.emulators else None
    assert proc is not None
    full = f"{stores.location.prefix}/{target}"
    emu.set_content_md5("az", proc.endpoint, stores.bucket, full, b"\x01" * 16)
    assert await _reopen(stores, db) == {}
    kept = _kept_tags(db)[target]
    assert kept.startswith("md5:") and kept.endswith("@md5:AQEBAQEBAQEBAQEBAQEBAQ=="), kept
    assert await _reopen(stores, db) == {}
    # (one who sets the Content-MD5 by hand after rewriting is not caught: SECURITY.md)
    await _rewrite_is_reported(stores, db, target, data)


async def test_an_s3_object_first_read_under_an_etag_that_is_no_md5_raises_nothing_later(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """First read while its ETag is not the MD5 of its bytes (uploaded in parts, or
    KMS-encrypted), then put back whole (a restore, a copy that drops KMS): the same
    bytes, the ETag their MD5. This device keeps its own MD5 with the first ETag, so the
    second is no alarm."""
    stores = stores_for("s3")
    db = tmp_path / "index.sqlite3"
    await room_written(stores, SigningKey.generate(), ("hello one", "hello two"))
    store = stores.new()
    paths = [i.path for i in await store.list_objects(f"rooms/{ROOM}/logs/")]
    originals = {p: await store.get(p) for p in paths}
    for path, data in originals.items():
        _tamper(stores)(emu.rewrite_object_unhashed, path, data)
    assert await _reopen(stores, db) == {}  # the first read
    for path, data in originals.items():
        _tamper(stores)(emu.rewrite_object, path, data)
    assert await _reopen(stores, db) == {}
    target = max(originals)
    _tamper(stores)(emu.rewrite_object, target, _same_size_other_bytes(originals[target]))
    unread = await _reopen(stores, db)
    assert set(unread) == {target} and "changed in storage" in unread[target]


async def test_an_etag_an_older_version_cached_is_never_taken_for_a_checksum(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    """Versions before content tags kept the listing's ETag unchecked: a hostile one that
    looks like a checksum ("md5:…") must not be compared with the bytes (a false
    "changed in storage"). The index drops them when it is migrated."""
    stores = stores_for("gs")
    db = tmp_path / "index.sqlite3"
    segments = await _room_read_once(stores, db)
    with sqlite3.connect(db) as conn:  # as an older version of the app left it
        conn.execute("UPDATE segments SET etag = 'md5:AAAAAAAAAAAAAAAAAAAAAA=='")
        conn.execute("PRAGMA user_version = 4")
    conn.close()
    assert await _reopen(stores, db) == {}
    kept = _kept_tags(db)  # learnt again from the listing, and of the bytes
    assert set(kept) == set(segments) and "md5:AAAAAAAAAAAAAAAAAAAAAA==" not in kept.values()


class RefusingS3Storage(S3Storage):
    """Our S3 storage, with the service refusing to hand back one object (a provider
    that lists a new ETag and then will not serve the bytes)."""

    refused = ""

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if path == self.refused:
            raise StorageOfflineError(f"the service answered 503 Slow Down for {path}")
        return await super().get(path, max_bytes=max_bytes)


async def test_a_segment_listed_with_another_checksum_that_cannot_be_read_again_is_named(
    stores_for: StoresMaker, tmp_path: Path
) -> None:
    stores = stores_for("s3")
    db = tmp_path / "index.sqlite3"
    segments = await _room_read_once(stores, db)
    target = segments[-1]
    data = await stores.new().get(target)
    _tamper(stores)(emu.rewrite_object_unhashed, target, data)  # another ETag
    store = RefusingS3Storage(stores.location, stores.secrets)
    store.refused = target
    stores.opened.append(store)
    engine = SyncEngine(store, index=(index := Index.open(db)))
    try:
        room = await engine.open_room(ROOM, background=False)
        assert set(room.unread) == {target}, room.unread
        assert "could not be read again to compare" in room.unread[target]
        assert "503 Slow Down" in room.unread[target]
        assert room.partial
    finally:
        await engine.close()
        index.close()
    assert await _reopen(stores, db) == {}  # served again: the same bytes
