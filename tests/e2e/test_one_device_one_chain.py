"""Red team rt71: one user, one device, several processes and the local state they share.

Every ``bucket-chat`` below runs as the same device (one ``BUCKET_CHAT_HOME``: one key,
one data folder) against one and the same folder storage. The device's chain head lives
in its outbox. The attacks (no one hostile: a symlink, a ``..``, a cleanup tool, a bad
disk):

- the outbox file was chosen by the storage's *spelling* (``storage.url``), so a second
  spelling of the same folder was a second outbox that did not know the first one's
  head: the device forked its own chain, which every reader reports as a ``fork`` by
  this user (equivocation). Now the files are named after the folder's identity (its
  resolved path: ``Storage.identity``);
- an outbox removed with nothing waiting: the next send took its head from the index,
  whose last read predated the device's own sends, and forked the chain. Now a send
  with no head in the outbox reads the room from storage (``Publisher._local_head``);
- a damaged outbox file: ``send`` and ``sync`` died with a traceback (exit 1). Now it is
  set aside, said in one line, exit 2, and the next command goes on without a fork."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.session import outbox_path_for

from .conftest import Device, kinds

ROOM = "team"
USER = "alice@example.com"


def _same_device(device, name: str, store: Path) -> Device:  # type: ignore[no-untyped-def]
    """The same device (same home, same key) reaching the storage as ``store``."""
    return device(name, USER, setup=False, store_path=store)


def _forks_after_two_spellings(device, store: Path, other: Path) -> tuple[set[str], int]:  # type: ignore[no-untyped-def]
    laptop = device("laptop", USER)
    laptop.user("create-room", "--room-id", ROOM, "--name", "Team")
    laptop.user("send", "--room-id", ROOM, "one")
    # the same device, the same folder, written another way (a script, a shell alias)
    _same_device(device, "laptop", other).user("send", "--room-id", ROOM, "two")
    laptop.user("send", "--room-id", ROOM, "three")
    doc = laptop.json("verify", "--room-id", ROOM, check=False)
    forks = sum(1 for f in doc["findings"] if f["kind"] == "fork")
    return kinds(doc), forks


def test_same_folder_through_a_symlink_does_not_fork_the_devices_chain(
    device, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Red team rt71: ``send`` through a link to the folder, between two sends through
    the folder itself, used a second outbox: 1 fork by this user at every reader."""
    link = tmp_path / "chat-link"
    link.symlink_to(store, target_is_directory=True)
    found, forks = _forks_after_two_spellings(device, store, link)
    assert forks == 0, f"this device forked its own chain {forks} time(s): {found}"


def test_same_folder_written_with_dotdot_does_not_fork_the_devices_chain(
    device, store, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Red team rt71: the same with the folder written as ``elsewhere/../store``."""
    (tmp_path / "elsewhere").mkdir()
    dotdot = tmp_path / "elsewhere" / ".." / store.name
    found, forks = _forks_after_two_spellings(device, store, dotdot)
    assert forks == 0, f"this device forked its own chain {forks} time(s): {found}"


def _outbox_of(dev: Device) -> Path:
    return outbox_path_for(dev.home / "data", LocalStorage(dev.store).identity)


def _damage(outbox: Path) -> None:
    for extra in ("-wal", "-shm"):
        Path(f"{outbox}{extra}").unlink(missing_ok=True)
    outbox.write_bytes(b"this is not a database " * 300)  # a sync tool, a bad disk


def test_a_damaged_outbox_file_gets_a_message_not_a_traceback(device) -> None:  # type: ignore[no-untyped-def]
    """Red team rt71: ``send`` and ``sync`` on a damaged outbox ended with a raw
    traceback (``sqlite3.DatabaseError: file is not a database``), exit 1. Now each says
    in one line that the outbox was damaged and where the copy is (exit 2, the
    documented status of a storage error), never overwriting it; the next ``send`` goes
    on with a new outbox and does not fork the chain (its head is read from storage)."""
    laptop = device("laptop", USER)
    laptop.given_user("create-room", "--room-id", ROOM, "--name", "Team")
    laptop.given_user("send", "--room-id", ROOM, "one")
    outbox = _outbox_of(laptop)
    assert outbox.is_file()
    for command in ("send", "sync"):  # each on a damaged outbox
        _damage(outbox)
        if command == "send":
            proc = laptop.user("send", "--room-id", ROOM, "two", check=False)
        else:
            proc = laptop.run("sync", "--room-id", ROOM, check=False)
        assert "Traceback" not in proc.stderr, proc.stderr[-600:]
        assert proc.returncode == 2, (proc.args, proc.returncode, proc.stderr)
        said = proc.stderr.strip().splitlines()
        assert len(said) == 1 and "outbox" in said[0] and "damaged" in said[0], said
        copies = sorted(outbox.parent.glob(f"{outbox.name}.broken-*"))
        assert copies and any(c.name in said[0] for c in copies), (said, copies)
        assert all(c.read_bytes().startswith(b"this is not a database") for c in copies)
    assert len(copies) == 2  # the second damage kept too, never written over
    laptop.user("send", "--room-id", ROOM, "three")
    doc = laptop.json("verify", "--room-id", ROOM, check=False)
    assert not any(f["kind"] == "fork" for f in doc["findings"]), kinds(doc)
    history = laptop.json("history", "--room-id", ROOM)
    bodies = [e["content"]["body"] for e in history["events"] if e["type"] == "m.room.message"]
    assert bodies == ["one", "three"]  # "two" was not sent: the command said nothing was done


def test_an_outbox_removed_with_nothing_waiting_does_not_fork_the_chain(device) -> None:  # type: ignore[no-untyped-def]
    """Red team rt71. The outbox holds nothing undelivered (every ``send`` said "Sent");
    the user removes it (it "only" holds undelivered messages, README; or it was
    damaged: see the test above). The next ``send`` takes its head from the index,
    whose last complete read predates this device's own two sends (a ``send`` does not
    put what it wrote in the index): it continues the older event, and every reader
    reports a fork by this user. Now the head comes from storage."""
    laptop = device("laptop", USER)
    laptop.user("create-room", "--room-id", ROOM, "--name", "Team")
    laptop.run("sync", "--room-id", ROOM)  # a complete read: the index knows the room
    laptop.user("send", "--room-id", ROOM, "one")
    laptop.user("send", "--room-id", ROOM, "two")
    outbox = _outbox_of(laptop)
    with contextlib.closing(sqlite3.connect(outbox)) as db:  # nothing undelivered
        assert db.execute("SELECT COUNT(*) FROM pending").fetchone() == (0,)
    for extra in ("", "-wal", "-shm"):
        Path(f"{outbox}{extra}").unlink(missing_ok=True)
    laptop.user("send", "--room-id", ROOM, "three")
    doc = laptop.json("verify", "--room-id", ROOM, check=False)
    forks = sum(1 for f in doc["findings"] if f["kind"] == "fork")
    assert forks == 0, f"this device forked its own chain {forks} time(s): {kinds(doc)}"
