"""``sync --follow`` and ``chat`` whose output's reader has gone (``| head -N``, ``| grep
-m1``): ``sync --follow`` ends at the next line it prints, quietly and with the exit
status it would have had, instead of running on with one traceback on stderr per event
(red team rt84: the engine logs and swallows what its listener raises,
``BrokenPipeError`` too); ``chat`` sends what is piped into it, to its end, and leaves
(red team rt89)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

from .conftest import EXE, Device

ROOM = "closed-output"


def ended_once_written(
    proc: subprocess.Popen[str], err: list[str], write: Callable[[int], None]
) -> bool:
    """Whether ``proc`` ends once ``write(n)`` gives it lines to print into its closed
    output. Counted, not timed: after each write this waits (up to 40 s) until it has
    ended or has logged one more failed write; two failed writes, still running, prove
    it never ends."""
    failed = 0
    for n in range(6):
        if proc.poll() is not None or failed >= 2:
            break
        write(n)
        for _ in range(200):
            if proc.poll() is not None or "".join(err).count("BrokenPipeError") > failed:
                break
            time.sleep(0.2)
        failed = "".join(err).count("BrokenPipeError")
    return proc.poll() is not None


def started(cmd: list[str], dev: Device, **kw: object) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        cmd,
        env=dev.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[call-overload]
    )
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr or ()), daemon=True).start()
    return proc, err


def read_until(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    while text not in (line := proc.stdout.readline()):
        assert line, f"it ended before printing {text!r}"


def test_follow_into_a_closed_pipe_ends_quietly(device) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Streams")
    bob.given_user("send", "--room-id", ROOM, "first")
    follow, err = started(
        [EXE, "-s", str(alice.store), "sync", "--room-id", ROOM, "--follow"], alice
    )
    try:
        read_until(follow, "Following; Ctrl-C to stop.")
        assert follow.stdout is not None
        follow.stdout.close()  # what `| head` does once it has its lines
        ended = ended_once_written(
            follow, err, lambda n: bob.given_user("send", "--room-id", ROOM, f"after it closed {n}")
        )
        code = follow.wait(timeout=30) if ended else None
    finally:
        if follow.poll() is None:
            follow.kill()
        follow.wait()
    assert ended, f"still following after failed writes into the closed pipe:\n{''.join(err)}"
    assert code == 0, "".join(err)
    assert "".join(err) == ""


def test_chat_into_a_closed_pipe_sends_what_is_piped_in_then_leaves_quietly(
    device,  # type: ignore[no-untyped-def]
) -> None:
    """Lines piped into a chat whose output's reader has gone are sent all the same, to
    the end of its input: it left at the first failed write, before reading what was
    piped in, which was never sent, unsaid, with exit 0 (red team rt89)."""
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Streams")
    chat, err = started(
        [EXE, "-s", str(alice.store), "chat", "--room-id", ROOM, "--user-id", alice.user_id],
        alice,
        stdin=subprocess.PIPE,
    )
    try:
        read_until(chat, "/quit or Ctrl-D to leave")
        read_until(chat, "join")  # the history so far: alice's join
        assert chat.stdout is not None and chat.stdin is not None
        chat.stdout.close()
        bob.given_user("send", "--room-id", ROOM, "after it closed")  # printing it fails
        chat.stdin.write("deploy 4711 done\n")
        chat.stdin.close()  # the end of its input: it leaves once that is sent
        code = chat.wait(timeout=60)
    finally:
        if chat.poll() is None:
            chat.kill()
        chat.wait()
    assert code == 0, "".join(err)  # nothing piped in was left undelivered
    assert "".join(err) == ""
    assert "deploy 4711 done" in bob.run("history", "--room-id", ROOM).stdout
