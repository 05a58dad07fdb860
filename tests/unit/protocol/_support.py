"""Small builders shared by the protocol tests: fixed keys, fixed uuids, signed chains."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import (
    WITNESS_FIELD,
    AuditResult,
    RoomLedger,
    TrustState,
    member_content,
    witness_entries,
)
from bucket_chat_desktop.protocol.canonical import canonical_json
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.findings import Finding
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.relations import relation_content
from bucket_chat_desktop.protocol.room_state import DisplayNames
from bucket_chat_desktop.protocol.segment import decode_segment, encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event, public_key_text

ROOM = "room-1"
T0 = 1757851245000  # 2025-09-14T12:00:45.000Z

_counter = itertools.count(1)


def next_uuid() -> str:
    n = next(_counter)
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


class Device:
    """One device of one user, writing one hash chain."""

    def __init__(self, sender_id: str, seed: int, room_id: str = ROOM) -> None:
        self.sender_id = sender_id
        self.key = key(seed)
        self.room_id = room_id
        self.prev: str | None = None

    @property
    def public(self) -> str:
        return public_key_text(self.key)

    @property
    def client_id(self) -> str:
        return client_id_for(self.sender_id, bytes(self.key.verify_key))

    def emit(
        self,
        ts: int,
        event_type: str,
        content: Mapping[str, Any],
        *,
        prev: str | bool | None = True,
        parent: str | None = None,
        sender_id: str | None = None,
        witness: Mapping[str, str] | None = None,
    ) -> Event:
        """Sign the next event; ``prev=True`` chains it to this device's last event."""
        ev = build_event(
            room_id=self.room_id,
            sender_id=sender_id or self.sender_id,
            event_type=event_type,
            content=content,
            timestamp_ms=ts,
            unique=next_uuid(),
            prev_event_hash=self.prev if prev is True else (prev or None),
            signing_key=self.key,
            parent_event_id=parent,
            witness=witness,
        )
        self.prev = ev.hash
        return ev

    def join(self, ts: int, *, prev: str | bool | None = None, **content: Any) -> Event:
        """A join; by default a new chain root (``prev_event_hash`` null)."""
        return self.emit(ts, MEMBER, {"membership": "join", **content}, prev=prev)

    def say(self, ts: int, body: str, **kw: Any) -> Event:
        return self.emit(ts, MESSAGE, {"body": body, "msgtype": "m.text"}, **kw)


def alice(room_id: str = ROOM) -> Device:
    return Device("alice@example.com", 1, room_id)


def bob(room_id: str = ROOM) -> Device:
    return Device("bob@example.com", 2, room_id)


def alice_laptop(room_id: str = ROOM) -> Device:
    return Device("alice@example.com", 3, room_id)


def seg(events: Sequence[Event], client_id: str = "c", attempt: int = 0) -> tuple[str, bytes]:
    return path_for(events, client_id, attempt), encode_segment(events)


def named_path(start: int, end: int, client_id: str = "c", room_id: str = ROOM) -> str:
    from bucket_chat_desktop.protocol.ids import segment_path

    return segment_path(room_id, start, end, client_id)


def ledger(*segments: tuple[str, bytes], room_id: str = ROOM) -> RoomLedger:
    led = RoomLedger(room_id)
    for path, data in segments:
        led.add_segment(path, data)
    return led


def audit(
    *segments: tuple[str, bytes],
    room_id: str = ROOM,
    pinned: Mapping[str, Iterable[str]] | None = None,
) -> AuditResult:
    result = ledger(*segments, room_id=room_id).audit(pinned)
    # Every audit of the protocol tests also runs on a ledger that keeps no bodies (the
    # app's): its verdicts and findings must be the same, event for event.
    slim = RoomLedger(room_id, keep_bodies=False)
    for path, data in segments:
        slim.add_segment(path, data)
    slim_result = slim.audit(pinned)
    assert verdicts(slim_result) == verdicts(result)
    check_rows(result, segments, room_id, slim=False)
    check_rows(slim_result, segments, room_id, slim=True)
    return result


def check_rows(
    result: AuditResult, segments: Iterable[tuple[str, bytes]], room_id: str, *, slim: bool
) -> None:
    """Each row's event is the one read at its place (without its canonical bytes; a slim
    ledger's also without a message's body and raw fields): the ledger keeps an event's
    fields in its own form and must give back what was read; a slim one keeps no signature
    text, only a digest of it)."""
    read: dict[tuple[str, int], Event] = {}
    for path, data in segments:
        for loc in decode_segment(path, data, room_id).events:
            read[(loc.path, loc.line)] = loc.event._replace(canonical=b"")
    rows = [*result.timeline, *result.invalid]
    for a in rows:
        ev = read[(a.path, a.line)]
        if slim:
            # of a witness the entries a reader reads, and no witness if none is
            read_entries = witness_entries(ev.raw.get(WITNESS_FIELD), ev.sender_key)
            assert a.event.raw in ({}, {WITNESS_FIELD: dict(read_entries)})
            if a.state is not TrustState.INVALID:  # (a line refused for its signature: none)
                assert (a.event.raw == {}) == (not read_entries)
            # a member event's content as the rules and the roster read it, a relation's
            # the fields its rules read, a file message's msgtype (an edit of one is
            # refused); nothing of a line refused for its signature
            assert a.event.content in (
                {},
                member_content(ev.content),
                relation_content(ev.type, ev.content),
            )
            assert a.event.signature == ""  # only a digest is kept (``signature_id``)
            assert a.event._replace(raw=ev.raw, content=ev.content, signature=ev.signature) == ev
        else:
            assert a.event == ev
    # A result's timeline reads like the list it stands for.
    shown = list(result.timeline)
    assert result.timeline == shown and len(result.timeline) == len(shown)
    assert [result.timeline[i] for i in range(-len(shown), len(shown))] == shown + shown
    assert result.timeline[1:-1] == shown[1:-1] and result.timeline[::-1] == shown[::-1]
    assert result.timeline[:2] + result.timeline[2:] == shown == shown[:1] + result.timeline[1:]
    fast, slow = DisplayNames(), DisplayNames()  # the Timeline's own pass: the same
    fast.update(result.timeline)
    slow.update(shown)
    senders = sorted({a.event.sender_id for a in shown})
    assert [(fast.shown(u), fast.warning(u)) for u in senders] == [
        (slow.shown(u), slow.warning(u)) for u in senders
    ]
    counts = dict.fromkeys(TrustState, 0)  # counted from the verdict numbers: the same
    for a in shown:
        counts[a.state] += 1
    assert result.counts == {**counts, TrustState.INVALID: len(result.invalid)}


def verdicts(result: AuditResult) -> tuple[object, ...]:
    """What an audit says, without the events' bodies: for comparing two audits."""
    return (
        [
            (a.event.event_id, a.event.hash, a.state, a.reason, a.path, a.line)
            for a in result.timeline
        ],
        [
            (a.event.event_id, a.event.hash, a.state, a.reason, a.path, a.line)
            for a in result.invalid
        ],
        result.findings,
        result.segments,
        result.pending_gaps,
        result.authorized,
    )


def kinds(findings: Iterable[Finding]) -> list[str]:
    return sorted(f.kind.value for f in findings)


def where(findings: Iterable[Finding]) -> list[tuple[str, str | None, int | None]]:
    return sorted(((f.kind.value, f.path, f.line) for f in findings), key=repr)


def states(result: AuditResult) -> list[tuple[str, str]]:
    return [(a.event.event_id, a.state.value) for a in result.timeline]


def line_of(obj: Mapping[str, Any]) -> bytes:
    """Our stored form of any mapping (canonical JSON, signature included) plus newline."""
    return canonical_json(dict(obj)) + b"\n"


def raw_line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
