"""Red team rt102: a room's background listing looks only at its newest days
(``ids.newest_days``: yesterday and today UTC, tomorrow besides them). A member who pads
today's folder with ~25,000 junk names makes the room's first background listing take
~27 pages, and ``schedule.charged_wait`` stretches the room's next one to ~36 hours
(docs/SCHEDULING.md: "a message of a writer without markers written in between waits
that long, unless the room is opened"). But a message written meanwhile into a day
folder that by then is older than yesterday (a member west of UTC writes into
yesterday's UTC date every evening; the reference client writes no markers) is never
listed again behind other windows: it waits not 36 hours but forever, with no word.

Same harness as ``test_coming_day_folders.py``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from test_background_listing_by_day import DAY_MS, _due, _pad_day
from test_coming_day_folders import _written_on_local_yesterday
from test_idle_request_budget import Clock, Idle, _idle_for, _rooms, clock  # noqa: F401

from bucket_chat_desktop.protocol.ids import utc_date


def _hours_listed(at: list[float]) -> list[float]:
    return [round((t - at[0]) / 3600, 1) for t in at]


def _run(tmp_path: Path, clock: Clock, junk: int, hours: float) -> None:  # noqa: F811
    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, clock, rooms)
        now = int(time.time() * 1000)
        if junk:
            _pad_day(idle, store, rooms[0], utc_date(now), junk)  # today's folder
        # tomorrow's folder: where the room's next messages go (here one object)
        _pad_day(idle, store, rooms[0], utc_date(now + DAY_MS), 1)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            _due(idle, rooms[0])
            await _idle_for(idle, 0.05)  # the room's background listing ran
            assert idle.listed_at[rooms[0]], "not listed"
            honest = await _written_on_local_yesterday(store, rooms[0])
            await _idle_for(idle, hours)
            assert honest in room.known, (
                f"not delivered in {hours} h behind other windows (listed at "
                f"{_hours_listed(idle.listed_at[rooms[0]])}"
                f" h; listing_pages {room.listing_pages}; unchecked {room.unchecked}): "
                f"{honest.split('/', 3)[3]}"
            )
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_junk_stretched_wait_loses_a_west_of_utc_message_for_good(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """Documented: a stretched room waits up to ~40 h. Given 60 h, the message (written
    just after the first listing, into yesterday's UTC folder) is still not delivered:
    by the next listing that folder is two days old and not among the newest days."""
    _run(tmp_path, clock, junk=25_000, hours=60)


def test_control_without_junk_it_is_delivered_within_a_period(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    _run(tmp_path, clock, junk=0, hours=5)


async def _sent_at(store: Path, room: str, at_ms: int, text: str) -> str:
    """An honest member's message sent at ``at_ms`` (its day folder is that UTC date),
    with its activity marker, as this app writes them."""
    from nacl.signing import SigningKey
    from test_background_listing_by_day import _marker

    from bucket_chat_desktop.storage.local import LocalStorage
    from bucket_chat_desktop.sync.writer import Draft, RoomWriter

    key = SigningKey(b"\x0c" * 32)
    writer = RoomWriter(LocalStorage(store), room, "dave@x", key, clock=lambda: at_ms)
    path, _ = await writer.send([Draft.text(text)])
    assert f"/logs/{utc_date(at_ms)}/" in path, path
    _marker(store, room, at_ms + 1_000, path)
    return path


def test_a_laptop_asleep_over_a_weekend_never_gets_saturdays_messages(
    tmp_path: Path,
) -> None:
    """The app runs behind other windows; the laptop sleeps from Friday 00:12 UTC to
    Sunday 00:30 (the poller's monotonic clock does not count a suspend; its wall clock
    jumps). Meanwhile a member sends on Friday 10:00 and on Saturday 12:00, each with its
    activity marker. After waking, 8 hours behind other windows: the room's background
    listing looks at Saturday and Sunday only, the marker poll at Sunday's activity folder
    only, so Friday's message is never delivered while the window stays behind (no
    word: the room reports nothing unchecked)."""
    import pytest

    from bucket_chat_desktop.sync import poller

    day = 86_400
    today = int(time.time()) // day * day  # the real day: where _rooms writes
    moved = Clock(wall_at=today - 2 * day + 720)  # "Friday" 00:12 UTC, two days ago
    mp = pytest.MonkeyPatch()
    mp.setattr(poller, "time", moved.module)

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, moved, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            _due(idle, rooms[0])
            await _idle_for(idle, 0.05)  # Friday 00:12: the room's background listing
            assert idle.listed_at[rooms[0]], "not listed"
            friday = await _sent_at(store, rooms[0], (today - 2 * day + 36_000) * 1000, "fri")
            saturday = await _sent_at(store, rooms[0], (today - day + 43_200) * 1000, "sat")
            moved.wall_at += (today + 1_800) - moved.wall()  # asleep until Sunday 00:30
            await _idle_for(idle, 8)
            assert saturday in room.known, "control: Saturday's not delivered either"
            assert friday in room.known, (
                f"Friday's message not delivered in 8 h after waking (unchecked "
                f"{room.unchecked}): {friday.split('/', 3)[3]}"
            )
        finally:
            await idle.engine.close()

    try:
        asyncio.run(run())
    finally:
        mp.undo()


def test_a_laptop_asleep_for_ten_days_catches_up_a_few_days_a_round_and_says_so(
    tmp_path: Path,
) -> None:
    """Asleep ten days with a message written on each: the first background listing
    after waking lists the newest days and the oldest ``BEHIND_DAYS_MAX`` days left
    behind, not all of them at once; the room says which days were not listed yet
    (``RoomState.unchecked``) until later listings have caught up, and every message is
    delivered in the end."""
    import pytest

    from bucket_chat_desktop.sync import poller

    day = 86_400
    today = int(time.time()) // day * day
    moved = Clock(wall_at=today - 10 * day + 720)
    mp = pytest.MonkeyPatch()
    mp.setattr(poller, "time", moved.module)

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, moved, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            _due(idle, rooms[0])
            await _idle_for(idle, 0.05)
            assert idle.listed_at[rooms[0]], "not listed"
            sent = [
                await _sent_at(store, rooms[0], (today - d * day + 36_000) * 1000, f"day -{d}")
                for d in range(10, 1, -1)  # 10 to 2 days ago
            ]
            moved.wall_at += (today + 1_800) - moved.wall()  # asleep until today 00:30
            _due(idle, rooms[0])
            listed = len(idle.listed_at[rooms[0]])
            while len(idle.listed_at[rooms[0]]) == listed:
                await idle.round()
            # two days ago is among the newest two (nothing was written yesterday); of
            # the eight days before it, the oldest four are listed first
            late = [p for p in sent if p not in room.known]
            assert late == sent[poller.BEHIND_DAYS_MAX : -1], late
            assert room.unchecked is not None
            assert (
                f"its days from {utc_date(1000 * (today - 6 * day))} on have not "
                in (room.unchecked[1])
            )
            await _idle_for(idle, 12)
            assert [p for p in sent if p not in room.known] == []
            assert room.unchecked is None
        finally:
            await idle.engine.close()

    try:
        asyncio.run(run())
    finally:
        mp.undo()


def test_a_first_listing_put_off_lists_the_day_written_into_after_the_opening(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """The room's first background listing after its opening comes a day and a half
    later (its period stretched: many rooms, failures). A member west of UTC wrote into
    yesterday's folder just after the opening: by that listing the folder is two days
    old, yet it is listed, from the opening's day on, and the message delivered."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            opened = idle.clock.now
            room = idle.engine.rooms[rooms[0]]
            room.last_safety = idle.clock.now + 36 * 3600  # not due for 36 h and more
            # tomorrow's folder (one object): the newest two days are then new ones
            _pad_day(idle, store, rooms[0], utc_date(int(time.time() * 1000) + DAY_MS), 1)
            honest = await _written_on_local_yesterday(store, rooms[0])
            await _idle_for(idle, 44)
            assert idle.listed_at[rooms[0]], "not listed"
            assert idle.listed_at[rooms[0]][0] - opened >= 36 * 3600  # the first, put off
            assert honest in room.known, (
                f"not delivered (listed at {_hours_listed(idle.listed_at[rooms[0]])} h)"
            )
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_days_left_behind_are_found_when_the_rooms_days_could_not_be_listed_whole(
    tmp_path: Path,
) -> None:
    """The weekend asleep, in a room whose ``logs/`` holds 150,000 junk objects sorting
    before its day folders (red team rt102 F3/F4): the background listing of the days is
    cut short and shows none of them, so Friday's folder — left behind, older than
    yesterday — is not among the names listed. It is listed by its date, as the newest
    days are, and Friday's message is delivered behind other windows."""
    import pytest
    from test_level_junk_budget import LevelPadded

    from bucket_chat_desktop.protocol.ids import logs_prefix
    from bucket_chat_desktop.sync import poller

    day = 86_400
    today = int(time.time()) // day * day
    moved = Clock(wall_at=today - 2 * day + 720)  # "Friday" 00:12 UTC
    mp = pytest.MonkeyPatch()
    mp.setattr(poller, "time", moved.module)

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, moved, rooms)
        idle.bucket.__class__ = LevelPadded
        idle.bucket.level_padding = {logs_prefix(rooms[0]): 150_000}  # type: ignore[attr-defined]
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            _due(idle, rooms[0])
            await _idle_for(idle, 0.05)
            assert idle.listed_at[rooms[0]], "not listed"
            friday = await _sent_at(store, rooms[0], (today - 2 * day + 36_000) * 1000, "fri")
            moved.wall_at += (today + 1_800) - moved.wall()  # asleep until Sunday 00:30
            await _idle_for(idle, 48)
            assert room.level_over is not None, "control: the days were listed whole"
            assert friday in room.known, (
                f"Friday's message not delivered in 48 h after waking (listed at "
                f"{_hours_listed(idle.listed_at[rooms[0]])} h; unchecked "
                f"{room.unchecked}): {friday.split('/', 3)[3]}"
            )
        finally:
            await idle.engine.close()

    try:
        asyncio.run(run())
    finally:
        mp.undo()
