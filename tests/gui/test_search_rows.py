"""A search result's header line (room · sender (id) · date), painted by the real
delegate offscreen: whatever a hostile member puts in their display name, the real id
stays visible and in its place, and the date stays after it (red team, round 24).

Where each piece is drawn is found by painting the row twice with only that piece
changed: the columns that differ are the piece's."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QListView, QStyleOptionViewItem, QWidget

from bucket_chat_desktop.gui import safe
from bucket_chat_desktop.gui.widgets.search_panel import (
    CARD_WIDTH,
    ROW_H,
    SearchDelegate,
    SearchPanel,
    SearchResultsModel,
    ShownHit,
    tooltip_html,
)
from bucket_chat_desktop.index.search import SearchHit, make_snippet
from bucket_chat_desktop.protocol.audit import TrustState

T0 = 1_764_000_000_000
HEBREW = "\u05d7\u05d3\u05e8 \u05e9\u05dc\u05e0\u05d5 12"  # "our room 12"
HEBREW_2 = "\u05e9\u05dc\u05e0\u05d5 \u05d7\u05d3\u05e8 34"


def _hit(
    sender_id: str, timestamp_ms: int = T0, *, edited: bool = False, superseded: bool | None = None
) -> SearchHit:
    return SearchHit(
        "room",
        "e1",
        "e2" if edited else "e1",
        sender_id,
        timestamp_ms,
        TrustState.VERIFIED,
        "signature and chain check out",
        make_snippet("pay the invoice today", ("pay",)),
        "rooms/room/logs/x.jsonl",
        1,
        1,
        superseded=edited if superseded is None else superseded,
    )


def _paint(qtbot: Any, shown: ShownHit) -> QImage:
    model = SearchResultsModel()
    model.set_hits([shown])
    view = QListView()
    qtbot.addWidget(view)
    view.setModel(model)
    delegate = SearchDelegate(view)
    view.setItemDelegate(delegate)
    view.resize(CARD_WIDTH, 200)
    image = QImage(CARD_WIDTH, ROW_H, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    option = QStyleOptionViewItem()
    view.initViewItemOption(option)
    option.rect = QRect(0, 0, CARD_WIDTH, ROW_H)
    painter = QPainter(image)
    delegate.paint(painter, option, model.index(0, 0))
    painter.end()
    return image


def _columns(a: QImage, b: QImage) -> list[int]:
    """The columns of the header line (the top half) where ``a`` and ``b`` differ."""
    return [
        x
        for x in range(a.width())
        if any(a.pixel(x, y) != b.pixel(x, y) for y in range(ROW_H // 2))
    ]


def test_a_right_to_left_name_leaves_the_id_and_the_date_in_order(qtbot: Any) -> None:
    """A sender named in Hebrew made the whole header line a right-to-left one: it was
    drawn as "Room 2025-11-24 16:00 · (mallory1@example.com) 12 רדח ·", the date before
    the sender and the id before the name. Now: name, then id, then date."""
    safe._reported.clear()
    mallory, mallorz = "mallory1@example.com", "mallory2@example.com"  # digits: one width
    base = _paint(qtbot, ShownHit(_hit(mallory), "s/room", "Room", HEBREW))
    other_name = _paint(qtbot, ShownHit(_hit(mallory), "s/room", "Room", HEBREW_2))
    other_id = _paint(qtbot, ShownHit(_hit(mallorz), "s/room", "Room", HEBREW))
    later = _paint(qtbot, ShownHit(_hit(mallory, T0 + 3_600_000), "s/room", "Room", HEBREW))
    name_x, id_x, date_x = (_columns(base, o) for o in (other_name, other_id, later))
    assert name_x and id_x and date_x
    assert max(name_x) < min(id_x)
    assert max(id_x) < min(date_x)
    assert safe.failures() == {}


def test_a_long_name_cannot_push_the_id_out_of_the_result(qtbot: Any) -> None:
    """The header was one string cut in its middle to fit, and the cut kept as much of
    its end as of its start: a hit from an earlier version of an edited message ends
    in "· edited · an earlier version", and a long display name before the id left the
    id in the cut. The result named "Alice Anderson, Finance Director…" with no id to
    tell who wrote it. Now the id keeps its share of the line, as in the timeline's
    header, with its end (where an imitation differs)."""
    name = "Alice Anderson, Finance Director, CFO office, HQ"
    evil, evim = "mallory@evil.org", "mallory@evim.org"  # only the end differs
    base = _paint(qtbot, ShownHit(_hit(evil, edited=True), "s/room", "Room", name))
    other = _paint(qtbot, ShownHit(_hit(evim, edited=True), "s/room", "Room", name))
    assert _columns(base, other)  # the difference is drawn, not cut away


def test_an_earlier_version_is_said_however_long_the_sender(qtbot: Any) -> None:
    """A hit from a text a later edit replaced says "an earlier version": beside the
    trust state, never cut with the rest of the header line."""
    name = "Alice Anderson, Finance Director, CFO office, HQ"
    sender = "finance.director.office.headquarters@evil.example.org"
    earlier = _paint(qtbot, ShownHit(_hit(sender, edited=True), "s/room", "Room", name))
    latest = _paint(
        qtbot, ShownHit(_hit(sender, edited=True, superseded=False), "s/room", "Room", name)
    )
    assert _columns(earlier, latest)


def test_a_message_that_arrived_long_after_its_date_says_so_beside_its_trust(
    qtbot: Any,
) -> None:
    """Red team rt83: a result showed the date its sender chose and "Verified", though
    the message's row says it arrived weeks after that date. Now the header says
    "arrived late" beside the trust state, whatever the sender's name, and the tip
    has the row's whole sentence (escaped, as every piece of it)."""
    safe._reported.clear()
    name = "Alice Anderson, Finance Director, CFO office, HQ"
    sender = "finance.director.office.headquarters@evil.example.org"
    said = "Arrived 2026-12-07 16:42, dated 2026-11-08 16:43: sent or delivered long after its date"
    plain = ShownHit(_hit(sender), "s/room", "Room", name)
    late = ShownHit(_hit(sender), "s/room", "Room", name, late=said)
    drawn = _paint(qtbot, late)
    changed = _columns(_paint(qtbot, plain), drawn)
    assert changed and max(changed) > CARD_WIDTH // 2  # on the right, by the trust state
    # the sender's id keeps its share of the line (its end, where an imitation differs)
    other = ShownHit(_hit(sender.replace(".org", ".orc")), "s/room", "Room", name, late=said)
    assert _columns(drawn, _paint(qtbot, other))
    assert f"⚠ {said}" in tooltip_html(late)
    assert "long after" not in tooltip_html(plain)
    assert safe.failures() == {}


def _panel_searching(qtbot: Any, text: str) -> tuple[QWidget, SearchPanel, list[tuple[str, str]]]:
    """An open panel searching everywhere for ``text`` (its answer is the test's to
    give) on its window (kept by the caller: the panel goes with it), and the list of
    what it asked for when it wanted older results."""
    host = QWidget()
    qtbot.addWidget(host)
    host.resize(800, 600)
    host.show()
    panel = SearchPanel(host)
    asked: list[tuple[str, str]] = []
    panel.older_wanted.connect(lambda text, key: asked.append((text, key)))
    panel.open("Search all rooms", None)
    panel.field.setText(text)
    panel.timer.stop()
    return host, panel, asked


def test_a_search_whose_newest_matches_are_all_hidden_does_not_say_nothing_matches(
    qtbot: Any,
) -> None:
    """Red team (round 24): a search reads a few pages to make up for hidden hits
    (deleted messages, edits that do not apply); a member who wrote that many newer
    matches and deleted them made it end with none shown, and the panel said "No
    messages found." of a word older messages hold. It now says so, and reads on by
    itself: nothing in the list means its end is in view."""
    _host, panel, asked = _panel_searching(qtbot, "invoice")
    panel.show_results("invoice", "", [], True, [])  # none shown, older pages unread
    assert "No messages found" not in panel.status.text()
    assert panel.status.text().startswith("No messages shown yet: the newest matches are")
    assert panel.status.text().endswith("searching older messages…")
    assert asked == [("invoice", "")]  # once, until answered
    panel.show_results("invoice", "", [], True, [], older=True)  # the next pages hid theirs too
    assert asked == [("invoice", "")] * 2
    panel.show_results("invoice", "", [], False, [], older=True)  # nothing matches at all
    assert panel.status.text() == "No messages found."
    assert len(asked) == 2


def test_a_panel_closed_while_older_results_were_read_reads_on_when_opened_again(
    qtbot: Any,
) -> None:
    """Red team: the panel reads on by itself while none of a page's rows are shown
    (hidden matches) or the list's end is in view, but only while it is open. Closed
    (Esc) while a page was read, its answer came in hidden and asked for nothing; opened
    again on the same search, it said "searching older messages…" for ever, and nothing
    was searching (no row to scroll to, no key to press brings it). Opening the panel
    again reads on as the list's end in view does."""
    _host, panel, asked = _panel_searching(qtbot, "invoice")
    panel.show_results("invoice", "", [], True, [])  # none shown: reads on by itself
    assert asked == [("invoice", "")]
    panel.hide()  # Esc while the next page is read
    panel.show_results("invoice", "", [], True, [], older=True)  # it hid its matches too
    assert asked == [("invoice", "")]  # nothing asked for a closed panel
    panel.open("Search all rooms", None)  # the same search again
    assert panel.status.text().endswith("searching older messages…")
    assert asked == [("invoice", "")] * 2  # and it does
