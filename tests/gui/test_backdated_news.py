"""A member's new words are news wherever their date places them (red team rt79).

Mallory last wrote in the room four weeks ago. While Alice's app runs, she signs the
next event of her own chain, dated the day after her last one (four weeks ago), and
stores it: "FYI: I do NOT approve the budget. Objections by Friday, or it is final."
Every signature, the chain and the segment name agree with the date she chose. A
later "I told you all weeks ago" is then backed by a verified row of the room.

The app placed it four weeks back, among 300 older messages, with no unread count, no
notification, no "New messages" line and no finding, while the same message with 10
rows between (placed by ``RoomLedger.try_place``, not a full re-audit) was counted and
notified. Now both are: the engine says which rows it read from segments first listed
once the room was known whole, wherever the audit places them. A room's last activity
is where its newest row is placed, not that row's own date."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import shot, wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey
from PySide6.QtWidgets import QAbstractItemView

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui.models.rooms_model import RoomRoles
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.widgets.quick_switcher import RoomFilter
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter
from bucket_chat_desktop.timestamps import full

CAROL = ("carol@example.com", SigningKey(b"\x03" * 32))
MALLORY = ("mallory@example.com", SigningKey(b"\x0d" * 32))
DAY = 24 * 3600 * 1000


def chain(
    room: str,
    sender: tuple[str, SigningKey],
    items: list[tuple[int, str, dict[str, Any]]],
    prev: str | None = None,
) -> list[Event]:
    sender_id, key = sender
    out: list[Event] = []
    for ts, kind, content in items:
        ev = build_event(
            room_id=room,
            sender_id=sender_id,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=str(uuid.uuid4()),
            prev_event_hash=prev,
            signing_key=key,
        )
        prev = ev.hash
        out.append(ev)
    return out


def store_segment(root: Path, sender: tuple[str, SigningKey], events: list[Event]) -> str:
    """As a member's own client stores it: written elsewhere, renamed into place."""
    path = path_for(events, client_id_for(sender[0], bytes(sender[1].verify_key)))
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.write_bytes(encode_segment(events))
    os.replace(tmp, target)
    return path


def text(body: str) -> dict[str, Any]:
    return {"body": body, "msgtype": "m.text"}


@pytest.mark.parametrize("between", [10, 300])  # an insert of the tail, a full re-audit
def test_a_message_backdated_weeks_into_history_is_counted_and_notified(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path, between: int
) -> None:
    root = tmp_path / "store"
    storage = LocalStorage(root)
    now = int(time.time() * 1000)
    start = now - 30 * DAY
    store_segment(
        root,
        CAROL,
        chain(
            "c",
            CAROL,
            [(start, MEMBER, {"membership": "join", "displayname": "Carol"})]
            + [
                (start + 2 * DAY + i * 6_000_000, MESSAGE, text(f"note {i}"))
                for i in range(between)
            ],
        ),
    )
    mallory = chain(
        "c",
        MALLORY,
        [
            (start + 1000, MEMBER, {"membership": "join", "displayname": "Mallory"}),
            (start + DAY, MESSAGE, text("budget draft is in the shared folder")),
        ],
    )
    store_segment(root, MALLORY, mallory)
    wait_for(qtbot, RoomWriter(storage, "a", *CAROL).send([Draft.text("elsewhere")]))

    # Alice's app has read the room before (it has a read marker): then it runs again
    desk = launch(settings_for(root, ["a", "c"]))
    desk.wait_loaded("a", "c")
    c = desk.key("c")
    qtbot.waitUntil(lambda: desk.settings.read_marker(c) is not None, timeout=15_000)
    assert desk.quit() == 0
    desk = launch(settings_store.load())
    desk.wait_loaded("a", "c")
    controller = desk.controller
    assert controller.current == desk.key("a")
    notes: list[tuple[str, str, str]] = []
    controller.notify.connect(lambda key, title, body, *rest: notes.append((key, title, body)))
    assert desk.item("c").unread == 0

    # Mallory, now: the next event of her chain, dated the day after her last one
    (late,) = chain(
        "c",
        MALLORY,
        [
            (
                start + DAY + 60_000,
                MESSAGE,
                text("FYI: I do NOT approve the budget. Objections by Friday, or it is final."),
            )
        ],
        prev=mallory[-1].hash,
    )
    store_segment(root, MALLORY, [late])
    qtbot.waitUntil(lambda: desk.shows("c", late.event_id), timeout=30_000)
    result = controller.result(c)
    at = next(i for i, a in enumerate(result.timeline) if a.event.event_id == late.event_id)
    assert str(result.timeline[at].state) == "verified"
    behind = len(result.timeline) - at - 1  # rows shown after it: where nobody looks
    assert behind == between
    # counted off the window's thread after a full audit (``count_unread``): waited for
    qtbot.waitUntil(lambda: desk.item("c").unread == 1, timeout=15_000)
    qtbot.waitUntil(lambda: bool(notes), timeout=15_000)
    assert [body for _, _, body in notes] == [late.content["body"]], notes
    # opened, the line and its row: it says it is dated long before it arrived
    desk.select("c")
    assert desk.window.delegate.first_unread == late.event_id  # the "New messages" line
    if between == 300:  # not in the page held: "Jump to new messages" pages to it
        model = desk.model("c")
        assert model.locate(late.event_id) is None
        social = desk.window.social
        qtbot.waitUntil(lambda: social.jump_visible, timeout=5_000)
        social.jump.click()
        qtbot.waitUntil(lambda: model.locate(late.event_id) is not None, timeout=15_000)
        row = model.locate(late.event_id)
        assert row is not None
        view = desk.window.timeline
        qtbot.waitUntil(lambda: view.currentIndex().row() == row, timeout=5_000)
        rect = view.visualRect(model.index(row))
        assert 0 <= rect.top() < view.viewport().height()  # on screen
        qtbot.waitUntil(lambda: not social.jump_visible, timeout=5_000)
    if between == 10:  # the row among the newest paged in (300 up: not yet), its note
        model = desk.model("c")
        index = desk.wait_index("c", late.content["body"])
        said = model.index(index).data(Roles.Late)
        assert said.startswith("Arrived ") and "dated " in said, said
        assert full(late.timestamp_ms)[:16] in said
        # its own header (who wrote it, its trust mark), not grouped under her old row
        # dated a minute before it
        assert not model.index(index).data(Roles.Layout)[4]
        view = desk.window.timeline
        view.scrollTo(model.index(index), QAbstractItemView.ScrollHint.PositionAtCenter)
        shot(desk.window, "backdated-news", tmp_path)


def test_a_row_placed_after_its_date_does_not_date_the_room_back_to_1970(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """Mallory sends a message, then the next event of her chain dated 1 ms after the
    epoch. Display order never shows an event before its predecessor: it is shown as the
    room's newest row (right after her first). Its own date as the room's last activity
    dated the room to 1 January 1970 ("01 Jan" beside a message written a second ago) and
    sank it below a room quiet for two months in the quick switcher (newest first): the
    room's last activity is where that row is placed (after "first")."""
    root = tmp_path / "store"
    storage = LocalStorage(root)
    now = int(time.time() * 1000)
    quiet = RoomWriter(storage, "a", *CAROL, clock=lambda: now - 60 * DAY)
    wait_for(qtbot, quiet.send([Draft.text("two months ago")]))
    wait_for(qtbot, RoomWriter(storage, "c", *CAROL).send([Draft.text("hello")]))
    desk = launch(settings_for(root, ["a", "c"]))
    desk.wait_loaded("a", "c")
    before = desk.item("c").last_ts
    assert before >= now - 60_000
    sent = chain(
        "c",
        MALLORY,
        [
            (now + 1000, MEMBER, {"membership": "join", "displayname": "Mallory"}),
            (now + 2000, MESSAGE, text("first")),
            (1, MESSAGE, text("the room's newest words")),
        ],
    )
    store_segment(root, MALLORY, sent)
    desk.wait_row("c", "the room's newest words")
    assert desk.rows("c")[-1].body == "the room's newest words"  # the newest row
    item = desk.item("c")
    quiet_ts = desk.item("a").last_ts
    proxy = RoomFilter()
    proxy.setSourceModel(desk.controller.rooms)
    proxy.set_query("")
    order = [str(proxy.index(i, 0).data(RoomRoles.Key)) for i in range(proxy.rowCount())]
    assert item.last_ts == now + 2000, (item.last_ts, quiet_ts)
    assert order.index(desk.key("c")) < order.index(desk.key("a")), order
