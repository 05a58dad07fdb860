"""Creating a room over an id a member took a moment before with segments of her own
(red team rt73, F1).

Mallory, a member of the shared folder, sees that Alice is about to make the room
``general`` and writes a segment of her own there first: a join and "Welcome! I set this
up for you. Send the files here." (no metadata). ``bucket-chat rooms`` lists that room
already ("general (no metadata)"), and ``join`` / ``chat`` take it as existing
(``room_objects.room_exists``: metadata *or* a day folder). ``create-room`` checked only
metadata.json (create-only): it said "Created room 'general'", Alice signed the
metadata, and the room read "General (signed by alice@example.com)" with Mallory's join
and message before Alice's own join, all [verified], ``verify`` CLEAN. Alice ended up in
a room someone else opened, told she made it. Now the command refuses, as for planted
metadata, and writes nothing. The shared path (``RoomWriter.write_metadata``) is tested
in tests/unit/sync/test_room_id_taken.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

MALLORY = ("mallory@x.example", SigningKey(b"\x07" * 32))
ROOM = "general"


def _plant(store: Path) -> None:
    async def run() -> None:
        writer = RoomWriter(LocalStorage(store), ROOM, *MALLORY, displayname="Mallory")
        await writer.send([Draft.text("Welcome! I set this up for you. Send the files here.")])

    asyncio.run(run())


def _files(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


def test_create_room_over_a_room_a_member_planted_segments_in_is_refused(
    device: Any, store: Path
) -> None:
    _plant(store)
    alice = device("alice", "alice@example.com")
    listed = alice.run("rooms").stdout
    assert ROOM in listed  # the room exists already, as the storage lists it
    before = _files(store)
    made = alice.user("create-room", "--room-id", ROOM, "--name", "General", check=False)
    said = made.stdout + made.stderr
    # refused like any room that exists (exit status 2, README), never "Created room"
    assert made.returncode == 2, (made.returncode, said)
    assert "Created room" not in said, said
    assert (
        "a room with the id 'general' already exists in this storage (it has messages but "
        "no metadata): choose another id, or join it if you trust who wrote there"
    ) in " ".join(said.split()), said
    # nothing written: no metadata signed by Alice, no join of hers
    assert _files(store) == before
    assert not (store / "rooms" / ROOM / "metadata.json").exists()
