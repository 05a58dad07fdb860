"""The room list follows the window's width: a row is as wide as the list. Its rows kept
the width the list had before a resize, so a narrowed window scrolled the room list
sideways and cut off each room's time and unread badge (seen in a screenshot)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter


def test_room_rows_take_the_lists_width_when_the_window_narrows(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "store")
    rooms = ["general", "random", "design"]
    for room in rooms:
        writer = RoomWriter(storage, room, "bob@example.com", SigningKey(b"\x02" * 32))
        wait_for(qtbot, writer.send([Draft.text("a fairly long preview text " * 4)]))
    desk = launch(settings_for(tmp_path / "store", rooms))
    desk.wait_loaded(*rooms)
    window, rows = desk.window, desk.window.room_list
    seen = set()
    for width in (1200, 700, 1000, 640):
        window.resize(width, 480)
        qtbot.wait(100)  # the list lays its rows out after the resize
        viewport = rows.viewport().width()
        for i in range(rows.model().rowCount()):
            rect = rows.visualRect(rows.model().index(i, 0))
            assert rect.left() == 0 and rect.width() == viewport, (width, i, rect, viewport)
        assert rows.horizontalScrollBar().maximum() == 0, width
        seen.add(viewport)
    assert len(seen) > 1  # the list's width did change
