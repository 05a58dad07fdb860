"""A file planted where a day's folder must be, on a folder storage (red team rt57).

Every message dated that day was refused ("cannot create folder …: a file has that
name"), every later one of the device's chain waited behind it, ``send`` said it would
be delivered by the next ``sync`` (never so) and ``verify`` noted a stray object. The
refusal now says what it takes, ``send`` says it was refused, the room's audit names
the file for what it does, and once it is moved away the messages go out."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from test_engine import ROOM, create_room

from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.findings import Kind, Severity
from bucket_chat_desktop.protocol.ids import logs_prefix, utc_date
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import outbox as outbox_module
from bucket_chat_desktop.sync.backfill import DAY_TAKEN
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.outbox import Outbox

QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
ALICE = "alice@example.com"
KEY = SigningKey(b"\x01" * 32)


def text(body: str) -> list[tuple[str, dict[str, str]]]:
    return [(MESSAGE, {"body": body, "msgtype": "m.text"})]


def test_a_file_where_todays_folder_must_be_is_said_and_moving_it_away_sends(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    logs = root / logs_prefix(ROOM)
    logs.mkdir(parents=True, exist_ok=True)
    now = int(time.time() * 1000)
    planted = [logs / utc_date(t) for t in (now, now + 86_400_000)]  # today, tomorrow
    for path in planted:
        path.write_bytes(b"squat\n")

    async def go() -> None:
        engine = SyncEngine(store, outbox=Outbox(tmp_path / "outbox.sqlite3"), config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert room.result is not None
            notes = {f.path: f for f in room.result.findings if f.kind is Kind.UNEXPECTED_OBJECT}
            for path in planted:
                where = f"{logs_prefix(ROOM)}{path.name}"
                assert notes[where].message == DAY_TAKEN
                assert notes[where].severity is Severity.NOTICE
            await engine.send(ROOM, ALICE, KEY, text("hello"))
            await engine.send(ROOM, ALICE, KEY, text("and again"))
            assert not await engine.flush(timeout=3)
            assert engine.outbox is not None
            pending = engine.outbox.pending(ROOM)
            # its join and both messages: refused, not waiting for an answer
            assert [p.state for p in pending] == ["failed"] * 3
            error = pending[0].error or ""
            assert f"cannot create folder {planted[0]}: a file has that name" in error
            assert "nothing can be written there until that file is moved away" in error
            planted[0].unlink()  # the user moves it away: the next try sends both
            assert await engine.flush(timeout=10)
            assert engine.outbox.pending(ROOM) == []
        finally:
            await asyncio.wait_for(engine.close(), 20)

    asyncio.run(go())
    stored = "".join(p.read_text() for p in logs.rglob("*.jsonl"))
    assert "hello" in stored and "and again" in stored


def test_refused_messages_go_out_by_themselves_once_the_file_is_moved_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing but a click on "Not sent — click to retry" (or ``bucket-chat sync``) tried
    a refused message again, so a user who never noticed the file moved away had their
    messages stay unsent for ever. A refusal is now tried again by itself on a slow
    back-off (``REFUSED_RETRY``: 10 minutes, then slower, then hourly; shortened here),
    said "failed" meanwhile, and goes out once its cause is gone: no click."""
    monkeypatch.setattr(outbox_module, "REFUSED_RETRY", (0.3, 0.6, 1.2, 2.4))
    root = tmp_path / "store"
    store = LocalStorage(root)
    create_room(store)
    logs = root / logs_prefix(ROOM)
    logs.mkdir(parents=True, exist_ok=True)
    planted = logs / utc_date(int(time.time() * 1000))
    planted.write_bytes(b"squat\n")

    async def go() -> None:
        box = Outbox(tmp_path / "outbox.sqlite3")
        engine = SyncEngine(store, outbox=box, config=QUIET)
        try:
            await engine.open_room(ROOM, background=False)
            await engine.start()  # the app's engine: its publisher's rounds
            await engine.send(ROOM, ALICE, KEY, text("hello"))
            await asyncio.sleep(1.5)  # several tries by themselves, each refused
            pending = box.pending(ROOM)
            assert pending and {p.state for p in pending} == {"failed"}, pending
            tried = box._db.execute("SELECT MAX(tries) FROM segments").fetchone()[0]
            assert tried >= 2, tried
            planted.unlink()  # moved away; nobody clicks anything
            for _ in range(100):
                if not box.pending(ROOM):
                    break
                await asyncio.sleep(0.1)
            assert box.pending(ROOM) == []
        finally:
            await asyncio.wait_for(engine.close(), 20)

    asyncio.run(go())
    stored = "".join(p.read_text() for p in logs.rglob("*.jsonl"))
    assert "hello" in stored
