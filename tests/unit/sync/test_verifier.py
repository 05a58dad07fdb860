"""Segments decoded and verified in worker processes (sync/verifier.py): real spawned
processes, real process deaths (SIGKILL, ``os._exit``), a real engine on a real folder and
SQLite index. A worker that stops never hangs or crashes the read: the segment it stopped
on is named (unread, retried by the next full pass), its neighbours are kept, the pool is
started again. Hostile segments give the same findings in a worker as on a thread."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import (
    AuditResult,
    RoomLedger,
    TrustState,
    prepare_segment,
)
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.handover import PackedSegment, prepare_packed, unpack
from bucket_chat_desktop.protocol.segment import MAX_BAD_LINES
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, ObjectInfo
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import backfill as backfill_module
from bucket_chat_desktop.sync import verifier as verifier_module
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.verifier import SegmentVerifier
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
ALICE, BOB = "alice@example.com", "bob@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
# Every read of more than one segment goes to the worker processes.
WORKERS = SyncConfig(
    batch_window=0.05, local_rescan=3600.0, active_interval=3600.0, process_min_bytes=0
)
THREADS = SyncConfig(
    batch_window=0.05, local_rescan=3600.0, active_interval=3600.0, process_min_bytes=1 << 40
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and os._exit codes")


def dies_on_marker(path: str, data: bytes, room_id: str) -> PackedSegment:
    """A worker's work that stops its process on a segment holding ``KILL`` (as a crash
    in a C library or the out-of-memory killer would), and does the real work otherwise."""
    if b"KILL" in data:
        os._exit(9)
    return prepare_packed(path, data, room_id)


def raises_on_marker(path: str, data: bytes, room_id: str) -> PackedSegment:
    if b"RAISE" in data:
        raise MemoryError("no memory for this one")
    return prepare_packed(path, data, room_id)


def garbles_marked(path: str, data: bytes, room_id: str) -> PackedSegment:
    """A worker whose result for a segment holding ``message 3`` is not what ``pack``
    makes (a bug in the hand-over, never input): its first line is not JSON."""
    path_, rows, findings = prepare_packed(path, data, room_id)
    if b"message 3" in data:
        number, _, event_hash, ok, why = rows[0]
        rows[0] = (number, b"not what the worker read", event_hash, ok, why)
    return path_, rows, findings


def cannot_start() -> None:
    """A worker that cannot even start (as where a sandbox or a broken install forbids
    it): its process ends before taking any work."""
    raise ImportError("this worker cannot start")


def test_where_no_worker_can_start_the_caller_is_told_to_do_it_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cases = segment_bytes(3)

    async def go() -> tuple[list[PackedSegment | str | None], bool]:
        verifier = SegmentVerifier(2, initializer=cannot_start)
        try:
            got = await asyncio.gather(*(verifier.prepare(p, d, ROOM) for p, d in cases))
            return list(got), verifier.usable
        finally:
            verifier.close()

    got, usable = asyncio.run(go())
    assert got == [None, None, None] and not usable
    warned = [r for r in caplog.records if "cannot run here" in r.getMessage()]
    assert len(warned) == 1


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def segment_bytes(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        path = f"rooms/{ROOM}/logs/2025-09-14/s_{i}_{i}_c.jsonl"
        out.append((path, f'{{"n":{i}}}\n'.encode()))
    return out


def test_a_worker_that_stops_costs_only_its_segment_and_the_pool_starts_again() -> None:
    cases = segment_bytes(7)
    cases[3] = (cases[3][0], b"KILL\n")

    async def go() -> tuple[list[PackedSegment | str], int, list[PackedSegment | str]]:
        verifier = SegmentVerifier(2, work=dies_on_marker)
        try:
            got = await asyncio.gather(*(verifier.prepare(p, d, ROOM) for p, d in cases))
            # The pool works again afterwards: the same good segments, once more.
            again = await asyncio.gather(*(verifier.prepare(p, d, ROOM) for p, d in cases[:3]))
            return list(got), verifier.restarts, list(again)
        finally:
            verifier.close()

    got, restarts, again = asyncio.run(go())
    assert restarts >= 1
    reason = got[3]
    assert isinstance(reason, str) and "stopped twice" in reason
    pairs = [*zip(cases, got, strict=True), *zip(cases[:3], again, strict=True)]
    for (path, data), packed in pairs:
        if packed is reason:
            continue
        assert not isinstance(packed, str), (path, packed)
        assert (
            unpack(packed, ROOM).decoded.findings
            == prepare_segment(path, data, ROOM).decoded.findings
        )


def test_the_workers_run_at_a_background_priority_also_after_a_restart() -> None:
    """On two cores, workers starting and checking a back-fill at the app's own priority
    took the cores from the GUI thread as the back-fill began (docs/SCHEDULING.md): each
    runs ``BACKGROUND_NICE`` steps nicer than the app, as the pool starts it — warmed,
    started by the first segment, or started again after one stopped."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    wanted = min(19, own + verifier_module.BACKGROUND_NICE)
    cases = segment_bytes(3)

    def priorities(verifier: SegmentVerifier) -> list[int]:
        return [os.getpriority(os.PRIO_PROCESS, pid) for pid in verifier.pids()]

    async def go() -> tuple[list[int], list[int], list[int]]:
        warmed, started = SegmentVerifier(2), SegmentVerifier(2, work=dies_on_marker)
        try:
            warmed.warm()
            got = await asyncio.gather(*(started.prepare(p, d, ROOM) for p, d in cases))
            assert not any(isinstance(g, str) for g in got)
            first = priorities(started)
            await started.prepare(cases[0][0], b"KILL\n", ROOM)  # stops a worker
            await started.prepare(*cases[1], ROOM)  # in the pool started again
            assert started.restarts >= 1
            return priorities(warmed), first, priorities(started)
        finally:
            warmed.close()
            started.close()

    warmed, first, restarted = asyncio.run(go())
    assert warmed and first and restarted
    assert set(warmed) == set(first) == set(restarted) == {wanted}
    assert wanted > own


def test_a_worker_that_raises_names_the_segment_at_once() -> None:
    cases = segment_bytes(3)
    cases[1] = (cases[1][0], b"RAISE\n")

    async def go() -> tuple[list[PackedSegment | str], int]:
        verifier = SegmentVerifier(2, work=raises_on_marker)
        try:
            return list(await asyncio.gather(*(verifier.prepare(p, d, ROOM) for p, d in cases))), (
                verifier.restarts
            )
        finally:
            verifier.close()

    got, restarts = asyncio.run(go())
    assert got[1] == "checking it failed in a worker process (MemoryError)"
    assert not isinstance(got[0], str) and not isinstance(got[2], str)
    assert restarts == 0


# -- the engine ---------------------------------------------------------------------------------


def write_room(root: Path, messages: int) -> LocalStorage:
    store = LocalStorage(root)
    ticks = iter(range(10**9))

    def clock() -> int:
        return 1757851245000 + next(ticks) * 1000

    async def go() -> None:
        await RoomWriter(store, ROOM, ALICE, key(1)).write_metadata(ROOM, CREATED)
        writers = [
            RoomWriter(store, ROOM, user, key(seed), clock=clock)
            for user, seed in ((ALICE, 1), (BOB, 2))
        ]
        for i in range(messages):
            await writers[i % 2].send([Draft.text(f"message {i}")])

    asyncio.run(go())
    return store


def read(root: Path, config: SyncConfig, *, kill_first: bool = False) -> tuple[AuditResult, int]:
    """A cold read of the room through an engine with a real index; ``kill_first``: read
    once, SIGKILL every worker process, then read again (into a fresh index)."""

    async def go() -> tuple[AuditResult, int]:
        engine = SyncEngine(LocalStorage(root), index=Index.open(None), config=config)
        try:
            if kill_first:
                await engine.open_room(ROOM, background=False)
                pids = engine._verifier.pids()
                assert pids, "the first read used no worker process"
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                engine.rooms.clear()
                engine.index = Index.open(None)
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and room.complete
            return room.result, engine._verifier.restarts
        finally:
            await engine.close()

    return asyncio.run(go())


def test_an_engine_reads_through_worker_processes_after_they_were_killed(tmp_path: Path) -> None:
    write_room(tmp_path, 24)
    result, restarts = read(tmp_path, WORKERS, kill_first=True)
    assert restarts == 1
    assert result.clean and result.findings == []
    assert [a.event.body for a in result.timeline if a.event.type == MESSAGE] == [
        f"message {i}" for i in range(24)
    ]
    assert {a.state for a in result.timeline} == {TrustState.VERIFIED}


def _hostile(root: Path) -> None:
    logs = root / "rooms" / ROOM / "logs" / "2025-09-14"
    (logs / "messages_1757851245000_1757851245000_zz.jsonl").write_bytes(
        b"".join(b"{}\n" for _ in range(MAX_BAD_LINES + 50))
    )
    (logs / "messages_1757851245000_1757851299000_zy.jsonl").write_bytes(
        b'\xff\xfe\n{"a":1.5}\n[' * 3 + b'{"cut":'
    )
    (logs / "messages_1757851245000_1757851245000_zx.jsonl").write_bytes(b"\n\n")


def test_hostile_segments_give_the_same_findings_in_a_worker_as_on_a_thread(
    tmp_path: Path,
) -> None:
    write_room(tmp_path, 6)
    _hostile(tmp_path)
    in_workers, _ = read(tmp_path, WORKERS)
    on_threads, _ = read(tmp_path, THREADS)
    key_of = lambda f: (f.path or "", f.line or 0, f.kind, f.message)  # noqa: E731
    assert sorted(in_workers.findings, key=key_of) == sorted(on_threads.findings, key=key_of)
    kinds = {f.kind for f in in_workers.findings}
    assert {Kind.SEGMENT_ABANDONED, Kind.BAD_ENCODING, Kind.FLOAT, Kind.EMPTY_SEGMENT} <= kinds
    assert [a.event.event_id for a in in_workers.timeline] == [
        a.event.event_id for a in on_threads.timeline
    ]


class RecordingStorage(LocalStorage):
    """A real local folder that notes, at each download, how many segment bytes were
    downloaded and not yet kept by the engine's serial worker."""

    def __init__(self, root: Path, *, lying: bool = False) -> None:
        super().__init__(root)
        self.engine: SyncEngine | None = None
        self.fetched = 0
        self.most_ahead = 0
        self.lying = lying  # lists every object as 1 byte long (a hostile provider)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        items = await super().list_objects(prefix)
        if not self.lying:
            return items
        return [ObjectInfo(it.path, 1, it.content_tag, it.special) for it in items]

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        data = await super().get(path, max_bytes=max_bytes)
        if "/logs/" in path and self.engine is not None:
            self.fetched += len(data)
            room = self.engine.rooms.get(ROOM)
            kept = sum(room.known.values()) if room is not None else 0
            self.most_ahead = max(self.most_ahead, self.fetched - kept)
        return data


@pytest.mark.parametrize("lying", [False, True])
def test_a_back_fill_downloads_a_bounded_number_of_bytes_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lying: bool
) -> None:
    # Scaled down: a back-fill may run 32 MiB ahead of what it keeps in chunks of at
    # most 16 MiB; here 6 and 3 segments' worth. It used to run a whole chunk of 64
    # segments ahead whatever their size (64 MiB each in a hostile room).
    write_room(tmp_path, 120)
    sizes = [p.stat().st_size for p in (tmp_path / "rooms" / ROOM / "logs").rglob("*.jsonl")]
    segment = max(sizes)
    monkeypatch.setattr(backfill_module, "AHEAD_BYTES", 6 * segment)
    monkeypatch.setattr(backfill_module, "CHUNK_BYTES", 3 * segment)
    # Sizes as listed are all the budget can count; a provider listing wrong ones still
    # gets at most AHEAD_CHUNKS chunks (here of 3 segments) downloaded ahead.
    monkeypatch.setattr(backfill_module, "CHUNK", 3)
    storage = RecordingStorage(tmp_path, lying=lying)

    async def go() -> AuditResult:
        engine = SyncEngine(storage, index=Index.open(None), config=THREADS)
        storage.engine = engine
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return room.result
        finally:
            await engine.close()

    result = asyncio.run(go())
    # At most the allowance, the chunk just started, and the download in progress.
    assert storage.most_ahead <= 6 * segment + 3 * segment + segment, storage.most_ahead
    if not lying:
        assert result.clean
        assert sum(a.event.type == MESSAGE for a in result.timeline) == 120
        return
    # Listed 1 byte long, each segment is read up to that and no further: none is kept
    # (each is unread, said why, and read again at the next listing) and no byte of
    # them was downloaded past what the listing announced.
    assert storage.fetched == 0
    assert not any(a.event.type == MESSAGE for a in result.timeline)
    unread = [f for f in result.findings if f.kind is Kind.SEGMENT_UNREADABLE]
    assert len(unread) == 120 and not result.clean  # one segment per message here
    why = "the service sent more bytes than the 1 its listing gives: not kept, read again"
    assert all(why in f.message for f in unread), unread[0].message


def test_a_result_that_does_not_unpack_leaves_only_its_segment_unread(tmp_path: Path) -> None:
    """The state thread unpacks what the workers packed as it keeps it: a result that
    does not unpack is never an event; its segment is unread (said in the verdict, read
    again by the next full pass) and every other segment is kept."""
    write_room(tmp_path, 8)

    async def go() -> tuple[AuditResult, dict[str, str], bool]:
        engine = SyncEngine(LocalStorage(tmp_path), index=Index.open(None), config=WORKERS)
        engine._verifier.close()
        engine._verifier = SegmentVerifier(2, work=garbles_marked)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return room.result, {**room.unread, **room.vanished}, room.complete and not room.partial
        finally:
            await engine.close()

    result, unread, whole = asyncio.run(go())
    assert list(unread.values()) == ["a worker process's result for it was not usable"]
    assert not whole
    assert any(f.kind is Kind.SEGMENT_UNREADABLE for f in result.findings)
    bodies = {a.event.body for a in result.timeline if a.event.type == MESSAGE}
    assert "message 3" not in bodies and len(bodies) == 7


def test_a_focused_back_fill_makes_no_progress_audit_just_before_its_final_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress audits show a room being read to the person who looks at it; the last
    chunk of a pass is followed by the final audit at once, so a progress audit due then
    would be a second full audit of the whole room (a tenth of a cold read's CPU). Every
    chunk is due here; every one but the last is audited, each over more of the room."""
    write_room(tmp_path, 40)
    monkeypatch.setattr(backfill_module, "PROGRESS_AUDIT", 0.0)
    monkeypatch.setattr(backfill_module, "AUDIT_SHARE", 1e9)
    monkeypatch.setattr(backfill_module, "FIRST_CHUNK", 8)
    monkeypatch.setattr(backfill_module, "CHUNK", 8)
    audits: list[tuple[int, bool]] = []
    audit_of = RoomLedger.audit

    def counted(self: RoomLedger, *args: Any, **kwargs: Any) -> AuditResult:
        audits.append((self.event_count, bool(kwargs.get("complete", True))))
        return audit_of(self, *args, **kwargs)

    monkeypatch.setattr(RoomLedger, "audit", counted)

    async def go() -> AuditResult:
        engine = SyncEngine(LocalStorage(tmp_path), index=Index.open(None), config=THREADS)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None and room.complete
            return room.result
        finally:
            await engine.close()

    result = asyncio.run(go())
    assert result.clean and sum(a.event.type == MESSAGE for a in result.timeline) == 40
    counts = [count for count, _ in audits]
    assert audits[-1] == (len(result.timeline), True)  # the final audit, of everything
    assert len(audits) >= 3  # the first screen and progress between
    assert counts == sorted(set(counts)), audits  # never the same room audited twice
    assert all(not complete for _, complete in audits[:-1])
