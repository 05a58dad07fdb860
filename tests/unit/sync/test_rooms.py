"""Creating a room, the one path (``sync.rooms.create_room``), and joining one
(``sync.rooms.join_room``), on real folders, a real index and outbox and the real engine;
and the front ends that create rooms (the app's ChatClient, ``bucket-chat create-room``
and ``bucket-chat chat``) making the same room. The wizard's first room is checked in
tests/gui/test_wizard.py."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.cli.main import main
from bucket_chat_desktop.keys import EncryptedFileStore, default_key_dir
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.event import MEMBER
from bucket_chat_desktop.protocol.ids import InvalidRoomIdError, iso_utc_ms, metadata_path
from bucket_chat_desktop.protocol.metadata import parse_metadata
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import ChatClient
from bucket_chat_desktop.sync.rooms import create_room, join_room
from bucket_chat_desktop.sync.session import engine_session
from bucket_chat_desktop.sync.writer import RoomError

ALICE = "alice@example.com"
KEY = SigningKey(bytes(range(32)))
PASSPHRASE = "rooms test passphrase"
NOON = 1_767_268_800.0  # 2026-01-01T12:00:00Z


def room_shape(store: Path, room_id: str) -> tuple[Any, list[tuple[str, str, dict[str, Any]]]]:
    """(metadata, [(type, sender, content)]) as any reader would verify them."""

    async def read() -> tuple[Any, list[tuple[str, str, dict[str, Any]]]]:
        storage = LocalStorage(store)
        path = metadata_path(room_id)
        meta, findings = parse_metadata(await storage.get(path), room_id, path)
        assert findings == []
        ledger = RoomLedger(room_id)
        for item in await storage.list_objects(f"rooms/{room_id}/logs/"):
            ledger.add_segment(item.path, await storage.get(item.path))
        result = ledger.audit({})
        assert result.findings == [] and result.invalid == []
        events = [(a.event.type, a.event.sender_id, dict(a.event.content)) for a in result.timeline]
        return meta, events

    return asyncio.run(read())


def run_create(store: Path, data: Path, room_id: str, name: str, **kw: Any) -> Any:
    async def go() -> Any:
        async with engine_session(LocalStorage(store), data_dir=data) as engine:
            assert engine.outbox is not None
            try:
                events = await create_room(engine, room_id, name, ALICE, KEY, **kw)
            except Exception as exc:
                return exc, len(engine.outbox.pending())
            queued = len(engine.outbox.pending())
            delivered = await engine.flush(timeout=10)
            return events, queued, delivered

    return asyncio.run(go())


def test_metadata_first_then_the_join_through_the_outbox(tmp_path: Path) -> None:
    store, data = tmp_path / "store", tmp_path / "data"
    store.mkdir()
    events, queued, delivered = run_create(
        store, data, "general", "General", displayname="Alice", clock=lambda: NOON
    )
    assert [e.type for e in events] == [MEMBER] and queued == 1 and delivered
    meta, shown = room_shape(store, "general")
    assert (meta.name, meta.creator_id, meta.signed) == ("General", ALICE, True)
    assert meta.created_at == iso_utc_ms(int(NOON * 1000)) == "2026-01-01T12:00:00.000Z"
    assert shown == [(MEMBER, ALICE, {"membership": "join", "displayname": "Alice"})]


def test_an_empty_name_is_the_room_id(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    run_create(store, tmp_path / "data", "ops", "")
    meta, shown = room_shape(store, "ops")
    assert meta.name == "ops"
    assert shown == [(MEMBER, ALICE, {"membership": "join"})]


def test_an_existing_room_is_refused_and_nothing_is_queued(tmp_path: Path) -> None:
    store, data = tmp_path / "store", tmp_path / "data"
    store.mkdir()
    run_create(store, data, "general", "General")
    before = (store / metadata_path("general")).read_bytes()
    error, queued = run_create(store, data, "general", "Hijacked")
    assert isinstance(error, RoomError) and "already exists" in str(error)
    assert queued == 0
    assert (store / metadata_path("general")).read_bytes() == before


def test_a_folder_clash_is_refused(tmp_path: Path) -> None:
    """On Windows and macOS "General" and "general" would share one folder."""
    store, data = tmp_path / "store", tmp_path / "data"
    store.mkdir()
    run_create(store, data, "general", "General")
    error, queued = run_create(store, data, "General", "Other")
    assert isinstance(error, RoomError) and queued == 0


def test_a_bad_id_is_refused_before_any_storage_call(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    error, queued = run_create(store, tmp_path / "data", "../escape", "x")
    assert isinstance(error, InvalidRoomIdError) and queued == 0
    assert list(store.iterdir()) == []


BOB = "bob@example.org"
BOB_KEY = SigningKey(bytes(range(1, 33)))


def run_join(store: Path, data: Path, room_id: str, **kw: Any) -> Any:
    async def go() -> Any:
        async with engine_session(LocalStorage(store), data_dir=data) as engine:
            assert engine.outbox is not None
            try:
                events = await join_room(engine, room_id, BOB, BOB_KEY, **kw)
            except Exception as exc:
                return exc, len(engine.outbox.pending())
            queued = len(engine.outbox.pending())
            delivered = await engine.flush(timeout=10)
            return events, queued, delivered

    return asyncio.run(go())


def test_a_join_goes_through_the_outbox_and_continues_nobody_elses_chain(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    run_create(store, tmp_path / "alice", "general", "General")
    events, queued, delivered = run_join(store, tmp_path / "bob", "general", displayname="Bob")
    assert [e.type for e in events] == [MEMBER] and queued == 1 and delivered
    assert events[0].prev_event_hash is None  # Bob's first event: his chain's root
    _, shown = room_shape(store, "general")
    assert shown == [
        (MEMBER, ALICE, {"membership": "join"}),
        (MEMBER, BOB, {"membership": "join", "displayname": "Bob"}),
    ]


def test_joining_a_room_that_is_not_there_queues_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    error, queued = run_join(store, tmp_path / "bob", "nowhere", where="Team share")
    assert isinstance(error, RoomError) and queued == 0
    assert str(error) == "there is no room 'nowhere' in Team share (check the id, or create it)"
    assert not (store / "rooms").exists()
    error, queued = run_join(store, tmp_path / "bob", "../escape")
    assert isinstance(error, InvalidRoomIdError) and queued == 0


# -- the front ends make the same room -------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("BUCKET_CHAT_STORAGE", raising=False)
    EncryptedFileStore(default_key_dir(), lambda _u, _c: PASSPHRASE).save(ALICE, KEY)
    return home


def test_the_app_and_the_command_line_make_the_same_room(
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``chat`` in a room nobody made used to write the metadata alone: its creator was
    no member until their first message. Now every front end goes through one path."""
    store = tmp_path / "store"
    store.mkdir()
    entry = StorageSettings(str(store), "Team share", [])
    client = ChatClient(
        Settings(ALICE, "Alice", [entry]), ALICE, KEY, lambda _s, _e: None, data_dir=home / "d"
    )

    async def app() -> None:
        await client.attach(entry)
        try:
            await client.create_room(entry.id, "from-app", "from-app")
            assert await client._storages[entry.id].engine.flush(timeout=10)
        finally:
            await client.close()

    asyncio.run(app())
    assert entry.rooms == ["from-app"]
    common = ["-s", str(store), "--user-id", ALICE, "--displayname", "Alice"]
    assert main(["create-room", "--room-id", "from-cli", "--name", "from-cli", *common]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # the chat ends at once
    assert main(["chat", "--room-id", "from-chat", *common]) == 0
    capsys.readouterr()

    shapes = {room: room_shape(store, room) for room in ("from-app", "from-cli", "from-chat")}
    for room, (meta, events) in shapes.items():
        assert (meta.name, meta.creator_id, meta.signed) == (room, ALICE, True), room
        assert events == [(MEMBER, ALICE, {"membership": "join", "displayname": "Alice"})], room
