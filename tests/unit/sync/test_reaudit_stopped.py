"""An audit owed for what arrived (``keeper.REAUDIT_SHARE``) is a task of the room's: a
room left (``drop_room``) or an engine closed while it waits stops it, nothing of it is
logged as an error, and the room joined again shows what had arrived."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from test_reaudit_pacing import ALICE, CREATED, QUIET, ROOM, plant

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent
from bucket_chat_desktop.sync.writer import RoomWriter


@pytest.mark.parametrize("how", ["drop_room", "close"])
def test_an_owed_audit_is_stopped_with_its_room_and_the_room_reopened_shows_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    root = tmp_path / "store"
    seen: list[EngineEvent] = []
    caplog.set_level(logging.WARNING)

    async def go() -> None:
        await RoomWriter(LocalStorage(root), ROOM, ALICE, SigningKey(bytes([1]) * 32)).create_room(
            "Paced", CREATED
        )
        index = Index.open(tmp_path / "index.sqlite3")
        engine = SyncEngine(LocalStorage(root), index=index, listener=seen.append, config=QUIET)
        closed = False
        try:
            await engine.open_room(ROOM, background=False)
            room = engine.rooms[ROOM]
            room.audit_cost, room.audit_ended = 3600.0, time.monotonic()  # owed for hours
            path, _ = plant(root, "planted", None, int(time.time() * 1000) - 60_000)
            assert await engine.fetch_segment(ROOM, path)
            assert room.audit_owed and room.reaudit is not None and not room.reaudit.done()
            task = room.reaudit
            if how == "drop_room":
                await engine.drop_room(ROOM)
                assert task.done()
                again = await engine.open_room(ROOM, background=False)
                assert again is not room and again.result is not None
                bodies = [a.event.content.get("body") for a in again.result.timeline]
                assert "planted" in bodies
                assert not again.audit_owed
            else:
                await engine.close()
                closed = True
                assert task.done()
        finally:
            if not closed:
                await engine.close()
            index.close()

    asyncio.run(go())
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not any("Task was destroyed" in r.getMessage() for r in caplog.records)
