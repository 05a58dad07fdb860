"""The sync engine for one storage: a small facade over its parts.

``SyncEngine`` is what the client, the CLI, the tests and the benchmarks hold. It owns
the threads and the shared plumbing, and hands each job to one of four parts:

- ``keeper.py`` (``RoomKeeper``): every change to a room's state, on the state thread —
  ingest and audit, the index's rows, the published ``RoomView``, pages with bodies, a
  room rebuilt from the index;
- ``backfill.py`` (``Backfill``): reading a room's history newest first, in chunks that
  download ahead of the ingest by a bounded amount, and reading any single segment;
- ``poller.py`` (``Poller``): finding what is new — activity markers, a change feed,
  safety listings, a watched local folder;
- ``publisher.py`` (``Publisher``): sending (the chain's head, the witness) and
  publishing the outbox.

A room's state and the values front ends get of it are in ``room_state.py``.
docs/design/engine-parts.md says why the cut is where it is.

The threads (docs/SCHEDULING.md tells the whole story): everything that costs CPU or
disk runs off the event loop — segment decoding and signature checks of a back-fill in
worker processes, one per core (``verifier.py``), of small reads (the first screen, a
new message) on a small thread pool (``bc-verify``); ledger/audit/index work on one state
thread with an interactive and a background lane (``lanes.py``: a back-fill is cut into
short background jobs, so what a person waits for runs after at most one of them), reads
of the index for a front end on a reader thread with its own connection (never behind
the writer), outbox commits on another thread. The loop only lists, downloads, schedules
and reports (``listener`` receives the dataclasses of ``events.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from nacl.signing import SigningKey

from ..index import Index
from ..index.search import SearchHit, SearchPage, build_query
from ..protocol import heap
from ..protocol import relation_drafts as drafting
from ..protocol.audit import HOLD_AHEAD_MS, AuditResult, RoomLedger
from ..protocol.chain import Draft
from ..protocol.event import Event
from ..protocol.relations import Relations
from ..protocol.room_state import Confirmed
from ..protocol.unread import ReadMarker, UnreadCount, count_unread
from ..protocol.untrusted_text import RoomIds, terminal_safe
from ..storage.base import Storage, StorageError, StorageOfflineError, StorageThrottledError
from ..storage.feed import ChangeFeed
from ..storage.local import LocalStorage
from . import keeper as room_keeper
from .backfill import FIRST_CHUNK, Backfill
from .events import EngineEvent, RoomDiscovered, ShownEvent, StorageStatus
from .keeper import NEWEST_ROWS, REBUILD_BATCH, WARM_ROWS, RoomKeeper
from .lanes import StateWorker
from .outbox import HeldDiscard, HeldSend, Outbox, PendingMessage
from .poller import MARKER_SETTLE_MS, Poller
from .publisher import NotQueuedError, Publisher
from .room_objects import StillWritingError, WaitBudget, read_metadata
from .room_state import CachedRoom, RoomState, RoomView
from .schedule import metadata_retry_delay
from .stopping import close_in_turn, stop_tasks
from .verifier import SegmentVerifier
from .watched import STALL_AFTER, clock_text, watched

# What callers import from here: the facade, its configuration and the values it hands out
# (defined beside the parts that make them), and the constants tests size their rooms by.
__all__ = [
    "FIRST_CHUNK",
    "MARKER_SETTLE_MS",
    "NEWEST_ROWS",
    "REBUILD_BATCH",
    "WARM_ROWS",
    "CachedRoom",
    "NotQueuedError",
    "RoomState",
    "RoomView",
    "SyncConfig",
    "SyncEngine",
]

log = logging.getLogger("bucket_chat.sync")
T = TypeVar("T")
SEARCH_LIMIT = 50  # hits a search returns unless told otherwise
SEARCH_ROUNDS = 4  # pages a search reads at most to make up for hidden hits
# Rooms named by markers, notifications or the watch that are remembered (each announced
# once, ``RoomDiscovered``): anyone who can write a marker names any room id they like.
KNOWN_ROOMS_MAX = 1_000
TEXT_IDLE = 1.0  # seconds between looks for text to index for search


@dataclass(slots=True)
class SyncConfig:
    batch_window: float = 0.1  # seconds: what is composed within it shares a segment
    # Polling a bucket (``schedule.py``): periods in seconds.
    active_interval: float = 1.0  # while a conversation is active
    focused_interval: float = 3.0  # longest while the app's window is focused
    idle_interval: float = 45.0  # longest while it is not
    active_window: float = 60.0  # "active" = something happened this recently
    focused_safety: float = 15 * 60.0  # full listing of the focused room, this often
    background_safety: float = 4 * 3600.0  # and of every other room (of all, unfocused)
    # Rooms of one storage whose background listings fit ``background_safety`` in the idle
    # budget (150 requests an hour: 80 marker listings, 22.5 rooms' listings of 2-3
    # requests); with more, each room's period grows (``schedule.background_period``).
    background_rooms: int = 90
    local_rescan: float = 30.0  # local folders: re-scan although watched
    # Seconds a local folder's watch may take to set up, or to handle what it saw, before
    # the person is told that it is polled meanwhile (``Poller.start_watch``).
    watch_wait: float = 10.0
    # A room's metadata whose read failed is read again on a polling round this many
    # seconds later, doubling with each failure (``schedule.metadata_retry_delay``).
    metadata_retry: float = 5.0
    # The longest a polling round waits for one room's step (a hint read, a safety
    # listing): a working storage answers well within it; a step that takes longer goes
    # on by itself, and the next round does not wait for it (``poller.py``).
    round_wait: float = 2.0
    # With a change feed (an S3 bucket's SQS queue): each wait on it (SQS caps it at 20 s),
    # and how often the activity markers are still listed as a safety net meanwhile.
    # After the feed failed it is tried again in ``feed_retry`` s, doubling each time.
    feed_wait: float = 20.0
    feed_check: float = 600.0
    feed_retry: float = 15.0
    # Between waits on the feed while the window is behind others and nothing happened
    # for ``active_window`` s (``schedule.feed_rest``): the request budget of an idle
    # storage, paid for in how late a message noticed in the background can be.
    feed_rest: float = 15.0
    # False (the app): with an index, rooms keep only what the audit needs in memory and
    # front ends read bodies page by page (``timeline_page``). True: whole events in every
    # result (the CLI prints them).
    keep_bodies: bool = True
    workers: int = max(2, min(4, os.cpu_count() or 2))  # threads: small reads, unpacking
    # Reads of at least this many bytes at once (a back-fill chunk) are decoded and
    # verified in worker processes, one per core (``verifier.py``); smaller ones (the
    # first screen, a new message) on the threads, without the hand-over's cost.
    process_workers: int = os.cpu_count() or 1
    process_min_bytes: int = 1 << 20


class _Polled(Generic[T]):
    """An attribute of the engine that the ``Poller`` keeps (its counters, its feed's
    state): callers read it on the engine, as before the poller was a part of its own."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, engine: SyncEngine, owner: type | None = None) -> T:
        value: T = getattr(engine._poller, self._name)
        return value

    def __set__(self, engine: SyncEngine, value: T) -> None:
        setattr(engine._poller, self._name, value)


class SyncEngine:
    """Fetch, verify, index and publish for one storage (see the module's docstring).
    Construction starts the threads; ``start`` the poller, the watchdog, the publisher and
    a folder's watch; ``close`` stops them all. ``rooms`` belongs to the state thread:
    front ends ask ``room_view`` and the other methods here instead."""

    def __init__(
        self,
        storage: Storage,
        *,
        index: Index | None = None,
        outbox: Outbox | None = None,
        listener: Callable[[EngineEvent], None] | None = None,
        config: SyncConfig | None = None,
        feed: ChangeFeed | None = None,
    ) -> None:
        # Every request is timed (``watched.py``): a storage that stops answering is told
        # apart from one that refuses, and interactive steps can give up in seconds.
        self.storage = watched(storage)
        self.storage.on_answer = self._on_answer
        self._local: LocalStorage | None = (
            self.storage.inner if isinstance(self.storage.inner, LocalStorage) else None
        )
        self.index = index
        self.outbox = outbox
        self.config = config or SyncConfig()
        self._listener = listener or (lambda _e: None)
        self._pool = ThreadPoolExecutor(self.config.workers, thread_name_prefix="bc-verify")
        # Room state: one thread, two lanes (``lanes.py``). Reads a front end waits for:
        # another thread with its own connection (WAL), so they never wait behind a write.
        self._serial = StateWorker("bc-ledger")
        self._reader: Index | None = None
        self._reads = ThreadPoolExecutor(1, thread_name_prefix="bc-reader")
        if index is not None and index.path is not None:
            try:
                self._reader = Index.open_reader(index.path)
            except sqlite3.Error as exc:  # reads then take the state thread's interactive lane
                log.warning("index reader not available (%s): reads wait for the writer", exc)
        self._verifier = SegmentVerifier(self.config.process_workers)
        heap.begin_settling()  # until close (``heap.unsettle``)
        self._settling = True
        self._io = ThreadPoolExecutor(1, thread_name_prefix="bc-outbox")
        self.rooms: dict[str, RoomState] = {}
        self.focused: str | None = None
        # Whether someone looks at the app (its window is focused): polls often then.
        # False for the CLI and until a front end says otherwise.
        self.window_focused = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._known_rooms: set[str] = set()  # ``note_room``
        self._known_full = False
        self.online = True
        self.status_message = ""
        self.requests = 0  # listings and downloads made by polling (for the benchmarks)
        self.writer_waits = WaitBudget()  # for unfinished files in a folder (room_objects)
        self._closed = False
        # The parts (see the module's docstring). The storage's change feed, if it has
        # one (``storage/feed.py``): while it answers the poller waits on it and polls the
        # bucket only every ``feed_check`` seconds.
        if feed is None and self._local is None:
            feed = self.storage.change_feed()
        self._keeper = RoomKeeper(self)
        self._backfill = Backfill(self, self._keeper)
        self._poller = Poller(self, self._backfill, self._keeper, feed)
        self._publisher = Publisher(self, self._keeper)

    # -- plumbing ----------------------------------------------------------------------------

    def answered(self, exc: StorageError) -> bool:
        """Whether a listing that failed with ``exc`` failed on its own, the storage
        answering: then what else the round lists (other days, other rooms) is listed
        all the same, and the failure is noted where it happened. A folder answers
        unless the error is transient (a folder nobody may read, put into a shared one,
        is that folder's problem). A bucket's service answered when the error is no
        kind of its own (``StorageError`` itself: a listing refused as "broken or
        hostile", ``LIST_MAX_OBJECTS`` names of junk): offline, busy, refused keys or
        permissions are the whole bucket's, and its other listings would fail too."""
        if self._local is not None:
            return not exc.transient
        return type(exc) is StorageError

    def note_room(self, room_id: str) -> None:
        """A room named by a marker, a notification or the watch: announced once
        (``RoomDiscovered``). At most ``KNOWN_ROOMS_MAX`` are remembered: a member who
        writes markers naming a million room ids (one empty object each) made a million
        entries kept and a million lines logged for as long as the app ran; past the
        cap, one line says so and no other room is announced (what is named is still
        read by its room, if that room is open here)."""
        known = self._known_rooms
        if room_id in known:
            return
        if len(known) >= KNOWN_ROOMS_MAX:
            if not self._known_full:
                self._known_full = True
                log.warning(
                    "more than %d rooms named in this storage's activity: no other is "
                    "announced (%s was the first left out)",
                    KNOWN_ROOMS_MAX,
                    terminal_safe(room_id, limit=130),
                )
            return
        known.add(room_id)
        self._emit(RoomDiscovered(room_id))

    def _emit(self, event: EngineEvent) -> None:
        try:
            self._listener(event)
        except Exception:  # a listener's bug must not stop syncing
            log.exception("engine listener failed on %s", type(event).__name__)

    async def _serially(
        self,
        fn: Callable[..., T],
        *args: Any,
        room: str | None = None,
        interactive: bool = False,
    ) -> T:
        """Run ``fn`` on the state thread: every change to a room's state goes through
        here, tagged with the room (its jobs are never reordered) and the lane: a person
        waits for it (``interactive``) or not (a back-fill's slices, cursors)."""
        return await self._serial.run(fn, *args, room=room, interactive=interactive)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Read the index for someone who waits (a room being opened, a send): on the
        reader's own connection, never queued behind the state thread. It sees what was
        committed, and only whole transactions (one segment's rows come together)."""
        reader = self._reader
        if reader is None:  # an index in memory has no second connection: its one writer
            index = self.index  # is the state thread, busy with this job meanwhile
            assert index is not None
            return await self._serially(fn, index, *args, interactive=True)

        def in_one_snapshot() -> T:  # several queries, one moment of the database
            with reader.read_snapshot():
                return fn(reader, *args)

        return await asyncio.get_running_loop().run_in_executor(self._reads, in_one_snapshot)

    async def _outboxed(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    def _set_online(self, online: bool, message: str) -> None:
        if online and self.storage.stalled(STALL_AFTER) is not None:
            return  # one answer while another request hangs: still not answering
        if (
            not online
            and self.status_message.startswith("not answering")
            and self.storage.silent_since is not None
        ):
            return  # a timeout of the same silence: "not answering since …" stays true
        if online != self.online or (not online and message != self.status_message):
            self.online = online
            self.status_message = message
            self._emit(StorageStatus(online, message))

    def _on_answer(self) -> None:
        """The storage answered a request: it is reachable again (if it was silent)."""
        if not self.online and self.status_message.startswith("not answering"):
            self._set_online(True, "")

    async def _watchdog(self) -> None:
        """Say "not answering" once a request has waited ``STALL_AFTER`` seconds: a
        hung connection fails only after the service's timeout times its retries. Also
        shows rows held back as dated ahead once their time comes (``release_due``)."""
        while not self._closed:
            await asyncio.sleep(1.0)
            self._keeper.release_due()
            stalled = self.storage.stalled(STALL_AFTER)
            if stalled is not None and not self.status_message.startswith("not answering"):
                since = min(stalled, self.storage.silent_since or stalled)
                self._set_online(
                    False,
                    f"not answering since {clock_text(since)} "
                    f"(a request has waited over {STALL_AFTER:g} s)",
                )

    async def start(self) -> None:
        """Start watching/polling and publishing. ``open_room`` works without it."""
        self._tasks.append(asyncio.create_task(self._poller.run(), name="bc-poller"))
        self._tasks.append(asyncio.create_task(self._watchdog(), name="bc-watchdog"))
        if self.outbox is not None:
            self._tasks.append(asyncio.create_task(self._publisher.run(), name="bc-publisher"))
        if self.index is not None:
            self._tasks.append(asyncio.create_task(self._index_text(), name="bc-search-text"))
        if self._local is not None:
            self._poller.start_watch(self._local)
            self._tasks.append(asyncio.create_task(self._poller.follow_folder(), name="bc-direct"))

    async def close(self) -> None:
        """Stop the engine's tasks, its rooms' reads and its threads. A cancellation of
        the caller is raised, once what was started is stopped all the same (threads
        and connections are never left behind a closed engine)."""
        self._closed = True
        for room in self.rooms.values():
            for task in room.reads():
                task.cancel()
                self._tasks.append(task)
        await close_in_turn(
            self._stop_tasks,
            self._poller.close,
            self._publisher.close,
            self._stop_threads,
            what="the engine",
        )

    async def _stop_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        await stop_tasks(tasks)

    async def _stop_threads(self) -> None:
        """``close``'s last step: the pools, the reader's connection, the heap. The threads
        are waited for on a thread of their own: a job still running (a long slice, a
        write that waits for SQLite's lock) holds up the close, never the loop. A caller
        cancelled meanwhile stops waiting; the threads stop all the same."""
        joining = asyncio.ensure_future(asyncio.to_thread(self._join_threads))
        try:
            await asyncio.shield(joining)
        finally:
            if self._settling:  # once, however often close is called
                self._settling = False
                heap.unsettle()  # this engine's cycles (and anything frozen meanwhile) can go
            self._verifier.close()

    def _join_threads(self) -> None:
        """Stop the pools (their queued jobs cancelled; the reads queued still run) and
        wait for their threads, then close the reader's connection (no read runs on it
        any more). Blocking."""
        for pool in (self._pool, self._serial, self._io):
            pool.shutdown(wait=True, cancel_futures=True)
        self._reads.shutdown(wait=True)
        if self._reader is not None:
            reader, self._reader = self._reader, None
            with contextlib.suppress(Exception):
                reader.close()

    def _note_activity(self) -> None:
        """Something happened (a send, a message read): the poller looks often again."""
        self._poller.note_activity()

    def wake(self) -> None:
        """Poll now (a send, window focus, the user opening a room)."""
        self._poller.wake()

    def focus(self, room_id: str | None) -> None:
        self.focused = room_id
        if room_id is not None:
            self.interacted()
            self.wake()

    def interacted(self) -> None:
        """A person acted (opened a room, sent): for ``FOREGROUND_GRACE`` seconds the
        back-fill starts no new download, verification or indexing slice, so what answers
        the person (the loop, the GUI thread) has the process's cores and the GIL to
        itself; what is running finishes (at most one slice and two verifications per
        worker). The room being opened is not held back. Calling it again extends the
        window."""
        self._backfill.stand_aside()

    def set_window_focused(self, focused: bool) -> None:
        """The app's window came to the front (poll at once, then often) or went behind
        others (poll sparingly from the next round on)."""
        was, self.window_focused = self.window_focused, focused
        if focused and not was:
            self.wake()

    # -- reading rooms -----------------------------------------------------------------------

    def _room(self, room_id: str) -> RoomState:
        room = self.rooms.get(room_id)
        if room is None:
            # Without an index there is nowhere else to read bodies from: kept in memory.
            keep = self.config.keep_bodies or self.index is None
            room = self.rooms[room_id] = RoomState(room_id, RoomLedger(room_id, keep_bodies=keep))
            self._known_rooms.add(room_id)
        return room

    async def open_room(
        self, room_id: str, *, background: bool = True, focus: bool = True
    ) -> RoomState:
        """Show a room as fast as possible, then make it complete.

        1. the index's newest rows (no network, no crypto) -> ``WarmTimeline``;
        2. the cached room rebuilt into a ledger (no signature re-checks) -> ``RoomLoaded``,
           and the room's metadata (``_read_metadata``: one read, not under the room's lock);
        3. storage, newest date folder and newest segments first: the first few segments
           are verified and shown before older history is fetched;
        4. the rest of the history in the background (or awaited if not ``background``).
        """
        room = self._room(room_id)
        if focus:
            self.focus(room_id)
        if await self._reading(room, background):
            return room  # already being read
        async with room.lock:
            if self.index is not None and room.result is None and not self._dropped(room):
                await self._keeper.warm(room, interactive=focus)
        # Closed (or the room left) while this open waited: ``close`` (``drop_room``)
        # cancels no read started after it.
        if self._dropped(room):
            return room
        if room.metadata is None:
            await self._read_metadata(room)
        # another open may have started the read while this one waited (for the lock, or
        # the metadata): one pass a room, the one ``close`` cancels
        if self._dropped(room) or await self._reading(room, background):
            return room
        self._poller.reading_from_now(room)
        task = asyncio.create_task(self._backfill.fetch_history(room), name=f"bc-history-{room_id}")
        room.backfill = task
        if not background:
            await task
        return room

    async def drop_room(self, room_id: str) -> None:
        """Stop reading a room (one left): it is polled no more and its reads (its
        history, its metadata, its hints, its safety pass) are stopped; what they were
        about to keep, and what is named for it later, is not kept. What this device
        queued in it (the leave) is still delivered: the outbox is not the room's; its
        segments are not handed to the room left as this device's news.
        ``open_room`` reads it again from the start (a room joined again)."""
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        if self.focused == room_id:
            self.focused = None
        await stop_tasks([*room.reads(), *self._poller.room_steps(room_id)])

    def _dropped(self, room: RoomState) -> bool:
        """Whether ``room`` is no longer read here (the engine closed, the room left):
        a step that waited then starts nothing more for it."""
        return self._closed or self.rooms.get(room.room_id) is not room

    @staticmethod
    async def _reading(room: RoomState, background: bool) -> bool:
        """Whether the room's history is being read already; an open that waits for its
        history (``background=False``) waits for that read."""
        running = room.backfill
        if running is None or running.done():
            return False
        if not background:
            await asyncio.shield(running)
        return True

    async def _read_metadata(self, room: RoomState) -> None:
        """Wait for the room's metadata: one read however many opens wait for it, never
        under the room's lock — a storage that never answers must not hold up what takes
        the lock meanwhile (this device's own deliveries into the room, hints, refreshes).
        An open given up (``within``) leaves the read running: the next open waits for the
        same one; ``close`` cancels it."""
        task = room.metadata_read
        if task is None or task.done():
            task = asyncio.create_task(self._metadata(room), name=f"bc-metadata-{room.room_id}")
            room.metadata_read = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if (me is not None and me.cancelling()) or not task.cancelled():
                raise  # this open was cancelled, not the read (which ``close`` cancels)

    async def _metadata(self, room: RoomState, *, again: bool = False) -> None:
        """``_read_metadata``'s one read, applied on the state thread in the room's order.
        An answer that comes after the engine closed, the room was replaced, or a newer
        read was started is dropped: it must not clobber what is newer. A read that
        failed is made again by a polling round (``retry_metadata``); one made ``again``
        that succeeds, or an open's when the room's audit was told before it (an open from
        the cache), is told in a ``RoomLoaded`` (else an open's is told by its read's)."""
        warm = room.result is not None  # an audit was told before this read's answer
        try:
            metadata, findings = await read_metadata(self.storage, room.room_id, self.writer_waits)
        except StorageError as exc:
            if not isinstance(exc, StillWritingError):
                # still being written (or a member keeps it changing) is this room's
                # metadata not read yet, not the storage failing: it answered
                self._set_online(False, str(exc))
            room.metadata_failures += 1
            delay = metadata_retry_delay(self.config.metadata_retry, room.metadata_failures)
            room.metadata_retry_at = time.monotonic() + delay
            log.info(
                "room %s: its metadata could not be read (%s); trying again in %g s",
                room.room_id,
                exc,
                delay,
            )
            if not isinstance(exc, StorageOfflineError | StorageThrottledError):
                # the storage answered, and refused this object or it kept changing (a
                # member can keep rewriting it): said, not taken for none
                why = terminal_safe(str(exc))
                await self._apply_metadata(
                    room, lambda: self._keeper.metadata_unread(room, why), again or warm
                )
            return
        room.metadata_failures = 0
        # Told when an audit was told without it: a read made again, or an open from the
        # cache, whose RoomLoaded came before the metadata (and, with nothing new to
        # read, no audit comes after it: the window had no metadata, nor its findings).
        await self._apply_metadata(
            room, lambda: self._keeper.set_metadata(room, metadata, findings), again or warm
        )

    async def _apply_metadata(
        self, room: RoomState, change: Callable[[], None], tell: bool
    ) -> None:
        """``change`` (what a metadata read found) made on the state thread, unless the
        engine closed, the room was replaced or a newer read started (``room.metadata_read``
        is the read this runs in); then told in a ``RoomLoaded`` when ``tell``."""
        me = asyncio.current_task()

        def apply() -> bool:  # state thread
            if self._closed or room.metadata_read is not me:
                return False
            if self.rooms.get(room.room_id) is not room:
                return False
            change()
            return True

        applied = await self._serially(apply, room=room.room_id)
        if applied and tell and not self._dropped(room):
            self._keeper.tell_loaded(room)

    def retry_metadata(self, room: RoomState) -> asyncio.Task[None] | None:
        """A polling round: read the room's metadata again if its last read failed and
        its time has come (``SyncConfig.metadata_retry``, doubling), unless a read of it
        runs. The read, as ``room.metadata_read`` (``close`` cancels it), or None."""
        # (not "no metadata yet": a refused read keeps the metadata this device kept in
        # use, its ``unread`` finding until a read succeeds)
        if not room.metadata_failures or self._dropped(room):
            return None
        running = room.metadata_read
        if running is not None and not running.done():
            return None
        if time.monotonic() < room.metadata_retry_at:
            return None
        task = asyncio.create_task(
            self._metadata(room, again=True), name=f"bc-metadata-{room.room_id}"
        )
        room.metadata_read = task
        return task

    async def timeline_page(
        self, room_id: str, result: AuditResult, start: int, stop: int, *, pinned: bool = False
    ) -> tuple[ShownEvent, ...] | None:
        """Rows ``start:stop`` of the audit ``result`` (as a ``RoomLoaded`` or
        ``EventsAppended`` handed it over) with their bodies, read on the engine's serial
        worker: an immutable snapshot. None when that audit is not the room's latest any
        more (a ``RoomLoaded`` with the new one is on its way), unless ``pinned`` (an
        export: that audit's rows, whole, while the room is read again)."""
        room = self.rooms.get(room_id)
        if room is None or self._closed:  # a storage removed while scrolling: no page
            return None
        keeper = self._keeper
        return await self._serially(lambda: keeper.page(room, result, start, stop, pinned=pinned))

    async def last_read(self, room_id: str) -> float | None:
        """Wall-clock time of this device's last complete read of the room (index)."""
        if self.index is None:
            return None
        value = await self._read(Index.cursor, f"read:{room_id}")
        try:
            return float(value) if value else None
        except ValueError:
            return None

    async def cached_rooms(self) -> tuple[CachedRoom, ...]:
        """Every room this device's index knows, without any network access: what a
        front end shows when the storage does not answer. Empty without an index."""
        index = self.index
        if index is None:
            return ()

        def read() -> tuple[CachedRoom, ...]:
            out = []
            for row in index.rooms():
                room_id, name = str(row["room_id"]), row["name"]
                try:
                    last = float(index.cursor(f"read:{room_id}") or "")
                except ValueError:
                    last = None
                out.append(CachedRoom(room_id, str(name) if name else None, last))
            return tuple(out)

        return await self._serially(read)

    async def room_name(self, room_id: str) -> str | None:
        """The room's name as this device's index last recorded it (no network access),
        read on the reader thread; None without an index or a name."""
        if self.index is None:
            return None
        row = await self._read(Index.room, room_id)
        name = row.get("name") if row else None
        return str(name) if name else None

    async def cached_room(self, room_id: str) -> RoomView | None:
        """The room as this device's index knows it, without any network access: what
        ``history`` shows when the storage does not answer. Its verdict is the index's
        (final only if the last read covered everything). None when the index holds
        nothing of the room. A frozen view: the room is built apart from the engine's."""
        return await self._keeper.cached_room(room_id)

    async def timeline_length(self, room_id: str) -> int:
        """How many rows this device's index holds for the room (0 without an index)."""
        if self.index is None:
            return 0
        return await self._read(lambda index: index.timeline_length(room_id))

    # -- search (``index/search.py``) ------------------------------------------------------------

    async def search(
        self,
        query: str,
        *,
        room_id: str | None = None,
        limit: int = SEARCH_LIMIT,
        rounds: int = SEARCH_ROUNDS,
        relations: Mapping[str, Relations] | None = None,
        before: int | None = None,
    ) -> SearchPage:
        """The newest ``limit`` messages of this storage's index that hold every term of
        ``query`` (in ``room_id`` only, if given), read on the reader's connection (never
        behind a back-fill). The room's relations (its published view's) decide what an
        edit's text finds: only an edit they applied finds a message, and it finds the
        original (an edit of an edit too); a redacted message is never found; a text an
        applied edit replaced is marked ``superseded``. A message is found once (its
        newest matching text). Hidden hits are made up for by reading further, at most
        ``rounds`` pages. ``relations``: room id
        -> the relations to apply instead of the published view's (a front end that read
        the rooms apart, like the CLI). ``before``: only hits older than this key (the
        ``next_before`` of the page before, to page on: it says where reading stopped,
        also when every match read was hidden). Never raises for what the query holds."""
        if self.index is None:
            return SearchPage((), error="this engine keeps no index")
        query_text = build_query(query)
        hits: list[SearchHit] = []
        seen: set[tuple[str, str, tuple[str, int] | None]] = set()
        unrelated: set[str] = set()  # rooms whose edits' text was left out unjudged
        page = SearchPage(())
        for _ in range(max(1, rounds)):
            page = await self._read(
                lambda index, b=before: index.search(
                    query_text, room_id=room_id, limit=limit, before=b
                )
            )
            clock = room_keeper.now_ms() + HOLD_AHEAD_MS
            for found in page.hits:
                if found.timestamp_ms > self._horizon(found.room_id, clock):
                    continue  # held back as dated ahead: not shown, so not found either
                rel = self._relations(found.room_id, relations)
                if rel is None and found.edited:
                    unrelated.add(found.room_id)
                hit = self._related(found, rel)
                if hit is None:
                    continue
                # An id shown once per device that signed it: each copy is a message.
                copy = (hit.path, hit.line) if rel and hit.event_id in rel.repeated else None
                if (hit.room_id, hit.event_id, copy) in seen:
                    continue
                seen.add((hit.room_id, hit.event_id, copy))
                hits.append(hit if copy is None else dataclasses.replace(hit, copy=copy))
            before = page.next_before
            if page.error or before is None or len(hits) >= limit:
                break
        if len(hits) >= limit:
            # read on after the last hit returned: what was read past it comes again
            more = len(hits) > limit or before is not None
            before = hits[limit - 1].key if more else None
        else:  # every page read, or the rounds are spent (hidden hits): read on from there
            more = before is not None
        return SearchPage(
            tuple(hits[:limit]),
            more,
            page.error,
            query_text.cut,
            page.backlog,
            before,
            frozenset(unrelated),
        )

    async def _index_text(self) -> None:
        """Make cached text searchable (``Index.index_text``), a short job at a time in
        the state thread's background lane, only while no room's history is being read:
        trigram indexing costs about as much per event as the rest of a cold read, so it
        follows the read instead of slowing it (``SearchPage.backlog`` says what waits)."""
        index = self.index
        assert index is not None
        while not self._closed:
            reading = any(
                r.backfill is not None and not r.backfill.done() for r in self.rooms.values()
            )
            if reading or not index.text_pending:
                await asyncio.sleep(TEXT_IDLE)
                continue
            try:
                await self._serially(index.index_text)
            except RuntimeError:  # the state thread was shut down: closing
                return

    async def catch_up_text(self) -> None:
        """Index all cached text not searchable yet, now (the CLI's ``search``)."""
        index = self.index
        if index is not None:
            while await self._serially(index.index_text, interactive=True):
                pass

    def _horizon(self, room_id: str, clock: int) -> int:
        """The latest date a search may find in ``room_id``: ``clock`` (this device's clock
        plus ``HOLD_AHEAD_MS``), or what the room's audit shows when that is later (a
        clock set back does not hide what was shown: ``RoomLedger.horizon_ms``)."""
        room = self.rooms.get(room_id)
        shown = room.ledger.horizon_ms if room is not None else None
        return clock if shown is None else max(clock, shown)

    def _relations(self, room_id: str, given: Mapping[str, Relations] | None) -> Relations | None:
        """The relations a search applies to ``room_id``'s hits: ``given``'s, else the
        room's published view's, else None (not read since the app started)."""
        relations = given.get(room_id) if given is not None else None
        if relations is None:
            room = self.rooms.get(room_id)
            view = room.view if room is not None else None
            relations = view.relations if view is not None else None
        return relations

    def _related(self, hit: SearchHit, relations: Relations | None) -> SearchHit | None:
        """``hit`` as the room's relations have it (see ``search``), or None when they
        hide it. A room without relations yet (not read since the app started) keeps its
        messages' hits as found, but not an edit's: an edit's text counts only once the
        rules applied it (a forged edit's text must never find, let alone show, a
        message)."""
        if relations is None:
            return None if hit.edited else hit
        edited_to = relations.edit_of
        target = hit.event_id
        if hit.edited:
            original = edited_to.get(hit.source_id)
            if original is None:
                return None  # an edit the rules did not apply: its text finds nothing
            target = original
        aggregate = relations.of(target)
        if aggregate is not None and aggregate.redacted is not None:
            return None
        latest = aggregate.latest if aggregate is not None else None
        superseded = latest is not None and latest.event_id != hit.source_id
        if target != hit.event_id or superseded:
            return dataclasses.replace(hit, event_id=target, superseded=superseded)
        return hit

    async def search_read_rooms(
        self,
        query: str,
        *,
        room_id: str | None = None,
        limit: int = SEARCH_LIMIT,
        before: int | None = None,
    ) -> SearchPage:
        """``search`` for a front end whose engine reads no rooms (the CLI): the
        relations of each room with hits are rebuilt from the index (``cached_room``)
        and applied, until no hit comes from a room not looked at (nor an edit's text
        left out for want of its room's relations: a message whose only match is its
        edit's text is found too). Each round looks at
        one room more at least, so this ends; a fixed number of rounds let a member who
        filled three rooms with hits of their own they had deleted (each round hid one
        room's and read on into the next) bring back a fourth room's hits without its
        relations: a deleted message, text and all."""
        related: dict[str, Relations] = {}
        senders: dict[str, RoomIds] = {}
        looked: set[str] = set()
        page = await self.search(query, room_id=room_id, limit=limit, before=before)
        while True:
            new = ({h.room_id for h in page.hits} | page.unrelated) - looked
            if not new:
                break
            for rid in sorted(new):
                looked.add(rid)
                view = await self.cached_room(rid)
                if view is not None and view.relations is not None:
                    related[rid] = view.relations
                if view is not None and view.roster is not None:
                    # the room's every sender, folded with that audit (sealed): what
                    # ``history`` compares an id with to mark a look-alike (``aIice@``
                    # beside ``alice@``), at no cost beyond the rebuild just made
                    senders[rid] = view.roster.names.lookalikes
            page = await self.search(
                query, room_id=room_id, limit=limit, relations=related, before=before
            )
        return dataclasses.replace(page, senders=MappingProxyType(senders))

    async def locate(
        self, room_id: str, result: AuditResult, event_id: str, at: tuple[str, int] | None = None
    ) -> int | None:
        """The position of ``event_id`` in ``result``'s timeline (a search hit to show in
        context), found on the state thread (a walk of up to a whole room), or None when
        that audit does not show it. An id shown more than once (signed by two devices)
        is found only as the copy read at ``at`` (path, line): never one of them picked."""
        timeline = result.timeline

        def find() -> int | None:
            if event_id not in timeline.repeated:
                return timeline.position_of(event_id)
            return None if at is None else timeline.position_of_copy(event_id, *at)

        return await self._serially(find, room=room_id, interactive=True)

    async def event_by_id(
        self, room_id: str, result: AuditResult, event_id: str
    ) -> ShownEvent | None:
        """The row of ``event_id`` in the audit ``result`` (the room's, or a
        ``cached_room``'s) with its body and verdict, or None when that audit does not
        show it: one job on the state thread, the walk for it (``Timeline.position_of``)
        and its body. Rows that carry their bodies (the command line's audits, a cached
        room's) give them; the app's slim audit reads it as ``timeline_page(pinned=True)``
        does (checked against the hash and signature that audit judged; a cached line
        that is not that event is a ``Malformed``). An id shown more than once (signed by
        two devices, PROTOCOL.md section 6) is ``relation_drafts.Refused``: what acts on
        it would name both copies, and the rules apply it to neither."""
        if self._closed:
            return None
        keeper, rooms = self._keeper, self.rooms

        def find() -> ShownEvent | None:
            timeline = result.timeline
            drafting.refuse_repeated(event_id, timeline.repeated)
            position = timeline.position_of(event_id)
            if position is None:
                return None
            if timeline.whole:
                row = timeline[position]
                return ShownEvent(row, row.event)
            room = rooms.get(room_id)  # a slim audit is only ever a room's of this engine
            page = keeper.page(room, result, position, position + 1, pinned=True) if room else None
            return page[0] if page else None

        return await self._serially(find, room=room_id, interactive=True)

    async def count_unread(
        self,
        room_id: str,
        result: AuditResult,
        relations: Relations | None,
        marker: ReadMarker,
        own_key: str | None,
    ) -> UnreadCount:
        """The unread messages of ``result`` after a read marker (``unread.count_unread``:
        a walk of the rows since it, by this device's clock now), counted on the state
        thread: a frozen answer."""
        now_ms = int(time.time() * 1000)
        return await self._serially(
            count_unread, result.timeline, marker, own_key, relations, now_ms, room=room_id
        )

    # -- what front ends may ask (plain values, computed on the serial worker) ------------------

    async def room_view(self, room_id: str) -> RoomView | None:
        """A snapshot of a room's state, or None for a room this engine does not read.
        Answered at once, whatever the state thread is doing: it is the view the state
        thread published at the end of its last job on the room (one consistent moment,
        never half a job; frozen, so nobody changes it afterwards)."""
        room = self.rooms.get(room_id)
        if room is None:
            return None
        view = room.view or RoomView(room_id, None, None, (), False, False)
        return dataclasses.replace(view, failure=room.failure) if room.failure else view

    async def storage_pins(self, source: str = "user") -> Confirmed:
        """The (sender id, key) pairs pinned for every room with ``source``: ``user``,
        those the person confirmed (compared fingerprints); ``own``, this device's own
        keys (``pin_own``: who it writes as). None without an index."""
        index = self.index
        if index is None:
            return frozenset()
        return frozenset(await self._read(Index.user_verified_keys, source))

    async def mark_verified(self, sender_id: str, sender_key: str) -> None:
        """Record the person's confirmation that ``sender_key`` is ``sender_id``'s (a pin
        with source ``user``). Raises ``sqlite3.Error`` when it cannot be saved; without an
        index there is nowhere to keep it, which is an error too."""
        index = self.index
        if index is None:
            raise RuntimeError("this engine keeps no index: nowhere to record a confirmation")
        await self._serially(index.mark_verified, sender_id, sender_key, interactive=True)

    async def pin_own(self, user_id: str, key_text: str) -> None:
        """This device's own key is its user's: pinned for every room (source ``own``),
        so an impostor who wrote first under the same id is "key changed" here, never a
        conflict that puts this device's own messages in doubt. Nothing without an index."""
        index = self.index
        if index is not None:
            await self._serially(index.add_pins, [(user_id, key_text)], "own", interactive=True)

    async def reaudit(self, room_id: str) -> None:
        """Audit a room again with the current pins (the user confirmed a device key):
        emits ``RoomLoaded``. Nothing is downloaded."""
        room = self.rooms.get(room_id)
        if room is None or room.result is None:
            return
        async with room.lock:
            await self._keeper.ingest(room, [], complete=None, force_audit=True, interactive=True)

    # -- finding what is new (``poller.py``) ----------------------------------------------------

    async def refresh(self, room_id: str) -> None:
        """List the room's newest days and fetch what is new (the safety net)."""
        await self._poller.refresh(room_id)

    async def fetch_segment(self, room_id: str, path: str) -> bool:
        """Fetch one segment named by a marker or a file-system event, if new.

        Anything over the segment size limit is kept as a finding, once. A FIFO, link or
        device at a segment's name is noted as unread (the verdict is not final) and
        looked at again by the next full pass."""
        return await self._poller.fetch_segment(room_id, path)

    async def poll_once(self, *, markers: bool = True) -> int:
        """One round: activity markers (unless not ``markers``: a change feed tells),
        then any due safety listings, each room's a task of its own; waits until they all
        end (the poller's own rounds wait at most ``SyncConfig.round_wait``). Returns
        segments read."""
        return await self._poller.poll_once(markers=markers)

    # What the poller keeps, read (and, by tests, set) here as before the split.
    next_poll_in = _Polled[float]()  # the poller's current wait, in seconds
    polls = _Polled[int]()  # marker polling rounds done (for tests and the benchmarks)
    feed = _Polled[ChangeFeed | None]()  # the storage's change feed (``storage/feed.py``)
    feed_active = _Polled[bool]()  # waiting on the feed now, not polling the bucket
    feed_message = _Polled[str]()  # what the feed's state is, in words
    feed_rounds = _Polled[int]()  # waits on the feed that were answered
    feed_rests = _Polled[int]()  # rests between them (behind other windows, quiet)
    feed_resting = _Polled[bool]()  # resting now: a message waits for the rest's end
    feed_last_rest = _Polled[float]()  # seconds the last rest was to last (0: none)
    feed_ignored = _Polled[int]()  # the feed's messages or records that were ignored

    # -- writing (``publisher.py``) ----------------------------------------------------------------

    async def send(
        self,
        room_id: str,
        user_id: str,
        signing_key: SigningKey,
        drafts: Sequence[Draft],
        *,
        displayname: str | None = None,
        require_joined: bool = False,
        keep: bool = False,
    ) -> list[Event]:
        """Sign and durably queue ``drafts``; they are published within the batch window.

        Returns once the events are committed to the outbox (they survive a crash).
        Raises ``NotQueuedError`` when nothing could be queued (see there), and with
        ``require_joined`` a ``RoomError`` when this device has written nothing in the room
        yet (an introduction of another device comes from a device that joined). With
        ``keep`` (the app), a send that waits to learn where this device's chain
        continues is kept in the outbox meanwhile and survives a quit (``Outbox.hold``;
        ``resume_held`` sends it at the next start); ``SendStoppedError`` when the
        engine closes under it."""
        return await self._publisher.send(
            room_id,
            user_id,
            signing_key,
            drafts,
            displayname,
            require_joined=require_joined,
            keep=keep,
        )

    @property
    def held_signed(self) -> list[Event]:
        """Events of sends kept by the app (``Outbox.hold``) that this engine's sends
        signed first, in typed order: not in those sends' answers (``send``)."""
        return list(self._publisher.held_signed)

    def resume_held(self, user_id: str, signing_key: SigningKey, rooms: Iterable[str]) -> None:
        """Send, as a task of the engine (stopped by ``close``), what an earlier run kept
        in the outbox for ``rooms`` and could not sign before it ended (``Outbox.hold``)."""
        if self.outbox is None or self._closed:
            return
        resume = self._publisher.resume_held(user_id, signing_key, set(rooms))
        self._tasks.append(asyncio.create_task(resume, name="bc-resume-held"))

    async def discard_held(self, room_id: str | None, seq: int) -> HeldDiscard:
        """Let kept send ``seq`` of ``room_id`` (None: of any room) go, only while it is
        still kept unsigned (``Publisher.discard_held``): the answer says what was found."""
        return await self._publisher.discard_held(room_id, seq)

    async def held(self) -> tuple[HeldSend, ...]:
        """The sends kept in the outbox unsigned (``Outbox.hold``), oldest first; empty
        without an outbox."""
        outbox = self.outbox
        if outbox is None:
            return ()
        return tuple(await self._outboxed(outbox.held))

    async def publish_round(self, *, everything: bool = False) -> int:
        """Batch what waits, then try every due segment once. Returns segments delivered."""
        return await self._publisher.publish_round(everything=everything)

    async def flush(self, timeout: float | None = None, *, give_up_offline: bool = False) -> bool:
        """Publish everything queued now, failed segments included; True when the outbox
        is empty. Gives up early when only failures a user must fix are left (read-only
        folder, no permission): retrying those until the timeout cannot help. With
        ``give_up_offline`` also after one round in which the storage did not answer
        (each request had the storage's own patient timeout and retries already)."""
        return await self._publisher.flush(timeout, give_up_offline=give_up_offline)

    async def pending(self) -> tuple[PendingMessage, ...]:
        """What waits in the outbox (frozen values, read on the outbox's thread); empty
        without an outbox."""
        outbox = self.outbox
        if outbox is None:
            return ()
        return tuple(await self._outboxed(outbox.pending))

    async def knows_room(self, room_id: str) -> bool:
        """Whether this device has the room locally (read into the index, or written to
        through the outbox): then it exists, and nothing needs to ask the storage."""
        if self.index is not None and await self._read(Index.room, room_id) is not None:
            return True
        if self.outbox is not None:
            return await self._outboxed(self.outbox.knows_room, room_id)
        return False
