"""Property tests: no input makes the reader raise, and what we write reads back verified."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.audit import RoomLedger, TrustState
from bucket_chat_desktop.protocol.event import (
    MAX_DEPTH,
    MAX_ID_BYTES,
    MAX_TIMESTAMP_MS,
    MEMBERSHIPS,
    Event,
    Malformed,
    parse_line,
)
from bucket_chat_desktop.protocol.findings import Finding
from bucket_chat_desktop.protocol.segment import decode_segment, encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

from ._support import ROOM, T0, alice, bob, key, named_path

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PATH = named_path(T0, T0 + 10)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _check_findings(findings: list[Finding], path: str, lines: int) -> None:
    for f in findings:
        assert f.path == path
        assert f.line is None or 1 <= f.line <= lines
        assert f.message


def _audit_everything(data: bytes) -> None:
    decoded = decode_segment(PATH, data, ROOM)
    _check_findings(decoded.findings, PATH, data.count(b"\n") + 1)
    led = RoomLedger(ROOM)
    led.add_segment(PATH, data)
    result = led.audit({"alice@example.com": ["x"]})
    assert len(result.timeline) + len(result.invalid) >= 0
    _check_findings(result.findings, PATH, data.count(b"\n") + 1)


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    _audit_everything(data)


@settings(SETTINGS, max_examples=60)
@given(st.lists(json_values, max_size=6))
def test_random_json_lines_never_raise(values: list[Any]) -> None:
    _audit_everything(b"".join(json.dumps(v).encode() + b"\n" for v in values))


# -- mutated events: never raise, and the verdict agrees with the written-out rules --------------


def _depth_ok(value: Any, depth: int = 1) -> bool:
    if depth > MAX_DEPTH:
        return False
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    return all(_depth_ok(v, depth + 1) for v in children)


def _ints_in_range(value: Any) -> bool:
    if type(value) is int:
        return abs(value) <= MAX_TIMESTAMP_MS
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    return all(_ints_in_range(v) for v in children)


def spec_accepts(obj: Any, room_id: str) -> bool:
    """docs/PROTOCOL.md "Event schema", written out plainly as an independent model."""
    if not isinstance(obj, dict) or not _ints_in_range(obj):
        return False
    required = ("event_id", "room_id", "timestamp_ms", "sender_id", "type", "signature", "content")
    if any(f not in obj for f in required):
        return False
    for f in ("event_id", "room_id", "sender_id", "type", "signature"):
        if (
            not isinstance(obj[f], str)
            or len(obj[f].encode("utf-8", "surrogatepass")) > MAX_ID_BYTES
        ):
            return False
    if obj["room_id"] != room_id:
        return False
    parts = obj["event_id"].split("::")
    if len(parts) != 3 or parts[0] != room_id or not parts[1] or not parts[2]:
        return False
    ts = obj["timestamp_ms"]
    if type(ts) is not int or not 0 <= ts <= MAX_TIMESTAMP_MS:
        return False
    if not obj["sender_id"] or not obj["type"] or not isinstance(obj["content"], dict):
        return False
    for f in ("parent_event_id", "prev_event_hash", "sender_key"):
        if obj.get(f) is not None and not isinstance(obj[f], str):
            return False
    if not _depth_ok(obj):
        return False
    if obj["type"] == "m.room.message" and not isinstance(obj["content"].get("body"), str):
        return False
    return not (
        obj["type"] == "m.room.member" and obj["content"].get("membership") not in MEMBERSHIPS
    )


FIELDS = [
    "event_id",
    "room_id",
    "timestamp_ms",
    "sender_id",
    "type",
    "parent_event_id",
    "prev_event_hash",
    "signature",
    "sender_key",
    "content",
    "extra",
]
id_like = st.lists(
    st.sampled_from([ROOM, "other", "::", ":", "x", "", "2025-09-14T12:00:45.000Z"]), max_size=6
).map("".join)


def _nest(levels: int) -> Any:
    value: Any = 1
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]
    return value


field_values = st.one_of(
    json_values,
    st.integers(10, 18).map(_nest),  # around the depth limit
    id_like,
    st.sampled_from([True, False, 0, -1, MAX_TIMESTAMP_MS, MAX_TIMESTAMP_MS + 1, "m.room.member"]),
    st.dictionaries(
        st.sampled_from(["body", "membership", "msgtype"]),
        st.one_of(st.sampled_from(sorted(MEMBERSHIPS)), json_scalars),
        max_size=3,
    ),
)


@SETTINGS
@example("message", [("event_id", f"{ROOM}::t:::")], [])  # third part ':'
@example("message", [("event_id", f"{ROOM}:::t::u")], [])  # second part ':t'
@example("message", [("x", _nest(15))], [])  # innermost value at depth 17
@example("message", [("x", _nest(14))], [])  # at depth 16
@given(
    st.sampled_from(["message", "member"]),
    st.lists(
        st.tuples(st.sampled_from(FIELDS), st.one_of(st.just(None), field_values)), max_size=3
    ),
    st.lists(st.sampled_from(FIELDS), max_size=2),
)
def test_mutated_events_match_the_rules(
    kind: str, changes: list[tuple[str, Any]], removed: list[str]
) -> None:
    a = alice()
    ev = a.join(T0) if kind == "member" else a.say(T0, "hello", prev=None)
    obj = copy.deepcopy(dict(ev.raw))
    for field, value in changes:
        obj[field] = value
    for field in removed:
        obj.pop(field, None)
    line = json.dumps(obj, separators=(",", ":")).encode()
    parsed = parse_line(line, ROOM)  # the depth rule is checked while decoding the line
    assert isinstance(parsed, Event | Malformed)
    assert isinstance(parsed, Event) == spec_accepts(obj, ROOM), (obj, parsed)
    _audit_everything(line + b"\n" + ev.line())


# -- round trip ---------------------------------------------------------------------------------


content_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53 - 1), 2**53 - 1), st.text(max_size=30)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@SETTINGS
@given(
    bodies=st.lists(st.text(max_size=200), min_size=1, max_size=6),
    extra=st.dictionaries(
        st.text(max_size=6).filter(lambda k: k != "body"), content_values, max_size=3
    ),
    steps=st.lists(st.integers(-5000, 5000), min_size=6, max_size=6),
)
def test_build_encode_decode_audit_is_verified(
    bodies: list[str], extra: dict[str, Any], steps: list[int]
) -> None:
    a, b = alice(), bob()
    events = [a.join(T0), b.join(T0 + 1)]
    ts = T0 + 100_000
    for i, body in enumerate(bodies):
        ts += steps[i]  # timestamps may run backwards along a chain
        writer = a if i % 2 else b
        events.append(writer.emit(ts, "m.room.message", {"body": body, **extra}))
    mine = [e for e in events if e.sender_key == a.public]
    theirs = [e for e in events if e.sender_key == b.public]
    led = RoomLedger(ROOM)
    for group, cid in ((mine, "a"), (theirs, "b")):
        led.add_segment(path_for(group, cid), encode_segment(group))
    result = led.audit()
    assert result.findings == []
    assert {x.state for x in result.timeline} == {TrustState.VERIFIED}
    assert sorted(x.event.event_id for x in result.timeline) == sorted(e.event_id for e in events)
    by_id = {x.event.event_id: x.event for x in result.timeline}
    for e in events:
        assert by_id[e.event_id].content == e.content
        assert by_id[e.event_id].hash == e.hash
    # never before the chain predecessor
    position = {x.event.hash: i for i, x in enumerate(result.timeline)}
    for i, x in enumerate(result.timeline):
        prev = x.event.prev_event_hash
        assert prev is None or position[prev] < i


@SETTINGS
@given(content=st.dictionaries(st.text(max_size=6), content_values, max_size=4))
def test_build_event_never_writes_what_the_reader_rejects(content: dict[str, Any]) -> None:
    try:
        ev = build_event(
            room_id=ROOM,
            sender_id="s@x",
            event_type="org.example.any",
            content=content,
            timestamp_ms=T0,
            unique="u",
            prev_event_hash=None,
            signing_key=key(1),
        )
    except ValueError:
        return
    decoded = decode_segment(PATH, ev.line(), ROOM)
    assert [x.event.canonical for x in decoded.events] == [ev.canonical]
