"""The room audit: chains, keys, trust states, findings and display order."""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from typing import Any

from bucket_chat_desktop.protocol.audit import (
    DEVICE_ACCEPT_FIELD,
    DEVICE_ADD_FIELD,
    PINNED_REASON,
    PROVISIONAL_REASON,
    RoomLedger,
    TrustState,
    first_confirmed,
    offered_introductions,
    prepare_segment,
    provisional,
)
from bucket_chat_desktop.protocol.event import MEMBER, Event
from bucket_chat_desktop.protocol.findings import Finding, Kind, Severity
from bucket_chat_desktop.protocol.segment import decode_segment, encode_segment
from bucket_chat_desktop.protocol.signing import sign_mapping

from ._support import (
    ROOM,
    T0,
    Device,
    alice,
    alice_laptop,
    audit,
    bob,
    kinds,
    ledger,
    line_of,
    named_path,
    raw_line,
    seg,
    states,
    where,
)

V, U, K = "verified", "unverified", "key-changed"
CAROL = "carol@example.com"


def ids(events: list[Event]) -> list[str]:
    return [e.event_id for e in events]


def shown(result: Any) -> list[str]:
    return [a.event.event_id for a in result.timeline]


def tampered(ev: Event, **changes: Any) -> bytes:
    """The line of ``ev`` with fields changed and the old signature kept."""
    obj = json.loads(ev.line())
    for k, v in changes.items():
        if k == "body":
            obj["content"]["body"] = v
        else:
            obj[k] = v
    return line_of(obj)


def add_device(phone: Device, laptop: Device, ts: int) -> Event:
    return phone.emit(ts, MEMBER, {"membership": "join", DEVICE_ADD_FIELD: laptop.public})


def accept(laptop: Device, phone: Device, ts: int) -> Event:
    """The new device's own join, accepting the introduction by ``phone``."""
    return laptop.join(ts, **{DEVICE_ACCEPT_FIELD: phone.public})


# -- a clean room ---------------------------------------------------------------------------


def test_clean_two_sender_room() -> None:
    a, b = alice(), bob()
    ae = [a.join(T0), a.say(T0 + 2000, "one"), a.say(T0 + 4000, "two")]
    be = [b.join(T0 + 1000), b.say(T0 + 3000, "hi")]
    result = audit(seg(ae, "a"), seg(be, "b"))
    assert result.findings == [] and result.clean and result.errors == []
    assert shown(result) == ids([ae[0], be[0], ae[1], be[1], ae[2]])
    assert {a.state for a in result.timeline} == {TrustState.VERIFIED}
    assert result.counts == {
        TrustState.VERIFIED: 5,
        TrustState.UNVERIFIED: 0,
        TrustState.KEY_CHANGED: 0,
        TrustState.INVALID: 0,
    }
    assert result.invalid == [] and result.segments == 2 and result.room_id == ROOM
    first = result.timeline[0]
    assert (first.path, first.line) == (seg(ae, "a")[0], 1)
    assert "signature good" in first.reason


def test_segments_in_any_order_give_the_same_result() -> None:
    a, b = alice(), bob()
    s1 = seg([a.join(T0), a.say(T0 + 10, "x")], "a")
    s2 = seg([b.join(T0 + 5)], "b")
    s3 = seg([a.say(T0 + 20, "y")], "a")
    one = audit(s1, s2, s3)
    two = audit(s3, s2, s1)
    assert states(one) == states(two) and one.findings == two.findings == []


def test_audit_is_repeatable_and_ledger_grows() -> None:
    a = alice()
    led = ledger(seg([a.join(T0)], "a"))
    first = led.audit()
    assert states(first) == states(led.audit())
    later = seg([a.say(T0 + 1, "more")], "a")
    assert not led.has_segment(later[0])
    led.add_segment(*later)
    assert led.has_segment(later[0]) and led.segment_count == 2
    assert len(led.audit().timeline) == 2


def test_re_adding_a_path_is_a_no_op() -> None:
    a = alice()
    path, data = seg([a.join(T0)], "a")
    led = ledger((path, data))
    again = led.add_segment(path, b"garbage that would be a finding")
    assert again.events == [] and again.findings == []
    assert led.audit().findings == [] and led.segment_count == 1


def test_an_append_of_nothing_keeps_the_result_itself() -> None:
    """A segment read twice (a hint racing a listing) adds no copies: the result must
    stay the very object it was. The engine hands results to front ends, which compare
    the one they show with the engine's latest by identity; a silent equal copy made
    them wait for an audit that never came (a flaky GUI test found it)."""
    a = alice()
    path, data = seg([a.join(T0)], "a")
    led = RoomLedger(ROOM)
    led.add_prepared(prepare_segment(path, data, ROOM))
    first = led.audit()
    assert led.add_prepared(prepare_segment(path, data, ROOM)) == []
    assert led.try_append([]) == [] and led.result is first
    # an append of something still makes a new result, the old one left as it was
    later_path, later_data = seg([a.say(T0 + 1, "more")], "a")
    new = led.try_append(led.add_prepared(prepare_segment(later_path, later_data, ROOM)))
    assert new is not None and [x.event.body for x in new] == ["more"]
    assert led.result is not first and len(first.timeline) == 1
    assert len(led.result.timeline) == 2 and led.result.audit_number == first.audit_number


def test_counts_of_appends_are_counted_from_their_parents() -> None:
    """A header shows how many rows are verified on every room-list change: counted once
    per timeline, and an append adds its own rows' count to its parent's (a count over a
    million rows each time took ~50 ms on the GUI thread)."""
    a = alice()
    path, data = seg([a.join(T0), a.say(T0 + 1, "one")], "a")
    led = RoomLedger(ROOM)
    led.add_prepared(prepare_segment(path, data, ROOM))
    first = led.audit()
    assert first.counts[TrustState.VERIFIED] == 2
    unsigned = raw_line(  # as the reference writes it: no key, unverified
        {
            "event_id": f"{ROOM}::2025-09-14T12:00:47.000Z::u1",
            "room_id": ROOM,
            "timestamp_ms": T0 + 2,
            "sender_id": "bob@example.com",
            "type": "m.room.message",
            "parent_event_id": None,
            "prev_event_hash": None,
            "signature": "",
            "content": {"body": "no key", "msgtype": "m.text"},
        }
    )
    later_path, later_data = seg([a.say(T0 + 3, "two")], "a")
    for p, d in ((named_path(T0 + 2, T0 + 2, "b"), unsigned), (later_path, later_data)):
        assert led.try_append(led.add_prepared(prepare_segment(p, d, ROOM))) is not None
        result = led.result
        assert result is not None
        recount = {s: sum(1 for x in result.timeline if x.state is s) for s in TrustState}
        recount[TrustState.INVALID] = len(result.invalid)
        assert result.counts == recount
        assert result.timeline._tally is not None  # from the parent's, not counted again
        signed = sum(1 for x in result.timeline if x.event.sender_key)
        assert result.timeline.signed_count() == signed  # without making the rows
    assert led.result is not None and led.result.counts[TrustState.VERIFIED] == 3
    assert led.result.timeline.signed_count() == 3  # the reference's line has no key


def test_add_decoded_from_elsewhere() -> None:
    a = alice()
    path, data = seg([a.join(T0)], "a")
    led = RoomLedger(ROOM)
    led.add_decoded(decode_segment(path, data, ROOM))
    led.add_finding(Finding(Kind.UNEXPECTED_OBJECT, "stray", "rooms/room-1/x"))
    result = led.audit()
    assert [a.state for a in result.timeline] == [TrustState.VERIFIED]
    assert kinds(result.findings) == ["unexpected-object"] and result.clean


# -- display order -----------------------------------------------------------------------------


def test_order_is_timestamp_then_event_id() -> None:
    a, b = alice(), bob()
    a1, b1 = a.join(T0), b.join(T0)  # same millisecond: event id decides
    result = audit(seg([a1], "a"), seg([b1], "b"))
    assert shown(result) == sorted([a1.event_id, b1.event_id])


def test_event_stamped_before_its_chain_predecessor_is_shown_after_it() -> None:
    a, b = alice(), bob()
    a1 = a.join(T0)
    a2 = a.say(T0 + 5000, "second")
    a3 = a.say(T0 + 1000, "third, slow clock")  # chained after a2, stamped earlier
    a4 = a.say(T0 + 2000, "fourth, still slow")
    b1 = b.join(T0 + 3000)
    b2 = b.say(T0 + 6000, "later")
    result = audit(seg([a1, a2, a3, a4], "a"), seg([b1, b2], "b"))
    assert result.findings == []
    assert shown(result) == ids([a1, b1, a2, a3, a4, b2])
    assert {x.state for x in result.timeline} == {TrustState.VERIFIED}


def _falling_chain(n: int) -> list[Event]:
    a = alice()
    events = [a.join(T0 + 10_000_000)]
    return events + [a.say(T0 + 10_000_000 - i, str(i)) for i in range(1, n)]


def _lines_run(call: Any) -> int:
    """How many lines of Python ``call()`` runs (every frame, traced): a count of work
    that does not depend on the machine's speed or load."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(None)
    return count


def test_long_chain_with_falling_timestamps_is_linear() -> None:
    """It was quadratic once (seconds at 2,000 events). Four times the events may run
    about four times the lines (sorting adds a little), not sixteen."""
    events = _falling_chain(2000)
    result = ledger(seg(events, "a")).audit()
    assert shown(result) == ids(events)  # chain order wins over timestamps
    assert result.findings == []
    small, large = (ledger(seg(_falling_chain(n), "a")) for n in (250, 1000))
    ratio = _lines_run(large.audit) / _lines_run(small.audit)
    assert ratio < 6, f"4x the events ran {ratio:.1f}x the lines"


def test_unsigned_events_interleave_by_their_own_timestamp() -> None:
    a = alice()
    a1, a2 = a.join(T0), a.say(T0 + 2000, "x")
    ref = {
        "event_id": f"{ROOM}::2025-09-14T14:00:46.000000Z::u",
        "room_id": ROOM,
        "timestamp_ms": T0 + 1000,
        "sender_id": "ref@example.com",
        "type": "m.room.message",
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "",
        "content": {"body": "from the reference", "msgtype": "m.text"},
    }
    result = audit(seg([a1, a2], "a"), (named_path(T0 + 1000, T0 + 1000, "ref"), raw_line(ref)))
    assert shown(result) == [a1.event_id, ref["event_id"], a2.event_id]
    assert [x.state.value for x in result.timeline] == [V, U, V]
    assert "no sender_key" in result.timeline[1].reason
    assert result.findings == []


# -- chain findings -------------------------------------------------------------------------


def test_gap() -> None:
    a = alice()
    a1, a2, a3, a4 = a.join(T0), a.say(T0 + 1, "x"), a.say(T0 + 2, "y"), a.say(T0 + 3, "z")
    last = seg([a4], "a")
    result = audit(seg([a1], "a"), last)  # a2 and a3 never arrived
    assert where(result.findings) == [("gap", last[0], 1)]
    assert [x.state.value for x in result.timeline] == [V, U]
    assert "predecessor is missing" in result.timeline[1].reason
    assert result.findings[0].event_id == a4.event_id
    del a2, a3


def test_gap_then_intact_again() -> None:
    a = alice()
    ev = [a.join(T0)] + [a.say(T0 + i, str(i)) for i in range(1, 5)]
    result = audit(seg(ev[:2], "a"), seg(ev[3:], "a"))
    assert kinds(result.findings) == ["gap"]
    assert [x.state.value for x in result.timeline] == [V, V, U, V]


def test_fork() -> None:
    a = alice()
    a1, a2 = a.join(T0), a.say(T0 + 1000, "base")
    left = a.say(T0 + 2000, "left")
    right = a.say(T0 + 2500, "right", prev=a2.hash)
    after = a.say(T0 + 3000, "after right")
    first, second = seg([a1, a2, left], "a"), seg([right, after], "a")
    result = audit(first, second)
    assert where(result.findings) == [("fork", first[0], 3)]
    assert result.findings[0].event_id == left.event_id
    assert [x.state.value for x in result.timeline] == [V, V, U, U, V]
    assert "forks" in result.timeline[2].reason


def test_fork_of_two_roots() -> None:
    a = alice()
    j1, j2 = a.join(T0), a.join(T0 + 1, prev=None)
    result = audit(seg([j1, j2], "a"))
    assert kinds(result.findings) == ["fork"]
    assert [x.state.value for x in result.timeline] == [U, U]


def test_modified_event_fails_signature_and_breaks_the_chain() -> None:
    a = alice()
    a1, a2, a3 = a.join(T0), a.say(T0 + 1, "original"), a.say(T0 + 2, "next")
    data = a1.line() + tampered(a2, body="edited") + a3.line()
    path = named_path(T0, T0 + 2)
    result = audit((path, data))
    assert where(result.findings) == [("gap", path, 3), ("invalid-signature", path, 2)]
    assert shown(result) == ids([a1, a3])
    assert [x.state.value for x in result.timeline] == [V, U]
    assert [(x.event.event_id, x.state, x.line) for x in result.invalid] == [
        (a2.event_id, TrustState.INVALID, 2)
    ]
    assert result.counts[TrustState.INVALID] == 1 and not result.clean


def test_modified_timestamp_is_caught_too() -> None:
    a = alice()
    a1 = a.join(T0)
    data = tampered(a1, timestamp_ms=T0 - 1)
    result = audit((named_path(T0 - 1, T0 - 1), data))
    assert kinds(result.findings) == ["invalid-signature"] and result.timeline == []


def test_replay_both_copies_valid() -> None:
    a = alice()
    a1 = a.join(T0)
    uid = "00000000-0000-4000-8000-0000000000ff"
    one = _sign_with_uid(a, a1, T0 + 1, "hello", uid)
    two = _sign_with_uid(a, a1, T0 + 1, "a different hello", uid)
    assert one.event_id == two.event_id and one.canonical != two.canonical
    first, second = seg([a1, one], "a"), seg([two], "z")
    result = audit(first, second)
    assert where(result.findings) == [("replay", first[0], 2)]
    assert second[0] in result.findings[0].message
    assert shown(result) == ids([a1, one])
    assert result.timeline[1].event.body == "hello"  # the first copy by (path, line)
    assert result.invalid == []


def _sign_with_uid(dev: Device, prev: Event, ts: int, body: str, uid: str) -> Event:
    from bucket_chat_desktop.protocol.signing import build_event

    return build_event(
        room_id=ROOM,
        sender_id=dev.sender_id,
        event_type="m.room.message",
        content={"body": body},
        timestamp_ms=ts,
        unique=uid,
        prev_event_hash=prev.hash,
        signing_key=dev.key,
    )


def test_replay_with_one_forged_copy() -> None:
    a = alice()
    a1, a2 = a.join(T0), a.say(T0 + 1, "real")
    real = seg([a2], "b")
    forged_path = named_path(T0 + 1, T0 + 1, "a")  # sorts before the real copy's path
    result = audit(seg([a1], "a"), real, (forged_path, tampered(a2, body="forged")))
    assert where(result.findings) == [
        ("invalid-signature", forged_path, 1),
        ("replay", forged_path, 1),
    ]
    assert shown(result) == ids([a1, a2])
    assert result.timeline[1].event.body == "real"
    assert [x.state.value for x in result.timeline] == [V, V]
    assert [(x.path, x.line) for x in result.invalid] == [(forged_path, 1)]


def test_identical_duplicate_is_silently_de_duplicated() -> None:
    a = alice()
    events = [a.join(T0), a.say(T0 + 1, "x")]
    result = audit(seg(events, "a"), seg(events, "a", attempt=1), seg(events, "other"))
    assert result.findings == []
    assert shown(result) == ids(events)
    assert result.counts[TrustState.VERIFIED] == 2


def test_duplicate_within_one_segment() -> None:
    a = alice()
    a1 = a.join(T0)
    result = audit((named_path(T0, T0), a1.line() + a1.line()))
    assert result.findings == [] and shown(result) == [a1.event_id]


def test_sender_mismatch() -> None:
    a, b = alice(), bob()
    b1 = b.join(T0)
    lie = b.say(T0 + 1, "I am alice", sender_id=a.sender_id)
    path = named_path(T0, T0 + 1, "b")
    result = audit((path, b1.line() + lie.line()))
    assert where(result.findings) == [("sender-mismatch", path, 2)]
    assert shown(result) == [b1.event_id]
    assert [(x.event.event_id, x.state) for x in result.invalid] == [
        (lie.event_id, TrustState.INVALID)
    ]
    assert "bob@example.com" in result.invalid[0].reason


def test_key_bound_by_its_chain_root_even_if_other_events_are_earlier() -> None:
    b = bob()
    b1 = b.join(T0 + 5)
    lie = b.emit(T0, "m.room.message", {"body": "as alice"}, sender_id="alice@example.com")
    result = audit((named_path(T0, T0 + 5, "b"), lie.line() + b1.line()))
    assert "sender-mismatch" in kinds(result.findings)
    assert shown(result) == [b1.event_id]


def test_missing_join_is_a_notice() -> None:
    a = alice()
    first = a.say(T0, "no join", prev=None)
    second = a.say(T0 + 1, "x")
    path = named_path(T0, T0 + 1)
    result = audit((path, first.line() + second.line()))
    assert where(result.findings) == [("missing-join", path, 1)]
    assert result.findings[0].severity is Severity.NOTICE and result.clean
    assert [x.state.value for x in result.timeline] == [V, V]


def test_unusable_sender_key_is_invalid() -> None:
    a = alice()
    a1 = a.join(T0)
    path = named_path(T0, T0)
    result = audit((path, tampered(a1, sender_key="bm90IGEga2V5")))
    assert where(result.findings) == [("invalid-signature", path, 1)]
    assert "not a valid Ed25519 public key" in result.invalid[0].reason


# -- keys and devices -------------------------------------------------------------------------


def test_second_device_added_by_statement_is_verified() -> None:
    phone, laptop, b = alice(), alice_laptop(), bob()
    p1, b1 = phone.join(T0), b.join(T0 + 1)
    stmt = add_device(phone, laptop, T0 + 2)
    l1 = accept(laptop, phone, T0 + 3)
    l2 = laptop.say(T0 + 4, "from the laptop")
    p2 = phone.say(T0 + 5, "and the phone")
    result = audit(seg([p1, stmt, p2], "p"), seg([b1], "b"), seg([l1, l2], "l"))
    assert result.findings == []
    assert shown(result) == ids([p1, b1, stmt, l1, l2, p2])
    assert {x.state for x in result.timeline} == {TrustState.VERIFIED}


def test_device_chain_of_introductions() -> None:
    one, two, three = alice(), alice_laptop(), Device("alice@example.com", 7)
    e = [one.join(T0), add_device(one, two, T0 + 1), accept(two, one, T0 + 2)]
    e += [add_device(two, three, T0 + 3), accept(three, two, T0 + 4)]
    result = audit(seg(e[:2], "1"), seg(e[2:4], "2"), seg(e[4:], "3"))
    assert result.findings == [] and {x.state.value for x in result.timeline} == {V}


def test_two_unintroduced_keys_are_a_conflict() -> None:
    phone, other = alice(), alice_laptop()
    p1 = phone.join(T0)
    o1, o2, o3 = other.join(T0 + 1), other.say(T0 + 2, "new phone"), other.say(T0 + 3, "!")
    first, second = seg([p1], "p"), seg([o1, o2, o3], "o")
    result = audit(first, second)
    assert where(result.findings) == [("key-conflict", first[0], 1)]  # once, not per event
    assert [x.state.value for x in result.timeline] == [K, K, K, K]
    assert "none is trusted" in result.timeline[1].reason
    assert phone.public[:12] in result.findings[0].message
    assert other.public[:12] in result.findings[0].message
    assert not result.clean and result.authorized.get(phone.sender_id) is None


def test_key_change_without_statement_against_a_pin() -> None:
    phone, other = alice(), alice_laptop()
    p1 = phone.join(T0)
    o1, o2, o3 = other.join(T0 + 1), other.say(T0 + 2, "new phone"), other.say(T0 + 3, "!")
    second = seg([o1, o2, o3], "o")
    result = audit(seg([p1], "p"), second, pinned={phone.sender_id: [phone.public]})
    assert where(result.findings) == [("key-changed", second[0], 1)]  # once, not per event
    assert [x.state.value for x in result.timeline] == [V, K, K, K]
    assert "no statement" in result.timeline[1].reason
    assert not result.clean


def test_backdated_impostor_is_not_trusted_on_first_use() -> None:
    """The red-team case: a key nobody introduced signs a join and a message as alice,
    stamped just before alice's first event. Neither key is verified; both are named."""
    real, impostor, b = alice(), Device("alice@example.com", 9), bob()
    r = [real.join(T0), real.say(T0 + 10, "it's me")]
    i = [impostor.join(T0 - 2), impostor.say(T0 - 1, "send the money to X")]
    result = audit(seg(r, "r"), seg(i, "i"), seg([b.join(T0 + 5)], "b"))
    by_sender = {x.event.event_id: x.state.value for x in result.timeline}
    assert [by_sender[e.event_id] for e in r + i] == [K, K, K, K]
    assert kinds(result.findings) == ["key-conflict"]
    assert result.authorized == {b.sender_id: frozenset({b.public})}


def test_impostor_claiming_to_introduce_the_real_key_gains_nothing() -> None:
    """The impostor also states that it introduced alice's real key: without alice's
    acceptance that statement counts for nothing."""
    real, impostor = alice(), Device("alice@example.com", 9)
    i = [impostor.join(T0 - 2), add_device(impostor, real, T0 - 1)]
    r = [real.join(T0), real.say(T0 + 10, "it's me")]
    result = audit(seg(r, "r"), seg(i, "i"))
    assert {x.state.value for x in result.timeline} == {K}
    assert kinds(result.findings) == ["key-conflict"]


def test_impostor_claiming_to_be_introduced_gains_nothing() -> None:
    real, impostor = alice(), Device("alice@example.com", 9)
    r = [real.join(T0), real.say(T0 + 10, "it's me")]
    i = [accept(impostor, real, T0 + 20), impostor.say(T0 + 21, "me too")]
    result = audit(seg(r, "r"), seg(i, "i"))
    assert kinds(result.findings) == ["key-conflict"]


def test_devices_that_introduced_each_other_do_not_hand_trust_to_an_impostor() -> None:
    """Alice's phone and laptop introduced each other (add-device run on both, each
    accepted): neither key is free, a cycle. An impostor then wrote once as alice: its
    key was the only one nobody introduced, so it was trusted on first use (and pinned by
    every new reader) while both real devices were key-changed."""
    phone, laptop, impostor = alice(), alice_laptop(), Device("alice@example.com", 9)
    p = [phone.join(T0), add_device(phone, laptop, T0 + 1)]
    lap = [accept(laptop, phone, T0 + 2), add_device(laptop, phone, T0 + 3)]
    p.append(phone.emit(T0 + 4, MEMBER, {"membership": "join", DEVICE_ACCEPT_FIELD: laptop.public}))
    i = [impostor.join(T0 + 10), impostor.say(T0 + 11, "alice here: pay account X")]
    result = audit(seg(p, "p"), seg(lap, "l"), seg(i, "i"))
    assert {x.state.value for x in result.timeline} == {K}
    assert kinds(result.findings) == ["key-conflict"]
    assert impostor.public[:12] in result.findings[0].message
    assert phone.sender_id not in result.authorized
    # an impostor's own cycle next to the real phone is a conflict too, as one key is
    m1, m2 = Device("alice@example.com", 9), Device("alice@example.com", 10)
    m = [m1.join(T0), add_device(m1, m2, T0 + 1), accept(m2, m1, T0 + 2)]
    m += [add_device(m2, m1, T0 + 3)]
    m.append(m1.emit(T0 + 4, MEMBER, {"membership": "join", DEVICE_ACCEPT_FIELD: m2.public}))
    real = alice()
    result = audit(seg([real.join(T0 + 5)], "r"), seg(m, "m"))
    assert kinds(result.findings) == ["key-conflict"]
    assert {x.state.value for x in result.timeline} == {K}
    # a chain of introductions from the one free key is still trusted
    one, two, three = alice(), alice_laptop(), Device("alice@example.com", 7)
    e = [one.join(T0), add_device(one, two, T0 + 1), accept(two, one, T0 + 2)]
    e += [add_device(two, three, T0 + 3), accept(three, two, T0 + 4)]
    assert audit(seg(e[:2], "1"), seg(e[2:4], "2"), seg(e[4:], "3")).findings == []


def test_conflict_is_resolved_by_pinning_one_key() -> None:
    real, impostor = alice(), Device("alice@example.com", 9)
    r, i = seg([real.join(T0)], "r"), seg([impostor.join(T0 - 1)], "i")
    result = audit(r, i, pinned={real.sender_id: [real.public]})
    assert [x.state.value for x in result.timeline] == [K, V]
    assert where(result.findings) == [("key-changed", i[0], 1)]


def test_conflict_is_provisional_while_history_loads() -> None:
    real, impostor = alice(), Device("alice@example.com", 9)
    led = ledger(seg([real.join(T0)], "r"), seg([impostor.join(T0 - 1)], "i"))
    assert led.audit(complete=False).findings == []
    assert kinds(led.audit(complete=True).findings) == ["key-conflict"]


def test_the_first_key_seen_while_history_loads_is_on_trial_not_pinned() -> None:
    """Red team rt47: an impostor wrote today as carol, whose history is older. A reader
    opening the room reads today first: the impostor's key, the first seen, said
    "signature good, chain intact, key pinned for this sender" until the older history
    came. Section 16: rows shown meanwhile say their verdict is provisional."""
    carol, impostor = Device(CAROL, 4), Device(CAROL, 9)
    older = seg([carol.join(T0), carol.say(T0 + 1, "the invoice is attached")], "c")
    today = seg([impostor.join(T0 + 86_400_000), impostor.say(T0 + 86_400_001, "wire it")], "i")
    loading = ledger(today).audit(complete=False)
    assert [(x.state.value, x.reason) for x in loading.timeline] == [(V, PROVISIONAL_REASON)] * 2
    assert all(provisional(x) for x in loading.timeline) and loading.findings == []
    settled = audit(older, today)
    assert [x.state.value for x in settled.timeline] == [K, K, K, K]
    assert kinds(settled.findings) == ["key-conflict"]
    # what was pinned stays "key pinned" while loading, and a complete read pins it
    pinned = ledger(today).audit({CAROL: {impostor.public}}, complete=False)
    assert {x.reason for x in pinned.timeline} == {PINNED_REASON}
    assert {x.reason for x in audit(older).timeline} == {PINNED_REASON}
    assert not any(provisional(x) for x in audit(older).timeline)


def test_unsigned_line_under_a_signing_users_name_is_impersonation() -> None:
    a = alice()
    signed = seg([a.join(T0), a.say(T0 + 2, "signed")], "a")
    forged = {
        "event_id": f"{ROOM}::2025-09-14T12:00:00.001Z::forged",
        "room_id": ROOM,
        "timestamp_ms": T0 + 1,
        "sender_id": a.sender_id,
        "type": "m.room.message",
        "signature": "",
        "content": {"body": "pay X", "msgtype": "m.text"},
    }
    path = named_path(T0 + 1, T0 + 1, "x")
    result = audit(signed, (path, raw_line(forged)))
    assert [x.state.value for x in result.timeline] == [V, K, V]
    assert where(result.findings) == [("impersonation", path, 1)]
    assert "someone else" in result.timeline[1].reason and not result.clean
    # also when the unsigned line sorts before alice's first signed event
    forged["timestamp_ms"] = T0 - 5
    early = named_path(T0 - 5, T0 - 5, "x")
    assert kinds(audit(signed, (early, raw_line(forged))).findings) == ["impersonation"]


def test_witnessed_event_missing_is_a_truncated_chain() -> None:
    """Bob saw alice's newest event; deleting alice's newest segment is then reported."""
    a, b = alice(), bob()
    a1, a2, a3 = a.join(T0), a.say(T0 + 1, "one"), a.say(T0 + 2, "dropped later")
    b1 = b.join(T0 + 3)
    b2 = b.emit(T0 + 4, "m.room.message", {"body": "ok"}, witness={a.public: a3.hash})
    older, newest, bobs = seg([a1, a2], "a"), seg([a3], "a"), seg([b1, b2], "b")
    assert audit(older, newest, bobs).findings == []
    result = audit(older, bobs)
    assert where(result.findings) == [("truncated-chain", bobs[0], 2)]
    assert "alice@example.com" in result.findings[0].message and not result.clean
    # the older events stay verified: only the tail is gone
    assert [x.state.value for x in result.timeline] == [V, V, V, V]
    # while history is still loading it is not (yet) a finding
    assert ledger(older, bobs).audit(complete=False).findings == []
    # a whole deleted device is caught as well
    assert kinds(audit(bobs).findings) == ["truncated-chain"]


def test_hostile_witness_values_are_ignored_safely() -> None:
    a, b = alice(), bob()
    a1 = a.join(T0)
    for junk in ({a.public: 5}, {a.public: None}, {"x" * 600: a1.hash}, {}):
        b = bob()
        b1 = b.join(T0 + 3)
        b2 = b.emit(T0 + 4, "m.room.message", {"body": "ok"}, witness=junk)  # type: ignore[arg-type]
        assert audit(seg([a1], "a"), seg([b1, b2], "b")).findings == []
    for junk_value in ("not a map", [a1.hash], 7):
        obj = json.loads(b2.line())
        del obj["signature"]
        obj["witness"] = junk_value
        path = named_path(T0 + 3, T0 + 4, "w")
        result = audit(seg([a1], "a"), (path, b1.line() + line_of(sign_mapping(obj, b.key))))
        assert result.findings == [], junk_value


def test_a_witness_entry_naming_no_key_or_no_hash_or_an_oversized_witness_is_ignored() -> None:
    """Section 6.1: only a key (base64 of 32 bytes) mapped to a hash is read, and none
    of a witness of more than 64 entries (ours writes at most 64). Anything else can name
    no device and no event: a false claim costs a writer nothing either way (a real
    key and a made-up hash), and a slim ledger keeps just these, 64 bytes an entry."""
    a1 = alice().join(T0)
    missing = "A" * 43 + "="  # a hash, of no event in the room
    others = [f"{n:042d}A=" for n in range(64)]  # keys of devices not in the room

    def findings(witness: object) -> list[str]:
        b = bob()
        b1 = b.join(T0 + 3)
        obj = json.loads(b.say(T0 + 4, "ok").line())
        del obj["signature"]
        obj["witness"] = witness
        path = named_path(T0 + 3, T0 + 4, "w")
        return kinds(
            audit(seg([a1], "a"), (path, b1.line() + line_of(sign_mapping(obj, b.key)))).findings
        )

    public = alice().public
    assert findings({public: missing}) == ["truncated-chain"]  # the control
    assert findings({public: "not a hash"}) == []
    assert findings({public: missing[:-1]}) == []  # no padding: not a hash text
    assert findings({"not a key": missing}) == []
    assert findings({public[:-2] + "x=": missing}) == []  # not canonical base64
    assert findings(dict.fromkeys(others, a1.hash) | {public: missing}) == []  # 65 entries
    assert findings(dict.fromkeys(others[1:], a1.hash) | {public: missing}) == ["truncated-chain"]


def test_statement_signed_by_another_user_does_not_count() -> None:
    a, b, laptop = alice(), bob(), alice_laptop()
    a1, b1 = a.join(T0), b.join(T0 + 1)
    stmt = add_device(b, laptop, T0 + 2)  # bob vouches for a key of alice: no
    l1 = accept(laptop, b, T0 + 3)
    result = audit(seg([a1], "a"), seg([b1, stmt], "b"), seg([l1], "l"))
    assert kinds(result.findings) == ["key-conflict"]
    assert result.timeline[-1].state is TrustState.KEY_CHANGED
    pin = {a1.sender_id: [a.public]}
    pinned = audit(seg([a1], "a"), seg([b1, stmt], "b"), seg([l1], "l"), pinned=pin)
    assert kinds(pinned.findings) == ["key-changed"]


def test_statement_from_an_untrusted_key_does_not_count() -> None:
    a, rogue, laptop = alice(), Device("alice@example.com", 9), alice_laptop()
    a1 = a.join(T0)
    r1 = rogue.join(T0 + 1)
    stmt = add_device(rogue, laptop, T0 + 2)
    l1 = accept(laptop, rogue, T0 + 3)
    result = audit(seg([a1], "a"), seg([r1, stmt], "r"), seg([l1], "l"))
    assert [x.state.value for x in result.timeline] == [K, K, K, K]
    assert kinds(result.findings) == ["key-conflict"]
    pin = {a.sender_id: [a.public]}
    pinned = audit(seg([a1], "a"), seg([r1, stmt], "r"), seg([l1], "l"), pinned=pin)
    assert [x.state.value for x in pinned.timeline] == [V, K, K, K]
    assert kinds(pinned.findings) == ["key-changed", "key-changed"]


def test_statement_only_in_a_join() -> None:
    a, laptop = alice(), alice_laptop()
    a1 = a.join(T0)
    leave = a.emit(T0 + 1, MEMBER, {"membership": "leave", DEVICE_ADD_FIELD: laptop.public})
    msg = a.emit(T0 + 2, "m.room.message", {"body": "x", DEVICE_ADD_FIELD: laptop.public})
    l1 = accept(laptop, a, T0 + 3)
    result = audit(seg([a1, leave, msg], "a"), seg([l1], "l"), pinned={a.sender_id: [a.public]})
    assert [x.state.value for x in result.timeline] == [V, V, V, K]


def test_statement_in_an_unverified_event_does_not_count() -> None:
    a, laptop = alice(), alice_laptop()
    a1, a2 = a.join(T0), a.say(T0 + 1, "will go missing")
    stmt = add_device(a, laptop, T0 + 2)  # its predecessor is missing: unverified
    l1 = accept(laptop, a, T0 + 3)
    pin = {a.sender_id: [a.public]}
    result = audit(seg([a1], "a"), seg([stmt], "a"), seg([l1], "l"), pinned=pin)
    assert [x.state.value for x in result.timeline] == [V, U, K]
    assert kinds(result.findings) == ["gap", "key-changed"]
    del a2


def test_device_used_before_its_statement() -> None:
    a, laptop = alice(), alice_laptop()
    a1 = a.join(T0)
    l1 = accept(laptop, a, T0 + 1)
    stmt = add_device(a, laptop, T0 + 2)
    l2 = laptop.say(T0 + 3, "after")
    result = audit(seg([a1, stmt], "a"), seg([l1, l2], "l"))
    assert [x.state.value for x in result.timeline] == [V, K, V, V]
    assert kinds(result.findings) == ["key-changed"]


def test_pinned_key_matches() -> None:
    a = alice()
    result = audit(seg([a.join(T0), a.say(T0 + 1, "x")], "a"), pinned={a.sender_id: [a.public]})
    assert result.findings == [] and {x.state.value for x in result.timeline} == {V}


def test_pinned_key_differs() -> None:
    a, b = alice(), bob()
    first = seg([a.join(T0), a.say(T0 + 2, "x")], "a")
    result = audit(first, seg([b.join(T0 + 1)], "b"), pinned={a.sender_id: [bob().public]})
    assert where(result.findings) == [("key-changed", first[0], 1)]
    assert [x.state.value for x in result.timeline] == [K, V, K]


def test_pinned_keys_plus_statement() -> None:
    a, laptop = alice(), alice_laptop()
    stmt_room = [a.join(T0), add_device(a, laptop, T0 + 1)]
    result = audit(
        seg(stmt_room, "a"),
        seg([accept(laptop, a, T0 + 2)], "l"),
        pinned={a.sender_id: {a.public}},
    )
    assert result.findings == [] and {x.state.value for x in result.timeline} == {V}


def test_pinned_device_not_in_the_room_yet() -> None:
    a, laptop = alice(), alice_laptop()
    result = audit(seg([laptop.join(T0)], "l"), pinned={a.sender_id: [a.public, laptop.public]})
    assert result.findings == [] and result.timeline[0].state is TrustState.VERIFIED


def test_only_key_is_trusted_on_first_use() -> None:
    only = alice_laptop()
    result = audit(seg([only.join(T0), only.say(T0 + 1, "hi")], "e"))
    assert [x.state.value for x in result.timeline] == [V, V]
    assert result.authorized == {only.sender_id: frozenset({only.public})}


def test_earliest_stamp_wins_nothing() -> None:
    early, late = alice_laptop(), alice()
    result = audit(seg([early.join(T0)], "e"), seg([late.join(T0 + 1)], "l"))
    assert [x.state.value for x in result.timeline] == [K, K]


def test_key_change_beats_chain_problems() -> None:
    a, other = alice(), alice_laptop()
    o1, o2 = other.join(T0 + 1), other.say(T0 + 2, "x")
    result = audit(seg([a.join(T0)], "a"), seg([o2], "o"), pinned={a.sender_id: [a.public]})
    assert [x.state.value for x in result.timeline] == [V, K]
    assert kinds(result.findings) == ["gap", "key-changed"]
    del o1


# -- the reference implementation's rooms -------------------------------------------------------


def _reference_line(n: int, ts: int, body: str | None = None) -> bytes:
    # pydantic model_dump_json(): declaration order, compact, raw UTF-8, no sender_key
    content: dict[str, Any] = (
        {"membership": "join", "displayname": "jöran@example.com"}
        if body is None
        else {"body": body, "msgtype": "m.text"}
    )
    obj = {
        "event_id": f"{ROOM}::2025-09-14T14:00:4{n}.123000Z::0000000{n}-0000-4000-8000-0000000",
        "room_id": ROOM,
        "timestamp_ms": ts,
        "sender_id": "jöran@example.com",
        "type": "m.room.member" if body is None else "m.room.message",
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "bm90IGNoZWNrYWJsZQ==",
        "content": content,
    }
    return raw_line(obj)


def test_reference_room_is_all_unverified_without_errors() -> None:
    segments = [
        (f"rooms/{ROOM}/logs/2025-09-14/messages_{ts}_{ts}_jöran.jsonl", line)
        for ts, line in [
            (T0, _reference_line(1, T0)),
            (T0 + 1000, _reference_line(2, T0 + 1000, "Grüße 🍺")),
            (T0 + 2000, _reference_line(3, T0 + 2000, "zweite")),
        ]
    ]
    result = audit(*segments)
    assert result.findings == [] and result.clean
    assert [x.state.value for x in result.timeline] == [U, U, U]
    assert [x.event.body for x in result.timeline] == [None, "Grüße 🍺", "zweite"]
    assert [x.line for x in result.timeline] == [1, 1, 1]


def test_reference_events_do_not_disturb_signed_chains() -> None:
    a = alice()
    a1 = a.join(T0)
    signed = seg([a1, a.say(T0 + 3000, "x")], "a")
    unsigned = (
        f"rooms/{ROOM}/logs/2025-09-14/messages_{T0 + 1000}_{T0 + 1000}_alice.jsonl",
        _reference_line(4, T0 + 1000, "as alice, unsigned").replace(
            "jöran@example.com".encode(), b"alice@example.com"
        ),
    )
    result = audit(signed, unsigned)
    # The signed chain is undisturbed; the unsigned line under a signing user's name is
    # reported as an impersonation, not shown as a mere "unverified" message of theirs.
    assert kinds(result.findings) == ["impersonation"]
    assert [x.state.value for x in result.timeline] == [V, K, V]


# -- results ------------------------------------------------------------------------------------


def test_errors_and_clean() -> None:
    a = alice()
    a1 = a.join(T0)
    a.say(T0 + 1, "lost")
    a3 = a.say(T0 + 2, "after the gap")
    result = audit(seg([a1], "a"), seg([a3], "a"))
    assert [f.kind for f in result.errors] == [Kind.GAP] and not result.clean


def test_invalid_events_never_in_timeline() -> None:
    a = alice()
    a1 = a.join(T0)
    lines = tampered(a1, body="x") + encode_segment([a.say(T0 + 1, "ok")])
    result = audit((named_path(T0, T0 + 1), lines))
    assert all(x.state is not TrustState.INVALID for x in result.timeline)
    assert all(x.state is TrustState.INVALID for x in result.invalid)


def test_pending_introduction_for_the_new_device() -> None:
    phone, laptop = alice(), alice_laptop()
    p1, stmt = phone.join(T0), add_device(phone, laptop, T0 + 1)
    confirmed_phone = {phone.public}

    def shown(*segments: tuple[str, bytes], pinned: Any = None) -> list[tuple[Event, TrustState]]:
        return [(a.event, a.state) for a in audit(*segments, pinned=pinned).timeline]

    def pending(*segments: tuple[str, bytes], confirmed: Any = (), pinned: Any = None) -> Any:
        rows = shown(*segments, pinned=pinned)
        return first_confirmed(
            offered_introductions(rows, laptop.sender_id, laptop.public), confirmed
        )

    def offered(*segments: tuple[str, bytes]) -> list[str]:
        return offered_introductions(shown(*segments), laptop.sender_id, laptop.public)

    # a statement by the key the person confirmed on the laptop is accepted by itself ...
    assert pending(seg([p1, stmt], "p"), confirmed=confirmed_phone) == phone.public
    # ... one the room merely trusts on first use is offered, not accepted
    assert pending(seg([p1, stmt], "p")) is None
    assert offered(seg([p1, stmt], "p")) == [phone.public]
    accepted = seg([accept(laptop, phone, T0 + 2)], "l")
    assert pending(seg([p1, stmt], "p"), accepted, confirmed=confirmed_phone) is None
    assert offered(seg([p1, stmt], "p"), accepted) == []
    # an impostor alone in the room (trusted on first use there) introducing the laptop's
    # public key: the laptop does not vouch for it
    rogue = Device("alice@example.com", 9)
    copied = seg([rogue.join(T0 - 9), add_device(rogue, laptop, T0 - 8)], "r")
    assert pending(copied) is None and pending(copied, confirmed=confirmed_phone) is None
    assert offered(copied) == [rogue.public]
    # the impostor next to the real phone: only the confirmed one is accepted
    assert pending(seg([p1, stmt], "p"), copied, confirmed=confirmed_phone) == phone.public
    assert set(offered(seg([p1, stmt], "p"), copied)) == {phone.public, rogue.public}
    # the laptop wrote first (a conflict): the confirmed phone's statement still counts
    early = seg([laptop.join(T0 - 5)], "e")
    assert pending(seg([p1, stmt], "p"), early) is None
    assert pending(copied, early, confirmed=confirmed_phone) is None
    # the laptop introduced the phone itself (and the phone accepted): a statement by the
    # phone naming the laptop is not offered, even confirmed (a cycle: a key-conflict)
    back = [laptop.join(T0 + 20), add_device(laptop, phone, T0 + 21)]
    p2 = [phone.join(T0 + 22, **{DEVICE_ACCEPT_FIELD: laptop.public})]
    p2.append(add_device(phone, laptop, T0 + 23))
    assert offered(seg(back, "b"), seg(p2, "q")) == []
    assert pending(seg(back, "b"), seg(p2, "q"), confirmed=confirmed_phone) is None
    mine = {alice().sender_id: [phone.public, laptop.public]}
    assert pending(seg([p1, stmt], "p"), early, pinned=mine, confirmed=confirmed_phone) == (
        phone.public
    )


# -- a ledger that keeps no bodies (the app's) ---------------------------------------------


def test_a_ledger_without_bodies_keeps_only_what_the_audit_reads() -> None:
    """Message bodies, signature texts (a digest tells copies apart) and other fields are
    gone; ids, chain links, keys, a member event's content and a witness stay. (Every
    audit of these tests also runs on such a ledger and must say the same: see
    ``_support.audit``.)"""
    a, b = alice(), bob()
    a1, b1 = a.join(T0), b.join(T0 + 1)
    a2 = a.emit(T0 + 2, "m.room.message", {"body": "secret plans", "msgtype": "m.text"})
    b2 = b.emit(T0 + 3, "m.room.message", {"body": "ok"}, witness={a.public: a2.hash})
    slim = RoomLedger(ROOM, keep_bodies=False)
    for events in ([a1, a2], [b1, b2]):
        path, data = seg(events, client_id=events[0].sender_id.split("@")[0])
        slim.add_segment(path, data)
    assert not slim.keeps_bodies and RoomLedger(ROOM).keeps_bodies
    result = slim.audit()
    assert result.clean and {a.state.value for a in result.timeline} == {V}
    got = {item.event.event_id: item.event for item in result.timeline}
    for original in (a1, b1, a2, b2):
        kept = got[original.event_id]
        assert kept._replace(raw={}, content={}) == original._replace(
            raw={}, content={}, canonical=b"", signature=""
        )
    assert got[a1.event_id].content == a1.content  # member content: names, devices
    assert got[a2.event_id].content == {} and got[a2.event_id].raw == {}
    assert got[a2.event_id].body is None
    assert dict(got[b2.event_id].raw) == {"witness": {a.public: a2.hash}}
    assert got[b2.event_id].content == {}


def test_a_ledger_without_bodies_is_far_smaller() -> None:
    """2,000 events with ordinary bodies: the slim ledger and its audit hold well under
    half of what the whole one does (measured with tracemalloc: no clock involved)."""
    devices = [alice(), bob()]
    segments = []
    for d, dev in enumerate(devices):
        events = [dev.join(T0 + d)]
        events += [
            dev.emit(T0 + 10 + i, "m.room.message", {"body": f"message {i} " * 12})
            for i in range(1000)
        ]
        segments.append(seg(events, client_id=f"c{d}"))

    def held(keep_bodies: bool) -> int:
        tracemalloc.start()
        try:
            led = RoomLedger(ROOM, keep_bodies=keep_bodies)
            for path, data in segments:
                led.add_segment(path, data)
            result = led.audit()
            gc.collect()
            size = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(result.timeline) == 2002
        return size

    whole, slim = held(True), held(False)
    assert slim < 0.5 * whole, (slim, whole)


def test_a_signature_comes_back_as_it_was_spelled() -> None:
    """A ledger that keeps bodies gives any spelling of a signature (padding bits set,
    not base64, empty) back exactly as read; a slim one (the app's) keeps only a digest
    of it (its rows carry none). In both, two copies that differ only in that spelling
    stay two copies (a replay)."""
    a = alice()
    a1, a2, a3 = a.join(T0), a.say(T0 + 1, "hi"), a.say(T0 + 2, "again")
    good = a2.signature
    assert good[85] in "AQgw"
    padded = good[:85] + chr(ord(good[85]) + 1) + good[86:]  # the padding bits set
    odd = [padded, "", "not base64!"]
    lines = [a1.line(), *(line_of({**a2.raw, "signature": s}) for s in odd), a3.line()]
    path = named_path(T0, T0 + 2)
    for keep in (True, False):
        led = RoomLedger(ROOM, keep_bodies=keep)
        led.add_segment(path, b"".join(lines))
        result = led.audit()
        rows = [*result.invalid, *result.timeline]
        if keep:
            assert [x.event.signature for x in result.invalid] == odd
            assert [x.event.signature for x in result.timeline] == [a1.signature, a3.signature]
        else:
            assert len(result.invalid) == 3 and all(x.event.signature == "" for x in rows)
        assert [x.line for x in result.invalid] == [2, 3, 4]  # three copies, none merged
    result = audit((path, b"".join(lines)))  # also: each row is the event read there
    assert kinds(result.findings).count("invalid-signature") == 3
    assert "replay" in kinds(result.findings)


def test_a_device_that_pinned_its_own_key_trusts_the_devices_that_introduced_it() -> None:
    """Red team rt44: pins grew only forward (a pinned key introduces the next), so a
    device that pinned its own key (the app; the command line since it pins as the app
    does) showed the device that introduced it, and all it wrote, as "key changed", and
    did not apply its edits. Its own join accepted that introduction: both are its
    user's, and so is a third device the first introduced."""
    a, b, c = alice(), alice_laptop(), Device("alice@example.com", 77)
    first = [a.join(T0), a.say(T0 + 10, "from A"), add_device(a, b, T0 + 20)]
    second = [accept(b, a, T0 + 30), b.say(T0 + 40, "from B"), add_device(b, c, T0 + 50)]
    third = [accept(c, b, T0 + 60), c.say(T0 + 70, "from C")]
    segments = (seg(first, "a"), seg(second, "b"), seg(third, "c"))
    for pinned_key in (a.public, b.public, c.public):
        result = audit(*segments, pinned={a.sender_id: [pinned_key]})
        assert {x.state for x in result.timeline} == {TrustState.VERIFIED}, pinned_key
        assert result.authorized[a.sender_id] == {a.public, b.public, c.public}
        assert result.clean


def test_pinned_senders_walk_back_over_the_introductions_once_between_them(
    monkeypatch: Any,
) -> None:
    """Red team rt64: the walk back from pinned keys (``_vouched_back``) went over every
    introduction of the room once per pinned sender, and once more per key it added:
    O(senders x introductions), and O(N^2) for a chain of N keys leading back to a pinned
    one (5 s at 10,000). The same verdicts, from a map back made in one pass. Counted
    (introductions a loop takes out of the audit's set), not timed."""
    from nacl.signing import SigningKey

    import bucket_chat_desktop.protocol.audit as audit_module

    walked = [0]

    class Counted(set[tuple[str, str, str]]):
        def __iter__(self) -> Any:
            for edge in super().__iter__():
                walked[0] += 1
                yield edge

    decide = audit_module._decide_trust

    def counted(*args: Any, **kwargs: Any) -> Any:
        trust = decide(*args, **kwargs)
        trust.edges = Counted(trust.edges)
        return trust

    monkeypatch.setattr(audit_module, "_decide_trust", counted)
    n = 150
    segments, pinned = [], {}
    for i in range(n):
        old, new = Device(f"u{i}@example.com", 1), Device(f"u{i}@example.com", 2)
        old.key = SigningKey(i.to_bytes(2, "big") * 16)
        new.key = SigningKey((1000 + i).to_bytes(2, "big") * 16)
        segments.append(seg([old.join(T0 + i), add_device(old, new, T0 + n + i)], f"o{i}"))
        segments.append(seg([accept(new, old, T0 + 2 * n + i)], f"n{i}"))
        pinned[old.sender_id] = [new.public]  # what introduced it is vouched for back
    result = ledger(*segments).audit(pinned)
    assert {x.state for x in result.timeline} == {TrustState.VERIFIED}
    assert all(len(result.authorized[s]) == 2 for s in pinned)
    # Once to make the map back, once more for the result's own copy: never per sender.
    assert walked[0] <= 2 * n, walked[0]
