"""What a storage's objects are to the chat: which rooms exist, a room's metadata, and the
finding for an object that stands in a room's folder but is not read (not a segment's
name, over the size limit, not a regular file).

The engine reads rooms (``engine.py``); the few questions here are asked before or
beside a read: by the engine, the client, the direct writer, the storage self-check,
the CLI and the setup wizard. Each answer is a value, never an exception about the
object: everything here was written by someone who may be hostile.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..protocol.audit import HOLD_AHEAD_MS
from ..protocol.event import decode_json_line
from ..protocol.findings import Finding, Kind
from ..protocol.ids import (
    is_segment_of,
    is_valid_room_id,
    logs_prefix,
    metadata_path,
    parse_segment_path,
    utc_date,
)
from ..protocol.metadata import MAX_METADATA_BYTES, RoomMetadata, parse_metadata
from ..protocol.segment import MAX_SEGMENT_BYTES
from ..storage.base import (
    NotRegularFileError,
    ObjectInfo,
    ObjectTooLargeError,
    Storage,
    StorageError,
    StorageNotFoundError,
    UnreadableObjectError,
    shown_object_name,
)

log = logging.getLogger("bucket_chat.sync")

T = TypeVar("T")


async def room_exists(storage: Storage, room_id: str) -> bool:
    """A room exists when it has metadata or at least one date folder of segments
    (``has_history``): what joining and ``chat`` ask, and what creating refuses."""
    if await storage.exists(metadata_path(room_id)):
        return True
    return await has_history(storage, room_id)


async def has_history(storage: Storage, room_id: str) -> bool:
    """Whether the room's ``logs/`` lists at least one date folder: someone wrote
    segments there (the half of ``room_exists`` that is not its metadata)."""
    return bool(await storage.list_dirs(logs_prefix(room_id)))


async def list_rooms(storage: Storage) -> list[str]:
    """The storage's rooms: the folders under ``rooms/`` whose name is a valid room id."""
    return [r for r in await storage.list_dirs("rooms/") if is_valid_room_id(r)]


UNFINISHED_WAIT = 5.0
"""Seconds an object read unfinished is read again while it keeps changing
(``read_once_written``): past them it is unread for now."""
WAIT_REFILL = 12.0
"""``WaitBudget``: one second more to wait for writers every this many seconds."""


class StillWritingError(StorageError):
    """An object read unfinished kept changing (``read_once_written``): read it later."""

    transient = True


class Budget:
    """A token bucket: ``capacity`` at most, refilled at ``per_second``, full at first.
    What a hostile member or service may make the engine spend (seconds of waiting,
    reads of the bucket) is drawn from one. ``clock``: the monotonic clock it refills by
    (the poller's own, which its tests move on)."""

    __slots__ = ("_at", "_clock", "_left", "capacity", "per_second")

    def __init__(
        self, capacity: float, per_second: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self._clock = clock
        self._left = capacity
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._left = min(self.capacity, self._left + (now - self._at) * self.per_second)
        self._at = now

    def take(self, amount: float = 1.0) -> bool:
        """``amount`` of it, if that much is left now."""
        self._refill()
        if self._left < amount:
            return False
        self._left -= amount
        return True

    def full(self) -> bool:
        """Nothing of it used for a while (refilled to its capacity)."""
        self._refill()
        return self._left >= self.capacity


class WaitBudget(Budget):
    """The seconds one engine may spend waiting for writers of unfinished objects
    (``read_once_written``): ``UNFINISHED_WAIT`` at most, one more each ``WAIT_REFILL``
    seconds. An honest writer in place is done in milliseconds; someone who keeps
    hundreds of planted files changing would otherwise hold each read of them for
    ``UNFINISHED_WAIT`` seconds, and the room's news queued behind them. Past the budget
    an unfinished object that changed lately is unread for now, read again later."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(UNFINISHED_WAIT, 1 / WAIT_REFILL)


def unfinished(data: bytes) -> bool:
    """A segment read before its writer was done: empty, or its last line not ended."""
    return not data.endswith(b"\n")


async def read_once_written(
    storage: Storage,
    path: str,
    data: bytes,
    max_bytes: int,
    unfinished: Callable[[bytes], bool],
    budget: WaitBudget | None = None,
) -> bytes:
    """``data`` read from ``path`` may be half of what its writer is writing: a folder
    shows a file from the moment its writer creates it, and the reference client (like
    any program that does not write elsewhere and rename) writes in place. While it looks
    ``unfinished`` and the storage says it changed lately (``Storage.written_lately``;
    cloud objects appear whole: never), read it again with growing pauses. Kept half-read,
    an honest member's message showed as a ``truncated`` finding and later as "changed
    in storage after this device read and checked it". One that keeps changing for
    ``UNFINISHED_WAIT`` seconds, or once the caller's ``budget`` is spent, raises
    ``StillWritingError`` (unread for now, read again later); one left alone unfinished
    is what it is (its findings say so)."""
    deadline = time.monotonic() + UNFINISHED_WAIT
    pause = 0.02
    waited = 0.0
    while unfinished(data) and await storage.written_lately(path):
        if time.monotonic() + pause > deadline:
            raise StillWritingError(
                f"{path} is still being written (unfinished, and changed again within "
                f"{UNFINISHED_WAIT:g} s of waiting for its writer): read again later"
            )
        if budget is not None and not budget.take(pause):
            # Say what happened: a file read once is not one that "kept changing".
            raise StillWritingError(
                f"{path} is still being written (unfinished, changed in the last seconds; "
                f"waited {waited:.1f} s: the time to wait for writers is spent for now, "
                "other files kept changing): read again later"
            )
        await asyncio.sleep(pause)
        waited += pause
        pause = min(pause * 2, 0.5)
        data = await storage.get(path, max_bytes=max_bytes)
    return data


def _not_json(data: bytes) -> bool:
    """Metadata read before its writer was done: not one JSON object yet (decoded as
    ``parse_metadata`` decodes it, which never raises: not even on 60,000 brackets)."""
    return not isinstance(decode_json_line(data.strip()), dict)


async def read_metadata(
    storage: Storage, room_id: str, budget: WaitBudget | None = None
) -> tuple[RoomMetadata | None, list[Finding]]:
    """The room's metadata and what is wrong with it (read again while its writer may
    still be writing it, ``read_once_written``); storage errors other than a missing or
    unreadable object propagate (the caller retries later)."""
    path = metadata_path(room_id)
    try:
        data = await storage.get(path, max_bytes=MAX_METADATA_BYTES)
        if _not_json(data):
            data = await read_once_written(
                storage, path, data, MAX_METADATA_BYTES, _not_json, budget
            )
    except StorageNotFoundError:
        return None, [Finding(Kind.METADATA_MISSING, "room has no metadata.json", path)]
    except NotRegularFileError as exc:
        # Where the room's name and creator should be: an error, not litter. The
        # folder on the way may be what is not one (the room's own folder a link, or
        # ``rooms/``): named, not blamed on metadata.json (red team rt51).
        if exc.path in ("", path):
            why = f"metadata.json is not a regular file ({exc.kind}); not used"
        else:
            why = (
                f"metadata.json not read: {shown_object_name(exc.path)} is a {exc.kind}, not "
                "a folder (links and special files in the storage are never followed)"
            )
        return None, [Finding(Kind.METADATA_INVALID, why, path)]
    except UnreadableObjectError as exc:
        return None, [unreadable_finding(exc, Kind.METADATA_INVALID)]
    return parse_metadata(data, room_id, path)


def unreadable_finding(exc: UnreadableObjectError, too_large: Kind) -> Finding:
    """The finding for an object that cannot be read as it is (reported, never retried)."""
    if isinstance(exc, NotRegularFileError):
        return _not_regular(exc.path, exc.kind)
    assert isinstance(exc, ObjectTooLargeError)
    return Finding(too_large, f"larger than the {exc.limit:,}-byte limit; not read", exc.path)


def special_finding(item: ObjectInfo) -> Finding:
    """The finding for a listed entry that is a link, FIFO, socket or device."""
    return _not_regular(item.path, str(item.special))


def not_read_finding(room_id: str, item: ObjectInfo) -> Finding | None:
    """Why a regular object listed in the room's ``logs/`` folder is not downloaded — not
    a segment's name of this room (litter: a notice), or larger than
    ``MAX_SEGMENT_BYTES`` by its listed size (history that cannot be read: an error) — or
    None: it is read."""
    if not is_segment_of(room_id, item.path):
        return Finding(Kind.UNEXPECTED_OBJECT, "not a segment name; ignored", item.path)
    if item.size > MAX_SEGMENT_BYTES:
        return Finding(
            Kind.SEGMENT_TOO_LARGE,
            f"segment of {item.size:,} bytes exceeds {MAX_SEGMENT_BYTES:,}; not read",
            item.path,
        )
    return None


# What a read of an object that is not read gives (``backfill.read_segment``): a segment
# with no events and one finding of these kinds. Reading bytes never gives them.
_NOT_READ = frozenset({Kind.UNEXPECTED_OBJECT, Kind.SEGMENT_TOO_LARGE})


def refusal_of(path: str, events: int, findings: Sequence[Finding]) -> Finding | None:
    """The finding of an object refused unread (over the size limit, or litter: not a
    segment's name) when that is what a read gave — ``events`` events and ``findings``
    of segment ``path`` — else None (bytes were read and checked). Such an object is no
    segment held: it is not kept as read (``RoomState.refused``)."""
    if events or len(findings) != 1 or findings[0].kind not in _NOT_READ:
        return None
    return findings[0] if findings[0].path == path else None


def _not_regular(path: str, kind: str) -> Finding:
    """Something that is not a file. Named like a segment it stands where history could
    be (a link put in place of a real segment, a FIFO): an error, the verdict is not
    final. Under any other name it is litter: a notice."""
    if parse_segment_path(path) is not None:
        return Finding(
            Kind.SEGMENT_UNREADABLE,
            f"named like a segment but not a regular file ({kind}); not read",
            path,
        )
    return Finding(Kind.UNEXPECTED_OBJECT, f"not a regular file: {kind}; not read", path)


# -- what a storage holds, for a person choosing a room to join ----------------------------

MAX_SUMMARISED = 200  # rooms a listing reads the name and last activity of
# A segment name dated further ahead is not believed: the audit holds back an event dated
# more than this ahead of the reader's clock (PROTOCOL.md section 9), and so does the list.
NAME_SLACK_MS = HOLD_AHEAD_MS
_PARALLEL = 8  # rooms summarised at once
_DATE_FOLDER = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # as parse_segment_path accepts


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """One room found in a storage. ``name`` is what its metadata says (untrusted, not
    checked: show it cleaned, beside the id); ``last_activity_ms`` is the newest end
    time in its newest segment names (what the names say, not verified; None when it
    has no segment, or only ones dated more than an hour ahead)."""

    room_id: str
    name: str | None
    last_activity_ms: int | None
    problem: str = ""  # why the name or the activity could not be read, "" if they were
    # The metadata as read (None: missing, not usable, or a room known from the cache):
    # who it claims made the room, for a listing that shows it (``bucket-chat rooms``).
    metadata: RoomMetadata | None = None
    # The name (or the activity) was not read for a passing reason: no answer in time,
    # the storage busy or away, the metadata still being written. ``problem`` says
    # which; nothing is wrong with the room that this device knows of, and reading it
    # again may give it (the join dialog does, a few times).
    passing: bool = False
    # Whether its metadata was read (found, missing, or refused): False when it got no
    # answer (a passing failure), so its name is not known, not absent. A summary can be
    # ``passing`` with its name read: only its activity's listing got no answer.
    name_read: bool = True


@dataclass(frozen=True, slots=True)
class StorageRooms:
    """The answer to "which rooms does this storage hold?": a value, never an exception.
    ``from_cache``: the storage did not answer, these are the rooms this device's index
    knows; ``note`` says so (or why there is nothing) in words for the person."""

    rooms: tuple[RoomSummary, ...]
    more: int = 0  # rooms found but not summarised (past the limit, MAX_SUMMARISED)
    # Their ids, in the listing's order: a person choosing a room sees every id the
    # listing found (one request), and names are read for those shown (``summarise_rooms``).
    unread: tuple[str, ...] = ()
    from_cache: bool = False
    note: str = ""
    # With ``from_cache``: why the storage could not be listed, whether it did not answer
    # within the interactive deadline (rather than refused), and this device's newest
    # complete read of the rooms shown (seconds since the epoch; None: never).
    error: str = ""
    no_answer: bool = False
    last_read: float | None = None


async def last_activity(storage: Storage, room_id: str, now_ms: int) -> int | None:
    """The newest end time named by the room's segments in its newest date folders (at
    most three folders are listed: a folder of junk must not hide the activity; folders
    dated after the last day a believed name can be of are passed over, so that folders
    dated in the future cannot hide it either)."""
    prefix = logs_prefix(room_id)
    last_day = utc_date(now_ms + NAME_SLACK_MS)
    dates = [
        d for d in await storage.list_dirs(prefix) if _DATE_FOLDER.fullmatch(d) and d <= last_day
    ]
    for date in sorted(dates)[-3:][::-1]:
        ends = []
        try:
            listed = await storage.list_objects(f"{prefix}{date}/")
        except StorageError as exc:
            if exc.transient:  # not answering: the list says so
                raise
            # One day that cannot be listed (a folder nobody may read put into it) is
            # no reason to fail the list of every room of the storage: the next day.
            log.info("last activity of room %s: %s", room_id, exc)
            continue
        for item in listed:
            name = parse_segment_path(item.path) if item.special is None else None
            ok = name is not None and name.room_id == room_id
            if name is not None and ok and name.end_ts <= now_ms + NAME_SLACK_MS:
                ends.append(name.end_ts)
        if ends:
            return max(ends)
    return None


Within = Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]
"""How one request's worth of a room's summary is bounded: ``answer_within`` of the
storage, as a step of its own, the batch's steps sharing one deadline (``OneDeadline``
in ``watched.py``, ``ChatClient.summarise_rooms``); None: as it is."""


async def _as_it_is(step: Coroutine[Any, Any, T]) -> T:
    return await step


async def summarise_room(
    storage: Storage,
    room_id: str,
    now_ms: int,
    *,
    activity: bool = True,
    budget: WaitBudget | None = None,
    within: Within | None = None,
) -> RoomSummary:
    """A room's name and (with ``activity``: two listings more) last activity; a metadata
    object that cannot be read or parsed, or that is still being written, leaves the name
    out (with a problem), never the room. Never raises for the storage: a passing
    failure (no answer, busy, still being written) leaves out what it kept from being
    read, said in ``problem``, and marks the summary ``passing`` (read it again later).
    ``within`` bounds the metadata's read and the activity's listings, each a step of
    its own: a room whose metadata answered keeps its name when its listings do not."""
    bound: Within = within or _as_it_is
    path = metadata_path(room_id)
    try:
        metadata, findings = await bound(read_metadata(storage, room_id, budget))
    except StorageError as exc:  # one planted file must not fail the whole list
        if exc.transient:
            # Not answering, busy, or still being written: nothing is known of the
            # room's name, and nothing wrong with it (red team rt95: the room's
            # metadata was blamed, and one stalled room blanked every room's name).
            return RoomSummary(room_id, None, None, str(exc)[:300], passing=True, name_read=False)
        # A room folder nobody may read (anyone who can write to a shared folder can
        # make one): that room has a problem, the others none.
        metadata, findings = None, [Finding(Kind.METADATA_INVALID, str(exc), path)]
    problems = [f.message for f in findings if f.kind is not Kind.METADATA_MISSING]
    last = None
    passing = False
    try:
        last = await bound(last_activity(storage, room_id, now_ms)) if activity else None
    except StorageError as exc:
        passing = exc.transient
        problems.append(f"its last activity was not read: {exc}" if passing else str(exc))
    name = metadata.name if metadata is not None else None
    return RoomSummary(room_id, name, last, "; ".join(problems)[:300], metadata, passing)


async def storage_rooms(
    storage: Storage,
    now_ms: int,
    limit: int | None = MAX_SUMMARISED,
    *,
    activity: bool = True,
    within: Within | None = None,
) -> StorageRooms:
    """Every room of a storage (``list_rooms``), the first ``limit`` (None: all) with
    their name and (``activity``) last activity, read a few at a time; the others' ids
    in ``unread``. The listing's storage errors propagate (``within`` bounds it as it
    bounds each room's reads); a room's own are that room's (``summarise_room``)."""
    bound: Within = within or _as_it_is
    found: list[str] = await bound(list_rooms(storage))
    chosen = found if limit is None else found[: max(limit, 0)]
    rooms = await summarise_rooms(storage, now_ms, chosen, activity=activity, within=within)
    rest = tuple(found[len(chosen) :])
    return StorageRooms(rooms, more=len(rest), unread=rest)


async def summarise_rooms(
    storage: Storage,
    now_ms: int,
    room_ids: Sequence[str],
    *,
    activity: bool = True,
    within: Within | None = None,
) -> tuple[RoomSummary, ...]:
    """``summarise_room`` of each of ``room_ids``, ``_PARALLEL`` at a time, in their
    order: one result a room, whatever the others' (a room its storage does not answer
    for is ``passing``, and the rooms that answered keep their names)."""
    gate = asyncio.Semaphore(_PARALLEL)
    budget = WaitBudget()  # for metadata still being written: a few seconds in all

    async def one(room_id: str) -> RoomSummary:
        async with gate:
            return await summarise_room(
                storage, room_id, now_ms, activity=activity, budget=budget, within=within
            )

    return tuple(await asyncio.gather(*(one(r) for r in room_ids)))
