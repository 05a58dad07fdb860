"""Identifiers: room ids, client ids, event ids and segment object names."""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

ROOM_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Readers are lenient about the client part: the reference implementation keeps any
# alphanumeric character (str.isalnum), which includes non-ASCII letters.
# [0-9], not \d: \d also matches non-ASCII digits, which int() would then accept.
# The client part is lenient (PROTOCOL.md section 2.2), but a name is text: a lone
# surrogate is what a file name that is not UTF-8 decodes to (Linux takes any bytes). The
# folder watch named such a file, and the index cannot store its name: saving the room's
# audit failed for it and for every later segment of the room.
_SEGMENT_NAME_RE = re.compile(
    r"messages_([0-9]{1,16})_([0-9]{1,16})_([^/\\\x00\ud800-\udfff]{1,128})\.jsonl"
)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class InvalidRoomIdError(ValueError):
    """A room id that must not be used to build a path."""


def check_room_id(room_id: str) -> str:
    """Return ``room_id`` if it is a valid room id, else raise with the reason.

    Checked before any storage path is built, so ``../x``, ``a/b``, empty ids and NULs
    never reach a file system or a bucket.
    """
    if not isinstance(room_id, str) or not room_id:
        raise InvalidRoomIdError("a room id must not be empty")
    if len(room_id) > 128:
        raise InvalidRoomIdError(
            f"a room id has at most 128 characters (this one has {len(room_id)})"
        )
    if room_id.startswith("."):
        raise InvalidRoomIdError(f"room id {room_id!r} must not start with '.'")
    if not ROOM_ID_RE.fullmatch(room_id):
        bad = sorted({c for c in room_id if not re.fullmatch(r"[A-Za-z0-9._-]", c)})
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidRoomIdError(
            f"room id {room_id!r} may only use letters, digits, '.', '_' and '-' (found {shown})"
        )
    return room_id


_WINDOWS_DEVICE_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{port}{n}" for port in ("com", "lpt") for n in range(10)]
)


def new_room_id(name: str, suffix: str) -> str:
    """The id the app offers for a new room named ``name``: its name in lower case, runs
    of other characters as ``-``, at most 64 of them, then ``-`` and ``suffix`` ("" for
    a name with nothing usable). A room id is only a name within one storage, and
    events name their room by it (docs/SECURITY.md, "A room id is only a name within
    a storage"): the tail chosen by ``sync.rooms.room_id_suffix`` keeps two rooms named
    alike, here or in another storage, from sharing an id by accident (red team rt73)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip().lower()).strip("-.")[:64]
    if not slug:
        return ""
    return f"{slug}-{suffix}" if suffix else slug


def room_id_folded(room_id: str) -> str:
    """The form under which two room ids name the same folder on some file system: ASCII
    case folded (Windows, macOS by default, ignore case) and trailing dots dropped
    (Windows drops them, and trailing spaces, from every name: ``team.`` and ``TEAM.``
    are the folder ``team`` there). Both ways round: ``team`` beside an existing
    ``team.`` shares its folder as much as ``team.`` beside ``team`` (red team rt93)."""
    return room_id.rstrip(". ").lower()


def check_new_room_id(room_id: str, existing: Iterable[str] = ()) -> str:
    """Return ``room_id`` if a room may be created under it, else raise with the reason.

    Beyond `check_room_id` (which readers use: rooms others made stay readable), a new
    room's id must be one folder on every file system a shared folder can live on:
    it does not end with ``.`` (Windows drops a trailing dot, so ``team.`` is ``team``),
    its part before the first ``.`` is no Windows device name (``con``, ``nul.x``,
    ``com1`` ...), and it differs from each ``existing`` room id by more than case and
    trailing dots (``room_id_folded``: ``Team`` and ``team`` are one folder on Windows
    and macOS, ``team`` and a room ``team.`` someone else made one folder on Windows).
    """
    check_room_id(room_id)
    if room_id.endswith("."):
        raise InvalidRoomIdError(
            f"room id {room_id!r} must not end with '.' (Windows drops a trailing dot, "
            "so it would share a folder with the id without it)"
        )
    stem = room_id.split(".", 1)[0].lower()
    if stem in _WINDOWS_DEVICE_NAMES:
        raise InvalidRoomIdError(
            f"room id {room_id!r} is a device name on Windows ({stem.upper()}); choose another"
        )
    folded = room_id_folded(room_id)
    for other in existing:
        if other == room_id or room_id_folded(other) != folded:
            continue
        if other.lower() == room_id.lower():
            raise InvalidRoomIdError(
                f"room id {room_id!r} differs from the existing room {other!r} only in case; "
                "on Windows and macOS both would be one folder"
            )
        raise InvalidRoomIdError(
            f"room id {room_id!r} would share a folder with the existing room {other!r} on "
            "Windows, which drops the dots at the end of a folder's name and ignores case; "
            "choose another id"
        )
    return room_id


def is_valid_room_id(room_id: str) -> bool:
    return isinstance(room_id, str) and ROOM_ID_RE.fullmatch(room_id) is not None


def key_tag(public_key: bytes) -> str:
    """First 8 hex digits of SHA-256 of a device's raw public key."""
    return hashlib.sha256(public_key).hexdigest()[:8]


def client_id_for(sender_id: str, public_key: bytes) -> str:
    """Our client id: sanitised user part of ``sender_id``, ``-``, the device key tag."""
    user = sender_id.split("@", 1)[0]
    clean = re.sub(r"[^A-Za-z0-9_-]", "", user)[:40] or "user"
    return f"{clean}-{key_tag(public_key)}"


def iso_utc_ms(timestamp_ms: int) -> str:
    """``2025-09-14T12:00:00.123Z`` for a Unix time in milliseconds.

    Every event id holds one, so it is on the signing hot path: the text up to the
    minute comes from a small cache (a writer's events mostly share their minute), the
    date part of a new minute from a small cache of days, the seconds and milliseconds
    from two tables (UTC days have exactly 86,400 seconds in Unix time, so this equals
    ``gmtime`` of the second).
    """
    minutes, millis = divmod(timestamp_ms, 60_000)
    head = _minute_heads.get(minutes)
    if head is None:
        head = _minute_head(minutes)
    second, millis = divmod(millis, 1000)
    return f"{head}{_SECONDS[second]}{_MILLIS[millis]}"


# "05." and "007Z": looked up, not formatted (two %0Nd formats cost twice the rest).
_SECONDS = [f"{s:02d}." for s in range(60)]
_MILLIS = [f"{m:03d}Z" for m in range(1000)]

_minute_heads: dict[int, str] = {}


def _minute_head(minutes: int) -> str:
    """``2025-09-14T12:00:`` of a Unix time in minutes, kept in ``_minute_heads`` (at
    most 256: a cleared cache only costs a recomputation, so threads may share it)."""
    days, minute_of_day = divmod(minutes, 1440)
    hour, minute = divmod(minute_of_day, 60)
    head = f"{_iso_day(days)}{hour:02d}:{minute:02d}:"
    if len(_minute_heads) >= 256:
        _minute_heads.clear()
    _minute_heads[minutes] = head
    return head


@lru_cache(maxsize=64)
def _iso_day(days: int) -> str:
    t = time.gmtime(days * 86_400)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"


def utc_date(timestamp_ms: int) -> str:
    t = time.gmtime(timestamp_ms // 1000)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"


def newest_days(names: Iterable[str], now_ms: int, count: int = 2) -> list[str]:
    """A room's day folder names (``logs/<date>/``) where late deliveries land, newest
    first: the newest ``count`` that can be a day that has begun somewhere (named as a
    date, not after tomorrow's UTC date: writers name days by their local dates, at most
    14 hours ahead of UTC), and yesterday's and today's UTC dates whenever the room has
    them, however many newer ones there are (three days at most with ``count`` 2).

    A folder of another name (``zzzz``) or one far ahead (``9999-12-31``) that a writer
    adds sorts after every real day, and taken for the newest it hid the real newest
    days from the listings that look at those only. And a member who put an object into
    each coming day's folder made tomorrow's a day every day: the newest two were
    tomorrow and today, and yesterday's folder, where a member west of UTC writes every
    evening (their local date), was never listed while the app ran (red team rt98)."""
    latest = utc_date(now_ms + 86_400_000)
    current = {utc_date(now_ms - 86_400_000), utc_date(now_ms)}
    days = {n for n in names if _DATE_RE.fullmatch(n) is not None and n <= latest}
    return [d for i, d in enumerate(sorted(days, reverse=True)) if i < count or d in current]


def days_left_behind(
    names: Iterable[str], since: str, until: str, newest: Iterable[str], count: int
) -> tuple[list[str], str | None]:
    """A room's day folder names (``logs/<date>/``) from date ``since`` up to ``until``
    (both included) that are not among ``newest`` (``newest_days``), oldest first, at
    most ``count``; and the first of those left for later (None: none left).

    A listing that looks at the newest days only never looks again at a day that was
    among them at the last listing and has since dropped out of them: a message written
    there in between (a member west of UTC writes into yesterday's UTC date every
    evening) was never delivered while the app ran (red team rt102). Oldest first and
    ``count`` at a time: a wall clock that jumped days ahead (a laptop asleep) must not
    make one listing look at hundreds of days."""
    skip = set(newest)
    days = sorted(
        n
        for n in set(names)
        if _DATE_RE.fullmatch(n) is not None and since <= n <= until and n not in skip
    )
    return days[:count], (days[count] if len(days) > count else None)


DAY_SPREAD_MS = 14 * 3_600_000
"""How far from its UTC date a day folder's segments may start (PROTOCOL.md: the
reference implementation names folders by the writer's local date; time zones run from
12 hours behind UTC to 14 ahead)."""
START_AHEAD_MS = 10 * 60_000
"""How far after now a held segment's start may lie and still say where its writer's
next segments will be (``listing_start``): a clock a little ahead."""
START_SPAN_MS = 3_600_000
"""How far before the newest of them a writer's newest held segment may start and still
be where a page of the day begins (``listing_start``): a page shows what was written in
that span, and one name a member dated long ago does not make it show a day's first
thousand."""


def listing_start(paths: Iterable[str], date: str, now_ms: int) -> str | None:
    """Where a page of day folder ``date`` (a listing in name order) should start to show
    what its writers wrote since the segments ``paths`` held there: just after the
    oldest of each writer's newest held segment (so a writer whose clock runs behind
    another's is not skipped), among writers whose newest starts within
    ``START_SPAN_MS`` of the newest of them. None: from the folder's first name.

    Only names that sort by their start time count: a start written with as many digits
    as ``now_ms`` and no leading zero, not after ``now_ms`` + ``START_AHEAD_MS``, within
    ``DAY_SPREAD_MS`` of the folder's UTC day. Names compare as text: a member's valid
    segment named ``messages_9_9_...`` (dated 9 ms after 1970) sorts after every
    ``messages_17...`` of today, and taken for the newest held (the greatest name) it
    made every such page start after it, so no honest segment written there that day
    was seen (red team rt98)."""
    day = _day_start_ms(date)
    if day is None:
        return None
    digits = len(str(now_ms))
    low, high = day - DAY_SPREAD_MS, min(day + 86_400_000 + DAY_SPREAD_MS, now_ms + START_AHEAD_MS)
    newest: dict[str, tuple[int, str]] = {}  # writer -> (start, path) of its newest held
    for path in paths:
        m = _SEGMENT_NAME_RE.fullmatch(path.rpartition("/")[2])
        if m is None:
            continue
        start_text = m.group(1)
        if len(start_text) != digits or start_text[0] == "0":
            continue
        start = int(start_text)
        if not low <= start <= high:
            continue
        held = newest.get(m.group(3))
        if held is None or (start, path) > held:
            newest[m.group(3)] = (start, path)
    if not newest:
        return None
    latest = max(start for start, _ in newest.values())
    return min(held for held in newest.values() if held[0] >= latest - START_SPAN_MS)[1]


@lru_cache(maxsize=16)
def _day_start_ms(date: str) -> int | None:
    """Unix time in ms of ``date``'s (``YYYY-MM-DD``) UTC midnight; None if no such day.
    Counted from the date's parts (days of the proleptic Gregorian calendar since
    1970-01-01, in 400-year eras), checked by converting back with ``gmtime``: protocol/
    reads no clock and imports no ``datetime``."""
    if _DATE_RE.fullmatch(date) is None:
        return None
    year, month, day = int(date[:4]), int(date[5:7]), int(date[8:10])
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= 31:
        return None
    shifted = year - (month <= 2)  # a year from March: the leap day last
    era, of_era = divmod(shifted, 400)
    of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    days = era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719_468
    try:
        back = time.gmtime(days * 86_400)
    except (OverflowError, OSError, ValueError):
        return None
    if (back.tm_year, back.tm_mon, back.tm_mday) != (year, month, day):
        return None  # 2026-02-30 and the like
    return days * 86_400_000


def make_event_id(room_id: str, timestamp_ms: int, uuid4_text: str) -> str:
    return f"{room_id}::{iso_utc_ms(timestamp_ms)}::{uuid4_text}"


def room_prefix(room_id: str) -> str:
    return f"rooms/{check_room_id(room_id)}/"


def room_option(room_id: str) -> str:
    """The command line's ``--room-id`` option naming ``room_id``, as a suggested command
    prints it: a room id may begin with ``-`` (``-dash``), which read as the option's
    value only when joined to it with ``=``."""
    return f"--room-id={room_id}" if room_id.startswith("-") else f"--room-id {room_id}"


def logs_prefix(room_id: str) -> str:
    return f"rooms/{check_room_id(room_id)}/logs/"


def metadata_path(room_id: str) -> str:
    return f"rooms/{check_room_id(room_id)}/metadata.json"


@dataclass(frozen=True, slots=True)
class SegmentName:
    """A parsed segment object name; ``path`` is relative to the storage root."""

    path: str
    room_id: str
    date: str
    start_ts: int
    end_ts: int
    client_id: str

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def segment_path(room_id: str, start_ts: int, end_ts: int, client_id: str) -> str:
    """Where a segment is written: the UTC date folder of its first event."""
    if not CLIENT_ID_RE.fullmatch(client_id):
        raise ValueError(f"client id {client_id!r} must match [A-Za-z0-9_-]{{1,64}}")
    if start_ts > end_ts:
        raise ValueError("a segment's start_ts must not be after its end_ts")
    return (
        f"{logs_prefix(room_id)}{utc_date(start_ts)}/messages_{start_ts}_{end_ts}_{client_id}.jsonl"
    )


def parse_segment_path(path: str) -> SegmentName | None:
    """Parse ``rooms/<room>/logs/<date>/messages_<s>_<e>_<client>.jsonl``; None otherwise.

    Every date folder name is accepted (the reference implementation writes local dates);
    the date folder must still look like a date.
    """
    parts = path.split("/")
    if len(parts) != 5 or parts[0] != "rooms" or parts[2] != "logs":
        return None
    _, room_id, _, date, name = parts
    if not is_valid_room_id(room_id) or not _DATE_RE.fullmatch(date):
        return None
    m = _SEGMENT_NAME_RE.fullmatch(name)
    if m is None:
        return None
    return SegmentName(path, room_id, date, int(m.group(1)), int(m.group(2)), m.group(3))


def place_order(path: str, line: int) -> tuple[str, str, int]:
    """The key of an object ``path``'s line ``line`` in (object path, line) order,
    PROTOCOL.md section 2.3: the path NFC-normalised, then the path as listed, by code
    point, then the line.

    Segment names are not stable across systems: macOS HFS+ lists every name decomposed
    (NFD: ``e`` and a combining accent), where Linux and buckets keep what was written
    (NFC: ``é``, which sorts after ``f``; ``e`` sorts before it). Compared as listed, the
    order decided which of a member's two signed copies of one event id a Linux and a
    Mac reader showed, so they showed different text for one message (red team rt93).
    An ASCII path is its own NFC form (a flag, not a pass over it)."""
    return (path if path.isascii() else unicodedata.normalize("NFC", path)), path, line


def is_segment_name(name: str) -> bool:
    """Whether ``name`` (the last part of a path) has the form of a segment's name: one
    regular expression, no parse (a count over a day folder of many names)."""
    return _SEGMENT_NAME_RE.fullmatch(name) is not None


def is_day_folder(name: str) -> bool:
    """Whether a folder right in a room's ``logs/`` may hold segments (looks like a date)."""
    return _DATE_RE.fullmatch(name) is not None


def is_segment_of(room_id: str, path: str) -> bool:
    """Whether ``path`` is a segment's name in ``room_id``'s folder (anything else there
    is litter: a notice, never history)."""
    name = parse_segment_path(path)
    return name is not None and name.room_id == room_id
