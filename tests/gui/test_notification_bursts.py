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

Red team rt77:

- A room left (or whose storage was removed) while its messages were gathered was still
  named in the summary that popped after, and a click on it opened nothing.
- The summary joined the rooms' names with ", " and marked a room "(mentions you)", all
  in the same text as the names: a room's name spelled those marks itself. Names are now
  quoted, « », and the mentions counted in the title, from the messages.
- A storm of mentions: a member in a few rooms who mentions the user in each, every
  window, took the one mention pop and the summary's four names, so a colleague's real
  mention never popped nor was named.

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
    notify = Signal(str, str, str, str, bool, str)  # as ``Controller.notify``
    unread_changed = Signal(int)
    current_changed = Signal(str)
    room_forgotten = Signal(str)  # as ``Controller``: left, or its storage removed

    def __init__(self) -> None:
        super().__init__()
        self.current = ""
        self.selected: list[str] = []
        self.gone: set[str] = set()

    def select_room(self, key: str) -> None:  # as ``Controller.select_room``
        if key == self.current or key in self.gone:
            return
        self.selected.append(key)
        self.current = key
        self.current_changed.emit(key)

    def forget(self, key: str) -> None:
        self.gone.add(key)
        self.room_forgotten.emit(key)

    def say(self, key: str, who: str, text: str, room: str, mention: bool = False) -> None:
        """A message by ``who`` in ``key`` (named ``room``) to notify."""
        self.notify.emit(key, f"{who} in {room}", text, room, mention, who)


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
            controller.say(f"s/room-{i % 300}", "Mallory", f"{i:08d}" * 38, f"Room {i}")

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
    # one message in each of 300 rooms, read in one round (by as many senders: one
    # sender pops once a window)
    for i in range(300):
        controller.say(f"s/room-{i}", f"Mallory {i}", "Urgent: see the pinned link", f"Room {i}")
    qtbot.wait(200)
    assert len(tray.messages) <= 5, f"{len(tray.messages)} desktop notifications at once"
    assert len(tray.messages) == BURST_SHOWN
    assert tray.messages[0] == ("Mallory 0 in Room 0", "Urgent: see the pinned link")

    notifier._window_over()  # the window ends: the other 297 rooms in one notification
    gathered = 300 - BURST_SHOWN
    assert tray.messages[BURST_SHOWN:] == [
        (
            f"{gathered} new messages in {gathered} rooms",
            f"«Room 299», «Room 298», «Room 297», «Room 296» and {gathered - 4} more",
        )
    ]
    tray.messageClicked.emit()  # a click on the summary opens the room it names first
    assert controller.selected == ["s/room-299"]

    # the burst goes on: nothing else pops in the next window but its summary
    for i in range(300, 320):
        controller.say(f"s/room-{i}", f"Mallory {i}", "again", f"Room {i}")
    assert len(tray.messages) == BURST_SHOWN + 1
    notifier._window_over()
    assert tray.messages[-1][0] == "20 new messages in 20 rooms"
    notifier._window_over()  # a quiet window: the next message pops at once again
    controller.say("s/room-0", "Bob", "Lunch?", "Room 0")
    assert tray.messages[-1] == ("Bob in Room 0", "Lunch?")


def test_a_room_pops_once_a_window_and_a_mention_gets_its_own(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for n in range(5):
        controller.say("s/general", "Bob", f"line {n}", "General")
    assert tray.messages == [("Bob in General", "line 0")]
    controller.say("s/a", "Mallory", "a", "A")
    controller.say("s/b", "Mallory", "b", "B")  # a sender pops once a window: gathered
    controller.say("s/c", "Dave", "c", "C")
    controller.say("s/d", "Erin", "d", "D")  # the limit: gathered
    assert [t for t, _ in tray.messages] == ["Bob in General", "Mallory in A", "Dave in C"]
    # a mention still pops, once
    controller.say("s/payroll", "Carol", "@alice sign this", "Payroll", True)
    controller.say("s/ops", "Carol", "@alice and this", "Ops", True)
    assert tray.messages[-1] == ("Carol in Payroll", "@alice sign this")
    assert len(tray.messages) == BURST_SHOWN + 1
    tray.messageClicked.emit()
    assert controller.selected == ["s/payroll"]
    controller.current = ""

    notifier._window_over()
    # the rooms that mention the user come first in the summary, and a click opens them
    assert tray.messages[-1] == (
        "7 new messages in 4 rooms, 1 mentioning you in 1 room",
        "«Ops» (mentions you), «D», «B», «General»",
    )
    tray.messageClicked.emit()
    assert controller.selected[-1] == "s/ops"


def test_a_room_read_meanwhile_is_not_in_the_summary(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for i in range(BURST_SHOWN + 2):
        controller.say(f"s/r{i}", f"Bob {i}", "hi", f"R{i}")
    controller.select_room(f"s/r{BURST_SHOWN}")  # the person opens one of the gathered
    notifier._window_over()
    assert tray.messages[-1] == (f"1 new message in «R{BURST_SHOWN + 1}»", "")
    notifier._window_over()
    notifier._window_over()  # nothing gathered: nothing pops
    assert len(tray.messages) == BURST_SHOWN + 1


def test_the_summary_carries_no_markup_and_keeps_look_alike_marks(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for i in range(BURST_SHOWN):
        controller.say(f"s/r{i}", f"Bob {i}", "hi", f"R{i}")
    # a room named with markup and a bidi override, and one whose name imitates another
    # (the list marks it, and the mark comes with the name)
    bait = "<b>Pay</b>roll &#x202e; \u202egnp.exe"
    controller.say("s/bait", "Mallory", "x", bait)
    controller.say("s/fake", "Mallory", "y", "⚠ General (fake-general)")
    notifier._window_over()
    title, text = tray.messages[-1]
    assert title == "2 new messages in 2 rooms"
    assert "<" not in text and ">" not in text and "&" not in text and "\u202e" not in text
    assert "‹b›Pay‹/b›roll" in text and "＆#x202e;" in text
    assert text.startswith("«⚠ General (fake-general)», ")


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


def test_a_room_left_meanwhile_is_not_in_the_summary(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for i in range(BURST_SHOWN):
        controller.say(f"s/r{i}", f"Bob {i}", "hi", f"R{i}")
    controller.say("s/general", "Bob", "hi", "General")
    for n in range(3):  # a spammer's room: the person leaves it
        controller.say("s/secret", "Mallory", f"buy {n}", "Spam")
    controller.forget("s/secret")
    notifier._window_over()
    title, text = tray.messages[-1]
    assert "Spam" not in title + text, (title, text)  # was: "4 new messages in 2 rooms"
    assert title == "1 new message in «General»"
    tray.messageClicked.emit()  # the summary's click opens a room that is there
    assert controller.selected == ["s/general"], controller.selected


def test_a_summary_whose_first_room_is_gone_opens_the_next_one(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for i in range(BURST_SHOWN):
        controller.say(f"s/r{i}", f"Bob {i}", "hi", f"R{i}")
    controller.say("s/general", "Bob", "hi", "General")
    controller.say("s/spam", "Mallory", "buy", "Spam")
    notifier._window_over()
    assert tray.messages[-1] == ("2 new messages in 2 rooms", "«Spam», «General»")
    controller.forget("s/spam")  # after the summary popped: its click opens the next
    tray.messageClicked.emit()
    assert controller.selected == ["s/general"]
    controller.forget("s/general")
    controller.current = ""
    tray.messageClicked.emit()  # none of its rooms is left: it opens none, and no error
    assert controller.selected == ["s/general"] and notifier.last_room == ""


def test_a_room_name_cannot_say_it_mentions_the_user(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for i in range(BURST_SHOWN):
        controller.say(f"s/r{i}", f"Bob {i}", "hi", f"R{i}")
    # no message mentions the user; a room's name spells the marks, and its own quotes
    controller.say("s/ads", "Mallory", "x", "Ads, Payroll (mentions you)")
    controller.say("s/general", "Bob", "y", "General")
    controller.say("s/q", "Mallory", "z", "Q», «Payroll» (mentions you), «X")
    notifier._window_over()
    title, text = tray.messages[-1]
    # whether a message mentions the user is counted in the title, from the messages
    assert title == "3 new messages in 3 rooms"
    # was "General, Ads, Payroll (mentions you)": three rooms, one mentioning; each name
    # is quoted, and a name cannot close its quote
    assert text == (
        '«Q", "Payroll" (mentions you), "X», «General», «Ads, Payroll (mentions you)»'
    ), text
    assert "» (mentions you)" not in text


def test_a_storm_of_mentions_does_not_hide_a_real_one(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    mallory = [f"s/m{i}" for i in range(6)]  # rooms a hostile member shares with the user
    for window in range(3):
        before = len(tray.messages)
        # each window: the member's lines in a few rooms, a mention of their own first,
        # then a colleague's real mention, then the member's mentions in their rooms
        for i in range(BURST_SHOWN):
            controller.say(mallory[i], "Mallory", "spam", f"M{i}")
        controller.say(mallory[5], "Mallory", "@alice look", "M5", True)
        controller.say("s/payroll", "Carol", "@alice sign today", "Payroll", True)
        for i in range(4):
            controller.say(mallory[i], "Mallory", "@alice look", f"M{i}", True)
        notifier._window_over()
        said = tray.messages[before:]
        popped, summary = said[:-1], said[-1]
        # the member pops a line and a mention in the first window, nothing once they
        # stormed
        assert sum(t.startswith("Mallory in") for t, _ in popped) == (2 if window == 0 else 0)
        if window == 0:  # the colleague's mention pops at once
            assert ("Carol in Payroll", "@alice sign today") in popped, said
            assert "Payroll" not in summary[1]
            assert summary[0] == "6 new messages in 4 rooms, 4 mentioning you in 4 rooms"
            continue
        # then, a mention from the same colleague as in the last window waits for the
        # summary, which names it first (the member mentioned the user in five rooms),
        # counts them all, and opens it
        assert summary == (
            "9 new messages in 6 rooms, 6 mentioning you in 6 rooms",
            "«Payroll» (mentions you), «M5» (mentions you), «M0» (mentions you), "
            "«M1» (mentions you) and 2 more",
        ), summary
        tray.messageClicked.emit()
        assert controller.selected[-1] == "s/payroll"
        controller.current = ""


def test_a_new_mention_pops_while_a_member_storms(qtbot: Any) -> None:
    notifier, controller, tray = _notifier(qtbot)
    for _window in range(2):  # a member mentions the user in six rooms every window
        for i in range(6):
            controller.say(f"s/m{i}", "Mallory", "@alice look", f"M{i}", True)
        notifier._window_over()
    # in the storm's third window, the first mention from a colleague pops at once:
    # the member's mentions, no news, wait for the summary
    for i in range(6):
        controller.say(f"s/m{i}", "Mallory", "@alice look", f"M{i}", True)
    controller.say("s/payroll", "Carol", "@alice sign today", "Payroll", True)
    assert tray.messages[-1] == ("Carol in Payroll", "@alice sign today")
    tray.messageClicked.emit()
    assert controller.selected == ["s/payroll"]
    assert not any(t.startswith("Mallory") for t, _ in tray.messages[1:])
