"""A room left is read no more: after ``leave_room`` (its leave delivered) the engine makes
no request about it — no safety listing, no hint read for what markers name in it — and
says nothing of it, while the room it stays in gets its news as usual. Joined again, it is
read from the start, with what was written while it was left."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from held_storage import LIMIT, ROUNDS, AsBucket, Held, until
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.activity import marker_path
from bucket_chat_desktop.protocol.ids import logs_prefix
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import ChatClient, RoomRef
from bucket_chat_desktop.sync.events import EngineEvent, OutboxChanged
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

LEFT, STAYS = "left-room", "stays-room"
ALICE = "alice@example.com"
KEY = SigningKey(bytes([1]) * 32)
BOB = "bob@example.com"
BOB_KEY = SigningKey(bytes([2]) * 32)
CREATED = "2025-09-14T12:00:45.000Z"
# Each round lists every room read completely (its safety pass).
EVERY_ROUND = dataclasses.replace(ROUNDS, focused_safety=0.0, background_safety=0.0)


def test_a_room_left_is_polled_no_more_and_joined_again_is_read_from_the_start(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        root = tmp_path / "store"
        for room_id in (LEFT, STAYS):
            await RoomWriter(LocalStorage(root), room_id, ALICE, KEY).create_room("R", CREATED)
        store = Held(root)
        events: list[EngineEvent] = []
        async with ChatClient.session(
            AsBucket(store),
            identity=(ALICE, KEY),
            start=True,
            listener=events.append,
            config=EVERY_ROUND,
            data_dir=tmp_path / "data",
        ) as client:
            left, stays = client.room(LEFT), client.room(STAYS)
            await client.open_room(stays, focus=False, wait=True)
            await client.open_room(left, wait=True)

            async def shows(ref: RoomRef, body: str) -> bool:
                view = await client.room_view(ref)
                rows = view.result.timeline if view is not None and view.result else []
                return body in [row.event.body for row in rows]

            await client.leave_room(left)
            assert await client.flush(left.storage_id, LIMIT)  # the leave is delivered
            assert await client.room_view(left) is None  # not read here any more
            asked, told = len(store.asked), len(events)

            for room_id in (LEFT, STAYS):  # Bob writes in both, each announced by a marker
                bob = RoomWriter(LocalStorage(root), room_id, BOB, BOB_KEY)
                path, _ = await bob.send([Draft.text("anyone?")])
                await store.put_if_absent(marker_path(int(time.time() * 1000), path), b"")

            await until("the news in the room stayed in", lambda: shows(stays, "anyone?"))
            stays_listed = ("list_dirs", logs_prefix(STAYS))

            async def listed_again() -> bool:  # a round's safety pass after the news
                return store.asked[asked:].count(stays_listed) >= 2

            await until("another round", listed_again)
            about_left = [p for _, p in store.asked[asked:] if p.startswith(f"rooms/{LEFT}/")]
            assert about_left == []  # neither listed nor its hint read
            said = [e for e in events[told:] if getattr(e, "room_id", None) == LEFT]
            assert [e for e in said if not isinstance(e, OutboxChanged)] == []

            await client.join_room(left.storage_id, LEFT)  # read again, from the start
            await until("the room joined again", lambda: shows(left, "anyone?"))

    asyncio.run(go())
