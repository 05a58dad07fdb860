"""``bucket-chat outbox list`` and ``outbox discard``: the messages the app keeps unsent on
this device (``Outbox.hold``: typed while the room was read, not signed yet), listed, and
let go for good — only while still unsigned. A kept message that can never go out (its
key replaced on this device, too large to sign) had no way out of the outbox at all.

``bucket-chat`` runs in-process over a shared folder, each device its own
BUCKET_CHAT_HOME, as in ``test_cli_devices``; the race with a second process is a real
``bucket-chat send`` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_run import WIDE, Result
from test_cli_devices import (
    ALICE,
    PASSPHRASE,
    ROOM,
    Cli,
    alice_room,
    cli,
    env,
    keep_in_app,
    kept_bodies,
    refused,
    store,
    trust_by_body,
)

from bucket_chat_desktop.protocol.canonical import b64encode

__all__ = ["alice_room", "cli", "env", "store"]  # fixtures, used by name

OTHER_KEY = b64encode(b"\x07" * 32)  # a key this device no longer has

# A message too large to sign (the ones people discard): longer than the 20,000
# characters a body is cut at on a terminal, with tabs, and lines a shown body escapes.
LONG = "> quoted\n* starred\tand\ttabbed\n" + "x" * 30_004


def outbox(cli: Cli, *args: str) -> Result:
    return cli(None, "outbox", *args, device="laptop")


def test_outbox_list_shows_the_kept_messages_with_their_ids_and_rooms(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str
) -> None:
    """Each kept message: its ID (what ``discard`` takes), room, user id, the short
    fingerprint of the key that is to sign it, and its text; ``--room-id`` keeps one
    room's; ``--json`` has them all with their whole text."""
    keep_in_app(tmp_path, store, "laptop", OTHER_KEY, ROOM, "for a key replaced")
    keep_in_app(tmp_path, store, "laptop", alice_room, "elsewhere", "in another room")
    r = outbox(cli, "list")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[0].startswith("Kept unsent (not signed yet) in this device's outbox of")
    first, second = lines[1].split(), lines[2].split()
    assert first[:3] == ["1", "room", f"'{ROOM}'"] and lines[1].endswith("for a key replaced")
    assert second[:3] == ["2", "room", "'elsewhere'"] and lines[2].endswith("in another room")
    assert f"as {ALICE}" in lines[1] and "outbox discard ID" in r.out, r
    r = outbox(cli, "list", "--room-id", "elsewhere", "--json")
    doc = json.loads(r.out)
    assert [(k["id"], k["room_id"], k["text"]) for k in doc["kept"]] == [
        (2, "elsewhere", "in another room")
    ]
    assert doc["kept"][0]["sender_key"] == alice_room and doc["signed_waiting"] == 0


def test_outbox_list_says_when_nothing_is_kept(cli: Cli, alice_room: str) -> None:
    r = outbox(cli, "list")
    assert r.code == 0 and r.out.startswith("No message is kept unsent"), r


def test_outbox_discard_lets_a_kept_message_go_and_prints_its_text_once_more(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str
) -> None:
    """The message is gone from the outbox file, its text printed; the room never gets
    it (a later send signs nothing of it); a second discard, or one naming another room,
    discards nothing and says so (exit 2)."""
    box = keep_in_app(tmp_path, store, "laptop", OTHER_KEY, ROOM, "let me go\nsecond line")
    keep_in_app(tmp_path, store, "laptop", OTHER_KEY, ROOM, "keep me")
    refused(outbox(cli, "discard", "1", "--room-id", "elsewhere"), "kept for room 'two-devices'")
    assert kept_bodies(box) == ["let me go\nsecond line", "keep me"]
    r = outbox(cli, "discard", "1")
    assert r.code == 0, r
    assert r.out == "let me go\nsecond line"  # exactly: nothing else on standard output
    assert r.err == (
        "Discarded message 1, kept unsent for room 'two-devices'; it is gone from this "
        "device. Its text was written to standard output.\n"
    )
    assert kept_bodies(box) == ["keep me"]
    refused(outbox(cli, "discard", "1"), "no message 1 is kept unsent", "outbox list")
    assert cli(ALICE, "send", "--room-id", ROOM, "after", device="laptop").code == 0
    assert "let me go\nsecond line" not in trust_by_body(cli)


def test_outbox_discard_while_the_app_reads_the_outbox_says_a_copy_stays_in_its_log(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app is in the middle of reading the outbox when ``outbox discard`` runs: the
    outbox's log cannot be emptied then, and a copy of the text stays there. The command
    says so, never "gone" (red team rt97); the message is discarded all the same."""
    from bucket_chat_desktop.sync import outbox as outbox_module

    monkeypatch.setattr(outbox_module, "EMPTY_LOG_WAIT_MS", 10)
    path = keep_in_app(tmp_path, store, "laptop", OTHER_KEY, ROOM, "typed in the wrong room")
    app = outbox_module.Outbox(path)
    try:
        app._db.execute("BEGIN")
        assert [h.seq for h in app.held()] == [1]  # the app's read, still open
        r = outbox(cli, "discard", "1")
        app._db.execute("COMMIT")
        assert app.held() == []
    finally:
        app.close()
    assert r.code == 0, r
    assert r.out == "typed in the wrong room"  # written whole before the discard
    assert r.err == (
        "Discarded message 1, kept unsent for room 'two-devices'; a copy of its text stays "
        "in the outbox's log file on this device until the app and the command line have "
        "both closed the outbox (another Bucket Chat program was reading it). Its text was "
        "written to standard output.\n"
    )
    assert "gone" not in r.err


def test_outbox_discard_of_a_message_signed_meanwhile_discards_nothing(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str
) -> None:
    """A kept message a send signed before the discard reached the outbox (a command's
    send signs the older kept messages of its room first) is queued: exit 2, "not
    discarded", naming the event it was signed as; it goes out."""
    box = keep_in_app(tmp_path, store, "laptop", alice_room, ROOM, "typed in the app")
    assert cli(ALICE, "send", "--room-id", ROOM, "typed in the terminal", device="laptop").code == 0
    r = outbox(cli, "discard", "1")
    refused(r, "not discarded: message 1 was signed meanwhile", f"{ROOM}::", "cannot be")
    # The send delivered it before it ended: sent, not "queued" (review rev1: the note of
    # what a kept message was signed as is kept a day, long after it was stored).
    assert f"and was sent already, as {ROOM}::" in r.err and "queued" not in r.err, r
    assert kept_bodies(box) == []
    assert outbox(cli, "list").out.startswith("No message is kept unsent")
    assert trust_by_body(cli)["typed in the app"] == "verified"


def test_outbox_discard_racing_a_send_in_another_process_never_loses_or_doubles_one(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race, with two real processes on one profile: ``bucket-chat send`` (its own
    process) signs the app's kept messages of the room, oldest first, in one
    transaction, while ``outbox discard`` lets them go one by one here. Whatever the
    order, each kept message ends discarded (never in the room) or signed (in the room
    once, the discard saying "not discarded"), never both, never neither."""
    bodies = [f"kept {n}" for n in range(1, 41)]
    box = keep_in_app(tmp_path, store, "laptop", alice_room, ROOM, *bodies)
    home = tmp_path / "devices" / "laptop"
    send = subprocess.Popen(
        [sys.executable, "-m", "bucket_chat_desktop.cli", "-s", str(store), "send",
         "--room-id", ROOM, "--user-id", ALICE, "typed in the terminal"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BUCKET_CHAT_HOME": str(home), "BUCKET_CHAT_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip
    said: dict[str, Result] = {}
    try:
        for n in range(len(bodies), 0, -1):  # the newest first: the send signs the oldest
            said[bodies[n - 1]] = outbox(cli, "discard", str(n))
    finally:
        out, err = send.communicate(timeout=120)
    assert send.returncode == 0, (out, err)
    discarded = {b for b, r in said.items() if r.code == 0}
    signed = {b for b, r in said.items() if r.code == 2 and "signed meanwhile" in r.err}
    assert discarded | signed == set(bodies) and not discarded & signed, said
    assert kept_bodies(box) == []
    shown = trust_by_body(cli)
    assert signed <= set(shown) and not discarded & set(shown), shown
    assert shown["typed in the terminal"] == "verified"


def test_outbox_discard_refuses_a_room_id_that_is_none(cli: Cli, alice_room: str) -> None:
    refused(outbox(cli, "discard", "1", "--room-id", "a/b"))


def discard_in_process(
    store: Path, tmp_path: Path, stdout: int, *args: str
) -> subprocess.CompletedProcess[str]:
    """``outbox discard`` as its own process, its standard output ``stdout`` (a file
    descriptor: a pipe, a device), so that what it is is what the command sees."""
    home = tmp_path / "devices" / "laptop"
    return subprocess.run(
        [sys.executable, "-m", "bucket_chat_desktop.cli", "-s", str(store), "outbox",
         "discard", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env={**os.environ, "BUCKET_CHAT_HOME": str(home), "BUCKET_CHAT_PASSPHRASE": PASSPHRASE,
             "COLUMNS": WIDE},  # its lines on standard error not cut (``format.fit``)
    )  # fmt: skip


def test_outbox_discard_writes_a_long_text_whole_and_as_typed_before_it_goes(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str
) -> None:
    """Review rev1: the kept text was deleted first, then printed as a body is shown from
    storage: cut at 20,000 characters ("… (10,004 more characters)"), tabs as ``\\x09``,
    a leading ``>`` or ``*`` escaped; the rest was gone for good. Now standard output
    (a file here) has it byte for byte, and nothing else."""
    box = keep_in_app(tmp_path, store, "laptop", OTHER_KEY, ROOM, LONG)
    r = outbox(cli, "discard", "1")
    assert r.code == 0, r
    assert r.out == LONG
    assert "Its text was written to standard output." in r.err, r
    assert kept_bodies(box) == []


def test_outbox_discard_to_a_file_writes_it_exactly_and_never_over_another(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str
) -> None:
    """``--to FILE``: a new file holds the text exactly, private to its owner; a file
    that exists is not overwritten, and nothing is discarded; nor when the folder is
    not there."""
    box = keep_in_app(tmp_path, store, "laptop", OTHER_KEY, ROOM, LONG, "next")
    there = tmp_path / "there.txt"
    there.write_text("mine")
    refused(outbox(cli, "discard", "1", "--to", str(there)), "still kept", "exists already")
    refused(outbox(cli, "discard", "1", "--to", str(tmp_path / "no" / "x.txt")), "still kept")
    assert there.read_text() == "mine" and kept_bodies(box) == [LONG, "next"]
    saved = tmp_path / "saved.txt"
    r = outbox(cli, "discard", "1", "--to", str(saved))
    assert r.code == 0 and r.out == "", r
    assert f"Its text was written to {saved}." in r.err, r
    assert saved.read_bytes() == LONG.encode()
    assert saved.stat().st_mode & 0o077 == 0
    assert kept_bodies(box) == ["next"]


def test_outbox_discard_into_a_pipe_discards_nothing_even_when_its_reader_is_gone(
    store: Path, tmp_path: Path, alice_room: str
) -> None:
    """``outbox discard 1 | head -1``: the reader of a pipe may keep less than all it
    is given, and the write cannot tell; the text was gone after its first line. A
    pipe is refused (its reader gone or not), and the message stays kept."""
    box = keep_in_app(tmp_path, store, "laptop", OTHER_KEY, ROOM, LONG)
    read, write = os.pipe()
    os.close(read)  # closed: as after head -1
    try:
        r = discard_in_process(store, tmp_path, write, "1")
    finally:
        os.close(write)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "not discarded: message 1 is still kept" in r.stderr
    assert "standard output is a pipe" in r.stderr and "--to FILE" in r.stderr
    read, write = os.pipe()
    try:
        r = discard_in_process(store, tmp_path, write, "1")
    finally:
        os.close(write)
        with os.fdopen(read) as reader:
            assert reader.read() == ""
    assert r.returncode == 2 and "standard output is a pipe" in r.stderr, r.stderr
    assert kept_bodies(box) == [LONG]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_outbox_discard_whose_text_cannot_be_written_discards_nothing(
    store: Path, tmp_path: Path, alice_room: str
) -> None:
    """Standard output that refuses the text (a full disk: ``/dev/full``): nothing is
    discarded, and the command says why, exit 2."""
    box = keep_in_app(tmp_path, store, "laptop", OTHER_KEY, ROOM, LONG)
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        r = discard_in_process(store, tmp_path, fd, "1")
    finally:
        os.close(fd)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "not discarded: message 1 is still kept" in r.stderr
    assert "could not be written to standard output" in r.stderr
    assert "Exception ignored" not in r.stderr  # nothing failed again at exit
    assert kept_bodies(box) == [LONG]


def test_outbox_discard_on_a_terminal_shows_the_text_as_typed_or_discards_nothing(
    store: Path, tmp_path: Path, alice_room: str
) -> None:
    """On a terminal the text is shown exactly, tabs and all, when nothing in it acts on
    the terminal; one with an escape sequence is not shown and not discarded (--to)."""
    import pty

    box = keep_in_app(tmp_path, store, "laptop", OTHER_KEY, ROOM, "a\tb\n> c", "\x1b[2Jd")

    def on_terminal(seq: str) -> tuple[int, bytes]:
        main, side = pty.openpty()
        try:
            r = discard_in_process(store, tmp_path, side, seq)
        finally:
            os.close(side)
        shown = b""
        try:
            while chunk := os.read(main, 65536):
                shown += chunk
        except OSError:  # the terminal's other side is closed: all is read
            pass
        finally:
            os.close(main)
        return r.returncode, shown

    code, shown = on_terminal("2")
    assert code == 2 and shown == b"" and kept_bodies(box) == ["a\tb\n> c", "\x1b[2Jd"]
    code, shown = on_terminal("1")
    assert code == 0 and shown.replace(b"\r\n", b"\n") == b"a\tb\n> c\n"
    assert kept_bodies(box) == ["\x1b[2Jd"]


def test_what_became_of_a_signed_kept_message_is_read_in_the_queue() -> None:
    """Queued while any of its events waits in the outbox (not only marked), else sent."""
    from bucket_chat_desktop.cli.outbox_cmd import _signed_as
    from bucket_chat_desktop.sync.outbox import PendingMessage

    class Signed:
        def __init__(self, event_id: str) -> None:
            self.event_id = event_id

    signed: list[Any] = [Signed("r::a"), Signed("r::b")]

    def waiting(state: str) -> list[PendingMessage]:
        return [PendingMessage("r", "r::b", "", state, None)]

    assert _signed_as(signed, waiting("sending")) == "is queued to be sent as r::b"
    assert _signed_as(signed, waiting("queued")) == "is queued to be sent as r::b"
    assert _signed_as(signed, waiting("failed")) == "is queued to be sent as r::b"
    assert _signed_as(signed, waiting("sent")) == "was sent already, as r::b"
    assert _signed_as(signed, []) == "was sent already, as r::b"
