"""Red team rt101: a row dated ahead is "read" by the clock of the row that arrives, not
by the clock of the read that printed it (``unread.seen_place`` is asked with the arrival's
``now_ms``: ``LivePrinter.arrived``, ``gui/controller._seen_place``).

Alice's ``sync --follow`` prints the room at T. Eve's newest row there is dated T + 50 min
(her word). Bob writes an honest message at T + 10 min, after Alice's read; Alice's
laptop sleeps and reads it at T + 2 h. Without Eve's row it prints with no note (red team
rt97's rule: a row dated after what was read is none, however late it is read after a
sleep). With it, Bob's message prints "sent or delivered long after its date": Eve's
row counted as read at T + 2 h although this device read it at T, when its date was
still 50 minutes away. One hostile row dated ahead makes every honest message written
in the first minutes of a sleep or an outage carry the note against its sender."""

from __future__ import annotations

import time
import uuid

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol import relations
from bucket_chat_desktop.protocol.audit import Assessed, AuditResult, TrustState
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "chat"
MIN = 60_000


def _audited(*chains: tuple[int, str, list[int]]) -> AuditResult:
    from bucket_chat_desktop.protocol.audit import RoomLedger
    from bucket_chat_desktop.protocol.ids import client_id_for
    from bucket_chat_desktop.protocol.segment import encode_segment, path_for

    ledger = RoomLedger(ROOM)
    for seed, sender, dates in chains:
        key = SigningKey(bytes([seed]) * 32)
        events, prev = [], None
        for ts in dates:
            ev = build_event(
                room_id=ROOM,
                sender_id=sender,
                event_type=MESSAGE,
                content={"msgtype": "m.text", "body": f"at {ts}"},
                timestamp_ms=ts,
                unique=str(uuid.uuid4()),
                prev_event_hash=prev,
                signing_key=key,
            )
            events.append(ev)
            prev = ev.hash
        ledger.add_segment(
            path_for(events, client_id_for(sender, bytes(key.verify_key))), encode_segment(events)
        )
    return ledger.audit()


def _bobs(ts: int) -> Assessed:
    ev = build_event(
        room_id=ROOM,
        sender_id="bob@example.com",
        event_type=MESSAGE,
        content={"msgtype": "m.text", "body": "written just after Alice read the room"},
        timestamp_ms=ts,
        unique=str(uuid.uuid4()),
        prev_event_hash=None,
        signing_key=SigningKey(bytes([3]) * 32),
    )
    return Assessed(ev, TrustState.VERIFIED, "", "b", 1)


def _follow(read: AuditResult, honest: Assessed, now_ms: int) -> list[str]:
    """``sync --follow`` prints ``read`` now (its opening), then ``honest`` arrives at
    ``now_ms``: the lines that say "long after its date"."""
    from bucket_chat_desktop.cli.live import LivePrinter

    said: list[str] = []
    printer = LivePrinter(said.append)
    printer.opening(read, relations.build(ROOM, list(read.timeline)), None)
    rows = [*read.timeline, honest]
    printer.arrived([honest], rows, relations.build(ROOM, rows), echo_own=True, now_ms=now_ms)
    return [x for x in said if "long after its date" in x]


def test_a_row_dated_ahead_when_read_makes_no_honest_message_late_after_a_sleep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "100000")
    t = int(time.time() * 1000)  # Alice's terminal reads the room now
    honest = _bobs(t + 10 * MIN)  # Bob writes ten minutes later, on time
    woke = t + 120 * MIN  # Alice's laptop wakes two hours later and reads it
    plain = _audited((1, "alice@example.com", [t - 30 * MIN]))
    assert _follow(plain, honest, woke) == []  # control: no note (rt97's rule)
    eve = _audited(
        (1, "alice@example.com", [t - 30 * MIN]),
        (2, "eve@example.com", [t - 40 * MIN, t + 50 * MIN]),  # her newest dated ahead
    )
    assert _follow(eve, honest, woke) == [], "Eve's row dated ahead made Bob's message late"


def test_a_re_audit_printed_after_the_wake_does_not_make_the_row_dated_ahead_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Flake101: ``sync --follow`` hands every ``RoomLoaded`` to ``arrived``, also one
    that read nothing from storage (a re-audit, a pass's final audit) told after the
    wake-up: by that delivery's clock, Eve's row counted as read and Bob's honest message
    that came next was "long after its date". The engine's clock of the read
    (``RoomLoaded.read_ms``) is what the next rows are weighed by."""
    from bucket_chat_desktop.cli.live import LivePrinter

    monkeypatch.setenv("COLUMNS", "100000")
    t = int(time.time() * 1000)
    woke = t + 120 * MIN
    eve = _audited(
        (1, "alice@example.com", [t - 30 * MIN]),
        (2, "eve@example.com", [t - 40 * MIN, t + 50 * MIN]),
    )
    said: list[str] = []
    printer = LivePrinter(said.append)
    rel = relations.build(ROOM, list(eve.timeline))
    printer.opening(eve, rel, None, now_ms=t)
    # the rows held, audited again and told at the wake-up: read at t
    printer.arrived(eve.timeline, eve.timeline, rel, echo_own=True, now_ms=woke, read_ms=t)
    honest = _bobs(t + 10 * MIN)
    rows = [*eve.timeline, honest]
    printer.arrived(
        [honest], rows, relations.build(ROOM, rows), echo_own=True, now_ms=woke, read_ms=woke
    )
    assert [x for x in said if "long after its date" in x] == []
    assert any("written just after Alice read the room" in x for x in said), said
