"""A slim ledger's copies kept as columns (``audit._Columns``, docs/MEMORY.md "A million
events"): every field comes back as it was read, ids are found again, and no copy object
is kept per event between audits."""

from __future__ import annotations

import gc
import json
import tracemalloc
import types
from array import array
from binascii import b2a_base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol import audit
from bucket_chat_desktop.protocol.audit import (
    WITNESS_FIELD,
    AuditResult,
    PreparedSegment,
    RoomLedger,
    TrustState,
    _Columns,
    _Copy,
    member_content,
    witness_entries,
)
from bucket_chat_desktop.protocol.canonical import canonical_json
from bucket_chat_desktop.protocol.event import (
    MAX_TIMESTAMP_MS,
    MEMBER,
    MESSAGE,
    Event,
    decode_json_line,
    parse_event,
)
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import iso_utc_ms
from bucket_chat_desktop.protocol.relations import REACTION
from bucket_chat_desktop.protocol.room_state import display_name_set_by
from bucket_chat_desktop.protocol.segment import DecodedSegment, Located, encode_segment, path_for
from bucket_chat_desktop.protocol.untrusted_text import display_name_safe

from ._support import ROOM, T0, Device, alice, bob, next_uuid, seg, verdicts

HASH = "WapG6l+obX0k5ncju6qbgknp70PQdTVGYxQkfP826Dw="
KEY = "gTl3Dqh9F19Wo1Rmw0x+zMuNipG07jeiXfYPW4/Js5Q="  # a key text (base64 of 32 bytes)
# Witnesses as a hostile writer makes them: entries that are and are not a key mapped to
# a hash, of the writer's own key, and more entries than a reader reads.
_WITNESSES = [
    {KEY: HASH},
    {"k2": HASH},
    {KEY: HASH, HASH: KEY, "k": HASH, "k2": 0},
    {KEY: "not a hash"},
    {f"{n:042d}A=": HASH for n in range(65)},
    [KEY, HASH],
]


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
    # what a reader reads of a witness and of a content, and nothing of a line refused
    # for its signature
    read = witness_entries(ev.raw.get(WITNESS_FIELD), ev.sender_key) if ok is not False else []
    assert dict(c.raw) == ({WITNESS_FIELD: dict(read)} if read else {})
    assert c.content == (audit._kept_content(ev) if ok is not False else {})


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
            raw[WITNESS_FIELD] = draw(st.sampled_from(_WITNESSES))
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
                key=draw(st.sampled_from(["k", "k2", None, KEY])),
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


# -- padding no rule reads (red team rt91) ------------------------------------------------
#
# docs/MEMORY.md: about 120 bytes an event, and what few events have kept apart, by row.
# Kept whole, a member (or, without a key, whoever can write to the bucket: a badly signed
# line was kept too) padded a witness or a member event's content to the line limit:
# ~790 KB an event in the app's ledger for as long as the room is open. Counted with
# tracemalloc: bytes still allocated once the ledger is built and audited, per event.

PADDED = 20  # padded events per room (each line about 240 KB, under the 256 KiB limit)
# Far above the ~120 bytes an event and a 20-event room's fixed costs (~1 KB an event):
# what keeps only what the rules read stays under it by a wide margin.
BOUND = 8 * 1024
# 7,000 entries of 34 bytes on the line: just under 256 KiB, and not ``too-dense``.
_PAD = {f"{j:030d}": 0 for j in range(7000)}
# The same as text mapped to text (each an entry no rule reads: no key, no hash).
_TEXT_PAD = {f"{j:026d}": "x" for j in range(6000)}


def _forge(device: Device, ts: int, *, good_signature: bool = True, **fields: object) -> Event:
    """A line as a hostile writer makes it (ours refuses some of these shapes), parsed as
    a reader parses it; ``good_signature=False``: the storage provider's, with no key."""
    obj: dict[str, object] = {
        "event_id": f"{ROOM}::{iso_utc_ms(ts)}::{next_uuid()}",
        "room_id": ROOM,
        "timestamp_ms": ts,
        "sender_id": device.sender_id,
        "type": MESSAGE,
        "parent_event_id": None,
        "prev_event_hash": device.prev,
        "sender_key": device.public,
        "content": {"body": "hi", "msgtype": "m.text"},
    }
    obj.update(fields)
    signature = device.key.sign(canonical_json(obj)).signature if good_signature else bytes(64)
    obj["signature"] = b2a_base64(signature, newline=False).decode("ascii")
    ev = parse_event(json.loads(canonical_json(obj)), ROOM)
    assert isinstance(ev, Event), ev
    device.prev = ev.hash
    return ev


def _kept_per_event(events: list[Event]) -> tuple[float, AuditResult]:
    path, data = seg(events, "c")
    for line in data.splitlines():
        # orjson keeps the last 2,048 short keys it read, for the whole process (at most
        # ~160 KB): filled here first, so the count is the ledger's alone
        decode_json_line(line)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ledger = RoomLedger(ROOM, keep_bodies=False)
        ledger.add_segment(path, data)
        result = ledger.audit({}, complete=True)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return kept / len(events), result


def _padded(shape: str) -> list[Event]:
    device = alice()
    events = [device.join(T0)]
    for i in range(PADDED):
        ts = T0 + 1 + i
        if shape == "witness":
            events.append(_forge(device, ts, witness=_PAD))
        elif shape == "witness-of-texts":
            events.append(_forge(device, ts, witness=_TEXT_PAD))
        elif shape == "member-content":
            content = {"membership": "join", "pad": _PAD}
            events.append(_forge(device, ts, type=MEMBER, content=content))
        elif shape == "member-name":  # a name of 39,000 characters, most of them invisible
            name = "\u200b" * 39_000 + f"Alice {i}"  # 6 bytes each on the line
            content = {"membership": "join", "displayname": name}
            events.append(_forge(device, ts, type=MEMBER, content=content))
        else:  # the storage provider: no key, the line refused for its signature
            assert shape == "provider-witness"
            events.append(_forge(device, ts, good_signature=False, witness=_PAD))
    return events


@pytest.mark.parametrize(
    "shape",
    ["witness", "witness-of-texts", "member-content", "member-name", "provider-witness"],
)
def test_padding_no_rule_reads_is_not_kept_by_a_slim_ledger(shape: str) -> None:
    events = _padded(shape)
    per_event, result = _kept_per_event(events)
    line_bytes = len(seg(events)[1]) // len(events)
    assert per_event <= BOUND, (
        f"the app's slim ledger keeps {per_event:,.0f} bytes per event of {line_bytes:,}-byte "
        f"lines ({shape}); the design is ~120 bytes an event and no body"
    )
    good = shape != "provider-witness"
    assert result.counts[TrustState.VERIFIED] == (PADDED + 1 if good else 1)
    assert len(result.invalid) == (0 if good else PADDED)


def test_a_plain_room_is_within_the_bound() -> None:
    """The control: the measure is the ledger's, not the test's."""
    device = alice()
    events = [device.join(T0), *(device.say(T0 + 1 + i, "hi") for i in range(PADDED))]
    per_event, result = _kept_per_event(events)
    assert per_event <= BOUND
    assert result.counts[TrustState.VERIFIED] == PADDED + 1


@pytest.mark.parametrize("field", ["parent_event_id", "prev_event_hash"])
def test_a_padded_reply_parent_or_chain_link_is_refused_and_not_kept(field: str) -> None:
    """A reply's parent and a chain link that is not the row before are kept by row:
    padded to 240,000 characters they were 230 KB an event. No event id is that long
    and no hash: the parser refuses the line (``bad-schema``, section 4.3), so every
    reader says the same of it and keeps only its finding."""
    device = alice()
    events = [device.join(T0)]
    lines = [events[0].line()]
    for i in range(PADDED):
        ev = device.say(T0 + 1 + i, "hi")
        obj = dict(ev.raw)
        obj[field] = f"{ROOM}::x::{'p' * 240_000}{i}"
        lines.append(json.dumps(obj).encode() + b"\n")
    data = b"".join(lines)
    path = path_for(events, "c")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ledger = RoomLedger(ROOM, keep_bodies=False)
        ledger.add_segment(path, data)
        result = ledger.audit({}, complete=True)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept / (PADDED + 1) <= BOUND
    refused = [f for f in result.findings if f.kind is Kind.BAD_SCHEMA]
    assert len(refused) == PADDED and len(result.timeline) == 1
    assert refused[0].message.startswith(f"{field} is 240,012 bytes long, more than the 512")


def _reachable_strs(root: object) -> list[str]:
    """Every ``str`` reachable from ``root`` (containers and values; no class, function
    or module), each object once."""
    seen: set[int] = set()
    stack, out = [root], []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            out.append(obj)
            continue
        stack.extend(gc.get_referents(obj))
    return out


def test_a_new_key_per_line_keeps_no_hash_text_per_line() -> None:
    """A slim ledger keeps each hash as 32 raw bytes; it kept per sender key the text of
    its last row's hash too, to compare the next link of that key with it (93 bytes and
    a tuple in a dict entry). The storage provider, with no key (the lines are refused
    as badly signed, and kept), writes each line with a new ``sender_key``: 230 bytes an
    event more, twice the design's whole figure. Now the row number alone is kept."""
    device = alice()
    events = [device.join(T0)]
    for i in range(2000):
        new_key = b2a_base64(i.to_bytes(32, "big"), newline=False).decode("ascii")
        events.append(
            _forge(
                device,
                T0 + 1 + i,
                good_signature=False,
                sender_key=new_key,
                prev_event_hash=None,
            )
        )
    ledger = RoomLedger(ROOM, keep_bodies=False)
    ledger.add_segment(*seg(events, "c"))
    result = ledger.audit({}, complete=True)
    assert len(result.invalid) == 2000  # refused, as they must be
    hashes = {ev.hash for ev in events}
    kept = sum(1 for text in _reachable_strs(ledger._store) if text in hashes)
    assert kept == 0, f"the columnar store holds {kept:,} hash texts of {len(events):,} events"


def test_a_chain_link_to_the_keys_row_before_is_a_row_number_across_keys_and_segments() -> None:
    """The link kept as the number of the key's row read before (``_last``): met across
    segments and other keys' rows in between, and not met when a row of the same key came
    between (a fork: that link is kept apart, as text)."""
    a, b = alice(), bob()
    first = [a.join(T0), b.join(T0 + 1), a.say(T0 + 2, "1"), b.say(T0 + 3, "2")]
    fork_base = a.prev
    second = [a.say(T0 + 4, "3"), a.say(T0 + 5, "4", prev=fork_base)]
    store = _Columns(ROOM)
    for n, ev in enumerate([*first, *second]):
        store.add("p", n, True, "", ev, n)
    assert store._apart == {5: fork_base}
    assert [store._prevs[r] for r in range(6)] == [0, 0, 1, 2, 3, 0]
    for row, ev in enumerate([*first, *second]):
        assert store.copy(row).prev_event_hash == ev.prev_event_hash


_names = st.text(
    st.sampled_from(["a", "Z", " ", "\t", "\u200b", "\u202e", "\u0301", "\ufe0f", "漢", "😀", "…"]),
    min_size=250,
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(_names, st.sampled_from(["displayname", "device_name"]))
def test_a_long_name_kept_as_shown_is_shown_the_same(name: str, field: str) -> None:
    """A slim ledger keeps a name over 256 characters as ``display_name_safe`` shows it
    (``member_content``): shown again, it must give the very text the whole name gives,
    or the app's roster would name someone otherwise than the command line does."""
    kept = member_content({"membership": "join", field: name})
    assert len(kept[field]) <= 256 or kept[field] == name
    assert display_name_safe(kept[field]) == display_name_safe(name)


def test_a_long_hostile_name_names_the_user_alike_in_both_ledgers() -> None:
    device = alice()
    name = "\u200b\u202e" * 2000 + "Alice" + "\u0301" * 50 + " " * 30 + "x" * 100
    events = [device.join(T0, displayname=name), device.say(T0 + 1, "hi")]
    names = []
    for keep_bodies in (True, False):
        ledger = RoomLedger(ROOM, keep_bodies=keep_bodies)
        ledger.add_segment(*seg(events, "c"))
        result = ledger.audit({}, complete=True)
        names.append([display_name_set_by(a) for a in result.timeline])
    assert names[0] == names[1] and names[0][0].startswith("Alice")


# Hashes that are base64 of 32 bytes (a slim ledger's audit then runs over row numbers),
# few, so that distinct events share one (never made by the parser, which hashes the
# event's canonical bytes, id included) and links name them in every way.
_POOL = [audit._b2a(bytes([n]) * 32, newline=False).decode("ascii") for n in range(5)]
# Device keys a witness can name (base64 of 32 bytes, ``witness_entries``), beside "k", "k2"
_KEYS = [audit._b2a(bytes([200 + n]) * 32, newline=False).decode("ascii") for n in range(2)]
# Segment names that sort differently as listed and NFC-normalised (``place_order``):
# the decomposed name is listed before "sf…", the composed one after.
_PREFIXES = ["seg", "sf", "s\u00e9g", "se\u0301g"]


@st.composite
def _linked(draw: st.DrawFn) -> list[tuple[Event, bool | None]]:
    """Events built by hand as a caller of ``add_prepared`` could: chains with a hash
    twice, a link to a hash of another key's or to a missing one, two rows after one
    missing event, roots that are no joins, the same date for many, replays of an id;
    witnesses naming those hashes (some with entries no reader reads, one of more than
    ``MAX_WITNESS_ENTRIES`` entries, ignored whole)."""
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
        unique_id = f"{ROOM}::{iso_utc_ms(ts)}::{unique}"
        raw: dict[str, object] = {"event_id": unique_id}
        seen = st.sampled_from(_POOL + hashes)
        witness = draw(
            st.none()
            | st.dictionaries(st.sampled_from([*_KEYS, "k"]), seen | st.just(0), max_size=3)
            | st.builds(lambda h: {f"{m:042d}A=": h for m in range(65)}, seen)
        )
        if witness is not None:
            raw[WITNESS_FIELD] = witness
        event = _event(
            unique_id,
            ts,
            hash_text,
            prev,
            sender=draw(st.sampled_from(["u@x", "v@x"])),
            key=draw(st.sampled_from(["k", "k2", *_KEYS])),
            kind=kind,
            raw=raw,
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
        prefix = data.draw(st.sampled_from(_PREFIXES))
        path = f"{prefix}-{data.draw(st.integers(0, 9))}-{start}.jsonl"
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
                (tips.unseen, tips.nameless, tips.seen_at, tips.backdated),
            )
        )
    assert said[0] == said[1]
