"""Review rev1, point 2: ``bucket-chat send`` wiped a chain's place in the witness's queue.

The witness's queue (fix101a, red team rt101) keeps, in the outbox, each chain a send left
out, so that the next send names it first. ``bucket-chat send`` does not open the room: it
ranks chains over the newest 500 rows this device cached (``WITNESS_ROWS``), and a queued
chain missing from them was taken as "named meanwhile" and dropped. Anyone who writes 500
rows after Carol's last one made each command-line send forget her, and 64 chains moved
again before each send kept her out of every witness: the rt101 attack again, for a device
that only sends from the command line.

``bucket-chat`` runs in-process (``test_cli_devices``'s ``cli``: one home per device over a
shared folder); Carol, the crowd and the flood write with ``RoomWriter``, dated after
Bob's sends."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from nacl.signing import SigningKey
from test_cli_devices import BOB, ROOM, Cli, alice_room, cli, env, store

from bucket_chat_desktop.protocol.audit import WITNESS_FIELD
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

__all__ = ["alice_room", "cli", "env", "store"]  # fixtures, used by name

CROWD = 64  # chains one witness names at most
FLOOD = 520  # rows after Carol's: more than the 500 a command-line send ranks


def _key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def _ktext(seed: int) -> str:
    return b64encode(bytes(_key(seed).verify_key))


def _witness_of(store: Path, event_id: str) -> dict[str, str]:
    """The witness of the stored event ``event_id`` (empty: it named none)."""
    for path in store.rglob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            raw = json.loads(line)
            if raw.get("event_id") == event_id:
                return dict(raw.get(WITNESS_FIELD, {}))
    raise AssertionError(f"{event_id} is not in the storage")


def _bob_reads_then_sends(cli: Cli, store: Path, text: str) -> dict[str, str]:
    """Bob's device reads the room into its index, then ``bucket-chat send``: the
    witness its event signed."""
    r = cli(None, "sync", "--room-id", ROOM, device="bob")
    assert r.code == 0, r
    return _witness_of(store, cli(BOB, "send", "--room-id", ROOM, text, device="bob").sent)


def test_a_chain_left_out_keeps_its_place_behind_a_flood_of_500_rows(
    cli: Cli, store: Path, alice_room: str
) -> None:
    assert cli(BOB, "setup-keys", device="bob").code == 0
    assert _ktext(3) not in _bob_reads_then_sends(cli, store, "hi")  # Bob joins
    later = iter(range(int(time.time() * 1000) + 5_000, 2**62))
    crowd: list[RoomWriter] = []

    def clock() -> int:
        return next(later)

    async def carol_then_crowd() -> None:
        storage = LocalStorage(store)
        carol = RoomWriter(storage, ROOM, "carol@example.com", _key(3), clock=clock)
        await carol.send([Draft.text("pay account 123, not 456")])
        if not crowd:
            crowd.extend(
                RoomWriter(storage, ROOM, f"x{n}@example.net", _key(100 + n), clock=clock)
                for n in range(CROWD)
            )
        for writer in crowd:
            await writer.send([Draft.text(".")])

    async def flood() -> None:
        writer = RoomWriter(LocalStorage(store), ROOM, "f@example.net", _key(99), clock=clock)
        for _ in range(FLOOD // 40):
            await writer.send([Draft.text(".")] * 40)

    asyncio.run(carol_then_crowd())
    crowded = _bob_reads_then_sends(cli, store, "one")
    assert len(crowded) == CROWD and _ktext(3) not in crowded  # Carol waits: queued
    asyncio.run(flood())
    flooded = _bob_reads_then_sends(cli, store, "two")  # Carol is not among its 500 rows
    assert _ktext(99) in flooded and _ktext(3) not in flooded
    # Carol writes again and the crowd moves again after her: ranked by dates alone,
    # the crowd comes first; Carol has waited since Bob's send "one".
    asyncio.run(carol_then_crowd())
    after = _bob_reads_then_sends(cli, store, "three")
    assert _ktext(3) in after, (
        f"Carol's chain waited since the send before the flood, yet the witness named "
        f"{sum(k in after for k in crowded)} crowd chains and not hers"
    )
