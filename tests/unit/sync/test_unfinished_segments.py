"""A folder shows a file from the moment its writer creates it, before its bytes are all
there: the reference client (and any other program that writes in place) opens the
segment, then writes it. The folder watch names it at once. Read half-written and kept,
an honest member's message showed as a ``truncated`` finding and was never shown (the
watch's later events named a segment already kept), and the next full pass called it
"changed in storage after this device read and checked it": a tampering alarm against
someone who did nothing wrong. Real folders, the real watchdog observer, a real index."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, ObjectInfo
from bucket_chat_desktop.storage.local import WRITE_SETTLE, LocalStorage
from bucket_chat_desktop.sync import room_objects
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, StorageStatus
from bucket_chat_desktop.sync.room_objects import read_metadata, storage_rooms
from bucket_chat_desktop.sync.writer import RoomWriter

ROOM = "room-1"
ALICE = "alice@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
# Nothing but the folder watch (or an explicit call) may find new data in these tests.
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
_count = iter(range(1, 10**6))


class Recorder:
    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)

    def bodies(self) -> list[str | None]:
        return [
            a.event.body
            for e in self.events
            if isinstance(e, EventsAppended)
            for a in e.items
            if a.event.type == MESSAGE
        ]


class Watched(LocalStorage):
    """Markers invisible: only the folder watch can find news. Counts reads per path, and
    keeps its answers to "written lately?" (was its writer still at it?) per path."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: dict[str, int] = {}
        self.lately: dict[str, list[bool]] = {}

    async def written_lately(self, path: str) -> bool:
        answer = await super().written_lately(path)
        self.lately.setdefault(path, []).append(answer)
        return answer

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        return []

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        self.reads[path] = self.reads.get(path, 0) + 1
        return await super().get(path, max_bytes=max_bytes)


def segment(sender: str, seed: int, bodies: list[str]) -> tuple[str, bytes]:
    """What the sender's own client writes: a join and signed, chained messages."""
    key = SigningKey(bytes([seed]) * 32)
    now = int(time.time() * 1000)
    events: list[Event] = []
    prev = None
    for kind, content in [
        (MEMBER, {"membership": "join", "displayname": sender[:3]}),
        *((MESSAGE, {"body": b, "msgtype": "m.text"}) for b in bodies),
    ]:
        ev = build_event(
            room_id=ROOM,
            sender_id=sender,
            event_type=kind,
            content=content,
            timestamp_ms=now,
            unique=f"00000000-0000-4000-8000-{next(_count):012x}",
            prev_event_hash=prev,
            signing_key=key,
        )
        prev = ev.hash
        events.append(ev)
    return path_for(events, client_id_for(sender, bytes(key.verify_key))), encode_segment(events)


async def write_in_place(target: Path, pieces: list[bytes], pause: float) -> None:
    """Create the file, then write it piece by piece with pauses (a slow writer)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for piece in pieces:
            await asyncio.sleep(pause)
            out.write(piece)
            out.flush()


def engine_on(root: Path, db: Path, rec: Recorder) -> SyncEngine:
    return SyncEngine(Watched(root), index=Index.open(db), listener=rec, config=QUIET)


async def close(engine: SyncEngine) -> None:
    await engine.close()
    assert engine.index is not None
    engine.index.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def create_room(root: Path) -> None:
    key = SigningKey(b"\x01" * 32)
    run(RoomWriter(LocalStorage(root), ROOM, ALICE, key).write_metadata(ROOM, CREATED))


def test_a_segment_written_in_place_is_shown_whole_and_never_called_changed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    create_room(root)
    path, data = segment("bob@example.com", 2, ["one", "two"])
    cut = len(data) // 2
    db = tmp_path / "index.sqlite3"
    rec = Recorder()

    async def follow() -> None:
        engine = engine_on(root, db, rec)
        try:
            await engine.start()
            room = await engine.open_room(ROOM, background=False)
            # empty when the watch names it, half a line for a while, then whole
            await write_in_place(root / path, [data[:cut], data[cut:]], pause=0.4)
            await until(lambda: rec.bodies() == ["one", "two"])
            assert room.result is not None and room.result.clean and not room.unread
            assert room.known[path] == len(data)
            storage = engine.storage
            assert isinstance(storage.inner, Watched)  # type: ignore[attr-defined]
            assert storage.inner.reads[path] >= 2  # type: ignore[attr-defined]
        finally:
            await close(engine)

    async def reopen() -> None:  # a warm start lists the folder and compares sizes
        engine = engine_on(root, db, Recorder())
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.unread == {} and not room.partial
            assert room.result is not None and room.result.clean, room.result.findings
        finally:
            await close(engine)

    run(follow())
    run(reopen())


def test_an_unfinished_segment_left_alone_is_reported_as_truncated(tmp_path: Path) -> None:
    """Left unfinished (a planted file, a writer that died): reported as what it is once
    its writer has left it alone for ``WRITE_SETTLE`` seconds, and at once when it was
    changed long ago (read once: no waiting on what nobody writes any more)."""
    root = tmp_path / "store"
    create_room(root)
    fresh_path, fresh = segment("bob@example.com", 2, ["fresh"])
    old_path, old = segment("carol@example.com", 3, ["old"])
    rec = Recorder()
    old_file = root / old_path
    old_file.parent.mkdir(parents=True, exist_ok=True)
    old_file.write_bytes(old[:-7])
    os.utime(old_file, (time.time() - 3600, time.time() - 3600))

    async def go() -> None:
        engine = engine_on(root, tmp_path / "index.sqlite3", rec)
        storage: Any = None
        try:
            await engine.start()
            storage = engine.storage.inner  # type: ignore[attr-defined]
            room = await engine.open_room(ROOM, background=False)
            # the old one: read once, no writer waited for (the storage said so at once)
            assert storage.reads[old_path] == 1
            assert True not in storage.lately[old_path], storage.lately
            assert room.result is not None
            assert [(f.kind, f.path) for f in room.result.findings] == [(Kind.TRUNCATED, old_path)]
            (root / fresh_path).write_bytes(fresh[:-7])  # never finished
            await until(lambda: any(f.path == fresh_path for f in room.result.findings))
            # read again while its writer might be at it, reported once the storage said
            # it was left alone (``WRITE_SETTLE`` seconds without a change)
            lately = storage.lately[fresh_path]
            assert lately[0] and not lately[-1], lately
            assert {(f.kind, f.path) for f in room.result.findings} == {
                (Kind.TRUNCATED, old_path),
                (Kind.TRUNCATED, fresh_path),
            }
            assert room.unread == {}  # read and reported, nothing left to read
            assert storage.reads[fresh_path] >= 2
        finally:
            await close(engine)

    run(go())


def test_a_file_changed_again_and_again_is_unread_for_now_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone keeps appending to a segment without ever ending its line: after
    ``UNFINISHED_WAIT`` the room says it is unread for now (its verdict is not final),
    not that a member's segment is broken; once left alone, it is read and reported."""
    monkeypatch.setattr(room_objects, "UNFINISHED_WAIT", 1.0)
    root = tmp_path / "store"
    create_room(root)
    path, data = segment("bob@example.com", 2, ["slow"])
    rec = Recorder()

    async def go() -> None:
        engine = engine_on(root, tmp_path / "index.sqlite3", rec)
        try:
            await engine.start()
            room = await engine.open_room(ROOM, background=False)
            pieces = [data[:-7]] + [b"x"] * 15  # a byte every 0.15 s for over 2 s
            writing = asyncio.create_task(write_in_place(root / path, pieces, pause=0.15))
            await until(lambda: path in room.unread)
            assert "still being written" in room.unread[path]
            assert room.partial
            assert room.result is not None
            assert [f.path for f in room.result.findings if f.kind is Kind.TRUNCATED] == []
            await writing
            await asyncio.sleep(WRITE_SETTLE)
            await engine.reaudit(ROOM)
            await engine.open_room(ROOM, background=False)  # read on: the verdict waits
            await until(lambda: path not in room.unread)
            assert [f.path for f in room.result.findings if f.kind is Kind.TRUNCATED] == [path]
        finally:
            await close(engine)

    run(go())


def test_room_metadata_written_in_place_is_read_whole(tmp_path: Path) -> None:
    """The reference client writes ``metadata.json`` in place too (indented JSON): a
    room opened just as it is created read half of it and called the metadata invalid."""
    root = tmp_path / "store"
    target = root / "rooms" / ROOM / "metadata.json"
    doc = json.dumps(
        {"room_id": ROOM, "created_at": CREATED, "version": "1.0", "protocol": "bucket-chat-v1"},
        indent=2,
    ).encode()

    async def go() -> None:
        writing = asyncio.create_task(write_in_place(target, [doc[:20], doc[20:]], pause=0.3))
        await until(target.exists)  # created, still empty
        metadata, findings = await read_metadata(LocalStorage(root), ROOM)
        await writing
        assert metadata is not None and metadata.room_id == ROOM
        assert [f.kind for f in findings] == [Kind.METADATA_UNSIGNED]  # the reference's form

    run(go())


def test_planted_files_kept_changing_do_not_hold_up_the_rooms_news(tmp_path: Path) -> None:
    """A member plants 20 unfinished segments and keeps touching them. Waiting
    ``UNFINISHED_WAIT`` for each held the room's news behind them for minutes; the
    engine's ``WaitBudget`` bounds all such waiting to a few seconds a minute: the plants
    are unread for now, and an honest message arrives."""
    root = tmp_path / "store"
    create_room(root)
    plants = [segment(f"p{n}@example.com", 10 + n, ["planted"]) for n in range(20)]
    rec = Recorder()

    async def keep_touching(stop: asyncio.Event) -> None:
        while not stop.is_set():
            for path, _ in plants:
                with contextlib.suppress(FileNotFoundError):
                    os.utime(root / path)
            await asyncio.sleep(0.2)

    async def go() -> None:
        engine = engine_on(root, tmp_path / "index.sqlite3", rec)
        stop = asyncio.Event()
        toucher = asyncio.create_task(keep_touching(stop))
        try:
            await engine.start()
            room = await engine.open_room(ROOM, background=False)
            for path, data in plants:
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).write_bytes(data[:-7])
            await asyncio.sleep(0.5)  # the watch has named them all
            honest_path, honest = segment("bob@example.com", 2, ["honest news"])
            storage = engine.storage.inner  # type: ignore[attr-defined]
            (root / honest_path).write_bytes(honest)
            await until(lambda: "honest news" in rec.bodies(), timeout=20)
            # Read again while they changed, before the news: a pause before each read
            # again, the pauses bounded by the budget (``UNFINISHED_WAIT`` seconds, from
            # 0.02 s up to 0.5 s each: a few dozen reads), not ``UNFINISHED_WAIT`` for
            # each of the 20 (some 14 reads each).
            again = sum(max(0, storage.reads.get(path, 0) - 1) for path, _ in plants)
            assert again <= 40, again
            await until(lambda: sum(p in room.unread for p, _ in plants) >= 15, timeout=20)
            assert all("still being written" in why for why in room.unread.values())
            assert room.result is not None
            assert not [f for f in room.result.findings if f.kind is Kind.TRUNCATED]
        finally:
            stop.set()
            await toucher
            await close(engine)

    run(go())


@pytest.mark.parametrize(
    "planted",
    [b"[" * 60_000, b'{"a":' * 20_000, b"\xff\xfe{", b"", b"{" + b" " * 60_000],
    ids=["deep-list", "deep-object", "not-utf8", "empty", "spaces"],
)
def test_hostile_metadata_read_fresh_is_a_finding_not_a_crash(
    tmp_path: Path, planted: bytes
) -> None:
    """Fresh (just planted) and never a JSON object: read again while it may change, then
    reported as invalid metadata, whatever it holds (nesting the json module would
    raise RecursionError on included)."""
    root = tmp_path / "store"
    target = root / "rooms" / ROOM / "metadata.json"
    target.parent.mkdir(parents=True)
    target.write_bytes(planted)

    async def go() -> None:
        metadata, findings = await read_metadata(LocalStorage(root), ROOM)
        assert metadata is None
        assert [f.kind for f in findings] == [Kind.METADATA_INVALID]

    run(go())


def test_the_room_list_survives_metadata_kept_changing(tmp_path: Path) -> None:
    """The storage's room list (the join dialog, ``bucket-chat rooms``): one room whose
    ``metadata.json`` never becomes JSON and keeps changing failed the whole list with
    "still being written"; now that room is listed without a name, with the reason."""
    root = tmp_path / "store"
    create_room(root)
    stuck = root / "rooms" / "stuck" / "metadata.json"
    stuck.parent.mkdir(parents=True)
    stuck.write_bytes(b'{"name": "never ends')

    async def go() -> None:
        stop = asyncio.Event()

        async def keep_touching() -> None:
            while not stop.is_set():
                os.utime(stuck)
                await asyncio.sleep(0.2)

        toucher = asyncio.create_task(keep_touching())
        try:
            found = await storage_rooms(LocalStorage(root), int(time.time() * 1000))
        finally:
            stop.set()
            await toucher
        by_id = {r.room_id: r for r in found.rooms}
        assert set(by_id) == {ROOM, "stuck"}
        assert by_id["stuck"].name is None
        assert "still being written" in by_id["stuck"].problem
        assert by_id[ROOM].metadata is not None

    run(go())


def test_metadata_kept_changing_is_no_storage_outage(tmp_path: Path) -> None:
    """A member keeps ``metadata.json`` unfinished and touched: the read gives up
    ("still being written") and is made again later. That is this room's metadata not
    read yet, not the storage failing: the app said the whole storage was offline
    (``StorageStatus(False, ...)``), to every room, while it answered every request."""
    root = tmp_path / "store"
    create_room(root)
    meta = root / "rooms" / ROOM / "metadata.json"
    meta.write_bytes(b'{"room_id": "' + ROOM.encode() + b'", "name": "never ends')
    rec = Recorder()

    async def go() -> None:
        stop = asyncio.Event()

        async def keep_touching() -> None:
            while not stop.is_set():
                os.utime(meta)
                await asyncio.sleep(0.1)

        toucher = asyncio.create_task(keep_touching())
        engine = SyncEngine(
            LocalStorage(root), index=Index.open(tmp_path / "i.sqlite3"), listener=rec, config=QUIET
        )
        try:
            room = await engine.open_room(ROOM, background=False)
            await until(lambda: room.metadata_failures >= 1)
            assert room.metadata is None  # not read yet: read again later
            said = [e for e in rec.events if isinstance(e, StorageStatus)]
            assert engine.online and not said, said
        finally:
            stop.set()
            await toucher
            await close(engine)

        # once left alone, it is read (and reported for what it is) on a later try
        engine = SyncEngine(
            LocalStorage(root),
            index=Index.open(tmp_path / "i.sqlite3"),
            listener=Recorder(),
            config=QUIET,
        )
        try:
            os.utime(meta, (time.time() - 60, time.time() - 60))
            room = await engine.open_room(ROOM, background=False)
            assert room.metadata_failures == 0
        finally:
            await close(engine)

    run(go())


def test_an_honest_writer_in_place_while_a_member_spends_the_budget(tmp_path: Path) -> None:
    """A member keeps a planted segment unfinished and touched, so the engine's
    ``WaitBudget`` is spent; an honest member then writes a segment in place. Read
    half-written, it must be unread for now (not kept half, not called truncated or
    changed) and read whole once its writer is done."""
    root = tmp_path / "store"
    create_room(root)
    plants = [segment(f"m{n}@example.com", 20 + n, ["planted"]) for n in range(3)]
    rec = Recorder()

    async def go() -> None:
        stop = asyncio.Event()

        async def keep_touching() -> None:
            while not stop.is_set():
                for plant_path, _ in plants:
                    with contextlib.suppress(FileNotFoundError):
                        os.utime(root / plant_path)
                await asyncio.sleep(0.1)

        engine = engine_on(root, tmp_path / "index.sqlite3", rec)
        toucher = asyncio.create_task(keep_touching())
        try:
            await engine.start()
            room = await engine.open_room(ROOM, background=False)
            for plant_path, plant in plants:
                (root / plant_path).parent.mkdir(parents=True, exist_ok=True)
                (root / plant_path).write_bytes(plant[:-7])
            await until(lambda: all(p in room.unread for p, _ in plants), timeout=30)
            assert not engine.writer_waits.take(0.5)  # spent
            path, data = segment("bob@example.com", 2, ["honest"])
            cut = len(data) // 2
            await write_in_place(root / path, [data[:cut], data[cut:]], pause=0.4)
            await until(lambda: path in room.known, timeout=20)
            assert room.known[path] == len(data)  # whole, not the half first read
            assert engine.storage.inner.reads[path] >= 2  # type: ignore[attr-defined]

            async def shown() -> list[str | None]:
                result = room.result
                assert result is not None
                rows = await engine.timeline_page(ROOM, result, 0, len(result.timeline)) or ()
                return [r.event.body for r in rows if r.event.type == MESSAGE]

            deadline = time.monotonic() + 20
            while "honest" not in await shown():
                assert time.monotonic() < deadline, "the honest message is never shown"
                await asyncio.sleep(0.05)
            assert path not in room.unread
            assert room.result is not None
            assert [f.path for f in room.result.findings if f.kind is Kind.TRUNCATED] == []
        finally:
            stop.set()
            await toucher
            await close(engine)

    run(go())


class Gated(Watched):
    """Holds the check of one path (``written_lately``) until let go: a way to have the
    writer finish, and the watch name the file again, while the first read of it runs."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.path = ""
        self.held = asyncio.Event()
        self.go = asyncio.Event()

    async def written_lately(self, path: str) -> bool:
        if path == self.path and not self.go.is_set():
            self.held.set()
            await self.go.wait()
        return await super().written_lately(path)


def test_a_file_named_again_while_its_read_gives_up_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch names a new file at once (created), and again when its writer closes it.
    A close named while the first read still ran was dropped ("being read"): when that
    read then gave up (the writer budget spent by a member's plants), nothing named the
    file again and the honest message stayed unread until the next full pass."""
    monkeypatch.setattr(room_objects, "WAIT_REFILL", 1e9)  # spent stays spent
    root = tmp_path / "store"
    create_room(root)
    path, data = segment("bob@example.com", 2, ["named twice"])
    cut = len(data) // 2
    storage = Gated(root)
    storage.path = path

    async def go() -> None:
        engine = SyncEngine(
            storage, index=Index.open(tmp_path / "i.sqlite3"), listener=Recorder(), config=QUIET
        )
        try:
            await engine.start()
            room = await engine.open_room(ROOM, background=False)
            assert engine.writer_waits.take(room_objects.UNFINISHED_WAIT)  # spent
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                out.write(data[:cut])
                out.flush()
                await until(storage.held.is_set)  # the first read holds half
            # closed: the watch names it again while that read runs
            with target.open("ab") as out:
                out.write(data[cut:])
            await until(lambda: path in engine._poller._named_again)
            storage.go.set()
            await until(lambda: path in room.known, timeout=10)
            assert room.known[path] == len(data)
            assert path not in room.unread
        finally:
            await close(engine)

    run(go())


def test_unread_for_now_says_why_when_the_wait_was_spent_elsewhere(tmp_path: Path) -> None:
    """With the writer budget spent (a member's plants kept changing), a fresh file read
    once is given up at once; the reason said it "changed again within 5 s of waiting for
    its writer", which nobody waited: a false account of that member's file."""
    storage = LocalStorage(tmp_path)
    path = f"rooms/{ROOM}/logs/2025-09-14/messages_1_1_c.jsonl"
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_bytes(b'{"half": ')
    budget = room_objects.WaitBudget()
    assert budget.take(room_objects.UNFINISHED_WAIT)

    async def go() -> str:
        data = await storage.get(path)
        with pytest.raises(room_objects.StillWritingError) as raised:
            await room_objects.read_once_written(
                storage, path, data, DEFAULT_MAX_READ, room_objects.unfinished, budget
            )
        return str(raised.value)

    said = run(go())
    assert "still being written" in said
    assert "within 5 s of waiting" not in said
    assert "spent for now" in said
