"""Removing a storage drops what the app said of it: the real app, one storage a folder
and one an S3 endpoint that refuses every connection (offline from the start)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop.gui.widgets.settings_dialog import add_storage, remove_storage
from bucket_chat_desktop.settings import StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded, StorageStatus
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = ("carol@example.com", SigningKey(b"\x03" * 32))


def closed_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_storage_removed_while_offline_is_no_longer_named_offline(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "secret")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = tmp_path / "store"
    writer = RoomWriter(LocalStorage(store), "b", *CAROL, displayname="Carol")
    wait_for(qtbot, writer.send([Draft.text("hello")]))
    settings = settings_for(store, ["b"])
    endpoint = f"http://127.0.0.1:{closed_port()}"
    spec = f"s3://nowhere/team?endpoint_url={endpoint}&region=us-east-1&timeout=1&retries=1"
    gone = StorageSettings(spec, "Old bucket", ["x"])
    settings.storages.append(gone)
    desk = launch(settings)
    controller, window = desk.controller, desk.window

    said: list[EngineEvent] = []  # what the engine says of the storage from now on
    deliver = controller.bridge.deliver

    def record(storage_id: str, event: EngineEvent) -> None:
        if storage_id == gone.id and isinstance(event, StorageStatus):
            said.append(event)
        deliver(storage_id, event)

    controller.bridge.deliver = record
    qtbot.waitUntil(lambda: "Old bucket" in window.status.text(), timeout=15_000)
    qtbot.waitUntil(lambda: bool(said), timeout=15_000)
    assert "refused" in window.status.text()

    remove_storage(controller, gone.id)
    qtbot.waitUntil(lambda: not controller.client.is_attached(gone.id), timeout=15_000)
    for event in said:  # what it said before it stopped, once more, late
        deliver(gone.id, event)

    assert controller.offline_storages() == []
    assert "All storages reachable" in window.status.text()
    assert gone.id not in window.status.text() and "Old bucket" not in window.status.text()


def test_what_a_removed_engine_says_on_its_way_out_is_not_said_of_the_storage_added_again(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    """A storage removed and added again at once has the same id: its old engine, still
    stopping, was taken for the new one — its last "offline" named the storage offline
    and its last audit of a room replaced the newer one the new engine had shown."""
    store = tmp_path / "store"
    carol = RoomWriter(LocalStorage(store), "b", *CAROL, displayname="Carol")
    wait_for(qtbot, carol.send([Draft.text("hello")]))
    desk = launch(settings_for(store, ["b"]))
    controller, window = desk.controller, desk.window
    desk.wait_row("b", "hello")
    sid, key = desk.settings.storages[0].id, desk.key("b")

    said: list[EngineEvent] = []  # what the first engine says of room b from now on
    deliver = controller.bridge.deliver

    def record(storage_id: str, event: EngineEvent) -> None:
        if isinstance(event, EventsAppended | RoomLoaded):
            said.append(event)
        deliver(storage_id, event)

    controller.bridge.deliver = record
    wait_for(qtbot, carol.send([Draft.text("second")]))
    desk.wait_row("b", "second")
    assert said
    controller.bridge.deliver = deliver
    old = controller.client._storages[sid].engine
    entry = controller.settings.storage(sid)

    remove_storage(controller, sid)  # its engine stops in a task; added again meanwhile
    add_storage(controller, StorageSettings(entry.spec, entry.name))
    offline = StorageStatus(False, "not answering since 12:00")
    old._emit(offline)  # still stopping, before the new engine is attached
    storages = controller.client._storages
    qtbot.waitUntil(lambda: sid in storages and storages[sid].engine is not old, timeout=15_000)
    controller.join_room(sid, "b")
    desk.wait_row("b", "second")
    wait_for(qtbot, carol.send([Draft.text("third")]))
    desk.wait_row("b", "third")
    shown = controller.result(key)
    rows = [r.body for r in desk.rows("b")]

    old._emit(offline)  # stopped, late
    for event in said:
        old._emit(event)

    assert controller.offline_storages() == []
    assert "All storages reachable" in window.status.text(), window.status.text()
    assert controller.result(key) is shown
    assert [r.body for r in desk.rows("b")] == rows


def test_a_join_that_ends_after_its_storage_was_removed_lists_no_room(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A join whose last step was done as the storage was removed in Settings (the
    engine finished that job while it closed) put the room back in the list, for a
    storage no longer in the settings, with a record nothing would ever drop. Now the
    room is not listed, and the app says why in words (red team rt87's note)."""
    store = tmp_path / "store"
    carol = RoomWriter(LocalStorage(store), "b", *CAROL, displayname="Carol")
    wait_for(qtbot, carol.send([Draft.text("hello")]))
    desk = launch(settings_for(store, []))
    controller = desk.controller
    sid = desk.settings.storages[0].id
    key = f"{sid}/b"
    errors: list[tuple[str, str]] = []
    controller.error.connect(lambda what, message: errors.append((what, message)))
    real = controller.client.join_room

    async def join_then_removed(storage_id: str, room_id: str, *, show: bool = True) -> Any:
        ref = await real(storage_id, room_id, show=show)
        remove_storage(controller, storage_id)  # removed as the join's last job ended
        return ref

    monkeypatch.setattr(controller.client, "join_room", join_then_removed)
    qtbot.waitUntil(lambda: sid in controller.client._storages, timeout=15_000)
    controller.join_room(sid, "b")
    qtbot.waitUntil(lambda: bool(errors), timeout=15_000)
    [(what, said)] = errors
    assert what == "Joining room b"
    assert said.startswith("b is not in your rooms: its storage was removed"), said
    assert controller.rooms.item(key) is None
    assert key not in controller._rooms
    assert controller.current != key
