"""Notifications of many rooms at once (red team rt75).

- The notifier kept every notification it was asked for, for ever (``Notifier.shown``):
  memory grew with every message anyone wrote while the window was elsewhere (4,000
  notifications with a 300-character preview kept 4.6 MB; at the 120 reads a minute a
  member can cause, about 200 MB a day).
- A burst of one message in each of N rooms (a member of many rooms posts one line in
  each) popped N desktop notifications at once, burying a real one. Now a few pop, one a
  room, a mention may pop on its own, and the rest are gathered into one summary when
  the window ends; the summary's texts follow the rules of any notification (no markup,
  look-alike marks kept).

The window's end is the notifier's timer firing: the tests fire it themselves
(``_window_over``), nothing waits for it."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from desk import RecordingTray
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QWidget

from bucket_chat_desktop.gui import tray as tray_module
from bucket_chat_desktop.gui.tray import BURST_SHOWN, Notifier, tray_icon


class _Controller(QObject):
    notify = Signal(str, str, str, str, bool)
    unread_changed = Signal(int)
    current_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.current = ""
        self.selected: list[str] = []

    def select_room(self, key: str) -> None:
        self.selected.append(key)
        self.current = key
        self.current_changed.emit(key)


class _CountingTray(RecordingTray):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.icons = 0

    def setIcon(self, icon: Any) -> None:
        self.icons += 1
        super().setIcon(icon)


def _notifier(qtbot: Any) -> tuple[Notifier, _Controller, _CountingTray]:
    window = QWidget()
    qtbot.addWidget(window)
    controller = _Controller()
    tray = _CountingTray(window)
    notifier = Notifier(window, controller, tray)  # type: ignore[arg-type]
    return notifier, controller, tray


def test_notifications_are_not_kept_for_ever(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)

    def notify(n: int, first: int) -> None:
        for i in range(first, first + n):
            # what the controller hands over: a title and a 300-character preview
            controller.notify.emit(
                f"s/room-{i % 300}", f"Mallory in Room {i}", f"{i:08d}" * 38, f"Room {i}", False
            )

    notify(500, 0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        notify(4_000, 500)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    tray.messages.clear()
    # 4,000 more notifications (a member's messages while the window is elsewhere: 120 a
    # minute get read) must not each keep their text: ~4.6 MB before, ~200 MB a day
    assert grown < 200_000, f"{grown:,} bytes kept by 4,000 notifications"
    assert len(notifier.shown) <= tray_module.SHOWN_KEPT
    assert notifier.shown[-1][0] == f"s/room-{4499 % 300}"  # the last ones are what is kept


def test_a_burst_in_many_rooms_is_not_a_notification_per_room(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for i in range(300):  # one message in each of 300 rooms, read in one round
        controller.notify.emit(
            f"s/room-{i}", f"Mallory in Room {i}", "Urgent: see the pinned link", f"Room {i}", False
        )
    qtbot.wait(200)
    assert len(tray.messages) <= 5, f"{len(tray.messages)} desktop notifications at once"
    assert len(tray.messages) == BURST_SHOWN
    assert tray.messages[0] == ("Mallory in Room 0", "Urgent: see the pinned link")

    notifier._window_over()  # the window ends: the other 297 rooms in one notification
    gathered = 300 - BURST_SHOWN
    assert tray.messages[BURST_SHOWN:] == [
        (
            f"{gathered} new messages in {gathered} rooms",
            f"Room 299, Room 298, Room 297, Room 296 and {gathered - 4} more",
        )
    ]
    tray.messageClicked.emit()  # a click on the summary opens the room it names first
    assert controller.selected == ["s/room-299"]

    # the burst goes on: nothing else pops in the next window but its summary
    for i in range(300, 320):
        controller.notify.emit(f"s/room-{i}", f"Mallory in Room {i}", "again", f"Room {i}", False)
    assert len(tray.messages) == BURST_SHOWN + 1
    notifier._window_over()
    assert tray.messages[-1][0] == "20 new messages in 20 rooms"
    notifier._window_over()  # a quiet window: the next message pops at once again
    controller.notify.emit("s/room-0", "Bob in Room 0", "Lunch?", "Room 0", False)
    assert tray.messages[-1] == ("Bob in Room 0", "Lunch?")


def test_a_room_pops_once_a_window_and_a_mention_gets_its_own(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for n in range(5):
        controller.notify.emit("s/general", "Bob in General", f"line {n}", "General", False)
    assert tray.messages == [("Bob in General", "line 0")]
    controller.notify.emit("s/a", "Mallory in A", "a", "A", False)
    controller.notify.emit("s/b", "Mallory in B", "b", "B", False)
    controller.notify.emit("s/c", "Mallory in C", "c", "C", False)  # the limit: gathered
    assert [t for t, _ in tray.messages] == ["Bob in General", "Mallory in A", "Mallory in B"]
    # a mention still pops, once
    controller.notify.emit("s/payroll", "Carol in Payroll", "@alice sign this", "Payroll", True)
    controller.notify.emit("s/ops", "Carol in Ops", "@alice and this", "Ops", True)
    assert tray.messages[-1] == ("Carol in Payroll", "@alice sign this")
    assert len(tray.messages) == BURST_SHOWN + 1
    tray.messageClicked.emit()
    assert controller.selected == ["s/payroll"]
    controller.current = ""

    notifier._window_over()
    # the rooms that mention the user come first in the summary, and a click opens them
    assert tray.messages[-1] == (
        "6 new messages in 3 rooms",
        "Ops (mentions you), C, General",
    )
    tray.messageClicked.emit()
    assert controller.selected[-1] == "s/ops"


def test_a_room_read_meanwhile_is_not_in_the_summary(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for i in range(BURST_SHOWN + 2):
        controller.notify.emit(f"s/r{i}", f"Bob in R{i}", "hi", f"R{i}", False)
    controller.select_room(f"s/r{BURST_SHOWN}")  # the person opens one of the gathered
    notifier._window_over()
    assert tray.messages[-1] == (f"1 new message in R{BURST_SHOWN + 1}", "")
    notifier._window_over()
    notifier._window_over()  # nothing gathered: nothing pops
    assert len(tray.messages) == BURST_SHOWN + 1


def test_the_summary_carries_no_markup_and_keeps_look_alike_marks(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for i in range(BURST_SHOWN):
        controller.notify.emit(f"s/r{i}", f"Bob in R{i}", "hi", f"R{i}", False)
    # a room named with markup and a bidi override, and one whose name imitates another
    # (the list marks it, and the mark comes with the name)
    bait = "<b>Pay</b>roll &#x202e; \u202egnp.exe"
    controller.notify.emit("s/bait", "Mallory in x", "x", bait, False)
    controller.notify.emit("s/fake", "Mallory in y", "y", "⚠ General (fake-general)", False)
    notifier._window_over()
    title, text = tray.messages[-1]
    assert title == "2 new messages in 2 rooms"
    assert "<" not in text and ">" not in text and "&" not in text and "\u202e" not in text
    assert "‹b›Pay‹/b›roll" in text and "＆#x202e;" in text
    assert text.startswith("⚠ General (fake-general), ")


def test_the_tray_icon_is_drawn_again_only_when_its_badge_changes(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for count in range(1, 301):  # a burst read room by room: the total goes up by one
        controller.unread_changed.emit(count)
    # 1 to 9, then "9+" once
    assert tray.icons == 10
    assert tray.toolTip() == "Bucket Chat — 300 unread"
    assert (
        tray.icon().pixmap(64, 64).toImage()
        == tray_icon(300, QApplication.windowIcon()).pixmap(64, 64).toImage()
    )
    controller.unread_changed.emit(0)
    assert tray.icons == 11 and tray.toolTip() == "Bucket Chat"
    assert notifier.shown == []
