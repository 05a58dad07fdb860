"""Red team, in the app: a member wrote as alice@example.com with a key of their own in
a room of their own ("drinks"), where alice never wrote, and with the same key an edit
of alice's message in the room where she writes ("payments"). Trust on first use was
pinned for the whole storage: the app, having read "drinks" first, showed alice's
message in "payments" as edited to the impostor's text, and her own key as changed. It
is a room's own now: in "payments" two keys claim alice, neither is trusted, and the
edit changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.protocol.relations import EDIT
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ALICE = "alice@example.com"


def test_a_key_first_seen_in_another_room_does_not_speak_for_alice_here(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "store")
    alice = RoomWriter(storage, "payments", ALICE, SigningKey(b"\x01" * 32), displayname="Alice")
    wait_for(qtbot, alice.create_room("Payments", "2026-06-01T00:00:00.000Z"))
    _, (pay,) = wait_for(qtbot, alice.send([Draft.text("pay bob $500")]))
    mallory = SigningKey(b"\x4d" * 32)
    own = RoomWriter(storage, "drinks", ALICE, mallory, displayname="Alice")
    wait_for(qtbot, own.send([Draft.text("drinks at six?")]))
    forged = RoomWriter(storage, "payments", ALICE, mallory, displayname="Alice")
    edit = {"replaces": pay.event_id, "new_content": {"body": "pay MALLORY $5000"}}
    wait_for(qtbot, forged.send([Draft(EDIT, edit)]))

    settings = settings_for(tmp_path / "store", ["drinks", "payments"])
    settings.user_id, settings.displayname = "carol@example.com", "Carol"
    desk = launch(settings)
    desk.wait_loaded("drinks")  # read first: its only key for alice is trusted there
    assert {r.trust for r in desk.rows("drinks")} == {"verified"}
    desk.select("payments")
    desk.wait_loaded("payments")
    model = desk.model("payments")
    index = model.index(desk.wait_index("payments", "pay bob $500"))
    qtbot.waitUntil(lambda: "key-conflict" in _kinds(desk), timeout=15_000)
    assert "MALLORY" not in str(index.data(Roles.Body) or "")
    shown = [str(model.index(i).data(Roles.Body) or "") for i in range(model.rowCount())]
    assert not any("MALLORY" in body for body in shown), shown
    assert index.data(Roles.Trust) != "verified"  # two keys claim alice: neither trusted
    shot(desk.window, "trust-per-room-payments", tmp_path)


def _kinds(desk: Desk) -> list[str]:
    result = desk.controller.result(desk.key("payments"))
    return [f.kind.value for f in result.findings] if result is not None else []
