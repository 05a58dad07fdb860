"""The tray icon: unread count, notifications for new messages while the window is not
focused (a click opens that room), minimise to tray. Where the desktop has no tray the
app works the same, and notifications fall back to asking the window manager for
attention."""

from __future__ import annotations

import logging

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from ..protocol.untrusted_text import one_line, terminal_safe
from .controller import Controller
from .main_window import MainWindow
from .style import ACCENT

log = logging.getLogger("bucket_chat.gui")


def tray_icon(unread: int, base: QIcon | None = None) -> QIcon:
    """The app icon with a red unread badge; drawn, so it is legible on any panel."""
    size = 64
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    if base is not None and not base.isNull():
        p.drawPixmap(0, 0, base.pixmap(size, size))
    else:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(ACCENT))
        p.drawRoundedRect(QRect(4, 4, size - 8, size - 8), 14, 14)
        p.setPen(QColor("white"))
        font = QFont()
        font.setBold(True)
        font.setPixelSize(34)
        p.setFont(font)
        p.drawText(QRect(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, "B")
    if unread:
        p.setPen(QColor("white"))
        p.setBrush(QColor("#d64545"))
        p.drawEllipse(QRect(size - 34, 0, 34, 34))
        font = QFont()
        font.setBold(True)
        font.setPixelSize(20 if unread < 10 else 15)
        p.setFont(font)
        p.drawText(
            QRect(size - 34, 0, 34, 34),
            Qt.AlignmentFlag.AlignCenter,
            "9+" if unread > 9 else str(unread),
        )
    p.end()
    return QIcon(pix)


def notification_text(title: str, text: str) -> tuple[str, str]:
    """A notification's title and text, both built from untrusted ids, names and bodies.

    The title holds a sender id: control, bidi and invisible characters are spelled out
    (``terminal_safe``) so a look-alike id shows its trick. The text is a one-line
    preview. Neither may carry markup: Qt's balloon renders a title that looks like HTML
    as rich text and desktop notification servers render markup in the body, so angle
    brackets become the look-alike quotation marks ‹ › and an ampersand the full-width ＆
    (no character reference such as "&#x202e;" is decoded into a bidi control; the
    message itself is intact in the room)."""
    title = terminal_safe(title, limit=120)
    text = one_line(text, 200)
    return _no_markup(title), _no_markup(text)


def _no_markup(text: str) -> str:
    # "&" too: markup decodes character references, and "&#x202e;" would be a bidi
    # override again, past the cleaning of the characters themselves
    return text.replace("<", "‹").replace(">", "›").replace("&", "＆")


class Notifier:
    """Routes controller notifications to the tray, or to a window alert without one."""

    def __init__(self, window: MainWindow, controller: Controller, tray: QSystemTrayIcon | None):
        self.window = window
        self.controller = controller
        self.tray = tray
        self.last_room = ""
        self.shown: list[tuple[str, str, str]] = []  # what was requested (tests read it)
        controller.notify.connect(self.on_notify)
        controller.unread_changed.connect(self.on_unread)
        if tray is not None:
            tray.messageClicked.connect(self.open_last)
            tray.activated.connect(self.on_activated)

    def on_notify(self, room_key: str, title: str, text: str) -> None:
        if self.window.isActiveWindow() and self.controller.current == room_key:
            return
        self.last_room = room_key
        self.shown.append((room_key, title, text))
        if self.tray is not None and self.tray.isVisible():
            title, text = notification_text(title, text)
            self.tray.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information, 6000)
        else:
            QApplication.alert(self.window, 0)

    def on_unread(self, count: int) -> None:
        if self.tray is not None:
            self.tray.setIcon(tray_icon(count, QApplication.windowIcon()))
            self.tray.setToolTip(f"Bucket Chat — {count} unread" if count else "Bucket Chat")

    def open_last(self) -> None:
        self.show_window()
        if self.last_room:
            self.controller.select_room(self.last_room)

    def on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            if self.window.isVisible() and self.window.isActiveWindow():
                self.window.hide()
            else:
                self.show_window()

    def show_window(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()


def install(window: MainWindow, controller: Controller) -> QSystemTrayIcon | None:
    """Create the tray icon if the desktop has a tray; the notifier works either way."""
    tray: QSystemTrayIcon | None = None
    if QSystemTrayIcon.isSystemTrayAvailable():
        tray = QSystemTrayIcon(tray_icon(0, QApplication.windowIcon()), window)
        tray.setToolTip("Bucket Chat")
        menu = QMenu(window)
        menu.addAction("Open Bucket Chat", lambda: window.notifier.show_window())
        menu.addSeparator()
        menu.addAction("Quit", window.quit)
        tray.setContextMenu(menu)
        tray.show()
    else:
        log.info("no system tray here: notifications ask the window manager for attention")
    window.tray = tray
    window.notifier = Notifier(window, controller, tray)
    return tray
