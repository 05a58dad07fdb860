"""Red team rt99 (fixed by fix99a: ``SendScan.witness_order``): anyone who can write to
the bucket crowds an honest chain out of every witness, then deletes its newest events
without a trace.

docs/SECURITY.md promises "Drop the newest part of someone's history, once anyone else
has seen it" is caught: "every batch a device writes witnesses the newest event of every
other chain it has read". Ours names at most 64 chains, the most recently active first
(``Publisher._witness`` over ``SendScan.tips``), and any row of the timeline with a
``sender_key`` counts as activity — including rows signed by keys the attacker made up a
second ago (a key costs nothing; no membership, no introduction, no key of anyone in the
room is needed: the storage provider can do it).

The attack: Alice writes her newest message E ("pay account 123"). Before Bob's next send
the provider plants 64 rows, each signed by a fresh key, dated after E. Bob's app reads
E, then sends: its witness names the 64 throwaway chains and not Alice's. The provider
deletes E's segment. Every reader afterwards — the app cold, ``bucket-chat verify`` —
finds Alice's shorter chain intact and no ``truncated-chain``: the deletion of a message
Bob read (and answered) is hidden, which is exactly what witnesses exist to prevent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import WITNESS_FIELD
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
ALICE, BOB = "alice@example.com", "bob@example.com"
T0 = 1757851245000
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
CROWD = 64  # MAX_WITNESS_ENTRIES: as many throwaway keys as a witness names chains


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def ktext(seed: int) -> str:
    return b64encode(bytes(key(seed).verify_key))


def _build(root: Path, crowd: int) -> str:
    """Alice and Bob talk; Alice's newest message E in a segment of its own; then 64
    rows by fresh keys, dated after E. Returns E's segment path."""

    async def go() -> str:
        store = LocalStorage(root)
        clock = iter(range(T0, T0 + 100_000))
        alice = RoomWriter(store, ROOM, ALICE, key(1), clock=lambda: next(clock))
        bob = RoomWriter(store, ROOM, BOB, key(2), clock=lambda: next(clock))
        await alice.write_metadata("Team", "2025-09-14T12:00:45.000Z")
        await alice.send([Draft.text("hello")])
        await bob.send([Draft.text("hi")])
        newest, _ = await alice.send([Draft.text("pay account 123, not 456")])
        for n in range(crowd):  # the provider's throwaway keys, after E
            junk = RoomWriter(
                store, ROOM, f"x{n}@example.net", key(100 + n), clock=lambda: next(clock)
            )
            await junk.send([Draft.text(".")])
        return newest

    return asyncio.run(go())


@pytest.mark.parametrize("crowd", [0, CROWD], ids=["control-no-crowd", "crowd-of-64-keys"])
def test_a_crowd_of_throwaway_keys_does_not_hide_a_deleted_message(
    tmp_path: Path, crowd: int
) -> None:
    newest = _build(tmp_path / "store", crowd)

    async def bob_sends() -> dict[str, str]:
        box = Outbox(tmp_path / "out.sqlite3")
        engine = SyncEngine(LocalStorage(tmp_path / "store"), outbox=box, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            # Bob's app read all of Alice's rows (her join, "hello" and E)
            assert [a.event.sender_key for a in room.result.timeline].count(ktext(1)) == 3
            sent = await engine.send(ROOM, BOB, key(2), [("m.room.message", {"body": "ok"})])
            assert await engine.flush(60)  # Bob's message is in storage
            return dict(sent[0].raw[WITNESS_FIELD])
        finally:
            await engine.close()
            box.close()

    witness = asyncio.run(bob_sends())
    # The provider deletes Alice's newest message.
    (tmp_path / "store" / newest).unlink()

    async def fresh_read() -> list[Kind]:
        engine = SyncEngine(LocalStorage(tmp_path / "store"), config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)  # as `verify` reads
            assert room.result is not None
            return [f.kind for f in room.result.errors]
        finally:
            await engine.close()

    errors = asyncio.run(fresh_read())
    assert Kind.TRUNCATED_CHAIN in errors, (
        f"Bob read Alice's newest message and wrote after it, yet its deletion is not "
        f"reported: Bob's witness named {len(witness)} chains, "
        f"{'including' if ktext(1) in witness else 'not'} Alice's; errors {errors}"
    )


def _bob_sends(tmp_path: Path) -> dict[str, str]:
    """Bob's app, started afresh, sends once: the witness it signed."""

    async def go() -> dict[str, str]:
        box = Outbox(tmp_path / "out.sqlite3")
        engine = SyncEngine(LocalStorage(tmp_path / "store"), outbox=box, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            sent = await engine.send(ROOM, BOB, key(2), [("m.room.message", {"body": "ok"})])
            assert await engine.flush(60)
            return dict(sent[0].raw[WITNESS_FIELD])
        finally:
            await engine.close()
            box.close()

    return asyncio.run(go())


@pytest.mark.parametrize("crowd", [0, CROWD], ids=["control-no-crowd", "crowd-of-64-keys"])
def test_a_crowd_dated_before_bobs_last_message_does_not_hide_it_either(
    tmp_path: Path, crowd: int
) -> None:
    """The crowd's rows dated before Bob's last message (a writer dates its own rows), so
    their keys look as old as Alice's: what still puts Alice's chain first is that Bob's
    own earlier message, signed by his key, named it — no storage can add a key there."""
    root = tmp_path / "store"

    async def before() -> None:
        store = LocalStorage(root)
        clock = iter(range(T0, T0 + 100_000))
        alice = RoomWriter(store, ROOM, ALICE, key(1), clock=lambda: next(clock))
        await alice.write_metadata("Team", "2025-09-14T12:00:45.000Z")
        await alice.send([Draft.text("hello")])

    asyncio.run(before())
    first = _bob_sends(tmp_path)  # Bob's app, dated by this computer's clock: now
    assert ktext(1) in first

    async def after() -> str:
        store = LocalStorage(root)
        clock = iter(range(T0 + 1000, T0 + 100_000))  # all of it dated before Bob's "ok"
        alice = RoomWriter(store, ROOM, ALICE, key(1), clock=lambda: next(clock))
        newest, _ = await alice.send([Draft.text("pay account 123, not 456")])
        for n in range(crowd):
            junk = RoomWriter(
                store, ROOM, f"x{n}@example.net", key(100 + n), clock=lambda: next(clock)
            )
            await junk.send([Draft.text(".")])
        return newest

    newest = asyncio.run(after())
    witness = _bob_sends(tmp_path)
    assert ktext(1) in witness, f"Alice's chain left out of a witness of {len(witness)}"
    (root / newest).unlink()

    async def fresh_read() -> list[Kind]:
        engine = SyncEngine(LocalStorage(root), config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return [f.kind for f in room.result.errors]
        finally:
            await engine.close()

    assert Kind.TRUNCATED_CHAIN in asyncio.run(fresh_read())


@pytest.mark.parametrize("crowd", [0, CROWD], ids=["control-no-crowd", "crowd-of-64-keys"])
def test_a_send_from_what_the_device_cached_is_not_crowded_either(
    tmp_path: Path, crowd: int
) -> None:
    """``bucket-chat send`` does not open the room: it witnesses from the rows this
    device cached when it last read the room (``witness_order_of``), ranked alike."""
    newest = _build(tmp_path / "store", crowd)
    db = tmp_path / "index.sqlite3"

    async def bob_reads_then_sends() -> dict[str, str]:
        engine = SyncEngine(LocalStorage(tmp_path / "store"), index=Index.open(db), config=QUIET)
        try:  # Bob's device reads the room (``bucket-chat sync``), E and the crowd
            await engine.open_room(ROOM, background=False)
        finally:
            await engine.close()
        box = Outbox(tmp_path / "out.sqlite3")
        engine = SyncEngine(
            LocalStorage(tmp_path / "store"), outbox=box, index=Index.open(db), config=QUIET
        )
        try:  # then sends, without opening the room
            sent = await engine.send(ROOM, BOB, key(2), [("m.room.message", {"body": "ok"})])
            assert ROOM not in engine.rooms
            assert await engine.flush(60)
            return dict(sent[0].raw[WITNESS_FIELD])
        finally:
            await engine.close()
            box.close()

    witness = asyncio.run(bob_reads_then_sends())
    assert ktext(1) in witness, f"Alice's chain left out of a witness of {len(witness)}"
    (tmp_path / "store" / newest).unlink()

    async def fresh_read() -> list[Kind]:
        engine = SyncEngine(LocalStorage(tmp_path / "store"), config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return [f.kind for f in room.result.errors]
        finally:
            await engine.close()

    assert Kind.TRUNCATED_CHAIN in asyncio.run(fresh_read())
