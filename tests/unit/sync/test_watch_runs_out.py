"""A watched folder whose watch runs out of watched folders later is still read.

Linux limits how many folders a user may watch (``fs.inotify.max_user_watches``, shared
by every program). A day folder made after the limit was reached is not watched:
the watch logs that it is not watched and goes on, its threads alive, the folders watched
before still reported. The new folder's news came only with the rescan of a watched
folder (every 30 s). Now a watched folder's activity markers are listed on the bucket
schedule as well (``Poller.next_wait``).

Here the engine runs in a child process in a user namespace of its own, whose watch
limit is set to exactly the folders that exist when it starts (``unshare -U -r``; the
limit of this namespace only, not the one other processes share): the real kernel
refuses the new folder. The rescan is an hour away, so only the markers can find it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import RoomWriter

ROOM = "room-1"
CREATED = "2025-09-14T12:00:45.000Z"
CHILD = r"""
import asyncio, sys, time
from pathlib import Path
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EventsAppended

# Polled every half second when not watched; a watched folder's rooms rescanned hourly.
CONFIG = SyncConfig(
    batch_window=0.05, local_rescan=3600.0, active_interval=0.5, focused_interval=0.5
)


async def main() -> None:
    seen = []
    engine = SyncEngine(LocalStorage(Path(sys.argv[1])), listener=seen.append, config=CONFIG)
    await engine.start()
    try:
        await engine._poller.watch_settled()  # set up on a thread of its own
        print("watching" if engine._poller.watching else "not watching", flush=True)
        engine.set_window_focused(True)
        await engine.open_room("room-1", background=False)
        print("ready", flush=True)
        sys.stdin.readline()  # the message was written
        started = time.monotonic()
        while time.monotonic() - started < float(sys.argv[2]):
            for e in seen:
                if isinstance(e, EventsAppended) and any(
                    a.event.body == "past the watch" for a in e.items
                ):
                    print(f"arrived in {time.monotonic() - started:.1f} s", flush=True)
                    return
            await asyncio.sleep(0.05)
        print("never arrived", flush=True)
    finally:
        await engine.close()


asyncio.run(main())
"""


def _namespaces() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-U", "-r", "sh", "-c", "echo 5 > /proc/sys/user/max_inotify_watches"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _namespaces(), reason="needs Linux user namespaces with their own inotify limits"
)


def test_a_day_folder_past_the_watch_limit_is_still_read(tmp_path: Path) -> None:
    root = tmp_path / "store"
    storage = LocalStorage(root)
    # The room's metadata only: its first message makes its logs and day folders.
    asyncio.run(
        RoomWriter(storage, ROOM, "alice@example.com", SigningKey(b"\x01" * 32)).write_metadata(
            "R", CREATED
        )
    )
    (root / "rooms").mkdir(exist_ok=True)
    folders = 1 + sum(1 for p in (root / "rooms").rglob("*") if p.is_dir())
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    limit = f"echo {folders} > /proc/sys/user/max_inotify_watches"
    child = subprocess.Popen(
        [
            "unshare",
            "-U",
            "-r",
            "sh",
            "-c",
            f'{limit} && exec "$0" "$@"',
            sys.executable,
            str(script),
            str(root),
            "20",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "watching"  # the limit let it start
        assert child.stdout.readline().strip() == "ready"
        asyncio.run(_bob_says(root, tmp_path, "past the watch"))
        child.stdin.write("sent\n")
        child.stdin.flush()
        said = child.stdout.readline().strip()
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert said.startswith("arrived in "), f"{said}\n{err}"
    # the real kernel refused the new folder (the watch says so once in the log)
    assert "fs.inotify.max_user_watches" in err
    assert child.returncode == 0, err


async def _bob_says(root: Path, home: Path, text: str) -> None:
    """Bob's own engine sends (the segment, then its activity marker) and is done."""
    bob = SyncEngine(LocalStorage(root), outbox=Outbox(home / "bob-outbox.sqlite3"))
    try:
        await bob.start()
        await bob.send(
            ROOM,
            "bob@example.com",
            SigningKey(b"\x02" * 32),
            [(MESSAGE, {"body": text, "msgtype": "m.text"})],
        )
        assert await bob.flush(30)
    finally:
        await bob.close()
        assert bob.outbox is not None
        bob.outbox.close()
