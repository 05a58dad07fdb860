"""A storage removed and added again at once (``ChatClient.detach``, then ``attach`` of the
same id): its engine of before may still be closing its index and outbox. The new attach
opened them on the loop — the GUI thread — where SQLite waits up to its 30 s busy timeout
for a write under way: the window froze. Now the files are opened off the loop, once the
engine of before released them (a bounded wait, the loop running meanwhile)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from local_client import local_client

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.sync.client import ChatClient, RoomRef
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded

HOLD = 0.5  # seconds a write (or a job of the engine of before) goes on after the detach
ROOM = "room"


@contextlib.asynccontextmanager
async def ticking() -> AsyncIterator[list[float]]:
    """A timer on the loop every 10 ms; yields the list that gets, once the block ended,
    the gaps between its ticks (the longest is the longest the loop was held)."""
    ticks: list[float] = [time.monotonic()]

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.01)
            ticks.append(time.monotonic())

    gaps: list[float] = []
    ticker = asyncio.create_task(tick())
    try:
        yield gaps
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        ticks.append(time.monotonic())
        gaps.extend(b - a for a, b in itertools.pairwise(ticks))


def closed(index: Index | None) -> bool:
    assert index is not None
    try:
        index.known_segments(ROOM)
    except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
        return True
    return False


async def works(client: ChatClient, storage_id: str, events: list[EngineEvent]) -> None:
    """The engine attached now reads, sends and publishes."""
    ref = RoomRef(storage_id, ROOM)
    events.clear()
    await client.create_room(storage_id, ROOM, "Room")
    await client.send_text(ref, "hello again")
    assert await client.flush(storage_id, 5)
    assert any(isinstance(e, RoomLoaded) and e.room_id == ROOM for e in events)
    view = await client.room_view(ref)
    assert view is not None and view.result is not None


def test_attached_again_while_a_write_holds_its_index_the_loop_runs_on(tmp_path: Path) -> None:
    client, entry, events = local_client(tmp_path)

    async def scenario() -> list[float]:
        await client.attach(entry)
        attached = client._storages[entry.id]
        assert attached.index is not None and attached.index.path is not None
        # A write under way in the index (what the engine of before does mid-job), for
        # HOLD seconds from now; SQLite makes every other writer wait for it.
        writing = sqlite3.connect(
            attached.index.path, isolation_level=None, timeout=5, check_same_thread=False
        )
        writing.execute("BEGIN IMMEDIATE")
        ended = threading.Timer(HOLD, writing.execute, ("COMMIT",))
        try:
            async with ticking() as gaps:
                removing = asyncio.ensure_future(client.detach(entry.id))  # as the app does
                ended.start()
                await client.attach(entry)
                await removing
            await works(client, entry.id, events)
        finally:
            ended.join()
            writing.close()
            await client.close()
        return gaps

    gaps = asyncio.run(scenario())
    assert max(gaps) < HOLD / 2, f"the loop was held {max(gaps):.2f} s"


def test_attached_again_while_its_engine_of_before_closes_waits_for_it(tmp_path: Path) -> None:
    """The engine detached finishes its state thread's job before it closes the files
    (a long write, a slice of a back-fill): the new attach waits for that, on the loop
    without holding it, and opens the files once they are closed."""
    client, entry, events = local_client(tmp_path)

    async def scenario() -> list[float]:
        await client.attach(entry)
        old = client._storages[entry.id]
        busy, release = threading.Event(), threading.Event()

        def long_job() -> None:
            busy.set()
            release.wait(5)

        job = asyncio.ensure_future(old.engine._serially(long_job))
        assert await asyncio.to_thread(busy.wait, 5)
        ended = threading.Timer(HOLD, release.set)
        try:
            async with ticking() as gaps:
                removing = asyncio.ensure_future(client.detach(entry.id))
                ended.start()
                await client.attach(entry)
                assert closed(old.index)  # the files of before closed first
                await removing
            await job
            assert client._storages[entry.id].engine is not old.engine
            await works(client, entry.id, events)
        finally:
            release.set()
            ended.join()
            await client.close()
        return gaps

    gaps = asyncio.run(scenario())
    assert max(gaps) < HOLD / 2, f"the loop was held {max(gaps):.2f} s"


def test_an_engine_of_before_that_takes_too_long_to_close_is_not_waited_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, entry, events = local_client(tmp_path)
    client.close_wait = 0.1

    async def scenario() -> None:
        await client.attach(entry)
        old = client._storages[entry.id]
        busy, release = threading.Event(), threading.Event()

        def long_job() -> None:
            busy.set()
            release.wait(5)

        job = asyncio.ensure_future(old.engine._serially(long_job))
        assert await asyncio.to_thread(busy.wait, 5)
        try:
            removing = asyncio.ensure_future(client.detach(entry.id))
            await asyncio.wait_for(client.attach(entry), 2)
            assert not closed(old.index)  # still closing: opened all the same
            await works(client, entry.id, events)
            release.set()
            await removing
            await job
            assert closed(old.index)
        finally:
            release.set()
            await client.close()

    with caplog.at_level(logging.WARNING, logger="bucket_chat"):
        asyncio.run(scenario())
    assert any("still closing" in r.getMessage() for r in caplog.records)


def test_the_last_of_attach_and_detach_wins(tmp_path: Path) -> None:
    """A storage removed while it was being added stays removed (its files are closed,
    no engine runs for it); one added again while attached replaces the one attached."""
    client, entry, events = local_client(tmp_path)

    async def scenario() -> None:
        adding = asyncio.ensure_future(client.attach(entry))
        await asyncio.sleep(0)  # under way: opening its files
        await client.detach(entry.id)
        await adding
        assert not client.is_attached(entry.id)

        await client.attach(entry)
        first = client._storages[entry.id]
        await client.attach(entry)
        assert client._storages[entry.id].engine is not first.engine
        assert closed(first.index)
        await works(client, entry.id, events)
        await client.close()

    asyncio.run(scenario())
    assert [t.name for t in threading.enumerate() if t.name.startswith("bc-")] == []


def test_added_removed_and_added_again_at_once_opens_its_index_once_at_a_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A storage added, removed and added again before its files were open: both adds
    opened the same new index at once on their threads, and one found the other's
    half-made tables, took the index for broken, moved it aside and deleted its journal
    files under the other's open connection (every time). The second add now opens the
    files once the first is done with them, also when the first was cancelled (its
    files are closed once open, off the loop)."""
    client, entry, events = local_client(tmp_path)
    (tmp_path / "cancelled").mkdir()
    other, other_entry, _ = local_client(tmp_path / "cancelled")

    async def scenario() -> None:
        first = asyncio.ensure_future(client.attach(entry))
        await asyncio.sleep(0)  # under way: opening its files
        removing = asyncio.ensure_future(client.detach(entry.id))
        await asyncio.gather(first, removing, client.attach(entry))
        assert client.is_attached(entry.id)
        await works(client, entry.id, events)
        await client.close()

        cancelled = asyncio.ensure_future(other.attach(other_entry))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # opening its files
        cancelled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        await other.attach(other_entry)
        assert other.is_attached(other_entry.id)
        await other.close()

    with caplog.at_level(logging.WARNING, logger="bucket_chat"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()] == []
    assert list(tmp_path.rglob("*.broken-*")) == []
