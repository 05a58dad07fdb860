"""Objects right in a room's ``logs/`` folder, not in a day folder, are no segment's
(PROTOCOL.md section 2.2): each is an ``unexpected-object`` notice, the room's messages
are kept, one removed since loses its notice at the next listing, and a flood of them
makes no flood of findings. They were ignored without a word (red team rt40: a signed
segment put there was never shown and ``verify`` said nothing)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from test_engine import ROOM, create_room, write_history

from bucket_chat_desktop.protocol.audit import AuditResult
from bucket_chat_desktop.protocol.findings import Kind, Severity
from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import backfill
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.schedule import UNREAD_RETRY

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
            # (its audit may be put off a moment under load: ``keeper.REAUDIT_SHARE``)
            await engine.reaudit(ROOM)
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


def test_names_that_are_not_utf8_right_in_logs_are_notices_under_escaped_names(
    tmp_path: Path,
) -> None:
    """Red team rt41: a file (or a folder holding a copied segment) whose name is not
    UTF-8, right in ``logs/``, stopped every reader's pass ("a fault of this program": the
    lone surrogate could not be saved in the index), and the room was read all over again
    at every round."""
    from bucket_chat_desktop.index import Index

    store = LocalStorage(tmp_path / "store")
    create_room(store)
    write_history(store, days=2, per_day=2)
    logs = tmp_path / "store" / LOGS
    segment = sorted(logs.rglob("*.jsonl"))[0]
    os.mkdir(os.fsencode(logs) + b"/day\xfe")
    with open(os.fsencode(logs) + b"/day\xfe/" + os.fsencode(segment.name), "wb") as fh:
        fh.write(segment.read_bytes())
    with open(os.fsencode(logs) + b"/junk\xff", "wb") as fh:
        fh.write(b"x")

    async def go() -> None:
        engine = SyncEngine(store, index=Index.open(tmp_path / "i.sqlite3"), config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            assert set(loose_notes(room.result)) == {f"{LOGS}day\\xfe", f"{LOGS}junk\\xff"}
            assert room.failure == "" and not room.partial and room.faults == 0
            assert room.result is not None and room.result.clean
            assert len([a for a in room.result.timeline if a.event.body]) == 4
        finally:
            await engine.close()

    asyncio.run(go())


def test_a_pass_a_fault_stops_again_and_again_waits_longer_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault of this program that what the room holds sets off again at every pass
    (forced here) had the room read all over again, and a traceback logged, at every
    safety round: each pass in a row now waits twice as long, up to an hour."""
    store = LocalStorage(tmp_path / "store")
    create_room(store)

    async def broken(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("a fault")

    monkeypatch.setattr(backfill.Backfill, "_read_history", broken)

    async def go() -> None:
        engine = SyncEngine(store, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            waits = []
            for n in range(8):
                if n:  # the open made the first pass
                    await engine._backfill.fetch_history(room)
                waits.append(round(room.last_safety - time.monotonic() + UNREAD_RETRY, -1))
            assert room.faults == 8 and room.partial
            assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]
            assert "fault of this program: RuntimeError: a fault" in room.unlisted[LOGS]
        finally:
            await engine.close()

    asyncio.run(go())


def test_a_name_not_utf8_and_one_written_as_its_escape_are_two_steady_notices(
    tmp_path: Path,
) -> None:
    """Red team rt42: a file whose name holds the byte 0xff and one literally named
    ``junk\\xff`` were shown under one path: one notice for two objects, and in a day
    folder the two took turns, so the room was audited again at every round."""
    store = LocalStorage(tmp_path / "store")
    create_room(store)
    write_history(store, days=1, per_day=1)
    logs = tmp_path / "store" / LOGS
    day = next(p for p in logs.iterdir() if p.is_dir())
    for folder in (logs, day):
        with open(os.fsencode(folder) + b"/junk\xff", "wb") as fh:
            fh.write(b"x")
        (folder / "junk\\xff").write_bytes(b"yyyy")
        old = time.time() - 60
        for name in (os.fsencode(folder) + b"/junk\xff", os.fsencode(folder / "junk\\xff")):
            os.utime(name, (old, old))

    async def go() -> None:
        engine = SyncEngine(store, config=QUIET)
        try:
            room = await engine.open_room(ROOM, background=False)
            shown = set(loose_notes(room.result))
            assert shown == {
                f"{LOGS}junk\\xff",
                f"{LOGS}junk\\\\xff",
                f"{LOGS}{day.name}/junk\\xff",
                f"{LOGS}{day.name}/junk\\\\xff",
            }
            before, result = dict(room.refused), room.result
            for _ in range(3):
                await engine.refresh(ROOM)
                assert dict(room.refused) == before
            assert room.result is result  # nothing changed: no audit again
        finally:
            await engine.close()

    asyncio.run(go())
