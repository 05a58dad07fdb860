"""``ChatClient.count_unread`` on a real folder and engine: the count after a read
marker runs on the engine's state thread and answers a frozen value; a storage not
attached answers None."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.signing import public_key_text
from bucket_chat_desktop.protocol.unread import ReadMarker, UnreadCount
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.sync.client import ChatClient, RoomRef
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded

ALICE = "alice@example.com"


def test_count_unread_runs_on_the_engine_and_answers_a_frozen_value(tmp_path: Path) -> None:
    (tmp_path / "share").mkdir()
    entry = StorageSettings(str(tmp_path / "share"), "Share", [])
    events: list[EngineEvent] = []
    key = SigningKey(bytes(range(32)))
    client = ChatClient(
        Settings(ALICE, "Alice", [entry]),
        ALICE,
        key,
        lambda _sid, event: events.append(event),
        data_dir=tmp_path / "data",
    )

    async def scenario() -> list[UnreadCount | None]:
        await client.attach(entry)
        try:
            ref = await client.create_room(entry.id, "plans", "Plans")
            (seen,) = await client.send_text(ref, "read up to here")
            for i in range(3):
                await client.send_text(ref, f"later {i}")
            await client._storages[entry.id].engine.flush(5)
            await client.open_room(ref)
            while not any(isinstance(e, RoomLoaded) and e.complete for e in events):
                await asyncio.sleep(0.01)
            view = await client.room_view(ref)
            assert view is not None and view.result is not None
            marker = ReadMarker(seen.event_id, seen.timestamp_ms)
            mine = public_key_text(key)
            return [
                await client.count_unread(ref, view.result, view.relations, marker, "other"),
                await client.count_unread(ref, view.result, view.relations, marker, mine),
                await client.count_unread(
                    RoomRef("gone", "plans"), view.result, view.relations, marker, mine
                ),
            ]
        finally:
            await client.close()

    others, own, detached = asyncio.run(scenario())
    assert others is not None and (others.count, others.found) == (3, True)
    assert own == UnreadCount(0, "", True)  # this device's messages are never unread
    assert detached is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        others.count = 0  # type: ignore[misc]
