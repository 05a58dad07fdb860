"""A room seen for the first time whose first screen came without one of its segments
(red team rt75).

The room's first audit was kept without a segment whose read was slow (the straggler
grace: a read left behind, as happens when hundreds of rooms open at once, or a storage
slow on purpose), and marked read as it was: "a room seen for the first time: nothing of
it is news yet". When the held read came in, the full audit had that old segment's
message after the marker's row, and it counted unread and was notified, though it was
written long before the session. A provider that delays a read must not make old
messages news: what such a room holds placed before the session is history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = "carol@example.com"


def seed_rooms(qtbot: Any, storage: LocalStorage, rooms: list[str], key: SigningKey) -> None:
    async def seed() -> None:
        for r in rooms:
            w = RoomWriter(storage, r, CAROL, key, displayname="Carol")
            await w.create_room(f"Room {r}", "2026-01-01T00:00:00.000Z")
            await w.send([Draft.text(f"hello in {r}")])

    wait_for(qtbot, seed(), 120_000)


def test_old_history_read_after_a_partial_first_screen_is_not_unread(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    storage = LocalStorage(root)
    carol = SigningKey(b"\x11" * 32)
    seed_rooms(qtbot, storage, ["general", "old"], carol)
    # the storage (or a busy machine opening hundreds of rooms) is slow to answer one
    # read: the message segment of "old", written long before this session
    release = asyncio.Event()
    held: list[str] = []
    original = LocalStorage.get

    async def slow_get(self: LocalStorage, path: str, **kwargs: Any) -> bytes:
        if path.startswith("rooms/old/logs/") and not release.is_set() and not held:
            held.append(path)
        if held and path == held[0] and not release.is_set():
            await release.wait()
        return await original(self, path, **kwargs)

    monkeypatch.setattr(LocalStorage, "get", slow_get)
    desk = launch(settings_for(root, ["general", "old"]))
    controller = desk.controller
    key = desk.key("old")

    def first_screen() -> bool:
        result = controller.result(key)
        return result is not None and len(result.timeline) >= 1

    qtbot.waitUntil(first_screen, timeout=30_000)
    assert held, "no read of the room was held"
    assert len(controller.result(key).timeline) == 1  # the first screen lacks the message
    release.set()
    desk.wait_loaded("old", timeout=30_000)
    qtbot.waitUntil(lambda: len(controller.result(key).timeline) == 2, timeout=30_000)
    qtbot.wait(500)
    notifier = desk.window.notifier
    assert desk.item("old").unread == 0, "old history counted as unread"
    assert not [n for n in notifier.shown if n[0] == key], "old history notified"
    # and a restart does not count it either: the marker follows the room's newest row
    hello = controller.result(key).timeline[-1].event
    assert desk.settings.read_marker(key) == (hello.event_id, hello.timestamp_ms)

    # a message written now is news as ever
    async def say() -> None:
        await RoomWriter(storage, "old", CAROL, carol, displayname="Carol").send(
            [Draft.text("written during the session")]
        )

    wait_for(qtbot, say())
    qtbot.waitUntil(lambda: desk.item("old").unread == 1, timeout=30_000)
    assert [text for k, _title, text in notifier.shown if k == key] == [
        "written during the session"
    ]
