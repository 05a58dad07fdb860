"""Activity markers (optional extension): one cheap listing tells which rooms changed.

For every segment it publishes, a writer also creates an empty object

    activity/<UTC date of publication>/<publication ms, 13 digits>~<room_id>~<date>~<file>

naming the segment ``rooms/<room_id>/logs/<date>/<file>``. A reader polls one folder per
storage (today's, listing only names after the last one it saw) instead of one folder per
room, so an idle client's requests do not grow with the number of rooms. Markers are hints:
a reader never trusts them for anything but "look at this segment", and older clients that
neither write nor read them lose nothing but speed.
"""

from __future__ import annotations

from .ids import parse_segment_path, utc_date

ACTIVITY_PREFIX = "activity/"


def activity_folder(date: str) -> str:
    return f"{ACTIVITY_PREFIX}{date}/"


def marker_path(published_ms: int, segment_path: str) -> str:
    name = parse_segment_path(segment_path)
    if name is None:
        raise ValueError(f"not a segment path: {segment_path!r}")
    return (
        f"{activity_folder(utc_date(published_ms))}"
        f"{published_ms:013d}~{name.room_id}~{name.date}~{name.file_name}"
    )


MARKER_TS_DIGITS = 13
"""Publication times are written with at least 13 digits (13 for years 2001 to 2286)."""
MARKER_TS_MAX_DIGITS = 16


def parse_marker(path: str) -> tuple[int, str, str] | None:
    """``(published_ms, room_id, segment_path)`` from a marker path, or None.

    Anything else in an activity folder is junk and must never move a reader's cursor:
    the time must be 13 to 16 ASCII digits and fall on the day of the folder holding
    the marker (a marker dated years ahead would otherwise sort after every real one).
    """
    if not path.startswith(ACTIVITY_PREFIX):
        return None
    rest = path[len(ACTIVITY_PREFIX) :].split("/")
    if len(rest) != 2:
        return None
    parts = rest[1].split("~")
    if len(parts) != 4 or not MARKER_TS_DIGITS <= len(parts[0]) <= MARKER_TS_MAX_DIGITS:
        return None
    if not (parts[0].isascii() and parts[0].isdigit()):
        return None
    try:
        on_day = utc_date(int(parts[0])) == rest[0]
    except (OverflowError, ValueError, OSError):  # beyond what the platform's gmtime takes
        return None
    if not on_day:
        return None
    ts, room_id, date, file_name = parts
    segment = f"rooms/{room_id}/logs/{date}/{file_name}"
    name = parse_segment_path(segment)
    if name is None:
        return None
    return int(ts), name.room_id, segment
