"""New rows placed before the last shown ones without a full audit (``try_place``).

A row dated a little ahead (within the hour: shown, PROTOCOL.md section 9) sorts last
until its date, and every message that arrives meanwhile sorts before it: each was a full
re-audit (~259 ms at 100,000 events). ``try_place`` puts such rows where a full audit
puts them, and says of every row what it says, or declines (None).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.audit import INSERT_TAIL, Placed, RoomLedger, prepare_segment
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.ids import iso_utc_ms
from bucket_chat_desktop.protocol.relations import REACTION

from ._support import ROOM, T0, Device, alice, bob, named_path, raw_line, seg

MINUTE = 60_000


def _place(led: RoomLedger, segment: tuple[str, bytes], now_ms: int) -> Placed | None:
    """Feed one segment as the engine does: placed, else (None) a full audit."""
    placed = led.try_place(led.add_prepared(prepare_segment(*segment, ROOM)), now_ms)
    if placed is None:
        led.audit(now_ms=now_ms)
    return placed


def _said(led: RoomLedger) -> tuple[object, ...]:
    result = led.result
    assert result is not None
    rows = [(a.event.event_id, a.state, a.reason, a.path, a.line) for a in result.timeline]
    findings = sorted((f.kind, f.event_id or "", f.message) for f in result.findings)
    return rows, findings, sorted((a.event.event_id, a.reason) for a in result.invalid)


def _fresh(segments: list[tuple[str, bytes]], now_ms: int, slim: bool = False) -> RoomLedger:
    led = RoomLedger(ROOM, keep_bodies=not slim)
    for path, data in segments:
        led.add_prepared(prepare_segment(path, data, ROOM))
    led.audit(now_ms=now_ms)
    return led


def unsigned(sender_id: str, ts: int, body: str) -> tuple[str, bytes]:
    """A segment of one unsigned message, as the reference implementation writes it."""
    line = raw_line(
        {
            "event_id": f"{ROOM}::{iso_utc_ms(ts)}::u-{body}",
            "room_id": ROOM,
            "timestamp_ms": ts,
            "sender_id": sender_id,
            "type": MESSAGE,
            "parent_event_id": None,
            "prev_event_hash": None,
            "signature": "",
            "content": {"body": body, "msgtype": "m.text"},
        }
    )
    return named_path(ts, ts, f"u-{body}"), line


def _room(now: int) -> tuple[list[Device], list[tuple[str, bytes]]]:
    devices = [alice(), bob(), Device("carol@example.com", 9)]
    fed = [seg([d.join(T0 + i)], f"j{i}") for i, d in enumerate(devices)]
    fed.append(seg([devices[0].say(T0 + 10, "hello")], "a0"))
    return devices, fed


def test_a_message_behind_one_dated_ahead_is_placed_before_it() -> None:
    now = T0 + 10 * MINUTE
    (a, b, c), fed = _room(now)
    fed.append(seg([b.say(now + 10 * MINUTE, "from a fast clock")], "b1"))
    led = _fresh(fed, now, slim=True)
    before = led.result
    assert before is not None
    fed.append(seg([c.say(now, "now")], "c1"))
    placed = _place(led, fed[-1], now)
    assert placed is not None and placed.inserted
    assert (placed.at, placed.moved, [r.event.event_id for r in placed.rows]) == (
        len(before.timeline) - 1,
        1,
        [led.result.timeline[placed.at].event.event_id],  # type: ignore[union-attr]
    )
    assert [r.event.body for r in _fresh(fed, now).result.timeline][-2:] == [  # type: ignore[union-attr]
        "now",
        "from a fast clock",
    ]
    assert _said(led) == _said(_fresh(fed, now, slim=True))
    # the positions moved: a new audit number, and the old result left as it was
    assert led.result is not None and led.result.audit_number != before.audit_number
    assert len(before.timeline) == len(led.result.timeline) - 1
    # then a message dated after both is an append again, under the same number
    fed.append(seg([a.say(now + 11 * MINUTE, "later")], "a1"))
    number = led.result.audit_number
    placed = _place(led, fed[-1], now)
    assert placed is not None and not placed.inserted and placed.at == len(fed) - 1
    assert led.result.audit_number == number
    assert _said(led) == _said(_fresh(fed, now, slim=True))


def test_what_the_order_can_change_is_left_to_a_full_audit() -> None:
    """A reply, a reaction, a member event or a row of the same sender among the rows
    placed or jumped over: their verdicts or meaning may hang on the order."""
    now = T0 + 10 * MINUTE
    cases = {
        "reply placed": lambda a, b, c: [c.say(now, "re", parent=f"{ROOM}::x")],
        "reaction placed": lambda a, b, c: [
            c.emit(now, REACTION, {"relates_to": {"event_id": "x", "key": "+1"}})
        ],
        "join placed": lambda a, b, c: [Device("dave@example.com", 11).join(now)],
        "same sender": lambda a, b, c: [Device("bob@example.com", 12).join(now)],
    }
    for name, make in cases.items():
        (a, b, c), fed = _room(now)
        fed.append(seg([b.say(now + 10 * MINUTE, "ahead")], "b1"))
        led = _fresh(fed, now)
        fed.append(seg(make(a, b, c), "new"))
        assert _place(led, fed[-1], now) is None, name
        assert _said(led) == _said(_fresh(fed, now)), name
    # a member event among the rows jumped over
    (a, b, c), fed = _room(now)
    fed.append(seg([b.emit(now + 10 * MINUTE, "m.room.member", {"membership": "join"})], "b1"))
    led = _fresh(fed, now)
    fed.append(seg([c.say(now, "now")], "c1"))
    assert _place(led, fed[-1], now) is None
    # rows on both sides of a shown one, and rows further back than the kept tail
    (a, b, c), fed = _room(now)
    fed.append(seg([b.say(now + 5 * MINUTE, "b ahead")], "b1"))
    led = _fresh(fed, now)
    fed.append(seg([c.say(now, "c now"), c.say(now + 6 * MINUTE, "c later")], "c1"))
    assert _place(led, fed[-1], now) is None
    assert _said(led) == _said(_fresh(fed, now))


def test_only_the_kept_tail_is_jumped_over() -> None:
    now = T0 + 10 * MINUTE
    (a, b, c), fed = _room(now)
    fed.append(seg([b.say(now + 30 * MINUTE + i, f"b{i}") for i in range(INSERT_TAIL)], "b1"))
    led = _fresh(fed, now, slim=True)
    fed.append(seg([c.say(now, "now")], "c1"))
    placed = _place(led, fed[-1], now)
    assert placed is not None and placed.moved == INSERT_TAIL
    assert _said(led) == _said(_fresh(fed, now, slim=True))
    fed.append(seg([a.say(now - 1, "one further back")], "a1"))
    assert _place(led, fed[-1], now) is None  # before the kept tail's first row
    assert _said(led) == _said(_fresh(fed, now, slim=True))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # which device
            st.sampled_from([-2 * MINUTE, 0, 1, 30_000, 10 * MINUTE, 59 * MINUTE]),  # ahead
            st.integers(0, 2),  # minutes the reader's clock moved on
            st.sampled_from(["say", "say", "say", "reply", "unsigned", "witness", "stale"]),
        ),
        min_size=1,
        max_size=14,
    ),
    st.booleans(),
)
def test_placed_rows_are_where_a_full_audit_puts_them(
    steps: list[tuple[int, int, int, str]], slim: bool
) -> None:
    """Fed one segment at a time by a clock moving on, appends and inserts say what a full
    audit of the same segments says, row by row and position by position; a result's
    number changes exactly when positions it had moved."""
    devices = [alice(), bob(), Device("carol@example.com", 9), Device("alice@example.com", 3)]
    joined = [False] * len(devices)
    now = T0 + 10 * MINUTE
    led = RoomLedger(ROOM, keep_bodies=not slim)
    fed: list[tuple[str, bytes]] = []
    for n, (who, ahead, moved, what) in enumerate(steps):
        now += moved * MINUTE
        d = devices[who]
        ts = now + ahead + n
        if not joined[who]:
            segment = seg([d.join(ts)], f"c{n}")
            joined[who] = True
        elif what == "reply":
            segment = seg([d.say(ts, f"r{n}", parent=f"{ROOM}::nowhere")], f"c{n}")
        elif what in ("witness", "stale"):  # the others' newest events, or an older one
            seen = {o.public: o.prev for o in devices if o is not d and o.prev}
            if what == "stale" and seen:
                seen[next(iter(seen))] = fed[0][1].decode()[20:84]
            segment = seg([d.say(ts, f"w{n}", witness=seen)], f"c{n}")
        elif what == "unsigned":  # a newcomer's, or under the name of one who signs
            segment = unsigned(("dave@example.com", d.sender_id)[n % 2], ts, f"u{n}")
        else:
            segment = seg([d.say(ts, f"m{n}")], f"c{n}")
        fed.append(segment)
        shown = led.result
        placed = _place(led, fed[-1], now)
        assert _said(led) == _said(_fresh(fed, now, slim))
        result = led.result
        assert result is not None
        if placed is not None and shown is not None:
            old = [a.event.event_id for a in shown.timeline]
            new = [a.event.event_id for a in result.timeline]
            k = len(placed.rows)
            assert new[placed.at : placed.at + k] == [a.event.event_id for a in placed.rows]
            assert new[: placed.at] + new[placed.at + k :] == old
            assert placed.moved == len(old) - placed.at
            assert (result.audit_number == shown.audit_number) == (not placed.inserted)


def test_a_witness_of_chains_at_hand_stays_incremental() -> None:
    """Ours witnesses the newest event of each chain that moved (PROTOCOL.md 6.1): in a
    live room most messages carry one, and each was a full audit. A witness of events
    that are their chains' newest is met; one of an event not at hand is left to a full
    audit (which reports a truncated chain when it is missing)."""
    now = T0 + 10 * MINUTE
    (a, b, c), fed = _room(now)
    led = _fresh(fed, now)
    b_tip = b.prev
    assert b_tip is not None
    fed.append(seg([a.say(now, "seen", witness={b.public: b_tip, a.public: "x"})], "a1"))
    placed = _place(led, fed[-1], now)
    assert placed is not None and not placed.inserted
    assert _said(led) == _said(_fresh(fed, now))
    missing = "A" * 43 + "="  # a hash, of no event in the room
    fed.append(seg([c.say(now + 1, "saw more", witness={b.public: missing})], "c1"))
    assert _place(led, fed[-1], now) is None
    assert "truncated-chain" in {f.kind.value for f in led.result.findings}  # type: ignore[union-attr]
    assert _said(led) == _said(_fresh(fed, now))


def test_a_witnessed_event_that_arrives_late_ends_its_finding() -> None:
    """Alice witnessed Bob's next event before its segment was listed here (a listing
    that lags, a segment stored late): ``truncated-chain``. When it arrives it continues
    Bob's chain like any message, and was appended with the finding kept: a false tamper
    warning for as long as the room stayed open."""
    now = T0 + 10 * MINUTE
    (a, b, _), fed = _room(now)
    later = b.say(now - 5, "bob's next")  # signed now, stored later
    led = _fresh(fed, now, slim=True)
    fed.append(seg([a.say(now, "seen", witness={b.public: later.hash})], "a1"))
    assert _place(led, fed[-1], now) is None
    assert "truncated-chain" in {f.kind.value for f in led.result.findings}  # type: ignore[union-attr]
    fed.append(seg([later], "b1"))
    assert _place(led, fed[-1], now) is None  # left to a full audit
    assert _said(led) == _said(_fresh(fed, now))
    assert "truncated-chain" not in {f.kind.value for f in led.result.findings}  # type: ignore[union-attr]
