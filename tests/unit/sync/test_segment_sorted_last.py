"""Red team rt98: a day noted too costly to list in the background
(``RoomState.over_cost``) is looked at with one page from just after the segments the
room holds there (``Poller._list_after_held``), and so is each newest day when an owed
list overflowed (``RoomState.owed_newest``). That page started after the greatest NAME
held there, and names compare as text, not as numbers: a member's valid segment named
``messages_9_9_...`` (events dated 9 ms after 1970, put into today's folder; every date
folder name is accepted) sorts after every honest ``messages_1780...`` name. Once held,
every later look at that day started after it, and no honest segment written there that
day (no marker) was delivered behind other windows, however long the app ran: one small
object, no junk sorting between. Now the page starts from the start times the names
carry (``ids.listing_start``: the oldest of each writer's newest held, among names that
sort by their start time and can be of that day).

Same harness as ``test_background_listing_by_day.py`` (its third test, with the one
hostile segment added)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nacl.signing import SigningKey
from test_background_listing_by_day import JUNK, _due, _honest_send, _pad_day
from test_idle_request_budget import Clock, Idle, _idle_for, _rooms, clock  # noqa: F401

from bucket_chat_desktop.protocol.ids import logs_prefix, utc_date
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.poller import OWED_PATHS_MAX
from bucket_chat_desktop.sync.writer import Draft, RoomWriter


async def _sorts_last(store: Path, room: str, today: str) -> str:
    """Mallory's segment, dated 9 ms after 1970, moved into today's folder."""
    writer = RoomWriter(
        LocalStorage(store), room, "mallory@x", SigningKey(b"\x09" * 32), clock=lambda: 9
    )
    path, _ = await writer.send([Draft.text("nothing to see")])
    moved = path.replace("/1970-01-01/", f"/{today}/")
    (store / moved).parent.mkdir(parents=True, exist_ok=True)
    (store / path).rename(store / moved)
    (store / path).parent.rmdir()
    return moved


def test_a_segment_named_to_sort_last_hides_honest_segments_of_a_costly_day(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        now = int(time.time() * 1000)
        today = utc_date(now)
        hostile = await _sorts_last(store, rooms[0], today)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            assert hostile in room.known  # a segment like any other, held
            _pad_day(idle, store, rooms[0], today, JUNK)
            await idle.round()  # the costly one: today noted
            assert today in room.over_cost
            late = await _honest_send(store, rooms[0], "written into the padded day")
            _due(idle, rooms[0])
            await _idle_for(idle, 12)  # twelve hours behind other windows
            assert late in room.known, (
                f"honest {late.rsplit('/', 1)[1]} not delivered in 12 h; listed after "
                f"{hostile.rsplit('/', 1)[1]}"
            )
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_control_without_the_hostile_segment_it_is_delivered(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        today = utc_date(int(time.time() * 1000))
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            _pad_day(idle, store, rooms[0], today, JUNK)
            await idle.round()
            assert today in room.over_cost
            late = await _honest_send(store, rooms[0], "written into the padded day")
            _due(idle, rooms[0])
            await _idle_for(idle, 12)
            assert late in room.known
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_a_segment_named_to_sort_last_hides_an_honest_owed_segment_dropped_from_a_full_list(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """The same name, no junk day at all: ``OWED_PATHS_MAX`` names owed in today's
    folder (a member's markers), then an honest segment owed past what the room keeps.
    The owed listing's page of today starts after the newest name held there, Mallory's
    ``messages_9_9_...``: the honest segment is not found (SCHEDULING.md: "an owed
    segment of today dropped from a full list is found by a page of today"), and waits
    for the room's safety listing, hours behind other windows."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        today = utc_date(int(time.time() * 1000))
        hostile = await _sorts_last(store, rooms[0], today)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            assert hostile in room.known
            room.last_safety = clock.now  # not due by pace
            poller_ = idle.engine._poller
            prefix = f"{logs_prefix(rooms[0])}{today}/"
            for n in range(OWED_PATHS_MAX):
                poller_._owe_listing(rooms[0], f"{prefix}messages_9{n:03d}_9_x.jsonl")
            honest = await _honest_send(store, rooms[0], "owed past the list")
            poller_._owe_listing(rooms[0], honest)
            assert honest not in room.owed_paths and room.owed_newest
            room.listing_owed_at = clock.now  # due at the next round
            for _ in range(8):  # six minutes of rounds behind other windows
                await idle.round()
            assert honest in room.known, "the honest owed segment was not found"
        finally:
            await idle.engine.close()

    asyncio.run(run())
