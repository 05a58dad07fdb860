"""A room rebuilt from this device's index (``SyncEngine.cached_room``, which ``history``,
``verify`` and ``chat`` fall back to when the storage does not answer; the app's warm open)
is judged by exactly the rules of the read whose rows it restores, never warmer.

Red team rt78: a read that was complete but partial (a segment abandoned after too many
bad lines: the final rules, nobody trusted on first use) was saved as "not complete", and
the rebuild applied the provisional rules, which take every key nobody introduced yet: an
impostor writing as alice@ with her own key, ``key-changed`` (with a ``key-conflict``
finding) in the read, came back "verified" and the finding was gone. The index now keeps
both facts (``history_complete``, ``history_partial``), and a rebuild judged better than
the saved timeline is audited by the coldest rules."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

from held_storage import Held, hold_all, until
from nacl.signing import SigningKey

from bucket_chat_desktop.cli import related
from bucket_chat_desktop.index import Index
from bucket_chat_desktop.index.db import _MIGRATIONS
from bucket_chat_desktop.protocol.audit import TrustState
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.ids import client_id_for, segment_path
from bucket_chat_desktop.protocol.metadata import build_metadata
from bucket_chat_desktop.protocol.segment import MAX_BAD_LINES, encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.engine import SyncConfig, SyncEngine
from bucket_chat_desktop.sync.events import RoomLoaded
from bucket_chat_desktop.sync.room_state import SAVED_PARTIAL_NOTE

ROOM = "room-1"
ALICE = "alice@example.com"
ALICE_KEY, EVE_KEY = SigningKey(b"\x01" * 32), SigningKey(b"\x03" * 32)
T0 = 1764000000000
QUIET = SyncConfig(
    batch_window=0.05, local_rescan=3600.0, active_interval=3600.0, process_min_bytes=1 << 40
)
IMPOSTOR = segment_path(ROOM, T0 + 5, T0 + 6, "imp")
JUNK = segment_path(ROOM, T0 + 20, T0 + 20, "junk")


def _ev(key: SigningKey, ts: int, n: int, prev: str | None, etype: str, content: Any) -> Event:
    return build_event(
        room_id=ROOM,
        sender_id=ALICE,
        event_type=etype,
        content=content,
        timestamp_ms=ts,
        unique=f"00000000-0000-4000-8000-{n:012d}",
        prev_event_hash=prev,
        signing_key=key,
    )


def _write(store: Path, path: str, data: bytes) -> None:
    (store / path).parent.mkdir(parents=True, exist_ok=True)
    (store / path).write_bytes(data)


def _alice_path() -> str:
    join = _ev(ALICE_KEY, T0, 1, None, MEMBER, {"membership": "join"})
    hello = _ev(ALICE_KEY, T0 + 1, 2, join.hash, MESSAGE, {"msgtype": "m.text", "body": "hi"})
    return path_for([join, hello], client_id_for(ALICE, bytes(ALICE_KEY.verify_key)))


def _store(store: Path, *, junk: bool = True) -> None:
    (store / "rooms" / ROOM).mkdir(parents=True)
    (store / "rooms" / ROOM / "metadata.json").write_bytes(
        build_metadata(
            room_id=ROOM,
            name="R",
            created_at="2025-11-24T00:00:00.000Z",
            creator_id=ALICE,
            signing_key=ALICE_KEY,
        )
    )
    join = _ev(ALICE_KEY, T0, 1, None, MEMBER, {"membership": "join"})
    hello = _ev(ALICE_KEY, T0 + 1, 2, join.hash, MESSAGE, {"msgtype": "m.text", "body": "hi"})
    _write(store, _alice_path(), encode_segment([join, hello]))
    # Eve (a member) writes as Alice with her own key ...
    fake_join = _ev(EVE_KEY, T0 + 5, 5, None, MEMBER, {"membership": "join"})
    fake = _ev(EVE_KEY, T0 + 6, 6, fake_join.hash, MESSAGE, {"msgtype": "m.text", "body": "pw?"})
    _write(store, IMPOSTOR, encode_segment([fake_join, fake]))
    if junk:  # ... and a segment of junk lines makes the read partial (abandoned).
        _write(store, JUNK, b"x\n" * (MAX_BAD_LINES + 5))


def _impostor_states(result: Any) -> list[TrustState]:
    return [a.state for a in result.timeline if a.path == IMPOSTOR]


async def _cold(store: Path, db: Path, *, partial: bool = True) -> Any:
    engine = SyncEngine(LocalStorage(str(store)), index=Index.open(db), config=QUIET)
    try:
        room = await engine.open_room(ROOM, background=False)
        assert room.complete and room.partial is partial
        return room.result
    finally:
        await engine.close()


async def _cached_view(store: Path, db: Path) -> Any:
    engine = SyncEngine(LocalStorage(str(store)), index=Index.open(db), config=QUIET)
    try:
        view = await engine.cached_room(ROOM)
        assert view is not None and view.result is not None
        return view
    finally:
        await engine.close()


async def _cached(store: Path, db: Path) -> Any:
    return (await _cached_view(store, db)).result


async def _warm_while_storage_hangs(store: Path, db: Path) -> list[RoomLoaded]:
    loaded: list[RoomLoaded] = []

    def listen(event: Any) -> None:
        if isinstance(event, RoomLoaded):
            loaded.append(event)

    held = Held(store, hold=hold_all)
    engine = SyncEngine(held, index=Index.open(db), config=QUIET, listener=listen)
    opening = asyncio.create_task(engine.open_room(ROOM, background=True))
    try:
        # the warm rebuild's RoomLoaded needs no request answered
        await until("the warm rebuild's RoomLoaded", lambda: bool(loaded))
        return list(loaded)  # what the window shows while the storage does not answer
    finally:
        held.answering.set()
        await opening
        await engine.close()


def _prepared(tmp_path: Path, *, junk: bool = True) -> tuple[Path, Path, Any]:
    store = tmp_path / "store"
    _store(store, junk=junk)
    (tmp_path / "idx").mkdir()
    db = tmp_path / "idx" / "index.db"
    cold = asyncio.run(_cold(store, db, partial=junk))
    # the device's own last read: the impostor is not trusted, and says why
    assert _impostor_states(cold) and TrustState.VERIFIED not in _impostor_states(cold)
    assert any(f.kind is Kind.KEY_CONFLICT for f in cold.findings)
    return store, db, cold


def test_the_cached_view_of_a_partial_read_keeps_the_impostor_unverified(
    tmp_path: Path,
) -> None:
    store, db, cold = _prepared(tmp_path)
    cached = asyncio.run(_cached(store, db))
    assert TrustState.VERIFIED not in _impostor_states(cached), (
        "the cached view shows the impostor's rows as verified; the last read said "
        f"{[s.value for s in _impostor_states(cold)]}"
    )
    assert any(f.kind is Kind.KEY_CONFLICT for f in cached.findings)


def test_a_warm_open_of_a_partial_read_keeps_the_impostor_unverified(
    tmp_path: Path,
) -> None:
    store, db, _ = _prepared(tmp_path)
    loaded = asyncio.run(_warm_while_storage_hangs(store, db))
    assert loaded, "no RoomLoaded from the warm rebuild"
    for event in loaded:
        assert TrustState.VERIFIED not in _impostor_states(event.result), (
            "the warm open shows the impostor's rows as verified while the storage hangs"
        )


def _states(result: Any) -> list[tuple[str, TrustState]]:
    return [(a.event.event_id, a.state) for a in result.timeline]


def _saved_partial(result: Any) -> bool:
    return any(f.kind is Kind.UNREAD and SAVED_PARTIAL_NOTE in f.message for f in result.findings)


def test_a_partial_read_the_cache_does_not_show_is_still_rebuilt_as_partial(
    tmp_path: Path,
) -> None:
    """What made the read partial was never cached (an object that could not be read):
    the rebuilt room holds nothing unreadable, and only the saved fact keeps it partial
    (no trust on first use), with a finding that says so."""
    store = tmp_path / "store"
    _store(store, junk=False)
    unreadable = store / segment_path(ROOM, T0 + 20, T0 + 20, "fifo")
    unreadable.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(unreadable)  # listed, never read (nor cached)
    (tmp_path / "idx").mkdir()
    db = tmp_path / "idx" / "index.db"
    cold = asyncio.run(_cold(store, db, partial=True))
    assert TrustState.VERIFIED not in _impostor_states(cold)
    view = asyncio.run(_cached_view(store, db))
    assert view.complete and view.partial
    assert _states(view.result) == _states(cold)
    assert any(f.kind is Kind.KEY_CONFLICT for f in view.result.findings)
    assert _saved_partial(view.result)


def test_a_room_read_partial_then_whole_is_rebuilt_whole(tmp_path: Path) -> None:
    """The saved facts are the last full read's: once a read is whole, the rebuild is by
    the whole read's rules again, and no note of a partial read stays."""
    store = tmp_path / "store"
    _store(store, junk=False)
    unreadable = store / segment_path(ROOM, T0 + 20, T0 + 20, "fifo")
    unreadable.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(unreadable)
    (tmp_path / "idx").mkdir()
    db = tmp_path / "idx" / "index.db"
    asyncio.run(_cold(store, db, partial=True))
    unreadable.unlink()  # never read: it is not "vanished", the next read is whole
    whole = asyncio.run(_cold(store, db, partial=False))
    view = asyncio.run(_cached_view(store, db))
    assert view.complete and not view.partial
    assert _states(view.result) == _states(whole)
    assert not _saved_partial(view.result)
    index = Index.open(db)
    try:
        assert index.room(ROOM) is not None
        assert (index.room(ROOM) or {})["history_partial"] == 0
    finally:
        index.close()


def test_a_damaged_cached_segment_makes_the_rebuild_partial_not_provisional(
    tmp_path: Path,
) -> None:
    """A whole read, then one of alice's cached lines damaged: the rebuilt room is the
    whole read's less a segment (partial: nobody trusted on first use), never a room
    judged by the provisional rules, which took the impostor's key as hers."""
    store, db, _ = _prepared(tmp_path, junk=False)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE events SET raw = 'not json' WHERE path = ?", (_alice_path(),))
    conn.commit()
    conn.close()
    view = asyncio.run(_cached_view(store, db))
    assert view.complete and view.partial
    assert _impostor_states(view.result)
    assert TrustState.VERIFIED not in _impostor_states(view.result)
    assert any(f.kind is Kind.SEGMENT_UNREADABLE for f in view.result.findings)


def test_an_index_saved_before_the_rules_were_is_rebuilt_no_warmer(tmp_path: Path) -> None:
    """An index of schema 7 kept a complete but partial read as "not complete" (as the
    version before saved it): it cannot say which it was. Migrated, it is taken as
    partial, and the rebuild's verdicts, which the provisional rules would make better
    than the saved ones, are made by the coldest rules instead."""
    store, db, _ = _prepared(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE rooms SET history_complete = 0")
    conn.execute("ALTER TABLE rooms DROP COLUMN history_partial")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    assert 8 in _MIGRATIONS
    view = asyncio.run(_cached_view(store, db))
    assert TrustState.VERIFIED not in _impostor_states(view.result)
    assert any(f.kind is Kind.KEY_CONFLICT for f in view.result.findings)
    assert view.partial and _saved_partial(view.result)


# -- a copy saved mid-read: verdicts taken on trial, and ``history --json`` says so --------

BOB = "bob@example.com"
BOB_KEY = SigningKey(b"\x02" * 32)
DAY = 86_400_000


def _trial_store(store: Path) -> Event:
    """Bob's room: Alice joined days ago (the older day); on the newest day Bob asks
    for a vote and Eve, with a key of her own that nobody introduced, joins and reacts
    👍 under alice@'s id. Bob's question is returned."""

    def ev(
        key: SigningKey, sender: str, ts: int, n: int, prev: str | None, kind: str, content: Any
    ) -> Event:
        return build_event(
            room_id=ROOM,
            sender_id=sender,
            event_type=kind,
            content=content,
            timestamp_ms=ts,
            unique=f"00000000-0000-4000-8000-{n:012d}",
            prev_event_hash=prev,
            signing_key=key,
        )

    def put(events: list[Event], key: SigningKey, sender: str) -> None:
        path = path_for(events, client_id_for(sender, bytes(key.verify_key)))
        _write(store, path, encode_segment(events))

    (store / "rooms" / ROOM).mkdir(parents=True)
    (store / "rooms" / ROOM / "metadata.json").write_bytes(
        build_metadata(
            room_id=ROOM,
            name="R",
            created_at="2025-11-24T00:00:00.000Z",
            creator_id=BOB,
            signing_key=BOB_KEY,
        )
    )
    bob_join = ev(BOB_KEY, BOB, T0, 1, None, MEMBER, {"membership": "join"})
    join = ev(ALICE_KEY, ALICE, T0 + 1, 2, None, MEMBER, {"membership": "join"})
    hello = ev(ALICE_KEY, ALICE, T0 + 2, 3, join.hash, MESSAGE, {"msgtype": "m.text", "body": "hi"})
    put([bob_join], BOB_KEY, BOB)
    put([join, hello], ALICE_KEY, ALICE)
    later = T0 + 3 * DAY
    vote = {"msgtype": "m.text", "body": "vote: lunch at 1?"}
    question = ev(BOB_KEY, BOB, later, 4, bob_join.hash, MESSAGE, vote)
    put([question], BOB_KEY, BOB)
    fake_join = ev(EVE_KEY, ALICE, later + 1, 5, None, MEMBER, {"membership": "join"})
    thumbs = {"relates_to": question.event_id, "reaction": "👍"}
    fake = ev(EVE_KEY, ALICE, later + 2, 6, fake_join.hash, "m.room.reaction", thumbs)
    put([fake_join, fake], EVE_KEY, ALICE)
    return question


def test_history_json_of_a_copy_saved_mid_read_says_a_reactor_is_on_trial(
    tmp_path: Path,
) -> None:
    """Red team rt92: the app quit while the room's older day was still loading, and
    ``history`` falls back to this device's copy (the storage does not answer): that copy
    is rebuilt by the provisional rules, which take Eve's key under alice@'s id on trial.
    The text said ``👍 1 [1 NOT FINAL YET]``; ``--json`` gave her 👍 as a final, verified
    reaction by Alice (``"state": "verified"`` and nothing else), which a script counting
    votes takes as Alice's."""
    store = tmp_path / "store"
    question = _trial_store(store)
    (tmp_path / "idx").mkdir()
    db = tmp_path / "idx" / "index.db"

    async def go() -> Any:
        loaded: list[RoomLoaded] = []
        # the older day's segments get no answer: the newest day is shown first
        held = Held(store, hold=lambda what, path: what == "get" and "2025-11-24" in path)
        engine = SyncEngine(
            held,
            index=Index.open(db),
            config=QUIET,
            listener=lambda e: loaded.append(e) if isinstance(e, RoomLoaded) else None,
        )
        opening = asyncio.create_task(engine.open_room(ROOM, background=True))
        await until(
            "the newest day shown",
            lambda: any(not e.complete and len(e.result.timeline) >= 3 for e in loaded),
        )
        opening.cancel()
        await engine.close()  # the app quits before the older day is read
        held.answering.set()
        again = SyncEngine(held, index=Index.open(db), config=QUIET)
        try:
            return await again.cached_room(ROOM)  # what `history` shows with no answer
        finally:
            await again.close()

    view = asyncio.run(go())
    assert view is not None and view.result is not None and view.relations is not None
    timeline = view.result.timeline
    item = next(a for a in timeline if a.event.event_id == question.event_id)
    (chip,) = view.relations.of(question.event_id).reactions
    assert related.chip_text(chip) == "👍 1 [1 NOT FINAL YET]"
    (reaction,) = related.relations_json(item, timeline, view.relations)["reactions"]
    (alice,) = reaction["senders"]
    assert alice["sender_id"] == ALICE and alice["state"] == "verified"
    assert alice["provisional"] is True, reaction
    assert reaction["provisional"] is True, reaction
