"""The polling schedule as a pure function: focused, unfocused, after activity."""

from __future__ import annotations

import itertools

import pytest

from bucket_chat_desktop.settings import Settings
from bucket_chat_desktop.sync.engine import SyncConfig
from bucket_chat_desktop.sync.schedule import (
    COST_STRETCH_MAX,
    FEED_FRONT_PACE,
    FEED_NAMED_GRACES,
    FEED_REST_MAX_CYCLES,
    LISTING_PAGE,
    SAFETY_BURST,
    SAFETY_COST,
    SAFETY_PAGES_MAX,
    UNREAD_RETRY,
    SafetyPace,
    background_period,
    charged_wait,
    feed_rest,
    listing_pages,
    poll_delay,
    safety_period,
    safety_wait,
)

NORMAL = SyncConfig()  # active 1 s, focused 3 s, idle 45 s, active window 60 s


def delays(*, focused: bool, start: float, quiet: float, rounds: int) -> list[float]:
    """The delays the poller chooses in ``rounds`` quiet rounds after ``quiet`` seconds."""
    out, previous = [], start
    for _ in range(rounds):
        previous = poll_delay(NORMAL, quiet_for=quiet, window_focused=focused, previous=previous)
        out.append(previous)
        quiet += previous
    return out


def test_after_activity_both_poll_every_active_interval() -> None:
    for focused in (True, False):
        for quiet in (0.0, 30.0, 59.9):
            assert poll_delay(NORMAL, quiet_for=quiet, window_focused=focused, previous=45.0) == 1.0


def test_a_focused_window_never_waits_longer_than_the_focused_interval() -> None:
    got = delays(focused=True, start=1.0, quiet=60.0, rounds=2000)  # well over an hour quiet
    assert got[:2] == [2.0, 3.0]
    assert max(got) == 3.0 and set(got[2:]) == {3.0}


def test_an_unfocused_window_backs_off_to_the_idle_interval() -> None:
    got = delays(focused=False, start=1.0, quiet=60.0, rounds=12)
    assert got[:7] == [2.0, 4.0, 8.0, 16.0, 32.0, 45.0, 45.0]
    assert set(got[5:]) == {45.0}


def test_coming_to_the_front_cuts_a_long_wait_and_going_behind_backs_off_again() -> None:
    # after 45 s waits in the background the focused ceiling applies from the next round
    assert poll_delay(NORMAL, quiet_for=3600.0, window_focused=True, previous=45.0) == 3.0
    # behind other windows again: doubling from where it was
    assert poll_delay(NORMAL, quiet_for=3600.0, window_focused=False, previous=3.0) == 6.0


def test_odd_settings_never_give_a_zero_or_negative_delay() -> None:
    odd = SyncConfig(active_interval=2.0, focused_interval=0.0, idle_interval=1.0)
    assert poll_delay(odd, quiet_for=1e9, window_focused=True, previous=0.0) == 2.0
    assert poll_delay(odd, quiet_for=1e9, window_focused=False, previous=0.0) == 2.0


def test_full_room_listings_are_frequent_only_while_someone_looks() -> None:
    def period(**kw: bool) -> float:
        args = {"room_focused": True, "window_focused": True, "partial": False, "local": False}
        args.update(kw)
        return safety_period(NORMAL, **args)

    assert period() == NORMAL.focused_safety
    assert period(room_focused=False) == NORMAL.background_safety
    assert period(partial=True) == UNREAD_RETRY
    assert period(room_focused=False, partial=True) == UNREAD_RETRY
    # behind other windows every room, even a partly read one, waits the long period
    for room_focused in (True, False):
        for partial in (True, False):
            got = period(window_focused=False, room_focused=room_focused, partial=partial)
            assert got == NORMAL.background_safety
    # a folder costs nothing to list: focus does not matter there
    for window_focused in (True, False):
        assert period(local=True, window_focused=window_focused) == NORMAL.local_rescan
        assert period(local=True, partial=True, window_focused=window_focused) == min(
            NORMAL.local_rescan, UNREAD_RETRY
        )


def test_every_speed_orders_its_periods_and_normal_meets_the_targets() -> None:
    for speed in ("fast", "normal", "saver"):
        active, focused, idle = Settings(poll_speed=speed).poll_intervals()
        assert 0 < active < focused < idle
    active, focused, idle = Settings().poll_intervals()
    # focused: a message after a lull waits at most one period (p95 <= 5 s with margin
    # for the listing, download and check); unfocused: markers + every room's listing
    # (list the day folders + two days) every 4 hours, 50 rooms, under 150 an hour
    assert focused <= 4.0
    assert 3600 / idle + 50 * 3 * 3600 / NORMAL.background_safety <= 150


def test_a_change_feed_rests_only_behind_other_windows_and_when_quiet() -> None:
    """Between waits on an SQS queue: no rest in front or within a minute of activity;
    behind other windows and quiet, 15 s, so an idle storage stays within 150 requests
    an hour: 3,600 / (20 + 15) = 103 long polls, plus the bucket's marker listings
    (6 an hour) and 50 rooms' 4-hourly listings (25 an hour) = 134."""
    for quiet in (0.0, 59.9, 3600.0):
        assert feed_rest(NORMAL, quiet_for=quiet, window_focused=True) == 0.0
    assert feed_rest(NORMAL, quiet_for=59.9, window_focused=False) == 0.0
    assert feed_rest(NORMAL, quiet_for=60.0, window_focused=False) == NORMAL.feed_rest == 15.0
    per_hour = 3600 / (NORMAL.feed_wait + NORMAL.feed_rest)
    markers = 3600 / NORMAL.feed_check
    listings = 50 * 2 / (NORMAL.background_safety / 3600)
    assert per_hour + markers + listings <= 150


def test_a_change_feed_that_answers_early_with_nothing_new_is_paced_by_its_requests() -> None:
    """Queue junk (or a notification repeated) makes a long poll answer at once, and its
    deletion is one more request: unpaced, junk every 15 s cost about 480 requests an
    hour behind other windows, and a flood in front drove the queue in a tight loop."""
    cycle = NORMAL.feed_wait + NORMAL.feed_rest
    back = {"quiet_for": 3600.0, "window_focused": False}
    # Something new: never a rest, wherever the window is.
    assert feed_rest(NORMAL, **back, found=True, spent=2, elapsed=0.1) == 0.0
    assert feed_rest(NORMAL, quiet_for=0.0, window_focused=True, found=True, spent=9) == 0.0
    # An honest wait (its whole long poll, one request): as before.
    assert feed_rest(NORMAL, **back, spent=1, elapsed=NORMAL.feed_wait) == NORMAL.feed_rest
    assert feed_rest(NORMAL, quiet_for=0.0, window_focused=True, spent=1, elapsed=20.0) == 0.0
    # Behind other windows: junk at once (receive + delete) rests until two cycles passed.
    rest = feed_rest(NORMAL, **back, spent=2, elapsed=0.2)
    assert rest == 2 * cycle - 0.2
    for spent in range(1, 10):  # never more than an honest cycle's cost per request...
        for elapsed in (0.0, 0.5, 5.0, 19.9, 20.0, 40.0):
            rest = feed_rest(NORMAL, **back, spent=spent, elapsed=elapsed)
            assert rest >= NORMAL.feed_rest
            if spent <= FEED_REST_MAX_CYCLES:
                assert (elapsed + rest) / spent >= cycle - 1e-9
            assert rest <= FEED_REST_MAX_CYCLES * cycle  # ...and never an unbounded rest
    # In front, or within the active minute: paced to FEED_FRONT_PACE s a request.
    for quiet, focused in ((3600.0, True), (0.0, True), (0.0, False)):
        rest = feed_rest(NORMAL, quiet_for=quiet, window_focused=focused, spent=2, elapsed=0.1)
        assert rest == 2 * FEED_FRONT_PACE - 0.1
    junk_per_hour = 2 * 3600 / (2 * cycle)  # every rest preceded by a receive and a delete
    assert junk_per_hour == 3600 / cycle  # what an honest idle queue costs: about 103


def test_a_wait_that_named_an_attachment_is_not_followed_by_a_rest() -> None:
    """An attachment (or a room's metadata) is written just before the segment that needs
    it: its notification alone makes a long poll answer early with nothing to read. Taken
    for junk, the rest after it stretched to two whole cycles (70 s), and the message
    behind it waited that long behind other windows. Such a wait now rests not at all:
    the message comes next (the poller passes ``named`` only for the first such wait
    since something new was read or a long poll came back empty)."""
    back = {"quiet_for": 3600.0, "window_focused": False}
    assert feed_rest(NORMAL, **back, named=True, spent=2, elapsed=0.1) == 0.0
    assert feed_rest(NORMAL, **back, spent=2, elapsed=0.1) > NORMAL.feed_rest  # junk
    # The wait let go without a rest is paid for by the next rest: a made-up attachment
    # named after each empty long poll costs three requests per three honest cycles.
    cycle = NORMAL.feed_wait + NORMAL.feed_rest
    after = feed_rest(NORMAL, **back, spent=3, elapsed=NORMAL.feed_wait + 0.1)
    assert (NORMAL.feed_wait + 0.1 + after) / 3 == pytest.approx(cycle)
    # In front the pace is the same either way: a second at most.
    front = {"quiet_for": 0.0, "window_focused": True}
    assert feed_rest(NORMAL, **front, named=True, spent=2, elapsed=0.1) == pytest.approx(0.9)


def test_a_wait_let_go_without_a_rest_and_a_junk_wait_after_it_are_both_paid_for() -> None:
    """rt27: a forger names a made-up attachment (that wait goes without a rest), then
    another during the next long poll: the rest after the second counts both waits'
    requests, a receive and a delete each (four). Capped at three cycles, the fourth went
    unpaid."""
    back = {"quiet_for": 3600.0, "window_focused": False}
    cycle = NORMAL.feed_wait + NORMAL.feed_rest
    rest = feed_rest(NORMAL, **back, spent=4, elapsed=0.2)
    assert (0.2 + rest) / 4 >= cycle - 1e-9
    # The empty long poll after it (one request, its whole wait) rests as usual: together
    # five requests, no more than five honest cycles.
    empty = feed_rest(NORMAL, **back, spent=1, elapsed=NORMAL.feed_wait)
    assert (0.2 + rest + NORMAL.feed_wait + empty) / 5 >= cycle - 1e-9


def test_two_attachments_let_go_then_an_empty_poll_stay_within_the_budget() -> None:
    """Two waits in a row that named an attachment go without a rest
    (``FEED_NAMED_GRACES``: two files sent together); a forger who does that, then lets a
    long poll come back empty (which gives them back), again and again, makes five
    requests per rest of at most four cycles: within 150 an hour with the markers."""
    assert FEED_NAMED_GRACES == 2
    back = {"quiet_for": 3600.0, "window_focused": False}
    cycle = NORMAL.feed_wait + NORMAL.feed_rest
    elapsed = 0.4 + NORMAL.feed_wait  # two early answers, then a whole long poll
    rest = feed_rest(NORMAL, **back, spent=5, elapsed=elapsed)
    assert rest == FEED_REST_MAX_CYCLES * cycle - elapsed
    per_hour = 5 * 3600 / (elapsed + rest)
    assert per_hour < 130
    assert per_hour + 3600 / NORMAL.feed_check + 2 * 3600 / NORMAL.background_safety <= 150


def test_background_listings_stay_within_the_idle_budget_whatever_the_rooms() -> None:
    """Red team rt75: each room's background listing every 4 hours made 300 rooms cost
    about 230 requests an hour idle. Up to ``background_rooms`` rooms the period is
    ``background_safety``; past it the period grows with the rooms, so that the markers
    and the rooms' listings (3 requests each at most: the days, the newest two) stay
    within 150 an hour, and the pace starts no more than ``SAFETY_BURST`` at once."""
    idle = NORMAL.idle_interval
    for rooms in (1, 50, NORMAL.background_rooms, NORMAL.background_rooms + 1, 300, 10_000):
        period = background_period(NORMAL, rooms)
        if rooms <= NORMAL.background_rooms:
            assert period == NORMAL.background_safety
        assert 3600 / idle + rooms * 3 * 3600 / period <= 150
    assert background_period(NORMAL, 300) == 13 * 3600 + 20 * 60
    pace = SafetyPace()
    pace.refill(NORMAL, now=0.0, rooms=300)
    pace.refill(NORMAL, now=1e9, rooms=300)  # however long since the last round
    started = 0
    while pace.ready():
        pace.spend()
        started += 1
    assert started == SAFETY_BURST
    pace.refill(NORMAL, now=1e9 + 160.0, rooms=300)  # one every 160 s at 300 rooms
    assert pace.ready()
    pace.spend()
    pace.refill(NORMAL, now=1e9 + 300.0, rooms=300)
    assert not pace.ready()


def test_a_failed_room_listing_waits_its_period_then_longer_after_each_failure() -> None:
    """Red team rt77: a failed safety listing is an attempt. The room waits its period
    (one failure: a timeout comes at its period, as a success), then twice, four and eight
    times it; a short period (the room on screen, one read only partly) grows on to
    ``background_safety``. Never less than the period, never zero, never overflowing."""
    four_h = NORMAL.background_safety
    assert [safety_wait(four_h, n, four_h) / 3600 for n in range(6)] == [4, 4, 8, 16, 32, 32]
    minute = [safety_wait(UNREAD_RETRY, n, four_h) for n in range(1, 12)]
    assert minute[:4] == [60, 120, 240, 480] and minute[-1] == four_h
    assert all(a <= b for a, b in itertools.pairwise(minute))
    assert safety_wait(NORMAL.focused_safety, 10**9, four_h) == four_h
    assert safety_wait(0.0, 3, four_h) == 0.0  # no period, no wait (a folder's rescan off)
    assert safety_wait(four_h, -1, four_h) == four_h


def test_a_listing_costs_a_request_per_page_of_names() -> None:
    assert [listing_pages(n) for n in (0, 1, LISTING_PAGE, LISTING_PAGE + 1)] == [1, 1, 1, 2]
    assert listing_pages(190_000) == 190
    assert listing_pages(-5) == 1


def test_a_room_whose_listing_costs_more_waits_as_much_longer() -> None:
    """Red team rt94: a room's background listing is charged by its pages (``charged_wait``):
    what the budget counts (``SAFETY_COST``) or less changes nothing; *k* pages wait *k* / 3
    periods; never past ``COST_STRETCH_MAX`` periods, never shorter than the wait by
    failures. So a room costs the storage ``SAFETY_COST`` a period on average, whatever its
    folders hold, up to the bound one listing may take (``SAFETY_PAGES_MAX``)."""
    period = NORMAL.background_safety
    assert charged_wait(period, 1, period) == period
    assert charged_wait(period, SAFETY_COST, period) == period
    assert charged_wait(period, 30, period) == 10 * period
    assert charged_wait(period, 10_000, period) == COST_STRETCH_MAX * period
    long_wait = safety_wait(period, 9, period)  # failed in a row: 8 periods
    assert charged_wait(long_wait, 1, period) == long_wait
    assert charged_wait(long_wait, 30, period) == COST_STRETCH_MAX * period
    huge = COST_STRETCH_MAX * period * 2  # a wait already longer is not shortened
    assert charged_wait(huge, 30, period) == huge
    bound = SAFETY_PAGES_MAX + 7  # a bounded listing and its few one-page folders
    for pages in range(1, bound + 1):
        per_period = pages / (charged_wait(period, pages, period) / period)
        assert per_period <= SAFETY_COST + 1e-9, pages


def _pace_across_midnight(rooms: int, every: float) -> tuple[list[float], float]:
    """The storage's paced listings over three hours, rounds every ``every`` seconds,
    the rooms' listings spread (one due every ``background_period / rooms``), UTC
    midnight at 1:00 (yesterday's marker folder listed too until 1:10), the rounds
    from 0:50 to 1:10 charged as ``Poller.poll_once`` charges them. Returns when
    listings started, and the latest one came after the room was due."""
    pace, period = SafetyPace(), background_period(NORMAL, rooms)
    due = [i * period / rooms for i in range(rooms)]
    started: list[float] = []
    late, last, t = 0.0, None, 0.0
    while t < 3 * 3600:
        pace.refill(NORMAL, now=t, rooms=rooms)
        if 3000 <= t < 4200:  # ``Poller.poll_once``: by the time each round stands for
            seconds = NORMAL.idle_interval if last is None else t - last
            pace.charge(NORMAL, seconds=min(seconds, NORMAL.idle_interval), rooms=rooms)
            last = t
        for i in sorted(range(rooms), key=due.__getitem__):
            if due[i] > t or not pace.ready():
                break
            pace.spend()
            started.append(t)
            late = max(late, t - due[i])
            due[i] = t + period
        t += every
    return started, late


@pytest.mark.parametrize("rooms", [1, 50, 90, 300])
def test_the_hour_across_utc_midnight_is_paid_for_by_the_rooms_listings(rooms: int) -> None:
    """In the ten minutes after UTC midnight each round lists yesterday's marker folder
    too: behind other windows 13 or 14 requests more in that hour. The rooms' listings
    pay for them (``SafetyPace.charge``): with 90 rooms or more (whose listings take 3
    requests each) every hour stays within 150 (163 unpaid; 151 paid only after the
    fact, in an hour that ends in those ten minutes), and no room waits more than half
    an hour past its turn, whatever the number of rooms and however often the rounds
    come (every second after activity, every 3 s in front: the charge goes by the time,
    not by the requests)."""
    idle = NORMAL.idle_interval
    rounds = [n * idle for n in range(int(3 * 3600 / idle))]
    for every in (idle, NORMAL.focused_interval, NORMAL.active_interval):
        started, late = _pace_across_midnight(rooms, every)
        assert late <= 30 * 60, (every, late / 60)
        if every == idle:
            for at in rounds[: -int(3600 / idle) + 1]:  # every hour-long window of rounds
                markers = sum(1 + (3600 <= r < 4200) for r in rounds if at <= r < at + 3600)
                listings = sum(1 for s in started if at <= s < at + 3600)
                assert markers + 3 * listings <= 150, (at, markers, listings)
