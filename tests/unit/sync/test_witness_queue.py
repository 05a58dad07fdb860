"""What a witness names when more chains moved than it can name (fix101a, red team rt101).

A witness names at most 64 chains (PROTOCOL.md section 6.1). Which chains moved is read
from this key's own witnesses in the room's history, so a restart does not spend places
on chains named already; and a chain left out waits in a queue kept by this device, in
the order it found chains unnamed, so rows a provider makes after it (even for chains
this key named before) queue behind it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import WITNESS_FIELD
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
BOB = "bob@example.com"
T0 = 1757851245000
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
CROWD = 64


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def ktext(seed: int) -> str:
    return b64encode(bytes(key(seed).verify_key))


async def _alice(root: Path) -> None:
    clock = iter(range(T0, T0 + 100_000))
    alice = RoomWriter(
        LocalStorage(root), ROOM, "alice@example.com", key(1), clock=lambda: next(clock)
    )
    await alice.write_metadata("Team", "2025-09-14T12:00:45.000Z")
    await alice.send([Draft.text("hello")])


async def _send(engine: SyncEngine) -> dict[str, str]:
    sent = await engine.send(ROOM, BOB, key(2), [("m.room.message", {"body": "ok"})])
    assert await engine.flush(60)
    return dict(sent[0].raw.get(WITNESS_FIELD, {}))  # none when nothing moved


def _bob_sends(root: Path, box_path: Path) -> dict[str, str]:
    """Bob's app, started afresh, opens the room and sends once: the witness it signed."""

    async def go() -> dict[str, str]:
        box = Outbox(box_path)
        engine = SyncEngine(LocalStorage(root), outbox=box, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            return await _send(engine)
        finally:
            await engine.close()
            box.close()

    return asyncio.run(go())


def test_a_chain_named_already_is_not_named_again_after_a_restart(tmp_path: Path) -> None:
    """The chains Bob's witnesses named are read from the room: a restart (or
    ``bucket-chat send``, a new process each time) no longer begins with an empty record
    and names every chain again, 64 places spent on chains that did not move."""
    root = tmp_path / "store"
    asyncio.run(_alice(root))
    first = _bob_sends(root, tmp_path / "out.sqlite3")
    assert ktext(1) in first
    again = _bob_sends(root, tmp_path / "out.sqlite3")
    assert ktext(1) not in again, "Alice's chain did not move, yet it was named again"


@pytest.mark.parametrize("restart", [False, True], ids=["one-run", "restarted-before-each-send"])
def test_a_chain_left_out_is_named_at_the_next_send_whatever_moves_meanwhile(
    tmp_path: Path, restart: bool
) -> None:
    """Carol joins, then the provider plants 64 made-up ids dated after her: read at
    once with hers, dates are all that orders them, so Bob's next witness names the
    crowd and not Carol. The provider then moves all 64 chains again — chains Bob's
    witness has named now, which rank ahead of a key never named. Carol has waited
    since that send and the crowd's new rows were found after it: she is named now, in
    the same run or after a restart (the queue is kept in the outbox, as it is for
    ``bucket-chat send``, a process of its own each time)."""
    root = tmp_path / "store"
    asyncio.run(_alice(root))
    now = int(time.time() * 1000) + 5_000
    later = iter(range(now, now + 100_000))

    def clock() -> int:
        return next(later)

    async def crowd_writes(store: LocalStorage, junk: list[RoomWriter]) -> None:
        if not junk:
            junk.extend(
                RoomWriter(store, ROOM, f"x{n}@example.net", key(100 + n), clock=clock)
                for n in range(CROWD)
            )
        for writer in junk:
            await writer.send([Draft.text(".")])

    async def go() -> list[dict[str, str]]:
        store = LocalStorage(root)
        witnesses: list[dict[str, str]] = []
        running: list[tuple[SyncEngine, Outbox]] = []

        async def start() -> SyncEngine:
            box = Outbox(tmp_path / "out.sqlite3")
            engine = SyncEngine(LocalStorage(root), outbox=box, config=QUIET)
            running.append((engine, box))
            await engine.open_room(ROOM, background=False)
            return engine

        async def stop() -> None:
            engine, box = running.pop()
            await engine.close()
            box.close()

        async def read_then_send() -> None:
            if restart:
                await stop()
                engine = await start()
            else:
                engine = running[-1][0]
                await engine.refresh(ROOM)
            witnesses.append(await _send(engine))

        try:
            witnesses.append(await _send(await start()))  # names Alice
            carol = RoomWriter(store, ROOM, "carol@example.com", key(3), clock=clock)
            await carol.send([Draft.text("pay account 123, not 456")])
            junk: list[RoomWriter] = []
            await crowd_writes(store, junk)
            await read_then_send()
            await crowd_writes(store, junk)  # every chain of the crowd moves again
            await read_then_send()
            return witnesses
        finally:
            while running:
                await stop()

    first, crowded, after = asyncio.run(go())
    assert ktext(1) in first
    assert len(crowded) == CROWD and ktext(3) not in crowded  # the attack's first step
    assert ktext(3) in after, (
        f"Carol's chain waited since the last send, yet the witness named "
        f"{sum(k in crowded for k in after)} crowd chains found after it and not hers"
    )


def test_a_send_refused_names_nobody_so_the_next_one_does(tmp_path: Path) -> None:
    """A send refused before it is queued (a message too large to sign) carries no
    witness: the chains it would have named are still untold, and Bob's next send in the
    same run names them (they were marked told before, and waited until they moved)."""
    root = tmp_path / "store"
    asyncio.run(_alice(root))

    async def go() -> dict[str, str]:
        box = Outbox(tmp_path / "out.sqlite3")
        engine = SyncEngine(LocalStorage(root), outbox=box, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            huge = [("m.room.message", {"body": "x" * 300_000})]
            with pytest.raises(ValueError):
                await engine.send(ROOM, BOB, key(2), huge)
            return await _send(engine)
        finally:
            await engine.close()
            box.close()

    assert ktext(1) in asyncio.run(go()), "Alice's chain, never named, left out"
