"""Search, wired into an existing main window: Ctrl+F searches the open room, Ctrl+Shift+F
every room of every storage. ``install(window, controller)`` is the only entry point.

Queries run through the controller's client (``ChatClient.search``, on each storage's
index reader thread) as tasks of the controller's runner, never on the GUI thread; an
answer for a query the field no longer holds is dropped. Choosing a result opens its
room and jumps to the message (``show_hit``: ``ChatClient.locate`` finds its place in
the room's audit, ``TimelineView.jump_to`` shows the page around it and flashes it, as
a reply's quote does). The panel itself is ``widgets/search_panel.py``.
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence, QShortcut

from ..protocol.room_state import with_doubt
from ..protocol.untrusted_text import one_line
from ..sync.client import RoomRef, SearchResults
from ..timestamps import THIS_EDIT
from .controller import Controller
from .main_window import MainWindow
from .safe import guard
from .shortcuts import let_through
from .widgets.search_panel import SearchPanel, ShownHit

log = logging.getLogger("bucket_chat.gui")

ROOM_KEYS = QKeySequence("Ctrl+F")
EVERYWHERE_KEYS = QKeySequence("Ctrl+Shift+F")
SEARCH_RESULTS = 50  # results a search in the app shows
AUDIT_WAIT = 15.0  # seconds showing a found message waits for its room to be read


class SearchFeature(QObject):
    def __init__(self, window: MainWindow, controller: Controller) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.panel = SearchPanel(window)
        self.panel.anchor = window.stack
        self.panel.query_changed.connect(self._search)
        self.panel.older_wanted.connect(self._search_older)
        self.panel.hit_chosen.connect(self.show_hit)
        self.last_message = ""  # why the last chosen message could not be shown
        self._searching: asyncio.Task[None] | None = None  # the search whose answer is awaited
        # The search shown: (text, room key), where each storage reads on for older
        # results, and the messages shown (a message is listed once: an older text of
        # one shown, an edit's, finds it again on a later page).
        self._shown_search: tuple[str, str] = ("", "")
        self._next: tuple[tuple[str, int | None], ...] = ()
        self._listed: set[tuple[str, str, str, tuple[str, int] | None]] = set()
        # Storages that could not be searched on a page of the search shown (storage id ->
        # why): the pages after it are read without them, and keep saying so.
        self._failed: dict[str, str] = {}
        for keys, everywhere in ((ROOM_KEYS, False), (EVERYWHERE_KEYS, True)):
            shortcut = QShortcut(keys, window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(
                lambda everywhere=everywhere: self.open(everywhere=everywhere)
            )
        window.composer.installEventFilter(self)  # the composer must not eat the shortcuts

    # -- opening ---------------------------------------------------------------------------------

    def open(self, *, everywhere: bool) -> None:
        key = self.controller.current
        if everywhere or not key:
            self.panel.open("Search all rooms", None)
            return
        item = self.controller.rooms.item(key)
        name = one_line(item.marked_name, 90) if item is not None else ""
        self.panel.open(f"Search in {name or RoomRef.from_key(key).room_id}", key)

    # -- searching -------------------------------------------------------------------------------

    def _search(self, text: str, room_key: str) -> None:
        """Search every storage's index (or ``room_key``'s room only) off the GUI thread,
        through the client; the frozen results come back here on the GUI thread."""
        self._run(text, room_key, None)

    def _search_older(self, text: str, room_key: str) -> None:
        """The next page of the search shown: each storage reads on where it stopped."""
        if (text, room_key) != self._shown_search or not self._next:
            return
        self._run(text, room_key, self._next)

    def _run(
        self, text: str, room_key: str, after: tuple[tuple[str, int | None], ...] | None
    ) -> None:
        ref = RoomRef.from_key(room_key) if room_key else None  # "": every room

        async def run() -> None:
            results = await self.controller.client.search(
                text,
                storage_id=(ref.storage_id or None) if ref else None,
                room_id=(ref.room_id or None) if ref else None,
                limit=SEARCH_RESULTS,
                after=after,
            )
            self._show(text, room_key, results, older=after is not None)

        if self._searching is not None:
            self._searching.cancel()  # its answer is not wanted any more
        what = "Searching older messages" if after is not None else "Searching"
        self._searching = self.controller.tasks.start(run(), what)

    def _show(self, text: str, room_key: str, results: SearchResults, *, older: bool) -> None:
        if not self.panel.is_current(text, room_key):
            return  # the field or the scope says something else by now
        if not older:
            self._listed, self._failed = set(), {}
        for sid, why in results.errors:
            self._failed[sid] = why
        self._shown_search, self._next = (text, room_key), results.next
        rows = []
        for hit in results.hits:
            key = f"{hit.storage_id}/{hit.room_id}"
            item = self.controller.rooms.item(key)
            if item is None:
                continue  # a room left since (its copy stays in the index): not offered
            listed = (hit.storage_id, hit.room_id, hit.event_id, hit.copy)
            if listed in self._listed:
                continue  # found again by an older text of it: listed once, newest text
            self._listed.add(listed)
            names = self.controller.names(key)  # the room's latest
            shown = names.shown(hit.sender_id)
            # a key another room doubts for the sender, as its row says (red team rt54)
            where = self.controller.doubted_key(key, hit.sender_id, hit.sender_key)
            warning = with_doubt(names.warning(hit.sender_id), hit.sender_id, where)
            # a message the app saw arrive long after its date, as its row says (rt83),
            # also when found through an edit's text (rt92)
            late = self.controller.late_arrival_of_hit(key, hit)
            note = late.note if late is not None else None
            # and the edit it was found through, as Previous versions says beside it
            came = self.controller.late_change_of_hit(key, hit)
            edit = came.change_note(THIS_EDIT) if came is not None else None
            rows.append(ShownHit(hit, key, item.marked_name, shown, warning, note, edit))
        problems = [
            f"{self.controller.storage_name(sid)}: {why}" for sid, why in self._failed.items()
        ]
        self.panel.show_results(
            text, room_key, rows, results.more, problems, results.backlog, older=older
        )

    # -- showing a message in its room -----------------------------------------------------------

    def show_hit(self, room_key: str, event_id: str, path: str = "", line: int = 0) -> None:
        """Open the room and show the message in context: its position in the room's
        audit is found off the GUI thread (``ChatClient.locate``), turned into the
        timeline's shown row (relation events are not rows), and the timeline jumps
        there (``TimelineView.jump_to``: the page around it when it is not held,
        scrolled to the middle and flashed). ``path`` and ``line``: the hit's copy (an
        id signed by two devices is shown once per device: the hit names which)."""
        controller = self.controller
        self.last_message = ""
        if controller.rooms.item(room_key) is None:
            self._not_shown("you are not in this room any more")
            return
        controller.select_room(room_key)
        ref = RoomRef.from_key(room_key)

        async def run() -> None:
            result = controller.result(room_key)
            if result is None:  # the room is being opened: wait for its audit to come
                came = asyncio.get_running_loop().create_future()

                def audit_changed(key: str) -> None:
                    if key == room_key and not came.done():
                        came.set_result(None)

                controller.room_audit_changed.connect(audit_changed)
                try:
                    await asyncio.wait_for(came, AUDIT_WAIT)
                except TimeoutError:
                    pass
                finally:
                    controller.room_audit_changed.disconnect(audit_changed)
                result = controller.result(room_key)
            if result is None:
                self._not_shown("the room has not been read yet; try again soon")
                return
            pos = await controller.client.locate(ref, result, event_id, (path, line))
            view = self.window.timeline
            model = controller.timeline(room_key)
            row = model.relations.row_of(pos) if pos is not None else None
            if controller.current != room_key or view.model() is not model:
                return  # another room was opened meanwhile
            if row is None or not view.jump_to(event_id, row):
                self._not_shown("this message is not shown in the room's timeline")

        controller.tasks.start(run(), "Showing the message")

    def _not_shown(self, why: str) -> None:
        self.last_message = why
        self.controller.error.emit("Showing the message", why)

    # -- shortcuts inside text fields -------------------------------------------------------------

    @guard()
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if let_through(event, (ROOM_KEYS, EVERYWHERE_KEYS)):
            return True
        return super().eventFilter(watched, event)


def install(window: MainWindow, controller: Controller) -> SearchFeature:
    """Wire Ctrl+F / Ctrl+Shift+F search into ``window``."""
    return SearchFeature(window, controller)
