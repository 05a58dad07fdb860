"""Finding what is new: activity markers, a change feed, safety listings, a watched folder.

A bucket is polled by listing its activity markers (one listing per storage, whatever
the number of rooms; ``schedule.py`` says how often: often while the app's window is
focused, sparingly behind it, at once after activity). With a change feed (an S3
bucket's SQS queue, ``storage/feed.py``) the poller waits on the feed instead and lists
the markers only every ``feed_check`` seconds; when the feed fails it polls, and tries
the feed again after a backoff. A local folder is watched (watchdog): a file that was
closed or linked there is read at once, and the folder is rescanned now and then.
Whatever the source, a named segment is only a hint: ``fetch_segment`` reads and checks
it like a listed one (``backfill.py``) and hands it to the ``RoomKeeper``, if an object is
stored under exactly that name (``Storage.spelled_as_stored``: a folder that ignores case
would open another spelling's file, red team rt93). Every room
read completely is also listed again now and then (``refresh``: the safety net for
markers that never came).

A round never waits on one room: each room's hints are read by a task of the room's own
(``_hint``), and its safety pass is a task of its own, one at a time per room (a room
whose pass still runs is left out of the next round, which says so in the log). A round
waits for the steps it started at most ``SyncConfig.round_wait`` seconds; one that takes
longer goes on by itself, and what it finds counts as activity when it ends. So a read
that gets no answer (a dead connection, until the storage's own timeout) holds up that
room only, never the news of the others (docs/SCHEDULING.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..index import Index
from ..protocol.activity import activity_folder, parse_marker
from ..protocol.audit import HOLD_AHEAD_MS
from ..protocol.ids import (
    DAY_SPREAD_MS,
    SegmentName,
    days_left_behind,
    is_segment_name,
    is_valid_room_id,
    listing_start,
    logs_prefix,
    newest_days,
    parse_segment_path,
    utc_date,
)
from ..protocol.untrusted_text import terminal_safe
from ..storage.base import ObjectInfo, StorageError
from ..storage.feed import ChangeFeed
from ..storage.local import LocalStorage
from . import keeper as room_keeper
from .backfill import (
    NO_DAY_LISTED,
    UNKNOWN_SIZE,
    cut_short_only,
    drop_refused_days,
    level_over_note,
    near_dates,
    note_days_gone,
)
from .events import ChangeFeedStatus
from .folder_watch import NotWatchable, Watch, new_watch
from .room_objects import Budget
from .schedule import (
    FEED_NAMED_GRACES,
    LEVEL_PAGES_MAX,
    LISTING_PAGE,
    SAFETY_COST,
    SAFETY_PAGES_MAX,
    SafetyPace,
    background_period,
    charged_wait,
    feed_rest,
    listing_pages,
    poll_delay,
    safety_period,
    safety_wait,
)
from .stopping import stop_tasks

if TYPE_CHECKING:
    from .backfill import Backfill
    from .engine import SyncEngine
    from .keeper import Fetched, RoomKeeper
    from .room_state import RoomState

log = logging.getLogger("bucket_chat.sync")

MARKER_TAIL_MS = 10 * 60_000
"""After UTC midnight, how long yesterday's activity folder is listed too: markers of
writers whose clocks run behind, and those published just before midnight that a bucket
lists a little later. Each round then costs a request more; the rooms' background
listings pay for it (``poll_once``, ``SafetyPace.charge``)."""
DAY_MS = 86_400_000
MARKER_SETTLE_MS = 2 * 60_000  # only markers at least this old move the marker cursor
MARKER_AHEAD_MS = HOLD_AHEAD_MS  # markers dated later than this are not listed
MARKER_NEAR_MS = 10_000
"""A bucket's marker listing reaches this far ahead of now at every round; up to
``MARKER_AHEAD_MS`` ahead while that part held at most ``AHEAD_LISTED_MAX`` names, else
once every ``AHEAD_RELIST`` s. Names dated within the hour ahead (junk with a time in
front, forged markers) were listed again at every round until they were two minutes old:
10,000 of them cost 10 pages and a second of CPU every 3 s, for up to an hour (red team
rt59). A marker dated ahead is read once its time comes within this reach."""
AHEAD_LISTED_MAX = 500  # names dated past ``MARKER_NEAR_MS`` a wide listing may read each round
AHEAD_RELIST = 300.0  # seconds between wide listings while they read more (``MARKER_NEAR_MS``)
JUNK_NAMED = 3  # junk names in the activity folder named in the log line that says them
FEED_RETRY_MAX = 600.0  # seconds: the longest wait before a failed change feed is tried again
MAX_HINTS = 50  # objects one wait on the change feed may make the engine read
HINTS_PER_MINUTE = 120
"""Objects the change feed's notifications may make the engine read a minute, per
storage (``HintBudget``), in bursts of as many. A hostile or broken queue answered every
wait at once with a hundred made-up segment names: ~50 reads of the bucket a second
(180,000 an hour, each billed) while the queue itself was paced to a request a second.
120 a minute is far above what real rooms write (a segment per send: twenty people
each sending every ten seconds), and a queue that gathered notifications while the app
was away names segments the markers' first listing has read already, which cost
nothing. Past it a real message waits ``HINT_CATCH_UP`` s at most for the markers and
the listing of its day folder (``CATCH_UP_DAYS``)."""
MARKERS_QUEUED_MAX = 64
"""Segments named by activity markers a room's hint reader keeps waiting at most (the
newest): past it the oldest are left to the room's listing, owed (``_owe_listing``),
which reads them if real. Reads named by markers are paced by ``Poller.marker_budget``
(``HINTS_PER_MINUTE`` a minute per storage, as the feed's), newest first: 1,500 markers
naming made-up segments of an open room cost every reader as many reads, one after
another, and a real message announced after them waited 22-36 s (red team rt59)."""
HINT_CATCH_UP = 15.0
"""Seconds after the change feed named more than ``HINTS_PER_MINUTE`` allows within
which the activity markers are listed, and the day folders of the segments it dropped
(``CATCH_UP_DAYS``): what the notifications dropped named, if real."""
CATCH_UP_DAYS = 4
"""Day folders of rooms open here listed per ``HINT_CATCH_UP`` for the segments the
feed's budget dropped, nearest today first. A writer that makes no activity markers
(PROTOCOL.md section 15: the reference implementation, older clients) is announced by
its notification only: the markers' listing alone left its dropped message to the room's
safety listing, 15 minutes in front, 4 hours behind other windows."""
CATCH_UP_KEPT = 256  # (room, day) pairs kept for those listings; the farthest from today go
HINT_RETRY = 15.0
"""Seconds after a read on a notice failed (no answer, a server error) or was not kept
(an answer that is not the object, ``backfill._hinted_doubt``) within which the room's
safety listing runs: the listing decides what the read could not. Before, that was the
room's own period: 15 minutes in front, 4 hours behind other windows, while a message
that had arrived waited for it."""
OWED_BACKOFF = 4  # each owed listing in a row waits this many times longer than the last
OWED_MAX_STEPS = 3  # at most HINT_RETRY * 4**3 s: 16 minutes
OWED_QUIET = 3600.0
"""Seconds without an owed listing after which the next one waits ``HINT_RETRY`` again.
A member who writes a junk segment and its marker every few seconds made every reader
read the whole room again every 15 s (a read not kept leaves the room "worth reading
again"), behind other windows too, where it used to be every 4 hours."""
OWED_PATHS_MAX = 64  # segments an owed listing of a room looks for (``RoomState.owed_paths``)
OWED_PAGES_MAX = 4
"""Pages one owed listing of a room takes at most on a bucket (``_list_owed``): each
lists one page of the day folder from just before a segment owed. It listed the room's
newest days whole, as a safety listing: a member who filled them with 190,000 junk names
and wrote an empty segment every 16 minutes made every reader list 380 pages each time,
977 requests an hour (red team rt94). What is left is owed on."""
OWED_OTHERS_MAX = 4
"""Segments one owed listing reads at most besides those it owes (``_list_owed``): new
names of the room on the pages it took anyway — a writer that makes no activity markers
(PROTOCOL.md section 15) waited for the room's next safety listing, hours behind other
windows. At most this many at once per storage, saved up (``Poller.owed_others``), so
that a page of junk named as segments costs a few reads, not a page of them."""
OWED_OTHERS_PER_HOUR = 8
"""Reads per hour per storage that ``OWED_OTHERS_MAX`` is refilled at: with it, what
owed listings read besides what they owe costs a storage at most 12 requests in any
hour (docs/SCHEDULING.md, "What an idle storage costs")."""
HINTS_KEPT = 4096  # paths the change feed named lately: named again, they are not read again
REREADS = 2  # a hint read that got nothing and was named again meanwhile: read again
NOTED_DAYS = 4  # older days with a segment noted gone or changed that a refresh lists too
BEHIND_DAYS_MAX = 4
"""Days a safety listing lists at most, oldest first, that were among the room's newest
days when its last listing began and are no longer (``ids.days_left_behind``): a
listing stretched by junk or by failures, or a laptop asleep, left a message written
there meanwhile undelivered for good (red team rt102). The rest wait for the next
listing, and the room says meanwhile that they were not listed."""
BEHIND_DATES_MAX = 366
"""Dates left behind a listing of the room's days cut short looks at by name at most, the
newest (``_dates_between``): a clock that jumped years on lists no more."""
# Rooms whose safety listing runs at once: a window coming to the front after hours makes
# every room's due together, and one of them that hangs holds one place only.
SAFETY_AT_ONCE = 8
# A watched folder's markers are listed on the bucket schedule while a listing reads at
# most this many names — all of the day folder's, before the cursor too: a member who
# fills today's activity folder with names would cost a full read every second or three;
# past it, on the rescan's cadence, as before (the watch still names what it sees).
WATCHED_LISTING_MAX = 2_000


class HintBudget(Budget):
    """The reads the change feed's notifications may cost the bucket: ``per_minute``
    reads, refilled evenly, full at first (``HINTS_PER_MINUTE``); ``dropped`` counts
    those refused."""

    __slots__ = ("dropped", "per_minute")

    def __init__(self, per_minute: int) -> None:
        self.per_minute = max(1, per_minute)
        super().__init__(float(self.per_minute), self.per_minute / 60.0)
        self.dropped = 0  # reads refused (tests, the log)

    def take(self, amount: float = 1.0) -> bool:
        if super().take(amount):
            return True
        self.dropped += 1
        return False

    def left(self) -> float:
        """The reads it allows now."""
        self._refill()
        return self._left


class _Waited(NamedTuple):
    """What one wait on the change feed brought (``_listen``), for the rest after it."""

    found: bool  # segments new here were read
    named: bool  # a name not seen before was another object of a room (``_follow``)
    empty: bool  # nothing at all: the whole long poll, quiet


class Poller:
    """Finds what is new for the engine (see the module's docstring) and keeps what that
    takes: the markers' cursors, the feed's state, the folder watch, the next wait.
    Reads go through the ``Backfill``, changes to rooms through the ``RoomKeeper``."""

    def __init__(
        self,
        engine: SyncEngine,
        backfill: Backfill,
        keeper: RoomKeeper,
        feed: ChangeFeed | None,
    ) -> None:
        self._engine = engine
        self._backfill = backfill
        self._keeper = keeper
        self._local = engine._local
        self.next_poll_in = engine.config.active_interval  # the current wait
        self.polls = 0  # marker polling rounds done (for tests and the benchmarks)
        self.listed = 0  # names the last marker listing read (a bucket's: after the cursor)
        self._poll_wake = asyncio.Event()
        self._activity_at = 0.0  # monotonic time of the last activity (``note_activity``)
        self._in_poll = False
        self._marker_cursor: dict[str, str] = {}
        self._markers_seen: dict[str, set[str]] = {}  # per day: junk, unsettled markers
        # Per day: the last name listed that is no marker and sorts before the markers
        # still to come (``_poll_markers``); listings start after it. Not kept: a listing
        # after a restart goes from the kept cursor.
        self._junk_floor: dict[str, str] = {}
        # Per day: when the listing up to an hour ahead is due again, while the last one
        # read more than ``AHEAD_LISTED_MAX`` names dated past ``MARKER_NEAR_MS``.
        self._ahead_due: dict[str, float] = {}
        # Per day: the markers acted on that the cursor kept in the index has not passed
        # (marker -> its room and segment), and that cursor (``_save_cursor``).
        self._named: dict[str, dict[str, tuple[str, str]]] = {}
        self._saved: dict[str, str | None] = {}
        self._watch: Watch | None = None  # set up and reading (``start_watch``)
        self._setting_up: Watch | None = None  # its thread still sets it up
        self._watch_setup: asyncio.Task[None] | None = None
        # Why a local folder is not watched (``start_watch``), or "" while it is: it is
        # then polled like a bucket, on the same schedule.
        self.watch_problem = ""
        self._direct: asyncio.Queue[str] = asyncio.Queue()
        # The storage's change feed, if it has one: while it answers the poller waits on
        # it and polls the bucket only every ``feed_check`` seconds.
        self.feed = feed
        self.feed_active = False
        self.feed_message = ""
        self._feed_told: bool | None = None  # the last state reported in an event
        self.feed_rounds = 0  # waits on the feed that were answered (tests, benchmarks)
        self.feed_rests = 0  # rests between them (``_rest``: tests, benchmarks)
        self.feed_resting = False
        self.feed_last_rest = 0.0  # seconds the last rest was to last (tests, benchmarks)
        # How many more waits that named one may go without a rest (``schedule.feed_rest``)
        # until something new is read or a long poll comes back empty. Else anyone who
        # may send to the queue could name made-up attachments to keep it busy.
        self._feed_graces = FEED_NAMED_GRACES
        # Since when the feed's requests are counted for the next rest, and the count then
        # (``_rest``): from the start of the last wait, or of the one before it when that
        # one named an attachment and went without a rest.
        self._feed_cycle: tuple[float, int] | None = None
        self.feed_ignored = 0  # messages or records of the feed that were ignored
        self._feed_retry_at = 0.0
        self._feed_backoff = engine.config.feed_retry
        self._feed_checked_at: float | None = None
        self._hinted: dict[str, None] = {}  # oldest first
        # Rooms' day folders of segments the budget dropped (``_follow``), listed from
        # ``_catch_up_at`` on (``_catch_up``).
        self._dropped_days: dict[tuple[str, str], None] = {}
        self._catch_up_at: float | None = None
        # What the feed's hints may cost the bucket (``HINTS_PER_MINUTE``); whether the
        # log said that the feed names more than it allows (once until it is full again).
        self.hint_budget = HintBudget(HINTS_PER_MINUTE)
        self._flood_told = False
        self._reading: set[str] = set()  # segments a hint is being read for (``fetch_segment``)
        self._named_again: set[str] = set()  # of those, named again while being read
        # Per room: its hint reader (``_hint``) and the segments named for it to read next,
        # oldest first; its safety pass in flight (``_start_safety``).
        self._hint_readers: dict[str, asyncio.Task[int]] = {}
        # (a segment -> whether a marker named it: such reads are paced by
        # ``marker_budget``, newest named first)
        self._hints: dict[str, dict[str, bool]] = {}
        self.marker_budget = HintBudget(HINTS_PER_MINUTE)
        # The reads owed listings may make of other new segments on their pages
        # (``OWED_OTHERS_MAX``), by this module's clock (tests move it on).
        self.owed_others = Budget(
            OWED_OTHERS_MAX, OWED_OTHERS_PER_HOUR / 3600.0, clock=lambda: time.monotonic()
        )
        self._safety: dict[str, asyncio.Task[int]] = {}
        self._safety_told: set[str] = set()  # rooms whose pass was said to be left out
        self._safety_slots = asyncio.Semaphore(SAFETY_AT_ONCE)
        # When the rooms' background safety listings may start (``schedule.SafetyPace``):
        # spread over their period, within the storage's idle budget (red team rt75).
        self.safety_pace = SafetyPace()
        # when a round last paid for the markers' second folder (around UTC midnight)
        self._midnight_paid_at: float | None = None
        self._junk_told_at = -1e9

    def note_activity(self) -> None:
        """Activity (a send, a message read, the user) ends a long wait: the poller looks
        at once and then often. During a round the poller reschedules by itself. A rest
        between waits on the change feed (``_rest``) ends too: the feed leaves
        ``next_poll_in`` as it was, so that test alone let a send rest out ``feed_rest``."""
        self._activity_at = time.monotonic()
        if self.feed_resting or (
            not self._in_poll and self.next_poll_in > self._engine.config.active_interval
        ):
            self._poll_wake.set()  # a watched folder too: its markers keep this schedule

    def wake(self) -> None:
        """Poll now (``SyncEngine.wake``)."""
        self.note_activity()
        self._poll_wake.set()

    async def close(self) -> None:
        """End the rooms' hint readers and safety passes, close the feed's connection and
        stop watching the folder (the engine cancelled its own tasks already). A watch
        still being set up is told to stop and never waited for: its thread may wait for
        ever on a folder that does not answer (a daemon thread: it ends with the
        process); one set up is waited for at most 5 s, on a worker thread."""
        setup = [self._watch_setup] if self._watch_setup is not None else []
        try:
            await stop_tasks([*self._hint_readers.values(), *self._safety.values(), *setup])
        finally:
            if self._setting_up is not None:
                self._setting_up.stop()
                self._setting_up = None
        if self.feed is not None:
            await self.feed.close()
        if self._watch is not None:
            watch, self._watch = self._watch, None
            watch.stop()
            await asyncio.to_thread(watch.join, 5)

    def room_steps(self, room_id: str) -> list[asyncio.Task[int]]:
        """The room's hint reader and safety pass, if running (``SyncEngine.drop_room``
        stops them): what is queued for its reader is dropped with it."""
        self._hints.get(room_id, {}).clear()
        steps = (self._hint_readers.get(room_id), self._safety.get(room_id))
        return [t for t in steps if t is not None and not t.done()]

    # -- polling -------------------------------------------------------------------------------

    async def run(self) -> None:
        """The poller's task (``SyncEngine.start``): wait on the change feed while it
        answers; else wait (``schedule.py``: woken early by activity), poll, and work
        out the next wait from how long it has been quiet. A failure that is no storage
        error (a client library meeting an answer it cannot parse, a bug) is logged and
        polling goes on: it ended this task, and nothing new arrived from then on."""
        while not self._engine._closed:
            self.check_watch()
            feed = self.feed
            due = feed is not None and time.monotonic() >= self._feed_retry_at
            if feed is not None and due:
                try:
                    waited = await self._listen(feed)
                    if waited is not None:
                        await self._rest(feed, waited)
                        continue
                except Exception:
                    log.exception("change feed: waiting on %s failed", feed.describe())
                    self._feed_retry_at = time.monotonic() + self._feed_backoff
            wait = self.next_wait()
            if feed is not None:  # not past the time the feed is tried again
                wait = min(wait, max(0.0, self._feed_retry_at - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_wake.wait(), wait)
            self._poll_wake.clear()
            self._in_poll = True
            try:
                found = await self.poll_once(wait=self._engine.config.round_wait)
            except Exception:
                log.exception("polling %s failed", self._engine.storage.describe())
                found = 0
            finally:
                self._in_poll = False
            self.polls += 1
            if found:
                self._activity_at = time.monotonic()  # rescheduled just below
            self.next_poll_in = poll_delay(
                self._engine.config,
                quiet_for=time.monotonic() - self._activity_at,
                window_focused=self._engine.window_focused,
                previous=self.next_poll_in,
            )

    def next_wait(self) -> float:
        """Seconds until the next poll (``run``). A watched folder says what is new itself,
        but not everything: a day folder made after the watch ran out of watched folders
        (``fs.inotify.max_user_watches``: watchdog only logs it) and, on a network file
        system, what other machines write are never seen by it. So its activity markers
        are listed on the bucket schedule all the same (a folder listing: cheap), its
        rooms rescanned every ``local_rescan`` at the longest; unless the last listing
        held more than ``WATCHED_LISTING_MAX`` names (junk: each listing reads them all),
        then on the rescan's cadence."""
        wait = self.next_poll_in
        if self.watching:
            rescan = self._engine.config.local_rescan
            wait = min(wait, rescan) if self.listed <= WATCHED_LISTING_MAX else rescan
        owed = [
            r.listing_owed_at
            for r in self._engine.rooms.values()
            if r.listing_owed_at is not None and r.complete  # else its read lists it
        ]
        if owed:  # a listing a failed read on a notice left owed (``_owe_listing``)
            wait = min(wait, max(0.0, min(owed) - time.monotonic()))
        return wait

    async def poll_once(self, *, markers: bool = True, wait: float | None = None) -> int:
        """``SyncEngine.poll_once``: the activity markers (what they name is read by each
        room's hint reader), then the due safety passes, each room's a task of its own: a
        room with something unread is read all over again (its verdict waits for that),
        any other complete room is ``refresh``ed. Waits for these steps at most ``wait``
        seconds (None: until they end); the segments those that ended found."""
        asked = markers  # whether the storage was asked anything (then it answered)
        steps: dict[asyncio.Task[int], None] = {}
        # Listings owed by failed reads on notices (``_owe_listing``) that are due: taken
        # now, so that ``next_wait`` never starts rounds back to back; a pass this round
        # starts lists them, else (the round ends early, the room's last pass still
        # runs) they are owed again ``HINT_RETRY`` s on (``_owed_taken``).
        started = time.monotonic()
        owed_now: set[str] = set()
        for room in self._engine.rooms.values():
            due = room.listing_owed_at
            if due is not None and room.complete and started >= due:
                room.listing_owed_at = None
                owed_now.add(room.room_id)
        listing: StorageError | None = None
        wall_ms = int(time.time() * 1000)
        try:
            if markers:
                await self._poll_markers(steps)
        except StorageError as exc:
            self._engine._set_online(False, str(exc))
            if not self._engine.answered(exc):
                for room_id in owed_now:  # owed on: what could not be read still is
                    owing = self._engine.rooms.get(room_id)
                    if owing is not None:
                        self._owed_taken(owing, listed=False)
                return 0  # the rooms' listings would fail too
            # This listing cannot be used (junk a member put in the day's activity
            # folder, a folder there nobody may read): said, and the rooms' safety passes
            # still run when due. The round ended here, and no room was read again while
            # the app ran.
            listing = exc
        now = time.monotonic()
        config = self._engine.config
        rooms = list(self._engine.rooms.values())
        # A bucket's rooms on the long background period are listed paced: each every
        # ``background_period`` (longer with more rooms than ``background_rooms``), the
        # longest waiting first, no more than ``safety_pace`` lets start (a few a round,
        # spread over the period). Before, every room's listing came due in the same
        # round every 4 hours, and 300 rooms cost 230 requests an hour idle (red team
        # rt75). What someone waits for is not paced: the focused room, a room read only
        # partly while the window is in front, a folder. A listing owed by a failed read
        # lists on a bucket only from just before what it owes (``_list_owed``: a page or
        # a few), never the room's days whole (red team rt94). A paced listing is charged
        # by the pages it took: a room whose listing costs more waits as much longer
        # (``schedule.charged_wait``), and takes at most ``SAFETY_PAGES_MAX`` pages.
        stretched = background_period(config, len(rooms))
        ceiling = config.background_safety  # how far a failed room's wait grows (at least)
        paced: list[RoomState] = []
        for room in rooms:
            period = safety_period(
                config,
                room_focused=room.room_id == self._engine.focused,
                window_focused=self._engine.window_focused,
                # only a read again can settle: what storage no longer holds as read
                # (``RoomState.vanished``) waits for the next listing as usual
                # (nor a room whose only gap is junk in its ``logs/``: not gone in a
                # minute; at the room's period, as a room noted unchecked)
                partial=room.complete and room.worth_reading_again and not cut_short_only(room),
                local=self._local is not None,
            )
            owed = room.room_id in owed_now
            scoped = owed and self._local is None  # what is owed only (``_list_owed``)
            background = not owed and self._local is None and period >= config.background_safety > 0
            # A failed attempt counts (``_safety_pass``): the room waits its period again,
            # longer after each failure in a row (``safety_wait``; red team rt77).
            fails = room.safety_failures
            if (
                room.complete
                and background
                and now - room.last_safety >= self._background_wait(room, stretched, ceiling)
            ):
                paced.append(room)
            elif scoped and not room.owed_paths and not room.owed_newest:
                pass  # nothing named in a day folder: no listing of the room's days shows it
            elif (
                room.complete
                and not background
                and (owed or now - room.last_safety >= safety_wait(period, fails, ceiling))
            ):
                asked = True
                step = self._start_safety(room, owed=scoped)
                if step is not None:
                    steps[step] = None
                if owed:
                    self._owed_taken(room, step is not None)
            # A metadata read that failed (a timeout, a server error) is made again here,
            # not only when the room is next opened; not waited for (it reports itself).
            asked = self._engine.retry_metadata(room) is not None or asked
        self.safety_pace.refill(config, now=now, rooms=len(rooms))
        if (
            self._local is None
            and markers
            and (wall_ms + MARKER_TAIL_MS) % DAY_MS < 2 * MARKER_TAIL_MS
        ):
            # The markers' second folder after UTC midnight is paid for by the rooms'
            # listings, in the rounds of the ten minutes before midnight and of the ten
            # after, by the time each round stands for (``SafetyPace.charge``).
            last = self._midnight_paid_at
            seconds = config.idle_interval if last is None else started - last
            self.safety_pace.charge(
                config, seconds=min(seconds, config.idle_interval), rooms=len(rooms)
            )
            self._midnight_paid_at = started
        elif markers:
            self._midnight_paid_at = None
        # The room due longest ago first: one whose listing failed waits behind those
        # that came due before its retry (it was sorted by its last success, always
        # first, and took every token: red team rt77).
        paced.sort(key=lambda r: r.last_safety + self._background_wait(r, stretched, ceiling))
        for room in paced:
            if not self.safety_pace.ready():
                break  # a later round: the pace spreads them over the period
            asked = True
            step = self._start_safety(room)
            if step is not None:
                self.safety_pace.spend()
                steps[step] = None
        found, failed = await self._wait_for(steps, wait)
        for date in list(self._named):  # what ended since the listing lets the cursor on
            await self._save_cursor(date)
        failed = listing or failed  # the markers' failure, said above, stays what is said
        if failed is not None:
            self._engine._set_online(False, str(failed))
        elif asked:
            self._engine._set_online(True, "")
        return found

    @staticmethod
    def _background_wait(room: RoomState, period: float, ceiling: float) -> float:
        """Seconds from the room's last background safety listing (or attempt) to its
        next: its ``period``, longer after failures in a row (``safety_wait``: red team
        rt77), stretched by what its last listing cost (``charged_wait``: rt94)."""
        wait = safety_wait(period, room.safety_failures, ceiling)
        return charged_wait(wait, room.listing_pages, period)

    async def _wait_for(
        self, steps: Iterable[asyncio.Task[int]], wait: float | None
    ) -> tuple[int, StorageError | None]:
        """Wait for rooms' steps at most ``wait`` seconds (None: until all end). Returns
        the segments those that ended found and the first storage failure among them. A
        step still running goes on by itself (``_step_ended`` reports it)."""
        pending = set(steps)
        if not pending:
            return 0, None
        done, _ = await asyncio.wait(pending, timeout=wait)
        found, failed = 0, None
        for task in done:
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is None:
                found += task.result()
            elif isinstance(exc, StorageError) and failed is None:
                failed = exc
        return found, failed

    def _step_ended(self, task: asyncio.Task[int]) -> None:
        """A room's step ended (whether a round still waited for it or not): what it
        found is activity, a storage failure is said."""
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, StorageError):
            self._engine._set_online(False, str(exc))
        elif exc is not None:  # a bug: said, never lost
            log.error("%s failed", task.get_name(), exc_info=exc)
        elif task.result():
            self.note_activity()

    def _start_safety(self, room: RoomState, *, owed: bool = False) -> asyncio.Task[int] | None:
        """Start the room's safety pass as a task of its own, unless its last one still
        runs (a request of it waits for the storage, or it reads a lot): then the room
        is left out of this round, and the log says so (once per pass). ``owed``: only
        what reads on notices left owed (``_list_owed``)."""
        running = self._safety.get(room.room_id)
        if running is not None and not running.done():
            told = room.room_id in self._safety_told
            self._safety_told.add(room.room_id)
            log.log(
                logging.DEBUG if told else logging.INFO,
                "room %s: left out of this round: its last safety pass still runs "
                "(a request of it may wait for the storage)",
                room.room_id,
            )
            return None
        if self._engine._dropped(room):  # ``close`` may be past the passes it cancels
            return None
        task = asyncio.create_task(
            self._safety_pass(room, owed=owed), name=f"bc-safety-{room.room_id}"
        )
        task.add_done_callback(self._step_ended)
        self._safety[room.room_id] = task
        return task

    async def _safety_pass(self, room: RoomState, *, owed: bool) -> int:
        """One room's safety pass (``poll_once``): the segments it found. Each kind
        takes one of the ``SAFETY_AT_ONCE`` places (a room read all over again lists
        more than a refresh: every room read only partly after an outage would list
        and download at once)."""
        before = len(room.known)
        try:
            async with self._safety_slots:
                if owed:  # a bucket's listing owed by reads on notices: what they named
                    await self._list_owed(room)
                elif room.worth_reading_again and not (
                    # Behind other windows, a room whose pass could only not list its
                    # days whole (junk in ``logs/``) is listed as any room is, days left
                    # behind too; read all over again once the window is in front.
                    self._local is None and not self._engine.window_focused and cut_short_only(room)
                ):  # read it all again: the verdict waits
                    await self._read_again(room)
                    await self._read_again_ended(room)
                else:
                    try:
                        await self.refresh(room.room_id)
                    except StorageError as exc:
                        if await self._refresh_failed(room, exc):
                            return 0  # noted in the room, the storage's other rooms listed
                        raise
        finally:
            if self._safety.get(room.room_id) is asyncio.current_task():
                del self._safety[room.room_id]
                self._safety_told.discard(room.room_id)
        return len(room.known) - before

    @staticmethod
    def reading_from_now(room: RoomState) -> None:
        """The room's pass through its history (``SyncEngine.open_room``) begins: the
        room's first safety listing lists the days left behind since then
        (``RoomState.listed_from``). Without it that listing looked at the newest days
        of its own time only, and one put off a day or more (junk, failures, 300 rooms
        behind other windows) never listed the day a member west of UTC wrote into after
        the opening (red team rt102). A room listed since keeps its own. When the pass
        began is kept too (``RoomState.pass_began_ms``)."""
        now_ms = int(time.time() * 1000)
        room.pass_began_ms = now_ms
        if room.listed_from is None:
            room.listed_from = utc_date(now_ms - DAY_SPREAD_MS)

    async def _read_again_ended(self, room: RoomState) -> None:
        """A room read all over again by a safety pass (``_read_again``): one that still
        leaves something unread or unlisted (a listing refused, a download failed: said
        in the room's findings by the pass) failed, and the room's next pass waits
        longer after each such pass in a row (``schedule.safety_wait``), as a failed
        ``refresh`` does: a room whose history cannot be listed (more names in its
        ``logs/`` than a listing takes: 201 requests an attempt) was read all over again
        every minute while the window was in front. One that read everything checked the
        room's history again (``RoomState.unchecked`` goes) and every day of it: no day
        is left behind (``RoomState.listed_from``) from when that pass began on
        (``RoomState.pass_began_ms``): a round's read again may wait for a pass begun
        long before (an opening), which listed the room's days then, not when the round
        began (review of fix102a)."""
        if self._engine._dropped(room):
            return
        if room.cut_pages and self._local is None:
            # Its listing of the room's days was cut short behind other windows
            # (``Backfill._read_history``): what it took is charged and paid from the
            # pace as a refresh's is, and it failed (the room is not read whole).
            room.listing_pages = room.cut_pages
            self.safety_pace.pay(
                self._engine.config, pages=room.cut_pages, rooms=len(self._engine.rooms)
            )
        if room.worth_reading_again:
            room.safety_failures += 1
            # the pass set it (later, after a fault of this program: its own wait)
            room.last_safety = max(room.last_safety, time.monotonic())
            return
        room.safety_failures = 0
        room.over_cost.clear()  # every day listed whole
        room.level_over = None  # and the room's days
        if room.pass_began_ms is not None:
            room.listed_from = utc_date(room.pass_began_ms - DAY_SPREAD_MS)
        if room.unchecked is not None:
            async with room.lock:
                if await self._engine._serially(_checked, room, room=room.room_id):
                    await self._keep(room, [], {}, shown=False, audit=True)

    async def _refresh_failed(self, room: RoomState, exc: StorageError) -> bool:
        """A room's safety listing failed with ``exc``. It is an attempt all the same: the
        room's next comes its period later, longer after each failure in a row
        (``schedule.safety_wait``), so a room whose listing always fails takes no other
        room's turn (red team rt77: it kept the first place in the pace's queue, and the
        storage's other rooms were never listed again). The room says since when and why
        its history could not be checked (``RoomState.unchecked``) when the storage
        answered (``SyncEngine.answered``: a listing refused for this room, more names
        than a listing takes) or the listing failed twice in a row while the storage
        answered otherwise; the whole storage offline or busy is the storage's status
        only. True when the
        failure was the room's own: then not the storage's status too."""
        room.last_safety = time.monotonic()
        room.safety_failures += 1
        own = self._engine.answered(exc)
        log.log(
            logging.INFO if room.safety_failures == 1 else logging.DEBUG,
            "room %s: its safety listing failed (%d in a row): %s",
            room.room_id,
            room.safety_failures,
            exc,
        )
        if not own and (room.safety_failures < 2 or not self._engine.online):
            # The whole storage is offline: its status says so, and a laptop on a plane
            # should not find every room marked unchecked. Only a room whose listing
            # fails while the storage answers the rest is noted.
            return False
        since, why = time.time(), terminal_safe(str(exc), limit=300)

        def note() -> bool:  # state thread
            first = since if room.unchecked is None else room.unchecked[0]
            changed = room.unchecked != (first, why)
            room.unchecked = (first, why)
            return changed

        if self._engine._dropped(room):
            return own
        async with room.lock:
            if await self._engine._serially(note, room=room.room_id):
                await self._keep(room, [], {}, shown=False, audit=True)
        return own

    def _hint(
        self, room_id: str, path: str, budget: HintBudget | None = None, *, marker: bool = False
    ) -> asyncio.Task[int] | None:
        """Have the room's hint reader read ``path`` (named by a marker, the change feed
        or the folder watch): one task per room reads what is named for it, newest named
        first, so a read that gets no answer holds up that room's hints only, and what
        was named before cannot hold up what is named now. The reader, or None
        when there is nothing to read (a room not open here, a segment it holds, that is
        being read or queued) or ``budget`` allows no read now (``HintBudget.take``).
        ``marker``: named by an activity marker, so its read is paced by
        ``marker_budget``, and at most ``MARKERS_QUEUED_MAX`` such wait (red team rt59)."""
        room = self._engine.rooms.get(room_id)
        if self._engine._closed or room is None or path in room.known or path in room.refused:
            return None  # held, or refused unread: the next listing of its day decides
        if path in self._reading:  # read again if that read gets nothing (``fetch_segment``)
            self._named_again.add(path)
            return None
        reader = self._hint_readers.get(room_id)
        queued = reader is not None and not reader.done() and path in self._hints[room_id]
        if not queued and budget is not None and not budget.take():
            return None  # what it names is left to the listings
        if reader is None or reader.done():
            queue: dict[str, bool] = {}
            reader = asyncio.create_task(
                self._read_hints(room_id, queue), name=f"bc-hints-{room_id}"
            )
            reader.add_done_callback(self._step_ended)
            self._hint_readers[room_id], self._hints[room_id] = reader, queue
        queue = self._hints[room_id]
        paced = queue.pop(path, True) and marker  # named again: now the newest
        queue[path] = paced
        if paced and sum(queue.values()) > MARKERS_QUEUED_MAX:
            oldest = next((p for p, m in queue.items() if m and p not in self._reading), path)
            del queue[oldest]  # left to the room's listing, owed now
            log.debug("room %s: markers name more than can be read: listed instead", room_id)
            self._owe_listing(room_id, oldest)
        return reader

    async def _read_hints(self, room_id: str, queue: dict[str, bool]) -> int:
        """A room's hint reader (``_hint``): reads what is named for the room until
        nothing more is, newest named first (a read named by a marker when
        ``marker_budget`` allows one, else one named otherwise, else it waits); the
        segments it kept. What could not be read is the room's listings' job."""
        found = 0
        try:
            while queue:
                path = next(reversed(queue))  # left queued until read (``_save_cursor``)
                if queue[path] and not self.marker_budget.take():
                    other = next((p for p in reversed(queue) if not queue[p]), None)
                    if other is None:
                        await asyncio.sleep(60.0 / HINTS_PER_MINUTE)
                        continue
                    path = other
                kept = False
                try:
                    if await self.fetch_segment(room_id, path):
                        found += 1
                    kept = True
                except StorageError as exc:
                    log.info("could not read %s: %s", path, exc)
                except Exception:
                    log.exception("reading %s failed", path)
                finally:
                    queue.pop(path, None)
                    if not kept or self._left_unread(room_id, path):
                        self._owe_listing(room_id, path)
        finally:
            if self._hint_readers.get(room_id) is asyncio.current_task():
                del self._hint_readers[room_id], self._hints[room_id]
        return found

    def _left_unread(self, room_id: str, path: str) -> bool:
        """Whether a read on a notice left ``path`` noted as not read: failed (no answer,
        a server error: ``RoomState.unread``) or refused (an answer that is not the
        object, ``backfill._hinted_doubt``: ``RoomState.refused``). Not a segment that
        is not there (a forged notice): that one costs its one read only."""
        room = self._engine.rooms.get(room_id)
        return room is not None and (path in room.unread or path in room.refused)

    def _owed_taken(self, room: RoomState, listed: bool) -> None:
        """A round took the room's owed listing: a pass started (``listed``: the next
        debt in a row waits longer), or its last one still runs — then owed again, not
        dropped (the read that failed is still unread)."""
        now = time.monotonic()
        if listed:
            quiet = now - room.owed_taken_at >= OWED_QUIET
            room.owed_streak = 1 if quiet else room.owed_streak + 1
            room.owed_taken_at = now
        elif room.listing_owed_at is None:
            room.listing_owed_at = now + HINT_RETRY

    def _owe_listing(self, room_id: str, path: str) -> None:
        """A read on a notice of ``path`` failed or was not kept: the room is listed within
        ``HINT_RETRY`` s (at the next round from then), once for any number of such reads
        meanwhile; each owed listing in a row waits ``OWED_BACKOFF`` times longer (up to
        16 minutes), until an hour passes without one. On a bucket that listing looks for
        what the reads named only (``_list_owed``: a page from just before each, at most
        ``OWED_PATHS_MAX`` of them): a name in no day folder of the room is in no listing
        of its days, and owes nothing; in a folder, the room's safety pass (listing costs
        nothing there)."""
        room = self._engine.rooms.get(room_id)
        if room is None:
            return
        if self._local is None:
            day = _day_of(room_id, path)
            if day is None:
                return
            if path not in room.owed_paths and len(room.owed_paths) >= OWED_PATHS_MAX:
                # Full: what is owed in the day farthest from today goes (the last owed
                # of those), unless that is this one. One of the room's newest days
                # dropped so has the next owed listing look at those days, a page each
                # (``_list_owed``): a member's notices of segments in old days pushed an
                # honest one of today out, and it was owed nothing (red team rt96). One
                # of an older day keeps its note (unread, refused): the safety listing
                # lists that day again (``_noted_days``).
                far = max(reversed(room.owed_paths), key=lambda p: _owed_far(room_id, p))
                dropped = far if _owed_far(room_id, far) > _owed_far(room_id, path) else path
                if dropped == far:
                    del room.owed_paths[far]
                if _owed_far(room_id, dropped) <= 1:  # of the newest days
                    room.owed_newest = True
            if len(room.owed_paths) < OWED_PATHS_MAX:
                room.owed_paths[path] = None
        self._owed_due(room)

    def _owed_due(self, room: RoomState) -> None:
        """The room's owed listing is due (``_owe_listing``), unless it already is."""
        if room.listing_owed_at is not None:
            return
        now = time.monotonic()
        streak = room.owed_streak if now - room.owed_taken_at < OWED_QUIET else 0
        room.listing_owed_at = now + HINT_RETRY * OWED_BACKOFF ** min(streak, OWED_MAX_STEPS)

    async def _poll_markers(self, steps: dict[asyncio.Task[int], None]) -> None:
        """List today's activity folder after the cursor and have what markers name read
        (``_hint``; the rooms' hint readers are added to ``steps``). In the
        ``MARKER_TAIL_MS`` after UTC midnight yesterday's folder too (``poll_once`` has
        the rooms' pace pay for it: ``SafetyPace.charge``).

        Only a well-formed marker of that day that has *settled* (published at least
        ``MARKER_SETTLE_MS`` ago by its writer's clock) moves the cursor: a junk name, a
        forged marker dated later today, or an honest writer whose clock runs fast
        would otherwise sort after markers still to come and hide them. Newer markers
        are acted on once and listed again until they settle; junk is logged once."""
        now_ms = int(time.time() * 1000)
        dates = [utc_date(now_ms)]
        if now_ms % DAY_MS < MARKER_TAIL_MS:  # just after midnight: yesterday's tail too
            dates.insert(0, utc_date(now_ms - 86_400_000))
        for stale in set(self._markers_seen) - set(dates):
            del self._markers_seen[stale]
        for stale in set(self._junk_floor) - set(dates):
            del self._junk_floor[stale]
        for stale in set(self._ahead_due) - set(dates):
            del self._ahead_due[stale]
        for stale in set(self._named) - set(dates):
            del self._named[stale]
            self._saved.pop(stale, None)
        listed = 0
        for date in dates:
            folder = activity_folder(date)
            cursor = self._marker_cursor.get(date)
            if cursor is None and self._engine.index is not None:
                cursor = await self._engine._read(Index.cursor, f"activity:{date}")
                if cursor is not None and parse_marker(cursor) is None:
                    cursor = None  # left by an older version that trusted junk
                self._saved[date] = cursor
            seen = self._markers_seen.setdefault(date, set())
            named = self._named.setdefault(date, {})
            # Junk listed before, sorting before every marker still to come: only a
            # marker moves the cursor, so on a quiet day junk named with a time between
            # the cursor and now was listed again at every round.
            floor = self._junk_floor.get(date)
            after = floor if floor is not None and (cursor is None or floor > cursor) else cursor
            self._engine.requests += 1
            if self._local is not None:
                # A folder's listing reads every name of the day, those before the cursor
                # too (``list_after`` filters what it read): junk sorting before the
                # markers costs as much as junk after them (``next_wait``).
                items = await self._engine.storage.list_after(folder, None)
                listed += len(items)
                if self.watching:  # the only cadence the count sets (``next_wait``)
                    # The listing walks every folder in the day's folder and names no
                    # empty one: 50,000 of them cost 18 s of CPU every 30 s, read as an
                    # empty day. No marker is a folder, and what is below one is walked
                    # out of sight: any folder there counts the listing as past the limit.
                    level = await self._engine.storage.list_level(folder)
                    if level.folders:
                        listed += WATCHED_LISTING_MAX + len(level.folders)
                if after is not None:
                    items = [i for i in items if i.path > after]
            else:
                # A bucket's pages only up to names an hour ahead: a real marker is named
                # by its writer's clock, so what sorts later is junk or dated so far
                # ahead that its messages are held back anyway (the rooms' safety
                # listings find those). Junk named to sort last was listed again at
                # every round, all day (100,000 names: 100 pages, each parsed on the
                # app's thread). Past ``MARKER_NEAR_MS`` ahead only while that part is
                # small, else every ``AHEAD_RELIST`` s: names dated within the hour were
                # listed again at every round too, until two minutes old (red team rt59).
                near = f"{folder}{now_ms + MARKER_NEAR_MS:013d}"
                wide = time.monotonic() >= self._ahead_due.get(date, 0.0)
                before = f"{folder}{now_ms + MARKER_AHEAD_MS:013d}" if wide else near
                items = await self._engine.storage.list_between(folder, after, before)
                listed += len(items)
                if wide:
                    ahead = sum(1 for item in items if item.path >= near)
                    if ahead > AHEAD_LISTED_MAX:
                        self._ahead_due[date] = time.monotonic() + AHEAD_RELIST
                    else:
                        self._ahead_due.pop(date, None)
            last: str | None = None
            # A marker still to come is named at least this late (see ``MARKER_SETTLE_MS``)
            settled = f"{folder}{now_ms - MARKER_SETTLE_MS:013d}"
            junk: list[str] = []  # new this listing: said in one line below
            readers: dict[str, asyncio.Task[int]] = {}
            for item in items:
                parsed = parse_marker(item.path) if item.special is None else None
                if parsed is None and item.path < settled:
                    self._junk_floor[date] = max(item.path, self._junk_floor.get(date, ""))
                if item.path in seen:
                    continue
                if parsed is None:
                    seen.add(item.path)
                    junk.append(item.path)
                    continue
                published, room_id, segment = parsed
                if published > now_ms - MARKER_SETTLE_MS:
                    seen.add(item.path)  # acted on once; the cursor stays before it
                elif last is None or item.path > last:
                    last = item.path
                if is_valid_room_id(room_id):
                    self._engine.note_room(room_id)
                if self._engine.index is not None:  # where the cursor is kept
                    named[item.path] = (room_id, segment)
                reader = self._hint(room_id, segment, marker=True)
                if reader is not None:
                    readers[room_id] = reader
            # A reader that must wait for the budget is not waited for: the next round's
            # listing would wait too (``round_wait``), and a real marker with it.
            for room_id, reader in readers.items():
                if sum(self._hints.get(room_id, {}).values()) <= self.marker_budget.left():
                    steps[reader] = None
            if junk:  # one line a listing: a member's 100,000 names were as many lines
                first = ", ".join(p[len(folder) :] for p in junk[:JUNK_NAMED])
                log.warning(
                    "ignoring %s in %s: not an activity marker (%s%s)",
                    "1 name" if len(junk) == 1 else f"{len(junk):,} names",
                    folder,
                    terminal_safe(first, limit=300),
                    ", …" if len(junk) > JUNK_NAMED else "",
                )
            if last is not None:
                self._marker_cursor[date] = last
            passed = max(last or "", self._junk_floor.get(date, ""))
            if passed:
                seen.difference_update({p for p in seen if p <= passed})
            await self._save_cursor(date)
        self.listed = listed

    async def _save_cursor(self, date: str) -> None:
        """Keep the day's marker cursor in the index, but never past a marker whose segment
        is still being read (queued to its room's hint reader or read now): a round does
        not wait for those reads, and an engine closed meanwhile would start again after
        the marker — a late delivery into a day its warm pass does not list again would
        never be read. Such a marker holds the kept cursor back until its read ends
        (however it ends: a read that failed is noted as unread in the room)."""
        cursor = self._marker_cursor.get(date)
        named = self._named.get(date, {})
        if cursor is None or self._engine.index is None:
            return
        waiting = [
            marker
            for marker, (room_id, segment) in named.items()
            if marker <= cursor and segment in self._hints.get(room_id, {})
        ]
        safe: str | None = cursor
        if waiting:
            first = min(waiting)
            safe = max((m for m in named if m < first), default=None)
        saved = self._saved.get(date)
        if safe is None or (saved is not None and safe <= saved):
            return
        for marker in [m for m in named if m <= safe]:
            del named[marker]
        self._saved[date] = safe
        await self._engine._serially(self._engine.index.set_cursor, f"activity:{date}", safe)

    async def _rest(self, feed: ChangeFeed, waited: _Waited) -> None:
        """After a wait on the change feed: rest as ``schedule.feed_rest`` says (behind
        other windows and quiet; after an early answer with nothing new, paced by the
        requests that wait cost, and those of a wait before it that named an attachment
        and went without a rest; counted after the feed's check). A wake (the window
        coming to the front, a send, a room opened) ends the rest at once."""
        began, requests = self._feed_cycle or (time.monotonic(), feed.requests)
        named = waited.named and self._feed_graces > 0
        rest = feed_rest(
            self._engine.config,
            quiet_for=time.monotonic() - self._activity_at,
            window_focused=self._engine.window_focused,
            found=waited.found,
            named=named,
            spent=feed.requests - requests,
            elapsed=time.monotonic() - began,
        )
        self.feed_last_rest = rest
        if waited.found or waited.empty:
            self._feed_graces = FEED_NAMED_GRACES
        elif waited.named:
            self._feed_graces = max(0, self._feed_graces - 1)
        if not (named and rest <= 0.0):
            # Counted afresh from the next wait; but a wait let go without a rest because
            # it named an attachment is paid for by the next rest (``schedule.feed_rest``).
            self._feed_cycle = None
        if rest <= 0.0:
            return
        self.feed_rests += 1
        self.feed_resting = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_wake.wait(), rest)
        finally:
            self.feed_resting = False

    async def _listen(self, feed: ChangeFeed) -> _Waited | None:
        """One wait on the change feed, and reading what it names. The activity markers
        are still listed when the feed starts (what came before) and every
        ``feed_check`` seconds (notifications that never came: a queue that another
        device empties, a notification set-up removed), and due safety listings run.
        None when the feed failed: the poller then polls the bucket, and tries the feed
        again after a backoff."""
        try:
            # Said to be waited on once a receive has answered too: a queue that may be
            # checked but not read (a reply refused, a receive denied) was said to work
            # at every retry, then to fail.
            checked = None
            if not self.feed_active:
                checked = await feed.check()
                self._feed_checked_at = None  # catch up on what came before
            now = time.monotonic()
            if self._feed_cycle is None:  # what the waits until the next rest cost
                self._feed_cycle = (now, feed.requests)
            last = self._feed_checked_at
            markers = last is None or now - last >= self._engine.config.feed_check
            if markers:
                self._feed_checked_at = now
            self._in_poll = True
            try:
                found = await self.poll_once(markers=markers, wait=self._engine.config.round_wait)
            finally:
                self._in_poll = False
            if markers:
                self.polls += 1
            found += await self._catch_up()
            self._poll_wake.clear()  # what a wake would poll for, the feed tells
            batch = await feed.wait(self._engine.config.feed_wait)
            self.feed_rounds += 1
            if checked is not None:
                self._set_feed(True, f"waiting on the bucket's notifications in {checked}")
            if batch.ignored_count:
                self.feed_ignored += batch.ignored_count
                # A flood of junk is said once a minute, not at every answer.
                quiet = time.monotonic() - self._junk_told_at < 60.0
                log.log(
                    logging.DEBUG if quiet else logging.WARNING,
                    "ignored %d message(s) or record(s) from %s (%d so far): %s",
                    batch.ignored_count,
                    feed.describe(),
                    self.feed_ignored,
                    terminal_safe("; ".join(batch.ignored)),
                )
                if not quiet:
                    self._junk_told_at = time.monotonic()
            if batch.connected:
                log.info("%s: the bucket's test notification arrived", feed.describe())
            followed, named = await self._follow(batch.paths, self._engine.config.round_wait)
            found += followed
            await feed.ack(batch)  # after reading: a crash before it reads them again
        except StorageError as exc:
            retry = self._feed_backoff
            self._feed_backoff = min(retry * 2, FEED_RETRY_MAX)
            self._feed_retry_at = time.monotonic() + retry
            if self.feed_active:  # it just failed: poll the bucket at once, then as usual
                self.next_poll_in = self._engine.config.active_interval
            self._set_feed(
                False,
                f"{exc}; polling the bucket instead (the queue is tried again in {retry:g} s)",
            )
            await feed.close()  # a fresh connection next time
            return None
        self._feed_backoff = self._engine.config.feed_retry
        if found:
            self._activity_at = time.monotonic()
        return _Waited(found=found > 0, named=named, empty=batch.empty)

    def _set_feed(self, active: bool, message: str) -> None:
        """Note the feed's state; a change of state (not each retry) is reported."""
        if (active, message) == (self.feed_active, self.feed_message):
            return
        self.feed_active, self.feed_message = active, message
        told = active != self._feed_told
        level = logging.INFO if active or not told else logging.WARNING
        log.log(level, "change feed: %s", message)
        if told:
            self._feed_told = active
            self._engine._emit(ChangeFeedStatus(active, message))

    async def _follow(self, paths: Sequence[str], wait: float | None = None) -> tuple[int, bool]:
        """Have the segments that change notifications name read by their rooms' hint
        readers (only hints: each is read and verified like a listed one; a name that is
        no segment, or of a room not open here, is not read), waiting for them at most
        ``wait`` seconds. At most ``MAX_HINTS`` a wait and ``HINTS_PER_MINUTE`` a
        minute: what is named past either is not read (nor noted as named), and the
        markers and the day folders of the dropped segments are listed within
        ``HINT_CATCH_UP`` s (what a real one names is read then, a writer's that makes no
        markers too: ``_catch_up``). Returns the segments
        read, and whether a name not seen before was another object of a room (an
        attachment, metadata: the segment that needs it comes next)."""
        readers: dict[asyncio.Task[int], None] = {}
        named = False
        budget = self.hint_budget
        if self._flood_told and budget.full():
            self._flood_told = False  # a flood said is over: the next one is said again
        dropped = budget.dropped
        if len(paths) > MAX_HINTS:  # never honest: S3 sends one record a message
            budget.dropped += len(paths) - MAX_HINTS
            for path in paths[MAX_HINTS:]:
                self._drop(self._segment_named(path)[1])
        for path in paths[:MAX_HINTS]:
            # Named again (SQS delivers at least once; a forger repeats itself): read
            # once. What could not be read then is the room's listings' job.
            if path in self._hinted:
                continue
            segment, name = self._segment_named(path)
            if name is None:
                self._note_hinted(path)
                # Another object of the storage (room metadata, an attachment, a probe):
                # of a room, the segment that needs it comes next (``schedule.feed_rest``).
                named = named or segment.startswith("rooms/")
                continue
            self._engine.note_room(name.room_id)
            before = budget.dropped
            reader = self._hint(name.room_id, segment, budget)
            if budget.dropped > before:
                # Not noted as named: named again, it is read if the budget allows; and
                # its day folder is listed within ``HINT_CATCH_UP`` s meanwhile.
                self._drop(name)
                continue
            self._note_hinted(path)
            if reader is not None:
                readers[reader] = None
        if budget.dropped > dropped:
            self._over_budget(budget)
        found, _ = await self._wait_for(readers, wait)  # a hint's reader fails no round
        return found, named

    @staticmethod
    def _segment_named(path: str) -> tuple[str, SegmentName | None]:
        """The object a notification names (a marker's segment, for a notification
        set-up that covers markers too), and its name if it is a segment."""
        marker = parse_marker(path)
        segment = marker[2] if marker is not None else path
        return segment, parse_segment_path(segment)

    def _note_hinted(self, path: str) -> None:
        self._hinted[path] = None
        if len(self._hinted) > HINTS_KEPT:
            del self._hinted[next(iter(self._hinted))]

    def _drop(self, name: SegmentName | None) -> None:
        """A segment of a room open here that the budget dropped: its day folder is
        listed within ``HINT_CATCH_UP`` s (``_catch_up``). At most ``CATCH_UP_KEPT``
        folders are kept, the farthest from today dropped first: made-up names of a
        thousand days cannot push out today's."""
        if name is None:
            return
        room = self._engine.rooms.get(name.room_id)
        if room is None or name.path in room.known:
            return
        self._dropped_days[(name.room_id, name.date)] = None
        if len(self._dropped_days) > CATCH_UP_KEPT:
            del self._dropped_days[max(self._dropped_days, key=_days_from_today)]
        if self._catch_up_at is None:
            self._catch_up_at = time.monotonic() + HINT_CATCH_UP

    async def _catch_up(self) -> int:
        """When due, list up to ``CATCH_UP_DAYS`` day folders of segments the budget
        dropped, nearest today first (each room's day once however many it dropped), and
        have what is new there read; the rest ``HINT_CATCH_UP`` s later. The segments
        read (waited for at most ``SyncConfig.round_wait`` s; a listing still running
        goes on by itself)."""
        due = self._catch_up_at
        if due is None or time.monotonic() < due:
            return 0
        days = sorted(self._dropped_days, key=_days_from_today)[:CATCH_UP_DAYS]
        for day in days:
            del self._dropped_days[day]
        self._catch_up_at = time.monotonic() + HINT_CATCH_UP if self._dropped_days else None
        steps: list[asyncio.Task[int]] = []
        for room_id, date in days:
            task = asyncio.create_task(
                self._list_dropped(room_id, date), name=f"bc-catch-up-{room_id}"
            )
            task.add_done_callback(self._step_ended)
            steps.append(task)
        found, _ = await self._wait_for(steps, self._engine.config.round_wait)
        return found

    async def _list_day(self, room_id: str, date: str) -> list[ObjectInfo] | StorageError:
        """The objects of one day folder of a room, or why a storage that answered did
        not list it; one that did not answer raises (the round is given up)."""
        try:
            return await self._backfill.list_objects(f"{logs_prefix(room_id)}{date}/")
        except StorageError as exc:
            if not self._engine.answered(exc):
                raise
            return exc

    async def _list_day_within(
        self, room_id: str, date: str, most: int
    ) -> tuple[list[ObjectInfo] | StorageError, bool]:
        """As ``_list_day``, at most ``most`` names (``Storage.list_first``), and whether
        the folder holds more."""
        try:
            return await self._backfill.list_first(f"{logs_prefix(room_id)}{date}/", None, most)
        except StorageError as exc:
            if not self._engine.answered(exc):
                raise
            return exc, False

    async def _list_dropped(self, room_id: str, date: str) -> int:
        """List one day folder of a room where the budget dropped a segment, and read
        what is new there (as ``refresh`` does, for that day only): the segments kept."""
        room = self._engine.rooms.get(room_id)
        if room is None or self._engine._dropped(room):
            return 0
        began = room_keeper.now_ms()  # what is kept was read then (``RoomState.read_ms``)
        listed = await self._list_day(room_id, date)
        if isinstance(listed, StorageError):
            log.info("change feed: cannot list the day %s for what it dropped: %s", date, listed)
            return 0
        new = [it for it in listed if not room.holds(it) and it.path not in self._reading]
        if not new:
            return 0
        failed: dict[str, str] = {}
        fetched = await self._backfill.download(room, new, failed)
        async with room.lock:
            shown = room_id == self._engine.focused
            kept = await self._keep(room, fetched, failed, shown=shown, read_ms=began)
        return len(fetched) if kept else 0

    def _over_budget(self, budget: HintBudget) -> None:
        """The change feed named more new segments than ``HINTS_PER_MINUTE`` (or one wait
        more than ``MAX_HINTS``) allows: the markers are listed within ``HINT_CATCH_UP``
        s (and the dropped segments' day folders: ``_drop``) — not at each wait, as they
        were after a wait that named more than ``MAX_HINTS``: a listing costs more than a
        read — and the log says so once while it lasts (it said so at every wait)."""
        config = self._engine.config
        due = time.monotonic() - config.feed_check + HINT_CATCH_UP
        if self._feed_checked_at is not None and self._feed_checked_at > due:
            self._feed_checked_at = due
        if self._flood_told:
            return
        self._flood_told = True
        log.warning(
            "change feed: %s names more new segments than the bucket's rooms write "
            "(over %d a minute, or %d in one wait): a broken notification set-up, or "
            "someone sending made-up ones to the queue? What it names past that is not "
            "read; the activity markers and the day folders of what it names are listed "
            "every %g s meanwhile, and find every real new segment",
            self.feed.describe() if self.feed is not None else "the feed",
            budget.per_minute,
            MAX_HINTS,
            HINT_CATCH_UP,
        )

    async def _read_again(self, room: RoomState) -> None:
        """Read a room with something unread all over again: the room's pass through its
        history (``room.backfill``, as ``open_room`` starts it), or the one running now.
        Not under the room's lock: a listing or download that never answers must not hold
        up what takes it (docs/SCHEDULING.md). A poll given up leaves the pass running
        (``close`` cancels it); a failure is the pass's to report (``fetch_history``).
        Nothing once the engine closed: a pass a round started just before ``close``
        runs while ``close`` waits for the engine's tasks, after it cancelled the rooms'
        reads, and a read started then was never cancelled."""
        if self._engine._dropped(room):
            return
        task = room.backfill
        if task is None or task.done():
            self.reading_from_now(room)
            task = asyncio.create_task(
                self._backfill.fetch_history(room), name=f"bc-history-{room.room_id}"
            )
            room.backfill = task
        await asyncio.shield(task)

    async def _list_owed(self, room: RoomState) -> int:
        """A bucket's listing owed by reads on notices (``_owe_listing``): one page of the
        day folder from just before each segment they named (``Storage.list_first``: a
        request whatever the folder holds; Azure lists from the folder's start), at most
        ``OWED_PAGES_MAX`` pages. What it lists of those is read with its listed size and
        kept (or refused, by what it is) as a safety listing would; one not there is
        gone, and its note goes. What the pages did not reach stays owed. Only those:
        the room's days whole are its safety listing's, paced by what they cost (red
        team rt94). The segments kept.

        The days nearest today first, and of days as near, the one owed first: a
        member's notices of segments in old day folders put before an honest one of
        today made it wait 3.7 hours (red team rt96). When more was owed than the room
        keeps (``RoomState.owed_newest``), its newest days come first, a page each from
        just after the newest segment held there (``_list_after_held``)."""
        room_id = room.room_id
        began = room_keeper.now_ms()  # what is kept was read then (``RoomState.read_ms``)
        order = {p: i for i, p in enumerate(room.owed_paths)}
        waiting = [p for p in room.owed_paths if p not in room.known]  # kept meanwhile
        first: dict[str, int] = {}  # folder -> when something in it was first owed
        for path in waiting:
            first.setdefault(path.rpartition("/")[0], order[path])
        owed = sorted(
            waiting, key=lambda p: (_owed_far(room_id, p), first[p.rpartition("/")[0]], p)
        )
        newest, room.owed_newest = room.owed_newest, False
        room.owed_paths.clear()
        covered: dict[str, ObjectInfo | None] = {}  # owed path -> as listed (None: not there)
        on_pages: dict[str, ObjectInfo] = {}  # the segments the pages showed, in their order
        pages, i = 0, 0
        try:
            if newest:
                held = len(room.known)
                now_ms = int(time.time() * 1000)
                days = await self._engine._serially(room.known_days, held, room=room_id)
                for date in newest_days({*days, utc_date(now_ms)}, now_ms):
                    folder = f"{logs_prefix(room_id)}{date}/"
                    for item in await self._list_after_held(room, folder, held):
                        on_pages.setdefault(item.path, item)
                    pages += 1
                newest = False  # looked at
            while i < len(owed) and pages < OWED_PAGES_MAX and not self._engine._dropped(room):
                folder = owed[i].rpartition("/")[0] + "/"
                listed, more = await self._backfill.list_first(folder, owed[i][:-1], LISTING_PAGE)
                pages += 1
                for item in listed:
                    if _is_segment(item):
                        on_pages.setdefault(item.path, item)
                last = listed[-1].path if listed else None
                shown = {item.path: item for item in listed}
                reached = i
                while i < len(owed) and owed[i].startswith(folder):
                    if more and (last is None or owed[i] > last):
                        break  # past this page: the next starts just before it
                    covered[owed[i]] = shown.get(owed[i])
                    i += 1
                if i == reached:  # the page did not reach them (Azure: junk before them)
                    while i < len(owed) and owed[i].startswith(folder):
                        i += 1  # owed on, below
        except StorageError as exc:
            left = [p for p in waiting if p not in covered]  # in the order owed
            room.owed_paths.update(dict.fromkeys(left))
            room.owed_newest = room.owed_newest or newest  # not looked at: owed on
            if left or room.owed_newest:
                self._owed_due(room)
            if not self._engine.answered(exc):
                raise
            log.info("room %s: the listing owed by a read on a notice failed: %s", room_id, exc)
            return 0
        left = [p for p in waiting if p not in covered]  # in the order owed
        if left:  # the pages did not reach them: owed on, on the same back-off
            room.owed_paths.update(dict.fromkeys(left))
            self._owed_due(room)
        for path in left:  # on a newest day's page: read (and owed on, as before)
            if path in on_pages:
                covered[path] = on_pages[path]
        new = [
            item
            for item in covered.values()
            if item is not None and not room.holds(item) and item.path not in self._reading
        ]
        new.extend(self._others_shown(room, on_pages, covered))
        gone = [path for path, item in covered.items() if item is None]
        failed: dict[str, str] = {}
        fetched = await self._backfill.download(room, new, failed) if new else []

        def forget() -> bool:  # state thread: what is not there is not unread
            changed = False
            for path in gone:
                changed = room.unread.pop(path, None) is not None or changed
                changed = room.forget_refused(path) or changed
            return changed

        async with room.lock:
            audit = bool(gone) and await self._engine._serially(forget, room=room_id)
            shown_room = room_id == self._engine.focused
            kept = await self._keep(
                room, fetched, failed, shown=shown_room, audit=audit, read_ms=began
            )
        return len(fetched) if kept else 0

    def _others_shown(
        self, room: RoomState, shown: dict[str, ObjectInfo], covered: dict[str, ObjectInfo | None]
    ) -> list[ObjectInfo]:
        """Of the segments an owed listing's pages showed (``shown``, in their order), the
        new ones it does not owe (``covered``): a writer that makes no activity markers
        (the reference implementation, older clients) waited for the room's next safety
        listing, hours behind other windows, while the page that showed its message was
        paid for. As many as ``owed_others`` allows (``OWED_OTHERS_MAX`` at most, a few
        an hour), the first on the pages first; the rest are left to the room's
        listings: a page of junk named as segments costs a few reads, not a page."""
        others = [
            item
            for path, item in shown.items()
            if path not in covered and not room.holds(item) and path not in self._reading
        ]
        taken: list[ObjectInfo] = []
        for item in others:
            if not self.owed_others.take():
                log.debug(
                    "room %s: %d new segment(s) an owed listing showed are left to the "
                    "room's listings (at most %d a time, %d an hour)",
                    room.room_id,
                    len(others) - len(taken),
                    OWED_OTHERS_MAX,
                    OWED_OTHERS_PER_HOUR,
                )
                break
            taken.append(item)
        return taken

    async def refresh(self, room_id: str) -> None:
        """``SyncEngine.refresh``: late deliveries land in the newest two days; older
        ones are announced by markers or found by the next full pass. The days among the
        newest when the room's last listing began that no longer are (``listed_from``:
        a listing stretched by junk or failures, a laptop asleep) are listed with them,
        ``BEHIND_DAYS_MAX`` a round, the room saying which are left. Listed and
        downloaded outside the room's lock, kept under it: what arrived meanwhile
        (this device's own delivery, a hint) is not kept twice, and a read that failed
        meanwhile is not noted for a segment kept meanwhile (``_keep``).

        What the listings took is the room's ``listing_pages`` (its next background
        listing waits as much longer: ``schedule.charged_wait``). On a bucket behind
        other windows (the background listings, paced) the room's days and its newest
        days, newest first, take at most ``SAFETY_PAGES_MAX`` pages, each day at least
        one, and the older days noted (``_noted_days``) a page each, listed last. Each
        day is decided by itself (red team rt96): one whose folder holds more names than
        its pages (junk a member wrote there) is noted (``RoomState.over_cost``: the
        room says which day, and that new messages of its other days are still
        fetched), what its pages showed of segments is read, and the other days are
        listed and used as ever. A newest day noted so is listed from just after the
        newest segment held there, a page, until the room is listed whole; an older one
        is left until then. Someone looking has the room listed whole."""
        room = self._engine._room(room_id)
        background = self._local is None and not self._engine.window_focused
        began = room_keeper.now_ms()  # what is kept was read then (``RoomState.read_ms``)
        held = len(room.known)  # what the listings must show: kept before they were asked
        # Behind other windows the level itself takes at most ``LEVEL_PAGES_MAX`` pages:
        # junk right in ``logs/`` made it cost any number (red team rt102).
        cap = LEVEL_PAGES_MAX * LISTING_PAGE if background else None
        listed_days, loose_noted, level_names, cut = await self._backfill.list_days(room, cap)
        pages = listing_pages(level_names)
        heavy: list[tuple[str, int, int]] = []  # days of more than a page: names, junk
        day_names = set(listed_days)
        room.level_over = level_over_note(level_names) if cut else None
        if cut:
            # The junk may sort before the days (a listing is in name order, folders and
            # objects together): the newest days by the clock are listed each by itself,
            # one that is not there as an empty folder is (an object store has none).
            listed_days = sorted({*listed_days, *near_dates(int(time.time() * 1000))})
        # Days read before that are no longer listed at all (removed whole: an object
        # store has no empty folders): noted as an opening notes them, from the listing
        # of the days this round makes anyway — not listed one by one, there is nothing
        # to list. A listing cut short does not show every day: nothing is called gone.
        days_noted = not cut and await self._engine._serially(
            _days_listed, room, day_names, held, room=room_id
        )
        now_ms = int(time.time() * 1000)
        dates = newest_days(listed_days, now_ms)
        # Days that were among the newest when the last listing began and are no longer
        # (a listing stretched by junk or failures, a laptop asleep) are listed as the
        # newest are (one noted too costly: a page from just after the newest segment
        # held there), the oldest ``BEHIND_DAYS_MAX`` a round (red team rt102). A level
        # listing cut short may not show them: each date is then listed by itself, as
        # the newest are.
        behind, rest = (
            days_left_behind(
                day_names | _dates_between(room.listed_from, now_ms) if cut else day_names,
                room.listed_from,
                utc_date(now_ms + 86_400_000),
                dates,
                BEHIND_DAYS_MAX,
            )
            if room.listed_from is not None
            else ([], None)
        )
        dates = [*dates, *sorted(behind, reverse=True)]
        # Older days where a segment read here is noted as gone or changed (or an object
        # was refused unread: gone or at another size since?): compared too, so one put
        # back there (a sync tool's delete and download) is no alarm until the room's
        # next opening, and a segment listed once over the size limit is read when it is
        # listed as it is. The newest few: a member who removes a segment from each of
        # many days does not make every round list them all. Only days listed: one that
        # is not holds nothing (``_days_listed`` noted what was read there).
        older = (
            await self._noted_days(room, set(dates), day_names)
            if room.vanished or room.refused
            else []
        )
        # A day noted too costly to list in the background keeps its note until the room
        # is listed whole, also once it is no longer among the newest days (red team
        # rt102: the note went, and the room said nothing, while the day was never
        # listed); in front, the newest few such days are listed whole.
        if not background:
            costly = set(room.over_cost) - {*dates, *older}
            dates.extend(sorted(costly, reverse=True)[:NOTED_DAYS])
        items: list[ObjectInfo] = []
        vanished = loose_noted or days_noted  # a note of an object in logs/, of a day
        unlisted: dict[str, str] = {}
        for date in [*dates, *older]:
            folder = f"{logs_prefix(room_id)}{date}/"
            newest = date in dates
            if not background:
                listed = await self._list_day(room_id, date)
                room.over_cost.pop(date, None)  # listed whole
            elif date in room.over_cost:  # noted before: not listed whole in the background
                if newest:  # what is new there: a page from just after the newest held
                    pages += 1
                    items.extend(await self._list_after_held(room, folder, held))
                continue
            else:
                # The newest days share the pages left, a page kept for each older day
                # (listed last, on their own budget): one costly day takes no other's.
                budget = SAFETY_PAGES_MAX - (len(older) if newest else 0)
                most = max(budget - pages, 1) * LISTING_PAGE
                listed, more = await self._list_day_within(room_id, date, most)
                if more and isinstance(listed, list):
                    pages += listing_pages(most)
                    heavy.append((date, len(listed), _junk(listed)))
                    room.over_cost[date] = _over_cost(date, listed)
                    if newest:  # its segments listed are real: read what is new of them
                        items.extend(it for it in listed if _is_segment(it))
                    continue  # not compared: a listing cut short shows not all it holds
            pages += listing_pages(len(listed)) if isinstance(listed, list) else 1
            if isinstance(listed, list) and len(listed) > LISTING_PAGE:
                heavy.append((date, len(listed), _junk(listed[: SAFETY_PAGES_MAX * LISTING_PAGE])))
            if isinstance(listed, StorageError):
                # A day that cannot be listed (a folder nobody may read put into it, a
                # bucket's day overfilled with junk) is noted — the room is not
                # completely read, and the next round reads it all again — and the
                # other days are listed.
                unlisted[folder] = str(listed)
                continue
            if newest:  # late deliveries land in the newest two days
                items.extend(listed)
            # Segments of these days read before that are gone or rewritten: noticed
            # while the app runs, not only at the room's next opening.
            if held and await self._backfill.compare_listing(room, folder, listed, held):
                vanished = True
            # Objects refused unread there: one gone is forgotten (its finding goes), one
            # listed at another size is read again (below, or by the next pass).
            if await self._backfill.relist(room, folder, listed):
                vanished = True
            if not newest:
                items.extend(it for it in listed if it.path in room.refused)
        # What a hint reads now is its to keep (or to note as unread).
        new = [it for it in items if not room.holds(it) and it.path not in self._reading]
        failed: dict[str, str] = {}
        fetched = await self._backfill.download(room, new, failed) if new else []
        over = _joined(room.level_over, _unchecked_note(room.over_cost, rest))
        async with room.lock:
            if unlisted:
                await self._engine._serially(room.unlisted.update, unlisted, room=room_id)
            # one look at a state-thread note (only a job under this lock sets it)
            noted = room.unchecked is not None or over is not None
            checked = noted and await self._engine._serially(_checked, room, over, room=room_id)
            audit = vanished or bool(unlisted) or checked
            await self._keep(room, fetched, failed, shown=False, audit=audit, read_ms=began)
            room.last_safety = time.monotonic()
            room.safety_failures = 0
        # What is written from now on lands in a writer's local date at the earliest.
        room.listed_from = rest if rest is not None else utc_date(now_ms - DAY_SPREAD_MS)
        self._charge(room, pages, heavy)
        if background:  # paced: what it took past the budget's count is the pace's too
            self.safety_pace.pay(self._engine.config, pages=pages, rooms=len(self._engine.rooms))

    async def _list_after_held(self, room: RoomState, folder: str, held: int) -> list[ObjectInfo]:
        """A page of day folder ``folder`` from just after the segments the room holds
        there (``Storage.list_first``; where: ``ids.listing_start``, by the start times
        of each writer's newest held, not the greatest name: red team rt98): the
        segments it shows. A day noted too costly to list in the background
        (``RoomState.over_cost``) is looked at so: what an honest member wrote there
        since sorts after what they wrote before, a member's junk need not. A listing
        that fails is left to the next."""
        date, now_ms = folder.rstrip("/").rpartition("/")[2], int(time.time() * 1000)
        after = await self._engine._serially(
            lambda: listing_start(room.known_in(folder, held), date, now_ms), room=room.room_id
        )
        try:
            listed, _ = await self._backfill.list_first(folder, after, LISTING_PAGE)
        except StorageError as exc:
            if not self._engine.answered(exc):
                raise
            log.info("room %s: listing %s failed: %s", room.room_id, folder, exc)
            return []
        return [it for it in listed if _is_segment(it)]

    def _charge(self, room: RoomState, pages: int, heavy: list[tuple[str, int, int]]) -> None:
        """Keep what the room's safety listing took (``listing_pages``) and, when it took
        more than the budget counts (``SAFETY_COST``), say so in the log: which days hold
        how many names, and how many of them are no segment's (junk a member wrote)."""
        was, room.listing_pages = room.listing_pages, pages
        cap = SAFETY_PAGES_MAX * LISTING_PAGE  # names counted (``refresh``)
        if pages <= SAFETY_COST or was == pages:
            return
        days = "; ".join(
            f"{date}: {names:,} names, {junk:,} of the first {min(names, cap):,} no segment's"
            for date, names, junk in heavy
        )
        log.log(
            logging.INFO if was <= SAFETY_COST else logging.DEBUG,
            "room %s: its safety listing took %d requests (%s): listed %.0f times less "
            "often behind other windows",
            room.room_id,
            pages,
            days or "its days",
            pages / SAFETY_COST,
        )

    async def _noted_days(self, room: RoomState, newest: set[str], listed: set[str]) -> list[str]:
        """The newest ``NOTED_DAYS`` days of ``listed``, besides ``newest``, that hold a
        segment noted in ``room.vanished`` or an object refused unread (``room.refused``:
        read again when listed at another size, forgotten when gone) (read on the state
        thread, where the notes change). A day not listed is not listed again: a round
        after a day was removed would list it for nothing (``_days_listed``)."""

        def days() -> list[str]:
            found = {p.split("/")[3] for p in room.vanished if p.count("/") == 4}
            found.update(f.split("/")[3] for f in room.refused_folders if f.count("/") == 4)
            return sorted((found & listed) - newest, reverse=True)[:NOTED_DAYS]

        return await self._engine._serially(days, room=room.room_id)

    async def fetch_segment(self, room_id: str, path: str) -> bool:
        """``SyncEngine.fetch_segment``: what a marker, the change feed or the folder
        watch names. Read outside the room's lock (a download that never answers must
        not hold up this device's own deliveries into the room), once however often it
        is named while that read runs, and kept under the lock unless something else
        kept it meanwhile. A read that got nothing (a file still being written, given up
        on) while the folder watch named the file again (its writer closed it meanwhile:
        the last event there will be) reads it once more, at most ``REREADS`` times:
        else that close was dropped and the honest message waited for the next full pass."""
        room = self._engine.rooms.get(room_id)
        if room is None or path in room.known or path in self._reading:
            return False
        if path in room.refused:  # refused unread: the next listing of its day decides
            return False
        self._reading.add(path)
        failed: dict[str, str] = {}
        began = room_keeper.now_ms()  # what is kept was read then (``RoomState.read_ms``)
        try:
            for _ in range(1 + REREADS):
                self._named_again.discard(path)
                failed.clear()
                named = ObjectInfo(path, UNKNOWN_SIZE)  # a read gives its size, a finding none
                got = await self._backfill.read_segment(room_id, named, failed, hint=True)
                if got is not None or path not in self._named_again:
                    break
        finally:
            self._reading.discard(path)
            self._named_again.discard(path)
        # Someone waits for news in the room they look at; a room nobody looks at
        # (where anyone with write access can make a flood of them) waits its turn.
        shown = room_id == self._engine.focused
        async with room.lock:
            fetched = [got] if got is not None else []
            return await self._keep(room, fetched, failed, shown=shown, read_ms=began)

    async def _keep(
        self,
        room: RoomState,
        fetched: list[Fetched],
        failed: dict[str, str],
        *,
        shown: bool,
        audit: bool = False,
        read_ms: int | None = None,
    ) -> bool:
        """Under the room's lock: keep what a read outside it got, unless the room has
        it by now (this device's own delivery, a hint, a pass kept it meanwhile), and
        note what could not be read (``failed``: path -> why) unless the room has that
        by now — on the state thread, in the room's order (``RoomState.note_unread``).
        The room's verdict is no longer final when something new is unread: it is
        audited again at once (a safety listing's failure too: its verdict and view said
        "completely read" until the next full pass, hours behind a window in the
        background). ``audit``: audited again in any case (the caller noted something
        itself). ``read_ms``: when the read that got ``fetched`` began (``RoomKeeper.ingest``).
        True when anything was kept."""
        fresh = [got for got in fetched if got[0].path not in room.known]
        noted = bool(failed) and await self._engine._serially(
            room.note_unread, failed, room=room.room_id, interactive=shown
        )
        noted = noted or audit
        if fresh or noted:
            await self._keeper.ingest(
                room,
                fresh,
                complete=None,
                force_audit=noted,
                interactive=shown,
                paced=True,
                read_ms=read_ms if fresh else None,
            )
        return bool(fresh)

    # -- local folders -------------------------------------------------------------------------

    def start_watch(self, storage: LocalStorage) -> None:
        """Start setting up the folder's watch (``folder_watch.py``) on a thread of its
        own, and return at once: setting up opens folders (a folder on a mount that
        stopped answering holds it for ever; a tree of 100,000 folders, seconds), and it
        ran on the window's thread, which froze at every start. Until the watch is up,
        and if it never comes up, fails or stops later, the folder is polled like a
        bucket (``watching`` is false); the person is told why once it fails, stops or
        takes over ``SyncConfig.watch_wait`` seconds, and again when it comes up after all."""
        loop = asyncio.get_running_loop()
        queue = self._direct

        def on_loop(fn: Callable[..., None], *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                loop.call_soon_threadsafe(fn, *args)

        ready: asyncio.Future[BaseException | None] = loop.create_future()

        def set_ready(exc: BaseException | None) -> None:
            if not ready.done():
                ready.set_result(exc)

        watch = new_watch(
            storage.root,
            named=lambda rel: on_loop(queue.put_nowait, rel),
            ready=lambda exc: on_loop(set_ready, exc),
            ended=lambda exc: on_loop(self._watch_lost, watch, exc),
        )
        try:
            watch.start()
        except RuntimeError as exc:  # no thread could be started
            self._not_watching(exc, log_as=f"{storage.root / 'rooms'} is not watched")
            return
        self._setting_up = watch
        self._watch_setup = asyncio.create_task(self._await_watch(watch, ready), name="bc-watch")

    async def _await_watch(self, watch: Watch, ready: asyncio.Future[BaseException | None]) -> None:
        """Wait for the watch's set-up (``start_watch``) without ever blocking: past
        ``SyncConfig.watch_wait`` seconds the person is told that the folder is polled meanwhile."""
        try:
            wait = self._engine.config.watch_wait
            failed = await asyncio.wait_for(asyncio.shield(ready), wait)
        except TimeoutError:
            self._not_watching(
                f"setting up the watch has taken over {wait:g} s (a folder in it "
                "on a network or FUSE mount that does not answer?)"
            )
            failed = await ready
        if self._engine._closed:
            watch.stop()
            return
        self._setting_up = None
        if failed is not None:
            self._not_watching(failed, log_as=f"{watch.root / 'rooms'} is not watched")
            return
        self._watch = watch
        if self.watch_problem:  # told it was not watched: now it is
            self._watched_again("Watching this folder for changes now.")

    async def watch_settled(self) -> None:
        """Until the watch's set-up (``start_watch``) is over, whichever way it went. For
        tests: nothing in the app waits for it."""
        if self._watch_setup is not None:
            await asyncio.shield(self._watch_setup)

    def _watch_lost(self, watch: Watch, exc: BaseException | None) -> None:
        """The watch's thread stopped reading by itself (``FolderWatch``'s ``ended``):
        polled from now on, and said."""
        if self._watch is not watch or self._engine._closed:
            return
        self._watch = None
        watch.stop()
        self._not_watching(
            exc or "the watch stopped", log_as=f"{watch.root / 'rooms'} is no longer watched"
        )

    def _not_watching(self, why: BaseException | str, *, log_as: str = "") -> None:
        """Say that the folder is polled, and why (once per reason)."""
        config = self._engine.config
        message = watch_problem(why, config.focused_interval, config.idle_interval)
        if message == self.watch_problem:
            return
        self.watch_problem = message
        if isinstance(why, BaseException) and not isinstance(why, (OSError, NotWatchable)):
            log.error("%s", log_as or "the folder watch failed", exc_info=why)
        else:
            log.warning("%s", message)
        self._engine._emit(ChangeFeedStatus(False, message, folder=True))

    def _watched_again(self, message: str) -> None:
        self.watch_problem = ""
        log.info("%s", message)
        self._engine._emit(ChangeFeedStatus(True, message, folder=True))

    def check_watch(self) -> None:
        """Each round (``run``): a watch whose thread died (watchdog's observer elsewhere
        than Linux says nothing) or that has been held over ``SyncConfig.watch_wait`` seconds by
        what it handles (a new folder on a mount that stopped answering) tells nothing:
        the folder is polled (``watching``), and that is said; said again when it is
        over."""
        watch = self._watch
        if watch is None:
            return
        wait = self._engine.config.watch_wait
        if not watch.alive():
            self._watch_lost(watch, None)
        elif watch.held(wait):
            self._not_watching(
                f"the watch has been held over {wait:g} s by a folder (on a network "
                "or FUSE mount that does not answer?)"
            )
        elif self.watch_problem:
            self._watched_again("Watching this folder for changes again.")

    @property
    def watching(self) -> bool:
        """Whether a local folder is watched for changes (``start_watch``) and the watch
        answers: else it is polled like a bucket."""
        watch = self._watch
        return watch is not None and not watch.held(self._engine.config.watch_wait)

    async def follow_folder(self) -> None:
        """The watched folder's task: have each segment file the watch names read by its
        room's hint reader (a hint, checked like any other; what it keeps is activity)."""
        while True:
            path = await self._direct.get()
            name = parse_segment_path(path)
            if name is None:
                continue
            self._engine.note_room(name.room_id)
            self._hint(name.room_id, path)


def _days_listed(room: RoomState, listed: set[str], held: int) -> bool:
    """State thread: what a safety listing of the room's days (``listed``) says of the
    days read before (``Poller.refresh``). A day read here and no longer listed is noted
    as a room's opening notes it (``backfill.note_days_gone``): its segments gone, or the
    room's one "lists no day at all" note; that note goes once a day is listed again.
    What was refused unread in a day no longer listed is forgotten (``relist``). True
    when a note came or went: the room's verdict is no longer what was shown."""
    changed = note_days_gone(room, room.known_days(held), listed, held)
    prefix = logs_prefix(room.room_id)
    if listed and room.unlisted.get(prefix, "").startswith(NO_DAY_LISTED):
        del room.unlisted[prefix]
        changed = True
    if listed and room.refused:
        changed = drop_refused_days(room, listed) or changed
    return changed


def _day_of(room_id: str, path: str) -> str | None:
    """The day folder (``logs/<day>/``) of the room that ``path`` is right in, or None."""
    prefix = logs_prefix(room_id)
    day, sep, name = path.removeprefix(prefix).partition("/")
    if not path.startswith(prefix) or not day or not sep or not name or "/" in name:
        return None
    return day


def _owed_far(room_id: str, path: str) -> int:
    """How far from today the day folder of owed ``path`` is (``_days_from_today``): what
    an owed listing looks at first, and what is dropped first when too much is owed."""
    return _days_from_today((room_id, _day_of(room_id, path) or ""))


def _over_cost(date: str, listed: list[ObjectInfo]) -> str:
    """What a background listing of the room found of a day it could not list whole
    (``Poller.refresh``): the day, how many names its pages held, how many of them are no
    segment's."""
    junk = _junk(listed)
    return (
        f"its day {terminal_safe(date, limit=40)} holds over {len(listed):,} objects, "
        f"{junk:,} of the first {len(listed):,} not segments"
    )


def _joined(*notes: str | None) -> str | None:
    """The notes that are there, one after the other; None when none is."""
    there = [n for n in notes if n]
    return "; ".join(there) if there else None


def _unchecked_note(over_cost: dict[str, str], behind_from: str | None) -> str | None:
    """The room's note (``RoomState.unchecked``) of the days its safety listing has not
    listed: those too costly in the background (``_over_cost_note``) and those left
    behind from ``behind_from`` on (``ids.days_left_behind``); None when there are none."""
    over = _over_cost_note(over_cost)
    if behind_from is None:
        return over
    behind = (
        f"its days from {terminal_safe(behind_from, limit=40)} on have not been listed "
        "since its listings paused (the computer asleep, the storage not answering); "
        f"they are listed {BEHIND_DAYS_MAX} a round, oldest first"
    )
    return behind if over is None else f"{over}; {behind}"


def _dates_between(since: str, now_ms: int) -> set[str]:
    """Every UTC date from ``since`` (a ``RoomState.listed_from``) to tomorrow's, at most
    ``BEHIND_DATES_MAX`` of the newest: the days left behind, when a listing of the room's
    days was cut short and may not show their folders (each is then listed by itself)."""
    first = datetime.date.fromisoformat(since)
    last = datetime.date.fromisoformat(utc_date(now_ms + 86_400_000))
    count = min((last - first).days + 1, BEHIND_DATES_MAX)
    return {(last - datetime.timedelta(days=i)).isoformat() for i in range(max(count, 0))}


OVER_COST_NAMED = 3
"""Days too costly to list in the background that the room's note names (the newest);
the others it counts (``_over_cost_note``)."""


def _over_cost_note(over_cost: dict[str, str]) -> str | None:
    """The room's note (``RoomState.unchecked``) of the days its background listing could
    not list whole (``RoomState.over_cost``): the newest ``OVER_COST_NAMED`` named, the
    others counted; None when there are none. Behind other windows no note of a day goes
    (the room is not listed whole there): a member who pads each day's folder made a note
    that named them all one day longer every day."""
    if not over_cost:
        return None
    newest = sorted(over_cost, reverse=True)
    days = "; ".join(over_cost[d] for d in newest[:OVER_COST_NAMED])
    if len(newest) > OVER_COST_NAMED:
        more = len(newest) - OVER_COST_NAMED
        days += f"; and {more:,} more day{'s' if more > 1 else ''}"
    return (
        f"{days}: listing {'it' if len(over_cost) == 1 else 'them'} takes more than the "
        f"{SAFETY_PAGES_MAX} requests a storage may spend on a room in the background, so "
        f"{'that day is' if len(over_cost) == 1 else 'those days are'} listed whole only "
        "while the room is on screen with the window in front; new messages of the "
        "room's other days are still fetched"
    )


def _is_segment(item: ObjectInfo) -> bool:
    """Whether listed ``item`` is named as a segment is (what a listing cut short reads)."""
    return is_segment_name(item.path.rpartition("/")[2])


def _junk(listed: Sequence[ObjectInfo]) -> int:
    """How many of ``listed`` are not named as segments are (a member's junk)."""
    return sum(1 for item in listed if not is_segment_name(item.path.rpartition("/")[2]))


def _days_from_today(key: tuple[str, str]) -> int:
    """How far a (room, day folder) pair's day is from today (UTC); a folder named
    otherwise than ``YYYY-MM-DD`` (a local date of the reference client) counts as far."""
    try:
        day = datetime.date.fromisoformat(key[1])
    except ValueError:
        return 1 << 30
    return abs((day - datetime.datetime.now(datetime.UTC).date()).days)


def watch_problem(exc: BaseException | str, focused: float, idle: float) -> str:
    """What the person is told when the folder is not watched (``start_watch``): why,
    and how often it is polled instead (``schedule.poll_delay``'s longest waits). Short
    enough for the status bar of a window 1,000 pixels wide."""
    errno_ = exc.errno if isinstance(exc, OSError) else None
    if errno_ == errno.EMFILE:
        why = "the system's limit of file watchers is reached (fs.inotify.max_user_instances)"
    elif errno_ == errno.ENOSPC:
        why = "the system's limit of watched folders is reached (fs.inotify.max_user_watches)"
    elif isinstance(exc, (str, NotWatchable)):
        why = terminal_safe(str(exc), limit=160)
    elif isinstance(exc, OSError):
        why = terminal_safe(str(exc), limit=120)
    else:  # a fault of the program: named, its text is in the log
        why = f"the watch failed ({type(exc).__name__}; details in the log)"
    return (
        f"Not watching this folder: {why}. Checked every {focused:g} s, "
        f"{idle:g} s in the background."
    )


def _checked(room: RoomState, over: str | None = None) -> bool:
    """State thread: the room's safety listing succeeded; its history is checked again
    (``RoomState.unchecked`` goes), but for the days it could not list whole in the
    background (``over``: ``_over_cost_note``), which it says. True when the note
    changed."""
    was = room.unchecked
    room.unchecked = None if over is None else (time.time() if was is None else was[0], over)
    return room.unchecked != was
