"""What a hostile member writes into a shared folder: real signed events (or unsigned raw
lines) with the project's own event builder and segment codec, chosen timestamps and
bodies, in a segment whose name passes (its date folder is that of its first event)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

EVE = "eve@example.com"
EVE_KEY = SigningKey(b"\x0e" * 32)
FAR = 2**53 - 1  # the largest timestamp the protocol accepts (the year 287396)
JOINED_AT = 1_796_300_000_000  # 2026-12-03, before the hostile messages

TABLE_ROWS = 400  # a 400 x 8 table: 3,200 cells, ~60 KB of Markdown
TABLE_COLS = 8


def big_table(rows: int = TABLE_ROWS, cols: int = TABLE_COLS, tag: str = "") -> str:
    head = "| " + " | ".join(f"h{c}" for c in range(cols)) + " |"
    rule = "|" + "---|" * cols
    body = [
        "| " + " | ".join(f"**{tag}r{r}c{c}**" for c in range(cols)) + " |" for r in range(rows)
    ]
    return "\n".join([head, rule, *body])


def eve_writes(
    root: Path,
    room: str,
    messages: Sequence[tuple[int, str]],
    *,
    joined_at: int = JOINED_AT,
) -> list[Event]:
    """Eve joins at ``joined_at`` and sends ``(timestamp_ms, body)`` messages, signed with
    her key and chained, in one segment: exactly what her own client could write."""
    events: list[Event] = []
    prev: str | None = None
    for ts, event_type, content in [
        (joined_at, MEMBER, {"membership": "join", "displayname": "Eve"}),
        *((t, MESSAGE, {"body": b, "msgtype": "m.text"}) for t, b in messages),
    ]:
        ev = build_event(
            room_id=room,
            sender_id=EVE,
            event_type=event_type,
            content=content,
            timestamp_ms=ts,
            unique=str(uuid.uuid4()),
            prev_event_hash=prev,
            signing_key=EVE_KEY,
        )
        prev = ev.hash
        events.append(ev)
    cid = client_id_for(EVE, bytes(EVE_KEY.verify_key))
    path = root / path_for(events, cid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(events))
    return events


def unsigned_line(room: str, sender: str, ts: int, body: str) -> dict[str, Any]:
    """A message with no key and no signature: any writer of the folder can add one."""
    unique = uuid.uuid4().hex
    return {
        "event_id": f"{room}::{ts}::{unique}",
        "room_id": room,
        "sender_id": sender,
        "timestamp_ms": ts,
        "type": MESSAGE,
        "content": {"body": body, "msgtype": "m.text"},
        "signature": "",
    }


def write_raw(root: Path, room: str, lines: Sequence[dict[str, Any]], client: str) -> Path:
    """Raw JSONL lines in a segment named after their time span."""
    start = min(int(x["timestamp_ms"]) for x in lines)
    end = max(int(x["timestamp_ms"]) for x in lines)
    from bucket_chat_desktop.protocol.ids import segment_path

    path = root / segment_path(room, start, end, client)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path
