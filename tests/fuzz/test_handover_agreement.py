"""The fast path of a cold read agrees with the slow path, exactly.

Slow path: ``prepare_segment`` in the reader's own process (decode, validate,
canonicalise, verify). Fast path: the same in a worker process, packed, sent over a pipe
and unpacked (``protocol/handover.py``, ``sync/verifier.py``). They must give the same
events field by field (the raw mapping's key order too; only the canonical bytes are left
out, on purpose), the same lines, the same findings and the same signature verdicts: on
every test vector, on hypothesis-generated hostile rooms (signed, forged, replayed,
truncated, garbage and non-UTF-8 lines, names that lie) and on generated JSON lines.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.audit import PreparedSegment, prepare_segment
from bucket_chat_desktop.protocol.event import Event
from bucket_chat_desktop.protocol.handover import HandoverError, pack, unpack
from bucket_chat_desktop.protocol.segment import MAX_BAD_LINES
from bucket_chat_desktop.sync.verifier import SegmentVerifier

from .conftest import fuzz_settings
from .hostile import GARBAGE_LINES, ROOM, HostileRoom, hostile_rooms
from .test_protocol_fuzz import _segments

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
PATH = f"rooms/{ROOM}/logs/2025-11-24/messages_1764000000000_1764000000009_c.jsonl"


def assert_same(fast: PreparedSegment, slow: PreparedSegment) -> None:
    a, b = fast.decoded, slow.decoded
    assert a.path == b.path
    assert a.findings == b.findings
    assert a.lines == b.lines
    assert fast.verdicts == slow.verdicts
    assert [(x.path, x.line) for x in a.events] == [(x.path, x.line) for x in b.events]
    for x, y in zip(a.events, b.events, strict=True):
        got, want = x.event, y.event
        assert type(got) is Event and got.canonical == b""
        assert got._replace(canonical=y.event.canonical) == want
        assert list(got.raw) == list(want.raw)  # the same key order
        assert [type(v) for v in got] == [type(v) for v in want]


def in_process(path: str, data: bytes, room_id: str) -> PreparedSegment:
    return unpack(pack(prepare_segment(path, data, room_id)), room_id)


# -- every vector --------------------------------------------------------------------------


def _vector_segments() -> Iterator[tuple[str, str, bytes]]:
    """(room id, path, bytes) of every segment in the vectors, and every single event
    line of ``events.json`` as a segment of its own."""
    for file in sorted(VECTORS.rglob("*.json")):
        data: dict[str, Any] = json.loads(file.read_text("utf-8"))
        for segment in data.get("segments", []):
            raw = (
                base64.b64decode(segment["data_base64"])
                if "data_base64" in segment
                else str(segment["data"]).encode("utf-8")
            )
            yield data["room_id"], segment["path"], raw
        for vector in data.get("events", []):
            room_id = vector["room_id"]
            yield room_id, f"rooms/{room_id}/logs/2025-01-01/x_1_2_c.jsonl", vector["line"].encode()


def test_the_vectors_hold_what_the_agreement_needs() -> None:
    segments = list(_vector_segments())
    assert len(segments) >= 40
    verdicts = [ok for r, p, d in segments for ok, _ in prepare_segment(p, d, r).verdicts]
    assert True in verdicts and False in verdicts and None in verdicts
    assert any(prepare_segment(p, d, r).decoded.findings for r, p, d in segments)


def test_every_vector_agrees_in_process() -> None:
    for room_id, path, data in _vector_segments():
        assert_same(in_process(path, data, room_id), prepare_segment(path, data, room_id))


def _through_workers(cases: list[tuple[str, str, bytes]]) -> list[PreparedSegment]:
    async def run() -> list[PreparedSegment]:
        verifier = SegmentVerifier(2)
        try:
            out = []
            for room_id, path, data in cases:
                packed = await verifier.prepare(path, data, room_id)
                assert not isinstance(packed, str), packed
                out.append(unpack(packed, room_id))
            return out
        finally:
            verifier.close()

    return asyncio.run(run())


def test_every_vector_and_hostile_segment_agrees_through_worker_processes() -> None:
    many_bad = b"".join(b"{}\n" for _ in range(MAX_BAD_LINES + 5)) + b"[]\n"
    cases = [
        *_vector_segments(),
        (ROOM, PATH, b"\n".join(GARBAGE_LINES)),
        (ROOM, PATH, many_bad),  # segment-abandoned at line 1,001
        (ROOM, PATH, b""),  # empty-segment
        (ROOM, PATH, b'{"a":1.5}\n{"b":' + b"[" * 40 + b"\n" + b"x" * 300_000),
        # runs of blank lines, skipped at once: the same lines and findings
        (ROOM, PATH, b"\n" * 3_000_000 + b" \r\n" * 1000 + b"{}\n" + b"\t\n" * 5 + b"[]"),
        (ROOM, PATH, (b"\n" * 300 + b"{}\r\n") * (MAX_BAD_LINES + 5)),
        (ROOM, PATH, b"\r\n" * 1_000_000),  # empty-segment
    ]
    fast = _through_workers(cases)
    for (room_id, path, data), got in zip(cases, fast, strict=True):
        assert_same(got, prepare_segment(path, data, room_id))
    abandoned = fast[-6].decoded.findings
    assert abandoned[-1].kind.value == "segment-abandoned" and abandoned[-1].line == 1001
    flood = fast[-3].decoded.findings
    assert [(f.kind.value, f.line) for f in flood] == [
        ("bad-schema", 3_001_001),
        ("bad-schema", 3_001_007),
    ]
    abandoned = fast[-2].decoded.findings
    assert abandoned[-1].kind.value == "segment-abandoned"
    assert abandoned[-1].line == 301 * (MAX_BAD_LINES + 1)
    assert [f.kind.value for f in fast[-1].decoded.findings] == ["empty-segment"]


# -- generated ------------------------------------------------------------------------------


@fuzz_settings(1.0)
@given(hostile_rooms())
def test_hostile_rooms_agree(room: HostileRoom) -> None:
    for path, data in _segments(room):
        assert_same(in_process(path, data, ROOM), prepare_segment(path, data, ROOM))


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),  # beyond the allowed range too
    st.text(max_size=12),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@fuzz_settings(1.0)
@given(st.lists(st.one_of(json_values.map(json.dumps), st.text(max_size=30)), max_size=6))
def test_generated_lines_agree(lines: list[str]) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    assert_same(in_process(PATH, data, ROOM), prepare_segment(PATH, data, ROOM))


def test_a_result_never_unpacks_into_another_room() -> None:
    room_id, path, data = next(
        (r, p, d) for r, p, d in _vector_segments() if prepare_segment(p, d, r).decoded.events
    )
    packed = pack(prepare_segment(path, data, room_id))
    assert unpack(packed, room_id).decoded.events
    with pytest.raises(HandoverError):
        unpack(packed, room_id + "-other")


@pytest.mark.parametrize(
    "line",
    [b"not json", b'{"event_id": 1.5}', b"[1, 2]", b'{"a": 1}', b'{"signature": "x"}'],
)
def test_a_line_no_parser_accepted_never_unpacks(line: bytes) -> None:
    """``unpack`` decodes with the parser's own decoder; anything that is not what the
    worker's parser accepted is refused, never turned into an event."""
    room_id, path, data = next(
        (r, p, d) for r, p, d in _vector_segments() if prepare_segment(p, d, r).decoded.events
    )
    path_, rows, findings = pack(prepare_segment(path, data, room_id))
    number, _, event_hash, ok, why = rows[0]
    with pytest.raises(HandoverError):
        unpack((path_, [(number, line, event_hash, ok, why), *rows[1:]], findings), room_id)
