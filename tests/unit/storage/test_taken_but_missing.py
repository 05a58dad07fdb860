"""A create-only write told "already exists" with nothing there to read (red team rt95).

A GCS 412 or an Azure 409 to a write that stored nothing, and a 404 on the read that
follows; on a folder, an object deleted between the write that met it and the read. The
claim is contradicted by the storage itself: no object holds the name, so it is no
"already exists" (a final error, "held by an object … does not exist", a room refused
as existing). The write is tried again, and if every try meets the same contradiction,
``TakenButMissingError`` says so, a passing failure. The cloud services' own answers
are in tests/integration/test_taken_but_missing.py; here, the folder's adapter and what
its callers make of the error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.storage.base import (
    TAKEN_BUT_MISSING_TRIES,
    AlreadyExistsError,
    StorageError,
    TakenButMissingError,
)
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync import blobs
from bucket_chat_desktop.sync.writer import RoomWriter

CONTRADICTION = "says an object of that name already exists, but shows no object there"


class ClaimsTaken(LocalStorage):
    """A folder where the first ``lies`` publications of an object find its name taken
    (as a link that lost a race with something deleting what is written), and nothing is
    there when it is read."""

    def __init__(self, root: Path, lies: int) -> None:
        super().__init__(root)
        self.lies = lies
        self.claimed = 0

    def _publish(self, folder: Any, tmp: str, name: str, data: bytes) -> None:
        if self.claimed < self.lies:
            self.claimed += 1
            raise FileExistsError(name)
        super()._publish(folder, tmp, name, data)


def test_a_name_said_taken_once_with_nothing_there_is_written_again(tmp_path: Path) -> None:
    store = ClaimsTaken(tmp_path, lies=1)
    assert asyncio.run(store.put_if_absent("rooms/r/blobs/x", b"bytes")) is True
    assert store.claimed == 1
    assert (tmp_path / "rooms/r/blobs/x").read_bytes() == b"bytes"


def test_a_name_said_taken_at_every_try_is_a_passing_failure_that_says_so(
    tmp_path: Path,
) -> None:
    store = ClaimsTaken(tmp_path, lies=TAKEN_BUT_MISSING_TRIES)
    with pytest.raises(TakenButMissingError) as caught:
        asyncio.run(store.put_if_absent("rooms/r/blobs/x", b"bytes"))
    assert store.claimed == TAKEN_BUT_MISSING_TRIES  # bounded: no more tries than that
    assert caught.value.transient and not isinstance(caught.value, AlreadyExistsError)
    assert CONTRADICTION in str(caught.value)
    assert f"asked {TAKEN_BUT_MISSING_TRIES} times" in str(caught.value)
    assert not (tmp_path / "rooms/r/blobs/x").exists()
    # the next try (the outbox's, the Retry button's) stores it
    assert asyncio.run(store.put_if_absent("rooms/r/blobs/x", b"bytes")) is True


def test_a_name_held_by_other_bytes_is_still_taken(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    asyncio.run(store.put_if_absent("rooms/r/blobs/x", b"theirs"))
    with pytest.raises(AlreadyExistsError) as caught:
        asyncio.run(store.put_if_absent("rooms/r/blobs/x", b"ours"))
    assert caught.value.compared and not caught.value.transient


def test_an_attachment_whose_name_is_said_taken_with_nothing_there_can_be_retried(
    tmp_path: Path,
) -> None:
    """Not "cannot be stored: its name is held by an object this device cannot compare
    with it" (final, no Retry button)."""
    store = ClaimsTaken(tmp_path / "store", lies=TAKEN_BUT_MISSING_TRIES)
    file = tmp_path / "report.txt"
    file.write_bytes(b"the quarterly report")
    with pytest.raises(StorageError) as caught:
        asyncio.run(blobs.upload(store, "team", file, limit_bytes=10**6))
    assert caught.value.transient, caught.value  # the row offers Retry (attachments.passing)
    assert CONTRADICTION in str(caught.value) and "held by an object" not in str(caught.value)
    content = asyncio.run(blobs.upload(store, "team", file, limit_bytes=10**6))
    assert content["body"] == "report.txt"


def test_a_room_whose_metadata_name_is_said_taken_with_nothing_there_is_not_said_to_exist(
    tmp_path: Path,
) -> None:
    store = ClaimsTaken(tmp_path, lies=TAKEN_BUT_MISSING_TRIES)
    writer = RoomWriter(store, "team", "alice@example.com", SigningKey(b"\x05" * 32))
    with pytest.raises(StorageError) as caught:
        asyncio.run(writer.create_room("Team", "2026-01-05T09:00:00.000Z"))
    assert caught.value.transient and CONTRADICTION in str(caught.value)
    assert "already exists" not in str(caught.value).replace(CONTRADICTION, "")
    asyncio.run(writer.create_room("Team", "2026-01-05T09:00:00.000Z"))  # tried again: made
    assert (tmp_path / "rooms/team/metadata.json").is_file()
