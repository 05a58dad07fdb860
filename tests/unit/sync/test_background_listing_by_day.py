"""A room's background safety listing decides day by day, and an owed listing looks at
the days nearest today first (red team rt96, regressions of the listing budget of rt94).

A background listing of a room on a bucket takes at most ``SAFETY_PAGES_MAX`` pages. It
used to stop at the first day folder that held more names than that (junk a member wrote
there, once: 31,000 empty objects) and throw away what it had listed of the room's other
days: a message written without an activity marker (the reference implementation writes
none, PROTOCOL.md section 15) was never delivered behind other windows, nor by
``bucket-chat sync --follow``. And an owed listing served the names owed in sorted order,
oldest day first: a member's 65 notices of empty segments in old day folders made an
honest message of today wait 3.7 hours.

Same harness as ``test_idle_request_budget.py``: a counting bucket whose listings of a
folder include junk names (``zz-...``, listed only), the poller's clock moved on 45 s a
round, nothing slept or timed. Honest segments are written by ``RoomWriter`` (no marker);
markers by hand."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from nacl.signing import SigningKey
from test_idle_request_budget import CONFIG, Clock, Idle, _idle_for, _rooms, clock  # noqa: F401

from bucket_chat_desktop.protocol.activity import activity_folder
from bucket_chat_desktop.protocol.ids import logs_prefix, utc_date
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.poller import OWED_PAGES_MAX, OWED_PATHS_MAX
from bucket_chat_desktop.sync.schedule import SAFETY_PAGES_MAX, background_period
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

JUNK = 31_000  # past the 30 pages a background listing may take (SAFETY_PAGES_MAX)
DAY_MS = 86_400_000


def _pad_day(idle: Idle, store: Path, room: str, day: str, names: int) -> None:
    folder = store / logs_prefix(room) / day
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zz-real").write_bytes(b"")  # one real object: the folder is a listed day
    idle.bucket.padding[f"{logs_prefix(room)}{day}/"] = names - 1


async def _honest_send(store: Path, room: str, text: str) -> str:
    """An honest member's message, written as the reference implementation writes it: a
    segment in today's day folder, no activity marker."""
    writer = RoomWriter(LocalStorage(store), room, "bob@x", SigningKey(b"\x07" * 32))
    path, _ = await writer.send([Draft.text(text)])
    assert f"/logs/{utc_date(int(time.time() * 1000))}/" in path, path
    return path


def _due(idle: Idle, room: str) -> None:
    """The room's next background listing is due at the next round."""
    state = idle.engine.rooms[room]
    state.last_safety = idle.clock.now - 100 * background_period(CONFIG, len(idle.rooms))


def test_junk_in_yesterdays_folder_does_not_hide_todays_honest_message(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """A member pads YESTERDAY's folder with 31,000 junk names; an honest member then
    writes today (no marker). The background listing lists today first, then yesterday,
    which takes more than its pages: that day is noted, today is used. Before, the whole
    listing failed, its wait grew to 64 hours, and the message was not delivered in 12.
    The room says which day could not be listed, and that new messages of its other days
    are still fetched."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            yesterday = utc_date(int(time.time() * 1000) - DAY_MS)
            _pad_day(idle, store, rooms[0], yesterday, JUNK)
            hidden = await _honest_send(store, rooms[0], "meeting moved to 3pm")
            control = await _honest_send(store, rooms[1], "meeting moved to 3pm")
            await _idle_for(idle, 12)
            assert control in idle.engine.rooms[rooms[1]].known
            padded = idle.engine.rooms[rooms[0]]
            assert hidden in padded.known, padded.unchecked
            assert padded.safety_failures == 0 and list(padded.over_cost) == [yesterday]
            assert padded.unchecked is not None
            why = padded.unchecked[1]
            assert f"its day {yesterday} holds over " in why, why
            assert "new messages of the room's other days are still fetched" in why, why
            assert padded.listing_pages <= SAFETY_PAGES_MAX + 1  # charged what it read
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_junk_in_an_old_day_does_not_hide_every_new_honest_message(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """A member pads an OLD day (ten days ago) with 31,000 junk names before the reader
    opens the room. Opening refuses the junk unread, so that day is one of the days every
    later safety listing lists again (``_noted_days``), after the newest two. It is
    listed last, on its own pages, and noted; today's honest message is delivered.
    Before, every background listing of the room failed there for as long as the junk
    stayed, and dropped the newest days it had listed."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 2)
        idle = Idle(tmp_path, clock, rooms)
        old = utc_date(int(time.time() * 1000) - 10 * DAY_MS)
        _pad_day(idle, store, rooms[0], old, JUNK)
        try:
            await idle.open()
            padded = idle.engine.rooms[rooms[0]]
            assert any(old in f for f in padded.refused_folders), "the old day is not noted"
            hidden = await _honest_send(store, rooms[0], "the server password changed")
            await _idle_for(idle, 12)
            assert hidden in padded.known, padded.unchecked
            assert list(padded.over_cost) == [old] and padded.unchecked is not None
            assert f"its day {old} holds over " in padded.unchecked[1]
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_a_day_noted_too_costly_is_looked_at_a_page_from_the_newest_segment_held_there(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """Once a newest day is noted too costly to list in the background, later background
    listings look at it with one page from just after the newest segment the room holds
    there: a new honest segment written there is delivered, and the listing costs a few
    pages, not 30 again. An older noted day is not listed at all until the room is
    listed whole."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)  # its first message: held, today
        idle = Idle(tmp_path, clock, rooms)
        now = int(time.time() * 1000)
        today, old = utc_date(now), utc_date(now - 10 * DAY_MS)
        _pad_day(idle, store, rooms[0], utc_date(now - DAY_MS), 1)  # yesterday: one object
        _pad_day(idle, store, rooms[0], old, JUNK)  # refused unread on opening: noted
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            _pad_day(idle, store, rooms[0], today, JUNK)
            await idle.round()  # the costly one: both days noted
            assert sorted(room.over_cost) == sorted([today, old])
            assert room.listing_pages <= SAFETY_PAGES_MAX + 1
            late = await _honest_send(store, rooms[0], "written into the padded day")
            _due(idle, rooms[0])
            before = Counter(idle.bucket.listings)
            # The pace paid for the costly listing (``SafetyPace.pay``: 1/90 of the 28
            # requests past the 3 counted, half an hour at one room's pace at most).
            for _ in range(40):
                await idle.round()
                if late in room.known:
                    break
            assert late in room.known
            listed = idle.bucket.listings - before
            assert f"{logs_prefix(rooms[0])}{old}/" not in listed
            assert listed[f"{logs_prefix(rooms[0])}{today}/"] == 1
            assert room.listing_pages == 3  # the days, a page of today, yesterday
            assert room.unchecked is not None and today in room.unchecked[1]
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_a_room_listed_whole_in_front_forgets_the_days_noted_too_costly(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """The junk is removed and the room is looked at, window in front: it is listed whole,
    the days noted too costly are no longer noted, and the room's note goes."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            yesterday = utc_date(int(time.time() * 1000) - DAY_MS)
            _pad_day(idle, store, rooms[0], yesterday, JUNK)
            await idle.round()
            assert list(room.over_cost) == [yesterday] and room.unchecked is not None
            idle.bucket.padding.clear()
            idle.engine.set_window_focused(True)
            idle.engine.focus(rooms[0])
            room.last_safety = clock.now - CONFIG.focused_safety
            await idle.round()
            assert not room.over_cost and room.unchecked is None
        finally:
            await idle.engine.close()

    asyncio.run(run())


def _marker(store: Path, room: str, published_ms: int, segment: str) -> None:
    """An activity marker in today's activity folder naming ``segment``."""
    day, name = segment.split("/")[3], segment.rpartition("/")[2]
    marker = store / activity_folder(utc_date(published_ms)) / f"{published_ms}~{room}~{day}~{name}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(b"")


def _empty_segment(store: Path, room: str, day: str, at_ms: int, n: int) -> str:
    """A member's segment holding no event (``{}``) in day folder ``day``: read on a
    marker it is "not the whole object" (``backfill._hinted_doubt``): owed."""
    name = f"messages_{at_ms}_{at_ms}_mallory{n}.jsonl"
    segment = store / logs_prefix(room) / day / name
    segment.parent.mkdir(parents=True, exist_ok=True)
    segment.write_bytes(b"{}\n")
    return f"{logs_prefix(room)}{day}/{name}"


def test_junk_owed_in_older_folders_does_not_starve_an_honest_owed_segment(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """An honest member sends a message WITH its marker. In the same minute a member
    writes 65 markers dated just after it, each naming an empty segment in a different
    OLD day folder. The marker queue holds 64: the honest one, oldest queued, is owed a
    listing instead; each junk read is refused and owed too. The owed listing looks at
    the days nearest today first: the honest segment is delivered by the first one.
    Before, the old folders sorted first, 4 pages a time on the back-off: 222 minutes."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            room.last_safety = clock.now  # listed just now: its next one 4 hours on
            honest = await _honest_send(store, rooms[0], "the release is blocked, do not ship")
            t = clock.wall_ms() - 180_000  # settled (2 minutes) markers, by the poller
            _marker(store, rooms[0], t, honest)
            for n in range(65):
                old = utc_date(t - (n + 30) * DAY_MS)
                _marker(store, rooms[0], t + 1 + n, _empty_segment(store, rooms[0], old, t, n))
            rounds = 0
            while honest not in room.known and rounds < 4:  # 3 minutes
                await idle.round()
                rounds += 1
            assert honest in room.known, (rounds, honest in room.owed_paths)
            assert not any(idle.listed)  # by an owed listing, not the room's safety listing
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_a_full_owed_list_drops_the_farthest_day_for_a_nearer_one(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """``OWED_PATHS_MAX`` names owed in old days, then one of today: the one of the day
    farthest from today (the last owed of those) goes, today's is kept. One of an old day
    owed then is the one dropped; the newest days are not looked at for it."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            poller_ = idle.engine._poller
            prefix = logs_prefix(rooms[0])
            old = [
                f"{prefix}{2000 + n // 12}-{n % 12 + 1:02d}-01/messages_{n}_{n}_x.jsonl"
                for n in range(OWED_PATHS_MAX)
            ]
            for path in old:
                poller_._owe_listing(rooms[0], path)
            today = f"{prefix}{utc_date(int(time.time() * 1000))}/messages_1_1_y.jsonl"
            poller_._owe_listing(rooms[0], today)
            assert today in room.owed_paths and old[0] not in room.owed_paths
            assert len(room.owed_paths) == OWED_PATHS_MAX and not room.owed_newest
            older = f"{prefix}1999-01-01/messages_0_0_z.jsonl"
            poller_._owe_listing(rooms[0], older)
            assert older not in room.owed_paths and not room.owed_newest
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_an_owed_segment_of_today_dropped_from_a_full_list_is_found_by_a_page_of_today(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """Today's folder: ``OWED_PATHS_MAX`` names owed there (a member's), then an honest
    segment's read fails and it is owed too, past what the room keeps. It is not dropped
    for nothing: the next owed listing looks at the room's newest days first, a page
    each from just after the newest segment held there, finds it and keeps it, within
    ``OWED_PAGES_MAX`` pages."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            room.last_safety = clock.now  # not due by pace
            poller_ = idle.engine._poller
            today = utc_date(int(time.time() * 1000))
            prefix = f"{logs_prefix(rooms[0])}{today}/"
            for n in range(OWED_PATHS_MAX):
                poller_._owe_listing(rooms[0], f"{prefix}messages_9{n:03d}_9_x.jsonl")
            honest = await _honest_send(store, rooms[0], "owed past the list")
            poller_._owe_listing(rooms[0], honest)
            assert honest not in room.owed_paths and room.owed_newest
            room.listing_owed_at = clock.now  # due at the next round
            before = idle.bucket.requests
            await idle.round()
            assert honest in room.known and not room.owed_newest
            assert not any(idle.listed)  # an owed listing, not the safety listing
            assert idle.bucket.requests - before <= 1 + OWED_PAGES_MAX + 1  # + its read
        finally:
            await idle.engine.close()

    asyncio.run(run())


def test_an_owed_listing_delivers_a_message_without_a_marker_on_its_page(
    tmp_path: Path,
    clock: Clock,  # noqa: F811
) -> None:
    """Review (rev1 #2): a member's empty segment with its marker makes the room owe a
    listing, whose page (from just before that segment) also shows an honest message
    written after it without a marker (the reference implementation). The owed listing
    read only what it owed: the message waited for the room's next safety listing, 4
    hours on behind other windows. Now it takes the new segments on the page it paid
    for too (a few: ``OWED_OTHERS_MAX``), and the message arrives with it."""

    async def run() -> None:
        store = tmp_path / "store"
        rooms = await _rooms(store, 1)
        idle = Idle(tmp_path, clock, rooms)
        try:
            await idle.open()
            room = idle.engine.rooms[rooms[0]]
            room.last_safety = clock.now  # listed just now: its next one 4 hours on
            now = int(clock.module.time() * 1000)  # the poller's wall clock
            t = max(now - 180_000, now - now % DAY_MS)  # a settled marker, of today
            owed = _empty_segment(store, rooms[0], utc_date(t), t, 1)
            _marker(store, rooms[0], t, owed)
            honest = await _honest_send(store, rooms[0], "no marker for this one")
            assert honest > owed  # on the page from just before the owed segment
            rounds = 0
            while honest not in room.known and rounds < 4:  # 3 minutes
                await idle.round()
                rounds += 1
            assert honest in room.known, (rounds, owed in room.known)
            assert owed in room.known and not room.owed_paths
            assert not any(idle.listed)  # by the owed listing, not the safety listing
        finally:
            await idle.engine.close()

    asyncio.run(run())
