"""A message the app kept unsigned (``Outbox.hold``: typed while the room was read, the
app quit before it was signed) for a key this device no longer has (``setup-keys
--force``, or a key store lost and a new key made): red team rt92, finding 1. Every start
skipped it, and the typed text stayed in the outbox unseen for good. Now its room shows
it "not sent", says why, and its text can be copied to send it again; nothing signs it
with the new key.

The real app offscreen (``app.run`` through the ``launch`` fixture) on a local folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot
from desk import ALICE, Desk, settings_for
from nacl.signing import SigningKey
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMenu
from test_app_flows import store

from bucket_chat_desktop import paths
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.device_files import outbox_file
from bucket_chat_desktop.sync.outbox import Outbox

__all__ = ["store"]  # the fixture, used by name

TYPED = "Typed before the key was replaced"
OLD_KEY = b64encode(bytes(SigningKey(b"\x09" * 32).verify_key))


def test_a_message_kept_for_a_replaced_key_is_shown_not_sent_and_its_text_can_be_copied(
    qtbot: Any, launch: Callable[..., Desk], store: Path, tmp_path: Path
) -> None:
    box = Outbox(outbox_file(paths.data_dir(), LocalStorage(store)))
    try:
        box.hold(
            "falcon", OLD_KEY, ALICE, "Alice", [(MESSAGE, {"body": TYPED, "msgtype": "m.text"})]
        )
    finally:
        box.close()
    desk = launch(settings_for(store, ["falcon"]))
    desk.wait_loaded("falcon")

    def kept() -> list[Any]:
        return [(i, r) for i, r in enumerate(desk.rows("falcon")) if r.body == TYPED]

    qtbot.waitUntil(lambda: bool(kept()), timeout=15_000)
    [(at, row)] = kept()
    assert row.echo == "waiting" and row.sender_key == OLD_KEY
    assert row.echo_error.startswith(
        "not sent: the key that was to sign it was replaced on this device"
    ), row.echo_error
    assert row.echo_error.endswith("right-click to copy its text or discard it"), row.echo_error
    window = desk.window
    window.timeline.scrollToBottom()
    rect = window.timeline.visualRect(desk.model("falcon").index(at))
    window.timeline.customContextMenuRequested.emit(rect.center())
    menu = window.relation_actions.menu
    assert isinstance(menu, QMenu)
    assert [a.text() for a in menu.actions() if not a.isSeparator()] == ["Copy text", "Discard…"]
    menu.actions()[0].trigger()
    menu.close()
    assert QGuiApplication.clipboard().text() == TYPED
    shot(window, "kept-for-a-replaced-key", tmp_path)
    assert desk.quit() == 0
    box = Outbox(outbox_file(paths.data_dir(), LocalStorage(store)))
    try:
        assert [h.sender_key for h in box.held()] == [OLD_KEY]  # kept: not signed, not lost
        assert box.is_empty()
    finally:
        box.close()
