"""Review of fix102a: a day folder a background listing could not list whole (junk a
member wrote there: ``RoomState.over_cost``) keeps its note until the room is listed
whole, and behind other windows it never is. The room's note (``RoomState.unchecked``,
the banner's text) named every such day: a member who pads each day's folder made it one
day's entry (about 90 characters) longer every day, for as long as the window stayed
behind others. Now it names the newest few days and counts the rest.

Same harness as ``test_background_listing_by_day``: the poller's clock moved on a round
at a time, the junk listed only, nothing slept or timed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_background_listing_by_day import DAY_MS, JUNK, _pad_day
from test_idle_request_budget import Clock, Idle, _idle_for, _rooms, clock  # noqa: F401

from bucket_chat_desktop.protocol.ids import utc_date
from bucket_chat_desktop.sync.poller import OVER_COST_NAMED

DAYS = 10  # days a member pads, one after the other
NOTE_MAX = 800  # characters: the note of OVER_COST_NAMED days, the count, the advice


def test_a_member_padding_each_days_folder_does_not_grow_the_rooms_note(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            padded: list[str] = []
            for _ in range(DAYS):
                tomorrow = utc_date(clock.wall_ms() + DAY_MS)
                _pad_day(idle, store, rooms[0], tomorrow, JUNK)
                padded.append(tomorrow)
                await _idle_for(idle, 24)
            assert set(padded) <= set(room.over_cost), sorted(room.over_cost)
            assert room.unchecked is not None
            note = room.unchecked[1]
            assert len(note) <= NOTE_MAX, f"{len(note)} characters: {note}"
            newest = sorted(room.over_cost, reverse=True)
            named = [d for d in newest if f"its day {d} " in note]
            assert named == newest[:OVER_COST_NAMED], note
            more = len(room.over_cost) - OVER_COST_NAMED
            assert f"and {more} more days" in note, note
        finally:
            await idle.engine.close()

    asyncio.run(run())
