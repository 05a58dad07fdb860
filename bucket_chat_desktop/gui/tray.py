"""The tray icon: unread count, notifications for new messages while the window is not
focused (a click opens that room), minimise to tray. Where the desktop has no tray the
app works the same, and notifications fall back to asking the window manager for
attention."""

from __future__ import annotations

import logging
import sys
from collections import deque
from dataclasses import dataclass, field

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
# ``BURST_MS`` from the first: at most ``BURST_SHOWN`` pop, one a room and one a sender,
# and one more for a message that mentions the user; what else comes is gathered into
# one summary when the window ends ("297 new messages in 297 rooms"), which starts the
# next window: a flood that goes on pops one summary a window (and a mention).
#
# A member who mentions the user in a few rooms every window took that one mention pop
# and the summary's four names, hiding a colleague's mention for ever (red team rt77): a
# sender pops one line a window, and one mention, only if they did not mention the user
# in the burst's last ``RECENT_WINDOWS`` windows; the summary names the rooms that
# mention the user first, those of the sender who mentioned the user the fewest times
# in the window first (and who had not in the last windows before those who had), then
# in the order they came; its title counts the mentions and their rooms.
BURST_MS = 10_000
BURST_SHOWN = 3
MENTION_SHOWN = BURST_SHOWN + 1  # a mention may pop while fewer than this have
SUMMARY_ROOMS = 4  # rooms a summary names; the others are counted
SHOWN_KEPT = 20  # notifications remembered (``Notifier.shown``): never all of them
RECENT_WINDOWS = 3  # a sender who mentioned the user in these last windows is no news
MENTIONERS_KEPT = 64  # senders remembered for that (the oldest forgotten first)
ROOM_MENTIONERS = 4  # senders of a gathered room's mentions remembered (its first ones)


@dataclass
class _Gathered:
    """A room's messages gathered into the next summary (one small entry a room)."""

    name: str
    count: int = 0
    mentions: int = 0  # of them, messages that mention the user (the controller's word)
    first_mention: int = 0  # the order its first mention came in (``Notifier._arrived``)
    mentioners: list[str] = field(default_factory=list)  # their first few senders


def _quoted(name: str) -> str:
    """A room's name (chosen by anyone who may write the room's metadata) set apart from
    the summary's own words: spelled out as a title's is (a look-alike shows its trick,
    and its mark ⚠ comes with it), between « » that the name itself cannot hold (its own
    become "), so "Ads», «Payroll» (mentions you)" reads as one odd name."""
    shown = terminal_safe(name, limit=40).replace("«", '"').replace("»", '"')
    return f"«{shown}»"


def summary_text(rooms: list[_Gathered]) -> tuple[str, str]:
    """The title and text of one notification for the messages of a burst, by room
    (the first named first): how many messages in how many rooms and, counted from the
    messages (never from a name), how many mention the user in how many rooms; then the
    first rooms' names, each quoted (``_quoted``), a room that mentions the user marked
    after its closing quote. ``notification_text`` takes the markup out of both as for
    any notification."""
    count = sum(g.count for g in rooms)
    mentions = sum(g.mentions for g in rooms)
    mentioning = sum(1 for g in rooms if g.mentions)
    messages = f"{count} new message{'s' if count != 1 else ''}"
    if len(rooms) == 1:
        title = f"{messages} in {_quoted(rooms[0].name)}"
        return title + (f", {mentions} mentioning you" if mentions else ""), ""
    title = f"{messages} in {len(rooms)} rooms"
    if mentions:
        title += f", {mentions} mentioning you in {mentioning} room{'s' if mentioning != 1 else ''}"
    names = [
        _quoted(g.name) + (" (mentions you)" if g.mentions else "") for g in rooms[:SUMMARY_ROOMS]
    ]
    more = len(rooms) - len(names)
    return title, ", ".join(names) + (f" and {more} more" if more else "")


def _remember(kept: dict[str, int], sender: str, value: int) -> None:
    """``kept[sender] = value``, the newest last, at most ``MENTIONERS_KEPT`` senders."""
    kept.pop(sender, None)
    if len(kept) >= MENTIONERS_KEPT:
        del kept[next(iter(kept))]
    kept[sender] = value


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
        # the rooms a click on the last notification opens, the first that is still
        # there: its room, or the rooms a summary names (a room left meanwhile is dropped)
        self._click: list[str] = []
        # The last notifications asked for (tests read them): only the last few, as the
        # memory they held grew with every message anyone wrote (red team rt75).
        self._shown: deque[tuple[str, str, str]] = deque(maxlen=SHOWN_KEPT)
        self._popped = 0  # notifications popped in this window
        self._rooms_popped: set[str] = set()
        self._senders_popped: set[str] = set()  # one pop a sender and window
        # by room key, the room of the newest gathered message last: what the summary
        # says (a room shown meanwhile is read, one left is gone: forgotten)
        self._gathered: dict[str, _Gathered] = {}
        self._arrived = 0  # messages notified: the order mentions came in
        # A burst's windows (those that ended with a summary; a quiet one ends the
        # burst), and by sender, the last window before this one in which they mentioned
        # the user, and in how many messages of this one: who storms, who is news (red
        # team rt77).
        self._windows = 0
        self._mentioned: dict[str, int] = {}
        self._mentions_now: dict[str, int] = {}
        self._window = QTimer(window)
        self._window.setSingleShot(True)
        self._window.setInterval(BURST_MS)
        self._window.timeout.connect(self._window_over)
        self._shown_count: int | None = None  # the unread count the tray icon shows
        controller.notify.connect(self.on_notify)
        controller.unread_changed.connect(self.on_unread)
        controller.current_changed.connect(self._read)
        controller.room_forgotten.connect(self._forget)
        if tray is not None:
            tray.messageClicked.connect(self.open_last)
            tray.activated.connect(self.on_activated)

    @property
    def shown(self) -> list[tuple[str, str, str]]:
        """(room key, title, text) of the last notifications asked for, oldest first."""
        return list(self._shown)

    @property
    def last_room(self) -> str:
        """The room a click on the last notification opens ("" for none)."""
        return self._click[0] if self._click else ""

    def on_notify(
        self,
        room_key: str,
        title: str,
        text: str,
        room: str = "",
        mention: bool = False,
        sender: str = "",
    ) -> None:
        """A message in ``room_key`` (its list name ``room``; ``mention``: it mentions
        the user; ``sender``: who wrote it, compared only) to notify: popped at once, or
        gathered into the window's summary."""
        if self.window.isActiveWindow() and self.controller.current == room_key:
            return
        self._shown.append((room_key, title, text))
        self._arrived += 1
        fresh = sender not in self._senders_popped
        popping = fresh and self._popped < BURST_SHOWN and room_key not in self._rooms_popped
        if mention:
            # a mention pops even from a sender whose plain line popped, but one who
            # mentioned the user in this window or the burst's last ones is no news:
            # their mention waits for the summary
            news = sender not in self._mentions_now and not self._recent(sender)
            popping = popping or (news and self._popped < MENTION_SHOWN)
            _remember(self._mentions_now, sender, self._mentions_now.get(sender, 0) + 1)
        if popping:
            self._popped += 1
            self._rooms_popped.add(room_key)
            self._senders_popped.add(sender)
            self._click = [room_key]
            self._pop(title, text)
        else:
            got = self._gathered.pop(room_key, None) or _Gathered(room or _room_id(room_key))
            got.count += 1
            if mention:
                got.mentions += 1
                got.first_mention = got.first_mention or self._arrived
                if sender not in got.mentioners and len(got.mentioners) < ROOM_MENTIONERS:
                    got.mentioners.append(sender)
            self._gathered[room_key] = got  # the newest last
        if not self._window.isActive():
            self._window.start()

    def _window_over(self) -> None:
        """The window ends: what was gathered pops as one summary, which starts the next
        window (a burst that goes on pops nothing else in it but a mention)."""
        self._rooms_popped.clear()
        self._senders_popped.clear()
        gathered, self._gathered = self._gathered, {}
        mentioned_now, self._mentions_now = self._mentions_now, {}
        if not gathered:  # a quiet window: the burst is over
            self._popped = 0
            self._windows = 0
            self._mentioned.clear()
            return

        def weight(sender: str) -> tuple[int, bool]:
            # how stormy a sender's mentions are, the least first: in how many messages
            # of this window they mentioned the user (one not remembered: the most), and
            # whether they had in the burst's last windows
            return mentioned_now.get(sender, sys.maxsize), self._recent(sender)

        # the rooms that mention the user first: the least stormy sender's first, then
        # in the order they came; then the others, the newest first
        newest_first = list(reversed(gathered.items()))
        mentioning = sorted(
            (kv for kv in newest_first if kv[1].mentions),
            key=lambda kv: (min(map(weight, kv[1].mentioners)), kv[1].first_mention),
        )
        rooms = mentioning + [kv for kv in newest_first if not kv[1].mentions]
        for sender in mentioned_now:
            _remember(self._mentioned, sender, self._windows)
        self._windows += 1
        self._click = [key for key, _g in rooms[:SUMMARY_ROOMS]]  # what a click opens
        self._popped = BURST_SHOWN
        self._window.start()
        self._pop(*summary_text([g for _key, g in rooms]))

    def _recent(self, sender: str) -> bool:
        """Whether ``sender`` mentioned the user in the burst's last ``RECENT_WINDOWS``
        windows (before this one)."""
        return self._mentioned.get(sender, -RECENT_WINDOWS - 1) >= self._windows - RECENT_WINDOWS

    def _read(self, room_key: str) -> None:
        """A room shown is read: its gathered messages are no news for the summary."""
        self._gathered.pop(room_key, None)

    def _forget(self, room_key: str) -> None:
        """A room left, or its storage removed: no summary names it, no click opens it."""
        self._gathered.pop(room_key, None)
        if room_key in self._click:
            self._click.remove(room_key)

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
        """A click on the last notification: its room, or the first room its summary
        names that is still there."""
        self.show_window()
        if self._click:
            self.controller.select_room(self._click[0])

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
