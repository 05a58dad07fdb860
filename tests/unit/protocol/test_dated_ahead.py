"""Rows dated far ahead of the reader's clock are held back (PROTOCOL.md section 9).

A member's message dated years ahead, placed by its date, stayed the room's last row and
made every later message a full re-audit (appends only take rows that sort last). It is
now held back with a finding; the rows written after it are appended as before.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.audit import (
    HOLD_AHEAD_MS,
    RoomLedger,
    Timeline,
    prepare_segment,
)
from bucket_chat_desktop.protocol.findings import Kind, Severity

from ._support import ROOM, T0, Device, alice, bob, seg

YEAR_MS = 365 * 24 * 3600 * 1000


def _add(led: RoomLedger, segment: tuple[str, bytes], now_ms: int) -> bool:
    """Feed one segment as the engine does; True when it stayed incremental."""
    added = led.add_prepared(prepare_segment(*segment, ROOM))
    if led.try_append(added, now_ms) is not None:
        return True
    led.audit(now_ms=now_ms)
    return False


def _bodies(led: RoomLedger) -> list[str | None]:
    assert led.result is not None
    return [a.event.body for a in led.result.timeline]


def _said(led: RoomLedger) -> tuple[object, ...]:
    result = led.result
    assert result is not None
    rows = [(a.event.event_id, a.state, a.reason) for a in result.timeline]
    return rows, sorted((f.kind, f.event_id or "") for f in result.findings)


def _fresh(segments: list[tuple[str, bytes]], now_ms: int, slim: bool = False) -> RoomLedger:
    led = RoomLedger(ROOM, keep_bodies=not slim)
    for path, data in segments:
        led.add_prepared(prepare_segment(path, data, ROOM))
    led.audit(now_ms=now_ms)
    return led


def test_a_row_dated_years_ahead_is_held_and_later_messages_stay_appends() -> None:
    a, b = alice(), bob()
    led = RoomLedger(ROOM)
    now = T0 + 10_000
    fed = [seg([a.join(T0), b.join(T0 + 1)], "ab"), seg([b.say(T0 + 100 * YEAR_MS, "last")], "b1")]
    _add(led, fed[0], now)
    assert _add(led, fed[1], now)
    result = led.result
    assert result is not None and len(result.timeline) == 2  # the two joins
    (held,) = [f for f in result.findings if f.kind is Kind.DATED_AHEAD]
    assert held.severity is Severity.NOTICE and "2125-" in held.message
    assert "'bob@example.com'" in held.message and held.path == fed[1][0] and held.line == 1
    assert led.held_from_ms == T0 + 100 * YEAR_MS
    # every later message of anyone is an append, shown at the end in date order; bob's
    # next one (his clock set right) is placed by its own date, not after the held one
    for n in range(3):
        fed.append(seg([a.say(T0 + 20 + n, f"a{n}")], f"a{n}"))
        assert _add(led, fed[-1], now)
    fed.append(seg([b.say(T0 + 30, "bob, clock fixed")], "b2"))
    assert _add(led, fed[-1], now)
    assert _bodies(led)[2:] == ["a0", "a1", "a2", "bob, clock fixed"]
    assert _said(led) == _said(_fresh(fed, now)) == _said(_fresh(fed, now, slim=True))
    # a reader without a clock (the writer's own head search) shows it, last
    assert _bodies(_fresh(fed, now)) != _bodies(ledger_without_clock(fed))
    assert _bodies(ledger_without_clock(fed))[-2:] == ["last", "bob, clock fixed"]


def ledger_without_clock(segments: list[tuple[str, bytes]]) -> RoomLedger:
    led = RoomLedger(ROOM)
    for path, data in segments:
        led.add_prepared(prepare_segment(path, data, ROOM))
    led.audit()
    return led


def test_a_held_row_is_shown_when_its_time_comes_with_its_chain_after_it() -> None:
    a = alice()
    ahead = T0 + 3 * HOLD_AHEAD_MS
    fed = [seg([a.join(T0), a.say(ahead, "early bird")], "a1"), seg([a.say(T0 + 5, "next")], "a2")]
    led = RoomLedger(ROOM)
    _add(led, fed[0], T0)
    assert _add(led, fed[1], T0)
    assert _bodies(led) == [None, "next"]
    # the clock reaches an hour before its date: the next append is a full audit, and
    # the chain's later row is placed after its predecessor again (section 9)
    later = ahead - HOLD_AHEAD_MS
    b = bob()
    fed.append(seg([b.join(T0 + 6)], "b"))
    assert not _add(led, fed[-1], later)
    assert _bodies(led) == [None, None, "early bird", "next"]
    assert not [f for f in led.result.findings if f.kind is Kind.DATED_AHEAD]  # type: ignore[union-attr]
    assert led.held_from_ms is None
    assert _said(led) == _said(_fresh(fed, later))


def test_a_clock_set_back_hides_nothing_that_was_shown() -> None:
    a = alice()
    now = T0 + 2 * HOLD_AHEAD_MS
    fed = [seg([a.join(T0), a.say(now + HOLD_AHEAD_MS // 2, "soon")], "a")]
    led = RoomLedger(ROOM)
    _add(led, fed[0], now)
    assert _bodies(led) == [None, "soon"]
    assert led.horizon_ms == now + HOLD_AHEAD_MS
    led.audit(now_ms=T0)  # the clock went back two hours
    assert _bodies(led) == [None, "soon"]
    assert led.horizon_ms == now + HOLD_AHEAD_MS  # what a search of the room may find
    assert ledger_without_clock(fed).horizon_ms is None


def test_a_held_chain_root_and_an_unsigned_row_ahead_stay_appends() -> None:
    """A newcomer whose first join is dated ahead, and an unsigned line dated ahead."""
    a, c = alice(), Device("carol@example.com", 9)
    now = T0 + 1_000
    fed = [seg([a.join(T0)], "a")]
    led = RoomLedger(ROOM)
    _add(led, fed[0], now)
    fed.append(seg([c.join(now + 2 * HOLD_AHEAD_MS), c.say(T0 + 50, "hi")], "c"))
    assert _add(led, fed[-1], now)
    assert _bodies(led) == [None, "hi"]
    assert _said(led) == _said(_fresh(fed, now))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # which device
            st.sampled_from([0, 1, 2, HOLD_AHEAD_MS + 5, 40 * YEAR_MS]),  # how far ahead
            st.integers(0, 3),  # minutes the reader's clock moved on
        ),
        min_size=1,
        max_size=12,
    )
)
def test_appends_say_what_a_full_audit_says(steps: list[tuple[int, int, int]]) -> None:
    """Fed one segment at a time by a clock moving on, the ledger says what a full audit
    of the same segments says by the same clock, places its rows where that audit does,
    and never moves the places of a result it gave before (a held row shown at last
    moves its chain's later rows: an older result's unread arrivals read its own)."""
    devices = [alice(), bob(), Device("carol@example.com", 9)]
    joined = [False, False, False]
    now = T0
    led = RoomLedger(ROOM, keep_bodies=False)
    fed: list[tuple[str, bytes]] = []
    given: list[tuple[Timeline, list[int], list[int]]] = []
    for n, (who, ahead, moved) in enumerate(steps):
        now += moved * 60_000
        d = devices[who]
        ts = now + ahead + n
        ev = d.say(ts, f"m{n}") if joined[who] else d.join(ts)
        joined[who] = True
        fed.append(seg([ev], f"c{n}"))
        _add(led, fed[-1], now)
        fresh = _fresh(fed, now)
        assert _said(led) == _said(fresh)
        assert led.result is not None and fresh.result is not None
        rows = led.result.timeline
        probes = sorted({now, *(a.event.timestamp_ms for a in rows)})
        places = [rows.placed_by(p) for p in probes]
        assert places == [fresh.result.timeline.placed_by(p) for p in probes]
        given.append((rows, probes, places))
        for old, at, was in given:
            assert [old.placed_by(p) for p in at] == was
