"""Plain regressions for what the differential test of the incremental paths found
(``tests/unit/sync/test_incremental_differential.py``): each case is fed one segment at a
time as the engine feeds it (``try_place``, else a full audit) and compared with a fresh
full audit of the same segments by the same clock."""

from __future__ import annotations

from collections import Counter

from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger, prepare_segment

from ._support import ROOM, T0, Device, alice, bob, seg

MISSING = "ysrKysrKysrKysrKysrKysrKysrKysrKysrKysrKyso="  # base64 of 32 bytes no event has


def _feed(segments: list[tuple[str, bytes]], now: int) -> tuple[RoomLedger, list[bool]]:
    led = RoomLedger(ROOM)
    cheap = []
    for path, data in segments:
        placed = led.try_place(led.add_prepared(prepare_segment(path, data, ROOM)), now)
        cheap.append(placed is not None)
        if placed is None:
            led.audit(now_ms=now)
    return led, cheap


def _fresh(segments: list[tuple[str, bytes]], now: int) -> AuditResult:
    led = RoomLedger(ROOM)
    for path, data in segments:
        led.add_prepared(prepare_segment(path, data, ROOM))
    return led.audit(now_ms=now)


def _said(result: AuditResult | None) -> tuple[object, ...]:
    assert result is not None
    rows = [(a.event.event_id, a.state, a.reason, a.path, a.line) for a in result.timeline]
    return rows, Counter(result.findings), result.segments


def test_a_segment_of_copies_read_before_is_counted() -> None:
    """A retried write: a new segment holding only exact copies of events read before.
    It adds no row, and the result stayed the very same object — with one segment fewer
    than a full audit counts (the audit view's "events in N segments"). Copies that come
    first in (path, line) order are kept instead of the rows shown (section 6 step 1):
    their places are a full audit's to say."""
    a = alice()
    first = [a.join(T0), a.say(T0 + 1, "hi")]
    fed = [seg(first, "c1"), seg(first, "c2")]
    assert fed[0][0] < fed[1][0]
    led, cheap = _feed(fed, T0)
    assert cheap == [False, True]
    assert led.result is not None and led.result.segments == 2
    assert _said(led.result) == _said(_fresh(fed, T0))
    for fed in ([seg(first, "c2"), seg(first, "c1")], [seg(first, "c1"), seg(first[:1], "c2")]):
        assert fed[1][0] < fed[0][0]
        led, cheap = _feed(fed, T0)
        assert cheap == [False, False]
        assert led.result is not None and led.result.segments == 2
        assert _said(led.result) == _said(_fresh(fed, T0)) == _said(_fresh(fed[::-1], T0))


def test_a_witnessed_device_that_arrives_is_named_in_the_finding() -> None:
    """Alice witnessed an event of a key no event of which was in the room: the
    truncated-chain finding says "of a device". That key's join then arrives (a
    newcomer's first join, an append): a full audit names its sender, the append kept
    the old message."""
    a, b = alice(), bob()
    fed = [seg([a.join(T0), a.say(T0 + 1, "saw", witness={b.public: MISSING})], "a")]
    fed.append(seg([b.join(T0 + 2)], "b"))
    led, _ = _feed(fed, T0)
    assert led.result is not None
    (finding,) = [f for f in led.result.findings if f.kind.value == "truncated-chain"]
    assert "of 'bob@example.com'" in finding.message
    assert _said(led.result) == _said(_fresh(fed, T0))


def test_siblings_of_a_fork_placed_at_their_predecessor_follow_path_and_line() -> None:
    """PROTOCOL.md section 9: ties that remain (siblings of a fork) are broken by (object
    path, line). Two siblings dated before their predecessor are both placed at its key
    with one depth: the audit showed them in their own (date, id) order, which a reader
    following the rule does not (found while comparing orders of arrival)."""
    a = alice()
    join = a.join(T0 + 100)
    one, two = sorted(
        [a.say(T0 + 1, "one", prev=join.hash), a.say(T0 + 1, "two", prev=join.hash)],
        key=lambda e: e.event_id,
    )
    fed = [seg([join], "j"), seg([one], "z"), seg([two], "a")]  # two's path sorts first
    for order in (fed, fed[::-1]):
        result = _fresh(order, T0)
        assert [r.event.event_id for r in result.timeline] == [
            join.event_id,
            two.event_id,
            one.event_id,
        ]


def test_a_missing_event_two_devices_witnessed_is_reported_at_one_place() -> None:
    """Bob and Carol both witnessed an event of Alice's that is not in the room. The one
    truncated-chain finding was put at the witness of whichever chain was read first, so
    a reader that listed the segments in another order than they arrived here reported
    it elsewhere. It is now at the first witness in (path, line) order."""
    a, b, c = alice(), bob(), Device("carol@example.com", 9)
    fed = [
        seg([a.join(T0)], "a"),
        seg([c.join(T0 + 1), c.say(T0 + 3, "saw", witness={a.public: MISSING})], "c"),
        seg([b.join(T0 + 1), b.say(T0 + 2, "saw", witness={a.public: MISSING})], "b"),
    ]
    places = set()
    for order in (fed, fed[::-1], sorted(fed)):
        result = _fresh(order, T0)
        (finding,) = [f for f in result.findings if f.kind.value == "truncated-chain"]
        places.add((finding.path, finding.line, finding.message))
    assert len(places) == 1
    (where,) = places
    assert where[:2] == (fed[2][0], 2)  # Bob's path sorts before Carol's
    assert "of 'alice@example.com'" in where[2]
