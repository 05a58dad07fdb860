"""What a storage holds, for the join dialog (``room_objects.storage_rooms``): names from
metadata, last activity from segment names, and hostile contents kept to what is true."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from held_storage import Held
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.ids import segment_path
from bucket_chat_desktop.storage.base import DEFAULT_MAX_READ, Level, ObjectInfo
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import ChatClient
from bucket_chat_desktop.sync.room_objects import StillWritingError, storage_rooms
from bucket_chat_desktop.sync.watched import DEADLINE_ENV
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

NOW = 1_796_000_000_000
KEY = SigningKey(b"\x09" * 32)


def put(root: Path, path: str, data: bytes = b"{}\n") -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_rooms_come_with_their_name_and_newest_segment_time(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    async def seed() -> None:
        writer = RoomWriter(storage, "team", "a@example.com", KEY)
        await writer.write_metadata("The Team", "2026-01-05T09:00:00.000Z")
        await writer.send([Draft.text("hello")])

    asyncio.run(seed())
    put(tmp_path, segment_path("plain", NOW - 5_000, NOW - 4_000, "dev1"))
    put(tmp_path, segment_path("plain", NOW - 9_000, NOW - 8_000, "dev2"))
    found = asyncio.run(storage_rooms(LocalStorage(tmp_path), NOW * 10))
    rooms = {r.room_id: r for r in found.rooms}
    assert set(rooms) == {"team", "plain"} and found.more == 0 and not found.from_cache
    assert rooms["team"].name == "The Team" and rooms["team"].last_activity_ms
    assert rooms["plain"].name is None and rooms["plain"].problem == ""  # no metadata: no name
    assert rooms["plain"].last_activity_ms == NOW - 4_000


def test_hostile_contents_give_no_false_activity_and_keep_the_room(tmp_path: Path) -> None:
    # a segment name dated years ahead, junk, a FIFO, another room's segment name,
    # unparseable metadata, a folder that is not a valid room id
    put(tmp_path, segment_path("odd", NOW + 10**12, NOW + 10**12, "liar"))
    put(tmp_path, segment_path("odd", NOW - 60_000, NOW - 50_000, "honest"))
    put(tmp_path, "rooms/odd/logs/2026-12-01/readme.txt")
    os.mkfifo(tmp_path / "rooms/odd/logs/2026-12-01/messages_1_2_fifo.jsonl")
    put(tmp_path, "rooms/odd/metadata.json", b"\xff not json")
    put(tmp_path, "rooms/bad id!/metadata.json", json.dumps({"name": "x"}).encode())
    put(tmp_path, segment_path("old", 1, 2, "x"))  # 1970: old, but what its name says
    found = asyncio.run(storage_rooms(LocalStorage(tmp_path), NOW))
    rooms = {r.room_id: r for r in found.rooms}
    assert set(rooms) == {"odd", "old"}
    assert rooms["odd"].last_activity_ms == NOW - 50_000  # the far-future name is not believed
    assert rooms["odd"].name is None and rooms["odd"].problem  # says why there is no name
    assert rooms["old"].last_activity_ms == 2


def test_date_folders_dated_ahead_neither_hide_nor_fake_activity(tmp_path: Path) -> None:
    """Three folders dated in the future (the three newest, the only ones listed) hid the
    room's real activity; a name two hours ahead was believed (now: an hour, as the
    audit's hold)."""
    for day in range(3):
        start = NOW + (400 + day) * 86_400_000
        put(tmp_path, segment_path("odd", start, start, f"liar{day}"))
    put(tmp_path, segment_path("odd", NOW + 2 * 3600_000, NOW + 2 * 3600_000, "soon"))
    put(tmp_path, segment_path("odd", NOW - 60_000, NOW - 50_000, "honest"))
    found = asyncio.run(storage_rooms(LocalStorage(tmp_path), NOW))
    (room,) = found.rooms
    assert room.last_activity_ms == NOW - 50_000


def test_a_storage_with_very_many_rooms_is_summarised_in_part(tmp_path: Path) -> None:
    for i in range(7):
        (tmp_path / "rooms" / f"room-{i}").mkdir(parents=True)
    found = asyncio.run(storage_rooms(LocalStorage(tmp_path), NOW, 5))
    assert len(found.rooms) == 5 and found.more == 2
    # without a limit (``bucket-chat rooms``): every one
    found = asyncio.run(storage_rooms(LocalStorage(tmp_path), NOW, None))
    assert len(found.rooms) == 7 and found.more == 0


def test_the_client_answers_with_a_value_for_a_storage_it_has_not_attached(
    tmp_path: Path,
) -> None:
    from bucket_chat_desktop.settings import Settings
    from bucket_chat_desktop.sync.client import ChatClient

    client = ChatClient(Settings(), "a@example.com", KEY, lambda *_: None, data_dir=tmp_path)
    found = asyncio.run(client.storage_rooms("nope"))
    assert found.rooms == () and found.note == (
        "This storage is not connected; it could not be read."
    )


def test_names_without_activity_read_one_object_a_room(tmp_path: Path) -> None:
    """``bucket-chat rooms`` shows no activity: it asks for the metadata and lists nothing
    inside the rooms (three requests a room were ~19 s for 1,000 rooms on S3)."""

    listed: list[str] = []

    class Counting(LocalStorage):
        async def list_level(self, prefix: str) -> Level:
            listed.append(prefix)
            return await super().list_level(prefix)

        async def list_objects(self, prefix: str) -> list[ObjectInfo]:
            listed.append(prefix)
            return await super().list_objects(prefix)

    for n in range(3):
        put(tmp_path, segment_path(f"room{n}", NOW - 5_000, NOW - 4_000, "dev1"))
        put(tmp_path, f"rooms/room{n}/metadata.json", b"\xff not json")
    storage = Counting(tmp_path)
    found = asyncio.run(storage_rooms(storage, NOW, None, activity=False))
    assert sorted(r.room_id for r in found.rooms) == ["room0", "room1", "room2"]
    assert all(r.last_activity_ms is None and r.problem for r in found.rooms)
    assert listed == ["rooms/"]  # the rooms themselves, nothing inside them
    listed.clear()
    found = asyncio.run(storage_rooms(storage, NOW, None))
    assert all(r.last_activity_ms == NOW - 4_000 for r in found.rooms)
    assert len(listed) > 1


# -- one room's metadata without an answer (red team rt95) -----------------------------------

ROOMS = (("alpha", "Alpha team"), ("bravo", "Bravo team"), ("charlie", "Charlie"))
IDS = [r for r, _ in ROOMS]
BRAVO = "rooms/bravo/metadata.json"


def _three_rooms(root: Path) -> None:
    async def seed() -> None:
        for room, name in ROOMS:
            writer = RoomWriter(LocalStorage(root), room, "a@example.com", KEY)
            await writer.write_metadata(name, "2026-01-05T09:00:00.000Z")

    asyncio.run(seed())


def _bravo_unanswered(root: Path) -> Held:
    """The folder, where reads of bravo's metadata get no answer (until released)."""
    return Held(root, lambda what, path: what == "get" and path == BRAVO)


def test_a_room_whose_metadata_gets_no_answer_leaves_the_others_their_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The join dialog's batch (``ChatClient.summarise_rooms``) and the whole list
    (``storage_rooms``, as ``bucket-chat rooms`` asks): each room's reads are held to
    the interactive deadline on their own. Before, the batch was one step: every room
    came back "Could not be read: no answer", and the list fell back to the index (of a
    fresh device: no room at all)."""
    monkeypatch.setenv(DEADLINE_ENV, "0.5")
    root = tmp_path / "store"
    _three_rooms(root)
    held = _bravo_unanswered(root)

    async def go() -> None:
        async with ChatClient.session(held, outbox=False, data_dir=tmp_path / "data") as client:
            sid = client.session_storage
            batch = await client.summarise_rooms(sid, IDS)
            listed = await client.storage_rooms(sid, limit=None, activity=False)
            assert held.held == 2  # bravo's read, once for each
            held.answering.set()  # the storage answers again: asked again, it is named
            again = await client.summarise_rooms(sid, ["bravo"])
        for rooms in (batch, listed.rooms):
            by_id = {r.room_id: r for r in rooms}
            assert [r.room_id for r in rooms] == IDS
            assert by_id["alpha"].name == "Alpha team" and by_id["charlie"].name == "Charlie"
            assert not by_id["alpha"].passing and not by_id["charlie"].passing
            bravo = by_id["bravo"]
            assert bravo.name is None and bravo.metadata is None and bravo.passing
            assert bravo.problem.startswith("no answer from this storage within 0.5 s")
        assert not listed.from_cache and not listed.note
        assert again[0].name == "Bravo team" and not again[0].passing

    asyncio.run(go())


def test_a_room_without_an_answer_is_listed_with_the_name_this_device_read_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is known of it: the name this device's index recorded (``bucket-chat rooms``
    says whose it is), still ``passing``, its metadata not read."""
    monkeypatch.setenv(DEADLINE_ENV, "0.5")
    root = tmp_path / "store"
    _three_rooms(root)
    held = _bravo_unanswered(root)
    held.answering.set()  # answered, while the room is read once

    async def go() -> None:
        async with ChatClient.session(held, outbox=False, data_dir=tmp_path / "data") as client:
            sid = client.session_storage
            await client.open_room(client.room("bravo"), wait=True)
            assert await client.room_name(client.room("bravo")) == "Bravo team"
            held.answering.clear()
            listed = await client.storage_rooms(sid, limit=None, activity=False)
        bravo = {r.room_id: r for r in listed.rooms}["bravo"]
        assert bravo.name == "Bravo team" and bravo.passing and bravo.metadata is None

    asyncio.run(go())


def test_metadata_still_being_written_is_a_passing_problem_of_its_room(tmp_path: Path) -> None:
    """Not read yet, nothing known wrong with it: the dialog asks for it again."""
    root = tmp_path / "store"
    _three_rooms(root)

    class StillWriting(LocalStorage):
        async def get(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ) -> bytes:
            if path == BRAVO:
                raise StillWritingError(f"{path} is still being written: read again later")
            return await super().get(path, max_bytes=max_bytes)

    found = asyncio.run(storage_rooms(StillWriting(root), NOW))
    bravo = {r.room_id: r for r in found.rooms}["bravo"]
    assert bravo.passing and bravo.name is None and "still being written" in bravo.problem


# -- a storage that answers the listing, then nothing (review rev1) --------------------------


def _metadata_asked(held: Held) -> int:
    return sum(1 for what, path in held.asked if what == "get" and path.endswith("/metadata.json"))


def test_a_storage_that_stops_answering_after_the_listing_is_asked_for_one_wave_of_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 rooms; the listing answers, no read after it does. Each room waited its own
    deadline, eight at a time: all 40 metadata were asked for, five deadlines in a row
    (1,000 rooms ≈ 150 s of ``bucket-chat rooms``; the join dialog's batches twice that).
    The rooms share one: the eight asked first get no answer, the other 32 are not
    asked, and every room is listed, ``passing``, as one that got no answer."""
    monkeypatch.setenv(DEADLINE_ENV, "0.5")
    root = tmp_path / "store"
    ids = [f"room{n:02d}" for n in range(40)]
    for room in ids:
        put(root, f"rooms/{room}/metadata.json", b"{}")
    held = Held(root, lambda what, path: what == "get")

    async def go() -> None:
        async with ChatClient.session(held, outbox=False, data_dir=tmp_path / "data") as client:
            sid = client.session_storage
            listed = await client.storage_rooms(sid, limit=None, activity=False)
            assert _metadata_asked(held) == 8
            batch = await client.summarise_rooms(sid, ids)
            assert _metadata_asked(held) == 16
        assert not listed.from_cache
        for rooms in (listed.rooms, batch):
            assert [r.room_id for r in rooms] == ids
            assert all(r.passing and r.name is None for r in rooms)
            assert all(
                r.problem.startswith("no answer from this storage within 0.5 s") for r in rooms
            )

    asyncio.run(go())


def test_one_room_without_an_answer_among_many_leaves_every_other_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty rooms, the first one's metadata unanswered: the storage answers the
    others, so each is asked and named (rt95 still holds across the shared deadline)."""
    monkeypatch.setenv(DEADLINE_ENV, "0.5")
    root = tmp_path / "store"
    ids = [f"room{n:02d}" for n in range(20)]

    async def seed() -> None:
        for room in ids:
            writer = RoomWriter(LocalStorage(root), room, "a@example.com", KEY)
            await writer.write_metadata(f"Team {room}", "2026-01-05T09:00:00.000Z")

    asyncio.run(seed())
    held = Held(root, lambda what, path: what == "get" and path == "rooms/room00/metadata.json")

    async def go() -> None:
        async with ChatClient.session(held, outbox=False, data_dir=tmp_path / "data") as client:
            listed = await client.storage_rooms(client.session_storage, limit=None, activity=False)
        assert _metadata_asked(held) == 20 and held.held == 1
        first, *others = listed.rooms
        assert first.room_id == "room00" and first.passing and first.name is None
        assert [r.name for r in others] == [f"Team {room}" for room in ids[1:]]
        assert not any(r.passing for r in others)

    asyncio.run(go())
