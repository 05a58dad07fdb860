"""An introduction of this device dated ahead is offered ("another device offers to
introduce this one") only once readers show it (PROTOCOL.md section 9): one dated more
than ``HOLD_AHEAD_MS`` ahead is held back by every reader, so offering it at once would
let a member time a fake offer. Through the real engine, each way a send finds the
offers: the room read and open here, the room read by an earlier run and kept in the
index (the CLI), and a room never read here (its segments read for the chain's head)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, IntroductionOffered
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
ALICE = "alice@example.com"
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
LAPTOP = SigningKey(b"\x01" * 32)  # this device: it never wrote in the room
LATER = SigningKey(b"\x02" * 32)  # claims to have introduced it, dated 2 h ahead
SOON = SigningKey(b"\x03" * 32)  # claims it too, dated a minute ahead
HELLO = {"body": "hi", "msgtype": "m.text"}


def _plant(root: Path, claimer: SigningKey, at_ms: int) -> str:
    """A signed statement by ``claimer`` under Alice's name introducing the laptop."""
    ev = build_event(
        room_id=ROOM,
        sender_id=ALICE,
        event_type=MEMBER,
        content={"membership": "join", "add_device_key": b64encode(bytes(LAPTOP.verify_key))},
        timestamp_ms=at_ms,
        unique=str(uuid.uuid4()),
        prev_event_hash=None,
        signing_key=claimer,
    )
    path = root / path_for([ev], client_id_for(ALICE, bytes(claimer.verify_key)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment([ev]))
    return b64encode(bytes(claimer.verify_key))


@pytest.mark.parametrize("way", ["open", "index", "storage"])
def test_an_introduction_dated_ahead_is_not_offered_before_its_time(
    tmp_path: Path, way: str
) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    bob = RoomWriter(store, ROOM, "bob@example.com", SigningKey(b"\x09" * 32))
    asyncio.run(bob.write_metadata(ROOM, "2025-09-14T12:00:45.000Z"))
    asyncio.run(bob.send([Draft.text("hello")]))
    now = int(time.time() * 1000)
    _plant(root, LATER, now + 2 * 3_600_000)  # held back by every reader for an hour
    soon = _plant(root, SOON, now + 60_000)  # shown (within the hour): offered
    events: list[EngineEvent] = []

    def engine(outbox: str) -> SyncEngine:
        index = Index.open(tmp_path / "index.sqlite3") if way != "storage" else None
        return SyncEngine(
            store,
            index=index,
            outbox=Outbox(tmp_path / outbox),
            listener=events.append,
            config=QUIET,
        )

    async def scenario() -> None:
        if way == "index":  # an earlier run read the room whole (the CLI's read, or sync)
            reading = engine("read.sqlite3")
            try:
                await reading.open_room(ROOM, background=False)
                assert reading.index is not None and reading.index.room(ROOM)["history_complete"]
            finally:
                await reading.close()
            events.clear()
        sending = engine("out.sqlite3")
        try:
            if way == "open":
                await sending.open_room(ROOM, background=False)
            else:
                await sending.start()
            await sending.send(ROOM, ALICE, LAPTOP, [(MESSAGE, HELLO)])
            assert (ROOM in sending.rooms) == (way == "open")  # else: not read by this run
        finally:
            await sending.close()

    asyncio.run(scenario())
    told = [e.introducers for e in events if isinstance(e, IntroductionOffered)]
    assert told == [(soon,)]
