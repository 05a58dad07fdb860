"""Creating a room whose id someone wrote segments under first (red team rt73, F1).

A member wrote a join and "Welcome! I set this up for you. Send the files here." under
``rooms/general/logs/`` and no metadata, a moment before Alice created ``general``. The
one create path (``rooms.create_room`` -> ``RoomWriter.write_metadata``, behind the app's
New room dialog, the wizard, ``create-room`` and ``chat``) checked only metadata.json,
so Alice became the signed creator of a room someone else opened and spoke in first,
shown verified and clean. It now refuses an id that ``room_exists`` (the rule joining
uses) says exists, and writes nothing. If the segments appear between that look and the
metadata, the metadata (written once) stays but the creator is told and her join is not
sent. The command line's refusal: tests/e2e/test_planted_room.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.ids import metadata_path
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.rooms import create_room
from bucket_chat_desktop.sync.session import engine_session
from bucket_chat_desktop.sync.writer import Draft, RoomError, RoomWriter

MALLORY = ("mallory@x.example", SigningKey(b"\x07" * 32))
ALICE = ("alice@example.com", SigningKey(b"\x01" * 32))
ROOM = "general"
REFUSED = (
    "a room with the id 'general' already exists in this storage (it has messages but no "
    "metadata): choose another id, or join it if you trust who wrote there"
)


async def _plant(storage: LocalStorage) -> None:
    writer = RoomWriter(storage, ROOM, *MALLORY, displayname="Mallory")
    await writer.send([Draft.text("Welcome! I set this up for you. Send the files here.")])


def _files(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


def test_the_one_create_path_refuses_an_id_whose_folder_holds_segments(tmp_path: Path) -> None:
    """The path the app's New room dialog, the wizard and ``create-room`` share
    (``rooms.create_room`` -> ``RoomWriter.write_metadata``): metadata there already was
    "already exists"; segments there already were nothing."""
    store = tmp_path / "share"
    store.mkdir()
    asyncio.run(_plant(LocalStorage(store)))
    before = _files(store)

    async def run() -> str:
        alice = RoomWriter(LocalStorage(store), ROOM, *ALICE)
        try:
            await alice.write_metadata("General", "2026-01-05T09:00:00.000Z")
        except RoomError as exc:
            return str(exc)
        return "created"

    assert asyncio.run(run()) == REFUSED
    assert _files(store) == before


def test_the_client_path_refuses_and_queues_nothing(tmp_path: Path) -> None:
    """``rooms.create_room`` with the engine and its outbox (the app, the wizard, the
    command line): refused before anything is written or queued."""
    store, data = tmp_path / "share", tmp_path / "data"
    store.mkdir()
    asyncio.run(_plant(LocalStorage(store)))
    before = _files(store)

    async def run() -> tuple[BaseException, int]:
        async with engine_session(LocalStorage(store), data_dir=data) as engine:
            assert engine.outbox is not None
            with pytest.raises(RoomError) as caught:
                await create_room(engine, ROOM, "General", *ALICE)
            return caught.value, len(engine.outbox.pending())

    error, queued = asyncio.run(run())
    assert str(error) == REFUSED and queued == 0
    assert _files(store) == before


class _PlantedMeanwhile(LocalStorage):
    """A folder where a member's segment lands between the creator's look at the room's
    folder and her metadata write (the race the look cannot close)."""

    async def put_if_absent(self, path: str, data: bytes) -> None:
        if path == metadata_path(ROOM):
            await _plant(LocalStorage(self.root))
        await super().put_if_absent(path, data)


def test_segments_written_while_the_room_is_made_are_said_and_the_join_is_not_sent(
    tmp_path: Path,
) -> None:
    store, data = tmp_path / "share", tmp_path / "data"
    store.mkdir()

    async def run() -> tuple[BaseException, int]:
        async with engine_session(_PlantedMeanwhile(store), data_dir=data) as engine:
            assert engine.outbox is not None
            with pytest.raises(RoomError) as caught:
                await create_room(engine, ROOM, "General", *ALICE)
            return caught.value, len(engine.outbox.pending())

    error, queued = asyncio.run(run())
    said = str(error)
    assert "was created" in said and "someone else wrote messages in it" in said, said
    assert "join" in said and queued == 0
    # the metadata is written once and stays; the only segment is the member's
    assert (store / metadata_path(ROOM)).exists()
    segments = [f for f in _files(store) if "/logs/" in f]
    assert len(segments) == 1 and "_mallory-" in segments[0], segments
