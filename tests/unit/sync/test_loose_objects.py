"""Objects right in a room's ``logs/`` folder, not in a day folder, are no segment's
(PROTOCOL.md section 2.2): each is an ``unexpected-object`` notice, the room's messages
are kept, one removed since loses its notice at the next listing, and a flood of them
makes no flood of findings. They were ignored without a word (red team rt40: a signed
segment put there was never shown and ``verify`` said nothing)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_engine import ROOM, create_room, write_history

from bucket_chat_desktop.protocol.audit import AuditResult
from bucket_chat_desktop.protocol.findings import Kind, Severity
from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import backfill
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine

QUIET = SyncConfig(batch_window=0.05, local_rescan=3600.0, active_interval=3600.0)
LOGS = logs_prefix(ROOM)


def loose_notes(result: AuditResult | None) -> dict[str, str]:
    assert result is not None
    found = [f for f in result.findings if f.kind is Kind.UNEXPECTED_OBJECT]
    assert all(f.severity is Severity.NOTICE for f in found)
    return {f.path or "": f.message for f in found}


def test_objects_right_in_logs_are_notices_and_go_when_removed(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    create_room(store)
    write_history(store, days=2, per_day=2)
    logs = tmp_path / "store" / LOGS
    segment = sorted(logs.rglob("*.jsonl"))[0]
    planted = {
        "stray.txt": b"hello",
        segment.name: segment.read_bytes(),  # a real segment, a level too high
        "2099-01-01": b"",  # named like a day, a file
    }
    for name, data in planted.items():
        (logs / name).write_bytes(data)

    async def go() -> None:
        engine = SyncEngine(store, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert set(loose_notes(room.result)) == {f"{LOGS}{name}" for name in planted}
            assert "not in a day folder" in loose_notes(room.result)[f"{LOGS}stray.txt"]
            assert room.result is not None and room.result.clean and not room.partial
            bodies = [a.event.body for a in room.result.timeline if a.event.body]
            assert len(bodies) == 4  # the history read, none of it twice
            (logs / "stray.txt").unlink()
            (logs / segment.name).unlink()
            await engine.refresh(ROOM)
            assert set(loose_notes(room.result)) == {f"{LOGS}2099-01-01"}
        finally:
            await engine.close()

    asyncio.run(go())


def test_a_flood_of_objects_in_logs_is_a_few_notices(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    create_room(store)
    logs = tmp_path / "store" / LOGS
    logs.mkdir(parents=True, exist_ok=True)
    for n in range(backfill.LOOSE_NOTED + 25):
        (logs / f"junk-{n:04d}").write_bytes(b"x")

    async def go() -> None:
        engine = SyncEngine(store, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            notes = loose_notes(room.result)
            assert len(notes) == backfill.LOOSE_NOTED + 1
            assert notes[LOGS].startswith("25 more objects right in the room's logs folder")
        finally:
            await engine.close()

    asyncio.run(go())
