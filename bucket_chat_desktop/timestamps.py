"""Event times for people: one place that turns a timestamp into text and never raises.

An event's ``timestamp_ms`` is chosen by its sender. The protocol accepts any integer from
0 to 2^53-1 ms, which reaches the year 287396; Python's ``datetime`` stops at 9999 and
raises ``ValueError``/``OverflowError``/``OSError`` beyond (or before 1970 on some
platforms). Every screen and command that shows an event time goes through here, so a
hostile timestamp becomes a clear label ("after the year 9999") instead of an exception in
a paint path or a command's output loop.

Pure standard library (no Qt, no I/O besides the local time zone), so ``gui/`` and ``cli/``
can both use it. ``today`` is passed in where a label depends on it, for tests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = [
    "DELETION",
    "FAR_FUTURE",
    "LATEST_EDIT",
    "THIS_EDIT",
    "TOO_EARLY",
    "LateArrival",
    "clock",
    "day_label",
    "full",
    "iso",
    "late_arrival",
    "late_note",
    "local",
    "local_day",
    "members_when",
    "room_list_when",
    "with_zone",
]

FAR_FUTURE = "after the year 9999"
TOO_EARLY = "before 1970"
NOT_A_TIME = "no valid time"


def local(timestamp_ms: object) -> dt.datetime | None:
    """The local date and time of ``timestamp_ms``, or None when it has none (out of
    ``datetime``'s range, negative, not an integer)."""
    if type(timestamp_ms) is not int or timestamp_ms < 0:
        return None
    try:
        return dt.datetime.fromtimestamp(timestamp_ms / 1000).astimezone()
    except (ValueError, OverflowError, OSError):
        return None


def local_day(timestamp_ms: object) -> dt.date | None:
    """The local calendar day, or None for a time that has no date (all such times count
    as one "day", so a run of them gets a single day separator)."""
    moment = local(timestamp_ms)
    return moment.date() if moment is not None else None


def unrepresentable(timestamp_ms: object) -> str:
    """What to show for a time that has no date."""
    if type(timestamp_ms) is not int:
        return NOT_A_TIME
    return TOO_EARLY if timestamp_ms < 0 else FAR_FUTURE


def _strftime(moment: dt.datetime | dt.date, pattern: str, timestamp_ms: object) -> str:
    # strftime itself can fail at the edges of the range on some platforms.
    try:
        return moment.strftime(pattern)
    except (ValueError, OverflowError, OSError):
        return unrepresentable(timestamp_ms)


def full(timestamp_ms: object) -> str:
    """``2026-12-03 22:31:07`` (the CLI's format and tooltips), or a label."""
    moment = local(timestamp_ms)
    if moment is None:
        return unrepresentable(timestamp_ms)
    return _strftime(moment, "%Y-%m-%d %H:%M:%S", timestamp_ms)


def with_zone(timestamp_ms: object) -> str:
    """``2026-12-03 22:31:07 +0100`` (an export: read later, maybe elsewhere), or a label."""
    moment = local(timestamp_ms)
    if moment is None:
        return unrepresentable(timestamp_ms)
    return _strftime(moment, "%Y-%m-%d %H:%M:%S %z", timestamp_ms)


def iso(timestamp_ms: object) -> str | None:
    """``2026-12-03T22:31:07+01:00`` (machine-readable, local zone), or None."""
    moment = local(timestamp_ms)
    if moment is None:
        return None
    try:
        return moment.isoformat(timespec="seconds")
    except (ValueError, OverflowError):
        return None


def clock(timestamp_ms: object) -> str:
    """``14:05`` next to a message, or a label."""
    moment = local(timestamp_ms)
    if moment is None:
        return unrepresentable(timestamp_ms)
    return _strftime(moment, "%H:%M", timestamp_ms)


def day_label(timestamp_ms: object, today: dt.date | None = None) -> str:
    """A day separator: "Today", "Yesterday", "Monday, 30 November 2026", or a label."""
    day = local_day(timestamp_ms)
    if day is None:
        return unrepresentable(timestamp_ms).capitalize()
    today = today or dt.date.today()
    if day == today:
        return "Today"
    if day == today - dt.timedelta(days=1):
        return "Yesterday"
    return _strftime(day, "%A, %d %B %Y", timestamp_ms)


def room_list_when(timestamp_ms: object, today: dt.date | None = None) -> str:
    """The room list's short time: "14:05" today, "Mon" this past week, else "30 Nov"
    ("" when there is no message yet; "> 9999" when the time has no date)."""
    if timestamp_ms == 0:
        return ""
    moment = local(timestamp_ms)
    if moment is None:
        return "> 9999" if type(timestamp_ms) is int and timestamp_ms > 0 else "?"
    today = today or dt.date.today()
    if moment.date() == today:
        return _strftime(moment, "%H:%M", timestamp_ms)
    if 0 < (today - moment.date()).days < 7:
        return _strftime(moment, "%a", timestamp_ms)
    return _strftime(moment, "%d %b", timestamp_ms)


def members_when(timestamp_ms: object, today: dt.date | None = None) -> str:
    """When a member or device was last seen: "today 14:05", "yesterday 09:12",
    "30 Nov 14:05", "30 Nov 2025" ("never" for 0)."""
    if timestamp_ms == 0:
        return "never"
    moment = local(timestamp_ms)
    if moment is None:
        return unrepresentable(timestamp_ms)
    today = today or dt.date.today()
    if moment.date() == today:
        return "today " + _strftime(moment, "%H:%M", timestamp_ms)
    if moment.date() == today - dt.timedelta(days=1):
        return "yesterday " + _strftime(moment, "%H:%M", timestamp_ms)
    if moment.year == today.year:
        return _strftime(moment, "%d %b %H:%M", timestamp_ms)
    return _strftime(moment, "%d %b %Y", timestamp_ms)


# A message read this long after its own date, as new words (not history read late), says
# so on its row: placed among older ones, it would otherwise pass for a message seen then.
LATE_NOTE_MS = 15 * 60_000


@dataclass(frozen=True, slots=True)
class LateArrival:
    """A message first read, as new words, at ``arrived_ms`` (this device's clock), more
    than ``LATE_NOTE_MS`` after the ``dated_ms`` it bears (``late_arrival``). ``note``:
    what the app's row says of it. An edit or a deletion of a message read so is one too
    (``change_note``: what the message's row says of it)."""

    dated_ms: int
    arrived_ms: int
    note: str

    def note_with_zone(self, change: str = "") -> str:
        """The row's sentence with both times as an export writes times (with their UTC
        offset: read later, maybe elsewhere): "Arrived 2026-12-03 14:05:10 +0100, dated
        2026-11-08 10:01:00 +0100: sent or delivered long after its date". ``change``:
        said of an edit or a deletion (``change_note``)."""
        return _late_sentence(with_zone(self.arrived_ms), with_zone(self.dated_ms), change)

    def change_note(self, change: str) -> str:
        """What a message's row says of an edit or a deletion of it (``change``: ``LATEST_EDIT``,
        ``THIS_EDIT``, ``DELETION``) that arrived late: "The latest edit arrived 2026-12-03
        14:05, dated 2026-11-08 10:01: sent or delivered long after its date". The row's
        own date is not the change's: without it, a change made today under a date
        weeks back passed for one seen then."""
        return _late_sentence(full(self.arrived_ms)[:16], full(self.dated_ms)[:16], change)


# What the sentence of a late edit or deletion names (``LateArrival.change_note``)
LATEST_EDIT = "the latest edit"
THIS_EDIT = "this edit"
DELETION = "the deletion"


# Which copy of a message a late arrival is of: its event id and where it was read,
# "<path>:<line>" (a row's location). An event id is not one message: a member can sign
# a copy under another's id (PROTOCOL.md 18.1: each copy is a row), and a note kept by
# the id alone was said of the other member's message read on time (red team rt89).
LateCopy = tuple[str, str]


def late_copy(event_id: str, path: str, line: int) -> LateCopy:
    """The key of the copy of ``event_id`` read at (``path``, ``line``)."""
    return event_id, f"{path}:{line}"


def change_copy(event_id: str, path: str | None, line: int | None) -> LateCopy | None:
    """``late_copy`` of an applied edit or deletion (``relations.Edit``/``Redacted``: where
    its copy was read), None when it was not said where."""
    return None if path is None or line is None else late_copy(event_id, path, line)


def _late_sentence(arrived: str, dated: str, change: str = "") -> str:
    said = f"{change[:1].upper()}{change[1:]} arrived" if change else "Arrived"
    return f"{said} {arrived}, dated {dated}: sent or delivered long after its date"


def late_arrival(dated_ms: int, arrived_ms: int) -> LateArrival | None:
    """The late arrival of a message dated ``dated_ms`` that arrived (was first read, as
    new words) at ``arrived_ms``; None when it came in time (within ``LATE_NOTE_MS``)."""
    if arrived_ms - dated_ms <= LATE_NOTE_MS:
        return None
    note = _late_sentence(full(arrived_ms)[:16], full(dated_ms)[:16])
    return LateArrival(dated_ms, arrived_ms, note)


def late_among(dated_ms: int, arrived_ms: int, seen_ms: int | None) -> LateArrival | None:
    """The late arrival of a row (a message, an edit, a deletion) dated ``dated_ms`` that
    arrived at ``arrived_ms``, when it is also dated more than ``LATE_NOTE_MS`` before
    ``seen_ms``: the newest place this device had read in the room before it (None:
    nothing read before). A row dated after what was read is none, however long after
    its date it arrived: after a laptop's sleep or an outage, everything written meanwhile
    arrives late, and an edit made on time was said "long after its date" while the
    message written with it was not (red team rt97). The one rule of
    ``bucket-chat sync --follow`` and of the app's notes on edits and deletions."""
    if seen_ms is None or dated_ms + LATE_NOTE_MS >= seen_ms:
        return None
    return late_arrival(dated_ms, arrived_ms)


def late_note(dated_ms: int, arrived_ms: int) -> str | None:
    """What a message's row says when it arrived (was first read, as new words) at
    ``arrived_ms``, more than ``LATE_NOTE_MS`` after the date it bears: "Arrived
    2026-12-03 14:05, dated 2026-11-08 10:01: sent or delivered long after its date".
    None when it came in time. Terminal-safe (digits and plain words only)."""
    late = late_arrival(dated_ms, arrived_ms)
    return late.note if late is not None else None
