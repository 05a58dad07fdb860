"""The running app as the app-level GUI tests drive it: ``app.run`` started on the test's
qasync loop, the window it built, and the waits a test needs on top of it.

``launch`` (the fixture in ``conftest.py``) starts the app through ``launching``; a test
module imports ``Desk``, ``settings_for``, ``answer_when_shown`` and ``RecordingTray``
from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from bucket_chat_desktop import app as app_module
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.models.timeline_model import Row, TimelineModel
from bucket_chat_desktop.settings import Settings, StorageSettings

ALICE = "alice@example.com"


def preview_line(item: Any) -> str:
    """A room's preview as the room list shows it on one line: "<sender>: <text>", or
    the notice alone (a ``RoomItem``'s ``preview_sender`` and ``preview_text``)."""
    if item.preview_sender:
        return f"{item.preview_sender}: {item.preview_text}"
    return str(item.preview_text)


def answer_when_shown(kind: type[QWidget], act: Callable[[Any], None]) -> None:
    """Act on the next ``kind`` modal dialog or popup as soon as it is shown: dialogs
    run their own nested event loop (``exec``), so the test answers from a timer."""

    def look() -> None:
        widget = QApplication.activeModalWidget() or QApplication.activePopupWidget()
        if isinstance(widget, kind) and widget.isVisible():
            act(widget)
        else:
            QTimer.singleShot(10, look)

    QTimer.singleShot(0, look)


def settings_for(store: Path | str, rooms: list[str], name: str = "Team share") -> Settings:
    """Alice's settings with one storage and ``rooms`` joined, the first one open."""
    entry = StorageSettings(str(store), name, list(rooms))
    settings = Settings(user_id=ALICE, displayname="Alice", storages=[entry])
    if rooms:
        settings.last_room = f"{entry.id}/{rooms[0]}"
    return settings


class RecordingTray(QSystemTrayIcon):
    """A real tray icon that says it is shown (offscreen has no tray) and records what it
    was asked to show."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.messages: list[tuple[str, str]] = []

    def isVisible(self) -> bool:
        return True

    def showMessage(self, title: str, text: str, *args: Any) -> None:
        self.messages.append((title, text))


@dataclass
class Desk:
    """The running app: ``app.run``'s task and the window it built."""

    qtbot: Any
    settings: Settings
    window: MainWindow
    task: asyncio.Future[int]

    @property
    def controller(self) -> Any:
        return self.window.controller

    def key(self, room: str, storage: int | None = None) -> str:
        """The room's key in the storage ``storage`` (an index into the settings' list),
        by default the first storage whose rooms name it (else the first storage)."""
        if storage is None:
            found = (i for i, s in enumerate(self.settings.storages) if room in s.rooms)
            storage = next(found, 0)
        return f"{self.settings.storages[storage].id}/{room}"

    def model(self, room: str) -> TimelineModel:
        return self.controller.timeline(self.key(room))  # type: ignore[no-any-return]

    def rows(self, room: str) -> list[Row]:
        model = self.model(room)
        return [model.row(i) for i in range(model.rowCount())]

    def item(self, room: str) -> Any:
        return self.controller.rooms.item(self.key(room))

    def loaded(self, room: str) -> bool:
        """The room was read whole and its audit is shown: what arrives next is appended
        (and counted unread), not part of the first read."""
        key = self.key(room)
        attached = self.controller.client._storages.get(key.split("/")[0])
        state = attached.engine.rooms.get(room) if attached else None
        return bool(
            state is not None and state.complete and self.controller.result(key) is state.result
        )

    def settled(self, room: str) -> bool:
        """Nothing the engine owes the room is still to come: no full audit put off by the
        re-audit pace (``RoomState.audit_owed``), no release of rows dated ahead under
        way, and the window shows the engine's newest audit. What arrives next is then
        the next arrival's, not a delivery owed for an earlier one."""
        key = self.key(room)
        attached = self.controller.client._storages.get(key.split("/")[0])
        state = attached.engine.rooms.get(room) if attached else None
        return bool(
            state is not None
            and not state.audit_owed
            and (state.reaudit is None or state.reaudit.done())
            and (state.releasing is None or state.releasing.done())
            and self.controller.result(key) is state.result
        )

    def shows(self, room: str, event_id: str) -> bool:
        """The room's latest audit has a row of ``event_id``."""
        result = self.controller.result(self.key(room))
        return result is not None and any(a.event.event_id == event_id for a in result.timeline)

    def wait_loaded(self, *rooms: str, timeout: int = 15_000) -> None:
        for room in rooms:
            self.qtbot.waitUntil(lambda r=room: self.loaded(r), timeout=timeout)

    def wait_index(self, room: str, body: str, timeout: int = 15_000) -> int:
        """The row number of the confirmed row with ``body``, once the room shows it."""

        def found() -> int:
            return next(
                (i for i, r in enumerate(self.rows(room)) if r.body == body and not r.echo), -1
            )

        self.qtbot.waitUntil(lambda: found() >= 0, timeout=timeout)
        return found()

    def wait_row(self, room: str, body: str, timeout: int = 15_000) -> Row:
        """The confirmed row with ``body``, once the room shows it."""
        index = self.wait_index(room, body, timeout)
        return self.rows(room)[index]

    def select(self, room: str) -> None:
        row = self.controller.rooms.row_of(self.key(room))
        self.window.room_list.setCurrentIndex(self.controller.rooms.index(row))
        self.qtbot.waitUntil(lambda: self.controller.current == self.key(room))

    def quit(self) -> int:
        if not self.task.done():
            self.window.quit()
            self.qtbot.waitUntil(self.task.done, timeout=15_000)
        return self.task.result()


def launching(qtbot: Any, qapp: QApplication) -> Iterator[Callable[[Settings], Desk]]:
    """Body of the ``launch`` fixture: start the app the way ``bucket-chat-desktop`` does
    once settings exist; at teardown quit every app started and check it exited with 0."""
    desks: list[Desk] = []

    def start(settings: Settings) -> Desk:
        task = asyncio.ensure_future(app_module.run(qapp, settings, start_minimized=False))

        def window() -> MainWindow | None:
            return next(
                (
                    w
                    for w in QApplication.topLevelWidgets()
                    if isinstance(w, MainWindow) and w.controller.settings is settings
                ),
                None,
            )

        qtbot.waitUntil(lambda: window() is not None or task.done(), timeout=15_000)
        if task.done():
            raise AssertionError(f"the app stopped at start-up: {task.result()}")
        win = window()
        assert win is not None
        desk = Desk(qtbot, settings, win, task)
        desks.append(desk)
        return desk

    yield start
    for desk in desks:
        assert desk.quit() == 0
        desk.window.deleteLater()
