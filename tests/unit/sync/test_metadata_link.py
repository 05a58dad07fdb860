"""What a room's metadata finding blames when it cannot be read through a link.

Red team rt51: a room folder (or ``rooms/`` itself) swapped for a link was reported by
``rooms`` and ``verify`` as "metadata.json is not a regular file (symbolic link)": the
wrong object was blamed, and the member who swapped the folder was hidden behind it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.room_objects import read_metadata
from bucket_chat_desktop.sync.writer import RoomWriter


def _room(root: Path) -> LocalStorage:
    storage = LocalStorage(root)
    writer = RoomWriter(storage, "r", "alice@example.com", SigningKey(b"\x01" * 32))
    asyncio.run(writer.create_room("Team", "2026-01-05T09:00:00.000Z"))
    return storage


def _finding(storage: LocalStorage) -> str:
    metadata, findings = asyncio.run(read_metadata(storage, "r"))
    assert metadata is None
    (finding,) = findings
    assert finding.kind is Kind.METADATA_INVALID
    return finding.message


def test_a_room_folder_swapped_for_a_link_is_named_not_its_metadata(tmp_path: Path) -> None:
    storage = _room(tmp_path / "store")
    room = tmp_path / "store" / "rooms" / "r"
    room.rename(tmp_path / "aside")
    room.symlink_to(tmp_path / "aside")
    message = _finding(storage)
    assert message.startswith("metadata.json not read: rooms/r is a symbolic link, not a folder")


def test_a_rooms_folder_that_is_a_link_is_named(tmp_path: Path) -> None:
    storage = _room(tmp_path / "store")
    rooms = tmp_path / "store" / "rooms"
    rooms.rename(tmp_path / "aside")
    rooms.symlink_to(tmp_path / "aside")
    assert _finding(storage).startswith("metadata.json not read: rooms is a symbolic link")


def test_a_metadata_file_that_is_a_link_is_still_itself_to_blame(tmp_path: Path) -> None:
    storage = _room(tmp_path / "store")
    metadata = tmp_path / "store" / "rooms" / "r" / "metadata.json"
    metadata.rename(tmp_path / "aside.json")
    metadata.symlink_to(tmp_path / "aside.json")
    assert _finding(storage) == "metadata.json is not a regular file (symbolic link); not used"
