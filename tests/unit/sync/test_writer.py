"""RoomWriter (the direct writer that creates rooms) on a real local folder, each room
read back by the engine (the app's one read path): creating rooms, continuing chains
across restarts, name collisions, failed writes, incremental reads and odd objects."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Callable, Collection, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import (
    DEVICE_ACCEPT_FIELD,
    HOLD_AHEAD_MS,
    AuditResult,
    TrustState,
)
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.chain import continue_chain
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.protocol.findings import Kind, Severity
from bucket_chat_desktop.protocol.ids import InvalidRoomIdError, segment_path
from bucket_chat_desktop.protocol.metadata import parse_metadata
from bucket_chat_desktop.protocol.segment import decode_segment, encode_segment
from bucket_chat_desktop.protocol.signing import build_event, public_key_text
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, StorageError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import room_objects
from bucket_chat_desktop.sync.engine import RoomView, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.room_objects import list_rooms, room_exists
from bucket_chat_desktop.sync.session import read_room
from bucket_chat_desktop.sync.writer import Draft, RoomError, RoomWriter

ROOM = "room-1"
T0 = 1757851245000  # 2025-09-14T12:00:45.000Z
DAY = 86_400_000
CREATED = "2025-09-14T12:00:45.000Z"
V, U, K = TrustState.VERIFIED, TrustState.UNVERIFIED, TrustState.KEY_CHANGED

T = TypeVar("T")
_uuids = itertools.count(1)


def unique() -> str:
    return str(uuid.UUID(int=next(_uuids), version=4))


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    """A settable clock; each reading advances it by ``step`` ms."""

    def __init__(self, now: int = T0, step: int = 1000) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> int:
        value = self.now
        self.now += self.step
        return value


class CountingStorage(LocalStorage):
    """A real local folder that remembers which objects were downloaded."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets: list[str] = []

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        self.gets.append(path)
        return await super().get(path, max_bytes=max_bytes)


@pytest.fixture
def store(tmp_path: Path) -> CountingStorage:
    return CountingStorage(tmp_path / "store")


def writer(
    store: LocalStorage,
    user: str = "alice@example.com",
    seed: int = 1,
    *,
    clock: Clock | None = None,
    room: str = ROOM,
    displayname: str | None = None,
    confirmed: Collection[str] = (),
) -> RoomWriter:
    return RoomWriter(
        store,
        room,
        user,
        key(seed),
        displayname=displayname,
        clock=clock or Clock(),
        unique=unique,
        confirmed=confirmed,
    )


def audited(store: LocalStorage, room: str = ROOM) -> tuple[RoomView, AuditResult]:
    view = run(read_room(store, room))
    assert view.complete and view.result is not None
    return view, view.result


def states(result: AuditResult) -> list[TrustState]:
    return [a.state for a in result.timeline]


def bodies(result: AuditResult) -> list[str | None]:
    return [a.event.body for a in result.timeline]


def segments(store: LocalStorage, room: str = ROOM) -> list[str]:
    return [o.path for o in run(store.list_objects(f"rooms/{room}/logs/"))]


def chain_is_linear(result: AuditResult) -> bool:
    events = [a.event for a in result.timeline]
    return events[0].prev_event_hash is None and all(
        b.prev_event_hash == a.hash for a, b in itertools.pairwise(events)
    )


# -- creating rooms -------------------------------------------------------------------------


def test_create_room_writes_signed_metadata_and_a_join(store: CountingStorage) -> None:
    w = writer(store, displayname="Alice")
    path = run(w.create_room("Café ☕", CREATED))
    assert segments(store) == [path]
    data = run(store.get(f"rooms/{ROOM}/metadata.json"))
    meta, findings = parse_metadata(data, ROOM, "m")
    assert findings == [] and meta is not None and meta.signed
    assert (meta.name, meta.created_at, meta.creator_id) == ("Café ☕", CREATED, w.user_id)
    assert meta.creator_key == public_key_text(key(1))
    decoded = decode_segment(path, run(store.get(path)), ROOM)
    assert decoded.findings == []
    (join,) = [loc.event for loc in decoded.events]
    assert (join.type, join.prev_event_hash, join.sender_key) == (MEMBER, None, w.key_text)
    assert dict(join.content) == {"membership": "join", "displayname": "Alice"}
    view, result = audited(store)
    assert view.metadata == meta and view.metadata_findings == ()
    assert result.findings == [] and states(result) == [V]


def test_a_second_create_room_is_refused_and_changes_nothing(
    store: CountingStorage, tmp_path: Path
) -> None:
    run(writer(store).create_room("first", CREATED))
    meta_file = tmp_path / "store" / "rooms" / ROOM / "metadata.json"
    before = meta_file.read_bytes(), meta_file.stat().st_ino
    before_segments = segments(store)
    with pytest.raises(RoomError, match="already exists"):
        run(writer(store, "bob@example.com", 2).create_room("second", CREATED))
    with pytest.raises(RoomError, match="already exists"):
        run(writer(store).create_room("renamed", CREATED))  # same creator, other metadata
    assert (meta_file.read_bytes(), meta_file.stat().st_ino) == before
    assert segments(store) == before_segments
    _, result = audited(store)
    assert result.clean and states(result) == [V]


def test_create_room_refuses_a_bad_room_id_before_writing(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    with pytest.raises(InvalidRoomIdError):
        run(writer(store, room="../x").create_room("x", CREATED))
    assert not (tmp_path / "store").exists() and not (tmp_path / "x").exists()


# -- chains across restarts -----------------------------------------------------------------


def test_send_continues_the_chain_across_restarts(store: CountingStorage) -> None:
    clock = Clock()
    run(writer(store, clock=clock).create_room("r", CREATED))
    _, ev1 = run(writer(store, clock=clock).send([Draft.text("one")]))
    assert [e.type for e in ev1] == [MESSAGE]  # no second join after a restart
    run(writer(store, clock=clock).send([Draft.text("two"), Draft.text("three")]))
    # A clock that went backwards by up to an hour: the chain still moves forward in
    # time. (Set back further, it dates by the clock, and readers still show the event
    # after its predecessor: test_chain.)
    late = writer(store, clock=Clock(T0 - HOLD_AHEAD_MS // 2))
    _, ev4 = run(late.send([Draft.text("four")]))
    assert ev4[0].timestamp_ms >= ev1[0].timestamp_ms
    _, result = audited(store)
    assert result.findings == [] and result.clean
    assert states(result) == [V] * 5
    assert bodies(result) == [None, "one", "two", "three", "four"]
    assert chain_is_linear(result)
    assert len(segments(store)) == 4


def test_load_head_ignores_other_devices_and_users(store: CountingStorage) -> None:
    clock = Clock()
    alice = writer(store, clock=clock)
    run(alice.create_room("r", CREATED))
    run(writer(store, "bob@example.com", 2, clock=clock).send([Draft.text("bob")]))
    run(writer(store, "alice@example.com", 3, clock=clock).send([Draft.text("laptop")]))
    head = run(writer(store, clock=clock).load_head())
    assert head is not None and head.sender_key == alice.key_text and head.type == MEMBER
    assert run(writer(store, "carol@example.com", 4).load_head()) is None


def test_a_segment_moved_under_another_name_does_not_fork_the_chain(
    store: CountingStorage, tmp_path: Path
) -> None:
    """The storage provider moved alice's newest segment under another device's name
    (names are not signed). Her next send from an install without the outbox's head
    looked only at segments named after her device, continued from the older event and
    forked her chain: both her messages unverified, a fork finding blaming her."""
    clock = Clock()
    run(writer(store, clock=clock).create_room("r", CREATED))
    path, _ = run(writer(store, clock=clock).send([Draft.text("one")]))
    moved = path.replace("_alice-", "_bob-")
    assert moved != path
    (tmp_path / "store" / path).rename(tmp_path / "store" / moved)
    run(writer(store, clock=clock).send([Draft.text("two")]))
    _, result = audited(store)
    assert Kind.FORK not in {f.kind for f in result.findings}
    assert bodies(result) == [None, "one", "two"] and chain_is_linear(result)
    assert states(result) == [V, V, V]


def test_a_segment_name_collision_picks_the_r1_name(store: CountingStorage) -> None:
    clock = Clock(step=0)
    w = writer(store, clock=clock)
    run(w.create_room("r", CREATED))
    clock.now = T0 + 5000
    taken = segment_path(ROOM, clock.now, clock.now, w.client_id)
    # Someone else's valid segment sits at the name this device will pick next.
    bob_join = build_event(
        room_id=ROOM,
        sender_id="bob@example.com",
        event_type=MEMBER,
        content={"membership": "join"},
        timestamp_ms=clock.now,
        unique=unique(),
        prev_event_hash=None,
        signing_key=key(2),
    )
    other = encode_segment([bob_join])
    assert run(store.put_if_absent(taken, other))
    path, _ = run(w.send([Draft.text("collides")]))
    assert path == taken.replace(f"_{w.client_id}.jsonl", f"_{w.client_id}-r1.jsonl")
    assert run(store.get(taken)) == other  # never overwritten
    # After a restart the device finds its head in the -r1 segment and continues it.
    clock.now = T0 + 9000
    run(writer(store, clock=clock).send([Draft.text("after restart")]))
    _, result = audited(store)
    assert result.findings == [] and states(result) == [V] * 4
    mine = [a.event for a in result.timeline if a.event.sender_id == "alice@example.com"]
    assert [e.body for e in mine] == [None, "collides", "after restart"]
    assert all(b.prev_event_hash == a.hash for a, b in itertools.pairwise(mine))


def test_a_retry_that_meets_its_own_segment_reuses_the_name(store: CountingStorage) -> None:
    w = writer(store)
    run(w.create_room("r", CREATED))
    events = w.prepare([Draft.text("once")])
    first = run(w.publish(events))
    assert run(w.publish(events)) == first  # a lost reply: same bytes, same name
    _, result = audited(store)
    assert result.findings == [] and bodies(result) == [None, "once"]


def test_a_failed_send_restores_the_head(store: CountingStorage, tmp_path: Path) -> None:
    clock = Clock()
    w = writer(store, clock=clock)
    run(w.create_room("r", CREATED))
    run(w.send([Draft.text("before")]))
    # The next segment goes to the next day's folder; a plain file there makes the write fail.
    clock.now = T0 + DAY
    blocker = tmp_path / "store" / "rooms" / ROOM / "logs" / "2025-09-15"
    blocker.write_bytes(b"in the way")
    with pytest.raises(StorageError, match="cannot create folder"):
        run(w.send([Draft.text("lost")]))
    blocker.unlink()
    run(w.send([Draft.text("retried")]))
    _, result = audited(store)
    assert result.findings == [], [f.kind for f in result.findings]
    assert bodies(result) == [None, "before", "retried"]
    assert states(result) == [V] * 3 and chain_is_linear(result)


def test_publish_gives_up_after_twenty_taken_names(store: CountingStorage) -> None:
    clock = Clock(step=0)
    w = writer(store, clock=clock)
    run(w.create_room("r", CREATED))
    clock.now = T0 + 5000
    events = w.prepare([Draft.text("x")])
    for attempt in range(20):
        cid = w.client_id if attempt == 0 else f"{w.client_id[:56]}-r{attempt}"
        run(store.put_if_absent(segment_path(ROOM, clock.now, clock.now, cid), b"junk\n"))
    with pytest.raises(StorageError, match="free segment name"):
        run(w.publish(events))


def test_prepare_needs_a_loaded_head(store: CountingStorage) -> None:
    with pytest.raises(RuntimeError, match="load_head"):
        writer(store).prepare([Draft.text("x")])


# -- reading --------------------------------------------------------------------------------


def test_refresh_reads_only_new_segments(store: CountingStorage) -> None:
    clock = Clock()
    w = writer(store, clock=clock)
    run(w.create_room("r", CREATED))
    run(w.send([Draft.text("a")]))
    everything = sorted([f"rooms/{ROOM}/metadata.json", *segments(store)])
    store.gets.clear()

    async def go() -> None:
        engine = SyncEngine(store)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert sorted(store.gets) == everything
            store.gets.clear()
            await engine.refresh(ROOM)
            assert store.gets == []
            new, _ = await writer(store, clock=clock).send([Draft.text("b")])
            store.gets.clear()  # (the writer read its own segments to find its head)
            await engine.refresh(ROOM)
            assert store.gets == [new]  # neither the metadata nor old segments again
            assert room.result is not None
            assert room.result.findings == [] and bodies(room.result) == [None, "a", "b"]
            assert room.known[new] == len(await store.get(new))
        finally:
            await engine.close()

    run(go())


def test_an_oversized_segment_is_reported_and_not_read(
    store: CountingStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    w = writer(store, clock=clock)
    run(w.create_room("r", CREATED))
    big, _ = run(w.send([Draft.text("x" * 5000)]))
    small, _ = run(w.send([Draft.text("small")]))
    monkeypatch.setattr(room_objects, "MAX_SEGMENT_BYTES", 4000)
    assert len(run(store.get(small))) < 4000 < len(run(store.get(big)))
    store.gets.clear()

    async def go() -> None:
        engine = SyncEngine(store)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert big not in store.gets and small in store.gets
            result = room.result
            assert result is not None and room.complete
            too_large = [f for f in result.findings if f.kind is Kind.SEGMENT_TOO_LARGE]
            assert [f.path for f in too_large] == [big]
            assert too_large[0].severity is Severity.ERROR and not result.clean
            assert "x" * 5000 not in bodies(result)
            # A second pass neither reads nor reports it again.
            await engine.refresh(ROOM)
            await engine.reaudit(ROOM)
            assert big not in store.gets and room.result is not None
            kinds = [f.kind for f in room.result.findings]
            assert kinds.count(Kind.SEGMENT_TOO_LARGE) == 1
        finally:
            await engine.close()

    run(go())


def test_objects_that_are_not_segments_are_notices(store: CountingStorage) -> None:
    w = writer(store)
    run(w.create_room("r", CREATED))
    odd = [
        f"rooms/{ROOM}/logs/2025-09-14/notes.txt",
        f"rooms/{ROOM}/logs/2025-09-14/messages_1_2_x.json",
        f"rooms/{ROOM}/logs/not-a-date/messages_1_2_x.jsonl",
        f"rooms/{ROOM}/logs/2025-09-14/deeper/messages_1_2_x.jsonl",
    ]
    # Outside every date folder: never downloaded, reported like the others (the listing
    # of the room's days shows it: ``Backfill.list_days``; it used to pass unsaid).
    beside = f"rooms/{ROOM}/logs/README.txt"
    for path in [*odd, beside]:
        run(store.put_if_absent(path, b"{}\n"))
    store.gets.clear()

    async def go() -> None:
        engine = SyncEngine(store)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert not {*odd, beside} & set(store.gets)
            result = room.result
            assert result is not None and room.complete
            unexpected = [f for f in result.findings if f.kind is Kind.UNEXPECTED_OBJECT]
            assert sorted(f.path or "" for f in unexpected) == sorted([*odd, beside])
            assert all(f.severity is Severity.NOTICE for f in unexpected)
            assert result.clean and states(result) == [V]
            await engine.refresh(ROOM)
            await engine.reaudit(ROOM)
            assert room.result is not None
            assert len(room.result.findings) == len(odd) + 1  # not reported twice
        finally:
            await engine.close()

    run(go())


def test_room_exists_and_list_rooms(store: CountingStorage, tmp_path: Path) -> None:
    run(writer(store, room="ok").create_room("OK", CREATED))
    run(writer(store, room="logs-only").send([Draft.text("no metadata")]))
    rooms = tmp_path / "store" / "rooms"
    for name in ["empty", "bad name", "ünï", "a" * 129, ".hidden", "-dash"]:
        (rooms / name / "logs" / "2025-09-14").mkdir(parents=True, exist_ok=True)
    (rooms / "empty" / "logs" / "2025-09-14").rmdir()
    (rooms / "stray-file").write_bytes(b"not a room")
    assert run(list_rooms(store)) == ["-dash", "empty", "logs-only", "ok"]
    assert run(room_exists(store, "ok")) is True
    assert run(room_exists(store, "logs-only")) is True
    assert run(room_exists(store, "empty")) is False
    assert run(room_exists(store, "missing")) is False
    for bad in ["../x", "a/b", "", ".hidden", "bad name", "a" * 129]:
        with pytest.raises(InvalidRoomIdError):
            run(room_exists(store, bad))
        with pytest.raises(InvalidRoomIdError):
            run(read_room(store, bad))


def test_list_rooms_of_an_empty_store(tmp_path: Path) -> None:
    assert run(list_rooms(LocalStorage(tmp_path / "nothing"))) == []


def test_a_room_without_metadata_reports_it(store: CountingStorage) -> None:
    run(writer(store).send([Draft.text("hi")]))
    view, result = audited(store)
    assert view.metadata is None
    assert [f.kind for f in view.metadata_findings] == [Kind.METADATA_MISSING]
    assert result.clean and bodies(result) == [None, "hi"]


# -- the reference implementation's rooms ---------------------------------------------------


def _reference_event(n: int, ts: int, content: dict[str, Any], typ: str) -> bytes:
    # pydantic model_dump_json(): declaration order, compact, raw UTF-8, no sender_key
    obj = {
        "event_id": f"{ROOM}::2025-09-14T14:00:4{n}.123000::{uuid.UUID(int=n, version=4)}",
        "room_id": ROOM,
        "timestamp_ms": ts,
        "sender_id": "jöran@example.com",
        "type": typ,
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "bm90IGNoZWNrYWJsZQ==",
        "content": content,
    }
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def test_a_reference_style_room_reads_as_unverified_and_clean(
    store: CountingStorage, tmp_path: Path
) -> None:
    meta = {
        "room_id": ROOM,
        "created_at": "2025-09-14T14:00:00.123456",
        "version": "1.0",
        "protocol": "bucket-chat-v1",
    }
    run(store.put_if_absent(f"rooms/{ROOM}/metadata.json", json.dumps(meta, indent=2).encode()))
    lines = [
        (T0, _reference_event(1, T0, {"membership": "join"}, MEMBER)),
        (T0 + 1000, _reference_event(2, T0 + 1000, {"body": "Grüße 🍺", "msgtype": "m.text"},
                                     MESSAGE)),
        (T0 + 2000, _reference_event(3, T0 + 2000, {"body": "zweite", "msgtype": "m.text"},
                                     MESSAGE)),
    ]  # fmt: skip
    for ts, line in lines:
        run(
            store.put_if_absent(
                f"rooms/{ROOM}/logs/2025-09-14/messages_{ts}_{ts}_jöran.jsonl", line
            )
        )
    assert run(room_exists(store, ROOM)) and run(list_rooms(store)) == [ROOM]
    view, result = audited(store)
    assert view.metadata is not None and not view.metadata.signed
    assert [f.kind for f in view.metadata_findings] == [Kind.METADATA_UNSIGNED]
    assert all(f.severity is Severity.NOTICE for f in view.metadata_findings)
    assert result.findings == [] and result.clean
    assert states(result) == [U, U, U]
    assert bodies(result) == [None, "Grüße 🍺", "zweite"]
    assert all("no sender_key" in a.reason for a in result.timeline)


# -- more devices ---------------------------------------------------------------------------


def _two_devices(store: LocalStorage, introduce: bool) -> AuditResult:
    clock = Clock()
    phone = writer(store, clock=clock, displayname="Alice")
    run(phone.create_room("r", CREATED))
    run(phone.send([Draft.text("from the phone")]))
    # Its owner confirmed the phone's key on the laptop (compared fingerprints).
    laptop = writer(store, seed=2, clock=clock, displayname="Alice", confirmed={phone.key_text})
    if introduce:
        run(phone.add_device(laptop.key_text, "laptop"))
    run(laptop.send([Draft.text("from the laptop")]))
    run(phone.send([Draft.text("phone again")]))
    return audited(store)[1]


def test_add_device_makes_a_second_key_verified(store: CountingStorage) -> None:
    result = _two_devices(store, introduce=True)
    assert result.findings == [] and result.clean
    assert states(result) == [V] * 6
    intro = result.timeline[2].event
    assert intro.type == MEMBER and intro.content["device_name"] == "laptop"
    assert bodies(result)[3:] == [None, "from the laptop", "phone again"]


def test_a_second_key_without_add_device_is_a_conflict(store: CountingStorage) -> None:
    result = _two_devices(store, introduce=False)
    assert [f.kind for f in result.findings] == [Kind.KEY_CONFLICT] and not result.clean
    assert states(result) == [K, K, K, K, K]


def test_the_new_device_accepts_its_introduction(store: CountingStorage) -> None:
    _two_devices(store, introduce=True)
    laptop = writer(store, seed=2)
    result = audited(store)[1]
    joins = [a.event for a in result.timeline if a.event.sender_key == laptop.key_text]
    assert joins[0].content[DEVICE_ACCEPT_FIELD] == writer(store).key_text


def test_an_introduction_by_a_key_nobody_confirmed_is_offered_not_accepted(
    store: CountingStorage,
) -> None:
    """The room trusts the phone on first use, but the laptop cannot tell it from an
    impostor that copied the laptop's public key: it accepts nothing by itself."""
    clock = Clock()
    phone = writer(store, clock=clock)
    run(phone.create_room("r", CREATED))
    laptop = writer(store, seed=2, clock=clock)
    run(phone.add_device(laptop.key_text, "laptop"))
    run(laptop.send([Draft.text("from the laptop")]))
    assert laptop.introduced_by is None and laptop.offered == [phone.key_text]
    result = audited(store)[1]
    assert DEVICE_ACCEPT_FIELD not in result.timeline[-2].event.content
    assert [f.kind for f in result.findings] == [Kind.KEY_CONFLICT]


def test_add_device_needs_a_joined_device(store: CountingStorage) -> None:
    run(writer(store).create_room("r", CREATED))
    stranger = writer(store, "bob@example.com", 2)
    with pytest.raises(RoomError, match="has not joined"):
        run(stranger.add_device(public_key_text(key(3))))
    assert len(segments(store)) == 1


@pytest.fixture(autouse=True)
def _fresh_uuids() -> Iterator[None]:
    global _uuids
    _uuids = itertools.count(1)
    yield


def test_a_room_whose_id_differs_from_an_existing_one_only_in_case_is_not_created(
    store: CountingStorage, tmp_path: Path
) -> None:
    """On Windows and macOS ``Team`` and ``team`` are one folder: the second creator would
    write into the first room (PROTOCOL.md 2.1)."""
    run(writer(store).create_room("first", CREATED))
    upper = ROOM.upper()  # "ROOM-1"
    with pytest.raises(RoomError, match="only in case"):
        run(RoomWriter(store, upper, "bob@example.com", key(2)).create_room("second", CREATED))
    with pytest.raises(RoomError, match="must not end with"):
        run(RoomWriter(store, f"{ROOM}.", "bob@example.com", key(2)).create_room("x", CREATED))
    assert sorted(p.name for p in (tmp_path / "store" / "rooms").iterdir()) == [ROOM]


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: str(uuid.UUID(int=next(counter), version=4))


def test_the_outbox_and_the_direct_writer_sign_what_continue_chain_signs(tmp_path: Path) -> None:
    """One continuation: given the same head, clock and ids, the outbox (every send of
    the app and the CLI) and the writer that creates rooms sign the same events."""
    expected = continue_chain(
        None,
        [(MESSAGE, {"body": "hi", "msgtype": "m.text"})],
        room_id=ROOM,
        sender_id="alice@example.com",
        signing_key=key(1),
        timestamp_ms=T0,
        unique=ids(),
        join={"membership": "join", "displayname": "Al"},
    )
    box = Outbox(None)
    key_text = b64encode(bytes(key(1).verify_key))
    box.seed_head(ROOM, key_text, None)
    queued = box.enqueue(
        room_id=ROOM,
        user_id="alice@example.com",
        signing_key=key(1),
        drafts=[(MESSAGE, {"body": "hi", "msgtype": "m.text"})],
        clock=lambda: T0,
        unique=ids(),
        displayname="Al",
    )
    box.close()
    w = RoomWriter(
        LocalStorage(tmp_path / "store"),
        ROOM,
        "alice@example.com",
        key(1),
        displayname="Al",
        clock=lambda: T0,
        unique=ids(),
    )
    assert run(w.load_head()) is None  # a device that never wrote here
    written = w.prepare([Draft.text("hi")])
    assert [e.line() for e in queued] == [e.line() for e in expected]
    assert [e.line() for e in written] == [e.line() for e in expected]
