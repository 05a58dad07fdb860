"""Red team, in the app: the user compared Bob's fingerprint and confirmed his laptop.
Bob, hostile, then signed as ``alice@example.com`` with that very key in another room,
and Carol named the key as a device of hers (a public key anyone can copy from a room).
A confirmation was kept as a key alone: the impostor's "new bank details" got the green
"confirmed by you" badge, and the members panel listed the key as a confirmed device of
"alice" and of Carol. A confirmation is of a key *as someone's* (sender id and key):
Bob's rows keep it, nobody else gets it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey

from bucket_chat_desktop.gui.features import Features
from bucket_chat_desktop.gui.models.members_model import DeviceState
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

BOB = SigningKey(b"\x02" * 32)
BOB_KEY = b64encode(bytes(BOB.verify_key))


def test_a_key_confirmed_as_bobs_confirms_nothing_as_anyone_elses(
    qtbot: Any, launch: Callable[..., Desk], tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "store")
    bob = RoomWriter(storage, "falcon", "bob@example.com", BOB, displayname="Bob")
    wait_for(qtbot, bob.send([Draft.text("Checking it now.")]))
    carol = RoomWriter(storage, "falcon", "carol@example.com", SigningKey(b"\x03" * 32))
    wait_for(qtbot, carol.send([Draft.text("hi all")]))
    wait_for(qtbot, carol.add_device(BOB_KEY, device_name="Carol's laptop"))
    fake = RoomWriter(storage, "payments", "alice@example.com", BOB, displayname="Alice")
    wait_for(qtbot, fake.send([Draft.text("new bank details: pay account X")]))

    settings = settings_for(tmp_path / "store", ["falcon", "payments"])
    settings.user_id, settings.displayname = "dave@example.com", "Dave"
    desk = launch(settings)
    desk.wait_loaded("falcon", "payments")
    features = desk.window.findChild(Features)
    desk.select("falcon")
    desk.window.members_button.click()
    members = features.members_model

    def devices(user_id: str) -> dict[str, DeviceState]:
        row = members.row_of(user_id)
        return {d.key: d.state for d in members.member(row).devices} if row >= 0 else {}

    qtbot.waitUntil(lambda: BOB_KEY in devices("carol@example.com"), timeout=15_000)
    laptop = next(d for d in members.member(members.row_of("bob@example.com")).devices)
    assert wait_for(qtbot, features.mark_verified(desk.key("falcon"), laptop))

    real = desk.model("falcon").index(desk.wait_index("falcon", "Checking it now."))
    qtbot.waitUntil(lambda: real.data(Roles.Confirmed) is True, timeout=15_000)
    qtbot.waitUntil(lambda: devices("bob@example.com")[BOB_KEY] is DeviceState.CONFIRMED)
    assert devices("carol@example.com")[BOB_KEY] is not DeviceState.CONFIRMED

    desk.select("payments")
    desk.wait_loaded("payments")
    model = desk.model("payments")
    forged = model.index(desk.wait_index("payments", "new bank details: pay account X"))
    qtbot.waitUntil(lambda: members.row_of("alice@example.com") >= 0, timeout=15_000)
    assert forged.data(Roles.SenderKey) == BOB_KEY
    assert forged.data(Roles.Confirmed) is False
    assert devices("alice@example.com")[BOB_KEY] is not DeviceState.CONFIRMED
    panel = features.members_panel
    qtbot.waitUntil(lambda: [c.member.user_id for c in panel.cards] == ["alice@example.com"])
    shot(desk.window, "confirmed-per-person-payments", tmp_path)
