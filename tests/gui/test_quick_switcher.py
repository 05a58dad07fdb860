"""Ctrl+K in the real window: filter the rooms by name or id, move, open, close."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.features import Features, install
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.models.rooms_model import RoomItem, RoomRoles, RoomsModel
from bucket_chat_desktop.gui.widgets.quick_switcher import (
    QuickSwitcher,
    RoomFilter,
    match_positions,
    match_score,
)
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.settings import Settings, StorageSettings

ROOMS = {
    "falcon": "Project Falcon",
    "general": "General",
    "design-reviews": "Design reviews",
    "ops-oncall": "Ops on-call",
    "random": "Random",
}
CTRL = Qt.KeyboardModifier.ControlModifier


def shot(widget: QWidget, name: str, tmp_path: Path) -> Path:
    """Render ``widget``; also into $BUCKET_CHAT_GUI_SHOTS when set, to look at."""
    path = tmp_path / f"{name}.png"
    image = widget.grab()
    assert image.save(str(path))
    folder = os.environ.get("BUCKET_CHAT_GUI_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        image.save(str(Path(folder) / f"{name}.png"))
    return path


@dataclass
class App:
    controller: Controller
    window: MainWindow
    features: Features
    storage_id: str

    @property
    def switcher(self) -> QuickSwitcher:
        return self.features.switcher

    def key(self, room_id: str) -> str:
        return f"{self.storage_id}/{room_id}"


@pytest.fixture
def app(qtbot: Any, home: Path, tmp_path: Path) -> Iterator[App]:
    """The window over a controller that is not started: rooms come from the settings,
    nothing is read from storage (the switcher needs only the room list)."""
    entry = StorageSettings(str(tmp_path / "store"), "Team share", list(ROOMS))
    settings = Settings("alice@example.com", "Alice", [entry])
    controller = Controller(settings, Identity("alice@example.com", SigningKey(b"\x01" * 32)))
    for n, (room_id, name) in enumerate(ROOMS.items()):
        controller.rooms.update(f"{entry.id}/{room_id}", name=name, last_ts=1_000 + n)
    controller.rooms.update(f"{entry.id}/falcon", unread=3, findings=1)
    window = MainWindow(controller)
    qtbot.addWidget(window)
    features = install(window, controller)
    window.resize(1100, 700)
    window.show()
    qtbot.waitExposed(window)
    yield App(controller, window, features, entry.id)


def test_fuzzy_matching_prefers_prefixes_and_word_starts() -> None:
    assert match_positions("fcn", "Project Falcon") == [8, 11, 13]
    assert match_positions("pf", "Project Falcon") == [0, 8]  # word starts
    assert match_positions("falc", "Project Falcon") == [8, 9, 10, 11]
    assert match_positions("xyz", "Project Falcon") is None
    assert match_positions("", "anything") == []
    assert match_score("ge", "General")  # prefix
    prefix, inner = match_score("ra", "Random"), match_score("ra", "Project Falcon")
    assert prefix is not None and (inner is None or prefix > inner)
    word, scattered = match_score("or", "Ops reviews"), match_score("or", "Factory")
    assert word is not None and scattered is not None and word > scattered


def test_ctrl_k_opens_it_from_anywhere_even_the_composer(qtbot: Any, app: App) -> None:
    app.window.composer.setFocus()
    qtbot.waitUntil(app.window.composer.hasFocus)
    QTest.keyClick(app.window.composer, Qt.Key.Key_K, CTRL)
    assert app.switcher.isVisible()
    assert app.switcher.search.hasFocus()
    assert app.window.composer.toPlainText() == ""  # the editor did not take the key
    assert len(app.switcher.visible_keys()) == len(ROOMS)
    QTest.keyClick(app.switcher.search, Qt.Key.Key_Escape)
    assert not app.switcher.isVisible()
    QTest.keyClick(app.window, Qt.Key.Key_K, CTRL)
    assert app.switcher.isVisible()
    QTest.keyClick(app.window, Qt.Key.Key_K, CTRL)  # toggles
    assert not app.switcher.isVisible()


def test_typing_filters_names_and_ids_best_first(qtbot: Any, app: App, tmp_path: Path) -> None:
    app.switcher.open()
    # empty: every room, most recent first
    assert app.switcher.visible_keys() == [app.key(r) for r in reversed(list(ROOMS))]
    QTest.keyClicks(app.switcher.search, "fcn")
    assert app.switcher.visible_keys() == [app.key("falcon")]
    app.switcher.search.clear()
    QTest.keyClicks(app.switcher.search, "oncall")  # only in the id "ops-oncall"
    assert app.switcher.visible_keys() == [app.key("ops-oncall")]
    app.switcher.search.clear()
    QTest.keyClicks(app.switcher.search, "r")
    keys = app.switcher.visible_keys()
    assert keys[0] == app.key("random")  # a prefix wins
    assert set(keys) == {app.key(r) for r in ("random", "design-reviews", "falcon", "general")}
    shot(app.window, "quick_switcher", tmp_path)
    app.switcher.search.clear()
    QTest.keyClicks(app.switcher.search, "zzz")
    assert app.switcher.visible_keys() == []
    assert app.switcher.empty.isVisible() and not app.switcher.list.isVisible()


def test_arrows_and_enter_open_the_room(qtbot: Any, app: App) -> None:
    QTest.keyClick(app.window, Qt.Key.Key_K, CTRL)
    QTest.keyClicks(app.switcher.search, "e")
    keys = app.switcher.visible_keys()
    assert len(keys) >= 3
    assert app.switcher.list.currentIndex().row() == 0
    QTest.keyClick(app.switcher.search, Qt.Key.Key_Down)
    QTest.keyClick(app.switcher.search, Qt.Key.Key_Down)
    QTest.keyClick(app.switcher.search, Qt.Key.Key_Up)
    assert app.switcher.list.currentIndex().row() == 1
    with qtbot.waitSignal(app.controller.current_changed) as changed:
        QTest.keyClick(app.switcher.search, Qt.Key.Key_Return)
    assert changed.args == [keys[1]]
    assert app.controller.current == keys[1]
    assert not app.switcher.isVisible()
    assert app.window.room_title.text().find(ROOMS[keys[1].split("/", 1)[1]]) >= 0


def test_a_click_on_a_room_opens_it_and_a_click_outside_closes(qtbot: Any, app: App) -> None:
    app.switcher.open()
    QTest.keyClicks(app.switcher.search, "general")
    view = app.switcher.list
    rect = view.visualRect(view.model().index(0, 0))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert app.controller.current == app.key("general")
    assert not app.switcher.isVisible()
    app.switcher.open()
    QTest.mouseClick(app.switcher, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert not app.switcher.isVisible()
    assert app.controller.current == app.key("general")


def test_the_filter_model(qtmodeltester: Any, qtbot: Any) -> None:
    rooms = RoomsModel()
    for n, (room_id, name) in enumerate(ROOMS.items()):
        rooms.add(RoomItem(f"s/{room_id}", name, "Team share", last_ts=n))
    parent = QWidget()
    qtbot.addWidget(parent)
    switcher = QuickSwitcher(rooms, parent)
    qtmodeltester.check(switcher.proxy)
    for query in ("", "o", "op", "ops", "", "zz", "falcon"):
        switcher.proxy.set_query(query)
    rooms.add(RoomItem("s/opsec", "OpSec", "Team share", last_ts=99))
    rooms.update("s/falcon", name="Ops Falcon")
    switcher.proxy.set_query("ops")
    assert [switcher.proxy.index(r, 0).data() for r in range(switcher.proxy.rowCount())] == [
        "OpSec",  # equally good matches: the most recent first
        "Ops on-call",
        "Ops Falcon",
    ]
    rooms.remove("s/opsec")
    assert switcher.proxy.rowCount() == 2


def test_typing_in_the_quick_switcher_scores_each_room_a_few_times_only(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt68: each keystroke (and Ctrl+K itself) sorts the rooms through
    ``RoomFilter.lessThan``, which scored both rooms again (fuzzy matching of name and
    id) at each of the n·log n comparisons: 5,000 rooms took 0.9 s to open and 0.5 s per
    letter; 20,000: 4.5 s and 3 s. Counted as calls of ``_score``, not timed."""
    rooms = 3_000
    topics = ("cats", "dogs", "ops", "design")
    model = RoomsModel()
    for i in range(rooms):
        model.add(
            RoomItem(f"s1/room-{i:05d}", f"Room {i} about {topics[i % 4]}", "Team", last_ts=i)
        )
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.resize(900, 700)
    parent.show()
    switcher = QuickSwitcher(model, parent)
    scored = 0
    real = RoomFilter._score

    def counted(self: RoomFilter, *args: Any) -> int | None:
        nonlocal scored
        scored += 1
        return real(self, *args)

    monkeypatch.setattr(RoomFilter, "_score", counted)
    switcher.open()
    switcher.search.setText("d")
    proxy = switcher.proxy
    shown = [proxy.index(r, 0).data() for r in range(proxy.rowCount())]
    assert len(shown) == rooms // 2  # "dogs" and "design"
    assert shown[:2] == ["Room 2999 about design", "Room 2997 about dogs"]  # newest first
    # scoring every room once for the filter and once for the order would be 2·n per step
    assert scored <= 6 * rooms, f"{scored:,} room scores for Ctrl+K and one letter"
    # a room that changes while the list is shown is scored again, and moves
    model.update("s1/room-00001", last_ts=10**6)
    assert proxy.index(0, 0).data() == "Room 1 about dogs"
    model.update("s1/room-00001", name="Room 1 about cats")
    assert "Room 1 about cats" not in [proxy.index(r, 0).data() for r in range(proxy.rowCount())]
    scored = 0
    model.set_storage_online("s1", False)  # nothing that moves a room: none scored again
    assert scored == 0
    model.update("s1/room-00003", unread=4)  # what does not move a room: none scored again
    assert scored == 0
    model.update("s1/room-00003", last_ts=10**6 + 1)  # its activity moves it: scored again
    assert scored == 1
    # Typed characters must all occur in order: a longer query matches some of the rooms
    # the shorter one matched, and only those are scored again; a letter taken back
    # scores every room (it may match more).
    matched = proxy.rowCount()
    steps = []
    for text in ("do", "dog", "do"):
        scored = 0
        switcher.search.setText(text)
        steps.append((scored, proxy.rowCount()))
    assert steps[0][0] == matched and steps[1][0] == steps[0][1]
    assert steps[1][1] == rooms // 4 - 1  # "dogs" (room 1 is about cats now)
    assert steps[2] == (rooms, steps[0][1])
    assert proxy.index(0, 0).data() == "Room 2997 about dogs"
    # Hidden, the list is not kept: the app renames every room at start, and each change
    # re-placed a room in a list nobody saw (20,000 rooms: 52 s of the window's time).
    switcher.hide()
    assert proxy.rowCount() == 0
    scored = 0
    for i in range(0, rooms, 10):
        model.update(f"s1/room-{i:05d}", name=f"Room {i} renamed", last_ts=10**7 + i)
    model.add(RoomItem("s1/room-new", "Room new about dogs", "Team", last_ts=10**8))
    model.remove("s1/room-00002")
    assert scored == 0
    switcher.open()  # scored again, once each
    assert scored == rooms and proxy.rowCount() == rooms
    assert proxy.index(0, 0).data() == "Room new about dogs"


def test_a_room_changing_while_the_switcher_is_open_does_not_walk_every_row(
    qtbot: Any, request: pytest.FixtureRequest
) -> None:
    """``QListView`` walked every row at each change of a row (two ``index()`` calls a
    row, in Python for this model: 60 ms a message at 20,000 rooms); rows of one height
    need only the row repainted. A room moved by its activity keeps the selection on the
    room chosen, and a room added keeps it too (the list is made anew then)."""
    rooms = 3_000
    model = RoomsModel()
    for i in range(rooms):
        model.add(RoomItem(f"s1/r-{i:05d}", f"Room {i}", "Team", last_ts=i))
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.resize(900, 700)
    parent.show()
    switcher = QuickSwitcher(model, parent)
    switcher.open()
    qtbot.waitExposed(switcher)
    calls = 0
    code = inspect.unwrap(RoomFilter.index).__code__  # under its guard()

    def count(frame: Any, event: str, _arg: Any) -> None:
        # the view calls the model's index() from C++: counted where Python runs it
        nonlocal calls
        if event == "call" and frame.f_code is code:
            calls += 1

    sys.setprofile(count)
    request.addfinalizer(lambda: sys.setprofile(None))
    QTest.keyClick(switcher.search, Qt.Key.Key_Down)
    QTest.keyClick(switcher.search, Qt.Key.Key_Down)
    chosen = switcher.list.currentIndex().data(RoomRoles.Key)
    assert chosen == "s1/r-02997"
    calls = 0
    model.update("s1/r-00010", unread=3)
    QApplication.processEvents()  # the view handles the change and paints
    assert calls < 100, f"{calls:,} index() calls for one room's unread count"
    model.update("s1/r-00010", last_ts=10**6)  # moves to the top
    assert switcher.visible_keys()[0] == "s1/r-00010"
    assert switcher.list.currentIndex().data(RoomRoles.Key) == chosen
    model.add(RoomItem("s1/new", "A new room", "Team", last_ts=10**7))
    assert switcher.visible_keys()[0] == "s1/new"
    assert switcher.list.currentIndex().data(RoomRoles.Key) == chosen


def test_a_room_leaving_above_the_chosen_one_keeps_the_chosen_room_chosen(qtbot: Any) -> None:
    """Red team rt81: the list kept the chosen room by reading its key through the rows'
    old numbers after the rooms had been renumbered, so a room above it leaving while
    Ctrl+K was open made Enter open the room below ("Finance" for "General")."""
    model = RoomsModel()  # the room list's rows: Payroll, General, Finance
    model.add(RoomItem("s/payroll", "Payroll", "Team", last_ts=3))
    model.add(RoomItem("s/general", "General", "Team", last_ts=2))
    model.add(RoomItem("s/finance", "Finance", "Team", last_ts=1))
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.resize(900, 700)
    parent.show()
    switcher = QuickSwitcher(model, parent)
    switcher.open()
    assert switcher.visible_keys() == ["s/payroll", "s/general", "s/finance"]
    switcher.list.setCurrentIndex(switcher.proxy.index(1, 0))
    model.remove("s/payroll")  # the room above it leaves while the switcher is open
    assert switcher.visible_keys() == ["s/general", "s/finance"]
    chosen: list[str] = []
    switcher.room_chosen.connect(chosen.append)
    switcher.choose()  # Enter
    assert chosen == ["s/general"]
    switcher.open()
    switcher.list.setCurrentIndex(switcher.proxy.index(1, 0))  # Finance
    model.add(RoomItem("s/ops", "Ops", "Team", last_ts=0))  # a room joined below it
    model.add(RoomItem("s/new", "New", "Team", last_ts=9))  # and one above it
    assert switcher.list.currentIndex().data(RoomRoles.Key) == "s/finance"
