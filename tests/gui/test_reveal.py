"""``TimelineModel.reveal``: a message found by search is shown in context. The rows from
half a page above it down to what is shown already are exposed (asked of the pager in
one request when not held), the row is reported to the caller; a message the audit does
not show, an audit replaced meanwhile, or held rows that moved on while the page was
read are each answered, never a crash or a wrong row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_models import ALICE, Room, _chatter, _ids, key_text
from test_models import Deferred as Pager

from bucket_chat_desktop.gui.models.timeline_model import PAGE, Roles, TimelineModel
from bucket_chat_desktop.sync.events import ShownEvent


@pytest.fixture
def room(tmp_path: Path) -> Room:
    return Room(tmp_path / "store")


def _model(items: Any, pager: Pager) -> TimelineModel:
    model = TimelineModel(key_text(ALICE))
    newest = [ShownEvent(a, a.event) for a in items[-PAGE:]]
    model.set_audit(len(items), newest, True, items, pager)
    while pager.asked:  # the page fetched ahead
        pager.answer()
    return model


def test_reveal_loads_the_rows_around_an_old_message(qtmodeltester: Any, room: Room) -> None:
    items = _chatter(room, 300).timeline  # 903 events
    pager = Pager(items)
    model = _model(items, pager)
    qtmodeltester.check(model)
    seen: list[tuple[int, str]] = []

    def done(row: int, why: str) -> None:
        seen.append((row, why))

    # Already shown: at once, no request.
    target = items[-3].event.event_id
    model.reveal(len(items) - 3, target, done)
    assert seen == [(model.rowCount() - 3, "")] and not pager.asked

    # Held above (fetched ahead): exposed from half a page above it, no request.
    pos = len(items) - PAGE - 50
    model.reveal(pos, items[pos].event.event_id, done)
    row, why = seen[-1]
    assert why == "" and model.index(row).data(Roles.EventId) == items[pos].event.event_id
    assert _ids(model)[0] == items[pos - PAGE // 2].event.event_id
    while pager.asked:
        pager.answer()

    # Far above: one request from half a page above it to what is held.
    pos = 40
    model.reveal(pos, items[pos].event.event_id, done)
    (start, stop, _reply) = pager.asked[-1]
    assert start == 0 and stop > pos + PAGE
    pager.answer()
    row, why = seen[-1]
    assert why == "" and model.index(row).data(Roles.EventId) == items[pos].event.event_id
    ids = _ids(model)
    assert ids == [a.event.event_id for a in items[len(items) - len(ids) :]]  # contiguous
    assert len(set(ids)) == len(ids)


def test_reveal_answers_what_cannot_be_shown(room: Room) -> None:
    items = _chatter(room, 300).timeline
    pager = Pager(items)
    model = _model(items, pager)
    seen: list[tuple[int, str]] = []

    def done(row: int, why: str) -> None:
        seen.append((row, why))

    model.reveal(len(items) - 1, "not-this-event", done)  # the row is another message
    assert seen[-1][0] == -1 and "not shown" in seen[-1][1]

    model.reveal(10, items[10].event.event_id, done)  # the audit was replaced meanwhile
    pager.answer(None)
    assert seen[-1][0] == -1 and "checked again" in seen[-1][1]

    # What is held moved on while the page was read: asked again, then shown.
    model.reveal(10, items[10].event.event_id, done)
    model.fetch_older()  # the user scrolled meanwhile
    while pager.asked:
        pager.answer()
    assert seen[-1][1] == ""
    assert model.index(seen[-1][0]).data(Roles.EventId) == items[10].event.event_id
