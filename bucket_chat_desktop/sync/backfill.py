"""Reading a room's history from storage: newest first, in chunks, ahead of the ingest.

A pass (``fetch_newest_first``) lists the room's date folders newest first and, in each,
the segments not known yet, newest first. The first ``FIRST_CHUNK`` segments make the
first screen; later chunks hold at most ``CHUNK`` segments and ``CHUNK_BYTES`` bytes.
Downloads (and verification: in worker processes for a big chunk, ``verifier.py``, else
on the engine's small pool) run ahead of what the state thread has kept by at most
``AHEAD_BYTES`` in ``AHEAD_CHUNKS``, so memory does not grow with the room. Each chunk is
handed to the ``RoomKeeper`` in background slices of about ``SLICE_EVENTS`` events, with
progress audits only for the room someone looks at. While a person acts
(``stand_aside``), a back-fill of any other room starts nothing new for
``FOREGROUND_GRACE`` seconds. The poller reads single segments (a hint, a safety
listing) through ``read_segment`` and ``download`` here: one way to read and check a
segment. docs/SCHEDULING.md tells why each limit is what it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import AsyncIterator, Sequence, Set
from typing import TYPE_CHECKING

from ..protocol import heap
from ..protocol.audit import PreparedSegment, prepare_segment
from ..protocol.findings import Finding, Kind
from ..protocol.handover import PackedSegment
from ..protocol.ids import is_day_folder, is_segment_of, logs_prefix, newest_days, utc_date
from ..protocol.segment import MAX_SEGMENT_BYTES, DecodedSegment, newness
from ..protocol.untrusted_text import terminal_safe
from ..storage.base import (
    NotRegularFileError,
    ObjectInfo,
    ObjectTooLargeError,
    StorageError,
    StorageNotFoundError,
    UnreadableObjectError,
    bytes_decide,
    bytes_match,
    confirmed,
    same_content,
    tag_of_bytes,
)
from . import keeper as room_keeper
from .keeper import Fetched
from .room_objects import (
    not_read_finding,
    read_once_written,
    special_finding,
    unfinished,
    unreadable_finding,
)
from .room_state import FAULT_NOTE, RoomState
from .schedule import LEVEL_PAGES_MAX, LISTING_PAGE, UNREAD_RETRY, listing_pages
from .stopping import stop_tasks

if TYPE_CHECKING:
    from .engine import SyncEngine
    from .keeper import RoomKeeper

log = logging.getLogger("bucket_chat.sync")

FETCH_CONCURRENCY = 16
# The size a segment named by a hint is refused at when it could not be read (over the
# size limit; ``RoomState.refused``): a hint has no listed size. The next listing of its
# day gives one, and the object is judged by it (``RoomState.holds``): over the limit,
# refused again without a download; within it, read.
UNKNOWN_SIZE = -1
FAULT_RETRY_MAX = 3600.0
"""Seconds at most between passes through a room's history that a fault of this
program stopped, in a row (``fetch_history``: 60 s, then twice as long each time)."""
LOOSE_NOTED = 50
"""Objects right in a room's ``logs/`` folder noted one by one (``Backfill.list_days``);
the rest in one notice: a member who puts thousands there makes no thousand findings."""
LOOSE_OBJECT = (
    "an object right in the room's logs folder, not in a day folder: no segment's place "
    "(a segment there is not read); ignored"
)
# A file where a day's folder must be: on a folder storage, one planted for tomorrow
# refused every message dated then (red team rt57); said as what it does.
DAY_TAKEN = (
    "an object named like a day's folder, right in the room's logs folder: on a folder "
    "storage, no message dated that day can be stored in this room until it is moved "
    "away; ignored"
)
FIRST_CHUNK = 8  # segments fetched before the first screen is shown
CHUNK = 64  # segments in each later chunk
CHUNK_BYTES = 16 << 20  # ... and at most this many bytes (but at least one segment)
AHEAD_BYTES = 32 << 20  # segment bytes a back-fill downloads ahead of what it has kept
# ... in at most this many chunks: the bytes are counted as listed, and a storage that
# lists wrong sizes must not get the whole room held at once.
AHEAD_CHUNKS = 2
PROGRESS_AUDIT = 2.0  # at least this many seconds between audits while back-filling
AUDIT_SHARE = 0.15  # ... and audits take at most this share of the back-fill's time
SLICE_EVENTS = 400  # a background job indexes segments of at most about this many events
FOREGROUND_GRACE = 0.2  # seconds background work starts nothing new after a person acts
# A chunk is kept once all but at most LEFT_BEHIND of its reads are in and those had
# STRAGGLER_GRACE seconds more; the reads left behind are kept when they end (at most
# LEFT_BEHIND_MAX at once in a pass, whose final audit waits for them). One download on a
# dead connection held its chunk — a cold room's first screen, the back-fill beyond the
# chunks downloaded ahead — until the storage's own timeout times its retries.
LEFT_BEHIND = 2
LEFT_BEHIND_MAX = 4
STRAGGLER_GRACE = 1.0


def near_dates(now_ms: int) -> set[str]:
    """Yesterday's, today's and tomorrow's UTC dates at ``now_ms``: where late deliveries
    land (``ids.newest_days``), listed by themselves when the room's days could not be
    listed whole in the background (``Poller.refresh``, ``Backfill._read_history``)."""
    return {utc_date(now_ms + d * 86_400_000) for d in (-1, 0, 1)}


LEVEL_OVER = "its logs folder holds over "
"""How ``level_over_note`` begins."""


def level_over_note(names: int) -> str:
    """The room's note (``RoomState.level_over``) when a background listing of its days
    stopped after ``names`` names (``LEVEL_PAGES_MAX`` pages)."""
    return (
        f"{LEVEL_OVER}{names:,} objects and folders right in it (day "
        f"folders hold the room's history; a member may write anything there): listing "
        f"them takes more than the {LEVEL_PAGES_MAX} requests a storage may spend on them "
        "in the background, so the room's days older than yesterday are listed only while "
        "the room is on screen with the window in front; new messages of yesterday, today "
        "and tomorrow are still fetched"
    )


# A read of one segment: what it got (None: nothing to keep) and what it could not read.
Read = tuple[Fetched | None, dict[str, str]]


def _chunk_length(items: Sequence[ObjectInfo], count: int, budget: int) -> int:
    """How many of ``items`` the next chunk takes: at most ``count`` and ``budget`` bytes,
    at least one."""
    total = 0
    for n, item in enumerate(items[:count]):
        total += item.size
        if n and total > budget:
            return n
    return min(count, len(items))


class Backfill:
    """The engine's reads of segments (see the module's docstring). Its own state is the
    person's grace window and the cap on background verifications; rooms, storage, pools
    and the state thread are the engine's."""

    def __init__(self, engine: SyncEngine, keeper: RoomKeeper) -> None:
        self._engine = engine
        self._keeper = keeper  # what is read goes there, on the state thread
        self._quiet_until = 0.0  # background work waits until then (see ``stand_aside``)
        # Background verifications in flight: one running and one queued per worker, so
        # a person's action waits for at most two per worker (``stand_aside``).
        self._verify_slots = asyncio.Semaphore(2 * engine.config.workers)

    def stand_aside(self) -> None:
        """A person acted: see ``SyncEngine.interacted``. Calling it again extends the
        window."""
        self._quiet_until = time.monotonic() + FOREGROUND_GRACE

    async def _background_turn(self, room_id: str) -> None:
        """Wait until no person's action is being answered (see ``stand_aside``), unless
        the work is for the room the person looks at: that is what they wait for."""
        while (
            room_id != self._engine.focused and (wait := self._quiet_until - time.monotonic()) > 0
        ):
            await asyncio.sleep(wait)

    async def fetch_history(self, room: RoomState) -> None:
        """A pass as a task of its own (``open_room``): a failure is reported and logged,
        never raised into the loop; one no storage error names is also kept for front
        ends to say (``RoomState.failure``)."""
        room.failure = ""
        try:
            await self.fetch_newest_first(room)
            room.faults = 0
        except StorageError as exc:
            self._engine._set_online(False, str(exc))
            log.warning("reading room %s: %s", room.room_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Its text may quote what storage holds: kept escaped, for every front end.
            room.failure = terminal_safe(f"{type(exc).__name__}: {exc}")
            log.exception("reading room %s failed", room.room_id)
            await self._said_unread(room, room.failure)
            # A fault that repeats (what the room holds sets it off) must not have the
            # room read all over again, and logged, at every safety round: each pass in
            # a row that ends so waits twice as long as the last, up to an hour.
            room.faults += 1
            wait = min(FAULT_RETRY_MAX, UNREAD_RETRY * 2.0 ** (room.faults - 1))
            room.last_safety = time.monotonic() + wait - UNREAD_RETRY

    async def _said_unread(self, room: RoomState, failure: str) -> None:
        """A pass stopped by a fault of this program: the room is noted as not read
        completely, with the fault (an error finding the window's banner, its audit
        dialog and the command line show), and audited with the final rules: the
        provisional verdict of a read begun must not stand. Read again at the next
        safety round. A fault here too is only logged."""
        why = f"{FAULT_NOTE}: {failure}"
        try:
            await self._engine._serially(
                _note_unlisted, room, logs_prefix(room.room_id), why, room=room.room_id
            )
            await self._keeper.ingest(room, [], complete=True, force_audit=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("auditing room %s after a failed read failed", room.room_id)

    async def fetch_newest_first(self, room: RoomState) -> None:
        """Newest date folder first and, inside it, newest segments first. Downloading
        (and verifying, on the pool) the next chunk overlaps with indexing the current
        one; the room is audited after the first chunk (the first screen), then at most
        every ``PROGRESS_AUDIT`` seconds (and never more than ``AUDIT_SHARE`` of the time:
        each audit of a large room is O(n) and holds the GIL the verifiers need), and once
        more at the end — also when a listing failed part-way: then with the final rules
        and a finding that says what was not read, never the provisional verdict.

        What could not be read is noted in the room on the state thread, in the room's
        order (its unread notes are the state thread's, ``room_state.py``)."""

        def begin() -> tuple[bool, bool, set[str], set[str] | None, Notes]:  # state thread
            was_partial = bool(room.unread or room.unlisted or room.vanished)
            # What is cleared here, put back for the days a listing cut short did not
            # list (``_read_history``): those are not read again by this pass.
            cleared: Notes = (dict(room.unread), dict(room.vanished), dict(room.judged))
            had_final = room.complete and not was_partial
            # A room read through before whose notes all name day folders (a segment a
            # notice named that could not be read, a day that could not be listed): the
            # warm listing, and those days. Read all over again, a year-old room was
            # listed day by day each time a member's junk notice owed it a listing.
            days = None if had_final or not room.complete else room.problem_days()
            room.unlisted.clear()
            if not had_final:
                # What failed last time is retried (and re-noted if it fails again); what
                # was removed since no longer counts as unread.
                room.unread.clear()
                if days is None:
                    # Every day is listed: what storage no longer holds as read is noted
                    # again. (Listing only some, the notes of the others stand.)
                    room.vanished.clear()
                    room.judged.clear()
            cached_dates = {p.split("/")[3] for p in room.known if p.count("/") == 4}
            if not room.rechecked and self._engine.index is not None:
                room.rechecked = self._engine.index.cursor(f"recheck:{room.room_id}") or ""
            return was_partial, had_final, cached_dates, days, cleared

        # The room someone looks at waits for its first screen: not behind other rooms.
        interactive = room.room_id == self._engine.focused
        # What the pass keeps was in storage when it began: the room was read then, not
        # when its final audit comes (after a sleep, if the laptop slept meanwhile)
        began = room_keeper.now_ms()
        was_partial, had_final, cached_dates, days, cleared = await self._engine._serially(
            begin, room=room.room_id, interactive=interactive
        )
        try:
            with heap.gc_paused():  # see protocol/heap.py: a third of a cold read's time
                progressed = await self._read_history(
                    room,
                    cached_dates,
                    warm=had_final or days is not None,
                    also=days or set(),
                    began=began,
                    cleared=cleared,
                )
        except StorageError as exc:
            self._engine._set_online(False, str(exc))
            log.warning("reading room %s: %s", room.room_id, exc)
            if not had_final:  # no earlier final verdict to stand on: say what is missing
                await self._engine._serially(
                    _note_unlisted, room, logs_prefix(room.room_id), str(exc), room=room.room_id
                )
            await self._keeper.ingest(room, [], complete=True, force_audit=True)
            room.last_safety = time.monotonic()
            return
        if (
            not room.complete
            or room.result is None
            or progressed
            or room.unread
            or room.unlisted
            or room.vanished
            or was_partial
            or room.audit_owed  # an arrival's, put off by the pacing: the final verdict
        ):
            await self._background_turn(room.room_id)  # the longest job: not while answering
            await self._keeper.ingest(room, [], complete=True, force_audit=True, read_ms=began)
        room.last_safety = time.monotonic()
        if room.complete and not room.partial:
            room.read_here = True  # where this device's chain continues is known here
            if self._engine.outbox is not None:
                # Another device with this key may have written after this one's outbox
                # head: continue from what was read (red team rt72; ``follow_read``).
                try:
                    await self._engine._publisher.follow_read(room.room_id)
                except Exception:
                    log.exception("room %s: following the read chain head failed", room.room_id)
                # What a resume could not send for want of this read goes out now.
                self._engine._publisher.retry_held(room.room_id)
        if self._engine.index is not None and room.complete and not room.partial:
            # When this device last saw the whole room: how stale an offline view is.
            await self._engine._serially(
                self._engine.index.set_cursor, f"read:{room.room_id}", f"{time.time():.3f}"
            )  # background: nobody waits for it

    async def _read_history(
        self,
        room: RoomState,
        cached_dates: set[str],
        *,
        warm: bool,
        also: set[str],
        began: int,
        cleared: Notes = ({}, {}, {}),
    ) -> bool:
        """Fetch what is new, newest first; True when anything was ingested.
        ``cached_dates``: the date folders the room held segments of when the pass began;
        ``warm``: an earlier pass read everything, so only new days need listing, and the
        days ``also`` names (where something could not be read); ``began``: when the pass
        began (``keeper.now_ms``: what it keeps was read then, ``RoomState.read_ms``);
        ``cleared``: the notes the pass cleared to read again (``fetch_newest_first``).

        Behind other windows (a bucket: what listing costs is billed) the room's days
        (``logs/``, one level) take at most ``LEVEL_PAGES_MAX`` pages, as a safety
        listing's do (``Poller.refresh``): junk a member wrote right in ``logs/`` made
        every opening and read again page through all of it, 201 requests a try past
        200,000 names, and the listing was refused (review of fix102b). A listing cut so
        does not show every day: its days shown, the newest by the clock (``near_dates``)
        and those ``also`` names are listed each by itself; no day is called gone, no
        refusal forgotten, no note of another day dropped; the room is noted as not
        listed completely (``RoomState.level_over`` says why): read all over again once
        the window is in front, listed by ``Poller.refresh`` meanwhile when nothing else
        is left unread (``cut_short_only``). With the window in front it is read whole."""
        held = len(room.known)  # what the listing must show: kept before it was asked
        background = self._engine._local is None and not self._engine.window_focused
        cap = LEVEL_PAGES_MAX * LISTING_PAGE if background else None
        room.level_over, room.cut_pages = None, 0  # this pass's, once listed
        days, loose_noted, names, cut = await self.list_days(room, cap)
        room.level_over = level_over_note(names) if cut else None
        pages = [listing_pages(names)]  # what a cut pass took: the room is charged it
        if cut:
            days = sorted({*days, *near_dates(int(time.time() * 1000)), *also})
        dates = sorted(days, reverse=True)
        self._engine._set_online(True, "")
        # Whether a refusal's finding went (``relist``) or came: the room's verdict changed.
        relisted = loose_noted or (
            bool(dates and room.refused)
            and not cut  # a day not shown may be there
            and await self._engine._serially(drop_refused_days, room, set(dates), room=room.room_id)
        )
        if not cut and cached_dates.difference(dates):  # days read before, no longer listed
            await self._engine._serially(
                note_days_gone, room, cached_dates, set(dates), held, room=room.room_id
            )
        if warm and cached_dates:
            # Warm: only the newest days and days never seen can hold anything new; late
            # deliveries into older days are announced by activity markers. One older
            # day read before is listed too, each in turn (the next older than the one
            # listed last, kept in the index): without it, a segment removed from a day
            # past the newest two was never found once the room had been read whole.
            # The newest two are those that can be a day begun somewhere (``newest_days``):
            # folders a writer named ``zzzz`` or ``9999-12-31`` sort after every real day.
            newest = newest_days(dates, int(time.time() * 1000))
            older = [d for d in dates if d not in newest and d in cached_dates]  # newest first
            again = next((d for d in older if d < room.rechecked), older[0]) if older else ""
            if again:
                room.rechecked = again
                if self._engine.index is not None:
                    await self._engine._serially(
                        self._engine.index.set_cursor, f"recheck:{room.room_id}", again
                    )
            dates = [
                d for d in dates if d in newest or d not in cached_dates or d == again or d in also
            ]
        if cut:
            await self._engine._serially(
                _cut_short, room, set(dates), cleared, level_over_note(names), room=room.room_id
            )

        async def chunks() -> AsyncIterator[list[ObjectInfo]]:
            nonlocal relisted
            size = FIRST_CHUNK
            for date in dates:
                folder = f"{logs_prefix(room.room_id)}{date}/"
                held = len(room.known)  # what the listing must show: kept before it was asked
                try:
                    items = await self.list_objects(folder)
                    pages[0] += listing_pages(len(items))
                except StorageError as exc:
                    if not self._engine.answered(exc):
                        raise  # not answering, refused: it ends
                    # One day that cannot be listed (a folder nobody may read that a
                    # member put into it, a bucket's day overfilled with junk) is said,
                    # and the other days are read. The pass ended here: a device opening
                    # the room showed none of it.
                    await self._engine._serially(
                        _note_unlisted, room, folder, str(exc), room=room.room_id
                    )
                    continue
                if held and date in cached_dates:  # else nothing was read from it to lose
                    await self.compare_listing(room, folder, items, held)
                if await self.relist(room, folder, items):
                    relisted = True
                todo = sorted(
                    (it for it in items if not room.holds(it)),
                    key=lambda it: newness(it.path),  # newest first: the first screen
                    reverse=True,
                )
                if sum(it.size for it in todo[:CHUNK]) >= self._engine.config.process_min_bytes:
                    self._engine._verifier.warm()  # chunks will use them: start while the first
                    # screen is read (not for many tiny segments: those stay on threads)
                while todo:
                    take = _chunk_length(todo, size, CHUNK_BYTES)
                    yield todo[:take]
                    todo = todo[take:]
                    size = CHUNK

        # Downloads (and the worker processes) run ahead of the ingest by up to
        # AHEAD_BYTES in AHEAD_CHUNKS, at least one chunk: neither the storage nor the
        # workers wait for the serial worker, and memory stays bounded however large the
        # room is.
        # Each chunk's download, its listed bytes, and what it could not read (path -> why:
        # noted in the room on the state thread just before the chunk is kept).
        ahead: deque[tuple[asyncio.Task[list[Fetched]], int, dict[str, str]]]
        ahead = deque()
        in_flight = 0
        next_audit = 0.0  # 0: no audit yet
        finished = False  # every chunk listed: what is ahead is all there is
        sem = asyncio.Semaphore(FETCH_CONCURRENCY)  # shared by the chunks in flight
        # Reads a chunk was kept without (``download``): kept with a later chunk once they
        # end, the rest before the final audit (``keep_left``).
        left: list[asyncio.Task[Read]] = []

        def ended_reads(fetched: list[Fetched], unread: dict[str, str]) -> None:
            for task in [t for t in left if t.done()]:
                left.remove(task)
                got, notes = task.result()
                unread.update(notes)
                if got is not None:
                    fetched.append(got)

        async def keep_oldest() -> None:
            nonlocal in_flight, next_audit
            task, size, unread = ahead.popleft()
            in_flight -= size
            fetched = await task
            ended_reads(fetched, unread)
            # Once the listing is done, the last chunk is followed by the final audit
            # (``fetch_newest_first``, also after a listing failed): no progress audit.
            last = finished and not ahead and not left
            if unread:
                await self._engine._serially(room.note_unread, unread, room=room.room_id)
            next_audit = await self._backfill_step(room, fetched, next_audit, began, last=last)

        async def keep_left() -> None:
            """The reads chunks were kept without, once they all ended."""
            nonlocal next_audit
            if not left:
                return
            if not all(t.done() for t in left):
                # What was kept is shown while they are waited for (a progress audit:
                # pending links, not gaps); the final verdict waits for them.
                await self._background_turn(room.room_id)
                await self._keeper.ingest(room, [], complete=False, force_audit=True)
            await asyncio.wait(left)
            fetched: list[Fetched] = []
            unread: dict[str, str] = {}
            ended_reads(fetched, unread)
            if unread:
                await self._engine._serially(room.note_unread, unread, room=room.room_id)
            if fetched:
                next_audit = await self._backfill_step(room, fetched, next_audit, began, last=True)

        try:
            try:
                async for chunk in chunks():
                    size = sum(it.size for it in chunk)
                    unread: dict[str, str] = {}
                    download = self.download(room, chunk, unread, sem, left=left)
                    ahead.append((asyncio.create_task(download), size, unread))
                    in_flight += size
                    while len(ahead) > 1 and (
                        room.result is None  # the first screen, as soon as it is read
                        or in_flight > AHEAD_BYTES
                        or len(ahead) > AHEAD_CHUNKS
                        or ahead[0][0].done()
                    ):
                        await keep_oldest()
            except StorageError:
                finished = True
                while ahead:  # keep what was read before the listing failed
                    await keep_oldest()
                await keep_left()
                raise
            finished = True
            while ahead:
                await keep_oldest()
            await keep_left()
        finally:
            for task, _, _ in ahead:
                task.cancel()
            for read in left:
                read.cancel()
            # what a cut pass took: a safety round's is charged and paid for
            # (``Poller._read_again_ended``)
            room.cut_pages = pages[0] if cut else 0
        return bool(next_audit) or relisted

    async def _backfill_step(
        self,
        room: RoomState,
        fetched: list[Fetched],
        next_audit: float,
        began: int,
        *,
        last: bool = False,
    ) -> float:
        """Keep a chunk; audit it if it is the first screen or progress is due. Until the
        end, predecessors may still be on their way: pending, not gaps. Returns when the
        next progress audit is due.

        The chunk is indexed in background jobs of about ``SLICE_EVENTS`` events, each
        awaited before the next is submitted: an interactive job (another room opened, a
        message arriving) runs after at most one slice, and the loop gets its turn in
        between. Progress audits are for the room someone looks at; another room's
        back-fill is audited for its first screen and at the end only (an audit of a large
        room is the longest job there is, and nobody is reading it). ``last``: the pass's
        final audit follows this chunk, so a progress audit due now would be a full audit
        of the room whose verdict nobody sees (the first screen is still audited).
        ``began``: when the pass began (``RoomKeeper.ingest``'s ``read_ms``)."""
        start = time.monotonic()
        audit = room.result is None or (
            not last and start >= next_audit and room.room_id == self._engine.focused
        )
        slices: list[list[Fetched]] = [[]]
        size = 0
        for item in fetched:
            events = _event_count(item[1])
            if slices[-1] and size + events > SLICE_EVENTS:
                slices.append([])
                size = 0
            slices[-1].append(item)
            size += events
        for i, part in enumerate(slices):
            last = i == len(slices) - 1
            await self._background_turn(room.room_id)
            await self._keeper.ingest(
                room, part, complete=False, audit=audit and last, read_ms=began
            )
            heap.settle()  # what a back-fill keeps lives as long as the room
        if not audit:
            return next_audit or time.monotonic() + PROGRESS_AUDIT
        took = time.monotonic() - start
        return time.monotonic() + max(PROGRESS_AUDIT, took / AUDIT_SHARE)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        self._engine.requests += 1
        return await self._engine.storage.list_objects(prefix)

    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        """``Storage.list_first``: at most ``most`` objects after ``after``, and whether
        more follow; counted as the pages it took (``schedule.listing_pages`` of the names
        it gave), not the pages it could have taken: a day of two names asked for up to
        29,000 is one request."""
        try:
            listed, more = await self._engine.storage.list_first(prefix, after, most)
        except BaseException:
            self._engine.requests += 1
            raise
        self._engine.requests += listing_pages(len(listed))
        return listed, more

    async def list_days(
        self, room: RoomState, most: int | None = None
    ) -> tuple[list[str], bool, int, bool]:
        """The room's day folders (``logs/<day>/``), in one listing that also shows the
        objects right in ``logs/``: no segment's place (PROTOCOL.md section 2.2), each is
        noted as refused unread with an ``unexpected-object`` notice (at most
        ``LOOSE_NOTED``, then one for the rest); one no longer listed is forgotten. They
        were ignored without a word: a segment put there, its messages never shown, and
        ``verify`` said nothing. Also True when such a note changed (the verdict did),
        the names the listing gave (what it cost: ``schedule.listing_pages``), and
        whether it was cut: ``most`` names at most (``Storage.list_level_first``: a
        background listing, red team rt102), the level holding more. A cut listing
        shows not all the days, nor all the objects: nothing is forgotten by it."""
        prefix = logs_prefix(room.room_id)
        storage = self._engine.storage
        try:
            level = await (
                storage.list_level(prefix)
                if most is None
                else storage.list_level_first(prefix, most)
            )
        except BaseException:
            self._engine.requests += 1  # at least the one asked (as ``list_first``)
            raise
        names = len(level.folders) + len(level.objects) + level.more
        # The pages it took, cut or not: an uncut listing of 10 pages counted 1.
        self._engine.requests += listing_pages(names)
        if not level.objects and not room.refused_in(prefix):  # one look: most rooms
            return level.folders, False, names, level.cut
        loose = [f"{prefix}{name}" for name in level.objects]  # names shown as text
        notes = {
            path: Finding(
                Kind.UNEXPECTED_OBJECT,
                DAY_TAKEN if is_day_folder(path.rpartition("/")[2]) else LOOSE_OBJECT,
                path,
            )
            for path in loose
        }
        if len(loose) + level.more > LOOSE_NOTED or level.cut:
            notes = {path: notes[path] for path in loose[:LOOSE_NOTED]}
            more = len(loose) + level.more - LOOSE_NOTED
            why = (
                f"{more:,} more objects"
                if not level.cut
                else f"more than {len(loose) + level.more:,} objects (a background listing "
                "goes no further)"
            )
            notes[prefix] = Finding(
                Kind.UNEXPECTED_OBJECT,
                f"{why} right in the room's logs folder, not in a day folder: no segment's "
                "place; ignored",
                prefix,
            )

        def note() -> bool:  # state thread
            changed = False
            for path in room.refused_in(prefix):
                if path not in notes and not level.cut:  # a cut listing: maybe further on
                    changed = room.forget_refused(path) or changed
            for path, finding in notes.items():
                kept = room.refused.get(path)
                if kept is None or kept[1] != finding:
                    changed = room.note_refused(path, UNKNOWN_SIZE, finding) or changed
            return changed

        changed = await self._engine._serially(note, room=room.room_id)
        return level.folders, changed, names, level.cut

    async def download(
        self,
        room: RoomState,
        items: Sequence[ObjectInfo],
        unread: dict[str, str],
        sem: asyncio.Semaphore | None = None,
        *,
        left: list[asyncio.Task[Read]] | None = None,
    ) -> list[Fetched]:
        """Download and verify segments, concurrently: in worker processes when there is
        enough to do (``SyncConfig.process_min_bytes``), else on the thread pool. What
        cannot be read now is noted in ``unread`` (path -> why; the caller notes it in the
        room on the state thread, ``RoomState.note_unread``).

        ``left`` (a pass's): once all but at most ``LEFT_BEHIND`` reads are in and those
        had ``STRAGGLER_GRACE`` seconds more, return without them — they go on, added to
        ``left`` (at most ``LEFT_BEHIND_MAX`` there), and the caller keeps what they got
        when they end. Without it, every read is waited for."""
        sem = sem or asyncio.Semaphore(FETCH_CONCURRENCY)
        bulk = (
            len(items) > 1 and sum(it.size for it in items) >= self._engine.config.process_min_bytes
        )

        async def one(item: ObjectInfo) -> Read:
            notes: dict[str, str] = {}
            async with sem:
                await self._background_turn(room.room_id)
                got = await self.read_segment(room.room_id, item, notes, background=True, bulk=bulk)
            return got, notes

        reads = [asyncio.create_task(one(it), name=f"bc-read-{room.room_id}") for it in items]
        if not reads:
            return []
        try:
            pending = set(reads)
            while pending:
                if left is None or len(pending) > LEFT_BEHIND or len(left) >= LEFT_BEHIND_MAX:
                    _, pending = await asyncio.wait(pending, return_when=FIRST_COMPLETED)
                    continue
                _, pending = await asyncio.wait(pending, timeout=STRAGGLER_GRACE)
                room_for = LEFT_BEHIND_MAX - len(left)
                if pending and len(pending) <= room_for and len(pending) < len(reads):
                    break  # left behind: the caller keeps them when they end
        except BaseException:
            await stop_tasks(reads)
            raise
        out: list[Fetched] = []
        for read in reads:
            if not read.done():
                assert left is not None
                left.append(read)
                continue
            got, notes = read.result()
            unread.update(notes)
            if got is not None:
                out.append(got)
        return out

    async def read_segment(
        self,
        room_id: str,
        item: ObjectInfo,
        unread: dict[str, str] | None = None,
        *,
        hint: bool = False,
        background: bool = False,
        bulk: bool = False,
    ) -> Fetched | None:
        """Download and verify (on the pool) one listed or hinted object of a room.

        What is not a segment at all (another name, litter that is no file) or is larger
        than ``MAX_SEGMENT_BYTES`` comes back as a segment holding only the finding that
        says so. What stands at a segment's name but cannot be read now — a FIFO, a link,
        a device, the service not answering — is noted in ``unread`` (the verdict is then
        not final, PROTOCOL.md section 16; the next full pass tries again and forgets it
        if it is gone) and gives None. ``hint``: the path comes from a marker or a file-system
        event, not a listing; if nothing is there, nothing happened (a marker naming a
        missing segment changes nothing, PROTOCOL.md section 15). ``background``: part of
        a back-fill, so its verification stands aside for a person's action."""

        def finding_only(finding: Finding) -> Fetched:
            return item, PreparedSegment(DecodedSegment(item.path, [], [finding]), [])

        def not_now(why: str) -> None:
            if unread is not None:
                unread[item.path] = why

        segment_named = is_segment_of(room_id, item.path)
        if item.special is not None:
            if segment_named:
                not_now(f"not a regular file: {item.special}")
                return None
            return finding_only(special_finding(item))
        not_read = not_read_finding(room_id, item)
        if not_read is not None:
            return finding_only(not_read)
        # A listed segment is read up to its listed size: the service said how long it
        # is, and a body that goes on past it (an answer that never ends) is no copy of
        # it. A hint has no listed size: up to the limit.
        listed = not hint and 0 < item.size <= MAX_SEGMENT_BYTES
        cap = item.size if listed else MAX_SEGMENT_BYTES
        self._engine.requests += 1
        try:
            if hint and not await self._engine.storage.spelled_as_stored(item.path):
                # A folder that ignores case or how accents are encoded would open the
                # segment stored as ``…_alice…`` for a marker's ``…_ALICE…``: kept under
                # the marker's spelling, the next listing (the real one only) took it for
                # an honest segment removed from storage, a lasting ERROR against its
                # writer (red team rt93). Not read: the listing reads it as it is named.
                log.info(
                    "ignoring a hint at %s: no object is stored under that exact name", item.path
                )
                return None
            data = await self._engine.storage.get(item.path, max_bytes=cap)
            if segment_named and unfinished(data):  # or still being written?
                data = await read_once_written(
                    self._engine.storage,
                    item.path,
                    data,
                    MAX_SEGMENT_BYTES,
                    unfinished,
                    self._engine.writer_waits,
                )
        except NotRegularFileError as exc:
            log.info("%s", exc)
            not_now(f"not a regular file: {exc.kind}")
            return None
        except UnreadableObjectError as exc:
            if isinstance(exc, ObjectTooLargeError) and exc.limit < MAX_SEGMENT_BYTES:
                # longer than listed: not this read's copy
                log.info("%s: more than its listed %s bytes (will retry)", item.path, cap)
                not_now(_not_as_listed(None, cap))
                return None
            log.warning("%s", exc)
            return finding_only(unreadable_finding(exc, Kind.SEGMENT_TOO_LARGE))
        except StorageError as exc:
            if hint and isinstance(exc, StorageNotFoundError):
                log.info("ignoring a hint at %s: %s", item.path, exc)
                return None
            log.info("could not read %s: %s (will retry)", item.path, exc)
            not_now(str(exc))
            return None
        if listed and len(data) != item.size:
            # An answer of another length than listed (an error page sent as the object,
            # a body cut short) is not kept as the copy checked here: kept, every later
            # honest read of the segment was reported as a change in storage.
            log.info("%s: %d bytes read, %d listed (will retry)", item.path, len(data), cap)
            not_now(_not_as_listed(len(data), cap))
            return None
        async with self._verify_slots if background else contextlib.nullcontext():
            if background:
                await self._background_turn(room_id)
            prepared = await self._prepare(item.path, data, room_id, bulk=bulk)
        if isinstance(prepared, str):  # a worker process could not check it
            not_now(prepared)
            return None
        if hint and segment_named and self._engine._local is None:
            # A hinted read has no listed size to hold the answer to: a service that sends
            # an error page or an empty body as the object would otherwise be kept as the
            # copy checked here, for good (the message lost, the sender's next one shown
            # with a gap). What does not look like the whole object (``_hinted_doubt``)
            # is read again at the next listing, which gives its size.
            doubt = _hinted_doubt(prepared, len(data))
            if doubt is not None:
                log.info("%s: read on a notice, not kept: %s", item.path, doubt)
                not_now(
                    f"read on a notice, the service sent {doubt}: not kept, read again "
                    "at the next listing"
                )
                return None
        if hint:
            # A hint gives no listed checksum: the MD5 of the bytes read, as the service
            # lists it for an object put whole (``tag_of_written``, as this device's own
            # writes keep it). The first listing then compares with what was read here,
            # a rewrite before it included (red team rt70: that listing's ETag of the
            # rewritten bytes was taken as the one to compare, and the rewrite was never
            # reported). S3 (``s3-md5:``), GCS and Azure (``md5:``) list that MD5 for a
            # segment put in one request; one listed with another tag or none (a
            # multipart or KMS ETag, a GCS compose's CRC32C, an Azure blob put in blocks)
            # is read again and its bytes compared (``_note_vanished``, ``_recheck``) —
            # once where the listed tag is then kept with the MD5, at each listing of its
            # day where none is listed. A folder lists no checksum: None, as for a listed
            # read there (same-size rewrites in folders are a limit, docs/SECURITY.md).
            tag = self._engine.storage.tag_of_written(data)
        else:
            tag = tag_of_bytes(item.content_tag, data)
        return ObjectInfo(item.path, len(data), tag), prepared

    async def relist(self, room: RoomState, folder: str, items: Sequence[ObjectInfo]) -> bool:
        """What a listing of date folder ``folder`` says of the objects refused unread
        there (``RoomState.refused``): one no longer listed is forgotten, its finding
        with it, as a reader that never saw it would have none. One listed at another
        size (or as a link, a FIFO) is read again by the caller (``RoomState.holds``):
        kept if it reads, refused again by what it is now if not; one listed at the size
        refused stays refused, not downloaded. True when a finding went: the room's
        verdict is no longer what was shown."""
        if not room.refused:  # one look (the loop's): most rooms have none
            return False
        return await self._engine._serially(_relist, room, folder, items, room=room.room_id)

    async def compare_listing(
        self, room: RoomState, folder: str, items: Sequence[ObjectInfo], held: int
    ) -> bool:
        """What a listing of date folder ``folder`` says of the segments the room kept
        from it (the first ``held``: those kept before the listing was asked): gone,
        another size, another checksum (``_note_vanished``; what a checksum cannot
        settle is read again, ``_recheck``), each noted in the room; checksums learnt
        are kept in the index (a restart compares them, not what it lists then). True
        when a note is new or changed: the room's verdict is no longer what was shown."""
        room_id = room.room_id

        def vanish() -> tuple[
            dict[str, str], dict[str, tuple[str, str | None]], dict[str, str | None]
        ]:
            before = {p: room.note_of(p) for p in room.known_in(folder, held)}
            return (*_note_vanished(room, folder, items, held), before)

        learnt, recheck, before = await self._engine._serially(vanish, room=room_id)
        if recheck:
            learnt.update(await self._recheck(room, recheck))
        if learnt and self._engine.index is not None:
            await self._engine._serially(self._engine.index.set_content_tags, room_id, learnt)

        def noted() -> bool:  # state thread
            return any(room.note_of(p) != before.get(p) for p in room.known_in(folder, held))

        return await self._engine._serially(noted, room=room_id)

    async def _recheck(
        self, room: RoomState, kept: dict[str, tuple[str, str | None]]
    ) -> dict[str, str]:
        """Read again segments a listing did not show with the checksum kept for them
        (``_note_vanished``: path -> (kept, listed)) and note those whose bytes are no
        longer the ones checked here. One whose read fails is noted as such (the room is
        not completely read; the next pass lists and reads it again): no verdict
        without the bytes. Returns the tags to keep
        from now on for S3 objects whose bytes are the same under another ETag (a copy in
        place that encrypted them with KMS, the same bytes uploaded in parts): that ETag
        is kept with the MD5, so they are not read again at every pass, and another
        change of it is settled by the bytes again (``storage.confirmed``)."""
        sem = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def changed(path: str, tag: str) -> str | None:
            async with sem:
                self._engine.requests += 1
                try:
                    data = await self._engine.storage.get(path, max_bytes=MAX_SEGMENT_BYTES)
                except UnreadableObjectError as exc:  # listed at the size read before
                    return f"it could not be read again to check it is unchanged: {exc}"
                except StorageNotFoundError:
                    return ""  # gone since it was listed: the next listing says so
                except StorageError as exc:
                    log.info("could not read %s again to compare it: %s", path, exc)
                    return (
                        "the storage lists another checksum of its bytes than the one "
                        f"of the bytes read here, and it could not be read again to "
                        f"compare them (retried at the next check): {exc}"
                    )
            return None if bytes_match(tag, data) else CHANGED_SAME_SIZE

        paths = list(kept)
        found = await asyncio.gather(*(changed(path, kept[path][0]) for path in paths))
        adopt: dict[str, str] = {}
        for path, why in zip(paths, found, strict=True):
            then, listed = kept[path]
            if why is None and (now := confirmed(then, listed)) != then:
                adopt[path] = now

        def note() -> None:  # state thread
            for path, why in zip(paths, found, strict=True):
                if why is None:  # the bytes read here after all: an earlier note goes
                    room.listed_as_read(path)
                elif why == CHANGED_SAME_SIZE:
                    room.note_changed(path, why, kept[path][1])
                elif why:  # could not be read again to compare: retried
                    room.note_failed(path, why)
            room.tags.update(adopt)

        if adopt or any(why != "" for why in found):
            await self._engine._serially(note, room=room.room_id)
        return adopt

    async def _prepare(
        self, path: str, data: bytes, room_id: str, *, bulk: bool
    ) -> PreparedSegment | PackedSegment | str:
        """Decode and verify one segment: in a worker process (``bulk``: packed, unpacked
        by the state thread as it keeps it, with no extra hop between threads per
        segment) or on a thread. A ``str`` says why it could not be checked (a worker
        stopped on it)."""
        packed = await self._engine._verifier.prepare(path, data, room_id) if bulk else None
        if packed is None:  # a small read, or no worker process can run here
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._engine._pool, prepare_segment, path, data, room_id
            )
        return packed


def _hinted_doubt(got: PreparedSegment | PackedSegment, size: int) -> str | None:
    """Why a segment read on a hint (no listed size) may not be what is stored, or None.

    What an answer that is not the object looks like: nothing that is an event (an error
    page, an empty body), a last line cut off (a body cut short), or events that do not
    span the segment's name (cut at a line's end, or another segment's bytes). A bad line
    among good events is the object's own: kept with its finding, as a listed read
    would keep the same bytes."""
    if _event_count(got) == 0:
        return f"{size:,} bytes holding no event"
    findings = got.decoded.findings if isinstance(got, PreparedSegment) else got[2]
    cut = next((f for f in findings if f.kind in _NOT_THE_OBJECT), None)
    if cut is not None:
        return f"{size:,} bytes that are not the whole segment ({cut.kind.value})"
    return None


_NOT_THE_OBJECT = frozenset({Kind.TRUNCATED, Kind.SEGMENT_NAME_MISMATCH})


def _event_count(got: PreparedSegment | PackedSegment) -> int:
    return len(got.decoded.events) if isinstance(got, PreparedSegment) else len(got[1])


Notes = tuple[dict[str, str], dict[str, str], dict[str, str | None]]
"""A room's notes a pass clears to read again: ``unread``, ``vanished``, ``judged``."""


def _cut_short(room: RoomState, dates: Set[str], cleared: Notes, why: str) -> None:
    """State thread: a pass's listing of the room's days was cut short
    (``Backfill._read_history``): the notes ``cleared`` of segments in days it does not
    list (not in ``dates``) are put back, unless noted otherwise or kept meanwhile, and
    the room is noted as not listed completely, ``why``."""
    prefix = logs_prefix(room.room_id)

    def elsewhere(path: str) -> bool:
        day, sep, _ = path.removeprefix(prefix).partition("/")
        return not path.startswith(prefix) or not sep or day not in dates

    unread, vanished, judged = cleared
    for path, note in unread.items():
        if elsewhere(path) and path not in room.known and path not in room.vanished:
            room.unread.setdefault(path, note)
    for path, note in vanished.items():
        if elsewhere(path) and path not in room.unread:
            room.vanished.setdefault(path, note)
            if path in judged:
                room.judged.setdefault(path, judged[path])
    room.unlisted[prefix] = why


def cut_short_only(room: RoomState) -> bool:
    """Whether all a room's pass left unread is its days, its listing of them cut short
    behind other windows (``_cut_short``): then a safety listing (``Poller.refresh``,
    which lists the days left behind too) does what reading it all again there would,
    until it can be read whole. One look (the loop may ask: may be one job old)."""
    prefix = logs_prefix(room.room_id)
    return (
        not room.unread
        and len(room.unlisted) == 1
        and room.unlisted.get(prefix, "").startswith(LEVEL_OVER)
    )


def _note_unlisted(room: RoomState, folder: str, why: str) -> None:
    """State thread: a day folder of the room that could not be listed (an error: the
    room is not completely read until it can be)."""
    room.unlisted[folder] = why


def _relist(room: RoomState, folder: str, listed: Sequence[ObjectInfo]) -> bool:
    """State thread: ``Backfill.relist``."""
    refused = room.refused_in(folder)
    if not refused:
        return False
    now_of = {it.path for it in listed}
    return any([room.forget_refused(path) for path in refused if path not in now_of])


def drop_refused_days(room: RoomState, dates: set[str]) -> bool:
    """State thread: forget what was refused unread in a day folder no longer listed at
    all (``Backfill.relist``; an object store has no empty folders). True when any was."""
    gone = [f for f in room.refused_folders if f.count("/") == 4 and f.split("/")[3] not in dates]
    return any([room.forget_refused(p) for folder in gone for p in room.refused_in(folder)])


def _not_as_listed(sent: int | None, listed: int) -> str:
    """Why a segment read is not kept: the service's answer was longer (``sent`` None)
    or shorter than its listing gave (read again when it is as listed)."""
    if sent is None:
        what = f"more bytes than the {listed:,} its listing gives"
    else:
        what = f"{sent:,} bytes where its listing gives {listed:,}"
    return f"the service sent {what}: not kept, read again at the next listing"


NO_DAY_LISTED = "it lists no day at all, though this device read "
"""How the note of a room whose listing shows no day folder begins
(``note_days_gone``; ``RoomState.unlisted``, under the room's ``logs/``)."""


def note_days_gone(room: RoomState, read: Set[str], listed: Set[str], held: int) -> bool:
    """State thread: the days of ``read`` (date folders this device read segments from,
    among the first ``held`` the room kept) that the listing of the room's days
    (``listed``) no longer shows. An object store has no folders: a day whose every
    object was removed (or moved into another day) is no prefix any more, and no listing
    of that day is ever compared with what was read from it — so each of its segments is
    noted here as gone (``_note_vanished`` of an empty listing), and when not one day is
    listed, one note for the room instead of one per segment ever read. A room's opening
    (``_read_history``) and the running app's safety listing (``Poller.refresh``) note
    them alike (red team rt70: the running app noted nothing, round after round, while
    the next opening reported every segment). True when a note is new or changed: the
    room's verdict is no longer what was shown."""
    gone = sorted(read - listed)
    if not gone:
        return False
    prefix = logs_prefix(room.room_id)
    if not listed:  # not one day: one note, not one per segment ever read
        why = (
            f"{NO_DAY_LISTED}{len(gone):,} days of it before: the storage is not the one "
            "it was (a folder not mounted or not synced yet?), or someone removed its "
            "history"
        )
        changed = room.unlisted.get(prefix) != why
        room.unlisted[prefix] = why
        return changed
    folders = [f"{prefix}{date}/" for date in gone]
    before = {p: room.note_of(p) for folder in folders for p in room.known_in(folder, held)}
    for folder in folders:
        _note_vanished(room, folder, (), held)
    return any(room.note_of(p) != note for p, note in before.items())


def _note_vanished(
    room: RoomState, folder: str, listed: Sequence[ObjectInfo], held: int
) -> tuple[dict[str, str], dict[str, tuple[str, str | None]]]:
    """State thread (it reads what the room holds and notes in it). Segments of
    ``folder`` this device read and checked earlier that the listing no longer shows, or
    shows with another size or another content tag (``ObjectInfo.content_tag``: the
    bytes' MD5 or ETag as the service gives it): write-once history never loses or
    rewrites an object, so any of these is someone with write access (or the provider)
    tampering. The copy checked here stays shown; the room is not completely read (an
    error finding names each) until the storage holds them again. A listing of one date
    folder covers what was read from it: days a warm pass does not list are checked by a
    full pass. Only the first ``held`` segments the room kept count (``known`` only
    grows, in the order kept): those kept before the listing was asked; one kept since
    (this device's own delivery, a hint) may be newer than the listing and is no sign of
    anything. A segment kept without a size (a hint that could not read it) takes it
    from its first listing, one kept without a tag (a cache from before tags, a read
    whose listing gave none) the listing's: from then on they are compared. A hint's read
    and this device's own write keep the MD5 of the bytes (``read_segment``,
    ``tag_of_written``): the first listing is compared with it. Returns the tags so
    learnt, for the index, and the segments whose kept tag is the MD5 of the bytes
    checked here (``storage.bytes_decide``) that the listing does not confirm, with that
    tag and the listed one: read again by ``_recheck``, which notes them if their bytes
    changed."""
    now_of = {it.path: it for it in listed}
    learnt: dict[str, int] = {}
    tags: dict[str, str] = {}
    recheck: dict[str, tuple[str, str | None]] = {}
    for path in room.known_in(folder, held):  # not a walk over all kept: KnownFolders
        if not is_segment_of(room.room_id, path) or room.ledger.refused(path):
            # Refused unread (litter, over the size limit) is not held (it is in
            # ``RoomState.refused``; ``relist`` compares it), and nothing of it was read
            # or checked here: "read and checked on this device" would be false.
            continue
        size = room.known[path]
        now = now_of.get(path)
        if now is None:
            room.note_vanished(
                path,
                f"{LOST_HERE}no longer in storage: "
                "segments are never deleted, someone with write access removed or moved it",
            )
            continue
        if now.special:  # listed with no size: "N bytes then, 0 now" would mislead
            room.note_vanished(
                path,
                f"{LOST_HERE}now a {now.special} "
                "in storage: segments are never replaced, and links and special files are "
                "never followed; the copy checked here is kept",
            )
            continue
        if size == UNKNOWN_SIZE:
            learnt[path] = size = now.size  # kept from a hint that could not read it
        elif now.size != size:
            room.note_vanished(
                path,
                f"{CHANGED_HERE} ({size:,} "
                f"bytes then, {now.size:,} now): segments are never rewritten; the copy "
                "checked here is kept",
            )
            continue
        then_tag = room.tags.get(path)
        same = same_content(then_tag, now.content_tag)
        if same is True or (then_tag is None and now.content_tag is None):
            # Listed as it was read (in a folder: at its size; same-size rewrites there
            # are a limit, docs/SECURITY.md): a note of an earlier listing is taken back.
            # A synced folder's tool that deletes a file and downloads it again leaves it
            # missing a moment, and a safety listing every 30 s meets that moment.
            room.listed_as_read(path)
            continue
        if then_tag is not None and bytes_decide(then_tag):
            # The MD5 of the bytes checked here: the bytes read again decide (a metadata
            # update clears an Azure Content-MD5; a rewrite from blocks leaves none).
            # Not again once found changed so while listings show it as they did then:
            # a listing every 30 s would download it every time (a pass that starts
            # over clears the note first). Listed with another tag (or none, or one
            # again), it is read again: the same bytes put back in parts, composed or
            # from blocks (a backup's restore) take the note back at the next listing.
            if not room.changed_as_listed(path, now.content_tag):
                recheck[path] = (then_tag, now.content_tag)
        elif same is False:
            room.note_vanished(path, CHANGED_SAME_SIZE)
        elif now.content_tag and not (then_tag and ":" in then_tag):
            # none kept to compare (a cache from before tags, or one that had schemes;
            # a read whose listing gave none: an Azure blob put in blocks): compared
            # from now on. Not a hint's read: that keeps the MD5 of the bytes read
            # (``read_segment``), compared above. A kept tag of another scheme stays:
            # adopting the listing's would let one rewrite that changes the scheme set
            # what is compared after.
            tags[path] = now.content_tag
    room.known.update(learnt)  # the same places in the order kept: from now on compared
    room.tags.update(tags)
    return tags, recheck


# How ``_note_vanished``'s notes begin (``RoomState.vanished``).
LOST_HERE = "it was read and checked on this device earlier and is "
CHANGED_HERE = "it changed in storage after this device read and checked it"
CHANGED_SAME_SIZE = (
    f"{CHANGED_HERE} (the same size, but "
    "the checksum of its bytes is not the one of the bytes read then): segments are "
    "never rewritten; the copy checked here is kept"
)
