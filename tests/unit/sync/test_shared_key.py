"""One key on two devices (a restored key backup), as the app's engine writes with it.

Red team rt72: the laptop's engine had the room open and had read — completely, verified
— the event its own key wrote on the desktop. Its next message still continued the head
recorded in its outbox, forking the key's chain: every reader reported the fork for good,
both devices' messages unverified, and the audit said the key may be in someone else's
hands. A device now continues its key's chain from what it read after its own head
(``Publisher.follow_read``); what it had queued before that read is said, not hidden."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import TrustState
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import SharedKeyQueued
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.session import read_room
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "room-1"
ALICE = "alice@example.com"
CREATED = "2025-09-14T12:00:45.000Z"
QUIET = SyncConfig(batch_window=0.0, local_rescan=3600.0, active_interval=3600.0)
_ids = itertools.count(1)
KEY = SigningKey(bytes([7]) * 32)  # the one key, restored from a backup on the desktop


def unique() -> str:
    return str(uuid.UUID(int=next(_ids), version=4))


def msg(body: str) -> list[tuple[str, dict[str, str]]]:
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


def states_and_findings(store: LocalStorage) -> tuple[dict[str, TrustState], set[Kind]]:
    """A fresh reader's verdict on the room: each message's trust, the findings' kinds."""
    result = asyncio.run(read_room(store, ROOM)).result
    assert result is not None
    states = {a.event.body: a.state for a in result.timeline if a.event.type == MESSAGE}
    return states, {f.kind for f in result.findings}


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(tmp_path / "store")
    asyncio.run(RoomWriter(store, ROOM, ALICE, KEY, unique=unique).create_room("r", CREATED))
    return store


def test_an_open_room_that_read_the_keys_newer_event_is_continued_from_it(
    store: LocalStorage,
) -> None:
    """Red team rt72, finding 1 (the app's path): the laptop writes "one", the desktop
    (same key) "two"; the laptop's open room reads "two" (asserted), then the laptop
    writes "three". It forked from "one"; now it continues "two": no fork, all verified."""

    async def go() -> None:
        laptop_box, desktop_box = Outbox(None), Outbox(None)
        laptop = SyncEngine(store, outbox=laptop_box, config=QUIET)
        desktop = SyncEngine(store, outbox=desktop_box, config=QUIET)
        try:
            await laptop.open_room(ROOM, background=False)
            await laptop.send(ROOM, ALICE, KEY, msg("one"))
            assert await laptop.flush(timeout=10)
            # The desktop, a fresh install with the restored key: continues "one".
            await desktop.send(ROOM, ALICE, KEY, msg("two"))
            assert await desktop.flush(timeout=10)
            # The laptop reads the room again: "two" is in its verified read.
            await laptop.refresh(ROOM)
            await laptop.poll_once()
            view = await laptop.room_view(ROOM)
            assert view is not None and view.result is not None
            seen = [a.event.body for a in view.result.timeline if a.event.type == MESSAGE]
            assert "two" in seen, seen
            await laptop.send(ROOM, ALICE, KEY, msg("three"))
            assert await laptop.flush(timeout=10)
        finally:
            for engine in (laptop, desktop):
                await engine.close()
            laptop_box.close()
            desktop_box.close()

    asyncio.run(go())
    states, kinds = states_and_findings(store)
    assert Kind.FORK not in kinds, kinds
    assert states == dict.fromkeys(["one", "two", "three"], TrustState.VERIFIED), states


def test_a_read_older_than_the_outbox_head_never_moves_it_back(store: LocalStorage) -> None:
    """The head moves only onto events that continue it: the app's open room read the
    room before a script of the same device (its own engine, the same outbox) sent
    "script"; the app's next message continues "script", not the older head its read
    shows (that was red team rt71's fork, from a head taken from a stale view)."""

    async def go() -> None:
        box = Outbox(None)
        app = SyncEngine(store, outbox=box, config=QUIET)
        script = SyncEngine(store, outbox=box, config=QUIET)
        try:
            await app.open_room(ROOM, background=False)
            await app.send(ROOM, ALICE, KEY, msg("one"))
            assert await app.flush(timeout=10)
            await script.send(ROOM, ALICE, KEY, msg("script"))
            assert await script.flush(timeout=10)
            view = await app.room_view(ROOM)
            assert view is not None and view.result is not None
            seen = [a.event.body for a in view.result.timeline if a.event.type == MESSAGE]
            assert "script" not in seen, seen  # the app's read is older than the head
            await app.send(ROOM, ALICE, KEY, msg("app"))
            assert await app.flush(timeout=10)
        finally:
            for engine in (app, script):
                await engine.close()
            box.close()

    asyncio.run(go())
    states, kinds = states_and_findings(store)
    assert Kind.FORK not in kinds, kinds
    assert states == dict.fromkeys(["one", "script", "app"], TrustState.VERIFIED), states


def test_messages_queued_before_the_other_devices_write_are_said(
    store: LocalStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """The laptop queued "offline" on "one" (not delivered: it was offline), the desktop
    wrote "two" on "one" meanwhile, then the laptop read "two". Its queued message was
    signed on the place "two" took: delivered, it forks the chain whatever is done now.
    That is said as a warning naming the room, not left for readers to find."""

    async def go() -> None:
        laptop_box, desktop_box = Outbox(None), Outbox(None)
        laptop = SyncEngine(store, outbox=laptop_box, config=QUIET, listener=events.append)
        desktop = SyncEngine(store, outbox=desktop_box, config=QUIET)
        try:
            await laptop.open_room(ROOM, background=False)
            await laptop.send(ROOM, ALICE, KEY, msg("one"))
            assert await laptop.flush(timeout=10)
            # Queued straight into the outbox, as a send does before any network access;
            # no publish round runs (this engine's publisher task was never started).
            await laptop.send(ROOM, ALICE, KEY, msg("offline"))
            assert [p.state for p in laptop_box.pending(ROOM)] == ["queued"]
            await desktop.send(ROOM, ALICE, KEY, msg("two"))
            assert await desktop.flush(timeout=10)
            await laptop.refresh(ROOM)
            await laptop.poll_once()
            with caplog.at_level(logging.WARNING, logger="bucket_chat.sync"):
                await laptop.send(ROOM, ALICE, KEY, msg("three"))
        finally:
            for engine in (laptop, desktop):
                await engine.close()
            laptop_box.close()
            desktop_box.close()

    events: list[object] = []
    asyncio.run(go())
    said = [r.getMessage() for r in caplog.records if "same key" in r.getMessage()]
    assert len(said) == 1 and repr(ROOM) in said[0], said
    # and to the app, which shows it in its status bar (``EngineBridge``)
    queued = [e for e in events if isinstance(e, SharedKeyQueued)]
    assert queued == [SharedKeyQueued(ROOM, 1)], queued


def test_a_send_looks_only_at_the_rows_after_its_head(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking for what the key wrote after the outbox's head made every row of the room
    at each send (about a microsecond a row on the engine's state thread: a second per
    message in a room of a million). Only the rows from the head on are made: here 400
    rows of another member before the head, three after it."""
    from bucket_chat_desktop.protocol import audit

    bob = SigningKey(bytes([8]) * 32)

    async def go() -> int:
        box = Outbox(None)
        engine = SyncEngine(store, outbox=box, config=QUIET)
        try:
            writer = RoomWriter(store, ROOM, "bob@example.com", bob, unique=unique)
            for start in range(0, 400, 100):
                await writer.send([Draft.text(f"bob {start + i}") for i in range(100)])
            await engine.open_room(ROOM, background=False)
            await engine.send(ROOM, ALICE, KEY, msg("one"))
            assert await engine.flush(timeout=10)
            await writer.send([Draft.text(f"after {i}") for i in range(3)])
            await engine.refresh(ROOM)
            await engine.poll_once()
            made = [0]
            real = audit._event_of

            def counted(c: object) -> object:
                made[0] += 1
                return real(c)  # type: ignore[arg-type]

            monkeypatch.setattr(audit, "_event_of", counted)
            await engine.send(ROOM, ALICE, KEY, msg("two"))
            monkeypatch.setattr(audit, "_event_of", real)
            assert await engine.flush(timeout=10)
            return made[0]
        finally:
            await engine.close()
            box.close()

    made = asyncio.run(go())
    assert made < 50, made
    states, kinds = states_and_findings(store)
    assert Kind.FORK not in kinds and states["two"] is TrustState.VERIFIED, (states, kinds)
