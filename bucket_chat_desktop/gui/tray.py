"""The tray icon: unread count, notifications for new messages while the window is not
focused (a click opens that room), minimise to tray. Where the desktop has no tray the
app works the same, and notifications fall back to asking the window manager for
attention."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from PySide6.QtCore import QRect, Qt, QTimer
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
            _badge(unread),
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


# A burst of notifications (one message in each of 300 rooms, read in one round) popped
# one desktop notification per room, burying a real one (red team rt75). In a window of
# ``BURST_MS`` from the first: at most ``BURST_SHOWN`` pop, one a room, and one more for a
# message that mentions the user; what else comes is gathered into one summary when the
# window ends ("New messages in 297 rooms: …"), which starts the next window: a flood
# that goes on pops one summary a window (and a mention).
BURST_MS = 10_000
BURST_SHOWN = 3
MENTION_SHOWN = BURST_SHOWN + 1  # a mention may pop while fewer than this have
SUMMARY_ROOMS = 4  # rooms a summary names; the others are counted
SHOWN_KEPT = 20  # notifications remembered (``Notifier.shown``): never all of them


@dataclass
class _Gathered:
    """A room's messages gathered into the next summary."""

    name: str
    count: int = 0
    mention: bool = False


def summary_text(rooms: list[_Gathered]) -> tuple[str, str]:
    """The title and text of one notification for the messages of a burst, by room
    (the first named first): how many messages in how many rooms, and the rooms' names
    (spelled out as a title's are: a look-alike name shows its trick and its mark ⚠).
    ``notification_text`` takes the markup out of both as for any notification."""
    count = sum(g.count for g in rooms)
    messages = f"{count} new message{'s' if count != 1 else ''}"
    names = [
        terminal_safe(g.name, limit=40) + (" (mentions you)" if g.mention else "")
        for g in rooms[:SUMMARY_ROOMS]
    ]
    if len(rooms) == 1:
        return f"{messages} in {names[0]}", ""
    more = len(rooms) - len(names)
    listed = ", ".join(names) + (f" and {more} more" if more else "")
    return f"{messages} in {len(rooms)} rooms", listed


def _room_id(room_key: str) -> str:
    return room_key.partition("/")[2] or room_key


def _badge(count: int) -> str:
    return "" if not count else "9+" if count > 9 else str(count)


class Notifier:
    """Routes controller notifications to the tray, or to a window alert without one;
    bursts are gathered into one summary (``BURST_MS``)."""

    def __init__(self, window: MainWindow, controller: Controller, tray: QSystemTrayIcon | None):
        self.window = window
        self.controller = controller
        self.tray = tray
        self.last_room = ""
        # The last notifications asked for (tests read them): only the last few, as the
        # memory they held grew with every message anyone wrote (red team rt75).
        self._shown: deque[tuple[str, str, str]] = deque(maxlen=SHOWN_KEPT)
        self._popped = 0  # notifications popped in this window
        self._rooms_popped: set[str] = set()
        # by room key, the room of the newest gathered message last: what the summary
        # says (a room shown meanwhile is read: forgotten)
        self._gathered: dict[str, _Gathered] = {}
        self._window = QTimer(window)
        self._window.setSingleShot(True)
        self._window.setInterval(BURST_MS)
        self._window.timeout.connect(self._window_over)
        self._shown_count: int | None = None  # the unread count the tray icon shows
        controller.notify.connect(self.on_notify)
        controller.unread_changed.connect(self.on_unread)
        controller.current_changed.connect(self._read)
        if tray is not None:
            tray.messageClicked.connect(self.open_last)
            tray.activated.connect(self.on_activated)

    @property
    def shown(self) -> list[tuple[str, str, str]]:
        """(room key, title, text) of the last notifications asked for, oldest first."""
        return list(self._shown)

    def on_notify(
        self, room_key: str, title: str, text: str, room: str = "", mention: bool = False
    ) -> None:
        """A message in ``room_key`` (its list name ``room``; ``mention``: it mentions
        the user) to notify: popped at once, or gathered into the window's summary."""
        if self.window.isActiveWindow() and self.controller.current == room_key:
            return
        self._shown.append((room_key, title, text))
        popping = self._popped < BURST_SHOWN and room_key not in self._rooms_popped
        if popping or (mention and self._popped < MENTION_SHOWN):
            self._popped += 1
            self._rooms_popped.add(room_key)
            self.last_room = room_key
            self._pop(title, text)
        else:
            got = self._gathered.pop(room_key, None) or _Gathered(room or _room_id(room_key))
            got.count += 1
            got.mention = got.mention or mention
            self._gathered[room_key] = got  # the newest last
        if not self._window.isActive():
            self._window.start()

    def _window_over(self) -> None:
        """The window ends: what was gathered pops as one summary, which starts the next
        window (a burst that goes on pops nothing else in it but a mention)."""
        self._rooms_popped.clear()
        if not self._gathered:
            self._popped = 0
            return
        gathered, self._gathered = self._gathered, {}
        # the rooms that mention the user first, then the newest first
        rooms = sorted(reversed(gathered.items()), key=lambda kv: not kv[1].mention)
        self.last_room = rooms[0][0]  # what a click on the summary opens
        self._popped = BURST_SHOWN
        self._window.start()
        self._pop(*summary_text([g for _key, g in rooms]))

    def _read(self, room_key: str) -> None:
        """A room shown is read: its gathered messages are no news for the summary."""
        self._gathered.pop(room_key, None)

    def _pop(self, title: str, text: str) -> None:
        if self.tray is not None and self.tray.isVisible():
            title, text = notification_text(title, text)
            self.tray.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information, 6000)
        else:
            QApplication.alert(self.window, 0)

    def on_unread(self, count: int) -> None:
        if self.tray is None or count == self._shown_count:
            return  # the icon is drawn again only when its count changes
        if self._shown_count is None or _badge(count) != _badge(self._shown_count):
            self.tray.setIcon(tray_icon(count, QApplication.windowIcon()))
        self._shown_count = count
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
