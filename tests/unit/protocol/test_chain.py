"""protocol/chain.py: one device's chain head and its continuation, written once and used
by the outbox (every send), the direct writer (room creation) and the engine."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import (
    DEVICE_ADD_FIELD,
    HOLD_AHEAD_MS,
    RoomLedger,
    prepare_segment,
)
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.chain import chain_head, continue_chain, own_chain
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event, parse_line
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import SignatureChecker

ROOM = "room-1"
ALICE = "alice@example.com"
T0 = 1757851245000


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: str(uuid.UUID(int=next(counter), version=4))


def msg(body: str) -> tuple[str, dict[str, Any]]:
    return (MESSAGE, {"body": body, "msgtype": "m.text"})


def chain(head: Event | None, *bodies: str, ts: int = T0, seed: int = 1, **kw: Any) -> list[Event]:
    return continue_chain(
        head,
        [msg(b) for b in bodies],
        room_id=ROOM,
        sender_id=ALICE,
        signing_key=key(seed),
        timestamp_ms=ts,
        unique=kw.pop("unique", ids()),
        **kw,
    )


def test_a_first_send_starts_with_a_join_and_links_every_event() -> None:
    events = chain(None, "one", "two", join={"membership": "join", "displayname": "Al"})
    assert [e.type for e in events] == [MEMBER, MESSAGE, MESSAGE]
    assert dict(events[0].content) == {"membership": "join", "displayname": "Al"}
    assert events[0].prev_event_hash is None
    assert all(b.prev_event_hash == a.hash for a, b in itertools.pairwise(events))
    assert all(SignatureChecker().check(e)[0] for e in events)
    # A first draft that is a join is not preceded by another one.
    (only,) = continue_chain(
        None,
        [(MEMBER, {"membership": "join", DEVICE_ADD_FIELD: b64encode(bytes(32))})],
        room_id=ROOM,
        sender_id=ALICE,
        signing_key=key(1),
        timestamp_ms=T0,
        unique=ids(),
    )
    assert only.type == MEMBER and DEVICE_ADD_FIELD in only.content


def test_a_clock_that_went_back_never_stamps_before_the_head_and_witness_goes_first() -> None:
    first = chain(None, "one", ts=T0)
    fresh = {"unique": lambda: str(uuid.uuid4())}
    later = chain(first[-1], "two", "three", ts=T0 - HOLD_AHEAD_MS, witness={"k": "h"}, **fresh)
    assert later[0].prev_event_hash == first[-1].hash
    assert [e.timestamp_ms for e in later] == [T0, T0]
    assert later[0].raw.get("witness") == {"k": "h"} and "witness" not in later[1].raw
    # Set back by more than an hour, the clock dates the events; readers still show
    # them right after their predecessor (PROTOCOL.md section 9).
    back = T0 - HOLD_AHEAD_MS - 1
    after = chain(later[-1], "four", ts=back, **fresh)
    assert [e.timestamp_ms for e in after] == [back]
    segments = [(first, 0), (later, 1), (after, 2)]
    ledger = RoomLedger(ROOM)
    for events, n in segments:
        ledger.add_prepared(
            prepare_segment(path_for(events, "alice-aaaa", n), encode_segment(events), ROOM)
        )
    result = ledger.audit(now_ms=T0)
    assert [a.event.body for a in result.timeline] == [None, "one", "two", "three", "four"]


def test_the_head_is_the_newest_event_nothing_continues() -> None:
    events = chain(None, "a", "b", "c")
    assert chain_head(reversed(events)) == (events[-1], 1)
    assert chain_head([]) == (None, 0)
    # The same events read twice (a segment copied under another name): still one head.
    assert chain_head([*events, *events]) == (events[-1], 1)
    fork = chain(events[1], "other c", ts=T0 + 5000, unique=lambda: str(uuid.uuid4()))
    head, heads = chain_head([*events, *fork])
    assert (head, heads) == (fork[-1], 2)


def _forged_after(ev: Event) -> bytes:
    """Alice's key and a later timestamp, but not her signature: anyone can write this."""
    obj = json.loads(ev.line())
    obj["timestamp_ms"] += 60_000
    obj["event_id"] = obj["event_id"].replace(obj["event_id"].split("::")[1], "forged")
    obj["prev_event_hash"] = ev.hash
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def test_own_chain_counts_only_events_whose_signature_checked_wherever_they_are() -> None:
    mine = chain(None, "one", "two")
    key_text = b64encode(bytes(key(1).verify_key))
    forged = _forged_after(mine[-1])
    assert parse_line(forged.rstrip(b"\n"), ROOM).sender_key == key_text  # type: ignore[union-attr]
    # Her newest segment stored under another device's name, a forgery beside it.
    segments = [
        prepare_segment(path_for(mine[:1], "alice-aaaa"), encode_segment(mine[:1]), ROOM),
        prepare_segment(path_for(mine[1:], "bob-bbbb"), encode_segment(mine[1:]), ROOM),
        prepare_segment(path_for(mine[1:], "mallory-cc"), forged, ROOM),
    ]
    got = own_chain(segments, room_id=ROOM, user_id=ALICE, key_text=key_text, now_ms=None)
    assert (got.head, got.heads) == (mine[-1], 1)
    stranger = b64encode(bytes(key(9).verify_key))
    none = own_chain(
        segments, room_id=ROOM, user_id="carol@example.com", key_text=stranger, now_ms=None
    )
    assert (none.head, none.heads, none.introduced_by, none.offered) == (None, 0, None, ())


def test_an_introduction_held_as_dated_ahead_is_neither_offered_nor_accepted() -> None:
    """Readers hold back a statement dated more than ``HOLD_AHEAD_MS`` after their clock
    (section 9): by that clock it introduces nobody yet, however confirmed its key; one
    dated a minute ahead is shown, and the held one too once its time comes."""
    laptop = b64encode(bytes(key(1).verify_key))
    add = {"membership": "join", DEVICE_ADD_FIELD: laptop}
    later = chain(None, ts=T0 + 2 * 3_600_000, seed=2, join=add)
    soon = chain(None, ts=T0 + 60_000, seed=3, join=add)
    segments = [
        prepare_segment(path_for(evs, name), encode_segment(evs), ROOM)
        for evs, name in ((later, "alice-later"), (soon, "alice-soon"))
    ]
    keys = [b64encode(bytes(key(n).verify_key)) for n in (2, 3)]

    def chained(now: int | None, confirmed: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
        got = own_chain(
            segments,
            room_id=ROOM,
            user_id=ALICE,
            key_text=laptop,
            confirmed=confirmed,
            now_ms=now,
        )
        return got.introduced_by, got.offered

    assert chained(T0, (keys[0],)) == (None, (keys[1],))
    assert chained(T0, tuple(keys)) == (keys[1], (keys[1],))
    shown = (keys[1], keys[0])  # in display order: by date
    assert chained(T0 + 2 * 3_600_000 - HOLD_AHEAD_MS, (keys[0],)) == (keys[0], shown)


def test_a_head_dated_far_ahead_does_not_date_the_events_after_it() -> None:
    """A device whose clock was once set a year ahead, then put right: its next events
    are stamped by its clock, not by that head (PROTOCOL.md section 9). Stamped at the
    head's date, every later message of the device was held back by every reader, its
    own app included, for a year; a head less than an hour ahead still dates them."""
    year = 365 * 86_400_000
    first = chain(None, "clock wrong", ts=T0 + year)
    later = chain(first[-1], "clock right", ts=T0)
    assert later[0].prev_event_hash == first[-1].hash and later[0].timestamp_ms == T0
    ledger = RoomLedger(ROOM)
    for n, events in enumerate((first, later)):
        ledger.add_prepared(
            prepare_segment(path_for(events, "alice-aaaa", n), encode_segment(events), ROOM)
        )
    result = ledger.audit(now_ms=T0 + 1000)
    assert [a.event.body for a in result.timeline] == ["clock right"] and result.held == 2
    soon = chain(later[-1], "an hour ahead", ts=T0 + HOLD_AHEAD_MS)
    assert [e.timestamp_ms for e in chain(soon[-1], "next", ts=T0)] == [T0 + HOLD_AHEAD_MS]
