"""Flake101: each ``RoomLoaded`` and ``EventsAppended`` says when the engine read from
storage what its result holds (``read_ms``), and an audit that read nothing (a re-audit
of the rows held, a pass's final audit told after a wake-up) keeps the clock of the
read before it. The app and ``sync --follow`` weigh how far the room was read by it
(``unread.seen_place``): by the clock of the delivery, a re-audit told after a sleep
made a row dated ahead when read count as read (red team rt101)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from test_reaudit_pacing import ALICE, CREATED, QUIET, ROOM, plant

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import keeper
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.writer import RoomWriter

ASLEEP_MS = 40 * 60_000


def test_a_re_audit_after_a_wake_up_keeps_the_clock_of_the_read_and_a_read_moves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    seen: list[EngineEvent] = []

    def told() -> list[int]:
        return [e.read_ms for e in seen if isinstance(e, RoomLoaded | EventsAppended)]

    async def go() -> None:
        await RoomWriter(LocalStorage(root), ROOM, ALICE, SigningKey(bytes([1]) * 32)).create_room(
            "Read clock", CREATED
        )
        index = Index.open(tmp_path / "index.sqlite3")
        engine = SyncEngine(LocalStorage(root), index=index, listener=seen.append, config=QUIET)
        try:
            before = int(time.time() * 1000)
            await engine.open_room(ROOM, background=False)
            after = int(time.time() * 1000)
            read = told()
            assert read and all(before <= r <= after for r in read), (before, read, after)
            # the laptop sleeps 40 minutes; on waking, the rows held are audited again
            woke = after + ASLEEP_MS
            monkeypatch.setattr(keeper, "now_ms", lambda: int(time.time() * 1000) + ASLEEP_MS)
            del seen[:]
            await engine.reaudit(ROOM)
            assert told() == [read[-1]], "a re-audit that read nothing moved the read clock"
            # a read from storage after the wake does move it
            del seen[:]
            path, _ = plant(root, "after the wake", None, int(time.time() * 1000))
            assert await engine.fetch_segment(ROOM, path)
            room = engine.rooms[ROOM]
            if not told() and room.reaudit is not None:  # the pace owed its audit
                await room.reaudit
            assert told() and all(r >= woke for r in told()), (woke, told())
        finally:
            await engine.close()
            index.close()

    asyncio.run(go())
