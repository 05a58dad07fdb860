"""The settings dialog on a real Controller over local folders: preferences are saved and
applied, the theme previews at once, storages are added (with a connection test) and
removed, and `install` puts the actions into the main window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run  # tests/gui/conftest.py
from keyring.backends import fail
from nacl.signing import SigningKey
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui import theme
from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.widgets import settings_dialog
from bucket_chat_desktop.gui.widgets.settings_dialog import (
    AddStorageDialog,
    SettingsDialog,
    install,
)
from bucket_chat_desktop.keys import Identity
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.profiles import ProfileStore

pytestmark = pytest.mark.usefixtures("qloop", "home")

USER = "alice@example.com"


@pytest.fixture(autouse=True)
def restore_look(qapp: QApplication) -> Iterator[None]:
    """The dialog changes the application's theme: put the look back for other tests."""
    palette, sheet, style = qapp.palette(), qapp.styleSheet(), qapp.style().name()
    yield
    qapp.setStyle(style)
    qapp.setPalette(palette)
    qapp.setStyleSheet(sheet)


@pytest.fixture
def controller(qtbot: Any, tmp_path: Path) -> Iterator[Controller]:
    first, second = tmp_path / "team", tmp_path / "family"
    first.mkdir()
    second.mkdir()
    settings = Settings(
        user_id=USER,
        displayname="Alice",
        storages=[
            StorageSettings(str(first), "Team", ["general", "random"]),
            StorageSettings(str(second), "Family", ["home"]),
        ],
        theme="light",
    )
    ctl = Controller(settings, Identity(USER, SigningKey.generate()))
    yield ctl
    run(ctl.shutdown(), qtbot, timeout=20)


def no_keyring() -> ProfileStore:
    return ProfileStore(backend=fail.Keyring())


def window_is_dark() -> bool:
    return QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def test_preferences_are_saved_and_applied(
    qtbot: Any, controller: Controller, tmp_path: Path
) -> None:
    theme.apply(QApplication.instance(), "light")  # type: ignore[arg-type]
    dialog = SettingsDialog(controller, profiles=no_keyring())
    qtbot.addWidget(dialog)
    dialog.show()
    s = controller.settings
    team = s.storages[0].id

    assert dialog.theme_combo.currentData() == "light"
    assert dialog.speed_combo.currentData() == "normal"
    assert dialog.mute_list.count() == 3
    dialog.grab().save(str(tmp_path / "settings-general.png"))

    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
    assert window_is_dark(), "the theme is previewed at once"
    dialog.tray_check.setChecked(False)
    dialog.start_min_check.setChecked(True)
    dialog.speed_combo.setCurrentIndex(dialog.speed_combo.findData("saver"))
    dialog.attachment_spin.setValue(50)
    dialog.nav.setCurrentRow(1)
    dialog.notify_check.setChecked(False)
    general = next(
        dialog.mute_list.item(i)
        for i in range(dialog.mute_list.count())
        if dialog.mute_list.item(i).data(Qt.ItemDataRole.UserRole) == f"{team}/general"
    )
    general.setCheckState(Qt.CheckState.Checked)
    dialog.grab().save(str(tmp_path / "settings-notifications.png"))
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    assert not dialog.isVisible()
    saved = settings_store.load()
    assert (saved.theme, saved.minimize_to_tray, saved.start_minimized) == ("dark", False, True)
    assert (saved.poll_speed, saved.attachment_limit_mb, saved.notifications) == (
        "saver",
        50,
        False,
    )
    assert saved.muted_rooms == [f"{team}/general"]
    assert s.muted_rooms == saved.muted_rooms
    item = controller.rooms.item(f"{team}/general")
    assert item is not None and item.muted
    assert window_is_dark()


def test_cancel_puts_the_theme_back_and_saves_nothing(
    qtbot: Any, controller: Controller, tmp_path: Path
) -> None:
    theme.apply(QApplication.instance(), "light")  # type: ignore[arg-type]
    dialog = SettingsDialog(controller, profiles=no_keyring())
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
    dialog.grab().save(str(tmp_path / "settings-dark.png"))
    assert window_is_dark()
    dialog.attachment_spin.setValue(7)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert not window_is_dark()
    assert controller.settings.theme == "light"
    assert controller.settings.attachment_limit_mb == 25
    assert not settings_store.settings_path().exists()


def test_a_poll_speed_change_reaches_running_engines(qtbot: Any, controller: Controller) -> None:
    run(controller.client.start(), qtbot, timeout=20)
    dialog = SettingsDialog(controller, profiles=no_keyring())
    qtbot.addWidget(dialog)
    dialog.speed_combo.setCurrentIndex(dialog.speed_combo.findData("fast"))
    dialog.save()
    configs = [a.engine.config for a in controller.client._storages.values()]
    assert configs and all(
        (c.active_interval, c.focused_interval, c.idle_interval) == (0.5, 1.5, 20.0)
        for c in configs
    )


def test_the_window_in_front_makes_the_engines_poll_often(
    qtbot: Any, controller: Controller
) -> None:
    run(controller.client.start(), qtbot, timeout=20)
    engines = [a.engine for a in controller.client._storages.values()]
    assert engines and not any(e.window_focused for e in engines)  # nobody looks yet
    window = MainWindow(controller)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.waitUntil(lambda: all(e.window_focused for e in engines))
    other = QMessageBox()  # another window comes to the front
    qtbot.addWidget(other)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(lambda: not window.isActiveWindow())
    qtbot.waitUntil(lambda: not any(e.window_focused for e in engines))
    other.close()
    window.close()


def test_a_storage_is_added_after_a_connection_test(
    qtbot: Any, controller: Controller, tmp_path: Path
) -> None:
    dialog = SettingsDialog(controller, profiles=no_keyring())
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.nav.setCurrentRow(2)
    assert dialog.storage_list.count() == 2
    dialog.grab().save(str(tmp_path / "settings-storages.png"))
    qtbot.mouseClick(dialog.add_storage_button, Qt.MouseButton.LeftButton)
    add = dialog.add_dialog
    assert isinstance(add, AddStorageDialog) and add.isVisible()
    folder = tmp_path / "club"
    folder.mkdir()
    add.form.folder_edit.setText(str(folder))
    add.form.name_edit.setText("Book club")
    qtbot.mouseClick(add.form.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: add.form.last_result is not None, timeout=10000)
    assert add.form.last_result is not None and add.form.last_result.level == "ok"
    add.grab().save(str(tmp_path / "settings-add-storage.png"))
    qtbot.mouseClick(add.add_button, Qt.MouseButton.LeftButton)

    assert not add.isVisible()
    assert dialog.storage_list.count() == 3
    entry = controller.settings.storages[-1]
    assert (entry.spec, entry.name) == (str(folder), "Book club")
    qtbot.waitUntil(lambda: entry.id in controller.client._storages, timeout=10000)
    assert [s.spec for s in settings_store.load().storages][-1] == str(folder)


def test_the_same_storage_is_not_added_twice(qtbot: Any, controller: Controller) -> None:
    add = AddStorageDialog(controller.settings, profiles=no_keyring())
    qtbot.addWidget(add)
    add.show()
    add.form.folder_edit.setText(controller.settings.storages[1].spec)
    assert add.add() is None
    assert "already in your list" in add.error.text() and "Family" in add.error.text()
    assert add.isVisible()


def test_a_storage_is_removed_with_its_rooms(
    qtbot: Any, controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = controller.settings.storages[0]
    controller.settings.muted_rooms = [f"{team.id}/general"]
    controller.select_room(f"{team.id}/random")
    dialog = SettingsDialog(controller, profiles=no_keyring())
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.nav.setCurrentRow(2)
    dialog.storage_list.setCurrentRow(0)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    qtbot.mouseClick(dialog.remove_storage_button, Qt.MouseButton.LeftButton)
    assert [s.name for s in controller.settings.storages] == ["Family"]
    assert controller.rooms.room_keys() == [f"{controller.settings.storages[0].id}/home"]
    assert controller.settings.muted_rooms == []
    assert controller.current == ""
    assert dialog.storage_list.count() == 1 and dialog.mute_list.count() == 1
    assert [s.name for s in settings_store.load().storages] == ["Family"]


def test_install_adds_settings_and_add_storage_to_the_window(
    qtbot: Any, controller: Controller
) -> None:
    window = MainWindow(controller)
    qtbot.addWidget(window)
    window.show()
    actions = install(window, controller, profiles=no_keyring())
    texts = [a.text() for a in window.add_menu.actions()]
    assert "Settings…" in texts and "Add storage…" in texts
    assert actions.settings in window.actions()
    assert actions.settings.shortcut().toString() == "Ctrl+,"
    actions.settings.trigger()
    dialog = window.findChild(SettingsDialog)
    assert dialog is not None and dialog.isVisible()
    actions.settings.trigger()
    assert len(window.findChildren(SettingsDialog)) == 1, "one settings dialog at a time"
    dialog.reject()
    actions.add_storage.trigger()
    add = window.findChild(AddStorageDialog)
    assert add is not None and add.isVisible()
    add.reject()


def test_speed_texts_follow_the_settings() -> None:
    assert settings_dialog.speed_text("fast").startswith("Buckets are checked every 0.5 s")
    assert "every 3 s while this window is in front" in settings_dialog.speed_text("normal")
