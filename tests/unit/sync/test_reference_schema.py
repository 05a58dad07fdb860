"""Every line our writer stores for replies and relation events is one the reference
implementation v0.1.0 reads (PROTOCOL.md sections 13 and 18.8).

The check below is written from PROTOCOL.md section 13 (the reference's read schema), not
from the reference's code, which is not part of this project: a line the reference
refuses is skipped by its ``history``, so a refused relation would hide nothing, but a
refused *message* would be lost to its readers.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.sync.client import ChatClient

ROOM = "ref-compat"
# The six types the reference's Event model accepts (section 13).
REFERENCE_TYPES = frozenset(
    {
        "m.room.message",
        "m.room.member",
        "m.room.redaction",
        "m.room.edit",
        "m.room.reaction",
        "m.room.typing",
    }
)
HOUR_MS = 3_600_000


def reference_refuses(line: bytes, now_ms: int) -> list[str]:
    """Why the reference's reader (section 13) would skip ``line``; [] when it reads it."""
    try:
        ev = json.loads(line)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    if not isinstance(ev, dict):
        return ["not an object"]
    problems = []
    for name in ("event_id", "room_id", "sender_id", "type", "signature"):
        if not isinstance(ev.get(name), str):
            problems.append(f"{name} is not a string")
    ts = ev.get("timestamp_ms")
    if not isinstance(ts, int) or isinstance(ts, bool):
        problems.append("timestamp_ms is not an integer")
    elif not 0 < ts <= now_ms + HOUR_MS:
        problems.append(f"timestamp_ms {ts} is not positive or is over an hour ahead")
    if not isinstance(ev.get("content"), dict):
        problems.append("content is not an object")
    for name in ("parent_event_id", "prev_event_hash"):
        if ev.get(name) is not None and not isinstance(ev[name], str):
            problems.append(f"{name} is neither a string nor null")
    if ev.get("type") not in REFERENCE_TYPES:
        problems.append(f"type {ev.get('type')!r} is not one of the reference's six")
    event_id, room_id = ev.get("event_id"), ev.get("room_id")
    # Stricter than the reference (whose room comparison never runs, section 13): the
    # first part is also this room's, as section 4.2 requires of every writer.
    if isinstance(event_id, str):
        parts = event_id.split("::")
        if len(parts) != 3 or parts[0] != room_id:
            problems.append("event_id is not <room_id>::<time>::<unique>")
    return problems


def reference_content_problems(ev: dict[str, Any]) -> list[str]:
    """The reference writer's content models (section 13), for our relation events and
    messages: a later reference that applied them when reading would still accept ours."""
    c, kind = ev["content"], ev["type"]

    def text(value: object) -> bool:
        return isinstance(value, str) and bool(value.strip())

    if kind == "m.room.message" and not (
        text(c.get("body")) and isinstance(c.get("msgtype", "m.text"), str)
    ):
        return ["message body blank or msgtype not a string"]
    if kind == "m.room.reaction" and not (
        isinstance(c.get("relates_to"), str) and text(c.get("reaction"))
    ):
        return ["reaction without relates_to or text"]
    if kind == "m.room.edit":
        new = c.get("new_content")
        if not (
            isinstance(c.get("replaces"), str)
            and isinstance(new, dict)
            and text(new.get("body"))
            and isinstance(new.get("msgtype", "m.text"), str)
        ):
            return ["edit without replaces or a message new_content"]
    if kind == "m.room.redaction" and not (
        isinstance(c.get("redacts"), str) and isinstance(c.get("reason", ""), str)
    ):
        return ["redaction without redacts, or a reason that is not a string"]
    return []


def test_the_schema_check_refuses_what_the_reference_refuses() -> None:
    now = int(time.time() * 1000)
    good = {
        "event_id": f"{ROOM}::2026-01-01T00:00:00.000Z::u",
        "room_id": ROOM,
        "timestamp_ms": now,
        "sender_id": "a@example.com",
        "type": "m.room.reaction",
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "",
        "content": {"relates_to": f"{ROOM}::t::v", "reaction": "👍"},
        "sender_key": "ignored",
    }

    def line(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    assert reference_refuses(line(), now) == []
    without = {k: v for k, v in good.items() if k not in ("parent_event_id", "prev_event_hash")}
    assert reference_refuses(json.dumps(without).encode(), now) == []  # optional fields
    for bad in (
        line(type="m.room.bucket_chat.custom"),
        line(event_id=f"{ROOM}::a::b::c"),
        line(event_id="other::a::b"),
        line(timestamp_ms=0),
        line(timestamp_ms=now + HOUR_MS + 1),
        line(timestamp_ms=True),
        line(content=[]),
        line(parent_event_id=5),
        line(signature=None),
        json.dumps({k: v for k, v in good.items() if k != "content"}).encode(),
    ):
        assert reference_refuses(bad, now), bad
    assert reference_content_problems({**good, "content": {"relates_to": "x", "reaction": " "}})


def test_every_line_our_client_writes_for_relations_fits_the_reference(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    entries = [StorageSettings(str(store), "Team share", []) for _ in range(2)]
    users = ["alice@example.com", "bob@example.com"]
    alice, bob = (
        ChatClient(
            Settings(user, user.split("@")[0].title(), [entry]),
            user,
            SigningKey(bytes([n + 1]) * 32),
            lambda _sid, _event: None,
            data_dir=tmp_path / f"data-{n}",
        )
        for n, (user, entry) in enumerate(zip(users, entries, strict=True))
    )

    async def scenario() -> None:
        await alice.attach(entries[0], start=False)
        await bob.attach(entries[1], start=False)
        try:
            ref = await alice.create_room(entries[0].id, ROOM, "Compat")
            refb = await bob.join_room(entries[1].id, ROOM)
            [msg] = await alice.send_text(ref, "lunch at noon?")
            [reply] = await bob.send_text(refb, "yes — où?", reply_to=msg.event_id)
            await alice.send_text(ref, "the usual place", reply_to=reply.event_id)
            await bob.react(refb, msg.event_id, " 👍 ")
            await alice.react(ref, reply.event_id, "e\u0301")
            await bob.delete_event(refb, reply.event_id, " wrong thread ")
            [e1] = await alice.edit_message(ref, msg.event_id, "lunch at 12:30?")
            await alice.edit_message(ref, e1.event_id, "lunch at 13:00?")
            await alice.delete_event(ref, e1.event_id)
            for client, entry in ((alice, entries[0]), (bob, entries[1])):
                assert await client._storages[entry.id].engine.flush(30)
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())

    now = int(time.time() * 1000)
    lines = [
        line
        for path in sorted((store / "rooms" / ROOM / "logs").rglob("*.jsonl"))
        for line in path.read_bytes().split(b"\n")
        if line.strip()
    ]
    kinds = [json.loads(line)["type"] for line in lines]
    assert {"m.room.reaction", "m.room.edit", "m.room.redaction"} <= set(kinds)
    assert len(lines) == 11  # two joins and every event sent above
    for line in lines:
        assert reference_refuses(line, now) == [], line
        assert reference_content_problems(json.loads(line)) == [], line
