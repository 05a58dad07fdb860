"""A local folder with a mount in it that never answers (red team rt51).

Only a read had a deadline: a listing, a check or a write that reached the mount waited
for ever, and ``verify`` printed nothing for as long as it ran. Its thread, one of
``asyncio.to_thread``'s, was waited for when Python exited, so even a command that had
given up (and Ctrl-C) never ended. Each call now has a deadline past which it is "no
answer" (a passing failure), and its thread, left stuck, is never waited for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hung_mount import HUNG_MOUNT, Lines, mountable, unshare

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
                "no answer (the same call, made 1 s ago, has had none yet; is the folder on a "
                "network share or a mount that stopped answering?)" in line
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
    had "no answer" until the app restarted. A call made again while the same one is
    stuck is answered "no answer" at once, and takes no thread."""
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
            assert "no answer (the same call, made " in line and "has had none yet" in line, line
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
