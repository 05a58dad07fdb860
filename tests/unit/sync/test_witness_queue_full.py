"""Red team rt104: the storage provider keeps the witness queue full (1,024 chains left
out longest), so a newcomer's chain found unnamed later is cut from it at every send and
never named by this device's witness.

``Publisher._witness`` keeps the first ``WITNESS_QUEUE_KEPT`` chains left out (oldest
turn first) and a chain beyond them "is found anew at the next send" — with the newest
turn, behind the whole queue again. Each send frees 64 places; the provider fills them
with 64 chains moved after the newcomer that rank ahead of her within that turn (chains
this key's witness named at its last send rank first, kind 1). So 1,088 made-up ids
once, then 64 rows per send, keep Carol out of every witness of Bob's for good:
docs/SECURITY.md says a chain left out waits and "whatever is planted or moved after
that queues behind it". Fixed: within a turn, the chains this engine never named are
kept before those it named that moved again (``Publisher._witness``)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import WITNESS_FIELD
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.publisher import MAX_WITNESS, WITNESS_QUEUE_KEPT
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
BOB = "bob@example.com"
T0 = 1757851245000
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
CROWD = WITNESS_QUEUE_KEPT + MAX_WITNESS  # fills the queue at one send
SENDS_AFTER = WITNESS_QUEUE_KEPT // MAX_WITNESS + 4  # a FIFO drains the queue by then


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def junk_key(n: int) -> SigningKey:
    return SigningKey(hashlib.sha256(b"rt104-junk-%d" % n).digest())


def ktext(k: SigningKey) -> str:
    return b64encode(bytes(k.verify_key))


def test_a_full_witness_queue_keeps_a_newcomer_out_of_every_witness(tmp_path: Path) -> None:
    root = tmp_path / "store"
    now = int(time.time() * 1000) + 5_000
    later = iter(range(now, now + 10_000_000))

    def clock() -> int:
        return next(later)

    async def go() -> tuple[list[dict[str, str]], list[bool]]:
        store = LocalStorage(root)
        old = iter(range(T0, T0 + 100_000))
        alice = RoomWriter(store, ROOM, "alice@example.com", key(1), clock=lambda: next(old))
        await alice.write_metadata("Team", "2025-09-14T12:00:45.000Z")
        await alice.send([Draft.text("hello")])
        box = Outbox(tmp_path / "out.sqlite3")
        engine = SyncEngine(LocalStorage(root), outbox=box, config=QUIET)
        witnesses: list[dict[str, str]] = []
        queued: list[bool] = []
        carol_key = ktext(key(3))

        async def bob_sends() -> dict[str, str]:
            await engine.refresh(ROOM)
            sent = await engine.send(ROOM, BOB, key(2), [("m.room.message", {"body": "ok"})])
            assert await engine.flush(60)
            return dict(sent[0].raw.get(WITNESS_FIELD, {}))

        try:
            await engine.open_room(ROOM, background=False)
            assert ktext(key(1)) in await bob_sends()
            # the provider: 1,088 made-up ids (a key each), read before Carol writes
            junk = {}
            for n in range(CROWD):
                w = RoomWriter(store, ROOM, f"x{n}@example.net", junk_key(n), clock=clock)
                await w.load_head()  # none: a fresh key (found before the room fills)
                junk[ktext(junk_key(n))] = w
            for w in junk.values():
                await w.send([Draft.text(".")])
            last = await bob_sends()  # names 64 of them, the other 1,024 queued
            carol = RoomWriter(store, ROOM, "carol@example.com", key(3), clock=clock)
            await carol.send([Draft.text("pay account 123, not 456")])
            for _ in range(SENDS_AFTER):
                for k in last:  # the 64 chains just named move again, after Carol
                    if k in junk:
                        await junk[k].send([Draft.text(".")])
                last = await bob_sends()
                witnesses.append(last)
                queue = await engine._outboxed(box.witness_queue, ROOM, ktext(key(2)))
                queued.append(carol_key in queue)
            return witnesses, queued
        finally:
            await engine.close()
            box.close()

    witnesses, queued = asyncio.run(go())
    carol = ktext(key(3))
    assert any(carol in w for w in witnesses), (
        f"Bob read Carol's message before {len(witnesses)} sends, none named her chain "
        f"(each named {sorted({len(w) for w in witnesses})} chains); in his queue after "
        f"each send: {queued}"
    )
