"""``sync --follow`` on a folder shared with a client that writes segments in place (the
reference client opens the file, then writes it): the watch names the file while it is
still empty or half-written. The follower printed nothing for that message, and
``verify`` later called the segment changed in storage. Now the message prints whole and
nothing is reported."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.ids import client_id_for
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

from .conftest import EXE
from .test_sync_cli import Lines

ROOM = "in-place"
ERIN = "erin@example.com"
ERIN_KEY = SigningKey(b"\x0b" * 32)


def erins_segment(bodies: list[str]) -> tuple[str, bytes]:
    now = int(time.time() * 1000)
    events: list[Event] = []
    prev = None
    for n, (kind, content) in enumerate(
        [
            (MEMBER, {"membership": "join", "displayname": "erin"}),
            *((MESSAGE, {"body": b, "msgtype": "m.text"}) for b in bodies),
        ]
    ):
        ev = build_event(
            room_id=ROOM,
            sender_id=ERIN,
            event_type=kind,
            content=content,
            timestamp_ms=now,
            unique=f"00000000-0000-4000-8000-{n + 1:012x}",
            prev_event_hash=prev,
            signing_key=ERIN_KEY,
        )
        prev = ev.hash
        events.append(ev)
    return path_for(events, client_id_for(ERIN, bytes(ERIN_KEY.verify_key))), encode_segment(events)


def test_follow_prints_a_segment_written_in_place_and_verify_finds_nothing(
    device, store: Path
) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com", setup=False)
    alice.user("create-room", "--room-id", ROOM, "--name", "In place")
    follow = subprocess.Popen(
        [EXE, "-s", str(store), "sync", "--room-id", ROOM, "--follow"],
        env=bob.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(follow)
        lines.wait_for("Following", timeout=30)
        path, data = erins_segment(["written in place", "in two goes"])
        target = store / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:  # created empty: the watch names it now
            time.sleep(0.3)
            out.write(data[: len(data) // 2])
            out.flush()
            time.sleep(0.3)
            out.write(data[len(data) // 2 :])
        lines.wait_for("in two goes", timeout=20)
        assert [x for x in lines.seen if "written in place" in x]
        assert follow.poll() is None
    finally:
        follow.terminate()
        try:
            follow.wait(timeout=10)
        except subprocess.TimeoutExpired:
            follow.kill()
            follow.wait()
    assert follow.stderr is not None
    assert "truncated" not in follow.stderr.read()
    verify = bob.run("verify", "--room-id", ROOM)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # bob's index holds the size he read: the folder's listing is compared with it
    assert "4 events in 2 segments" in verify.stdout
    assert "CLEAN: every signature and chain checks out." in verify.stdout, verify.stdout
