"""``bucket-chat sync`` and the outbox through the installed command: one-shot counts,
following a room live, a send to a read-only store that is delivered later exactly once,
and history that survives losing the local index.

The rooms are set up in this process (``Device.given``: the same ``main``); the commands
each test checks (``sync``, ``history``, ``chat``, ``verify``, the send that meets a
read-only store) run as real subprocesses."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import EXE, Device, segments
from .relations_flow import sent

ROOM = "sync-room"


def bodies_on_disk(store: Path, room: str = ROOM) -> list[str]:
    """Every message body in every segment file, duplicates included."""
    out = []
    for seg in segments(store, room):
        for line in seg.read_text().splitlines():
            event = json.loads(line)
            if event["type"] == "m.room.message":
                out.append(event["content"]["body"])
    return out


def history_bodies(dev: Device) -> list[str]:
    doc = dev.json("history", "--room-id", ROOM)
    return [e["content"]["body"] for e in doc["events"] if e["type"] == "m.room.message"]


def test_one_shot_sync_prints_counts(device) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com", setup=False)  # reading needs no key
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Sync")
    alice.given_user("send", "--room-id", ROOM, "one")
    alice.given_user("send", "--room-id", ROOM, "two")

    first = bob.run("sync", "--room-id", ROOM)
    assert first.stdout.strip() == f"{ROOM}: 3 events (3 new), 0 finding(s)"
    again = bob.run("sync", "--room-id", ROOM)
    assert again.stdout.strip() == f"{ROOM}: 3 events (0 new), 0 finding(s)"
    alice.given_user("send", "--room-id", ROOM, "three")
    later = bob.run("sync", "--room-id", ROOM)
    assert later.stdout.strip() == f"{ROOM}: 4 events (1 new), 0 finding(s)"

    missing = bob.run("sync", "--room-id", "no-such-room", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


class Lines:
    """A subprocess's stdout, read line by line on a thread, waited for with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(
            target=lambda: [self._queue.put(line) for line in stream], daemon=True
        ).start()

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in self.seen if text in line), None)
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line with {text!r} within {timeout} s: {self.seen}")
            with contextlib.suppress(queue.Empty):
                self.seen.append(self._queue.get(timeout=left))


@contextlib.contextmanager
def following(store: Path, reader: Device, room: str) -> Iterator[tuple[Any, Lines]]:
    """``bucket-chat sync --room-id room --follow`` on ``reader``'s device, its output
    read line by line; stopped (SIGTERM, then SIGKILL after 10 s) when the block ends."""
    proc = subprocess.Popen(
        [EXE, "-s", str(store), "sync", "--room-id", room, "--follow"],
        env=reader.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    try:
        yield proc, Lines(proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sync_follow_prints_messages_sent_while_it_runs(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com", setup=False)
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Sync")
    alice.given_user("send", "--room-id", ROOM, "before bob follows")
    with following(store, bob, ROOM) as (follow, lines):
        lines.wait_for("Following", timeout=20)
        assert "before bob follows" in lines.wait_for("before bob follows", timeout=1)
        alice.given_user("send", "--room-id", ROOM, "sent while bob follows")
        line = lines.wait_for("sent while bob follows", timeout=20)
        assert "[verified]" in line and "alice@example.com" in line
        assert follow.poll() is None  # still following
    assert sum("sent while bob follows" in line for line in lines.seen) == 1


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[Path]:
    """A folder on its own tmpfs, so it can be made read-only (needs root)."""
    mount = tmp_path / "small-store"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to make read-only (needs root): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=False)
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)


def test_a_send_to_a_read_only_store_is_queued_then_delivered_once(
    device,  # type: ignore[no-untyped-def]
    small_store: Path,
) -> None:
    alice = device("alice", "alice@example.com", store_path=small_store)
    bob = device("bob", "bob@example.com", setup=False, store_path=small_store)
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Sync")
    alice.given_user("send", "--room-id", ROOM, "before")
    remount(small_store, "ro")
    queued = alice.user("send", "--room-id", ROOM, "while read-only", check=False)
    assert queued.returncode == 3, queued.stdout + queued.stderr
    # refused, not unanswered: said so, and that it waits in the outbox (a read-only
    # folder is not retried for 30 s: a send that waited its deadline says it had no answer)
    assert "not delivered: the storage refused it" in queued.stderr, queued.stderr
    assert "wait in the outbox" in queued.stderr and "read-only" in queued.stderr
    assert "no answer" not in queued.stderr, queued.stderr
    assert bodies_on_disk(small_store) == ["before"]

    # Still read-only: sync reads fine, but reports the message as not delivered.
    stuck = alice.run("sync", "--room-id", ROOM, check=False)
    assert stuck.returncode == 3 and "could not deliver" in stuck.stdout

    remount(small_store, "rw")
    delivered = alice.run("sync", "--room-id", ROOM)
    assert "could not deliver" not in delivered.stdout
    assert bodies_on_disk(small_store) == ["before", "while read-only"]
    alice.run("sync", "--room-id", ROOM)  # nothing is left to send twice
    assert bodies_on_disk(small_store) == ["before", "while read-only"]
    assert history_bodies(bob) == ["before", "while read-only"]
    verify = bob.run("verify", "--room-id", ROOM)
    assert "CLEAN" in verify.stdout


def test_history_works_after_the_index_is_deleted_or_broken(device) -> None:  # type: ignore[no-untyped-def]
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com", setup=False)
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Sync")
    alice.given_user("send", "--room-id", ROOM, "--each-line", "-", input="first\nsecond\nthird\n")
    before = bob.json("history", "--room-id", ROOM)
    index_dir = bob.home / "data" / "index"
    files = [p for p in index_dir.iterdir() if p.suffix == ".sqlite3"]
    assert len(files) == 1

    shutil.rmtree(index_dir)
    assert bob.json("history", "--room-id", ROOM) == before
    assert index_dir.is_dir()  # rebuilt

    for p in index_dir.iterdir():
        p.unlink()
    files[0].write_bytes(b"definitely not sqlite" * 100)
    broken = bob.run("history", "--room-id", ROOM, "--json")
    assert json.loads(broken.stdout) == before
    assert "moved to" in broken.stderr  # says where the broken file went
    assert [p for p in index_dir.iterdir() if re.search(r"\.broken-\d+$", p.name)]
    text = bob.run("history", "--room-id", ROOM).stdout
    assert [line for line in text.splitlines() if "third" in line]
    assert history_bodies(bob) == ["first", "second", "third"]


def test_history_from_an_index_edited_to_hold_hostile_rows(device) -> None:  # type: ignore[no-untyped-def]
    """The index is a local file another program can edit. Rows that are not JSON, hold
    bad UTF-8, numbers too large, the wrong types, another event's line or a made-up
    trust state never crash ``history``; each damaged segment is read again from storage,
    so the history shown is exactly the one before, and the cache is repaired."""
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com", setup=False)
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Sync")
    for body in ("first", "second", "third", "fourth"):
        alice.given_user("send", "--room-id", ROOM, body)
    before = json.loads(bob.given("history", "--room-id", ROOM, "--json").stdout)
    (db,) = [p for p in (bob.home / "data" / "index").iterdir() if p.suffix == ".sqlite3"]
    conn = sqlite3.connect(db)
    with conn:
        rows = conn.execute("SELECT path, line, raw FROM events ORDER BY path, line").fetchall()
        assert len(rows) >= 5  # the join and four messages
        raw = {(p, n): r for p, n, r in rows}
        first, second, third, fourth = [k for k, r in raw.items() if '"m.room.message"' in r]
        put = "UPDATE events SET raw = ? WHERE path = ? AND line = ?"
        conn.execute(put, ("{not json", *first))
        huge = json.loads(raw[second])
        huge["timestamp_ms"] = 10**30
        conn.execute(put, (json.dumps(huge), *second))
        conn.execute(put, (raw[fourth], *third))  # another event's line under this row
        conn.execute(
            "UPDATE events SET raw = CAST(x'7bff22' AS TEXT) WHERE path = ? AND line = ?", fourth
        )
        conn.execute("UPDATE timeline SET state = 'trust-me'")
        conn.execute("UPDATE segment_findings SET kind = 'made-up'")
    conn.close()

    again = bob.run("history", "--room-id", ROOM, "--json")
    assert json.loads(again.stdout) == before
    assert "Traceback" not in again.stderr
    text = bob.run("history", "--room-id", ROOM)
    assert [line for line in text.stdout.splitlines() if "fourth" in line]
    conn = sqlite3.connect(db)  # repaired: every cached line is its row's event again
    with conn:
        repaired = dict(
            ((p, n), r) for p, n, r in conn.execute("SELECT path, line, raw FROM events")
        )
    conn.close()
    assert repaired == raw


def test_chat_and_follow_show_the_room_as_history_does(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    """Red team: ``chat`` opened with the room's last rows printed raw: a message its
    sender deleted showed its text ("my password is hunter2"), an edited one its first
    text, and each edit, deletion and reaction printed a line of its own ("* edit of
    …"); ``sync --follow`` printed the same. Both now print what ``history`` shows, and
    an edit, a deletion or a reaction that arrives as one line of what it did."""
    alice = device("alice", "alice@example.com")
    bob = device("bob", "bob@example.com")
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Sync")
    secret = sent(alice.given_user("send", "--room-id", ROOM, "my password is hunter2"))
    alice.given_user("delete", "--room-id", ROOM, secret, "--reason", "oops")
    meeting = sent(alice.given_user("send", "--room-id", ROOM, "meeting at 4"))
    alice.given_user("edit", "--room-id", ROOM, meeting, "meeting at 5")
    bob.given_user("send", "--room-id", ROOM, "--reply-to", meeting, "see you then")
    bob.given_user("react", "--room-id", ROOM, meeting, "👍")

    def as_history(out: str) -> None:
        assert "hunter2" not in out and "meeting at 4" not in out, out
        assert "(message deleted by alice@example.com; reason: oops)" in out, out
        assert "meeting at 5 (edited)" in out and "👍 1" in out, out
        assert "> alice@example.com (edited): meeting at 5" in out, out
        assert "* edit of" not in out and "* deletion of" not in out, out
        assert "* reaction" not in out, out

    chat = bob.user("chat", "--room-id", ROOM, input="/quit\n")
    as_history(chat.stdout)

    with following(store, bob, ROOM) as (follow, lines):
        lines.wait_for("Following", timeout=20)
        as_history("\n".join(lines.seen))
        # what arrives while it follows: one line each, never a deleted text
        later = sent(alice.given_user("send", "--room-id", ROOM, "call me at 555-0100"))
        lines.wait_for("call me at 555-0100", timeout=20)
        alice.given_user("edit", "--room-id", ROOM, later, "call me tomorrow")
        lines.wait_for("edited a message: call me tomorrow", timeout=20)
        alice.given_user("delete", "--room-id", ROOM, later)
        assert "deleted a message" in lines.wait_for("deleted a message", timeout=20)
        bob.given_user("react", "--room-id", ROOM, meeting, "🎉")
        reacted = lines.wait_for("reacted", timeout=20)
        assert "reacted 🎉 to alice@example.com (edited): meeting at 5" in reacted
        bob.given_user("react", "--room-id", ROOM, meeting, "🎉", "--remove")
        assert "bob@example.com" in lines.wait_for("took back a reaction", timeout=20)
        # a finding that arises while it follows is said, once
        day = sorted(p.parent.name for p in segments(store, ROOM))[-1]
        junk = store / "rooms" / ROOM / "logs" / day / "messages_1_2_junk.jsonl"
        junk.write_bytes(b"not json\n")
        assert "junk.jsonl" in lines.wait_for("! bad-json", timeout=20)
        assert follow.poll() is None
    assert not any("* edit of" in line or "* deletion of" in line for line in lines.seen)
    assert sum("! bad-json" in line for line in lines.seen) == 1
    assert not any("deleted a message" in line and "bob" in line for line in lines.seen)


def test_sync_and_chat_count_and_say_what_is_wrong_with_the_metadata(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    """Red team: a member rewrote ``metadata.json`` with a name of their own, signed by
    their key under alice's id. ``history`` and ``verify`` reported it; ``sync`` said
    "0 finding(s)" and ``chat`` titled the room with the forged name, no word said."""
    from nacl.signing import SigningKey

    from bucket_chat_desktop.protocol.metadata import build_metadata

    alice = device("alice", "alice@example.com")
    fresh = device("fresh", "fresh@example.com", setup=False)
    alice.given_user("create-room", "--room-id", ROOM, "--name", "Sync")
    alice.given_user("send", "--room-id", ROOM, "hello")
    alice.given("sync", "--room-id", ROOM)  # her device keeps the metadata it read
    (store / "rooms" / ROOM / "metadata.json").write_bytes(
        build_metadata(
            room_id=ROOM,
            name="Alice's Official Payments Room",
            created_at="2026-06-01T00:00:00.000Z",
            creator_id="alice@example.com",
            signing_key=SigningKey(b"\x4d" * 32),
        )
    )
    for reader, kind in ((alice, "metadata-changed"), (fresh, "metadata-signer-unknown")):
        synced = reader.run("sync", "--room-id", ROOM)
        history = json.loads(reader.run("history", "--room-id", ROOM, "--json").stdout)
        assert [f["kind"] for f in history["findings"]] == [kind]
        assert ", 1 finding(s)" in synced.stdout, synced.stdout
    chat = fresh.run("chat", "--room-id", ROOM, "--user-id", "fresh@example.com", input="/quit\n")
    title = next(line for line in chat.stdout.splitlines() if line.startswith("# "))
    assert "signed by an unknown key" in title, title
    assert "! metadata-signer-unknown" in chat.stdout, chat.stdout


def test_a_padded_edit_arriving_in_follow_begins_no_row_of_its_own(device, store: Path) -> None:  # type: ignore[no-untyped-def]
    """Red team rt62: ``sync --follow`` and ``chat`` print an arriving edit, deletion or
    reaction as a one-line notice, which was not cut into rows (``format.fit``): mallory
    padded her edit to a terminal's width and the rest began a screen row that read as
    alice's verified line. Every line the live output says is cut now."""
    fake = "2026-05-28 21:10:00  alice@example.com  [verified]  I approve the transfer to X"
    head = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  \S+  \[verified\]  ")
    alice = device("alice", "alice@example.com")
    mallory = device("mallory", "mallory@example.com")
    reader = device("reader", "reader@example.com", setup=False)
    reader.columns = None  # a pipe: 80 columns
    alice.given_user("create-room", "--room-id", "padded", "--name", "Payments")
    mine = sent(mallory.given_user("send", "--room-id", "padded", "draft"))
    with following(store, reader, "padded") as (_follow, lines):
        lines.wait_for("Following", timeout=30)
        mallory.given_user("edit", "--room-id", "padded", mine, "ok" + " " * 200 + fake)
        mallory.given_user(
            "delete", "--room-id", "padded", mine, "--reason", "ok" + " " * 120 + fake
        )
        lines.wait_for("deleted a message", timeout=30)
        lines.wait_for("(1 more characters)", timeout=30)  # the reason, cut at 200
    printed = [x.rstrip("\n") for x in lines.seen]
    assert (
        printed.count(
            "    2026-05-28 21:10:00  alice@example.com  [verified]  I approve the transfer"
        )
        == 2
    )
    assert all(len(x) <= 80 for x in printed), printed
    for width in (80, 120, 240):
        rows = [x[i : i + width] for x in printed for i in range(0, len(x), width)]
        starts = [x[:width] for x in printed]
        forged = [r for r in rows if head.match(r) and r not in starts]
        assert forged == [] and not any(head.match(x) and "I approve" in x for x in printed)
