"""The outbox's promises under real failures: a sender killed between "written" and
"acknowledged", a full disk, a storage service that stops answering, and ten writers at
once. In every case each message is delivered exactly once and the room audits clean."""

from __future__ import annotations

import asyncio
import errno
import itertools
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import AuditResult, TrustState
from bucket_chat_desktop.protocol.event import MESSAGE, Event
from bucket_chat_desktop.protocol.segment import decode_segment
from bucket_chat_desktop.storage.base import Storage
from bucket_chat_desktop.storage.local import TEMP_PREFIX, LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import (
    EngineEvent,
    OutboxChanged,
    StorageStatus,
)
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.session import read_room
from bucket_chat_desktop.sync.writer import RoomWriter

from .conftest import Emulators, StoresMaker

ROOM = "recovery-room"
CREATED = "2025-09-14T12:00:45.000Z"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def text(body: str) -> list[tuple[str, dict[str, Any]]]:
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


class Recorder:
    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)

    def of(self, cls: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, cls)]


def create_room(store: Storage, room: str = ROOM) -> None:
    run(RoomWriter(store, room, "owner@example.com", key(99)).write_metadata(room, CREATED))


async def stored_events(store: Storage, room: str = ROOM) -> list[tuple[str, Event]]:
    """(segment path, event) for every event in every segment of the room."""
    out = []
    for item in await store.list_objects(f"rooms/{room}/logs/"):
        decoded = decode_segment(item.path, await store.get(item.path), room)
        assert decoded.findings == [], decoded.findings
        out.extend((item.path, loc.event) for loc in decoded.events)
    return out


def audit(store: Storage, room: str = ROOM) -> AuditResult:
    async def go() -> AuditResult:
        view = await read_room(store, room)
        assert view.complete and view.result is not None
        return view.result

    return run(go())


def assert_exactly_once(events: list[tuple[str, Event]], bodies: list[str]) -> None:
    ids = Counter(e.event_id for _, e in events)
    assert [i for i, n in ids.items() if n > 1] == []
    sent = Counter(e.body for _, e in events if e.type == MESSAGE)
    assert sent == Counter(bodies)


def assert_clean(result: AuditResult, total: int) -> None:
    assert result.findings == [], result.findings
    assert result.invalid == []
    assert len(result.timeline) == total
    assert {a.state for a in result.timeline} == {TrustState.VERIFIED}


# -- a. SIGKILL between "written" and "acknowledged" ---------------------------------------

KILLED_SENDER = """
import asyncio, os, signal, sys
from pathlib import Path
from nacl.signing import SigningKey
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox

root, outbox, room, count, die_after = sys.argv[1:]


class DiesAfterWriting(LocalStorage):
    async def put_if_absent(self, path, data):
        created = await super().put_if_absent(path, data)
        if path.startswith(die_after):  # the write is done; nothing acknowledged it yet
            os.kill(os.getpid(), signal.SIGKILL)
        return created


async def main():
    engine = SyncEngine(DiesAfterWriting(root), outbox=Outbox(Path(outbox)))
    for i in range(int(count)):
        body = {"body": f"message {i}", "msgtype": "m.text"}
        await engine.send(room, "carol@example.com", SigningKey(bytes([7]) * 32),
                          [("m.room.message", body)])
    print("queued", flush=True)
    await engine.flush(timeout=20)
    print("survived", flush=True)


asyncio.run(main())
"""


@pytest.mark.parametrize("die_after", ["rooms/", "activity/"], ids=["segment", "marker"])
def test_sigkill_after_the_write_delivers_every_message_exactly_once(
    tmp_path: Path, die_after: str
) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    outbox_file = tmp_path / "outbox.sqlite3"
    script = tmp_path / "sender.py"
    script.write_text(KILLED_SENDER)
    count = 25
    child = subprocess.run(
        [sys.executable, str(script), str(root), str(outbox_file), ROOM, str(count), die_after],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.split() == ["queued"]
    bodies = [f"message {i}" for i in range(count)]

    segments = sorted((root / "rooms" / ROOM / "logs").rglob("*.jsonl"))
    assert len(segments) == 1  # written whole (published by a hard link), not acknowledged
    written = segments[0].read_bytes()
    assert written.count(b"\n") == count + 1
    markers_before = (
        sorted((root / "activity").rglob("*~*")) if (root / "activity").exists() else []
    )
    assert len(markers_before) == (1 if die_after == "activity/" else 0)
    box = Outbox(outbox_file)
    try:
        expected = "sent" if die_after == "activity/" else "sending"
        assert {p.state for p in box.pending()} == {expected}
        assert len(box.pending()) == count + 1
    finally:
        box.close()

    rec = Recorder()

    async def recover() -> None:
        engine = SyncEngine(
            LocalStorage(root), index=Index.open(None), outbox=Outbox(outbox_file), listener=rec
        )
        try:
            await engine.open_room(ROOM, background=False)
            assert await engine.flush(timeout=10)
            assert engine.outbox is not None and engine.outbox.is_empty()
            room = engine.rooms[ROOM]
            assert room.result is not None
            assert_clean(room.result, count + 1)
        finally:
            await engine.close()
            assert engine.outbox is not None
            engine.outbox.close()

    run(recover())
    segments = sorted((root / "rooms" / ROOM / "logs").rglob("*.jsonl"))
    assert len(segments) == 1 and segments[0].read_bytes() == written  # same name, same bytes
    assert "-r1" not in segments[0].name
    markers = sorted((root / "activity").rglob("*~*"))
    assert markers and all(m.name.endswith(segments[0].name) for m in markers)
    assert_exactly_once(run(stored_events(store)), bodies)
    assert_clean(audit(store), count + 1)
    assert list(root.rglob(f"{TEMP_PREFIX}*")) == []  # the temp file went before the kill


# -- b. disk full on the local store -----------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root, as the test suite's CI runs)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the disk is full; returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as f:
        try:
            while True:
                written += f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return written


def test_a_full_disk_keeps_messages_queued_until_space_is_freed(
    tmp_path: Path, small_disk: Path
) -> None:
    store = LocalStorage(small_disk)
    create_room(store)
    # Bob already wrote, so there is history for readers to keep seeing.
    run(RoomWriter(store, ROOM, "bob@example.com", key(2)).send([]))
    before = run(stored_events(store))
    filler = small_disk / "filler.bin"
    assert fill(filler) > 0
    rec = Recorder()
    bodies = [f"written to a full disk {i}" for i in range(4)]

    async def go() -> None:
        engine = SyncEngine(
            LocalStorage(small_disk),
            outbox=Outbox(tmp_path / "outbox.sqlite3"),
            listener=rec,
            config=SyncConfig(batch_window=0.05, local_rescan=3600.0),
        )
        try:
            await engine.start()
            sent: list[Event] = []
            for body in bodies:
                sent += await engine.send(ROOM, "alice@example.com", key(1), text(body))
            await until(lambda: any(e.error for e in rec.of(OutboxChanged)), timeout=5)
            failed = [e for e in rec.of(OutboxChanged) if e.error]
            assert all(e.state == "sending" for e in failed)  # transient: retried by itself
            assert all("disk is full" in (e.error or "") for e in failed)
            assert any(not s.online and "disk is full" in s.message for s in rec.of(StorageStatus))

            # a full disk is worth retrying: the flush goes round again until its time
            # is up, rather than giving up after its first round as for a user's mistake
            publisher = engine._publisher
            real_round, rounds = publisher.publish_round, []

            async def counted_round(**kw: Any) -> int:
                if kw.get("everything"):  # the flush's rounds, not the publisher task's
                    rounds.append(kw)
                return await real_round(**kw)

            publisher.publish_round = counted_round  # type: ignore[method-assign]
            assert not await engine.flush(timeout=1.0)
            assert len(rounds) >= 2, rounds
            assert engine.outbox is not None
            waiting = engine.outbox.pending()
            assert [p.event_id for p in waiting] == [e.event_id for e in sent]
            assert {p.state for p in waiting} == {"sending"}
            assert all("disk is full" in (p.error or "") for p in waiting)
            # Readers see nothing half-written: no new object. (A retry may be writing its
            # hidden temp file right now: what is left over is checked once it stopped.)
            assert await stored_events(store) == before
            assert not (small_disk / "activity").exists() or not any(
                (small_disk / "activity").rglob("*~*")
            )

            filler.unlink()
            assert await engine.flush(timeout=10)
            assert engine.outbox.is_empty()
            delivered = {
                x.event_id for e in rec.of(OutboxChanged) if e.state == "sent" for x in e.events
            }
            assert delivered == {e.event_id for e in sent}
        finally:
            await engine.close()
            if engine.outbox is not None:
                engine.outbox.close()

    run(go())
    # No failed write left its temp file behind, not even a hidden one.
    assert [p.name for p in small_disk.rglob(f"{TEMP_PREFIX}*")] == []
    events = run(stored_events(store))
    assert_exactly_once(events, bodies)
    assert_clean(audit(store), len(before) + len(bodies) + 1)  # + Alice's join


# -- c. the storage service stops answering mid-send ------------------------------------------


async def test_messages_sent_while_s3_is_frozen_go_out_once_it_answers(
    stores_for: StoresMaker, emulators: Emulators, tmp_path: Path
) -> None:
    """moto is frozen (SIGSTOP) with requests in flight: they time out here but are
    still processed after SIGCONT, so a retry meets its own segment (a lost reply)."""
    stores = stores_for("s3")
    store = stores.new(options={"timeout": "1"})
    moto = emulators.get("s3").process
    assert moto is not None
    await RoomWriter(store, ROOM, "owner@example.com", key(99)).write_metadata(ROOM, CREATED)
    rec = Recorder()
    engine = SyncEngine(
        store,
        outbox=Outbox(tmp_path / "outbox.sqlite3"),
        listener=rec,
        config=SyncConfig(batch_window=0.05),
    )
    bodies = ["before the cut"] + [f"during the cut {i}" for i in range(3)]
    frozen = False
    try:
        await engine.start()
        await engine.send(ROOM, "alice@example.com", key(1), text(bodies[0]))
        assert await engine.flush(timeout=10)

        moto.send_signal(signal.SIGSTOP)
        frozen = True
        sent: list[Event] = []
        for body in bodies[1:]:
            sent += await engine.send(ROOM, "alice@example.com", key(1), text(body))
        # timeout=1 s and one attempt: an error is due within a few seconds
        await until(lambda: any(e.error for e in rec.of(OutboxChanged)), timeout=8)
        failed = [e for e in rec.of(OutboxChanged) if e.error]
        assert {e.state for e in failed} == {"sending"}  # offline is transient: keep trying
        assert all("no answer" in (e.error or "") for e in failed), failed
        assert not engine.online
        assert not await engine.flush(timeout=1.5)
        assert engine.outbox is not None
        waiting = engine.outbox.pending()
        assert [p.event_id for p in waiting] == [e.event_id for e in sent]
        assert {p.state for p in waiting} <= {"sending", "sent"}

        moto.send_signal(signal.SIGCONT)
        frozen = False
        assert await engine.flush(timeout=30)
        assert engine.online
    finally:
        if frozen:
            moto.send_signal(signal.SIGCONT)
        await engine.close()
        if engine.outbox is not None:
            engine.outbox.close()

    check = stores.new(options={"timeout": "5"})  # another client, as another device
    events = await stored_events(check)
    assert_exactly_once(events, bodies)
    view = await read_room(check, ROOM)
    assert view.complete and view.result is not None
    assert_clean(view.result, len(bodies) + 1)


# -- d. ten writers at once --------------------------------------------------------------------

WRITER = """
import asyncio, sys
from pathlib import Path
from nacl.signing import SigningKey
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox

root, outbox, room, seed, count = sys.argv[1:]


async def main():
    config = SyncConfig(batch_window=0.05, local_rescan=3600.0)
    engine = SyncEngine(LocalStorage(root), outbox=Outbox(Path(outbox)), config=config)
    await engine.start()
    user = f"writer{seed}@example.com"
    key = SigningKey(bytes([int(seed)]) * 32)
    for i in range(int(count)):
        body = {"body": f"{user} {i}", "msgtype": "m.text"}
        await engine.send(room, user, key, [("m.room.message", body)])
    delivered = await engine.flush(timeout=60)
    await engine.close()
    print("delivered" if delivered else "queued", flush=True)


asyncio.run(main())
"""


def test_ten_writers_at_once_deliver_everything_once_with_intact_chains(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writers, count = 10, 200
    total = writers * (count + 1)
    bodies = [f"writer{w}@example.com {i}" for w in range(1, writers + 1) for i in range(count)]
    rec = Recorder()

    async def go() -> AuditResult:
        watcher = SyncEngine(
            LocalStorage(root),
            index=Index.open(tmp_path / "index.sqlite3"),
            listener=rec,
            config=SyncConfig(local_rescan=2.0),
        )
        try:
            await watcher.start()
            await watcher.open_room(ROOM, background=False)
            procs = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(script),
                    str(root),
                    str(tmp_path / f"outbox-{w}.sqlite3"),
                    ROOM,
                    str(w),
                    str(count),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                for w in range(1, writers + 1)
            ]
            results = await asyncio.wait_for(
                asyncio.gather(*(p.communicate() for p in procs)), timeout=60
            )
            for proc, (out, err) in zip(procs, results, strict=True):
                assert proc.returncode == 0, err.decode()
                assert out.decode().split() == ["delivered"]
            room = watcher.rooms[ROOM]
            # The watching device sees it all live (watch, with the re-scan as safety net).
            await until(lambda: room.result is not None and len(room.result.timeline) == total, 20)
            assert room.result is not None
            return room.result
        finally:
            await watcher.close()
            if watcher.index is not None:
                watcher.index.close()

    live = run(go())
    events = run(stored_events(store))
    assert_exactly_once(events, bodies)
    cold = audit(store)
    assert_clean(cold, total)
    assert live.findings == [] and live.clean
    assert [a.event.event_id for a in live.timeline] == [a.event.event_id for a in cold.timeline]
    # every device's events form one unbroken chain, in the order that device sent them
    for w in range(1, writers + 1):
        mine = [a.event for a in cold.timeline if a.event.sender_id == f"writer{w}@example.com"]
        assert len(mine) == count + 1 and mine[0].prev_event_hash is None
        assert all(b.prev_event_hash == a.hash for a, b in itertools.pairwise(mine))
        assert [e.body for e in mine[1:]] == [f"writer{w}@example.com {i}" for i in range(count)]
