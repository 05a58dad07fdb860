"""Segments: write-once JSONL objects holding one or more events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .event import Event, Malformed, parse_line
from .findings import Finding, Kind
from .ids import SegmentName, parse_segment_path, segment_path

MAX_SEGMENT_BYTES = 64 * 1024 * 1024
# Bad lines one segment may report one by one; past them the rest of the segment is not
# read (a 64 MiB object of tiny junk lines was 21 million findings: minutes and gigabytes).
MAX_BAD_LINES = 1_000


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
    """The object name of a segment; ``attempt`` > 0 picks another name after a collision:
    ``<client id>-r<attempt>``, the client id cut to 56 characters, or to fewer once the
    attempt has more than six digits, so that the whole stays within 64 (PROTOCOL.md
    section 2.2). Attempts grow without bound while someone takes names (each delivery
    try takes 50 more: ``publisher.NAMES_PER_TRY``); a fixed cut of 56 made the name of
    attempt 1,000,000 one a writer may not write (red team rt57)."""
    start = min(e.timestamp_ms for e in events)
    end = max(e.timestamp_ms for e in events)
    room_id = events[0].room_id
    if attempt == 0:
        cid = client_id
    else:
        suffix = f"-r{attempt}"
        cid = f"{client_id[: min(56, 64 - len(suffix))]}{suffix}"
    return segment_path(room_id, start, end, cid)


def newness(path: str) -> str:
    """How new a segment is by its name, for reading the newest first: the name without
    its ``.jsonl``. A writer's second segment of one millisecond is ``<client>-r1.jsonl``
    (``path_for``); as whole names it sorted *before* the first, ``<client>.jsonl`` ('-'
    before '.'), and a room's first screen could show the messages on both sides of it
    without it. Without the suffix, ``<client>`` comes before ``<client>-r1``, and that
    before ``-r2`` (a tenth attempt in one millisecond, ``-r10``, would sort before
    ``-r2``). A slice, not a parse: a day folder may hold 200,000 names, sorted on the
    loop (parsing each name took 0.5 s there). Names are anyone's: this orders reading,
    never a verdict."""
    return path[:-6] if path.endswith(".jsonl") else path


# The first look at a run of blank lines: most are one or two (a trailing newline, a
# blank line between events); a long one is looked at in ever larger chunks.
_FIRST_LOOK = 256
_LONGEST_LOOK = 1 << 22


def _blank_run_end(data: bytes, start: int) -> int:
    """Where the run of ASCII whitespace at ``start`` ends (``len(data)`` at the end):
    in C, chunk by chunk, each twice the last. A 64 MiB object of newlines was
    67 million lines skipped one by one (~30 s of a worker, on every device's first
    read); this way it takes about 0.1 s."""
    size = _FIRST_LOOK
    end = len(data)
    while start < end:
        chunk = data[start : start + size]
        rest = chunk.lstrip()  # strips what ``bytes.isspace`` counts as whitespace
        if rest:
            return start + len(chunk) - len(rest)
        start += len(chunk)
        size = min(size * 2, _LONGEST_LOOK)
    return end


def _pieces(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """``(index, piece, is_last)`` of ``data`` split on ``\n``, one at a time: a reader
    that stops early (``MAX_BAD_LINES``) never splits the rest of a 64 MiB object.

    Blank pieces (empty or only ASCII whitespace, a ``\r`` too: skipped silently,
    PROTOCOL.md section 3) are not yielded, and a run of them is skipped at once: they
    are no bad lines (no cap stops them), so one by one a run of millions was the
    slowest object to read. They still count: the indexes of the pieces after them are
    as if split one by one."""
    start = index = 0
    find = data.find
    while True:
        end = find(b"\n", start)
        piece = data[start:] if end < 0 else data[start:end]
        if not piece or piece.isspace():
            if end < 0:
                return
            run = data.rfind(b"\n", end, _blank_run_end(data, end))  # >= end
            index += data.count(b"\n", start, run + 1)  # the blank pieces up to it
            start = run + 1
            continue
        if end < 0:
            yield index, piece, True
            return
        yield index, piece, False
        start, index = end + 1, index + 1


def decode_segment(path: str, data: bytes, room_id: str) -> DecodedSegment:
    """Decode a segment; every bad line becomes a finding, good lines are kept — up to
    ``MAX_BAD_LINES`` bad lines: at the next one the rest is not read (one
    ``segment-abandoned`` finding at that line).

    Accepts CRLF line ends, blank lines and a missing final newline. A last line that
    does not parse and has no newline is reported as a truncated write.
    """
    out = DecodedSegment(path)
    name: SegmentName | None = parse_segment_path(path)
    bad = 0
    for index, raw, last in _pieces(data):
        line = raw[:-1] if raw.endswith(b"\r") else raw  # never blank (``_pieces``)
        number = index + 1
        parsed = parse_line(line, room_id)
        if isinstance(parsed, Malformed):
            if bad == MAX_BAD_LINES:
                out.findings.append(
                    Finding(
                        Kind.SEGMENT_ABANDONED,
                        f"more than {MAX_BAD_LINES:,} bad lines: not read from here on",
                        path,
                        number,
                    )
                )
                break
            bad += 1
            kind, reason = parsed.kind, parsed.reason
            if last and kind in (Kind.BAD_JSON, Kind.BAD_ENCODING):
                kind = Kind.TRUNCATED
                reason = f"last line is cut off (no newline, does not parse): {parsed.reason}"
            out.findings.append(Finding(kind, reason, path, number, parsed.event_id))
            continue
        out.events.append(_new_located(Located, (parsed, path, number)))
        out.lines.append(line)
    if not out.events and not out.findings:
        what = "segment holds no events"
        if data:  # a flood of blank lines is one notice, read in a blink (``_pieces``)
            what += f": {len(data):,} bytes of blank lines only"
        out.findings.append(Finding(Kind.EMPTY_SEGMENT, what, path))
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
