"""The rows a full audit shows of what arrived since the one before
(``RoomLoaded.arrived``) are handed back by the job that made that audit, as its
relations and roster are. Read later on the loop from ``RoomState.arrived``, another
full audit queued right behind it had replaced them (its ``_note_arrived`` empties the
arrivals it places): a member's new words were never told as news."""

from __future__ import annotations

import asyncio
import sys
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


def _lines_run(call: Any) -> tuple[int, Any]:
    """How many lines of Python ``call()`` runs (every frame), and what it returned."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        got = call()
    finally:
        sys.settrace(None)
    return count, got


def test_the_rows_that_arrived_are_checked_without_listing_the_whole_rooms_signatures(
    tmp_path: Path,
) -> None:
    """Reviewer: the bodies of the rows that arrived (a slim ledger's, read back from the
    index) were checked against a list of every row's signature id, made after each full
    audit to read a few of them. Only theirs are read now: the lines run to tell one
    arrival in a room of 4,000 rows are far fewer than its rows."""
    root = tmp_path / "store"

    async def go() -> None:
        await RoomWriter(LocalStorage(root), ROOM, ALICE, SigningKey(bytes([1]) * 32)).create_room(
            "Arrivals", CREATED
        )
        k = SigningKey(bytes([9]) * 32)
        prev: str | None = None
        when = int(time.time() * 1000) - 3_600_000
        for s in range(20):
            events = []
            for i in range(200):
                ev = build_event(
                    room_id=ROOM,
                    sender_id=MALLORY,
                    event_type=MESSAGE,
                    content={"body": f"note {s}.{i}", "msgtype": "m.text"},
                    timestamp_ms=when + 200 * s + i,
                    unique=str(uuid.uuid4()),
                    prev_event_hash=prev,
                    signing_key=k,
                )
                prev = ev.hash
                events.append(ev)
            path = path_for(events, client_id_for(MALLORY, bytes(k.verify_key)))
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(encode_segment(events))
        index = Index.open(tmp_path / "index.sqlite3")
        config = SyncConfig(
            batch_window=0.05, local_rescan=3600.0, active_interval=3600.0, keep_bodies=False
        )
        engine = SyncEngine(LocalStorage(root), index=index, config=config)
        try:
            await engine.open_room(ROOM, background=False)
            room = engine.rooms[ROOM]
            assert room.result is not None and not room.ledger.keeps_bodies
            timeline = room.result.timeline
            assert len(timeline) > 4_000
            newest = timeline[len(timeline) - 1]

            def tell_one() -> int:
                room.arrivals = [timeline._copy(len(timeline) - 1)]  # as if it had just arrived
                lines, _ = _lines_run(lambda: engine._keeper._note_arrived(room))
                return lines

            lines = await engine._serially(tell_one, room=ROOM)
            of, rows = room.arrived
            assert of is room.result
            assert [(at, row.event.content.get("body")) for at, row in rows] == [
                (len(timeline) - 1, newest.event.content.get("body"))
            ]
            assert lines < 1_000, f"{lines} lines run to tell one row"
        finally:
            await engine.close()
            index.close()

    asyncio.run(go())
