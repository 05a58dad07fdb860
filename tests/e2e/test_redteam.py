"""Red-team cases through the installed ``bucket-chat`` command: rooms written with the
project's own signing code as a hostile member would, then read by a fresh reader."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

from .conftest import EXE
from .test_sync_cli import Lines

ROOM = "redteam-room"
T0 = 1757851245000
_uuids = itertools.count(1)


class Device:
    """A device key writing one chain, as anyone with the project's code can."""

    def __init__(self, sender_id: str, seed: int) -> None:
        self.sender_id, self.key = sender_id, SigningKey(bytes([seed]) * 32)
        self.prev: str | None = None

    def emit(self, ts: int, event_type: str, content: dict[str, Any]) -> Event:
        n = next(_uuids)
        ev = build_event(
            room_id=ROOM,
            sender_id=self.sender_id,
            event_type=event_type,
            content=content,
            timestamp_ms=ts,
            unique=f"{n:08x}-0000-4000-8000-{n:012x}",
            prev_event_hash=self.prev,
            signing_key=self.key,
        )
        self.prev = ev.hash
        return ev

    def join(self, ts: int) -> Event:
        return self.emit(ts, MEMBER, {"membership": "join"})

    def say(self, ts: int, body: str) -> Event:
        return self.emit(ts, MESSAGE, {"body": body, "msgtype": "m.text"})


def _put(store: Path, events: list[Event], client: str) -> None:
    path = store / path_for(events, client, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_segment(events))


def test_sync_follow_never_prints_a_provisional_verdict(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    """A backdated impostor key next to alice's real one is a key-conflict. While history
    still loads, the engine's audit accepts keys provisionally (section 16); ``sync
    --follow`` printed those verdicts — the impostor as [verified] — and never took them
    back."""
    real = Device("alice@example.com", 1)
    impostor = Device("alice@example.com", 9)
    _put(store, [impostor.join(T0 - 1000), impostor.say(T0 - 999, "backdated impostor")], "i")
    _put(store, [real.join(T0), real.say(T0 + 1, "real alice")], "r")
    bob = device("bob", "bob@example.com", setup=False)
    follow = subprocess.Popen(
        [EXE, "-s", str(store), "sync", "--room-id", ROOM, "--follow"],
        env=bob.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(follow)
        lines.wait_for("Following", timeout=60)
    finally:
        follow.kill()
        follow.wait()
    printed = [line for line in lines.seen if "alice@example.com" in line]
    assert len(printed) == 4, lines.seen
    assert all("[KEY CHANGED]" in line for line in printed), printed


def test_a_device_does_not_vouch_for_an_impostor_introducing_it(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    """An impostor key claims alice in a room she has not written in yet (trusted on first
    use: a known limit) and "introduces" the public key of her real device, known from any
    other room. Her device's first send there used to accept that introduction on its own:
    instead of a key-conflict, the room verified CLEAN with the impostor as alice."""
    alice = device("alice", "alice@example.com")
    shown = alice.user("show-key").stdout
    real_key = next(line.split()[-1] for line in shown.splitlines() if "public key" in line)
    impostor = Device("alice@example.com", 9)
    _put(
        store,
        [
            impostor.join(T0),
            impostor.emit(T0 + 1, MEMBER, {"membership": "join", "add_device_key": real_key}),
            impostor.say(T0 + 2, "alice here: pay account X"),
        ],
        "imp",
    )
    sent = alice.user("send", "--room-id", ROOM, "hi, the real alice")
    assert "Not accepted" in sent.stderr and "accept-device" in sent.stderr
    reader = device("reader", "reader@example.com", setup=False)
    doc = reader.json("verify", "--room-id", ROOM, check=False)
    assert not doc["clean"]
    assert "key-conflict" in {f["kind"] for f in doc["findings"]}


def test_text_the_terminal_cannot_encode_is_escaped_not_a_traceback(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    """A body with an emoji, read on a terminal whose encoding lacks it (Latin-1, or a
    Windows console's ANSI code page when output is redirected), ended ``history`` with a
    UnicodeEncodeError traceback."""
    mallory = Device("mallory@example.com", 7)
    _put(store, [mallory.join(T0), mallory.say(T0 + 1, "emoji \U0001f600 and \u2211")], "m")
    reader = device("reader", "reader@example.com", setup=False)
    env = {**reader.env(), "PYTHONIOENCODING": "latin-1"}
    for command in ("history", "verify"):
        proc = subprocess.run(
            [EXE, "-s", str(store), command, "--room-id", ROOM],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert b"Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == 0, proc.stderr
        if command == "history":
            assert b"emoji \\U0001f600 and \\u2211" in proc.stdout


def test_oversized_file_at_a_segment_name_trusts_nobody_on_first_use(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    """A member replaces alice's segment with a file over the 64 MiB limit. What is left
    of alice is the impostor's key: it was trusted on first use (and pinned by the
    reader's index), although SECURITY.md promises that a file that is too large leaves
    the verdict partial, like a FIFO or a link."""
    real = Device("alice@example.com", 1)
    impostor = Device("alice@example.com", 9)
    events = [real.join(T0), real.say(T0 + 1, "real alice")]
    _put(store, events, "real")
    _put(store, [impostor.join(T0 + 5), impostor.say(T0 + 6, "impostor: pay X")], "imp")
    replaced = store / path_for(events, "real", 0)
    with replaced.open("r+b") as f:
        f.truncate(70 * 1024 * 1024)  # sparse: costs no disk
    reader = device("reader", "reader@example.com", setup=False)
    doc = reader.json("history", "--room-id", ROOM)
    assert [e["trust"] for e in doc["events"]] == ["unverified", "unverified"]
    assert "could not be read" in doc["events"][0]["reason"]
    assert not reader.json("verify", "--room-id", ROOM, check=False)["clean"]
