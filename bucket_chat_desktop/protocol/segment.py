"""Segments: write-once JSONL objects holding one or more events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .event import Event, Malformed, parse_line
from .findings import Finding, Kind
from .ids import SegmentName, parse_segment_path, segment_path

MAX_SEGMENT_BYTES = 64 * 1024 * 1024


class Located(NamedTuple):
    """An event and where it was read: object path and 1-based line number."""

    event: Event
    path: str
    line: int


_new_located = tuple.__new__  # Located(...) without its Python __new__ (hot path)


@dataclass(slots=True)
class DecodedSegment:
    path: str
    events: list[Located] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)  # each event's line, as stored


def encode_segment(events: Sequence[Event]) -> bytes:
    if not events:
        raise ValueError("a segment holds at least one event")
    return b"".join(e.line() for e in events)


def path_for(events: Sequence[Event], client_id: str, attempt: int = 0) -> str:
    """The object name of a segment; ``attempt`` > 0 picks another name after a collision."""
    start = min(e.timestamp_ms for e in events)
    end = max(e.timestamp_ms for e in events)
    room_id = events[0].room_id
    cid = client_id if attempt == 0 else f"{client_id[:56]}-r{attempt}"
    return segment_path(room_id, start, end, cid)


def decode_segment(path: str, data: bytes, room_id: str) -> DecodedSegment:
    """Decode a segment; every bad line becomes a finding, good lines are kept.

    Accepts CRLF line ends, blank lines and a missing final newline. A last line that
    does not parse and has no newline is reported as a truncated write.
    """
    out = DecodedSegment(path)
    name: SegmentName | None = parse_segment_path(path)
    lines = data.split(b"\n")
    last_index = len(lines) - 1
    for index, raw in enumerate(lines):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line or line.isspace():  # = not line.strip(), without copying the line
            continue
        number = index + 1
        parsed = parse_line(line, room_id)
        if isinstance(parsed, Malformed):
            kind, reason = parsed.kind, parsed.reason
            if index == last_index and kind in (Kind.BAD_JSON, Kind.BAD_ENCODING):
                kind = Kind.TRUNCATED
                reason = f"last line is cut off (no newline, does not parse): {parsed.reason}"
            out.findings.append(Finding(kind, reason, path, number, parsed.event_id))
            continue
        out.events.append(_new_located(Located, (parsed, path, number)))
        out.lines.append(line)
    if not out.events and not out.findings:
        out.findings.append(Finding(Kind.EMPTY_SEGMENT, "segment holds no events", path))
    if name is not None and out.events:
        start = min(x.event.timestamp_ms for x in out.events)
        end = max(x.event.timestamp_ms for x in out.events)
        if (start, end) != (name.start_ts, name.end_ts):
            out.findings.append(
                Finding(
                    Kind.SEGMENT_NAME_MISMATCH,
                    f"name says events from {name.start_ts} to {name.end_ts}, "
                    f"but they run from {start} to {end}",
                    path,
                )
            )
    return out
