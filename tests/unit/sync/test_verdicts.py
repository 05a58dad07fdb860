"""Verdicts the engine must not get wrong: a partial read is never final (PROTOCOL.md
section 16), and what a device writes witnesses what it read (section 6.1).

The red-team case: a reader pinned alice's key earlier; an impostor key writes as alice in
the newest day folder; reading the room then fails part-way (a listing, or one segment).
Before, the provisional audit (which lets new keys through while history loads) became
the final verdict: the impostor showed as verified and ``verify`` printed CLEAN."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import TrustState
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, ObjectInfo, StorageOfflineError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
ALICE, BOB = "alice@example.com", "bob@example.com"
T0 = 1757851245000
DAY = 86_400_000
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def ktext(seed: int) -> str:
    return b64encode(bytes(key(seed).verify_key))


class Flaky(LocalStorage):
    """A real folder whose storage stops answering for some objects or listings (what a
    dropped connection or a hostile provider does part-way through a read)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fail_get: set[str] = set()
        self.fail_list: set[str] = set()

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if path in self.fail_get:
            raise StorageOfflineError(f"no answer for {path}")
        return await super().get(path, max_bytes=max_bytes)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        if prefix in self.fail_list:
            raise StorageOfflineError(f"no answer listing {prefix}")
        return await super().list_objects(prefix)


def build(root: Path) -> tuple[str, str]:
    """Alice and bob on day 0; the impostor (a key nobody introduced, claiming alice) on
    day 1. Returns (day-0 folder prefix, the impostor's segment path)."""

    async def go() -> tuple[str, str]:
        store = LocalStorage(root)
        clock = iter(range(T0, T0 + 10_000))
        alice = RoomWriter(store, ROOM, ALICE, key(1), clock=lambda: next(clock))
        bob = RoomWriter(store, ROOM, BOB, key(2), clock=lambda: next(clock))
        await alice.write_metadata("Team", "2025-09-14T12:00:45.000Z")
        await alice.send([Draft.text("hello")])
        await bob.send([Draft.text("hi")])
        later = iter(range(T0 + DAY, T0 + DAY + 10_000))
        impostor = RoomWriter(store, ROOM, ALICE, key(9), clock=lambda: next(later))
        path, _ = await impostor.send([Draft.text("send the money to X")])
        day0 = f"{logs_prefix(ROOM)}2025-09-14/"
        return day0, path

    return asyncio.run(go())


def open_with(
    storage: LocalStorage, index: Index | None = None
) -> tuple[Any, list[tuple[str, TrustState]]]:
    async def go() -> Any:
        engine = SyncEngine(storage, index=index, config=QUIET)
        try:
            return await engine.open_room(ROOM, background=False)
        finally:
            await engine.close()

    room = asyncio.run(go())
    assert room.result is not None
    rows = [(a.event.sender_key or "", a.state) for a in room.result.timeline]
    return room, rows


def pinned_index(tmp_path: Path) -> Index:
    index = Index.open(tmp_path / "index.sqlite3")
    index.add_pins([(ALICE, ktext(1)), (BOB, ktext(2))], room_id=ROOM)
    return index


def test_whole_read_reports_the_impostor(tmp_path: Path) -> None:
    build(tmp_path / "store")
    index = pinned_index(tmp_path)
    room, rows = open_with(LocalStorage(tmp_path / "store"), index)
    assert (ktext(9), TrustState.KEY_CHANGED) in rows
    assert [f.kind for f in room.result.errors] == [Kind.KEY_CHANGED]
    index.close()


def test_a_failed_listing_part_way_is_not_a_final_verdict(tmp_path: Path) -> None:
    day0, _ = build(tmp_path / "store")
    storage = Flaky(tmp_path / "store")
    storage.fail_list = {day0}  # the newest day lists, the older one does not
    index = pinned_index(tmp_path)
    room, rows = open_with(storage, index)
    # the impostor is not let through provisionally: the final rules apply
    assert rows == [(ktext(9), TrustState.KEY_CHANGED), (ktext(9), TrustState.KEY_CHANGED)]
    kinds = [f.kind for f in room.result.errors]
    assert Kind.UNREAD in kinds and Kind.KEY_CHANGED in kinds and not room.result.clean
    unread = next(f for f in room.result.errors if f.kind is Kind.UNREAD)
    assert "no answer listing" in unread.message and "not final" in unread.message
    # nothing was pinned from a partial read, and the index knows it was partial (a
    # room rebuilt from it is judged by the same final rules: no trust on first use)
    assert index.pins(ROOM) == {ALICE: {ktext(1)}, BOB: {ktext(2)}}
    saved = {r["room_id"]: r for r in index.rooms()}[ROOM]
    assert saved["history_complete"] and saved["history_partial"]
    index.close()


def test_an_unreadable_segment_is_reported_and_read_again(tmp_path: Path) -> None:
    _, impostor_path = build(tmp_path / "store")
    storage = Flaky(tmp_path / "store")
    # alice's first segment does not answer
    store = LocalStorage(tmp_path / "store")
    first = asyncio.run(store.list_objects(logs_prefix(ROOM)))[0].path
    assert first != impostor_path
    storage.fail_get = {first}

    async def go() -> None:
        engine = SyncEngine(storage, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            errors = [(f.kind, f.path) for f in room.result.errors]
            assert (Kind.SEGMENT_UNREADABLE, first) in errors and not room.result.clean
            assert room.unread == {first: f"no answer for {first}"}
            # no trust on first use from a partial read: the impostor is the only alice key
            # that could be read, yet it is not verified (the unread part may hold hers)
            shown = {a.event.sender_key: a for a in room.result.timeline}
            assert shown[ktext(9)].state is TrustState.UNVERIFIED
            assert "could not be read" in shown[ktext(9)].reason
            # the storage answers again: the next pass reads it and the finding goes
            storage.fail_get = set()
            room.last_safety = 0.0
            await engine.poll_once()
            assert room.unread == {}
            assert Kind.SEGMENT_UNREADABLE not in [f.kind for f in room.result.findings]
            assert len(room.result.timeline) == 6
            # read whole: two keys claim alice, a conflict
            assert Kind.KEY_CONFLICT in [f.kind for f in room.result.errors]
        finally:
            await engine.close()

    asyncio.run(go())


def test_verify_style_read_with_a_dead_listing_is_never_clean(tmp_path: Path) -> None:
    build(tmp_path / "store")
    storage = Flaky(tmp_path / "store")
    storage.fail_list = {f"{logs_prefix(ROOM)}2025-09-15/", f"{logs_prefix(ROOM)}2025-09-14/"}
    room, rows = open_with(storage)  # no index: what `bucket-chat verify` does
    assert rows == []
    assert [f.kind for f in room.result.errors] == [Kind.UNREAD]
    assert not room.result.clean


def test_a_send_witnesses_the_chains_this_device_read(tmp_path: Path) -> None:
    """PROTOCOL.md 6.1: the first event of a batch names the newest event of every other
    chain read; the next batch names only chains that moved since."""
    from bucket_chat_desktop.protocol.audit import WITNESS_FIELD
    from bucket_chat_desktop.sync.outbox import Outbox

    build(tmp_path / "store")

    async def go() -> None:
        box = Outbox(tmp_path / "out.sqlite3")
        engine = SyncEngine(LocalStorage(tmp_path / "store"), outbox=box, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            tips = {a.event.sender_key: a.event.hash for a in room.result.timeline}
            first = await engine.send(ROOM, BOB, key(2), [("m.room.message", {"body": "a"})])
            assert dict(first[0].raw[WITNESS_FIELD]) == {
                k: h for k, h in tips.items() if k != ktext(2)
            }
            again = await engine.send(ROOM, BOB, key(2), [("m.room.message", {"body": "b"})])
            assert WITNESS_FIELD not in again[0].raw  # nothing moved since
        finally:
            await engine.close()
            box.close()

    asyncio.run(go())
