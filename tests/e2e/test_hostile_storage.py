"""The ``bucket-chat`` command on a shared folder someone with write access booby-trapped:
a FIFO named like a segment (also like one of our own), linked folders leading out of
the storage, oversized metadata. Every command must finish (each subprocess runs under
a timeout), say what it met, and write nothing outside the storage."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import pytest

from .conftest import Device, segments

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and POSIX links")

ROOM = "trapped"


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


@pytest.fixture
def alice(device) -> Device:  # type: ignore[no-untyped-def]
    dev: Device = device("alice", "alice@example.com")
    dev.given_user("create-room", "--room-id", ROOM, "--name", "Trapped")
    dev.given_user("send", "--room-id", ROOM, "before the trap")
    return dev


def own_name_fifo(dev: Device) -> str:
    """A FIFO at a segment name carrying alice's own client id (the head lookup reads
    those before every send)."""
    mine = [p for p in segments(dev.store, ROOM) if "_alice-" in p.name][-1]
    _, start, end, rest = mine.name.split("_", 3)
    fifo = mine.parent / f"messages_{int(start) + 5}_{int(end) + 5}_{rest}"
    os.mkfifo(fifo)
    return str(fifo.relative_to(dev.store))


def test_verify_history_and_send_finish_and_name_a_fifo(alice: Device) -> None:
    fifo = own_name_fifo(alice)
    other = alice.store / "rooms" / ROOM / "logs" / today() / "messages_1_1_mallory-x.jsonl"
    other.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(other)

    verify = alice.run("verify", "--room-id", ROOM, check=False)
    # A FIFO where a segment could be is an object that could not be read: never clean
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert fifo in verify.stdout and "FIFO" in verify.stdout
    assert "segment-unreadable" in verify.stdout and "NOT CLEAN" in verify.stdout

    history = alice.run("history", "--room-id", ROOM, check=False)
    assert history.returncode == 0, history.stderr
    assert "before the trap" in history.stdout

    # Alice on a fresh machine (same key, empty outbox): the send first looks for her
    # chain's head among the segments carrying her client id, the FIFO among them.
    for box in alice.home.rglob("outbox"):
        for file in box.iterdir():
            file.unlink()
    sent = alice.user("send", "--room-id", ROOM, "after the trap")
    assert sent.returncode == 0
    assert fifo in sent.stderr and "FIFO" in sent.stderr  # named, then skipped
    doc = alice.json("verify", "--room-id", ROOM, check=False)
    events = alice.json("history", "--room-id", ROOM)["events"]
    bodies = [e["content"].get("body") for e in events if e["type"] == "m.room.message"]
    assert bodies == ["before the trap", "after the trap"]
    # One chain, continued, no fork. With objects named like segments left unread the
    # history is not whole, so nobody is trusted on first use: shown, not verified.
    assert "fork" not in {f["kind"] for f in doc["findings"]}
    assert doc["counts"]["unverified"] == len(events) and not doc["clean"]


@pytest.mark.parametrize("linked", ["logs", "date"])
def test_a_linked_folder_never_leads_a_send_out_of_the_storage(
    alice: Device, tmp_path: Path, linked: str, device
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    logs = alice.store / "rooms" / ROOM / "logs"
    if linked == "logs":
        moved = tmp_path / "old-logs"
        logs.rename(moved)
        logs.symlink_to(outside, target_is_directory=True)
        rel = f"rooms/{ROOM}/logs"
    else:
        day = logs / today()
        if day.exists():
            day.rename(tmp_path / "old-day")
        day.symlink_to(outside, target_is_directory=True)
        rel = f"rooms/{ROOM}/logs/{today()}"
    sent = alice.user("send", "--room-id", ROOM, "into the link?", check=False)
    assert sent.returncode != 0
    assert f"{rel} is a symbolic link" in sent.stderr
    assert list(outside.rglob("*")) == []  # no folder, no temp file, no segment
    verify = alice.run("verify", "--room-id", ROOM, check=False)
    assert verify.returncode == 1  # finishes, and does not read through the link
    assert list(outside.rglob("*")) == []
    # A device that never read the room: the link is no empty history. Listed as
    # nothing, the room (or the day) verified clean with nothing in it.
    bob = device("bob", "bob@example.com")
    (folder,) = [f for f in bob.json("verify", "--room-id", ROOM, check=False)["findings"]]
    assert folder["kind"] == "unread" and folder["path"] == f"{rel}/"
    assert f"{rel} is a symbolic link" in folder["message"]
    assert bob.run("verify", "--room-id", ROOM, check=False).returncode == 1


def test_a_room_whose_metadata_cannot_be_read_is_not_titled_as_one_without(
    alice: Device, device
) -> None:
    """A FIFO planted as ``metadata.json``: a device that never read the room titles it
    by its id and says its metadata could not be read (red team rt52: "(no metadata)",
    as if the room had none)."""
    meta = alice.store / "rooms" / ROOM / "metadata.json"
    meta.unlink()
    os.mkfifo(meta)
    bob = device("bob", "bob@example.com")
    history = bob.run("history", "--room-id", ROOM, check=False)
    assert history.returncode == 0, history.stderr
    title = history.stdout.splitlines()[0]
    assert title == f"# {ROOM} (its metadata.json could not be used: name and creator unknown)"
    assert "before the trap" in history.stdout
    assert "1 finding(s)" in history.stderr
    verify = bob.run("verify", "--room-id", ROOM, check=False)
    assert verify.stdout.startswith(f"Room {ROOM}: {title[2:]}\n"), verify.stdout
    assert "metadata.json is not a regular file (FIFO)" in verify.stdout


def test_a_file_where_todays_folder_must_be_is_said_by_send_and_verify(alice: Device) -> None:
    """Red team rt57: ``send`` said "queued, … will be delivered by the next 'bucket-chat
    sync'" for a message the folder refused (never so), and ``verify`` noted a stray
    object. Both say what the file does; once it is moved away, ``sync`` delivers."""
    day = alice.store / "rooms" / ROOM / "logs" / today()
    if day.exists():
        shutil.rmtree(day)
    day.write_bytes(b"squat\n")
    sent = alice.user("send", "--room-id", ROOM, "into the squat", check=False)
    assert sent.returncode == 3, sent.stdout + sent.stderr
    assert "not delivered: the storage refused it (cannot create folder" in sent.stderr
    assert "a file has that name" in sent.stderr and "until what refused it is fixed" in sent.stderr
    assert "will be delivered" not in sent.stderr
    verify = alice.run("verify", "--room-id", ROOM, check=False)
    assert f"rooms/{ROOM}/logs/{today()}" in verify.stdout
    assert "no message dated that day can be stored in this room" in verify.stdout
    day.unlink()
    synced = alice.run("sync", "--room-id", ROOM, check=False)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "into the squat" in alice.run("history", "--room-id", ROOM).stdout


def test_oversized_metadata_is_a_finding_not_a_read(alice: Device) -> None:
    meta = alice.store / "rooms" / ROOM / "metadata.json"
    meta.unlink()
    with open(meta, "wb") as fh:
        fh.truncate(32 * 1024**3)  # 32 GiB, sparse
    doc = alice.json("verify", "--room-id", ROOM, check=False)
    (finding,) = [f for f in doc["findings"] if f["kind"] == "metadata-invalid"]
    assert "65,536-byte limit" in finding["message"]


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
@pytest.mark.skipif(
    os.name == "posix" and os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="root reads every file, and setpriv (util-linux) is not here to drop that",
)
def test_members_of_a_room_whose_logs_cannot_be_read_say_why(tmp_path: Path) -> None:
    """Red team: a member made the room's ``logs/`` folder unreadable; ``members`` said
    "Nobody has joined yet." (the reason was only in a log line). Now it says no member
    could be read, names the folder and why, and counts the room's findings."""
    import contextlib
    import subprocess
    import tempfile

    from file_modes import IS_ROOT

    from .conftest import EXE, PASSPHRASE

    base = Path(tempfile.mkdtemp(prefix="bc-perm-"))
    try:
        base.chmod(0o755)
        store, home = base / "store", base / "home"
        env = {
            **os.environ,
            "BUCKET_CHAT_HOME": str(home),
            "BUCKET_CHAT_KEY_STORE": "file",
            "BUCKET_CHAT_PASSPHRASE": PASSPHRASE,
        }
        env.pop("BUCKET_CHAT_STORAGE", None)

        def run(*args: str, modes_apply: bool = False) -> subprocess.CompletedProcess[str]:
            # root reads any file: without the two capabilities that let it, modes apply
            drop = "-dac_override,-dac_read_search"
            prefix = (
                ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--"]
                if modes_apply and IS_ROOT
                else []
            )
            return subprocess.run(
                [*prefix, EXE, "-s", str(store), *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        assert run("setup-keys", "--user", "alice@example.com").returncode == 0
        made = run(
            "create-room", "--room-id", ROOM, "--user-id", "alice@example.com", "--name", "T"
        )
        assert made.returncode == 0, made
        (store / "rooms" / ROOM / "logs").chmod(0)
        out = run("members", "--room-id", ROOM, modes_apply=True)
        assert out.returncode == 0, out
        assert "Nobody has joined yet." not in out.stdout, out.stdout
        assert "No member could be read yet." in out.stdout, out.stdout
        assert "! unread:" in out.stdout and "permission denied" in out.stdout, out.stdout
        assert "finding(s); run 'bucket-chat verify" in out.stdout, out.stdout
    finally:
        with contextlib.suppress(OSError):
            (base / "store" / "rooms" / ROOM / "logs").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
