"""Which rows are unread news, and how many of them a room holds after a read marker.

One rule for both places that count: a message that arrives while the app runs (the GUI
controller's live count) and the messages a room's audit holds after the newest event the
person saw before a restart (``count_unread``, run on the engine's state thread). News is
a message (not a join, a reaction, an edit, a deletion or a typing notice), not signed by
this device's key, and not deleted already (its text is shown nowhere).

A message that sorts before a row already seen (written a little before it, read after
it: a slower upload, a row dated a little ahead) is unread too when it arrives while the
room is not shown: the live count has it, and the settings keep its id with the marker
(``ReadMarker.unseen``) until the room is shown, so the count after a restart has it too
(counting only after the marker called it read).

A read marker comes from this device's settings file, but the rows it is looked up in were
written by anyone with write access: the marker's event may be gone (a rewritten history, a
marker of another audit), the rows may carry hostile timestamps. The count never raises for
what it walks, never walks far past where the marker would have to be, and never calls a whole
room unread because its marker is missing: it then counts only the messages ordered after
the marker's (timestamp, id), as display order would have put them after it.

Rows placed in the future: display order follows timestamps, so a hostile row dated
years ahead sorts after every genuine message written since, and so does every row
chained after it, whatever its own date (a row never shows before its predecessor).
Were one of them the marker, the messages that arrive later would sort before it and
never count. So the marker is the newest row not *placed* past the reading device's clock
(with ``FUTURE_SLACK_MS`` for clocks that run a little ahead: ``marker_for``), and the
count after a restart passes over the rows placed past the counting device's clock the
same way (such a row, seen or not, would otherwise count again at every start), as does
the live count (the GUI controller: what arrives placed there is shown, not news yet). Those
rows are the newest ones, found by a binary search (``Timeline.placed_by``): however
many a member writes, they cannot stop the marker. The slack is short, as it is what one
row planted just inside it hides from a count after a restart: what is written before
its date sorts before it. A marker saved with a timestamp in the future (by a version
before this rule) still hides what sorts before it: the count errs towards fewer, never
towards the whole room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .audit import Assessed, Timeline
from .event import MESSAGE, Event
from .relations import Relations

UNREAD_SHOWN = 99  # the most a room's count shows as a number; more is "99+"
UNREAD_CAP = UNREAD_SHOWN + 1  # a count stops here: enough to know it is more (the tray: "9+")
OLDER_RUN = 64  # rows older than a marker that is not found, one after another: stop
# A row placed further past this device's clock is not read yet (see above): clocks kept
# by NTP agree within a second; five minutes is Kerberos's tolerance for clock skew.
FUTURE_SLACK_MS = 5 * 60_000


def unread_label(count: int) -> str:
    """A room's unread count as the room list and the quick switcher show it."""
    return f"{UNREAD_SHOWN}+" if count > UNREAD_SHOWN else str(count)


def is_unread_news(ev: Event, own_key: str | None, relations: Relations | None) -> bool:
    """Whether ``ev``, arrived unseen, is an unread message: a message row, not signed by
    ``own_key`` (this device), not deleted by ``relations`` (those of the audit it is in)."""
    if ev.type != MESSAGE or ev.sender_key == own_key:
        return False
    agg = relations.of(ev.event_id) if relations is not None else None
    return agg is None or agg.redacted is None


@dataclass(frozen=True, slots=True)
class ReadMarker:
    """The newest event a person saw in a room: its id and its timestamp (what orders it
    when the event itself is not among the rows any more)."""

    event_id: str
    timestamp_ms: int
    # Messages placed before the marker's row that arrived unseen (a row sorts before a
    # newer one already seen: behind a row dated a little ahead, a slower upload): the
    # live count had them, and "after the marker" alone would call them read.
    unseen: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UnreadCount:
    """How many unread messages follow a read marker (at most ``UNREAD_CAP``) and the
    id of the first of them ("" for none). ``found``: the marker's event is among the
    rows; if not, only messages ordered after the marker's (timestamp, id) were counted."""

    count: int
    first: str
    found: bool
    capped: bool = False


def marker_for(rows: Sequence[Assessed], now_ms: int) -> ReadMarker | None:
    """The read marker for a person who has seen ``rows`` (display order) at ``now_ms``
    (this device's clock): the newest row not placed past it by more than
    ``FUTURE_SLACK_MS``; None when there is none (the marker then stays where it was)."""
    cut = placed_by(rows, now_ms + FUTURE_SLACK_MS)
    if not cut:
        return None
    ev = rows[cut - 1].event
    return ReadMarker(ev.event_id, ev.timestamp_ms)


def count_unread(
    rows: Sequence[Assessed],
    marker: ReadMarker,
    own_key: str | None,
    relations: Relations | None,
    now_ms: int,
    cap: int = UNREAD_CAP,
) -> UnreadCount:
    """The unread messages of ``rows`` (an audit's timeline, display order) after
    ``marker``, by ``is_unread_news``, passing over the rows placed more than
    ``FUTURE_SLACK_MS`` past ``now_ms`` (this device's clock: see the module's
    docstring); the count stops at ``cap`` (``capped`` says so).

    With the marker's row among them (and not placed past the clock since), every news
    row after it counts, the first one is where the "New messages" line goes. Without
    it, rows are walked from the newest back
    and those ordered after the marker's (timestamp, id) count; the walk stops after
    ``OLDER_RUN`` rows in a row older than the marker (display order follows timestamps,
    save a chained row placed after a back-dated predecessor). Costs a scan of the ids
    (``Timeline.position_of``: no rows made) and the rows since the marker.

    The marker's ``unseen`` messages count too where they sort before it (after it,
    they are counted already), and the first of them is then the first unread; the rows
    before the marker are walked back until each is found (a walk of the whole room
    only when one is gone: a rewritten history)."""
    counted = _count_after(rows, marker, own_key, relations, now_ms, cap)
    if not marker.unseen or counted.capped:
        return counted
    extra, first = _unseen_before(rows, marker, counted.found, own_key, relations, now_ms)
    count = counted.count + extra
    return UnreadCount(min(count, cap), first or counted.first, counted.found, count > cap)


def _unseen_before(
    rows: Sequence[Assessed],
    marker: ReadMarker,
    found: bool,
    own_key: str | None,
    relations: Relations | None,
    now_ms: int,
) -> tuple[int, str]:
    """The news among ``marker.unseen`` that ``_count_after`` passed over: before the
    marker's row (``found``), or ordered at or before its (timestamp, id). Returns how
    many, and the first of them in display order ("" for none)."""
    cut = placed_by(rows, now_ms + FUTURE_SLACK_MS)
    at = position_of(rows, marker.event_id) if found else None
    wanted = set(marker.unseen)
    key = (marker.timestamp_ms, marker.event_id)
    count, first = 0, ""
    for i in range((at if at is not None else cut) - 1, -1, -1):
        ev = rows[i].event
        if ev.event_id not in wanted:
            continue
        wanted.discard(ev.event_id)
        if (at is not None or (ev.timestamp_ms, ev.event_id) <= key) and is_unread_news(
            ev, own_key, relations
        ):
            count, first = count + 1, ev.event_id
        if not wanted:
            break
    return count, first


def _count_after(
    rows: Sequence[Assessed],
    marker: ReadMarker,
    own_key: str | None,
    relations: Relations | None,
    now_ms: int,
    cap: int,
) -> UnreadCount:
    """``count_unread`` without the marker's ``unseen`` messages."""
    at = position_of(rows, marker.event_id)
    count, first = 0, ""
    cut = placed_by(rows, now_ms + FUTURE_SLACK_MS)  # the rows from here on: not yet
    if at is not None and at >= cut:
        # The marker's row is placed in the future now (a predecessor dated ahead arrived
        # since it was marked): what came meanwhile sorts before it, so it counts by the
        # date the row had when it was seen, as a marker not found does.
        at = None
    if at is not None:
        for i in range(at + 1, cut):
            ev = rows[i].event
            if is_unread_news(ev, own_key, relations):
                count += 1
                first = first or ev.event_id
                if count > cap:
                    break
        return UnreadCount(min(count, cap), first, True, count > cap)
    key = (marker.timestamp_ms, marker.event_id)
    older = 0
    for i in range(cut - 1, -1, -1):
        ev = rows[i].event
        if (ev.timestamp_ms, ev.event_id) <= key:
            older += 1
            if older >= OLDER_RUN:
                break
            continue
        older = 0
        if is_unread_news(ev, own_key, relations):
            count += 1
            first = ev.event_id
            if count > cap:
                break
    return UnreadCount(min(count, cap), first, False, count > cap)


def position_of(rows: Sequence[Assessed], event_id: str) -> int | None:
    """Where ``event_id`` is among ``rows`` (``Timeline.position_of``), or None."""
    if isinstance(rows, Timeline):
        return rows.position_of(event_id)
    return next((i for i, r in enumerate(rows) if r.event.event_id == event_id), None)


def placed_before(
    rows: Sequence[Assessed],
    marker_id: str,
    ids: Sequence[str],
    known: Mapping[str, int] | None = None,
) -> list[str]:
    """The ids among ``ids`` (in their order) shown before the row of ``marker_id``, each
    where ``known`` says (a row that arrived far above the newest: its place came with it)
    or ``position_of`` finds it; [] when the marker is not shown. One walk from the
    newest row back for all of them (``Timeline.rows_by_id``), not one per id: the rows a
    full audit hands on as arrived (up to 2 x ``ARRIVED_ROWS``) can sit behind tens of
    thousands of rows placed ahead of the clock, and a walk for each held the GUI thread
    2.5 s in a room of 100,000."""
    known = known or {}
    wanted = {marker_id, *(e for e in ids if e not in known)}
    if isinstance(rows, Timeline):
        found = {k: r.position for k, r in rows.rows_by_id(wanted).items()}
    else:
        found = {}
        for i in range(len(rows) - 1, -1, -1):
            event_id = rows[i].event.event_id
            if event_id in wanted and event_id not in found:
                found[event_id] = i
                if len(found) == len(wanted):
                    break
    at = found.get(marker_id)
    if at is None:
        return []
    found.update(known)
    return [e for e in ids if (where := found.get(e)) is not None and where < at]


def placed_by(rows: Sequence[Assessed], latest_ms: int) -> int:
    """How many rows, from the oldest, are placed no later than ``latest_ms``
    (``Timeline.placed_by``). A plain sequence is walked: a row's place is the latest
    date up to it, so the first row dated past ``latest_ms`` ends them."""
    if isinstance(rows, Timeline):
        return rows.placed_by(latest_ms)
    return next((i for i, r in enumerate(rows) if r.event.timestamp_ms > latest_ms), len(rows))


def seen_place(rows: Sequence[Assessed] | None, read_ms: int) -> int | None:
    """How far a device had read a room whose rows it showed were ``rows`` (the audit
    before new rows came), read on its clock at ``read_ms`` (when that audit was read,
    not when the next rows come): where the newest of them not placed past that clock
    (with ``FUTURE_SLACK_MS``) is placed; None when none is (nothing read, or only rows
    dated ahead). What ``timestamps.late_among`` weighs a new row's date against, the
    one rule of the app (the GUI controller) and of ``bucket-chat sync --follow`` /
    ``chat`` (``cli.live.LivePrinter``). A row dated ahead is its writer's word, as the
    read marker takes it (``marker_for``): counted as read, one row dated a year ahead
    made every honest message that came some minutes after its date (a sleep, an
    outage) "sent or delivered long after its date" in the terminal, not in the app (red
    team rt98). It counts as read once a read happens at or after its date (less the
    slack), never by the clock of what arrives next: a row 30 minutes ahead when read,
    weighed by the clock of a wake-up 40 minutes later, made every honest message and
    edit written in the first minutes of the sleep "long after its date" (red team
    rt101). A plain sequence is placed as ``placed_by`` walks it (a row's place is the
    latest date up to it)."""
    if rows is None:
        return None
    cut = placed_by(rows, read_ms + FUTURE_SLACK_MS)
    if not cut:
        return None
    if isinstance(rows, Timeline):
        return rows.place_at(cut - 1)
    return max(rows[i].event.timestamp_ms for i in range(cut))


ARRIVED_ROWS = 200  # rows a full re-audit hands on as arrived, at most (the newest of them)


def arrived(
    old: Timeline | None,
    rows: Timeline,
    bodies: Mapping[tuple[str, int], Assessed],
    now_ms: int,
    since_ms: int,
    *,
    first_seen: bool = False,
    late: Sequence[tuple[int, Assessed]] = (),
    read_ms: int | None = None,
) -> list[Assessed]:
    """The rows of a full re-audit (``rows``) that the audit before it (``old``) did not
    have: new messages, counted unread and notified like appended ones (a newcomer's
    first message is audited in full, never appended), in display order, each taken from
    ``bodies`` (by its copy's (path, line): an event id signed by two keys is two rows)
    when there, else as the audit holds it. Nothing on a first
    read, nor when the row that was newest is not in the new audit.

    Those after the row that was newest, and those just before it placed at or after
    ``since_ms`` (when the room was first shown this session, or joined): a message read
    after a newer one (a slower upload, a device's outbox delivering after an outage)
    sorts before it, and it is the only reason a message from a device that continues
    its chain comes with a full audit, not an append. History read late (older segments)
    is placed before ``since_ms`` and is not news.

    "Newest" is by place, as for the read marker (``marker_for``): rows placed past this
    device's clock are passed over, in the old audit and the new. A row dated years ahead
    stays the newest row for good, and every message written since sorts before it (a
    full re-audit each time): taken as the anchor, it made every later message arrive
    unseen — no unread count, no notification — while the app ran. The old audit's
    newest is taken by the clock of its read (``read_ms``; None: ``now_ms``), as
    ``seen_place`` and ``anchor_position`` take it: a row dated ahead when the old audit
    was read was not read then, however late this audit comes (a sleep). Taken by the
    clock of this audit, it was the anchor here and nowhere else (review rev1): now it
    is news once placed by this device's clock, as the count after a restart takes it
    (the read marker is never a row placed ahead: ``marker_for``).

    ``first_seen``: the room was seen for the first time this session (it had no read
    marker), and what it held then was marked read whole — "nothing of it is news yet".
    Rows after the anchor placed before ``since_ms`` are history then too: the first
    screen may have come without one of its segments (a read left behind when hundreds
    of rooms open at once, or held on purpose by a hostile provider), and when that read
    comes in, its old messages sort after the anchor. Counted as news, a provider that
    delays a read made a room's old messages unread and notified (red team rt75). A
    message written before then and delivered late (a member's outbox after an outage)
    is passed over the same way in such a room: it is older than the person's first
    look at the room, as everything else that screen held.

    ``late``: the rows of ``rows`` (position, row with its body) the engine read for the
    first time from segments first listed once the room was known whole
    (``RoomLoaded.arrived``). They are new words wherever they are placed, and news like
    the others (``is_news_placed``): a member's next message dated weeks back lands far
    above the newest row, and whether it is news must not hang on the rows between (red
    team rt79). Found by the engine (a binary search each), not by a walk here."""
    before = len(old) if old is not None else 0
    if old is None or not before or (len(rows) <= before and not late):
        return []
    latest = now_ms + FUTURE_SLACK_MS
    old_cut = placed_by(old, (now_ms if read_ms is None else read_ms) + FUTURE_SLACK_MS)
    if not old_cut:
        return []
    at = _copy_position(rows, old[old_cut - 1])
    if at is None:
        return []
    cut = placed_by(rows, latest)
    # Before the anchor: the old rows among new[low:at] are the ones just before the
    # anchor in the old audit (a margin for rows the new audit no longer shows).
    low = max(0, at - ARRIVED_ROWS, placed_by(rows, since_ms - 1))
    known_from = max(0, old_cut - 1 - (at - low) - ARRIVED_ROWS)
    known = {_copy(old[i]) for i in range(known_from, old_cut)} if low < at else set()
    # Rows placed past the clock are not news yet (as when appended), before the anchor
    # too: the anchor is placed there when it follows a row held back as dated ahead
    # that is shown at last (PROTOCOL.md section 9).
    picked = [i for i in range(low, min(at, cut)) if _copy(rows[i]) not in known]
    after = max(at + 1, cut - ARRIVED_ROWS)
    if first_seen:  # display order follows place: those placed before since_ms come first
        after = max(after, placed_by(rows, since_ms - 1))
    picked += range(after, cut)
    out = {i: bodies.get((rows[i].path, rows[i].line), rows[i]) for i in picked}
    for i, row in late:
        if i not in out and is_news_placed(rows.place_at(i), now_ms, since_ms, True, first_seen):
            out[i] = row
    return [out[i] for i in sorted(out)]


def is_news_placed(
    place_ms: int, now_ms: int, since_ms: int, arrived: bool, first_seen: bool
) -> bool:
    """Whether a new row placed at ``place_ms`` before the newest row seen (a message
    among older ones) is news, by one rule for the rows placed there one by one
    (``RoomLedger.try_place``) and those a full re-audit brings (``arrived``).

    Not while placed past this device's clock (shown, not news yet). Else news when placed
    since this session began (``since_ms``: read after a newer one, behind a row dated a
    little ahead), or when it ``arrived``: read from a segment first listed once the
    room was known whole (``RoomLoaded.arrived``), whatever its date. Not a row of
    history read late (a back-fill, a first read), nor, in a room first seen this
    session (``first_seen``), one placed before ``since_ms``: what its first screen
    lacked is history (red team rt75)."""
    if place_ms > now_ms + FUTURE_SLACK_MS:
        return False
    if place_ms >= since_ms:
        return True
    return arrived and not first_seen


def anchor_position(old: Timeline | None, rows: Timeline, read_ms: int) -> int | None:
    """Where ``rows`` (a new audit) shows the row that was newest in ``old`` (by place,
    as ``arrived`` takes it) when ``old`` was read, at ``read_ms`` (this device's clock
    then: a row dated ahead at that read was not read, as ``seen_place`` says), None
    when there is none: what is new before it was placed among rows seen already. A walk
    from the newest back to it."""
    if old is None:
        return None
    cut = placed_by(old, read_ms + FUTURE_SLACK_MS)
    return _copy_position(rows, old[cut - 1]) if cut else None


def _copy(row: Assessed) -> tuple[str, str | None]:
    """Which copy of an event id ``row`` is: its id and signing key (an id signed by two
    keys is shown once per key, PROTOCOL.md section 6 step 1)."""
    return row.event.event_id, row.event.sender_key


def _copy_position(rows: Timeline, row: Assessed) -> int | None:
    """Where the copy ``row`` (of another audit) is among ``rows``, or None."""
    at = rows.position_of(row.event.event_id)
    if at is None or row.event.event_id not in rows.repeated:
        return at
    want = _copy(row)
    for i in range(at, -1, -1):  # a walk back only under attack (an id signed twice)
        if _copy(rows[i]) == want:
            return i
    return None
