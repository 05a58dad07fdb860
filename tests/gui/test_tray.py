"""The tray feature: the badge drawn on the icon, notifications with and without a system
tray, a click on a notification opening its room, and minimise-to-tray on close.

Offscreen there is no system tray (``isSystemTrayAvailable()`` is False and a real
``QSystemTrayIcon`` never becomes visible), so the tray path uses a real
``QSystemTrayIcon`` subclass that says it is shown and records what it was asked to do;
the no-tray path records the one Qt call it makes, ``QApplication.alert``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from bucket_chat_desktop.gui import tray
from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.settings import Settings
from bucket_chat_desktop.sync.client import RoomRef

SIZE = 64
BADGE = QRect(SIZE - 34, 0, 34, 34)  # where tray_icon draws the unread count


class VisibleTray(QSystemTrayIcon):
    """A real tray icon that reports itself shown and records its messages."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.messages: list[tuple[str, str, Any, int]] = []

    def isVisible(self) -> bool:
        return True

    def showMessage(self, title: str, text: str, icon: Any = None, ms: int = 10000) -> None:
        self.messages.append((title, text, icon, ms))


@dataclass
class Window:
    controller: Controller
    window: MainWindow
    alerts: list[tuple[QWidget, int]]

    def add_room(self, room: str, name: str) -> str:
        ref = RoomRef("st0rage", room)
        self.controller.list_room(ref)
        self.controller.rooms.update(ref.key, name=name)
        return ref.key


@pytest.fixture
def win(qtbot: Any, qloop: Any, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Window]:
    settings = Settings(user_id="alice@example.com", displayname="Alice")
    controller = Controller(settings, Identity("alice@example.com", SigningKey(b"\x01" * 32)))
    window = MainWindow(controller)
    alerts: list[tuple[QWidget, int]] = []
    monkeypatch.setattr(QApplication, "alert", staticmethod(lambda w, ms=0: alerts.append((w, ms))))
    window.show()
    qtbot.waitExposed(window)
    yield Window(controller, window, alerts)
    window.quit()
    window.deleteLater()


def image(icon: QIcon) -> QImage:
    return icon.pixmap(SIZE, SIZE).toImage().convertToFormat(QImage.Format.Format_ARGB32)


def pixels(img: QImage, rect: QRect) -> list[int]:
    return [
        img.pixel(x, y)
        for y in range(rect.top(), rect.bottom())
        for x in range(rect.left(), rect.right())
    ]


def reddish(color: QColor) -> bool:
    return color.red() > 180 and color.green() < 110 and color.blue() < 110


# -- the icon ---------------------------------------------------------------------------------


def test_the_tray_icon_draws_an_unread_badge(qapp: QApplication) -> None:
    none, five, seven = image(tray.tray_icon(0)), image(tray.tray_icon(5)), image(tray.tray_icon(7))
    assert none.size() == five.size() and not none.isNull()
    assert pixels(none, BADGE) != pixels(five, BADGE)  # the badge
    assert pixels(five, BADGE) != pixels(seven, BADGE)  # the digit
    left = QRect(0, 20, 28, 40)
    assert pixels(none, left) == pixels(five, left)  # the rest is the app icon
    # a red disc with a white digit inside, nothing red without unread messages
    assert reddish(five.pixelColor(BADGE.left() + 5, BADGE.center().y()))
    assert any(QColor(p).lightness() > 230 for p in pixels(five, BADGE.adjusted(8, 8, -8, -8)))
    assert not any(reddish(QColor(p)) for p in pixels(none, BADGE))


def test_the_badge_goes_on_the_app_icon_when_there_is_one(qapp: QApplication) -> None:
    base = QPixmap(SIZE, SIZE)
    base.fill(QColor("#208040"))
    plain, badged = image(tray.tray_icon(0, QIcon(base))), image(tray.tray_icon(3, QIcon(base)))
    assert plain.pixelColor(10, 50) == QColor("#208040")
    assert badged.pixelColor(10, 50) == QColor("#208040")
    assert reddish(badged.pixelColor(BADGE.left() + 5, BADGE.center().y()))


def test_more_than_nine_unread_show_nine_plus(qapp: QApplication) -> None:
    assert image(tray.tray_icon(12)) == image(tray.tray_icon(42))
    assert image(tray.tray_icon(12)) != image(tray.tray_icon(9))


def test_a_hundred_unread_do_not_claim_ninety_nine(qapp: QApplication) -> None:
    assert image(tray.tray_icon(150)) == image(tray.tray_icon(12))


# -- installing -------------------------------------------------------------------------------


def test_without_a_system_tray_install_gives_a_notifier_only(win: Window) -> None:
    assert not QSystemTrayIcon.isSystemTrayAvailable()  # offscreen
    assert tray.install(win.window, win.controller) is None
    assert win.window.tray is None and isinstance(win.window.notifier, tray.Notifier)


def test_with_a_system_tray_install_shows_an_icon_with_a_menu(
    win: Window, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    icon = tray.install(win.window, win.controller)
    assert isinstance(icon, QSystemTrayIcon) and win.window.tray is icon
    assert icon.toolTip() == "Bucket Chat"
    menu = icon.contextMenu()
    assert menu is not None
    actions = {a.text(): a for a in menu.actions() if a.text()}
    assert set(actions) == {"Open Bucket Chat", "Quit"}
    win.window.hide()
    actions["Open Bucket Chat"].trigger()
    assert win.window.isVisible()
    actions["Quit"].trigger()
    assert win.window.quitting and not win.window.isVisible()
    icon.hide()


# -- notifications ----------------------------------------------------------------------------


def test_without_a_tray_a_notification_asks_for_attention(win: Window) -> None:
    notifier = tray.Notifier(win.window, win.controller, None)
    general = win.add_room("general", "General")
    win.controller.notify.emit(
        general, "bob@example.com in General", "Lunch?", "General", False, "bob"
    )
    assert notifier.shown == [(general, "bob@example.com in General", "Lunch?")]
    assert win.alerts == [(win.window, 0)]
    assert notifier.last_room == general
    notifier.on_unread(3)  # no tray: nothing to badge, and no error


def test_with_a_tray_a_notification_is_a_tray_message(win: Window) -> None:
    icon = VisibleTray(win.window)
    notifier = tray.Notifier(win.window, win.controller, icon)
    general = win.add_room("general", "General")
    long_text = "x" * 300
    win.controller.notify.emit(
        general, "bob@example.com in General", long_text, "General", False, "bob"
    )
    assert icon.messages == [
        (
            "bob@example.com in General",
            "x" * 199 + "…",  # cut at 200 characters, and the cut is marked
            QSystemTrayIcon.MessageIcon.Information,
            6000,
        )
    ]
    assert win.alerts == []  # the tray message is the notification
    assert notifier.shown == [(general, "bob@example.com in General", long_text)]

    win.controller.unread_changed.emit(4)
    assert icon.toolTip() == "Bucket Chat — 4 unread"
    assert image(icon.icon()) == image(tray.tray_icon(4, QApplication.windowIcon()))
    win.controller.unread_changed.emit(0)
    assert icon.toolTip() == "Bucket Chat"


def test_the_open_room_of_the_active_window_is_not_notified(win: Window, qtbot: Any) -> None:
    icon = VisibleTray(win.window)
    notifier = tray.Notifier(win.window, win.controller, icon)
    falcon = win.add_room("falcon", "Project Falcon")
    win.controller.select_room(falcon)
    win.window.activateWindow()
    qtbot.waitUntil(win.window.isActiveWindow)
    win.controller.notify.emit(
        falcon, "bob@example.com in Project Falcon", "hi", "Project Falcon", False, "bob"
    )
    assert notifier.shown == [] and icon.messages == [] and win.alerts == []


def test_clicking_the_notification_opens_its_room(win: Window) -> None:
    icon = VisibleTray(win.window)
    notifier = tray.Notifier(win.window, win.controller, icon)
    falcon = win.add_room("falcon", "Project Falcon")
    general = win.add_room("general", "General")
    win.controller.select_room(falcon)
    win.controller.rooms.update(general, unread=2)
    win.controller.notify.emit(
        general, "bob@example.com in General", "Lunch?", "General", False, "bob"
    )
    win.window.hide()

    icon.messageClicked.emit()
    assert win.controller.current == general
    assert win.window.isVisible()
    assert win.controller.rooms.item(general).unread == 0  # type: ignore[union-attr]
    assert notifier.last_room == general

    win.controller.select_room(falcon)
    notifier.open_last()  # the no-tray path's equivalent
    assert win.controller.current == general


def test_a_click_on_the_tray_icon_toggles_the_window(win: Window, qtbot: Any) -> None:
    icon = VisibleTray(win.window)
    notifier = tray.Notifier(win.window, win.controller, icon)
    win.window.activateWindow()
    qtbot.waitUntil(win.window.isActiveWindow)
    icon.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert not win.window.isVisible()
    icon.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert win.window.isVisible()
    icon.activated.emit(QSystemTrayIcon.ActivationReason.Context)  # the menu, not a toggle
    assert win.window.isVisible()
    assert notifier.tray is icon


# -- minimise to tray -------------------------------------------------------------------------


def test_closing_with_a_visible_tray_hides_the_window(win: Window) -> None:
    win.window.tray = VisibleTray(win.window)
    assert win.controller.settings.minimize_to_tray
    assert win.window.close() is False  # the close was refused ...
    assert not win.window.isVisible() and not win.window.quitting  # ... the window hid

    win.window.show()
    win.window.quit()  # Quit (menu, Ctrl+Q, the tray's Quit) really closes
    assert win.window.quitting and not win.window.isVisible()


def test_closing_without_a_tray_or_with_the_option_off_quits(win: Window) -> None:
    assert win.window.tray is None
    assert win.window.close() is True and win.window.quitting

    win.window.quitting = False
    win.window.show()
    win.window.tray = VisibleTray(win.window)
    win.controller.settings.minimize_to_tray = False
    assert win.window.close() is True and win.window.quitting
    assert not win.window.isVisible()


def test_a_tray_icon_that_is_not_shown_does_not_keep_the_app_alive(win: Window) -> None:
    win.window.tray = QSystemTrayIcon(win.window)  # never shown: offscreen has no tray
    assert not win.window.tray.isVisible()
    assert win.window.close() is True and win.window.quitting
