"""Red team rt47, in the app: a thread started by an impostor under Carol's id was
headed "started by Carol (carol@example.com) · 1 reply" with no mark, while its root's row
just below said "key changed". The header now begins with the root's badge words."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import shot, wait_for
from desk import Desk, settings_for
from nacl.signing import SigningKey
from test_app_flows import DAVE, store  # noqa: F401 - fixtures

from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "general"


def test_a_thread_an_impostor_started_is_headed_with_its_roots_badge(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    storage = LocalStorage(store)
    forger = RoomWriter(storage, ROOM, "carol@example.com", SigningKey(b"\x4d" * 32))
    dave = RoomWriter(storage, ROOM, "dave@example.com", DAVE, displayname="Dave")

    async def write() -> tuple[str, str]:
        _, [*_, root] = await forger.send([Draft.text("New payroll account, reply here")])
        await dave.send([Draft.text("done", root.event_id)])
        _, [*_, real] = await dave.send([Draft.text("a thread of mine")])
        await dave.send([Draft.text("and its reply", real.event_id)])
        return root.event_id, real.event_id

    forged, real = wait_for(qtbot, write())
    desk = launch(settings_for(store, [ROOM]))
    desk.wait_loaded(ROOM)
    assert desk.wait_row(ROOM, "New payroll account, reply here").trust == "key-changed"
    panel = desk.window.relation_actions.thread_panel  # type: ignore[union-attr]
    desk.window.open_thread(forged)
    qtbot.waitUntil(lambda: "1 reply" in panel.subtitle.text(), timeout=15_000)
    assert panel.subtitle.text().index("Key changed:") < panel.subtitle.text().index("started by")
    shot(desk.window, "impostor-thread", tmp_path)
    desk.window.open_thread(real)
    qtbot.waitUntil(lambda: "1 reply" in panel.subtitle.text(), timeout=15_000)
    assert "Key changed" not in panel.subtitle.text() and "started by" in panel.subtitle.text()
