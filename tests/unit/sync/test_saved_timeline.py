"""The index's saved timeline while a room's history is still loading (newest first,
PROTOCOL.md section 16): what the next start paints first (``Index.newest``, the
``WarmTimeline``) is always one audit's rows in that audit's order, whatever arrived
between the audits of the read. Real engine, real folder, real SQLite."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from held_storage import Held, until
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import Event
from bucket_chat_desktop.sync import backfill
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded, WarmTimeline
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
ALICE = "alice@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
T0 = 1757851245000  # 2025-09-14T12:00:45.000Z
SEGMENTS = 24  # three chunks of 8: the first screen, a progress audit, one held back


def _writer(root: Path) -> RoomWriter:
    """Alice, a second between her messages (rows of one millisecond sort by id)."""
    stamps = itertools.count(T0, 1000)
    return RoomWriter(Held(root), ROOM, ALICE, SigningKey(b"\x01" * 32), clock=lambda: next(stamps))


def _rows_in_order(index: Index) -> list[str]:
    """The saved timeline's event ids by position, checked to be one unbroken run."""
    rows = index.newest(ROOM, 10_000)
    assert [r.pos for r in rows] == list(range(len(rows))), "gaps in the saved positions"
    assert index.timeline_length(ROOM) == len(rows)
    ids = [r.event.event_id for r in rows if isinstance(r.event, Event)]
    assert len(ids) == len(rows) and len(set(ids)) == len(ids), "damaged or duplicate rows"
    return ids


def test_a_message_arriving_mid_read_leaves_a_consistent_saved_timeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill, "CHUNK", 8)
    # a progress audit after chunk 2, however long the first one took
    monkeypatch.setattr(backfill, "PROGRESS_AUDIT", 0.0)
    monkeypatch.setattr(backfill, "AUDIT_SHARE", 1e9)
    root = tmp_path / "store"
    root.mkdir()
    writer = _writer(root)

    async def write() -> list[str]:
        await writer.write_metadata(ROOM, CREATED)
        for i in range(SEGMENTS):
            await writer.send([Draft.text(f"m{i}")])
        return sorted(str(p.relative_to(root)) for p in root.rglob("*.jsonl"))

    paths = asyncio.run(write())
    oldest = set(paths[:8])  # the third chunk (newest first): its reads wait
    store = Held(root, hold=lambda what, path: what == "get" and path in oldest)
    db = tmp_path / "index.sqlite3"
    events: list[EngineEvent] = []

    async def first_run() -> list[str]:
        engine = SyncEngine(store, index=Index.open(db), listener=events.append, config=QUIET)
        try:
            reading = asyncio.create_task(engine.open_room(ROOM, background=False))
            # the first screen (saved) and a progress audit of two chunks (not saved)
            await until("the progress audit", lambda: len(_loaded()) >= 2)
            path, sent = await writer.send([Draft.text("mid-read")])
            assert await engine.fetch_segment(ROOM, path)
            assert isinstance(events[-1], EventsAppended)
            assert not reading.done()  # the oldest chunk is still being read
            return [e.event_id for e in sent]
        finally:
            await engine.close()

    def _loaded() -> list[RoomLoaded]:
        return [e for e in events if isinstance(e, RoomLoaded)]

    sent = asyncio.run(first_run())
    (first, progress) = _loaded()[:2]
    assert not first.complete and not progress.complete
    assert len(first.result.timeline) < len(progress.result.timeline)

    index = Index.open(db)
    try:
        saved = _rows_in_order(index)
        # one audit's rows in its order: the first screen's (with what was placed after it)
        audits = [[a.event.event_id for a in x.result.timeline] for x in (first, progress)]
        assert any(saved == ids or saved == ids + sent for ids in audits), saved
    finally:
        index.close()

    # the next start's first paint: the saved rows, newest last, no gap
    warm: list[EngineEvent] = []

    async def second_run() -> None:
        engine = SyncEngine(Held(root), index=Index.open(db), listener=warm.append, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
        finally:
            await engine.close()

    asyncio.run(second_run())
    (painted,) = [e for e in warm if isinstance(e, WarmTimeline)]
    newest = range(painted.total - len(painted.rows), painted.total)
    assert [r.pos for r in painted.rows] == list(newest)
    final = [e for e in warm if isinstance(e, RoomLoaded)][-1]
    assert final.complete
    ids = [a.event.event_id for a in final.result.timeline]
    assert ids[-1] == sent[-1] and len(ids) == len(set(ids))
    index = Index.open(db)
    try:
        assert _rows_in_order(index) == ids  # the complete audit rewrote it
    finally:
        index.close()


def test_rows_arriving_after_a_warm_start_are_saved(tmp_path: Path) -> None:
    """A room read whole before, opened again with nothing new (no full audit this
    time): the rebuilt audit takes over the saved rows, and a message that arrives is
    saved at its place, for the start after."""
    root = tmp_path / "store"
    root.mkdir()
    writer = _writer(root)
    asyncio.run(writer.write_metadata(ROOM, CREATED))
    asyncio.run(writer.send([Draft.text("before")]))
    db = tmp_path / "index.sqlite3"

    async def session(send: bool) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        engine = SyncEngine(Held(root), index=Index.open(db), listener=events.append, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            if send:
                path, _ = await writer.send([Draft.text("after")])
                assert await engine.fetch_segment(ROOM, path)
                assert isinstance(events[-1], EventsAppended)
        finally:
            await engine.close()
        return events

    asyncio.run(session(send=False))
    events = asyncio.run(session(send=True))
    # the rebuild's audit only: told once, then again with the metadata read after it
    loaded = [e for e in events if isinstance(e, RoomLoaded)]
    assert len({id(e.result) for e in loaded}) == 1
    assert loaded[0].metadata is None and loaded[-1].metadata is not None
    index = Index.open(db)
    try:
        rows = index.newest(ROOM, 10)
        assert [r.pos for r in rows] == list(range(len(rows)))
        assert [r.event.body for r in rows if isinstance(r.event, Event)][-2:] == [
            "before",
            "after",
        ]
    finally:
        index.close()
