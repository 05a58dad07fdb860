"""A message that arrives late — written a little before the newest message shown, read
after it (a slower upload, a device's outbox delivering after a short outage) — is news
like any other: the real app on a real folder, Carol and Bob writing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.events import EngineEvent, EventsAppended, RoomLoaded
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CAROL = ("carol@example.com", SigningKey(b"\x03" * 32))
BOB = ("bob@example.com", SigningKey(b"\x02" * 32))


def test_a_message_read_after_a_newer_one_is_counted_and_notified(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "store")
    carol = RoomWriter(storage, "c", *CAROL, displayname="Carol")
    wait_for(qtbot, carol.send([Draft.text("hello")]))
    dated = [0]  # the date Bob's next message gets (0: now)
    bob = RoomWriter(
        storage, "c", *BOB, displayname="Bob", clock=lambda: dated[0] or int(time.time() * 1000)
    )
    wait_for(qtbot, bob.send([Draft.text("hi Carol")]))
    wait_for(qtbot, RoomWriter(storage, "a", *CAROL).send([Draft.text("elsewhere")]))
    desk = launch(settings_for(tmp_path / "store", ["a", "c"]))
    running = int(time.time() * 1000)  # the app runs
    controller = desk.controller
    desk.wait_loaded("a", "c")
    assert controller.current == desk.key("a")
    notes: list[tuple[str, str, str]] = []
    controller.notify.connect(lambda key, title, text: notes.append((key, title, text)))
    kinds: list[type] = []
    deliver = controller.bridge.deliver

    def record(storage_id: str, event: EngineEvent) -> None:
        if getattr(event, "room_id", None) == "c":
            kinds.append(type(event))
        deliver(storage_id, event)

    controller.bridge.deliver = record

    wait_for(qtbot, carol.send([Draft.text("are you there?")]))
    qtbot.waitUntil(lambda: desk.item("c").unread == 1, timeout=15_000)
    # Bob's answer, written (while the app ran) before Carol's question, is read after
    # it: it sorts before the newest row shown, so it comes with a full audit of the room
    dated[0] = running
    kinds.clear()
    wait_for(qtbot, bob.send([Draft.text("yes, here")]))
    desk.wait_row("c", "yes, here")
    assert RoomLoaded in kinds and EventsAppended not in kinds
    assert desk.item("c").unread == 2
    assert [text for _key, _title, text in notes] == ["are you there?", "yes, here"]
