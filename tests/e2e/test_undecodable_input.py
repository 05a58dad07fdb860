"""Bytes that are not UTF-8 typed into ``chat`` (a POSIX-locale terminal hands them to
Python as lone surrogates) are not signed: every reader would reject such an event, and
it used to become this device's chain head, after which no message could be sent."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import EXE

ROOM = "bytes-room"


def test_chat_refuses_an_undecodable_line_and_keeps_sending(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    alice.user("create-room", "--room-id", ROOM, "--name", "Bytes")
    env = {**alice.env(), "LC_ALL": "C", "PYTHONIOENCODING": ""}  # stdin: surrogateescape
    chat = subprocess.run(
        [EXE, "-s", str(store), "chat", "--room-id", ROOM, "--user-id", alice.user_id],
        env=env,
        input=b"caf\xe9 latin-1\nafter it\n/quit\n",
        capture_output=True,
        timeout=120,
    )
    assert chat.returncode == 0, chat.stderr.decode("utf-8", "replace")
    assert b"Not sent: the line holds bytes that are not valid UTF-8 text." in chat.stdout
    out = alice.run("history", "--room-id", ROOM).stdout
    assert "after it" in out and "latin-1" not in out
    audit = alice.run("audit", "--room-id", ROOM, check=False)
    assert "bad-encoding" not in audit.stdout + audit.stderr
