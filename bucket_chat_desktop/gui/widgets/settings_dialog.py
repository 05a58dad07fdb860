"""Settings: appearance, window, sync speed, attachments, notifications and muted rooms,
and the storages (add with a connection test, remove).

`install(window, controller)` adds "Settings…" (Ctrl+,) and "Add storage…" to the main
window's + menu without the main window knowing about this module.

Preferences are applied when the user presses Save (the theme at once, as a preview, and
put back on Cancel). Adding or removing a storage takes effect at once.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from ...protocol.untrusted_text import html_escape
from ...settings import POLL_SPEEDS, THEMES, Settings, StorageSettings
from ...storage.base import StorageError
from ...storage.profiles import ProfileStore
from ...storage.url import parse_storage_url
from .. import theme as theme_feature
from ..controller import Controller
from ..main_window import MainWindow
from ..safe import guard
from ..storage.form import StorageForm
from ..storage.parts import ERROR_COLOR, FormGrid, help_label
from ..style import is_dark

log = logging.getLogger("bucket_chat.gui")

THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}
SPEED_LABELS = {"fast": "Fast", "normal": "Normal", "saver": "Data saver"}
SECTIONS = ("General", "Notifications", "Storages")

DIALOG_QSS = """
QListWidget#nav { border: none; outline: 0; background: %(side)s; padding-top: 10px;
                  font-size: 11pt; }
QListWidget#nav::item { padding: 9px 18px; border-radius: 6px; margin: 1px 8px; }
QListWidget#nav::item:selected { background: palette(highlight);
                                  color: palette(highlighted-text); }
QListWidget#mutes::item { padding: 5px 6px; }
QListWidget#storages::item { padding: 2px; }
QListWidget#storages::item:selected { background: palette(highlight); border-radius: 6px; }
QLabel#sectionTitle { font-size: 15pt; font-weight: 600; }
QLabel#groupTitle { font-weight: 600; margin-top: 6px; }
QLabel#help { color: palette(placeholder-text); }
QLabel#error { color: %(error)s; }
"""


def _qss() -> str:
    return DIALOG_QSS % {"side": "#1a1d22" if is_dark() else "#eceef2", "error": ERROR_COLOR}


def _title(text: str, name: str = "sectionTitle") -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    return label


def speed_text(speed: str) -> str:
    """How often buckets are checked at ``speed``, in words."""
    active, focused, idle = Settings(poll_speed=speed).poll_intervals()
    return (
        f"Buckets are checked every {active:g} s while you chat, every {focused:g} s "
        f"while this window is in front, and at least every {idle:g} s behind other windows"
    )


def storage_identity(spec: str, profiles: ProfileStore) -> str:
    """What a storage spec points at (folder path or bucket URL without tuning options),
    so that the same storage is not added twice under two names."""
    try:
        profile = profiles.get(spec)
    except StorageError:
        profile = None
    try:
        location = profile.location if profile is not None else parse_storage_url(spec)
    except StorageError:
        return spec
    return location.identity()


class AddStorageDialog(QDialog):
    """The storage form with a connection test; ``entry`` is set when accepted."""

    def __init__(
        self,
        settings: Settings,
        *,
        profiles: ProfileStore | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.profiles = profiles if profiles is not None else ProfileStore()
        self.entry: StorageSettings | None = None
        self.setWindowTitle("Add a storage")
        self.setMinimumWidth(640)
        self.setStyleSheet(_qss())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 18)
        layout.setSpacing(12)
        layout.addWidget(_title("Add a storage"))
        layout.addWidget(
            help_label(
                "A folder or a bucket where rooms live. Everyone who can reach it can join "
                "its rooms; every message is still signed and checked."
            )
        )
        self.form = StorageForm(profiles=self.profiles)
        layout.addWidget(self.form)
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        layout.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAutoDefault(False)
        self.cancel_button.clicked.connect(self.reject)
        self.add_button = QPushButton("Add storage")
        self.add_button.setDefault(True)
        self.add_button.clicked.connect(self.add)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.add_button)
        layout.addLayout(buttons)
        self.form.changed.connect(self.error.clear)

    def add(self) -> StorageSettings | None:
        """Validate and save the storage (keys to the keyring); accept on success."""
        form = self.form
        problem = form.problem()
        if not problem and form.wants_secrets() and not form.keyring_usable():
            problem = (
                "no OS keyring is usable here, so the keys cannot be saved: choose “Use my "
                "environment” and set the SDK's variables"
            )
        if not problem:
            wanted = form.location().identity()
            for existing in self.settings.storages:
                if storage_identity(existing.spec, self.profiles) == wanted:
                    problem = f"this storage is already in your list, as “{existing.name}”"
                    break
        if not problem:
            try:
                self.entry = form.save()
            except StorageError as exc:
                problem = str(exc)
        if problem:
            self.error.setText(problem[:1].upper() + problem[1:] + ".")
            # a long message (several lines) must not squeeze the form's fields
            self.resize(self.width(), max(self.height(), self.sizeHint().height()))
            return None
        self.accept()
        return self.entry

    @guard()
    def done(self, result: int) -> None:
        self.form.cancel()
        super().done(result)


class SettingsDialog(QDialog):
    """The settings of ``controller.settings``; Save writes them (`Controller.save_settings`)."""

    def __init__(
        self,
        controller: Controller,
        *,
        profiles: ProfileStore | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.settings = controller.settings
        self.profiles = profiles if profiles is not None else ProfileStore()
        self.original_theme = self.settings.theme
        self.add_dialog: AddStorageDialog | None = None
        self.setWindowTitle("Settings")
        self.setMinimumSize(QSize(780, 540))
        self.setStyleSheet(_qss())
        self._build()
        self.load()

    # -- construction --------------------------------------------------------------------

    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setFixedWidth(180)
        self.nav.addItems(list(SECTIONS))
        outer.addWidget(self.nav)
        right = QVBoxLayout()
        right.setSpacing(0)
        self.pages = QStackedWidget()
        for build in (self._build_general, self._build_notifications, self._build_storages):
            self.pages.addWidget(build())
        right.addWidget(self.pages, 1)
        self.nav.currentRowChanged.connect(self.pages.setCurrentIndex)
        self.nav.setCurrentRow(0)

        bar = QHBoxLayout()
        bar.setContentsMargins(28, 10, 20, 16)
        bar.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAutoDefault(False)
        self.cancel_button.clicked.connect(self.reject)
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.setMinimumWidth(100)
        self.save_button.clicked.connect(self.save)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.save_button)
        right.addLayout(bar)
        outer.addLayout(right, 1)

    def _page(self, title: str) -> tuple[QWidget, QVBoxLayout]:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(28, 22, 28, 8)
        layout.setSpacing(10)
        layout.addWidget(_title(title))
        return page, layout

    def _build_general(self) -> QWidget:
        page, layout = self._page("General")
        grid = FormGrid()
        self.theme_combo = QComboBox()
        for name in THEMES:
            self.theme_combo.addItem(THEME_LABELS[name], name)
        self.theme_combo.currentIndexChanged.connect(self._preview_theme)
        grid.add_row("Theme", self.theme_combo)

        self.tray_check = QCheckBox("Minimise to the tray when the window is closed")
        self.start_min_check = QCheckBox("Start minimised in the tray")
        window_box = QVBoxLayout()
        window_box.setSpacing(6)
        window_box.addWidget(self.tray_check)
        window_box.addWidget(self.start_min_check)
        if not QSystemTrayIcon.isSystemTrayAvailable():
            window_box.addWidget(
                help_label("This desktop has no system tray: the window stays open.")
            )
        grid.add_row("Window", window_box)

        self.speed_combo = QComboBox()
        for speed in POLL_SPEEDS:
            self.speed_combo.addItem(SPEED_LABELS.get(speed, speed), speed)
        self.speed_help = help_label("")
        self.speed_combo.currentIndexChanged.connect(self._speed_changed)
        speed_box = QVBoxLayout()
        speed_box.setSpacing(4)
        speed_box.addWidget(self.speed_combo)
        speed_box.addWidget(self.speed_help)
        grid.add_row("Sync speed", speed_box)

        self.attachment_spin = QSpinBox()
        self.attachment_spin.setRange(1, 2048)
        self.attachment_spin.setSuffix(" MB")
        self.attachment_spin.setMaximumWidth(140)
        limit_box = QVBoxLayout()
        limit_box.setSpacing(4)
        limit_box.addWidget(self.attachment_spin)
        limit_box.addWidget(help_label("Larger files are refused before they are uploaded."))
        grid.add_row("Attachments up to", limit_box)
        layout.addLayout(grid)
        layout.addStretch(1)
        return page

    def _build_notifications(self) -> QWidget:
        page, layout = self._page("Notifications")
        self.notify_check = QCheckBox("Notify me about new messages")
        layout.addWidget(self.notify_check)
        layout.addWidget(
            help_label(
                "Shown while Bucket Chat is not the active window, for rooms that are not muted."
            )
        )
        layout.addWidget(_title("Muted rooms", "groupTitle"))
        layout.addWidget(
            help_label("A muted room never notifies and is not counted in the unread badge.")
        )
        self.mute_list = QListWidget()
        self.mute_list.setObjectName("mutes")
        self.mute_list.setAlternatingRowColors(False)
        layout.addWidget(self.mute_list, 1)
        self.no_rooms = help_label("You are not in any room yet.")
        layout.addWidget(self.no_rooms)
        return page

    def _build_storages(self) -> QWidget:
        page, layout = self._page("Storages")
        layout.addWidget(
            help_label(
                "The folders and buckets where your rooms live. Keys of buckets are kept in "
                "the OS keyring, never in the settings file."
            )
        )
        self.storage_list = QListWidget()
        self.storage_list.setObjectName("storages")
        layout.addWidget(self.storage_list, 1)
        row = QHBoxLayout()
        self.add_storage_button = QPushButton("Add storage…")
        self.add_storage_button.setAutoDefault(False)
        self.add_storage_button.clicked.connect(self.open_add_storage)
        self.remove_storage_button = QPushButton("Remove")
        self.remove_storage_button.setAutoDefault(False)
        self.remove_storage_button.clicked.connect(self._remove_clicked)
        row.addWidget(self.add_storage_button)
        row.addWidget(self.remove_storage_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.storage_status = QLabel()
        self.storage_status.setObjectName("help")
        self.storage_status.setWordWrap(True)
        layout.addWidget(self.storage_status)
        self.storage_list.currentRowChanged.connect(
            lambda row: self.remove_storage_button.setEnabled(row >= 0)
        )
        return page

    # -- loading and saving --------------------------------------------------------------

    def load(self) -> None:
        s = self.settings
        self.theme_combo.blockSignals(True)
        self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(s.theme)))
        self.theme_combo.blockSignals(False)
        self.tray_check.setChecked(s.minimize_to_tray)
        self.start_min_check.setChecked(s.start_minimized)
        self.speed_combo.setCurrentIndex(max(0, self.speed_combo.findData(s.poll_speed)))
        self._speed_changed()
        self.attachment_spin.setValue(s.attachment_limit_mb)
        self.notify_check.setChecked(s.notifications)
        self.reload_rooms()
        self.reload_storages()

    def reload_rooms(self) -> None:
        self.mute_list.clear()
        rooms = self.controller.rooms
        for key in rooms.room_keys():
            item = rooms.item(key)
            if item is None:
                continue
            entry = QListWidgetItem(f"{item.name}   ·   {item.storage_name}")
            entry.setData(Qt.ItemDataRole.UserRole, key)
            entry.setFlags(entry.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            muted = key in self.settings.muted_rooms
            entry.setCheckState(Qt.CheckState.Checked if muted else Qt.CheckState.Unchecked)
            self.mute_list.addItem(entry)
        self.no_rooms.setVisible(self.mute_list.count() == 0)
        self.mute_list.setVisible(self.mute_list.count() > 0)

    def reload_storages(self) -> None:
        self.storage_list.clear()
        for entry in self.settings.storages:
            rooms = len(entry.rooms)
            where = entry.spec
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, entry.id)
            item.setToolTip(where)
            row = QWidget()
            box = QVBoxLayout(row)
            box.setContentsMargins(10, 6, 10, 6)
            box.setSpacing(1)
            name = QLabel(f"<b>{html_escape(entry.name)}</b>")
            name.setTextFormat(Qt.TextFormat.RichText)
            detail = QLabel(f"{where} · {rooms} room{'s' if rooms != 1 else ''}")
            detail.setTextFormat(Qt.TextFormat.PlainText)
            detail.setObjectName("help")
            box.addWidget(name)
            box.addWidget(detail)
            row.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            item.setSizeHint(row.sizeHint() + QSize(0, 6))
            self.storage_list.addItem(item)
            self.storage_list.setItemWidget(item, row)
        self.remove_storage_button.setEnabled(self.storage_list.currentRow() >= 0)

    def muted_selection(self) -> list[str]:
        out = []
        for row in range(self.mute_list.count()):
            item = self.mute_list.item(row)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(str(item.data(Qt.ItemDataRole.UserRole)))
        return out

    def _speed_changed(self) -> None:
        self.speed_help.setText(
            speed_text(str(self.speed_combo.currentData()))
            + ". Folders are watched and show new messages at once."
        )

    def _preview_theme(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme_feature.apply(app, str(self.theme_combo.currentData()))
            self.setStyleSheet(_qss())

    def save(self) -> None:
        """Write the settings, apply them to the running app, and close."""
        s = self.settings
        s.theme = str(self.theme_combo.currentData())
        s.minimize_to_tray = self.tray_check.isChecked()
        s.start_minimized = self.start_min_check.isChecked()
        speed_changed = s.poll_speed != self.speed_combo.currentData()
        s.poll_speed = str(self.speed_combo.currentData())
        s.attachment_limit_mb = self.attachment_spin.value()
        s.notifications = self.notify_check.isChecked()
        shown = {
            str(self.mute_list.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(self.mute_list.count())
        }
        kept = [k for k in s.muted_rooms if k not in shown]  # rooms not listed keep theirs
        s.muted_rooms = kept + self.muted_selection()
        rooms = self.controller.rooms
        for key in rooms.room_keys():
            item = rooms.item(key)
            muted = key in s.muted_rooms
            if item is not None and item.muted != muted:
                rooms.update(key, muted=muted)
        self.controller.unread_changed.emit(rooms.total_unread())
        if speed_changed:
            self._apply_poll_speed()
        self.original_theme = s.theme
        self._preview_theme()
        self.controller.save_settings()
        self.accept()

    def _apply_poll_speed(self) -> None:
        """Running engines poll at the new speed from their next round."""
        self.controller.client.set_poll_intervals(*self.settings.poll_intervals())

    @guard()
    def reject(self) -> None:
        if self.settings.theme != str(self.theme_combo.currentData()):
            self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(self.original_theme)))
        super().reject()

    @guard()
    def closeEvent(self, event: QCloseEvent) -> None:
        if self.add_dialog is not None:
            self.add_dialog.close()
        super().closeEvent(event)

    # -- storages ------------------------------------------------------------------------

    def open_add_storage(self) -> AddStorageDialog:
        dialog = AddStorageDialog(self.settings, profiles=self.profiles, parent=self)
        dialog.accepted.connect(lambda: self._storage_added(dialog))
        self.add_dialog = dialog
        dialog.open()
        return dialog

    def _storage_added(self, dialog: AddStorageDialog) -> None:
        entry = dialog.entry
        if entry is None:
            return
        add_storage(self.controller, entry)
        self.reload_storages()
        self.storage_status.setText(f"Added “{entry.name}”. Connecting…")

    def _remove_clicked(self) -> None:
        item = self.storage_list.currentItem()
        if item is None:
            return
        storage_id = str(item.data(Qt.ItemDataRole.UserRole))
        entry = self.settings.storage(storage_id)
        if entry is None:
            return
        rooms = len(entry.rooms)
        answer = QMessageBox.question(
            self,
            "Remove storage",
            f"Remove “{entry.name}” from Bucket Chat?\n\n"
            f"You leave its {rooms} room{'s' if rooms != 1 else ''} on this device only: "
            "nothing is deleted from the storage, and you can add it again later.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_storage(storage_id)

    def remove_storage(self, storage_id: str) -> None:
        """Forget a storage: its rooms leave the list, its engine stops, settings are saved.

        A named storage profile (and its keys in the keyring) is kept: the ``bucket-chat``
        command may use it (``bucket-chat storage remove NAME`` removes it)."""
        entry = self.settings.storage(storage_id)
        if entry is None:
            return
        remove_storage(self.controller, storage_id)
        self.reload_storages()
        self.reload_rooms()
        self.storage_status.setText(f"Removed “{entry.name}”.")


# -- operations on the controller (it has no method for these yet) ---------------------------


def add_storage(controller: Controller, entry: StorageSettings) -> None:
    """Add ``entry`` to the settings at once (so lists show it) and connect to it."""
    if controller.settings.storage(entry.id) is None:
        controller.settings.storages.append(entry)
    controller.add_storage(entry)


def remove_storage(controller: Controller, storage_id: str) -> None:
    """Take a storage out of the settings and the room list, and stop its engine."""
    settings = controller.settings
    entry = settings.storage(storage_id)
    if entry is None:
        return
    settings.storages.remove(entry)
    prefix = f"{storage_id}/"
    settings.muted_rooms = [k for k in settings.muted_rooms if not k.startswith(prefix)]
    if settings.last_room.startswith(prefix):
        settings.last_room = ""
    controller.forget_storage(storage_id, entry.name)
    controller.unread_changed.emit(controller.rooms.total_unread())
    controller.save_settings()


# -- installing into the main window ---------------------------------------------------------


class SettingsActions(NamedTuple):
    settings: QAction
    add_storage: QAction


def open_settings(
    window: QWidget, controller: Controller, *, profiles: ProfileStore | None = None
) -> SettingsDialog:
    """Show the settings dialog (one at a time)."""
    dialog = window.findChild(SettingsDialog)
    if dialog is None or not dialog.isVisible():
        if dialog is not None:
            dialog.deleteLater()
        dialog = SettingsDialog(controller, profiles=profiles, parent=window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def open_add_storage(
    window: QWidget, controller: Controller, *, profiles: ProfileStore | None = None
) -> AddStorageDialog:
    dialog = AddStorageDialog(controller.settings, profiles=profiles, parent=window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def accepted() -> None:
        if dialog.entry is not None:
            add_storage(controller, dialog.entry)

    dialog.accepted.connect(accepted)
    dialog.open()
    return dialog


def install(
    window: MainWindow, controller: Controller, *, profiles: ProfileStore | None = None
) -> SettingsActions:
    """Add "Settings…" (Ctrl+,) and "Add storage…" to the window's + menu; the shortcut
    works anywhere in the window."""
    settings_action = QAction("Settings…", window)
    settings_action.setShortcut(QKeySequence("Ctrl+,"))
    settings_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    settings_action.triggered.connect(lambda: open_settings(window, controller, profiles=profiles))
    add_action = QAction("Add storage…", window)
    add_action.triggered.connect(lambda: open_add_storage(window, controller, profiles=profiles))
    window.addAction(settings_action)
    window.add_menu.addSeparator()
    window.add_menu.addAction(add_action)
    window.add_menu.addAction(settings_action)
    return SettingsActions(settings_action, add_action)


__all__ = [
    "AddStorageDialog",
    "SettingsActions",
    "SettingsDialog",
    "add_storage",
    "install",
    "open_add_storage",
    "open_settings",
    "remove_storage",
]
