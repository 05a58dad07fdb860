"""Red team, in the app: one member's signed message with ``"msgtype": ["m.file"]`` (or
an object) raised ``unhashable type`` where the app asked whether it is a file: a blank
row counted as verified, and, as the room's newest message, no rows at all (saving the
room's summary failed, and its read with it) — for every member. Such a message is no
file: its row, its preview and the room's rows are shown as for any text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from desk import Desk, preview_line, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter


def test_a_message_whose_msgtype_is_a_list_or_an_object_is_shown_as_text(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "store")
    alice = RoomWriter(storage, "general", "alice@example.com", SigningKey(b"\x01" * 32))
    wait_for(qtbot, alice.send([Draft.text("lunch at noon?")]))
    mallory = RoomWriter(storage, "general", "mallory@example.com", SigningKey(b"\x07" * 32))
    odd = [
        Draft(MESSAGE, {"msgtype": {"x": 1}, "body": "object type"}),
        Draft(MESSAGE, {"msgtype": ["m.file"], "body": "listed type"}),  # the newest
    ]
    wait_for(qtbot, mallory.send(odd))
    safe._reported.clear()
    settings = settings_for(tmp_path / "store", ["general"])
    settings.user_id, settings.displayname = "carol@example.com", "Carol"
    desk = launch(settings)
    desk.wait_loaded("general")
    model = desk.model("general")
    for body in ("lunch at noon?", "object type", "listed type"):
        index = model.index(desk.wait_index("general", body))
        assert index.data(Roles.Body) == body
        assert index.data() and body in str(index.data())  # what a screen reader reads
    qtbot.waitUntil(lambda: "listed type" in (preview_line(desk.item("general")) or ""))
    desk.window.grab()  # painted: every row through its delegate
    assert safe.failures() == {}
