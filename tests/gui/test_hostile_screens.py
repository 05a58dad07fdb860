"""Red team of the screens (round 16): what a hostile member writes, painted through the
real model, delegate and view offscreen, must stay inside its own row and say whose it
is. Each test names what it looked like before its fix."""

from __future__ import annotations

from typing import Any

from nacl.signing import SigningKey
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QStyleOptionViewItem
from test_relations_view import ALICE, BOB, CAROL, Scene, model_of

from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.main_window import TimelineView
from bucket_chat_desktop.gui.widgets.message_delegate import BODY_SLACK, MessageDelegate

EVE = ("eve@example.com", SigningKey(b"\x0e" * 32), "Eve")
# "Zalgo" text: each letter carries 66 combining marks, which a font stacks above and
# below it, far past the line the letter is on.
MARKS = "\u0301\u0300\u0302\u0303\u0304\u0306\u0307\u0308\u030a\u030b\u030c" * 6


def _paint_alone(view: TimelineView, delegate: MessageDelegate, row: int) -> tuple[QImage, QRect]:
    """The row painted by the view's delegate into an image three times its height, in
    the middle third, on white: what it draws outside its own rectangle is visible."""
    index = view.model().index(row, 0)
    rect = view.visualRect(index)
    h = rect.height()
    image = QImage(rect.width(), 3 * h, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    option = QStyleOptionViewItem()
    view.initViewItemOption(option)
    option.rect = QRect(0, h, rect.width(), h)
    painter = QPainter(image)
    delegate.paint(painter, option, index)
    painter.end()
    return image, QRect(option.rect)


def _ink_outside(image: QImage, rect: QRect) -> int:
    white = QColor("white").rgba()
    return sum(
        1
        for y in range(image.height())
        if not rect.top() <= y <= rect.bottom()
        for x in range(image.width())
        if image.pixel(x, y) != white
    )


def _view_of(qtbot: Any, scene: Scene) -> tuple[TimelineView, MessageDelegate]:
    view = TimelineView()
    qtbot.addWidget(view)
    delegate = MessageDelegate(view)
    view.setItemDelegate(delegate)
    view.setModel(model_of(scene))
    view.resize(700, 900)
    view.show()
    qtbot.waitExposed(view)
    view.executeDelayedItemsLayout()
    return view, delegate


def _marked_room(marks: str) -> tuple[Scene, list[str]]:
    scene = Scene()
    for who in (ALICE, BOB, CAROL, EVE):
        scene.join(who)
    scene.msg(BOB, "the plan is on the wiki")
    text = "".join(ch + marks for ch in "HELLO")
    plain = scene.msg(EVE, "plain " + text)
    rich = scene.msg(EVE, "**rich** " + text)
    scene.msg(CAROL, "noted")
    return scene, [plain.event_id, rich.event_id]


def test_combining_marks_stay_inside_their_own_row(qtbot: Any) -> None:
    """Eve's "Zalgo" message (every letter under 66 combining marks): the marks were
    painted a hundred pixels above and below her row, over Bob's message above and
    Carol's below (both the plain-text and the Markdown path, the thread panel too), and
    over her own row's name, id and badge."""
    safe._reported.clear()
    scene, ids = _marked_room(MARKS)
    view, delegate = _view_of(qtbot, scene)
    calm_scene, calm_ids = _marked_room("")  # the same rows, the same times, no marks
    calm_view, calm_delegate = _view_of(qtbot, calm_scene)
    model = view.model()
    for event_id, calm_id in zip(ids, calm_ids, strict=True):
        row = model.locate(event_id)  # type: ignore[attr-defined]
        calm_row = calm_view.model().locate(calm_id)  # type: ignore[attr-defined]
        assert row is not None and calm_row is not None
        image, rect = _paint_alone(view, delegate, row)
        assert _ink_outside(image, rect) == 0
        # the header (name, id, time, badge) is painted as without the marks
        calm, calm_rect = _paint_alone(calm_view, calm_delegate, calm_row)
        body_y = delegate.regions(model.index(row, 0), rect, view.font()).body_y
        header = QRect(0, rect.top(), rect.width(), body_y - BODY_SLACK - rect.top())
        assert image.copy(header) == calm.copy(header)
    assert safe.failures() == {}
