"""A local folder that cannot be watched is polled, and the person is told why.

Linux gives a user 128 inotify instances by default, shared by every program that
watches files (editors, sync clients, other chat apps); a big synced tree can also use up
the watched-folder limit. When the table was full, the folder watch raised out of the
engine's start and the storage did not open at all ("Connecting to your storages
failed"). Here this process's descriptor table is filled for the moment the engine
starts, so that the kernel refuses the inotify instance exactly as it does at the
limit (EMFILE), without touching the limit other processes share. Real folders, the
real watchdog observer, a real index and outbox, another device's real engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from waiting import until
from watchdog.observers import Observer  # imported now: only the watch meets the full table

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import ChangeFeedStatus, EngineEvent, EventsAppended
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.poller import watch_problem
from bucket_chat_desktop.sync.writer import RoomWriter

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="inotify and /proc/self/fd are Linux's"
)

ROOM = "room-1"
ALICE, BOB = "alice@example.com", "bob@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
# Polled like a bucket when not watched: a short focused wait so the test is quick; the
# rescan of a watched folder never comes within the test (only the watch could find news).
CONFIG = SyncConfig(batch_window=0.05, local_rescan=3600.0, focused_interval=0.5)


@contextlib.contextmanager
def no_free_descriptor() -> Iterator[None]:
    """Until the block ends, this process can open no file (EMFILE): every number below
    the soft limit is taken, the limit lowered to just above the highest one open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(int(name) for name in os.listdir("/proc/self/fd")) + 1
    fillers: list[int] = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd >= top:
                os.close(fd)
                break
            fillers.append(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    finally:
        for fd in fillers:
            os.close(fd)


def test_a_folder_that_cannot_be_watched_opens_and_news_still_arrives(tmp_path: Path) -> None:
    root = tmp_path / "store"
    alice_key, bob_key = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)

    async def go() -> None:
        await RoomWriter(LocalStorage(root), ROOM, ALICE, alice_key).create_room("R", CREATED)
        seen: list[EngineEvent] = []
        alice = SyncEngine(
            LocalStorage(root),
            index=Index.open(tmp_path / "alice.sqlite3"),
            listener=seen.append,
            config=CONFIG,
        )
        bob = SyncEngine(
            LocalStorage(root),
            outbox=Outbox(tmp_path / "bob-outbox.sqlite3"),
            listener=lambda e: None,
            config=CONFIG,
        )
        try:
            with no_free_descriptor():
                await alice.start()  # raised out of here before: the storage never opened
                await alice._poller.watch_settled()  # on its own thread, still in the block
            assert not alice._poller.watching
            assert Observer is not None
            told = [e for e in seen if isinstance(e, ChangeFeedStatus)]
            assert told and not told[-1].active, seen
            assert "fs.inotify.max_user_instances" in told[-1].message
            assert alice._poller.watch_problem == told[-1].message
            alice.set_window_focused(True)
            await alice.open_room(ROOM, background=False)

            await bob.start()
            await bob._poller.watch_settled()
            assert bob._poller.watching  # the limit was this moment's only
            await bob.send(
                ROOM, BOB, bob_key, [(MESSAGE, {"body": "found by polling", "msgtype": "m.text"})]
            )

            def bodies() -> list[str | None]:
                return [
                    a.event.body
                    for e in seen
                    if isinstance(e, EventsAppended)
                    for a in e.items
                    if a.event.type == MESSAGE
                ]

            await until(lambda: "found by polling" in bodies())
            assert alice._poller.polls >= 1  # polled, not watched: nothing else finds it
        finally:
            await alice.close()
            await bob.close()
            assert alice.index is not None and bob.outbox is not None
            alice.index.close()
            bob.outbox.close()

    asyncio.run(go())


def test_what_the_person_is_told_names_the_limit_and_the_polling() -> None:
    instances = watch_problem(OSError(errno.EMFILE, "inotify instance limit reached"), 3, 45)
    assert "fs.inotify.max_user_instances" in instances
    assert instances.startswith("Not watching this folder: the system's limit")
    assert instances.endswith("Checked every 3 s, 45 s in the background.")
    assert len(instances) < 160  # the status bar of a window 1,000 pixels wide
    watches = watch_problem(OSError(errno.ENOSPC, "inotify watch limit reached"), 3, 45)
    assert "fs.inotify.max_user_watches" in watches
    other = watch_problem(OSError(errno.EIO, "odd \x1b[31mred"), 3, 45)
    assert "\x1b" not in other and "odd" in other
