"""A whole timeline read by column (``Timeline.verdict_rows``, ``Timeline.verified_keys``)
gives exactly what reading it row by row gives: what the index saves of an audit and the
keys trust on first use pins, without making an ``Assessed`` and an ``Event`` per row
(at 100,000 rows: ~7 µs a row made, ~4.5 and ~0.4 by column)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.audit import RoomLedger, Timeline, TrustState
from bucket_chat_desktop.protocol.event import Event

from ._support import ROOM, T0, Device, alice, alice_laptop, bob, seg


def _by_row(timeline: Timeline) -> list[tuple[str, str, int, TrustState, str, str]]:
    return [(a.event.event_id, a.path, a.line, a.state, a.reason, a.event.hash) for a in timeline]


def _keys_by_row(timeline: Timeline) -> set[tuple[str, str]]:
    return {
        (a.event.sender_id, a.event.sender_key)
        for a in timeline
        if a.state is TrustState.VERIFIED and a.event.sender_key
    }


def _room(plan: list[tuple[int, int]]) -> list[tuple[str, bytes]]:
    """Segments of messages by alice, bob and alice's second key (a device never
    introduced: its rows are not verified as alice's), ``plan`` giving (who, how many)."""
    devices: list[Device] = [alice(), bob(), alice_laptop()]
    segments = []
    ts = T0
    for n, (who, count) in enumerate(plan):
        device = devices[who]
        events: list[Event] = []
        if device.prev is None:
            events.append(device.join(ts))
        for _ in range(count):
            ts += 1
            events.append(device.say(ts, f"m{ts}"))
        if events:
            segments.append(seg(events, f"c{who}", attempt=n))
    return segments


@settings(max_examples=60, deadline=None)
@given(
    plan=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4)), min_size=1, max_size=8),
    keep_bodies=st.booleans(),
    pin_other=st.booleans(),
    cut=st.integers(0, 6),
)
def test_a_timeline_read_by_column_is_what_it_is_row_by_row(
    plan: list[tuple[int, int]], keep_bodies: bool, pin_other: bool, cut: int
) -> None:
    led = RoomLedger(ROOM, keep_bodies=keep_bodies)
    for path, data in _room(plan):
        led.add_segment(path, data)
    # alice pinned to another key: her rows are "key changed", not verified
    pins = {"alice@example.com": {"A" * 43 + "="}} if pin_other else None
    timeline = led.audit(pins).timeline
    assert list(timeline.verdict_rows()) == _by_row(timeline)
    assert timeline.verified_keys() == _keys_by_row(timeline)
    part = timeline[cut:]  # a slice is a Timeline of its own rows
    assert list(part.verdict_rows()) == _by_row(part)
    assert part.verified_keys() == _keys_by_row(part)


def test_the_rooms_made_here_hold_more_than_one_verdict() -> None:
    """The property above compares verified rows and rows that are not (else it would
    compare little)."""
    led = RoomLedger(ROOM, keep_bodies=False)
    for path, data in _room([(0, 2), (1, 2), (2, 2)]):
        led.add_segment(path, data)
    seen = {a.state for a in led.audit().timeline}
    seen |= {a.state for a in led.audit({"alice@example.com": {"A" * 43 + "="}}).timeline}
    assert TrustState.VERIFIED in seen and len(seen) > 1
