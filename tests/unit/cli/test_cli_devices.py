"""One user, several devices, and the life of a key, as ``bucket-chat`` does it
(red team rt72): one key on two devices (a restored backup) taking turns, ``accept-device``
of an introduction that is not there, ``add-device`` of a key that is no new device of
this user, ``setup-keys --force`` of a key that wrote.

``bucket-chat`` runs in-process. Each device is its own BUCKET_CHAT_HOME (its own key
file, index and outbox) over one shared folder; a restored key backup is the same
encrypted key file on a second device. Outcomes are checked as a fresh reader's
``verify``/``history --json`` report them, and a refusal by what it wrote: nothing."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_run import Result, run_main

PASSPHRASE = "correct horse battery staple"
ALICE, BOB = "alice@example.com", "bob@example.com"
ROOM = "two-devices"

Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "shared"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Cli:  # fmt: skip
    def call(user: str | None, *args: str, device: str | None = None) -> Result:
        name = device or user or "reader"
        monkeypatch.setenv("BUCKET_CHAT_HOME", str(tmp_path / "devices" / name))
        no_user = args[0] in ("history", "members", "verify", "sync", "rooms")
        argv = ["-s", str(store), *args] + (["--user-id", user] if user and not no_user else [])
        return run_main(capsys, argv)

    return call


def key_dir(tmp_path: Path, device: str) -> Path:
    return tmp_path / "devices" / device / "data" / "keys"


def restore_backup(tmp_path: Path, src: str, dst: str) -> None:
    """The key file of device ``src`` copied to device ``dst`` (what importing a backup
    made on ``src`` leaves there: the same encrypted key file)."""
    b = key_dir(tmp_path, dst)
    b.mkdir(parents=True, exist_ok=True)
    for f in key_dir(tmp_path, src).iterdir():
        shutil.copy(f, b / f.name)


def verify(cli: Cli) -> tuple[int, dict[str, Any]]:
    r = cli(None, "verify", "--room-id", ROOM, "--json", device="auditor")
    return r.code, json.loads(r.out)


def key_of(cli: Cli, user: str, device: str) -> str:
    r = cli(user, "show-key", device=device)
    assert r.code == 0, r
    return next(x.split()[-1] for x in r.out.splitlines() if x.startswith("public key:"))


def trust_by_body(cli: Cli, device: str = "fresh-reader") -> dict[str, str]:
    r = cli(None, "history", "--room-id", ROOM, "--json", device=device)
    assert r.code == 0, r
    return {
        (e["original_body"] or f"<{e['type']} {i}>"): e["trust"]
        for i, e in enumerate(json.loads(r.out)["events"])
    }


def files_of(folder: Path) -> list[str]:
    return sorted(str(Path(d, n)) for d, _, ns in os.walk(folder) for n in ns)


def refused(r: Result, *words: str) -> None:
    """Exit 2, one message on stderr naming ``words``, no traceback."""
    assert r.code == 2, r
    assert "Traceback" not in r.err and r.err.startswith("bucket-chat: "), r
    for word in words:
        assert word in r.err, r


@pytest.fixture
def alice_room(cli: Cli) -> str:
    """Alice's room, made on her laptop, with her message "one"; her laptop's key."""
    assert cli(ALICE, "setup-keys", device="laptop").code == 0
    assert cli(ALICE, "create-room", "--room-id", ROOM, "--name", "R", device="laptop").code == 0
    assert cli(ALICE, "send", "--room-id", ROOM, "one", device="laptop").code == 0
    return key_of(cli, ALICE, "laptop")


# -- one key on two devices (a restored key backup) --------------------------------------------


def test_a_device_that_read_its_keys_newer_event_continues_it_not_its_outbox_head(
    cli: Cli, tmp_path: Path, alice_room: str
) -> None:
    """Red team rt72, finding 1: Alice restores her key backup on her desktop and writes
    "two" there; back on the laptop she syncs (it reads "two", signed by this very key)
    and writes "three". The laptop continued its outbox's head ("one") instead of the
    chain's head it had read: every reader reported a fork of Alice's chain, both
    messages UNVERIFIED, the audit suggesting her key "may be in someone else's hands".
    The sync's read now moves the outbox's head forward to "two"."""
    restore_backup(tmp_path, "laptop", "desktop")
    assert cli(ALICE, "send", "--room-id", ROOM, "two", device="desktop").code == 0
    r = cli(None, "sync", "--room-id", ROOM, device="laptop")
    assert r.code == 0 and "0 finding(s)" in r.out, r
    assert cli(ALICE, "send", "--room-id", ROOM, "three", device="laptop").code == 0
    code, doc = verify(cli)
    forks = [f["message"] for f in doc["findings"] if f["kind"] == "fork"]
    assert forks == [] and code == 0, (code, doc["findings"])
    trust = trust_by_body(cli)
    assert trust["one"] == trust["two"] == trust["three"] == "verified", trust


# -- accept-device: only an introduction that is there -----------------------------------------


def test_accept_device_before_the_introduction_is_refused_and_writes_nothing(
    cli: Cli, store: Path, alice_room: str
) -> None:
    """Red team rt72, finding 2 (a): out of order, the new phone ran accept-device before
    the laptop ran add-device. It said "Accepted the introduction" although none existed;
    the acceptance join then came before the statement, so every reader showed it KEY
    CHANGED for good and verify reported "alice now signs with key …, which no earlier
    key of theirs introduced" — while the phone's own view showed it verified. Now it is
    refused, nothing written, and the message says what to do; in the right order
    afterwards every reader trusts the phone."""
    assert cli(ALICE, "setup-keys", device="phone").code == 0
    phone = key_of(cli, ALICE, "phone")
    before = files_of(store)
    r = cli(ALICE, "accept-device", "--room-id", ROOM, "--key", alice_room, device="phone")
    refused(r, "no introduction of this device", "add-device", "first")
    assert files_of(store) == before, "a refused accept-device wrote something"
    # The right order now: add-device on the laptop, accept-device on the phone.
    assert cli(ALICE, "add-device", "--room-id", ROOM, "--key", phone, device="laptop").code == 0
    r = cli(ALICE, "accept-device", "--room-id", ROOM, "--key", alice_room, device="phone")
    assert r.code == 0 and "Accepted the introduction" in r.out, r
    assert cli(ALICE, "send", "--room-id", ROOM, "from phone", device="phone").code == 0
    code, doc = verify(cli)
    assert code == 0 and doc["counts"]["key-changed"] == 0, doc
    assert trust_by_body(cli)["from phone"] == "verified"
    # Accepting again sends nothing more.
    again = cli(ALICE, "accept-device", "--room-id", ROOM, "--key", alice_room, device="phone")
    assert again.code == 0 and "already accepted" in again.out, again
    assert "Accepted the introduction" not in again.out


def test_accept_device_of_another_users_key_is_refused(
    cli: Cli, store: Path, alice_room: str
) -> None:
    """Red team rt72, finding 2 (b): Bob ran accept-device with Alice's key. No statement
    of Bob's id named his key, and the key is Alice's; the command said "Accepted the
    introduction by device key …" and every reader showed Bob, verified, "accepted a new
    device (introduced by key <Alice's>)"."""
    assert cli(BOB, "setup-keys", device="bob").code == 0
    assert cli(BOB, "send", "--room-id", ROOM, "bob says", device="bob").code == 0
    before = files_of(store)
    r = cli(BOB, "accept-device", "--room-id", ROOM, "--key", alice_room, device="bob")
    refused(r, f"writes as {ALICE!r}", "not a device of yours")
    assert files_of(store) == before


def test_accept_device_of_a_statement_under_another_users_id_is_refused(
    cli: Cli, store: Path, alice_room: str
) -> None:
    """A statement naming the phone's key made by Bob (anyone may copy a public key into
    a statement) introduces nothing for Alice: her phone's accept-device names Bob's key
    and is refused, nothing written."""
    assert cli(ALICE, "setup-keys", device="phone").code == 0
    phone = key_of(cli, ALICE, "phone")
    assert cli(BOB, "setup-keys", device="bob").code == 0
    assert cli(BOB, "send", "--room-id", ROOM, "bob says", device="bob").code == 0
    assert cli(BOB, "add-device", "--room-id", ROOM, "--key", phone, device="bob").code == 0
    bob = key_of(cli, BOB, "bob")
    before = files_of(store)
    r = cli(ALICE, "accept-device", "--room-id", ROOM, "--key", bob, device="phone")
    refused(r, f"writes as {BOB!r}")
    assert files_of(store) == before


# -- add-device: only a new device of this user -----------------------------------------------


def test_add_device_with_this_devices_own_key_is_refused(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str
) -> None:
    """Red team rt72, finding 3: after restoring her backup on the desktop, Alice followed
    "Several devices": show-key there, add-device with that key on the laptop. It is the
    laptop's own key: the command said "Introduced device key … for alice" and every
    reader was shown "added a device" — no device was added, and the two machines went on
    sharing one key. Refused now, saying the key is shared and what to do instead."""
    restore_backup(tmp_path, "laptop", "desktop")
    desktop = key_of(cli, ALICE, "desktop")
    assert desktop == alice_room
    before = files_of(store)
    r = cli(ALICE, "add-device", "--room-id", ROOM, "--key", desktop, device="laptop")
    refused(r, "this device already signs with that key", "setup-keys")
    assert files_of(store) == before


def test_add_device_of_a_key_that_writes_as_another_user_is_refused(
    cli: Cli, store: Path, alice_room: str
) -> None:
    """Red team rt72, finding 3: a key that writes as Bob in the room is Bob's, not a new
    device of Alice's: her statement naming it would only tell every reader that she
    names Bob's key as hers. Refused, nothing written."""
    assert cli(BOB, "setup-keys", device="bob").code == 0
    assert cli(BOB, "send", "--room-id", ROOM, "bob says", device="bob").code == 0
    bob = key_of(cli, BOB, "bob")
    before = files_of(store)
    r = cli(ALICE, "add-device", "--room-id", ROOM, "--key", bob, device="laptop")
    refused(r, f"writes as {BOB!r}", "not a device of yours")
    assert files_of(store) == before


def test_add_device_of_a_key_already_introduced_is_refused(
    cli: Cli, store: Path, alice_room: str
) -> None:
    """Red team rt72, finding 3: introducing the phone a second time adds nothing (the
    first statement stands): refused, saying to accept it on the phone if it has not."""
    assert cli(ALICE, "setup-keys", device="phone").code == 0
    phone = key_of(cli, ALICE, "phone")
    assert cli(ALICE, "add-device", "--room-id", ROOM, "--key", phone, device="laptop").code == 0
    before = files_of(store)
    r = cli(ALICE, "add-device", "--room-id", ROOM, "--key", phone, device="laptop")
    refused(r, "already introduced", "accept-device")
    assert files_of(store) == before


# -- setup-keys --force: never of a key that wrote ----------------------------------------------


def test_replacing_a_key_that_wrote_is_refused_and_the_old_messages_stay_verified(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str
) -> None:
    """Red team rt72, finding 4: ``setup-keys`` said "Use --force to replace it (messages
    signed with the old key stay valid)". --force deleted the old key with no backup and
    no introduction: after one message with the new key every reader without an earlier
    pin showed *all* of Alice's messages KEY CHANGED (two keys claimed her, neither
    introduced the other), and the old key, gone, could never repair it. Now --force of a
    key that wrote in a room this device knows is refused: the key stays, nothing is
    written, the message says why and how to get another key (a second device), and no
    command promises that old messages "stay valid"."""
    shown = cli(ALICE, "setup-keys", device="laptop")
    assert shown.code == 0 and "stay valid" not in shown.out, shown
    keys_before = files_of(key_dir(tmp_path, "laptop"))
    before = files_of(store)
    r = cli(ALICE, "setup-keys", "--force", device="laptop")
    refused(r, ROOM, "add-device")
    assert "stay valid" not in r.out + r.err, r
    assert files_of(store) == before
    assert files_of(key_dir(tmp_path, "laptop")) == keys_before
    assert key_of(cli, ALICE, "laptop") == alice_room
    assert cli(ALICE, "send", "--room-id", ROOM, "after", device="laptop").code == 0
    trust = trust_by_body(cli)
    assert trust["one"] == trust["after"] == "verified", trust


def test_replacing_a_key_that_wrote_nowhere_keeps_a_backup_of_the_old_one(
    cli: Cli, tmp_path: Path
) -> None:
    """A key that wrote in no room this device knows may be replaced, but the old one is
    never simply deleted (it may have written elsewhere, from a restored backup): it is
    kept in a backup file the command names, which opens with the same passphrase."""
    from bucket_chat_desktop.keys import import_backup, read_backup

    first = cli(ALICE, "setup-keys", device="laptop")
    old = key_of(cli, ALICE, "laptop")
    assert first.code == 0
    r = cli(ALICE, "setup-keys", "--force", device="laptop")
    assert r.code == 0 and "Created a signing key" in r.out, r
    new = key_of(cli, ALICE, "laptop")
    assert new != old
    (line,) = [x for x in r.out.splitlines() if "old key was kept in" in x]
    backup = Path(line.split("old key was kept in ", 1)[1].split()[0].rstrip(":;,"))
    assert backup.is_file() and backup.parent == key_dir(tmp_path, "laptop")
    restored = import_backup(read_backup(backup), PASSPHRASE)
    assert restored.public_key_b64 == old and restored.user_id == ALICE


def test_a_members_message_quoting_a_key_does_not_make_that_key_one_that_wrote(
    cli: Cli, store: Path, alice_room: str
) -> None:
    """Red team rt74: whether a key wrote was a text search of the stored lines for
    ``"sender_key":"K"``: Mallory's own message (her signature, good) whose content held
    a ``sender_key`` field naming the phone's key made the phone's ``setup-keys --force``
    refuse ("it wrote in 1 room(s) … Keep this key"), which was false, for good. Only an
    event's own ``sender_key`` counts."""
    import time
    import uuid

    from nacl.signing import SigningKey

    from bucket_chat_desktop.protocol.ids import segment_path
    from bucket_chat_desktop.protocol.signing import build_event

    assert cli(ALICE, "setup-keys", device="phone").code == 0
    phone = key_of(cli, ALICE, "phone")
    ts = int(time.time() * 1000)
    ev = build_event(
        room_id=ROOM,
        sender_id="mallory@example.com",
        event_type="m.room.message",
        content={"msgtype": "m.text", "body": "hello", "sender_key": phone},
        timestamp_ms=ts,
        unique=str(uuid.uuid4()),
        prev_event_hash=None,
        signing_key=SigningKey.generate(),
    )
    path = store / segment_path(ROOM, ts, ts, "mallory")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ev.line())
    read = cli(None, "history", "--room-id", ROOM, device="phone")
    assert read.code == 0 and "hello" in read.out, read
    r = cli(ALICE, "setup-keys", "--force", device="phone")
    assert r.code == 0 and "wrote in" not in r.err, r
    assert key_of(cli, ALICE, "phone") != phone
    # The laptop's key, which did write there, is still refused.
    refused(cli(ALICE, "setup-keys", "--force", device="laptop"), "wrote in")


# -- setup-keys and the messages the app keeps for its key (red team rt92) -------------------


def keep_in_app(
    tmp_path: Path, store: Path, device: str, key: str, room: str, *bodies: str
) -> Path:
    """What the app leaves in the device's outbox of ``store`` when the person typed
    ``bodies`` in ``room`` (first messages there, the room still being read) and quit
    before they could be signed: one hold each, for ``key``. Returns the outbox."""
    from bucket_chat_desktop.storage.local import LocalStorage
    from bucket_chat_desktop.sync.device_files import outbox_file
    from bucket_chat_desktop.sync.outbox import Outbox

    data = tmp_path / "devices" / device / "data"
    path = outbox_file(data, LocalStorage(store))
    path.parent.mkdir(parents=True, exist_ok=True)
    box = Outbox(path)
    try:
        for body in bodies:
            box.hold(
                room, key, ALICE, None, [("m.room.message", {"body": body, "msgtype": "m.text"})]
            )
    finally:
        box.close()
    return path


def kept_bodies(path: Path) -> list[str]:
    from bucket_chat_desktop.sync.outbox import Outbox

    box = Outbox(path)
    try:
        return [str(h.drafts[0][1]["body"]) for h in box.held()]
    finally:
        box.close()


def test_replacing_a_key_the_app_kept_messages_for_is_refused_saying_how_many_and_where(
    cli: Cli, store: Path, tmp_path: Path
) -> None:
    """Red team rt92, finding 1: the app keeps a first message typed while the room is
    read, unsigned, for this device's key (``Outbox.hold``); quit before it is signed,
    the outbox is the only copy of what was typed. ``setup-keys --force`` did not look
    at those: it replaced the key, and nothing would ever sign or show them again. A key
    that wrote nowhere but has messages kept for it is not replaced: the refusal says how
    many wait in which rooms, and to let the app send them first."""
    from bucket_chat_desktop.cli import key_use

    assert cli(ALICE, "setup-keys", device="laptop").code == 0
    old = key_of(cli, ALICE, "laptop")
    box = keep_in_app(tmp_path, store, "laptop", old, "general", "the only copy", "and more")
    keep_in_app(tmp_path, store, "laptop", old, "random", "elsewhere")
    keys_before = files_of(key_dir(tmp_path, "laptop"))
    r = cli(ALICE, "setup-keys", "--force", device="laptop")
    refused(r, "3 messages", "2 in room 'general'", "1 in room 'random'", "open the app")
    assert "wrote in" not in r.err, r  # it did not write: it has messages waiting
    assert key_of(cli, ALICE, "laptop") == old
    assert files_of(key_dir(tmp_path, "laptop")) == keys_before  # no backup, nothing
    assert kept_bodies(box) == ["the only copy", "and more", "elsewhere"]
    data = tmp_path / "devices" / "laptop" / "data"
    assert [(room, n) for _, room, n in key_use.kept_sends(data, old)] == [
        ("general", 2),
        ("random", 1),
    ]
    assert key_use.rooms_written_by(data, old) == []  # kept unsigned is not written


def test_replacing_a_key_that_wrote_and_has_a_message_kept_names_both(
    cli: Cli, store: Path, tmp_path: Path, alice_room: str
) -> None:
    """Both reasons are said: the message kept for the key (one, and where), and the
    rooms it wrote in."""
    keep_in_app(tmp_path, store, "laptop", alice_room, "later", "typed in the app")
    r = cli(ALICE, "setup-keys", "--force", device="laptop")
    refused(r, "1 message typed in the app waits", "1 in room 'later'", "wrote in 1 room(s)", ROOM)
    assert key_of(cli, ALICE, "laptop") == alice_room


def test_a_new_key_made_after_the_old_one_was_lost_names_the_messages_kept_for_it(
    cli: Cli, store: Path, tmp_path: Path
) -> None:
    """The key store lost the key (a wiped keyring, a deleted key file) while the app
    kept a message for it: ``setup-keys`` makes a new key (nothing else can be done),
    and says which messages the new key cannot sign, and that the app shows them; they
    stay kept with their text (the old key, restored, sends them)."""
    assert cli(ALICE, "setup-keys", device="laptop").code == 0
    old = key_of(cli, ALICE, "laptop")
    box = keep_in_app(tmp_path, store, "laptop", old, "general", "the only copy")
    for f in key_dir(tmp_path, "laptop").iterdir():
        f.unlink()
    r = cli(ALICE, "setup-keys", device="laptop")
    assert r.code == 0 and "Created a signing key" in r.out, r
    assert key_of(cli, ALICE, "laptop") != old
    assert "1 message typed in the app as alice@example.com waits" in r.err, r
    assert "for a key it no longer has (1 in room 'general')" in r.err, r
    assert "The app shows each in its room as not sent" in r.err, r
    assert "'outbox discard ID' lets one go" in r.err, r  # a way out of the outbox
    assert kept_bodies(box) == ["the only copy"]
    again = cli(ALICE, "setup-keys", "--force", device="laptop")  # the new key's own
    assert again.code == 0 and "for a key it no longer has" in again.err, again


def test_the_kept_messages_of_an_outbox_older_than_kept_sends_are_none(
    store: Path, tmp_path: Path
) -> None:
    """An outbox of a version that kept no sends has no ``held`` table: it keeps no
    message for any key (and is no reason to refuse, nor an error)."""
    import sqlite3

    from bucket_chat_desktop.cli import key_use

    path = keep_in_app(tmp_path, store, "laptop", "K", "general", "x")
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE held")
    data = tmp_path / "devices" / "laptop" / "data"
    assert key_use.kept_sends(data, "K") == []
    assert key_use.kept_for_other_keys(data, ALICE, "other") == []
    assert key_use.rooms_written_by(data, "K") == []


def test_an_index_kept_busy_by_another_program_is_one_line_not_a_traceback(
    cli: Cli, tmp_path: Path, alice_room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt71 (after its fix): an index another Bucket Chat program kept busy past
    the bounded wait raised ``IndexBusy`` (an ``sqlite3`` error) through `bucket-chat`,
    a traceback and exit 1. It is one line naming the index, exit 2, nothing moved."""
    import sqlite3

    from bucket_chat_desktop.index import db as index_db

    [index] = (tmp_path / "devices" / "laptop").rglob("index/*.sqlite3")
    writer = sqlite3.connect(index, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another program in the middle of a long write
    monkeypatch.setattr(index_db, "BUSY_TIMEOUT", 0.05)
    try:
        r = cli(ALICE, "send", "--room-id", ROOM, "two", device="laptop")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    refused(r, "index", "could not be opened", "busy")
    assert [p.name for p in index.parent.iterdir() if ".broken" in p.name] == []
    assert cli(ALICE, "send", "--room-id", ROOM, "two", device="laptop").code == 0
