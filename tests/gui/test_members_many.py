"""Members in a room of thousands (red team rt80, finding 1): each id its own valid
Ed25519 key signing its own chain (a join, then a message), as a hostile member makes
them cheaply.

The panel built one widget card (a dozen widgets and two painted pixmaps) for every
member when Members opened, and all of them again whenever one member came or went:
5,000 members took 34.5 s and 2.6 GB on the GUI thread, and each newcomer 35 s more. It
now builds cards only for the rows in view (and a few past each edge), and a member who
comes or goes changes their own row.

Counted, not timed: cards built (``MemberCard.__init__``), rows painted (the
delegate's ``paint_row``, called from C++ through ``paint``: seen by ``sys.setprofile``)
and rows asked their height (``MembersPanel.row_height``, which Qt asks through the
delegate's ``sizeHint``: seen the same way).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from nacl.signing import SigningKey
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from bucket_chat_desktop.gui.models.members_model import MembersModel
from bucket_chat_desktop.gui.widgets import members_panel as panel_module
from bucket_chat_desktop.gui.widgets.members_panel import CARDS_AHEAD, MembersPanel
from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE
from bucket_chat_desktop.protocol.room_state import RoomState, Roster
from bucket_chat_desktop.protocol.segment import encode_segment, path_for
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "falcon"
T0 = 1_764_000_000_000
MEMBERS = 5_000
_n = itertools.count(1)


def _uuid() -> str:
    n = next(_n)
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def _key(i: int) -> SigningKey:
    return SigningKey((i + 1000).to_bytes(4, "big") * 8)


def _member_events(i: int, sender: str, name: str, at: int) -> list[Any]:
    """One member: its own key, a join naming it, then a message chained to the join."""
    key = _key(i)
    join = build_event(
        room_id=ROOM,
        sender_id=sender,
        event_type=MEMBER,
        content={"membership": "join", "displayname": name},
        timestamp_ms=at,
        unique=_uuid(),
        prev_event_hash=None,
        signing_key=key,
    )
    say = build_event(
        room_id=ROOM,
        sender_id=sender,
        event_type=MESSAGE,
        content={"msgtype": "m.text", "body": f"hello {i}"},
        timestamp_ms=at + 1,
        unique=_uuid(),
        prev_event_hash=join.hash,
        signing_key=key,
    )
    return [join, say]


def _leave(i: int, sender: str, after: Any) -> Any:
    """Member ``i`` leaves, chained to their last event ``after``."""
    return build_event(
        room_id=ROOM,
        sender_id=sender,
        event_type=MEMBER,
        content={"membership": "leave"},
        timestamp_ms=after.timestamp_ms + 1,
        unique=_uuid(),
        prev_event_hash=after.hash,
        signing_key=_key(i),
    )


def _message(i: int, sender: str, after: Any, body: str) -> Any:
    """Member ``i`` writes ``body``, chained to their last event ``after``."""
    return build_event(
        room_id=ROOM,
        sender_id=sender,
        event_type=MESSAGE,
        content={"msgtype": "m.text", "body": body},
        timestamp_ms=after.timestamp_ms + 60_000,
        unique=_uuid(),
        prev_event_hash=after.hash,
        signing_key=_key(i),
    )


@dataclass
class Room:
    ledger: RoomLedger
    state: RoomState
    last: dict[str, Any] = field(default_factory=dict)  # sender -> their last event

    def roster(self) -> Roster:
        return self.state.roster()

    def add(self, events: list[Any], name: str) -> Roster:
        self.ledger.add_segment(path_for(events, name), encode_segment(events))
        self.last.update((e.sender_id, e) for e in events)
        self.state.add(self.ledger.audit().timeline)
        return self.state.roster()

    def says(self, sender: str, body: str) -> Roster:
        """Member ``sender`` (``user{i:06d}@example.com``) writes a message."""
        i = int(sender.removeprefix("user").split("@")[0])
        return self.add([_message(i, sender, self.last[sender], body)], f"says{next(_n)}")


def _make_room(members: int) -> Room:
    ledger = RoomLedger(ROOM)
    events: list[Any] = []
    last: dict[str, Any] = {}
    for i in range(members):
        sender = f"user{i:06d}@example.com"
        events += _member_events(i, sender, f"Member {i}", T0 + 2 * i)
        last[sender] = events[-1]
        if len(events) >= 1_000:
            ledger.add_segment(path_for(events, f"c{i}"), encode_segment(events))
            events = []
    if events:
        ledger.add_segment(path_for(events, "rest"), encode_segment(events))
    state = RoomState()
    state.add(ledger.audit().timeline)
    assert len(state.roster().members()) == members
    return Room(ledger, state, last)


@pytest.fixture(scope="module")
def room() -> Room:
    return _make_room(MEMBERS)


@pytest.fixture
def cards_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    init = panel_module.MemberCard.__init__

    def counted(self: Any, member: Any, *args: Any, **kwargs: Any) -> None:
        made.append(member.user_id)
        init(self, member, *args, **kwargs)

    monkeypatch.setattr(panel_module.MemberCard, "__init__", counted)
    return made


@pytest.fixture
def rows_painted() -> Iterator[list[int]]:
    """Rows the list's delegate painted (Qt calls ``paint`` from C++)."""
    painted: list[int] = []
    code = panel_module._CardDelegate.paint_row.__code__

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            painted.append(frame.f_locals["index"].row())

    sys.setprofile(profile)
    try:
        yield painted
    finally:
        sys.setprofile(None)


@pytest.fixture
def heights_asked() -> Iterator[list[int]]:
    """Rows the panel was asked the height of (by the list, through the delegate's
    ``sizeHint``, from C++; or by the panel itself)."""
    asked: list[int] = []
    code = MembersPanel.row_height.__code__

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            asked.append(frame.f_locals["row"])

    sys.setprofile(profile)
    try:
        yield asked
    finally:
        sys.setprofile(None)


def _panel(qtbot: Any, room: Room) -> tuple[MembersModel, MembersPanel]:
    model = MembersModel("me@example.com", "")
    panel = MembersPanel(model)
    qtbot.addWidget(panel)
    panel.resize(320, 700)
    panel.show()
    qtbot.waitExposed(panel)
    return model, panel


def _rows_in_view(panel: MembersPanel) -> list[int]:
    """Rows any part of which the list shows: from the row at the top of the view (a
    walk from the first row took most of a scrolling test's time at 5,000 members)."""
    view = panel.view
    height = view.viewport().height()
    start = next(
        (i.row() for y in range(0, 64, 4) if (i := view.indexAt(QPoint(20, y))).isValid()), 0
    )
    rows = []
    for row in range(max(0, start - 1), panel.model.rowCount()):
        rect = view.visualRect(panel.model.index(row))
        if rect.bottom() >= 0 and rect.top() < height:
            rows.append(row)
        elif rect.top() >= height:
            break
    return rows


def _cards_ready(panel: MembersPanel) -> bool:
    """Every row in view has its card, shown over its row."""
    built = {c.member.user_id: c for c in panel.cards}
    for row in _rows_in_view(panel):
        card = built.get(panel.model.member(row).user_id)
        if card is None or not card.isVisible():
            return False
        slot = card.parentWidget()
        if slot.geometry() != panel.view.visualRect(panel.model.index(row)):
            return False
    return True


def test_opening_members_of_a_room_of_5000_builds_only_the_cards_in_view(
    qtbot: Any, room: Room, cards_made: list[str], rows_painted: list[int]
) -> None:
    """Opening Members in a room of 5,000 built 5,000 cards (34.5 s, 2.6 GB). Now the
    cards of the rows in view, and a few past the edge; only rows in view are painted."""
    model, panel = _panel(qtbot, room)
    cards_made.clear()
    model.set_state(room.roster())
    qtbot.waitUntil(lambda: _cards_ready(panel))
    assert model.rowCount() == MEMBERS
    assert f"{MEMBERS}" in panel.title.text()  # the count is still said
    in_view = _rows_in_view(panel)
    assert 2 <= len(in_view) <= 6  # 700 px of cards about 190 px tall
    assert len(cards_made) <= len(in_view) + CARDS_AHEAD, cards_made
    assert len(set(cards_made)) == len(cards_made)  # none built twice
    rows_painted.clear()
    panel.grab()
    assert rows_painted and set(rows_painted) <= set(in_view)
    # each card is the member's, as it was: name, id, device, "Mark as verified…"
    card = panel.card(0)
    assert card.name_label.text() == "Member 0"
    assert card.id_label.text() == "user000000@example.com"
    assert len(card.device_rows) == 1 and card.device_rows[0].confirm_button is not None


def test_a_member_joining_or_leaving_builds_one_card_not_every_card(
    qtbot: Any, room: Room, cards_made: list[str]
) -> None:
    """With Members open, one newcomer rebuilt all 5,001 cards (35 s), so a member who
    joins and leaves over and over kept the window frozen. A newcomer listed first (by
    name) lands in the first row, in view: their card is built, the others stay; when
    they leave, at most the one row that comes into reach gets a card."""
    model, panel = _panel(qtbot, room)
    model.set_state(room.roster())
    qtbot.waitUntil(lambda: _cards_ready(panel))
    before = {c.member.user_id: c for c in panel.cards}
    cards_made.clear()

    newcomer = _member_events(MEMBERS, "newcomer@example.com", "Aaron Newcomer", T0 + 3 * MEMBERS)
    model.set_state(room.add(newcomer, "new"))
    assert model.rowCount() == MEMBERS + 1 and model.member(0).user_id == "newcomer@example.com"
    qtbot.waitUntil(lambda: _cards_ready(panel))
    assert cards_made == ["newcomer@example.com"]
    assert panel.cards[0].member.user_id == "newcomer@example.com"
    kept = [c for c in panel.cards[1:] if before.get(c.member.user_id) is c]
    assert len(kept) >= len(_rows_in_view(panel)) - 1  # the same cards, moved down a row

    cards_made.clear()
    leaves = _leave(MEMBERS, "newcomer@example.com", newcomer[-1])
    model.set_state(room.add([leaves], "leave"))
    assert model.rowCount() == MEMBERS and model.member(0).user_id == "user000000@example.com"
    qtbot.waitUntil(lambda: _cards_ready(panel))
    assert len(cards_made) <= 1, cards_made  # at most the row that came into reach
    assert "newcomer@example.com" not in {c.member.user_id for c in panel.cards}


def test_keyboard_and_scrolling_reach_any_member_with_a_bounded_number_of_cards(
    qtbot: Any, room: Room, cards_made: list[str]
) -> None:
    """The list is navigated with the keyboard (End, Up, Home) and scrolled: the current
    member is selected, drawn with a ring, and has their card; cards far away are let
    go, so a long scroll holds a bounded number of them."""
    model, panel = _panel(qtbot, room)
    model.set_state(room.roster())
    qtbot.waitUntil(lambda: _cards_ready(panel))
    view = panel.view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Down)  # the first key makes the first member current
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.currentIndex().row() == 1
    qtbot.keyClick(view, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    assert view.currentIndex().row() == MEMBERS - 1
    assert view.selectionModel().isRowSelected(MEMBERS - 1)
    qtbot.waitUntil(lambda: _cards_ready(panel))
    assert panel.cards[-1].member == model.member(MEMBERS - 1)
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.currentIndex().row() == MEMBERS - 2
    qtbot.keyClick(view, Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)
    assert view.currentIndex().row() == 0
    qtbot.waitUntil(lambda: _cards_ready(panel))
    assert panel.cards[0].member == model.member(0)
    image = panel.view.viewport().grab().toImage()
    ring = image.pixelColor(QPoint(10, view.visualRect(model.index(0)).center().y()))
    assert ring.blue() > ring.red() + 60  # the accent's ring, left of the card
    cards_made.clear()
    bar = view.verticalScrollBar()
    for step in range(1, 41):
        bar.setValue(bar.maximum() * step // 40)
        qtbot.waitUntil(lambda: _cards_ready(panel))
    assert len(panel.cards) <= 2 * panel_module.CARDS_KEPT + 10
    assert len(cards_made) <= 40 * (len(_rows_in_view(panel)) + 1 + 2 * CARDS_AHEAD)
    QApplication.processEvents()


def test_a_message_asks_no_row_its_height_but_the_few_near_the_view(
    qtbot: Any, room: Room, cards_made: list[str], heights_asked: list[int]
) -> None:
    """Each message changes its sender's row (their last message's time). The list laid
    out every row again for it, asking each of the 5,000 members their height in Python:
    5,037 calls, 45-50 ms a message with Members open. Now the sender's card is made
    again and only the rows near the view are asked; the others are laid out again only
    if that card's height changed."""
    model, panel = _panel(qtbot, room)
    model.set_state(room.roster())
    qtbot.waitUntil(lambda: _cards_ready(panel))
    sender = model.member(1)
    assert sender.user_id in {c.member.user_id for c in panel.cards}
    roster = room.says(sender.user_id, "a message")
    QApplication.processEvents()
    cards_made.clear()
    heights_asked.clear()

    model.set_state(roster)
    assert model.member(1) != sender  # their row changed (last seen)
    QApplication.processEvents()  # the panel's own pass over the rows near the view
    asked = len(heights_asked)
    qtbot.waitUntil(lambda: _cards_ready(panel))
    assert cards_made == [sender.user_id]
    assert panel.card(1).member is model.member(1)
    # each row near the view is asked a few times (``visualRect`` asks too), no other
    near = len(_rows_in_view(panel)) + 2 * CARDS_AHEAD
    assert asked <= 3 * near + 3, asked
    assert set(heights_asked) <= set(range(near + 1))


def test_a_message_while_members_is_closed_asks_no_height_and_builds_no_card(
    qtbot: Any, room: Room, cards_made: list[str], heights_asked: list[int]
) -> None:
    """With Members closed, a message from a member whose card was still held made the
    card again and laid out all 5,000 rows (29 ms a message). Now the card is let go
    and made when Members opens again, showing the member as they are then."""
    model, panel = _panel(qtbot, room)
    model.set_state(room.roster())
    qtbot.waitUntil(lambda: _cards_ready(panel))
    sender = model.member(2)
    assert sender.user_id in {c.member.user_id for c in panel.cards}
    panel.hide()
    roster = room.says(sender.user_id, "while closed")
    QApplication.processEvents()
    cards_made.clear()
    heights_asked.clear()

    model.set_state(roster)
    assert model.member(2) != sender
    QApplication.processEvents()
    assert heights_asked == [] and cards_made == []
    assert sender.user_id not in {c.member.user_id for c in panel.cards}

    panel.show()
    qtbot.waitUntil(lambda: _cards_ready(panel))
    assert cards_made == [sender.user_id]
    assert panel.card(2).member is model.member(2)


def test_the_measured_heights_are_let_go_with_the_members_who_leave(qtbot: Any) -> None:
    """The panel noted the member and height of every card it ever built, in every room
    (one model serves them all), and kept them: those of members who leave, or of a
    room left, are let go."""
    small = _make_room(60)
    model, panel = _panel(qtbot, small)
    model.set_state(small.roster())
    qtbot.waitUntil(lambda: _cards_ready(panel))
    bar = panel.view.verticalScrollBar()
    for step in range(1, 21):
        bar.setValue(bar.maximum() * step // 20)
        qtbot.waitUntil(lambda: _cards_ready(panel))
    assert len(panel._measured) == 60  # every card was built once, scrolling by

    leaving = [
        _leave(i, f"user{i:06d}@example.com", small.last[f"user{i:06d}@example.com"])
        for i in range(50)
    ]
    model.set_state(small.add(leaving, "leave"))
    assert model.rowCount() == 10
    qtbot.waitUntil(lambda: _cards_ready(panel))
    assert set(panel._measured) <= {m.user_id for m in model.members}

    model.beginResetModel()  # the model reset with fewer members (a reset names no rows)
    model._members = model._members[:3]
    model.endResetModel()
    qtbot.waitUntil(lambda: _cards_ready(panel))
    assert set(panel._measured) <= {m.user_id for m in model.members}

    model.set_state(None)  # another room, or none
    assert panel._measured == {}
