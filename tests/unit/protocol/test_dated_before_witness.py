"""Red team rt79: a member backdates the next event of their chain into old history, and
the room itself holds signed proof that the event was not there at its date.

Bob's message of day 20 witnesses (PROTOCOL.md section 6.1) Mallory's newest event as
he read it: her message of day 1. Mallory then signs the successor of that very event,
dated day 2: "I do NOT approve the budget. Objections by Friday, or it is final." It is
placed on day 2, eighteen days above Bob's message, verified, and the audit says
nothing, though Bob's signed witness shows that on day 20 her chain still ended at
day 1: what claims day 2 was written (or delivered) after day 20."""

from __future__ import annotations

from bucket_chat_desktop.protocol.audit import (
    WITNESS_SLACK_MS,
    RoomLedger,
    TrustState,
    prepare_segment,
)
from bucket_chat_desktop.protocol.findings import Kind, Severity

from ._support import ROOM, T0, Device, alice, audit, bob, kinds, ledger, seg

DAY = 24 * 3600 * 1000


def test_an_event_dated_before_a_witness_that_had_not_seen_it_is_said() -> None:
    mallory, b = Device("mallory@example.com", 13), bob()
    m1 = mallory.join(T0)
    m2 = mallory.say(T0 + DAY, "budget draft is in the shared folder")
    b1 = b.join(T0 + 1)
    b2 = b.say(T0 + 20 * DAY, "status: going ahead", witness={mallory.public: m2.hash})
    honest = audit(seg([m1, m2], "m"), seg([b1, b2], "b"))
    assert honest.findings == []
    m3 = mallory.say(T0 + 2 * DAY, "I do NOT approve the budget. Objections by Friday.")
    result = audit(seg([m1, m2], "m"), seg([b1, b2], "b"), seg([m3], "m"))
    order = [a.event.event_id for a in result.timeline]
    assert order.index(m3.event_id) < order.index(b2.event_id)  # placed on day 2
    said = [f for f in result.findings if f.event_id in (m3.event_id, b2.event_id)]
    assert said, (
        f"Mallory's event dated day 2 follows the event Bob's day-20 message witnessed as "
        f"her newest, yet the audit says nothing: findings {result.findings}; it is shown "
        f"{result.timeline[order.index(m3.event_id)].state}"
    )


# -- the rule, its wording and its slack ---------------------------------------------------

HOUR = 3600 * 1000


def _alice_backdated_by(
    witness_ts: int, a2_ts: int = T0 + 2 * DAY
) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """Alice's a1 (day 1), a2 (dated ``a2_ts``); Bob's b2 dated ``witness_ts`` witnesses
    a1 as Alice's newest."""
    a, b = alice(), bob()
    a0, a1 = a.join(T0), a.say(T0 + DAY, "draft")
    b1 = b.join(T0 + 1)
    b2 = b.say(witness_ts, "going ahead", witness={a.public: a1.hash})
    a2 = a.say(a2_ts, "I object")
    ids = {"a2": a2.event_id, "b2": b2.event_id}
    return [seg([a0, a1], "a"), seg([b1, b2], "b"), seg([a2], "a2")], ids


def test_the_notice_names_both_sides_and_says_it_is_the_witnesses_claim() -> None:
    segments, ids = _alice_backdated_by(T0 + 20 * DAY)
    result = audit(*segments)
    (finding,) = result.findings
    assert finding.kind is Kind.DATED_BEFORE_WITNESS
    assert finding.severity is Severity.NOTICE  # verify stays clean: only a notice
    assert result.clean
    assert finding.event_id == ids["a2"] and finding.path == segments[2][0]
    assert finding.line == 1
    assert finding.message == (
        "an event by 'alice@example.com' dated 2025-09-16 12:00 UTC follows the one "
        "'bob@example.com' signed on 2025-10-04 12:00 UTC as the newest by "
        "'alice@example.com' they had read: if that claim of 'bob@example.com' is true, "
        "this event was written or delivered after then (as a message sent late, after an "
        "outage, would be)"
    )
    # The verdict on the row is its signature's and chain's: unchanged.
    (row,) = [r for r in result.timeline if r.event.event_id == ids["a2"]]
    assert row.state is TrustState.VERIFIED


def test_clock_skew_and_a_late_poll_within_the_slack_are_not_reported() -> None:
    a2_ts = T0 + 2 * DAY
    segments, _ = _alice_backdated_by(a2_ts + WITNESS_SLACK_MS, a2_ts)
    assert audit(*segments).findings == []
    segments, _ = _alice_backdated_by(a2_ts + WITNESS_SLACK_MS + 1, a2_ts)
    assert kinds(audit(*segments).findings) == ["dated-before-witness"]


def test_an_event_dated_after_the_witness_is_not_reported() -> None:
    segments, _ = _alice_backdated_by(T0 + 2 * DAY, T0 + 3 * DAY)
    assert audit(*segments).findings == []


def test_the_same_findings_whatever_order_the_segments_are_read_in() -> None:
    segments, _ = _alice_backdated_by(T0 + 20 * DAY)
    first = audit(*segments).findings
    assert audit(*reversed(segments)).findings == first


def test_one_notice_per_key_at_its_earliest_event_naming_the_earliest_witness() -> None:
    """Bob witnessed m2 on day 20 and m3 on day 30; m3 is dated day 2, m4 day 3: both
    follow what a later witness saw as the newest. One notice, at m3, naming day 20."""
    m, b = Device("mallory@example.com", 13), bob()
    m1, m2 = m.join(T0), m.say(T0 + DAY, "one")
    m3 = m.say(T0 + 2 * DAY, "two")
    m4 = m.say(T0 + 3 * DAY, "three")
    b1 = b.join(T0 + 1)
    b2 = b.say(T0 + 20 * DAY, "x", witness={m.public: m2.hash})
    b3 = b.say(T0 + 30 * DAY, "y", witness={m.public: m3.hash})
    # Bob's second witness is late for m3 itself (it names m3): m3 is not "read by then"
    # for the day-20 witness, which is earlier.
    result = audit(seg([m1, m2], "m"), seg([b1, b2, b3], "b"), seg([m3, m4], "m2"))
    (finding,) = result.findings
    assert finding.event_id == m3.event_id
    assert "2025-10-04 12:00 UTC" in finding.message  # day 20, not day 30


# -- hostile witnesses ---------------------------------------------------------------------


def test_a_witness_dated_far_ahead_is_held_and_counts_for_nothing() -> None:
    """Mallory dates her witness of Alice's old a1 a year ahead: held back as dated ahead,
    it is no evidence against Alice's a2 (its date is not yet)."""
    a, m = alice(), Device("mallory@example.com", 13)
    a0, a1, a2 = a.join(T0), a.say(T0 + DAY, "draft"), a.say(T0 + 2 * DAY, "I object")
    m1 = m.join(T0 + 1)
    m2 = m.say(T0 + 365 * DAY, "pinned", witness={a.public: a1.hash})
    led = ledger(seg([a0, a1, a2], "a"), seg([m1, m2], "m"))
    result = led.audit(now_ms=T0 + 20 * DAY)
    assert kinds(result.findings) == ["dated-ahead"]
    # Shown at its date (a year later), it would count.
    assert "dated-before-witness" in kinds(led.audit(now_ms=T0 + 365 * DAY).findings)


def test_a_witness_dated_before_the_event_it_names_counts_for_nothing() -> None:
    """A witness holds the hash of what it names, so it was written after that: dated
    before it, its own date is false, and proves nothing about the next event's."""
    a, m = alice(), Device("mallory@example.com", 13)
    a0, a1 = a.join(T0), a.say(T0 + 10 * DAY, "ten")
    a2 = a.say(T0 + 2 * DAY, "shown after ten, as its chain says")
    m1 = m.join(T0 + 1)
    m2 = m.say(T0 + 5 * DAY, "backdated", witness={a.public: a1.hash})
    assert audit(seg([a0, a1, a2], "a"), seg([m1, m2], "m")).findings == []


def test_a_false_witness_that_another_witness_contradicts_is_not_reported() -> None:
    """Mallory signs on day 20 that Alice's a1 was still Alice's newest: Bob's witness of
    day 3 names a2, so a2 was in the room by day 3. Nothing is said against Alice. A
    witness of a2 dated after Mallory's does not contradict her."""
    a, m, b = alice(), Device("mallory@example.com", 13), bob()
    a0, a1, a2 = a.join(T0), a.say(T0 + DAY, "draft"), a.say(T0 + 2 * DAY, "I object")
    m1 = m.join(T0 + 1)
    m2 = m.say(T0 + 20 * DAY, "stale", witness={a.public: a1.hash})
    b1 = b.join(T0 + 2)
    early = b.say(T0 + 3 * DAY, "seen", witness={a.public: a2.hash})
    assert audit(seg([a0, a1, a2], "a"), seg([m1, m2], "m"), seg([b1, early], "b")).findings == []
    b = bob()
    b1 = b.join(T0 + 2)
    late = b.say(T0 + 25 * DAY, "seen", witness={a.public: a2.hash})
    (finding,) = audit(seg([a0, a1, a2], "a"), seg([m1, m2], "m"), seg([b1, late], "b")).findings
    assert finding.event_id == a2.event_id and "'mallory@example.com' signed on" in finding.message


def test_a_witness_naming_an_event_under_another_key_counts_for_nothing() -> None:
    """Mallory's witness names Alice's a1 under Bob's key: no chain of Bob's holds it."""
    a, m, b = alice(), Device("mallory@example.com", 13), bob()
    a0, a1, a2 = a.join(T0), a.say(T0 + DAY, "draft"), a.say(T0 + 2 * DAY, "I object")
    b1 = b.join(T0 + 2)
    m1 = m.join(T0 + 1)
    m2 = m.say(T0 + 20 * DAY, "stale", witness={b.public: a1.hash})
    assert audit(seg([a0, a1, a2], "a"), seg([m1, m2], "m"), seg([b1], "b")).findings == []


def test_a_witness_with_a_broken_chain_link_counts_for_nothing() -> None:
    """Only the witness of an event whose own chain link is intact counts (as for
    ``truncated-chain``): a witness after a gap in its writer's chain is not."""
    a, m = alice(), Device("mallory@example.com", 13)
    a0, a1, a2 = a.join(T0), a.say(T0 + DAY, "draft"), a.say(T0 + 2 * DAY, "I object")
    m1 = m.join(T0 + 1)
    m.say(T0 + 3 * DAY, "removed")
    m3 = m.say(T0 + 20 * DAY, "stale", witness={a.public: a1.hash})
    assert kinds(audit(seg([a0, a1, a2], "a"), seg([m1], "m"), seg([m3], "m3")).findings) == ["gap"]


# -- a ledger fed segment by segment says what a full audit says -----------------------------


def _fed(segments: list[tuple[str, bytes]], now_ms: int) -> tuple[RoomLedger, int]:
    """Each segment after the first placed as the engine places it (``try_place``, else a
    full audit); how many took a full audit."""
    led = RoomLedger(ROOM, keep_bodies=False)
    led.add_prepared(prepare_segment(*segments[0], ROOM))
    led.audit(now_ms=now_ms)
    full = 0
    for segment in segments[1:]:
        if led.try_place(led.add_prepared(prepare_segment(*segment, ROOM)), now_ms) is None:
            led.audit(now_ms=now_ms)
            full += 1
    return led, full


def _findings(led: RoomLedger) -> list[tuple[str, str | None, str]]:
    assert led.result is not None
    return sorted((f.kind.value, f.event_id, f.message) for f in led.result.findings)


def _same_as_a_full_audit(segments: list[tuple[str, bytes]], now_ms: int) -> RoomLedger:
    led, _ = _fed(segments, now_ms)
    fresh = RoomLedger(ROOM)
    for path, data in segments:
        fresh.add_segment(path, data)
    fresh.audit(now_ms=now_ms)
    assert _findings(led) == _findings(fresh)
    assert led.result is not None and fresh.result is not None
    assert [r.event.event_id for r in led.result.timeline] == [
        r.event.event_id for r in fresh.result.timeline
    ]
    return led


NOW = T0 + 40 * DAY


def test_a_backdated_event_after_a_witnessed_tip_is_said_when_placed_alone() -> None:
    m, b = Device("mallory@example.com", 13), bob()
    m1, m2 = m.join(T0), m.say(T0 + DAY, "one")
    b1 = b.join(T0 + 1)
    b2 = b.say(T0 + 20 * DAY, "x", witness={m.public: m2.hash})
    m3 = m.say(T0 + 2 * DAY, "backdated")
    led = _same_as_a_full_audit(
        [seg([m1, m2], "m"), seg([b1], "b"), seg([b2], "b2"), seg([m3], "m3")], NOW
    )
    assert "dated-before-witness" in [k for k, _, _ in _findings(led)]


def test_a_witness_read_before_or_after_the_backdated_event_is_said() -> None:
    m, b = Device("mallory@example.com", 13), bob()
    m1, m2 = m.join(T0), m.say(T0 + DAY, "one")
    b1 = b.join(T0 + 1)
    b2 = b.say(T0 + 20 * DAY, "x", witness={m.public: m2.hash})
    m3 = m.say(T0 + 2 * DAY, "backdated")
    start = [seg([m1, m2], "m"), seg([b1], "b")]
    for batch in ([b2, m3], [m3, b2]):
        led = _same_as_a_full_audit([*start, *(seg([e], e.event_id[-4:]) for e in batch)], NOW)
        assert [k for k, _, _ in _findings(led)] == ["dated-before-witness"]


def test_a_witness_and_the_backdated_event_in_one_batch_take_a_full_audit() -> None:
    m, b = Device("mallory@example.com", 13), bob()
    m1, m2 = m.join(T0), m.say(T0 + DAY, "one")
    b1 = b.join(T0 + 1)
    b2 = b.say(T0 + 20 * DAY, "x", witness={m.public: m2.hash})
    m3 = m.say(T0 + 2 * DAY, "backdated")
    for order in ([m3, b2], [b2, m3]):
        led = ledger(seg([m1, m2], "m"), seg([b1], "b"))
        led.audit(now_ms=NOW)
        batch = [
            c
            for e in order
            for c in led.add_prepared(prepare_segment(*seg([e], e.event_id[-4:]), ROOM))
        ]
        assert led.try_place(batch, NOW) is None  # the witness's tip moved in the batch
        assert kinds(led.audit(now_ms=NOW).findings) == ["dated-before-witness"]
    # A witness of a tip that moves in the same batch, to an event dated after it, stays
    # incremental.
    led = ledger(seg([m1, m2], "m"), seg([b1], "b"))
    led.audit(now_ms=NOW)
    m.prev = m2.hash
    m3 = m.say(T0 + 21 * DAY, "later")
    batch = [
        c
        for e in (b2, m3)
        for c in led.add_prepared(prepare_segment(*seg([e], e.event_id[-4:]), ROOM))
    ]
    assert led.try_place(batch, NOW) is not None


def test_a_later_witness_that_contradicts_the_notice_takes_it_away() -> None:
    """Mallory's day-20 witness of Alice's a1 makes a notice against a2; Bob's witness of
    a2 dated day 3 arrives next: the notice goes, as a full audit says."""
    a, m, b = alice(), Device("mallory@example.com", 13), bob()
    a0, a1, a2 = a.join(T0), a.say(T0 + DAY, "draft"), a.say(T0 + 2 * DAY, "I object")
    m1 = m.join(T0 + 1)
    m2 = m.say(T0 + 20 * DAY, "stale", witness={a.public: a1.hash})
    b1 = b.join(T0 + 2)
    b2 = b.say(T0 + 3 * DAY, "seen", witness={a.public: a2.hash})
    led = _same_as_a_full_audit(
        [seg([a0, a1, a2], "a"), seg([m1, m2], "m"), seg([b1], "b"), seg([b2], "b2")], NOW
    )
    assert _findings(led) == []


def test_the_live_room_stays_incremental() -> None:
    """Witnesses of tips, then later messages on those chains (dated after them, or
    within the slack before): no full audit, no notice."""
    a, b = alice(), bob()
    segments = [seg([a.join(T0)], "aj"), seg([b.join(T0 + 1)], "bj")]
    a_tip = a.say(T0 + 10, "hi")
    segments.append(seg([a_tip], "a1"))
    b_tip = b.say(T0 + HOUR, "hello", witness={a.public: a_tip.hash})
    segments.append(seg([b_tip], "b1"))
    segments.append(seg([a.say(T0 + 30 * 60_000, "skewed, written meanwhile")], "a2"))
    segments.append(seg([a.say(T0 + 2 * HOUR, "later", witness={b.public: b_tip.hash})], "a3"))
    led, full = _fed(segments, T0 + 3 * HOUR)
    assert _findings(led) == []
    assert full == 0
