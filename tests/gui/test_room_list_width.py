"""The room list follows the window's width: a row is as wide as the list. Its rows kept
the width the list had before a resize, so a narrowed window scrolled the room list
sideways and cut off each room's time and unread badge (seen in a screenshot).

Nor does what a room's creator or its members chose: a room name as long as the metadata
allows (200 characters), a room id of 128, a sender id of 180. The header's title asked
for the whole name's width (4,400 px) and the splitter took it from the room list (290 ->
186 px, the user's own id cut); the subtitle did so with the room id, the thread panel with
its root's sender id, and the Audit window grew to 2,482 px (red team rt60)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey
from PySide6.QtWidgets import QSplitter

from bucket_chat_desktop.gui.features import Features
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
    splitter = rows.parentWidget().parentWidget()
    assert isinstance(splitter, QSplitter)
    seen = set()
    # The window's width, then the splitter (the room list keeps its width while the
    # room's side can give: nothing in the header asks for more than it has).
    for width, side in ((1200, 0), (700, 0), (1000, 0), (640, 0), (1000, 180), (1000, 400)):
        window.resize(width, 480)
        if side:
            splitter.setSizes([side, window.width() - side])
        qtbot.wait(100)  # the list lays its rows out after the resize
        viewport = rows.viewport().width()
        for i in range(rows.model().rowCount()):
            rect = rows.visualRect(rows.model().index(i, 0))
            assert rect.left() == 0 and rect.width() == viewport, (width, i, rect, viewport)
        assert rows.horizontalScrollBar().maximum() == 0, width
        seen.add(viewport)
    assert len(seen) > 1  # the list's width did change


CAROL = ("carol@example.com", SigningKey(b"\x03" * 32), "Carol")
MALLORY = ("m" * 60 + "@" + "e" * 108 + ".example.com", SigningKey(b"\x07" * 32), "M" * 80)
LONG_NAME = "W" * 200  # the metadata's cap (``rooms_model.NAME_LIMIT``)
LONG_ID = "w" * 128  # the protocol's cap


def _hostile_store(qtbot: Any, tmp_path: Path, room_id: str) -> tuple[Path, str]:
    """General, and a room named ``LONG_NAME`` by Mallory (a long id) with one thread;
    returns the store and the thread's root event id."""
    root = tmp_path / "store"
    storage = LocalStorage(root)
    carol = RoomWriter(storage, "general", *CAROL[:2], displayname=CAROL[2])
    wait_for(qtbot, carol.write_metadata("General", "2026-01-05T09:00:00.000Z"))
    wait_for(qtbot, carol.send([Draft.text("hi general")]))
    mallory = RoomWriter(storage, room_id, *MALLORY[:2], displayname=MALLORY[2])
    wait_for(qtbot, mallory.write_metadata(LONG_NAME, "2026-01-05T09:00:00.000Z"))
    _, [*_, first] = wait_for(qtbot, mallory.send([Draft.text("hello")]))
    wait_for(qtbot, mallory.send([Draft.text("a reply", first.event_id)]))
    return root, first.event_id


def test_a_long_room_name_is_cut_with_an_ellipsis_and_never_narrows_the_room_list(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    root, _ = _hostile_store(qtbot, tmp_path, "wide")
    desk = launch(settings_for(root, ["general", "wide"]))
    desk.wait_row("general", "hi general")
    qtbot.wait(200)
    window = desk.window
    before = window.room_list.width()
    desk.select("wide")
    desk.wait_row("wide", "hello")
    qtbot.wait(300)
    shot(window, "long-room-name", tmp_path)
    assert window.room_list.width() == before
    title = window.room_title
    assert title.minimumSizeHint().width() <= window.width()
    assert (
        title.geometry().right() < window.members_button.mapTo(window, window.rect().topLeft()).x()
    )
    shown = title.text()
    assert shown.endswith("\u2026") and shown[:-1] == "W" * (len(shown) - 1)
    assert title.fontMetrics().horizontalAdvance(shown) <= title.contentsRect().width()
    assert LONG_NAME in title.toolTip()  # the whole name, on hover
    window.resize(window.width() + 300, window.height())  # more room: more of the name
    qtbot.waitUntil(lambda: len(title.text()) > len(shown), timeout=5_000)
    assert window.room_list.width() == before
    desk.select("general")
    qtbot.waitUntil(lambda: title.text() == "General", timeout=5_000)


def test_a_long_room_id_and_sender_id_widen_neither_the_header_the_thread_nor_the_audit(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    root, first = _hostile_store(qtbot, tmp_path, LONG_ID)
    desk = launch(settings_for(root, ["general", LONG_ID]))
    desk.wait_row("general", "hi general")
    qtbot.wait(200)
    window = desk.window
    before = window.room_list.width()
    desk.select(LONG_ID)
    desk.wait_row(LONG_ID, "hello")
    qtbot.wait(300)
    assert LONG_ID in window.room_subtitle.text()  # wrapped, not taken away
    assert window.room_list.width() == before, "the subtitle's room id took the width"

    window.open_thread(first)
    panel = window.relation_actions.thread_panel  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: "1 reply" in panel.subtitle.text(), timeout=15_000)
    qtbot.wait(300)
    shot(window, "long-ids-thread", tmp_path)
    assert window.room_list.width() == before, "the thread's sender id took the width"
    assert panel.width() < window.width() // 2

    features = window.findChild(Features)
    window.audit_button.click()
    qtbot.waitUntil(
        lambda: features.audit_dialog is not None and features.audit_dialog.isVisible(),
        timeout=15_000,
    )
    qtbot.wait(300)
    dialog = features.audit_dialog
    shot(dialog, "long-ids-audit", tmp_path)
    # it grew to 2,482 px, off any screen, its buttons with it
    assert dialog.width() <= 1200 and dialog.minimumSizeHint().width() <= window.width()
    assert LONG_ID in dialog.subtitle.text()
