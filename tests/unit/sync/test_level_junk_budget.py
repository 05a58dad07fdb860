"""Red team rt102: the idle budget is 150 requests an hour per storage, behind other
windows. A background listing takes at most ``SAFETY_PAGES_MAX`` (30) pages of a room's
day folders, but the listing of the room's days (``logs/``, one level:
``Backfill.list_days``) is not bounded: a member who writes 150,000 empty objects right
into a quiet room's ``logs/`` (no day folder: each is "no segment's place") makes that
one listing 150 requests, and the hour it runs in costs 80 + 150 + the day folders. The
charge (``charged_wait``) only spaces such hours (every 64 h), it does not keep one
within the budget; with several rooms padded, the pace (``SafetyPace.pay``) pays after
the fact, so ``SAFETY_BURST`` of them may land in one hour.

Same counting bucket as ``test_idle_request_budget.py``; the objects are added to the
level's listing by the bucket (counted as a real bucket's pages), not written."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_background_listing_by_day import _honest_send
from test_idle_request_budget import (  # noqa: F401
    BUDGET,
    Bucket,
    Clock,
    Idle,
    _hours,
    _idle_for,
    _rooms,
    clock,
)

from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.storage.base import Level
from bucket_chat_desktop.sync.schedule import LEVEL_PAGES_MAX


class LevelPadded(Bucket):
    """The counting bucket, with ``level_padding`` objects added to a level's listing."""

    level_padding: dict[str, int]

    async def list_level(self, prefix: str) -> Level:
        level = await self.inner.list_level(prefix)
        extra = self.level_padding.get(prefix, 0)
        level = Level(level.folders, level.objects, level.more + extra)
        names = len(level.folders) + len(level.objects) + level.more
        self.requests += max(1, (names + 999) // 1000)
        return level

    async def list_level_first(self, prefix: str, most: int) -> Level:
        """As a bucket asks: the pages ``most`` names take, no more. The junk is named to
        sort before the day folders (``0000…``): a cut listing shows none of them."""
        extra = self.level_padding.get(prefix, 0)
        if not extra:
            return await super().list_level_first(prefix, most)
        level = await self.inner.list_level(prefix)
        names = len(level.folders) + len(level.objects) + level.more + extra
        shown = min(names, most)
        self.requests += max(1, (shown + 999) // 1000)
        if names <= most:
            return Level(level.folders, level.objects, level.more + extra)
        return Level([], [], shown, cut=True)


def test_junk_right_in_a_rooms_logs_folder_keeps_an_idle_hour_within_150(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    async def run() -> None:
        rooms = await _rooms(tmp_path / "store", 2)
        idle = Idle(tmp_path, clock, rooms)
        idle.bucket.__class__ = LevelPadded
        idle.bucket.level_padding = {logs_prefix(rooms[0]): 150_000}  # type: ignore[attr-defined]
        try:
            await idle.open()
            counts = await _idle_for(idle, 8)
            hourly = _hours(counts)
            assert max(hourly) <= BUDGET, (hourly, idle.engine.rooms[rooms[0]].listing_pages)
        finally:
            await idle.engine.close()

    asyncio.run(run())


class Refused(Bucket):
    """As ``test_failed_listing_pace.Overfilled``, for several rooms: a member wrote more
    than ``LIST_MAX_OBJECTS`` objects right in each one's ``logs/``; a listing of it
    pages through them (201 requests) and is refused whole, as ``cloud.Listing`` does."""

    junk: set[str]

    async def list_level(self, prefix: str) -> Level:
        from bucket_chat_desktop.storage.base import StorageError
        from bucket_chat_desktop.storage.cloud import LIST_MAX_OBJECTS

        if prefix in self.junk:
            self.requests += LIST_MAX_OBJECTS // 1000 + 1
            raise StorageError(
                f"cannot list {prefix}: the service listed more than "
                f"{LIST_MAX_OBJECTS:,} objects in one folder (201 pages)"
            )
        return await super().list_level(prefix)

    async def list_level_first(self, prefix: str, most: int) -> Level:
        """A bucket that stops after the pages ``most`` names take never reaches the
        refusal; the junk sorts before the day folders (none shown)."""
        if prefix in self.junk:
            self.requests += max(1, (most + 999) // 1000)
            return Level([], [], most, cut=True)
        return await super().list_level_first(prefix, most)


def _refused_hours(tmp_path: Path, clock: Clock, padded: int) -> list[int]:  # noqa: F811
    async def run() -> list[int]:
        rooms = await _rooms(tmp_path / "store", 10)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            idle.bucket.__class__ = Refused
            idle.bucket.junk = {logs_prefix(r) for r in rooms[:padded]}  # type: ignore[attr-defined]
            return _hours(await _idle_for(idle, 28))
        finally:
            await idle.engine.close()

    return asyncio.run(run())


def test_a_room_whose_listing_is_refused_after_201_pages_keeps_each_hour_within_150(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """docs/SCHEDULING.md: a room whose listing fails every time "costs fewer requests than
    one that succeeds (within the budget above)". A failed listing is neither charged
    (``charged_wait``) nor paid from the pace (``SafetyPace.pay``): each attempt's hour
    costs 80 + 201."""
    hourly = _refused_hours(tmp_path, clock, 1)
    assert max(hourly) <= BUDGET, hourly


def test_five_refused_rooms_of_ten_keep_28_hours_within_150_an_hour_on_average(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """A member of five of the storage's ten rooms overfills each one's ``logs/`` once."""
    hourly = _refused_hours(tmp_path, clock, 5)
    assert sum(hourly) / len(hourly) <= BUDGET, hourly


def test_control_no_refused_room_keeps_every_hour_within_150(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    hourly = _refused_hours(tmp_path, clock, 0)
    assert max(hourly) <= BUDGET, hourly


def test_junk_sorting_before_the_days_hides_no_honest_message_and_the_room_says_so(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """The background listing of the junk-padded ``logs/`` stops after its pages, and the
    junk sorts before every day folder: the cut listing shows no day. Today's honest
    message (no marker) is still delivered behind other windows (the newest days by the
    clock are listed each by itself), the room says its days could not be listed whole,
    and the note goes once the room is listed whole, on screen with the window in front."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, clock, rooms)
        idle.bucket.__class__ = LevelPadded
        idle.bucket.level_padding = {logs_prefix(rooms[0]): 150_000}  # type: ignore[attr-defined]
        try:
            await idle.open()
            hidden = await _honest_send(store, rooms[0], "meeting moved to 3pm")
            await _idle_for(idle, 12)
            padded = idle.engine.rooms[rooms[0]]
            assert hidden in padded.known, padded.unchecked
            assert padded.safety_failures == 0 and padded.unchecked is not None
            why = padded.unchecked[1]
            assert "its logs folder holds over 10,000 objects" in why, why
            assert "new messages of yesterday, today and tomorrow are still fetched" in why
            assert padded.listing_pages <= LEVEL_PAGES_MAX + 3, padded.listing_pages
            idle.engine.set_window_focused(True)
            idle.engine.focus(rooms[0])
            await _idle_for(idle, 0.5)
            assert padded.level_over is None and padded.unchecked is None, padded.unchecked
        finally:
            await idle.engine.close()

    asyncio.run(run())
