"""Reactions in the running app (``app.run``, a real ChatClient and engine on a local
folder): a click on a chip adds this user's reaction (a reaction event), a second click
takes it back (a redaction of it); relation events never become rows, the chip follows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import wait_for
from desk import Desk, settings_for
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from test_app_flows import CAROL, DAVE

from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.protocol.relations import HIDDEN_TYPES, REACTION, REDACTION
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "reacts"


async def seed(storage: LocalStorage) -> None:
    carol = RoomWriter(storage, ROOM, "carol@example.com", CAROL, displayname="Carol")
    dave = RoomWriter(storage, ROOM, "dave@example.com", DAVE, displayname="Dave")
    await carol.write_metadata("Reactions", "2026-01-05T09:00:00.000Z")
    _, [*_, msg] = await carol.send([Draft.text("Lunch at noon?")])
    await dave.send([Draft(REACTION, {"relates_to": msg.event_id, "reaction": "👍"})])
    await dave.send([Draft.text("Sure.")])


def _chip(desk: Desk) -> tuple[Any, Any]:
    model = desk.model(ROOM)
    row = next(i for i in range(model.rowCount()) if model.row(i).body == "Lunch at noon?")
    index = model.index(row)
    chips = index.data(Roles.Reactions)
    return index, chips[0] if chips else None


def _events(root: Path) -> list[str]:
    out = []
    for path in sorted((root / "rooms" / ROOM / "logs").rglob("*.jsonl")):
        out += [line for line in path.read_text().splitlines() if line.strip()]
    return out


def test_a_chip_click_sends_a_reaction_then_takes_it_back(
    qtbot: Any,
    launch: Callable[..., Desk],
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    wait_for(qtbot, seed(LocalStorage(root)))
    desk = launch(settings_for(root, [ROOM]))
    desk.wait_loaded(ROOM)
    qtbot.waitUntil(lambda: _chip(desk)[1] is not None, timeout=15_000)
    model = desk.model(ROOM)
    assert all(model.row(i).type not in HIDDEN_TYPES for i in range(model.rowCount()))
    view = desk.window.timeline
    delegate = desk.window.delegate

    def click() -> None:
        index, _ = _chip(desk)
        view.scrollTo(index)
        view.executeDelayedItemsLayout()
        regions = delegate.regions(index, view.visualRect(index), view.font())
        [(_what, _payload, rect)] = [p for p in regions.parts if p[0] == "chip"]
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

    _, chip = _chip(desk)
    assert chip.number == 1 and not chip.mine
    click()
    qtbot.waitUntil(lambda: _chip(desk)[1].number == 2, timeout=15_000)
    assert _chip(desk)[1].mine
    assert sum(f'"type":"{REACTION}"' in line for line in _events(root)) == 2
    click()
    qtbot.waitUntil(lambda: _chip(desk)[1].number == 1, timeout=15_000)
    assert not _chip(desk)[1].mine
    assert sum(f'"type":"{REDACTION}"' in line for line in _events(root)) == 1
    assert all(model.row(i).type not in HIDDEN_TYPES for i in range(model.rowCount()))
