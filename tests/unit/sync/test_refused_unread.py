"""An object refused unread — over the size limit (by its listed size or as read), or
litter under another name than a segment's — is never remembered as read: each listing
of its day decides again, on a running engine and after a restart from the index, as a
device that never saw it would. Refused once, it was kept like a segment read: a storage
that listed a real segment once at a size over the limit (or a member who padded it for
a while) had its messages missing on that device for good, the room never final and a
stale ``segment-too-large`` shown; litter's notice stayed after the file was gone. Real
folders, a real index."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_engine import ROOM, Recorder, bodies, create_room, store_segments, write_history

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import PreparedSegment
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.protocol.segment import MAX_SEGMENT_BYTES, DecodedSegment
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, ObjectInfo
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.room_state import RoomState

QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


class Lying(LocalStorage):
    """Lists ``victim`` at a size over the limit while ``lying`` (a provider's wrong
    listing; its bytes are as written), and counts reads of each path."""

    def __init__(self, root: Path, victim: str) -> None:
        super().__init__(root)
        self.victim, self.lying = victim, True
        self.got: list[str] = []

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        items = await super().list_objects(prefix)
        if not self.lying:
            return items
        big = MAX_SEGMENT_BYTES + 1
        return [
            ObjectInfo(it.path, big, it.content_tag, it.special) if it.path == self.victim else it
            for it in items
        ]

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        self.got.append(path)
        return await super().get(path, max_bytes=max_bytes)


def rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def engine_on(storage: LocalStorage, db: Path) -> SyncEngine:
    return SyncEngine(storage, index=Index.open(db), listener=Recorder(), config=QUIET)


async def closed(engine: SyncEngine) -> None:
    await engine.close()
    assert engine.index is not None
    engine.index.close()


async def refreshed(engine: SyncEngine, room: RoomState) -> None:
    """A safety listing of the room, and the audit it asks for (an arrival's is paced:
    ``keeper.REAUDIT_SHARE``; it comes at once after the audit of a room this small)."""
    await engine.refresh(ROOM)
    for _ in range(500):
        if not room.audit_owed:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the audit owed was never made")


def kinds(room: RoomState) -> list[tuple[Kind, str | None]]:
    assert room.result is not None
    return [(f.kind, f.path) for f in room.result.findings]


def whole(room: RoomState) -> bool:
    """The room's verdict is final and clean (what a fresh reader gets here)."""
    assert room.result is not None
    return room.complete and not room.partial and room.result.findings == []


def history(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Three days, two segments a day (one message each): the oldest day is listed by
    neither a warm pass's newest days nor a refresh, unless something is noted there."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=3, per_day=2)
    return root, store_segments(root)


def test_a_segment_listed_once_over_the_limit_is_read_at_its_next_listing(
    tmp_path: Path,
) -> None:
    """The storage lists a real segment of the oldest day once at a size over the
    limit: refused, by the listing, without a download. While it is listed so, the
    finding stays and nothing is downloaded; listed honestly again, the running engine
    reads it at the next safety listing (its day is listed for the refusal), and the
    room is whole."""
    root, segments = history(tmp_path)
    victim = rel(root, segments[0])
    storage = Lying(root, victim)

    async def go() -> None:
        engine = engine_on(storage, tmp_path / "index.sqlite3")
        try:
            room = await engine.open_room(ROOM, background=False)
            assert (Kind.SEGMENT_TOO_LARGE, victim) in kinds(room) and room.partial
            assert room.result is not None and len(bodies(room.result)) == 5
            await refreshed(engine, room)  # still listed over the limit
            assert (Kind.SEGMENT_TOO_LARGE, victim) in kinds(room) and room.partial
            assert victim not in storage.got  # never downloaded: the listing decides
            storage.lying = False
            await refreshed(engine, room)
            assert victim in storage.got
            assert room.result is not None and len(bodies(room.result)) == 6
            assert whole(room), kinds(room)
        finally:
            await closed(engine)

    asyncio.run(go())


def test_a_refusal_kept_in_the_index_is_not_for_good(tmp_path: Path) -> None:
    """As above, across a restart: the index held the refused segment as if read, and
    every later start showed the room without it, never final."""
    root, segments = history(tmp_path)
    victim = rel(root, segments[0])
    storage = Lying(root, victim)
    db = tmp_path / "index.sqlite3"

    async def open_once() -> tuple[list[tuple[Kind, str | None]], int, bool]:
        engine = engine_on(storage, db)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return kinds(room), len(bodies(room.result)), whole(room)
        finally:
            await closed(engine)

    found, shown, final = asyncio.run(open_once())
    assert (Kind.SEGMENT_TOO_LARGE, victim) in found and (shown, final) == (5, False)
    storage.lying = False
    assert asyncio.run(open_once()) == ([], 6, True)
    assert asyncio.run(open_once()) == ([], 6, True)  # and from the index as it is now


def test_an_oversized_file_removed_takes_its_finding_with_it(tmp_path: Path) -> None:
    """A member puts a file over the limit at a segment's name in the oldest day, then
    removes it: its finding goes at the next listing of that day (a safety listing of
    the running engine) and stays gone after a restart, as for a fresh reader."""
    root, segments = history(tmp_path)
    big = segments[0].parent / "messages_9_9_mallory-m.jsonl"
    with open(big, "wb") as f:  # sparse: nothing written
        f.truncate(MAX_SEGMENT_BYTES + 1)
    db = tmp_path / "index.sqlite3"

    async def go() -> None:
        engine = engine_on(LocalStorage(root), db)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert kinds(room) == [(Kind.SEGMENT_TOO_LARGE, rel(root, big))] and room.partial
            big.unlink()
            await refreshed(engine, room)
            assert whole(room), kinds(room)
        finally:
            await closed(engine)
        engine = engine_on(LocalStorage(root), db)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert whole(room), kinds(room)
            assert room.result is not None and len(bodies(room.result)) == 6
        finally:
            await closed(engine)

    asyncio.run(go())


def test_an_oversized_file_removed_while_the_app_was_closed_leaves_no_finding(
    tmp_path: Path,
) -> None:
    """The index held the refusal: the restart's pass lists the day and forgets it."""
    root, segments = history(tmp_path)
    big = segments[0].parent / "messages_9_9_mallory-m.jsonl"
    with open(big, "wb") as f:
        f.truncate(MAX_SEGMENT_BYTES + 1)
    db = tmp_path / "index.sqlite3"

    async def open_once() -> tuple[list[tuple[Kind, str | None]], bool]:
        engine = engine_on(LocalStorage(root), db)
        try:
            room = await engine.open_room(ROOM, background=False)
            return kinds(room), whole(room)
        finally:
            await closed(engine)

    assert asyncio.run(open_once()) == ([(Kind.SEGMENT_TOO_LARGE, rel(root, big))], False)
    big.unlink()
    assert asyncio.run(open_once()) == ([], True)


def test_litter_removed_takes_its_notice_with_it(tmp_path: Path) -> None:
    """A sync tool's temporary file in the newest day: a notice while listed, gone once
    the file is (the running engine's next listing, and after a restart)."""
    root, segments = history(tmp_path)
    litter = segments[-1].parent / f"{segments[-1].name}.!sync"
    litter.write_bytes(b"half of a segment")
    db = tmp_path / "index.sqlite3"

    async def go() -> None:
        engine = engine_on(LocalStorage(root), db)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert kinds(room) == [(Kind.UNEXPECTED_OBJECT, rel(root, litter))]
            assert room.complete and not room.partial  # a notice
            litter.unlink()
            await refreshed(engine, room)
            assert whole(room), kinds(room)
        finally:
            await closed(engine)

    asyncio.run(go())
    litter.write_bytes(b"half of a segment")

    async def open_once() -> list[tuple[Kind, str | None]]:
        engine = engine_on(LocalStorage(root), db)
        try:
            return kinds(await engine.open_room(ROOM, background=False))
        finally:
            await closed(engine)

    assert asyncio.run(open_once()) == [(Kind.UNEXPECTED_OBJECT, rel(root, litter))]
    litter.unlink()
    assert asyncio.run(open_once()) == []  # the restart from the index


def test_a_refusal_an_older_version_cached_as_read_is_decided_again(tmp_path: Path) -> None:
    """An index written by an earlier version holds a refused object as a segment read
    (its finding only): a start leaves it out of what is held, and the listing decides
    again — here it is gone, so nothing is said of it."""
    root, segments = history(tmp_path)
    db = tmp_path / "index.sqlite3"
    gone = rel(root, segments[0].parent / "messages_9_9_mallory-m.jsonl")

    async def open_once() -> tuple[list[tuple[Kind, str | None]], bool]:
        engine = engine_on(LocalStorage(root), db)
        try:
            room = await engine.open_room(ROOM, background=False)
            return kinds(room), whole(room)
        finally:
            await closed(engine)

    assert asyncio.run(open_once()) == ([], True)
    index = Index.open(db)
    try:
        finding = Finding(Kind.SEGMENT_TOO_LARGE, "segment of … bytes exceeds …; not read", gone)
        refused = PreparedSegment(DecodedSegment(gone, [], [finding]), [])
        index.add_prepared(ROOM, [(gone, MAX_SEGMENT_BYTES + 1, None, refused)])
    finally:
        index.close()
    assert asyncio.run(open_once()) == ([], True)


def test_refusals_are_filed_by_day_and_counted_as_errors_or_notices() -> None:
    """``RoomState.note_refused`` / ``forget_refused`` keep the day index and the error
    count that listings and ``partial`` use (a walk over every refusal was the cost)."""
    from bucket_chat_desktop.protocol.audit import RoomLedger

    room = RoomState(ROOM, RoomLedger(ROOM))
    day = f"rooms/{ROOM}/logs/2025-09-14/"
    big, junk = f"{day}messages_1_1_x.jsonl", f"{day}junk.txt"
    too_large = Finding(Kind.SEGMENT_TOO_LARGE, "over", big)
    assert room.note_refused(big, MAX_SEGMENT_BYTES + 1, too_large)
    assert not room.note_refused(big, MAX_SEGMENT_BYTES + 2, too_large)  # the same finding
    assert room.note_refused(junk, 3, Finding(Kind.UNEXPECTED_OBJECT, "ignored", junk))
    assert sorted(room.refused_in(day)) == [junk, big] and room.partial
    assert room.forget_refused(big) and not room.forget_refused(big)
    assert room.refused_in(day) == [junk] and not room.partial  # litter is a notice
    assert room.forget_refused(junk) and room.refused_folders == {}
    assert room.refused_errors == 0
