"""The New room dialog's id: unique by default, and never one the storage holds
(red team rt73).

F1: a member wrote a join and "Welcome! I set this up for you. Send the files here."
under ``rooms/general/`` (no metadata) a moment before Alice created "General", whose id
the dialog derived from the name: ``general``. Creating now refuses such an id
(tests/unit/sync/test_room_id_taken.py); the dialog lists the storage's rooms and says
so before Create is pressed, offering a free id instead of failing mysteriously.

F2: events name their room by its id, never by its storage, so a member who copies
signed segments of ``general`` in one storage into a ``general`` of another has them
shown there (docs/SECURITY.md, "A room id is only a name within a storage"). The dialog
and the wizard so offer the name's slug and a random tail (``general-k3p9``), shown and
editable: two rooms named alike rarely share an id by accident.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import settings_for
from nacl.signing import SigningKey
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox

from bucket_chat_desktop.gui.widgets.room_dialogs import RoomDialog
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.room_objects import StorageRooms, storage_rooms
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

MALLORY = ("mallory@x.example", SigningKey(b"\x07" * 32))


def _dialog(qtbot: Any, store: Path) -> RoomDialog:
    """The New room dialog on ``store``, shown, once it listed the rooms there."""

    async def lister(_storage_id: str) -> StorageRooms:
        return await storage_rooms(LocalStorage(store), int(time.time() * 1000))

    dialog = RoomDialog(settings_for(store, []), create=True, lister=lister)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    return dialog


def _create(dialog: RoomDialog) -> Any:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)


def test_a_new_room_id_is_the_name_and_a_random_tail(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    store = tmp_path / "share"
    store.mkdir()
    dialog = _dialog(qtbot, store)
    QTest.keyClicks(dialog.name, "General")
    first = dialog.room_id.text()
    assert re.fullmatch(r"general-[a-z0-9]{4}", first), first
    QTest.keyClicks(dialog.name, " chat")  # the tail stays while the name is typed
    assert dialog.room_id.text() == f"general-chat-{first[-4:]}"
    assert _create(dialog).isEnabled() and dialog.problem.text() == ""
    # shown and editable: an id typed is kept, whatever the name says next
    dialog.room_id.clear()
    QTest.keyClicks(dialog.room_id, "team-general")
    QTest.keyClicks(dialog.name, "!")
    assert dialog.values[1:] == ("team-general", "General chat!")


def test_an_id_the_storage_holds_is_said_and_a_free_one_offered(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    store = tmp_path / "share"
    store.mkdir()
    # Mallory's segment under ``general``, no metadata: the room exists (room_exists)
    writer = RoomWriter(LocalStorage(store), "general", *MALLORY, displayname="Mallory")
    wait_for(qtbot, writer.send([Draft.text("Welcome! I set this up for you.")]))
    dialog = _dialog(qtbot, store)
    assert dialog.taken == ["general"]
    QTest.keyClicks(dialog.name, "General")
    dialog.room_id.clear()
    QTest.keyClicks(dialog.room_id, "general")
    said = dialog.problem.text()
    assert "A room with the id 'general' already exists in this storage" in said, said
    assert "join that room" in said and not _create(dialog).isEnabled()
    free = dialog.free_id
    assert re.fullmatch(r"general-[a-z0-9]{4}", free), free
    assert dialog.use_free.isVisible() and free in dialog.use_free.text()
    shot(dialog, "new-room-id-taken", tmp_path)
    dialog.use_free.click()
    assert dialog.room_id.text() == free and dialog.problem.text() == ""
    assert _create(dialog).isEnabled() and not dialog.use_free.isVisible()
    # one folder on Windows and macOS: the same id but for case is taken too
    dialog.room_id.setText("GENERAL")
    assert not _create(dialog).isEnabled() and "only in case" in dialog.problem.text()


def test_an_id_whose_folder_a_room_with_a_trailing_dot_holds_on_windows_is_refused(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """Red team rt93: a member's room ``general.`` is the folder ``general`` on Windows
    (which drops a name's trailing dots): the dialog says so before Create is pressed,
    as the storage would refuse it (tests/unit/cli/test_cli_inprocess.py)."""
    store = tmp_path / "share"
    store.mkdir()
    writer = RoomWriter(LocalStorage(store), "general.", *MALLORY, displayname="Mallory")
    wait_for(qtbot, writer.send([Draft.text("Welcome!")]))
    dialog = _dialog(qtbot, store)
    assert dialog.taken == ["general."]
    QTest.keyClicks(dialog.name, "General")
    dialog.room_id.clear()
    QTest.keyClicks(dialog.room_id, "general")
    said = dialog.problem.text()
    assert "would share a folder with the existing room 'general.' on Windows" in said, said
    assert not _create(dialog).isEnabled()
    dialog.room_id.setText("general-2")
    assert _create(dialog).isEnabled() and dialog.problem.text() == ""
