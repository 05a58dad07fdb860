"""The order a chain's rows are shown in, against a plain recursive statement of the rule.

A row never shows before its chain predecessor (section 9): its place is the later of its
own (date, id) and its predecessor's place, one step deeper, unless that predecessor is
held back (dated after the horizon). The audit computes this in one pass with a stack of
rows waiting for a parent that sorts later; here it is computed by recursion, on chains
with forks, gaps, dates falling and rising, and a horizon that holds rows back.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.audit import HOLD_AHEAD_MS, RoomLedger
from bucket_chat_desktop.protocol.event import Event
from bucket_chat_desktop.protocol.findings import Kind

from ._support import T0, Device, audit, seg

_NO_HORIZON = float("inf")


def _places(events: list[Event], horizon: float) -> dict[str, tuple[tuple[int, str], int]]:
    """Each event's (place, depth), by the rule itself."""
    by_hash = {e.hash: e for e in events}
    out: dict[str, tuple[tuple[int, str], int]] = {}

    def place(e: Event) -> tuple[tuple[int, str], int]:
        got = out.get(e.hash)
        if got is None:
            own = (e.timestamp_ms, e.event_id)
            parent = by_hash.get(e.prev_event_hash or "")
            if parent is not None and parent.timestamp_ms <= horizon:
                above, depth = place(parent)
                got = (max(own, above), depth + 1)
            else:
                got = (own, 0)
            out[e.hash] = got
        return got

    for e in events:
        place(e)
    return out


# Per event after each device's join: its device, which earlier event of that device it
# follows (an index, taken modulo how many there are; None: a predecessor not in the room,
# a gap), and its date, seconds from T0 (dates may fall along a chain).
_steps = st.lists(
    st.tuples(st.integers(0, 1), st.none() | st.integers(0, 50), st.integers(-20, 20)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=120, deadline=None, database=None)
@given(
    steps=_steps,
    joins=st.tuples(st.integers(-20, 20), st.integers(-20, 20)),
    clock=st.none() | st.integers(-40, 40),
)
def test_rows_are_shown_in_the_order_the_rule_gives(
    steps: list[tuple[int, int | None, int]], joins: tuple[int, int], clock: int | None
) -> None:
    devices = [Device("alice@example.com", 1), Device("bob@example.com", 2)]
    chains: list[list[Event]] = [
        [d.join(T0 + j * 1000)] for d, j in zip(devices, joins, strict=True)
    ]
    gaps = 0
    for who, follows, when in steps:
        chain = chains[who]
        if follows is None:
            prev: Any = "A" * 43 + "="  # no event's hash: a gap
            gaps += 1
        else:
            prev = chain[follows % len(chain)].hash
        chain.append(devices[who].say(T0 + when * 1000, f"m{len(chain)}", prev=prev))
    events = [e for chain in chains for e in chain]
    # a fork: two events of one chain that follow one hash (in the room or not)
    forks = sum(
        sum(1 for n in Counter(e.prev_event_hash for e in chain).values() if n > 1)
        for chain in chains
    )
    segments = [seg(chain, f"c{i}") for i, chain in enumerate(chains)]

    now_ms = None if clock is None else T0 + clock * 1000
    if now_ms is None:
        result = audit(*segments)
        horizon: float = _NO_HORIZON
    else:
        led = RoomLedger(chains[0][0].room_id)
        for path, data in segments:
            led.add_segment(path, data)
        result = led.audit(now_ms=now_ms)
        horizon = now_ms + HOLD_AHEAD_MS

    places = _places(events, horizon)
    line = {
        e.hash: (path, n)
        for (path, _), chain in zip(segments, chains, strict=True)
        for n, e in enumerate(chain, 1)
    }
    expected = sorted(
        (e for e in events if places[e.hash][0][0] <= horizon),
        key=lambda e: (places[e.hash], line[e.hash]),
    )
    assert [a.event.event_id for a in result.timeline] == [e.event_id for e in expected]
    kinds = [f.kind for f in result.findings]
    assert kinds.count(Kind.GAP) == gaps
    assert kinds.count(Kind.FORK) == forks
