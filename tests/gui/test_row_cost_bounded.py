"""What laying out a room's rows costs the GUI thread, through the real app (controller,
window, engine, row warmer) on a real folder, offscreen: the attacks of red team rt103
(F1-F3), kept as they came, and the bounds on the delegate's document cache and on what a
repaint lays out.

Work is counted, never timed: a row measured is a new entry in the delegate's cache of
sizes (``MessageDelegate._sizes``), and measuring a row lays out the shown part of its
body (``markdown.shown_part``: up to ``MAX_SHOWN_CHARS`` characters), so the characters
of the bodies of the rows measured in one step are the text that step laid out. Seen on
this 2-core machine: a 20,000-character body (Devanagari conjuncts) costs 40-75 ms to
measure; 200 of them, 8-15 s of the GUI thread at a 20-pixel resize of the window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run  # tests/gui/conftest.py
from nacl.signing import SigningKey
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication
from test_switch_rows_measured import all_measured, measured_since, sizes

from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.markdown import MAX_SHOWN_CHARS, shown_part
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.widgets import message_delegate
from bucket_chat_desktop.gui.widgets.message_delegate import MessageDelegate
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ALICE = SigningKey(b"\x01" * 32)
BOB = SigningKey(b"\x02" * 32)
EVE = SigningKey(b"\x0e" * 32)
CREATED = "2025-09-14T12:00:45.000Z"
HOSTILE = 40  # Eve's long messages in her room
# Devanagari conjuncts: each "क्ष" is one shaped cluster of three characters, among the
# costliest text per character Qt lays out (a 20,000-character body: 40-75 ms)
LONG = "क्ष" * (MAX_SHOWN_CHARS // 3)
# What one step of the GUI thread may lay out: a few screens of text. One body at the
# cap is 20,000 characters; 40 of them are 800,000.
STEP_BUDGET = 3 * MAX_SHOWN_CHARS


def laid_out_since(before: dict[Any, Any], delegate: MessageDelegate, models: list[Any]) -> int:
    """The characters of the bodies of the rows measured since ``before``."""
    total = 0
    for model in models:
        for row in range(model.rowCount()):
            index = model.index(row)
            key = index.data(Roles.Layout)[:2]
            value = delegate._sizes.get(key)
            if value is not None and before.get(key) is not value:
                total += len(shown_part(str(index.data(Roles.Body) or "")).text)
    return total


async def build(store: Path, rooms: dict[str, list[str]]) -> None:
    storage = LocalStorage(store)
    for room, bodies in rooms.items():
        await RoomWriter(storage, room, "alice@example.com", ALICE).write_metadata(room, CREATED)
        writer = RoomWriter(storage, room, "eve@example.com", EVE)
        for body in bodies:
            await writer.send([Draft.text(body)])


def start(
    qtbot: Any, tmp_path: Path, rooms: dict[str, list[str]]
) -> tuple[Controller, MainWindow, list[str]]:
    store = tmp_path / "store"
    run(build(store, rooms), qtbot, timeout=120)
    entry = StorageSettings(str(store), "Team share", list(rooms))
    keys = [f"{entry.id}/{room}" for room in rooms]
    settings = Settings("alice@example.com", "Alice", [entry], last_room=keys[0])
    controller = Controller(settings, Identity("alice@example.com", ALICE))
    window = MainWindow(controller)
    qtbot.addWidget(window)
    window.resize(900, 600)
    window.show()
    controller.start()
    qtbot.waitUntil(lambda: controller.current == keys[0], timeout=30_000)
    for key, bodies in zip(keys, rooms.values(), strict=True):
        count = len(bodies)
        qtbot.waitUntil(
            lambda key=key, count=count: controller.timeline(key).rowCount() >= count,
            timeout=60_000,
        )
    qtbot.waitUntil(lambda: window.delegate.sizing() is not None, timeout=30_000)
    return controller, window, keys


@pytest.fixture
def app(qtbot: Any, qloop: Any, home: Path, tmp_path: Path) -> Iterator[Any]:
    made: list[Controller] = []

    def starter(rooms: dict[str, list[str]]) -> tuple[Controller, MainWindow, list[str]]:
        started = start(qtbot, tmp_path, rooms)
        made.append(started[0])
        return started

    try:
        yield starter
    finally:
        for controller in made:
            run(controller.shutdown(), qtbot, timeout=60)


def test_a_first_switch_from_a_room_too_short_to_scroll_measures_none_of_its_rows(
    qtbot: Any, app: Any
) -> None:
    """Ordinary rows, no hostile text. The room shown has two messages: its view has no
    scroll bar, and the rows of the other rooms are measured ahead at that width. A room
    with enough rows to scroll is laid out narrower (its scroll bar takes the room): at
    the switch every row it holds is measured again on the GUI thread, as before the
    warmer (60 here; 200 for a full page). Seen: 200 rows measured again, 290 ms."""
    controller, window, keys = app(
        {
            "short": ["hello", "hi"],
            "long": [f"message {i} " + "words to wrap " * (i % 5) for i in range(60)],
        }
    )
    delegate, warmer = window.delegate, window.row_warmer
    width = delegate.sizing()[0]  # type: ignore[index]
    qtbot.waitUntil(
        lambda: warmer.idle and all_measured(controller.timeline(keys[1]), delegate, width),
        timeout=30_000,
    )
    before = sizes(delegate)
    controller.select_room(keys[1])
    assert window.timeline.model() is controller.timeline(keys[1])
    window.timeline.doItemsLayout()
    window.timeline.viewport().repaint()
    QApplication.processEvents()
    assert measured_since(before, delegate) == 0


def test_a_resize_of_the_window_lays_out_a_bounded_amount_of_text_in_one_step(
    qtbot: Any, app: Any
) -> None:
    """Eve's room holds 40 messages of 20,000 characters each (within every limit: a
    line is 60 KB of 256). Shown, a resize of the window by a few pixels measures every
    row again in the view's one layout pass: 800,000 characters laid out in one step of
    the GUI thread (seen with 200 such rows: 8-15 s frozen at each step of a drag)."""
    controller, window, keys = app({"eve": [f"{i} {LONG}" for i in range(HOSTILE)]})
    delegate = window.delegate
    model = controller.timeline(keys[0])
    window.timeline.doItemsLayout()
    QApplication.processEvents()
    before = sizes(delegate)
    window.resize(window.width() - 30, window.height())
    window.timeline.doItemsLayout()  # the view's delayed layout after the resize, now
    assert laid_out_since(before, delegate, [model]) <= STEP_BUDGET


def test_one_turn_of_the_row_warmer_lays_out_a_bounded_amount_of_text(qtbot: Any, app: Any) -> None:
    """Eve's room is in the room list, not shown: its rows are measured ahead,
    ``ROWS_PER_TURN`` (8) a turn, whatever they hold. With her 20,000-character bodies a
    turn lays out 160,000 characters (seen: 320 ms a turn, 1.6 s under load, turn after
    turn while the room is measured): a click waits for the turn."""
    controller, window, keys = app(
        {"calm": ["hello", "hi"], "eve": [f"{i} {LONG}" for i in range(HOSTILE)]}
    )
    delegate, warmer = window.delegate, window.row_warmer
    model = controller.timeline(keys[1])
    qtbot.waitUntil(lambda: warmer.idle, timeout=60_000)  # Eve's rows measured ahead
    font = window.timeline.font()
    font.setPointSize(font.pointSize() + 2)
    window.timeline.setFont(font)
    window.timeline.doItemsLayout()  # the room shown, at the new font: now
    assert not warmer.idle  # Eve's rows are measured again, a few per turn
    before = sizes(delegate)
    warmer.turn()  # one turn of the loop's
    worst = laid_out_since(before, delegate, [model])
    assert worst <= MAX_SHOWN_CHARS + 100  # one of her bodies, and short rows


def doc_chars(delegate: MessageDelegate) -> int:
    """The characters of the laid-out bodies the delegate keeps (each document's part)."""
    return sum(len(held[1].text) for held in delegate._docs.values())


def test_the_laid_out_bodies_kept_are_bounded_by_their_characters(
    qtbot: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eve's long bodies, each kept as a document once laid out (about 20 bytes a
    character: 0.4 MB for one at the cap). Kept by count alone (3,000), eight rooms of
    them held over a gigabyte. With the bound lowered to three bodies, twelve of them
    laid out and painted leave at most three, and one more (the one being used)."""
    monkeypatch.setattr(message_delegate, "DOC_CACHE_CHARS", 3 * MAX_SHOWN_CHARS, raising=False)
    controller, window, keys = app({"eve": [f"{i} {LONG}" for i in range(12)]})
    delegate, view = window.delegate, window.timeline
    model = controller.timeline(keys[0])
    for row in range(model.rowCount()):  # every row laid out and painted
        view.scrollTo(model.index(row, 0))
        view.grab()
    assert delegate.laid_out >= 12 * MAX_SHOWN_CHARS  # they were laid out...
    assert doc_chars(delegate) <= 4 * MAX_SHOWN_CHARS + 100  # ...and not all kept
    assert delegate.cached_doc_chars() == doc_chars(delegate)


# A plain body (no Markdown) that fits a row: about 70 lines of words at the view's width.
PLAIN_LONG = " ".join(f"word{i}" for i in range(800))


def test_a_repaint_of_a_long_plain_body_lays_out_nothing_again(qtbot: Any, app: Any) -> None:
    """A plain body that fits was drawn with ``QPainter.drawText``, which shapes its
    text again at every paint: 20-65 ms for a hostile one, at each hover and each frame
    of a scroll. A long one is painted from its laid-out document, kept; short ones
    (at most ``DRAW_TEXT_CHARS``) are still drawn as text."""
    controller, window, keys = app({"calm": ["hello", PLAIN_LONG, "hi"]})
    delegate, view = window.delegate, window.timeline
    model = controller.timeline(keys[0])
    view.scrollTo(model.index(1, 0))
    view.grab()  # the first paint lays the body out
    before = delegate.laid_out
    for _ in range(3):
        view.grab()
    assert delegate.laid_out - before <= 3 * 100  # "hello" and "hi", never the long body


def settled(view: Any, model: Any, delegate: MessageDelegate) -> bool:
    """Every row of ``model`` measured at the view's width, and no layout pending."""
    sizing = delegate.sizing()
    return (
        sizing is not None
        and all_measured(model, delegate, sizing[0])
        and not view._relayout.isActive()
    )


def test_a_room_of_long_rows_laid_out_over_turns_stays_at_its_newest_row(
    qtbot: Any, app: Any
) -> None:
    """Eve's 40 long rows are measured over several turns (two bodies a step), the rows
    not yet measured taking an estimated height meanwhile: the view, at the bottom when
    the room opens, is at the bottom with her newest row in view once they are all
    measured, and after a resize measured again the same way."""
    controller, window, keys = app({"eve": [f"{i} {LONG}" for i in range(HOSTILE)]})
    view, delegate = window.timeline, window.delegate
    model = controller.timeline(keys[0])
    bar = view.verticalScrollBar()
    last = model.index(model.rowCount() - 1, 0)
    for step in ("opened", "resized"):
        if step == "resized":
            window.resize(window.width() - 30, window.height())
        qtbot.waitUntil(lambda: settled(view, model, delegate), timeout=120_000)
        QApplication.processEvents()
        assert bar.value() == bar.maximum(), step
        assert view.visualRect(last).intersects(view.viewport().rect()), step


def test_rows_measured_over_turns_keep_the_row_being_read_still(qtbot: Any, app: Any) -> None:
    """Read in the middle of Eve's room, then the window is narrowed: her rows (6,000
    characters each, under the cap of lines: narrower, they are taller) are measured
    again over several turns, each laying the rows out again; the row at the top of the
    view stays where that first layout put it."""
    body = "क्ष " * 1_500
    controller, window, keys = app({"eve": [f"{i} {body}" for i in range(HOSTILE)]})
    view, delegate = window.timeline, window.delegate
    model = controller.timeline(keys[0])
    qtbot.waitUntil(lambda: settled(view, model, delegate), timeout=120_000)
    view.scrollTo(model.index(25, 0), view.ScrollHint.PositionAtTop)
    QApplication.processEvents()
    window.resize(window.width() - 30, window.height())
    view.doItemsLayout()  # the first layout at the new width: two rows measured
    assert not all_measured(model, delegate, delegate.sizing()[0])  # type: ignore[index]
    top = view.indexAt(QPoint(4, 4))
    y = view.visualRect(top).top()
    qtbot.waitUntil(lambda: settled(view, model, delegate), timeout=120_000)
    QApplication.processEvents()
    assert view.indexAt(QPoint(4, 4)).row() == top.row()
    assert view.visualRect(model.index(top.row(), 0)).top() == y
