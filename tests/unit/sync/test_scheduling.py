"""How the engine schedules its work (docs/SCHEDULING.md): a room being opened is shown
while another room's back-fill is held mid-way on the state thread; the state thread's
interactive lane goes first but never reorders one room's jobs; sends read what they need
from the timeline incrementally, on the state thread. Real folders, real index files."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey
from waiting import until

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import (
    DEVICE_ACCEPT_FIELD,
    DEVICE_ADD_FIELD,
    offered_introductions,
)
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import FIRST_CHUNK, SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, RoomLoaded, WarmTimeline
from bucket_chat_desktop.sync.lanes import StateWorker
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.publisher import send_context
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

SMALL, BIG = "small-room", "big-room"
ALICE, BOB = "alice@example.com", "bob@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)


def key(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


def write_rooms(store: LocalStorage) -> None:
    """A small room of 5 messages; a big one of 40 segments (several back-fill chunks)."""

    async def go() -> None:
        for room in (SMALL, BIG):
            await RoomWriter(store, room, ALICE, key(1)).write_metadata(room, CREATED)
        small = RoomWriter(store, SMALL, ALICE, key(1))
        await small.send([Draft.text(f"small {i}") for i in range(5)])
        writers = [RoomWriter(store, BIG, u, key(s)) for u, s in ((ALICE, 1), (BOB, 2))]
        for i in range(4 * FIRST_CHUNK + 8):
            await writers[i % 2].send([Draft.text(f"big {i}")])

    asyncio.run(go())


def test_a_room_opened_during_another_rooms_back_fill_is_shown_while_that_is_held(
    tmp_path: Path,
) -> None:
    """The big room's back-fill is held on the state thread in the middle (its second
    indexing job waits at a gate). Opening the small room meanwhile shows its cached rows
    and answers ``room_view`` at once: neither waits for the held back-fill. Before, every
    read of the index went through the one serial worker, behind the back-fill."""
    store = LocalStorage(tmp_path / "store")
    write_rooms(store)
    db = tmp_path / "index.sqlite3"

    async def warm_small() -> None:  # this device read the small room before
        index = Index.open(db)
        engine = SyncEngine(store, index=index, config=QUIET)
        try:
            await engine.open_room(SMALL, background=False)
        finally:
            await engine.close()
            index.close()

    asyncio.run(warm_small())
    events: list[EngineEvent] = []
    gate = threading.Event()
    held = threading.Event()

    async def scenario() -> None:
        index = Index.open(db)
        engine = SyncEngine(store, index=index, listener=events.append, config=QUIET)
        real = engine._keeper._ingest_serial

        def hold_the_back_fill(room: Any, *args: Any) -> Any:
            if room.room_id == BIG and room.result is not None:  # after its first screen
                held.set()
                gate.wait()
            return real(room, *args)

        engine._keeper._ingest_serial = hold_the_back_fill  # type: ignore[method-assign]
        try:
            await engine.open_room(BIG, focus=False)
            backfill = engine.rooms[BIG].backfill
            assert backfill is not None
            await until(held.is_set)  # the state thread is held inside the back-fill
            opening = asyncio.create_task(engine.open_room(SMALL, focus=True))

            def small_shown() -> bool:
                return any(isinstance(e, WarmTimeline) and e.room_id == SMALL for e in events)

            await until(small_shown)
            assert not gate.is_set() and not backfill.done()
            shown = next(e for e in events if isinstance(e, WarmTimeline) and e.room_id == SMALL)
            assert [r.event.body for r in shown.rows if r.event.type == MESSAGE] == [
                f"small {i}" for i in range(5)
            ]
            # front ends' questions are answered from published snapshots meanwhile
            big_view = await asyncio.wait_for(engine.room_view(BIG), 20)
            assert big_view is not None and big_view.result is not None
            assert not big_view.complete  # the first screen: the back-fill is not done
            assert await asyncio.wait_for(engine.room_view(SMALL), 20) is not None
            assert await asyncio.wait_for(engine.last_read(SMALL), 20) is not None
            assert not gate.is_set() and not backfill.done()

            gate.set()
            await opening
            await backfill
            small_view = await engine.room_view(SMALL)
            assert small_view is not None and small_view.complete
            big_done = await engine.room_view(BIG)
            assert big_done is not None and big_done.complete and big_done.result is not None
            bodies = [a.event.body for a in big_done.result.timeline if a.event.type == MESSAGE]
            assert sorted(bodies) == sorted(f"big {i}" for i in range(4 * FIRST_CHUNK + 8))
            assert big_done.result.clean
            # what the back-fill keeps is out of the cycle collector's full scans (which
            # hold the GIL: the GUI thread's too) until the engine closes
            assert gc.get_freeze_count() > 0
        finally:
            gate.set()
            await engine.close()
            index.close()
        assert gc.get_freeze_count() == 0

    asyncio.run(scenario())
    loaded = [e for e in events if isinstance(e, RoomLoaded) and e.room_id == SMALL]
    assert loaded and loaded[-1].complete and loaded[-1].result.clean


def test_the_interactive_lane_goes_first_but_never_reorders_a_room() -> None:
    """Background jobs of room A are queued behind a running job; an interactive job of
    room B overtakes them, an interactive job of room A runs after A's queued jobs
    (they are promoted with it), and jobs of no room keep their order."""
    worker = StateWorker("test-lanes")
    gate = threading.Event()
    order: list[str] = []
    try:
        running = worker.submit(gate.wait)
        deadline = time.monotonic() + 20
        while not running.running() and time.monotonic() < deadline:
            time.sleep(0.001)  # the worker has taken it: the rest queue behind
        futures = [
            worker.submit(order.append, "a1", room="A"),
            worker.submit(order.append, "none1"),
            worker.submit(order.append, "a2", room="A"),
            worker.submit(order.append, "b-interactive", room="B", interactive=True),
            worker.submit(order.append, "a-interactive", room="A", interactive=True),
            worker.submit(order.append, "none2"),
        ]
        assert worker.pending() == 6
        gate.set()
        for future in [running, *futures]:
            future.result(timeout=20)
    finally:
        gate.set()
        worker.shutdown()
    assert order == ["b-interactive", "a1", "a2", "a-interactive", "none1", "none2"]


def test_a_job_whose_caller_gave_up_is_skipped_and_errors_reach_the_caller() -> None:
    worker = StateWorker("test-lanes")
    gate = threading.Event()
    ran: list[str] = []
    try:
        worker.submit(gate.wait)
        dropped = worker.submit(ran.append, "dropped")
        assert dropped.cancel()
        failing = worker.submit(int, "not a number", interactive=True)
        gate.set()
        try:
            failing.result(timeout=20)
        except ValueError:
            pass
        else:
            raise AssertionError("the job's error did not reach its caller")
        worker.submit(ran.append, "kept").result(timeout=20)
    finally:
        gate.set()
        worker.shutdown()
    assert ran == ["kept"]


def test_sends_read_introductions_and_witness_incrementally_as_a_full_scan_would(
    tmp_path: Path,
) -> None:
    """Alice's new device (key 3) is introduced in the room by her first device (not
    confirmed here) and by a key nobody introduced; messages keep arriving. After each
    arrival, what the engine's send context holds (kept up to date from what was
    appended) equals a full scan of the timeline, and the send's witness names the other
    devices' newest events."""
    store = LocalStorage(tmp_path / "store")
    new_key = key(3)
    new_text = b64encode(bytes(new_key.verify_key))

    async def go() -> None:
        await RoomWriter(store, SMALL, ALICE, key(1)).write_metadata(SMALL, CREATED)
        old = RoomWriter(store, SMALL, ALICE, key(1))
        other = RoomWriter(store, SMALL, ALICE, key(4))
        bob = RoomWriter(store, SMALL, BOB, key(2))
        await old.send([Draft(MEMBER, {"membership": "join", DEVICE_ADD_FIELD: new_text})])
        await bob.send([Draft.text("hello")])
        index = Index.open(tmp_path / "index.sqlite3")
        outbox = Outbox(tmp_path / "outbox.sqlite3")
        engine = SyncEngine(store, index=index, outbox=outbox, config=QUIET)
        try:
            room = await engine.open_room(SMALL, background=False)
            for step in range(4):
                if step == 1:
                    await other.send(
                        [Draft(MEMBER, {"membership": "join", DEVICE_ADD_FIELD: new_text})]
                    )
                path, _ = await bob.send([Draft.text(f"bob {step}")])
                assert await engine.fetch_segment(SMALL, path)
                context = await engine._serially(
                    send_context, room, ALICE, new_text, room=SMALL, interactive=True
                )
                assert context is not None
                settled, offers, tips, _ = context
                assert room.result is not None
                timeline = room.result.timeline
                shown = [(a.event, a.state) for a in timeline]
                assert settled
                assert offers == offered_introductions(shown, ALICE, new_text)
                newest: dict[str, str] = {}
                for a in reversed(timeline):
                    if a.event.sender_key and a.event.sender_key not in newest:
                        newest[a.event.sender_key] = a.event.hash
                assert [ev.hash for ev in tips] == list(newest.values())
            sent = await engine.send(SMALL, ALICE, new_key, [(MESSAGE, {"body": "hi"})])
            assert sent[-1].content.get("body") == "hi"
            assert not any(DEVICE_ACCEPT_FIELD in ev.content for ev in sent)  # none accepted
            # Alice's first device offers (unconfirmed here: not accepted); the statement
            # of a key nobody introduced (key 4) offers nothing
            assert offers == [b64encode(bytes(key(1).verify_key))]
            # the witness: every other device's newest event, from the incremental tips
            assert sent[0].raw["witness"] == {k: h for k, h in newest.items() if k != new_text}
        finally:
            await engine.close()
            index.close()
            outbox.close()

    asyncio.run(go())


def test_activity_ends_a_watched_folders_long_wait_as_a_buckets(tmp_path: Path) -> None:
    """A watched folder's activity markers keep the bucket schedule (what its watch cannot
    see: tests/unit/sync/test_watch_runs_out.py), so activity ends its long wait too: it
    was left out when a watched folder was only rescanned, and the markers were then
    listed "every second after activity" only once the wait already begun had run out."""
    root = tmp_path / "store"
    writer = RoomWriter(LocalStorage(root), SMALL, ALICE, SigningKey(b"\x01" * 32))
    asyncio.run(writer.write_metadata(SMALL, CREATED))
    # Never "active" by the clock (active_window 0): each wait doubles the last, up to an
    # hour; the rescan an hour away too.
    slow = SyncConfig(
        batch_window=0.05,
        local_rescan=3600.0,
        active_interval=0.05,
        active_window=0.0,
        focused_interval=3600.0,
        idle_interval=3600.0,
    )

    async def go() -> None:
        engine = SyncEngine(LocalStorage(root), config=slow)
        try:
            await engine.start()
            poller = engine._poller
            await poller.watch_settled()  # set up on a thread of its own
            assert poller.watching
            # As after a long lull: the next wait grows to the hour.
            poller.next_poll_in = 1800.0
            polls = engine.polls
            engine.wake()
            await until(lambda: engine.polls > polls and poller.next_wait() == 3600.0)
            polls = engine.polls
            engine._note_activity()  # a send, a message read, the person
            await until(lambda: engine.polls > polls)  # not an hour later
        finally:
            await engine.close()

    asyncio.run(go())
