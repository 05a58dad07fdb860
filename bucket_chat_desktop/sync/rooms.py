"""Creating and joining a room: the one path for each, behind `ChatClient.create_room` /
`join_room`, which the app, the first-run wizard and the command line (``create-room``,
and ``chat`` in a room nobody made yet) all call.

A room is created in three steps, always the same:

1. its id is checked (also against a room whose folder it would share on Windows or
   macOS, where folder names ignore case);
2. its signed metadata is written create-only: a room that exists already — its
   metadata, or only segments someone wrote under its id (red team rt73) — is a
   `RoomError`, never overwritten or taken over;
3. the creator's join (with the display name, if any) is signed and committed to this
   device's outbox, like every other event it sends. The app reads the new room first
   (it shows it); the command line and the wizard do not need to.

Joining checks that the room exists (its metadata), then queues the join the same way.
The join is durable once either returns; it is published by the engine's next round. The
app's running engine does that on its own; the wizard and the command line call
``ChatClient.flush``, and what did not go out is delivered by the next session on that
storage.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from typing import Any

from nacl.signing import SigningKey

from ..protocol.event import MEMBER, Event
from ..protocol.ids import check_room_id, iso_utc_ms
from .engine import SyncEngine
from .room_objects import room_exists
from .writer import RoomError, RoomWriter

ROOM_ID_SUFFIX_LENGTH = 4
"""Characters of the random tail the app offers with a new room's id
(``protocol.ids.new_room_id``)."""


def room_id_suffix() -> str:
    """A random tail for a new room's id: 4 lower-case letters or digits (36**4, about
    1.7 million), so that rooms named alike rarely share an id (red team rt73)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(ROOM_ID_SUFFIX_LENGTH))


def join_content(displayname: str | None) -> dict[str, Any]:
    """A join's content: the membership, and the display name when there is one."""
    content: dict[str, Any] = {"membership": "join"}
    if displayname:
        content["displayname"] = displayname
    return content


async def create_room(
    engine: SyncEngine,
    room_id: str,
    name: str,
    user_id: str,
    signing_key: SigningKey,
    *,
    displayname: str | None = None,
    show: bool = False,
    clock: Callable[[], float] = time.time,
) -> list[Event]:
    """Create ``room_id`` on the engine's storage, named ``name`` (the id when empty),
    and queue the creator's join; returns the queued events. ``show``: the room is read
    and becomes the one on screen (the engine polls it first) before the join is queued.

    Raises `InvalidRoomIdError` for an id that is not allowed (before any storage call),
    `RoomError` when the room exists or its folder would clash with another room's, and
    the storage's errors as they come. ``engine`` must have an outbox.
    """
    check_room_id(room_id)
    created_at = iso_utc_ms(int(clock() * 1000))
    writer = RoomWriter(engine.storage, room_id, user_id, signing_key)
    await writer.write_metadata(name or room_id, created_at)
    if show:
        await engine.open_room(room_id, focus=True)
    return await engine.send(room_id, user_id, signing_key, [(MEMBER, join_content(displayname))])


async def join_room(
    engine: SyncEngine,
    room_id: str,
    user_id: str,
    signing_key: SigningKey,
    *,
    displayname: str | None = None,
    show: bool = False,
    where: str = "this storage",
) -> list[Event]:
    """Join ``room_id`` on the engine's storage: queue this device's join (with the display
    name, if any) in its outbox; returns the queued events. ``show``: the room is read and
    becomes the one on screen first. ``where`` names the storage in the error.

    Raises `InvalidRoomIdError` for an id that is not allowed (before any storage call),
    `RoomError` when there is no such room, and the storage's errors as they come.
    ``engine`` must have an outbox."""
    check_room_id(room_id)
    if not await room_exists(engine.storage, room_id):
        raise RoomError(f"there is no room {room_id!r} in {where} (check the id, or create it)")
    if show:
        await engine.open_room(room_id, focus=True)
    return await engine.send(room_id, user_id, signing_key, [(MEMBER, join_content(displayname))])
