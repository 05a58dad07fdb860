"""Red team rt98: a background listing of a room on a bucket looked at its newest two
days only (``protocol.ids.newest_days``: folders named as dates, not after tomorrow's
UTC date). A member adds day folders for the coming dates (one small object each, a
year of them at once: 365 writes); from then on, every day, TOMORROW's folder is a
real day by that rule and the newest two were tomorrow and today. YESTERDAY's folder
was never listed, behind other windows or on screen, and the reference client names its
folders by the writer's local date (PROTOCOL.md): a member west of UTC writes into
yesterday's UTC date for hours every evening (here: UTC-8 after 16:00), and none of it
was delivered (no markers: the reference client writes none). Now yesterday's and
today's UTC dates are always among the newest days, tomorrow's besides them; the
listing that takes one more request is charged for it (``schedule.charged_wait``), so
the planted days keep the idle budget.

Same harness as ``test_background_listing_by_day.py``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nacl.signing import SigningKey
from test_background_listing_by_day import DAY_MS, _due, _pad_day
from test_idle_request_budget import (  # noqa: F401
    BUDGET,
    CONFIG,
    Clock,
    Idle,
    _idle_for,
    _rooms,
    clock,
)

from bucket_chat_desktop.protocol.ids import newest_days, utc_date
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.schedule import SAFETY_COST, background_period
from bucket_chat_desktop.sync.writer import Draft, RoomWriter


async def _written_on_local_yesterday(store: Path, room: str) -> str:
    """A member west of UTC (the reference client: the folder is the writer's local
    date, yesterday's UTC date in their evening)."""
    writer = RoomWriter(LocalStorage(store), room, "carol@x", SigningKey(b"\x0b" * 32))
    path, _ = await writer.send([Draft.text("evening in California: the deploy is off")])
    now = int(time.time() * 1000)
    moved = path.replace(f"/{utc_date(now)}/", f"/{utc_date(now - DAY_MS)}/")
    (store / moved).parent.mkdir(parents=True, exist_ok=True)
    (store / path).rename(store / moved)
    return moved


def _run(tmp_path: Path, clock: Clock, planted: bool, shown: bool = False) -> None:  # noqa: F811
    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)  # bob's first message: today
        idle = Idle(tmp_path, clock, rooms)
        now = int(time.time() * 1000)
        if planted:
            for n in range(1, 366):  # a year of coming days, one object each
                _pad_day(idle, store, rooms[0], utc_date(now + n * DAY_MS), 1)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            if shown:  # on screen, window in front: listed whole every 15 minutes
                idle.engine.set_window_focused(True)
                idle.engine.focus(rooms[0])
            honest = await _written_on_local_yesterday(store, rooms[0])
            _due(idle, rooms[0])
            await _idle_for(idle, 12)
            where = "on screen" if shown else "behind other windows"
            assert honest in room.known, f"not delivered in 12 h {where}: {honest.split('/', 3)[3]}"
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_planted_coming_days_hide_a_west_of_utc_members_messages(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    _run(tmp_path, clock, planted=True)


def test_control_without_the_planted_days_they_are_delivered(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    _run(tmp_path, clock, planted=False)


def test_planted_coming_days_hide_them_even_from_the_room_on_screen(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    _run(tmp_path, clock, planted=True, shown=True)


def test_the_newest_days_are_yesterday_and_today_whatever_days_come_after() -> None:
    """The rule itself: tomorrow's folder is listed besides yesterday's and today's, never
    in place of one; a folder past tomorrow or named otherwise is none of them; a quiet
    room's newest two are still its newest two."""
    now = int(time.time() * 1000)
    day = [utc_date(now + n * DAY_MS) for n in range(-3, 4)]  # day[3] is today
    coming = [day[4], day[5], day[6], "9999-12-31", "zzzz"]
    assert newest_days([day[1], day[2], day[3], *coming], now) == [day[4], day[3], day[2]]
    assert newest_days([day[2], day[3]], now) == [day[3], day[2]]
    assert newest_days([day[0], day[1], day[4]], now) == [day[4], day[1]]
    assert newest_days([day[0], day[1]], now) == [day[1], day[0]]


ROOMS = CONFIG.background_rooms  # the most the rooms' listings' share of the budget


async def _yesterday(store: Path, room: str) -> None:
    """An honest message of the room dated yesterday (in yesterday's folder)."""
    now = int(time.time() * 1000)
    key = SigningKey(b"\x07" * 32)
    writer = RoomWriter(LocalStorage(store), room, "bob@x", key, clock=lambda: now - DAY_MS)
    await writer.send([Draft.text(f"yesterday in {room}")])


def _budget(tmp_path: Path, clock: Clock, planted: bool) -> tuple[list[int], set[int]]:  # noqa: F811
    """``ROOMS`` rooms with messages yesterday and today (and, ``planted``, a member's
    object in tomorrow's folder) behind other windows for a whole period of their
    listings: the requests of each hour (80 rounds, every 10 rounds) and what the
    listings took."""
    period = background_period(CONFIG, ROOMS)

    async def run() -> tuple[list[int], set[int]]:
        store = tmp_path / "store"
        rooms = await _rooms(store, ROOMS)
        idle = Idle(tmp_path, clock, rooms)
        now = int(time.time() * 1000)
        for room in rooms:
            await _yesterday(store, room)
            if planted:
                _pad_day(idle, store, room, utc_date(now + DAY_MS), 1)
        try:
            await idle.open()
            counts = await _idle_for(idle, period / 3600 + 0.5)
            pages = {idle.engine.rooms[r].listing_pages for r in rooms if idle.listed_at[r]}
        finally:
            await idle.engine.close()
        return [sum(counts[i : i + 80]) for i in range(0, len(counts) - 79, 10)], pages

    return asyncio.run(run())


def test_planted_coming_days_cost_an_idle_storage_no_more(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """The price of listing tomorrow's folder besides yesterday's and today's: each
    listing takes one request more than the budget counts (``SAFETY_COST``). The pace
    pays for it (``SafetyPace.pay``: 4 requests took 4/3 of a listing's turn) and the
    room waits as much longer (``charged_wait``): an idle storage's hours cost what
    they cost with yesterday's and today's folders only (below), within the budget
    once the start's saved-up listings are spent. Unpaid: up to 176 an hour."""
    hourly, pages = _budget(tmp_path, clock, planted=True)
    assert pages == {SAFETY_COST + 1}
    assert max(hourly[1:]) <= BUDGET, hourly
    assert hourly[0] <= 152, hourly  # the start's SAFETY_BURST, as below


def test_control_yesterday_and_today_only(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    hourly, pages = _budget(tmp_path, clock, planted=False)
    assert pages == {SAFETY_COST}
    assert max(hourly[1:]) <= BUDGET, hourly
