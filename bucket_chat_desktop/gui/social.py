"""Mentions and unread messages, wired into an existing main window.

``install(window, controller)`` adds the ``@`` completion list to the composer and the
"Notify me about" choices to the room menu (``room_menu_hooks``), tells the
timeline's delegate who the user is (messages that mention them get an accent) and
draws the "New messages" line at the first message that arrived unread, with a
"Jump to new messages" button floating over the timeline while that message is above
what is shown. The line and the button come from the controller's ``unread_seen``
signal (the first unread event of a room the user just looked at); the button goes
once that message has been on screen, the line when another room is opened.
"""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QAbstractItemView, QMenu, QPushButton

from ..protocol.room_state import NO_NAMES
from ..sync.client import RoomRef
from .controller import Controller
from .main_window import MainWindow
from .models.timeline_model import TimelineModel
from .safe import guard
from .style import ACCENT
from .widgets.mention_popup import MentionPopup
from .widgets.notify_menu import add_notify_menu

JUMP_TRIES = 3  # pages asked for the first new message, when newer audits drop them
JUMP_WAIT = 5.0  # seconds a page asked for may take before it is asked for again


class Social(QObject):
    def __init__(self, window: MainWindow, controller: Controller) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.view = window.timeline
        self.delegate = window.delegate
        self.delegate.own_user = controller.identity.user_id
        self.delegate.own_names = (controller.settings.displayname,)
        # the room's members, and the rule its rows are marked by (``Names.warning``): a
        # look-alike id is marked in the list
        self.popup = MentionPopup(
            window.composer,
            lambda: controller.names(controller.current) if controller.current else NO_NAMES,
        )
        self.popup.own_user = controller.identity.user_id
        window.room_menu_hooks.append(self._add_to_room_menu)

        self.jump = QPushButton("↑ Jump to new messages", self.view)
        self.jump.setObjectName("jumpToUnread")
        self.jump.setCursor(self.view.cursor())
        self.jump.setStyleSheet(
            f"QPushButton#jumpToUnread {{ background: {ACCENT}; color: white; border: none;"
            " border-radius: 13px; padding: 4px 14px; font-weight: bold; }"
        )
        self.jump.clicked.connect(self.jump_to_unread)
        self.jump.hide()
        self._pending = False  # the marker's row is still above: the button shows

        controller.current_changed.connect(self._on_current_changed)
        controller.unread_seen.connect(self._on_unread_seen)
        self.view.verticalScrollBar().valueChanged.connect(lambda _v: self._check())
        self.view.verticalScrollBar().rangeChanged.connect(lambda *_: self._check_soon())
        self.view.installEventFilter(self)

    def _add_to_room_menu(self, menu: QMenu, key: str) -> None:
        add_notify_menu(menu, self.controller, key)
        menu.addSeparator()

    # -- the line --------------------------------------------------------------------------

    @property
    def marker(self) -> str:
        """The first unread message's event id, "" for none: the one the delegate draws
        the line above."""
        return self.delegate.first_unread

    def _model(self) -> TimelineModel | None:
        model = self.view.model()
        return model if isinstance(model, TimelineModel) else None

    def marker_row(self) -> int:
        """Row of the first unread message in the timeline shown, -1 if not there."""
        model = self._model()
        row = model.locate(self.marker) if model is not None and self.marker else None
        return -1 if row is None else row

    def _set_marker(self, event_id: str) -> None:
        old = self.marker_row()
        self.delegate.first_unread = event_id
        model = self._model()
        if model is not None:  # thread summaries count the replies after the line
            model.set_read_mark(event_id)
        for row in {old, self.marker_row()} - {-1}:
            if model is not None:
                self.delegate.sizeHintChanged.emit(model.index(row))
        self._pending = bool(event_id)
        self._check_soon()

    def _on_current_changed(self, _key: str) -> None:
        self._set_marker("")

    def _on_unread_seen(self, key: str, event_id: str) -> None:
        if key == self.controller.current and event_id:
            self._set_marker(event_id)

    # -- the button --------------------------------------------------------------------------

    def _check_soon(self) -> None:
        QTimer.singleShot(0, self._check)

    @guard()
    def _check(self) -> None:
        """Show the button while the first unread message is above the viewport; once it
        has been on screen, it was read: the button goes for good."""
        if not self._pending:
            self.jump.hide()
            return
        row = self.marker_row()
        model = self._model()
        if model is None:
            self.jump.hide()
            return
        if row < 0:
            # Not in the pages held: a message that arrived dated long before what is
            # shown (red team rt79) sits far above; the button pages to it.
            self._place()
            self.jump.show()
            self.jump.raise_()
            return
        rect = self.view.visualRect(model.index(row))
        if rect.bottom() < 0:
            self._place()
            self.jump.show()
            self.jump.raise_()
            return
        if rect.top() < self.view.viewport().height():
            self._pending = False  # on screen now
        self.jump.hide()

    def _place(self) -> None:
        self.jump.adjustSize()
        x = (self.view.width() - self.jump.width()) // 2
        self.jump.move(max(4, x), 10)

    @guard()
    def jump_to_unread(self) -> None:
        model = self._model()
        row = self.marker_row()
        if model is None:
            return
        if row >= 0:
            self.view.scrollTo(model.index(row), QAbstractItemView.ScrollHint.PositionAtTop)
            self._check()
            return
        key, marker = self.controller.current, self.marker
        if not key or not marker:
            return

        async def page_to_it() -> None:
            # its place in the room's audit, found off the window's thread, then the page
            # around it (as a search hit is shown: ``TimelineView.jump_to``); a page the
            # model drops because a newer audit came first is asked for again
            for _ in range(JUMP_TRIES):
                result = self.controller.result(key)
                if result is None:
                    return
                pos = await self.controller.client.locate(RoomRef.from_key(key), result, marker)
                model = self._model()
                if model is None or self.controller.current != key:
                    return
                if pos is None:  # not shown in the room's audit (any more): no button
                    self._pending = False
                    self.jump.hide()
                    return
                at = model.relations.row_of(pos)
                came = asyncio.get_running_loop().create_future()

                def landed(_row: int, came: asyncio.Future[None] = came) -> None:
                    if not came.done():
                        came.set_result(None)

                if at is None or not self.view.jump_to(marker, at, landed):
                    self._pending = False
                    self.jump.hide()
                    return
                try:
                    await asyncio.wait_for(came, JUMP_WAIT)
                    return
                except TimeoutError:
                    continue

        self.controller.tasks.start(page_to_it(), "Showing the first new message")

    @guard(False)
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view and event.type() == QEvent.Type.Resize:
            self._check_soon()
        return False

    @property
    def jump_visible(self) -> bool:
        return self.jump.isVisible()


def install(window: MainWindow, controller: Controller) -> Any:
    """Wire mentions and the unread line into ``window``."""
    social = Social(window, controller)
    window.social = social
    return social
