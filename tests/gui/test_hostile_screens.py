"""Red team of the screens (round 16): what a hostile member writes, painted through the
real model, delegate and view offscreen, must stay inside its own row and say whose it
is. Each test names what it looked like before its fix."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from desk import Desk, RecordingTray, settings_for
from nacl.signing import SigningKey
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QTextDocument
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QStyleOptionViewItem
from test_app_flows import store  # noqa: F401 - fixtures
from test_relations_view import ALICE, BOB, CAROL, Scene, model_of
from test_replay_other_key_gui import ROOM, eve_replays, stored

from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.audit.dialog import AuditDialog
from bucket_chat_desktop.gui.audit.view import AuditView
from bucket_chat_desktop.gui.main_window import TimelineView
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.search import SearchFeature
from bucket_chat_desktop.gui.style import TRUST_COLORS
from bucket_chat_desktop.gui.tray import Notifier
from bucket_chat_desktop.gui.widgets.message_delegate import BODY_SLACK, NEW_COLOR, MessageDelegate
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Malformed, parse_event
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.protocol.ids import client_id_for, segment_path
from bucket_chat_desktop.protocol.metadata import build_metadata, parse_metadata
from bucket_chat_desktop.protocol.signing import build_event, public_key_text, sign_mapping
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

EVE = ("eve@example.com", SigningKey(b"\x0e" * 32), "Eve")
BOB_W = (BOB[0], BOB[1])  # Bob as a ``RoomWriter`` takes him
# "Zalgo" text: each letter carries 66 combining marks, which a font stacks above and
# below it, far past the line the letter is on.
MARKS = "\u0301\u0300\u0302\u0303\u0304\u0306\u0307\u0308\u030a\u030b\u030c" * 6


def _paint_alone(view: TimelineView, delegate: MessageDelegate, row: int) -> tuple[QImage, QRect]:
    """The row painted by the view's delegate into an image three times its height, in
    the middle third, on white: what it draws outside its own rectangle is visible."""
    index = view.model().index(row, 0)
    rect = view.visualRect(index)
    h = rect.height()
    image = QImage(rect.width(), 3 * h, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    option = QStyleOptionViewItem()
    view.initViewItemOption(option)
    option.rect = QRect(0, h, rect.width(), h)
    painter = QPainter(image)
    delegate.paint(painter, option, index)
    painter.end()
    return image, QRect(option.rect)


def _ink_outside(image: QImage, rect: QRect) -> int:
    white = QColor("white").rgba()
    return sum(
        1
        for y in range(image.height())
        if not rect.top() <= y <= rect.bottom()
        for x in range(image.width())
        if image.pixel(x, y) != white
    )


def _view_of(qtbot: Any, scene: Scene) -> tuple[TimelineView, MessageDelegate]:
    view = TimelineView()
    qtbot.addWidget(view)
    delegate = MessageDelegate(view)
    view.setItemDelegate(delegate)
    view.setModel(model_of(scene))
    view.resize(700, 900)
    view.show()
    qtbot.waitExposed(view)
    view.executeDelayedItemsLayout()
    return view, delegate


def _marked_room(marks: str) -> tuple[Scene, list[str]]:
    scene = Scene()
    for who in (ALICE, BOB, CAROL, EVE):
        scene.join(who)
    scene.msg(BOB, "the plan is on the wiki")
    text = "".join(ch + marks for ch in "HELLO")
    plain = scene.msg(EVE, "plain " + text)
    rich = scene.msg(EVE, "**rich** " + text)
    scene.msg(CAROL, "noted")
    return scene, [plain.event_id, rich.event_id]


def test_combining_marks_stay_inside_their_own_row(qtbot: Any) -> None:
    """Eve's "Zalgo" message (every letter under 66 combining marks): the marks were
    painted a hundred pixels above and below her row, over Bob's message above and
    Carol's below (both the plain-text and the Markdown path, the thread panel too), and
    over her own row's name, id and badge."""
    safe._reported.clear()
    scene, ids = _marked_room(MARKS)
    view, delegate = _view_of(qtbot, scene)
    calm_scene, calm_ids = _marked_room("")  # the same rows, the same times, no marks
    calm_view, calm_delegate = _view_of(qtbot, calm_scene)
    model = view.model()
    for event_id, calm_id in zip(ids, calm_ids, strict=True):
        row = model.locate(event_id)  # type: ignore[attr-defined]
        calm_row = calm_view.model().locate(calm_id)  # type: ignore[attr-defined]
        assert row is not None and calm_row is not None
        image, rect = _paint_alone(view, delegate, row)
        assert _ink_outside(image, rect) == 0
        # the header (name, id, time, badge) is painted as without the marks
        calm, _ = _paint_alone(calm_view, calm_delegate, calm_row)
        body_y = delegate.regions(model.index(row, 0), rect, view.font()).body_y
        header = QRect(0, rect.top(), rect.width(), body_y - BODY_SLACK - rect.top())
        assert image.copy(header) == calm.copy(header)
    assert safe.failures() == {}


def test_a_reply_to_an_id_replayed_meanwhile_keeps_its_text(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
) -> None:
    """Alice answers Dave; before she presses Enter, Eve signs a message of her own under
    Dave's id (PROTOCOL.md section 6 step 1: both copies are shown, and the id takes no
    replies). Enter cleared the composer and the reply was then refused: Alice's text was
    gone, with only a status line saying why. Now it stays in the composer, still a
    reply, with the reason; and a reply to either copy is refused before anything is
    typed (the bar offered it, the send failed)."""
    safe._reported.clear()
    daves = stored(store, "Checking it now.")
    desk = launch(settings_for(store, [ROOM, "general"]))
    desk.wait_loaded(ROOM)
    window = desk.window
    actions = window.relation_actions
    assert actions is not None
    composer = window.composer
    errors: list[tuple[str, str]] = []
    desk.controller.error.connect(lambda what, why: errors.append((what, why)))
    model = desk.model(ROOM)
    row = desk.wait_index(ROOM, "Checking it now.")
    target = actions.target_at(model.index(row, 0))
    assert target is not None
    actions.reply(target)
    assert composer.reply_to == daves.event_id
    QTest.keyClicks(composer, "No, the build is fine")
    eve_replays(store, daves)
    desk.wait_row(ROOM, "The build is broken, do not use it.")
    QTest.keyClick(composer, Qt.Key.Key_Return)
    assert composer.toPlainText() == "No, the build is fine"
    assert composer.reply_to == daves.event_id
    assert errors and "two devices used this message's id" in errors[-1][1]
    # Escape leaves the reply; replying to either copy now is refused at once
    QTest.keyClick(composer, Qt.Key.Key_Escape)
    assert composer.reply_to is None
    errors.clear()
    for i, r in enumerate(desk.rows(ROOM)):
        if r.event_id == daves.event_id:
            copy = actions.target_at(model.index(i, 0))
            assert copy is not None
            actions.reply(copy)
            assert composer.reply_to is None
    assert len(errors) == 2 and all("two devices" in why for _, why in errors)
    assert composer.toPlainText() == "No, the build is fine"
    assert safe.failures() == {}


def test_an_edit_of_a_message_replayed_meanwhile_keeps_its_text(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
) -> None:
    """Alice edits her message; Eve signs a copy of its id before Alice presses Enter.
    The edit was refused after the composer had given the new text up (the draft of
    before the edit came back, the new text was lost). Now the composer stays in the
    edit with its text and says why."""
    safe._reported.clear()
    desk = launch(settings_for(store, [ROOM, "general"]))
    desk.wait_loaded(ROOM)
    window = desk.window
    composer = window.composer
    errors: list[tuple[str, str]] = []
    desk.controller.error.connect(lambda what, why: errors.append((what, why)))
    QTest.keyClicks(composer, "Ship it on Friday")
    QTest.keyClick(composer, Qt.Key.Key_Return)
    desk.wait_row(ROOM, "Ship it on Friday")
    QTest.keyClick(composer, Qt.Key.Key_Up)  # edit the last own message
    qtbot.waitUntil(lambda: composer.editing is not None)
    mine = stored(store, "Ship it on Friday")
    assert composer.editing == mine.event_id
    composer.selectAll()
    QTest.keyClicks(composer, "Ship it on Monday")
    eve_replays(store, mine)
    desk.wait_row(ROOM, "The build is broken, do not use it.")
    QTest.keyClick(composer, Qt.Key.Key_Return)
    assert composer.editing == mine.event_id
    assert composer.toPlainText() == "Ship it on Monday"
    assert errors and "two devices used this message's id" in errors[-1][1]
    # deleting it is refused before the dialog asks for a reason (it was refused after)
    actions = window.relation_actions
    assert actions is not None
    row = next(i for i, r in enumerate(desk.rows(ROOM)) if r.body == "Ship it on Friday")
    target = actions.target_at(desk.model(ROOM).index(row, 0))
    assert target is not None and target.can_delete
    errors.clear()
    actions.delete(target)
    assert actions.delete_dialog is None
    assert errors and "two devices used this message's id" in errors[-1][1]
    assert safe.failures() == {}


def test_a_notification_shows_both_ends_of_a_long_sender_id(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Eve's id is Bob's followed by a hundred dots and her own domain, under the name
    "Bob": the timeline shows both ends of it ("bob@example.com…evil.org"), but the tray
    notification's title was cut after 120 characters — "Bob (bob@example.com......…
    (25 more characters)": her domain and the room were gone. The id is now shortened in
    its middle, as the timeline does, and the room is named after it."""
    storage = LocalStorage(tmp_path / "store")
    long_id = "bob@example.com" + "." * 100 + "evil.org"
    wait_for(qtbot, RoomWriter(storage, "a", *BOB_W).send([Draft.text("hello")]))
    wait_for(qtbot, RoomWriter(storage, "b", *BOB_W).send([Draft.text("hi")]))
    desk = launch(settings_for(tmp_path / "store", ["a", "b"]))
    desk.wait_loaded("a", "b")
    tray = RecordingTray(desk.window)
    notifier = Notifier(desk.window, desk.controller, tray)  # as on a desktop with a tray
    eve = RoomWriter(storage, "b", long_id, EVE[1], displayname="Bob")
    wait_for(qtbot, eve.send([Draft.text("pay my new account")]))
    qtbot.waitUntil(lambda: len(tray.messages) == 1, timeout=15_000)
    assert len(notifier.shown) == 1
    title, text = tray.messages[0]
    assert text == "pay my new account"
    assert title.startswith("Bob (bob@example.com") and title.endswith("evil.org) in b")
    assert "…" in title and len(title) <= 120


def test_a_right_to_left_room_name_leaves_the_audit_line_in_order(qtbot: Any) -> None:
    """The audit's line under its headline is "<name> · <room id> on <storage> · N events
    in M segments". A room name in Hebrew made the whole line a right-to-left one (right
    aligned, read from the right), and the room id "42" after the name was drawn before
    it, as part of it. Now the name is isolated and the line reads left to right."""
    name = "\u05d7\u05d3\u05e8 \u05e9\u05dc\u05e0\u05d5"  # "our room"
    meta_bytes = build_metadata(
        room_id="42",
        name=name,
        created_at="2026-01-01T00:00:00Z",
        creator_id=BOB[0],
        signing_key=BOB[1],
    )
    meta, _ = parse_metadata(meta_bytes, "42", "rooms/42/metadata.json")
    result = RoomLedger("42").audit()  # a room with no messages yet
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.set_view(AuditView("42", result, meta, [], storage_name="Team share"))
    doc = QTextDocument()
    doc.setDefaultFont(dialog.subtitle.font())
    doc.setHtml(dialog.subtitle.text())
    doc.setTextWidth(2000)  # one line
    assert doc.size().height() > 0  # laid out
    block = doc.firstBlock()
    assert block.textDirection() == Qt.LayoutDirection.LeftToRight
    text = block.text()
    layout = block.layout()
    assert layout.lineCount() == 1
    line = layout.lineAt(0)
    x_of = [line.cursorToX(i)[0] for i in range(len(text) + 1)]
    name_at = text.index(name)
    room_at = text.index(" · 42 on")
    # every letter of the name is drawn left of the separator and the room id after it
    assert max(x_of[name_at : name_at + len(name) + 1]) <= min(
        x_of[room_at], x_of[room_at + 3], x_of[room_at + 4]
    )
    assert x_of[room_at + 3] < x_of[room_at + 5] < x_of[text.index("segments")]


def test_a_replayed_first_unread_message_gets_one_new_messages_line(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Bob's message arrives while Alice looks at another room: it is the first unread
    one. Eve signs a copy of its id dated yesterday (shown at the top, section 6 step
    1). Opening the room drew the red "New messages" line twice: above Bob's message and
    above Eve's copy, over a day of history already read, as if all of it were new. The
    line is drawn once, above the row the "Jump to new messages" button goes to."""
    safe._reported.clear()
    storage = LocalStorage(tmp_path / "store")
    now = int(time.time() * 1000)
    bob = RoomWriter(storage, "c", *BOB_W, displayname="Bob")
    wait_for(qtbot, bob.send([Draft.text(f"read {n}") for n in range(3)]))
    wait_for(qtbot, RoomWriter(storage, "a", *BOB_W).send([Draft.text("elsewhere")]))
    desk = launch(settings_for(tmp_path / "store", ["c", "a"]))
    desk.wait_loaded("c", "a")
    qtbot.waitUntil(lambda: desk.settings.read_marker(desk.key("c")) is not None, timeout=15_000)
    desk.select("a")
    _path, sent = wait_for(qtbot, bob.send([Draft.text("new one")]))
    new = next(e for e in sent if e.type == MESSAGE)
    _eve_copy(tmp_path / "store", "c", new.event_id, now - 86_400_000, "copied")
    desk.wait_row("c", "copied")
    qtbot.waitUntil(lambda: desk.item("c").unread == 1, timeout=15_000)
    desk.select("c")
    social = desk.window.social
    qtbot.waitUntil(lambda: social.marker == new.event_id, timeout=15_000)
    view = desk.window.timeline
    delegate = view.itemDelegate()
    assert isinstance(delegate, MessageDelegate)
    model = desk.model("c")
    red = QColor(NEW_COLOR).rgb()
    lined = []
    for row in range(model.rowCount()):
        image, rect = _paint_alone(view, delegate, row)
        if any(image.pixel(x, rect.top() + 12) == red for x in range(rect.width())):
            lined.append(model.row(row).body)
    assert lined == ["new one"]
    assert model.row(social.marker_row()).body == "new one"
    assert safe.failures() == {}


def _eve_copy(root: Path, room: str, event_id: str, ts: int, body: str) -> None:
    """Eve's join and a message of hers under ``event_id``, both dated ``ts``: a copy
    of another member's id (signed by her key, its date her choice)."""
    join = build_event(
        room_id=room,
        sender_id=EVE[0],
        event_type=MEMBER,
        content={"membership": "join", "displayname": "Eve"},
        timestamp_ms=ts,
        unique="11111111-1111-4111-8111-111111111111",
        prev_event_hash=None,
        signing_key=EVE[1],
    )
    copy = sign_mapping(
        {
            "event_id": event_id,
            "room_id": room,
            "sender_id": EVE[0],
            "timestamp_ms": ts + 5,
            "type": MESSAGE,
            "parent_event_id": None,
            "prev_event_hash": join.hash,
            "sender_key": public_key_text(EVE[1]),
            "content": {"body": body, "msgtype": "m.text"},
        },
        EVE[1],
    )
    client = client_id_for(EVE[0], bytes(EVE[1].verify_key))
    path = root / segment_path(room, ts, ts + 5, client)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(join.raw)) + "\n" + json.dumps(copy) + "\n")


def test_a_search_hit_on_a_replayed_id_flashes_only_its_own_row(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
) -> None:
    """Eve's copy of Dave's message id says "The build is broken". Found by search and
    opened, the view flashed every row with that id: Dave's "Checking it now." glowed
    beside it, as if it were what was found. Only the row the hit names is flashed."""
    safe._reported.clear()
    daves = stored(store, "Checking it now.")
    eve_replays(store, daves)
    desk = launch(settings_for(store, [ROOM, "general"]))
    desk.wait_loaded(ROOM)
    desk.wait_row(ROOM, "The build is broken, do not use it.")
    indexes = [a.index for a in desk.controller.client._storages.values()]
    qtbot.waitUntil(lambda: not any(i.text_pending for i in indexes), timeout=15_000)
    window = desk.window
    feature = window.findChild(SearchFeature)
    assert feature is not None
    feature.open(everywhere=False)
    panel = feature.panel
    QTest.keyClicks(panel.field, "build broken")
    hits = panel.model
    qtbot.waitUntil(lambda: hits.rowCount() == 1, timeout=10_000)
    QTest.keyClick(panel.field, Qt.Key.Key_Return)
    view = window.timeline
    qtbot.waitUntil(lambda: view.flash_id == daves.event_id, timeout=10_000)
    model = desk.model(ROOM)
    delegate = view.itemDelegate()
    assert isinstance(delegate, MessageDelegate)
    glowing = []
    for row in range(model.rowCount()):
        image, rect = _paint_alone(view, delegate, row)
        if image.pixel(rect.right() - 3, rect.top() + 2) != QColor("white").rgb():
            glowing.append(model.row(row).body)
    assert glowing == ["The build is broken, do not use it."]
    assert model.row(view.currentIndex().row()).sender_id == EVE[0]
    assert safe.failures() == {}


def _detail_of(qtbot: Any, marks: str) -> tuple[QImage, int]:
    """The audit window's description of a finding whose object name, event id and
    message carry ``marks`` on each letter of "EVIL", and where the part read from
    storage starts in it (its last paragraph)."""
    evil = "".join(ch + marks for ch in "EVIL")
    found = Finding(
        Kind.BAD_JSON,
        f"not JSON {evil}",
        path=f"rooms/r/logs/2026-01-01/messages_1_2_x{evil}.jsonl",
        line=2,
        event_id=f"r::{evil}::2",
    )
    dialog = AuditDialog()
    qtbot.addWidget(dialog)
    dialog.set_view(AuditView("r", RoomLedger("r").audit(), None, [found]))
    dialog.resize(1000, 700)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.table.selectRow(0)
    doc = dialog.detail.document()
    last = doc.lastBlock()
    while last.isValid() and "Where:" not in last.text():
        last = last.previous()
    top = int(doc.documentLayout().blockBoundingRect(last).top())
    return dialog.detail.viewport().grab().toImage(), top


def test_combining_marks_in_a_finding_stay_off_the_explanation(qtbot: Any) -> None:
    """A segment named with "Zalgo" letters (the name's last part is free text) and an
    event id of them: the audit window's description of the finding stacked the marks a
    hundred pixels up, over "What to do" and the finding's title. Past two marks on one
    letter they are spelled out (\\u0301), as an id's invisible characters are."""
    image, top = _detail_of(qtbot, MARKS)
    calm, calm_top = _detail_of(qtbot, "")
    assert top == calm_top
    above = QRect(0, 0, image.width(), top - 2)
    assert image.copy(above) == calm.copy(above)


def _reply_row(qtbot: Any, marks: str) -> tuple[QImage, QRect, int]:
    """Carol's reply to a message of a member whose id carries ``marks`` on its first
    letter, painted alone; and where its quote starts."""
    eve = ("e" + marks + "ve@example.com", EVE[1], "Eve")
    scene = Scene()
    for who in (ALICE, BOB, CAROL, eve):
        scene.join(who)
    hello = scene.msg(eve, "hello")
    reply = scene.msg(CAROL, "the numbers are wrong", parent=hello.event_id)
    view, delegate = _view_of(qtbot, scene)
    row = view.model().locate(reply.event_id)  # type: ignore[attr-defined]
    image, rect = _paint_alone(view, delegate, row)
    quote = delegate.regions(view.model().index(row, 0), rect, view.font()).quote
    assert quote is not None
    return image, rect, quote.top()


def test_marks_on_a_quoted_id_stay_off_the_replying_members_name(qtbot: Any) -> None:
    """Eve's id has sixty combining marks on its "e". Quoted in Carol's reply, the id's
    marks were stacked over Carol's own header line: her id was struck through. Past two
    marks on a letter, an id spells them out (``shown_id``), wherever it is shown."""
    image, rect, quote_top = _reply_row(qtbot, MARKS)
    calm, _, calm_top = _reply_row(qtbot, "\u0301")
    assert quote_top == calm_top
    header = QRect(0, rect.top(), rect.width(), quote_top - rect.top())
    assert image.copy(header) == calm.copy(header)


MALLORY = ("mallory@example.com", SigningKey(b"\x0d" * 32))
DAVE = ("dave@example.com", SigningKey(b"\x05" * 32))


def test_the_new_messages_line_goes_above_a_message_placed_before_the_first_unread(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Mallory's clock runs ten minutes fast: her message is the room's last row. While
    Alice reads another room, Carol's message arrives (placed before Mallory's: the
    first unread one), then Dave's, written a moment before Carol's and read after it
    (placed before hers). Both counted unread, but the "New messages" line went above
    Carol's: Dave's unread message sat above it, among what was read."""
    storage = LocalStorage(tmp_path / "store")
    now = int(time.time() * 1000)
    wait_for(qtbot, RoomWriter(storage, "c", *BOB_W, displayname="Bob").send([Draft.text("hi")]))
    mallory = RoomWriter(storage, "c", *MALLORY, clock=lambda: now + 10 * 60_000)
    wait_for(qtbot, mallory.send([Draft.text("from a fast clock")]))
    wait_for(qtbot, RoomWriter(storage, "a", *BOB_W).send([Draft.text("elsewhere")]))
    desk = launch(settings_for(tmp_path / "store", ["a", "c"]))
    desk.wait_loaded("a", "c")
    assert desk.controller.current == desk.key("a")
    started = int(time.time() * 1000)
    carol = RoomWriter(storage, "c", CAROL[0], CAROL[1], clock=lambda: started + 2_000)
    wait_for(qtbot, carol.send([Draft.text("Carol's")]))
    qtbot.waitUntil(lambda: desk.item("c").unread == 1, timeout=15_000)
    dave = RoomWriter(storage, "c", *DAVE, clock=lambda: started + 1_000)
    wait_for(qtbot, dave.send([Draft.text("Dave's")]))
    qtbot.waitUntil(lambda: desk.item("c").unread == 2, timeout=15_000)
    bodies = [r.body for r in desk.rows("c")]
    assert bodies.index("Dave's") < bodies.index("Carol's") < bodies.index("from a fast clock")
    desk.select("c")
    social = desk.window.social
    qtbot.waitUntil(lambda: social.marker != "", timeout=15_000)
    assert desk.model("c").row(social.marker_row()).body == "Dave's"


def test_a_replayed_message_says_its_edits_and_deletion_are_not_shown(qtbot: Any) -> None:
    """Bob wrote "Pay invoice 1234 to account 555", then corrected the account by an
    edit. Eve signs a message of hers under the id (PROTOCOL.md 6 step 1): the id takes
    no relations any more, so Bob's row shows his original text again — the account he
    corrected — verified, and nothing on it said why. Each copy now says that another
    device used its id and that its edits, deletion, reactions and replies are not shown."""
    safe._reported.clear()
    scene = Scene()
    for who in (ALICE, BOB, CAROL):
        scene.join(who)
    pay = scene.msg(BOB, "Pay invoice 1234 to account 555")
    scene.edit(BOB, pay, "Pay invoice 1234 to account 777")
    key = EVE[1]
    copy = sign_mapping(
        {
            "event_id": pay.event_id,
            "room_id": pay.room_id,
            "sender_id": EVE[0],
            "timestamp_ms": pay.timestamp_ms + 1,
            "type": MESSAGE,
            "parent_event_id": None,
            "prev_event_hash": None,
            "sender_key": public_key_text(key),
            "content": {"body": "ok", "msgtype": "m.text"},
        },
        key,
    )
    scene.items.append(scene.items[-1]._replace(event=_parsed(copy, pay.room_id), line=99))
    view, delegate = _view_of(qtbot, scene)
    model = view.model()
    copies = [i for i in range(model.rowCount()) if model.row(i).event_id == pay.event_id]  # type: ignore[attr-defined]
    assert len(copies) == 2
    warn = QColor(TRUST_COLORS["key-changed"]).rgb()
    for row in copies:
        index = model.index(row, 0)
        image, rect = _paint_alone(view, delegate, row)
        note = delegate.regions(index, rect, view.font()).note
        assert note is not None and note.top() > rect.top()
        ink = [
            image.pixel(x, y)
            for y in range(note.top(), note.bottom())
            for x in range(note.left(), note.right())
        ]
        assert warn in ink  # the note is drawn, in the warning colour
    assert model.index(copies[0], 0).data(Roles.Body) == "Pay invoice 1234 to account 555"
    assert safe.failures() == {}


def _parsed(raw: dict[str, Any], room: str) -> Any:
    event = parse_event(raw, room)
    assert not isinstance(event, Malformed)
    return event
