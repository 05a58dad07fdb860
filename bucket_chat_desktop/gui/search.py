"""Search, wired into an existing main window: Ctrl+F searches the open room, Ctrl+Shift+F
every room of every storage. ``install(window, controller)`` is the only entry point.

Queries run through the controller's client (``ChatClient.search``, on each storage's
index reader thread) as tasks of the controller's runner, never on the GUI thread; an
answer for a query the field no longer holds is dropped. Choosing a result opens its
room, loads the rows around the message (``show_event`` → ``ChatClient.locate`` →
``TimelineModel.reveal``), scrolls to it and flashes it. The panel itself is
``widgets/search_panel.py``; the controller is not changed.
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import QEvent, QObject, QRect, Qt, QTimer
from PySide6.QtGui import QColor, QKeySequence, QPainter, QPaintEvent, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QWidget

from ..protocol.untrusted_text import one_line
from ..sync.client import RoomRef, SearchResults
from .controller import Controller
from .main_window import MainWindow
from .models.timeline_model import Revealed, Roles
from .safe import guard
from .shortcuts import let_through
from .style import ACCENT
from .widgets.search_panel import SearchPanel, ShownHit

log = logging.getLogger("bucket_chat.gui")

ROOM_KEYS = QKeySequence("Ctrl+F")
EVERYWHERE_KEYS = QKeySequence("Ctrl+Shift+F")
FLASH_MS = 1600
SEARCH_RESULTS = 50  # results a search in the app shows
AUDIT_WAIT = 15.0  # seconds showing a found message waits for its room to be read


class Flash(QWidget):
    """A fading highlight over one row of the timeline (the message a search led to)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._alpha = 0
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._fade)
        self.hide()

    def flash(self, rect: QRect) -> None:
        self.setGeometry(rect)
        self._alpha = 110
        self._steps = FLASH_MS // 40
        self.show()
        self.raise_()
        self._timer.start()

    def _fade(self) -> None:
        self._steps -= 1
        if self._steps <= 0:
            self._timer.stop()
            self.hide()
            return
        if self._steps < 15:
            self._alpha = max(0, self._alpha - 7)
        self.update()

    @guard()
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        color = QColor(ACCENT)
        color.setAlpha(self._alpha)
        painter.fillRect(self.rect(), color)
        painter.end()


class SearchFeature(QObject):
    def __init__(self, window: MainWindow, controller: Controller) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.panel = SearchPanel(window)
        self.panel.anchor = window.stack
        self.panel.query_changed.connect(self._search)
        self.panel.hit_chosen.connect(self.show_hit)
        self.flash = Flash(window.timeline.viewport())
        self.flashed: tuple[str, int] | None = None  # (event id, row) last flashed (tests)
        self.last_message = ""  # why the last chosen message could not be shown
        self._pending: tuple[str, str] | None = None  # (room key, event id) being revealed
        for keys, everywhere in ((ROOM_KEYS, False), (EVERYWHERE_KEYS, True)):
            shortcut = QShortcut(keys, window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(
                lambda everywhere=everywhere: self.open(everywhere=everywhere)
            )
        window.composer.installEventFilter(self)  # the composer must not eat the shortcuts
        window.timeline.verticalScrollBar().valueChanged.connect(lambda _v: self.flash.hide())

    # -- opening ---------------------------------------------------------------------------------

    def open(self, *, everywhere: bool) -> None:
        key = self.controller.current
        if everywhere or not key:
            self.panel.open("Search all rooms", None)
            return
        item = self.controller.rooms.item(key)
        name = one_line(item.shown_name, 60) if item is not None else ""
        self.panel.open(f"Search in {name or key.split('/', 1)[-1]}", key)

    # -- searching -------------------------------------------------------------------------------

    def _search(self, text: str, room_key: str) -> None:
        """Search every storage's index (or ``room_key``'s room only) off the GUI thread,
        through the client; the frozen results come back here on the GUI thread."""
        storage_id, _, room_id = room_key.partition("/")

        async def run() -> None:
            results = await self.controller.client.search(
                text,
                storage_id=storage_id or None,
                room_id=room_id or None,
                limit=SEARCH_RESULTS,
            )
            self._show(text, results)

        self.controller.tasks.start(run(), "Searching")

    def _show(self, text: str, results: SearchResults) -> None:
        rows = []
        for hit in results.hits:
            key = f"{hit.storage_id}/{hit.room_id}"
            item = self.controller.rooms.item(key)
            if item is None:
                continue  # a room left since (its copy stays in the index): not offered
            model = self.controller.timelines.get(key)
            name = model.names.shown(hit.sender_id) if model is not None else hit.sender_id
            rows.append(ShownHit(hit, key, item.shown_name, name))
        problems = [f"{self.controller._storage_name(sid)}: {why}" for sid, why in results.errors]
        self.panel.show_results(text, rows, results.more, problems, results.backlog)

    # -- showing a message in its room -----------------------------------------------------------

    def show_hit(self, room_key: str, event_id: str) -> None:
        wanted = self._pending = (room_key, event_id)
        self.last_message = ""
        self.show_event(room_key, event_id, lambda row, why: self._on_revealed(wanted, row, why))

    def show_event(self, key: str, event_id: str, done: Revealed) -> None:
        """Open the room and show ``event_id`` in context: its position in the room's
        audit is found off the GUI thread, then the timeline loads the rows around it
        (``TimelineModel.reveal``); ``done`` gets the timeline row, or -1 and why not."""
        controller = self.controller
        if controller.rooms.item(key) is None:
            done(-1, "you are not in this room any more")
            return
        controller.select_room(key)
        storage_id, _, room_id = key.partition("/")
        ref = RoomRef(storage_id, room_id)

        async def run() -> None:
            waited = 0.0
            while (result := controller.results.get(key)) is None and waited < AUDIT_WAIT:
                await asyncio.sleep(0.05)  # the room is being opened: its audit comes
                waited += 0.05
            if result is None:
                done(-1, "the room has not been read yet; try again soon")
                return
            pos = await controller.client.locate(ref, result, event_id)
            if pos is None:
                done(-1, "this message is not shown in the room's timeline")
            else:
                controller.timeline(key).reveal(pos, event_id, done)

        controller.tasks.start(run(), "Showing the message")

    def _on_revealed(self, wanted: tuple[str, str], row: int, why: str) -> None:
        if wanted != self._pending:
            return  # another result was chosen since
        self._pending = None
        key, event_id = wanted
        if row < 0:
            self.last_message = why
            self.controller.error.emit("Showing the message", why)
            return
        # After the view's own reactions to the rows that came in (it keeps the bottom
        # in view while it was there, from a zero timer of its own).
        QTimer.singleShot(0, lambda: self._scroll_to(key, row, event_id))

    def _scroll_to(self, key: str, row: int, event_id: str) -> None:
        view = self.window.timeline
        model = view.model()
        if self.controller.current != key or model is None or row >= model.rowCount():
            return
        index = model.index(row, 0)
        if index.data(Roles.EventId) != event_id:
            return
        view.executeDelayedItemsLayout()
        view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        rect = view.visualRect(index)
        if rect.isValid():
            self.flash.flash(rect)
        self.flashed = (event_id, row)

    # -- shortcuts inside text fields -------------------------------------------------------------

    @guard()
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if let_through(event, (ROOM_KEYS, EVERYWHERE_KEYS)):
            return True
        return super().eventFilter(watched, event)


def install(window: MainWindow, controller: Controller) -> SearchFeature:
    """Wire Ctrl+F / Ctrl+Shift+F search into ``window``."""
    return SearchFeature(window, controller)
