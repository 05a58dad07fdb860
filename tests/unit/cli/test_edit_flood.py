"""Red team rt101: one segment of thousands of edits of one message makes ``sync --follow``
and ``chat`` (``LivePrinter.arrived``) do quadratic work: each edit's notice
(``LivePrinter._notice``) walks every applied edit of the message
(``any(e.event_id == ev.event_id for e in agg.edits)``) to find itself. 16,000 edits
took 9 s to print, a 64 MiB segment holds some 100,000 (minutes, on the engine's
listener). The reactions' flood was fixed this way (red team, ``test_hostile_output``);
the edits' was not. Work is counted in lines of Python run, not seconds."""

from __future__ import annotations

import sys
import uuid

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol import relations
from bucket_chat_desktop.protocol.audit import Assessed, TrustState
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.relations import EDIT
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "chat"
MALLORY = "mallory@example.com"


def _flood(n: int) -> tuple[int, list[str]]:
    key = SigningKey(b"\x4d" * 32)
    rows: list[Assessed] = []
    prev: str | None = None

    def add(event_type: str, content: dict[str, object]) -> str:
        nonlocal prev
        ev = build_event(
            room_id=ROOM,
            sender_id=MALLORY,
            event_type=event_type,
            content=content,
            timestamp_ms=1_780_000_000_000 + len(rows) * 1000,
            unique=str(uuid.uuid4()),
            prev_event_hash=prev,
            signing_key=key,
        )
        prev = ev.hash
        rows.append(Assessed(ev, TrustState.VERIFIED, "", "p", len(rows) + 1))
        return ev.event_id

    target = add(MESSAGE, {"msgtype": "m.text", "body": "target"})
    for i in range(n):
        add(EDIT, {"replaces": target, "new_content": {"msgtype": "m.text", "body": f"v{i}"}})
    rel = relations.build(ROOM, rows)
    from bucket_chat_desktop.cli.live import LivePrinter

    said: list[str] = []
    printer = LivePrinter(said.append)
    lines = 0

    def trace(frame: object, event: str, arg: object) -> object:
        nonlocal lines
        lines += event == "line"
        return trace

    sys.settrace(trace)
    try:
        printer.arrived(rows, rows, rel, echo_own=True, now_ms=1_780_000_000_000 + n * 1000)
    finally:
        sys.settrace(None)
    return lines, said


def test_a_flood_of_edits_is_printed_in_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100000")
    small, said = _flood(400)
    assert len(said) == 401 and said[-1].endswith("edited a message: v399"), said[-3:]
    large, said = _flood(1600)
    assert len(said) == 1601 and said[-1].endswith("edited a message: v1599"), said[-3:]
    assert large < 5 * small, (small, large)  # quadratic work would be 16 times
