"""Differential red team of the slim ledger's audit over row numbers (``audit._RowChains``,
docs/MEMORY.md "The audit over row numbers") against the whole ledger's over copies.

The hostile rooms of ``test_incremental_differential`` (forks, gaps, duplicates, replays
under another key, unsigned lines under names that sign, rows dated ahead and behind,
same-ms timestamps, witnesses of missing or stale hashes, device introductions, invalid
signatures...) arrive one segment at a time in any order, some never; after each arrival
a slim and a whole ledger fed the same segments are audited by the same clock, with the
history complete or still loading, the room partly unread or not, a key pinned or not.
Both must say the same of every row, finding and invalid row, and leave the same state
for the appends that follow (chain tips and their order, the last rows' order keys, the
rows placed after their dates): ``try_place`` continues from it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey
from test_incremental_differential import (
    CLOCK,
    ROOM,
    SETTINGS,
    T0,
    _said,
    _write,
    ahead,
    hostile,
    live,
)

from bucket_chat_desktop.protocol.audit import PreparedSegment, RoomLedger, prepare_segment
from bucket_chat_desktop.protocol.signing import public_key_text


def _state(led: RoomLedger) -> tuple[Any, ...]:
    """What a full audit leaves for the appends after it (``audit._Tips``)."""
    tips = led._tips
    assert tips is not None
    ends = {
        key: None if c is None else (c.hash, c.eff, c.depth, c.timestamp_ms, c.row)
        for key, c in tips.tips.items()
    }
    timeline = tips.result.timeline
    return (
        ends,
        tips.bound,
        tips.last_row,
        tips.tail,
        tips.late,
        tips.held_from,
        tips.unseen,
        tips.nameless,
        tips.seen_at,
        tips.backdated,
        tips.trust.taken,
        tips.trust.roots,
        tips.trust.conflicts,
        tips.reported,
        list(timeline._rows),
        tips.result.introductions,
        tips.result.disputed,
    )


@SETTINGS
@given(
    st.one_of(hostile, live, ahead),
    st.data(),
    st.booleans(),  # Alice's first key pinned on this device
)
def test_a_slim_ledger_says_what_a_whole_one_says(
    steps: list[tuple[str, int, int, int, bool]], data: st.DataObject, pinned: bool
) -> None:
    room = _write(steps)
    count = len(room.segments)
    order = data.draw(st.permutations(range(count)), label="order")
    dropped = data.draw(st.sets(st.sampled_from(order)) if order else st.just(set()))
    pins = {"alice@example.com": {public_key_text(SigningKey(bytes([1]) * 32))}} if pinned else {}
    slim, whole = RoomLedger(ROOM, keep_bodies=False), RoomLedger(ROOM)
    read: list[PreparedSegment] = []
    now = T0
    for n, i in enumerate(i for i in order if i not in dropped):
        path, lines = room.segments[i]
        read.append(prepare_segment(path, b"".join(lines), ROOM))
        slim.add_prepared(read[-1])
        whole.add_prepared(read[-1])
        now += data.draw(st.sampled_from(CLOCK), label=f"clock {n}")
        complete, partial = data.draw(
            st.sampled_from([(True, False), (False, False), (True, True)]), label=f"how {n}"
        )
        clock = now if data.draw(st.booleans(), label=f"clock given {n}") else None
        how: dict[str, Any] = {"complete": complete, "partial": partial, "now_ms": clock}
        got = slim.audit(pins, **how)
        expected = whole.audit(pins, **how)
        assert _said(got, slim, now) == _said(expected, whole, now)
        assert got.findings == expected.findings  # in the same order too
        assert (got.introductions, got.disputed) == (expected.introductions, expected.disputed)
        # What is left for appends, of ledgers audited once: a whole ledger's copies keep
        # a chain tip's order between audits (a slim one makes them anew each time)
        fresh = RoomLedger(ROOM, keep_bodies=False), RoomLedger(ROOM)
        for led in fresh:
            for prepared in read:
                led.add_prepared(prepared)
        assert _said(fresh[0].audit(pins, **how), fresh[0], now) == _said(
            fresh[1].audit(pins, **how), fresh[1], now
        )
        assert _state(fresh[0]) == _state(fresh[1])
