"""A room written by the protocol's reference implementation (v0.1.0) opens here.

Its events carry no ``sender_key``, so they are shown, marked unverified; its metadata is
the unsigned four-field form written with ``indent=2``. The bytes below follow what that
implementation writes (pydantic ``model_dump_json``: declaration order, raw UTF-8).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from pathlib import Path

from .conftest import Device, kinds

ROOM = "room_abc123"


def _reference_line(ts: int, sender: str, body: str, prev: str | None) -> str:
    local = dt.datetime.fromtimestamp(ts / 1000).isoformat() + "Z"
    event = {
        "event_id": f"{ROOM}::{local}::{uuid.uuid4()}",
        "room_id": ROOM,
        "timestamp_ms": ts,
        "sender_id": sender,
        "type": "m.room.message",
        "parent_event_id": None,
        "prev_event_hash": prev,
        "signature": base64.b64encode(bytes(64)).decode(),
        "content": {"body": body, "msgtype": "m.text"},
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n"


def _write_reference_room(store: Path) -> None:
    room = store / "rooms" / ROOM
    (room / "logs" / "2025-09-14").mkdir(parents=True)
    (room / "metadata.json").write_text(
        json.dumps(
            {
                "room_id": ROOM,
                "created_at": "2025-09-14T13:59:01.123456",
                "version": "1.0",
                "protocol": "bucket-chat-v1",
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    t = 1757858400000
    lines = [
        _reference_line(t, "alice@example.com", "Hello, World!", None),
        _reference_line(t + 5, "alice@example.com", "Grüße aus München ☕", "x" * 44),
    ]
    (room / "logs" / "2025-09-14" / f"messages_{t}_{t + 5}_alice.jsonl").write_text("".join(lines))
    (room / "logs" / "2025-09-14" / f"messages_{t + 9}_{t + 9}_José.jsonl").write_text(
        _reference_line(t + 9, "josé@example.com", "¡Hola!", None)
    )


def test_reference_room_opens_unverified(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    _write_reference_room(store)
    bob: Device = device("bob", "bob@example.com")
    doc = bob.json("history", "--room-id", ROOM)
    bodies = [e["content"]["body"] for e in doc["events"]]
    assert bodies == ["Hello, World!", "Grüße aus München ☕", "¡Hola!"]
    assert {e["trust"] for e in doc["events"]} == {"unverified"}
    assert "UNVERIFIED" in bob.run("history", "--room-id", ROOM).stdout

    audit = bob.json("verify", "--room-id", ROOM)
    assert audit["clean"] is True
    assert audit["counts"]["unverified"] == 3
    assert audit["metadata"]["signed"] is False
    assert kinds(audit) == {"metadata-unsigned"}

    # We can write into it, and our own events are verified next to theirs.
    bob.user("send", "--room-id", ROOM, "hello from a signing client")
    events = bob.json("history", "--room-id", ROOM)["events"]
    assert [e["trust"] for e in events[-2:]] == ["verified", "verified"]  # join + message
    assert "room_abc123" in bob.run("rooms").stdout
