"""What an idle storage costs a user in many rooms, window in the background (red team rt75).

The budget (docs/SCHEDULING.md, docs/STORAGE.md, PROTOCOL.md section 15) is 150 requests
an hour per storage, idle behind other windows: 80 marker listings (one each
``idle_interval``, 45 s) plus the rooms' background safety listings (2-3 requests a room).
Each room was listed every ``background_safety`` (4 h) whatever their number, and all of
them in the same round: 300 rooms cost 600 requests in one round every four hours, about
230 an hour in all. Now the listings are paced per storage (``schedule.SafetyPace``): a
round starts at most ``SAFETY_BURST``, and past ``background_rooms`` rooms each room's
period grows with the rooms (``schedule.background_period``).

Counted, not timed: the poller's clock is a counter moved on by ``idle_interval`` each
round (``Clock``), its rounds run back to back, and every request to the bucket counted."""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.activity import activity_folder
from bucket_chat_desktop.protocol.ids import logs_prefix, utc_date
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, Level, ObjectInfo, Storage
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import poller
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.poller import OWED_OTHERS_MAX, OWED_OTHERS_PER_HOUR, OWED_PAGES_MAX
from bucket_chat_desktop.sync.schedule import SAFETY_BURST, background_period
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

BUDGET = 150  # requests an hour per storage, idle, window in the background
PAGE = 1000  # names per listing page on S3 / GCS (and counted so for Azure)
CONFIG = SyncConfig()  # the app's "normal" speed


class Bucket(Storage):
    """A folder read as a bucket is (no watch), each listing or read counted (a listing:
    a request per ``PAGE`` names it takes, at least one). ``padding`` adds to a folder's
    listings names a hostile member wrote there (``zz-000000``...: listed only, never
    read, so no test writes 380,000 files); ``listings`` counts the listings of each
    folder."""

    def __init__(self, inner: LocalStorage) -> None:
        self.inner = inner
        self.url = inner.url
        self.requests = 0
        self.padding: dict[str, int] = {}  # folder -> junk names in it
        self.listings: Counter[str] = Counter()
        self.read: list[str] = []  # every object read, in order

    def _padded(self, prefix: str, items: list[ObjectInfo], after: str | None) -> list[ObjectInfo]:
        self.listings[prefix] += 1
        junk = self.padding.get(prefix, 0)
        if not junk:
            return items
        names = (ObjectInfo(f"{prefix}zz-{i:06d}", 0) for i in range(junk))
        return sorted(
            [*items, *(i for i in names if after is None or i.path > after)], key=lambda i: i.path
        )

    async def put_if_absent(self, path: str, data: bytes) -> bool:
        self.requests += 1
        return await self.inner.put_if_absent(path, data)

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        self.requests += 1
        self.read.append(path)
        return await self.inner.get(path, max_bytes=max_bytes)

    async def list_objects(self, prefix: str) -> list[ObjectInfo]:
        items = self._padded(prefix, await self.inner.list_objects(prefix), None)
        self.requests += max(1, (len(items) + PAGE - 1) // PAGE)
        return items

    async def list_after(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        items = self._padded(prefix, await self.inner.list_after(prefix, after), after)
        self.requests += max(1, (len(items) + PAGE - 1) // PAGE)
        return items

    async def list_first(
        self, prefix: str, after: str | None, most: int
    ) -> tuple[list[ObjectInfo], bool]:
        """As a bucket asks: the pages ``most`` names take, no more."""
        items = self._padded(prefix, await self.inner.list_after(prefix, after), after)
        self.requests += max(1, (min(len(items), most) + PAGE - 1) // PAGE)
        return items[:most], len(items) > most

    async def list_dirs(self, prefix: str) -> list[str]:
        self.requests += 1
        return await self.inner.list_dirs(prefix)

    async def list_level(self, prefix: str) -> Level:
        level = await self.inner.list_level(prefix)
        names = len(level.folders) + len(level.objects) + level.more
        self.requests += max(1, (names + 999) // 1000)
        return level

    async def list_level_first(self, prefix: str, most: int) -> Level:
        """As a bucket asks: the pages ``most`` names take, no more."""
        level = await self.inner.list_level_first(prefix, most)
        names = len(level.folders) + len(level.objects) + level.more
        self.requests += max(1, (names + PAGE - 1) // PAGE)
        return level

    async def exists(self, path: str) -> bool:
        self.requests += 1
        return await self.inner.exists(path)

    async def close(self) -> None:
        await self.inner.close()


DAY = 86_400  # seconds
MIDNIGHT_PAST = 720  # seconds into a UTC day: past the ten minutes after midnight


class Clock:
    """The poller's ``time`` module: its monotonic clock is ``now``, moved on by the test
    (what it compares is only the differences), and its wall clock moves with it from
    ``wall_at``: by default 12 minutes into the current UTC day, whatever the time of
    day the test runs at (its date is today's; at most 12 minutes ahead of the real
    clock). A test dates what the poller compares with its clock (a marker's
    publication) by ``wall_ms``.

    The poller's wall clock was the real one, standing nearly still while the rounds ran
    hours on: begun in the ten minutes after UTC midnight, every round of a test listed
    yesterday's marker folder too (``Poller._poll_markers``) — 160 marker listings an
    hour instead of the 13 more of that one hour — and the budget checks failed
    (185-206 requests an hour) at that time of day only. A test of 24 hours or more
    meets a midnight at the same point of its run, whenever it runs."""

    def __init__(self, wall_at: float | None = None) -> None:
        self.now = time.monotonic()
        self._began = self.now
        if wall_at is None:
            wall_at = time.time() // DAY * DAY + MIDNIGHT_PAST
        self.wall_at = wall_at
        self.module = types.SimpleNamespace(monotonic=lambda: self.now, time=self.wall)

    def wall(self) -> float:
        """The poller's wall clock (UTC seconds): as far on from ``wall_at`` as ``now``."""
        return self.wall_at + (self.now - self._began)

    def wall_ms(self) -> int:
        return int(self.wall() * 1000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    moved = Clock()
    monkeypatch.setattr(poller, "time", moved.module)
    yield moved


async def _rooms(store: Path, count: int) -> list[str]:
    local = LocalStorage(store)
    rooms = [f"room-{i:03d}" for i in range(count)]
    key = SigningKey(b"\x07" * 32)
    for room in rooms:
        writer = RoomWriter(local, room, "bob@x", key)
        await writer.create_room(f"Room {room}", "2026-01-01T00:00:00.000Z")
        await writer.send([Draft.text(f"hello in {room}")])
    return rooms


class Idle:
    """An engine idle behind other windows in ``rooms``, every room's background listing
    due together (as a period after they were all opened at a start); ``round`` runs one
    polling round one ``idle_interval`` later, and counts what it listed."""

    def __init__(self, tmp_path: Path, clock: Clock, rooms: list[str]) -> None:
        self.clock = clock
        self.bucket = Bucket(LocalStorage(tmp_path / "store"))
        self.engine = SyncEngine(
            self.bucket,
            index=Index.open(tmp_path / "index.sqlite3", self.bucket.url),
            outbox=Outbox(tmp_path / "outbox.sqlite3"),
            config=CONFIG,
        )
        self.rooms = rooms
        self.listed: list[list[str]] = []  # per round, the rooms whose listing it started
        self.listed_at: dict[str, list[float]] = {r: [] for r in rooms}
        refresh = self.engine._poller.refresh

        async def counted(room_id: str) -> None:
            self.listed[-1].append(room_id)
            self.listed_at[room_id].append(self.clock.now)
            await refresh(room_id)

        self.engine._poller.refresh = counted  # type: ignore[method-assign]

    async def open(self) -> None:
        self.engine.set_window_focused(False)
        await asyncio.gather(
            *(self.engine.open_room(r, focus=False, background=False) for r in self.rooms)
        )
        due = background_period(CONFIG, len(self.rooms))  # all due now, however many
        for state in self.engine.rooms.values():
            state.last_safety = self.clock.now - due

    async def round(self) -> int:
        """One round, ``idle_interval`` after the last: the requests it made."""
        self.clock.now += CONFIG.idle_interval
        self.listed.append([])
        before = self.bucket.requests
        await self.engine.poll_once()
        return self.bucket.requests - before


async def _idle_for(idle: Idle, hours: float) -> list[int]:
    rounds = int(hours * 3600 / CONFIG.idle_interval)
    return [await idle.round() for _ in range(rounds)]


def test_an_idle_user_in_300_rooms_stays_within_the_request_budget(
    tmp_path: Path, clock: Clock
) -> None:
    """Red team rt75: 300 rooms cost about 230 requests an hour idle (80 marker listings,
    600 room listings every 4 hours, all in one round). Counted over one whole period of
    the rooms' listings, from the round where all of them are due."""
    period = background_period(CONFIG, 300)
    assert period == CONFIG.background_safety * 300 / CONFIG.background_rooms  # 13 h 20 min

    async def run() -> None:
        rooms = await _rooms(tmp_path / "store", 300)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            counts = await _idle_for(idle, period / 3600 + 0.5)
        finally:
            await idle.engine.close()
        hours = len(counts) * CONFIG.idle_interval / 3600
        per_hour = sum(counts) / hours
        assert per_hour <= BUDGET, f"{per_hour:.0f} requests an hour idle with 300 rooms"
        # no hour costs more than the budget either (80 rounds of 45 s)
        hourly = [sum(counts[i : i + 80]) for i in range(0, len(counts) - 79, 10)]
        assert max(hourly) <= BUDGET, max(hourly)
        # and every room was listed within its period (and the round it fell in)
        assert all(idle.listed_at[r] for r in rooms), "a room never listed"
        started = clock.now - len(counts) * CONFIG.idle_interval  # the round before the first
        last = max(at[0] for at in idle.listed_at.values())
        assert last - started <= period + CONFIG.idle_interval, (last - started) / 3600
        assert max(len(r) for r in idle.listed) <= SAFETY_BURST  # never all in one round

    asyncio.run(run())


def test_the_rooms_listings_are_spread_over_their_period(tmp_path: Path, clock: Clock) -> None:
    """Red team rt75: 50 rooms due together (opened together at a start, 4 hours ago)
    are listed a few a round, not all in one; once spread, each is listed every 4 hours
    (the period of up to ``background_rooms`` rooms) in rounds of its own. Meanwhile
    the room on screen with the window in front is listed on its own short period,
    whatever the pace has left."""

    async def run() -> None:
        rooms = await _rooms(tmp_path / "store", 50)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            await _idle_for(idle, 2 * CONFIG.background_safety / 3600)
            per_round = [len(r) for r in idle.listed]
            assert max(per_round) <= SAFETY_BURST  # before: all 50 in the first round
            assert sum(per_round[:1]) == SAFETY_BURST  # what was saved up, then the pace
            # every room listed twice in 8 hours, 4 hours apart (within a few rounds)
            for room in rooms:
                first, second, *_ = idle.listed_at[room]
                gap = second - first
                assert CONFIG.background_safety <= gap <= CONFIG.background_safety + 3 * 45
            # the second time round, the listings fall in rounds of their own (but for
            # one a slot found no room due left for a later round)
            second_half = Counter(len(r) for r in idle.listed[len(idle.listed) // 2 :])
            assert second_half[1] + second_half[2] >= 48 and second_half[2] <= 1, second_half
            # in front, the room on screen is listed on its own period, not paced
            idle.engine.set_window_focused(True)
            idle.engine.focus(rooms[7])
            idle.engine.rooms[rooms[7]].last_safety = clock.now - CONFIG.focused_safety
            idle.engine._poller.safety_pace.tokens = 0.0  # nothing left for the others
            await idle.round()
            assert idle.listed[-1] == [rooms[7]]
        finally:
            await idle.engine.close()

    asyncio.run(run())


async def _rooms_across(store: Path, count: int, midnight: float) -> list[str]:
    """Rooms whose segments straddle the UTC midnight ``midnight`` (epoch seconds): each
    created 10 minutes before it, a message 10 minutes after. Each background listing
    lists its days and both day folders: 3 requests, the most the budget counts."""
    local = LocalStorage(store)
    rooms = [f"room-{i:03d}" for i in range(count)]
    key = SigningKey(b"\x07" * 32)
    at = [0]  # the writer's clock (ms)
    for room in rooms:
        at[0] = int((midnight - 600) * 1000)
        writer = RoomWriter(local, room, "bob@x", key, clock=lambda: at[0])
        await writer.create_room(f"Room {room}", "2026-01-01T00:00:00.000Z")
        at[0] = int((midnight + 600) * 1000)
        await writer.send([Draft.text(f"hello in {room}")])
    return rooms


def test_the_hour_across_utc_midnight_stays_within_the_request_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``background_rooms`` (90) rooms, each listed every 4 hours, their listings spread
    (one due every 160 s), each taking 3 requests (their segments straddle a UTC
    midnight: the days, and both day folders): 80 marker listings and 67.5 requests of
    the rooms' listings an hour. In the ten minutes after UTC midnight each round lists
    yesterday's marker folder too, about 13 requests more that nothing paid for: up to
    163 in an hour. Now the rooms' listings pay for them around midnight
    (``SafetyPace.charge``): every hour within 150, and no room listed more than half an
    hour after its turn.

    The poller's clocks are the test's (``Clock``): three hours from 90 minutes before
    the UTC midnight that began yesterday, whatever the time of day it runs at."""
    midnight = (time.time() // DAY - 1) * DAY
    moved = Clock(wall_at=midnight - 5400)
    monkeypatch.setattr(poller, "time", moved.module)

    async def run() -> None:
        rooms = await _rooms_across(tmp_path / "store", CONFIG.background_rooms, midnight)
        idle = Idle(tmp_path, moved, rooms)
        try:
            await idle.open()
            period = background_period(CONFIG, len(rooms))
            step = period / len(rooms)
            for i, room in enumerate(rooms):  # spread: one due every 160 s from now on
                idle.engine.rooms[room].last_safety = moved.now - period + i * step
            began, opened = moved.now, Counter(idle.bucket.listings)
            counts = await _idle_for(idle, 3)
        finally:
            await idle.engine.close()
        days = [utc_date(int((midnight + d) * 1000)) for d in (-1, 1)]
        listings = idle.bucket.listings - opened
        for room in [r for r in rooms if idle.listed_at[r]]:  # 3 requests: both days too
            assert all(listings[f"{logs_prefix(room)}{d}/"] == 1 for d in days), room
        hourly = [sum(counts[i : i + 80]) for i in range(0, len(counts) - 79, 5)]
        assert max(hourly) <= BUDGET, hourly  # before: 155-163 for each hour across it
        assert hourly[0] >= 145  # the hour before: the pace's whole share is taken
        # each room due in the three hours listed at most half an hour after its turn
        late = [
            (idle.listed_at[r][0] if idle.listed_at[r] else moved.now) - began - i * step
            for i, r in enumerate(rooms)
            if i * step < moved.now - began
        ]
        assert max(late) <= 1800, max(late)

    asyncio.run(run())


def _pad(bucket: Bucket, store: Path, room: str, names: int) -> list[str]:
    """A member's junk: ``names`` empty objects with junk names in each of the room's
    newest two days (today and yesterday, UTC), the folders every safety listing of the
    room reads. One of each is a real object (so the folder is a listed day); the rest
    are added to the folder's listings by the bucket."""
    now = int(time.time() * 1000)
    days = [utc_date(now), utc_date(now - 86_400_000)]
    for day in days:
        folder = store / logs_prefix(room) / day
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "zz-real").write_bytes(b"")
        bucket.padding[f"{logs_prefix(room)}{day}/"] = names - 1
    return days


def _hours(counts: list[int]) -> list[int]:
    return [sum(counts[i : i + 80]) for i in range(0, len(counts) - 79, 80)]


def test_junk_names_in_a_quiet_rooms_newest_days_keep_an_idle_storage_within_its_budget(
    tmp_path: Path, clock: Clock
) -> None:
    """Red team rt94: a member writes 190,000 empty objects with junk names into each of
    a quiet room's two newest day folders, once. Every background listing of the room
    paged through them all (381 requests every 4 hours, counted as one listing): 176
    requests an hour on average, 464 in the hour of each. Now a background listing takes
    at most ``SAFETY_PAGES_MAX`` pages; past them it stops, counts as a failed attempt
    (waiting longer) and the room says which day holds how many names. The other room is
    still listed every 4 hours; the room on screen, window in front, is listed whole."""

    async def run() -> None:
        rooms = await _rooms(tmp_path / "store", 2)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            days = _pad(idle.bucket, tmp_path / "store", rooms[0], 190_000)
            counts = await _idle_for(idle, 8)
            hourly = _hours(counts)
            assert max(hourly) <= BUDGET, hourly  # before: [464, 80, 80, 80, 464, ...]
            assert len(idle.listed_at[rooms[1]]) == 2  # the other room: every 4 hours
            quiet = idle.engine.rooms[rooms[0]]
            assert quiet.unchecked is not None
            why = quiet.unchecked[1]
            assert f"its day {days[0]} holds over 29,000 objects" in why, why
            assert "of the first 29,000 not segments" in why, why
            # someone looks at it: listed whole, and the note goes
            idle.engine.set_window_focused(True)
            idle.engine.focus(rooms[0])
            quiet.last_safety = clock.now - CONFIG.focused_safety
            await idle.round()
            assert quiet.unchecked is None and quiet.listing_pages == 1 + 191 + 190
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_a_room_whose_listing_costs_more_is_listed_as_much_less_often(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Under ``SAFETY_PAGES_MAX``, junk in a room's newest days makes its listing succeed
    at a cost: 12,000 names a day (and today's two real segments) take 1 + 13 + 12
    pages. That room then waits 26 / 3 times its period (``charged_wait``), and the log
    says which days hold how many names; the other room's period does not change."""
    caplog.set_level(logging.INFO, logger="bucket_chat.sync")

    async def run() -> None:
        rooms = await _rooms(tmp_path / "store", 2)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            days = _pad(idle.bucket, tmp_path / "store", rooms[0], 12_000)
            counts = await _idle_for(idle, 8)
            assert max(_hours(counts)) <= BUDGET
            padded = idle.engine.rooms[rooms[0]]
            assert padded.unchecked is None and padded.safety_failures == 0
            assert padded.listing_pages == 1 + 13 + 12  # the days, today, yesterday
            assert len(idle.listed_at[rooms[0]]) == 1  # next in 4 h x 26 / 3: 35 hours
            assert len(idle.listed_at[rooms[1]]) == 2
        finally:
            await idle.engine.close()
        said = [r.getMessage() for r in caplog.records if "its safety listing took" in r.message]
        assert len(said) == 1, said
        assert f"{days[1]}: 12,000 names, 12,000 of the first 12,000 no segment's" in said[0]

    asyncio.run(run())


def _junk_segment(store: Path, room: str, at_ms: int, n: int) -> str:
    """A segment holding no event (``{}``) and its activity marker, dated 3 minutes ago:
    read on the marker it is "not the whole object" (``backfill._hinted_doubt``), so the
    room owes a listing (``Poller._owe_listing``), which reads it with its listed size."""
    day = utc_date(at_ms)
    name = f"messages_{at_ms}_{at_ms}_mallory{n}.jsonl"
    segment = store / logs_prefix(room) / day / name
    segment.parent.mkdir(parents=True, exist_ok=True)
    segment.write_bytes(b"{}\n")
    marker = store / activity_folder(utc_date(at_ms)) / f"{at_ms}~{room}~{day}~{name}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(b"")
    return f"{logs_prefix(room)}{day}/{name}"


def test_a_junk_segment_every_quarter_hour_does_not_make_a_padded_room_list_all_day(
    tmp_path: Path, clock: Clock
) -> None:
    """Red team rt94: the padding above, and the member writes one segment holding no
    event, with its marker, every 16 minutes. Each, read on its marker, is not kept, and
    the room owes a listing: that listing was not paced, listed the room's newest days
    whole (380 pages), and its back-off stops at 16 minutes: 977 requests an hour. Now
    the owed listing lists a page from just before the segment owed (``_list_owed``),
    which reads and keeps it (with its finding); nothing stays unread."""
    store = tmp_path / "store"

    async def run() -> None:
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            _pad(idle.bucket, store, rooms[0], 190_000)
            for state in idle.engine.rooms.values():
                state.last_safety = clock.now  # both listed just now: none due by pace
            every = int(16 * 60 / CONFIG.idle_interval) + 1  # rounds between junk segments
            counts, junk, at = [], [], 0
            for i in range(int(3 * 3600 / CONFIG.idle_interval)):  # 3 hours idle
                if i % every == 0:  # each marker after the last (3 minutes ago, settled)
                    at = max(at + 1, clock.wall_ms() - 180_000)
                    junk.append(_junk_segment(store, rooms[0], at, i))
                counts.append(await idle.round())
            hourly = _hours(counts)
            assert max(hourly) <= BUDGET, hourly  # before: [1233, 850, 849]
            room = idle.engine.rooms[rooms[0]]
            for _ in range(int(16 * 60 / CONFIG.idle_interval) + 1):
                await idle.round()  # the last one's owed listing, 16 minutes on
            assert all(path in room.known for path in junk)  # read by the owed listings
            assert not room.unread and not room.owed_paths and room.listing_owed_at is None
            assert not any(idle.listed)  # no safety listing of the room
        finally:
            await idle.engine.close()

    asyncio.run(run())


def _named_as_segments(store: Path, owed: str, names: int) -> list[str]:
    """A member's junk named as segments are, holding no event: ``names`` empty objects
    in the day folder of segment ``owed``, sorting right after it, so that every one of
    them is on the page an owed listing of ``owed`` takes (from just before it)."""
    folder, _, name = owed.rpartition("/")
    stem = name.removesuffix(".jsonl")
    paths = [f"{folder}/{stem}z{k:04d}.jsonl" for k in range(names)]
    for path in paths:
        (store / path).write_bytes(b"{}\n")
    return paths


def test_junk_named_as_segments_on_an_owed_page_is_read_a_few_at_a_time(
    tmp_path: Path, clock: Clock
) -> None:
    """An owed listing also reads the room's other new segments on the page it took (a
    writer without activity markers: ``Poller._others_shown``). A member who writes an
    empty segment with its marker every 16 minutes (the room owes a listing for each)
    and 999 empty objects named as segments right after it (the rest of that page) must
    not make every reader read a page of objects each time: at most ``OWED_OTHERS_MAX``
    a time, ``OWED_OTHERS_PER_HOUR`` an hour more, per storage. Unbounded, that was 999
    reads per owed listing, about 4,000 an hour; the owed segments are all read."""
    store = tmp_path / "store"

    async def run() -> None:
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            for state in idle.engine.rooms.values():
                state.last_safety = clock.now  # both listed just now: none due by pace
            every = int(16 * 60 / CONFIG.idle_interval) + 1  # rounds between junk segments
            counts, junk_read, owed, padding, at = [], [], [], set(), 0
            for i in range(int(3 * 3600 / CONFIG.idle_interval)):  # 3 hours idle
                if i % every == 0:  # each marker after the last (3 minutes ago, settled)
                    wall = int(clock.module.time() * 1000)  # the poller's wall clock
                    at = max(at + 1, wall - 180_000)
                    owed.append(_junk_segment(store, rooms[0], at, i))
                    padding.update(_named_as_segments(store, owed[-1], 999))
                before = len(idle.bucket.read)
                counts.append(await idle.round())
                junk_read.append(sum(p in padding for p in idle.bucket.read[before:]))
            hourly = _hours(counts)
            assert max(hourly) <= BUDGET, hourly  # unbounded: 4,088 in the first hour
            most = OWED_OTHERS_MAX + OWED_OTHERS_PER_HOUR  # a full budget, and an hour's
            assert max(_hours(junk_read)) <= most, _hours(junk_read)
            assert max(junk_read) <= OWED_OTHERS_MAX, junk_read  # one owed listing's
            assert sum(junk_read) > 0  # taken as they come: read, a few at a time
            room = idle.engine.rooms[rooms[0]]
            for _ in range(int(16 * 60 / CONFIG.idle_interval) + 1):
                await idle.round()  # the last one's owed listing, 16 minutes on
            assert all(path in room.known for path in owed)  # the owed ones: all read
            assert not any(idle.listed)  # no safety listing of the room
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_an_owed_segment_that_is_gone_is_no_longer_unread(tmp_path: Path, clock: Clock) -> None:
    """A read on a notice that failed leaves its segment unread and owed. When the owed
    listing's page (from just before it) does not show it, it is not there: the note
    goes, and nothing else of the room is listed."""
    store = tmp_path / "store"

    async def run() -> None:
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            room.last_safety = clock.now  # listed just now: not due by pace
            at = clock.wall_ms() - 180_000
            path = _junk_segment(store, rooms[0], at, 1)
            await idle.round()  # the marker: read, not kept, owed
            assert path in room.unread and path in room.owed_paths
            (store / path).unlink()
            before = idle.bucket.requests
            await idle.round()  # the owed listing: one page
            assert idle.bucket.requests - before <= 2  # the markers, the page
            assert path not in room.unread and not room.owed_paths
            assert room.listing_owed_at is None
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_an_owed_listing_takes_a_few_pages_and_owes_the_rest(tmp_path: Path, clock: Clock) -> None:
    """Segments owed in six day folders (a member's made-up notices): one owed listing
    takes at most ``OWED_PAGES_MAX`` pages, a page each, the days nearest today first,
    and what it did not reach is owed on (in the order owed), on the back-off; the next
    one lists the rest. None is there: each owed listing ends with nothing unread."""
    store = tmp_path / "store"

    async def run() -> None:
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            room.last_safety = clock.now
            poller_ = idle.engine._poller
            owed = [
                f"{logs_prefix(rooms[0])}2025-01-0{d}/messages_{d}_{d}_x.jsonl" for d in range(1, 7)
            ]
            for path in owed:
                poller_._owe_listing(rooms[0], path)
            assert list(room.owed_paths) == owed
            room.listing_owed_at = clock.now  # due at the next round
            before = Counter(idle.bucket.listings)
            await idle.round()
            listed = [f for f in idle.bucket.listings - before if f.startswith("rooms/")]
            first, rest = owed[-OWED_PAGES_MAX:], owed[:-OWED_PAGES_MAX]  # newest days first
            assert sorted(listed) == [p.rpartition("/")[0] + "/" for p in first]
            assert list(room.owed_paths) == rest
            assert room.listing_owed_at is not None and not any(idle.listed)
            clock.now = room.listing_owed_at
            before = Counter(idle.bucket.listings)
            await idle.round()
            listed = [f for f in idle.bucket.listings - before if f.startswith("rooms/")]
            assert sorted(listed) == [p.rpartition("/")[0] + "/" for p in rest]
            assert not room.owed_paths and room.listing_owed_at is None
        finally:
            await idle.engine.close()

    asyncio.run(run())
