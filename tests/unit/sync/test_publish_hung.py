"""A write that gets no answer holds up its own room's sends only: each room's segments
are written by a lane of the room's own (one write in flight per room, in the chain's
order), so a message in another room of the same storage is written meanwhile. Once the
storage answers, the held room's segments follow in order, each written once."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from held_storage import LIMIT, ROUNDS, AsBucket, Held, until
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import RoomWriter

HELD, OTHER = "held-room", "other-room"
ALICE = "alice@example.com"
KEY = SigningKey(bytes([1]) * 32)
CREATED = "2025-09-14T12:00:45.000Z"
# The publisher's task publishes at once; polling does not get in the way.
QUIET = dataclasses.replace(ROUNDS, active_interval=3600.0, idle_interval=3600.0)


def written(root: Path, room_id: str) -> list[str]:
    logs = root / logs_prefix(room_id)
    return sorted(p.name for p in logs.rglob("*.jsonl"))


def message(body: str) -> list[tuple[str, dict[str, str]]]:
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


def test_a_send_in_one_room_is_written_while_a_write_in_another_hangs(tmp_path: Path) -> None:
    async def go() -> None:
        root = tmp_path / "store"
        for room_id in (HELD, OTHER):
            await RoomWriter(LocalStorage(root), room_id, ALICE, KEY).create_room("R", CREATED)
        held_logs = logs_prefix(HELD)
        store = Held(root, lambda what, path: what == "put" and path.startswith(held_logs))
        index = Index.open(tmp_path / "index.sqlite3")
        box = Outbox(tmp_path / "outbox.sqlite3")
        engine = SyncEngine(AsBucket(store), index=index, outbox=box, config=QUIET)
        try:
            await engine.start()
            before = {r: written(root, r) for r in (HELD, OTHER)}
            await engine.send(HELD, ALICE, KEY, message("first, held"))
            await asyncio.wait_for(store.wait_held(), LIMIT)
            await engine.send(HELD, ALICE, KEY, message("second, after the first"))
            await engine.send(OTHER, ALICE, KEY, message("meanwhile"))

            async def other_delivered() -> bool:  # its segment, then its marker: done
                if written(root, OTHER) == before[OTHER]:
                    return False
                return all(p.room_id != OTHER for p in await engine.pending())

            await until("the other room's delivery", other_delivered)
            waiting = [p.room_id for p in await engine.pending()]
            assert waiting == [HELD, HELD]  # the other room's was delivered, marker too
            assert store.held == 1  # one write in flight in the held room, never its next
            assert written(root, HELD) == before[HELD]

            store.answering.set()  # the storage answers: the held room's follow in order
            await until("the held room's sends", lambda: box.is_empty())
            puts = [p for what, p in store.asked if what == "put" and p.startswith(held_logs)]
            assert len(puts) == len(set(puts)) == 2  # each written once
            assert len(written(root, HELD)) == len(before[HELD]) + 2
        finally:
            await engine.close()
            box.close()
            index.close()

    asyncio.run(go())
