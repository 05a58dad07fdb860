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

import pytest
from cli_run import Result
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
    assert r.out.splitlines() == [
        "Discarded message 1, kept unsent for room 'two-devices'; it is gone from this "
        "device. Its text was:",
        "  let me go",
        "  second line",
    ]
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
    assert r.out.splitlines() == [
        "Discarded message 1, kept unsent for room 'two-devices'; a copy of its text stays "
        "in the outbox's log file on this device until the app and the command line have "
        "both closed the outbox (another Bucket Chat program was reading it). Its text was:",
        "  typed in the wrong room",
    ]
    assert "gone" not in r.out


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
