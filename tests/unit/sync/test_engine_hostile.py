"""The sync engine on a local folder someone has booby-trapped: a FIFO named like a
segment appearing under the folder watch, junk names in the activity folder. Real
folders, real FIFOs, the real watchdog observer and a real SQLite index."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from file_modes import IS_ROOT, NOBODY, as_someone_modes_apply_to
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
from bucket_chat_desktop.sync.events import (
    EngineEvent,
    EventsAppended,
    OutboxChanged,
    StorageStatus,
)
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.poller import WATCHED_LISTING_MAX
from bucket_chat_desktop.sync.room_objects import storage_rooms
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
            await poller.watch_settled()  # set up on a thread of its own
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


def test_junk_sorting_before_the_marker_cursor_counts_for_the_watched_listing_too(
    tmp_path: Path,
) -> None:
    """A folder's listing of the activity markers reads every name of the day folder,
    not only those after the cursor (``LocalStorage.list_after`` filters what it read).
    Junk named to sort before the real markers (``0-junk-…``) was not counted: the
    watched folder went on listing all of it every 0.1-3 s, however many names there
    were — a member's million empty files were a million names read a second, for the
    rest of the day. Counted, they put the folder's markers on the rescan's cadence, as
    junk after the cursor does."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    now = int(time.time() * 1000)
    published = now - MARKER_SETTLE_MS - 60_000  # settled: a cursor may stand on it
    if utc_date(published) != utc_date(now):
        pytest.skip("just after UTC midnight: the settled marker is yesterday's")
    segment = f"rooms/{ROOM}/logs/{utc_date(published)}/messages_{published}_{published}_x.jsonl"
    marker = marker_path(published, segment)
    folder = (root / marker).parent
    folder.mkdir(parents=True)
    (root / marker).write_bytes(b"")
    for n in range(WATCHED_LISTING_MAX + 1):
        (folder / f"0-junk-{n:05d}").write_bytes(b"")
    fast = SyncConfig(
        batch_window=0.05, local_rescan=3600.0, active_interval=0.1, focused_interval=0.1
    )

    async def go() -> None:
        index = Index.open(tmp_path / "b.sqlite3")
        index.set_cursor(f"activity:{utc_date(now)}", marker)  # where an earlier run left it
        engine = SyncEngine(LocalStorage(root), index=index, config=fast)
        try:
            await engine.start()
            poller = engine._poller
            await poller.watch_settled()  # set up on a thread of its own
            assert poller.watching
            engine.set_window_focused(True)
            await until(lambda: engine.polls >= 1)
            assert poller._marker_cursor.get(utc_date(now), marker) == marker
            assert poller.listed > WATCHED_LISTING_MAX
            assert poller.next_wait() == fast.local_rescan
        finally:
            await engine.close()
            index.close()

    asyncio.run(go())


def test_junk_in_the_activity_folder_is_said_in_one_line_not_one_a_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each junk name was logged as a warning of its own: 100,000 empty files a member
    put into today's activity folder were 100,000 lines on the terminal of
    ``bucket-chat sync --follow`` (its warnings go to stderr) and in the app's log.
    Now a listing says how many names it ignored, with the first few, once."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    folder = root / "activity" / utc_date(int(time.time() * 1000))
    folder.mkdir(parents=True)
    for n in range(500):
        (folder / f"zz-junk-{n:03d}\x1b[2J").write_bytes(b"")

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            with caplog.at_level("INFO", logger="bucket_chat.sync"):
                assert await engine.poll_once() == 0
                assert await engine.poll_once() == 0  # junk is said once
        finally:
            await engine.close()

    asyncio.run(go())
    said = [r.getMessage() for r in caplog.records if "not an activity marker" in r.getMessage()]
    assert len(said) == 1, len(said)
    assert "500 names" in said[0] and "zz-junk-000" in said[0]
    assert "\x1b" not in said[0]


def _checked_in_the_trap(check: Any, base: Path, bad: Path) -> Any:
    """``check()`` run by someone file modes apply to; then the trap made readable again
    and the shared folder removed (root could, the test's user could not)."""
    try:
        return as_someone_modes_apply_to(check)
    finally:
        bad.chmod(0o700)
        shutil.rmtree(base)


def _rooms_listed_as_someone(make: Any, trap: str) -> list[list[Any]]:
    """The storage's list of rooms (``storage_rooms``: [room id, name, problem] each),
    read by someone file modes apply to, from a shared folder ``make`` filled, with a
    folder nobody may read at ``trap``."""
    base, bad = _shared_folder_with_a_trap(make, trap)
    root = base / "store"

    def check() -> list[list[Any]] | str:
        try:
            found = asyncio.run(storage_rooms(LocalStorage(root), int(time.time() * 1000)))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return [[r.room_id, r.name, r.problem] for r in found.rooms]

    out = _checked_in_the_trap(check, base, bad)
    assert not isinstance(out, str), out
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_an_unreadable_folder_in_the_activity_folder_stops_no_room_being_listed() -> None:
    """A member puts a folder nobody may read (mode 000) into today's activity folder.
    The markers' listing fails, and a round that failed to list the markers gave up
    before the rooms' safety listings: no room of the folder was listed again — what the
    watch misses (a network share's changes by other machines, a day folder past the
    watch limit), and everything in a folder that is polled, never arrived — and the
    storage was said to be offline with "cannot list x: permission denied", naming no
    folder anyone could find. Now the rooms are listed all the same, and the message
    names the folder."""
    base = Path(tempfile.mkdtemp(prefix="bc-perm-"))  # pytest's tmp_path is root's only
    base.chmod(0o755)
    root = base / "store"
    create_room(LocalStorage(root))
    bad = root / "activity" / utc_date(int(time.time() * 1000)) / "x"
    bad.mkdir(parents=True)
    if IS_ROOT:
        for path in [root, *root.rglob("*")]:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    bad.chmod(0)
    asyncio.run(LocalStorage(root).exists("warm-up"))  # the thread pool, before a fork

    def check() -> dict[str, Any]:
        rec = Recorder()

        async def go() -> dict[str, Any]:
            engine = SyncEngine(LocalStorage(root), listener=rec, config=QUIET)
            try:
                await engine.open_room(ROOM, background=False)
                bob = RoomWriter(LocalStorage(root), ROOM, BOB, key(2))
                await bob.send([Draft.text("found by the room's listing")])
                engine.rooms[ROOM].last_safety = -1e9  # its safety listing is due
                found = await engine.poll_once()
            finally:
                await engine.close()
            said = [e.message for e in rec.events if isinstance(e, StorageStatus)]
            return {"found": found, "bodies": bodies(rec.events), "said": said}

        return asyncio.run(go())

    out = _checked_in_the_trap(check, base, bad)
    assert out["bodies"] == ["found by the room's listing"], out
    assert out["found"] == 1, out
    assert any(str(bad) in m and "permission denied" in m for m in out["said"]), out


def _shared_folder_with_a_trap(make: Any, trap: str) -> tuple[Path, Path]:
    """A store under a folder ``nobody`` may reach (pytest's tmp_path is root's only),
    filled by ``make(root)``, owned by ``nobody`` when run as root, with an empty folder
    nobody may read (mode 000) at ``trap`` (relative to the store). Returns the base
    folder (remove it) and the trap."""
    base = Path(tempfile.mkdtemp(prefix="bc-perm-"))
    base.chmod(0o755)
    root = base / "store"
    asyncio.run(make(root))
    bad = root / trap
    bad.mkdir(parents=True)
    if IS_ROOT:
        for path in [root, *root.rglob("*")]:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    bad.chmod(0)
    asyncio.run(LocalStorage(root).exists("warm-up"))  # the thread pool, before a fork
    return base, bad


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_an_unreadable_folder_in_a_day_of_the_room_hides_none_of_its_other_days() -> None:
    """A member puts a folder nobody may read into the room's newest day folder. That
    day's listing fails, and the pass ended there: a device opening the room showed not
    one of its messages (every other day was never listed), the storage said to be
    offline. Now that day is noted as not listed (the verdict is not final, the finding
    names the folder and why) and every other day is read."""
    hour = 3_600_000
    day = 1_757_721_600_000  # 2025-09-13T00:00Z

    async def make(root: Path) -> None:
        now = [day + 9 * hour]
        alice = RoomWriter(LocalStorage(root), ROOM, ALICE, key(1), clock=lambda: now[0])
        await alice.create_room(ROOM, "2025-09-13T09:00:00.000Z")
        for h in (10, 11, 30, 31):  # two on the 13th, two on the 14th
            now[0] = day + h * hour
            await alice.send([Draft.text(f"at {h}")])

    base, bad = _shared_folder_with_a_trap(make, f"rooms/{ROOM}/logs/2025-09-14/x")
    root = base / "store"

    def check() -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            engine = SyncEngine(LocalStorage(root), config=QUIET)
            try:
                room = await engine.open_room(ROOM, background=False)
                assert room.result is not None
                return {
                    "bodies": [a.event.body for a in room.result.timeline if a.event.body],
                    "findings": [(f.kind.value, f.path, f.message) for f in room.result.findings],
                    "partial": room.partial,
                }
            finally:
                await engine.close()

        return asyncio.run(go())

    out = _checked_in_the_trap(check, base, bad)
    assert out["partial"], out
    # The 14th's messages are in the folder that cannot be listed: not shown, said.
    assert out["bodies"] == ["at 10", "at 11"], out
    (unread,) = [f for f in out["findings"] if f[0] == Kind.UNREAD.value]
    assert unread[1] == f"rooms/{ROOM}/logs/2025-09-14/"
    assert str(bad) in unread[2] and "permission denied" in unread[2]


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_an_unreadable_folder_in_one_room_leaves_the_storage_s_rooms_listed() -> None:
    """The list of a storage's rooms (``bucket-chat rooms``, the app's Join a room…)
    reads each room's newest day folders for its last activity: a folder nobody may read
    that a member put into one room's day folder failed the whole list, every room of
    the storage with it. Now that room's activity comes from its other days."""
    today = utc_date(int(time.time() * 1000))

    async def make(root: Path) -> None:
        for room_id in ("a", "b", "c"):
            writer = RoomWriter(LocalStorage(root), room_id, ALICE, key(1))
            await writer.create_room(room_id.upper(), CREATED)

    out = _rooms_listed_as_someone(make, f"rooms/b/logs/{today}/x")
    assert [r[:2] for r in out] == [["a", "A"], ["b", "B"], ["c", "C"]], out


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_an_unreadable_folder_planted_after_a_complete_read_is_said_by_the_safety_listing() -> None:
    """The room was read whole; then a member puts a folder nobody may read into its
    newest day folder. The safety listing (``refresh``, every 30 s on a folder) failed
    at that day each time: the other newest day was never listed again, the storage was
    said to be offline, and the room still said it was completely read. Now that day is
    noted as not listed (the verdict is not final until it can be) and the other is
    listed: a message there arrives."""
    now_ms = int(time.time() * 1000)
    today, yesterday = utc_date(now_ms), utc_date(now_ms - 86_400_000)

    async def make(root: Path) -> None:
        alice = RoomWriter(LocalStorage(root), ROOM, ALICE, key(1))
        await alice.create_room(ROOM, CREATED)
        await alice.send([Draft.text("today")])
        (root / "rooms" / ROOM / "logs" / yesterday).mkdir()

    base, bad = _shared_folder_with_a_trap(make, f"rooms/{ROOM}/logs/{today}/x")
    root = base / "store"
    bad.chmod(0o700)  # not yet: the room is read whole first

    def check() -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            engine = SyncEngine(LocalStorage(root), config=QUIET)
            try:
                room = await engine.open_room(ROOM, background=False)
                before = room.partial
                late = 1_000 + now_ms - 86_400_000
                bob = RoomWriter(LocalStorage(root), ROOM, BOB, key(2), clock=lambda: late)
                await bob.load_head()  # (a device finding its head lists every day)
                bad.chmod(0)
                await bob.send([Draft.text("a late delivery into yesterday")])
                try:
                    await engine.refresh(ROOM)
                except Exception as exc:
                    return {"raised": f"{type(exc).__name__}: {exc}"}
                room = engine.rooms[ROOM]
                assert room.result is not None
                return {
                    "before": before,
                    "partial": room.partial,
                    "bodies": [a.event.body for a in room.result.timeline if a.event.body],
                    "unread": [
                        [f.path, f.message] for f in room.result.findings if f.kind is Kind.UNREAD
                    ],
                }
            finally:
                await engine.close()

        return asyncio.run(go())

    out = _checked_in_the_trap(check, base, bad)
    assert "raised" not in out and "child failed" not in out, out
    assert out["before"] is False and out["partial"] is True, out
    assert "a late delivery into yesterday" in out["bodies"], out
    ((path, message),) = out["unread"]
    assert path == f"rooms/{ROOM}/logs/{today}/" and "permission denied" in message, out


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_a_room_folder_nobody_may_read_leaves_the_storage_s_other_rooms_listed() -> None:
    """Anyone who can write to the folder can make a room folder nobody may read
    (``rooms/b``, mode 000). Its metadata's read failed with "permission denied", and
    that failed the list of every room of the storage (``bucket-chat rooms``, the app's
    Join a room…). Now that room is listed with the reason, the others as they are."""

    async def make(root: Path) -> None:
        for room_id in ("a", "c"):
            writer = RoomWriter(LocalStorage(root), room_id, ALICE, key(1))
            await writer.create_room(room_id.upper(), CREATED)

    out = _rooms_listed_as_someone(make, "rooms/b")
    assert [r[:2] for r in out] == [["a", "A"], ["b", None], ["c", "C"]], out
    assert "permission denied" in out[1][2] and out[0][2] == out[2][2] == "", out


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="names are bytes on Linux")
def test_a_file_name_that_is_not_utf8_seen_by_the_watch_silences_nothing(tmp_path: Path) -> None:
    """Linux takes any bytes as a file name. A member copies a good segment into the
    watched folder under ``messages_<t>_<t>_\\xff\\xfe.jsonl``. The watch named it
    (the bytes decoded as lone surrogates), the segment was read and kept, and saving
    the room's audit to the index failed ("surrogates not allowed") — for that and for
    every later segment of the room: nothing anyone sent arrived any more until the app
    was restarted. A listing already reports such a name, escaped, and reads nothing
    under it; the watch now does not hand it on either."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    received = Recorder()

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
            await sender.start()
            room = await receiver.open_room(ROOM, background=False)
            await sender.send(ROOM, BOB, key(2), text("before"))
            assert await sender.flush(timeout=5)
            await until(lambda: "before" in bodies(received.events))
            (good,) = [p for p in store_segments(root) if "bob" in p.name]
            now = int(time.time() * 1000)
            planted = os.fsencode(good.parent) + b"/messages_%d_%d_\xff\xfe.jsonl" % (now, now)
            with open(planted, "wb") as out:
                out.write(good.read_bytes())
            await sender.send(ROOM, BOB, key(2), text("after"))
            assert await sender.flush(timeout=5)
            await until(lambda: "after" in bodies(received.events))
            assert all(p.isascii() for p in room.known), room.known
        finally:
            await sender.close()
            await receiver.close()
            assert receiver.index is not None
            receiver.index.close()
            assert sender.outbox is not None
            sender.outbox.close()

    asyncio.run(go())


def test_a_junk_name_with_terminal_escapes_reaches_the_apps_log_escaped(tmp_path: Path) -> None:
    """A member names junk in the activity folder with terminal escapes (here: set the
    window title, clear the screen). Every reader logs it once ("not an activity
    marker"); the desktop app's log, on the terminal it was started from, shows the
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
    assert "not an activity marker" in written and "junk" in written
    assert "\x1b" not in written and "\x07" not in written


def test_markers_naming_a_flood_of_room_ids_are_remembered_up_to_a_cap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Red team (rtbucket): every room id a marker names was remembered and announced
    (``RoomDiscovered``, a log line each) for as long as the app ran; a member who writes
    markers naming a million room ids (one empty object each) grew both without bound.
    Past ``KNOWN_ROOMS_MAX`` one line says so and no other is announced."""
    import logging

    from bucket_chat_desktop.sync.engine import KNOWN_ROOMS_MAX
    from bucket_chat_desktop.sync.events import RoomDiscovered

    root = tmp_path / "store"
    create_room(LocalStorage(root))
    now = int(time.time() * 1000)
    published = now - MARKER_SETTLE_MS - 60_000
    if utc_date(published) != utc_date(now):
        pytest.skip("just after UTC midnight: the settled markers would be yesterday's")
    flood = KNOWN_ROOMS_MAX + 500
    for n in range(flood):
        segment = (
            f"rooms/flood-{n:05d}/logs/{utc_date(published)}/"
            f"messages_{published}_{published}_x.jsonl"
        )
        path = root / marker_path(published, segment)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    seen: list[EngineEvent] = []

    async def go() -> int:
        engine = SyncEngine(LocalStorage(root), config=QUIET, listener=seen.append)
        try:
            await engine.open_room(ROOM, background=False)
            await engine.poll_once()
            await engine.poll_once()
            return len(engine._known_rooms)
        finally:
            await engine.close()

    with caplog.at_level(logging.WARNING, "bucket_chat.sync"):
        known = asyncio.run(go())
    announced = [e.room_id for e in seen if isinstance(e, RoomDiscovered)]
    assert known == KNOWN_ROOMS_MAX
    assert len(announced) == len(set(announced)) == KNOWN_ROOMS_MAX - 1  # the open room is known
    capped = [r.getMessage() for r in caplog.records if "no other is announced" in r.getMessage()]
    assert len(capped) == 1 and "flood-" in capped[0]


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_a_metadata_file_nobody_may_read_is_unread_not_none() -> None:
    """Red team: a member replaced ``metadata.json`` with a file nobody may read. The
    read failed, was tried again later, and meanwhile the room had no metadata and no
    finding: ``verify`` said CLEAN, and a device that had read the room titled it by its
    bare id. Now it is an ``unread`` error naming the file and why (no verdict is
    final), and a device that kept the room's metadata goes on using it."""
    base = Path(tempfile.mkdtemp(prefix="bc-perm-"))
    base.chmod(0o755)
    root = base / "store"

    async def make() -> None:
        await RoomWriter(LocalStorage(root), ROOM, ALICE, key(1)).create_room("Payroll", CREATED)
        await RoomWriter(LocalStorage(root), ROOM, ALICE, key(1)).send([Draft.text("hi")])
        index = Index.open(base / "kept.sqlite3")
        engine = SyncEngine(LocalStorage(root), index=index, config=QUIET)
        try:  # a device reads the room: it keeps its metadata
            room = await engine.open_room(ROOM, background=False)
            assert room.metadata is not None and room.metadata.name == "Payroll"
        finally:
            await engine.close()
            index.close()

    asyncio.run(make())
    bad = root / "rooms" / ROOM / "metadata.json"
    if IS_ROOT:
        for path in [base, *base.rglob("*")]:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    bad.chmod(0)
    asyncio.run(LocalStorage(root).exists("warm-up"))  # the thread pool, before a fork

    def check() -> dict[str, Any]:
        async def go(kept: bool) -> dict[str, Any]:
            index = Index.open(base / "kept.sqlite3") if kept else None
            engine = SyncEngine(LocalStorage(root), index=index, config=QUIET)
            try:
                room = await engine.open_room(ROOM, background=False)
                view = await engine.room_view(ROOM)
                assert view is not None
                return {
                    "name": view.metadata.name if view.metadata else None,
                    "findings": [(f.kind.value, f.path, f.message) for f in view.metadata_findings],
                    "bodies": [a.event.body for a in room.result.timeline if a.event.body],
                }
            finally:
                await engine.close()
                if index is not None:
                    index.close()

        return {"kept": asyncio.run(go(True)), "fresh": asyncio.run(go(False))}

    out = _checked_in_the_trap(check, base, bad)
    for how, name in (("kept", "Payroll"), ("fresh", None)):
        got = out[how]
        assert got["name"] == name and got["bodies"] == ["hi"], out
        (finding,) = [f for f in got["findings"] if f[0] == Kind.UNREAD.value]
        assert finding[1] == f"rooms/{ROOM}/metadata.json", out
        assert "permission denied" in finding[2] and "read again" in finding[2], out


def test_a_metadata_file_that_keeps_changing_is_unread_not_none(tmp_path: Path) -> None:
    """Red team: a member rewrote ``metadata.json`` every 0.3 s with unfinished JSON. The
    read waited for its writer, gave up (still being written) and the room had no
    metadata and no finding: ``verify`` said CLEAN, and the device that kept the room's
    name titled it by its bare id. Now that is an ``unread`` error too, the kept
    metadata staying in use."""
    import threading

    root = tmp_path / "store"

    async def make() -> None:
        await RoomWriter(LocalStorage(root), ROOM, ALICE, key(1)).create_room("Payroll", CREATED)
        index = Index.open(tmp_path / "kept.sqlite3")
        engine = SyncEngine(LocalStorage(root), index=index, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
        finally:
            await engine.close()
            index.close()

    asyncio.run(make())
    meta = root / "rooms" / ROOM / "metadata.json"
    written = meta.read_bytes()
    stop = threading.Event()
    rewritten = threading.Event()

    def keep_rewriting() -> None:
        n = 0
        while not stop.is_set():
            part = meta.with_name(f".m{n % 2}")
            part.write_bytes(b'{"name": "Evil')  # never finished
            os.replace(part, meta)
            rewritten.set()
            n += 1
            stop.wait(0.3)

    async def read(kept: bool) -> tuple[Any, ...]:
        index = Index.open(tmp_path / "kept.sqlite3") if kept else None
        engine = SyncEngine(LocalStorage(root), index=index, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            view = await engine.room_view(ROOM)
            assert view is not None
            name = view.metadata.name if view.metadata is not None else None
            found = [(f.kind.value, f.message) for f in view.metadata_findings]
            if not kept:
                return name, found, None
            # the rewriting stops: the next polling round's read clears the finding,
            # although the kept metadata was in use meanwhile
            stop.set()
            writer.join()
            meta.write_bytes(written)
            os.utime(meta, (time.time() - 60, time.time() - 60))
            room.metadata_retry_at = 0.0
            task = engine.retry_metadata(room)
            assert task is not None
            await task
            later = await engine.room_view(ROOM)
            assert later is not None and later.metadata is not None
            return name, found, (later.metadata.name, list(later.metadata_findings))
        finally:
            await engine.close()
            if index is not None:
                index.close()

    writer = threading.Thread(target=keep_rewriting, daemon=True)
    writer.start()
    # a loaded machine may start the thread late: read only what it has rewritten
    assert rewritten.wait(30)
    try:
        fresh = asyncio.run(read(False))
        kept = asyncio.run(read(True))
    finally:
        stop.set()
        writer.join()
    for (name, findings, _), expected in ((kept, "Payroll"), (fresh, None)):
        assert name == expected, (kept, fresh)
        (unread,) = [m for k, m in findings if k == Kind.UNREAD.value]
        assert "still being written" in unread and "read again" in unread
    assert kept[2] == ("Payroll", [])


# -- the name of this device's next segment taken (red team rt57) ----------------------------


class Squatter(LocalStorage):
    """Someone guessed the name of this device's next segment (its millisecond): before
    its first write to a room's ``logs/``, ``plant(folder, name)`` is called for that
    name. The planting is real (a folder, files in the storage's folder); only its timing,
    which a planter would have to guess, is given."""

    def __init__(self, root: Path, plant: Any) -> None:
        super().__init__(root)
        self.plant = plant
        self.planted: list[str] = []
        self.tried: list[str] = []

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        if "/logs/" in path:
            self.tried.append(path)
            if not self.planted:
                self.planted.append(path)
                self.plant(self.root, path)
        return await super().put_if_absent(path, data)


def _sent_through(store: Squatter, tmp_path: Path, *, timeout: float = 5) -> list[EngineEvent]:
    """One message sent through the engine and its outbox to ``store``: what the engine
    said meanwhile. The message must go out (``flush`` True)."""
    rec = Recorder()

    async def go() -> None:
        engine = SyncEngine(
            store, outbox=Outbox(tmp_path / "a.sqlite3"), listener=rec, config=QUIET
        )
        try:
            await engine.start()
            await engine.send(ROOM, ALICE, key(1), text("hello"))
            assert await engine.flush(timeout=timeout), [
                (p.state, p.error) for p in await engine.pending()
            ]
        finally:
            await asyncio.wait_for(engine.close(), 20)
            assert engine.outbox is not None
            engine.outbox.close()

    asyncio.run(go())
    return rec.events


def _stored_as(root: Path, body: str) -> list[str]:
    return [
        p.name
        for p in sorted((root / "rooms" / ROOM / "logs").rglob("*.jsonl"))
        if p.is_file() and body in p.read_text()
    ]


def test_a_folder_at_the_segment_name_sends_the_message_under_the_next_name(
    tmp_path: Path,
) -> None:
    """Red team rt57: a folder at the exact name of the next segment (empty, so no
    listing shows it) failed the message for good ("a folder has that name"), and every
    later message of the device in the room waited behind it; a FIFO or a link there
    made the writer take the next name. Now a folder does the same."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    store = Squatter(root, lambda at, path: (at / path).mkdir(parents=True))
    _sent_through(store, tmp_path)
    (planted,) = store.planted
    assert (root / planted).is_dir()
    cid = planted.rsplit("_", 1)[1].removesuffix(".jsonl")
    assert _stored_as(root, "hello") == [Path(planted).name.replace(cid, f"{cid}-r1")]


def _take_names(count: int) -> Any:
    """A planter that puts junk at the name and at the ``count - 1`` ``-r<n>`` names
    after it."""

    def plant(root: Path, path: str) -> None:
        base = path.removesuffix(".jsonl")
        for n in range(count):
            taken = root / (f"{base}-r{n}.jsonl" if n else f"{base}.jsonl")
            taken.parent.mkdir(parents=True, exist_ok=True)
            taken.write_bytes(b"junk\n")

    return plant


def test_fifty_one_taken_names_cost_no_message(tmp_path: Path) -> None:
    """Red team rt57: junk at the name of the next segment and at the 50 ``-r<n>`` names
    after it. The publisher stopped after ``-r50`` with a final error, and every retry
    (the user's too) started at the stored ``-r50`` and stopped there at once, though
    ``-r51`` was free: the message, and every later one of the device in the room, could
    never go out. Each try now has 50 names past the stored one: this one goes out."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    store = Squatter(root, _take_names(51))
    events = _sent_through(store, tmp_path)
    (planted,) = store.planted
    cid = planted.rsplit("_", 1)[1].removesuffix(".jsonl")
    assert _stored_as(root, "hello") == [Path(planted).name.replace(cid, f"{cid}-r51")]
    assert not [e for e in events if isinstance(e, OutboxChanged) and e.state == "failed"]


def test_names_taken_past_one_try_are_a_passing_failure(tmp_path: Path) -> None:
    """Red team rt57: more names taken than one try may take (80: the name and ``-r1`` to
    ``-r79``). The try ends in a passing failure that says how many names were taken, the
    message stays "sending" (not "failed": no one needs to click), the storage is not
    called offline (it answered every write), and the next try, counting from the last
    name tried, finds ``-r80`` free."""
    root = tmp_path / "store"
    create_room(LocalStorage(root))
    store = Squatter(root, _take_names(80))
    events = _sent_through(store, tmp_path, timeout=15)
    (planted,) = store.planted
    cid = planted.rsplit("_", 1)[1].removesuffix(".jsonl")
    assert _stored_as(root, "hello") == [Path(planted).name.replace(cid, f"{cid}-r80")]
    said = [(e.state, e.error) for e in events if isinstance(e, OutboxChanged)]
    assert [s for s, _ in said] == ["sending", "sending", "sent"], said
    error = said[1][1]
    assert error is not None and "51 names" in error and f"{cid}-r50" in error, error
    assert not [e for e in events if isinstance(e, StorageStatus) and not e.online]
    # Each try took at most 51 names: 0-50, then 50 (tried again: stored) to 80.
    assert len(store.tried) == 51 + 31, len(store.tried)
