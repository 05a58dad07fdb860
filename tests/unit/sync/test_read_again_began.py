"""Review of fix102a (point 3): a room read all over again by a safety round marks its
days as listed from when the pass that listed them began (``RoomState.listed_from``). The
round may wait for a pass begun long before (an opening still under way: ``_read_again``
awaits ``room.backfill``), which listed the room's days at its own start; taking the
round's start instead set ``listed_from`` past the days a writer west of UTC used in
between, and the room's next listings never looked at them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_idle_request_budget import Bucket, Clock, Idle, _rooms, clock  # noqa: F401

from bucket_chat_desktop.protocol.ids import DAY_SPREAD_MS, logs_prefix, utc_date
from bucket_chat_desktop.storage.base import Level


class Held(Bucket):
    """The counting bucket; a listing of ``hold`` waits for ``go`` once it was asked."""

    hold: str
    asked: asyncio.Event
    go: asyncio.Event

    async def list_level(self, prefix: str) -> Level:
        if prefix == self.hold:
            self.asked.set()
            await self.go.wait()
        return await super().list_level(prefix)

    async def list_level_first(self, prefix: str, most: int) -> Level:
        if prefix == self.hold:
            self.asked.set()
            await self.go.wait()
        return await super().list_level_first(prefix, most)


def test_a_read_again_marks_days_listed_from_when_the_pass_it_awaited_began(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    async def run() -> None:
        rooms = await _rooms(tmp_path / "store", 1)
        idle = Idle(tmp_path, clock, rooms)
        bucket = idle.bucket
        bucket.__class__ = Held
        bucket.hold = logs_prefix(rooms[0])  # type: ignore[attr-defined]
        bucket.asked = asyncio.Event()  # type: ignore[attr-defined]
        bucket.go = asyncio.Event()  # type: ignore[attr-defined]
        try:
            idle.engine.set_window_focused(False)
            room = await idle.engine.open_room(rooms[0], focus=False)  # its pass begins
            began_ms = clock.wall_ms()
            await bucket.asked.wait()  # type: ignore[attr-defined]
            clock.now += 2 * 86_400  # the listing waits two days (a storage not answering)
            room.unread["x"] = "a read that failed"  # the round reads the room again
            poller = idle.engine._poller
            step = asyncio.create_task(poller._safety_pass(room, owed=False))
            for _ in range(20):  # the round awaits the pass begun two days ago
                await asyncio.sleep(0)
            room.unread.pop("x")  # settled meanwhile
            bucket.go.set()  # type: ignore[attr-defined]
            await step
            assert not room.worth_reading_again
            # the days left behind count from the pass's start: two days earlier
            assert room.listed_from == utc_date(began_ms - DAY_SPREAD_MS), room.listed_from
        finally:
            bucket.go.set()  # type: ignore[attr-defined]
            await idle.engine.close()

    asyncio.run(run())
