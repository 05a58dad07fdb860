"""Rows a hostile member can write, opened through the real app (``app.run``: controller,
models, delegates, members panel) from a real shared folder, and painted offscreen.

Each test plants the hostile events with the project's own signing and segment code (or
raw JSONL lines, for unsigned ones), opens the room the way a user does, grabs every row
of the timeline, the room list and the members panel, and checks that nothing failed to
paint (``safe.failures()`` stays empty: not even a swallowed exception) and that the row
says something clear. On the code before this fix every one of them crashed the process.
Screenshots are written to the test's tmp_path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from desk import Desk, preview_line, settings_for
from hostile import EVE, FAR, big_table, eve_writes, unsigned_line, write_raw
from PySide6.QtWidgets import QListView, QWidget
from test_app_flows import store  # noqa: F401 - fixtures

from bucket_chat_desktop import timestamps
from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.audit.findings_model import Column
from bucket_chat_desktop.gui.features import Features
from bucket_chat_desktop.gui.markdown import MAX_TABLE_CELLS, to_html
from bucket_chat_desktop.gui.models.rooms_model import RoomRoles
from bucket_chat_desktop.protocol.findings import Kind


@pytest.fixture(autouse=True)
def no_failures_before() -> None:
    safe._reported.clear()


def paint_every_row(view: QListView, tmp_path: Path, name: str) -> int:
    """Scroll to each row and grab the view: every row is sized and painted for real."""
    model = view.model()
    for i in range(model.rowCount()):
        view.scrollTo(model.index(i, 0))
        view.grab()
    view.grab().save(str(tmp_path / f"{name}.png"))
    return int(model.rowCount())


def shot(widget: QWidget, tmp_path: Path, name: str) -> None:
    widget.grab().save(str(tmp_path / f"{name}.png"))


def open_falcon(launch: Callable[..., Desk], store: Path) -> Desk:  # noqa: F811
    desk = launch(settings_for(store, ["falcon", "general"]))
    desk.wait_loaded("falcon")
    return desk


def test_a_message_dated_at_the_top_of_the_allowed_range_shows_a_label(
    qtbot: Any,
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    now = int(time.time() * 1000)
    eve_writes(
        store,
        "falcon",
        [(FAR, "from the far future"), (FAR - 1, "and back"), (now, "clock fixed")],
    )
    desk = open_falcon(launch, store)
    # the far rows are held back (PROTOCOL.md section 9), each named in the findings; the
    # row Eve wrote after them, her clock set right, is shown in its place, verified
    row = desk.wait_row("falcon", "clock fixed")
    assert row.timestamp_ms == now and row.trust == "verified"
    rows = desk.rows("falcon")
    assert not [r for r in rows if r.timestamp_ms >= FAR - 1], rows
    result = desk.controller.result(desk.key("falcon"))
    assert result is not None
    held = [f for f in result.findings if f.kind is Kind.DATED_AHEAD]
    assert len(held) == 2 and all("dated 287396-10-12 " in f.message for f in held)
    # the room's header says so where the counts are
    qtbot.waitUntil(lambda: "2 held back" in desk.window.room_subtitle.text())
    assert "not shown until then" in desk.window.room_subtitle.toolTip()
    assert rows[-1].body == "clock fixed"
    assert timestamps.clock(FAR) == "after the year 9999"
    assert timestamps.day_label(FAR) == "After the year 9999"

    window = desk.window
    window.resize(1100, 720)
    assert paint_every_row(window.timeline, tmp_path, "far-future-timeline") == len(rows)
    # a far date in the room list still paints (a clock that is right)
    item = desk.item("falcon")
    assert item.last_ts < FAR - 1 and preview_line(item) == "Eve: clock fixed"
    rooms = desk.controller.rooms
    rooms.update(desk.key("falcon"), last_ts=FAR)
    assert rooms.index(rooms.row_of(desk.key("falcon"))).data(RoomRoles.LastTs) == FAR
    assert timestamps.room_list_when(FAR) == "> 9999"
    paint_every_row(window.room_list, tmp_path, "far-future-room-list")
    # the members panel shows Eve's last-seen time: her last shown row's
    features = window.findChild(Features)
    window.members_button.click()
    qtbot.waitUntil(lambda: len(features.members_panel.cards) >= 2)
    eve = next(m for m in features.members_model.members if m.user_id == EVE)
    assert max(d.last_seen for d in eve.devices) == now
    shot(window, tmp_path, "far-future-window")
    # the audit window names them, with what to do
    window.audit_button.click()
    qtbot.waitUntil(lambda: features.audit_dialog is not None and features.audit_dialog.isVisible())
    dialog = features.audit_dialog
    assert dialog is not None
    shown = dialog.table.model()
    kinds = [str(shown.index(r, Column.KIND).data()) for r in range(shown.rowCount())]
    titles = [str(shown.index(r, Column.EXPLANATION).data()) for r in range(shown.rowCount())]
    assert kinds.count("dated-ahead") == 2 and "Dated in the future" in titles
    shot(dialog, tmp_path, "far-future-audit")
    dialog.close()
    assert safe.failures() == {}


def test_a_markdown_image_from_an_unsigned_writer_shows_as_a_link(
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    body = "look ![a cat *photo*](https://example.com/cat.png) here"
    write_raw(
        store,
        "falcon",
        [unsigned_line("falcon", "mallory@example.com", 1_796_300_000_000, body)],
        "mallory-0000",
    )
    eve_writes(store, "falcon", [(1_796_300_100_000, "![x](https://example.com/x.png)")])
    desk = open_falcon(launch, store)
    unsigned = desk.wait_row("falcon", body)
    assert unsigned.trust != "verified"
    desk.wait_row("falcon", "![x](https://example.com/x.png)")
    assert '<a href="https://example.com/cat.png">[image: a cat photo]</a>' in to_html(body)
    paint_every_row(desk.window.timeline, tmp_path, "image-timeline")
    shot(desk.window, tmp_path, "image-window")
    assert safe.failures() == {}


def test_huge_tables_are_shown_as_plain_text_with_a_note(
    launch: Callable[..., Desk],
    store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    many_cells = [big_table(rows=60, tag=str(k)) for k in range(2)]  # 480 cells, ~5 KB
    too_long = big_table()  # 3,200 cells, ~45 KB
    tables = [*many_cells, too_long]
    eve_writes(store, "falcon", [(1_796_300_000_000 + k, t) for k, t in enumerate(tables)])
    desk = open_falcon(launch, store)
    for table in tables:
        desk.wait_row("falcon", table)
        assert "<table" not in to_html(table)
    for table in many_cells:
        assert f"tables have 488 cells (at most {MAX_TABLE_CELLS:,} are formatted)" in to_html(
            table
        )
    assert f"too long to format ({len(too_long):,} characters)" in to_html(too_long)
    assert "more characters not shown here]" in to_html(too_long)
    small = big_table(rows=3, cols=3)
    assert "<table>" in to_html(small)  # a chat-sized table is still a table
    view = desk.window.timeline
    paint_every_row(view, tmp_path, "tables-timeline")
    desk.window.resize(800, 600)
    paint_every_row(view, tmp_path, "tables-timeline-narrow")
    assert safe.failures() == {}
