"""A device's first send in a room, through the engine and the outbox: where the chain's
head comes from. From the engine's verified read when it read the room completely (no
request at all); else from every segment in storage, decoded and checked once, off the
event loop; and never a head that forks the chain, wherever the storage put the
device's segments."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from file_modes import as_someone_modes_apply_to
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import TrustState
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import client_id_for, utc_date
from bucket_chat_desktop.protocol.signing import SignatureChecker
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, Level, ObjectInfo
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import NotQueuedError, SyncConfig, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.session import read_room
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
ALICE, BOB = "alice@example.com", "bob@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
T = TypeVar("T")
QUIET = SyncConfig(batch_window=0.0, local_rescan=3600.0, active_interval=3600.0)
_ids = itertools.count(1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def unique() -> str:
    return str(uuid.UUID(int=next(_ids), version=4))


class CountingStorage(LocalStorage):
    """A real folder that records the requests made to it."""

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


@pytest.fixture
def store(tmp_path: Path) -> CountingStorage:
    return CountingStorage(tmp_path / "store")


def a_room_with_history(store: LocalStorage) -> None:
    """Alice creates the room and writes; Bob joins and writes: all directly in storage."""
    alice = RoomWriter(store, ROOM, ALICE, key(1), unique=unique)
    run(alice.create_room("r", CREATED))
    run(alice.send([Draft.text("one")]))
    run(RoomWriter(store, ROOM, BOB, key(2), unique=unique).send([Draft.text("hi")]))
    run(alice.send([Draft.text("two")]))


async def send(engine: SyncEngine, user: str, seed: int, body: str) -> None:
    await engine.send(ROOM, user, key(seed), [(MESSAGE, {"body": body, "msgtype": "m.text"})])
    assert await engine.flush(timeout=10)


def assert_linear_and_verified(store: LocalStorage, bodies: list[str]) -> None:
    view = run(read_room(store, ROOM))
    result = view.result
    assert result is not None and view.complete
    assert Kind.FORK not in {f.kind for f in result.findings}
    assert result.clean, result.findings
    assert {a.state for a in result.timeline} == {TrustState.VERIFIED}
    shown = [a.event.body for a in result.timeline if a.event.type == MESSAGE]
    assert shown == bodies
    for sender in {a.event.sender_key for a in result.timeline}:
        mine = [a.event for a in result.timeline if a.event.sender_key == sender]
        assert mine[0].prev_event_hash is None
        assert all(b.prev_event_hash == a.hash for a, b in itertools.pairwise(mine))


def test_a_device_that_read_the_room_takes_the_head_from_what_it_verified(
    store: CountingStorage,
) -> None:
    """No listing, no download between the complete read and the segment's upload."""
    a_room_with_history(store)

    async def go() -> None:
        box = Outbox(None)  # a fresh install: the outbox does not know the head
        engine = SyncEngine(store, outbox=box, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            store.calls.clear()
            await engine.send(ROOM, ALICE, key(1), [(MESSAGE, {"body": "three"})])
            assert store.calls == []  # queued from the verified read alone
            assert await engine.flush(timeout=10)
        finally:
            await engine.close()
            box.close()

    run(go())
    assert_linear_and_verified(store, ["one", "hi", "two", "three"])


@pytest.mark.parametrize("read_first", [True, False], ids=["read-the-room", "never-read"])
def test_a_segment_moved_under_another_devices_name_does_not_fork_the_chain(
    store: CountingStorage, tmp_path: Path, read_first: bool
) -> None:
    """The storage provider moved alice's newest segment under Bob's device's name (names
    are not signed). Whether her device takes the head from its verified read of the room
    or from the segments in storage, the next send continues her newest event."""
    a_room_with_history(store)
    newest = max(
        (o.path for o in run(store.list_objects(f"rooms/{ROOM}/logs/"))),
        key=lambda p: int(p.rsplit("_", 2)[-2]),  # messages_<first>_<last>_<client>.jsonl
    )
    assert "_alice-" in newest
    moved = newest.replace("_alice-", "_bob-")
    (tmp_path / "store" / newest).rename(tmp_path / "store" / moved)

    async def go() -> None:
        box = Outbox(None)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        try:
            if read_first:
                await engine.open_room(ROOM, background=False)
            store.calls.clear()
            await send(engine, ALICE, 1, "three")
            listed = [p for c, p in store.calls if c == "list_objects"]
            assert bool(listed) is not read_first  # only a device that never read asks
        finally:
            await engine.close()
            box.close()

    run(go())
    assert_linear_and_verified(store, ["one", "hi", "two", "three"])


def test_a_first_send_from_storage_checks_each_signature_once_off_the_event_loop(
    store: CountingStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device that never read the room (no index, no outbox head) reads every segment
    to find its chain. Each is decoded and its signatures checked once, on the engine's
    pool: the room's history is never verified on the thread that runs the app's event
    loop (and Qt), nor verified twice for the introductions of a new device."""
    a_room_with_history(store)
    real = SignatureChecker.check_bytes
    checks: Counter[str] = Counter()
    on_loop: list[str] = []

    def spy(self: SignatureChecker, key_text: str, message: bytes, signature: str) -> Any:
        checks[signature] += 1
        if threading.current_thread() is threading.main_thread():
            on_loop.append(signature)
        return real(self, key_text, message, signature)

    monkeypatch.setattr(SignatureChecker, "check_bytes", spy)

    async def go(user: str, seed: int, body: str) -> None:
        box = Outbox(None)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        try:
            await send(engine, user, seed, body)
        finally:
            await engine.close()
            box.close()

    # Her chain continues (its head is found in storage); then a new device, whose join
    # comes first and whose introductions are looked for.
    for user, seed, body in ((ALICE, 1, "three"), ("carol@example.com", 3, "hello")):
        checks.clear()
        run(go(user, seed, body))
        assert on_loop == []
        assert len(checks) >= 5 and set(checks.values()) == {1}, checks
    # The direct writer (room creation: the setup wizard runs it on the app's loop) too.
    checks.clear()
    dave = RoomWriter(store, ROOM, "dave@example.com", key(4))
    assert run(dave.load_head()) is None
    assert on_loop == [] and len(checks) >= 5 and set(checks.values()) == {1}, checks
    assert_linear_and_verified(store, ["one", "hi", "two", "three", "hello"])


class GatedStorage(CountingStorage):
    """Segment downloads wait until the gate opens: the room's read is still going on."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate: asyncio.Event | None = None

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if self.gate is not None and "/logs/" in path:
            await self.gate.wait()
        return await super().get(path, max_bytes=max_bytes)


def test_a_send_while_the_room_is_being_read_waits_for_that_read_not_a_second_one(
    tmp_path: Path,
) -> None:
    """The app opened the room (its history is read in the background) and the person
    sends at once. The send takes its head from that read when it completes: each
    segment is downloaded once (a second, private read of the whole room used to race
    the first, downloading and verifying everything twice)."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)

    async def go() -> None:
        box = Outbox(None)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        store.gate = asyncio.Event()
        try:
            store.calls.clear()
            await engine.open_room(ROOM)  # background: the read waits at the gate
            sending = asyncio.ensure_future(
                engine.send(ROOM, ALICE, key(1), [(MESSAGE, {"body": "three"})])
            )
            await asyncio.sleep(0.2)  # the send reaches its head lookup (deadline 1.2 s)
            assert not sending.done()
            store.gate.set()
            await sending
            assert await engine.flush(timeout=10)
            downloads = Counter(p for c, p in store.calls if c == "get" and "/logs/" in p)
            assert downloads and set(downloads.values()) == {1}, downloads
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(go())
    assert_linear_and_verified(store, ["one", "hi", "two", "three"])


def test_a_send_while_a_silent_storage_is_being_read_queues_nothing_and_keeps_reading(
    tmp_path: Path,
) -> None:
    """Waiting for the room's read is given up like any interactive step when a download
    gets no answer; the send then asks the storage itself, gets no answer either, and
    queues nothing (a guessed head would fork the chain). The room's read goes on."""
    store = GatedStorage(tmp_path / "store")
    a_room_with_history(store)

    async def go() -> None:
        box = Outbox(None)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        store.gate = asyncio.Event()  # never opened before the send gives up
        try:
            await engine.open_room(ROOM)
            with pytest.raises(NotQueuedError, match="nothing was queued: no answer"):
                await engine.send(ROOM, ALICE, key(1), [(MESSAGE, {"body": "lost"})])
            assert box.is_empty() and not box.knows_room(ROOM)
            reading = engine.rooms[ROOM].backfill
            assert reading is not None and not reading.done()  # not cancelled by the send
            store.gate.set()
            await reading
            await send(engine, ALICE, 1, "three")  # now from the completed read
        finally:
            store.gate.set()
            await engine.close()
            box.close()

    run(go())
    assert_linear_and_verified(store, ["one", "hi", "two", "three"])


class _Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _first_send_of_bob(root: Path) -> dict[str, Any]:
    """Bob's device, with nothing local (a fresh outbox, no index), sends its first
    message: what became of it, and the warnings said meanwhile."""
    said = _Said()
    logging.getLogger("bucket_chat.sync").addHandler(said)

    async def go() -> str:
        box = Outbox(None)
        engine = SyncEngine(LocalStorage(root), outbox=box, config=QUIET)
        try:
            await engine.send(ROOM, BOB, key(2), [(MESSAGE, {"body": "hi", "msgtype": "m.text"})])
            return "sent" if await engine.flush(timeout=10) else "not sent"
        except NotQueuedError as exc:
            return f"not queued: {exc}"
        finally:
            await engine.close()
            box.close()

    try:
        return {"outcome": run(go()), "said": said.lines}
    finally:
        logging.getLogger("bucket_chat.sync").removeHandler(said)


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_an_object_under_this_devices_name_it_may_not_read_stops_no_first_send() -> None:
    """Red team rt57: a file named like this device's segments (its client id is public:
    it names its segments in every room), which the device may not read, planted in a
    room the device never read whole. Asking the storage where its chain continues
    raised for it ("ask again later rather than guess"), for good, so the device could
    never join nor send there ("nothing was queued … permission denied"). Now it is
    skipped like any object that cannot be read, and said (a warning naming it, and the
    room's read names it as unread); the device starts its chain. Unless nothing at all
    could be read: a refusal of every read says nothing of that one object, and the
    send is not queued, as before. (As ``nobody`` when run as root, which reads all.)"""
    base = Path(tempfile.mkdtemp(prefix="bc-perm-"))
    try:
        base.chmod(0o755)
        root = base / "store"
        alice = RoomWriter(LocalStorage(root), ROOM, ALICE, key(1), unique=unique)
        run(alice.create_room("r", CREATED))
        theirs, _ = run(alice.send([Draft.text("welcome")]))
        cid = client_id_for(BOB, bytes(key(2).verify_key))
        day = utc_date(int(time.time() * 1000))
        trap = root / "rooms" / ROOM / "logs" / day / f"messages_1_1_{cid}.jsonl"
        trap.parent.mkdir(parents=True, exist_ok=True)
        trap.write_bytes(b"not yours to read\n")
        trap.chmod(0)
        for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            folder.chmod(0o777)
        run(LocalStorage(root).exists("rooms/warm-up"))  # the thread pool, before forking
        # Nothing can be read: not queued (the device cannot tell where its chain is).
        for segment in (root / "rooms" / ROOM / "logs").rglob("*.jsonl"):
            segment.chmod(0)
        nothing = as_someone_modes_apply_to(lambda: _first_send_of_bob(root))
        assert nothing["outcome"].startswith("not queued: "), nothing
        assert "permission denied" in nothing["outcome"], nothing
        # Alice's segments readable, the one under Bob's name not: sent.
        for segment in (root / "rooms" / ROOM / "logs").rglob("*.jsonl"):
            if segment != trap:
                segment.chmod(0o644)
        out = as_someone_modes_apply_to(lambda: _first_send_of_bob(root))
        assert out["outcome"] == "sent", out
        (warning,) = [w for w in out["said"] if trap.name in w]
        assert "permission denied" in warning and "fork" in warning, warning
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
    assert theirs
