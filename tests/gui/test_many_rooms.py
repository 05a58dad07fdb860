"""A user in many rooms: a burst of key doubts over them (red team rt75).

An impostor writes as Carol, with a new key, in every room she is in, so each room's
doubted keys change (``Roster.doubted_keys``). The controller pushed every storage's
doubts to every room at each change: N rooms cost N² preview warnings and N² "every row
changed" signals on the GUI thread (300 rooms: 90,000 of each, 2.5-3.2 s of GUI time over
the burst). A room's change now tells only the rooms whose view of those keys changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.models.timeline_model import Roles, TimelineModel
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = "carol@example.com"
ROOMS = 60


def seed_rooms(qtbot: Any, storage: LocalStorage, rooms: list[str], key: SigningKey) -> None:
    async def seed() -> None:
        for r in rooms:
            w = RoomWriter(storage, r, CAROL, key, displayname="Carol")
            await w.create_room(f"Room {r}", "2026-01-01T00:00:00.000Z")
            await w.send([Draft.text(f"hello in {r}")])

    wait_for(qtbot, seed(), 120_000)


def test_a_burst_of_doubts_over_many_rooms_costs_the_gui_linear_work(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    storage = LocalStorage(root)
    rooms = [f"room-{i:03d}" for i in range(ROOMS)]
    seed_rooms(qtbot, storage, rooms, SigningKey(b"\x11" * 32))
    desk = launch(settings_for(root, rooms))
    desk.wait_loaded(*rooms, timeout=120_000)
    controller = desk.controller

    previews = 0
    original = Controller._preview_warning

    def counted(self: Controller, *args: Any) -> str:
        nonlocal previews
        previews += 1
        return original(self, *args)

    monkeypatch.setattr(Controller, "_preview_warning", counted)
    every_row = 0

    def on_changed(_top: Any, _bottom: Any, roles: Any = ()) -> None:
        nonlocal every_row
        if int(Roles.SenderWarning) in list(roles or ()):
            every_row += 1

    models: list[TimelineModel] = [desk.model(r) for r in rooms]
    for model in models:
        model.dataChanged.connect(on_changed)
    controller.set_window_active(False)

    impostor = SigningKey(b"\x4d" * 32)

    async def burst() -> None:
        for r in rooms:
            w = RoomWriter(storage, r, CAROL, impostor, displayname="Carol")
            await w.send([Draft.text(f"Carol here, new laptop ({r})")])

    wait_for(qtbot, burst(), 120_000)

    def doubted_everywhere() -> bool:
        return all(controller._rooms[desk.key(r)].doubted for r in rooms)

    qtbot.waitUntil(doubted_everywhere, timeout=120_000)
    # Each room's doubts changed once: work proportional to the rooms is expected, work
    # proportional to the rooms squared is what scales badly (300 rooms: 90,000 each).
    assert previews <= 6 * ROOMS, f"{previews} preview warnings for {ROOMS} rooms"
    assert every_row <= 6 * ROOMS, f"{every_row} every-row change signals for {ROOMS} rooms"
    # and what they say is right: every room's newest row (the impostor's) and preview
    # name another room that does not trust that key for Carol
    for r, model in zip(rooms, models, strict=True):
        warning = model.data(model.index(model.rowCount() - 1), Roles.SenderWarning)
        assert warning and "room-" in warning and f"({r})" not in warning, (r, warning)
        assert "not trusted for this sender in the room" in desk.item(r).preview_warning
