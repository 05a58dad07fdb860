"""A room nobody looks at does not take the GUI thread: the real app (controller, window,
engine) on a real folder. A long room's new audit that arrives while another room is
shown is applied to its timeline model when it is shown (with what arrived meanwhile),
not while the person reads elsewhere (docs/SCHEDULING.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run, shot  # tests/gui/conftest.py
from desk import preview_line
from nacl.signing import SigningKey

from bucket_chat_desktop.gui import controller as controller_module
from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.models.timeline_model import TimelineModel
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

LONG, SHORT = "long-room", "short-room"
ALICE = SigningKey(b"\x01" * 32)
BOB = SigningKey(b"\x02" * 32)
CREATED = "2025-09-14T12:00:45.000Z"


def bodies(model: TimelineModel) -> list[str]:
    return [str(model.data(model.index(r))) for r in range(model.rowCount())]


async def build(store: Path) -> None:
    storage = LocalStorage(store)
    for room in (LONG, SHORT):
        await RoomWriter(storage, room, "alice@example.com", ALICE).write_metadata(room, CREATED)
    await RoomWriter(storage, SHORT, "alice@example.com", ALICE).send([Draft.text("short one")])
    bob = RoomWriter(storage, LONG, "bob@example.com", BOB)
    for i in range(12):
        await bob.send([Draft.text(f"long {i}")])


@pytest.fixture
def started(
    qtbot: Any, qloop: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Controller, MainWindow, str, str, Path]]:
    # "Long" here is 12 messages (the app's threshold is thousands): the same path.
    monkeypatch.setattr(controller_module, "DEFER_ROWS", 5)
    store = tmp_path / "store"
    run(build(store), qtbot)
    entry = StorageSettings(str(store), "Team share", [SHORT, LONG])
    short, long = f"{entry.id}/{SHORT}", f"{entry.id}/{LONG}"
    settings = Settings("alice@example.com", "Alice", [entry], last_room=short)
    controller = Controller(settings, Identity("alice@example.com", ALICE))
    window = MainWindow(controller)
    qtbot.addWidget(window)
    window.resize(900, 600)
    window.show()
    controller.start()
    try:
        yield controller, window, short, long, store
    finally:
        run(controller.shutdown(), qtbot)


def test_a_long_rooms_audit_waits_to_be_shown_with_what_arrived_meanwhile(
    qtbot: Any, started: tuple[Controller, MainWindow, str, str, Path], tmp_path: Path
) -> None:
    controller, window, short, long, store = started
    qtbot.waitUntil(lambda: controller.current == short, timeout=15_000)
    # the long room is read in the background: its audit reaches the controller (the
    # room list shows its preview) but its timeline model is left as it was
    qtbot.waitUntil(lambda: controller.result(long) is not None, timeout=15_000)
    qtbot.waitUntil(lambda: preview_line(controller.rooms.item(long)) != "", timeout=15_000)
    assert controller.timeline(long).rowCount() == 0
    # a message arriving meanwhile is kept for later too
    bob = RoomWriter(LocalStorage(store), LONG, "bob@example.com", BOB)
    run(bob.send([Draft.text("arrived meanwhile")]), qtbot)
    qtbot.waitUntil(
        lambda: "arrived meanwhile" in preview_line(controller.rooms.item(long)), timeout=15_000
    )
    assert controller.timeline(long).rowCount() == 0

    controller.select_room(long)  # shown: brought up to date, in order, nothing twice
    model = controller.timeline(long)
    assert window.timeline.model() is model
    shown = [b for b in bodies(model) if b.startswith(("long", "arrived"))]
    assert shown == [f"long {i}" for i in range(12)] + ["arrived meanwhile"]
    shot(window, "background-room-shown", tmp_path)

    # the room shown takes its audits at once, as before
    run(bob.send([Draft.text("while shown")]), qtbot)
    qtbot.waitUntil(lambda: "while shown" in bodies(model), timeout=15_000)
