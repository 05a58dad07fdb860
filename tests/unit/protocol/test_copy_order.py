"""Identical copies of an event are reduced to the first in (path, line) order, whatever
order they were read in (PROTOCOL.md section 6 step 1). Before, the first copy *read* was
kept: a cold read (newest names first, workers finishing in any order) and a rebuild from
the index (path order) kept different copies, so a row's place, where a ``replay``
finding points and the order of two keys' rows under one id changed on a restart, and a
member who planted an identical copy of someone's event decided which."""

from __future__ import annotations

import functools
import itertools
import json
import unicodedata
from typing import Any

import pytest

from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger, prepare_segment
from bucket_chat_desktop.protocol.event import MESSAGE, Event
from bucket_chat_desktop.protocol.ids import utc_date
from bucket_chat_desktop.protocol.segment import encode_segment
from bucket_chat_desktop.protocol.signing import build_event

from ._support import ROOM, T0, Device, alice, audit, bob, kinds, named_path, seg


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


# -- one order on every system (red team rt93) --------------------------------------------------
#
# Segment names are not the same text on every system: macOS HFS+ lists each name
# decomposed (NFD), where Linux and buckets keep what was written (NFC). Readers accept a
# non-ASCII client part (PROTOCOL.md section 2.2). In NFC ``é`` (U+00E9) sorts after
# ``f``; in NFD (``e`` + U+0301) before it. The (path, line) order compares the NFC form
# first (section 2.3), so a Linux and a Mac reader of one folder use the same copies and
# show the same rows in the same order.


def at(client: str, form: str) -> str:
    """A segment named with ``client`` as a system lists it: as written (``NFC``) or
    decomposed (``NFD``, HFS+)."""
    name = unicodedata.normalize(form, client)
    return f"rooms/{ROOM}/logs/{utc_date(T0)}/messages_{T0}_{T0}_{name}.jsonl"


def on_each_system(
    segments: list[tuple[str, bytes]],
) -> tuple[AuditResult, AuditResult]:
    """The audits of ``segments`` (clients named, not paths) on Linux and on a Mac."""
    linux, mac = (
        [(at(client, form), data) for client, data in segments] for form in ("NFC", "NFD")
    )
    assert linux != mac
    return audit(*linux), audit(*mac)


def placed(result: AuditResult) -> list[tuple[str, str, int | None, str]]:
    """Each shown row and finding by sender or kind, at its place written NFC."""
    nfc = functools.partial(unicodedata.normalize, "NFC")
    rows = [
        (r.event.sender_id, nfc(r.path), r.line, str(r.event.content.get("body")))
        for r in result.timeline
    ]
    return rows + [(f.kind.value, nfc(f.path or ""), f.line, "") for f in result.findings]


def test_the_copy_of_an_id_shown_does_not_depend_on_how_the_system_lists_names() -> None:
    """Red team rt93: eve signs "I owe Alice $100" and "I owe Alice $1000" under one
    event id, in segments ``…_é-eve`` and ``…_f-eve``: the first copy by (path, line) was
    shown, so a Linux reader showed $1000 and a Mac reader of the same folder $100."""
    eve = bob()
    small = eve.say(T0, "I owe Alice $100", prev=None)
    large = under(eve, small, "I owe Alice $1000")
    linux, mac = on_each_system([("\u00e9-eve", small.line()), ("f-eve", large.line())])
    for result in (linux, mac):
        assert [str(r.event.content["body"]) for r in result.timeline] == ["I owe Alice $1000"]
        assert kinds(result.findings) == ["missing-join", "replay"]
    assert placed(linux) == placed(mac)


def test_an_identical_copy_is_kept_at_the_same_place_whatever_the_form_of_its_name() -> None:
    a = alice()
    events = [a.join(T0), a.say(T0, "x")]
    linux, mac = on_each_system(
        [("\u00e9-a", encode_segment(events)), ("f-a", encode_segment(events))]
    )
    assert placed(linux) == placed(mac)
    assert {unicodedata.normalize("NFC", r.path) for r in mac.timeline} == {at("f-a", "NFC")}


def test_two_keys_copies_of_one_id_are_shown_in_the_same_order_whatever_the_form() -> None:
    """Two keys' copies of one id tie on everything but their place (section 9)."""
    a = alice()
    a1 = a.say(T0, "alice's", prev=None)
    theirs = under(bob(), a1, "bob's")
    linux, mac = on_each_system([("\u00e9-a", a1.line()), ("f-b", theirs.line())])
    assert [r.event.sender_id for r in linux.timeline] == [bob().sender_id, alice().sender_id]
    assert placed(linux) == placed(mac)


def test_a_missing_witnessed_event_is_reported_at_the_same_event_whatever_the_form() -> None:
    """Each missing hash is reported once, at the first event witnessing it (6.1)."""
    a, b, c = alice(), bob(), Device("carol@example.com", 9)
    gone = a.join(T0)
    seen = {a.public: gone.hash}
    bobs = [b.join(T0), b.emit(T0, MESSAGE, {"body": "b", "msgtype": "m.text"}, witness=seen)]
    carols = [c.join(T0), c.emit(T0, MESSAGE, {"body": "c", "msgtype": "m.text"}, witness=seen)]
    linux, mac = on_each_system(
        [("\u00e9-b", encode_segment(bobs)), ("f-c", encode_segment(carols))]
    )
    (finding,) = [f for f in mac.findings if f.kind.value == "truncated-chain"]
    assert (unicodedata.normalize("NFC", finding.path or ""), finding.line) == (at("f-c", "NFC"), 2)
    assert placed(linux) == placed(mac)


def test_names_equal_in_nfc_but_stored_as_two_objects_keep_one_order() -> None:
    """A Linux folder or a bucket can hold both forms as two objects: the name as
    listed decides between them, the same on every reader that lists both."""
    a = alice()
    events = [a.join(T0), a.say(T0, "x")]
    both = [
        (at("\u00e9-a", "NFC"), encode_segment(events)),
        (at("\u00e9-a", "NFD"), encode_segment(events)),
    ]
    for order in (both, both[::-1]):
        assert {r.path for r in audit(*order).timeline} == {at("\u00e9-a", "NFD")}  # "e" < "é"


def test_badly_signed_events_are_listed_in_the_same_order_whatever_the_form() -> None:
    """The list of events whose signature fails is in (path, line) order too (section
    2.3): a Linux and a Mac reader of one folder list a member's forgeries alike."""
    a = alice()
    first, second = a.say(T0, "one", prev=None), a.say(T0 + 1, "two", prev=None)

    def forged(ev: Event, other: Event) -> bytes:
        raw = json.loads(ev.line())
        raw["signature"] = json.loads(other.line())["signature"]
        return json.dumps(raw).encode() + b"\n"

    linux, mac = on_each_system(
        [("\u00e9-a", forged(first, second)), ("f-a", forged(second, first))]
    )
    nfc = functools.partial(unicodedata.normalize, "NFC")
    assert len(linux.invalid) == 2
    assert [(nfc(i.path), i.line) for i in linux.invalid] == [
        (nfc(i.path), i.line) for i in mac.invalid
    ]
