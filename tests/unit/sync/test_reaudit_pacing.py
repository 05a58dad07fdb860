"""Full audits forced by what others write are paced (``keeper.REAUDIT_SHARE``): a
member can make every segment they write need a full audit of the room (here: a line
that does not parse), and each of those cost about a second of the state thread at
100,000 events — one such segment a second kept it busy for good, every room's reads
and the window's requests behind it. What arrives sooner than the pace allows is kept
at once and audited later, once, with whatever else arrived meanwhile."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import HOLD_AHEAD_MS
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import keeper
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "paced-room"
ALICE, MALLORY = "alice@example.com", "mallory@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
_n = itertools.count(1)


def plant(root: Path, body: str, prev: str | None, when: int) -> tuple[str, str]:
    """A segment of mallory's: one good message and a line that does not parse (a
    ``bad-json`` finding: only a full audit takes a new finding in)."""
    k = SigningKey(bytes([9]) * 32)
    ev = build_event(
        room_id=ROOM,
        sender_id=MALLORY,
        event_type=MESSAGE,
        content={"body": body, "msgtype": "m.text"},
        timestamp_ms=when,
        unique=str(uuid.UUID(int=next(_n), version=4)),
        prev_event_hash=prev,
        signing_key=k,
    )
    path = path_for([ev], client_id_for(MALLORY, bytes(k.verify_key)))
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(encode_segment([ev]) + b"{not json\n")
    return path, ev.hash


def test_full_audits_forced_by_arrivals_are_paced_and_made_once_for_all(tmp_path: Path) -> None:
    root = tmp_path / "store"
    seen: list[EngineEvent] = []

    async def go() -> None:
        await RoomWriter(LocalStorage(root), ROOM, ALICE, SigningKey(bytes([1]) * 32)).create_room(
            "Paced", CREATED
        )
        index = Index.open(tmp_path / "index.sqlite3")
        engine = SyncEngine(LocalStorage(root), index=index, listener=seen.append, config=QUIET)
        try:
            await engine.open_room(ROOM)
            while not any(isinstance(e, RoomLoaded) and e.complete for e in seen):
                await asyncio.sleep(0.01)
            room = engine.rooms[ROOM]
            # As if its last full audit had just taken 0.4 s: the next one an arrival
            # forces waits until 1.2 s after it.
            room.audit_cost, room.audit_ended = 0.4, time.monotonic()
            before = len(seen)
            prev, when = None, int(time.time() * 1000) - 60_000
            paths = []
            for i in range(3):
                path, prev = plant(root, f"planted {i}", prev, when + i)
                paths.append(path)
                assert await engine.fetch_segment(ROOM, path)  # kept at once...
            assert room.audit_owed  # ...and its audit owed, not made: nothing said yet
            assert not [e for e in seen[before:] if isinstance(e, RoomLoaded | EventsAppended)]
            assert all(p in room.known for p in paths)
            assert await engine.timeline_length(ROOM) == 1  # alice's join only, so far

            deadline = time.monotonic() + 10
            while not [e for e in seen[before:] if isinstance(e, RoomLoaded)]:
                assert time.monotonic() < deadline, "the owed audit never came"
                await asyncio.sleep(0.02)
            (loaded,) = [e for e in seen[before:] if isinstance(e, RoomLoaded)]  # one for all
            bodies = [a.event.content.get("body") for a in loaded.result.timeline]
            assert [b for b in bodies if b] == ["planted 0", "planted 1", "planted 2"]
            bad = [f for f in loaded.result.findings if f.kind == Kind.BAD_JSON]
            assert sorted(f.path for f in bad) == sorted(paths)
            assert not room.audit_owed
            assert room.reaudit is not None
            await room.reaudit  # it ended by itself: nothing left running
        finally:
            await engine.close()
            index.close()

    asyncio.run(go())


def test_rows_coming_due_one_by_one_are_released_by_one_paced_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mallory dates her rows a second apart, an hour and more ahead: each coming due
    made a full audit of the room (the watchdog's release, every second for as long as
    she likes). Releases are paced like arrivals: those that come due sooner than the
    pace allows are shown by one audit, together. (The engine is not started: the test
    asks for each release as the watchdog does every second.)"""
    root = tmp_path / "store"
    seen: list[EngineEvent] = []
    ahead = int(time.time() * 1000) + HOLD_AHEAD_MS + 30 * 60_000

    async def go() -> None:
        await RoomWriter(LocalStorage(root), ROOM, ALICE, SigningKey(bytes([1]) * 32)).create_room(
            "Paced", CREATED
        )
        dates = iter(range(ahead, ahead + 10_000, 1000))
        mallory = RoomWriter(
            LocalStorage(root),
            ROOM,
            MALLORY,
            SigningKey(bytes([9]) * 32),
            clock=lambda: next(dates),
        )
        for i in range(3):
            await mallory.send([Draft.text(f"from the future {i}")])
        index = Index.open(tmp_path / "index.sqlite3")
        engine = SyncEngine(LocalStorage(root), index=index, listener=seen.append, config=QUIET)
        try:
            await engine.open_room(ROOM)
            while not any(isinstance(e, RoomLoaded) and e.complete for e in seen):
                await asyncio.sleep(0.01)
            room = engine.rooms[ROOM]
            held = room.ledger.held_from_ms
            assert held is not None and room.result is not None
            assert MALLORY not in {a.event.sender_id for a in room.result.timeline}
            room.audit_cost, room.audit_ended = 1.0, time.monotonic()  # next: in 3 s
            before = len(seen)
            monkeypatch.setattr(keeper, "now_ms", lambda: held - HOLD_AHEAD_MS)
            engine._keeper.release_due()  # her first row came due: its audit is put off
            assert room.releasing is not None
            await room.releasing
            assert room.audit_owed
            monkeypatch.setattr(keeper, "now_ms", lambda: ahead + 9_000 - HOLD_AHEAD_MS)
            engine._keeper.release_due()  # the rest came due: still the one owed audit
            assert room.releasing is not None
            await room.releasing
            assert room.reaudit is not None
            await asyncio.wait_for(room.reaudit, 10)
            loaded = [e for e in seen[before:] if isinstance(e, RoomLoaded)]
            assert len(loaded) == 1  # one audit for the rows that came due one by one
            shown = [a.event.sender_id for a in loaded[0].result.timeline]
            assert shown.count(MALLORY) == 4  # her join and three messages
            assert room.ledger.held_from_ms is None
        finally:
            await engine.close()
            index.close()

    asyncio.run(go())
