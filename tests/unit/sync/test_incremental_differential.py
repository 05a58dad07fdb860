"""Differential red team of the audit's incremental paths, fed as the engine feeds them.

Hostile rooms — several devices and senders, chains with forks, gaps and duplicates,
replays of another member's event id signed by another key, unsigned lines under names
that sign, rows dated ahead (within and beyond the hour) and behind, same-ms timestamps,
witnesses of missing or stale hashes, joins, leaves, display names, device introductions,
reactions, edits, redactions and replies naming present, missing, repeated or held ids,
invalid signatures — arrive one segment at a time, in any order, by a reader's clock that
moves on, through the keeper's path (``keeper._ingest_here``): ``add_prepared``, then
``try_place`` while the rules stay the same, else a full audit; the relations and the
member fold carried over as the state thread carries them (``sync.room_state.RoomState``).

After every step the ledger's result must say what a fresh full audit of the same
segments by the same clock says — the same rows in the same order with the same states
and reasons, the same findings, invalid rows, places — and its relations and roster must
equal a full build and a full fold of that audit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import (
    DEVICE_ACCEPT_FIELD,
    DEVICE_ADD_FIELD,
    HOLD_AHEAD_MS,
    AuditResult,
    RoomLedger,
    TrustState,
    prepare_segment,
)
from bucket_chat_desktop.protocol.canonical import b64encode, canonical_json
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import iso_utc_ms, segment_path
from bucket_chat_desktop.protocol.relations import EDIT, REACTION, REDACTION, TYPING, Relations
from bucket_chat_desktop.protocol.relations import build as build_relations
from bucket_chat_desktop.protocol.room_state import RoomState as MemberFold
from bucket_chat_desktop.protocol.signing import build_event, public_key_text
from bucket_chat_desktop.sync.publisher import send_context
from bucket_chat_desktop.sync.room_state import RoomState

ROOM = "room-1"
T0 = 1757851245000
MINUTE = 60_000
YEAR = 365 * 24 * 60 * MINUTE

# (sender id, key seed): two devices of Alice, Bob, Carol, and Mallory, who also signs
# under the others' ids with her own key.
WRITERS = [
    ("alice@example.com", 1),
    ("alice@example.com", 3),
    ("bob@example.com", 2),
    ("carol@example.com", 9),
    ("mallory@example.com", 20),
]
CLAIMS = ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"]
# How far a row is dated from its writer's clock (which moves on a second a row).
OFFSETS = [0, 0, 0, 1, 30_000, -MINUTE, -60 * MINUTE, 10 * MINUTE, 59 * MINUTE, 61 * MINUTE]
OFFSETS += [3 * 60 * MINUTE, 40 * YEAR, None]  # None: the same ms as the row before
# How far the reader's clock moves on between two arrivals.
CLOCK = [0, 0, 1_000, MINUTE, 30 * MINUTE, HOLD_AHEAD_MS, 3 * HOLD_AHEAD_MS]

KINDS = [
    "say",
    "say",
    "say",
    "join",
    "rename",
    "leave",
    "introduce",
    "reply",
    "reaction",
    "edit",
    "redaction",
    "witness",
    "stale-witness",
    "missing-witness",
    "unsigned",
    "claim",
    "replay",
    "fork",
    "gap",
    "bad-signature",
    "same-again",
    "impostor-join",
    "unsigned-copy",
    "resign",
    "typing",
    "cross-room",
    "garbage",
]


def _actions(kinds: list[str], offsets: list[int]) -> st.SearchStrategy[Any]:
    return st.tuples(
        st.sampled_from(kinds),
        st.integers(0, len(WRITERS) - 1),  # who writes
        st.sampled_from(offsets),  # dated how far from the writer's clock (OFFSETS)
        st.integers(0, 30),  # which earlier row a relation, replay or fork names (or none)
        st.booleans(),  # a new segment, or the same one as the row before
    )


# A hostile room: anything goes, in any order.
hostile = st.lists(_actions(KINDS, list(range(len(OFFSETS)))), min_size=1, max_size=22)
# A live room: mostly messages, some dated a little ahead, with now and then something
# else, read about in the order written (where the cheap paths are taken).
LIVE_KINDS = ["say"] * 12 + KINDS
LIVE_OFFSETS = [0, 0, 0, 0, 1, 3, 4, 7, 7, 8, 12]
live = st.lists(_actions(LIVE_KINDS, LIVE_OFFSETS), min_size=1, max_size=22)
# A live room where a clock runs a little fast: messages placed behind the rows it dated
# ahead (``try_place`` inserts), now and then something else among them.
AHEAD_KINDS = ["say"] * 30 + KINDS
AHEAD_OFFSETS = [0, 0, 0, 3, 7, 7, 8]
ahead = st.lists(_actions(AHEAD_KINDS, AHEAD_OFFSETS), min_size=1, max_size=22)


class _Writer:
    def __init__(self, sender_id: str, seed: int) -> None:
        self.sender_id = sender_id
        self.key = SigningKey(bytes([seed]) * 32)
        self.public = public_key_text(self.key)
        self.hashes: list[str] = []  # its chain, oldest first

    @property
    def tip(self) -> str | None:
        return self.hashes[-1] if self.hashes else None


@dataclass
class _Room:
    """The segments written, in writing order, each a list of lines."""

    segments: list[tuple[str, list[bytes]]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def _missing_hash(n: int) -> str:
    """A hash no event of the room has."""
    return b64encode(bytes([200 + n % 50]) * 32)


def _unique(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def _write(steps: Sequence[tuple[str, int, int, int, bool]]) -> _Room:
    writers = [_Writer(s, seed) for s, seed in WRITERS]
    impostors = [_Writer(claim, 30 + i) for i, claim in enumerate(CLAIMS)]
    room = _Room()
    lines: list[bytes] = []
    stamps: list[int] = []
    counter = 0
    last_ts = T0

    def flush(n: int) -> None:
        if lines:
            start, end = min(stamps), max(stamps)
            room.segments.append((segment_path(ROOM, start, end, f"c{n}"), list(lines)))
            lines.clear()
            stamps.clear()

    def pick(what: int) -> Event | None:
        return room.events[what % len(room.events)] if room.events and what < 25 else None

    for n, (kind, who, offset_at, what, fresh) in enumerate(steps):
        if fresh:
            flush(n)
        w = writers[who]
        offset = OFFSETS[offset_at]
        ts = last_ts if offset is None else T0 + n * 1000 + offset
        last_ts = ts
        counter += 1
        unique = _unique(counter)
        sender = w.sender_id
        prev: str | None = w.tip
        parent: str | None = None
        witness: dict[str, str] | None = None
        event_type, content = MESSAGE, {"body": f"m{n}", "msgtype": "m.text"}
        target = pick(what)
        target_id = target.event_id if target is not None else f"{ROOM}::x::missing{what}"
        if kind == "join" or w.tip is None:
            event_type, content = MEMBER, {"membership": "join", "displayname": f"N{who}{n}"}
        elif kind == "rename":
            name = ["Alice", "Bob", "alice@example.com", "\u202eecilA", ""][what % 5]
            event_type, content = MEMBER, {"membership": "join", "displayname": name}
        elif kind == "leave":
            event_type, content = MEMBER, {"membership": "leave"}
        elif kind == "introduce":  # a statement or an acceptance (Alice's two devices)
            other = writers[1 - who] if who in (0, 1) else writers[(who + 1) % len(writers)]
            field_name = DEVICE_ADD_FIELD if what % 2 else DEVICE_ACCEPT_FIELD
            event_type, content = MEMBER, {"membership": "join", field_name: other.public}
        elif kind == "reply":
            parent = target_id
        elif kind == "reaction":
            event_type, content = REACTION, {"relates_to": target_id, "reaction": "+1"}
        elif kind == "edit":
            event_type = EDIT
            content = {"replaces": target_id, "new_content": {"body": f"e{n}", "msgtype": "m.text"}}
        elif kind == "redaction":
            event_type, content = REDACTION, {"redacts": target_id}
        elif kind in ("witness", "stale-witness", "missing-witness"):
            witness = {o.public: o.tip for o in writers if o is not w and o.tip is not None}
            if witness and kind == "stale-witness":
                other = next(o for o in writers if o.public in witness)
                witness[other.public] = other.hashes[what % len(other.hashes)]
            elif kind == "missing-witness":
                witness[writers[what % len(writers)].public] = _missing_hash(what)
        elif kind == "claim":  # Mallory's key signs under another's id
            sender = CLAIMS[what % len(CLAIMS)]
        elif kind == "replay" and target is not None:  # another's event id, signed again
            ts, unique = target.timestamp_ms, target.event_id.split("::")[2]
            content = {"body": f"replay{n}", "msgtype": "m.text"}
        elif kind == "impostor-join":  # a new key under someone's id, a chain root
            w = impostors[what % len(impostors)]
            sender, prev = w.sender_id, w.tip
            if prev is None:
                event_type, content = MEMBER, {"membership": "join"}
        elif kind == "resign" and target is not None and target.sender_key == w.public:
            ts, unique = target.timestamp_ms, target.event_id.split("::")[2]
            prev = target.prev_event_hash  # the same key signs its id again, otherwise
            event_type, content = target.type, {**target.content, "x": n}
        elif kind == "typing":
            event_type, content = TYPING, {"typing": True}
        elif kind == "cross-room":
            event_type, content = REACTION, {"relates_to": f"other::x::{what}", "reaction": "+1"}
        elif kind == "fork" and w.hashes:
            prev = w.hashes[what % len(w.hashes)] if what % 3 else None
        elif kind == "gap":
            prev = _missing_hash(what)
        if kind == "unsigned":
            raw = {
                "event_id": f"{ROOM}::{iso_utc_ms(ts)}::{unique}",
                "room_id": ROOM,
                "timestamp_ms": ts,
                "sender_id": CLAIMS[what % len(CLAIMS)],
                "type": MESSAGE,
                "parent_event_id": target_id if what % 4 == 0 else None,
                "prev_event_hash": None,
                "signature": "",
                "content": {"body": f"u{n}", "msgtype": "m.text"},
            }
            lines.append(canonical_json(raw) + b"\n")
            stamps.append(ts)
            continue
        if kind == "garbage":
            lines.append(b'{"not": "an event"}\n')
            stamps.append(ts)
            continue
        if kind == "unsigned-copy" and target is not None:  # a signed event's id, unsigned
            raw = {**target.raw, "content": {"body": f"u{n}", "msgtype": "m.text"}}
            raw["signature"] = ""
            raw.pop("sender_key", None)
            raw.pop("witness", None)
            raw["prev_event_hash"] = None
            lines.append(canonical_json(raw) + b"\n")
            stamps.append(target.timestamp_ms)
            continue
        if kind == "same-again" and room.events:  # an exact copy of an earlier event
            again = room.events[what % len(room.events)]
            lines.append(again.line())
            stamps.append(again.timestamp_ms)
            continue
        ev = build_event(
            room_id=ROOM,
            sender_id=sender,
            event_type=event_type,
            content=content,
            timestamp_ms=ts,
            unique=unique,
            prev_event_hash=prev,
            signing_key=w.key,
            parent_event_id=parent,
            witness=witness,
        )
        if kind == "bad-signature":  # altered after signing: invalid, never in a chain
            raw = dict(ev.raw)
            raw["content"] = {"body": f"forged{n}", "msgtype": "m.text"}
            lines.append(canonical_json(raw) + b"\n")
            stamps.append(ts)
            continue
        if kind != "gap":
            w.hashes.append(ev.hash)
        room.events.append(ev)
        lines.append(ev.line())
        stamps.append(ts)
    flush(len(steps))
    return room


def _said(result: AuditResult, led: RoomLedger, now: int) -> tuple[Any, ...]:
    """What an audit says, for comparing an incremental one with a fresh one."""
    rows = [
        (a.event.event_id, a.event.hash, a.state, a.reason, a.path, a.line) for a in result.timeline
    ]
    invalid = sorted(
        (a.event.event_id, a.event.hash, a.reason, a.path, a.line) for a in result.invalid
    )
    findings = sorted(Counter(result.findings).items(), key=repr)
    timeline = result.timeline
    probes = sorted({now, now + HOLD_AHEAD_MS, *(a.event.timestamp_ms for a in timeline)})
    return (
        rows,
        invalid,
        findings,
        result.segments,
        result.pending_gaps,
        result.authorized,
        result.counts,
        timeline.repeated,  # type: ignore[attr-defined]
        [timeline.placed_by(p) for p in probes],  # type: ignore[attr-defined]
        led.held_from_ms,
        led.horizon_ms,
    )


def _rows(result: AuditResult) -> tuple[Any, ...]:
    """What an audit says of each row and finding, and the places it names."""
    rows = [
        (a.event.event_id, a.event.hash, a.state, a.reason, a.path, a.line) for a in result.timeline
    ]
    invalid = sorted(
        (a.event.event_id, a.event.hash, a.reason, a.path, a.line) for a in result.invalid
    )
    kinds = Counter((f.kind, f.event_id, f.path, f.line) for f in result.findings)
    return rows, invalid, kinds, result.pending_gaps, result.authorized


def _same_relations(a: Relations, b: Relations) -> None:
    assert a.aggregates == b.aggregates
    assert list(a.hidden) == list(b.hidden)
    assert a.thread_root == b.thread_root
    assert a.findings == b.findings
    assert a.waiting == b.waiting and a.waiting_for == b.waiting_for
    assert a.positions == b.positions
    assert a.edit_of == b.edit_of
    assert a.repeated == b.repeated


@dataclass
class _Feed:
    """One room as the keeper keeps it, with the pins of this device's index: trust on
    first use of the verified keys of a whole history's audit and of rows placed on top
    of it (``keeper._pin``), read by every full audit (``index.pins``)."""

    slim: bool
    pins: dict[str, set[str]]
    partial: bool  # part of the room could not be read, all along (no trust on first use)
    room: RoomState = field(init=False)
    fed: list[tuple[str, bytes]] = field(default_factory=list)
    incremental: int = 0
    # the pins a full audit of this step would have read (before the step pinned more)
    used: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.room = RoomState(ROOM, RoomLedger(ROOM, keep_bodies=not self.slim))
        if self.partial:
            self.room.unread[f"rooms/{ROOM}/logs/unread.jsonl"] = "a listing failed"

    def arrive(self, segments: list[tuple[str, bytes]], now: int, complete: bool) -> None:
        """``keeper._ingest_here`` and ``_publish`` for the segments one job read."""
        room = self.room
        self.used = {k: set(v) for k, v in self.pins.items()}
        added = []
        for path, data in segments:
            self.fed.append((path, data))
            added.extend(room.ledger.add_prepared(prepare_segment(path, data, ROOM)))
        if room.result is not None and complete == room.complete:
            shown = room.result
            placed = room.ledger.try_place(added, now)
            if placed is not None:
                self.incremental += 1
                result = room.ledger.result
                assert result is not None
                room.result = result
                if complete and not self.partial:
                    self._pin(placed.rows)
                if placed.inserted:
                    room.moved = (shown, result, placed.at, len(placed.rows))
                self._publish()
                return
        partial = complete and self.partial
        room.result = room.ledger.audit(self.used, complete=complete, partial=partial, now_ms=now)
        room.complete = complete
        if complete and not self.partial:
            self._pin(room.result.timeline)
        self._publish()

    def _pin(self, rows: Any) -> None:
        for a in rows:
            if a.state is TrustState.VERIFIED and a.event.sender_key:
                self.pins.setdefault(a.event.sender_id, set()).add(a.event.sender_key)

    def _publish(self) -> None:
        room = self.room
        room.relations()
        room.roster()
        room.carry_scan()
        room.moved = None

    def check(self, now: int, complete: bool, send: bool) -> None:
        fresh = RoomLedger(ROOM, keep_bodies=not self.slim)
        for path, data in self.fed:
            fresh.add_prepared(prepare_segment(path, data, ROOM))
        partial = complete and self.partial
        expected = fresh.audit(self.used, complete=complete, partial=partial, now_ms=now)
        room = self.room
        got = room.result
        assert got is not None
        assert _said(got, room.ledger, now) == _said(expected, fresh, now)
        # Read in another order (a cold read lists segments by name), the room says the
        # same of each row, at the same places: of identical copies the first in (path,
        # line) order is kept, whatever was read first (section 6 step 1).
        listed = RoomLedger(ROOM, keep_bodies=not self.slim)
        for path, data in sorted(self.fed):
            listed.add_prepared(prepare_segment(path, data, ROOM))
        cold = listed.audit(self.used, complete=complete, partial=partial, now_ms=now)
        assert _rows(cold) == _rows(expected)
        rel = room.relations()
        assert rel is not None
        _same_relations(rel, build_relations(ROOM, expected.timeline))
        roster, full = room.roster(), MemberFold.of(expected).roster()
        assert roster is not None and roster == full
        senders = sorted({a.event.sender_id for a in expected.timeline})  # look-alike marks
        assert [roster.names.warning(u) for u in senders] == [
            full.names.warning(u) for u in senders
        ]
        if send:  # what a send of Alice's second device reads (publisher.send_context)
            other = RoomState(ROOM, fresh, result=expected, complete=complete)
            other.unread, other.vanished = dict(room.unread), dict(room.vanished)
            laptop = public_key_text(SigningKey(bytes([3]) * 32))
            said = send_context(room, "alice@example.com", laptop)
            assert said is not None and said == send_context(other, "alice@example.com", laptop)


SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found (no shrinking)
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(
    st.one_of(
        st.tuples(st.just(False), hostile),
        st.tuples(st.just(True), live),
        st.tuples(st.just(True), ahead),
    ),
    st.data(),
    st.booleans(),  # a ledger that keeps no bodies (the app's)
    st.booleans(),  # Alice's first key pinned on this device
    st.integers(0, 4),  # arrivals read while older history still loads (complete=False)
    st.integers(0, 5),  # whether part of the room is unread (0), and when a new pass begins
)
def test_incremental_results_equal_a_fresh_full_audit(
    written: tuple[bool, list[tuple[str, int, int, int, bool]]],
    data: st.DataObject,
    slim: bool,
    pinned: bool,
    loading: int,
    again: int,
) -> None:
    is_live, steps = written
    room = _write(steps)
    count = len(room.segments)
    if is_live:  # in the order written, but for a few neighbours swapped
        order = list(range(count))
        for i in data.draw(st.lists(st.integers(0, max(0, count - 2)), max_size=3)):
            if i + 1 < count:
                order[i], order[i + 1] = order[i + 1], order[i]
        clock = data.draw(st.lists(st.sampled_from(CLOCK[:4]), min_size=count, max_size=count))
        dropped: set[int] = set()
    else:
        order = data.draw(st.permutations(range(count)), label="order")
        # some segments never arrive (a gap, a witnessed event missing)
        dropped = data.draw(st.sets(st.sampled_from(order)) if order else st.just(set()))
        clock = data.draw(st.lists(st.sampled_from(CLOCK), min_size=count, max_size=count))
    pins = {"alice@example.com": {public_key_text(SigningKey(bytes([1]) * 32))}} if pinned else {}
    feed = _Feed(slim, pins, partial=again == 0)
    sends = data.draw(st.lists(st.booleans(), min_size=count, max_size=count))
    # how many segments each job reads (the keeper reads a listing's new ones at once)
    jobs = data.draw(st.lists(st.sampled_from([1, 1, 1, 2, 3]), min_size=count, max_size=count))
    arriving = [i for n, i in enumerate(order) if i not in dropped or not n]
    now = T0
    step = 0
    while arriving:
        batch, arriving = arriving[: jobs[step]], arriving[jobs[step] :]
        now += clock[step]
        complete = loading <= step and (not again or step % (again + 3) != again + 2)
        feed.arrive(
            [(room.segments[i][0], b"".join(room.segments[i][1])) for i in batch], now, complete
        )
        feed.check(now, complete, sends[step])
        step += 1
