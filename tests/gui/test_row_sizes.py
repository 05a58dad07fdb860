"""Row heights are measured once per row, width and font (``MessageDelegate.row_size``):
switching back to a room lays all of its rows out again, and under a back-fill's load
that took the GUI thread 100-160 ms for a 300-row room. A cached height must follow every
change of what it depends on (``Roles.Layout``): the row above (grouping, day break), the
echo state, the width, the font. Real models, a real view and delegate, offscreen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QRect
from PySide6.QtWidgets import QListView, QStyleOptionViewItem
from test_models import ALICE, Room, _chatter, key_text

from bucket_chat_desktop.gui.models.timeline_model import Roles, TimelineModel
from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate


def _sizes(view: QListView, delegate: MessageDelegate, width: int) -> list[tuple[int, int]]:
    model = view.model()
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, width, 100)
    option.font = view.font()
    out = []
    for i in range(model.rowCount()):
        size = delegate.sizeHint(option, model.index(i, 0))
        out.append((size.width(), size.height()))
    return out


def test_cached_heights_follow_the_row_above_the_width_and_the_font(
    qtbot: Any, tmp_path: Path
) -> None:
    room = Room(tmp_path / "store")
    items = _chatter(room, 12).timeline  # three people, messages in runs per sender
    model = TimelineModel(key_text(ALICE))
    view = QListView()
    qtbot.addWidget(view)
    view.setModel(model)
    cached = MessageDelegate(view)
    grouped_at = next(
        i for i in range(1, len(items)) if items[i].event.sender_id == items[i - 1].event.sender_id
    )
    # The row that is grouped under the one above, first shown with nothing above it.
    model.set_timeline(items[grouped_at:], True)
    alone = _sizes(view, cached, 600)
    model.set_timeline(items, True)
    for width in (600, 320, 600):
        assert _sizes(view, cached, width) == _sizes(view, MessageDelegate(view), width)
    under = _sizes(view, cached, 600)
    assert under[grouped_at][1] < alone[0][1]  # it lost its header: the cache saw that
    assert model.index(grouped_at).data(Roles.Layout)[4] is True
    font = view.font()
    font.setPointSize(font.pointSize() + 6)
    view.setFont(font)
    assert _sizes(view, cached, 600) == _sizes(view, MessageDelegate(view), 600)
    assert _sizes(view, cached, 600) != under


def test_two_lines_claiming_one_event_id_are_each_laid_out_from_their_own_text(
    qtbot: Any, tmp_path: Path
) -> None:
    """A hostile writer can store a second line under an event id already shown: the
    body laid out (and so painted) for one row must never be the other row's."""
    room = Room(tmp_path / "store")
    items = _chatter(room, 2).timeline
    first = next(a for a in items if a.event.type == "m.room.message")
    long_body = "**forged** " + "a very long line of words " * 40
    twin = first._replace(
        event=first.event._replace(content={"msgtype": "m.text", "body": long_body}),
        line=first.line + 1000,
    )
    model = TimelineModel(key_text(ALICE))
    view = QListView()
    qtbot.addWidget(view)
    view.setModel(model)
    model.set_timeline([first, twin], True)
    assert model.index(0).data(Roles.EventId) == model.index(1).data(Roles.EventId)
    delegate = MessageDelegate(view)
    short, tall = _sizes(view, delegate, 400)
    assert tall[1] > short[1] + 40
    font = view.font()
    docs = [delegate._doc(model.index(i), 400, font).toPlainText() for i in (0, 1)]
    assert "forged" in docs[1] and "forged" not in docs[0]
