"""A storage that does not answer holds up neither ``ChatClient.attach`` nor any room of it:
each room the user is in opens on its own, from this device's index, while its read of
the storage waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from held_storage import Held, hold_all
from nacl.signing import SigningKey

from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import client as client_module
from bucket_chat_desktop.sync.client import ChatClient, RoomRef
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded, WarmTimeline
from bucket_chat_desktop.sync.writer import RoomWriter

ALICE = "alice@example.com"
KEY = SigningKey(bytes([1]) * 32)
CREATED = "2025-09-14T12:00:45.000Z"
ROOMS = ["room-a", "room-b", "room-c"]


def test_attach_returns_at_once_and_every_cached_room_opens_while_the_storage_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    entry = StorageSettings(str(store), "Team share", list(ROOMS))
    settings = Settings(ALICE, "Alice", [entry])
    settings.last_room = f"{entry.id}/{ROOMS[0]}"  # the room the user was in: opened first
    events: list[EngineEvent] = []

    def client() -> ChatClient:
        return ChatClient(
            settings, ALICE, KEY, lambda _sid, e: events.append(e), data_dir=tmp_path / "data"
        )

    def loaded(*, complete: bool | None = None) -> set[str]:
        return {
            e.room_id
            for e in events
            if isinstance(e, RoomLoaded) and complete in (None, e.complete)
        }

    async def wait_until(done: Callable[[], bool]) -> None:
        async def poll() -> None:
            while not done():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), 5)

    async def go() -> None:
        for room_id in ROOMS:
            writer = RoomWriter(LocalStorage(store), room_id, ALICE, KEY)
            await writer.create_room(room_id.title(), CREATED)
        first = client()  # the storage answers: every room is read into the index
        await first.attach(entry)
        try:
            await wait_until(lambda: loaded(complete=True) == set(ROOMS))
        finally:
            await first.close()

        events.clear()
        hung = Held(store, hold_all)  # no read gets an answer any more
        monkeypatch.setattr(client_module, "open_storage", lambda spec: hung)
        second = client()
        try:
            await asyncio.wait_for(second.attach(entry), 1)  # at once, nothing read yet
            # Every room shows what the index has: its newest rows, then its ledger
            # rebuilt; and each asks for its metadata, none waiting for another's answer.
            await wait_until(lambda: loaded() == set(ROOMS))
            warmed = {e.room_id for e in events if isinstance(e, WarmTimeline)}
            assert warmed == set(ROOMS)
            # (The poller's first look at the activity markers waits too.)
            metadata = [f"rooms/{r}/metadata.json" for r in ROOMS]
            await wait_until(lambda: sorted(p for w, p in hung.asked if w == "get") == metadata)
            for room_id in ROOMS:
                assert await second.room_name(RoomRef(entry.id, room_id)) == (room_id.title())
        finally:
            await asyncio.wait_for(second.close(), 5)

    asyncio.run(go())


def test_a_storage_detached_at_once_leaves_no_room_opening_behind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``attach`` returns with its rooms still opening: a ``detach`` right after (a storage
    removed as soon as it was added) stops those opens with the engine, instead of
    leaving them to run into an engine shut down under them (an error logged per room)."""
    store = tmp_path / "store"
    entry = StorageSettings(str(store), "Team share", list(ROOMS))
    settings = Settings(ALICE, "Alice", [entry])

    async def go() -> None:
        for room_id in ROOMS:
            writer = RoomWriter(LocalStorage(store), room_id, ALICE, KEY)
            await writer.create_room(room_id.title(), CREATED)
        client = ChatClient(settings, ALICE, KEY, lambda _sid, _e: None, data_dir=tmp_path / "d")
        try:
            await client.attach(entry)
            await asyncio.wait_for(client.detach(entry.id), 5)
            me = asyncio.current_task()
            opening = [t for t in asyncio.all_tasks() if t is not me]
            assert [t.get_name() for t in opening] == []  # nothing of that storage runs on
        finally:
            await asyncio.wait_for(client.close(), 5)

    with caplog.at_level("WARNING", logger="bucket_chat"):
        asyncio.run(go())
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
