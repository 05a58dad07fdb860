"""A member signs an event dated 2^53-1 ms (the protocol's largest timestamp, the year
287396). ``history``, ``chat`` and ``sync --follow`` print it with a clear label instead of
dying on ``ValueError: year … is out of range``."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

from .conftest import EXE
from .test_sync_cli import Lines

ROOM = "far-room"
FAR = 2**53 - 1
EVE = "eve@example.com"
EVE_KEY = SigningKey(b"\x0e" * 32)
LABEL = "after the year 9999"


def eve_writes(store: Path, bodies: list[tuple[int, str]], joined_at: int) -> None:
    """Eve's own client could write exactly this: a join, then signed, chained messages."""
    events: list[Event] = []
    prev = None
    for ts, kind, content in [
        (joined_at, MEMBER, {"membership": "join", "displayname": "Eve"}),
        *((t, MESSAGE, {"body": b, "msgtype": "m.text"}) for t, b in bodies),
    ]:
        ev = build_event(
            room_id=ROOM,
            sender_id=EVE,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=str(uuid.uuid4()),
            prev_event_hash=prev,
            signing_key=EVE_KEY,
        )
        prev = ev.hash
        events.append(ev)
    path = store / path_for(events, client_id_for(EVE, bytes(EVE_KEY.verify_key)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(events))


def test_history_and_chat_show_a_far_future_message(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    alice.user("create-room", "--room-id", ROOM, "--name", "Far")
    alice.user("send", "--room-id", ROOM, "hello")
    eve_writes(store, [(FAR, "from the far future")], joined_at=1_796_300_000_000)

    out = alice.run("history", "--room-id", ROOM).stdout
    line = next(x for x in out.splitlines() if "from the far future" in x)
    assert line.startswith(LABEL) and "[verified]" in line
    assert "hello" in out

    chat = alice.run("chat", "--room-id", ROOM, "--user-id", alice.user_id, input="/quit\n")
    line = next(x for x in chat.stdout.splitlines() if "from the far future" in x)
    assert line.startswith(LABEL)


def test_sync_follow_prints_a_far_future_message_and_keeps_following(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com", setup=False)
    alice.user("create-room", "--room-id", ROOM, "--name", "Far")
    follow = subprocess.Popen(
        [EXE, "-s", str(store), "sync", "--room-id", ROOM, "--follow"],
        env=bob.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(follow)
        lines.wait_for("join", timeout=20)
        eve_writes(store, [(FAR, "from the far future")], joined_at=1_796_300_000_000)
        line = lines.wait_for("from the far future", timeout=20)
        assert line.startswith(LABEL)
        alice.user("send", "--room-id", ROOM, "still following")
        lines.wait_for("still following", timeout=20)
        assert follow.poll() is None
    finally:
        follow.terminate()
        try:
            follow.wait(timeout=10)
        except subprocess.TimeoutExpired:
            follow.kill()
            follow.wait()
