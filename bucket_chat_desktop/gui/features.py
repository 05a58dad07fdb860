"""Members panel, audit dialog and quick switcher, wired into an existing main window.

``install(window, controller)`` is the only entry point: it uses the window's
``members_button``, ``audit_button``, ``banner_button`` and ``side_panel`` and the
controller's signals, and changes nothing else. Everything shown comes from the
controller's last audit of the room (``controller.result``) and the client's snapshots of
the room (``ChatClient.room_view``); the only thing written is a device confirmation, through
``ChatClient.mark_verified`` (pins table, source ``user``). Nothing here touches an index or
the engine's rooms: those calls run on the engine's serial worker and come back as values.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import QMessageBox

from ..protocol.audit import Assessed, AuditResult, Timeline
from ..protocol.room_state import Confirmed
from ..sync.client import RoomRef
from .audit.dialog import AuditDialog
from .audit.view import AuditView
from .controller import PARTIAL_READ, Controller
from .main_window import MainWindow
from .models.members_model import Device, MembersModel
from .safe import guard
from .shortcuts import let_through
from .style import ACCENT
from .widgets.members_panel import MembersPanel, VerifyDeviceDialog
from .widgets.quick_switcher import QuickSwitcher

log = logging.getLogger("bucket_chat.gui")

SWITCHER_KEYS = QKeySequence("Ctrl+K")
AUDIT_REFRESH_MS = 300  # an open audit dialog follows new messages this often at most


def _tint(color: str, alpha: int = 40) -> str:
    c = QColor(color)
    return f"rgba({c.red()}, {c.green()}, {c.blue()}, {alpha})"


class Features(QObject):
    """Owns the three features' widgets; parented to the window, so it lives as long."""

    def __init__(self, window: MainWindow, controller: Controller) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller
        identity = controller.identity
        self._confirmed: dict[str, Confirmed] = {}  # storage id -> confirmed pairs
        self._confirmed_loading: set[str] = set()  # storages whose keys are being read
        self._audit_asked = 0  # newest audit-view request: older answers are dropped
        self._audit_open_pending = False  # the user asked to open the dialog: the answer does
        self._members_key: str | None = None  # room the members model shows
        self.audit_dialog: AuditDialog | None = None
        self._audit_timer = QTimer(self)
        self._audit_timer.setSingleShot(True)
        self._audit_timer.setInterval(AUDIT_REFRESH_MS)
        self._audit_timer.timeout.connect(lambda: self._refresh_audit(self.controller.current))
        self.verify_dialog: VerifyDeviceDialog | None = None

        # members
        self.members_model = MembersModel(identity.user_id, identity.public_key_b64, self)
        self.members_panel = MembersPanel(self.members_model)
        window.side_panel.addWidget(self.members_panel)
        window.members_button.setCheckable(True)
        window.members_button.setStyleSheet(
            f"QPushButton:checked {{ background: {_tint(ACCENT)}; border-color: {ACCENT}; }}"
        )
        window.members_button.setToolTip("Who is in this room, and their devices' fingerprints")
        window.members_button.toggled.connect(self._on_members_toggled)
        self.members_panel.close_requested.connect(lambda: window.members_button.setChecked(False))
        self.members_panel.confirm_requested.connect(self.ask_confirm)

        # audit
        window.audit_button.clicked.connect(self.open_audit)
        window.banner_button.clicked.connect(self.open_audit)

        # quick switcher
        self.switcher = QuickSwitcher(controller.rooms, window)
        self.switcher.room_chosen.connect(controller.select_room)
        self.shortcut = QShortcut(SWITCHER_KEYS, window)
        self.shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self.shortcut.activated.connect(self.switcher.toggle)
        # Text editors take Ctrl+K for themselves (delete to end of line): claim it first.
        window.composer.installEventFilter(self)

        controller.current_changed.connect(self._on_current_changed)
        controller.room_audit_changed.connect(self._on_audit_changed)
        controller.bridge.events_appended.connect(self._on_events_appended)
        controller.bridge.events_placed.connect(self._on_events_placed)
        self._on_current_changed(controller.current)

    # -- confirmed keys (per storage, from its index) ----------------------------------------

    def confirmed_keys(self, storage_id: str) -> Confirmed:
        """The storage's confirmed (sender id, key) pairs as known so far. The first
        call starts reading them (on the engine's worker, never blocking the GUI); when
        they arrive, the timelines and the members panel get them."""
        keys = self._confirmed.get(storage_id)
        if keys is not None:
            return keys
        if (
            self.controller.client.is_attached(storage_id)
            and storage_id not in self._confirmed_loading
        ):
            self._confirmed_loading.add(storage_id)
            self.controller.tasks.start(
                self._load_confirmed(storage_id), "Reading the devices you confirmed"
            )
        return frozenset()

    async def _load_confirmed(self, storage_id: str) -> None:
        try:
            keys = await self.controller.client.confirmed_keys(storage_id)
        except (RuntimeError, sqlite3.Error) as exc:  # its engine closed meanwhile
            log.warning("could not read the confirmed devices of %s: %s", storage_id, exc)
            return
        finally:
            self._confirmed_loading.discard(storage_id)
        if not self.controller.client.is_attached(storage_id):
            return  # removed meanwhile: read again if it comes back
        # a confirmation recorded meanwhile is in ``keys`` too (the worker runs in order)
        self._confirmed[storage_id] = keys | self._confirmed.get(storage_id, frozenset())
        self._push_confirmed(storage_id)

    def _push_confirmed(self, storage_id: str) -> None:
        """Give the timelines of a storage its confirmed keys (the "confirmed" badge)."""
        keys = self.confirmed_keys(storage_id)
        self.controller.set_confirmed(storage_id, keys)  # no other room's doubt of them
        for ref, model in self.controller.timelines():
            if ref.storage_id == storage_id:
                model.set_confirmed_keys(keys)
        current = self.controller.current
        if current and RoomRef.from_key(current).storage_id == storage_id:
            self.members_model.set_confirmed(keys)

    # -- members ------------------------------------------------------------------------------

    @property
    def members_visible(self) -> bool:
        return self.window.members_button.isChecked()

    def _on_members_toggled(self, shown: bool) -> None:
        panel = self.window.side_panel
        if shown:
            panel.setCurrentWidget(self.members_panel)
            self._load_members(self.controller.current)
            panel.show()
        elif panel.currentWidget() is self.members_panel:
            panel.hide()

    def _load_members(self, key: str) -> None:
        self._members_key = key
        if key:
            self.members_model.set_confirmed(self.confirmed_keys(RoomRef.from_key(key).storage_id))
        self.members_model.set_state(self.controller.roster(key) if key else None)

    def ask_confirm(self, device: Device) -> None:
        """Show the compare-out-of-band dialog; confirming it marks the device verified."""
        row = self.members_model.row_of(device.sender_id)
        member = self.members_model.member(row) if row >= 0 else None
        name = member.display_name if member is not None else device.sender_id
        yours = member is not None and member.own  # a key writing as the user
        dialog = VerifyDeviceDialog(device, name, self.window, yours=yours)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.disowned.connect(
            lambda: self.window.statusBar().showMessage(
                "Not confirmed: that key stays untrusted and accepts nothing. If you did not "
                "set up another device, someone is writing in your name: tell the room's "
                "members another way than this chat",
                30000,
            )
        )
        key = self.controller.current
        dialog.accepted.connect(
            lambda: self.controller.tasks.start(
                self.mark_verified(key, device), "Saving the device confirmation"
            )
        )
        self.verify_dialog = dialog
        dialog.open()

    async def mark_verified(self, room_key: str, device: Device) -> bool:
        """Record the user's confirmation of ``device`` in the room's storage index."""
        # no room (left while the dialog was open): no storage to record it in
        storage_id = RoomRef.from_key(room_key).storage_id if room_key else ""
        if not self.controller.client.is_attached(storage_id) or not device.key:
            return False
        try:
            await self.controller.client.mark_verified(storage_id, device.sender_id, device.key)
        except KeyError:  # the storage was removed while the dialog was open
            return False
        except sqlite3.Error as exc:
            log.warning("could not record the confirmation of %s: %s", device.sender_id, exc)
            QMessageBox.warning(self.window, "Verify device", f"Could not save it: {exc}")
            return False
        pair = (device.sender_id, device.key)
        self._confirmed[storage_id] = self.confirmed_keys(storage_id) | {pair}
        self._push_confirmed(storage_id)
        self.controller.reaudit(room_key)  # the new pin takes effect now
        return True

    # -- audit ------------------------------------------------------------------------------

    async def audit_view(self, key: str) -> AuditView | None:
        if not key:
            return None
        ref = RoomRef.from_key(key)
        room = await self.controller.client.room_view(ref)
        # what the GUI shows now (read after the wait: it may have moved on meanwhile)
        result = self.controller.result(key) or AuditResult(
            ref.room_id, Timeline.empty(), [], [], 0
        )
        item = self.controller.rooms.item(key)
        # Complete only when the result shown is the engine's latest, complete audit: the
        # engine sets that flag on its worker thread before the GUI receives that audit, so
        # the flag alone may describe a newer result than the one shown.
        complete = room is not None and room.complete and room.result is result
        return AuditView(
            ref.room_id,
            result,
            room.metadata if room is not None else None,
            room.metadata_findings if room is not None else (),
            complete,
            item.storage_name if item is not None else "",
            # from the result shown itself: it says what could not be read
            partial=any(f.kind in PARTIAL_READ for f in result.findings),
            ids=roster.names.lookalikes if (roster := self.controller.roster(key)) else None,
        )

    def open_audit(self) -> None:
        key = self.controller.current
        if key:
            self._audit_open_pending = True
            self.controller.tasks.start(self._show_audit(key), "Opening the audit")

    async def _show_audit(self, key: str) -> None:
        self._audit_asked += 1
        asked = self._audit_asked
        try:
            view = await self.audit_view(key)
        except (RuntimeError, sqlite3.Error) as exc:  # its engine closed meanwhile
            log.warning("could not show the audit of %s: %s", key, exc)
            return
        if view is None or asked != self._audit_asked or key != self.controller.current:
            return  # a newer request (or another room) answers instead
        dialog = self.audit_dialog
        if self._audit_open_pending:
            self._audit_open_pending = False
            if dialog is None:
                dialog = self.audit_dialog = AuditDialog(self.window)
            dialog.set_view(view)
            dialog.show()
            dialog.raise_()
            dialog.activateWindow()
        elif dialog is not None and dialog.isVisible():
            dialog.set_view(view)

    def _refresh_audit(self, key: str) -> None:
        dialog = self.audit_dialog
        if dialog is not None and dialog.isVisible() and key == self.controller.current:
            self.controller.tasks.start(self._show_audit(key), "Refreshing the audit")

    def _refresh_audit_soon(self) -> None:
        """Messages stream in: refresh the open dialog at most a few times a second."""
        dialog = self.audit_dialog
        if dialog is not None and dialog.isVisible() and not self._audit_timer.isActive():
            self._audit_timer.start()

    # -- controller signals --------------------------------------------------------------------

    def _on_current_changed(self, key: str) -> None:
        if key:
            self._push_confirmed(RoomRef.from_key(key).storage_id)
        if self.members_visible:
            self._load_members(key)
        else:
            self._members_key = None
        self._refresh_audit(key)

    def _on_audit_changed(self, key: str) -> None:
        if key != self.controller.current:
            return
        self._push_confirmed(RoomRef.from_key(key).storage_id)
        if self.members_visible:
            self._load_members(key)
        self._refresh_audit(key)

    def _on_events_placed(
        self, key: str, items: list[Assessed], result: Any, _at: int, _arrived: bool
    ) -> None:
        self._on_events_appended(key, items, result)

    def _on_events_appended(self, key: str, items: list[Assessed], _result: Any) -> None:
        if key != self.controller.current:
            return
        if self.members_visible and self._members_key == key:
            self.members_model.set_state(self.controller.roster(key))
        self._refresh_audit_soon()

    # -- Ctrl+K inside text fields -------------------------------------------------------------

    @guard()
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if let_through(event, (SWITCHER_KEYS,)):
            return True
        return super().eventFilter(watched, event)


def install(window: MainWindow, controller: Controller) -> Features:
    """Wire the members panel, audit dialog and quick switcher into ``window``."""
    return Features(window, controller)
