"""Identical copies of an event are reduced to the first in (path, line) order, whatever
order they were read in (PROTOCOL.md section 6 step 1). Before, the first copy *read* was
kept: a cold read (newest names first, workers finishing in any order) and a rebuild from
the index (path order) kept different copies, so a row's place, where a ``replay``
finding points and the order of two keys' rows under one id changed on a restart, and a
member who planted an identical copy of someone's event decided which."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger, prepare_segment
from bucket_chat_desktop.protocol.event import MESSAGE, Event
from bucket_chat_desktop.protocol.signing import build_event

from ._support import ROOM, T0, Device, alice, bob, named_path, seg


def under(device: Device, taken: Event, body: str) -> Event:
    """``device``'s own event under ``taken``'s event id (a replay, section 6 step 1)."""
    ev = build_event(
        room_id=ROOM,
        sender_id=device.sender_id,
        event_type=MESSAGE,
        content={"body": body, "msgtype": "m.text"},
        timestamp_ms=taken.timestamp_ms,
        unique=taken.event_id.rsplit("::", 1)[1],
        prev_event_hash=None,
        signing_key=device.key,
    )
    assert ev.event_id == taken.event_id
    return ev


def said(result: AuditResult) -> tuple[Any, ...]:
    """Everything an audit says, with the places it names."""
    rows = [
        (a.event.event_id, a.event.hash, a.state, a.reason, a.path, a.line) for a in result.timeline
    ]
    findings = sorted(
        (f.kind, f.path or "", f.line or 0, f.message, f.event_id or "") for f in result.findings
    )
    return rows, findings


def read(order: list[tuple[str, bytes]], keep_bodies: bool = True) -> AuditResult:
    led = RoomLedger(ROOM, keep_bodies=keep_bodies)
    for path, data in order:
        led.add_prepared(prepare_segment(path, data, ROOM))
    return led.audit()


def planted() -> tuple[list[tuple[str, bytes]], Event, str]:
    """The red-team room: alice's segment, eve's own event under alice's first id, and
    an identical copy of alice's event in a segment whose name sorts first; returns the
    segments, alice's event and the copy's path."""
    a, e = alice(), bob()
    a1, a2 = a.say(T0, "the real one"), a.say(T0 + 1, "second")
    theirs = under(e, a1, "same id")
    copy_path = named_path(T0, T0, "z-copy")
    segments = [
        seg([a1, a2], "alice"),
        (named_path(T0, T0, "zz-eve"), theirs.line()),
        (copy_path, a1.line()),
    ]
    assert copy_path < segments[0][0] and copy_path < segments[1][0]
    return segments, a1, copy_path


@pytest.mark.parametrize("keep_bodies", [True, False])
def test_every_read_order_keeps_the_copy_first_by_path_and_line(keep_bodies: bool) -> None:
    segments, a1, copy_path = planted()
    results = [read(list(order), keep_bodies) for order in itertools.permutations(segments)]
    first = said(results[0])
    assert all(said(r) == first for r in results[1:])
    rows = results[0].timeline
    # alice's copy is read at the planted copy's place, the first in (path, line) order,
    # and sorts before eve's (the same date and id: by place, section 9)
    assert [(r.event.sender_id, r.path, r.line) for r in rows][:2] == [
        (alice().sender_id, copy_path, 1),
        (bob().sender_id, named_path(T0, T0, "zz-eve"), 1),
    ]
    replays = [f for f in results[0].findings if f.kind.value == "replay"]
    assert [(f.path, f.line, f.event_id) for f in replays] == [(copy_path, 1, a1.event_id)]


def test_a_lone_identical_copy_read_later_takes_the_lower_place() -> None:
    a = alice()
    events = [a.join(T0), a.say(T0 + 1, "x")]
    low, high = seg(events, "a", attempt=1), seg(events, "a")
    assert low[0] < high[0]  # '-r1' before '.jsonl'
    for order in ([low, high], [high, low]):
        result = read(order)
        assert result.findings == []
        assert [(r.path, r.line) for r in result.timeline] == [(low[0], 1), (low[0], 2)]


def test_the_lower_line_of_one_segment_is_kept() -> None:
    a = alice()
    a1, a2 = a.join(T0), a.say(T0 + 1, "x")
    later = (named_path(T0, T0 + 1, "a"), a1.line() + a2.line() + a1.line())
    earlier = (named_path(T0, T0 + 1, "b"), a2.line() + a1.line())
    for order in ([later, earlier], [earlier, later]):
        result = read(order)
        assert [(r.path, r.line) for r in result.timeline] == [(later[0], 1), (later[0], 2)]


def test_a_lower_copy_after_an_audit_makes_the_next_one_full() -> None:
    """A copy read after an audit that comes first replaces the one that audit showed:
    what the audit derived from it (its row, a replay finding's place) is that audit's,
    so no append is made on top of it (``try_place`` None) and the next full audit says
    what a read in any order says."""
    segments, _, copy_path = planted()
    expected = said(read(segments))
    led = RoomLedger(ROOM)
    added: list[Any] = []
    for path, data in segments[:2]:
        added += led.add_prepared(prepare_segment(path, data, ROOM))
    before = led.audit()
    assert all(r.path != copy_path for r in before.timeline)
    shown = said(before)
    assert led.add_prepared(prepare_segment(*segments[2], ROOM)) == []  # no new event
    assert led.try_place([]) is None and led.try_append([]) is None
    assert said(before) == shown  # a result handed out never changes
    assert said(led.audit()) == expected


def test_a_lone_lower_copy_after_an_audit_makes_the_next_one_full() -> None:
    a = alice()
    events = [a.join(T0), a.say(T0 + 1, "x")]
    low, high = seg(events, "a", attempt=1), seg(events, "a")
    led = RoomLedger(ROOM)
    led.add_prepared(prepare_segment(*high, ROOM))
    before = led.audit()
    led.add_prepared(prepare_segment(*low, ROOM))
    assert led.try_place([]) is None
    assert [(r.path, r.line) for r in before.timeline] == [(high[0], 1), (high[0], 2)]
    assert [(r.path, r.line) for r in led.audit().timeline] == [(low[0], 1), (low[0], 2)]
    # a copy at a later place changes nothing: appends stay incremental
    led.add_prepared(prepare_segment(*seg(events, "b"), ROOM))
    placed = led.try_place([])
    assert placed is not None and placed.rows == []


def test_each_of_many_distinct_copies_keeps_its_first_place() -> None:
    """Distinct copies of one id, each stored twice, read from the last place back (a
    cold read's newest-first order): every copy is kept at its first place (each found
    in one look-up, not by a walk over the others), as a read in path order keeps it."""
    a = alice()
    base = a.say(T0, "x")
    lines = [
        build_event(
            room_id=ROOM,
            sender_id=a.sender_id,
            event_type=MESSAGE,
            content={"body": f"v{i}", "msgtype": "m.text"},
            timestamp_ms=base.timestamp_ms,
            unique=base.event_id.rsplit("::", 1)[1],
            prev_event_hash=None,
            signing_key=a.key,
        ).line()
        for i in range(40)
    ]
    high = (named_path(T0, T0, "b"), b"".join(lines))
    low = (named_path(T0, T0, "a"), b"".join(reversed(lines)))
    for keep_bodies in (True, False):
        backwards, forwards = read([high, low], keep_bodies), read([low, high], keep_bodies)
        assert said(backwards) == said(forwards)
        (replay,) = [f for f in backwards.findings if f.kind.value == "replay"]
        assert (replay.path, replay.line) == (low[0], 1)
        assert f"also at {low[0]}:2, {low[0]}:3," in replay.message
        assert high[0] not in replay.message
        assert [(r.path, r.line) for r in backwards.timeline] == [(low[0], 1)]
