"""``TimelineModel.reveal``: a message found by search is shown in context. The rows from
half a page above it down to what is shown already are exposed (asked of the pager in
one request when not held), the row is reported through ``revealed``; a message the
audit does not show, an audit replaced meanwhile, or held rows that moved on while the
page was read are each answered, never a crash or a wrong row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_models import ALICE, Room, _chatter, _ids, key_text
from test_models import Deferred as Pager

from bucket_chat_desktop.gui.models.timeline_model import JUMP_NEAR, PAGE, Roles, TimelineModel
from bucket_chat_desktop.sync.events import ShownEvent


@pytest.fixture
def room(tmp_path: Path) -> Room:
    return Room(tmp_path / "store")


def _model(items: Any, pager: Pager) -> TimelineModel:
    model = TimelineModel(key_text(ALICE))
    newest = [ShownEvent(a, a.event) for a in items[-PAGE:]]
    newest = [ShownEvent(a, a.event) for a in items[-PAGE:]]
    model.set_audit(len(items), newest, True, items, pager)
    while pager.asked:  # the page fetched ahead
        pager.answer()
    return model


def test_reveal_loads_the_page_around_an_old_message(qtmodeltester: Any, room: Room) -> None:
    items = _chatter(room, 300).timeline  # 903 events
    pager = Pager(items)
    model = _model(items, pager)
    qtmodeltester.check(model)
    seen: list[tuple[int, str]] = []
    model.revealed.connect(lambda row, why: seen.append((row, why)))

    # Already shown: at once, no request.
    target = items[-3].event.event_id
    model.reveal(len(items) - 3, target)
    assert seen == [(model.rowCount() - 3, "")] and not pager.asked

    # Held above (fetched ahead): exposed from half a page above it, no request.
    pos = len(items) - PAGE - 50
    model.reveal(pos, items[pos].event.event_id)
    row, why = seen[-1]
    assert why == "" and model.index(row).data(Roles.EventId) == items[pos].event.event_id
    assert _ids(model)[0] == items[pos - PAGE // 2].event.event_id
    while pager.asked:
        pager.answer()

    # A little farther above: one request from half a page above it to what is held.
    pos = model.total - model.rowCount() - JUMP_NEAR + PAGE
    model.reveal(pos, items[pos].event.event_id)
    (start, stop, _reply) = pager.asked[-1]
    assert start == pos - PAGE // 2 and stop > start  # what is not held yet
    pager.answer()
    row, why = seen[-1]
    assert why == "" and model.index(row).data(Roles.EventId) == items[pos].event.event_id
    ids = _ids(model)
    assert ids == [a.event.event_id for a in items[len(items) - len(ids) :]]  # contiguous
    assert len(set(ids)) == len(ids) and not model.detached
    while pager.asked:
        pager.answer()


def test_reveal_of_a_far_message_shows_a_window_around_it(qtmodeltester: Any, room: Room) -> None:
    items = _chatter(room, 300).timeline  # 903 events
    pager = Pager(items)
    model = _model(items, pager)
    qtmodeltester.check(model)
    seen: list[tuple[int, str]] = []
    model.revealed.connect(lambda row, why: seen.append((row, why)))
    pos = 140
    model.reveal(pos, items[pos].event.event_id)
    assert [(a, b) for a, b, _ in pager.asked] == [(pos - PAGE // 2, pos - PAGE // 2 + PAGE)]
    pager.answer()
    row, why = seen[-1]
    assert why == "" and model.index(row).data(Roles.EventId) == items[pos].event.event_id
    assert model.detached and model.rowCount() == PAGE and model.total == len(items)
    assert _ids(model) == [a.event.event_id for a in items[40 : 40 + PAGE]]
    while pager.asked:  # the page above, fetched ahead
        pager.answer()
    # Scrolling down pages in the rows below the window, up to the newest.
    while model.can_fetch_newer():
        model.fetch_newer()
        pager.answer()
    assert not model.detached
    assert _ids(model) == [a.event.event_id for a in items[40:]]
    # Again (a room just opened), and back to the newest page at once.
    model = _model(items, pager)
    model.reveal(pos, items[pos].event.event_id)
    pager.answer()
    assert model.detached
    model.return_to_newest()
    while pager.asked:  # the page fetched ahead of the window, then the newest page
        pager.answer()
    assert not model.detached
    assert _ids(model) == [a.event.event_id for a in items[-PAGE:]]
    while pager.asked:
        pager.answer()
    # A new audit while a window is shown: the newest rows again.
    model.reveal(pos, items[pos].event.event_id)
    pager.answer()
    assert model.detached
    newest = [ShownEvent(a, a.event) for a in items[-PAGE:]]
    model.set_audit(len(items), newest, True, items, pager)
    assert not model.detached
    assert _ids(model) == [a.event.event_id for a in items[-PAGE:]]
    while pager.asked:
        pager.answer()
    # Sending while a window is shown: back to the newest rows, where the echo appears.
    model.reveal(pos, items[pos].event.event_id)
    pager.answer()
    echo = items[5].event._replace(event_id="local-echo")
    model.set_echo([echo], "sending")
    assert model.detached  # the newest page is on its way
    while pager.asked:
        pager.answer()
    assert not model.detached and _ids(model)[-1] == "local-echo"
    assert _ids(model)[-2] == items[-1].event.event_id


def test_reveal_answers_what_cannot_be_shown(room: Room) -> None:
    items = _chatter(room, 300).timeline
    pager = Pager(items)
    model = _model(items, pager)
    seen: list[tuple[int, str]] = []
    model.revealed.connect(lambda row, why: seen.append((row, why)))

    model.reveal(len(items) - 1, "not-this-event")  # the row is another message
    assert seen[-1][0] == -1 and "not shown" in seen[-1][1]

    model.reveal(10, items[10].event.event_id)  # the audit was replaced meanwhile
    pager.answer(None)
    assert seen[-1][0] == -1 and "checked again" in seen[-1][1]

    # What is held moved on while the page was read: asked again, then shown.
    model.reveal(10, items[10].event.event_id)
    model.fetch_older()  # the user scrolled meanwhile
    while pager.asked:
        pager.answer()
    assert seen[-1][1] == ""
    assert model.index(seen[-1][0]).data(Roles.EventId) == items[10].event.event_id
