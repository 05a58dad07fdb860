"""Red team rt47, in the app: an impostor's key that "General" marks "key changed" for
Carol made a room of its own, "Payroll", and wrote there as Carol: a green ✔, "2 of 2
events verified", a "Verified" device in Members — trust on first use is a room's own
(tests/gui/test_trust_per_room.py says why), and nothing said that this very key is not
Carol's where she writes. Its rows there now carry the warning mark, and their tooltip
says which room does not trust it."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey
from PySide6.QtTest import QTest
from test_app_flows import store  # noqa: F401 - fixtures

from bucket_chat_desktop.gui.features import Features
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.search import SearchFeature
from bucket_chat_desktop.gui.widgets.message_delegate import tooltip_html
from bucket_chat_desktop.gui.widgets.search_panel import HitRoles, ShownHit, sender_text
from bucket_chat_desktop.gui.widgets.search_panel import tooltip_html as search_tip
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = "carol@example.com"
BAIT = "PAYROLL: Carol here, the new IBAN is XX00 EVIL"


def test_a_key_another_room_does_not_trust_is_marked_where_it_is_trusted(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    storage = LocalStorage(store)
    impostor = SigningKey(b"\x4d" * 32)

    async def write() -> None:
        general = RoomWriter(storage, "general", CAROL, impostor, displayname="Carol")
        await general.send([Draft.text("Carol again, from a new laptop")])
        payroll = RoomWriter(storage, "payroll", CAROL, impostor, displayname="Carol")
        await payroll.create_room("Payroll", "2026-06-01T00:00:00.000Z")
        await payroll.send([Draft.text(BAIT)])

    wait_for(qtbot, write())
    desk = launch(settings_for(store, ["payroll", "general"]))
    desk.wait_loaded("payroll", "general")
    assert desk.wait_row("general", "Carol again, from a new laptop").trust == "key-changed"
    assert desk.wait_row("payroll", BAIT).trust == "verified"  # its own room's first key
    model = desk.model("payroll")
    index = model.index(desk.wait_index("payroll", BAIT))
    said = (
        "the key that signed this is not trusted for carol@example.com in the room "
        "'General' (general)"  # its id too: any room may be named "General"
    )
    qtbot.waitUntil(lambda: said in str(index.data(Roles.SenderWarning) or ""), timeout=15_000)
    assert html.escape(said) in tooltip_html(index)
    shot(desk.window, "key-doubted-elsewhere", tmp_path)
    # the room list's preview says so too (a notification's title gets the mark)
    assert desk.item("payroll").preview_warning == (
        "The key that signed it is not trusted for this sender in the room 'General' (general)"
    )
    # a search result of the message says it too (red team rt54: "Verified", no ⚠)
    found = searched(qtbot, desk, "IBAN")
    assert found.sender_warning is not None and said in found.sender_warning
    assert sender_text(found).startswith("⚠ ")
    assert html.escape(said) in search_tip(found)
    shot(desk.window, "key-doubted-elsewhere-search", tmp_path)
    # Carol's own key is doubted nowhere: her rows in General carry no such warning
    general = desk.model("general")
    welcome = general.index(desk.wait_index("general", "Welcome, everyone!"))
    assert "not trusted for" not in str(welcome.data(Roles.SenderWarning) or "")

    # The user compares fingerprints and confirms this key as Carol's: it is doubted
    # nowhere any more (red team rt50: the warning stayed, beside "Confirmed by you").
    features = desk.window.findChild(Features)
    desk.select("payroll")
    desk.window.members_button.click()
    members = features.members_model
    qtbot.waitUntil(lambda: members.row_of(CAROL) >= 0, timeout=15_000)
    (device,) = members.member(members.row_of(CAROL)).devices
    assert wait_for(qtbot, features.mark_verified(desk.key("payroll"), device))
    qtbot.waitUntil(lambda: index.data(Roles.Confirmed) is True, timeout=15_000)
    assert "not trusted for" not in str(index.data(Roles.SenderWarning) or "")
    assert desk.item("payroll").preview_warning == ""
    assert searched(qtbot, desk, "IBAN").sender_warning is None


def searched(qtbot: Any, desk: Desk, text: str) -> ShownHit:
    """The one result the window's search panel lists for ``text`` in every room."""
    search = desk.window.findChild(SearchFeature)
    assert search is not None
    indexes = [a.index for a in desk.controller.client._storages.values()]
    qtbot.waitUntil(lambda: not any(i.text_pending for i in indexes), timeout=15_000)
    search.open(everywhere=True)
    panel = search.panel
    panel.field.clear()
    qtbot.waitUntil(lambda: panel.model.rowCount() == 0, timeout=10_000)
    QTest.keyClicks(panel.field, text)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 1, timeout=10_000)
    shown: ShownHit = panel.model.index(0, 0).data(HitRoles.Hit)
    return shown


def test_a_room_left_takes_its_doubts_with_it(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
) -> None:
    """Red team rt50: after the doubting room was left, the warning still named it."""
    storage = LocalStorage(store)
    impostor = SigningKey(b"\x4d" * 32)

    async def write() -> None:
        general = RoomWriter(storage, "general", CAROL, impostor)
        await general.send([Draft.text("Carol again, from a new laptop")])
        payroll = RoomWriter(storage, "payroll", CAROL, impostor)
        await payroll.create_room("Payroll", "2026-06-01T00:00:00.000Z")
        await payroll.send([Draft.text(BAIT)])

    wait_for(qtbot, write())
    desk = launch(settings_for(store, ["payroll", "general"]))
    desk.wait_loaded("payroll", "general")
    index = desk.model("payroll").index(desk.wait_index("payroll", BAIT))
    qtbot.waitUntil(lambda: "General" in str(index.data(Roles.SenderWarning) or ""), timeout=15_000)
    desk.controller.leave_room(desk.key("general"))
    qtbot.waitUntil(lambda: desk.controller.rooms.item(desk.key("general")) is None, timeout=15_000)
    assert "not trusted for" not in str(index.data(Roles.SenderWarning) or "")
    assert desk.item("payroll").preview_warning == ""
