"""The "Join a room" and "New room" dialogs on a storage of many rooms (red team rt75).

The join dialog read the name and last activity of the first 200 room ids in name order
(1 listing + 200 metadata reads + 200 activity listings) and only counted the rest: a
member who made 200 rooms named to sort first (``0000-…``) pushed every real room out of
the list. The New room dialog used the same lister to learn the ids taken, and knew only
those 200: an id past them was "free" until the storage refused it.

Now every id the listing found is listed (one listing), names are read only for the rooms
in view (counted here: requests, not time), a filter finds any room by its id and, once
read, by its name, and New room checks against every id."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conftest import shot
from desk import settings_for
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox, QTreeWidgetItem

from bucket_chat_desktop.gui.widgets import room_dialogs
from bucket_chat_desktop.gui.widgets.room_dialogs import READ_AT_ONCE, RoomDialog
from bucket_chat_desktop.sync.room_objects import RoomSummary, StorageRooms

PLANTED = [f"0000-{n:03d}" for n in range(200)]  # named to sort before every real room
REAL = [f"room-{n:04d}" for n in range(800)]
IDS = sorted([*PLANTED, *REAL, "falcon"])
NAMES = {"falcon": "Project Falcon", "room-0799": "Payroll"}


class Storage:
    """A storage of 1,001 rooms: its listing (ids only, as ``ChatClient.storage_rooms``
    answers by default) and the names read, room by room, counted."""

    def __init__(self) -> None:
        self.read: list[str] = []

    async def lister(self, _storage_id: str) -> StorageRooms:
        return StorageRooms((), more=len(IDS), unread=tuple(IDS))

    async def summariser(self, _storage_id: str, room_ids: Sequence[str]) -> list[RoomSummary]:
        self.read.extend(room_ids)
        return [
            RoomSummary(r, NAMES.get(r, "Cheap" if r.startswith("0000") else f"Team {r}"), None)
            for r in room_ids
        ]


def _items(dialog: RoomDialog) -> list[QTreeWidgetItem]:
    tree = dialog.rooms_list
    assert tree is not None
    return [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]


def _shown(dialog: RoomDialog) -> list[str]:
    return [it.text(1) for it in _items(dialog) if not it.isHidden()]


def test_the_join_dialog_lists_every_room_and_reads_names_only_in_view(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """Red team rt75: 200 planted rooms that sort first no longer hide the others."""
    storage = Storage()
    settings = settings_for(tmp_path / "share", ["room-0001"])
    dialog = RoomDialog(
        settings,
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.resize(700, 520)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    assert len(_items(dialog)) == len(IDS)  # every id, not the first 200
    assert "1,001 rooms found" in dialog.list_status.text()
    # the rooms in view are read, not all of them: a page or two of requests
    # (200 rooms of one name: each marked as looking like the others)
    qtbot.waitUntil(lambda: _items(dialog)[0].text(0) == "⚠ Cheap", timeout=5_000)
    qtbot.wait(200)  # any further read the view asks for
    assert 0 < len(storage.read) <= 2 * READ_AT_ONCE
    assert len(set(storage.read)) == len(storage.read)  # none read twice
    assert _items(dialog)[-1].text(0) == "…"  # the last room: not read yet

    # a real room past the planted ones is found by its id, and its name read then
    QTest.keyClicks(dialog.filter, "FALCON")
    assert _shown(dialog) == ["falcon"]
    assert "1 matches the filter" in dialog.list_status.text()
    falcon = next(it for it in _items(dialog) if it.text(1) == "falcon")
    qtbot.waitUntil(lambda: falcon.text(0) == "Project Falcon", timeout=5_000)
    shot(dialog, "join-dialog-many-rooms-filtered", tmp_path)

    # once read, a name filters too; a room joined already is still greyed
    dialog.filter.clear()
    QTest.keyClicks(dialog.filter, "project")
    assert _shown(dialog) == ["falcon"]
    dialog.filter.clear()
    QTest.keyClicks(dialog.filter, "room-0001")
    assert _shown(dialog) == ["room-0001"]
    qtbot.waitUntil(lambda: "Greyed out" in dialog.list_status.text(), timeout=5_000)

    # choosing a room fills the id in
    dialog.filter.clear()
    QTest.keyClicks(dialog.filter, "room-0799")
    (payroll,) = [it for it in _items(dialog) if not it.isHidden()]
    dialog.rooms_list.setCurrentItem(payroll)  # type: ignore[union-attr]
    assert dialog.room_id.text() == "room-0799"
    qtbot.waitUntil(lambda: payroll.text(0) == "Payroll", timeout=5_000)
    dialog.filter.clear()
    before = len(storage.read)
    dialog.rooms_list.scrollToBottom()  # type: ignore[union-attr]
    in_view = next(it for it in _items(dialog) if it.text(1) == "room-0790")
    qtbot.waitUntil(lambda: in_view.text(0) == "Team room-0790", timeout=5_000)
    qtbot.wait(200)  # any further read the view asks for
    assert len(storage.read) - before <= 2 * READ_AT_ONCE  # only what came into view
    shot(dialog, "join-dialog-many-rooms-end", tmp_path)
    dialog.reject()


def test_a_name_read_in_view_is_marked_when_it_looks_like_a_room_the_user_is_in(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """The look-alike marks still hold for names read as they come into view."""
    storage = Storage()
    settings = settings_for(tmp_path / "share", ["payroll"])
    dialog = RoomDialog(
        settings, create=False, lister=storage.lister, summariser=storage.summariser
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    QTest.keyClicks(dialog.filter, "room-0799")
    (item,) = [it for it in _items(dialog) if not it.isHidden()]
    qtbot.waitUntil(lambda: item.text(0) == "⚠ Payroll", timeout=5_000)
    assert "looks like the id of another room you are in" in item.toolTip(0)
    dialog.reject()


def test_new_room_knows_every_id_the_storage_holds(qtbot: Any, qloop: Any, tmp_path: Path) -> None:
    """Red team rt75: an id past the first 200 was taken for free."""
    storage = Storage()
    dialog = RoomDialog(settings_for(tmp_path / "share", []), create=True, lister=storage.lister)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    QTest.keyClicks(dialog.room_id, "room-0799")  # past the first 200 ids
    assert "already exists" in dialog.problem.text()
    assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
    assert storage.read == []  # the ids are all New room needs: no name was read
    dialog.reject()


def test_typing_in_the_filter_cleans_no_name_again(
    qtbot: Any, qloop: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A room's name is cleaned for showing once, when it is read: each keystroke in the
    filter cleaned every name read again (and each batch of names read, all of them)."""
    storage = Storage()
    dialog = RoomDialog(
        settings_for(tmp_path / "share", []),
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.resize(700, 520)
    dialog.show()
    cleaned: list[str] = []
    real = room_dialogs.display_name_safe

    def counted(text: str, *args: Any, **kwargs: Any) -> str:
        cleaned.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(room_dialogs, "display_name_safe", counted)
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    qtbot.waitUntil(lambda: _items(dialog)[0].text(0) == "⚠ Cheap", timeout=5_000)
    read = len(storage.read)
    assert len(cleaned) == read  # each name read, cleaned once
    QTest.keyClicks(dialog.filter, "cheap")
    assert len(cleaned) == len(storage.read)  # typing cleaned none again
    assert _shown(dialog) and all(r.startswith("0000-") for r in _shown(dialog))
    dialog.reject()
