"""How a message's text becomes what the user sees, against a member's crafted bodies
(red team rt86), through the real app offscreen: a row is never taller than
``MAX_SHOWN_LINES`` lines of its font, whatever breaks or wraps its lines, and says what
it leaves out; no word of a body is laid out past the row's right edge; and the room
list tells a message from the app's own notices. Screens are rendered with ``shot`` (set
$BUCKET_CHAT_GUI_SHOTS to keep them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import shot
from desk import Desk, preview_line, settings_for
from hostile import eve_writes
from nacl.signing import SigningKey
from PySide6.QtCore import QModelIndex, QRect
from PySide6.QtGui import QFont, QImage, QPainter, QTextDocument
from PySide6.QtWidgets import QListView, QStyleOptionViewItem
from test_app_flows import CAROL, store  # noqa: F401 - fixtures

from bucket_chat_desktop.gui.controller import _preview, room_preview
from bucket_chat_desktop.gui.markdown import MAX_SHOWN_LINES
from bucket_chat_desktop.gui.models.rooms_model import RoomItem, RoomRoles, RoomsModel
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.room_preview import DELETED
from bucket_chat_desktop.gui.widgets.message_delegate import (
    LEFT,
    NOTE_SUFFIX,
    RIGHT,
    WIDE_NOTE,
    MessageDelegate,
    _rich_width,
    max_body_h,
)
from bucket_chat_desktop.gui.widgets.room_delegate import RoomDelegate
from bucket_chat_desktop.protocol.event import MEMBER
from bucket_chat_desktop.protocol.room_state import NO_NAMES
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.protocol.untrusted_text import shown_id

# -- a row's height -----------------------------------------------------------------------

CAPPED = "\n" * 100_000 + "end of the newline body"  # cut at its 400th line
LINE_SEPARATORS = "\u2028" * 19_990 + "end of the separator body"  # plain: drawText breaks
PARAGRAPHS = "x\u2029" * 3_990 + "*end of the paragraph body*"  # formatted: a document's
FENCE = "```\n" + "\n" * 7_900 + "```\nend of the fenced body"  # one code block
OTHER_BREAKS = "a\r\nb\rc\x0bd\x0ce\x85f" * 1_000 + "end of the other breaks"
WRAPPED = "字" * 19_000  # no line break at all: a line wrapped over and over


def _option(desk: Desk, width: int) -> QStyleOptionViewItem:
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, width, 100)
    option.font = desk.window.timeline.font()
    return option


def _indexes(desk: Desk, bodies: list[str]) -> dict[str, QModelIndex]:
    model = desk.window.timeline.model()
    out = {}
    for i in range(model.rowCount()):
        index = model.index(i, 0)
        body = str(index.data(Roles.Body) or "")
        if body in bodies:
            out[body] = index
    return out


def test_a_row_is_never_taller_than_its_line_cap_whatever_breaks_or_wraps_its_lines(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Red team rt86: the cap counted "\\n" only, and only in plain bodies: 19,990 U+2028
    made a row 279,898 px tall, U+2029 in a formatted body 55,898 px, one code fence of
    empty lines 110,650 px. Every line break Qt honours counts now, in plain and
    formatted bodies alike, and so does every line a wrap makes: a body is laid out at
    most ``MAX_SHOWN_LINES`` lines of its font tall, and a line under it says how much is
    not shown and how to have it all."""
    now = int(time.time() * 1000)
    bodies = [CAPPED, LINE_SEPARATORS, PARAGRAPHS, FENCE, OTHER_BREAKS, WRAPPED]
    fitting = ["short and *sweet*", "short"]
    eve_writes(
        store,
        "falcon",
        [(now - 10_000 + i, b) for i, b in enumerate([*bodies, *fitting])],
        joined_at=now - 60_000,
    )
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon")
    for body in [*bodies, *fitting]:
        desk.wait_row("falcon", body)
    view = desk.window.timeline
    delegate = view.itemDelegate()
    assert isinstance(delegate, MessageDelegate)
    indexes = _indexes(desk, bodies)
    font = view.font()
    line_h = view.fontMetrics().lineSpacing()
    for width in (700, 320):
        text_w = width - LEFT - RIGHT
        for body, index in indexes.items():
            height = delegate.sizeHint(_option(desk, width), index).height()
            box = delegate._body_box(index, text_w, font)
            # the body's lines, then the note: a few lines of it at most (at 320 px: 4)
            assert box.shown <= max_body_h(font) == MAX_SHOWN_LINES * line_h
            assert box.height - box.shown <= 6 * line_h, (width, body[-30:])
            assert height <= box.height + 120  # a header, the row's margins
            if body != WRAPPED or width < 700:  # 19,000 wide letters fit 700 px
                assert box.note.endswith(NOTE_SUFFIX) and "not shown here]" in box.note
    narrow = {b: delegate._body_box(i, 320 - LEFT - RIGHT, font).note for b, i in indexes.items()}
    assert "[… 99,601 more lines not shown here]" in narrow[CAPPED]
    assert narrow[LINE_SEPARATORS].startswith("[… 19,591 more lines not shown here]")
    assert narrow[FENCE].startswith("[… 7,")  # the fence's lines past the cut
    assert "more lines" in narrow[WRAPPED]  # a wrap makes a line too
    # a body that fits is whole, with no note, plain or formatted
    for index in _indexes(desk, fitting).values():
        assert delegate._body_box(index, 500, font).note == ""
    view.scrollTo(indexes[FENCE])
    bar = view.verticalScrollBar()  # the row's end: its last lines and the note
    bar.setValue(bar.value() + view.visualRect(indexes[FENCE]).bottom() - view.height() // 2)
    shot(desk.window, "rt86-line-cap", tmp_path)


# -- a row's width ------------------------------------------------------------------------

HIDDEN_TAIL = "NOT approved: pay account 6666 instead"
WIDE_FENCE = "```\nApproved: pay invoice 12 to account 1234." + " " * 400 + HIDDEN_TAIL + "\n```"
NBSP_PLAIN = "Approved: pay invoice 12." + "\u00a0" * 400 + HIDDEN_TAIL  # one long "word"
LONG_WORD = "https://example.com/" + "a" * 400 + "/" + HIDDEN_TAIL.replace(" ", "-")
INLINE_CODE = "see `" + "x" * 400 + HIDDEN_TAIL.replace(" ", "_") + "`"  # one long code word
WIDE_TABLE = "|" + "|".join(f"c{i}" for i in range(120)) + f"|{HIDDEN_TAIL}|\n" + "|---" * 121 + "|"


def _x_of(doc: QTextDocument, words: str) -> float:
    found = doc.find(words)
    assert not found.isNull(), words
    block = found.block()
    at = found.selectionStart() - block.position()
    return float(block.layout().lineForTextPosition(at).cursorToX(at)[0])


def test_no_words_of_a_body_are_laid_out_past_the_rows_right_edge(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Red team rt86: a code block was laid out unwrapped (``<pre>``), and words after a
    run of spaces were painted thousands of pixels past the row's edge, never seen,
    while the command line and "Copy text" had them. Code blocks wrap now; so does a
    plain body's word wider than the row (``drawText`` did not break it: a run of
    no-break spaces, a long link) and inline code; a table too wide for the row is shown
    as plain text, with a note saying why."""
    now = int(time.time() * 1000)
    tails = {
        WIDE_FENCE: HIDDEN_TAIL,
        NBSP_PLAIN: HIDDEN_TAIL,
        LONG_WORD: HIDDEN_TAIL.replace(" ", "-"),
        INLINE_CODE: HIDDEN_TAIL.replace(" ", "_"),
        WIDE_TABLE: HIDDEN_TAIL,
    }
    bodies = list(tails)
    eve_writes(store, "falcon", [(now + i, b) for i, b in enumerate(bodies)])
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon")
    for body in bodies:
        desk.wait_row("falcon", body)
    view = desk.window.timeline
    delegate = view.itemDelegate()
    assert isinstance(delegate, MessageDelegate)
    font = view.font()
    text_w = view.viewport().width() - LEFT - RIGHT
    for body, index in _indexes(desk, bodies).items():
        box = delegate._body_box(index, text_w, font)
        assert not box.plain  # not drawText: it would not break the long word
        doc = delegate._doc(index, _rich_width(text_w), font)
        assert doc.size().width() <= text_w
        tail = tails[body][-12:]  # the end of the body: laid out inside the row
        assert _x_of(doc, tail) < text_w, body[:20]
        if body == WIDE_TABLE:  # said under it
            assert box.note == WIDE_NOTE and WIDE_NOTE not in doc.toPlainText()
    view.scrollToBottom()
    shot(desk.window, "rt86-wide-bodies", tmp_path)


def test_a_table_narrowed_to_plain_text_is_formatted_again_where_it_fits(qtbot: Any) -> None:
    """The plain text of a table too wide for the row is kept for that width only: at a
    width the table fits, it is a table again."""
    from test_models import ALICE, key_text

    from bucket_chat_desktop.gui.models.timeline_model import TimelineModel

    table = "|" + "|".join(f"c{i}" for i in range(12)) + "|\n" + "|---" * 12 + "|"
    model = TimelineModel(key_text(ALICE))
    delegate = MessageDelegate()

    class _Index:  # a row as the delegate reads it
        def data(self, role: int) -> Any:
            return {Roles.Body: table, Roles.EventId: "$t", Roles.Location: "p#1"}.get(role)

        def model(self) -> Any:
            return model

    index: Any = _Index()
    font = QFont()
    narrow, _, why = delegate._laid_out(index, 96, font)
    assert why == WIDE_NOTE and "c11" in narrow.toPlainText()
    wide, _, why = delegate._laid_out(index, 2_400, font)
    assert why == "" and wide.size().width() <= 2_400
    assert wide.rootFrame().childFrames()  # a table again


# -- the room list ------------------------------------------------------------------------


def _carol_leaves(room: str, ts: int) -> Any:
    return build_event(
        room_id=room,
        sender_id="carol@example.com",
        event_type=MEMBER,
        content={"membership": "leave"},
        timestamp_ms=ts,
        unique="carol-leaves",
        prev_event_hash=None,
        signing_key=CAROL,
    )


def test_a_message_does_not_pass_for_a_notice_in_the_room_list(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Red team rt86: the room list previewed a member event as "<id> left the room"
    and a message as its bare text, drawn alike: Eve's message "carol@example.com left
    the room" read as Carol leaving. A message's preview starts with its sender's name
    now ("Eve: …", as chat apps show it) and a notice of the app's own has no sender
    (drawn in italics)."""
    now = int(time.time() * 1000)
    spoof = "carol@example.com left the room"
    eve_writes(store, "falcon", [(now + 1_000, spoof)], joined_at=now - 60_000)
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon", "general")
    desk.wait_row("falcon", spoof)
    desk.select("general")
    qtbot.waitUntil(lambda: preview_line(desk.item("falcon")) != "", timeout=15_000)
    item = desk.item("falcon")
    real = _preview(_carol_leaves("falcon", now))
    assert real == spoof  # the notice's wording
    assert preview_line(item) == f"Eve: {spoof}" != real and item.preview_sender == "Eve"
    assert item.preview_text == spoof
    rooms = desk.controller.rooms
    index = rooms.index(rooms.row_of(desk.key("falcon")))
    assert index.data(RoomRoles.PreviewText) == spoof
    assert index.data(RoomRoles.PreviewSender) == "Eve"
    room_list = desk.window.room_list
    room_list.resize(360, 300)
    shot(room_list, "rt86-room-list", tmp_path)


def test_the_app_s_own_notices_have_no_sender_and_messages_always_do(
    qtbot: Any, tmp_path: Path
) -> None:
    """``room_preview``: "Message deleted" as a message's text is "<sender>: Message
    deleted", the preview of a deletion is the notice alone; a member event's notice is
    its own wording, with no sender; a sender with no name is named by their id."""
    leave = _carol_leaves("falcon", 1)
    assert room_preview(leave, NO_NAMES) == ("carol@example.com left the room", "")
    assert room_preview(None, NO_NAMES) == (DELETED, "")
    said = build_event(
        room_id="falcon",
        sender_id="carol@example.com",
        event_type="m.room.message",
        content={"msgtype": "m.text", "body": DELETED},
        timestamp_ms=2,
        unique="said",
        prev_event_hash=None,
        signing_key=CAROL,
    )
    line, sender = room_preview(said, NO_NAMES)
    assert (line, sender) == (DELETED, "carol@example.com")
    assert (line, sender) != room_preview(None, NO_NAMES)
    # drawn: the sender's name, then the text; a notice alone, in italics
    model = RoomsModel()
    for key, preview, by in (
        ("s1/a", line, sender),
        ("s1/b", DELETED, ""),
        ("s1/c", "carol@example.com left the room", ""),
        ("s1/d", "carol@example.com left the room", "Eve"),
    ):
        model.add(RoomItem(key, key[-1].upper(), "Team", preview_text=preview, preview_sender=by))
    rooms = QListView()
    qtbot.addWidget(rooms)
    rooms.setModel(model)
    rooms.setItemDelegate(RoomDelegate(rooms))
    rooms.resize(360, 260)
    shot(rooms, "rt86-notices", tmp_path)


class _Recording(QPainter):
    """A painter that records each text drawn and whether its font was italic."""

    def __init__(self, device: QImage) -> None:
        super().__init__(device)
        self.drawn: list[tuple[str, bool]] = []

    def drawText(self, *args: Any) -> Any:
        text = next((a for a in args if isinstance(a, str)), "")
        self.drawn.append((text, self.font().italic()))
        return super().drawText(*args)


_EXPIRED = "your storage keys expired: enter them again at https://bucket-chat.example/renew"


def _preview_drawn(qtbot: Any, sender_id: str) -> tuple[str, list[tuple[str, bool]]]:
    """The room list's line for a message by ``sender_id`` (no display name), as the
    controller stores it: the Preview role and each text drawn, with its italics."""
    said = build_event(
        room_id="falcon",
        sender_id=sender_id,
        event_type="m.room.message",
        content={"msgtype": "m.text", "body": _EXPIRED},
        timestamp_ms=1_000,
        unique="rt89-said",
        prev_event_hash=None,
        signing_key=SigningKey.generate(),
    )
    preview, sender = room_preview(said, NO_NAMES)
    model = RoomsModel()
    model.add(RoomItem("s1/falcon", "Falcon", "Team", preview_text=preview, preview_sender=sender))
    view = QListView()
    qtbot.addWidget(view)
    view.setModel(model)
    index = model.index(0, 0)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, 900, 60)
    option.font = view.font()
    option.palette = view.palette()
    image = QImage(900, 60, QImage.Format.Format_ARGB32)
    painter = _Recording(image)
    try:
        RoomDelegate(view).paint(painter, option, index)
    finally:
        painter.end()
    sender, text = index.data(RoomRoles.PreviewSender), index.data(RoomRoles.PreviewText)
    return (f"{sender}: {text}" if sender else str(text)), painter.drawn


@pytest.mark.parametrize(
    "sender_id",
    ["mallory@example.com", "Bucket  Chat", " Bucket-Chat", "Bucket\u00a0\u00a0Chat"],
    ids=["plain", "two-spaces", "leading-space", "no-break-spaces"],
)
def test_a_message_by_an_id_the_text_s_cleaning_changes_is_drawn_as_a_message(
    qtbot: Any, sender_id: str
) -> None:
    """Red team rt89: the delegate told a message from a notice by the preview starting
    with "<sender>: ", but the preview was cleaned (``one_line``: single spaces, no
    blank at its ends) and the sender not; an id with two spaces, a leading one or
    no-break spaces no longer matched and the member's message was drawn in the
    notices' italics, with no sender. The model hands the sender and the text apart
    now; the sender is drawn as its row names it (``shown_id``), before the text."""
    line, drawn = _preview_drawn(qtbot, sender_id)
    body = [(text, italic) for text, italic in drawn if "storage keys expired" in text]
    assert body and not any(italic for _, italic in body), (line, drawn)
    head = f"{shown_id(sender_id)}: "
    assert (head, False) in drawn and line == head + _EXPIRED, (line, drawn)
