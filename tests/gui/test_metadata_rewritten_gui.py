"""Red team, in the real app, across a restart (the room then opens from this device's
cache: a warm open).

1. A member rewrites a room's metadata.json between two runs of the app, with metadata of
   her own, well signed, that renames the room and names her its creator. The app showed
   the new name with no mark, and called the room "signed by mallory". Now the name read
   first stays, and the room is marked (``metadata-changed``).
2. What the app said of a room's metadata was told to the window only with an audit: a
   warm open with nothing new to read made none after the metadata was read, so after a
   restart a room whose metadata is forged lost its ⚠ (and the window had no metadata for
   it at all) until someone wrote in it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.metadata import build_metadata
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "design"
MALLORY = "mallory@example.com"


def make_room(qtbot: Any, store: Path) -> None:
    storage = LocalStorage(store)
    carol = RoomWriter(storage, ROOM, "carol@example.com", SigningKey(b"\x01" * 32))
    wait_for(qtbot, carol.create_room("Design review", "2026-01-05T09:00:00.000Z"))
    mallory = RoomWriter(storage, ROOM, MALLORY, SigningKey(b"\x09" * 32), displayname="M")
    wait_for(qtbot, mallory.send([Draft.text("hello")]))


def kinds(desk: Desk) -> list[Kind]:
    return [f.kind for f in desk.controller.room_errors(desk.key(ROOM))]


def test_a_room_renamed_by_a_member_keeps_its_name_and_is_marked(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    make_room(qtbot, store)
    desk = launch(settings_for(store, [ROOM]))
    desk.wait_loaded(ROOM)
    qtbot.waitUntil(lambda: desk.item(ROOM).shown_name == "Design review", timeout=15_000)
    assert desk.item(ROOM).findings == 0
    assert desk.quit() == 0

    (store / "rooms" / ROOM / "metadata.json").write_bytes(
        build_metadata(
            room_id=ROOM,
            name="Payroll: send your bank details to mallory",
            created_at="2020-01-01T00:00:00.000Z",
            creator_id=MALLORY,
            signing_key=SigningKey(b"\x09" * 32),
        )
    )
    desk = launch(settings_store.load())
    desk.wait_loaded(ROOM)
    qtbot.waitUntil(lambda: desk.item(ROOM).findings >= 1, timeout=15_000)
    assert desk.item(ROOM).shown_name == "Design review"
    assert kinds(desk) == [Kind.METADATA_CHANGED]
    [changed] = desk.controller.room_errors(desk.key(ROOM))
    assert "Payroll" in changed.message and "Design review" in changed.message
    # The banner says what the problem concerns: the room's name, not its messages.
    qtbot.waitUntil(desk.window.banner.isVisible, timeout=15_000)
    words = desk.window.banner_text.text()
    assert "metadata-changed" in words and "not its messages" in words
    assert "Messages that could not be verified" not in words
    assert desk.quit() == 0


def test_a_forged_room_name_stays_marked_after_a_restart(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    make_room(qtbot, store)
    path = store / "rooms" / ROOM / "metadata.json"
    path.write_bytes(path.read_bytes().replace(b"Design review", b"Payroll"))
    desk = launch(settings_for(store, [ROOM]))
    desk.wait_loaded(ROOM)
    qtbot.waitUntil(lambda: Kind.METADATA_INVALID in kinds(desk), timeout=15_000)
    assert desk.item(ROOM).findings == 1
    assert desk.quit() == 0

    desk = launch(settings_store.load())  # nothing new: the room opens from the cache
    desk.wait_loaded(ROOM)
    qtbot.waitUntil(lambda: Kind.METADATA_INVALID in kinds(desk), timeout=15_000)
    assert desk.item(ROOM).findings == 1
    room = desk.controller._rooms[desk.key(ROOM)]
    assert room.metadata is not None and room.metadata.bad_signature
    assert desk.quit() == 0
