"""A device's chain reaches the storage in its order: a segment that could not be stored
holds back the later segments of its chain (not other devices', not other rooms'), so no
reader ever sees a later segment without the event its first line links to."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from held_storage import Held
from nacl.signing import SigningKey

from bucket_chat_desktop.index import Index
from bucket_chat_desktop.protocol.audit import RoomLedger, TrustState
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.protocol.segment import decode_segment
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import EngineEvent, OutboxChanged
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.writer import RoomWriter

ROOM, OTHER = "room-ordered", "room-other"
ALICE = "alice@example.com"
KEY = SigningKey(bytes([7]) * 32)
CREATED = "2025-09-14T12:00:45.000Z"
# No publisher task (the engine is not started): each round is the test's own.
QUIET = SyncConfig(batch_window=0.0, local_rescan=3600.0, active_interval=3600.0)


def message(body: str) -> list[tuple[str, dict[str, str]]]:
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


def echo(told: list[EngineEvent], body: str) -> tuple[str, str]:
    """The last local-echo state said of the message ``body``, and a word of its error."""
    for e in reversed(told):
        if isinstance(e, OutboxChanged) and any(ev.content.get("body") == body for ev in e.events):
            error = e.error or ""
            for words in ("timed out", "Not a directory"):
                if words in error:
                    return e.state, words
            return e.state, error
    raise AssertionError(f"nothing was said of {body!r}")


def segment_puts(store: Held, room_id: str) -> list[str]:
    logs = logs_prefix(room_id)
    return [p for what, p in store.asked if what == "put" and p.startswith(logs)]


def test_a_segment_not_stored_holds_back_its_chain_until_it_is(tmp_path: Path) -> None:
    async def go() -> None:
        root = tmp_path / "store"
        for room_id in (ROOM, OTHER):
            await RoomWriter(LocalStorage(root), room_id, ALICE, KEY).create_room("R", CREATED)
        failing = True
        logs = logs_prefix(ROOM)
        store = Held(
            root, fail=lambda what, path: failing and what == "put" and path.startswith(logs)
        )
        index = Index.open(tmp_path / "index.sqlite3")
        box = Outbox(tmp_path / "outbox.sqlite3")
        told: list[EngineEvent] = []
        engine = SyncEngine(store, index=index, outbox=box, listener=told.append, config=QUIET)
        try:
            await engine.send(ROOM, ALICE, KEY, message("first: its write times out"))
            await engine.publish_round(everything=True)
            (first,) = segment_puts(store, ROOM)  # tried once; backs off (about a second)

            # The next message's segment is due at once, but its chain waits for the first.
            await engine.send(ROOM, ALICE, KEY, message("second: links to the first"))
            await engine.send(OTHER, ALICE, KEY, message("another room goes on"))
            await engine.publish_round(everything=True)
            assert segment_puts(store, ROOM) == [first]
            assert len(segment_puts(store, OTHER)) == 1  # not held back by the other room

            # Both due (the user retries): the first fails again and the lane stops there.
            box.retry_now()
            await engine.publish_round(everything=True)
            assert segment_puts(store, ROOM) == [first, first]
            assert [p.room_id for p in await engine.pending()] == [ROOM, ROOM]
            # The second message says why it is not out yet, as the outbox's list does.
            assert echo(told, "second: links to the first") == ("sending", "timed out")

            failing = False  # the storage answers: the chain goes out in its order
            box.retry_now()
            await engine.publish_round(everything=True)
            puts = segment_puts(store, ROOM)
            assert puts[:3] == [first] * 3 and len(puts) == 4 and puts[3] != first
            assert box.is_empty()
        finally:
            await engine.close()
            box.close()
            index.close()

        # What a reader finds: one chain, no gap, every message verified.
        ledger = RoomLedger(ROOM)
        for path in sorted((root / logs_prefix(ROOM)).rglob("*.jsonl")):
            rel = str(path.relative_to(root))
            ledger.add_segment(rel, path.read_bytes())
        result = ledger.audit()
        assert result.findings == []
        bodies = [a.event.content.get("body") for a in result.timeline]
        assert bodies[-2:] == ["first: its write times out", "second: links to the first"]
        assert {a.state for a in result.timeline} == {TrustState.VERIFIED}
        assert decode_segment(first, (root / first).read_bytes(), ROOM).findings == []

    asyncio.run(go())


def test_a_chain_held_back_by_an_error_the_user_must_fix_shows_failed_and_flush_gives_up(
    tmp_path: Path,
) -> None:
    """The second segment waits for the first, which only the user can fix: both
    messages show "failed" with the error (not the second "sending" forever), and a
    flush (the CLI's) gives up at once instead of waiting for its deadline."""
    root = tmp_path / "store"
    root.write_text("a file where the shared folder should be")

    async def go() -> None:
        box = Outbox(tmp_path / "out.sqlite3")
        told: list[EngineEvent] = []
        engine = SyncEngine(LocalStorage(root), outbox=box, listener=told.append, config=QUIET)
        try:
            await engine.send(ROOM, ALICE, KEY, message("first"))
            await engine.publish_round(everything=True)
            await engine.send(ROOM, ALICE, KEY, message("second"))
            await engine.publish_round(everything=True)
            # Batched behind a message parked for the user: "not sent" at once, with why.
            assert echo(told, "second") == ("failed", "Not a directory")
            states = [(p.state, p.error) for p in box.pending()]
            assert len(states) == 3  # the join, the first, the second
            assert {s for s, _ in states} == {"failed"}
            assert all(e and "Not a directory" in e for _, e in states)
            publisher = engine._publisher
            real_round, rounds = publisher.publish_round, []

            async def counted_round(**kw: Any) -> int:
                if kw.get("everything"):  # the flush's rounds, not the publisher task's
                    rounds.append(kw)
                return await real_round(**kw)

            publisher.publish_round = counted_round  # type: ignore[method-assign]
            assert not await engine.flush(timeout=30)
            assert len(rounds) == 1, rounds  # given up after one round, not its deadline

            root.unlink()  # fixed: both go, in order
            root.mkdir()
            assert await engine.flush(timeout=5)
            assert box.is_empty()
        finally:
            await engine.close()
            box.close()

    asyncio.run(go())
    ledger = RoomLedger(ROOM)
    for path in sorted((root / logs_prefix(ROOM)).rglob("*.jsonl")):
        ledger.add_segment(str(path.relative_to(root)), path.read_bytes())
    result = ledger.audit()
    assert result.findings == []
    assert [a.event.content.get("body") for a in result.timeline][-2:] == ["first", "second"]


def test_a_restart_says_again_what_waits_for_the_user(tmp_path: Path) -> None:
    """A message that failed for a reason the user must fix, and the one behind it in its
    chain, are tried again only when the user asks: the next start says both "failed",
    with the error (nothing else would say anything of them)."""
    root = tmp_path / "store"
    root.write_text("a file where the shared folder should be")

    async def go() -> None:
        box = Outbox(tmp_path / "out.sqlite3")
        engine = SyncEngine(LocalStorage(root), outbox=box, listener=lambda e: None, config=QUIET)
        try:
            for body in ("first", "second"):
                await engine.send(ROOM, ALICE, KEY, message(body))
                await engine.publish_round(everything=True)
        finally:
            await engine.close()
            box.close()

        box = Outbox(tmp_path / "out.sqlite3")
        told: list[EngineEvent] = []
        engine = SyncEngine(LocalStorage(root), outbox=box, listener=told.append, config=QUIET)
        try:
            await engine.start()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not any(isinstance(e, OutboxChanged) for e in told):
                assert loop.time() < deadline, "nothing was said of the messages waiting"
                await asyncio.sleep(0.01)
            assert echo(told, "first") == ("failed", "Not a directory")
            assert echo(told, "second") == ("failed", "Not a directory")
        finally:
            await engine.close()
            box.close()

    asyncio.run(go())
