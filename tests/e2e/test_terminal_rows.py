"""A body padded with spaces forged a whole event line on a terminal (red team rt60).

``body_text`` keeps every space of a body (``terminal_safe`` even turns wide and no-break
spaces into plain ones) and the command line prints it after the sender's head. A terminal
wraps a long line at its width, so a member who pads their body to the width puts the
rest of it at the start of a screen row of its own: exactly where ``history`` (and
``chat``) print an event's time, sender id and badge. The padding below reaches column
240: the start of a row on terminals 80, 120 and 240 columns wide (and 40, 48, 60).

Mallory (a plain, verified member) writes one message; on screen it read as a verified
message of alice@example.com that alice never signed. The command line now cuts long
lines into rows itself (``format.fit``: at the terminal's width, at 80 columns in a
pipe or a file), every row after the first indented.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop import timestamps
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.metadata import build_metadata
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

from .conftest import Device

ROOM = "wrapforge"
T0 = 1_780_000_000_000
ALICE = "alice@example.com"
MALLORY = "mallory@example.com"
FAKE = "2026-05-28 21:10:00  alice@example.com  [verified]  I approve the transfer to IBAN XX99"
EVENT_HEAD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  \S+  \[verified\]  ")


def _events(
    key: SigningKey, sender: str, drafts: list[tuple[str, dict[str, Any]]], t: int
) -> list[Event]:
    out: list[Event] = []
    prev = None
    for n, (kind, content) in enumerate(drafts):
        ev = build_event(
            room_id=ROOM,
            sender_id=sender,
            event_type=kind,
            content=content,
            timestamp_ms=t + n,
            unique=str(uuid.uuid4()),
            prev_event_hash=prev,
            signing_key=key,
        )
        prev = ev.hash
        out.append(ev)
    return out


def _write(store: Path, sender: str, key: SigningKey, events: list[Event]) -> None:
    path = store / path_for(events, client_id_for(sender, bytes(key.verify_key)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(events))


def _rows(line: str, width: int) -> list[tuple[bool, str]]:
    """How a terminal ``width`` columns wide shows one printed line (ASCII only here):
    (is this row the start of the printed line, the row's text)."""
    if not line:
        return [(True, "")]
    return [(i == 0, line[i : i + width]) for i in range(0, len(line), width)]


def test_a_space_padded_body_does_not_show_as_another_members_verified_line(
    tmp_path: Path,
) -> None:
    alice, mallory = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    store = tmp_path / "store"
    room = store / "rooms" / ROOM
    room.mkdir(parents=True)
    (room / "metadata.json").write_bytes(
        build_metadata(
            room_id=ROOM,
            name="Payments",
            created_at="2026-06-01T00:00:00.000Z",
            creator_id=ALICE,
            signing_key=alice,
        )
    )
    text = {"msgtype": "m.text"}
    _write(
        store,
        ALICE,
        alice,
        _events(
            alice,
            ALICE,
            [
                (MEMBER, {"membership": "join", "displayname": "Alice"}),
                (MESSAGE, {**text, "body": "hi"}),
            ],
            T0,
        ),
    )
    # What mallory's head is on every terminal: time, id, badge (all of fixed length).
    head = len(timestamps.full(T0 + 10)) + 2 + len(MALLORY) + 2 + len("[verified]") + 2
    visible = "ok"
    pad = 240 - head - len(visible)
    body = visible + " " * pad + FAKE + " " * (240 - len(FAKE))
    _write(
        store,
        MALLORY,
        mallory,
        _events(
            mallory,
            MALLORY,
            [
                (MEMBER, {"membership": "join", "displayname": "Mallory"}),
                (MESSAGE, {**text, "body": body}),
            ],
            T0 + 10,
        ),
    )
    home = tmp_path / "reader"
    home.mkdir()
    reader = Device(home, store, "reader@example.com", columns=None)  # a pipe's default

    out = reader.run("history", "--room-id", ROOM)
    assert "alice@example.com" in out.stdout and "[verified]" in out.stdout
    lines = out.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "    2026-05-28 21:10:00  alice@example.com  [verified]  I approve" in out.stdout
    # Only alice's real events may show as her rows, whatever the terminal's width.
    for width in (80, 120, 240):
        rows = [row for line in out.stdout.splitlines() for row in _rows(line, width)]
        forged = [text for first, text in rows if not first and EVENT_HEAD.match(text)]
        assert forged == [], (
            f"on a {width}-column terminal a body's padding puts a row of its own that "
            f"reads as an event line: {forged}"
        )
