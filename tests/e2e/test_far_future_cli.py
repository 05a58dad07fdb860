"""A member signs an event dated 2^53-1 ms (the protocol's largest timestamp, the year
287396). ``history``, ``chat`` and ``sync --follow`` died on ``ValueError: year … is out of
range``; the event is now held back (more than an hour ahead of the reader's clock,
PROTOCOL.md section 9): not printed, said by ``history``, listed by ``verify`` with its
date, and the room goes on being read and followed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

from .test_sync_cli import following

ROOM = "far-room"
FAR = 2**53 - 1
EVE = "eve@example.com"
EVE_KEY = SigningKey(b"\x0e" * 32)
JOINED = 1_796_300_000_000
NOW = int(time.time() * 1000)


def eve_writes(
    store: Path,
    bodies: list[tuple[int, str]],
    joined_at: int,
    sender: tuple[str, SigningKey] = (EVE, EVE_KEY),
) -> None:
    """Eve's own client could write exactly this: a join, then signed, chained messages."""
    path, data = signed_segment(ROOM, bodies, joined_at, sender)
    (store / path).parent.mkdir(parents=True, exist_ok=True)
    (store / path).write_bytes(data)


def signed_segment(
    room: str, bodies: list[tuple[int, str]], joined_at: int, sender: tuple[str, SigningKey]
) -> tuple[str, bytes]:
    """A sender's join and signed, chained messages in ``room``: the segment's object
    name and bytes."""
    events: list[Event] = []
    prev = None
    sender_id, key = sender
    for ts, kind, content in [
        (joined_at, MEMBER, {"membership": "join", "displayname": sender_id[:3]}),
        *((t, MESSAGE, {"body": b, "msgtype": "m.text"}) for t, b in bodies),
    ]:
        ev = build_event(
            room_id=room,
            sender_id=sender_id,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=str(uuid.uuid4()),
            prev_event_hash=prev,
            signing_key=key,
        )
        prev = ev.hash
        events.append(ev)
    return path_for(events, client_id_for(sender_id, bytes(key.verify_key))), encode_segment(events)


def test_history_verify_and_chat_hold_a_far_future_message(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Far")
    alice.given_user("send", "--room-id", ROOM, "hello")
    eve_writes(store, [(FAR, "from the far future")], joined_at=JOINED)

    history = alice.run("history", "--room-id", ROOM)
    assert "hello" in history.stdout and "from the far future" not in history.stdout
    assert "1 event(s) dated more than an hour ahead" in history.stderr
    assert history.returncode == 0

    verify = alice.run("verify", "--room-id", ROOM)
    out = verify.stdout
    at = out.index("dated-ahead")  # the finding's line, then its message
    assert "messages_1796300000000_9007199254740991_eve-" in out[at:]
    assert "dated 287396-10-12 08:59 UTC" in out[at:] and "'eve@example.com'" in out[at:]
    assert verify.returncode == 0  # a notice: no sign of tampering

    chat = alice.run("chat", "--room-id", ROOM, "--user-id", alice.user_id, input="/quit\n")
    assert "hello" in chat.stdout and "from the far future" not in chat.stdout
    assert chat.returncode == 0


def test_sync_follow_holds_a_far_future_message_and_keeps_following(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com", setup=False)
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Far")
    with following(store, bob, ROOM) as (follow, lines):
        lines.wait_for("join", timeout=20)
        eve_writes(
            store, [(FAR, "from the far future"), (NOW, "eve, clock set right")], joined_at=JOINED
        )
        # her join is shown; the far message is held; the one after it in its place
        lines.wait_for("eve, clock set right", timeout=20)
        alice.given_user("send", "--room-id", ROOM, "still following")
        lines.wait_for("still following", timeout=20)
        assert not [x for x in lines.seen if "from the far future" in x]
        # Mallory's clock runs ten minutes fast: her message is shown and sorts last;
        # Alice's next one is placed before it (no re-audit) and printed as it comes
        now = int(time.time() * 1000)
        mallory = ("mallory@example.com", SigningKey(b"\x0d" * 32))
        eve_writes(store, [(now + 10 * 60_000, "a fast clock")], joined_at=now, sender=mallory)
        lines.wait_for("a fast clock", timeout=20)
        alice.given_user("send", "--room-id", ROOM, "placed before it")
        lines.wait_for("placed before it", timeout=20)
        assert follow.poll() is None
