"""The rows a full audit shows of what arrived since the one before
(``RoomLoaded.arrived``) are handed back by the job that made that audit, as its
relations and roster are. Read later on the loop from ``RoomState.arrived``, another
full audit queued right behind it had replaced them (its ``_note_arrived`` empties the
arrivals it places): a member's new words were never told as news."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded
from bucket_chat_desktop.sync.writer import RoomWriter

ROOM = "arrivals-room"
ALICE, MALLORY = "alice@example.com", "mallory@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


def plant(root: Path, body: str, when: int) -> str:
    """A segment of Mallory's: one good message and a line that does not parse (only a
    full audit takes its finding in, so the message is placed by one)."""
    k = SigningKey(bytes([9]) * 32)
    ev = build_event(
        room_id=ROOM,
        sender_id=MALLORY,
        event_type=MESSAGE,
        content={"body": body, "msgtype": "m.text"},
        timestamp_ms=when,
        unique=str(uuid.uuid4()),
        prev_event_hash=None,
        signing_key=k,
    )
    path = path_for([ev], client_id_for(MALLORY, bytes(k.verify_key)))
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(encode_segment([ev]) + b"{not json\n")
    return path


def test_rows_that_arrived_are_told_though_another_full_audit_ran_before_the_loop_read_them(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    seen: list[EngineEvent] = []

    async def go() -> None:
        await RoomWriter(LocalStorage(root), ROOM, ALICE, SigningKey(bytes([1]) * 32)).create_room(
            "Arrivals", CREATED
        )
        index = Index.open(tmp_path / "index.sqlite3")
        engine = SyncEngine(LocalStorage(root), index=index, listener=seen.append, config=QUIET)
        keeper = engine._keeper
        real = keeper._ingest_serial
        followed: list[Any] = []

        def then_another_full_audit(room: Any, *args: Any) -> Any:
            got = real(room, *args)
            appended, result = got[0], got[2]
            if appended is None and result is not None and room.arrived[1] and not followed:
                # the next job on the state thread, before the loop reads this one's
                # answer: a full audit of its own (a row coming due, an owed audit)
                followed.append(real(room, [], None, True))
            return got

        keeper._ingest_serial = then_another_full_audit  # type: ignore[method-assign]
        try:
            await engine.open_room(ROOM)
            while not any(isinstance(e, RoomLoaded) and e.complete for e in seen):
                await asyncio.sleep(0.01)
            room = engine.rooms[ROOM]
            room.audit_cost = 0.0  # not paced: the arrival's full audit is made at once
            before = len(seen)
            path = plant(root, "new words", int(time.time() * 1000) - 60_000)
            assert await engine.fetch_segment(ROOM, path)
            assert len(followed) == 1  # the second audit ran before the loop read the first
            loaded = [e for e in seen[before:] if isinstance(e, RoomLoaded)]
            assert loaded, "the arrival's full audit was not told"
            told = [row.event.content.get("body") for _, row in loaded[0].arrived]
            assert told == ["new words"]
        finally:
            await engine.close()
            index.close()

    asyncio.run(go())
