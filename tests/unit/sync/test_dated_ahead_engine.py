"""A message dated far ahead, through the real engine (local folder, index, watchdog):
held back and named, never found by search, and shown by itself once the clock reaches
an hour before its date, with no other message needed to make the room audit again."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.audit import HOLD_AHEAD_MS, AuditResult
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import keeper
from bucket_chat_desktop.sync.client import ChatClient, RoomRef
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.room_state import SendScan
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ALICE = "alice@example.com"
MALLORY = "mallory@example.com"


def _latest(events: list[tuple[str, EngineEvent]]) -> AuditResult | None:
    for _, event in reversed(events):
        if isinstance(event, RoomLoaded | EventsAppended) and event.room_id == "plans":
            return event.result
    return None


async def _until(events: list[tuple[str, EngineEvent]], test: object, what: str) -> AuditResult:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        result = _latest(events)
        if result is not None and test(result):  # type: ignore[operator]
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"not seen within 15 s: {what}")


def _senders(result: AuditResult) -> list[str]:
    return [a.event.sender_id for a in result.timeline]


def _held(result: AuditResult) -> int:
    return sum(f.kind is Kind.DATED_AHEAD for f in result.findings)


async def _plans(
    client: ChatClient, entry: StorageSettings, events: list[tuple[str, EngineEvent]]
) -> RoomRef:
    """Attach the storage, create the room "plans" and see Alice's first message in it."""
    await client.attach(entry)
    room = await client.create_room(entry.id, "plans", "Plans")
    await client.send_text(room, "planning now")
    await _until(events, lambda r: ALICE in _senders(r), "alice's message")
    return room


def test_a_held_row_is_not_found_and_shows_when_its_time_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, EngineEvent]] = []
    client, entry = _client(tmp_path, events)
    ahead = int(time.time() * 1000) + HOLD_AHEAD_MS + 30 * 60_000  # 90 minutes ahead

    async def scenario() -> None:
        try:
            room = await _plans(client, entry, events)
            mallory = _mallory(tmp_path, itertools.repeat(ahead))
            await mallory.send([Draft.text("planning from the future")])
            engine = client._storages[entry.id].engine
            engine.wake()
            result = await _until(events, lambda r: _held(r) == 2, "her join and message held")
            assert MALLORY not in _senders(result)
            await engine.flush(5)
            await client.open_room(room, wait=True)
            await engine.catch_up_text()
            found = await client.search("planning")
            assert [h.sender_id for h in found.hits] == [ALICE]
            # the clock moves on to an hour before her date: the watchdog audits again
            monkeypatch.setattr(keeper, "now_ms", lambda: ahead - HOLD_AHEAD_MS)
            result = await _until(events, lambda r: MALLORY in _senders(r), "her rows shown")
            assert _held(result) == 0 and _senders(result)[-2:] == [MALLORY, MALLORY]
            found = await client.search("planning")
            assert [h.sender_id for h in found.hits] == [MALLORY, ALICE]
        finally:
            await client.close()

    asyncio.run(scenario())


def _client(tmp_path: Path, events: list[tuple[str, EngineEvent]]) -> tuple[ChatClient, Any]:
    (tmp_path / "store").mkdir()
    entry = StorageSettings(str(tmp_path / "store"), "Share", [])
    client = ChatClient(
        Settings(ALICE, "Alice", [entry]),
        ALICE,
        SigningKey(bytes(range(32))),
        lambda sid, event: events.append((sid, event)),
        data_dir=tmp_path / "alice",
    )
    return client, entry


def _mallory(tmp_path: Path, dates: Iterator[int]) -> RoomWriter:
    return RoomWriter(
        LocalStorage(str(tmp_path / "store")),
        "plans",
        MALLORY,
        SigningKey(b"\x0d" * 32),
        clock=lambda: next(dates),
    )


def test_releases_one_by_one_leave_no_task_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member who dates a message a second apart each, hours ahead, has the room
    released once a second for as long as they like: each release's task used to stay
    in the engine's list until it closed (one more object a second, all day long)."""
    events: list[tuple[str, EngineEvent]] = []
    client, entry = _client(tmp_path, events)
    start = int(time.time() * 1000) + 3 * HOLD_AHEAD_MS
    dates = [start + n * 1000 for n in range(12)]

    async def scenario() -> None:
        try:
            await _plans(client, entry, events)
            mallory = _mallory(tmp_path, iter(dates))
            for n in range(12):
                await mallory.send([Draft.text(f"soon {n}")])
            engine = client._storages[entry.id].engine
            engine.wake()
            await _until(events, lambda r: _held(r) == 13, "her join and messages held")
            tasks = len(engine._tasks)
            ledger = engine.rooms["plans"].ledger
            released = 0
            while (due := ledger.held_from_ms) is not None:  # each one's time comes in turn
                monkeypatch.setattr(keeper, "now_ms", lambda d=due: d - HOLD_AHEAD_MS)
                engine._keeper.release_due()
                left = sum(d > due for d in dates)
                await _until(events, lambda r, n=left: _held(r) == n, f"release at {due}")
                released += 1
            assert released == 12  # her join shares her first message's date
            assert len(engine._tasks) <= tasks + 1
        finally:
            await client.close()

    asyncio.run(scenario())


def test_a_clock_set_back_still_finds_what_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The room's horizon never moves back (PROTOCOL.md section 9): a message shown
    because it was less than an hour ahead stays shown when the clock is set back two
    hours, and search still finds it, and everything else shown (it used to find
    nothing dated after the new clock plus an hour: every recent message)."""
    events: list[tuple[str, EngineEvent]] = []
    client, entry = _client(tmp_path, events)
    now = int(time.time() * 1000)
    soon = now + HOLD_AHEAD_MS // 2

    async def scenario() -> None:
        try:
            room = await _plans(client, entry, events)
            await _mallory(tmp_path, iter([soon])).send([Draft.text("planning soon")])
            engine = client._storages[entry.id].engine
            engine.wake()
            await _until(events, lambda r: MALLORY in _senders(r), "her row shown")
            await engine.flush(5)
            await engine.catch_up_text()
            found = await client.search("planning")
            assert [h.sender_id for h in found.hits] == [MALLORY, ALICE]
            monkeypatch.setattr(keeper, "now_ms", lambda: now - 2 * HOLD_AHEAD_MS)
            await client.send_text(room, "planning later")  # a full audit by that clock
            result = await _until(events, lambda r: len(_senders(r)) == 5, "alice's second")
            assert _senders(result)[-1] == MALLORY and _held(result) == 0
            await engine.flush(5)
            await engine.catch_up_text()
            found = await client.search("planning")
            assert sorted(h.sender_id for h in found.hits) == [ALICE, ALICE, MALLORY]
        finally:
            await client.close()

    asyncio.run(scenario())


def test_a_device_whose_clock_was_once_a_year_ahead_is_shown_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice's computer sent a message with its clock a year ahead (held back, as it
    should be), then its clock was put right. Her next message continued her chain from
    that head and was stamped at its date: held back too, by every reader and by her
    own app, for a year; and so was every message after it."""
    events: list[tuple[str, EngineEvent]] = []
    client, entry = _client(tmp_path, events)
    year_ahead = int(time.time() * 1000) + 365 * 86_400_000
    right = time.time_ns

    async def scenario() -> None:
        try:
            room = await _plans(client, entry, events)
            monkeypatch.setattr(time, "time_ns", lambda: year_ahead * 1_000_000)
            await client.send_text(room, "sent with the clock wrong")  # signed now
            monkeypatch.setattr(time, "time_ns", right)
            await _until(events, lambda r: _held(r) == 1, "her wrongly dated message held")
            await client.send_text(room, "sent with the clock right")
            # her join, her first message and this one; the one dated ahead still held
            result = await _until(events, lambda r: len(_senders(r)) == 3, "her next message")
            assert _held(result) == 1 and result.clean
        finally:
            await client.close()

    asyncio.run(scenario())


def test_messages_behind_one_dated_ahead_are_placed_without_a_full_audit(
    tmp_path: Path,
) -> None:
    """A message dated ten minutes ahead is shown (within the hour) and sorts last until
    its date: the messages that arrive meanwhile are placed before it where a full audit
    places them (``RoomLedger.try_place``), without a full audit, and the index's order
    is what a full audit of its cache (a restart) says."""
    events: list[tuple[str, EngineEvent]] = []
    client, entry = _client(tmp_path, events)
    now = int(time.time() * 1000)
    soon = now + 10 * 60_000

    async def scenario() -> None:
        try:
            room = await _plans(client, entry, events)
            mallory = _mallory(tmp_path, iter([now, soon]))
            await mallory.send([Draft.text("joined")])  # her join and a message, now
            await mallory.send([Draft.text("from a fast clock")])
            engine = client._storages[entry.id].engine
            engine.wake()
            await _until(events, lambda r: len(_senders(r)) == 5, "her rows shown")
            ledger = engine.rooms["plans"].ledger
            audits: list[object] = []
            real = ledger.audit
            ledger.audit = lambda *a, **k: audits.append(1) or real(*a, **k)  # type: ignore[method-assign]
            for n in range(3):
                await client.send_text(room, f"meanwhile {n}")
            result = await _until(events, lambda r: len(_senders(r)) == 8, "alice's three")
            bodies = [a.event.content.get("body") for a in result.timeline]
            assert audits == [] and bodies[-4:] == [None] * 4  # a slim audit: no bodies
            ids = [a.event.event_id for a in result.timeline]
            assert _senders(result)[-4:] == [ALICE, ALICE, ALICE, MALLORY]
            # front ends are told where the rows go: before her row, which moved down
            placed = [e for _, e in events if isinstance(e, EventsAppended) and e.at]
            assert [a.event.content.get("body") for a in placed[-1].items][-1] == "meanwhile 2"
            assert placed and not any(isinstance(e, RoomLoaded) for _, e in events[-3:])
            for e in placed:
                got = [a.event.event_id for a in e.result.timeline[e.at : e.at + len(e.items)]]
                assert got == [a.event.event_id for a in e.items]
                assert e.result.timeline[-1].event.sender_id == MALLORY
            await engine.flush(5)
            assert engine.index is not None
            cached = [r.event.event_id for r in engine.index.newest("plans", 100)]
            assert cached == ids
            view = await engine.cached_room("plans")  # a full audit of what the index holds
            assert view is not None and view.result is not None
            fresh = view.result.timeline
            assert [(a.event.event_id, a.state, a.reason) for a in fresh] == [
                (a.event.event_id, a.state, a.reason) for a in result.timeline
            ]
            assert view.relations == engine.rooms["plans"].relations()
            roster = engine.rooms["plans"].roster()
            assert roster is not None and view.roster is not None
            assert roster == view.roster
            assert audits == []
        finally:
            await client.close()

    asyncio.run(scenario())


def test_a_send_after_rows_were_placed_carries_its_scan_over_exactly(tmp_path: Path) -> None:
    """Messages of three senders placed one by one behind Mallory's, dated ten minutes
    ahead: each placement gives the result a new audit number, and the next send made
    its whole scan of the timeline again (~80 ms at 100,000 rows). The scan is carried
    over each placement instead, and after each one it is the scan made from the first
    row: each device's newest event, the most recently active last (the witness's
    order), and the offers."""
    events: list[tuple[str, EngineEvent]] = []
    client, entry = _client(tmp_path, events)
    now = int(time.time() * 1000)
    store = LocalStorage(str(tmp_path / "store"))
    others = {
        name: RoomWriter(store, "plans", f"{name}@example.com", SigningKey(bytes([n]) * 32))
        for n, name in ((11, "bob"), (12, "carol"))
    }

    async def scenario() -> None:
        try:
            room = await _plans(client, entry, events)
            engine = client._storages[entry.id].engine
            state = engine.rooms["plans"]
            mallory = _mallory(tmp_path, iter([now, now + 10 * 60_000]))
            await mallory.send([Draft.text("joined")])
            for writer in others.values():
                await writer.send([Draft.text("joined")])
            await mallory.send([Draft.text("from a fast clock")])
            engine.wake()
            await _until(events, lambda r: len(_senders(r)) == 9, "everyone's rows shown")
            await client.send_text(room, "first")  # makes the scan: placed before hers
            await _until(events, lambda r: len(_senders(r)) == 10, "alice's first")
            scan = state.scan
            assert scan is not None and _senders(scan.result)[-1] == MALLORY

            def same_as_rebuilt() -> None:
                result = state.result
                assert result is not None and state.scan is scan  # carried, not begun again
                assert scan.result.audit_number == result.audit_number
                scan.result = result
                scan.catch_up()
                fresh = SendScan(result)
                fresh.catch_up()
                assert list(scan.tips.items()) == list(fresh.tips.items())
                assert (scan.first, scan.trusted) == (fresh.first, fresh.trusted)
                assert scan.seen == fresh.seen == len(result.timeline)
                for user, key in scan.offers:
                    assert (
                        fresh.introductions(user, key).offers() == scan.offers[(user, key)].offers()
                    )

            shown = 10
            for name in ("bob", "carol", "bob"):
                await others[name].send([Draft.text(f"meanwhile from {name}")])
                engine.wake()
                shown += 1
                result = await _until(events, lambda r, n=shown: len(_senders(r)) == n, name)
                assert _senders(result)[-2:] == [f"{name}@example.com", MALLORY]
                await engine._serially(same_as_rebuilt, room="plans")
            await client.send_text(room, "second")
            await _until(events, lambda r: len(_senders(r)) == shown + 1, "alice's second")
            await engine._serially(same_as_rebuilt, room="plans")
            assert _senders(scan.result)[-5:] == [
                "bob@example.com",
                "carol@example.com",
                "bob@example.com",
                ALICE,
                MALLORY,
            ]
            assert [ev.sender_id for ev in reversed(scan.tips.values())] == [
                MALLORY,
                ALICE,
                "bob@example.com",
                "carol@example.com",
            ]
        finally:
            await client.close()

    asyncio.run(scenario())
