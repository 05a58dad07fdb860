"""A local folder's watch against what a member (or a stalled mount) puts in the folder.

rt51 found the watch (watchdog's recursive inotify watch, started on the event loop):

1. set up on the window's thread: a folder in the storage on a mount that stopped
   answering froze the window at every start;
2. walking through a folder swapped for a link: every folder of ``/usr`` (or ``/``)
   was watched, outside the storage;
3. walking a tree 1,400 folders deep with a recursive ``os.walk``: RecursionError out of
   the engine's start, and out of the client's start, so no later storage opened;
5. counting only files in the activity folder's listing: 50,000 empty folders there
   were walked at every marker poll, never slowed to the rescan's cadence.

Real folders, the real watch and its thread, real engines and a real client; the
stalled mount is a real FUSE mount that never answers (skipped where no FUSE file
system can be mounted: it needs /dev/fuse and a mount namespace of its own).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hung_mount import HUNG_MOUNT, Lines, mountable, unshare
from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.protocol.activity import activity_folder
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.ids import utc_date
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import ChatClient
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import (
    ChangeFeedStatus,
    EngineEvent,
    EventsAppended,
    RoomDiscovered,
    RoomLoaded,
)
from bucket_chat_desktop.sync.folder_watch import FolderWatch, NotWatchable
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.poller import WATCHED_LISTING_MAX
from bucket_chat_desktop.sync.writer import RoomWriter

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the app's own folder watch is Linux's (inotify)"
)

ROOM = "room-1"
ALICE, BOB = "alice@example.com", "bob@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
DEEP = 1_400  # folders: past Python 3.11's recursion limit for os.walk
# Nothing but the watch finds news: no polling round within a test.
WATCH_ONLY = SyncConfig(
    batch_window=0.05,
    local_rescan=3600.0,
    active_interval=3600.0,
    focused_interval=3600.0,
    idle_interval=3600.0,
)
# Polled every fifth of a second while not watched; a watched folder's rescan never comes.
POLLED = SyncConfig(
    batch_window=0.05, local_rescan=3600.0, active_interval=0.2, focused_interval=0.2
)


def watched_inodes() -> set[int]:
    """The inodes this process's inotify instances watch now (``/proc/self/fdinfo``)."""
    found: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue  # closed meanwhile
        for line in info.splitlines():
            if line.startswith("inotify "):
                fields = dict(f.split(":", 1) for f in line.split()[1:] if ":" in f)
                found.add(int(fields["ino"], 16))
    return found


def folder_inodes(top: Path) -> set[int]:
    return {top.stat().st_ino} | {
        Path(d, n).lstat().st_ino for d, names, _ in os.walk(top) for n in names
    }


@contextmanager
def deep_tree(top: Path, depth: int) -> Iterator[None]:
    """``top/d/d/…`` ``depth`` folders deep while the block runs. Made and removed one
    level at a time: ``os.makedirs`` and ``shutil.rmtree`` (pytest's clean-up too) recurse
    per level and fail at this depth."""
    top.mkdir(parents=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    try:
        yield
    finally:
        for level in range(depth, 0, -1):
            os.rmdir(os.path.join(top, *["d"] * level))
        top.rmdir()


def bodies(events: list[EngineEvent]) -> list[str | None]:
    return [
        a.event.body
        for e in events
        if isinstance(e, EventsAppended)
        for a in e.items
        if a.event.type == MESSAGE
    ]


async def bob_says(root: Path, home: Path, text: str) -> None:
    """Bob's own engine (not started: no watch of its own) sends, and is done."""
    bob = SyncEngine(LocalStorage(root), outbox=Outbox(home / "bob-outbox.sqlite3"))
    try:
        await bob.send(
            ROOM, BOB, SigningKey(b"\x02" * 32), [(MESSAGE, {"body": text, "msgtype": "m.text"})]
        )
        assert await bob.flush(30)
    finally:
        await bob.close()
        assert bob.outbox is not None
        bob.outbox.close()


def make_room(root: Path) -> None:
    writer = RoomWriter(LocalStorage(root), ROOM, ALICE, SigningKey(b"\x01" * 32))
    asyncio.run(writer.create_room("R", CREATED))


# -- 2: links ----------------------------------------------------------------------------------


def test_a_folder_swapped_for_a_link_is_never_walked_nor_watched(tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_room(root)
    # Outside the storage, shaped like a room's folder: a watch that followed the link
    # would find a logs/ folder and day folders in it to enter.
    outside = tmp_path / "outside"
    for day in range(1, 29):
        (outside / "logs" / f"2025-09-{day:02d}").mkdir(parents=True)
    for i in range(100):
        (outside / f"room-{i}" / "logs" / "2025-09-14").mkdir(parents=True)
    elsewhere = folder_inodes(outside)
    # Moved in just before the swap, it keeps a watch that walks every folder busy
    # while the swap happens (how rt51 won the race).
    big = root / "stage"
    for i in range(3000):
        (big / f"a{i}" / "b").mkdir(parents=True)
    seen: list[EngineEvent] = []

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), listener=seen.append, config=WATCH_ONLY)
        try:
            await engine.start()
            await engine._poller.watch_settled()
            assert engine._poller.watching
            rooms = root / "rooms"
            os.rename(big, rooms / "junk")
            for i in range(5):  # made as folders, then links before the watch looks
                os.mkdir(rooms / f"evil-{i}")
                os.rmdir(rooms / f"evil-{i}")
                os.symlink(outside, rooms / f"evil-{i}")
            # Named after the links: once the watch says it, it has handled them.
            day = rooms / "room-2" / "logs" / "2025-09-14"
            day.mkdir(parents=True)
            (day / "messages_1_2_x.jsonl").write_bytes(b"{}\n")
            await until(lambda: RoomDiscovered("room-2") in seen)
            assert not watched_inodes() & elsewhere
        finally:
            await engine.close()

    asyncio.run(go())


def test_a_rooms_folder_that_is_a_link_is_polled_and_said(tmp_path: Path) -> None:
    """The link is not followed (it was not before either); now the person is told why
    the folder is polled, as for a full inotify table (it was a line in the log)."""
    root = tmp_path / "store"
    (tmp_path / "elsewhere").mkdir()
    root.mkdir()
    (root / "rooms").symlink_to(tmp_path / "elsewhere")
    seen: list[EngineEvent] = []

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), listener=seen.append, config=POLLED)
        try:
            await engine.start()
            await engine._poller.watch_settled()
            assert not engine._poller.watching
            assert not watched_inodes() & folder_inodes(tmp_path / "elsewhere")
        finally:
            await engine.close()

    asyncio.run(go())
    told = [e for e in seen if isinstance(e, ChangeFeedStatus)]
    assert [(e.active, e.folder) for e in told] == [(False, True)]
    assert told[0].message == (
        "Not watching this folder: its rooms folder is a link or a file; links are never "
        "followed. Checked every 0.2 s, 45 s in the background."
    )


# -- 3: depth, and one storage's failure ----------------------------------------------------


def test_a_tree_too_deep_to_walk_neither_stops_the_start_nor_the_watch(tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_room(root)
    seen: list[EngineEvent] = []

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), listener=seen.append, config=WATCH_ONLY)
        try:
            await engine.start()  # raised RecursionError before
            await engine._poller.watch_settled()
            assert engine._poller.watching, engine._poller.watch_problem
            await engine.open_room(ROOM, background=False)
            await bob_says(root, tmp_path, "past the deep tree")
            await until(lambda: "past the deep tree" in bodies(seen))  # the watch only
        finally:
            await engine.close()

    with deep_tree(root / "rooms" / "deep", DEEP):
        asyncio.run(go())
    assert not [e for e in seen if isinstance(e, ChangeFeedStatus)]


def test_a_storage_too_deep_to_walk_leaves_the_next_one_to_open(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    make_room(first)
    make_room(second)
    entries = [
        StorageSettings(str(first), "First", [ROOM]),
        StorageSettings(str(second), "Second", [ROOM]),
    ]
    loaded: set[str] = set()

    def listener(storage_id: str, event: EngineEvent) -> None:
        if isinstance(event, RoomLoaded):
            loaded.add(storage_id)

    async def go() -> None:
        client = ChatClient(
            Settings(ALICE, "Alice", entries),
            ALICE,
            SigningKey(bytes(range(32))),
            listener,
            data_dir=tmp_path / "data",
        )
        try:
            await client.start()  # raised RecursionError out of the first before
            await until(lambda: loaded == {e.id for e in entries})
        finally:
            await client.close()

    with deep_tree(first / "rooms" / "deep", DEEP):
        asyncio.run(go())


def test_a_watch_that_stops_by_itself_is_noticed_and_the_folder_polled(tmp_path: Path) -> None:
    """The rooms folder replaced as a sync tool does (a copy, the old one removed, the
    copy renamed): the kernel ends the watch. The engine believed it watched on; now it
    says so and polls."""
    root = tmp_path / "store"
    make_room(root)
    seen: list[EngineEvent] = []

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), listener=seen.append, config=POLLED)
        try:
            await engine.start()
            await engine._poller.watch_settled()
            assert engine._poller.watching
            engine.set_window_focused(True)
            await engine.open_room(ROOM, background=False)
            rooms = root / "rooms"
            shutil.copytree(rooms, root / "rooms.new")
            shutil.rmtree(rooms)
            os.rename(root / "rooms.new", rooms)
            await until(lambda: not engine._poller.watching)
            told = [e for e in seen if isinstance(e, ChangeFeedStatus)]
            assert told and told[-1].folder and not told[-1].active
            assert told[-1].message.startswith(
                "Not watching this folder: its rooms folder was moved or removed. Checked every"
            )
            await bob_says(root, tmp_path, "found by polling")
            await until(lambda: "found by polling" in bodies(seen))
        finally:
            await engine.close()

    asyncio.run(go())


# -- 1: the set-up runs on a thread of its own ------------------------------------------------


def test_the_start_never_waits_for_the_watch_to_be_set_up(tmp_path: Path) -> None:
    """The set-up's thread tells the loop when it is done, so right after ``start`` the
    folder cannot be watched yet, however fast the set-up (it was set up within
    ``start``, on the loop). Until then it is polled like a bucket."""
    root = tmp_path / "store"
    make_room(root)
    seen: list[EngineEvent] = []

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), listener=seen.append, config=POLLED)
        try:
            await engine.start()
            assert not engine._poller.watching
            assert engine._poller.next_wait() <= POLLED.active_interval
            await engine._poller.watch_settled()
            assert engine._poller.watching
        finally:
            await engine.close()

    asyncio.run(go())
    assert not [e for e in seen if isinstance(e, ChangeFeedStatus)]  # nothing to tell


CHILD = r"""
import asyncio, sys, time
from pathlib import Path
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import ChangeFeedStatus, EventsAppended

CONFIG = SyncConfig(
    batch_window=0.05, local_rescan=3600.0, active_interval=0.2, focused_interval=0.2,
    watch_wait=1.0,
)


async def main() -> None:
    seen = []
    engine = SyncEngine(LocalStorage(Path(sys.argv[2])), listener=seen.append, config=CONFIG)
    await engine.start()  # never returned before: the watch waited on the mount
    print("started", flush=True)
    engine.set_window_focused(True)
    await engine.open_room("room-1", background=False)
    while not [e for e in seen if isinstance(e, ChangeFeedStatus)]:
        await asyncio.sleep(0.05)
    told = [e for e in seen if isinstance(e, ChangeFeedStatus)][-1]
    print(f"told {told.active} {told.folder} {told.message}", flush=True)
    print("watching" if engine._poller.watching else "polled", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # sent
    while "past the mount" not in [
        a.event.body for e in seen if isinstance(e, EventsAppended) for a in e.items
    ]:
        await asyncio.sleep(0.05)
    print("arrived", flush=True)
    await engine.close()  # never waits for the set-up's thread: it waits for ever
    print("closed", flush=True)


asyncio.run(main())
"""


def test_a_folder_on_a_mount_that_never_answers_freezes_nothing(tmp_path: Path) -> None:
    why = mountable()
    if why:
        pytest.skip(why)
    root = tmp_path / "store"
    make_room(root)
    (root / "rooms" / "hung").mkdir()  # a room's folder that is a mount point in the child
    script = tmp_path / "child.py"
    script.write_text(HUNG_MOUNT + CHILD)
    child = subprocess.Popen(
        [*unshare(), sys.executable, str(script), str(root / "rooms" / "hung"), str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    lines = Lines(child.stdout.fileno())
    try:
        assert lines.next() == "started"
        told = lines.next()
        assert told.startswith(
            "told False True Not watching this folder: setting up the watch has taken over 1 s"
        ), told
        assert lines.next() == "polled"
        asyncio.run(bob_says(root, tmp_path, "past the mount"))
        assert child.stdin is not None
        child.stdin.write("sent\n")
        child.stdin.flush()
        assert lines.next() == "arrived"
        assert lines.next() == "closed"
    finally:
        child.kill()  # its set-up's thread still waits on the mount: ends with the process
        assert child.stderr is not None
        err = child.stderr.read()
        child.wait()
    assert "Traceback" not in err, err


# -- 5: folders in the activity folder ---------------------------------------------------------


def test_empty_folders_in_the_activity_folder_slow_a_watched_listing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_room(root)
    today = root / activity_folder(utc_date(int(time.time() * 1000)))
    for i in range(50):  # no names to count: each an empty folder the listing walks
        (today / f"f{i}").mkdir(parents=True)
    nested = today / "nest"
    for i in range(3):
        (nested / f"n{i}").mkdir(parents=True)

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), config=WATCH_ONLY)
        try:
            await engine.start()
            await engine._poller.watch_settled()
            assert engine._poller.watching
            await engine.poll_once()
            poller = engine._poller
            assert poller.listed > WATCHED_LISTING_MAX  # counted 0 before
            assert poller.next_wait() == WATCH_ONLY.local_rescan
        finally:
            await engine.close()

    asyncio.run(go())


# -- rt53: the watch's own bookkeeping ----------------------------------------------------------


@contextmanager
def folder_watch(root: Path, named: Callable[[str], None]) -> Iterator[tuple[FolderWatch, list]]:
    """A ``FolderWatch`` set up on ``root``, and what it says (``ready``, ``ended``)."""
    said: list[object] = []
    watch = FolderWatch(root, named, said.append, lambda exc: said.append(("ended", exc)))
    watch.start()
    until_true(lambda: bool(said))
    assert said[0] is None, said
    try:
        yield watch, said
    finally:
        watch.stop()
        watch.join(5)


def until_true(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the inotify watch")
def test_folders_renamed_in_a_watched_folder_keep_the_watches_right(tmp_path: Path) -> None:
    """Red team rt53: each rename of any folder, junk never watched too, scanned every
    watch (60,000 watches: 10 ms of the watch thread's CPU a rename, 30 s for 3,000). A
    junk folder renamed touches no watch; a room folder moved away and back is watched
    again, its day folders with it."""
    root = tmp_path / "store"
    day = root / "rooms" / ROOM / "logs" / "2026-01-05"
    day.mkdir(parents=True)
    named: list[str] = []
    with folder_watch(root, named.append) as (watch, said):
        watched = watch.watches
        junk = root / "rooms" / ".junk-a"
        junk.mkdir()
        for _ in range(50):
            junk = junk.rename(junk.with_name(".junk-b" if junk.name == ".junk-a" else ".junk-a"))
        room = root / "rooms" / ROOM
        room.rename(tmp_path / "aside")
        until_true(lambda: watch.watches == 1)  # rooms/ alone
        (tmp_path / "aside").rename(room)
        until_true(lambda: watch.watches == watched)
        (day / "back.jsonl").write_bytes(b"{}\n")
        until_true(lambda: f"rooms/{ROOM}/logs/2026-01-05/back.jsonl" in named)
        assert said == [None]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the inotify watch")
def test_a_watch_that_lost_changes_ends_so_the_folder_is_polled(tmp_path: Path) -> None:
    """Red team rt53: when the kernel dropped changes (more than its queue holds, while
    the watch's thread was busy), the watch went on, a day folder made meanwhile never
    watched, and nobody was told. It ends, so the folder is polled, saying why."""
    root = tmp_path / "store"
    day = root / "rooms" / ROOM / "logs" / "2026-01-05"
    day.mkdir(parents=True)
    busy = threading.Event()
    free = threading.Event()

    def slow(path: str) -> None:  # the watch's thread, busy for a moment
        busy.set()
        free.wait(30)

    with folder_watch(root, slow) as (_watch, said):
        (day / "first.jsonl").write_bytes(b"{}\n")
        assert busy.wait(30)
        queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
        for i in range(queued + 100):
            (day / f"junk{i}.tmp").touch()
        free.set()
        until_true(lambda: len(said) > 1)
        ((_, why),) = said[1:]  # type: ignore[misc]
        assert isinstance(why, NotWatchable) and "dropped changes" in str(why), said
