"""Red team rt98: ``sync --follow``'s late notes count a row dated ahead of this
device's clock as "read" (``LivePrinter.latest``), which the app does not
(``controller._seen_place``: a row dated ahead is its writer's word). One hostile row
dated a year ahead makes every honest message that arrives some minutes after its date
(after a sleep, an outage) say "sent or delivered long after its date" in the
terminal, while the app's row says nothing (red team rt97's rule)."""

from __future__ import annotations

import uuid

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol import relations
from bucket_chat_desktop.protocol.audit import Assessed, AuditResult, TrustState
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "chat"
MIN = 60_000
DAY = 24 * 3600 * 1000
T = 1_780_000_000_000  # "now" when the honest message comes in


def _row(seed: int, sender: str, body: str, ts: int, line: int) -> Assessed:
    ev = build_event(
        room_id=ROOM,
        sender_id=sender,
        event_type=MESSAGE,
        content={"msgtype": "m.text", "body": body},
        timestamp_ms=ts,
        unique=str(uuid.uuid4()),
        prev_event_hash=None,
        signing_key=SigningKey(bytes([seed]) * 32),
    )
    return Assessed(ev, TrustState.VERIFIED, "", f"p{seed}", line)


def test_a_row_dated_ahead_makes_no_honest_message_late_in_follow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "100000")
    from bucket_chat_desktop.cli.live import LivePrinter

    first = _row(1, "alice@example.com", "lunch at noon?", T - 120 * MIN, 1)
    ahead = _row(2, "mallory@example.com", "from the future", T + 365 * DAY, 1)
    honest = _row(1, "alice@example.com", "ok, see you there", T - 90 * MIN, 2)
    rows = [first, ahead, honest]
    rel = relations.build(ROOM, rows)

    control: list[str] = []
    plain = LivePrinter(control.append)
    plain.arrived([first], rows, rel, echo_own=True, now_ms=T - 119 * MIN)
    plain.arrived([honest], rows, rel, echo_own=True, now_ms=T)  # after a sleep
    assert not [x for x in control if "long after its date" in x], control

    said: list[str] = []
    printer = LivePrinter(said.append)
    printer.arrived([first], rows, rel, echo_own=True, now_ms=T - 119 * MIN)
    printer.arrived([ahead], rows, rel, echo_own=True, now_ms=T - 100 * MIN)
    printer.arrived([honest], rows, rel, echo_own=True, now_ms=T)
    # the same honest message, the only difference a hostile row dated a year ahead
    assert not [x for x in said if "long after its date" in x], said


def test_an_opening_whose_newest_row_is_dated_ahead_makes_no_honest_message_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same through ``opening`` (``sync --follow`` started on a room whose newest
    row is a hostile one dated ahead): ``latest`` is that row's place."""
    monkeypatch.setenv("COLUMNS", "100000")
    from bucket_chat_desktop.cli.live import LivePrinter
    from bucket_chat_desktop.protocol.audit import RoomLedger
    from bucket_chat_desktop.protocol.ids import client_id_for
    from bucket_chat_desktop.protocol.segment import encode_segment, path_for

    ledger = RoomLedger(ROOM)
    for seed, sender, body, ts in [
        (1, "alice@example.com", "lunch at noon?", T - 120 * MIN),
        (2, "mallory@example.com", "from the future", T + 365 * DAY),
    ]:
        key = SigningKey(bytes([seed]) * 32)
        ev = build_event(
            room_id=ROOM,
            sender_id=sender,
            event_type=MESSAGE,
            content={"msgtype": "m.text", "body": body},
            timestamp_ms=ts,
            unique=str(uuid.uuid4()),
            prev_event_hash=None,
            signing_key=key,
        )
        path = path_for([ev], client_id_for(sender, bytes(key.verify_key)))
        ledger.add_segment(path, encode_segment([ev]))
    result = ledger.audit()
    honest = _row(3, "bob@example.com", "ok, see you there", T - 90 * MIN, 1)
    rows = [*result.timeline, honest]
    said: list[str] = []
    printer = LivePrinter(said.append)
    printer.opening(result, relations.build(ROOM, list(result.timeline)), None)
    printer.arrived([honest], rows, relations.build(ROOM, rows), echo_own=True, now_ms=T)
    assert not [x for x in said if "long after its date" in x], said


def _audited(*chains: tuple[int, str, list[int]]) -> AuditResult:
    """Each chain (key seed, sender, [dates]) signed and stored as one segment, audited:
    rows placed as the app places them (a row never before its chain predecessor)."""
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


def _follow(read: AuditResult, honest: Assessed, now_ms: int, read_ms: int = T) -> list[str]:
    """What ``sync --follow`` prints when ``honest`` arrives at ``now_ms`` after the room
    ``read`` was printed at ``read_ms``."""
    from bucket_chat_desktop.cli.live import LivePrinter

    said: list[str] = []
    printer = LivePrinter(said.append)
    printer.opening(read, relations.build(ROOM, list(read.timeline)), None, now_ms=read_ms)
    rows = [*read.timeline, honest]
    printer.arrived([honest], rows, relations.build(ROOM, rows), echo_own=True, now_ms=now_ms)
    return [x for x in said if "long after its date" in x]


def test_a_row_placed_ahead_by_its_predecessor_is_not_read_yet_either(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mallory's row dated a year ahead, then one dated ten minutes ago chained after it:
    a row never shows before its predecessor, so it is placed a year ahead too, and the
    app does not count it as read (``unread.seen_place``). Counting its own date (only
    rows *dated* ahead passed over), the terminal noted the honest message late where
    the app does not."""
    monkeypatch.setenv("COLUMNS", "100000")
    read = _audited(
        (1, "alice@example.com", [T - 120 * MIN]),
        (2, "mallory@example.com", [T - 200 * MIN, T + 365 * DAY, T - 10 * MIN]),
    )
    assert [r.event.timestamp_ms for r in read.timeline][-1] == T - 10 * MIN  # shown last
    honest = _row(3, "bob@example.com", "ok, see you there", T - 90 * MIN, 1)
    assert _follow(read, honest, T) == []
    # control: the same row read on its own, not behind the one dated ahead, was read
    read = _audited(
        (1, "alice@example.com", [T - 120 * MIN]),
        (2, "mallory@example.com", [T - 200 * MIN, T - 10 * MIN]),
    )
    assert len(_follow(read, honest, T)) == 1


def test_a_row_dated_ahead_counts_as_read_once_a_read_happens_at_or_after_its_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The clock moves: a row dated an hour ahead is read by the first read that happens
    once its time has come (less ``FUTURE_SLACK_MS``), as the app reads it, and an honest
    message dated well before it, arriving long after its date, is then noted late. Not
    by the clock of the row that arrives next: read that way, a row still 50 minutes
    ahead when read counted as read after a two-hour sleep, and every honest message
    written in the sleep's first minutes was "long after its date" (red team rt101)."""
    monkeypatch.setenv("COLUMNS", "100000")
    from bucket_chat_desktop.cli.live import LivePrinter

    read = _audited(
        (1, "alice@example.com", [T - 120 * MIN]),
        (2, "mallory@example.com", [T + 60 * MIN]),
    )
    honest = _row(3, "bob@example.com", "ok, see you there", T + 20 * MIN, 1)
    assert _follow(read, honest, T + 40 * MIN) == []  # an hour ahead at the read: not read
    assert _follow(read, honest, T + 120 * MIN) == []  # nor after a sleep (red team rt101)
    # Carol's message (dated T + 30 min, on time) comes with a read in between
    carols = _row(4, "carol@example.com", "on my way", T + 30 * MIN, 1)
    alice, mallory = read.timeline

    def follow(between_ms: int) -> list[str]:
        said: list[str] = []
        printer = LivePrinter(said.append)
        printer.opening(read, relations.build(ROOM, list(read.timeline)), None, now_ms=T)
        rows = [alice, carols, mallory]
        rel = relations.build(ROOM, rows)
        printer.arrived([carols], rows, rel, echo_own=True, now_ms=between_ms)
        rows = [alice, carols, honest, mallory]
        rel = relations.build(ROOM, rows)
        printer.arrived([honest], rows, rel, echo_own=True, now_ms=T + 120 * MIN)
        return [x for x in said if "long after its date" in x]

    # read 10 minutes before Mallory's date: still ahead (Carol's row is what was read)
    assert follow(T + 50 * MIN) == []
    # read 10 minutes after it: Mallory's row was read, Bob's message is dated well before
    (late,) = follow(T + 70 * MIN)
    assert "Arrived" in late and "long after its date" in late
