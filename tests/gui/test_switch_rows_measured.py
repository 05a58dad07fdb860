"""A first switch to a room finds its rows measured: the real app (controller, window,
engine) on a real folder, offscreen.

A list view whose rows differ in height asks every row's size when its model is set; the
first switch to a room measured all of them on the GUI thread at the switch (40-90 ms
alone, 250-550 ms next to a back-fill's start: ``benchmarks/gui_bench.py --switch-only``).
The rows of the rooms on screen in the room list are measured before, a few per turn of
the loop (``gui/row_warmer.py``, docs/SCHEDULING.md). What a switch measures is counted
here, not timed: each measurement is a new entry in the delegate's cache of sizes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run  # tests/gui/conftest.py
from nacl.signing import SigningKey
from PySide6.QtWidgets import QApplication

from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.models.timeline_model import Roles, TimelineModel
from bucket_chat_desktop.gui.row_warmer import ROWS_PER_TURN
from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOMS = ("lobby", "second", "third")
ALICE = SigningKey(b"\x01" * 32)
BOB = SigningKey(b"\x02" * 32)
CREATED = "2025-09-14T12:00:45.000Z"
MESSAGES = 30


async def build(store: Path) -> None:
    storage = LocalStorage(store)
    for room in ROOMS:
        await RoomWriter(storage, room, "alice@example.com", ALICE).write_metadata(room, CREATED)
        bob = RoomWriter(storage, room, "bob@example.com", BOB)
        for i in range(MESSAGES):
            text = f"**{room}** {i}: a [link](https://example.com)" if i % 5 == 0 else f"{room} {i}"
            await bob.send([Draft.text(text + " words to wrap" * (i % 4))])


def sizes(delegate: MessageDelegate) -> dict[Any, Any]:
    """The delegate's cached sizes, by row: a measurement makes a new entry (a row
    measured again gets a new value object)."""
    return dict(delegate._sizes)


def measured_since(before: dict[Any, Any], delegate: MessageDelegate) -> int:
    return sum(1 for key, value in delegate._sizes.items() if before.get(key) is not value)


def all_measured(model: TimelineModel, delegate: MessageDelegate, width: int) -> bool:
    """Every row of ``model`` has a size cached at ``width``."""
    for row in range(model.rowCount()):
        layout = model.index(row).data(Roles.Layout)
        known = delegate._sizes.get(layout[:2])
        if known is None or known[0][:2] != (layout, width):
            return False
    return True


@pytest.fixture
def started(
    qtbot: Any, qloop: Any, home: Path, tmp_path: Path
) -> Iterator[tuple[Controller, MainWindow, list[str]]]:
    store = tmp_path / "store"
    run(build(store), qtbot)
    entry = StorageSettings(str(store), "Team share", list(ROOMS))
    keys = [f"{entry.id}/{room}" for room in ROOMS]
    settings = Settings("alice@example.com", "Alice", [entry], last_room=keys[0])
    controller = Controller(settings, Identity("alice@example.com", ALICE))
    window = MainWindow(controller)
    qtbot.addWidget(window)
    window.resize(900, 600)
    window.show()
    controller.start()
    try:
        qtbot.waitUntil(lambda: controller.current == keys[0], timeout=15_000)
        for key in keys:
            qtbot.waitUntil(
                lambda key=key: controller.timeline(key).rowCount() >= MESSAGES, timeout=15_000
            )
        yield controller, window, keys
    finally:
        run(controller.shutdown(), qtbot)


def _view_width(window: MainWindow) -> int:
    sizing = window.delegate.sizing()
    assert sizing is not None  # the room shown was laid out
    return sizing[0]


def test_a_first_switch_to_a_room_measures_none_of_its_rows(
    qtbot: Any, started: tuple[Controller, MainWindow, list[str]]
) -> None:
    controller, window, keys = started
    delegate = window.delegate
    qtbot.waitUntil(lambda: delegate.sizing() is not None, timeout=15_000)
    width = _view_width(window)
    # the rooms not shown are measured ahead, in the loop's spare turns
    for key in keys[1:]:
        qtbot.waitUntil(
            lambda key=key: all_measured(controller.timeline(key), delegate, width),
            timeout=15_000,
        )
    qtbot.waitUntil(lambda: window.row_warmer.idle, timeout=15_000)
    for key in keys[1:]:
        before = sizes(delegate)
        controller.select_room(key)
        assert window.timeline.model() is controller.timeline(key)
        window.timeline.doItemsLayout()  # what the view does at its next layout, now
        window.timeline.viewport().repaint()
        QApplication.processEvents()
        # nothing measured at the switch (before: every row of the room, 30 here)
        assert measured_since(before, delegate) == 0
        assert all_measured(controller.timeline(key), delegate, width)


def test_rows_are_measured_a_few_per_turn_and_again_at_a_new_font(
    qtbot: Any, started: tuple[Controller, MainWindow, list[str]]
) -> None:
    controller, window, keys = started
    delegate, warmer = window.delegate, window.row_warmer
    qtbot.waitUntil(lambda: delegate.sizing() is not None, timeout=15_000)
    qtbot.waitUntil(
        lambda: (
            warmer.idle
            and all_measured(controller.timeline(keys[1]), delegate, _view_width(window))
        ),
        timeout=15_000,
    )
    font = window.timeline.font()
    font.setPointSize(font.pointSize() + 4)
    window.timeline.setFont(font)
    window.timeline.doItemsLayout()  # the room shown, at the new font: now, not later
    assert not warmer.idle  # the rooms measured ahead are measured again
    before = sizes(delegate)
    warmer.turn()  # one turn of the loop's
    assert measured_since(before, delegate) == ROWS_PER_TURN
    qtbot.waitUntil(lambda: warmer.idle, timeout=15_000)
    before = sizes(delegate)
    controller.select_room(keys[2])
    window.timeline.doItemsLayout()
    QApplication.processEvents()
    assert measured_since(before, delegate) == 0


def test_a_room_left_and_joined_again_has_its_new_rows_measured(
    qtbot: Any, started: tuple[Controller, MainWindow, list[str]]
) -> None:
    """A room joined again has a new timeline model; the warmer followed the old one by
    the room's key and never the new one, so the rows it gets were not measured ahead
    (found by this stop's review)."""
    controller, window, keys = started
    delegate, warmer = window.delegate, window.row_warmer
    qtbot.waitUntil(lambda: delegate.sizing() is not None, timeout=15_000)
    qtbot.waitUntil(lambda: warmer.idle, timeout=15_000)
    old = controller.timeline(keys[1])
    storage_id, room_id = keys[1].split("/", 1)
    controller.forget_room(keys[1])
    controller.join_room(storage_id, room_id)
    qtbot.waitUntil(lambda: controller.made_timeline(keys[1]) not in (None, old), timeout=15_000)
    fresh = controller.made_timeline(keys[1])
    assert fresh is not None
    qtbot.waitUntil(lambda: controller.current == keys[1], timeout=15_000)  # the join opens it
    qtbot.waitUntil(lambda: fresh.rowCount() >= MESSAGES, timeout=15_000)
    controller.select_room(keys[0])
    qtbot.waitUntil(lambda: warmer.idle, timeout=15_000)

    async def more() -> None:  # rows the room gets while another is shown
        bob = RoomWriter(
            LocalStorage(Path(controller.settings.storages[0].spec)),
            room_id,
            "bob@example.com",
            BOB,
        )
        for i in range(5):
            await bob.send([Draft.text(f"later {i}" + " words to wrap" * i)])

    run(more(), qtbot)
    qtbot.waitUntil(lambda: fresh.rowCount() >= MESSAGES + 5, timeout=15_000)
    qtbot.waitUntil(
        lambda: warmer.idle and all_measured(fresh, delegate, _view_width(window)),
        timeout=15_000,
    )
