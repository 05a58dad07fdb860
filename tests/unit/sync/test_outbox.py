"""The outbox on real SQLite files: durable enqueue, one chain per device and room (also
across instances and processes), batching into fixed segments, renames, back-off and the
states the UI shows."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import RoomLedger, TrustState
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MAX_LINE_BYTES, MEMBER, MESSAGE, Event, parse_line
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import (
    MAX_SEGMENT_BYTES,
    decode_segment,
    encode_segment,
    path_for,
)
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.sync import outbox as outbox_module
from bucket_chat_desktop.sync.outbox import REPLACED_KEPT, Discard, HeldDiscard, Outbox

ROOM = "room-1"
USER = "alice@example.com"
T0 = 1757851245000
_ids = itertools.count(1)


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def key_text(k: SigningKey) -> str:
    return b64encode(bytes(k.verify_key))


def unique() -> str:
    return str(uuid.UUID(int=next(_ids), version=4))


def clock() -> int:
    return T0


def texts(*bodies: str) -> list[tuple[str, dict[str, Any]]]:
    return [(MESSAGE, {"body": b, "msgtype": "m.text"}) for b in bodies]


def enqueue(
    box: Outbox, *bodies: str, room: str = ROOM, k: SigningKey | None = None, **kw: Any
) -> list[Event]:
    k = k or key(1)
    if not box.has_head(room, key_text(k)):
        box.seed_head(room, key_text(k), None)
    return box.enqueue(
        room_id=room,
        user_id=kw.pop("user_id", USER),
        signing_key=k,
        drafts=kw.pop("drafts", None) or texts(*bodies),
        clock=kw.pop("clock", clock),
        unique=unique,
        **kw,
    )


def assert_one_chain(events: list[Event]) -> None:
    """``events`` (any order) form exactly one linear chain starting with a join."""
    by_prev: dict[str | None, list[Event]] = {}
    for e in events:
        by_prev.setdefault(e.prev_event_hash, []).append(e)
    assert all(len(v) == 1 for v in by_prev.values()), "the chain forks"
    roots = by_prev.get(None, [])
    assert len(roots) == 1 and roots[0].type == MEMBER
    n, cur = 1, roots[0]
    while cur.hash in by_prev:
        cur = by_prev[cur.hash][0]
        n += 1
    assert n == len(events), "some events are not on the chain"


def pending_events(box: Outbox, room: str = ROOM) -> list[Event]:
    out = []
    for p in box.pending(room):
        parsed = parse_line(p.line.encode("ascii"), room)
        assert isinstance(parsed, Event)
        out.append(parsed)
    return out


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox" / "box.sqlite3"


@pytest.fixture
def box(path: Path) -> Any:
    b = Outbox(path)
    yield b
    b.close()


# -- enqueue -----------------------------------------------------------------------------


def test_enqueue_is_committed_before_it_returns(path: Path, box: Outbox) -> None:
    events = enqueue(box, "one", "two")
    other = Outbox(path)  # a second connection sees it without any close or checkpoint
    try:
        assert [p.event_id for p in other.pending()] == [e.event_id for e in events]
        assert [p.state for p in other.pending()] == ["queued"] * 3
    finally:
        other.close()


def _enqueue_then_die(path: str) -> None:
    box = Outbox(Path(path))
    box.seed_head(ROOM, key_text(key(1)), None)
    box.enqueue(
        room_id=ROOM,
        user_id=USER,
        signing_key=key(1),
        drafts=texts("survives a crash"),
        clock=clock,
        unique=lambda: str(uuid.uuid4()),
    )
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no atexit


def test_enqueued_messages_survive_sigkill(path: Path) -> None:
    proc = multiprocessing.get_context("spawn").Process(target=_enqueue_then_die, args=(str(path),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    box = Outbox(path)
    try:
        bodies = [e.content.get("body") for e in pending_events(box)]
        assert bodies == [None, "survives a crash"]  # the join, then the message
        assert box.has_head(ROOM, key_text(key(1)))
    finally:
        box.close()


def test_the_chain_continues_across_enqueues_and_instances(path: Path, box: Outbox) -> None:
    first = enqueue(box, "a", "b")
    second = enqueue(box, "c")
    box.close()
    again = Outbox(path)
    try:
        third = enqueue(again, "d", "e")
        everything = first + second + third
        assert [e.type for e in everything] == [MEMBER] + [MESSAGE] * 5
        for before, after in itertools.pairwise(everything):
            assert after.prev_event_hash == before.hash
            assert after.timestamp_ms >= before.timestamp_ms
        assert_one_chain(pending_events(again))
    finally:
        again.close()


def test_timestamps_never_go_backwards_along_the_chain(box: Outbox) -> None:
    first = enqueue(box, "late", clock=lambda: T0 + 60_000)
    second = enqueue(box, "clock went back", clock=lambda: T0)
    assert second[0].timestamp_ms == first[-1].timestamp_ms == T0 + 60_000


def test_a_join_comes_first_only_for_a_new_device_in_a_room(box: Outbox) -> None:
    first = enqueue(box, "hi", displayname="Alice")
    assert [e.type for e in first] == [MEMBER, MESSAGE]
    assert first[0].content == {"membership": "join", "displayname": "Alice"}
    assert first[0].prev_event_hash is None and first[1].prev_event_hash == first[0].hash
    assert [e.type for e in enqueue(box, "again")] == [MESSAGE]
    # another room, another key: each starts with its own join
    assert [e.type for e in enqueue(box, "x", room="room-2")] == [MEMBER, MESSAGE]
    assert [e.type for e in enqueue(box, "y", k=key(2))] == [MEMBER, MESSAGE]
    # drafts that start with a join get no second one
    join = [(MEMBER, {"membership": "join", "displayname": "C"})]
    assert [e.content for e in enqueue(box, drafts=join, k=key(3))] == [join[0][1]]


def test_enqueue_needs_a_seeded_head_and_rolls_back(box: Outbox) -> None:
    with pytest.raises(RuntimeError, match="seed_head"):
        box.enqueue(
            room_id=ROOM,
            user_id=USER,
            signing_key=key(1),
            drafts=texts("x"),
            clock=clock,
            unique=unique,
        )
    box.seed_head(ROOM, key_text(key(1)), None)
    with pytest.raises(ValueError):  # an invalid event (empty type) is refused...
        box.enqueue(
            room_id=ROOM,
            user_id=USER,
            signing_key=key(1),
            drafts=[*texts("fine"), ("", {})],
            clock=clock,
            unique=unique,
        )
    assert box.is_empty()  # ...and nothing of that enqueue is kept, not even the join
    assert [e.type for e in enqueue(box, "after")] == [MEMBER, MESSAGE]


def test_seed_head_keeps_the_first_head_recorded(box: Outbox) -> None:
    k = key(1)
    head = build_event(
        room_id=ROOM,
        sender_id=USER,
        event_type=MEMBER,
        content={"membership": "join"},
        timestamp_ms=T0 - 5000,
        unique=unique(),
        prev_event_hash=None,
        signing_key=k,
    )
    assert not box.has_head(ROOM, key_text(k))
    box.seed_head(ROOM, key_text(k), head)
    assert box.has_head(ROOM, key_text(k))
    box.seed_head(ROOM, key_text(k), None)  # a slower process found nothing: ignored
    events = enqueue(box, "continues the stored chain")
    assert [e.type for e in events] == [MESSAGE]
    assert events[0].prev_event_hash == head.hash
    box.seed_head(ROOM, key_text(k), head)  # a late seed never rewinds the chain
    assert enqueue(box, "next")[0].prev_event_hash == events[0].hash


# -- batching and delivery bookkeeping ---------------------------------------------------------


def test_take_batch_groups_per_room_and_key_and_fixes_bytes_and_name(box: Outbox) -> None:
    a = enqueue(box, "a1", "a2")
    b = enqueue(box, "b1", k=key(2), user_id="bob@example.com")
    c = enqueue(box, "c1", room="room-2")
    groups = box.waiting_groups(older_than=1e12)
    assert sorted(groups) == sorted(
        [(ROOM, key_text(key(1))), (ROOM, key_text(key(2))), ("room-2", key_text(key(1)))]
    )
    assert box.waiting_groups(older_than=0) == []  # nothing is that old yet

    seg_a = box.take_batch(ROOM, key_text(key(1)))
    assert seg_a is not None
    assert box.take_batch(ROOM, key_text(key(1))) is None  # nothing left to take
    late = enqueue(box, "a3")  # not added to the fixed segment
    got = box.segment(seg_a)
    assert got is not None
    assert got.data == encode_segment(a)
    assert got.path == path_for(a, client_id_for(USER, bytes(key(1).verify_key)))
    assert got.event_ids == tuple(e.event_id for e in a)
    assert (got.state, got.attempt, got.tries) == ("assigned", 0, 0)
    assert [e.event_id for e in got.events()] == [e.event_id for e in a]

    seg_late = box.take_batch(ROOM, key_text(key(1)))
    seg_b = box.take_batch(ROOM, key_text(key(2)))
    seg_c = box.take_batch("room-2", key_text(key(1)))
    assert seg_late and seg_b and seg_c
    assert box.segment(seg_a).data == encode_segment(a)  # type: ignore[union-attr]
    by_id = {s.id: s for s in box.due(now=1e12)}
    assert list(by_id) == [seg_a, seg_late, seg_b, seg_c]  # oldest first
    assert by_id[seg_late].data == encode_segment(late)
    assert by_id[seg_b].data == encode_segment(b)
    assert by_id[seg_b].client_id == client_id_for("bob@example.com", bytes(key(2).verify_key))
    assert by_id[seg_c].data == encode_segment(c) and by_id[seg_c].room_id == "room-2"
    for seg in by_id.values():
        decoded = decode_segment(seg.path, seg.data, seg.room_id)
        assert not decoded.findings  # a valid segment under a matching name


def test_take_batch_respects_max_events(box: Outbox) -> None:
    events = enqueue(box, *[f"m{i}" for i in range(6)])  # 7 with the join
    first = box.take_batch(ROOM, key_text(key(1)), max_events=4)
    second = box.take_batch(ROOM, key_text(key(1)), max_events=4)
    assert first and second
    assert box.segment(first).data == encode_segment(events[:4])  # type: ignore[union-attr]
    assert box.segment(second).data == encode_segment(events[4:])  # type: ignore[union-attr]


def test_rename_picks_the_next_free_name_and_keeps_the_bytes(box: Outbox) -> None:
    events = enqueue(box, "x")
    seg_id = box.take_batch(ROOM, key_text(key(1)))
    assert seg_id is not None
    original = box.segment(seg_id)
    assert original is not None
    cid = client_id_for(USER, bytes(key(1).verify_key))
    assert box.rename(seg_id, 1) == path_for(events, cid, 1)
    assert box.rename(seg_id, 2).endswith(f"_{cid}-r2.jsonl")
    renamed = box.segment(seg_id)
    assert renamed is not None
    assert renamed.path == path_for(events, cid, 2) and renamed.attempt == 2
    assert renamed.data == original.data


def test_mark_written_then_done(box: Outbox) -> None:
    enqueue(box, "x")
    seg_id = box.take_batch(ROOM, key_text(key(1)))
    assert seg_id is not None
    box.mark_failed(seg_id, "the disk is full", transient=True, now=1000.0)
    box.mark_written(seg_id)
    seg = box.segment(seg_id)
    assert seg is not None and (seg.state, seg.tries, seg.last_error) == ("published", 0, None)
    assert {p.state for p in box.pending()} == {"sent"}
    assert [s.id for s in box.due(now=0)] == [seg_id]  # its marker is still to be written
    box.mark_done(seg_id)
    assert box.segment(seg_id) is None
    assert box.pending() == [] and box.is_empty() and box.due(now=1e12) == []


def test_mark_failed_backs_off_transient_errors_and_parks_permanent_ones(box: Outbox) -> None:
    enqueue(box, "x")
    enqueue(box, "y", k=key(2))
    t = box.take_batch(ROOM, key_text(key(1)))
    p = box.take_batch(ROOM, key_text(key(2)))
    assert t and p
    now = 1000.0
    delays = [box.mark_failed(t, "offline", transient=True, now=now) - now for _ in range(9)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert box.segment(t).tries == 9  # type: ignore[union-attr]
    assert box.mark_failed(p, "permission denied", transient=False, now=now) == now + 600.0

    assert box.due(now) == []
    assert [s.id for s in box.due(now + 60)] == [t]
    assert [s.id for s in box.due(now + 400)] == [t]  # a refusal waits longer
    assert {s.id for s in box.due(now + 600)} == {t, p}  # …but is tried again by itself
    # ever more slowly, then hourly: the message goes out once someone fixed the cause
    waits = [box.mark_failed(p, "permission denied", transient=False, now=now) - now]
    waits += [box.mark_failed(p, "permission denied", transient=False, now=now) - now]
    waits += [box.mark_failed(p, "permission denied", transient=False, now=now) - now]
    waits += [box.mark_failed(p, "permission denied", transient=False, now=now) - now]
    assert waits == [1200.0, 2400.0, 3600.0, 3600.0]
    refused = [m.state for m in box.pending() if m.error == "permission denied"]
    assert refused and set(refused) == {"failed"}  # the user sees it meanwhile
    box.retry_now()
    assert [s.id for s in box.due(now)] == [t, p]


def test_a_segment_waits_for_an_older_one_of_its_chain_that_is_not_stored(box: Outbox) -> None:
    """A later segment of one device's chain in a room is not due while an older one is
    neither stored nor due (readers would see it without the event it links to); other
    devices, other rooms and a stored older segment (only its marker left) hold nothing."""
    enqueue(box, "a1")
    a1 = box.take_batch(ROOM, key_text(key(1)))
    enqueue(box, "a2")
    a2 = box.take_batch(ROOM, key_text(key(1)))
    enqueue(box, "b1", k=key(2))
    b1 = box.take_batch(ROOM, key_text(key(2)))
    enqueue(box, "elsewhere", room="room-2")
    c1 = box.take_batch("room-2", key_text(key(1)))
    assert a1 and a2 and b1 and c1
    now = 1000.0
    box.mark_failed(a1, "offline", transient=True, now=now)  # due again at now + 1
    assert [s.id for s in box.due(now)] == [b1, c1]
    assert [s.id for s in box.due(now + 1)] == [a1, a2, b1, c1]  # in the chain's order

    box.mark_failed(a1, "permission denied", transient=False, now=now)
    assert [s.id for s in box.due(now + 400)] == [b1, c1]  # a refusal holds a2 too
    assert [s.id for s in box.due(now + 1200)] == [a1, a2, b1, c1]  # tried again, in order

    box.mark_written(a1)  # stored; its marker failed: the chain may go on
    box.mark_failed(a1, "marker: offline", transient=True, now=now)
    assert [s.id for s in box.due(now)] == [a2, b1, c1]


def test_pending_states(box: Outbox) -> None:
    queued = enqueue(box, "queued")
    enqueue(box, "transient", k=key(2))
    enqueue(box, "permanent", k=key(3))
    enqueue(box, "written", k=key(4))
    enqueue(box, "elsewhere", room="room-2", k=key(5))
    segs = {n: box.take_batch(ROOM, key_text(key(n))) for n in (2, 3, 4)}
    box.take_batch("room-2", key_text(key(5)))
    fresh = enqueue(box, "taken but not tried", k=key(2))
    box.take_batch(ROOM, key_text(key(2)))
    enqueue(box, "still queued")
    box.mark_failed(segs[2], "the disk is full", transient=True, now=0)  # type: ignore[arg-type]
    box.mark_failed(segs[3], "permission denied", transient=False, now=0)  # type: ignore[arg-type]
    box.mark_written(segs[4])  # type: ignore[arg-type]

    states = {p.line: (p.state, p.error) for p in box.pending(ROOM)}
    bodies = {}
    for line, st in states.items():
        parsed = parse_line(line.encode(), ROOM)
        assert isinstance(parsed, Event)
        if parsed.type == MESSAGE:
            bodies[parsed.body] = st
    assert bodies == {
        "queued": ("queued", None),
        "transient": ("sending", "the disk is full"),
        "permanent": ("failed", "permission denied"),
        "written": ("sent", None),
        # waits for the "transient" one before it in key 2's chain: says why
        "taken but not tried": ("sending", "the disk is full"),
        "still queued": ("queued", None),
    }
    assert {p.room_id for p in box.pending()} == {ROOM, "room-2"}
    assert [p.room_id for p in box.pending("room-2")] == ["room-2", "room-2"]
    in_order = [p.event_id for p in box.pending(ROOM)]
    assert in_order.index(queued[0].event_id) < in_order.index(fresh[0].event_id)


# -- two processes, one device -------------------------------------------------------------


def _enqueue_many(path: str, tag: str, count: int, start: Any) -> None:
    box = Outbox(Path(path))
    k = key(1)
    start.wait(30)
    box.seed_head(ROOM, key_text(k), None)  # both race to seed: INSERT OR IGNORE
    for i in range(count):
        box.enqueue(
            room_id=ROOM,
            user_id=USER,
            signing_key=k,
            drafts=texts(f"{tag}-{i}", f"{tag}-{i}-second"),
            clock=lambda: T0,
            unique=lambda: str(uuid.uuid4()),
        )
    box.close()


def test_two_processes_of_one_device_never_fork_its_chain(path: Path) -> None:
    Outbox(path).close()  # create the schema before the race
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    count = 60
    procs = [ctx.Process(target=_enqueue_many, args=(str(path), t, count, start)) for t in "AB"]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0

    box = Outbox(path)
    try:
        events = pending_events(box)
        assert len(events) == 1 + 2 * 2 * count  # exactly one join
        assert_one_chain(events)
        bodies = [e.body for e in events if e.type == MESSAGE]
        assert sorted(bodies) == sorted(
            f"{t}-{i}{s}" for t in "AB" for i in range(count) for s in ("", "-second")
        )
        # each enqueue's two drafts are adjacent on the chain (a transaction is atomic)
        for first, second in itertools.pairwise(events[1:]):
            if first.body and not first.body.endswith("-second"):
                assert second.body == f"{first.body}-second"
        ledger = RoomLedger(ROOM)
        for n in itertools.count():
            seg_id = box.take_batch(ROOM, key_text(key(1)), max_events=50)
            if seg_id is None:
                break
            # All events share one timestamp, so every batch has the same name: as when
            # publishing, a taken name is replaced by the next "-r<n>" one.
            if n:
                box.rename(seg_id, n)
            seg = box.segment(seg_id)
            assert seg is not None
            ledger.add_segment(seg.path, seg.data)
        assert ledger.segment_count == 5
        result = ledger.audit({})
        assert result.clean, result.findings
        assert result.findings == []
        assert len(result.timeline) == len(events)
        assert {a.state for a in result.timeline} == {TrustState.VERIFIED}
    finally:
        box.close()


def test_a_segment_stays_within_the_size_readers_accept(box: Outbox) -> None:
    """Long messages queued while offline (each just under the line limit) made one
    segment of every one of them: past 64 MB, which every reader refuses unread, so the
    messages were published and lost alike. Now what does not fit waits for the next."""
    body = "x" * (MAX_LINE_BYTES - 1000)
    events = enqueue(box, *[body] * 260)  # about 67 MB with the join
    me = key_text(key(1))
    taken = [box.take_batch(ROOM, me), box.take_batch(ROOM, me)]
    assert box.take_batch(ROOM, me) is None
    data = [box.segment(s).data for s in taken if s is not None]  # type: ignore[union-attr]
    assert len(data) == 2 and all(len(d) <= MAX_SEGMENT_BYTES for d in data)
    assert sum(d.count(b"\n") for d in data) == len(events)  # all of them, in order
    assert data[0].startswith(events[0].line()) and data[1].endswith(events[-1].line())


def test_a_lone_surrogate_is_refused_and_the_room_stays_writable(box: Outbox) -> None:
    # A lone surrogate reaches a str from undecodable bytes (Python's surrogateescape in
    # argv or file names) or a broken paste. Every reader rejects such a line as
    # bad-encoding; signed and queued, it also became this device's chain head, which
    # the next enqueue could not read: the room was unwritable from then on.
    with pytest.raises(ValueError, match="lone UTF-16 surrogate"):
        enqueue(box, "ok", "caf\udce9")
    assert box.pending() == []  # the whole draft list was rolled back
    events = enqueue(box, "after")
    assert [e.body for e in events] == [None, "after"]
    assert_one_chain(pending_events(box))


def test_a_hold_is_taken_off_by_the_enqueue_that_signs_it(box: Outbox) -> None:
    """A send kept before its chain head is known (``hold``) is signed and queued, and its
    hold taken off, in one transaction: held or queued, never both nor neither. A hold
    queued already (by another process of this device) is not queued twice."""
    k = key(1)
    seq = box.hold(ROOM, key_text(k), USER, "Alice", texts("kept"))
    [held] = box.held()
    assert (held.seq, held.room_id, held.user_id, held.displayname) == (seq, ROOM, USER, "Alice")
    assert held.drafts == tuple(texts("kept"))
    assert box.is_empty()  # kept, not queued for delivery
    events = enqueue(box, drafts=list(held.drafts), held=seq)
    assert [e.type for e in events] == [MEMBER, MESSAGE] and box.held() == []
    assert enqueue(box, drafts=list(held.drafts), held=seq) == []
    assert pending_events(box) == events
    assert [e.body for e in enqueue(box, "next")] == ["next"]  # the head is where it was
    assert_one_chain(pending_events(box))


def test_what_a_send_signed_an_older_hold_as_is_noted_for_the_send_that_kept_it(
    path: Path, box: Outbox
) -> None:
    """Red team rt92: a command's send signs the app's older hold first, in its own
    process; the app's send that kept it must learn it was queued, and as what
    (``replaced``), not only that it is gone: ``drop_held`` says it was gone, and
    ``replaced`` gives the events it was signed as, through the file, until forgotten."""
    k = key(1)
    seq = box.hold(ROOM, key_text(k), USER, None, texts("typed in the app"))
    command = Outbox(path)  # another connection to the same file: another process
    try:
        drained: list[int] = []
        own = enqueue(command, "typed in the terminal", drained=drained)
    finally:
        command.close()
    assert drained == [seq] and [e.body for e in own] == [
        None,
        "typed in the app",
        "typed in the terminal",
    ]
    assert not box.is_held(seq)
    assert box.drop_held(seq) is False  # gone: not this send's to refuse
    signed = box.replaced(seq)
    assert signed is not None and [e.body for e in signed] == [None, "typed in the app"]
    assert [e.event_id for e in signed] == [e.event_id for e in own[:2]]
    box.forget_replaced(seq)
    assert box.replaced(seq) is None
    other = box.hold(ROOM, key_text(k), USER, None, texts("refused"))
    assert box.replaced(other) is None and box.drop_held(other) is True  # never signed


def test_what_an_older_hold_was_signed_as_is_let_go_a_day_later(box: Outbox) -> None:
    """The note (``replaced``) is for a send that waits seconds: one nobody took is let
    go by a later send after ``REPLACED_KEPT``, not kept (with the text) for ever."""
    k = key(1)
    seq = box.hold(ROOM, key_text(k), USER, None, texts("kept"))
    enqueue(box, "first")
    assert box.replaced(seq) is not None
    box._db.execute("UPDATE replaced SET signed = signed - ?", (REPLACED_KEPT + 1,))
    enqueue(box, "second")
    assert box.replaced(seq) is None


# -- discarding a hold ------------------------------------------------------------------------


def test_a_hold_discarded_is_gone_for_good_and_no_later_send_signs_it(
    path: Path, box: Outbox
) -> None:
    """``discard_held``: a kept send the person lets go is taken off with its text (the
    answer gives that text once more); no later send signs it, and the next kept send of
    the room still goes out. Discarding it again, or naming another room, discards
    nothing."""
    k = key(1)
    gone = box.hold(ROOM, key_text(k), USER, None, texts("let this go"))
    kept = box.hold(ROOM, key_text(k), USER, None, texts("keep this"))
    assert box.discard_held(gone, "another-room").outcome is Discard.GONE  # not that room's
    answer = box.discard_held(gone, ROOM)
    assert answer.outcome is Discard.DISCARDED and answer.hold is not None
    assert answer.hold.drafts == tuple(texts("let this go")) and answer.signed == ()
    assert [h.seq for h in box.held()] == [kept]
    assert box.discard_held(gone) == HeldDiscard(Discard.GONE)
    drained: list[int] = []
    events = enqueue(box, "typed later", drained=drained)
    assert drained == [kept]
    assert [e.body for e in events] == [None, "keep this", "typed later"]
    box.close()
    files = [path, path.with_name(path.name + "-wal")]
    data = b"".join(f.read_bytes() for f in files if f.exists())
    assert b"let this go" not in data  # overwritten, not only unlinked from the table


def on_disk(path: Path) -> bytes:
    """The outbox's file and its write-ahead log, as a copy of the profile folder (a
    backup, a synced home folder) would take them."""
    files = [path, path.with_name(path.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def test_a_discarded_hold_leaves_no_copy_in_the_log_while_the_outbox_stays_open(
    path: Path, box: Outbox
) -> None:
    """The app's Discard…: its outbox stays open. The log's frames written when the
    message was kept held its text, after the discard said "gone", for the whole session
    (red team rt97): the log is emptied, and the answer says nothing stays."""
    gone = box.hold(ROOM, key_text(key(1)), USER, None, texts("typed in the wrong room"))
    assert b"typed in the wrong room" in on_disk(path)
    answer = box.discard_held(gone, ROOM)
    assert answer.outcome is Discard.DISCARDED and not answer.in_log
    assert b"typed in the wrong room" not in on_disk(path)
    later = box.hold(ROOM, key_text(key(1)), USER, None, texts("typed later"))
    assert [h.seq for h in box.held()] == [later]  # the outbox goes on after the log is cut


def test_a_discard_by_another_process_leaves_no_copy_while_the_app_has_the_outbox_open(
    path: Path, box: Outbox
) -> None:
    """``bucket-chat outbox discard`` while the app (``box``, another connection) has the
    outbox open: the command's connection closes, the app's stays, and the log (shared)
    holds no copy of the text."""
    seq = box.hold(ROOM, key_text(key(1)), USER, None, texts("typed in the wrong room"))
    command = Outbox(path)
    try:
        answer = command.discard_held(seq, ROOM)
    finally:
        command.close()
    assert answer.outcome is Discard.DISCARDED and not answer.in_log
    assert box.held() == []
    assert b"typed in the wrong room" not in on_disk(path)


def test_a_discard_while_another_process_reads_says_a_copy_stays_until_the_outbox_closes(
    path: Path, box: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program of this device is in the middle of reading the outbox: the log
    cannot be emptied, and the answer says a copy stays there (``in_log``) rather than
    "gone". The next close that can empty it does."""
    monkeypatch.setattr(outbox_module, "EMPTY_LOG_WAIT_MS", 10)
    seq = box.hold(ROOM, key_text(key(1)), USER, None, texts("typed in the wrong room"))
    reader = Outbox(path)
    reader._db.execute("BEGIN")
    assert reader.held() != []  # its read sees the hold, from the log
    answer = box.discard_held(seq, ROOM)
    assert answer.outcome is Discard.DISCARDED and answer.in_log
    assert answer.hold is not None and answer.hold.seq == seq
    assert b"typed in the wrong room" in on_disk(path)  # as the answer says
    reader._db.execute("COMMIT")
    box.close()  # the app closes; the reader (the command) has the outbox open still
    try:
        assert b"typed in the wrong room" not in on_disk(path)
        assert reader.held() == []
    finally:
        reader.close()


def test_a_hold_another_process_signed_is_never_discarded_and_the_answer_says_as_what(
    path: Path, box: Outbox
) -> None:
    """A hold the command line signed first (``enqueue`` signs the older holds of its
    room and key) is no longer a hold: ``discard_held`` leaves the signed events queued
    and answers SIGNED with them (``replaced``), for the app to show it as sent."""
    k = key(1)
    seq = box.hold(ROOM, key_text(k), USER, None, texts("typed in the app"))
    command = Outbox(path)
    try:
        own = enqueue(command, "typed in the terminal")
    finally:
        command.close()
    queued = pending_events(box)
    answer = box.discard_held(seq, ROOM)
    assert answer.outcome is Discard.SIGNED and answer.hold is None
    assert [e.event_id for e in answer.signed] == [e.event_id for e in own[:2]]
    assert pending_events(box) == queued  # nothing signed was touched
    box.forget_replaced(seq)  # the app showed it: then nothing is left to say
    assert box.discard_held(seq).outcome is Discard.GONE


def test_a_discard_racing_another_process_signing_the_same_hold_takes_nothing_signed(
    path: Path, box: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the command line's send is signing the app's hold (inside its
    transaction) when the person confirms Discard in the app. The discard waits for that
    transaction and then finds the hold signed: it discards nothing and says SIGNED,
    with the events; the room's chain holds the message once."""
    k = key(1)
    seq = box.hold(ROOM, key_text(k), USER, None, texts("typed in the app"))
    command = Outbox(path)  # another connection to the file: another process
    signing = threading.Event()  # the command's transaction is open and signing
    asked = threading.Event()  # the discard asked for the file's write lock
    real = outbox_module.continue_chain

    def signs_slowly(*args: Any, **kwargs: Any) -> list[Event]:
        signing.set()
        assert asked.wait(30)  # the discard's BEGIN IMMEDIATE ran meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(outbox_module, "continue_chain", signs_slowly)
    box._db.set_trace_callback(lambda sql: asked.set() if sql.startswith("BEGIN") else None)
    done: dict[str, list[Event]] = {}
    try:
        command.seed_head(ROOM, key_text(k), None)
        worker = threading.Thread(
            target=lambda: done.update(own=enqueue(command, "typed in the terminal"))
        )
        worker.start()
        assert signing.wait(30)
        answer = box.discard_held(seq, ROOM)  # waits for the command's commit
        worker.join(30)
    finally:
        box._db.set_trace_callback(None)
        command.close()
    assert asked.is_set() and not worker.is_alive()
    assert answer.outcome is Discard.SIGNED
    assert [e.body for e in answer.signed] == [None, "typed in the app"]
    assert [e.body for e in pending_events(box)] == [
        None,
        "typed in the app",
        "typed in the terminal",
    ]
    assert box.held() == []
    assert_one_chain(pending_events(box))


def test_a_hold_discarded_first_is_not_signed_by_the_other_process_send(
    path: Path, box: Outbox
) -> None:
    """The other order: the discard commits first; the command's send then signs its
    own message only (the hold is not among the older holds it signs)."""
    k = key(1)
    seq = box.hold(ROOM, key_text(k), USER, None, texts("typed in the app"))
    assert box.discard_held(seq, ROOM).outcome is Discard.DISCARDED
    command = Outbox(path)
    try:
        drained: list[int] = []
        own = enqueue(command, "typed in the terminal", drained=drained)
    finally:
        command.close()
    assert drained == [] and [e.body for e in own] == [None, "typed in the terminal"]
    assert box.replaced(seq) is None
