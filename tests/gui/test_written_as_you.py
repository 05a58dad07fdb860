"""Red team, in the app: a member with a key of their own writes as the app's user.

The row was marked "key changed" and the banner named "a new key nobody introduced" —
the words for any member — so nothing told Alice that someone writes in *her* name, and
that members who never compared fingerprints with her may now trust neither that text
nor hers. The banner says so first, and only when another key claims her."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot
from desk import ALICE
from nacl.signing import SigningKey
from test_app_flows import (  # noqa: F401 (fixtures)
    Desk,
    launch,
    settings_for,
    store,
    wait_for,
)

from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

CLAIM = "Someone wrote as you (alice@example.com) in this room"


def _banner(desk: Desk) -> str:
    return desk.window.banner_text.text() if desk.window.banner.isVisible() else ""


def test_the_banner_says_when_another_key_wrote_as_you_before_you(
    qtbot: Any,
    launch: Callable[..., Desk],  # noqa: F811
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    storage = LocalStorage(store)
    forger = RoomWriter(storage, "general", ALICE, SigningKey(b"\x09" * 32), displayname="Alice")
    wait_for(qtbot, forger.send([Draft.text("Alice here: the new account is XX99")]))
    desk = launch(settings_for(store, ["general"]))
    desk.wait_loaded("general")
    assert desk.wait_row("general", "Alice here: the new account is XX99").trust == "key-changed"
    qtbot.waitUntil(lambda: CLAIM in _banner(desk), timeout=15_000)
    assert "with a key this device does not trust" in _banner(desk)
    assert "key-changed" in _banner(desk)  # the history's problems follow it
    desk.controller.send_text("that was not me")
    assert desk.wait_row("general", "that was not me").trust == "verified"
    assert CLAIM in _banner(desk)
    shot(desk.window, "written-as-you", tmp_path)


def test_no_such_banner_for_another_members_impostor_or_a_clean_room(
    qtbot: Any,
    launch: Callable[..., Desk],  # noqa: F811
    store: Path,  # noqa: F811
) -> None:
    desk = launch(settings_for(store, ["general", "falcon"]))
    desk.wait_loaded("general")
    desk.controller.send_text("hello")
    desk.wait_row("general", "hello")
    assert not desk.window.banner.isVisible()
    storage = LocalStorage(store)
    carol = RoomWriter(storage, "general", "carol@example.com", SigningKey(b"\x0a" * 32))
    wait_for(qtbot, carol.send([Draft.text("Carol's new key, trust me")]))
    assert desk.wait_row("general", "Carol's new key, trust me").trust == "key-changed"
    qtbot.waitUntil(lambda: "key-changed" in _banner(desk), timeout=15_000)
    assert "wrote as you" not in _banner(desk)
    assert desk.controller.others_as_me(desk.key("general")) == 0
