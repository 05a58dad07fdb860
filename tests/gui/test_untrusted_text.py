"""Hostile names and ids in the GUI, through the real models, delegates and widgets.

A room on disk where a member imitates alice with a Cyrillic "а", pads a display name
with invisible and blank characters, and uses HTML in an id; another writes a name with
a right-to-left override. The timeline is laid out and painted offscreen: the real id and
the trust badge must stay in the row, the imitating id must carry a warning, and every
tooltip or label that shows such text must show it as text, never as HTML.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import roster_of
from nacl.signing import SigningKey
from PySide6.QtCore import QEvent, QPoint
from PySide6.QtGui import QColor, QHelpEvent, QImage, Qt
from PySide6.QtWidgets import QListView, QStyleOptionViewItem, QToolTip

from bucket_chat_desktop.gui.audit.dialog import AuditDialog
from bucket_chat_desktop.gui.audit.findings_model import Column
from bucket_chat_desktop.gui.audit.view import AuditView
from bucket_chat_desktop.gui.models.members_model import MemberRoles, MembersModel
from bucket_chat_desktop.gui.models.rooms_model import RoomItem, RoomRoles, RoomsModel
from bucket_chat_desktop.gui.models.timeline_model import Roles, TimelineModel
from bucket_chat_desktop.gui.style import TRUST_COLORS
from bucket_chat_desktop.gui.tray import notification_text
from bucket_chat_desktop.gui.widgets.members_panel import MembersPanel, VerifyDeviceDialog
from bucket_chat_desktop.gui.widgets.message_delegate import LEFT, MessageDelegate
from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.protocol.metadata import build_metadata, parse_metadata
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "hostile"
ALICE_ID = "alice@example.com"
IMPOSTOR_ID = "\u0430lice@example.com"  # Cyrillic а
HTML_ID = "<img src=x><b>eve</b>@example.com"
PADDING = "\u2800" * 200 + "\u3164" * 200 + " " * 200 + "\u200b" * 200 + "\u00a0" * 200
PADDED = "Alice" + PADDING + "."
REVERSED = "\u202emoc.elpmaxe@ecila"  # shows as "alice@example.com" when obeyed
KEYS = {ALICE_ID: 1, IMPOSTOR_ID: 2, HTML_ID: 3, "bob@example.com": 4}
SHOTS = Path(os.environ.get("BUCKET_CHAT_SHOTS", "/tmp"))


def _room(root: Path) -> AuditResult:
    storage = LocalStorage(root)
    now = [1_764_000_000_000]

    def clock() -> int:
        now[0] += 60_000
        return now[0]

    names = {
        ALICE_ID: "Alice",
        IMPOSTOR_ID: PADDED,
        HTML_ID: "<b>Eve</b>",
        "bob@example.com": REVERSED,
    }

    async def go() -> RoomLedger:
        for user, name in names.items():
            key = SigningKey(bytes([KEYS[user]]) * 32)
            writer = RoomWriter(storage, ROOM, user, key, displayname=name, clock=clock)
            await writer.send([Draft.text(f"hello from {name[:5]}")])
        ledger = RoomLedger(ROOM)
        for item in await storage.list_objects(f"rooms/{ROOM}/logs/"):
            ledger.add_segment(item.path, await storage.get(item.path))
        return ledger

    return asyncio.run(go()).audit()


@pytest.fixture
def result(tmp_path: Path) -> AuditResult:
    return _room(tmp_path / "store")


@pytest.fixture
def timeline(qtbot: Any, result: AuditResult) -> tuple[QListView, TimelineModel]:
    model = TimelineModel()
    model.set_timeline(result.timeline, True, names=roster_of(result).names)
    view = QListView()
    view.setModel(model)
    view.setItemDelegate(MessageDelegate(view))
    view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
    view.resize(720, 900)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    return view, model


def _message_row(model: TimelineModel, sender: str) -> int:
    return next(
        i
        for i in range(model.rowCount())
        if model.index(i).data(Roles.Sender) == sender and model.index(i).data(Roles.Kind) == "text"
    )


def _count(
    image: QImage, color: str, x0: int, y0: int, x1: int, y1: int, tolerance: int = 40
) -> int:
    """Pixels close to ``color`` in the box."""
    want = QColor(color)
    n = 0
    for y in range(max(0, y0), min(image.height(), y1)):
        for x in range(max(0, x0), min(image.width(), x1)):
            c = image.pixelColor(x, y)
            diff = abs(c.red() - want.red()) + abs(c.green() - want.green())
            if diff + abs(c.blue() - want.blue()) < tolerance:
                n += 1
    return n


def _orange(image: QImage, x0: int, y0: int, x1: int, y1: int) -> int:
    n = 0
    for y in range(max(0, y0), min(image.height(), y1)):
        for x in range(max(0, x0), min(image.width(), x1)):
            c = image.pixelColor(x, y)
            n += c.red() > c.green() > c.blue() and c.red() - c.blue() > 80
    return n


def test_a_padded_name_leaves_the_real_id_and_the_badge_in_the_row(
    timeline: tuple[QListView, TimelineModel],
) -> None:
    view, model = timeline
    view.grab().save(str(SHOTS / "hostile-timeline.png"))
    image = view.viewport().grab().toImage()
    width = view.viewport().width()
    for sender in (IMPOSTOR_ID, ALICE_ID, HTML_ID, "bob@example.com"):
        index = model.index(_message_row(model, sender))
        rect = view.visualRect(index)
        top = rect.top()
        # The trust badge ("verified": a green disc) is painted inside the header band.
        green = _count(image, TRUST_COLORS["verified"], LEFT, top, width, top + 30)
        assert green > 40, f"no trust badge visible for {sender!r}"
        option = QStyleOptionViewItem()
        option.rect = rect
        option.font = view.font()
        head = view.itemDelegate().header_layout(option, index, top + 4)
        assert head.badge_rect.right() <= width and head.id_rect.right() <= width
        assert "\u3164" not in head.name and "\u200b" not in head.name and "  " not in head.name
        assert head.ident  # the id is always drawn, whatever the name
        if sender == IMPOSTOR_ID:
            assert head.name == "Alice ." and head.ident == IMPOSTOR_ID
        if sender == "bob@example.com":  # the override is gone: the name reads as written
            assert "\u202e" not in head.name and head.ident == "bob@example.com"


def test_an_imitating_id_is_marked(
    timeline: tuple[QListView, TimelineModel], result: AuditResult, qtbot: Any
) -> None:
    view, model = timeline
    impostor = model.index(_message_row(model, IMPOSTOR_ID))
    alice = model.index(_message_row(model, ALICE_ID))
    warning = impostor.data(Roles.SenderWarning)
    assert warning and "Cyrillic" in warning and f"looks like {ALICE_ID}" in warning
    assert alice.data(Roles.SenderWarning) is None
    image = view.viewport().grab().toImage()
    for index, marked in ((impostor, True), (alice, False)):
        rect = view.visualRect(index)
        option = QStyleOptionViewItem()
        option.rect = rect
        option.font = view.font()
        head = view.itemDelegate().header_layout(option, index, rect.top() + 4)
        assert bool(head.warning) is marked and (head.mark_rect.width() > 0) is marked
        # Orange-ish pixels between the id and the time: the painted ⚠.
        box = (head.id_rect.right() + 1, rect.top(), head.time_rect.left(), rect.top() + 30)
        assert (_orange(image, *box) > 5) is marked

    members = MembersModel()
    members.set_state(roster_of(result))
    row = members.row_of(IMPOSTOR_ID)
    assert f"looks like {ALICE_ID}" in members.index(row).data(MemberRoles.IdWarning)
    assert members.index(members.row_of(ALICE_ID)).data(MemberRoles.IdWarning) is None
    panel = MembersPanel(members)
    qtbot.addWidget(panel)
    panel.resize(320, 1200)
    panel.show()
    qtbot.waitExposed(panel)
    panel.grab().save(str(SHOTS / "hostile-members.png"))
    card = panel.card(row)
    assert card.warning_label is not None and card.warning_label.isVisible()
    assert f"looks like {ALICE_ID}" in card.warning_label.text()
    assert card.id_label.isVisible() and card.id_label.text() == IMPOSTOR_ID
    assert card.name_label.text() == "Alice ."  # the padding is gone
    assert panel.card(members.row_of(ALICE_ID)).warning_label is None


def _tooltip(view: QListView, row: int) -> str:
    rect = view.visualRect(view.model().index(row, 0))
    pos = rect.topLeft() + QPoint(LEFT + 4, 8)
    event = QHelpEvent(QEvent.Type.ToolTip, pos, view.viewport().mapToGlobal(pos))
    QToolTip.hideText()
    view.viewportEvent(event)
    return QToolTip.text()


def test_tooltips_and_labels_show_html_in_ids_and_names_as_text(
    timeline: tuple[QListView, TimelineModel], result: AuditResult, qtbot: Any
) -> None:
    view, model = timeline
    tip = _tooltip(view, _message_row(model, HTML_ID))
    assert "&lt;img src=x&gt;&lt;b&gt;eve&lt;/b&gt;@example.com" in tip
    assert "<img" not in tip and "<b>eve" not in tip

    rooms = RoomsModel()
    rooms.add(RoomItem("s1/general", "<b>Bold</b>\u202e", "<img src=x>"))
    index = rooms.index(0)
    assert "&lt;img src=x&gt;" in index.data(Qt.ItemDataRole.ToolTipRole)
    assert "<img" not in index.data(Qt.ItemDataRole.ToolTipRole)
    assert index.data(RoomRoles.Name) == "<b>Bold</b>"  # shown as text by the delegate

    members = MembersModel()
    members.set_state(roster_of(result))
    eve = members.index(members.row_of(HTML_ID))
    assert "<img" not in eve.data(Qt.ItemDataRole.ToolTipRole)
    panel = MembersPanel(members)
    qtbot.addWidget(panel)
    card = panel.card(members.row_of(HTML_ID))
    for label in (card.name_label, card.id_label):
        assert label.textFormat() == Qt.TextFormat.PlainText
    assert card.id_label.text() == HTML_ID
    device = members.member(members.row_of(HTML_ID)).devices[0]
    dialog = VerifyDeviceDialog(device, "<b>Eve</b>")
    qtbot.addWidget(dialog)
    assert "&lt;img src=x&gt;" in dialog.title_label.text() and "<img" not in (
        dialog.title_label.text()
    )
    assert "<b>" not in dialog.windowTitle().replace("<b>Eve</b>", "")

    meta_bytes = build_metadata(
        room_id=ROOM,
        name="<img src=x>Room\u202e",
        created_at="2026-01-01T00:00:00Z",
        creator_id=HTML_ID,
        signing_key=SigningKey(bytes([KEYS[HTML_ID]]) * 32),
    )
    meta, _ = parse_metadata(meta_bytes, ROOM, f"rooms/{ROOM}/metadata.json")
    audit = AuditDialog()
    qtbot.addWidget(audit)
    found = Finding(
        Kind.BAD_JSON,
        "not JSON: <b>x</b>",
        path=f"rooms/{ROOM}/logs/2026-01-01/messages_1_2_<img src=x>.jsonl",
        line=1,
        event_id="<b>e</b>",
    )
    audit.set_view(AuditView(ROOM, result, meta, [found], storage_name="<b>store</b>"))
    for column in (Column.WHERE, Column.EVENT):
        tip = audit.model.index(0, column).data(Qt.ItemDataRole.ToolTipRole)
        assert "&lt;" in tip and "<img" not in tip and "<b>e" not in tip
    assert "<img" not in audit.detail.toHtml() and "&lt;img src=x&gt;" in audit.detail.toHtml()
    assert "&lt;img src=x&gt;Room" in audit.metadata_label.text()
    assert "<img" not in audit.metadata_label.text() and "<img" not in audit.subtitle.text()
    assert "\u202e" not in audit.windowTitle()
    audit.grab().save(str(SHOTS / "hostile-audit.png"))


def test_notifications_carry_no_markup_controls_or_padding() -> None:
    title, text = notification_text(
        f"<b>{IMPOSTOR_ID}</b>\u202e\x1b[2J in <img src=x>",
        "<img src=http://127.0.0.1:9/x>" + PADDING + "hi\nthere",
    )
    assert "<" not in title + text and ">" not in title + text
    assert "\\u202e" in title and "\\x1b" in title  # the id's tricks are spelled out
    assert text.endswith("hi there") and "\u3164" not in text and "\u200b" not in text
    assert not Qt.mightBeRichText(title)


def test_a_notification_cannot_spell_a_control_as_an_entity() -> None:
    """Red team (round 24): desktop notification servers read the body as markup, and
    markup decodes character references: "&#x202e;" in a message became a right-to-left
    override in the notification ("invoice fdp.exe" shown as "invoice exe.pdf"), past the
    cleaning of the characters themselves. No "&" reaches the server as one."""
    title, text = notification_text(
        "bob@example.com &#x202e; in x", "invoice &#x202E;fdp.exe &amp;"
    )
    assert "&" not in title + text
    assert "#x202E;fdp.exe" in text  # the text itself is kept, visibly
