"""A room where a member put a file over the size limit at a segment's name: the engine
does not read it and holds the room partial (``has_unreadable``: no trust on first use,
no final verdict), and the CLI's export says "not completely read". The app's own rule
(``PARTIAL_READ``) left out ``segment-too-large`` and ``segment-abandoned``: its audit
dialog said "Complete: the whole history was read and checked", the banner and header
gave no word of a partial read, and the room list's tooltip none either."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey
from PySide6.QtCore import Qt

from bucket_chat_desktop.gui.audit.dialog import AuditDialog
from bucket_chat_desktop.gui.models.rooms_model import RoomRoles
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.segment import MAX_SEGMENT_BYTES
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = ("carol@example.com", SigningKey(b"\x03" * 32))


def test_a_segment_too_large_makes_every_gui_word_say_not_completely_read(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    writer = RoomWriter(LocalStorage(store), "big", *CAROL, displayname="Carol")
    wait_for(qtbot, writer.write_metadata("Big", "2026-01-05T09:00:00.000Z"))
    wait_for(qtbot, writer.send([Draft.text("hello")]))
    (day,) = (store / "rooms" / "big" / "logs").iterdir()
    with open(day / "messages_9_9_mallory-m.jsonl", "wb") as f:  # sparse: nothing written
        f.truncate(MAX_SEGMENT_BYTES + 1)
    desk = launch(settings_for(store, ["big"]))
    controller = desk.controller
    desk.wait_loaded("big")
    desk.select("big")
    desk.wait_row("big", "hello")
    key = desk.key("big")
    result = controller.result(key)
    assert result is not None
    assert Kind.SEGMENT_TOO_LARGE in {f.kind for f in result.findings}

    assert controller.history_partial(key) and not controller.history_vanished(key)
    window = desk.window
    banner = window.banner_text.text()
    assert "could not be read completely" in banner and "segment-too-large" in banner
    assert "history not completely read" in window.room_subtitle.text()
    tips = [
        controller.rooms.data(controller.rooms.index(r), Qt.ItemDataRole.ToolTipRole)
        for r in range(controller.rooms.rowCount())
        if controller.rooms.data(controller.rooms.index(r), RoomRoles.Key) == key
    ]
    assert tips and "could not be read completely" in tips[0]

    window.audit_button.click()
    qtbot.waitUntil(lambda: window.findChild(AuditDialog) is not None, timeout=15_000)
    dialog = window.findChild(AuditDialog)
    qtbot.waitUntil(lambda: dialog.isVisible() and "read" in dialog.history.text())
    history = dialog.history.text()
    assert "Not completely read" in history and "could not be read" in history
    assert "Complete" not in history
