"""A room named like a room the user is in already (red team rt60).

The user is in "Payroll" (``salaries``) on the company share. A partner's shared folder
(any member of it can create a room) holds a room ``pay-2`` that calls itself "Payroll"
too, validly signed by its creator. The join dialog compared a listed name only with the
rooms of the storage listed, so it showed ``pay-2`` as plain "Payroll"; once joined, the
room list, the quick switcher and the notifications ("… in Payroll") showed two rooms
that read the same, neither marked.

Every name is now compared (``room_names.name_lookalikes``) with the names and ids of
every room the user is in, on every storage: the look-alike is marked ⚠ and told apart
by its id and storage, its tooltip saying which room it looks like.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import join_rows
from conftest import shot, wait_for
from desk import ALICE, Desk, answer_when_shown
from nacl.signing import SigningKey
from PySide6.QtCore import Qt
from test_key_doubted_elsewhere import searched

from bucket_chat_desktop.gui.models.rooms_model import RoomRoles
from bucket_chat_desktop.gui.widgets.quick_switcher import QuickSwitcher
from bucket_chat_desktop.gui.widgets.room_dialogs import RoomDialog
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = ("carol@example.com", SigningKey(b"\x03" * 32), "Carol")
MALLORY = ("mallory@partner.example", SigningKey(b"\x07" * 32), "Mallory")


def _room(qtbot: Any, root: Path, room: str, name: str, who: Any, text: str) -> None:
    writer = RoomWriter(LocalStorage(root), room, who[0], who[1], displayname=who[2])
    wait_for(qtbot, writer.write_metadata(name, "2026-01-05T09:00:00.000Z"))
    wait_for(qtbot, writer.send([Draft.text(text)]))


def _two_shares(qtbot: Any, tmp_path: Path) -> tuple[Path, Path]:
    """The company's Payroll (id ``salaries``: its id looks like no name) and the
    partner's rooms: ``pay-2`` called "Payroll", and Lunch."""
    company, partner = tmp_path / "company", tmp_path / "partner"
    _room(qtbot, company, "salaries", "Payroll", CAROL, "Salaries go out Friday.")
    _room(qtbot, partner, "pay-2", "Payroll", MALLORY, "New bank details: send them here.")
    _room(qtbot, partner, "lunch", "Lunch", MALLORY, "Pizza?")
    return company, partner


def _settings(company: Path, partner: Path, partner_rooms: list[str]) -> Settings:
    return Settings(
        user_id=ALICE,
        displayname="Alice",
        storages=[
            StorageSettings(str(company), "Company", ["salaries"]),
            StorageSettings(str(partner), "Partner share", partner_rooms),
        ],
    )


def test_the_join_dialog_marks_a_name_of_a_room_the_user_is_in_already(
    qtbot: Any, qloop: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    company, partner = _two_shares(qtbot, tmp_path)
    desk = launch(_settings(company, partner, []))
    desk.wait_loaded("salaries")
    partner_id = desk.settings.storages[1].id
    qtbot.waitUntil(lambda: partner_id in desk.controller.client._storages, timeout=15_000)
    seen: dict[str, Any] = {}

    def look(dialog: RoomDialog) -> None:
        dialog.storage.setCurrentIndex(1)  # the partner's share
        qtbot.waitUntil(
            lambda: dialog.listing_state == "done" and dialog.rooms.rowCount() == 2,
            timeout=10_000,
        )
        seen["rows"] = {
            room: (join_rows.text(dialog, room), join_rows.tip(dialog, room))
            for room in join_rows.shown(dialog)
        }
        dialog.resize(700, 360)
        shot(dialog, "join-dialog-name-of-a-joined-room", tmp_path)
        dialog.reject()

    answer_when_shown(RoomDialog, look)
    desk.window.join_room()  # the dialog as the app opens it: it knows the rooms' names
    qtbot.waitUntil(lambda: "rows" in seen, timeout=15_000)
    name, tip = seen["rows"]["pay-2"]
    assert name == "⚠ Payroll"
    assert "Its name looks like the name of another room you are in (salaries on Company)." in tip
    assert seen["rows"]["lunch"][0] == "Lunch"
    assert "looks like" not in seen["rows"]["lunch"][1]


def test_the_join_dialog_compares_with_the_ids_of_the_rooms_the_user_is_in(
    qtbot: Any, qloop: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """A dialog given no names of the rooms the user is in still has their ids (the
    settings hold them): "Payroll" on the partner's share beside ``payroll`` joined."""
    company, partner = tmp_path / "company", tmp_path / "partner"
    _room(qtbot, company, "payroll", "Salaries", CAROL, "Salaries go out Friday.")
    _room(qtbot, partner, "pay-2", "Payroll", MALLORY, "New bank details: send them here.")
    settings = _settings(company, partner, [])
    settings.storages[0].rooms[:] = ["payroll"]
    desk = launch(settings)
    desk.wait_loaded("payroll")
    partner_id = settings.storages[1].id
    qtbot.waitUntil(lambda: partner_id in desk.controller.client._storages, timeout=15_000)
    dialog = RoomDialog(
        desk.settings,
        create=False,
        parent=desk.window,
        lister=desk.controller.list_storage_rooms,  # the ids (red team rt75)
        summariser=desk.controller.client.summarise_rooms,  # the names of those shown
    )
    dialog.show()
    dialog.storage.setCurrentIndex(1)
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    assert join_rows.text(dialog, "pay-2") == "⚠ Payroll"
    assert "looks like the id of another room you are in (payroll on Company)" in join_rows.tip(
        dialog, "pay-2"
    )
    dialog.reject()
    dialog.deleteLater()


def test_the_room_list_switcher_and_notifications_tell_apart_two_rooms_of_one_name(
    qtbot: Any, qloop: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    company, partner = _two_shares(qtbot, tmp_path)
    settings = _settings(company, partner, ["pay-2", "lunch"])
    settings.last_room = f"{settings.storages[0].id}/salaries"
    desk = launch(settings)
    desk.wait_row("salaries", "Salaries go out Friday.")
    rooms = desk.controller.rooms
    qtbot.waitUntil(
        lambda: (
            rooms.rowCount() == 3
            and all(rooms.index(r).data(RoomRoles.PreviewText) for r in range(3))
        ),
        timeout=15_000,
    )
    ours, theirs = desk.key("salaries"), desk.key("pay-2", 1)
    data = {
        key: {
            role: rooms.index(rooms.row_of(key)).data(role)
            for role in (RoomRoles.Name, RoomRoles.NameWarning, RoomRoles.Place)
        }
        | {"tip": rooms.index(rooms.row_of(key)).data(Qt.ItemDataRole.ToolTipRole)}
        for key in (ours, theirs, desk.key("lunch", 1))
    }
    # neither can be told to be the real one: both are marked, each says which room
    # it looks like, and each shows its id and storage
    assert data[theirs][RoomRoles.NameWarning] == (
        "Its name looks like the name of another room you are in (salaries on Company)."
    )
    assert data[ours][RoomRoles.NameWarning] == (
        "Its name looks like the name of another room you are in (pay-2 on Partner share)."
    )
    assert data[theirs][RoomRoles.Place] == "pay-2 · Partner share"
    assert "⚠ Its name looks like the name of another room" in data[theirs]["tip"]
    assert data[desk.key("lunch", 1)][RoomRoles.NameWarning] == ""
    desk.window.resize(1000, 600)
    desk.select("salaries")  # its header is marked too, and says why
    title = desk.window.room_title
    assert title.full_text() == "⚠ Payroll", title.full_text()
    assert "another room you are in (pay-2 on Partner share)" in title.toolTip()
    assert "salaries on Company" in desk.window.room_subtitle.text()
    qtbot.wait(100)
    shot(desk.window, "room-list-two-payrolls", tmp_path)

    # a message in the partner's Payroll: its notification says which Payroll
    notes: list[str] = []
    desk.controller.notify.connect(lambda _key, title, _text: notes.append(title))
    desk.wait_loaded("pay-2", "lunch")
    mallory = RoomWriter(LocalStorage(partner), "pay-2", *MALLORY[:2], displayname=MALLORY[2])
    wait_for(qtbot, mallory.send([Draft.text("Please confirm the new account today.")]))
    qtbot.waitUntil(lambda: bool(notes), timeout=15_000)
    assert notes[-1].endswith(" in ⚠ Payroll (pay-2 · Partner share)"), notes

    # the quick switcher marks it, its id and storage below its name
    quick = desk.window.findChild(QuickSwitcher)
    assert quick is not None
    quick.open()
    quick.search.setText("payroll")
    qtbot.waitUntil(lambda: quick.proxy.rowCount() == 2, timeout=5_000)
    marked = {
        str(quick.proxy.index(r, 0).data(RoomRoles.Key)): quick.proxy.index(r, 0).data(
            RoomRoles.NameWarning
        )
        for r in range(2)
    }
    assert all(marked.values()) and set(marked) == {ours, theirs}
    qtbot.wait(100)
    shot(desk.window, "quick-switcher-two-payrolls", tmp_path)
    quick.hide()
    qtbot.wait(50)
    shot(desk.window.room_list, "room-list-two-payrolls-unread", tmp_path)

    # a search result names which Payroll it comes from, as the notification does
    found = searched(qtbot, desk, "confirm the new account")
    assert found.room_name == "⚠ Payroll (pay-2 · Partner share)", found.room_name
    shot(desk.window, "search-two-payrolls", tmp_path)
