"""The sync engine on real local folders, real index and outbox files, one asyncio loop:
live delivery through the folder watch, newest-first opening, warm starts from the index,
activity markers, tampering that arrives late, batching and local echo."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.index import Index, index_path_for
from bucket_chat_desktop.protocol.activity import parse_marker
from bucket_chat_desktop.protocol.audit import AuditResult, TrustState
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import client_id_for, parse_segment_path, utc_date
from bucket_chat_desktop.protocol.segment import decode_segment, encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, Level, ObjectInfo
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import FIRST_CHUNK, WARM_ROWS, SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import (
    EngineEvent,
    EventsAppended,
    IntroductionOffered,
    OutboxChanged,
    RoomDiscovered,
    RoomLoaded,
    WarmTimeline,
)
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.session import engine_session
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
ALICE, BOB = "alice@example.com", "bob@example.com"
T0 = 1757851245000  # 2025-09-14T12:00:45.000Z
DAY = 86_400_000
CREATED = "2025-09-14T12:00:45.000Z"
T = TypeVar("T")
_ids = itertools.count(1)

# Nothing but the folder watch (or an explicit call) may find new data in these tests.
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def unique() -> str:
    return str(uuid.UUID(int=next(_ids), version=4))


def text(body: str) -> list[tuple[str, dict[str, Any]]]:
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


class Recorder:
    """The engine's listener: keeps every event in order."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self.hooks: list[Callable[[EngineEvent], None]] = []

    def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)
        for hook in self.hooks:
            hook(event)

    def of(self, cls: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, cls)]


class CountingStorage(LocalStorage):
    """A real folder that records every call the engine makes to it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        self.calls.append(("get", path))
        return await super().get(path, max_bytes=max_bytes)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        self.calls.append(("list_objects", prefix))
        return await super().list_objects(prefix)

    async def list_level(self, prefix: str) -> Level:
        self.calls.append(("list_dirs", prefix))
        return await super().list_level(prefix)

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        self.calls.append(("list_after", prefix))
        return await super().list_after(prefix, after)

    async def exists(self, path: str) -> bool:
        self.calls.append(("exists", path))
        return await super().exists(path)

    def gets(self) -> list[str]:
        return [p for what, p in self.calls if what == "get"]


class NoMarkers(LocalStorage):
    """A folder whose activity markers are invisible: only the watch can find news."""

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        return []


def create_room(store: LocalStorage, room: str = ROOM) -> None:
    run(RoomWriter(store, room, ALICE, key(1)).write_metadata(room, CREATED))


def write_history(store: LocalStorage, days: int, per_day: int) -> int:
    """Alice and Bob alternate one message per segment, ``per_day`` segments a day."""
    stamp = itertools.count()
    now = {"day": 0}

    def clock() -> int:
        return T0 + now["day"] * DAY + next(stamp) * 1000

    writers = [
        RoomWriter(store, ROOM, u, key(s), clock=clock, unique=unique)
        for u, s in ((ALICE, 1), (BOB, 2))
    ]

    async def go() -> int:
        n = 0
        for day in range(days):
            now["day"] = day
            for i in range(per_day):
                _, events = await writers[i % 2].send([Draft.text(f"day {day} message {i}")])
                n += len(events)
        return n

    return run(go())


def store_segments(root: Path, room: str = ROOM) -> list[Path]:
    return sorted((root / "rooms" / room / "logs").rglob("*.jsonl"))


def bodies(result: AuditResult) -> list[str | None]:
    return [a.event.body for a in result.timeline if a.event.type == MESSAGE]


def assert_clean_and_verified(result: AuditResult) -> None:
    assert result.findings == [] and result.clean
    assert result.invalid == []
    assert {a.state for a in result.timeline} == {TrustState.VERIFIED}


# -- live delivery -----------------------------------------------------------------------


def test_a_sent_message_reaches_a_watching_engine(tmp_path: Path) -> None:
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    sent, received = Recorder(), Recorder()

    async def go() -> None:
        sender = SyncEngine(
            LocalStorage(root), outbox=Outbox(tmp_path / "a.sqlite3"), listener=sent, config=QUIET
        )
        receiver = SyncEngine(
            NoMarkers(root),
            index=Index.open(tmp_path / "b.sqlite3"),
            listener=received,
            config=QUIET,
        )
        try:
            await sender.start()
            await receiver.start()
            room = await receiver.open_room(ROOM, background=False)
            assert room.result is not None and room.result.timeline == []
            events = await sender.send(ROOM, ALICE, key(1), text("hello bob"))
            assert [e.type for e in events] == [MEMBER, MESSAGE]
            await until(lambda: received.of(EventsAppended), timeout=5)
            (appended,) = received.of(EventsAppended)
            assert [a.event.event_id for a in appended.items] == [e.event_id for e in events]
            assert {a.state for a in appended.items} == {TrustState.VERIFIED}
            assert appended.result.clean
            # local echo on the sending side: "sending" first, then "sent", same events
            await until(lambda: any(e.state == "sent" for e in sent.of(OutboxChanged)))
            echo = [(e.state, [x.event_id for x in e.events]) for e in sent.of(OutboxChanged)]
            ids = [e.event_id for e in events]
            assert echo == [("sending", ids), ("sent", ids)]
        finally:
            await sender.close()
            await receiver.close()
            for engine in (sender, receiver):
                for db in (engine.outbox, engine.index):
                    if db is not None:
                        db.close()

    run(go())


def test_a_batch_whose_ids_sort_against_its_chain_is_still_an_append(tmp_path: Path) -> None:
    """A batch shares one timestamp, so random ids may sort a message before its own
    join (or a later message before an earlier one): still a cheap append, in chain order."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    descending = (f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(0xFFFF, 0, -1))
    writer = RoomWriter(store, ROOM, ALICE, key(1), unique=lambda: next(descending))
    rec = Recorder()

    async def go() -> None:
        engine = SyncEngine(store, index=Index.open(None), listener=rec, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            for drafts in ([Draft.text("hello")], [Draft.text("one"), Draft.text("two")]):
                path, events = await writer.send(drafts)
                assert events[-1].event_id < events[0].event_id  # against the chain
                before = len(rec.events)
                assert await engine.fetch_segment(ROOM, path)
                (appended,) = rec.events[before:]
                assert isinstance(appended, EventsAppended), appended
                assert [a.event.event_id for a in appended.items] == [e.event_id for e in events]
            room = engine.rooms[ROOM]
            assert room.result is not None
            assert [a.event.body for a in room.result.timeline] == [None, "hello", "one", "two"]
        finally:
            await engine.close()

    run(go())


# -- opening rooms ---------------------------------------------------------------------------


@pytest.mark.parametrize("segments", [0, 3])
def test_an_opens_rebuild_that_comes_after_the_whole_read_changes_nothing(
    tmp_path: Path, segments: int
) -> None:
    """Two opens of a room (the app's start, the window's selection): the second decides
    to rebuild it from the cache while it has no audit yet, and on a busy machine the
    state thread reaches that rebuild only after the first open's whole read. The
    rebuild then does nothing: the cache adds no segment twice and sets no final verdict
    back to a provisional one (an empty room was never shown as read completely)."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    if segments:
        write_history(store, days=1, per_day=segments)
    rec = Recorder()

    async def go() -> None:
        index = Index.open(tmp_path / "index.db")
        engine = SyncEngine(store, index=index, listener=rec, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            result = room.result
            assert room.complete and result is not None
            assert len(bodies(result)) == segments
            told = len(rec.events)
            await engine._keeper.warm(room, interactive=True)  # the second open's, late
            assert room.complete and room.result is result
            assert rec.events[told:] == []  # no cached rows over the read ones, no audit
            assert room.ledger.audit({}, complete=True).timeline == result.timeline
        finally:
            await engine.close()

    run(go())


def test_newest_first_open_shows_a_partial_room_then_the_complete_audit(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    total = write_history(store, days=3, per_day=2 * FIRST_CHUNK)  # 48 segments in 3 folders
    dates = sorted({p.parent.name for p in store_segments(root)})
    assert len(dates) == 3 and len(store_segments(root)) == 6 * FIRST_CHUNK
    db = tmp_path / "index.sqlite3"
    index = Index.open(db)
    spy = Index.open(db)  # a second connection: what is stored when each event arrives
    rec = Recorder()
    pins_seen: list[tuple[bool, dict[str, set[str]]]] = []
    rec.hooks.append(
        lambda e: (
            pins_seen.append((e.complete, spy.pins(ROOM))) if isinstance(e, RoomLoaded) else None
        )
    )

    async def go() -> None:
        engine = SyncEngine(store, index=index, listener=rec, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
        finally:
            await engine.close()

    try:
        run(go())
        loaded = rec.of(RoomLoaded)
        assert [x.complete for x in loaded][-1] is True
        assert loaded[0].complete is False  # the first screen, before older history
        first = loaded[0].result
        assert 0 < first.segments <= FIRST_CHUNK
        assert {a.path.split("/")[3] for a in first.timeline} == {dates[-1]}  # newest day only
        assert all(a.state is TrustState.VERIFIED for a in first.timeline)
        assert not any(x.complete for x in loaded[:-1])

        final = loaded[-1].result
        assert_clean_and_verified(final)
        assert len(final.timeline) == total and final.segments == 6 * FIRST_CHUNK
        assert bodies(final) == [f"day {d} message {i}" for d in range(3) for i in range(16)]
        # trust on first use only from the whole history
        assert all(pins == {} for complete, pins in pins_seen if not complete)
        keys = {u: b64encode(bytes(key(s).verify_key)) for u, s in ((ALICE, 1), (BOB, 2))}
        assert pins_seen[-1] == (True, {ALICE: {keys[ALICE]}, BOB: {keys[BOB]}})
        assert index.rooms()[0]["history_complete"] == 1
        assert index.timeline_length(ROOM) == total
    finally:
        spy.close()
        index.close()


def test_a_warm_open_shows_the_index_before_touching_storage(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = CountingStorage(root)
    create_room(store)
    run(
        RoomWriter(store, ROOM, ALICE, key(1), unique=unique).send(
            [Draft.text(f"m{i}") for i in range(WARM_ROWS + 20)]
        )
    )
    db = tmp_path / "index.sqlite3"

    async def open_once(rec: Recorder) -> AuditResult:
        index = Index.open(db)
        engine = SyncEngine(store, index=index, listener=rec, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return room.result
        finally:
            await engine.close()
            index.close()

    cold = Recorder()
    first = run(open_once(cold))
    assert cold.of(WarmTimeline) == []  # nothing cached yet
    assert len(first.timeline) == WARM_ROWS + 21

    store.calls.clear()
    warm = Recorder()
    calls_at: dict[str, int] = {}
    warm.hooks.append(lambda e: calls_at.setdefault(type(e).__name__, len(store.calls)))
    second = run(open_once(warm))
    assert isinstance(warm.events[0], WarmTimeline)
    assert calls_at["WarmTimeline"] == 0  # no storage call before the first screen
    assert calls_at["RoomLoaded"] == 0  # nor before the cached room is rebuilt
    shown = warm.events[0]
    assert shown.total == WARM_ROWS + 21
    assert [r.event.event_id for r in shown.rows if isinstance(r.event, Event)] == [
        a.event.event_id for a in first.timeline[-WARM_ROWS:]
    ]
    assert {r.state for r in shown.rows} == {TrustState.VERIFIED}
    assert second.timeline == first.timeline and second.findings == []
    assert store.gets() == [f"rooms/{ROOM}/metadata.json"]  # no segment downloaded again


def test_a_damaged_cached_segment_is_read_again_and_the_cache_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The index is a local file another program can edit. A cached row that no longer
    parses (or is not the event its row names) is shown as damaged on the first screen,
    its segment is not trusted from the cache but read and checked again from storage,
    the verdict meanwhile says it is unread, and the cache is repaired."""
    root = tmp_path / "store"
    store = CountingStorage(root)
    create_room(store)
    alice = RoomWriter(store, ROOM, ALICE, key(1), unique=unique)
    run(alice.send([Draft.text(f"a{i}") for i in range(4)] + [Draft.text("damage-me")]))
    run(RoomWriter(store, ROOM, BOB, key(2), unique=unique).send([Draft.text("b")]))
    db = tmp_path / "index.sqlite3"

    async def open_once(rec: Recorder) -> AuditResult:
        index = Index.open(db)
        engine = SyncEngine(store, index=index, listener=rec, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return room.result
        finally:
            await engine.close()
            index.close()

    first = run(open_once(Recorder()))
    conn = sqlite3.connect(db)
    with conn:
        damaged = conn.execute("SELECT path FROM events WHERE raw LIKE '%damage-me%'").fetchone()[0]
        conn.execute("UPDATE events SET raw = '{not json' WHERE raw LIKE '%damage-me%'")
    conn.close()

    store.calls.clear()
    warm = Recorder()
    caplog.set_level(logging.WARNING, "bucket_chat.index")
    second = run(open_once(warm))
    (shown,) = warm.of(WarmTimeline)
    bad = [r for r in shown.rows if not isinstance(r.event, Event)]
    assert len(bad) == 1 and bad[0].path == damaged and bad[0].state is TrustState.INVALID
    assert any(
        f"{damaged}:" in r.getMessage() and "not JSON" in r.getMessage() for r in caplog.records
    )
    rebuilt, final = warm.of(RoomLoaded)[0], warm.of(RoomLoaded)[-1]
    # the saved read's final rules with the damaged segment unread (partial: nobody
    # trusted on first use), never the provisional rules, which take keys on first use
    assert rebuilt.complete
    assert [(f.kind, f.path) for f in rebuilt.result.findings] == [
        (Kind.SEGMENT_UNREADABLE, damaged)
    ]
    assert "cached copy of it is damaged" in rebuilt.result.findings[0].message
    assert second.timeline == first.timeline and second.findings == []
    assert final.complete
    assert damaged in store.gets()  # read again from storage, nothing else was
    assert [p for p in store.gets() if "/logs/" in p] == [damaged]
    index = Index.open(db)  # and the cache is whole again
    try:
        assert all(isinstance(r.event, Event) for r in index.newest(ROOM, 100))
    finally:
        index.close()


def test_a_deleted_index_costs_only_a_resync(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = CountingStorage(root)
    create_room(store)
    write_history(store, days=2, per_day=3)
    data = tmp_path / "data"

    async def session(rec: Recorder, message: str | None) -> AuditResult:
        async with engine_session(store, data_dir=data, listener=rec, config=QUIET) as engine:
            room = await engine.open_room(ROOM, background=False)
            if message is not None:  # queued only: this session ends before publishing
                await engine.send(ROOM, ALICE, key(1), text(message))
            else:
                assert await engine.flush(timeout=5)
            assert room.result is not None
            return room.result

    first = run(session(Recorder(), "queued while the index is deleted"))
    assert len(store_segments(root)) == 6
    index_dir = index_path_for(data, store.identity).parent
    assert any(index_dir.iterdir())
    for f in index_dir.iterdir():
        f.unlink()

    store.calls.clear()
    rec = Recorder()
    second = run(session(rec, None))
    assert rec.of(WarmTimeline) == []
    assert len([p for p in store.gets() if p.endswith(".jsonl")]) == 6  # the resync
    assert [a.event.event_id for a in second.timeline[: len(first.timeline)]] == [
        a.event.event_id for a in first.timeline
    ]
    assert bodies(second)[-1] == "queued while the index is deleted"  # the outbox survived
    assert_clean_and_verified(second)
    assert len(store_segments(root)) == 7


# -- activity markers ------------------------------------------------------------------------


def test_markers_name_exactly_the_segment_to_fetch_and_announce_new_rooms(tmp_path: Path) -> None:
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    create_room(LocalStorage(root), "room-2")
    rec = Recorder()
    reader = CountingStorage(root)

    async def go() -> None:
        sender = SyncEngine(
            LocalStorage(root), outbox=Outbox(tmp_path / "out.sqlite3"), config=QUIET
        )
        receiver = SyncEngine(reader, listener=rec, config=QUIET)
        try:
            await receiver.open_room(ROOM, background=False)
            await sender.send(ROOM, ALICE, key(1), text("for room one"))
            await sender.send("room-2", ALICE, key(1), text("for room two"))
            assert await sender.flush(timeout=5)
            segs = [str(p.relative_to(root)) for p in store_segments(root)]
            seg2 = [str(p.relative_to(root)) for p in store_segments(root, "room-2")]
            assert len(segs) == 1 and len(seg2) == 1
            markers = sorted(
                str(p.relative_to(root)) for p in (root / "activity").rglob("*") if p.is_file()
            )
            named = [parse_marker(m) for m in markers]
            # (the rooms' segments are written side by side: their markers in either order)
            assert sorted(n[1:] if n else ("", "") for n in named) == [
                (ROOM, segs[0]),
                ("room-2", seg2[0]),
            ]
            for marker, parsed in zip(markers, named, strict=True):
                assert parsed is not None and marker.split("/")[1] == utc_date(parsed[0])

            reader.calls.clear()
            assert await receiver.poll_once() == 1
            assert reader.gets() == [segs[0]]  # exactly the named segment, nothing else
            assert all(p.startswith("activity/") for c, p in reader.calls if c != "get")
            assert [e.room_id for e in rec.of(RoomDiscovered)] == ["room-2"]
            (appended,) = rec.of(EventsAppended)
            assert [a.event.body for a in appended.items] == [None, "for room one"]

            reader.calls.clear()
            assert await receiver.poll_once() == 0  # the cursor moved past both markers
            assert reader.gets() == [] and all(p.startswith("activity/") for _, p in reader.calls)
            assert len(rec.of(RoomDiscovered)) == 1
        finally:
            await sender.close()
            await receiver.close()
            for engine in (sender, receiver):
                for db in (engine.outbox, engine.index):
                    if db is not None:
                        db.close()

    run(go())


# -- tampering arriving late -------------------------------------------------------------------


def _forged(original: str, stored: bytes) -> tuple[str, bytes, Kind]:
    """Alice's message with another body but her signature, under another name."""
    lines = stored.splitlines(keepends=True)
    doc = json.loads(lines[-1])
    doc["content"]["body"] = "send the money to mallory"
    data = (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()
    path = original.replace(".jsonl", "-r7.jsonl")
    return path, data, Kind.INVALID_SIGNATURE


def _after_a_missing_segment(original: str, stored: bytes) -> tuple[str, bytes, Kind]:
    """Alice's next two events, of which only the second is published: a gap."""
    decoded = decode_segment(original, stored, ROOM)
    head = decoded.events[-1].event
    events: list[Event] = []
    for body in ("lost", "after the lost one"):
        prev = events[-1] if events else head
        events.append(
            build_event(
                room_id=ROOM,
                sender_id=ALICE,
                event_type=MESSAGE,
                content={"body": body},
                timestamp_ms=prev.timestamp_ms + 1000,
                unique=unique(),
                prev_event_hash=prev.hash,
                signing_key=key(1),
            )
        )
    cid = client_id_for(ALICE, bytes(key(1).verify_key))
    return path_for(events[1:], cid), encode_segment(events[1:]), Kind.GAP


@pytest.mark.parametrize("tamper", [_forged, _after_a_missing_segment])
def test_tampering_arriving_later_reloads_the_room_with_the_finding(
    tmp_path: Path, tamper: Callable[[str, bytes], tuple[str, bytes, Kind]]
) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    path0, _ = run(RoomWriter(store, ROOM, ALICE, key(1), unique=unique).send([Draft.text("hi")]))
    rec = Recorder()

    async def go() -> None:
        engine = SyncEngine(store, index=Index.open(None), listener=rec, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            new, _ = await RoomWriter(store, ROOM, ALICE, key(1), unique=unique).send(
                [Draft.text("honest follow-up")]
            )
            assert new != path0
            assert await engine.fetch_segment(ROOM, new)
            assert isinstance(rec.events[-1], EventsAppended)  # an honest append is cheap
            before = len(rec.events)
            path, data, kind = tamper(new, await store.get(new))
            await store.put_if_absent(path, data)
            assert await engine.fetch_segment(ROOM, path)
            assert not await engine.fetch_segment(ROOM, path)  # known now: not fetched twice
            # At once, or (a machine so loaded that the last audit looked dear) when the
            # re-audit pacing lets it (``REAUDIT_SHARE``): a full audit, nothing before it.
            for _ in range(200):
                if rec.events[before:]:
                    break
                await asyncio.sleep(0.05)
            after = rec.events[before:]
            assert len(after) == 1 and isinstance(after[0], RoomLoaded)
            assert after[0].complete
            result = after[0].result
            assert kind in {f.kind for f in result.errors} and not result.clean
            assert {f.path for f in result.errors if f.kind is kind} == {path}
        finally:
            await engine.close()

    run(go())


def test_a_hint_read_while_a_pass_ends_never_undoes_its_final_verdict(tmp_path: Path) -> None:
    """A segment hinted (file-system event, marker) while a pass through the history is
    about to give its final verdict: the hint's ingest must apply the room's standing when
    the serial worker gets to it. Taken on the loop before, it was the pass's provisional
    False, and the hint re-audited the room provisionally *after* the final audit: every
    listener was told the verdict is not final (``sync --follow`` then printed nothing
    more) and, the room no longer complete, no safety pass ever made it final again."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    writer = RoomWriter(store, ROOM, ALICE, key(1), unique=unique)
    run(writer.send([Draft.text("before the pass")]))
    rec = Recorder()
    gate = threading.Event()  # holds the engine's serial worker

    async def go() -> None:
        engine = SyncEngine(store, index=Index.open(None), listener=rec, config=QUIET)
        submitted: list[str] = []
        queued = asyncio.Event()
        real = engine._serially

        async def serially(fn: Callable[..., T], *args: Any, **lane: Any) -> T:
            submitted.append(getattr(fn, "__name__", repr(fn)))
            queued.set()
            return await real(fn, *args, **lane)

        engine._serially = serially  # type: ignore[method-assign]
        provisional = asyncio.Event()

        def hold_the_worker(event: EngineEvent) -> None:
            # The pass's first (provisional) audit is out; its final audit is submitted
            # right after this returns, and waits behind the gate.
            if isinstance(event, RoomLoaded) and not event.complete and not provisional.is_set():
                engine._serial.submit(gate.wait)
                provisional.set()

        rec.hooks.append(hold_the_worker)
        try:
            opening = asyncio.create_task(engine.open_room(ROOM, background=False))
            await provisional.wait()
            assert submitted[-1] == "_ingest_serial"  # the final audit, queued
            assert not engine.rooms[ROOM].complete
            path, _ = await writer.send([Draft.text("hinted while the pass ends")])
            queued.clear()
            hint = asyncio.create_task(engine.fetch_segment(ROOM, path))
            await queued.wait()  # the hint's ingest is queued behind the final audit
            assert submitted[-1] == "_ingest_serial"
            gate.set()
            await opening
            assert await hint
            assert engine.rooms[ROOM].complete
        finally:
            gate.set()
            await engine.close()
            assert engine.index is not None
            engine.index.close()

    run(go())
    final = next(i for i, e in enumerate(rec.events) if isinstance(e, RoomLoaded) and e.complete)
    after = rec.events[final + 1 :]
    assert not [e for e in after if isinstance(e, RoomLoaded) and not e.complete]
    # the hinted message reaches the listener after the final verdict, as final
    shown = [
        item.event.content.get("body")
        for e in after
        if isinstance(e, EventsAppended | RoomLoaded)
        for item in (e.items if isinstance(e, EventsAppended) else e.result.timeline)
    ]
    assert "hinted while the pass ends" in shown


# -- writing -----------------------------------------------------------------------------------


def test_sends_within_the_batch_window_share_one_segment(tmp_path: Path) -> None:
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    rec = Recorder()
    config = SyncConfig(batch_window=1.0, local_rescan=3600.0)

    async def go() -> None:
        engine = SyncEngine(
            LocalStorage(root), outbox=Outbox(tmp_path / "out.sqlite3"), listener=rec, config=config
        )
        try:
            await engine.start()
            first = await engine.send(ROOM, ALICE, key(1), text("first, alone"))
            # after a quiet spell the first message goes out at once (leading edge)
            await until(lambda: any(e.state == "sent" for e in rec.of(OutboxChanged)), 0.9)
            burst: list[Event] = []
            for i in range(5):
                burst += await engine.send(ROOM, ALICE, key(1), text(f"burst {i}"))
            await until(lambda: sum(e.state == "sent" for e in rec.of(OutboxChanged)) >= 2, 5)
            # The outbox sends in order: once a later message is out, any part of the burst
            # sent apart from the rest would already show as a batch of its own.
            later = await engine.send(ROOM, ALICE, key(1), text("later"))
            await until(lambda: sum(e.state == "sent" for e in rec.of(OutboxChanged)) >= 3, 5)
            sent = [e for e in rec.of(OutboxChanged) if e.state == "sent"]
            assert [[x.event_id for x in e.events] for e in sent] == [
                [e.event_id for e in first],
                [e.event_id for e in burst],
                [e.event_id for e in later],
            ]
            sending = [e for e in rec.of(OutboxChanged) if e.state == "sending"]
            assert len(sending) == 7 and all(e.error is None for e in sending)
        finally:
            await engine.close()

    run(go())
    files = store_segments(root)
    assert len(files) == 3
    lines = [f.read_bytes().count(b"\n") for f in files]
    assert lines == [2, 5, 1]  # join + first; the burst in ONE segment; the later one
    assert all(parse_segment_path(str(f.relative_to(root))) for f in files)


def test_flush_gives_up_at_once_on_a_failure_only_a_user_can_fix(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.write_text("a file where the shared folder should be")
    rec = Recorder()

    async def go() -> None:
        box = Outbox(tmp_path / "out.sqlite3")
        engine = SyncEngine(LocalStorage(root), outbox=box, listener=rec, config=QUIET)
        try:
            events = await engine.send(ROOM, ALICE, key(1), text("not yet"))
            publisher = engine._publisher
            real_round, rounds = publisher.publish_round, []

            async def counted_round(**kw: Any) -> int:
                if kw.get("everything"):  # the flush's rounds, not the publisher task's
                    rounds.append(kw)
                return await real_round(**kw)

            publisher.publish_round = counted_round  # type: ignore[method-assign]
            assert not await engine.flush(timeout=30)
            assert len(rounds) == 1, rounds  # given up after one round, not retried for 30 s
            (failed,) = [e for e in rec.of(OutboxChanged) if e.state == "failed"]
            assert [e.event_id for e in failed.events] == [e.event_id for e in events]
            assert failed.error and "Not a directory" in failed.error
            assert {p.state for p in box.pending()} == {"failed"}

            root.unlink()  # the user fixes it; an explicit flush retries at once
            root.mkdir()
            assert await engine.flush(timeout=5)
            assert box.is_empty()
        finally:
            await engine.close()
            box.close()

    run(go())
    (segment,) = store_segments(root)
    assert len(segment.read_bytes().splitlines()) == 2  # the join and the message, once


def _claims_to_introduce(root: Path, new_key: SigningKey, count: int) -> list[str]:
    """``count`` keys under alice's name, each saying it added ``new_key``: what anyone
    with write access can make by the thousand. Returns the claiming keys, in order."""
    claimed = b64encode(bytes(new_key.verify_key))
    keys: list[str] = []
    for i in range(count):
        claimer = SigningKey(i.to_bytes(4, "big") * 8)
        ev = build_event(
            room_id=ROOM,
            sender_id=ALICE,
            event_type=MEMBER,
            content={"membership": "join", "add_device_key": claimed},
            timestamp_ms=T0 + i,
            unique=unique(),
            prev_event_hash=None,
            signing_key=claimer,
        )
        path = root / path_for([ev], client_id_for(ALICE, bytes(claimer.verify_key)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_segment([ev]))
        keys.append(b64encode(bytes(claimer.verify_key)))
    return keys


def test_a_flood_of_introductions_is_reported_once_in_one_bounded_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hundreds of keys claim to have added this device. Each became its own warning
    (with the accept-device command) and its own status-line message, on every first
    send of each process: a flood on stderr and in the app. Now one event names them all,
    one warning names a few, and the next send says nothing new."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    claimers = _claims_to_introduce(root, key(1), 300)
    rec = Recorder()

    async def go() -> None:
        engine = SyncEngine(
            LocalStorage(root), outbox=Outbox(tmp_path / "out.sqlite3"), listener=rec, config=QUIET
        )
        try:
            await engine.start()
            sent = await engine.send(ROOM, ALICE, key(1), text("hi"))
            assert "introduced_by" not in sent[0].content  # nobody confirmed: none accepted
            await engine.send(ROOM, ALICE, key(1), text("again"))
        finally:
            await engine.close()

    with caplog.at_level("WARNING", logger="bucket_chat.sync"):
        run(go())
    offers = rec.of(IntroductionOffered)
    assert [len(o.introducers) for o in offers] == [300]
    assert offers[0].introducers == tuple(claimers)
    told = [r.getMessage() for r in caplog.records if "introduced this device" in r.getMessage()]
    assert len(told) == 1 and len(told[0]) < 1500, told
    assert "300 device keys" in told[0] and "and 297 more" in told[0]
    assert all(k in told[0] for k in claimers[:3]) and claimers[3] not in told[0]
    # no chain of commands to paste: each key accepted would be vouched for
    assert told[0].count("accept-device") == 1 and "<that key>" in told[0]


def test_a_refused_send_does_not_use_up_the_acceptance_of_an_introduction(
    tmp_path: Path,
) -> None:
    """The laptop's owner confirmed the phone's key; the phone introduced the laptop. The
    laptop's first send was refused (a message too large to sign): the acceptance it
    would have carried was marked done anyway, so no later send of that session
    accepted, and the phone's statement kept counting for nothing."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    phone = RoomWriter(store, ROOM, ALICE, key(2))
    run(phone.send([Draft.text("from the phone")]))
    run(phone.add_device(b64encode(bytes(key(1).verify_key)), "laptop"))

    async def go() -> list[Event]:
        index = Index.open(None)
        index.mark_verified(ALICE, phone.key_text)
        engine = SyncEngine(
            store, index=index, outbox=Outbox(tmp_path / "out.sqlite3"), config=QUIET
        )
        try:
            await engine.open_room(ROOM, background=False)
            with pytest.raises(ValueError, match="too large"):
                await engine.send(ROOM, ALICE, key(1), text("x" * 300_000))
            return await engine.send(ROOM, ALICE, key(1), text("short"))
        finally:
            await engine.close()

    sent = run(go())
    assert [e.content.get("introduced_by") for e in sent] == [phone.key_text, None]
