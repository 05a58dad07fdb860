"""What ``bucket-chat chat`` and ``sync --follow`` print for hostile events: every line goes
through the same formatting as ``history``, and findings and storage messages are escaped
too."""

from __future__ import annotations

import unicodedata
import uuid
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.cli import format as fmt
from bucket_chat_desktop.cli.chat import _Screen
from bucket_chat_desktop.protocol import relations
from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.room_state import RoomState
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.protocol.unread import seen_place

ROOM = "chat"
ALICE = "alice@example.com"
IMPOSTOR = "\u0430lice@example.com"


def _raw(text: str) -> list[str]:
    return [
        f"U+{ord(c):04X}"
        for c in text
        if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and c != "\n"
    ]


def _room() -> AuditResult:
    ledger = RoomLedger(ROOM)
    t = 1_780_000_000_000
    for n, (sender, name, body) in enumerate(
        [
            (ALICE, "Alice", "hi"),
            (IMPOSTOR, "Alice\u3164\u3164\x1b[2K", "\x1b]0;owned\x07\rok\x9b2J\u202e\u2028"),
        ]
    ):
        key = SigningKey(bytes([n + 1]) * 32)
        prev = None
        events = []
        for i, (kind, content) in enumerate(
            [
                (MEMBER, {"membership": "join", "displayname": name}),
                (MESSAGE, {"msgtype": "m.text", "body": body}),
            ]
        ):
            ev = build_event(
                room_id=ROOM,
                sender_id=sender,
                event_type=kind,
                content=content,
                timestamp_ms=t + 10 * n + i,
                unique=str(uuid.uuid4()),
                prev_event_hash=prev,
                signing_key=key,
            )
            prev = ev.hash
            events.append(ev)
        path = path_for(events, client_id_for(sender, bytes(key.verify_key)))
        ledger.add_segment(path, encode_segment(events))
    ledger.add_segment(
        f"rooms/{ROOM}/logs/2026-06-01/messages_1_2_x\x1b[8m.jsonl", b"not json\x1b[8m\n"
    )
    return ledger.audit()


def test_chat_screen_prints_nothing_raw_and_marks_the_impostor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = _room()
    screen = _Screen(interactive=False, own_key="")
    screen.ids.update(a.event.sender_id for a in result.timeline)
    rows = result.timeline
    screen.arrived(rows, rows, relations.build(ROOM, rows), echo_own=True)
    screen.findings(result.findings)
    out = capsys.readouterr().out
    assert _raw(out) == []
    impostor = [line for line in out.splitlines() if "\u0430lice" in line]
    assert impostor and all(fmt.LOOKALIKE_MARK in line for line in impostor)
    assert all(fmt.LOOKALIKE_MARK not in line for line in out.splitlines() if ALICE in line)
    assert "! bad-json:" in out and "\\x1b[8m" in out


def test_members_print_nothing_raw_and_mark_the_impostor() -> None:
    """The impostor's id imitates alice's and its name carries invisible filler and an
    escape sequence: the member list cleans the name and marks the id."""
    members = RoomState.of(_room()).members()
    lines = [line for m in members for line in fmt.member_lines(m)]
    notes = fmt.member_notes(members)
    assert _raw("\n".join(lines + notes)) == [] and "\x1b" not in "".join(lines + notes)
    impostor = next(line for line in lines if "\u0430lice" in line)
    assert impostor.startswith('"Alice[2K"  ') and fmt.LOOKALIKE_MARK in impostor
    assert [line for line in lines if line.startswith('"Alice"  ')] == [
        f'"Alice"  {ALICE}  [verified]'
    ]
    assert len(notes) == 1 and "\u0430lice" in notes[0]


def test_json_output_escapes_terminal_controls_and_round_trips() -> None:
    import json

    doc = {"s": "a\x1b]0;x\x07\x9b2J\u202e\u2028\ud800 ✓ 日本 🎉", "n": 1}
    text = fmt.json_text(doc)
    assert _raw(text) == [] and "\ud800" not in text
    assert "✓ 日本 🎉" in text  # ordinary text stays readable
    assert json.loads(text) == doc


def test_each_finding_is_said_once_whatever_order_the_audits_list_them_in() -> None:
    """Red team: ``chat`` printed ``errors[reported:]`` of each new audit, a count. A
    full audit lists the findings of newly read segments first: one finding printed
    twice and another never; one that went away hid the next new one."""
    from bucket_chat_desktop.cli.live import LivePrinter
    from bucket_chat_desktop.protocol.findings import Finding, Kind

    said: list[str] = []
    printer = LivePrinter(said.append)
    gap = Finding(Kind.GAP, "a predecessor is missing", "rooms/chat/logs/d/a.jsonl", 2)
    fifo = Finding(Kind.SEGMENT_UNREADABLE, "not a regular file", "rooms/chat/logs/d/z.jsonl")
    junk = Finding(Kind.BAD_JSON, "does not parse", "rooms/chat/logs/d/b.jsonl", 1)
    later = Finding(Kind.KEY_CHANGED, "a key nobody introduced", "rooms/chat/logs/d/c.jsonl", 1)
    notice = Finding(Kind.EMPTY_SEGMENT, "segment holds no events", "rooms/chat/logs/d/e.jsonl")
    printer.findings([gap])
    printer.findings([fifo, gap])  # the new one listed first
    printer.findings([junk, fifo, gap, notice])
    printer.findings([later])  # the others went away, one new
    printer.findings([later, gap])  # said before: not again
    kinds = [line.split(":", 1)[0] for line in said]
    assert kinds == ["! gap", "! segment-unreadable", "! bad-json", "! key-changed"], said


class _Chain:
    """One member's signed chain of rows, as an audit shows them (all verified)."""

    def __init__(self, seed: int) -> None:
        self.key = SigningKey(bytes([seed]) * 32)
        self.rows: list[Any] = []
        self.prev: str | None = None

    def add(self, event_type: str, content: dict[str, object]) -> str:
        from bucket_chat_desktop.protocol.audit import Assessed, TrustState

        ev = build_event(
            room_id=ROOM,
            sender_id=_MALLORY,
            event_type=event_type,
            content=content,
            timestamp_ms=1_780_000_000_000 + len(self.rows) * 1000,
            unique=str(uuid.uuid4()),
            prev_event_hash=self.prev,
            signing_key=self.key,
        )
        self.prev = ev.hash
        self.rows.append(Assessed(ev, TrustState.VERIFIED, "", "p", len(self.rows) + 1))
        return ev.event_id


def _carols(ts: int) -> Any:
    """Another member's message dated ``ts``: what others wrote since, read and printed."""
    from bucket_chat_desktop.protocol.audit import Assessed, TrustState

    ev = build_event(
        room_id=ROOM,
        sender_id="carol@example.com",
        event_type=MESSAGE,
        content={"msgtype": "m.text", "body": "meanwhile"},
        timestamp_ms=ts,
        unique=str(uuid.uuid4()),
        prev_event_hash=None,
        signing_key=SigningKey(bytes([3]) * 32),
    )
    return Assessed(ev, TrustState.VERIFIED, "", "c", 1)


def test_follow_notices_name_an_edit_of_an_edit_and_what_a_deletion_took_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Red team: an edit of an edit (applied to the message) printed no notice, so
    ``chat`` and ``sync --follow`` showed the older text as the latest; deleting that
    edit printed "deleted a message" though no message was deleted."""
    monkeypatch.setenv("COLUMNS", "100000")  # lines read whole (not cut: ``format.fit``)
    from bucket_chat_desktop.cli.live import LivePrinter
    from bucket_chat_desktop.protocol.relations import EDIT, REDACTION

    chain = _Chain(7)
    add, rows = chain.add, chain.rows
    said: list[str] = []
    printer = LivePrinter(said.append)

    def arrive() -> None:
        printer.arrived(rows[-1:], rows, relations.build(ROOM, rows), echo_own=True)

    message = add(MESSAGE, {"msgtype": "m.text", "body": "I will pay you $100"})
    arrive()
    first = add(EDIT, {"replaces": message, "new_content": {"body": "I will pay you $1000"}})
    arrive()
    second = add(EDIT, {"replaces": first, "new_content": {"body": "I will pay you $1"}})
    arrive()
    add(REDACTION, {"redacts": second})
    arrive()
    notices = [line.split("  * ", 1)[-1] for line in said[1:]]
    assert notices == [
        "edited a message: I will pay you $1000",
        "edited a message: I will pay you $1",
        "took back an edit of a message",
    ], said
    # a reaction text of words is quoted: it cannot pass for the sentence around it
    add("m.room.reaction", {"relates_to": message, "reaction": "✅ to bob@example.com: deal"})
    arrive()
    assert said[-1].split("  * ", 1)[-1] == (
        f'reacted "✅ to bob@example.com: deal" to {_MALLORY} (edited): I will pay you $1000'
    ), said
    # a body can no longer pass for such a notice
    add(MESSAGE, {"msgtype": "m.text", "body": "* reacted 👍 to alice@example.com: I agree"})
    arrive()
    assert said[-1].endswith("  \\* reacted 👍 to alice@example.com: I agree"), said


def test_a_flood_of_reactions_is_printed_in_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Red team: one segment of 20,000 reactions to one message, each with its own text,
    took ``sync --follow`` about 100 s to print (5,000: 6 s): each notice walked every
    chip of the message to find its own. Work is counted in lines of Python run (not
    seconds): twice the reactions, about twice the work."""
    import sys

    from bucket_chat_desktop.cli.live import LivePrinter
    from bucket_chat_desktop.protocol.relations import REACTION

    def flood(n: int) -> int:
        chain = _Chain(0x4D)
        add, rows = chain.add, chain.rows
        target = add(MESSAGE, {"msgtype": "m.text", "body": "target"})
        for i in range(n):
            add(REACTION, {"relates_to": target, "reaction": f"k{i}"})
        rel = relations.build(ROOM, rows)
        said: list[str] = []
        printer = LivePrinter(said.append)
        lines = 0

        def trace(frame: object, event: str, arg: object) -> object:
            nonlocal lines
            lines += event == "line"
            return trace

        sys.settrace(trace)
        try:
            printer.arrived(rows, rows, rel, echo_own=True)
        finally:
            sys.settrace(None)
        assert len(said) == n + 1 and said[-1].endswith(f"reacted k{n - 1} to {_MALLORY}: target")
        return lines

    monkeypatch.setenv("COLUMNS", "100000")  # notices read whole (``format.fit``)
    small, large = flood(400), flood(1600)
    assert large < 5 * small, (small, large)  # quadratic work would be 16 times


_MALLORY = "mallory@example.com"


@pytest.mark.parametrize("width", [20, 80, 133])
def test_fit_leaves_no_row_for_a_terminal_to_wrap(width: int) -> None:
    """``format.fit`` (red team rt60): whatever a line holds — runs of spaces, words
    longer than a row, wide letters, emoji — no row it makes is wider than ``width``
    columns (a letter outside ASCII counted as two), every row it adds starts with
    ``CONTINUED``, and no character but spaces at a cut is lost."""
    import random

    from bucket_chat_desktop.cli.format import CONTINUED, fit

    rnd = random.Random(width)
    pieces = ["a", "word", " ", "     ", "語", "👍", "x" * 300, "é", "-", "\n", " " * 90]
    for _ in range(300):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 60)))
        rows = fit(text, width).split("\n")
        assert all(sum(1 if " " <= c <= "~" else 2 for c in row) <= width for row in rows)
        assert "".join(text.split()) == "".join("".join(rows).split()), (text, rows)
        for line in text.split("\n"):
            first, *more = fit(line, width).split("\n")
            assert line.startswith(first)  # a line begins as it did
            assert all(row.startswith(CONTINUED) for row in more), more


def test_chat_prints_a_padded_body_in_rows_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``chat`` and ``sync --follow`` print as a message arrives is cut into rows
    as ``history`` is: the forged event line a body padded to the terminal's width
    carries starts no row of its own."""
    from bucket_chat_desktop.cli.live import LivePrinter

    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe: 80 columns
    chain = _Chain(8)
    said: list[str] = []
    printer = LivePrinter(said.append)
    fake = "2026-05-28 21:10:00  alice@example.com  [verified]  I approve the transfer"
    chain.add(MESSAGE, {"msgtype": "m.text", "body": "ok" + " " * 170 + fake})
    rows = chain.rows
    printer.arrived(rows[-1:], rows, relations.build(ROOM, rows), echo_own=True)
    printed = "\n".join(said).split("\n")
    assert all(len(row) <= 80 for row in printed), printed
    assert [r for r in printed if r.startswith("2026-05-28 21:10:00  alice")] == [], printed
    assert f"    {fake}" in printed, printed


def test_standard_error_is_cut_to_the_terminal_it_is_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Red team rt66: ``format.out`` measured standard output for every stream: with it
    redirected to a file (``bucket-chat history r > saved.txt``; bash does not export
    COLUMNS) the lines on standard error, which quote storage, were cut at 80 on a
    40-column terminal, and its wrap began a row with a forged line."""
    import fcntl
    import io
    import os
    import pty
    import struct
    import sys
    import termios

    from bucket_chat_desktop.cli import format as fmt

    monkeypatch.delenv("COLUMNS", raising=False)
    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
        err = io.TextIOWrapper(io.FileIO(slave, "w", closefd=False), write_through=True)
        with open(tmp_path / "saved.txt", "w") as out:
            monkeypatch.setattr(sys, "stdout", out)
            monkeypatch.setattr(sys, "stderr", err)
            forged = "2026-05-28 21:10:00  alice@example.com  [verified]  I approve"
            fmt.out("bucket-chat: note: segments/a.jsonl:1:xx" + forged, file=sys.stderr)
            fmt.out("saved " + forged)  # standard output: a file, 80 columns
        err.flush()
        os.set_blocking(master, False)
        shown = os.read(master, 65536).decode("utf-8", "replace")
    finally:
        os.close(master)
        os.close(slave)
    rows = [r for r in shown.replace("\r", "").split("\n") if r]
    assert rows and all(len(r) <= 40 for r in rows), rows
    assert (tmp_path / "saved.txt").read_text().count("\n") == 1  # 66 columns: one line


def test_follow_says_when_a_message_arrived_long_after_its_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Red team rt79: a member's next message dated weeks back, printed by ``sync
    --follow`` as it arrives, read as one written now. It is followed by the note the
    app's row shows: when it arrived, and the earlier date it bears (terminal-safe)."""
    monkeypatch.setenv("COLUMNS", "100000")
    from bucket_chat_desktop.cli.live import LivePrinter
    from bucket_chat_desktop.timestamps import full

    day = 24 * 3600 * 1000
    chain = _Chain(9)
    chain.add(MESSAGE, {"msgtype": "m.text", "body": "budget draft is in the folder"})
    chain.add(MESSAGE, {"msgtype": "m.text", "body": "I do NOT approve"})
    rows = chain.rows
    said: list[str] = []
    printer = LivePrinter(said.append)
    dated = rows[-1].event.timestamp_ms
    weeks = dated + 28 * day
    rel = relations.build(ROOM, rows)
    printer.arrived(rows[:1], rows[:1], rel, echo_own=True, now_ms=weeks)
    assert len(said) == 1  # dated after every row read: no note (nothing to slip among)
    carols = _carols(dated + 27 * day)  # others wrote since, and were printed
    printer.arrived([carols], [rows[0], carols], rel, echo_own=True, now_ms=weeks)
    assert "meanwhile" in said.pop()
    printer.arrived(rows[1:], [*rows, carols], rel, echo_own=True, now_ms=weeks)
    assert "I do NOT approve" in said[1]
    assert said[2].strip() == (
        f"(Arrived {full(weeks)[:16]}, dated {full(dated)[:16]}: "
        "sent or delivered long after its date)"
    )
    assert _raw(said[2]) == []


def test_follow_says_when_an_edit_or_a_deletion_arrived_long_after_its_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sync --follow`` printed a member's edit and deletion, made today under a date
    weeks back, as "edited a message" and "deleted a message" at that date: as if seen
    then. Each is followed by its note now, as the app's row says it (terminal-safe),
    by the rule of a message's: none when dated after every row read."""
    monkeypatch.setenv("COLUMNS", "100000")
    from bucket_chat_desktop.cli.live import LivePrinter
    from bucket_chat_desktop.protocol.relations import EDIT, REDACTION
    from bucket_chat_desktop.timestamps import full

    day = 24 * 3600 * 1000
    chain = _Chain(9)
    kept = chain.add(MESSAGE, {"msgtype": "m.text", "body": "budget draft is in the folder"})
    gone = chain.add(MESSAGE, {"msgtype": "m.text", "body": "I approve"})
    moved = {"msgtype": "m.text", "body": "budget draft moved to the archive"}
    chain.add(EDIT, {"replaces": kept, "new_content": moved})
    chain.add(REDACTION, {"redacts": gone})
    rows = chain.rows
    said: list[str] = []
    printer = LivePrinter(said.append)
    rel = relations.build(ROOM, rows)
    edit, deletion = rows[2].event, rows[3].event
    weeks = deletion.timestamp_ms + 28 * day
    printer.arrived(rows[:2], rows[:2], rel, echo_own=True, now_ms=weeks)
    assert len(said) == 2
    carols = _carols(deletion.timestamp_ms + 27 * day)  # others wrote since, and were printed
    printer.arrived([carols], [*rows[:2], carols], rel, echo_own=True, now_ms=weeks)
    assert "meanwhile" in said.pop()
    printer.arrived(rows[2:], [*rows, carols], rel, echo_own=True, now_ms=weeks)
    tail = "sent or delivered long after its date)"
    assert "edited a message: budget draft moved" in said[2]
    assert said[3].strip() == (
        f"(This edit arrived {full(weeks)[:16]}, dated {full(edit.timestamp_ms)[:16]}: {tail}"
    )
    assert "deleted a message" in said[4]
    assert said[5].strip() == (
        f"(The deletion arrived {full(weeks)[:16]}, "
        f"dated {full(deletion.timestamp_ms)[:16]}: {tail}"
    )
    assert _raw(said[3]) == [] and _raw(said[5]) == [] and len(said) == 6
    # dated after every row read (nothing to slip among), or on time: no note
    again: list[str] = []
    fresh = LivePrinter(again.append)
    fresh.arrived(rows, rows, rel, echo_own=True, now_ms=weeks)
    on_time: list[str] = []
    later = LivePrinter(on_time.append)
    carols = _carols(deletion.timestamp_ms + 1000)
    later.arrived([carols], [carols], rel, echo_own=True, now_ms=deletion.timestamp_ms + 2000)
    rows = [*rows, carols]
    later.arrived(rows, rows, rel, echo_own=True, now_ms=deletion.timestamp_ms + 60_000)
    assert not [x for x in again + on_time if "long after its date" in x]


def test_follow_opening_makes_only_the_rows_it_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reviewer: ``opening`` made a row per event three times (its senders, its copies,
    the latest date: about a second each at 1,000,000 events) to print the newest few.
    Rows made are counted (``audit._event_of`` makes each row's event), how far the room
    was read too (``unread.seen_place``, when the next rows arrive)."""
    from bucket_chat_desktop.cli.live import LivePrinter
    from bucket_chat_desktop.protocol import audit

    chain = _Chain(9)
    first = chain.add(MEMBER, {"membership": "join", "displayname": "Mallory"})
    for i in range(2_000):
        chain.add(MESSAGE, {"msgtype": "m.text", "body": f"note {i}"})
    ledger = RoomLedger(ROOM)
    events = [a.event for a in chain.rows]
    path = path_for(events, client_id_for(_MALLORY, bytes(chain.key.verify_key)))
    ledger.add_segment(path, encode_segment(events))
    result = ledger.audit()
    timeline = result.timeline
    assert len(timeline) == 2_001 and timeline[0].event.event_id == first
    rel = relations.build(ROOM, timeline)
    made = [0]
    real = audit._event_of

    def counted(c: Any) -> Any:
        made[0] += 1
        return real(c)

    said: list[str] = []
    printer = LivePrinter(said.append)
    monkeypatch.setattr(audit, "_event_of", counted)
    printer.opening(result, rel, 5)
    newest = timeline.place_at(len(timeline) - 1)
    read = seen_place(printer.read, newest)
    monkeypatch.setattr(audit, "_event_of", real)
    assert [line.split()[-1] for line in said] == [f"{i}" for i in range(1_995, 2_000)]
    assert made[0] < 50, f"{made[0]} rows made to print 5"
    assert len(printer.shown) == 2_001
    assert (first, path, 1) in printer.shown
    assert read == newest == max(a.event.timestamp_ms for a in timeline)
