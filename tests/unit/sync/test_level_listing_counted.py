"""Review of fix102b (point 8): what a listing of a room's days (``Backfill.list_days``)
costs is counted the same way whether it was cut or not: the pages its names take. An
uncut listing of 2,500 names (3 pages on S3 or GCS) was counted as one request, a cut one
as its pages."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_idle_request_budget import Clock, Idle, _rooms, clock  # noqa: F401
from test_level_junk_budget import LevelPadded

from bucket_chat_desktop.protocol.ids import logs_prefix


def test_an_uncut_listing_of_a_rooms_days_counts_its_pages(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    async def run() -> None:
        rooms = await _rooms(tmp_path / "store", 1)
        idle = Idle(tmp_path, clock, rooms)
        idle.bucket.__class__ = LevelPadded
        idle.bucket.level_padding = {logs_prefix(rooms[0]): 2_499}  # type: ignore[attr-defined]
        try:
            room = idle.engine._room(rooms[0])
            engine_before, bucket_before = idle.engine.requests, idle.bucket.requests
            _, _, names, cut = await idle.engine._backfill.list_days(room)
            assert names == 2_500 and not cut  # the room's one day, and the padding
            assert idle.bucket.requests - bucket_before == 3
            assert idle.engine.requests - engine_before == 3  # before: 1
            engine_before, bucket_before = idle.engine.requests, idle.bucket.requests
            _, _, names, cut = await idle.engine._backfill.list_days(room, 5_000)
            assert not cut and idle.engine.requests - engine_before == 3  # before: 1
        finally:
            await idle.engine.close()

    asyncio.run(run())
