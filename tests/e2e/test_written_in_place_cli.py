"""``sync --follow`` on a folder shared with a client that writes segments in place (the
reference client opens the file, then writes it): the watch names the file while it is
still empty or half-written. The follower printed nothing for that message, and
``verify`` later called the segment changed in storage. Now the message prints whole and
nothing is reported."""

from __future__ import annotations

import time
from pathlib import Path

from nacl.signing import SigningKey

from .test_far_future_cli import signed_segment
from .test_sync_cli import following

ROOM = "in-place"
ERIN = "erin@example.com"
ERIN_KEY = SigningKey(b"\x0b" * 32)


def test_follow_prints_a_segment_written_in_place_and_verify_finds_nothing(
    device, store: Path
) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com", setup=False)
    alice.given_user("create-room", "--room-id", ROOM, "--name", "In place")
    with following(store, bob, ROOM) as (follow, lines):
        lines.wait_for("Following", timeout=30)
        now = int(time.time() * 1000)
        bodies = [(now, "written in place"), (now, "in two goes")]
        path, data = signed_segment(ROOM, bodies, now, (ERIN, ERIN_KEY))
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
    assert follow.stderr is not None
    assert "truncated" not in follow.stderr.read()
    verify = bob.run("verify", "--room-id", ROOM)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # bob's index holds the size he read: the folder's listing is compared with it
    assert "4 events in 2 segments" in verify.stdout
    assert "CLEAN: every signature and chain checks out." in verify.stdout, verify.stdout
