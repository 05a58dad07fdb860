"""``ids.days_left_behind``: the days a room's last listing looked at as its newest that
the newest days of this one no longer include (red team rt102)."""

from __future__ import annotations

from bucket_chat_desktop.protocol.ids import days_left_behind


def test_the_days_from_since_up_to_until_but_the_newest_oldest_first() -> None:
    names = ["2026-03-01", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06", "2026-03-07"]
    newest = ["2026-03-07", "2026-03-06"]
    assert days_left_behind(names, "2026-03-03", "2026-03-08", newest, 4) == (
        ["2026-03-03", "2026-03-04", "2026-03-05"],
        None,
    )


def test_at_most_count_a_call_and_where_the_next_begins() -> None:
    names = [f"2026-03-{d:02d}" for d in range(1, 20)]
    assert days_left_behind(names, "2026-03-02", "2026-03-20", ["2026-03-19"], 4) == (
        ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"],
        "2026-03-06",
    )
    assert days_left_behind(names, "2026-03-16", "2026-03-20", ["2026-03-19"], 4) == (
        ["2026-03-16", "2026-03-17", "2026-03-18"],
        None,
    )


def test_names_not_dates_and_days_after_until_are_not_days_left_behind() -> None:
    """A member's folder named ``zzzz`` or ``2026-03-05x`` sorts among or after the real
    days; one far ahead (``9999-12-31``) is no day begun anywhere yet."""
    names = ["2026-03-04", "zzzz", "2026-03-05x", "2026-03-0", "9999-12-31", "2026-03-09"]
    assert days_left_behind(names, "2026-03-01", "2026-03-08", [], 4) == (["2026-03-04"], None)


def test_a_wall_clock_gone_back_leaves_nothing_behind() -> None:
    assert days_left_behind(["2026-03-04"], "2026-03-07", "2026-03-05", [], 4) == ([], None)
