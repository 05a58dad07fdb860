"""The event schema: untrusted JSON in, an ``Event`` or a precise ``Malformed`` out."""

from __future__ import annotations

import copy
import gc
import json
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.canonical import canonical_bytes, event_hash
from bucket_chat_desktop.protocol.event import (
    MAX_DEPTH,
    MAX_ID_BYTES,
    MAX_LINE_BYTES,
    MAX_TIMESTAMP_MS,
    Event,
    Malformed,
    _decode_json_line_slow,
    allowed_values,
    decode_json_line,
    json_values,
    parse_event,
    parse_line,
)
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.segment import decode_segment

from ._support import ROOM, T0, alice

UID = "00000001-0000-4000-8000-000000000001"


def good(**changes: Any) -> dict[str, Any]:
    """A schema-valid event object (its signature is not checked here)."""
    obj: dict[str, Any] = {
        "event_id": f"{ROOM}::2025-09-14T12:00:45.000Z::{UID}",
        "room_id": ROOM,
        "timestamp_ms": T0,
        "sender_id": "alice@example.com",
        "type": "m.room.message",
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "c2ln",
        "content": {"body": "hi", "msgtype": "m.text"},
    }
    obj.update(changes)
    return obj


def parse(obj: Any, room_id: str = ROOM) -> Event | Malformed:
    return parse_event(copy.deepcopy(obj), room_id)


def bad(obj: Any, kind: Kind = Kind.BAD_SCHEMA, room_id: str = ROOM) -> Malformed:
    result = parse(obj, room_id)
    assert isinstance(result, Malformed), result
    assert result.kind is kind, result
    return result


def nest(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


# -- a good event --------------------------------------------------------------------------


def test_parse_good_event() -> None:
    obj = good(sender_key="a2V5")
    ev = parse(obj)
    assert isinstance(ev, Event)
    assert ev.event_id == obj["event_id"]
    assert (ev.room_id, ev.timestamp_ms, ev.sender_id) == (ROOM, T0, "alice@example.com")
    assert (ev.type, ev.parent_event_id, ev.prev_event_hash) == ("m.room.message", None, None)
    assert (ev.signature, ev.sender_key) == ("c2ln", "a2V5")
    assert ev.content == {"body": "hi", "msgtype": "m.text"}
    assert ev.body == "hi"
    assert ev.order_key == (T0, obj["event_id"])
    assert ev.canonical == canonical_bytes(obj)
    assert b"signature" not in ev.canonical
    assert ev.hash == event_hash(obj)
    assert dict(ev.raw) == obj  # the signature is put back


def test_optional_fields_may_be_absent() -> None:
    obj = good()
    for field in ("parent_event_id", "prev_event_hash"):
        del obj[field]
    ev = parse(obj)
    assert isinstance(ev, Event)
    assert ev.parent_event_id is None and ev.prev_event_hash is None and ev.sender_key is None
    assert b"parent_event_id" not in ev.canonical  # absent is not the same as null


def test_unknown_fields_are_kept_and_signed() -> None:
    obj = good(x_future={"k": [1, 2]}, another="v")
    ev = parse(obj)
    assert isinstance(ev, Event)
    assert ev.raw["x_future"] == {"k": [1, 2]}
    assert b'"x_future":{"k":[1,2]}' in ev.canonical


def test_line_is_canonical_with_signature_and_round_trips() -> None:
    ev = alice().say(T0, "héllo")
    line = ev.line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line.isascii()
    assert json.loads(line) == dict(ev.raw)
    again = parse_line(line, ROOM)
    assert isinstance(again, Event)
    assert (again.canonical, again.hash, again.signature) == (ev.canonical, ev.hash, ev.signature)


def test_reference_style_line_with_raw_utf8_parses() -> None:
    obj = good(event_id=f"{ROOM}::2025-09-14T14:00:45.123000Z::{UID}", signature="")
    obj["content"]["body"] = "Grüße 🍺"
    line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    ev = parse_line(line, ROOM)
    assert isinstance(ev, Event)
    assert ev.body == "Grüße 🍺"
    assert ev.canonical.isascii()
    assert ev.canonical == canonical_bytes(obj)


def test_body_property_only_for_text() -> None:
    ev = parse(good(type="x.custom", content={"body": 5}))
    assert isinstance(ev, Event) and ev.body is None


# -- event ids -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_id",
    [
        f"{ROOM}::2025-09-14T12:00:45.123Z::{UID}",
        f"{ROOM}::2025-09-14T14:00:45.123000Z::{UID}",  # the reference's local time form
        f"{ROOM}::anything::x",  # readers accept any 3-part id for this room
        f"{ROOM}::a:b::c:d",
    ],
)
def test_accepted_event_ids(event_id: str) -> None:
    assert isinstance(parse(good(event_id=event_id)), Event)


@pytest.mark.parametrize(
    "event_id",
    [
        f"other::2025-09-14T12:00:45.123Z::{UID}",
        f"{ROOM}::only-two",
        f"{ROOM}::a::b::c",
        f"{ROOM}::::{UID}",
        f"{ROOM}::time::",
        f"{ROOM}x::t::u",
        "::t::u",
        f"{ROOM}::t::" + "u" * MAX_ID_BYTES,
        "",
    ],
)
def test_rejected_event_ids(event_id: str) -> None:
    bad(good(event_id=event_id))


def test_event_id_limit_is_inclusive() -> None:
    prefix = f"{ROOM}::t::"
    ok = prefix + "u" * (MAX_ID_BYTES - len(prefix))
    assert isinstance(parse(good(event_id=ok)), Event)


# -- fields --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["event_id", "room_id", "timestamp_ms", "sender_id", "type", "signature", "content"],
)
def test_missing_required_field(field: str) -> None:
    obj = good()
    del obj[field]
    result = bad(obj)
    assert field in result.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", 5),
        ("event_id", None),
        ("room_id", 5),
        ("room_id", None),
        ("timestamp_ms", "1757851245000"),
        ("timestamp_ms", True),
        ("timestamp_ms", False),
        ("timestamp_ms", None),
        ("timestamp_ms", -1),
        ("timestamp_ms", MAX_TIMESTAMP_MS + 1),
        ("timestamp_ms", [T0]),
        ("sender_id", 1),
        ("sender_id", ""),
        ("sender_id", "s" * (MAX_ID_BYTES + 1)),
        ("type", None),
        ("type", ""),
        ("type", ["m.room.message"]),
        ("signature", None),
        ("signature", 7),
        ("signature", "s" * (MAX_ID_BYTES + 1)),
        ("content", "hi"),
        ("content", ["hi"]),
        ("content", None),
        ("parent_event_id", 5),
        ("parent_event_id", {}),
        ("prev_event_hash", 5),
        ("prev_event_hash", ["h"]),
        ("sender_key", 5),
        ("sender_key", False),
    ],
)
def test_wrong_types(field: str, value: Any) -> None:
    bad(good(**{field: value}))


@pytest.mark.parametrize("ts", [0, 1, T0, MAX_TIMESTAMP_MS])
def test_timestamp_range(ts: int) -> None:
    assert isinstance(parse(good(timestamp_ms=ts)), Event)


def test_not_an_object() -> None:
    values: list[Any] = [[], "x", 1, None, True]
    for value in values:
        assert "JSON object" in bad(value).reason


def test_wrong_room() -> None:
    obj = good(room_id="other", event_id=f"other::t::{UID}")
    result = bad(obj, Kind.WRONG_ROOM)
    assert result.event_id == obj["event_id"]


def test_event_id_of_this_room_but_room_id_of_another() -> None:
    bad(good(room_id="other"), Kind.WRONG_ROOM)


def test_message_needs_string_body() -> None:
    for content in ({}, {"body": None}, {"body": 5}, {"body": ["x"]}):
        bad(good(content=content))
    assert isinstance(parse(good(content={"body": ""})), Event)  # msgtype is optional


@pytest.mark.parametrize("membership", ["join", "leave", "invite", "ban", "kick"])
def test_member_memberships(membership: str) -> None:
    obj = good(type="m.room.member", content={"membership": membership, "displayname": "A"})
    assert isinstance(parse(obj), Event)


@pytest.mark.parametrize("membership", [None, "knock", "JOIN", 1])
def test_member_bad_memberships(membership: Any) -> None:
    bad(good(type="m.room.member", content={"membership": membership}))


@pytest.mark.parametrize("field", ["parent_event_id", "prev_event_hash", "sender_key"])
def test_a_link_or_key_longer_than_any_id_hash_or_key_is_bad_schema(field: str) -> None:
    """Section 4.3: a reply's parent is an event id (at most 512 characters), a chain
    link a hash and ``sender_key`` a key (44): longer, the line names nothing, and a
    reader that keeps the field by row (the app's ledger keeps a parent and a link that
    is not the row before) kept 240 KB an event of it (red team rt91)."""
    assert isinstance(parse(good(**{field: "x" * MAX_ID_BYTES})), Event)
    result = bad(good(**{field: "x" * (MAX_ID_BYTES + 1)}))
    assert result.reason == (
        f"{field} is 513 bytes long, more than the 512 any event id, hash or key can have"
    )
    assert result.event_id == good()["event_id"]
    line = json.dumps(good(**{field: "x" * 240_000})).encode()
    refused = parse_line(line, ROOM)  # a line as stored, under the line limit
    assert isinstance(refused, Malformed) and refused.reason.startswith(f"{field} is 240,000 ")


@pytest.mark.parametrize("field", ["add_device_key", "introduced_by"])
def test_a_member_naming_a_key_longer_than_any_key_is_bad_schema(field: str) -> None:
    """Section 4.4: a join's device introduction names a key; a text longer than any id
    is refused like the link fields (every reader keeps it as the key it names). Any
    other value still names no key and is read (section 7: "a malformed key")."""
    member = {"type": "m.room.member"}
    for value in ("k" * MAX_ID_BYTES, 5, None, {"a": "b"}):
        content = {"membership": "join", field: value}
        assert isinstance(parse(good(**member, content=content)), Event)
    content = {"membership": "join", field: "k" * (MAX_ID_BYTES + 1)}
    result = bad(good(**member, content=content))
    assert result.reason == (
        f"m.room.member content.{field} is 513 bytes long, more than the 512 any key can have"
    )


def test_unknown_types_are_accepted() -> None:
    assert isinstance(parse(good(type="org.example.thing", content={"anything": [1]})), Event)


def test_malformed_keeps_the_event_id_when_it_can() -> None:
    obj = good(timestamp_ms="x")
    assert bad(obj).event_id == obj["event_id"]


# -- depth ---------------------------------------------------------------------------------


def _line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def test_depth_limit_is_sixteen_counting_the_event_as_one() -> None:
    # event 1, content 2, "x" 3, then n objects: the innermost value sits at depth 3 + n
    at_limit = good(content={"body": "b", "x": nest(MAX_DEPTH - 3)})
    over = good(content={"body": "b", "x": nest(MAX_DEPTH - 2)})
    assert isinstance(parse_line(_line(at_limit), ROOM), Event)
    result = parse_line(_line(over), ROOM)
    assert isinstance(result, Malformed) and result.kind is Kind.TOO_DEEP


def test_depth_with_arrays_and_empty_containers() -> None:
    # an empty container is a value too: allowed at depth 16, not at 17
    empty_at_16 = good(content={"body": "b", "x": nest(MAX_DEPTH - 3, [])})
    assert isinstance(parse_line(_line(empty_at_16), ROOM), Event)
    empty_at_17 = good(content={"body": "b", "x": nest(MAX_DEPTH - 2, {})})
    result = parse_line(_line(empty_at_17), ROOM)
    assert isinstance(result, Malformed) and result.kind is Kind.TOO_DEEP
    # a top-level field is at depth 2: 15 arrays put the innermost 1 at depth 17
    arrays: Any = 1
    for _ in range(MAX_DEPTH - 1):
        arrays = [arrays]
    result = parse_line(_line(good(x=arrays)), ROOM)
    assert isinstance(result, Malformed) and result.kind is Kind.TOO_DEEP
    assert isinstance(parse_line(_line(good(x=arrays[0])), ROOM), Event)


def test_wide_but_shallow_is_fine() -> None:
    wide = good(content={"body": "b", "list": [{"note": "n" * 40} for _ in range(300)]})
    assert isinstance(parse_line(_line(wide), ROOM), Event)


@pytest.mark.parametrize("entries", [2_000, 200])
def test_a_line_packing_values_densely_is_refused_on_both_paths(entries: int) -> None:
    """Red team rt78: a 64 MiB segment of lines of ``[{},{},…]`` took 1.7 GB to read (24
    times its size), in each worker and again where it was unpacked; rt81: so did lines
    too short (under 4 KiB) for the first rule to look at."""
    dense = _line(good(content={"body": "b", "junk": [{} for _ in range(entries)]}))
    count = json_values(json.loads(dense))
    assert count > allowed_values(len(dense))
    fast, slow = decode_json_line(dense), _decode_json_line_slow(dense)
    assert isinstance(fast, Malformed) and fast == slow
    assert fast.kind is Kind.TOO_DENSE
    assert f"packs {count:,} JSON values and keys into {len(dense):,} bytes" in fast.reason
    assert "more than one per 16 bytes (or 128)" in fast.reason
    found = parse_line(dense, ROOM)
    assert isinstance(found, Malformed) and found.kind is Kind.TOO_DENSE


def test_a_segment_of_dense_short_lines_is_refused_and_costs_no_more_memory() -> None:
    """Red team rt81: 300 signed events of just under 4 KiB, each ~1,150 ``{}``, took 23.6
    times their size to read; each is refused now, and reading them costs little."""
    writer = alice()
    events = [writer.emit(T0 + i, "m.room.message", {"body": "b"}, prev=None) for i in range(300)]
    lines = [_line({**dict(ev.raw), "content": {"body": "b", "x": [{}] * 1_150}}) for ev in events]
    data = b"\n".join(lines) + b"\n"
    assert max(len(line) for line in lines) < 4096
    gc.collect()
    tracemalloc.start()
    try:
        seg = decode_segment("logs/2025-09-14/messages_1_2_c.jsonl", data, ROOM)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not seg.events
    assert {f.kind for f in seg.findings} <= {Kind.TOO_DENSE, Kind.SEGMENT_ABANDONED}
    assert peak < 3 * len(data), f"{peak:,} bytes of memory for {len(data):,} bytes read"


@pytest.mark.parametrize(
    "content",
    [
        {"body": "a, b: [c], {d}" * 2_000},  # structure in a text: one value
        {"body": "x" * 5_000, "tags": ["abcdefghijklmnop"] * 200},  # 19 bytes a value
        {"body": "x" * 5_000, "n": list(range(100))},  # dense part, long line overall
        {"body": "hi @all", "mentions": [f"u{n}@x.io" for n in range(64)]},  # short ids
    ],
)
def test_lines_that_are_not_dense_are_read(content: dict[str, Any]) -> None:
    line = _line(good(content=content))
    assert decode_json_line(line) == _decode_json_line_slow(line) == json.loads(line)
    assert isinstance(parse_line(line, ROOM), Event)


def test_the_writer_refuses_to_sign_a_line_readers_would_find_too_dense() -> None:
    writer = alice()
    for junk in ([[] for _ in range(3_000)], [{} for _ in range(200)]):
        with pytest.raises(ValueError, match="too-dense"):
            writer.emit(T0, "m.room.message", {"body": "b", "junk": junk})
    near = {"body": "b", "tags": ["abcdefghijklmnopq"] * 300}  # just over 16 bytes a value
    ev = writer.emit(T0, "m.room.message", near)
    assert isinstance(parse_line(_line(dict(ev.raw)), ROOM), Event)
    mentions = {"body": "hi", "mentions": [f"u{n}@x.io" for n in range(64)]}
    ev = writer.emit(T0, "m.room.message", mentions)
    assert isinstance(parse_line(_line(dict(ev.raw)), ROOM), Event)


def test_brackets_inside_strings_do_not_count() -> None:
    obj = good(content={"body": "[[[[{{{{" * 10})
    assert isinstance(parse_line(_line(obj), ROOM), Event)


# -- decode_json_line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [b"1.0", b"1e3", b"1E3", b"-0.0", b"0.5", b"[1.5]", b"NaN", b"Infinity", b"-Infinity"],
)
def test_floats_are_refused(text: bytes) -> None:
    result = decode_json_line(text)
    assert isinstance(result, Malformed) and result.kind is Kind.FLOAT


def test_integers_are_fine() -> None:
    assert decode_json_line(b"[0,-1,9007199254740991]") == [0, -1, 9007199254740991]
    assert decode_json_line(b"-9007199254740991") == -9007199254740991


@pytest.mark.parametrize(
    "text", [b"9007199254740992", b"-9007199254740992", b"[1,99999999999999999]", b"9" * 5000]
)
def test_integers_beyond_2_53_are_refused(text: bytes) -> None:
    result = decode_json_line(text)
    assert isinstance(result, Malformed) and result.kind is Kind.BAD_SCHEMA
    assert "outside" in result.reason


def test_a_long_refused_number_is_quoted_cut_with_its_length() -> None:
    """One line with a number of 200,000 digits made a 200 KB finding (a float), or
    quoted 24 digits of it as if they were the number (an integer): red team rt40."""
    reasons = {
        text: result.reason
        for text in (b"-" + b"9" * 200_000, b"1." + b"0" * 200_000, b"1" + b"0" * 31)
        if isinstance(result := decode_json_line(text), Malformed)
    }
    assert list(reasons.values()) == [
        "integer -99999999999…999999 (200,001 characters) is outside ±(2**53 - 1)",
        "number 1.0000000000…000000 (200,002 characters) is not an integer; floats are forbidden",
        "integer 100000000000…000000 (32 characters) is outside ±(2**53 - 1)",
    ]
    short = decode_json_line(b"9007199254740992")
    assert isinstance(short, Malformed) and short.reason.startswith("integer 9007199254740992 is")


def test_a_byte_order_mark_or_an_empty_line_is_named() -> None:
    bom = decode_json_line(b"\xef\xbb\xbf{}")
    assert isinstance(bom, Malformed) and bom.kind is Kind.BAD_JSON
    assert "byte-order mark" in bom.reason
    for empty in (b"", b"  "):
        result = decode_json_line(empty)
        assert isinstance(result, Malformed) and result.reason == "not JSON: it is empty"


@pytest.mark.parametrize("text", [b"", b"{", b"{}x", b"{'a':1}", b"\xef\xbb\xbf{}", b'{"a":1,}'])
def test_not_json(text: bytes) -> None:
    result = decode_json_line(text)
    assert isinstance(result, Malformed) and result.kind is Kind.BAD_JSON


@pytest.mark.parametrize("text", [b"\xff", b'"\xc3"', b'"\xed\xa0\x80"', b'"\xc0\xaf"'])
def test_not_utf8(text: bytes) -> None:
    result = decode_json_line(text)
    assert isinstance(result, Malformed) and result.kind is Kind.BAD_ENCODING


def test_line_length_limit() -> None:
    at_limit = b'"' + b"x" * (MAX_LINE_BYTES - 2) + b'"'
    assert decode_json_line(at_limit) == "x" * (MAX_LINE_BYTES - 2)
    result = decode_json_line(at_limit + b" ")
    assert isinstance(result, Malformed) and result.kind is Kind.LINE_TOO_LONG


def test_extreme_nesting_does_not_raise() -> None:
    for text in (b"[" * 120_000 + b"]" * 120_000, b'{"a":' * 40_000 + b"1" + b"}" * 40_000):
        assert len(text) < MAX_LINE_BYTES
        result = decode_json_line(text)
        assert isinstance(result, Malformed) and result.kind is Kind.TOO_DEEP


# -- the orjson fast path equals the json module ------------------------------------------
# decode_json_line takes orjson's value of a plain object line and sends every other line
# to the json module (_decode_json_line_slow). Whatever the bytes, both must give the same
# value (same types, same member order) or the same finding: the fast path may never take
# a line the slow path refuses.

_FAST_SETTINGS = settings(
    max_examples=600,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_odd_text = st.text(
    st.one_of(
        st.characters(exclude_categories=()),  # lone surrogates too
        st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "\u2028", "\ufeff", "é", "😀"]),
    ),
    max_size=6,
)
_numbers = st.one_of(
    st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
    st.sampled_from([2**53 - 1, 2**53, -(2**53), 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), _numbers, _odd_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_odd_text, inner, max_size=3)
    ),
    max_leaves=12,
)


def _nested(levels: int, inner: Any) -> Any:
    for i in range(levels):
        inner = [inner] if i % 2 else {"k": inner}
    return inner


def _spellings(value: Any) -> st.SearchStrategy[bytes]:
    """Lines of ``value``: escaped or raw UTF-8, with surrogates as escapes."""
    ascii_text = json.dumps(value, allow_nan=True)  # floats as written, NaN as NaN
    raw = json.dumps(value, ensure_ascii=False, allow_nan=True)
    return st.sampled_from(
        [
            ascii_text.encode("ascii"),
            raw.encode("utf-8", "backslashreplace"),
            raw.encode("utf-8", "surrogatepass"),  # encoded surrogates: not UTF-8
        ]
    )


def _mutated(line: bytes, data: st.DataObject) -> bytes:
    """``line`` with one byte changed, inserted or removed."""
    if not line:
        return line
    i = data.draw(st.integers(0, len(line) - 1))
    byte = data.draw(st.sampled_from(b' "\\{}[],:.-+0eE\t\n\x00\x7f\x80\xc3\xed\xef\xff'))
    how = data.draw(st.sampled_from(["set", "insert", "delete"]))
    if how == "set":
        return line[:i] + bytes([byte]) + line[i + 1 :]
    if how == "insert":
        return line[:i] + bytes([byte]) + line[i:]
    return line[:i] + line[i + 1 :]


def _same(line: bytes) -> None:
    fast = decode_json_line(line)
    slow = _decode_json_line_slow(line)
    assert type(fast) is type(slow)
    assert fast == slow
    if isinstance(fast, dict):
        assert json.dumps(fast) == json.dumps(slow)  # member order and nested types too


@_FAST_SETTINGS
@given(st.data())
def test_fast_decoder_equals_the_json_module_on_generated_lines(data: st.DataObject) -> None:
    source = data.draw(
        st.one_of(
            st.dictionaries(_odd_text, _values, max_size=4),  # objects: the fast path's shape
            _values,
            st.builds(lambda e, c: {**e, "content": c}, st.just(good()), _values),
            st.builds(
                _nested, st.integers(MAX_DEPTH - 3, MAX_DEPTH + 2), st.sampled_from([1, [], {}])
            ),
        )
    )
    line = data.draw(_spellings(source))
    if data.draw(st.booleans()):
        line = _mutated(line, data)
    if data.draw(st.booleans()):
        line = data.draw(st.sampled_from([b" ", b"\t", b"\r", b"\x0c", b"\xef\xbb\xbf"])) + line
    _same(line)


@_FAST_SETTINGS
@given(st.binary(max_size=40))
def test_fast_decoder_equals_the_json_module_on_any_bytes(line: bytes) -> None:
    _same(line)


@pytest.mark.parametrize(
    "line",
    [
        b'{"a":1.0}',
        b'{"a":1e2}',
        b'{"a":-0}',
        b'{"a":9007199254740991,"b":-9007199254740991}',
        b'{"a":9007199254740992}',
        b'{"a":18446744073709551616}',  # orjson makes it a float
        b'{"a":-9223372036854775809}',
        b'{"a":NaN}',
        b'{"a":"\\ud800"}',
        b'{"a":"\\ud83d\\ude00"}',
        b'{"a":"\xed\xa0\x80"}',  # a surrogate encoded in UTF-8
        b'{"a":"\xc0\x80"}',  # an overlong NUL
        b'{"a":"\xf4\x90\x80\x80"}',  # above U+10FFFF
        b'{"a":"\t"}',  # a raw control character
        b'\xef\xbb\xbf{"a":1}',
        b'\x0c{"a":1}',
        b'{"a":1}\x00',
        b'{"a":1,"a":2,"b":3}',
        b'{"b":1,"a":2,"b":3}',
        b'{"a":01}',
        json.dumps(_nested(MAX_DEPTH - 1, 1)).encode(),
        json.dumps(_nested(MAX_DEPTH, 1)).encode(),
        json.dumps(_nested(MAX_DEPTH - 1, {})).encode(),
        json.dumps(_nested(MAX_DEPTH, {})).encode(),
        b"[" * 2000 + b"1" + b"]" * 2000,
        json.dumps(good()).encode(),
    ],
)
def test_fast_decoder_equals_the_json_module_on_known_differences(line: bytes) -> None:
    _same(line)


def test_a_refused_number_under_a_repeated_key_is_replaced_like_any_value() -> None:
    """Hypothesis found it: a float or an out-of-range integer under a key that the same
    object repeats later is replaced by the later value (orjson's fast path and json
    both keep the last): both paths accept the line, and decide on what it keeps."""
    for bad in (b"9007199254740992", b"1.5", b"NaN", b"-1e400"):
        line = b'{"a": {"x": ' + bad + b', "x": null}, "b": 1}'
        assert decode_json_line(line) == _decode_json_line_slow(line) == {"a": {"x": None}, "b": 1}
        kept = b'{"a": {"x": null, "x": ' + bad + b"}}"
        assert isinstance(_decode_json_line_slow(kept), Malformed)
        assert isinstance(decode_json_line(kept), Malformed)
    # nesting deep enough that walking it again would overflow: the finding stands
    deep = b'{"a": ' + b"[" * 900 + b"1.5" + b"]" * 900 + b"}"
    assert isinstance(decode_json_line(deep), Malformed)


WIDE = "\U0001f600"  # outside the BMP: one character, four bytes of UTF-8
ACCENT = "\u00e9"  # two bytes of UTF-8


@pytest.mark.parametrize(
    "field", ["sender_id", "type", "signature", "parent_event_id", "prev_event_hash", "sender_key"]
)
def test_an_id_is_counted_in_bytes_of_utf8_not_characters(field: str) -> None:
    """Section 12: the limit is 512 bytes of UTF-8. Counted in characters, 512 emoji
    were 2 KiB in each of six fields a reader keeps per row, and one hostile line cost
    the app's ledger 16 KB (red team rt99); a text of 128 such characters still fits."""
    assert isinstance(parse(good(**{field: WIDE * (MAX_ID_BYTES // 4)})), Event)
    assert isinstance(parse(good(**{field: ACCENT * (MAX_ID_BYTES // 2)})), Event)
    over = ACCENT * (MAX_ID_BYTES // 2) + "x"  # 257 characters, 513 bytes
    result = bad(good(**{field: over}))
    assert "is 513 bytes long, more than the 512" in result.reason
    result = bad(good(**{field: WIDE * 200}))  # 200 characters, 800 bytes
    assert "is 800 bytes long, more than the 512" in result.reason


def test_an_event_id_over_512_bytes_of_utf8_is_bad_schema() -> None:
    prefix = f"{ROOM}::t::"
    fits = prefix + WIDE * ((MAX_ID_BYTES - len(prefix)) // 4)
    assert isinstance(parse(good(event_id=fits)), Event)
    over = prefix + WIDE * 200
    result = bad(good(event_id=over))
    assert result.reason == (
        f"event_id is {len(over.encode()):,} bytes long, more than the 512 an event id can have"
    )


def test_a_lone_surrogate_in_an_id_is_counted_not_raised() -> None:
    """JSON can spell a lone surrogate; counting its bytes must not raise."""
    assert isinstance(parse(good(sender_id="\ud800" * 170)), Event)  # 510 bytes
    assert "is 513 bytes long" in bad(good(sender_id="\ud800" * 171)).reason
