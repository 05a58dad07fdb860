"""Rooms that keep no bodies in memory (the app's engines, ``keep_bodies=False``): the
audit holds what it needs per event, bodies are read page by page from the index on the
engine's worker, each checked to be the event the audit judged. Real folders, a real
SQLite index and the real engine, one asyncio loop."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_engine import (  # the engine tests' helpers (same folder)
    ALICE,
    QUIET,
    ROOM,
    Recorder,
    create_room,
    key,
    run,
    text,
    unique,
    until,
    write_history,
)

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import AuditResult, TrustState
from bucket_chat_desktop.protocol.event import MESSAGE, Event, Malformed
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import keeper
from bucket_chat_desktop.sync.engine import NEWEST_ROWS, REBUILD_BATCH, SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.keeper import read_cached
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

SLIM = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0, keep_bodies=False)


def _engine(root: Path, db: Path, rec: Recorder, config: SyncConfig = SLIM) -> SyncEngine:
    return SyncEngine(LocalStorage(root), index=Index.open(db), listener=rec, config=config)


async def _close(engine: SyncEngine) -> None:
    await engine.close()
    assert engine.index is not None
    engine.index.close()


def _whole_room(root: Path, db: Path) -> AuditResult:
    """The same room read by an engine that keeps bodies: what every page must match."""

    async def go() -> AuditResult:
        engine = _engine(root, db, Recorder(), QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return room.result
        finally:
            await _close(engine)

    return run(go())


def _whole(ev: Event | Malformed) -> Event | Malformed:
    """The event as an audit keeps it (its canonical bytes dropped once checked)."""
    return ev._replace(canonical=b"") if isinstance(ev, Event) else ev


def test_a_slim_room_pages_every_body_with_the_audits_verdict(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    # more segments than one rebuild batch, more rows than the newest page; n: messages
    # and the two writers' joins
    n = write_history(store, days=3, per_day=REBUILD_BATCH * 3 + 7)
    whole = _whole_room(root, tmp_path / "reference.sqlite3")
    assert len(whole.timeline) > NEWEST_ROWS

    async def go() -> None:
        for warm in (False, True):  # read from storage, then rebuilt from the index
            rec = Recorder()
            engine = _engine(root, tmp_path / "index.sqlite3", rec)
            try:
                room = await engine.open_room(ROOM, background=False)
                result = room.result
                assert result is not None
                # the audit is the same, event for event, without the bodies
                assert [(a.event.hash, a.state, a.reason) for a in result.timeline] == [
                    (a.event.hash, a.state, a.reason) for a in whole.timeline
                ]
                assert result.findings == whole.findings == []
                assert all(
                    not a.event.content and not a.event.raw
                    for a in result.timeline
                    if a.event.type == MESSAGE
                )
                loaded = rec.of(RoomLoaded)[-1]
                assert loaded.result is result and loaded.total == len(whole.timeline)
                assert [(x.verdict, _whole(x.event)) for x in loaded.newest] == [
                    (a, w.event)
                    for a, w in zip(
                        result.timeline[-NEWEST_ROWS:], whole.timeline[-NEWEST_ROWS:], strict=True
                    )
                ]
                page = await engine.timeline_page(ROOM, result, 0, loaded.total)
                assert page is not None
                assert [_whole(x.event) for x in page] == [a.event for a in whole.timeline]
                assert [x.verdict for x in page] == result.timeline
                assert sum(1 for x in page if isinstance(x.event, Event) and x.event.body) == n - 2
                assert warm or rec.of(RoomLoaded)[0].newest  # the first screen came with rows
                # the room list's preview (kept in the index) has the newest body
                assert engine.index is not None
                info = engine.index.room(ROOM)
                assert info is not None and info["last_preview"] == whole.timeline[-1].event.body
            finally:
                await _close(engine)

    run(go())


def test_a_page_of_an_audit_that_was_replaced_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=1, per_day=4)

    async def go() -> None:
        engine = _engine(root, tmp_path / "index.sqlite3", Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            old = room.result
            assert old is not None
            await engine.reaudit(ROOM)
            assert room.result is not old
            assert await engine.timeline_page(ROOM, old, 0, 2) is None
            assert await engine.timeline_page("no-such-room", old, 0, 2) is None
            # An export pins the audit it started with: its rows, whole, the same events
            # and verdicts as when it was the latest, although a poll read the room again.
            pinned = await engine.timeline_page(ROOM, old, 0, len(old.timeline), pinned=True)
            assert pinned is not None and len(pinned) == len(old.timeline)
            assert [s.event.event_id for s in pinned] == [a.event.event_id for a in old.timeline]
            assert all(isinstance(s.event, Event) for s in pinned)
            assert [s.verdict for s in pinned] == list(old.timeline)
            page = await engine.timeline_page(ROOM, room.result, -5, 10**9)
            assert page is not None and len(page) == len(room.result.timeline)
            await engine.close()  # a storage removed while its timeline is scrolled
            assert await engine.timeline_page(ROOM, room.result, 0, 2) is None
        finally:
            await _close(engine)

    run(go())


def test_a_cached_line_changed_behind_the_apps_back_is_never_shown_as_verified(
    tmp_path: Path,
) -> None:
    """Someone with access to this device's files rewrites a cached message (same event id
    and time, so it still parses as that row's event). The audit in memory checked the
    original: the page must not show the new words under its "verified" verdict."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=1, per_day=6)
    db = tmp_path / "index.sqlite3"

    async def go() -> None:
        engine = _engine(root, db, Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            result = room.result
            assert result is not None
            target = result.timeline[-1]
            assert target.state is TrustState.VERIFIED
            with sqlite3.connect(db) as conn:
                (raw,) = conn.execute(
                    "SELECT raw FROM events WHERE path = ? AND line = ?",
                    (target.path, target.line),
                ).fetchone()
                forged = raw.replace("day 0 message 5", "send the money to mallory")
                assert forged != raw
                conn.execute(
                    "UPDATE events SET raw = ? WHERE path = ? AND line = ?",
                    (forged, target.path, target.line),
                )
            page = await engine.timeline_page(ROOM, result, 0, len(result.timeline))
            assert page is not None
            *good, last = page
            assert isinstance(last.event, Malformed)
            assert "not the event the audit checked" in last.event.reason
            assert all(isinstance(x.event, Event) for x in good)
            # only the signature respelled (the hash does not cover it): found too, in an
            # engine whose ledger keeps no signature text (the app's), by its digest
            with sqlite3.connect(db) as conn:
                conn.execute(
                    "UPDATE events SET raw = ? WHERE path = ? AND line = ?",
                    (raw, target.path, target.line),
                )
                (sig,) = conn.execute(
                    "SELECT json_extract(raw, '$.signature') FROM events "
                    "WHERE path = ? AND line = ?",
                    (target.path, target.line),
                ).fetchone()
                other = ("B" if sig[0] != "B" else "C") + sig[1:]
                conn.execute(
                    "UPDATE events SET raw = ? WHERE path = ? AND line = ?",
                    (raw.replace(sig, other), target.path, target.line),
                )
            n = len(result.timeline)
            page = await engine.timeline_page(ROOM, result, n - 1, n)
            assert page is not None and isinstance(page[-1].event, Malformed)
            # a row removed from the cache says so too
            with sqlite3.connect(db) as conn:
                conn.execute("DELETE FROM events WHERE path = ?", (result.timeline[0].path,))
            page = await engine.timeline_page(ROOM, result, 0, 1)
            assert page is not None and isinstance(page[0].event, Malformed)
        finally:
            await _close(engine)

    run(go())


def _room_alice_wrote_in(tmp_path: Path) -> Path:
    """A room holding alice's "hello" (written directly, as another device would)."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    run(RoomWriter(store, ROOM, ALICE, key(1), unique=unique).send([Draft.text("hello")]))
    return root


def _sending_engine(root: Path, tmp_path: Path, rec: Recorder) -> tuple[SyncEngine, Outbox]:
    """The app's engine on ``root``: slim rooms, a real index and outbox."""
    box = Outbox(tmp_path / "outbox.sqlite3")
    engine = SyncEngine(
        LocalStorage(root),
        index=Index.open(tmp_path / "index.sqlite3"),
        outbox=box,
        listener=rec,
        config=SLIM,
    )
    return engine, box


def test_new_events_arrive_whole_and_own_sends_continue_the_chain(tmp_path: Path) -> None:
    """Appends carry bodies (notifications, previews), and this device's next send
    continues its chain from the whole cached head line, not from the slim copy."""
    root = _room_alice_wrote_in(tmp_path)

    async def go() -> None:
        rec = Recorder()
        engine, box = _sending_engine(root, tmp_path, rec)
        try:
            await engine.start()
            room = await engine.open_room(ROOM, background=False)
            for i in range(3):
                await engine.send(ROOM, ALICE, key(1), text(f"more {i}"))
                await engine.flush(5)
            await until(lambda: len(room.result.timeline) == 5 if room.result else False)
            appended = [a for e in rec.of(EventsAppended) for a in e.items]
            assert [a.event.body for a in appended if a.event.type == MESSAGE] == [
                "more 0",
                "more 1",
                "more 2",
            ]
            await engine.reaudit(ROOM)
            assert room.result is not None
            assert room.result.findings == [] and room.result.clean
            assert {a.state for a in room.result.timeline} == {TrustState.VERIFIED}
        finally:
            await _close(engine)
            box.close()

    run(go())


def test_a_result_handed_out_never_changes_and_its_pages_outlive_appends(
    tmp_path: Path,
) -> None:
    """What ``RoomLoaded`` and ``EventsAppended`` hand a front end is read there on another
    thread while the engine goes on: an append makes a new result (the old one keeps its
    rows and findings), and a page asked with an older result of the same audit is still
    given (the timeline's pager holds the result its audit arrived with)."""
    root = _room_alice_wrote_in(tmp_path)

    async def go() -> None:
        rec = Recorder()
        engine, box = _sending_engine(root, tmp_path, rec)
        try:
            await engine.start()
            room = await engine.open_room(ROOM, background=False)
            loaded = rec.of(RoomLoaded)[-1].result
            rows, findings = list(loaded.timeline), list(loaded.findings)
            for i in range(3):
                await engine.send(ROOM, ALICE, key(1), text(f"more {i}"))
                await engine.flush(5)
            await until(lambda: len(room.result.timeline) == 5 if room.result else False)
            handed = [e.result for e in rec.of(EventsAppended)]
            assert handed and all(r is not loaded for r in handed)
            # Each result as it was handed out, whatever came after it.
            assert loaded.timeline == rows and loaded.findings == findings
            sizes = [len(r.timeline) for r in handed]
            assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
            assert {r.audit_number for r in handed} == {loaded.audit_number}
            page = await engine.timeline_page(ROOM, loaded, 0, len(rows))
            assert page is not None
            assert [s.event.hash for s in page] == [a.event.hash for a in rows]
            await engine.reaudit(ROOM)  # a new audit: older positions are refused
            assert await engine.timeline_page(ROOM, loaded, 0, 1) is None
        finally:
            await _close(engine)
            box.close()

    run(go())


def test_a_rebuild_reads_the_cache_in_batches_bounded_by_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild parses a batch of cached segments at a time, at most ``REBUILD_BYTES`` of
    them (or one segment bigger than that): every segment comes back once, in order,
    whatever the bound."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=2, per_day=12)
    _whole_room(root, tmp_path / "index.sqlite3")  # reads the room into the index
    index = Index.open(tmp_path / "index.sqlite3")
    try:
        whole = read_cached(index, ROOM)
        sizes = whole.known
        biggest = max(sizes.values())
        asked: list[int] = []
        room_segments = index.room_segments

        def counting(room_id: str, paths: Sequence[str] | None = None) -> Any:
            asked.append(sum(sizes[p] for p in paths or ()))
            return room_segments(room_id, paths)

        monkeypatch.setattr(index, "room_segments", counting)
        for bound in (1, biggest, 3 * biggest, 10**9):
            monkeypatch.setattr(keeper, "REBUILD_BYTES", bound)
            asked.clear()
            got = read_cached(index, ROOM, eager=False)
            assert list(got.segments) == list(whole.segments) and not got.damaged
            assert len(asked) >= len(sizes) / keeper.REBUILD_BATCH
            assert all(size <= max(bound, biggest) for size in asked)
            if bound == 1:
                assert len(asked) == len(sizes)  # one segment a batch
    finally:
        index.close()


def test_a_segment_read_before_that_vanishes_or_changes_is_reported(tmp_path: Path) -> None:
    """A reader whose index holds the room read it whole before; then someone with write
    access deletes one segment and rewrites another without a line. The cached copies
    stay shown (they were checked), but the room is no longer called completely read:
    an error names each segment and what happened to it."""
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    write_history(store, days=1, per_day=6)
    db = tmp_path / "index.sqlite3"

    async def read() -> tuple[dict[str, str], AuditResult, bool]:
        engine = _engine(root, db, Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return {**room.unread, **room.vanished}, room.result, room.partial
        finally:
            await _close(engine)

    unread, result, partial = run(read())
    assert unread == {} and not partial and result.clean
    segments = sorted((root / "rooms" / ROOM / "logs").rglob("*.jsonl"))
    gone, changed = segments[1], segments[2]
    gone.unlink()
    changed.write_bytes(changed.read_bytes() + b"\n")  # any other bytes under its name
    unread, result, partial = run(read())
    as_path = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    assert set(unread) == {as_path(gone), as_path(changed)}
    assert "no longer in storage" in unread[as_path(gone)]
    assert "changed in storage after this device read and checked it" in unread[as_path(changed)]
    assert partial and not result.clean
    named = {f.path for f in result.findings if f.kind is Kind.SEGMENT_VANISHED}
    assert named == {as_path(gone), as_path(changed)}
    # what was checked before is still shown
    assert sum(1 for a in result.timeline if a.event.type == MESSAGE) == 6
