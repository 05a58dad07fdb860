"""Bytes that are not UTF-8 typed into ``chat`` or piped into ``send -`` are not signed:
every reader would reject such an event, and it used to become this device's chain head,
after which no message could be sent. Under every locale: a POSIX-locale terminal hands
them to Python as lone surrogates; under a UTF-8 locale (the usual desktop) Python reads
standard input strictly unless the command says otherwise (red team rt84)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import EXE

ROOM = "bytes-room"


def test_chat_refuses_an_undecodable_line_and_keeps_sending(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Bytes")
    env = {**alice.env(), "LC_ALL": "C", "PYTHONIOENCODING": ""}  # stdin: surrogateescape
    chat = subprocess.run(
        [EXE, "-s", str(store), "chat", "--room-id", ROOM, "--user-id", alice.user_id],
        env=env,
        input=b"caf\xe9 latin-1\nafter it\n/quit\n",
        capture_output=True,
        timeout=120,
    )
    # as ``send -``: refused on stderr, exit 2 (the other lines are sent)
    assert chat.returncode == 2, chat.stderr.decode("utf-8", "replace")
    assert (
        chat.stderr == b"bucket-chat: not sent: line 1 holds bytes that are not valid UTF-8 text\n"
    )
    out = alice.run("history", "--room-id", ROOM).stdout
    assert "after it" in out and "latin-1" not in out
    audit = alice.run("audit", "--room-id", ROOM, check=False)
    assert "bad-encoding" not in audit.stdout + audit.stderr


def test_chat_fed_bytes_that_are_not_utf8_on_a_utf8_locale_refuses_the_line_and_goes_on(
    device, store: Path
) -> None:  # type: ignore[no-untyped-def]
    """Red team rt84: the thread reading ``chat``'s input died of a UnicodeDecodeError
    (a traceback on stderr) and the chat then waited for ever; ``/quit`` was never read."""
    alice = device("alice", "alice@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Bytes")
    env = {**alice.env(), "PYTHONIOENCODING": "utf-8"}  # stdin as en_US.UTF-8 gives it
    env.pop("LC_ALL", None)
    try:
        chat = subprocess.run(
            [EXE, "-s", str(store), "chat", "--room-id", ROOM, "--user-id", alice.user_id],
            env=env,
            input=b"caf\xe9 latin-1\nafter it\n/quit\n",
            capture_output=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            "chat never ended (its stdin thread died; /quit was never read):\n"
            + (exc.stderr or b"").decode("utf-8", "replace")[-1500:]
        ) from None
    err = chat.stderr.decode("utf-8", "replace")
    assert chat.returncode == 2, err
    assert "Traceback" not in err, err
    assert err == "bucket-chat: not sent: line 1 holds bytes that are not valid UTF-8 text\n"
    out = alice.run("history", "--room-id", ROOM).stdout
    assert "after it" in out and "latin-1" not in out


def test_send_from_stdin_with_bytes_that_are_not_utf8_on_a_utf8_locale_refuses_in_one_line(
    device, store: Path
) -> None:  # type: ignore[no-untyped-def]
    """Red team rt84: a UnicodeDecodeError's traceback and exit 1, not the refusal."""
    alice = device("alice", "alice@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Bytes")
    env = {**alice.env(), "PYTHONIOENCODING": "utf-8"}  # stdin as en_US.UTF-8 gives it
    sent = subprocess.run(
        [EXE, "-s", str(store), "send", "--room-id", ROOM, "--user-id", alice.user_id, "-"],
        env=env,
        input=b"caf\xe9 latin-1\n",
        capture_output=True,
        timeout=60,
    )
    assert sent.returncode == 2, sent
    assert sent.stderr == (
        b"bucket-chat: the message holds bytes that are not valid UTF-8 text; nothing sent\n"
    )
    assert "latin-1" not in alice.run("history", "--room-id", ROOM).stdout
