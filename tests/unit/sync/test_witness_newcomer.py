"""Red team rt101 (fixed by fix101a: ``SendScan.witness_order``, ``Publisher._witness``):
the storage provider alone (no member's key) crowds a newcomer's chain
out of every witness, then deletes the newcomer's message without a trace.

``SendScan.witness_order`` ranks a chain first seen since this device's last send (a
newcomer, a member's new device) third, after chains whose first row is dated no later
than this device's newest event. A row's date is its writer's word, and a made-up key
for a made-up user id verifies (its key is pinned on first use): 64 throwaway chains
whose rows are backdated rank before the newcomer's, whoever planted them.
docs/SECURITY.md ("Crowding a witness") says "a member with 64 keys ... (an introduced
device's key, for each)" and "that chain waits for the next send"; the provider can do it
with no key of anyone, and once the crowd was named it ranks first at every later send."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import WITNESS_FIELD
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
T0 = 1757851245000
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
CROWD = 64


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def ktext(seed: int) -> str:
    return b64encode(bytes(key(seed).verify_key))


def _bob_sends(root: Path, box_path: Path) -> dict[str, str]:
    """Bob's app, started afresh, opens the room (reads all of it) and sends once."""

    async def go() -> dict[str, str]:
        box = Outbox(box_path)
        engine = SyncEngine(LocalStorage(root), outbox=box, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            sent = await engine.send(
                ROOM, "bob@example.com", key(2), [("m.room.message", {"body": "ok"})]
            )
            assert await engine.flush(60)
            return dict(sent[0].raw[WITNESS_FIELD])
        finally:
            await engine.close()
            box.close()

    return asyncio.run(go())


def _errors(root: Path) -> list[Kind]:
    async def go() -> list[Kind]:
        engine = SyncEngine(LocalStorage(root), config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            return [f.kind for f in room.result.errors]
        finally:
            await engine.close()

    return asyncio.run(go())


@pytest.mark.parametrize("crowd", [0, CROWD], ids=["control-no-crowd", "crowd-of-64-made-up-ids"])
def test_a_backdated_crowd_of_made_up_ids_does_not_hide_a_newcomers_deleted_message(
    tmp_path: Path, crowd: int
) -> None:
    root = tmp_path / "store"

    async def before() -> None:
        store = LocalStorage(root)
        clock = iter(range(T0, T0 + 100_000))
        alice = RoomWriter(store, ROOM, "alice@example.com", key(1), clock=lambda: next(clock))
        await alice.write_metadata("Team", "2025-09-14T12:00:45.000Z")
        await alice.send([Draft.text("hello")])

    asyncio.run(before())
    first = _bob_sends(root, tmp_path / "out.sqlite3")  # dated now, names Alice's chain
    assert ktext(1) in first

    async def carol_then_crowd() -> str:
        store = LocalStorage(root)
        now = int(time.time() * 1000) + 5_000
        later = iter(range(now, now + 100_000))
        # an honest newcomer writes after Bob's last message, on her own clock
        carol = RoomWriter(store, ROOM, "carol@example.com", key(3), clock=lambda: next(later))
        await carol.send([Draft.text("I joined")])
        newest, _ = await carol.send([Draft.text("pay account 123, not 456")])
        # the provider: made-up ids and keys, every row dated back in 2025
        old = iter(range(T0 + 1000, T0 + 100_000))
        for n in range(crowd):
            junk = RoomWriter(
                store, ROOM, f"x{n}@example.net", key(100 + n), clock=lambda: next(old)
            )
            await junk.send([Draft.text(".")])
        return newest

    newest = asyncio.run(carol_then_crowd())
    witness = _bob_sends(root, tmp_path / "out.sqlite3")  # Bob read Carol's message
    (root / newest).unlink()  # the provider deletes it
    errors = _errors(root)
    assert Kind.TRUNCATED_CHAIN in errors, (
        f"Bob read Carol's message and wrote after it; its deletion is not reported: his "
        f"witness named {len(witness)} chains, {'including' if ktext(3) in witness else 'not'} "
        f"Carol's; errors {errors}"
    )


def test_the_newcomers_chain_is_named_by_the_next_send_at_least(tmp_path: Path) -> None:
    """docs/SECURITY.md: the chain left out "waits for the next send". Once Bob's witness
    named the crowd, the crowd ranks first (named by his own witnesses) at every send:
    Bob's app started again sends twice, and Carol's chain is named by neither."""
    root = tmp_path / "store"

    async def before() -> None:
        store = LocalStorage(root)
        clock = iter(range(T0, T0 + 100_000))
        alice = RoomWriter(store, ROOM, "alice@example.com", key(1), clock=lambda: next(clock))
        await alice.write_metadata("Team", "2025-09-14T12:00:45.000Z")
        await alice.send([Draft.text("hello")])

    asyncio.run(before())
    _bob_sends(root, tmp_path / "out.sqlite3")

    async def carol_then_crowd() -> None:
        store = LocalStorage(root)
        now = int(time.time() * 1000) + 5_000
        later = iter(range(now, now + 100_000))
        carol = RoomWriter(store, ROOM, "carol@example.com", key(3), clock=lambda: next(later))
        await carol.send([Draft.text("pay account 123, not 456")])
        old = iter(range(T0 + 1000, T0 + 100_000))
        for n in range(CROWD):
            junk = RoomWriter(
                store, ROOM, f"x{n}@example.net", key(100 + n), clock=lambda: next(old)
            )
            await junk.send([Draft.text(".")])

    asyncio.run(carol_then_crowd())
    witnesses = [_bob_sends(root, tmp_path / "out.sqlite3") for _ in range(2)]
    assert any(ktext(3) in w for w in witnesses), [len(w) for w in witnesses]
