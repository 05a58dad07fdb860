"""The sync engine on a local folder someone has booby-trapped: a FIFO named like a
segment appearing under the folder watch, junk names in the activity folder. Real
folders, real FIFOs, the real watchdog observer and a real SQLite index."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.activity import marker_path
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import utc_date
from bucket_chat_desktop.storage.base import ObjectInfo
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import MARKER_SETTLE_MS, SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.poller import WATCHED_LISTING_MAX
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
ALICE = "alice@example.com"
BOB = "bob@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
# Nothing but the folder watch (or an explicit call) may find new data in these tests.
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


class Recorder:
    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def text(body: str) -> list[tuple[str, dict[str, Any]]]:
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


def create_room(store: LocalStorage) -> None:
    asyncio.run(RoomWriter(store, ROOM, ALICE, key(1)).write_metadata(ROOM, CREATED))


def store_segments(root: Path) -> list[Path]:
    return sorted((root / "rooms" / ROOM / "logs").rglob("*.jsonl"))


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs")


class NoMarkers(LocalStorage):
    """Markers invisible: only the folder watch can find news."""

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        return []


def bodies(events: list[EngineEvent]) -> list[str | None]:
    return [
        a.event.body
        for e in events
        if isinstance(e, EventsAppended)
        for a in e.items
        if a.event.body is not None
    ]


def test_the_watching_engine_survives_a_fifo_named_like_a_segment(tmp_path: Path) -> None:
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    received = Recorder()
    fifo = f"rooms/{ROOM}/logs/{utc_date(int(time.time() * 1000))}/messages_1_1_evil.jsonl"

    async def go() -> None:
        sender = SyncEngine(LocalStorage(root), outbox=Outbox(tmp_path / "a.sqlite3"), config=QUIET)
        receiver = SyncEngine(
            NoMarkers(root),
            index=Index.open(tmp_path / "b.sqlite3"),
            listener=received,
            config=QUIET,
        )
        try:
            await receiver.start()
            room = await receiver.open_room(ROOM, background=False)
            (root / fifo).parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(root / fifo)  # the watch sees it at once
            # noted unread first, then audited again (the finding is in that audit)
            await until(
                lambda: (
                    fifo in room.unread
                    and room.result is not None
                    and any(f.path == fifo for f in room.result.findings)
                )
            )
            assert room.result is not None and room.partial
            (finding,) = [f for f in room.result.findings if f.path == fifo]
            # where a segment could be: an error, the history is not whole
            assert finding.kind is Kind.SEGMENT_UNREADABLE
            assert "not a regular file: FIFO" in finding.message
            # ...and the engine still receives what is sent afterwards.
            await sender.start()
            await sender.send(ROOM, ALICE, key(1), text("still here"))
            assert await sender.flush(timeout=5)
            await until(lambda: "still here" in bodies(received.events))
            # The rescan meets the FIFO again: reported once, never read.
            await receiver.refresh(ROOM)
            assert [f.path for f in room.result.findings].count(fifo) == 1
        finally:
            await asyncio.wait_for(sender.close(), 20)
            await asyncio.wait_for(receiver.close(), 20)  # quitting does not hang either
            assert receiver.outbox is None and receiver.index is not None
            receiver.index.close()
            assert sender.outbox is not None
            sender.outbox.close()

    asyncio.run(go())


def test_junk_in_the_activity_folder_never_hides_real_markers(tmp_path: Path) -> None:
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    rec = Recorder()
    today = utc_date(int(time.time() * 1000))
    folder = root / "activity" / today

    async def go() -> None:
        sender = SyncEngine(LocalStorage(root), outbox=Outbox(tmp_path / "a.sqlite3"), config=QUIET)
        index = Index.open(tmp_path / "b.sqlite3")
        receiver = SyncEngine(LocalStorage(root), index=index, listener=rec, config=QUIET)
        try:
            await receiver.open_room(ROOM, background=False)
            folder.mkdir(parents=True, exist_ok=True)
            # Names sorting after any real marker of today: junk, a marker claiming to be
            # from the end of the day, one with a 16-digit time, a FIFO, a folder.
            (folder / "zzzz-junk").write_bytes(b"")
            end_of_day = int(time.time() * 1000) // 86_400_000 * 86_400_000 + 86_399_999
            seg = f"rooms/{ROOM}/logs/{today}/messages_1_1_x.jsonl"
            future = marker_path(end_of_day, seg)
            (root / future).write_bytes(b"")
            (folder / f"9999999999999999~{ROOM}~{today}~messages_1_1_y.jsonl").write_bytes(b"")
            os.mkfifo(folder / "~~fifo")
            (folder / "~~folder").mkdir()
            assert await receiver.poll_once() == 0
            cursor = index.cursor(f"activity:{today}")
            assert cursor is None  # nothing real yet: the cursor did not move

            for n in range(3):
                await sender.send(ROOM, ALICE, key(1), text(f"real {n}"))
                assert await sender.flush(timeout=5)
                assert await receiver.poll_once() == 1, n
            assert bodies(rec.events) == ["real 0", "real 1", "real 2"]
            assert len(store_segments(root)) == 3
            assert await receiver.poll_once() == 0  # each marker is acted on once
            # A marker old enough to have settled moves the cursor; the junk and the
            # forged end-of-day marker sorting after it never do.
            settled = int(time.time() * 1000) - MARKER_SETTLE_MS - 1000
            if utc_date(settled) != today:
                pytest.skip("too close to UTC midnight for a settled marker of today")
            writer = RoomWriter(LocalStorage(root), ROOM, BOB, key(2))
            late, _ = await writer.send([Draft.text("settled")])
            (root / marker_path(settled, late)).write_bytes(b"")
            assert await receiver.poll_once() == 1
            assert bodies(rec.events)[-1] == "settled"
            cursor = index.cursor(f"activity:{today}")
            assert cursor == marker_path(settled, late) and cursor < future
        finally:
            await sender.close()
            await receiver.close()
            index.close()
            assert sender.outbox is not None
            sender.outbox.close()

    asyncio.run(go())


def test_a_marker_naming_a_missing_segment_changes_nothing(tmp_path: Path) -> None:
    """Markers are hints (PROTOCOL.md section 15): one naming a segment that is not there
    must not make the room "partly read" — an error finding, no final verdict, and a full
    listing of the room every minute — for as long as the member keeps writing them."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    today = utc_date(int(time.time() * 1000))

    async def go() -> None:
        sender = SyncEngine(LocalStorage(root), outbox=Outbox(tmp_path / "a.sqlite3"), config=QUIET)
        receiver = SyncEngine(LocalStorage(root), config=QUIET)
        try:
            await sender.send(ROOM, ALICE, key(1), text("hello"))
            assert await sender.flush(timeout=5)
            room = await receiver.open_room(ROOM, background=False)
            assert room.result is not None and room.result.clean and not room.partial
            for published in (int(time.time() * 1000), int(time.time() * 1000) - 3 * 60_000):
                if utc_date(published) != today:
                    pytest.skip("too close to UTC midnight for markers of today")
                missing = f"rooms/{ROOM}/logs/{today}/messages_{published}_1_nothere.jsonl"
                (root / marker_path(published, missing)).parent.mkdir(parents=True, exist_ok=True)
                (root / marker_path(published, missing)).write_bytes(b"")
                assert await receiver.poll_once() == 0
                assert room.unread == {} and not room.partial
                assert room.result.clean, room.result.findings
        finally:
            await sender.close()
            await receiver.close()
            assert sender.outbox is not None
            sender.outbox.close()

    asyncio.run(go())


def test_a_junk_cursor_left_in_the_index_is_not_trusted(tmp_path: Path) -> None:
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    today = utc_date(int(time.time() * 1000))
    rec = Recorder()

    async def go() -> None:
        index = Index.open(tmp_path / "b.sqlite3")
        index.set_cursor(f"activity:{today}", f"activity/{today}/zzzz-junk")
        sender = SyncEngine(LocalStorage(root), outbox=Outbox(tmp_path / "a.sqlite3"), config=QUIET)
        receiver = SyncEngine(LocalStorage(root), index=index, listener=rec, config=QUIET)
        try:
            await receiver.open_room(ROOM, background=False)
            await sender.send(ROOM, ALICE, key(1), text("after the junk"))
            assert await sender.flush(timeout=5)
            assert await receiver.poll_once() == 1
            assert bodies(rec.events) == ["after the junk"]
        finally:
            await sender.close()
            await receiver.close()
            index.close()
            assert sender.outbox is not None
            sender.outbox.close()

    asyncio.run(go())


def test_a_watched_folder_full_of_junk_markers_is_listed_on_the_rescan_cadence(
    tmp_path: Path,
) -> None:
    """A watched folder's markers are listed on the bucket schedule (what its watch cannot
    see: tests/unit/sync/test_watch_runs_out.py), and a listing reads every name after
    the cursor. A member who fills today's activity folder with names would cost a full
    read every second or three: past ``WATCHED_LISTING_MAX`` names the folder is listed
    on the rescan's cadence again, its watch still naming what it sees."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    today = utc_date(int(time.time() * 1000))
    folder = root / "activity" / today
    fast = SyncConfig(
        batch_window=0.05, local_rescan=3600.0, active_interval=0.1, focused_interval=0.1
    )

    async def go() -> None:
        rec = Recorder()
        engine = SyncEngine(LocalStorage(root), listener=rec, config=fast)
        sender = SyncEngine(LocalStorage(root), outbox=Outbox(tmp_path / "a.sqlite3"), config=QUIET)
        try:
            await engine.start()
            poller = engine._poller
            assert poller.watching
            engine.set_window_focused(True)
            await engine.open_room(ROOM, background=False)
            polls = engine.polls
            await until(lambda: engine.polls >= polls + 3)  # few names: every 0.1 s
            assert poller.next_wait() <= 0.1

            folder.mkdir(parents=True, exist_ok=True)
            for n in range(WATCHED_LISTING_MAX + 1):
                (folder / f"zz-junk-{n:05d}").write_bytes(b"")
            polls = engine.polls
            await until(lambda: engine.polls > polls and poller.listed > WATCHED_LISTING_MAX)
            assert poller.next_wait() == fast.local_rescan
            # The watch still names what is new at once.
            await sender.send(ROOM, ALICE, key(1), text("named by the watch"))
            assert await sender.flush(timeout=5)
            await until(lambda: "named by the watch" in bodies(rec.events))
        finally:
            await engine.close()
            await sender.close()
            assert sender.outbox is not None
            sender.outbox.close()

    asyncio.run(go())


def test_a_junk_name_with_terminal_escapes_reaches_the_apps_log_escaped(tmp_path: Path) -> None:
    """A member names junk in the activity folder with terminal escapes (here: set the
    window title, clear the screen). Every reader logs it once ("not activity
    markers"); the desktop app's log, on the terminal it was started from, shows the
    escapes as text instead of obeying them."""
    import io
    import logging

    from bucket_chat_desktop.app import log_handler

    root = tmp_path / "store"
    create_room(LocalStorage(root))
    folder = root / "activity" / utc_date(int(time.time() * 1000))
    folder.mkdir(parents=True)
    (folder / "\x1b]0;owned\x07\x1b[2Jjunk").write_bytes(b"")
    stream = io.StringIO()
    handler = log_handler(stream)
    logger = logging.getLogger("bucket_chat")
    logger.addHandler(handler)

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            await engine.poll_once()
        finally:
            await engine.close()

    try:
        asyncio.run(go())
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "not activity markers" in written and "junk" in written
    assert "\x1b" not in written and "\x07" not in written


def test_many_junk_names_are_said_in_one_line_not_one_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each junk name in the activity folder was logged as a warning of its own: 5,000
    names a member wrote made 5,000 lines on ``bucket-chat``'s terminal (it shows
    warnings) at every start. One line per listing says how many, and names a few."""
    import logging

    root = tmp_path / "store"
    create_room(LocalStorage(root))
    folder = root / "activity" / utc_date(int(time.time() * 1000))
    folder.mkdir(parents=True)
    for n in range(5000):
        (folder / f"zz-junk-{n:05d}").write_bytes(b"")

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            await engine.poll_once()
            await engine.poll_once()  # listed again: not said again
        finally:
            await engine.close()

    with caplog.at_level(logging.WARNING, "bucket_chat.sync"):
        asyncio.run(go())
    said = [r.getMessage() for r in caplog.records if "zz-junk" in r.getMessage()]
    assert len(said) == 1, len(said)
    assert "5,000" in said[0] and "zz-junk-00000" in said[0] and len(said[0]) < 1_000
