"""When the engine polls a bucket, and when it lists a room in full: pure functions.

A bucket cannot tell a reader that something changed, so a reader polls one listing of
activity markers per storage (PROTOCOL.md section 15). How often is a trade between how
late a message arrives and how many requests the storage bills:

- right after activity (a send, a message received, the window coming to the front, the
  user opening a room): every ``active_interval`` for ``active_window`` seconds;
- then, while the app's window is focused: every ``focused_interval`` however long it is
  quiet (someone is looking: a message after a lull must not wait long);
- while it is not focused: the period doubles after each quiet round up to
  ``idle_interval`` (nobody is looking: requests are what counts).

Full listings of a room (the safety net for writers that make no markers, and the retry
of a room that was read only partly) follow the same rule: their short periods apply
only while the window is focused; in the background every room waits
``background_safety``, and coming to the front polls at once and catches up on what is
due. Those background listings are the one cost that grows with the rooms, so they are
paced per storage (``SafetyPace``): up to ``background_rooms`` rooms each is listed every
``background_safety``; past it the period grows with the rooms (``background_period``),
and the listings start spread over it, never all in one round (red team rt75).

A room's safety listing that fails is an attempt all the same: the room waits its period
again, twice as long after each failure in a row (``safety_wait``), and goes behind the
rooms that came due before it. One room whose listing always fails took every paced
listing of its storage, and the others were never listed again (red team rt77).

A room's background listing is charged by what it cost (red team rt94): a member may
fill a quiet room's newest day folders with junk names, which every listing of them
pages through (``LISTING_PAGE`` names a request). A room whose last listing took more
than ``SAFETY_COST`` requests waits that many times its period (``charged_wait``), the
pace pays for what it took past that at once (``SafetyPace.pay``: red team rt98), and
one background listing takes at most ``SAFETY_PAGES_MAX`` pages: a day past them is
noted and not listed whole in the background, the room's other days are (rt96).

A room's metadata whose read failed is read again on a round, after a wait that doubles
with each failure (``metadata_retry_delay``).

Nothing here reads a clock: the engine passes in how long it has been quiet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

UNREAD_RETRY = 60.0  # seconds between new attempts at a room that was read only partly
METADATA_RETRY_MAX = 600.0  # seconds: the longest wait before a room's metadata is read again


class PollTimes(Protocol):
    """The periods the schedule needs (``SyncConfig`` has them), in seconds."""

    active_interval: float
    focused_interval: float
    idle_interval: float
    active_window: float
    focused_safety: float
    background_safety: float
    background_rooms: int
    local_rescan: float
    feed_wait: float
    feed_rest: float


def poll_delay(
    times: PollTimes, *, quiet_for: float, window_focused: bool, previous: float
) -> float:
    """Seconds to wait before the next marker listing.

    ``quiet_for``: seconds since the last activity; ``previous``: the delay chosen last
    time (it doubles while it is quiet and the window is in the background)."""
    active = max(times.active_interval, 0.0)
    if quiet_for < times.active_window:
        return active
    ceiling = max(times.idle_interval, active)
    if window_focused:
        ceiling = min(ceiling, max(times.focused_interval, active))
    return min(max(previous, active) * 2, ceiling)


FEED_FRONT_PACE = 0.5
"""Seconds per feed request, in front or within ``active_window`` of activity, after a
wait that came back early with nothing new: the bound on what queue junk costs there."""
FEED_REST_MAX_CYCLES = 4
"""The longest rest behind other windows, in honest idle cycles (``feed_wait + feed_rest``):
140 s by default, the longest a real message noticed there can wait while junk comes."""
FEED_NAMED_GRACES = 2
"""Waits in a row that named an attachment (or metadata) and go without a rest, until
something new is read or a long poll comes back empty: two files sent together (each
uploaded before its message) hold up no message. Their requests are paid for by the next
rest, up to ``FEED_REST_MAX_CYCLES``: a forger who names two made-up attachments, then
lets a long poll come back empty, again and again, costs at most five requests per four
cycles (about 129 an hour instead of 103); one who keeps naming gets the pace of junk."""


def feed_rest(
    times: PollTimes,
    *,
    quiet_for: float,
    window_focused: bool,
    found: bool = False,
    named: bool = False,
    spent: int = 1,
    elapsed: float | None = None,
) -> float:
    """Seconds to rest after a wait on a change feed (an SQS queue's long poll).

    ``found``: the wait brought something new to read; ``named``: it named an object of a
    room that is no segment (an attachment, room metadata: what another device writes
    just before the segment that needs it), and is one of the first ``FEED_NAMED_GRACES``
    such waits since something new was read or a long poll came back empty (the poller
    counts them: a forger who names made-up attachments gets no more); ``spent``: the
    requests made to the feed by the wait (its long poll, the deletion of what it
    brought), and by those before it that ``named`` an attachment and went without a
    rest: they are paid for by the next rest; ``elapsed``: seconds since the first of
    them began (None: one whole ``feed_wait``).

    - After a wait that brought something new: none; the feed is waited on again at once.
    - In front, or within ``active_window`` of activity: none after an honest wait that
      lasted its whole long poll. A wait that came back early with nothing new (queue
      junk, a notification repeated, one of this device's own segments) is paced to
      ``FEED_FRONT_PACE`` s per request: else anyone who may send to the queue drives
      it in a tight loop.
    - Behind other windows and quiet: ``feed_rest`` after an honest wait, so that an idle
      storage stays within its 150 requests an hour (a queue listened to without a
      break costs 3,600 / 20 = 180; with the rest about 103). After an early answer
      with nothing new, the rest stretches so that the cycle costs no more per request
      than an honest one: ``spent`` x (``feed_wait`` + ``feed_rest``) from when the
      last rest ended, at most ``FEED_REST_MAX_CYCLES`` cycles. None after a wait that
      ``named`` an attachment or metadata: the message that needs it comes next.

    A message that arrives during a rest waits for its end, or for a wake (the window
    coming to the front, a send, a room opened), which ends it."""
    if found:
        return 0.0
    if elapsed is None:
        elapsed = times.feed_wait
    spent = max(spent, 1)
    if window_focused or quiet_for < times.active_window:
        return max(0.0, spent * FEED_FRONT_PACE - elapsed)
    if named:
        return 0.0
    cycle = max(times.feed_wait + times.feed_rest, 0.0)
    stretched = min(spent, FEED_REST_MAX_CYCLES) * cycle - elapsed
    return max(times.feed_rest, stretched, 0.0)


def safety_period(
    times: PollTimes,
    *,
    room_focused: bool,
    window_focused: bool,
    partial: bool,
    local: bool,
) -> float:
    """Seconds between full listings of one room.

    ``room_focused``: the room on screen; ``partial``: part of it could not be read last
    time (the verdict waits for a new attempt); ``local``: a folder, where listing costs
    nothing and the watcher may miss events."""
    period = times.focused_safety if room_focused else times.background_safety
    if local:  # listing a folder costs nothing: as often as when someone looks
        period = min(period, times.local_rescan)
    elif not window_focused:
        return times.background_safety  # nobody looks; coming to the front catches up
    return min(period, UNREAD_RETRY) if partial else period


SAFETY_BURST = 2
"""Background safety listings of one storage that may start in one round (``SafetyPace``):
after a lull the pace saved up at most this many."""


def background_period(times: PollTimes, rooms: int) -> float:
    """Seconds between the background safety listings of one room when the storage has
    ``rooms`` rooms: ``background_safety`` up to ``background_rooms`` rooms, then that
    many times longer as there are more (300 rooms at the defaults: 4 h x 300 / 90,
    13 h 20 min), so that the storage's listings of all its rooms together never start
    more often than ``background_rooms`` per ``background_safety`` (one every 160 s):
    the share of the 150 requests an hour an idle storage may cost (docs/SCHEDULING.md,
    "What an idle storage costs")."""
    share = max(times.background_rooms, 1)
    return max(times.background_safety, 0.0) * max(1.0, rooms / share)


@dataclass(slots=True)
class SafetyPace:
    """When a storage's background safety listings may start (one pace per storage). A
    listing takes a token; tokens come at ``rooms / background_period`` a second (the
    rooms' listings spread evenly over their period), at most ``SAFETY_BURST`` saved up.
    So a round starts at most ``SAFETY_BURST`` of them whatever is due: 300 rooms opened
    together are due together, and all 600 requests fell in one round every 4 hours.
    Nothing here reads a clock: the poller passes ``now``."""

    tokens: float = SAFETY_BURST
    at: float | None = None

    def refill(self, times: PollTimes, *, now: float, rooms: int) -> None:
        """Add what the time since the last refill earned (``rooms``: the storage's)."""
        period = background_period(times, rooms)
        if self.at is not None and now > self.at:
            earned = (now - self.at) * rooms / period if period > 0 else float(SAFETY_BURST)
            self.tokens = min(float(SAFETY_BURST), self.tokens + earned)
        self.at = now if self.at is None else max(self.at, now)

    def ready(self) -> bool:
        """Whether one more listing may start now."""
        return self.tokens >= 1.0

    def spend(self) -> None:
        """A listing started."""
        self.tokens -= 1.0

    def pay(self, times: PollTimes, *, pages: int, rooms: int) -> None:
        """A background listing took ``pages`` requests: what it took past
        ``SAFETY_COST`` (a day folder more: tomorrow's besides yesterday's and today's,
        ``ids.newest_days``; junk names) is paid from the pace, a listing per
        ``SAFETY_COST`` requests, in the share of the budget the rooms' listings take
        (``rooms`` of ``background_rooms``). So the storage's listings together keep
        within their share whatever each costs: 90 rooms or more whose listings take 4
        cost up to 176 requests an hour unpaid (the room's own longer wait,
        ``charged_wait``, counts only from its next listing on), 148 paid; a few
        rooms, far within the budget, hardly wait for one costly room (of 2 rooms, a
        26-page listing costs the other 20 minutes)."""
        share = _share(times, rooms)
        if pages > SAFETY_COST:
            self.tokens -= (pages - SAFETY_COST) / SAFETY_COST * share

    def charge(self, times: PollTimes, *, seconds: float, rooms: int) -> None:
        """Pay for the markers' second folder: in the ten minutes after UTC midnight each
        round lists yesterday's marker folder too, behind other windows a request per
        ``idle_interval`` (about 13 in that hour) besides the 80 the budget counts for
        the markers. Unpaid, the hour across midnight cost 80 + 13 + 67.5 requests with
        90 rooms or more whose listings take 3: about 161. The rooms' listings pay, a
        listing per ``SAFETY_COST`` requests, in the share of the budget they take
        (``rooms`` of ``background_rooms``: one room pays 1/90 of it, 90 rooms or more
        all of it), first with what was saved up past that share's next listing (spent
        in the same hour it would come on top).

        The poller charges the rounds of the ten minutes before midnight and of the ten
        after it, ``seconds`` each (the time since the last round, at most
        ``idle_interval``): paid only after the fact, an hour that ends in those ten
        minutes or just after them holds their requests but not yet what pays for them
        (up to 151 with 90 rooms). Each room's next background listing comes half an
        hour late at most that night, whatever the number of rooms. By the time, not by
        the requests: polled every second or three (after activity, in front) the
        rounds pay what an idle round does, not a listing each."""
        if seconds <= 0 or times.idle_interval <= 0:
            return
        share = _share(times, rooms)
        requests = seconds / times.idle_interval
        self.tokens = min(self.tokens, 1.0 - share) - requests / SAFETY_COST * share


def _share(times: PollTimes, rooms: int) -> float:
    """The share of the storage's budget ``rooms`` background listings take: ``rooms``
    of ``background_rooms``, at most all of it."""
    most = max(times.background_rooms, 1)
    return min(max(rooms, 0), most) / most


LISTING_PAGE = 1_000
"""Names one request of a bucket's listing gives at most (S3 and GCS; Azure gives up to
5,000, counted here as 1,000): what a listing costs is counted by it (``listing_pages``)."""
SAFETY_COST = 3
"""Requests a room's background safety listing costs as the idle budget counts it
(docs/SCHEDULING.md, "What an idle storage costs"): its days, and its newest two days,
a page each. One that took more (a third day: tomorrow's, besides yesterday's and
today's) stretches the room's period (``charged_wait``) and is paid from the pace
(``SafetyPace.pay``)."""
SAFETY_PAGES_MAX = 30
"""Pages one background safety listing of a room may take, its days and day folders
together (30,000 names; each day at least a page). A day folder that holds more than
the pages left to it is noted and not listed whole in the background (junk a member
wrote there): the room says which day, what the pages showed of segments there is
read, and the room's other days are listed and used as ever (red team rt96: one padded
day stopped the whole listing, and messages of the other days were never fetched).
Later background listings look at a newest day noted so with one page from just after
the newest segment held there. Two such in one hour cost about 62 requests besides the
80 marker listings: within the 150. A day of a room holds one segment per message sent:
30,000 are more than people write in a day."""
LEVEL_PAGES_MAX = 10
"""Pages of the ``SAFETY_PAGES_MAX`` that a background listing of a room's days (its
``logs/``, one level) may take: 10,000 names, 27 years of days. A member may write any
number of objects right into ``logs/``: listed whole, 150,000 made that hour cost 234
requests, and 200,000 made each attempt 201 requests before the listing was refused
(red team rt102). Past it the listing stops, the room says so, and its newest days
(yesterday's, today's and tomorrow's UTC dates: the junk may sort before them) are
listed as ever; its older days only when the room is listed whole."""
COST_STRETCH_MAX = 16
"""How far a room's background wait may be stretched, cost and failures together
(``charged_wait``): 64 hours at the 4 h period."""


def listing_pages(names: int) -> int:
    """Requests a bucket's listing of ``names`` names takes: a page each ``LISTING_PAGE``,
    at least one (an empty folder is asked too)."""
    return max(1, -(-max(names, 0) // LISTING_PAGE))


def charged_wait(wait: float, pages: int, period: float) -> float:
    """Seconds a room waits for its next background safety listing when its wait by period
    and failures is ``wait`` (``safety_wait``) and its last listing took ``pages``
    requests: ``wait`` times ``pages / SAFETY_COST`` when that is more than one, so a
    room that costs *k* times what the budget counts is listed *k* times less often and
    costs the storage the same on average (a quiet room whose two newest days a member
    filled with 29,000 junk names: every 40 hours, not every 4). At most
    ``COST_STRETCH_MAX`` times ``period`` (never less than ``wait``)."""
    stretch = max(1.0, pages / SAFETY_COST)
    return min(wait * stretch, max(wait, max(period, 0.0) * COST_STRETCH_MAX))


SAFETY_FAILED_STEPS = 3
"""Doublings of a room's safety period after its listings failed in a row (``safety_wait``):
up to 8 times the period (32 hours behind other windows, up to 90 rooms), and at least up
to ``background_safety`` for the short periods (a room on screen, one read only partly)."""


def safety_wait(period: float, failures: int, ceiling: float) -> float:
    """Seconds from a room's last safety listing (or failed attempt) to its next, when
    its period is ``period`` and its last ``failures`` attempts failed in a row: the
    period, doubling from the second failure on, up to ``2 ** SAFETY_FAILED_STEPS``
    times it or ``ceiling`` (``background_safety``), whichever is longer. A listing that
    fails every time (refused for that room's prefix, a link in a folder, more names than
    a listing takes: 201 requests each) costs no more than one that succeeds behind
    other windows, and takes no other room's turn; in front, the room on screen (every
    15 minutes) or one read only partly (every minute) is tried less often after each
    failure, up to every 4 hours. One that failed once (a timeout) comes at its period."""
    period = max(period, 0.0)
    cap = max(period * 2.0**SAFETY_FAILED_STEPS, ceiling)
    steps = min(max(failures - 1, 0), 64)  # bounded: 2.0 ** 1024 overflows
    return min(period * 2.0**steps, max(cap, period))


def metadata_retry_delay(first: float, failures: int) -> float:
    """Seconds until a room's metadata, whose read failed ``failures`` times in a row
    (a timeout, a server error), is read again on a polling round: ``first``, doubling
    with each failure, at most ``METADATA_RETRY_MAX``."""
    # the exponent bounded: 2.0 ** 1024 overflows (a week of failures every 10 minutes)
    return min(max(first, 0.0) * 2.0 ** min(max(failures - 1, 0), 64), METADATA_RETRY_MAX)
