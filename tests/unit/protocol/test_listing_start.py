"""Where a page of a day folder starts (``ids.listing_start``): just after the oldest of
each writer's newest held segment, by the start times the names carry, not after the
greatest name (red team rt98: a member's valid ``messages_9_9_...``, dated 9 ms after
1970, sorts after every honest ``messages_17...`` of today, and every page of the day
started after it, so no honest segment written there was seen)."""

from __future__ import annotations

from bucket_chat_desktop.protocol.ids import (
    DAY_SPREAD_MS,
    START_AHEAD_MS,
    START_SPAN_MS,
    listing_start,
    utc_date,
)

NOW = 1_796_700_000_000  # 2026-12-08T03:20:00Z
DAY = utc_date(NOW)
FOLDER = f"rooms/r/logs/{DAY}/"


def _seg(start: int | str, client: str) -> str:
    return f"{FOLDER}messages_{start}_{start}_{client}.jsonl"


def test_the_newest_held_by_start_time_not_the_greatest_name() -> None:
    bob = [_seg(NOW - 60_000, "bob"), _seg(NOW - 1_000, "bob")]
    hostile = _seg(9, "mallory")
    assert max([*bob, hostile]) == hostile  # the old start: after every honest name
    assert listing_start([*bob, hostile], DAY, NOW) == bob[1]


def test_names_that_do_not_sort_by_their_start_time_are_not_where_a_page_starts() -> None:
    bob = _seg(NOW - 1_000, "bob")
    others = [
        _seg(9, "a"),  # fewer digits
        _seg(f"0{NOW - 500}", "b"),  # a leading zero: as many digits, sorts before
        _seg(NOW * 10, "c"),  # more digits
        _seg(NOW + START_AHEAD_MS + 1, "d"),  # ahead of now
        _seg(NOW - 2 * DAY_SPREAD_MS - 86_400_000, "e"),  # not of this folder's day
    ]
    assert listing_start([bob, *others], DAY, NOW) == bob
    assert listing_start(others, DAY, NOW) is None  # from the folder's first name
    assert listing_start([], DAY, NOW) is None
    assert listing_start([bob], "2026-13-45", NOW) is None  # no such day: its first name
    assert listing_start([bob, "rooms/r/logs/x/zz-junk"], DAY, NOW) == bob


def test_a_writer_whose_clock_runs_behind_is_not_skipped() -> None:
    """Alice's clock is 5 minutes behind Bob's: her next segment sorts before his newest,
    so the page starts after her newest, the older of the two."""
    alice = [_seg(NOW - 400_000, "alice"), _seg(NOW - 300_000, "alice")]
    bob = [_seg(NOW - 100_000, "bob"), _seg(NOW - 2_000, "bob")]
    assert listing_start([*alice, *bob], DAY, NOW) == alice[1]


def test_one_name_dated_long_ago_does_not_make_a_page_start_at_the_day_s_beginning() -> None:
    """A writer whose newest held starts more than ``START_SPAN_MS`` before the newest of
    them (a member who named a segment at the day's start, or one long quiet) is not
    where a page starts: its page showed the day's first thousand names."""
    early = _seg(NOW - START_SPAN_MS - 10_000, "early")
    bob = _seg(NOW - 2_000, "bob")
    carol = _seg(NOW - START_SPAN_MS + 1_000, "carol")
    assert listing_start([early, bob], DAY, NOW) == bob
    assert listing_start([early, bob, carol], DAY, NOW) == carol


def test_a_folder_named_by_a_local_date_holds_starts_of_the_utc_day_around_it() -> None:
    """The reference client names folders by its writer's local date: at 03:20 UTC a
    writer in California (UTC-8) writes into yesterday's folder, starting today by UTC;
    a folder of a day far from the start is not where it begins."""
    yesterday = utc_date(NOW - 86_400_000)
    west = f"rooms/r/logs/{yesterday}/messages_{NOW - 1_000}_{NOW - 1_000}_carol.jsonl"
    assert listing_start([west], yesterday, NOW) == west
    assert listing_start([west], utc_date(NOW - 2 * 86_400_000), NOW) is None


def test_a_day_s_start_is_counted_as_the_calendar_counts_it() -> None:
    """``_day_start_ms`` counts days from a date's parts (protocol/ imports no
    ``datetime``): equal to the calendar's count on every 13th day of years 1 to 9999,
    and no day for dates that do not exist."""
    import datetime

    from bucket_chat_desktop.protocol.ids import _day_start_ms

    epoch = datetime.date(1970, 1, 1).toordinal()
    first, last = datetime.date(1, 1, 1).toordinal(), datetime.date(9999, 12, 31).toordinal()
    for ordinal in range(first, last + 1, 13):
        text = datetime.date.fromordinal(ordinal).isoformat()
        assert _day_start_ms(text) == (ordinal - epoch) * 86_400_000, text
    for text in (
        "2026-02-29",
        "2100-02-29",
        "2026-04-31",
        "2026-13-01",
        "2026-00-10",
        "0000-01-01",
    ):
        assert _day_start_ms(text) is None, text
    assert (
        _day_start_ms("2000-02-29") == (datetime.date(2000, 2, 29).toordinal() - epoch) * 86_400_000
    )
