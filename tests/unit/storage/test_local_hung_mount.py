"""A local folder with a mount in it that never answers (red team rt51).

Only a read had a deadline: a listing, a check or a write that reached the mount waited
for ever, and ``verify`` printed nothing for as long as it ran. Its thread, one of
``asyncio.to_thread``'s, was waited for when Python exited, so even a command that had
given up (and Ctrl-C) never ended. Each call now has a deadline past which it is "no
answer" (a passing failure), and its thread, left stuck, is never waited for."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hung_mount import HUNG_MOUNT, Lines, mountable, run_child, unshare
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.activity import activity_folder
from bucket_chat_desktop.protocol.ids import utc_date
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import RoomWriter

DAY = "rooms/r/logs/2026-01-05"

CHILD = r"""
import asyncio
from bucket_chat_desktop.storage import local
from bucket_chat_desktop.storage.base import StorageError

local.READ_TIMEOUT = 1.0  # seconds, not two minutes
store = local.LocalStorage(sys.argv[2])
day = "rooms/r/logs/2026-01-05"
calls = {
    "list": lambda: store.list_objects("rooms/r/logs/"),
    "get": lambda: store.get(day + "/hung/a.jsonl"),
    "exists": lambda: store.exists(day + "/hung/a.jsonl"),
    "written_lately": lambda: store.written_lately(day + "/hung/a.jsonl"),
    "put": lambda: store.put_if_absent(day + "/hung/b.jsonl", b"x"),
}


async def main() -> None:
    for name, call in calls.items():
        try:
            await call()
            print(name, "answered", flush=True)
        except StorageError as exc:
            print(name, "transient" if exc.transient else "final", exc, flush=True)


asyncio.run(main())
print("ending", flush=True)  # and Python exits, its calls' threads still stuck
"""


def test_every_call_into_a_mount_that_never_answers_ends_and_so_does_the_program(
    tmp_path: Path,
) -> None:
    why = mountable()
    if why:
        pytest.skip(why)
    root = tmp_path / "store"
    (root / DAY / "hung").mkdir(parents=True)  # a mount point in the child
    (root / DAY / "one.jsonl").write_bytes(b"{}\n")
    script = tmp_path / "child.py"
    script.write_text(HUNG_MOUNT + CHILD)
    child = subprocess.Popen(
        [*unshare(), sys.executable, str(script), str(root / DAY / "hung"), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    lines = Lines(child.stdout.fileno())
    try:
        for name in ("list", "get", "exists", "written_lately", "put"):
            line = lines.next(timeout=30)
            assert line.startswith(f"{name} transient "), line
            # the first call into the mount, or one that checks the same path again
            # while the first is stuck (exists, then written_lately)
            assert "no answer within 1 s (is the folder on a network share or a mount " in line or (
                f"no answer (a call into {DAY}/hung/, made 1 s ago, has had none yet; is the "
                "folder on a network share or a mount that stopped answering?)" in line
            ), line
        assert lines.next(timeout=30) == "ending"
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        err = child.stderr.read()
        child.wait()
    assert "Traceback" not in err, err


ANOTHER = r"""
import asyncio
from bucket_chat_desktop.storage import local
from bucket_chat_desktop.storage.base import StorageError

local.READ_TIMEOUT = 1.0
hostile = local.LocalStorage(sys.argv[2])
other = local.LocalStorage(sys.argv[3])  # another storage, with nothing hostile in it


async def main() -> None:
    for _ in range(local.WORKERS + 2):  # more rounds of polling into the mount than threads
        try:
            await hostile.exists("rooms/r/logs/2026-01-05/hung/a.jsonl")
        except StorageError:
            pass
    print("stuck", flush=True)
    print(await other.put_if_absent("rooms/x/logs/2026-01-05/a.jsonl", b"{}\n"), flush=True)
    print(len(await other.list_objects("rooms/")), flush=True)


asyncio.run(main())
"""


def test_a_mount_that_never_answers_in_one_storage_holds_up_no_other(tmp_path: Path) -> None:
    """Red team rt53: one set of threads served every local storage; calls stuck on one
    room's hung mount filled it, and another storage's reads and its outbox's writes got
    "no answer" until the app restarted. Each storage has threads of its own."""
    why = mountable()
    if why:
        pytest.skip(why)
    root, other = tmp_path / "store", tmp_path / "other"
    (root / DAY / "hung").mkdir(parents=True)
    other.mkdir()
    script = tmp_path / "child.py"
    script.write_text(HUNG_MOUNT + ANOTHER)
    command = [*unshare(), sys.executable, str(script), str(root / DAY / "hung"), str(root)]
    child = subprocess.Popen(
        [*command, str(other)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stderr is not None
    lines = Lines(child.stdout.fileno())
    try:
        assert lines.next(timeout=60) == "stuck"
        assert lines.next(timeout=30) == "True"  # written
        assert lines.next(timeout=30) == "1"  # listed
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        err = child.stderr.read()
        child.wait()
    assert "Traceback" not in err, err


SAME = r"""
import asyncio
from bucket_chat_desktop.storage import local
from bucket_chat_desktop.storage.base import StorageError

local.READ_TIMEOUT = 1.0
store = local.LocalStorage(sys.argv[2])
hung = "rooms/r/logs/2026-01-05/hung/a.jsonl"


async def main() -> None:
    for _ in range(local.WORKERS + 2):  # more rounds of polling into the mount than threads
        for call in (lambda: store.exists(hung), lambda: store.list_objects("rooms/r/logs/")):
            try:
                await call()
            except StorageError as exc:
                print(exc, flush=True)
    print("stuck", flush=True)
    # more folders in the mount than threads, each called into once (names a member
    # chose, or a write named by its moment): each stuck thread is let go and replaced
    for n in range(local.WORKERS + 2):
        try:
            await store.exists(f"rooms/r/logs/2026-01-05/hung/d{n}/a.jsonl")
        except StorageError:
            pass
    # another room of the same storage
    print(await store.put_if_absent("rooms/x/logs/2026-01-05/a.jsonl", b"{}\n"), flush=True)
    print(len(await store.list_objects("rooms/x/")), flush=True)


asyncio.run(main())
"""


def test_a_mount_that_never_answers_holds_up_no_other_room_of_its_storage(
    tmp_path: Path,
) -> None:
    """Each round of polling into a room's hung mount left one more of the storage's
    threads stuck on the same call; after ``WORKERS`` rounds every room of that storage
    had "no answer" until the app restarted. A call into a folder while an earlier one
    into it is stuck is answered "no answer" at once, and takes no thread; a call into
    another folder of the mount that gets stuck has its thread let go and replaced."""
    why = mountable()
    if why:
        pytest.skip(why)
    root = tmp_path / "store"
    (root / DAY / "hung").mkdir(parents=True)
    script = tmp_path / "child.py"
    script.write_text(HUNG_MOUNT + SAME)
    command = [*unshare(), sys.executable, str(script), str(root / DAY / "hung"), str(root)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    lines = Lines(child.stdout.fileno())
    try:
        first = [lines.next(timeout=60), lines.next(timeout=60)]
        assert all("no answer within 1 s (is the folder on a network share" in x for x in first)
        for _ in range(2 * (1 + 1)):  # the next rounds: said at once, naming the first try
            line = lines.next(timeout=30)
            assert (
                f"no answer (a call into {DAY}/hung/, made " in line
                or "no answer (the same listing, made " in line
            ), line
            assert "has had none yet" in line, line
        while (line := lines.next(timeout=30)) != "stuck":
            assert "has had none yet" in line, line
        assert lines.next(timeout=30) == "True"  # written
        assert lines.next(timeout=30) == "1"  # listed
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        err = child.stderr.read()
        child.wait()
    assert "Traceback" not in err, err


MARKERS = r"""
import asyncio, sys
from pathlib import Path
from nacl.signing import SigningKey
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage import local
from bucket_chat_desktop.storage.base import StorageError
from bucket_chat_desktop.sync import publisher
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import RoomWriter

local.READ_TIMEOUT = 1.0            # seconds, not two minutes: the same, sooner
publisher.MARKER_RETRIES = (0.2, 0.2, 0.2)  # (5, 20, 60) s: the same, sooner
root = Path(sys.argv[2])
ALICE = "alice@example.com"
KEY = SigningKey(b"\x01" * 32)


async def main() -> None:
    storage = local.LocalStorage(root)
    engine = SyncEngine(storage, outbox=Outbox(Path(sys.argv[3]) / "outbox.sqlite3"))
    try:
        for n in range(2):  # two messages in the room, nothing else
            said = [(MESSAGE, {"body": f"m{n}", "msgtype": "m.text"})]
            await engine.send("room-1", ALICE, KEY, said)
            print("flushed", await engine.flush(10), flush=True)
        await asyncio.sleep(6)  # the markers' retries
        print("stuck", len(storage._workers.stuck), flush=True)
        # another room of the same storage, nothing to do with the activity folder
        try:
            print("listed", len(await storage.list_objects("rooms/room-2/")), flush=True)
        except StorageError as exc:
            print("listed failed:", exc, flush=True)
        try:
            await storage.put_if_absent("rooms/room-2/logs/2026-01-05/x.jsonl", b"{}\n")
            print("written", flush=True)
        except StorageError as exc:
            print("written failed:", exc, flush=True)
    finally:
        await asyncio.wait_for(engine.close(), 30)
    print("ending", flush=True)


asyncio.run(main())
"""


def test_activity_markers_into_a_hung_mount_hold_up_no_room(tmp_path: Path) -> None:
    """Red team rt56: a member mounts something that never answers at today's activity
    folder, which every room of the storage writes its markers into. A marker is named
    by the moment it is written, and one that failed is written again under a new name:
    never the same call twice, each took one more of the storage's threads, and after
    two messages every room of the storage had "no answer". Calls into the folder wait
    for the first one's answer; the other rooms are read and written as before."""
    why = mountable()
    if why:
        pytest.skip(why)
    root = tmp_path / "store"
    for room in ("room-1", "room-2"):
        w = RoomWriter(LocalStorage(root), room, "alice@example.com", SigningKey(b"\x01" * 32))
        asyncio.run(w.create_room(room, "2025-09-14T12:00:45.000Z"))
    today = root / activity_folder(utc_date(int(time.time() * 1000)))
    today.mkdir(parents=True, exist_ok=True)  # the member's mount point
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "child.py"
    script.write_text(HUNG_MOUNT + MARKERS)
    out, err = run_child(script, str(today), str(root), str(home), timeout=90)
    assert out[:2] == ["flushed True", "flushed True"], (out, err[-2000:])  # both stored
    assert "stuck 1" in out, out  # one call stuck: into the activity folder
    assert "listed 2" in out and "written" in out, (out, err[-2000:])
    assert "Traceback" not in err, err
