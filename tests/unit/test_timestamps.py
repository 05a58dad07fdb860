"""``bucket_chat_desktop.timestamps``: every time a sender may choose becomes text."""

from __future__ import annotations

import datetime as dt

import pytest

from bucket_chat_desktop import timestamps as ts
from bucket_chat_desktop.protocol.event import MAX_TIMESTAMP_MS

TODAY = dt.date(2026, 12, 3)
# The last millisecond datetime can represent in any time zone, and the first it cannot.
LAST_OK = int(dt.datetime(9999, 12, 30, tzinfo=dt.UTC).timestamp() * 1000)
FIRST_BAD = int(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp() * 1000) + 1000

EDGES = [
    0,
    1,
    999,
    1_796_300_000_000,
    LAST_OK,
    FIRST_BAD - 1,
    FIRST_BAD,
    FIRST_BAD + 86_400_000,
    2**31,
    2**32 * 1000,
    10**15,
    MAX_TIMESTAMP_MS - 1,
    MAX_TIMESTAMP_MS,
    MAX_TIMESTAMP_MS + 1,
    2**63,
    2**64 + 5,
    -1,
    -(2**53),
]
FORMATTERS = [ts.full, ts.clock, ts.day_label, ts.room_list_when, ts.members_when]


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize("formatter", FORMATTERS, ids=lambda f: f.__name__)
def test_no_timestamp_makes_a_formatter_raise(formatter: object, value: int) -> None:
    text = formatter(value)  # type: ignore[operator]
    assert isinstance(text, str)


@pytest.mark.parametrize("formatter", FORMATTERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", [None, "1796300000000", 1.5e12, float("nan"), True, [1]])
def test_values_that_are_not_integers_say_so(formatter: object, value: object) -> None:
    assert isinstance(formatter(value), str)  # type: ignore[operator]
    assert ts.local(value) is None


def test_every_millisecond_step_from_zero_to_the_protocol_limit() -> None:
    # a coarse sweep over the whole range, then every day around the year 9999 edge
    for value in range(0, MAX_TIMESTAMP_MS + 1, MAX_TIMESTAMP_MS // 997):
        assert ts.full(value)
        assert ts.day_label(value, TODAY)
    for value in range(LAST_OK - 5 * 86_400_000, FIRST_BAD + 5 * 86_400_000, 3_600_000):
        assert ts.full(value) and ts.clock(value) and ts.members_when(value, TODAY)


def test_representable_times_show_the_real_date() -> None:
    moment = dt.datetime(2026, 11, 30, 14, 5, 7).astimezone()
    value = int(moment.timestamp() * 1000)
    assert ts.full(value) == "2026-11-30 14:05:07"
    assert ts.clock(value) == "14:05"
    assert ts.day_label(value, TODAY) == "Monday, 30 November 2026"
    assert ts.day_label(value, dt.date(2026, 11, 30)) == "Today"
    assert ts.day_label(value, dt.date(2026, 12, 1)) == "Yesterday"
    assert ts.room_list_when(value, dt.date(2026, 11, 30)) == "14:05"
    assert ts.room_list_when(value, TODAY) == "Mon"
    assert ts.room_list_when(value, dt.date(2027, 3, 1)) == "30 Nov"
    assert ts.members_when(value, dt.date(2026, 11, 30)) == "today 14:05"
    assert ts.members_when(value, dt.date(2026, 12, 1)) == "yesterday 14:05"
    assert ts.members_when(value, TODAY) == "30 Nov 14:05"
    assert ts.members_when(value, dt.date(2027, 1, 2)) == "30 Nov 2026"
    assert ts.local_day(value) == dt.date(2026, 11, 30)
    assert ts.full(LAST_OK).startswith("9999-12-")


def test_times_without_a_date_get_a_clear_label() -> None:
    for value in (FIRST_BAD + 86_400_000, MAX_TIMESTAMP_MS):
        assert ts.full(value) == "after the year 9999"
        assert ts.clock(value) == "after the year 9999"
        assert ts.day_label(value, TODAY) == "After the year 9999"
        assert ts.members_when(value, TODAY) == "after the year 9999"
        assert ts.room_list_when(value, TODAY) == "> 9999"
        assert ts.local_day(value) is None
    assert ts.full(-1) == "before 1970"
    assert ts.members_when(0) == "never" and ts.room_list_when(0) == ""
    assert ts.full(0) != ""  # the epoch itself is a real date


def test_times_with_their_zone_for_an_export() -> None:
    assert ts.with_zone(2**53 - 1) == ts.FAR_FUTURE
    assert ts.iso(2**53 - 1) is None and ts.iso(-5) is None
    text = ts.with_zone(1_790_000_000_000)
    assert text.startswith("2026-09-2") and text[-5] in "+-" and text[-4:].isdigit()
    iso = ts.iso(1_790_000_000_000)
    assert iso is not None and iso[:10] == text[:10] and iso[-6] in "+-"


def test_a_late_arrival_says_the_rows_words_and_an_export_adds_the_zone() -> None:
    """What the app's row says of a message that arrived long after its date, and what an
    export made in the app writes of it (red team rt83): the same words, the export's
    times with their UTC offset (read later, maybe elsewhere)."""
    dated, arrived = 1_790_000_000_000, 1_790_000_000_000 + 28 * 86_400_000
    assert ts.late_arrival(dated, dated + ts.LATE_NOTE_MS) is None  # in time
    late = ts.late_arrival(dated, arrived)
    assert late is not None and (late.dated_ms, late.arrived_ms) == (dated, arrived)
    assert late.note == ts.late_note(dated, arrived)
    assert late.note == (
        f"Arrived {ts.full(arrived)[:16]}, dated {ts.full(dated)[:16]}: "
        "sent or delivered long after its date"
    )
    assert late.note_with_zone() == (
        f"Arrived {ts.with_zone(arrived)}, dated {ts.with_zone(dated)}: "
        "sent or delivered long after its date"
    )
    assert ts.late_arrival(2**53 - 1, arrived) is None  # dated after it came: not late
    zero = ts.late_arrival(0, arrived)  # the epoch: a date like any other
    assert zero is not None and f"dated {ts.with_zone(0)}: " in zero.note_with_zone()


def test_late_among_notes_only_what_is_dated_before_what_was_read() -> None:
    """The rule of ``bucket-chat sync --follow`` and of the app's notes on edits and
    deletions (red team rt97): late only when dated more than ``LATE_NOTE_MS`` before
    what this device had read (``seen_ms``) and read long after its date. A row dated
    after what was read, read 40 minutes late (a sleep, an outage), is not late."""
    seen = 1_765_000_000_000
    woke = seen + 60 * 60_000
    assert ts.late_among(seen + 1_000, woke, seen) is None  # written during the sleep
    assert ts.late_among(seen - ts.LATE_NOTE_MS, woke, seen) is None  # at the threshold
    dated = seen - ts.LATE_NOTE_MS - 1
    assert ts.late_among(dated, woke, seen) == ts.late_arrival(dated, woke)
    assert ts.late_among(dated, dated + ts.LATE_NOTE_MS, seen) is None  # read in time
    assert ts.late_among(0, woke, None) is None  # nothing read before: nothing to be among


def test_a_late_edit_or_deletion_is_said_as_a_message_is_naming_the_change() -> None:
    """What a message's row says of its latest edit or its deletion that arrived long
    after its date, and Previous versions and a search hit of an edit: the words and
    times of a message's note, the change named first."""
    dated, arrived = 1_790_000_000_000, 1_790_000_000_000 + 28 * 86_400_000
    late = ts.late_arrival(dated, arrived)
    assert late is not None
    when = f"{ts.full(arrived)[:16]}, dated {ts.full(dated)[:16]}"
    tail = ": sent or delivered long after its date"
    assert late.change_note(ts.LATEST_EDIT) == f"The latest edit arrived {when}{tail}"
    assert late.change_note(ts.DELETION) == f"The deletion arrived {when}{tail}"
    assert late.change_note(ts.THIS_EDIT) == f"This edit arrived {when}{tail}"
    assert late.note_with_zone(ts.DELETION) == (
        f"The deletion arrived {ts.with_zone(arrived)}, dated {ts.with_zone(dated)}{tail}"
    )
    assert late.note_with_zone() == late.note_with_zone("")  # a message's, as before
    assert ts.change_copy("e", "p.jsonl", 3) == ts.late_copy("e", "p.jsonl", 3)
    assert ts.change_copy("e", None, 3) is None and ts.change_copy("e", "p.jsonl", None) is None
