"""Review of fix102b (point 1): a background listing of a room's days (``logs/``, one
level) takes at most ``LEVEL_PAGES_MAX`` pages in a safety listing (``Poller.refresh``),
but a room's opening and its reads all over again (``Backfill.fetch_newest_first``)
listed ``logs/`` whole, behind other windows too. A member who wrote over 200,000 junk
names right in a room's ``logs/`` before the app started made its opening fail: the room
stayed worth reading again, and each read again paged through all of them (201 requests,
then refused): hours of 287 requests with one such room of ten.

Now a pass behind other windows lists that level as a safety listing does, is charged
and paid like one, and says the room could not be listed whole; what it read before and
its notes of days not listed stay; with the window in front the room is listed whole.
Same counting bucket as ``test_level_junk_budget.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_idle_request_budget import (  # noqa: F401
    BUDGET,
    CONFIG,
    Clock,
    Idle,
    _hours,
    _idle_for,
    _rooms,
    clock,
)
from test_level_junk_budget import Refused

from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.sync.schedule import LEVEL_PAGES_MAX


def test_junk_in_logs_before_a_room_is_opened_keeps_each_idle_hour_within_150(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """The reviewer's probe: the junk is there before the rooms are opened (behind other
    windows), one room of ten padded. Before: hourly [287, 84, 86, 82, 287, ...]."""

    async def run() -> list[int]:
        rooms = await _rooms(tmp_path / "store", 10)
        idle = Idle(tmp_path, clock, rooms)
        idle.bucket.__class__ = Refused
        idle.bucket.junk = {logs_prefix(rooms[0])}  # type: ignore[attr-defined]
        try:
            before = idle.bucket.requests
            await idle.open()
            opening = idle.bucket.requests - before
            assert opening < 201, opening  # before: 262 (201 of them the padded logs/)
            padded = idle.engine.rooms[rooms[0]]
            assert padded.level_over is not None and padded.worth_reading_again
            return _hours(await _idle_for(idle, 28))
        finally:
            await idle.engine.close()

    hourly = asyncio.run(run())
    assert max(hourly) <= BUDGET, hourly


def test_a_read_again_cut_short_keeps_what_was_read_and_says_so(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """A room read whole, then overfilled: its read again behind other windows lists
    ``logs/`` only so far and sees no day (the junk sorts first). It calls no day gone,
    keeps its segments and the note of a segment gone from another day, and says its
    logs folder could not be listed whole; the window in front, the room is listed
    whole again (here refused: 201 pages)."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            kept = set(room.known)
            assert kept and not room.partial
            old = f"{logs_prefix(rooms[0])}2020-01-01/messages_1_1_x.jsonl"
            # noted before: a segment gone from a day the cut listing does not list, and
            # a listing of the room that failed (it is read all over again)
            room.vanished[old] = "no longer in storage"
            room.unlisted[logs_prefix(rooms[0])] = "a listing that failed"
            idle.bucket.__class__ = Refused
            idle.bucket.junk = {logs_prefix(rooms[0])}  # type: ignore[attr-defined]
            before = idle.bucket.requests
            await idle.engine._poller._safety_pass(room, owed=False)
            took = idle.bucket.requests - before
            assert took <= LEVEL_PAGES_MAX + 3 + 1, took  # before: 201, then refused
            assert kept <= set(room.known)  # no day called gone, nothing read lost
            assert room.vanished == {old: "no longer in storage"}  # before: dropped
            why = room.unlisted.get(logs_prefix(rooms[0]), "")
            assert "its logs folder holds over 10,000 objects" in why, room.unlisted
            assert room.safety_failures == 1 and room.listing_pages == took
            # in front: listed whole, as before (the bucket refuses past 200,000)
            idle.engine.set_window_focused(True)
            before = idle.bucket.requests
            await idle.engine._poller._safety_pass(room, owed=False)
            assert idle.bucket.requests - before > 200
            assert "201 pages" in room.unlisted.get(logs_prefix(rooms[0]), "")
            assert kept <= set(room.known) and room.level_over is None
        finally:
            await idle.engine.close()

    asyncio.run(run())
