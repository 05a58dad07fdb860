"""Red team: a member wrote as ``aIice@example.com`` (a capital I for the l — plain ASCII,
the same as alice's id in the app's font) and dated the messages 2000-01-01. The
look-alike rule gave a look to whichever plain id wrote first, so the app put ⚠ on the
real alice's rows and none on the impostor's. Dates are the writer's to choose: two
plain ids alike are both marked now, in the timeline and in the members panel, and the
real alice's rows get their mark when the impostor's message arrives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey
from PySide6.QtWidgets import QStyleOptionViewItem

from bucket_chat_desktop.gui.features import Features
from bucket_chat_desktop.gui.models.members_model import MemberRoles
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ALICE = ("alice@example.com", SigningKey(b"\x01" * 32))
IMPOSTOR = ("aIice@example.com", SigningKey(b"\x0d" * 32))
Y2000 = 946_684_800_000


def _row_of(desk: Desk, body: str) -> Any:
    model = desk.model("general")
    return model.index(desk.wait_index("general", body))


def test_a_backdated_plain_look_alike_marks_both_ids_in_timeline_and_members(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "store")
    alice = RoomWriter(storage, "general", *ALICE, displayname="Alice")
    wait_for(qtbot, alice.send([Draft.text("lunch at noon?")]))
    settings = settings_for(tmp_path / "store", ["general"])
    settings.user_id, settings.displayname = "carol@example.com", "Carol"  # reads the room
    desk = launch(settings)
    desk.wait_loaded("general")
    real = _row_of(desk, "lunch at noon?")
    assert real.data(Roles.SenderWarning) is None  # alone under her look: nothing to mark

    impostor = RoomWriter(storage, "general", *IMPOSTOR, displayname="Alice", clock=lambda: Y2000)
    wait_for(qtbot, impostor.send([Draft.text("my bank details changed, pay here")]))
    fake = _row_of(desk, "my bank details changed, pay here")
    real = _row_of(desk, "lunch at noon?")
    assert fake.row() < real.row()  # the backdated message sorts first
    qtbot.waitUntil(lambda: real.data(Roles.SenderWarning) is not None, timeout=15_000)
    fake_warning = fake.data(Roles.SenderWarning)
    real_warning = real.data(Roles.SenderWarning)
    assert fake_warning and "looks like alice@example.com" in fake_warning
    assert real_warning and "looks like aIice@example.com" in real_warning
    assert "wrote in this room first" not in fake_warning + real_warning
    # in the app's font "aIice" and "alice" are the same pixels: the warning names the
    # characters that differ
    assert "U+0049 LATIN CAPITAL LETTER I where the other has U+006C" in fake_warning
    assert "U+006C LATIN SMALL LETTER L where the other has U+0049" in real_warning

    # the ⚠ is painted in both rows' headers
    view = desk.window.timeline
    for index in (fake, real):
        rect = view.visualRect(index)
        option = QStyleOptionViewItem()
        option.rect = rect
        option.font = view.font()
        head = view.itemDelegate().header_layout(option, index, rect.top() + 4)
        assert head.warning and head.mark_rect.width() > 0
    shot(desk.window, "backdated-lookalike-timeline", tmp_path)

    # the members panel marks both cards
    features = desk.window.findChild(Features)
    assert features is not None
    desk.window.members_button.click()
    panel = features.members_panel
    model = features.members_model
    qtbot.waitUntil(lambda: len(panel.cards) == model.rowCount() == 2, timeout=15_000)
    for user_id, other in ((ALICE[0], IMPOSTOR[0]), (IMPOSTOR[0], ALICE[0])):
        row = model.row_of(user_id)
        assert f"looks like {other}" in model.index(row).data(MemberRoles.IdWarning)
        card = panel.cards[row]
        assert card.warning_label is not None and card.warning_label.isVisible()
        assert f"looks like {other}" in card.warning_label.text()
    shot(desk.window, "backdated-lookalike-members", tmp_path)
