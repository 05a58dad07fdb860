"""Hostile and broken input: each bad line is named by file and line, the rest survives.

Every test puts the bad input between two good, chained events of one device and checks
that (1) nothing raises, (2) exactly the expected finding names the object and line, and
(3) both good events are still shown as verified (no gap: the bad line was not an event).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bucket_chat_desktop.protocol.audit import TrustState
from bucket_chat_desktop.protocol.event import MAX_LINE_BYTES, Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.segment import decode_segment, path_for

from ._support import ROOM, T0, alice, audit, bob, line_of, named_path, where

FIELDS = (
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
)


def pair() -> tuple[Event, Event]:
    a = alice()
    return a.join(T0), a.say(T0 + 2000, "still here")


def sandwich(bad: bytes, kind: Kind, *, line: int = 2) -> None:
    """good, ``bad`` (one or more physical lines), good: one finding at ``line``."""
    first, last = pair()
    path = named_path(T0, T0 + 2000)
    data = first.line() + bad + (b"" if bad.endswith(b"\n") else b"\n") + last.line()
    result = audit((path, data))
    assert where(result.findings) == [(kind.value, path, line)], result.findings
    assert [(x.event.event_id, x.state) for x in result.timeline] == [
        (first.event_id, TrustState.VERIFIED),
        (last.event_id, TrustState.VERIFIED),
    ]
    assert result.timeline[1].line == line + bad.count(b"\n") + (0 if bad.endswith(b"\n") else 1)


def template() -> dict[str, Any]:
    """A signed event object whose fields the tests below break one at a time."""
    obj: dict[str, Any] = json.loads(bob().join(T0 + 1000).line())
    return obj


# -- lines that are not JSON -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        b"garbage",
        b"{",
        b"}{",
        b'{"a":1}{"b":2}',
        b"\x00\x00\x00",
        b'{"event_id": "x", }',
        b"\xef\xbb\xbf{}",  # a BOM is not allowed
        b"'single quotes'",
    ],
)
def test_garbage_line(bad: bytes) -> None:
    sandwich(bad, Kind.BAD_JSON)


@pytest.mark.parametrize(
    "bad",
    [b"\xff\xfe\xfd", b'{"body":"\xc3\x28"}', b'"\xed\xa0\x80"', b'"\xf8\x88\x80\x80\x80"'],
)
def test_invalid_utf8(bad: bytes) -> None:
    sandwich(bad, Kind.BAD_ENCODING)


def test_fifty_megabyte_line() -> None:
    sandwich(b"x" * (50 * 1024 * 1024), Kind.LINE_TOO_LONG)


def test_line_just_over_the_limit() -> None:
    sandwich(b'"' + b"y" * MAX_LINE_BYTES + b'"', Kind.LINE_TOO_LONG)


def test_nested_ten_thousand_deep_as_the_whole_line() -> None:
    sandwich(b"[" * 10_000 + b"]" * 10_000, Kind.TOO_DEEP)
    sandwich(b'{"a":' * 10_000 + b"0" + b"}" * 10_000, Kind.TOO_DEEP)


def test_nested_ten_thousand_deep_inside_content() -> None:
    obj = template()
    text = json.dumps(obj, separators=(",", ":"))
    deep = '"deep":' + "[" * 10_000 + "]" * 10_000 + ","
    line = text.replace('"content":{', '"content":{' + deep, 1).encode()
    assert len(line) > 20_000
    sandwich(line, Kind.TOO_DEEP)


def test_nested_just_too_deep_inside_content() -> None:
    obj = template()
    value: Any = 1
    for _ in range(14):  # event 1, content 2, "x" 3 ... the 1 lands at depth 17
        value = {"k": value}
    obj["content"]["x"] = value
    sandwich(line_of(obj), Kind.TOO_DEEP)


# -- floats ----------------------------------------------------------------------------------


def _with(path: list[str], value: Any) -> bytes:
    obj = template()
    target = obj
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return json.dumps(obj, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("where_", "value"),
    [
        (["x"], 1.5),
        (["timestamp_ms"], float(T0)),
        (["content", "ratio"], 0.25),
        (["content", "a", "b"], [1, 2.0]),
        (["content", "nan"], float("nan")),
        (["content", "inf"], float("inf")),
        (["content", "ninf"], float("-inf")),
        (["x"], -0.0),
    ],
)
def test_floats(where_: list[str], value: Any) -> None:
    sandwich(_with(where_, value), Kind.FLOAT)


@pytest.mark.parametrize("text", [b"1e3", b"1E+3", b"10.0", b"NaN", b"Infinity", b"-Infinity"])
def test_float_spellings(text: bytes) -> None:
    line = json.dumps(template(), separators=(",", ":")).encode()
    sandwich(line.replace(b'"content":{', b'"content":{"n":' + text + b",", 1), Kind.FLOAT)


# -- schema ----------------------------------------------------------------------------------


WRONG_VALUES: list[Any] = [None, True, 0, 1.5, "text", [], {}]


def _wrong(field: str) -> list[Any]:
    allowed_by_field: dict[str, list[Any]] = {
        "event_id": ["text"],
        "room_id": ["text"],
        "timestamp_ms": [0],
        "sender_id": ["text"],
        "type": ["text"],
        "signature": ["text"],
        "content": [{}],
        "parent_event_id": [None, "text"],
        "prev_event_hash": [None, "text"],
        "sender_key": [None, "text"],
    }
    allowed = allowed_by_field[field]
    return [v for v in WRONG_VALUES if v not in allowed and not isinstance(v, float)]


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f in FIELDS for v in _wrong(f)],
)
def test_wrong_type_for_each_field(field: str, value: Any) -> None:
    obj = template()
    obj[field] = value
    sandwich(line_of(obj), Kind.BAD_SCHEMA)


@pytest.mark.parametrize("value", [True, False])
def test_bool_as_timestamp(value: bool) -> None:
    obj = template()
    obj["timestamp_ms"] = value
    sandwich(line_of(obj), Kind.BAD_SCHEMA)


REQUIRED = [f for f in FIELDS if f not in ("parent_event_id", "prev_event_hash", "sender_key")]


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_required_field(field: str) -> None:
    obj = template()
    del obj[field]
    sandwich(line_of(obj), Kind.BAD_SCHEMA)


@pytest.mark.parametrize("value", [[], "event", 5, None, True])
def test_line_is_not_an_object(value: Any) -> None:
    sandwich(json.dumps(value).encode(), Kind.BAD_SCHEMA)


def test_event_of_another_room() -> None:
    stray = bob(room_id="other-room").join(T0 + 1000)
    sandwich(stray.line(), Kind.WRONG_ROOM)


def test_event_claiming_another_room_inside_this_rooms_id() -> None:
    obj = template()
    obj["room_id"] = "other-room"  # event_id still names this room
    sandwich(line_of(obj), Kind.WRONG_ROOM)


def test_event_id_of_another_room() -> None:
    obj = template()
    obj["event_id"] = obj["event_id"].replace(ROOM, "other-room", 1)
    sandwich(line_of(obj), Kind.BAD_SCHEMA)


# -- whole segments ----------------------------------------------------------------------------


def test_segment_name_lies_about_its_timestamps() -> None:
    first, last = pair()
    path = named_path(T0 - 86_400_000, T0 + 2000)
    result = audit((path, first.line() + last.line()))
    assert where(result.findings) == [("segment-name-mismatch", path, None)]
    assert [x.state for x in result.timeline] == [TrustState.VERIFIED] * 2


def test_truncated_file() -> None:
    a = alice()
    events = [a.join(T0), a.say(T0 + 1, "x"), a.say(T0 + 2, "cut off")]
    path = named_path(T0, T0 + 1)
    data = events[0].line() + events[1].line() + events[2].line()[:-30]
    result = audit((path, data))
    assert where(result.findings) == [("truncated", path, 3)]
    assert [x.event.event_id for x in result.timeline] == [e.event_id for e in events[:2]]
    assert {x.state for x in result.timeline} == {TrustState.VERIFIED}


def test_crlf_blank_lines_and_no_final_newline() -> None:
    first, last = pair()
    data = b"\r\n\r\n" + first.line().replace(b"\n", b"\r\n") + b"\r\n \r\n" + last.line()[:-1]
    path = named_path(T0, T0 + 2000)
    result = audit((path, data))
    assert result.findings == []
    # lines: 1 and 2 blank, 3 first, 4 empty, 5 a space, 6 last (no newline)
    assert [(x.line, x.state) for x in result.timeline] == [
        (3, TrustState.VERIFIED),
        (6, TrustState.VERIFIED),
    ]


def test_many_bad_lines_each_reported() -> None:
    first, last = pair()
    bad = [b"x", b"\xff", b'{"a":1.5}', b"[]", b"[" * 20 + b"]" * 20, b"{"]
    path = named_path(T0, T0 + 2000)
    data = first.line() + b"\n".join(bad) + b"\n" + last.line()
    result = audit((path, data))
    assert where(result.findings) == sorted(
        [
            ("bad-json", path, 2),
            ("bad-encoding", path, 3),
            ("float-not-allowed", path, 4),
            ("bad-schema", path, 5),
            ("too-deep", path, 6),
            ("bad-json", path, 7),
        ],
        key=repr,
    )
    assert len(result.timeline) == 2


def test_decode_only_never_raises_on_odd_paths() -> None:
    first, last = pair()
    for path in ("", "x", "rooms/../../etc/passwd", "rooms/r/logs/d/messages_1_2_\x00.jsonl"):
        decoded = decode_segment(path, first.line() + last.line(), ROOM)
        assert len(decoded.events) == 2
    assert path_for([first, last], "c").startswith(f"rooms/{ROOM}/logs/")
