"""One segment of a room's history that gets no answer holds up neither the room's first
screen nor the rest of its back-fill.

A pass reads a room's segments in chunks (the first screen is the newest eight) and kept
each chunk only once every segment of it was read: one download on a dead connection
held the chunk — and a cold room's first screen, and the back-fill beyond the two chunks
downloaded ahead — until the storage's own timeout times its retries (90 s with the
defaults). Now a chunk is kept once the rest of it is in and its last reads have had
``STRAGGLER_GRACE`` more; a read left behind is kept when it ends (with a later chunk,
or before the pass's final audit, which waits for it), and one that fails is noted as
unread there, as before: nothing is read twice or lost, and the final verdict is the
same.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from held_storage import LIMIT, Held, until
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, StorageOfflineError
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "long-room"
ALICE = "alice@example.com"
KEY = SigningKey(bytes([1]) * 32)
CREATED = "2025-09-14T12:00:45.000Z"
QUIET = SyncConfig(batch_window=0.0, local_rescan=3600.0, active_interval=3600.0)
COUNT = 20  # messages, one segment each: a first screen of 8 and a chunk of the rest


async def _room(root: Path) -> list[str]:
    """The room with ``COUNT`` messages; the path of message n's segment at n. (Not the
    paths sorted: two segments written in one millisecond sort by their names' random
    part, so on a fast machine the third newest name was not always message 17's.)"""
    store = LocalStorage(root)
    alice = RoomWriter(store, ROOM, ALICE, KEY)
    await alice.create_room("Long", CREATED)
    logs = f"rooms/{ROOM}/logs/"
    seen = {i.path for i in await store.list_objects(logs)}  # the room's creation
    paths: list[str] = []
    for n in range(COUNT):
        await alice.send([Draft.text(f"message {n}")])
        (new,) = {i.path for i in await store.list_objects(logs)} - seen
        seen.add(new)
        paths.append(new)
    return paths


def _bodies(event: RoomLoaded) -> set[str]:
    return {a.event.body for a in event.result.timeline if a.event.body}


async def _first_screen(
    engine: SyncEngine, store: Held, seen: list[EngineEvent]
) -> tuple[asyncio.Task[Any], RoomLoaded]:
    """Open the room while ``store`` holds some reads; the opening, and the first screen
    it showed meanwhile."""
    opening = asyncio.create_task(engine.open_room(ROOM, background=False))
    await store.wait_held()
    await until("the first screen", lambda: any(isinstance(e, RoomLoaded) for e in seen))
    return opening, next(e for e in seen if isinstance(e, RoomLoaded))


def test_a_segment_that_gets_no_answer_holds_up_neither_the_first_screen_nor_the_rest(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        root = tmp_path / "store"
        paths = await _room(root)
        stuck = paths[-3]  # in the first screen: the newest eight segments
        store = Held(root, hold=lambda what, path: what == "get" and path == stuck)
        seen: list[EngineEvent] = []
        engine = SyncEngine(store, listener=seen.append, config=QUIET)
        try:
            opening = asyncio.create_task(engine.open_room(ROOM, background=False))
            await store.wait_held()

            def shown() -> set[str]:
                loaded = [e for e in seen if isinstance(e, RoomLoaded)]
                return _bodies(loaded[-1]) if loaded else set()

            # The first screen and then every other message, while that one read hangs.
            others = {f"message {n}" for n in range(COUNT) if n != COUNT - 3}
            await until("everything but the stuck segment shown", lambda: shown() >= others)
            assert f"message {COUNT - 3}" not in shown()
            assert not opening.done()  # the pass waits for it before its final verdict
            store.answering.set()
            room = await asyncio.wait_for(opening, LIMIT)
            assert room.complete and not room.partial
            assert room.result is not None and room.result.findings == []
            assert shown() == others | {f"message {COUNT - 3}"}
            assert sorted(p for w, p in store.asked if w == "get").count(stuck) == 1
        finally:
            await engine.close()

    asyncio.run(go())


class FailsLate(LocalStorage):
    """The folder, except that reading ``stuck`` waits until ``answering`` is set and
    then fails as a request that timed out (the storage's own timeout)."""

    def __init__(self, root: Path, stuck: str) -> None:
        super().__init__(root)
        self.stuck = stuck
        self.answering = asyncio.Event()
        self.waiting = asyncio.Event()

    async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
        if path == self.stuck:
            self.waiting.set()
            await self.answering.wait()
            raise StorageOfflineError(f"cannot read {path}: no answer within 30 s")
        return await super().get(path, max_bytes=max_bytes)


def test_a_segment_left_behind_that_fails_is_noted_unread_as_before(tmp_path: Path) -> None:
    async def go() -> None:
        root = tmp_path / "store"
        paths = await _room(root)
        store = FailsLate(root, paths[-2])
        engine = SyncEngine(store, config=QUIET)
        try:
            opening = asyncio.create_task(engine.open_room(ROOM, background=False))
            await asyncio.wait_for(store.waiting.wait(), LIMIT)
            room = engine.rooms[ROOM]
            await until("the rest kept", lambda: len(room.known) >= COUNT)
            assert not opening.done()
            store.answering.set()
            room = await asyncio.wait_for(opening, LIMIT)
            assert room.complete and room.partial  # not completely read: said, not hidden
            assert room.result is not None
            unreadable = [f for f in room.result.findings if f.kind is Kind.SEGMENT_UNREADABLE]
            assert [f.path for f in unreadable] == [paths[-2]]
            assert "no answer within 30 s" in room.unread[paths[-2]]
        finally:
            await engine.close()

    asyncio.run(go())


def test_a_writers_two_segments_of_one_millisecond_are_read_in_their_order(
    tmp_path: Path,
) -> None:
    """A device's second segment written in the millisecond of its first is named
    ``<client>-r1`` (``path_for``), which as text sorts before the first: the first
    screen, the newest eight names, held the earlier message and everything newer but
    not the later one, a gap in the middle of what was shown until the next chunk came.
    Here everything older than that pair gets no answer, so the first screen shows only
    what it read itself."""
    t0 = 1_757_851_245_000
    stamps = iter([t0, t0 + 1000, t0 + 2000, t0 + 2000] + [t0 + 3000 + 1000 * i for i in range(7)])

    async def go() -> None:
        root = tmp_path / "store"
        alice = RoomWriter(LocalStorage(root), ROOM, ALICE, KEY, clock=lambda: next(stamps))
        await alice.create_room("Long", CREATED)
        written = [
            (await alice.send([Draft.text(f"message {n}")]))[0] for n in range(10)
        ]  # messages 1 and 2 in one millisecond: 2 is named -r1
        assert written[2].endswith("-r1.jsonl") and written[1] > written[2]
        newer = set(written[2:])  # the other reads (the join, messages 0 and 1) hang
        store = Held(
            root,
            hold=lambda what, path: what == "get" and path.endswith(".jsonl") and path not in newer,
        )
        seen: list[EngineEvent] = []
        engine = SyncEngine(store, listener=seen.append, config=QUIET)
        try:
            opening, first = await _first_screen(engine, store, seen)
            assert _bodies(first) == {f"message {n}" for n in range(2, 10)}
            store.answering.set()
            room = await asyncio.wait_for(opening, LIMIT)
            assert room.complete and room.result is not None and room.result.findings == []
            bodies = [a.event.body for a in room.result.timeline if a.event.body]
            assert bodies == [f"message {n}" for n in range(10)]
        finally:
            await engine.close()

    asyncio.run(go())


@pytest.mark.xfail(
    strict=True,
    reason="not fixed: the first screen is the newest day folder's newest names; a "
    "segment of an older day moved into it is shown with it (found by red team rtlocal)",
)
def test_a_segment_moved_into_the_newest_day_hides_nothing_between_what_the_first_screen_shows(
    tmp_path: Path,
) -> None:
    """A member moves their own segment (well signed, its name true) from yesterday's
    folder into today's, which holds few segments: the first screen (today's folder,
    read first) shows that message of yesterday noon and today's, and none of the
    messages of yesterday afternoon between them, which are in yesterday's folder, read
    next. The reference client's local-date folders do the same honestly. Here the
    reads of yesterday's folder get no answer, so the first screen is all there is."""
    hour = 3_600_000
    day = 1_757_721_600_000  # 2025-09-13T00:00Z
    now = [day + 9 * hour]

    async def go() -> None:
        root = tmp_path / "store"
        alice = RoomWriter(LocalStorage(root), ROOM, ALICE, KEY, clock=lambda: now[0])
        await alice.create_room("Long", "2025-09-13T09:00:00.000Z")
        for h in [*range(10, 24), 25, 26]:  # yesterday 10:00-23:00, today 01:00, 02:00
            now[0] = day + h * hour
            await alice.send([Draft.text(f"alice at {h}")])
        now[0] = day + 12 * hour + 5
        mallory = RoomWriter(
            LocalStorage(root),
            ROOM,
            "mallory@example.com",
            SigningKey(bytes([2]) * 32),
            clock=lambda: now[0],
        )
        (moved, _) = await mallory.send([Draft.text("mallory at 12")])
        os.rename(root / moved, root / moved.replace("/2025-09-13/", "/2025-09-14/"))
        store = Held(root, hold=lambda what, path: what == "get" and "/2025-09-13/" in path)
        seen: list[EngineEvent] = []
        engine = SyncEngine(store, listener=seen.append, config=QUIET)
        try:
            opening, first = await _first_screen(engine, store, seen)
            shown = sorted(a.event.timestamp_ms for a in first.result.timeline if a.event.body)
            store.answering.set()
            room = await asyncio.wait_for(opening, LIMIT)
            assert room.result is not None
            every = sorted(a.event.timestamp_ms for a in room.result.timeline if a.event.body)
            between = [t for t in every if shown[0] < t < shown[-1] and t not in shown]
            assert between == [], f"{len(between)} messages hidden between shown ones"
        finally:
            await engine.close()

    asyncio.run(go())
