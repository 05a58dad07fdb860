"""Mentions, notification levels, the "New messages" line, plain previews and the join
dialog, as a user meets them: ``app.run`` builds the window exactly as at start-up, a
real local folder is the storage, and other people (Carol, Dave) write into it through
``RoomWriter`` in this process while the app watches the folder.

Screens are rendered to PNGs (``shot``; set $BUCKET_CHAT_GUI_SHOTS to keep them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import join_rows
import pytest
from conftest import shot, wait_for
from desk import ALICE, Desk, RecordingTray, answer_when_shown, preview_line, settings_for
from nacl.signing import SigningKey
from PySide6 import QtGui
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui.models.rooms_model import RoomRoles
from bucket_chat_desktop.gui.style import TRUST_COLORS, WARNING_MARK
from bucket_chat_desktop.gui.tray import Notifier
from bucket_chat_desktop.gui.widgets.message_delegate import MENTION_COLOR
from bucket_chat_desktop.gui.widgets.room_dialogs import RoomDialog
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.protocol.untrusted_text import html_escape, one_line
from bucket_chat_desktop.settings import Settings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.room_objects import StorageRooms, storage_rooms
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = ("carol@example.com", SigningKey(b"\x03" * 32), "Carol")
DAVE = ("dave@example.com", SigningKey(b"\x05" * 32), "Dave")
ERIN = ("erin@example.com", SigningKey(b"\x0b" * 32), "Erin")


class People:
    """Carol and Dave writing into the shared folder (their own devices' chains)."""

    def __init__(self, root: Path) -> None:
        self.storage = LocalStorage(root)
        self._writers: dict[tuple[str, str], RoomWriter] = {}

    def writer(self, who: tuple[str, SigningKey, str], room: str) -> RoomWriter:
        key = (who[0], room)
        if key not in self._writers:
            self._writers[key] = RoomWriter(self.storage, room, who[0], who[1], displayname=who[2])
        return self._writers[key]

    async def create(self, room: str, name: str) -> None:
        await self.writer(CAROL, room).write_metadata(name, "2026-01-05T09:00:00.000Z")

    async def say(self, who: tuple[str, SigningKey, str], room: str, *texts: str) -> None:
        await self.writer(who, room).send([Draft.text(t) for t in texts])

    async def send(self, who: tuple[str, SigningKey, str], room: str, content: Any) -> None:
        await self.writer(who, room).send([Draft("m.room.message", content)])


@pytest.fixture
def store(tmp_path: Path, qtbot: Any, qloop: Any) -> Path:
    """A shared folder with two rooms: Project Falcon and General."""
    root = tmp_path / "store"
    people = People(root)
    wait_for(qtbot, people.create("falcon", "Project Falcon"))
    wait_for(qtbot, people.say(CAROL, "falcon", "The new build is up."))
    wait_for(qtbot, people.say(DAVE, "falcon", "Checking it now."))
    wait_for(qtbot, people.create("general", "General"))
    wait_for(qtbot, people.say(CAROL, "general", "Welcome, everyone!"))
    # Dave has written there before: a newcomer's first message makes the app audit the
    # room again (new key) instead of appending, and a re-audit counts nothing unread.
    wait_for(qtbot, people.say(DAVE, "general", "Hi all."))
    return root


@pytest.fixture
def people(store: Path) -> People:
    return People(store)


# -- mentions: completion -------------------------------------------------------------------


def test_at_lists_members_filters_and_inserts_a_mention_that_is_sent_with_its_field(
    qtbot: Any, launch: Callable[..., Desk], store: Path, tmp_path: Path
) -> None:
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_row("falcon", "Checking it now.")
    window = desk.window
    composer, popup = window.composer, window.social.popup
    composer.setFocus()

    QTest.keyClicks(composer, "Hi @")
    assert popup.isVisible()
    listed = [popup.item(i).text() for i in range(popup.count())]
    assert len(listed) == 2  # Carol and Dave; never the user herself
    assert listed[0].startswith("Carol") and "carol@example.com" in listed[0]
    assert listed[1].startswith("Dave") and "dave@example.com" in listed[1]
    shot(window, "mention-list", tmp_path)

    names, asked = popup.names, []
    popup.names = lambda: asked.append(1) or names()
    QTest.keyClicks(composer, "da")  # filtered as the user types
    assert [popup.item(i).text().split()[0] for i in range(popup.count())] == ["Dave"]
    # once a keystroke, though each brings textChanged and cursorPositionChanged
    assert len(asked) == 2
    QTest.keyClick(composer, Qt.Key.Key_Escape)  # closes, the text stays
    assert not popup.isVisible() and composer.toPlainText() == "Hi @da"
    QTest.keyClick(composer, Qt.Key.Key_Backspace)  # closed for this "@" until it goes
    assert not popup.isVisible()
    for _ in range(2):
        QTest.keyClick(composer, Qt.Key.Key_Backspace)
    QTest.keyClicks(composer, "@")  # a new "@" opens it again
    assert popup.isVisible() and popup.count() == 2
    QTest.keyClick(composer, Qt.Key.Key_Down)  # Carol -> Dave
    assert popup.currentItem().text().startswith("Dave")
    QTest.keyClick(composer, Qt.Key.Key_Up)
    QTest.keyClick(composer, Qt.Key.Key_Down)
    QTest.keyClick(composer, Qt.Key.Key_Return)  # inserts, does not send
    assert composer.toPlainText() == "Hi @Dave "
    assert not popup.isVisible()

    QTest.keyClicks(composer, "and @car")
    QTest.keyClick(composer, Qt.Key.Key_Tab)  # Tab inserts too (focus stays)
    assert composer.toPlainText() == "Hi @Dave and @Carol "
    QTest.keyClicks(composer, "look")
    QTest.keyClick(composer, Qt.Key.Key_Return)  # now it sends
    assert composer.toPlainText() == ""

    desk.wait_row("falcon", "Hi @Dave and @Carol look")
    row = next(r for r in desk.rows("falcon") if r.body == "Hi @Dave and @Carol look")
    # plain text for every reader, the ids in a field for clients that use it
    assert row.content["mentions"] == ["dave@example.com", "carol@example.com"]
    assert row.trust == "verified"
    segments = (store / "rooms" / "falcon" / "logs").rglob("*.jsonl")
    lines = [json.loads(line) for p in segments for line in p.read_text().splitlines()]
    sent = next(e for e in lines if e["content"].get("body") == "Hi @Dave and @Carol look")
    assert sent["content"]["mentions"] == ["dave@example.com", "carol@example.com"]


def test_a_member_whose_name_is_not_shown_as_written_is_inserted_by_id(
    qtbot: Any, launch: Callable[..., Desk], store: Path, people: People
) -> None:
    mallory = ("mallory@example.com", SigningKey(b"\x07" * 32), "Da\u202eve")
    wait_for(qtbot, people.say(mallory, "falcon", "hello"))
    # An id with markup in it: its tip said "eve" in bold (Qt takes a tip that looks
    # like markup as rich text; an id can also hold colours, tables, images).
    marked = ("<b>eve</b>@example.com", SigningKey(b"\x08" * 32), "Eve")
    wait_for(qtbot, people.say(marked, "falcon", "hi"))
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_row("falcon", "hello")
    desk.wait_row("falcon", "hi")
    composer, popup = desk.window.composer, desk.window.social.popup
    composer.setFocus()
    QTest.keyClicks(composer, "@mall")
    assert popup.count() == 1
    label = popup.item(0).text()
    assert "\u202e" not in label and label.startswith("Dave") and "mallory@example.com" in label
    QTest.keyClick(composer, Qt.Key.Key_Return)
    assert composer.toPlainText() == "@mallory@example.com "
    QTest.keyClicks(composer, "@Eve")
    assert popup.count() == 1
    tip = popup.item(0).toolTip()
    assert QtGui.Qt.mightBeRichText(tip) and "&lt;b&gt;eve&lt;/b&gt;@example.com" in tip


# Red team rt60: a member whose id imitates Carol's (Cyrillic "с" and "а") and who calls
# themself "Carol" is marked on their rows; the "@" list showed both entries alike.
IMPOSTOR = ("\u0441\u0430rol@example.com", SigningKey(b"\x09" * 32), "Carol")


def test_the_mention_list_marks_a_look_alike_id_and_never_offers_it_first(
    qtbot: Any, launch: Callable[..., Desk], store: Path, people: People, tmp_path: Path
) -> None:
    # The impostor writes first: first seen, they were listed first and chosen by Enter.
    wait_for(qtbot, people.writer(IMPOSTOR, "hangar").write_metadata("Hangar", "2026-01-05"))
    wait_for(qtbot, people.say(IMPOSTOR, "hangar", "Checking it now."))
    wait_for(qtbot, people.say(CAROL, "hangar", "The new build is up."))
    desk = launch(settings_for(store, ["hangar"]))
    desk.wait_row("hangar", "The new build is up.")
    key = desk.key("hangar")
    why = desk.controller.names(key).warning(IMPOSTOR[0])
    assert why and not desk.controller.names(key).warning(CAROL[0])

    composer, popup = desk.window.composer, desk.window.social.popup
    composer.setFocus()
    QTest.keyClicks(composer, "thanks @Car")
    assert popup.isVisible() and popup.count() == 2
    shot(desk.window, "mention-lookalike", tmp_path)
    items = [popup.item(i) for i in range(popup.count())]
    ids = [item.data(Qt.ItemDataRole.UserRole)[0] for item in items]
    assert ids == [CAROL[0], IMPOSTOR[0]]  # the marked one last, whoever came first
    real, fake = items
    assert popup.currentRow() == 0
    assert WARNING_MARK not in real.text() and WARNING_MARK not in real.toolTip()
    # marked as the timeline marks them: the mark (first: a long entry is cut at its end),
    # the warning colour, and why in the tooltip
    assert fake.text().startswith(f"{WARNING_MARK} Carol") and IMPOSTOR[0] in fake.text()
    assert fake.foreground().color() == QColor(TRUST_COLORS["key-changed"])
    tip = fake.toolTip()
    assert QtGui.Qt.mightBeRichText(tip) and WARNING_MARK in tip
    assert html_escape(one_line(why, 600)) in tip

    QTest.keyClick(composer, Qt.Key.Key_Return)  # the default: the real Carol
    assert composer.toPlainText() == "thanks @carol@example.com "
    QTest.keyClicks(composer, "!")
    QTest.keyClick(composer, Qt.Key.Key_Return)
    desk.wait_row("hangar", "thanks @carol@example.com !")
    row = next(r for r in desk.rows("hangar") if r.body == "thanks @carol@example.com !")
    assert row.content["mentions"] == [CAROL[0]]

    # typed toward the impostor's id only, the impostor alone is listed: still marked
    composer.insertPlainText("@\u0441\u0430r")  # QTest types ASCII only
    assert popup.count() == 1 and popup.item(0).text().startswith(WARNING_MARK)


# -- mentions: highlighted --------------------------------------------------------------------


def _row_image(view: Any, row: int) -> Any:
    view.scrollTo(view.model().index(row))
    rect = view.visualRect(view.model().index(row))
    pix = QPixmap(view.viewport().size())
    view.viewport().render(pix)
    return pix.toImage(), rect


def test_a_message_that_mentions_me_gets_an_accent_and_its_mentions_are_highlighted(
    qtbot: Any, launch: Callable[..., Desk], store: Path, people: People, tmp_path: Path
) -> None:
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_row("falcon", "Checking it now.")
    wait_for(qtbot, people.say(CAROL, "falcon", "@Alice can you look at the build?"))
    wait_for(qtbot, people.send(DAVE, "falcon", {"body": "see above", "mentions": [ALICE]}))
    wait_for(qtbot, people.say(DAVE, "falcon", "@Carol thanks, nobody else"))
    # a field of the wrong shape is ignored whole (and the message is shown as written)
    for bad in ([ALICE] * 65, ALICE, {"$in": [ALICE]}, [ALICE, 5]):
        wait_for(qtbot, people.send(DAVE, "falcon", {"body": f"bad {bad!r:.20}", "mentions": bad}))
    named = desk.wait_index("falcon", "@Alice can you look at the build?")
    by_field = desk.wait_index("falcon", "see above")
    other = desk.wait_index("falcon", "@Carol thanks, nobody else")
    plain = desk.wait_index("falcon", "The new build is up.")
    view, delegate = desk.window.timeline, desk.window.delegate
    model = view.model()
    assert delegate.mentions_me(model.index(named))
    assert delegate.mentions_me(model.index(by_field))  # the field alone is enough
    assert not delegate.mentions_me(model.index(other))
    assert not delegate.mentions_me(model.index(plain))

    # each is its own segment, read as the folder watcher sees them: the last one shown
    # does not mean the others are (seen under load), so wait for all four
    def bad_positions() -> list[int]:
        return [i for i, r in enumerate(desk.rows("falcon")) if r.body.startswith("bad ")]

    qtbot.waitUntil(lambda: len(bad_positions()) == 4, timeout=15_000)
    bad_rows = bad_positions()
    assert not any(delegate.mentions_me(model.index(i)) for i in bad_rows)
    assert all(desk.rows("falcon")[i].trust == "verified" for i in bad_rows)

    # the mention spans are highlighted, the user's own more strongly
    html = delegate._html(model.index(named), "@Alice can you look at the build?")
    assert '<span style="background-color:' in html and "@Alice</span>" in html
    html = delegate._html(model.index(other), "@Carol thanks, nobody else")
    assert '<span style="color:' in html and "@Carol</span>" in html

    desk.window.resize(900, 600)
    qtbot.wait(50)
    shot(desk.window, "mentions-highlighted", tmp_path)
    accent = QColor(MENTION_COLOR)
    image, rect = _row_image(view, named)
    bar = image.pixelColor(1, rect.center().y())
    assert (bar.red(), bar.green(), bar.blue()) == (accent.red(), accent.green(), accent.blue())
    image, rect = _row_image(view, other)
    assert image.pixelColor(1, rect.center().y()) != accent


# Red team rt67: a hundred ids of 500 characters ("x @x @x ...#i", made-up senders who
# joined) and a plain body of "@x @x @x ...": each search of the body took 0.7 s, and a
# paint searched it two or three times (the room opened in 3.6 s, every hover 2.1 s).
LONG_ID = ("x @" * 200)[:500]
HOSTILE_BODY = "@Alice look " + ("@x " * 7000)[: 20_000 - 12]


def _plant_long_ids_and_body(root: Path, room: str) -> None:
    """Erin joins ``room`` with a hundred ids of hers (each its own key), then sends
    ``HOSTILE_BODY``: one segment of hers, written as another device would."""
    import uuid

    from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
    from bucket_chat_desktop.protocol.ids import client_id_for
    from bucket_chat_desktop.protocol.segment import encode_segment, path_for
    from bucket_chat_desktop.protocol.signing import build_event

    now = int(time.time() * 1000)
    senders = [(ERIN[0], ERIN[1], "Erin")]
    senders += [
        (f"{LONG_ID}#{i}", SigningKey(bytes([i + 1]) * 31 + b"\x7f"), "") for i in range(100)
    ]
    events = []
    for i, (sender, key, name) in enumerate(senders):
        content = {"membership": "join", "displayname": name}
        events.append((sender, key, now + i, MEMBER, content))
    events.append(
        (ERIN[0], ERIN[1], now + 200, MESSAGE, {"body": HOSTILE_BODY, "msgtype": "m.text"})
    )
    chains: dict[str, str] = {}
    signed = []
    for sender, key, ts, kind, content in events:
        event = build_event(
            room_id=room,
            sender_id=sender,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=str(uuid.uuid4()),
            prev_event_hash=chains.get(sender),
            signing_key=key,
        )
        chains[sender] = event.hash
        signed.append(event)
    path = root / path_for(signed, client_id_for(ERIN[0], bytes(ERIN[1].verify_key)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(signed))


def test_a_body_is_searched_for_mentions_once_not_at_every_paint(
    qtbot: Any, launch: Callable[..., Desk], store: Path, monkeypatch: Any
) -> None:
    from bucket_chat_desktop.protocol.mentions import MentionTargets

    searched: list[str] = []
    each = MentionTargets.spans_each  # what every search of the delegate's goes through

    def counted_each(self: MentionTargets, texts: Any) -> list[list[tuple[int, int, str]]]:
        searched.extend(texts)
        return each(self, texts)

    monkeypatch.setattr(MentionTargets, "spans_each", counted_each)
    _plant_long_ids_and_body(store, "falcon")
    desk = launch(settings_for(store, ["falcon"]))
    desk.window.resize(1000, 700)
    row = desk.wait_index("falcon", HOSTILE_BODY)
    view = desk.window.timeline
    qtbot.waitUntil(lambda: len(view.model().names.members(with_left=True)) > 100)
    image, rect = _row_image(view, row)  # painted once: searched once
    assert any(body.startswith("@Alice look") for body in searched)
    searched.clear()
    # painting again, hovering it: the spans are remembered, never searched again
    for dy in (10, 40, 80):
        QTest.mouseMove(view.viewport(), rect.topLeft() + QPoint(200, dy))
        qtbot.wait(20)
        image, rect = _row_image(view, row)
    assert searched == []
    # the user's own mention is still highlighted (its background), the row accented
    own_bg = {QColor("#dce8fb").rgb(), QColor("#3a4a6a").rgb()}
    body_area = rect.adjusted(60, 20, -20, 0).intersected(image.rect())
    assert any(
        image.pixelColor(x, y).rgb() in own_bg
        for y in range(body_area.top(), min(body_area.bottom(), body_area.top() + 60))
        for x in range(body_area.left(), min(body_area.right(), body_area.left() + 200))
    )
    assert desk.window.delegate.mentions_me(view.model().index(row))


# -- notification levels ----------------------------------------------------------------------


def test_notification_level_mentions_lets_only_mentions_through_and_names_the_sender(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,
    people: People,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon", "general")
    monkeypatch.setattr(QApplication, "alert", staticmethod(lambda w, _ms=0: None))
    tray = RecordingTray(desk.window)
    notifier = Notifier(desk.window, desk.controller, tray)  # as on a desktop with a tray
    general = desk.key("general")
    window, controller = desk.window, desk.controller

    # the room's context menu: "Notify me about" -> "Only when I am mentioned"
    def choose(menu: QMenu) -> None:
        sub = next(a.menu() for a in menu.actions() if a.text() == "Notify me about")
        labels = [a.text() for a in sub.actions()]
        assert labels == ["All messages", "Only when I am mentioned", "Nothing (mute the room)"]
        assert [a.isChecked() for a in sub.actions()] == [True, False, False]
        next(a for a in sub.actions() if a.text() == "Only when I am mentioned").trigger()
        menu.close()

    answer_when_shown(QMenu, choose)
    rect = window.room_list.visualRect(controller.rooms.index(controller.rooms.row_of(general)))
    window.room_list.customContextMenuRequested.emit(rect.center())
    assert desk.settings.notify_level(general) == "mentions"
    saved = settings_store.load()  # saved at once
    assert saved.notify_level(general) == "mentions"

    # a plain message: counted unread, no notification
    wait_for(qtbot, people.say(DAVE, "general", "Lunch at noon?"))
    qtbot.waitUntil(lambda: desk.item("general").unread >= 1, timeout=15_000)
    qtbot.wait(100)
    assert tray.messages == []
    # a message that mentions Alice (by her display name): notified, by display name
    wait_for(qtbot, people.say(DAVE, "general", "@alice are you coming?"))
    qtbot.wait(2000)
    qtbot.waitUntil(lambda: len(tray.messages) == 1, timeout=15_000)
    assert tray.messages == [("Dave (dave@example.com) in General", "@alice are you coming?")]
    # by the field alone
    wait_for(qtbot, people.send(CAROL, "general", {"body": "ping", "mentions": [ALICE]}))
    qtbot.waitUntil(lambda: len(tray.messages) == 2, timeout=15_000)
    assert tray.messages[1] == ("Carol (carol@example.com) in General", "ping")
    # a newcomer's first message here (from a key this storage knows from another room)
    # counts and notifies too
    wait_for(qtbot, people.say(ERIN, "falcon", "Hi from Falcon."))
    desk.wait_row("falcon", "Hi from Falcon.")
    # (Falcon notifies at every message: offscreen the window is never the active one)
    qtbot.waitUntil(lambda: len(tray.messages) == 3, timeout=15_000)
    assert tray.messages.pop() == ("Erin (erin@example.com) in Project Falcon", "Hi from Falcon.")
    unread = desk.item("general").unread
    wait_for(qtbot, people.say(ERIN, "general", "Hello, I am new here."))
    qtbot.waitUntil(lambda: desk.item("general").unread == unread + 1, timeout=15_000)
    wait_for(qtbot, people.say(ERIN, "general", "@Alice may I ask you something?"))
    qtbot.waitUntil(lambda: len(tray.messages) == 3, timeout=15_000)
    assert tray.messages[2][0] == "Erin (erin@example.com) in General"
    del tray.messages[2]

    # "Nothing": muted, not counted in the badge, never notified
    controller.set_notify_level(general, "none")
    assert desk.item("general").muted
    assert controller.rooms.total_unread() == desk.item("falcon").unread  # General's not counted
    wait_for(qtbot, people.say(DAVE, "general", "@Alice last call"))
    qtbot.waitUntil(
        lambda: preview_line(desk.item("general")) == "Dave: @Alice last call", timeout=15_000
    )
    qtbot.wait(100)
    assert len(tray.messages) == 2

    # "All messages" again: a plain message notifies (once the tray's window for bursts
    # is over: General popped in it already, so more of it would wait for the summary)
    notifier._window_over()
    controller.set_notify_level(general, "all")
    assert not desk.item("general").muted and general not in desk.settings.notify_levels
    wait_for(qtbot, people.say(CAROL, "general", "Anyone?"))
    qtbot.waitUntil(lambda: len(tray.messages) == 3, timeout=15_000)
    assert tray.messages[2] == ("Carol (carol@example.com) in General", "Anyone?")
    assert notifier.last_room == general


# Red team rt81: Frank goes by "Alice Cooper", the user's name and a word more. A mention
# of him, "@Alice Cooper", was highlighted as his yet accented and notified as Alice's
# ("mentions me" read only her own names, and "@Alice" starts it).
FRANK = ("frank@example.com", SigningKey(b"\x0d" * 32), "Alice Cooper")


def test_a_mention_of_a_member_named_like_the_user_with_a_word_more_is_not_theirs(
    qtbot: Any, launch: Callable[..., Desk], store: Path, people: People
) -> None:
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon", "general")
    general, controller = desk.key("general"), desk.controller
    wait_for(qtbot, people.say(FRANK, "general", "Hello, I am new here."))
    qtbot.waitUntil(lambda: controller.names(general).name(FRANK[0]) == "Alice Cooper")
    notified: list[tuple[str, bool]] = []
    controller.notify.connect(
        lambda _k, _t, text, _r, mention, _s: notified.append((text, mention))
    )

    def say(text: str) -> None:  # by Dave, and wait until General has read it
        wait_for(qtbot, people.say(DAVE, "general", text))
        qtbot.waitUntil(
            lambda: preview_line(desk.item("general")) == f"Dave: {text}", timeout=15_000
        )

    # "Only when I am mentioned": his mention notifies nobody, hers does
    controller.set_notify_level(general, "mentions")
    say("@Alice Cooper the deploy is yours")
    say("@Alice and this one is yours")
    qtbot.waitUntil(lambda: len(notified) >= 1, timeout=15_000)
    assert notified == [("@Alice and this one is yours", True)]  # his came first: none
    # "All messages": his mention notifies as a plain message, hers as a mention
    controller.set_notify_level(general, "all")
    say("@Alice Cooper again, yours")
    qtbot.waitUntil(lambda: len(notified) >= 2, timeout=15_000)
    say("@alice, and yours")
    qtbot.waitUntil(lambda: len(notified) >= 3, timeout=15_000)
    assert notified[1:] == [("@Alice Cooper again, yours", False), ("@alice, and yours", True)]

    # the rows: his mention is highlighted as his, with no accent; hers has one
    desk.select("general")
    his = desk.wait_index("general", "@Alice Cooper the deploy is yours")
    hers = desk.wait_index("general", "@Alice and this one is yours")
    model, delegate = desk.window.timeline.model(), desk.window.delegate
    assert not delegate.mentions_me(model.index(his))
    assert delegate.mentions_me(model.index(hers))
    html = delegate._html(model.index(his), "@Alice Cooper the deploy is yours")
    assert '<span style="color:' in html and "@Alice Cooper</span>" in html


def test_a_message_planted_in_2100_does_not_silence_the_room(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,
    people: People,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Red team, in the app: Mallory writes one message dated in 2100 into General. Placed
    by its date it sorted after every later message (a full re-audit each time), took the
    unread count, the notification and the preview away from them and stayed the room's
    last row. It is held back now (PROTOCOL.md section 9), named in the room's findings."""
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon", "general")
    desk.select("falcon")
    monkeypatch.setattr(QApplication, "alert", staticmethod(lambda w, _ms=0: None))
    tray = RecordingTray(desk.window)
    notifier = Notifier(desk.window, desk.controller, tray)  # kept: it is connected
    mallory = RoomWriter(
        people.storage,
        "general",
        "mallory@example.com",
        SigningKey(b"\x0d" * 32),
        clock=lambda: 4_102_444_800_000,
    )
    wait_for(qtbot, mallory.send([Draft.text("from the year 2100")]))
    key = desk.key("general")

    def held() -> list[Finding]:
        result = desk.controller.result(key)
        return [f for f in result.findings if f.kind is Kind.DATED_AHEAD] if result else []

    # her join and her message: her writer's clock dated both
    qtbot.waitUntil(lambda: len(held()) == 2, timeout=15_000)
    assert all("2100-01-01 00:00 UTC" in f.message for f in held())
    assert all("'mallory@example.com'" in f.message for f in held())
    assert tray.messages == [] and desk.item("general").unread == 0
    wait_for(qtbot, people.say(DAVE, "general", "Standup moved to 10."))
    qtbot.waitUntil(lambda: desk.item("general").unread == 1, timeout=15_000)
    qtbot.waitUntil(lambda: len(tray.messages) == 1, timeout=15_000)
    assert tray.messages[0] == ("Dave (dave@example.com) in General", "Standup moved to 10.")
    assert preview_line(desk.item("general")) == "Dave: Standup moved to 10."
    bodies = [r.body for r in desk.rows("general")]
    assert bodies[-1] == "Standup moved to 10." and "from the year 2100" not in bodies
    assert len(held()) == 2  # still held, said once
    assert notifier.tray is tray
    shot(desk.window, "planted-row-does-not-silence", tmp_path)


def test_notification_levels_in_the_settings_file_are_read_tolerantly() -> None:
    data = {
        "notify_levels": {"a/b": "mentions", "a/c": "loud", "a/d": 3, "a/e": "none"},
        "muted_rooms": ["a/f", 5],
    }
    settings = Settings.from_json(data)
    assert settings.notify_levels == {"a/b": "mentions"}
    assert settings.notify_level("a/b") == "mentions"
    assert settings.notify_level("a/c") == "all"
    assert settings.notify_level("a/f") == "none"
    assert Settings.from_json({"notify_levels": ["a/b"]}).notify_levels == {}
    settings.set_notify_level("a/b", "none")
    assert settings.notify_level("a/b") == "none" and "a/b" not in settings.notify_levels
    with pytest.raises(ValueError, match="unknown notification level"):
        settings.set_notify_level("a/b", "loud")


# -- unread: the line and the jump button -----------------------------------------------------


def test_new_messages_line_and_jump_button(
    qtbot: Any, launch: Callable[..., Desk], store: Path, people: People, tmp_path: Path
) -> None:
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon", "general")
    desk.window.resize(900, 560)
    social, delegate, view = desk.window.social, desk.window.delegate, desk.window.timeline

    # while General is open, 30 messages arrive in Falcon
    desk.select("general")
    texts = [f"Build step {i} finished." for i in range(30)]
    wait_for(qtbot, people.say(CAROL, "falcon", *texts))
    qtbot.waitUntil(lambda: desk.item("falcon").unread == 30, timeout=15_000)
    assert social.marker == ""

    desk.select("falcon")  # the room opens at the bottom, the line at the first unread
    first = desk.wait_index("falcon", "Build step 0 finished.")
    assert social.marker == desk.rows("falcon")[first].event_id
    assert delegate.first_unread == social.marker and social.marker_row() == first
    model = view.model()
    above = model.index(first - 1)
    qtbot.waitUntil(lambda: social.jump_visible, timeout=5_000)
    assert view.visualRect(model.index(first)).bottom() < 0  # above what is shown
    shot(desk.window, "jump-to-unread", tmp_path)

    social.jump.click()
    qtbot.waitUntil(lambda: not social.jump_visible, timeout=5_000)
    rect = view.visualRect(model.index(first))
    assert 0 <= rect.top() < view.viewport().height()
    assert view.visualRect(above).bottom() <= rect.top()
    shot(desk.window, "new-messages-line", tmp_path)
    # once read, scrolling away does not bring the button back
    view.scrollToBottom()
    qtbot.wait(50)
    assert not social.jump_visible

    # the line goes with the room; a room without unread messages has none
    desk.select("general")
    assert social.marker == "" and delegate.first_unread == ""


def test_unread_counts_and_the_line_survive_a_restart(
    qtbot: Any, launch: Callable[..., Desk], store: Path, people: People, tmp_path: Path
) -> None:
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon", "general")
    falcon = desk.key("falcon")
    newest = desk.rows("falcon")[-1]
    assert desk.settings.read_marker(falcon)[0] == newest.event_id  # read while shown
    desk.select("general")
    assert desk.quit() == 0

    # while Alice is away, Carol writes three messages in Falcon
    away = ["Build 42 is red.", "Fixed the test.", "Build 43 is green."]
    wait_for(qtbot, people.say(CAROL, "falcon", *away))
    saved = settings_store.load()  # the markers came back from the settings file
    assert saved.read_marker(falcon) == desk.settings.read_marker(falcon)

    desk = launch(saved)  # fetched after the first audit (the index's): counted as they come
    desk.wait_loaded("falcon", "general")
    qtbot.waitUntil(lambda: desk.item("falcon").unread == 3, timeout=15_000)
    assert desk.quit() == 0

    # not opened: at the next start the index holds them; counted after the marker
    desk = launch(settings_store.load())
    desk.wait_loaded("falcon", "general")
    qtbot.waitUntil(lambda: desk.item("falcon").unread == 3, timeout=15_000)
    assert desk.item("general").unread == 0 and desk.controller.rooms.total_unread() == 3
    shot(desk.window.room_list, "room-list-unread-after-restart", tmp_path)

    desk.select("falcon")  # the line goes above the first message she missed
    first = desk.wait_index("falcon", away[0])
    social = desk.window.social
    assert social.marker == desk.rows("falcon")[first].event_id
    assert social.marker_row() == first and desk.item("falcon").unread == 0
    shot(desk.window, "new-messages-after-restart", tmp_path)

    # leaving a room drops its marker: the settings keep one per room joined
    general = desk.key("general")
    assert desk.settings.read_marker(general) is not None
    desk.controller.leave_room(general)
    qtbot.waitUntil(lambda: desk.controller.rooms.item(general) is None, timeout=15_000)
    assert desk.settings.read_marker(general) is None
    assert set(desk.settings.read_markers) == {falcon}

    # a room shown at start (the last one open) counts nothing, but draws the line
    assert desk.quit() == 0
    wait_for(qtbot, people.say(CAROL, "falcon", "Release at noon.", "Any objections?"))
    desk = launch(settings_store.load())
    first = desk.wait_index("falcon", "Release at noon.")
    qtbot.waitUntil(lambda: desk.window.social.marker != "", timeout=15_000)
    assert desk.window.social.marker == desk.rows("falcon")[first].event_id
    assert desk.item("falcon").unread == 0 and desk.controller.current == falcon
    assert desk.settings.read_marker(falcon)[0] == desk.rows("falcon")[-1].event_id


# -- room list preview ------------------------------------------------------------------------


def test_the_room_list_preview_is_plain_text(
    qtbot: Any, launch: Callable[..., Desk], store: Path, people: People, tmp_path: Path
) -> None:
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon", "general")
    body = "**Build 142** is [up](https://ci.example.com)\x1b[2J\n```\nmake all\n```"
    wait_for(qtbot, people.say(DAVE, "general", body))
    qtbot.waitUntil(lambda: "Build 142" in preview_line(desk.item("general")), timeout=15_000)
    rooms = desk.controller.rooms
    index = rooms.index(rooms.row_of(desk.key("general")))
    shown = (index.data(RoomRoles.PreviewSender), index.data(RoomRoles.PreviewText))
    assert shown == ("Dave", "Build 142 is up[2J make all")
    wait_for(qtbot, people.send(CAROL, "general", {"body": "![diagram](https://x/d.png)"}))
    qtbot.waitUntil(lambda: preview_line(desk.item("general")) == "Carol: Image", timeout=15_000)
    shot(desk.window.room_list, "room-list-preview", tmp_path)


# -- join dialog --------------------------------------------------------------------------------


def test_the_join_dialog_lists_the_storage_rooms_and_joins_on_enter_or_double_click(
    qtbot: Any, launch: Callable[..., Desk], store: Path, people: People, tmp_path: Path
) -> None:
    # a room whose name imitates "General" (a look-alike letter, a bidi override, a
    # control character), and one without metadata
    wait_for(
        qtbot,
        people.writer(DAVE, "ops").write_metadata(
            "Genera\u217c\u202e\x07", "2026-01-06T09:00:00.000Z"
        ),
    )
    wait_for(qtbot, people.say(DAVE, "ops", "ops here"))
    wait_for(qtbot, people.say(CAROL, "quiet", "no metadata"))
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_row("falcon", "Checking it now.")
    window, controller = desk.window, desk.controller
    seen: dict[str, Any] = {}

    def join_by_enter(dialog: RoomDialog) -> None:
        assert dialog.listing_state == "loading"  # shown at once, filled when listed
        assert dialog.list_status.text() == "Looking for rooms in this storage…"
        qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
        tree = dialog.rooms_list
        seen["rows"] = {
            room: [name, when] for room, (name, _id, when) in join_rows.rows(dialog).items()
        }
        seen["status"] = dialog.list_status.text()
        seen["tip"] = join_rows.tip(dialog, "ops")
        dialog.resize(700, 420)
        shot(dialog, "join-dialog", tmp_path)
        QTimer.singleShot(5000, dialog, dialog.reject)  # never a test that hangs on an open dialog
        tree.setFocus()
        join_rows.choose(dialog, "ops")
        assert dialog.room_id.text() == "ops"
        QTest.keyClick(tree, Qt.Key.Key_Return)

    answer_when_shown(RoomDialog, join_by_enter)
    window.join_room()
    qtbot.waitUntil(lambda: controller.current == desk.key("ops"), timeout=15_000)
    rows = seen["rows"]
    assert set(rows) == {"falcon", "general", "ops", "quiet"}
    assert rows["general"][0] == "General" and rows["falcon"][0] == "Project Falcon"
    assert rows["quiet"][0] == "(no name)"
    name = rows["ops"][0]
    assert name == "⚠ Genera\u217c"  # cleaned, marked
    assert "looks like the name of another room here (general)" in seen["tip"]
    assert all(when != "—" for when in (rows[r][1] for r in rows))  # every room has activity
    assert seen["status"] == (
        "4 rooms found. Double-click one to join it. Greyed out: rooms you are in already."
    )

    def join_by_double_click(dialog: RoomDialog) -> None:
        qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
        tree = dialog.rooms_list
        rect = tree.visualRect(join_rows.index(dialog, "general"))
        QTimer.singleShot(5000, dialog, dialog.reject)  # never a test that hangs on an open dialog
        # a real double click: press and release, then the double click
        QTest.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        QTest.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

    answer_when_shown(RoomDialog, join_by_double_click)
    window.join_room()
    qtbot.waitUntil(lambda: controller.current == desk.key("general"), timeout=15_000)
    desk.wait_row("general", "Welcome, everyone!")

    # a room the user is in already (greyed out) just opens: no second join is written
    def choose_falcon(dialog: RoomDialog) -> None:
        qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
        QTimer.singleShot(5000, dialog, dialog.reject)
        dialog.room_id.setText("falcon")
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()

    answer_when_shown(RoomDialog, choose_falcon)
    window.join_room()
    qtbot.waitUntil(lambda: controller.current == desk.key("falcon"), timeout=15_000)
    qtbot.wait(200)
    segments = (store / "rooms" / "falcon" / "logs").rglob("*.jsonl")
    assert not any(ALICE in p.read_text() for p in segments)


def test_the_join_dialog_says_when_the_storage_does_not_answer(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("BUCKET_CHAT_INTERACTIVE_DEADLINE", "0.5")
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon", "general")
    storage = desk.controller.client._storages[desk.settings.storages[0].id].storage

    async def hang(_prefix: str) -> list[str]:
        await asyncio.sleep(3600)  # a storage that takes the request and never answers
        return []

    monkeypatch.setattr(storage, "list_dirs", hang)
    dialog = RoomDialog(
        desk.settings, create=False, parent=desk.window, lister=desk.controller.list_storage_rooms
    )
    dialog.show()
    assert dialog.listing_state == "loading"
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    status = dialog.list_status.text()
    assert status.startswith("Could not list the storage: no answer from Team share within 0.5 s")
    assert status.endswith(
        "Shown: the rooms this device knows from earlier reads."
        " Greyed out: rooms you are in already."
    )
    assert sorted(join_rows.shown(dialog)) == ["falcon", "general"]
    shot(dialog, "join-dialog-no-answer", tmp_path)
    dialog.reject()
    dialog.deleteLater()


def listed_rooms(qtbot: Any, store: Path) -> RoomDialog:
    """The join dialog, shown, once it listed the rooms of ``store``."""

    async def lister(_storage_id: str) -> StorageRooms:
        return await storage_rooms(LocalStorage(store), int(time.time() * 1000))

    dialog = RoomDialog(settings_for(store, []), create=False, lister=lister)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    return dialog


def test_the_join_dialog_says_a_forged_name_is_not_proven(
    qtbot: Any, store: Path, tmp_path: Path
) -> None:
    """A room renamed by rewriting its metadata (the signature no longer matches) is listed
    by the name it claims; its tip said "Its metadata could not be used" beside that very
    name. It says the name is not proven: the signature is invalid, and why."""
    path = store / "rooms" / "falcon" / "metadata.json"
    path.write_bytes(path.read_bytes().replace(b"Project Falcon", b"Payroll"))
    (store / "rooms" / "copycat" / "logs").mkdir(parents=True)  # general's, borrowed
    (store / "rooms" / "copycat" / "metadata.json").write_bytes(
        (store / "rooms" / "general" / "metadata.json").read_bytes()
    )

    dialog = listed_rooms(qtbot, store)
    assert len(join_rows.shown(dialog)) == 3
    assert (
        join_rows.text(dialog, "falcon") == "⚠ Payroll"
    )  # marked where it is read, not only its tip
    assert join_rows.text(dialog, "general") == "General"
    said = join_rows.tip(dialog, "falcon")
    assert "This name's signature is invalid" in said
    assert "Its name is not proven: metadata signature invalid: it does not match" in said
    assert "could not be used" not in said
    assert "Its metadata could not be used: metadata names room" in join_rows.tip(dialog, "copycat")
    assert "not proven" not in join_rows.tip(dialog, "general")
    shot(dialog, "join-dialog-forged-name", tmp_path)


def test_the_join_dialog_says_a_forged_name_imitates_another_room(
    qtbot: Any, store: Path, tmp_path: Path
) -> None:
    """Falcon's metadata rewritten to call it "General": its signature is invalid and
    its name looks like the real General's. The tip said only the first; who it may pass
    for is what a person choosing a room needs most."""
    path = store / "rooms" / "falcon" / "metadata.json"
    path.write_bytes(path.read_bytes().replace(b"Project Falcon", b"General"))

    dialog = listed_rooms(qtbot, store)
    assert len(join_rows.shown(dialog)) == 2
    assert join_rows.text(dialog, "falcon") == "⚠ General"
    said = join_rows.tip(dialog, "falcon")
    assert "This name's signature is invalid" in said
    assert "Its name looks like the name of another room here (general)." in said
    assert "looks like the name of another room here (falcon)." in join_rows.tip(dialog, "general")
    shot(dialog, "join-dialog-forged-lookalike", tmp_path)


def test_a_full_reaudit_hands_on_what_arrived_after_the_newest_row_shown() -> None:
    """``_arrived``: what a RoomLoaded brought after the row that was newest (counted
    unread and notified like appended rows); nothing on a first read, a re-audit of the
    same rows, or rows that came in above."""
    from bucket_chat_desktop.gui.controller import _arrived
    from bucket_chat_desktop.sync.events import ShownEvent
    from tests.unit.protocol._support import Device, alice, bob, ledger, seg

    a, b = alice(), bob()
    first = [a.join(1_000), a.say(2_000, "one")]
    later = [b.join(3_000), b.say(4_000, "two")]
    older = [b.join(10), b.say(20, "zero")]

    def result_and_rows(*events: Any) -> tuple[Any, tuple[ShownEvent, ...]]:
        result = ledger(*(seg(e, f"c{i}") for i, e in enumerate(events))).audit(None)
        rows = tuple(ShownEvent(x, x.event) for x in result.timeline)
        return result, rows

    now, since = 5_000, 500  # this device's clock; the room's record was made at 500
    old, _ = result_and_rows(first)
    new, rows = result_and_rows(first, later)
    got = _arrived(old, new, rows, now, since)
    assert [x.event.body for x in got] == [None, "two"]  # join, text
    assert _arrived(None, new, rows, now, since) == []  # a first read
    assert _arrived(new, new, rows, now, since) == []  # the same rows again (a confirmation)
    above, rows = result_and_rows(older, first)  # history that was read late, above
    assert _arrived(old, above, rows, now, since) == []

    # Carol's messages, written before Bob's newest one, read after it: they sort before
    # the newest row and still arrived (those placed since the record was made)
    c = Device("carol@example.com", 7)
    late = [c.join(2_500), c.say(3_500, "late")]
    old, _ = result_and_rows(first, later)
    new, rows = result_and_rows(first, later, late)
    assert [x.event.body for x in _arrived(old, new, rows, now, since)] == [None, "late"]
    assert [x.event.body for x in _arrived(old, new, rows, now, 3_000)] == ["late"]
    assert _arrived(new, new, rows, now, since) == []


def test_a_row_dated_far_ahead_cannot_silence_what_arrives_after_it() -> None:
    """Red team: Mallory writes one message dated in 2100. It stays the newest row, every
    message written since sorts before it (a full re-audit each time), and ``_arrived``
    took it as the row after which new ones come: nothing ever arrived — no unread count,
    no notification — while the app ran. Her later rows chained after it, whatever their
    dates, are placed there too."""
    from bucket_chat_desktop.gui.controller import _arrived
    from bucket_chat_desktop.protocol.audit import RoomLedger
    from bucket_chat_desktop.sync.events import ShownEvent
    from tests.unit.protocol._support import Device, alice, bob, seg

    a, b, mallory = alice(), bob(), Device("mallory@example.com", 9)
    far = 4_102_444_800_000
    planted = [mallory.join(1_500), mallory.say(far, "from 2100"), mallory.say(2_500, "me too")]
    first = [a.join(1_000), a.say(2_000, "one")]
    later = [b.join(3_000), b.say(4_000, "two")]

    def audit(*events: Any, newest: int = 200) -> tuple[Any, tuple[ShownEvent, ...]]:
        led = RoomLedger("room-1", keep_bodies=False)  # the app's: bodies come with newest
        for i, e in enumerate(events):
            led.add_segment(*seg(e, f"c{i}"))
        result = led.audit(None)
        whole = ledger_rows(*events)
        rows = tuple(ShownEvent(x, whole[x.event.event_id]) for x in result.timeline)
        return result, rows[len(rows) - newest :]

    old, _ = audit(first, planted)
    new, rows = audit(first, planted, later)
    assert rows[-1].event.body == "me too"  # still the newest rows
    got = _arrived(old, new, rows, 5_000, 0)
    assert [x.event.event_id for x in got] == [e.event_id for e in later]
    assert got[1].event.body == "two"  # with its body, from the newest rows
    # more rows placed ahead than the newest rows hold: counted all the same
    new, rows = audit(first, planted, later, newest=2)
    got = _arrived(old, new, rows, 5_000, 0)
    assert [x.event.event_id for x in got] == [e.event_id for e in later]


def ledger_rows(*events: Any) -> dict[str, Any]:
    return {e.event_id: e for chain in events for e in chain}
