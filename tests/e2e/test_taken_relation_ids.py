"""A member signs events of their own under the ids of alice's edit and deletion (PROTOCOL.md
section 18.1): the real ``export`` says of each copy whether it took effect, and never
exports the text of a deleted message's edit.

Red team: the JSONL export collected applied relations by event id, so mallory's forged
edit of alice's message under the id of alice's real edit was exported ``"applied":
true``; and the edits a deletion took back were found by id too, so alice's edit of a
message she then deleted was exported in full ("SECRET vault code 4711") once mallory
signed an edit of her own under its id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.relations import EDIT, REDACTION
from bucket_chat_desktop.protocol.signing import build_event

from .test_hostile_text import ROOM, T0, _reader, _room_signed_by, _write

ALICE, MALLORY = "alice@example.com", "mallory@example.com"


def _export(tmp_path: Path, store: Path) -> list[dict[str, Any]]:
    reader = _reader(tmp_path, store)
    out = tmp_path / "out.jsonl"
    reader.run("export", "--room-id", ROOM, "--format", "jsonl", "-o", str(out))
    return [json.loads(line) for line in out.read_text().splitlines()[1:]]


class _Chain:
    """One device's events, each chained to the one before."""

    def __init__(self, seed: int, sender: str) -> None:
        self.key = SigningKey(bytes([seed]) * 32)
        self.sender = sender
        self.events: list[Event] = []

    def emit(
        self, kind: str, content: dict[str, Any], ts: int, taken: Event | None = None
    ) -> Event:
        """An event; ``taken``: another's event whose id (and time) it is signed under."""
        n = len(self.events)
        ev = build_event(
            room_id=ROOM,
            sender_id=self.sender,
            event_type=kind,
            content=content,
            timestamp_ms=taken.timestamp_ms if taken else ts,
            unique=taken.event_id.rsplit("::", 1)[1]
            if taken
            else f"{n:08d}-0000-4000-8000-{ord(self.sender[0]):012d}",
            prev_event_hash=self.events[-1].hash if self.events else None,
            signing_key=self.key,
        )
        if taken is not None:
            assert ev.event_id == taken.event_id
        self.events.append(ev)
        return ev


@pytest.mark.parametrize("seed", [2, 7, 200])  # mallory's key
def test_each_copy_under_a_taken_id_is_applied_or_not_as_itself(tmp_path: Path, seed: int) -> None:
    text = {"msgtype": "m.text"}
    a, m = _Chain(1, ALICE), _Chain(seed, MALLORY)
    store = _room_signed_by(tmp_path, ALICE, a.key, "Payments")
    a.emit(MEMBER, {"membership": "join", "displayname": "Alice"}, T0)
    meeting = a.emit(MESSAGE, {**text, "body": "meeting at 5"}, T0 + 10)
    pay = a.emit(MESSAGE, {**text, "body": "pay to DE11"}, T0 + 20)
    secret = a.emit(
        EDIT,
        {"replaces": meeting.event_id, "new_content": {**text, "body": "SECRET 4711"}},
        T0 + 30,
    )
    deletion = a.emit(REDACTION, {"redacts": meeting.event_id, "reason": "oops"}, T0 + 40)
    fix = a.emit(
        EDIT, {"replaces": pay.event_id, "new_content": {**text, "body": "pay to DE22"}}, T0 + 50
    )
    m.emit(MEMBER, {"membership": "join"}, T0 + 1)
    for n in range(4):  # her chain runs deeper than alice's: her copies sort after hers
        m.emit(MESSAGE, {**text, "body": f"hello {n}"}, T0 + 2 + n)
    mine = m.emit(MESSAGE, {**text, "body": "hi"}, T0 + 9)
    # her own edit of her own message, under the id of alice's edit of a deleted message
    m.emit(EDIT, {"replaces": mine.event_id, "new_content": {**text, "body": "mine"}}, 0, secret)
    # a forged edit of alice's message, under the id of alice's applied edit
    m.emit(EDIT, {"replaces": pay.event_id, "new_content": {**text, "body": "XX99"}}, 0, fix)
    _write(store, ALICE, a.key, a.events)
    _write(store, MALLORY, m.key, m.events)
    lines = _export(tmp_path, store)
    assert not [x for x in lines if "SECRET" in json.dumps(x)]
    applied = {
        (x["event"]["sender_id"], x["event"]["event_id"]): x["relation"]["applied"]
        for x in lines
        if "relation" in x
    }
    assert applied[(ALICE, fix.event_id)] is True
    assert applied[(MALLORY, fix.event_id)] is False  # the forged edit of alice's message
    assert applied[(ALICE, deletion.event_id)] is True
    assert applied[(MALLORY, secret.event_id)] is True  # her own edit of her own message
