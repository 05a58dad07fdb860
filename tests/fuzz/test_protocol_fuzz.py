"""Property: decoding and auditing a hostile room never raises, and nothing read is lost
without a word: every line that holds something is an event in the timeline (or among the
invalid ones), a finding at that very line, or an exact copy of an event kept elsewhere
(a segment may hold nothing but such copies: a retried write); an empty segment is
reported."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger, prepare_segment
from bucket_chat_desktop.protocol.event import Malformed, parse_line
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.metadata import parse_metadata

from .conftest import fuzz_settings
from .hostile import (
    GARBAGE_LINES,
    ROOM,
    HostileRoom,
    event_line,
    event_specs,
    hostile_rooms,
    metadata_bytes,
    sign_event,
)


def _segments(room: HostileRoom) -> list[tuple[str, bytes]]:
    out: dict[str, bytes] = {}
    for seg in room.segments:
        data = b"".join(seg.lines)
        if seg.crlf:
            data = data.replace(b"\n", b"\r\n")
        path = f"rooms/{room.room_id}/logs/{seg.name}"
        out[path] = out.get(path, b"") + data  # as write_room appends to a shared name
    return list(out.items())


def _check_accounted(segments: list[tuple[str, bytes]], result: AuditResult) -> None:
    shown = {(a.path, a.line) for a in [*result.timeline, *result.invalid]}
    shown_ids = {a.event.event_id for a in [*result.timeline, *result.invalid]}
    reported = {(f.path, f.line) for f in result.findings}
    reported_ids = {f.event_id for f in result.findings if f.event_id}
    for path, data in segments:
        if not data.strip():  # nothing to show: the segment itself must be reported
            assert path in {f.path for f in result.findings}, f"empty {path} not reported"
        for number, raw in enumerate(data.split(b"\n"), start=1):
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line.strip() or (path, number) in shown or (path, number) in reported:
                continue
            parsed = parse_line(line, ROOM)
            assert not isinstance(parsed, Malformed), f"{path}:{number} bad, not reported"
            # A good event not shown here must be an identical copy of one shown elsewhere,
            # or be named by a finding.
            assert parsed.event_id in shown_ids or parsed.event_id in reported_ids, (
                f"{path}:{number} ({parsed.event_id!r}) is neither shown nor reported"
            )
    for f in result.findings:
        assert f.message and isinstance(f.kind, Kind)


@fuzz_settings(1.0)
@given(hostile_rooms())
def test_hostile_room_audits_without_raising_and_loses_nothing(room: HostileRoom) -> None:
    segments = _segments(room)
    ledger = RoomLedger(ROOM)
    ledger.add_segments(segments)
    result = ledger.audit({"alice@example.com": []})
    _check_accounted(segments, result)
    # The app's ledger keeps no bodies: it must say exactly the same, row for row.
    slim = RoomLedger(ROOM, keep_bodies=False)
    slim.add_segments(segments)
    assert _said(slim.audit({"alice@example.com": []})) == _said(result)
    # Read again a segment at a time, as an engine does (a cheap append where it can):
    # this must not raise, and a slim and a whole ledger must agree at every step.
    again, again_slim = RoomLedger(ROOM), RoomLedger(ROOM, keep_bodies=False)
    for path, data in segments:
        for led in (again, again_slim):
            added = led.add_prepared(prepare_segment(path, data, ROOM))
            if led.try_append(added) is None:
                led.audit(complete=False)
        assert again.result is not None and again_slim.result is not None
        assert _said(again_slim.result) == _said(again.result)


def _said(result: AuditResult) -> tuple[object, ...]:
    """What an audit says of each row, in order, and of the room: for comparing two. The
    copy shown is named by its place (path, line); its signature text is not compared: a
    slim ledger keeps only a digest of it (``RoomLedger.signature_id``)."""
    rows = [
        [(a.event.event_id, a.event.hash, a.state, a.reason, a.path, a.line) for a in items]
        for items in (result.timeline, result.invalid)
    ]
    return (*rows, result.findings, result.pending_gaps, result.authorized, result.segments)


@fuzz_settings(1.0)
@given(metadata_bytes())
def test_hostile_metadata_parses_to_a_value_or_a_finding(data: bytes | None) -> None:
    meta, findings = parse_metadata(data or b"", ROOM, f"rooms/{ROOM}/metadata.json")
    assert meta is not None or findings
    if meta is not None:
        assert meta.room_id == ROOM
        assert meta.name is None or isinstance(meta.name, str)


# -- one plain example per class, as regressions -----------------------------------------------


@fuzz_settings(0.3)
@given(event_specs, st.sampled_from(GARBAGE_LINES))
def test_one_signed_event_among_garbage_is_kept(spec: object, garbage: bytes) -> None:
    line = event_line(sign_event(spec, {}))  # type: ignore[arg-type]
    path = f"rooms/{ROOM}/logs/2025-11-24/messages_0_1_c.jsonl"
    data = garbage + b"\n" + line + garbage
    ledger = RoomLedger(ROOM)
    ledger.add_segment(path, data)
    result = ledger.audit()
    _check_accounted([(path, data)], result)
    if garbage.strip():  # the garbage is reported where it is
        assert any(f.line == 1 for f in result.findings), result.findings
