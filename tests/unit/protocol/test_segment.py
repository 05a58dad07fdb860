"""Segments: encoding, object names and lenient, never-raising decoding."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from bucket_chat_desktop.protocol import segment
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.event import Event
from bucket_chat_desktop.protocol.findings import Finding, Kind
from bucket_chat_desktop.protocol.ids import CLIENT_ID_RE, parse_segment_path
from bucket_chat_desktop.protocol.segment import (
    MAX_BAD_LINES,
    MAX_SEGMENT_BYTES,
    decode_segment,
    encode_segment,
    newness,
    path_for,
)

from ._support import ROOM, T0, alice, bob, kinds, named_path


@pytest.fixture
def three() -> list[Event]:
    a = alice()
    return [a.join(T0), a.say(T0 + 2000, "one"), a.say(T0 + 1000, "earlier stamp")]


def test_encode_segment_is_lines_of_events(three: list[Event]) -> None:
    data = encode_segment(three)
    assert data == b"".join(e.line() for e in three)
    assert data.count(b"\n") == 3 and data.endswith(b"\n")


def test_encode_segment_needs_an_event() -> None:
    with pytest.raises(ValueError):
        encode_segment([])


def test_path_for_uses_min_and_max_timestamps(three: list[Event]) -> None:
    path = path_for(three, "alice-0123abcd")
    assert path == (f"rooms/{ROOM}/logs/2025-09-14/messages_{T0}_{T0 + 2000}_alice-0123abcd.jsonl")


def test_path_for_date_folder_is_utc_date_of_start() -> None:
    a = alice()
    late = [a.join(1757894399000), a.say(1757894401000, "after midnight UTC")]
    name = parse_segment_path(path_for(late, "c"))
    assert name is not None and name.date == "2025-09-14"


def test_path_for_another_name_after_a_collision(three: list[Event]) -> None:
    assert path_for(three, "alice-0123abcd", 1).endswith("_alice-0123abcd-r1.jsonl")
    long_id = "x" * 64
    for attempt in (1, 99, 99999):
        name = parse_segment_path(path_for(three, long_id, attempt))
        assert name is not None and CLIENT_ID_RE.fullmatch(name.client_id)
        assert name.client_id.endswith(f"-r{attempt}")


def test_path_for_keeps_names_valid_however_many_names_were_taken(three: list[Event]) -> None:
    """Red team rt57: each try at delivering a segment may now take 50 more names, so
    ``n`` of ``-r<n>`` grows without bound while someone takes them. With the client id
    always cut to 56, ``n`` of seven digits made a 65-character client id, which a writer
    may not write (``path_for`` raised). The cut shrinks as ``n`` grows: 56 characters up
    to six digits (every name as before), 62 minus the digits past that."""
    ours = "alice-0123abcd"
    for client_id in (ours, "x" * 56, "x" * 64):
        for attempt in (999_999, 10**6, 10**9, 10**15, 10**40):
            path = path_for(three, client_id, attempt)
            name = parse_segment_path(path)  # what readers accept
            assert name is not None, path
            assert CLIENT_ID_RE.fullmatch(name.client_id), name.client_id  # what writers may write
            assert name.client_id.endswith(f"-r{attempt}")
            kept = 64 - len(f"-r{attempt}")
            assert name.client_id.startswith(client_id[: min(56, kept)])
    assert path_for(three, "x" * 64, 999_999).endswith(f"_{'x' * 56}-r999999.jsonl")
    assert path_for(three, ours, 10**15).endswith(f"_{ours}-r{10**15}.jsonl")


def test_round_trip(three: list[Event]) -> None:
    path = path_for(three, "c")
    decoded = decode_segment(path, encode_segment(three), ROOM)
    assert decoded.path == path
    assert decoded.findings == []
    assert [x.event.event_id for x in decoded.events] == [e.event_id for e in three]
    assert [x.line for x in decoded.events] == [1, 2, 3]
    assert {x.path for x in decoded.events} == {path}
    assert [x.event.canonical for x in decoded.events] == [e.canonical for e in three]


def _lines(events: list[Event]) -> list[bytes]:
    return [e.line().rstrip(b"\n") for e in events]


def test_crlf_blank_lines_and_no_final_newline(three: list[Event]) -> None:
    a, b, c = _lines(three)
    data = b"\r\n" + a + b"\r\n\r\n   \n" + b + b"\n\t\n" + c
    decoded = decode_segment(path_for(three, "c"), data, ROOM)
    assert decoded.findings == []
    assert [x.line for x in decoded.events] == [2, 5, 7]


def test_truncated_last_line(three: list[Event]) -> None:
    a, b, c = _lines(three)
    path = named_path(T0, T0 + 2000)
    decoded = decode_segment(path, a + b"\n" + b + b"\n" + c[:40], ROOM)
    assert [(f.kind, f.path, f.line) for f in decoded.findings] == [(Kind.TRUNCATED, path, 3)]
    assert len(decoded.events) == 2


def test_truncated_inside_a_multibyte_character() -> None:
    ev = alice().say(T0, "x")
    cut = ev.line().rstrip(b"\n")[:-3] + b"\xc3"
    decoded = decode_segment(named_path(T0, T0), ev.line() + cut, ROOM)
    assert kinds(decoded.findings) == ["truncated"]


def test_bad_last_line_with_newline_is_not_truncation(three: list[Event]) -> None:
    a, b, c = _lines(three)
    decoded = decode_segment(
        named_path(T0, T0 + 2000), a + b"\n" + b + b"\n" + c[:40] + b"\n", ROOM
    )
    assert [(f.kind, f.line) for f in decoded.findings] == [(Kind.BAD_JSON, 3)]


def test_bad_middle_line_is_bad_json(three: list[Event]) -> None:
    a, b, c = _lines(three)
    decoded = decode_segment(path_for(three, "c"), a + b"\n{oops\n" + b + b"\n" + c, ROOM)
    assert [(f.kind, f.line) for f in decoded.findings] == [(Kind.BAD_JSON, 2)]
    assert [x.line for x in decoded.events] == [1, 3, 4]


def test_last_line_float_without_newline_stays_a_float() -> None:
    ev = alice().say(T0, "x")
    decoded = decode_segment(named_path(T0, T0), ev.line() + b'{"a":1.5}', ROOM)
    assert kinds(decoded.findings) == ["float-not-allowed"]


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n\r\n", b"  \n\t\n"])
def test_empty_segment(data: bytes) -> None:
    path = named_path(T0, T0)
    decoded = decode_segment(path, data, ROOM)
    assert [(f.kind, f.path, f.line) for f in decoded.findings] == [
        (Kind.EMPTY_SEGMENT, path, None)
    ]
    assert decoded.findings[0].severity.value == "notice"


def test_only_bad_lines_is_not_empty() -> None:
    decoded = decode_segment(named_path(T0, T0), b"x\n", ROOM)
    assert kinds(decoded.findings) == ["bad-json"]


@pytest.mark.parametrize(("start", "end"), [(T0 - 1, T0 + 2000), (T0, T0 + 2001), (T0 + 5, T0)])
def test_name_that_lies_about_its_timestamps(
    three: list[Event],
    start: int,
    end: int,
) -> None:
    path = f"rooms/{ROOM}/logs/2025-09-14/messages_{start}_{end}_c.jsonl"
    decoded = decode_segment(path, encode_segment(three), ROOM)
    assert [(f.kind, f.path, f.line) for f in decoded.findings] == [
        (Kind.SEGMENT_NAME_MISMATCH, path, None)
    ]
    assert len(decoded.events) == 3  # the events are still used
    assert str(T0) in decoded.findings[0].message


def test_name_checked_against_good_events_only(three: list[Event]) -> None:
    stray = bob(room_id="other").join(T0 - 50_000).line()
    data = stray + encode_segment(three)
    decoded = decode_segment(path_for(three, "c"), data, ROOM)
    assert kinds(decoded.findings) == ["wrong-room"]


def test_unparseable_path_gets_no_name_check(three: list[Event]) -> None:
    decoded = decode_segment("somewhere/else.jsonl", encode_segment(three), ROOM)
    assert decoded.findings == []
    assert len(decoded.events) == 3


def test_a_segment_of_junk_lines_is_abandoned_after_the_limit(three: list[Event]) -> None:
    """A 64 MiB object of tiny junk lines (``{}`` 21 million times) was 21 million
    findings: minutes and gigabytes for every reader. Past MAX_BAD_LINES the rest of the
    segment is not read; what came before is kept."""
    path = path_for(three[:1], "c")  # the name of what is read: no name mismatch
    good = _lines(three)
    data = b"\n".join([good[0], *[b"{}"] * (MAX_BAD_LINES + 5), good[1]]) + b"\n"
    decoded = decode_segment(path, data, ROOM)
    assert [loc.event for loc in decoded.events] == [three[0]]
    assert len(decoded.findings) == MAX_BAD_LINES + 1  # each bad line, then one for the rest
    last = decoded.findings[-1]
    assert last.kind is Kind.SEGMENT_ABANDONED and last.line == MAX_BAD_LINES + 2
    ledger = RoomLedger(ROOM)
    ledger.add_segment(path, data)
    assert ledger.has_unreadable  # the history is not complete: no final verdict


def test_newness_orders_a_writers_segments_of_one_millisecond_as_written() -> None:
    """``path_for`` names a writer's second segment of one millisecond ``<client>-r1``,
    which as a whole name sorts before the first ('-' before '.'): read newest first by
    name, a room's first screen could hold the messages around it and not it."""

    def name(start: int, end: int, client: str) -> str:
        return f"rooms/r/logs/2025-09-14/messages_{start}_{end}_{client}.jsonl"

    first, second, third = (
        name(5000, 5000, c) for c in ("alice-1a2b", "alice-1a2b-r1", "alice-1a2b-r2")
    )
    assert sorted([first, second, third]) == [second, third, first]  # the names' order
    assert sorted([third, first, second], key=newness) == [first, second, third]
    # Otherwise the order of the names: by first time, last time, writer.
    others = [name(5000, 5001, "alice-1a2b"), name(5001, 5001, "bob-9f8e"), name(4999, 5003, "c")]
    assert sorted([*others, first], key=newness) == sorted([*others, first])
    # What is no segment's name keeps its place among the names as text.
    litter = "rooms/r/logs/2025-09-14/notes.txt"
    assert sorted([litter, second, first], key=newness) == [first, second, litter]


# -- blank lines ------------------------------------------------------------------------


def _one_by_one(path: str, data: bytes) -> tuple[list[tuple[int, str]], list[Finding]]:
    """What ``decode_segment`` says, as it said it splitting every line and skipping each
    blank one by itself (PROTOCOL.md section 3): the lines read and the findings."""
    out: list[tuple[int, str]] = []
    bad = 0
    findings: list[Finding] = []
    pieces = data.split(b"\n")
    for index, raw in enumerate(pieces):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip():
            continue
        decoded = decode_segment(path, line + (b"\n" if index < len(pieces) - 1 else b""), ROOM)
        if decoded.events:
            out.append((index + 1, decoded.events[0].event.event_id))
            continue
        if bad == MAX_BAD_LINES:
            findings.append(
                Finding(
                    Kind.SEGMENT_ABANDONED,
                    f"more than {MAX_BAD_LINES:,} bad lines: not read from here on",
                    path,
                    index + 1,
                )
            )
            break
        bad += 1
        (f,) = decoded.findings
        findings.append(replace(f, line=index + 1))
    return out, findings


BLANKS = [b"", b"\r", b" ", b"\t", b" \r", b"\x0b\x0c", b"   \t  "]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("looks", [(1, 1), (1, 4), (256, 1 << 22)])
def test_blank_lines_skipped_in_runs_count_as_one_by_one(
    three: list[Event], seed: int, looks: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of blank lines are skipped at once (``segment._pieces``), in chunks that grow:
    every line read, every finding and its line number are what a reader splitting and
    skipping line by line finds, wherever a run starts and ends and however the chunks
    fall (the smallest looks cut every run)."""
    monkeypatch.setattr(segment, "_FIRST_LOOK", looks[0])
    monkeypatch.setattr(segment, "_LONGEST_LOOK", looks[1])
    rng = random.Random(seed)
    good = _lines(three)
    junk = [b"{}", b"x", b"  {oops", b'{"a":1.5}', b"\xff"]
    parts: list[bytes] = []
    for _ in range(rng.randrange(1, 30)):
        roll = rng.random()
        if roll < 0.5:
            parts.extend(rng.choice(BLANKS) for _ in range(rng.choice([1, 2, 3, 50, 700])))
        elif roll < 0.8:
            parts.append(rng.choice(good) + rng.choice([b"", b"\r"]))
        else:
            parts.append(rng.choice(junk))
    data = b"\n".join(parts) + rng.choice([b"", b"\n", b"\r\n", b" ", b"\n\n \t"])
    path = "somewhere/else.jsonl"  # no name check
    decoded = decode_segment(path, data, ROOM)
    lines, findings = _one_by_one(path, data)
    assert [(x.line, x.event.event_id) for x in decoded.events] == lines
    if not lines and not findings:
        assert kinds(decoded.findings) == ["empty-segment"]
    else:
        assert decoded.findings == findings


def test_a_run_of_blank_lines_is_read_as_many_lines(three: list[Event]) -> None:
    a, b, c = _lines(three)
    run = b"\n" * 5_000_000 + b" \r\n\t\n" * 100_000
    decoded = decode_segment(path_for(three, "c"), a + b"\n" + run + b + b"\r\n" + run + c, ROOM)
    assert decoded.findings == []
    assert [x.line for x in decoded.events] == [1, 5_200_002, 10_400_003]


T = TypeVar("T")


class _TooMuchWork(Exception):
    pass


def _lines_run(call: Callable[[], T], budget: int) -> tuple[T, int]:
    """``call()``'s result and how many lines of Python it ran (every frame, traced): a
    count of work that does not depend on the machine's speed or load. Past ``budget``
    lines it stops with `_TooMuchWork` (line-by-line work on millions of lines would
    take the traced run minutes)."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count > budget:
                raise _TooMuchWork(f"more than {budget:,} lines of Python")
        return tracer

    sys.settrace(tracer)
    try:
        result = call()
    finally:
        sys.settrace(None)
    return result, count


@pytest.mark.parametrize("blank", [b"\n", b"\r\n", b" \t\n"])
def test_an_object_of_blank_lines_is_read_at_once(blank: bytes) -> None:
    """64 MiB of blank lines (no bad lines: the cap never stopped them) was ~30 s of a
    worker's time on each device's first read, skipped line by line; 64 MiB of ``{}``
    lines took 5 ms (abandoned after MAX_BAD_LINES). It is one notice now, at once: the
    Python it runs does not grow with the lines (counted, not timed: 64 MiB runs a few
    times the lines 64 KiB does, not a thousand times; millions of them, skipped one by
    one, would be millions of lines run)."""
    data = blank * (MAX_SEGMENT_BYTES // len(blank))
    small = blank * (64 * 1024 // len(blank))
    path = named_path(T0, T0)
    _, few = _lines_run(lambda: decode_segment(path, small, ROOM), budget=100_000)
    decoded, many = _lines_run(lambda: decode_segment(path, data, ROOM), budget=100_000)
    assert many < 4 * few, f"{many:,} lines of Python for 64 MiB, {few:,} for 64 KiB"
    assert [(f.kind, f.path, f.line) for f in decoded.findings] == [
        (Kind.EMPTY_SEGMENT, path, None)
    ]
    assert "blank lines" in decoded.findings[0].message
    # and events after such a flood are read, at their lines
    ev = alice().join(T0)
    decoded = decode_segment(path, data + ev.line(), ROOM)
    assert [(x.line, x.event) for x in decoded.events] == [(data.count(b"\n") + 1, ev)]


def test_blank_lines_between_bad_lines_still_count_toward_their_line_numbers() -> None:
    data = (b"\n" * 1000 + b"{}\n") * (MAX_BAD_LINES + 5)
    decoded = decode_segment(named_path(T0, T0), data, ROOM)
    assert len(decoded.findings) == MAX_BAD_LINES + 1
    assert [f.line for f in decoded.findings[:2]] == [1001, 2002]
    last = decoded.findings[-1]
    assert last.kind is Kind.SEGMENT_ABANDONED and last.line == 1001 * (MAX_BAD_LINES + 1)
