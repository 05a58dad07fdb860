"""A slim ledger's copies kept as columns (``audit._Columns``, docs/MEMORY.md "A million
events"): every field comes back as it was read, ids are found again, and no copy object
is kept per event between audits."""

from __future__ import annotations

import gc
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol import audit
from bucket_chat_desktop.protocol.audit import (
    WITNESS_FIELD,
    PreparedSegment,
    RoomLedger,
    _Columns,
    _Copy,
)
from bucket_chat_desktop.protocol.event import MAX_TIMESTAMP_MS, MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import iso_utc_ms
from bucket_chat_desktop.protocol.relations import REACTION
from bucket_chat_desktop.protocol.segment import DecodedSegment, Located, encode_segment, path_for

from ._support import ROOM, T0, Device, alice, bob, next_uuid, seg, verdicts

HASH = "WapG6l+obX0k5ncju6qbgknp70PQdTVGYxQkfP826Dw="


def _event(
    event_id: str,
    ts: int,
    hash_text: str,
    prev: str | None,
    *,
    sender: str = "u@x",
    key: str | None = "k",
    kind: str = MESSAGE,
    parent: str | None = None,
    raw: dict[str, object] | None = None,
    content: dict[str, object] | None = None,
    room_id: str = ROOM,
) -> Event:
    return Event(
        raw if raw is not None else {"event_id": event_id},
        b"canonical",
        hash_text,
        event_id,
        room_id,
        ts,
        sender,
        kind,
        parent,
        prev,
        "signature text",
        key,
        content if content is not None else {"body": "hi", "msgtype": "m.text"},
    )


def _same(c: _Copy, ev: Event, path: str, line: int, ok: bool | None, sig: int) -> None:
    assert (c.event_id, c.hash, c.prev_event_hash) == (ev.event_id, ev.hash, ev.prev_event_hash)
    assert (c.timestamp_ms, c.room_id, c.sender_id, c.sender_key, c.type) == (
        ev.timestamp_ms,
        ev.room_id,
        ev.sender_id,
        ev.sender_key,
        ev.type,
    )
    assert (c.parent_event_id, c.path, c.line, c.sig_ok, c.sig) == (
        ev.parent_event_id,
        path,
        line,
        ok,
        sig,
    )
    assert c.signature == "" and c.canonical == b""
    witness = ev.raw.get(WITNESS_FIELD)
    assert dict(c.raw) == ({} if WITNESS_FIELD not in ev.raw else {WITNESS_FIELD: witness})
    assert c.content == audit._kept_content(ev)


_texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12) | st.sampled_from(
    ["", "::", "\ud800", "a\udfffb", "é", "00000000-0000-4000-8000-00000000ea61"]
)
_uuids = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()) | _texts
_hashes = st.sampled_from(
    [
        HASH,
        "WapG6l+obX0k5ncju6qbgknp70PQdTVGYxQkfP826Dx=",  # padding bits not zero
        "WapG6l+obX0k5ncju6qbgknp70PQdTVGYxQkfP826Dw",  # no padding
        "WapG6l-obX0k5ncju6qbgknp70PQdTVGYxQkfP826Dw=",  # another alphabet
        "",
        "not base64 at all",
    ]
)


@st.composite
def _events(draw: st.DrawFn) -> tuple[list[Event], list[int]]:
    """Events of one room with the fields a hostile writer (or a caller that builds
    ``Event`` values itself) may give: ids with and without the room's id, the event's
    time and a UUID; hashes and chain links that are and are not base64 of 32 bytes;
    dates and line numbers past the columns' widths; another room's id."""
    out: list[Event] = []
    lines: list[int] = []
    for n in range(draw(st.integers(1, 12))):
        ts = draw(st.integers(0, MAX_TIMESTAMP_MS) | st.sampled_from([T0, 2**63, 2**70]))
        try:
            when = iso_utc_ms(ts)
        except (OverflowError, OSError, ValueError):
            when = "9999"
        head = draw(st.sampled_from([f"{ROOM}::", "", "other::", ROOM]))
        middle = draw(st.sampled_from([f"{when}::", "", "2025-01-01T00:00:00.000Z::"]) | _texts)
        event_id = head + middle + draw(_uuids) + draw(st.sampled_from(["", f"#{n}"]))
        hash_text = draw(_hashes | st.just(f"{n:043d}="))
        earlier = [e.hash for e in out]
        prev = draw(st.none() | _hashes | (st.sampled_from(earlier) if earlier else _hashes))
        raw: dict[str, object] = {"event_id": event_id}
        if draw(st.booleans()):
            raw[WITNESS_FIELD] = {"k2": HASH}
        kind = draw(st.sampled_from([MESSAGE, MEMBER, REACTION, "x.custom"]))
        content: dict[str, object] = {"body": "b", "msgtype": "m.text"}
        if kind == MEMBER:
            content = {"membership": "join"}
        elif kind == REACTION:
            content = {"relates_to": {"event_id": "e", "key": "+"}}
        out.append(
            _event(
                event_id,
                ts,
                hash_text,
                prev,
                sender=draw(st.sampled_from(["u@x", "v@x", ""])),
                key=draw(st.sampled_from(["k", "k2", None])),
                kind=kind,
                parent=draw(st.none() | _texts),
                raw=raw,
                content=content,
                room_id=draw(st.sampled_from([ROOM, ROOM, "other"])),
            )
        )
        lines.append(draw(st.sampled_from([0, 1, 255, 256, 70_000, 2**32, 2**40])))
    return out, lines


@settings(max_examples=300, deadline=None)
@given(_events(), st.data())
def test_every_field_comes_back_as_it_was_read(
    made: tuple[list[Event], list[int]], data: st.DataObject
) -> None:
    events, lines = made
    store = _Columns(ROOM)
    slots: dict[str, int] = {}
    kept: list[tuple[Event, str, int, bool | None, int]] = []
    for n, (ev, line) in enumerate(zip(events, lines, strict=True)):
        ok = data.draw(st.sampled_from([True, False, None]))
        sig = data.draw(st.integers(0, 2**128 - 1))
        path = f"seg-{n % 3}.jsonl"
        copy = store.add(path, line, ok, f"why {n % 2}", ev, sig)
        assert copy.row == n
        _same(copy, ev, path, line, ok, sig)
        kept.append((ev, path, line, ok, sig))
        if store.find(ev.event_id) < 0:
            slots[ev.event_id] = len(store.heads)
            store.new_slot(ev.event_id, n)
    for row, (ev, path, line, ok, sig) in enumerate(kept):
        _same(store.copy(row), ev, path, line, ok, sig)  # also after later rows were added
        assert store.event_id(row) == ev.event_id and store.hash(row) == ev.hash
        assert store.place(row) == (path, line) and store.timestamp(row) == ev.timestamp_ms
        assert store.sig(row) == sig and store.sender_id(row) == ev.sender_id
        assert store.related(row) == (ev.parent_event_id is not None or ev.type == REACTION)
    for event_id, slot in slots.items():
        assert store.find(event_id) == slot
        for other in (event_id + "x", event_id[:-1], ROOM + "::" + event_id):
            if other not in slots:
                assert store.find(other) == -1


def test_many_ids_are_found_again_and_ids_that_differ_only_by_the_room_are_two() -> None:
    """The id table grows (4,096 ids: eight doublings) and still finds every id, and
    an id that is another's without the room's id in front is another id."""
    store = _Columns(ROOM)
    ids = [f"{ROOM}::{iso_utc_ms(T0 + n)}::{next_uuid()}" for n in range(2048)]
    ids += [i[len(ROOM) + 2 :] for i in ids]  # the same without the room's id
    for n, event_id in enumerate(ids):
        assert store.find(event_id) == -1
        store.add("p", n, True, "", _event(event_id, T0 + n % 2048, HASH, None), n)
        store.new_slot(event_id, n)
    assert [store.find(i) for i in ids] == list(range(len(ids)))
    assert store.find(f"{ROOM}::{iso_utc_ms(T0)}::{next_uuid()}") == -1


def _chains(devices: list[Device], n: int) -> list[tuple[str, bytes]]:
    segments = []
    for d, device in enumerate(devices):
        events = [device.join(T0 + d)]
        events += [device.say(T0 + 1000 * (i + 1) + d, f"m{i}") for i in range(n)]
        segments.append(seg(events, f"c{d}"))
    return segments


def test_a_slim_ledger_keeps_no_copy_object_per_event_between_audits() -> None:
    """A slim ledger's audit keeps only the chain tips it continues from (``try_place``)
    as copies: not one object per event (which is what cost ~515 bytes an event at a
    million events)."""
    devices = [alice(), bob()]
    segments = _chains(devices, 300)
    # copies other tests of this process left alive (a CI worker runs many) are not ours
    gc.collect()
    before = sum(1 for o in gc.get_objects() if isinstance(o, _Copy))
    ledger = RoomLedger(ROOM, keep_bodies=False)
    for path, data in segments:
        ledger.add_segment(path, data)
    result = ledger.audit({}, complete=True)
    assert len(result.timeline) == 602
    gc.collect()
    kept = sum(1 for o in gc.get_objects() if isinstance(o, _Copy)) - before
    assert kept <= len(devices), kept
    # while a whole ledger keeps its copies (they carry bodies)
    whole = RoomLedger(ROOM)
    for path, data in _chains([alice(), bob()], 300):
        whole.add_segment(path, data)
    whole.audit({}, complete=True)
    assert sum(1 for o in gc.get_objects() if isinstance(o, _Copy)) >= kept + 602


def test_a_slim_ledger_audits_over_rows_making_copies_only_where_needed() -> None:
    """A full audit of a slim ledger runs its rules over row numbers (``_RowChains``):
    of 1,202 rows it makes copies only of the two chain tips it keeps and of the member
    events the trust rules read (one join per device), not one per row; a whole ledger's
    audit of the same rows says the same."""
    devices = [alice(), bob()]
    segments = _chains(devices, 600)
    ledger = RoomLedger(ROOM, keep_bodies=False)
    for path, data in segments:
        ledger.add_segment(path, data)
    store = ledger._store
    assert isinstance(store, _Columns)
    made: list[int] = []
    copy = store.copy

    def counted(row: int) -> _Copy:
        made.append(row)
        return copy(row)

    store.copy = counted  # type: ignore[method-assign]
    result = ledger.audit({}, complete=True)
    assert len(result.timeline) == 1202 and result.clean
    assert len(made) <= 2 * len(devices), made
    whole = RoomLedger(ROOM)
    for path, data in segments:
        whole.add_segment(path, data)
    assert verdicts(whole.audit({}, complete=True)) == verdicts(result)


def test_an_older_result_finds_an_id_whose_copy_was_replaced_by_an_earlier_place() -> None:
    """A copy read again at an earlier (path, line) is a new row (``_moved``): a result
    made before still shows the old row, and finds it by its id."""
    device = alice()
    events = [device.join(T0), device.say(T0 + 1, "a"), device.say(T0 + 2, "b")]
    later = path_for(events, "z")
    ledger = RoomLedger(ROOM, keep_bodies=False)
    ledger.add_segment(later, encode_segment(events))
    old = ledger.audit({}, complete=True)
    ledger.add_segment(path_for(events, "a"), encode_segment(events))  # sorts before
    new = ledger.audit({}, complete=True)
    for result, path in ((old, later), (new, path_for(events, "a"))):
        timeline = result.timeline
        for at, ev in enumerate(events):
            assert timeline.position_of(ev.event_id) == at
            assert timeline.position_of_copy(ev.event_id, path, at + 1) == at
            assert timeline.rows_by_id({ev.event_id})[ev.event_id].position == at
            assert timeline[at].path == path


def test_a_row_is_found_in_any_block_of_a_long_timeline() -> None:
    """``_shown_at`` looks for a row in blocks from the newest back (4,096 rows, then
    four times more each): every row is found at its place, in the first block, across
    block edges and in the oldest one, and a row not shown is not."""
    rows = array("I", range(3, 3 * 30_000, 3))  # row numbers, not positions
    for at in (0, 1, 4094, 4095, 4096, 20479, 20480, 20481, len(rows) - 1):
        assert audit._shown_at(rows, rows[at]) == at
    assert audit._shown_at(rows, 4) == -1
    assert audit._shown_at(array("I"), 0) == -1


# Hashes that are base64 of 32 bytes (a slim ledger's audit then runs over row numbers),
# few, so that distinct events share one (never made by the parser, which hashes the
# event's canonical bytes, id included) and links name them in every way.
_POOL = [audit._b2a(bytes([n]) * 32, newline=False).decode("ascii") for n in range(5)]


@st.composite
def _linked(draw: st.DrawFn) -> list[tuple[Event, bool | None]]:
    """Events built by hand as a caller of ``add_prepared`` could: chains with a hash
    twice, a link to a hash of another key's or to a missing one, two rows after one
    missing event, roots that are no joins, the same date for many, replays of an id."""
    out: list[tuple[Event, bool | None]] = []
    for n in range(draw(st.integers(1, 14))):
        hashes = [e.hash for e, _ in out]
        hash_text = draw(
            st.sampled_from(_POOL)
            | st.just(audit._b2a(bytes([100 + n]) * 32, newline=False).decode("ascii"))
        )
        prev = draw(
            st.none() | st.sampled_from(_POOL) | (st.sampled_from(hashes) if hashes else st.none())
        )
        unique = draw(st.sampled_from(["a", "b", f"u{n}", f"u{n}"]))
        ts = T0 + draw(st.sampled_from([0, 0, 1, 2, 5000]))
        kind = draw(st.sampled_from([MESSAGE, MESSAGE, MEMBER]))
        content: dict[str, object] = {"body": f"b{n}", "msgtype": "m.text"}
        if kind == MEMBER:
            content = {"membership": draw(st.sampled_from(["join", "leave"]))}
        event = _event(
            f"{ROOM}::{iso_utc_ms(ts)}::{unique}",
            ts,
            hash_text,
            prev,
            sender=draw(st.sampled_from(["u@x", "v@x"])),
            key=draw(st.sampled_from(["k", "k2"])),
            kind=kind,
            content=content,
        )
        out.append((event, draw(st.sampled_from([True, True, True, None, False]))))
    return out


@settings(max_examples=300, deadline=None)
@given(_linked(), st.data())
def test_an_audit_over_rows_says_what_one_over_copies_says(
    events: list[tuple[Event, bool | None]], data: st.DataObject
) -> None:
    """A slim ledger's audit over row numbers (``_RowChains``) against a whole ledger's
    over copies, on chains only a hand-built event can make: the same rows, verdicts,
    findings (in order) and chain tips."""
    segments: list[PreparedSegment] = []
    per = data.draw(st.integers(1, 4))
    for start in range(0, len(events), per):
        part = events[start : start + per]
        path = f"seg-{data.draw(st.integers(0, 9))}-{start}.jsonl"
        located = [Located(ev, path, n + 1) for n, (ev, _) in enumerate(part)]
        why = [(ok, "checked" if ok is not None else "no signature") for _, ok in part]
        segments.append(PreparedSegment(DecodedSegment(path, located), why))
    complete, partial = data.draw(st.sampled_from([(True, False), (False, False), (True, True)]))
    said = []
    for keep_bodies in (False, True):
        led = RoomLedger(ROOM, keep_bodies=keep_bodies)
        for prepared in segments:
            led.add_prepared(prepared)
        result = led.audit({}, complete=complete, partial=partial)
        tips = led._tips
        assert tips is not None
        ends = {
            k: None if c is None else (c.hash, c.eff, c.depth, c.row) for k, c in tips.tips.items()
        }
        said.append(
            (
                verdicts(result),
                result.pending_gaps,
                ends,
                tips.last_row,
                tips.tail,
                tips.late,
                list(result.timeline._rows),
            )
        )
    assert said[0] == said[1]
