"""Search in the real window: the controller, the engine and the index on a real folder.

Ctrl+F searches the open room as one types, Ctrl+Shift+F every room; results show the
room, the sender and the snippet with its matches; Enter or a click shows the message in its
room (an old one: the page around it is loaded), scrolled to and flashed; Esc closes. A body
with terminal escapes and bidi controls is drawn harmlessly."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import run, shot  # tests/gui/conftest.py
from nacl.signing import SigningKey
from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from bucket_chat_desktop.gui import search as search_feature
from bucket_chat_desktop.gui.controller import Controller
from bucket_chat_desktop.gui.main_window import MainWindow
from bucket_chat_desktop.gui.models.timeline_model import PAGE, Roles
from bucket_chat_desktop.gui.search import SearchFeature
from bucket_chat_desktop.gui.widgets.message_delegate import WARNING_MARK
from bucket_chat_desktop.gui.widgets.search_panel import (
    HitRoles,
    ShownHit,
    sender_text,
    tooltip_html,
)
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.protocol.relations import EDIT
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import SearchResults
from bucket_chat_desktop.sync.writer import Draft, RoomWriter
from bucket_chat_desktop.timestamps import THIS_EDIT, late_arrival, late_copy

GENERAL, RANDOM = "general", "random"
ALICE = SigningKey(b"\x01" * 32)
BOB = SigningKey(b"\x02" * 32)
CREATED = "2025-09-14T12:00:45.000Z"
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
OLD = PAGE * 3  # messages after the one searched for: it is far above the first page
LOOKALIKE = "b\u043eb@example.com<br><b>\u2713 Verified</b>"
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\u202eevil\u202c zebra\u2028crossing \x9b8m"


async def build(store: Path) -> None:
    storage = LocalStorage(store)
    for room, name in ((GENERAL, "General"), (RANDOM, "Random")):
        await RoomWriter(storage, room, "alice@example.com", ALICE).write_metadata(name, CREATED)
    bob = RoomWriter(storage, GENERAL, "bob@example.com", BOB, displayname="Bob")
    await bob.send([Draft.text("the quarterly budget is approved")])
    oldest = None
    for start in range(0, OLD, 100):
        _, sent = await bob.send([Draft.text(f"filler message {start + i}") for i in range(100)])
        oldest = oldest or sent[0]
        if start == 100:
            # The oldest filler is edited, 200 fillers on: its edit's text and its own
            # both match, pages apart (the newest page of the room holds neither).
            assert oldest is not None
            new_content = {"body": "filler, edited", "msgtype": "m.text"}
            await bob.send([Draft(EDIT, {"replaces": oldest.event_id, "new_content": new_content})])
    await bob.send([Draft.text("budget meeting moved to Friday")])
    other = RoomWriter(storage, RANDOM, "bob@example.com", BOB, displayname="Bob")
    await other.send([Draft.text("budget for the party"), Draft.text(HOSTILE)])
    # Another member under Bob's name, with an id that imitates his (a Cyrillic "о") and
    # markup in it: their key is their own, so the message is "verified".
    lookalike = RoomWriter(storage, RANDOM, LOOKALIKE, SigningKey(b"\x03" * 32), displayname="Bob")
    await lookalike.send([Draft.text("payroll now goes to my new account")])


@dataclass
class App:
    controller: Controller
    window: MainWindow
    feature: SearchFeature
    general: str
    random: str


@pytest.fixture
def app(qtbot: Any, qloop: Any, home: Path, tmp_path: Path) -> Iterator[App]:
    store = tmp_path / "store"
    run(build(store), qtbot, timeout=60)
    entry = StorageSettings(str(store), "Team share", [GENERAL, RANDOM])
    general, random = f"{entry.id}/{GENERAL}", f"{entry.id}/{RANDOM}"
    settings = Settings("alice@example.com", "Alice", [entry], last_room=general)
    controller = Controller(settings, Identity("alice@example.com", ALICE))
    window = MainWindow(controller)
    qtbot.addWidget(window)
    feature = search_feature.install(window, controller)
    window.resize(1000, 700)
    window.show()
    controller.start()
    try:
        qtbot.waitUntil(lambda: controller.current == general, timeout=15_000)
        qtbot.waitUntil(
            lambda: (
                controller.result(general) is not None and controller.result(random) is not None
            ),
            timeout=30_000,
        )
        qtbot.waitUntil(lambda: controller.timeline(general).complete, timeout=30_000)
        # The rooms' text is made searchable in the background once they are read.
        indexes = [a.index for a in controller.client._storages.values()]
        qtbot.waitUntil(lambda: not any(i.text_pending for i in indexes), timeout=15_000)
        yield App(controller, window, feature, general, random)
    finally:
        run(controller.shutdown(), qtbot)


def hits(app: App) -> list[ShownHit]:
    model = app.feature.panel.model
    return [model.index(r, 0).data(HitRoles.Hit) for r in range(model.rowCount())]


def type_and_wait(qtbot: Any, app: App, text: str, count: int) -> list[ShownHit]:
    panel = app.feature.panel
    panel.field.clear()
    QTest.keyClicks(panel.field, text)
    qtbot.waitUntil(lambda: panel.status.text() not in ("", "Searching…"), timeout=10_000)
    qtbot.waitUntil(lambda: len(hits(app)) == count, timeout=5_000)
    return hits(app)


def test_ctrl_f_searches_the_room_and_enter_shows_an_old_message_in_context(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    panel = app.feature.panel
    QTest.keyClick(app.window.composer, Qt.Key.Key_F, CTRL)  # from inside the composer
    assert panel.isVisible() and panel.field.hasFocus()
    assert panel.scope.text() == "Search in General"
    found = type_and_wait(qtbot, app, "budg", 2)  # a part of a word, as typed
    assert [h.hit.snippet.text for h in found] == [
        "budget meeting moved to Friday",
        "the quarterly budget is approved",
    ]
    assert all(h.room_key == app.general for h in found)  # not the other room's
    assert found[0].sender_name == "Bob" and found[0].room_name == "General"
    assert found[0].hit.snippet.marks == ((0, 4),)
    shot(app.window, "search-room", tmp_path)

    # Down to the old one, Enter: the room loads the page around it, shows and flashes it.
    model = app.controller.timeline(app.general)
    assert model.rowCount() <= PAGE + 10  # the old message is not loaded yet
    QTest.keyClick(panel.field, Qt.Key.Key_Down)
    QTest.keyClick(panel.field, Qt.Key.Key_Return)
    assert not panel.isVisible()
    view = app.window.timeline
    event_id = found[1].hit.event_id
    qtbot.waitUntil(lambda: view.flash_id == event_id, timeout=10_000)  # shown, flashed
    row = model.locate(event_id)
    assert row is not None
    assert model.index(row).data(Roles.Body) == "the quarterly budget is approved"
    qtbot.waitUntil(
        lambda: view.viewport().rect().intersects(view.visualRect(model.index(row))),
        timeout=2_000,
    )
    # It is far back: the page around it, not every row in between; newer rows below.
    assert model.rowCount() <= PAGE + 10 and model.can_fetch_newer()
    shot(app.window, "search-jumped", tmp_path)
    # Escape closes an open panel.
    QTest.keyClick(app.window, Qt.Key.Key_F, CTRL)
    QTest.keyClick(panel.field, Qt.Key.Key_Escape)
    assert not panel.isVisible()


def test_ctrl_shift_f_searches_everywhere_and_jumps_to_another_room(
    qtbot: Any, app: App, tmp_path: Path, qtmodeltester: Any
) -> None:
    panel = app.feature.panel
    QTest.keyClick(app.window, Qt.Key.Key_F, CTRL | SHIFT)
    assert panel.isVisible() and panel.scope.text() == "Search all rooms"
    found = type_and_wait(qtbot, app, "budget", 3)
    assert [h.room_key for h in found] == [app.random, app.general, app.general]  # newest first
    assert found[0].hit.snippet.text == "budget for the party"
    # Hostile text: found, drawn, nothing raw in what the list says about it.
    (evil,) = type_and_wait(qtbot, app, "zebra", 1)
    assert evil.room_key == app.random
    index = panel.model.index(0, 0)
    shown = str(index.data(Qt.ItemDataRole.DisplayRole))
    assert "\x1b" not in shown and "\u202e" not in shown and "\u2028" not in shown
    assert "zebra crossing" in shown
    panel.list.viewport().repaint()  # painted without a failure row
    shot(app.window, "search-hostile", tmp_path)
    qtmodeltester.check(panel.model)
    # A click on a result shows it, as Enter does.
    rect = panel.list.visualRect(index)
    QTest.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: app.controller.current == app.random, timeout=5_000)
    qtbot.waitUntil(lambda: app.window.timeline.flash_id == evil.hit.event_id, timeout=10_000)


def test_older_results_come_as_the_list_is_scrolled_to_its_end(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    """A search shows its newest results first (``SEARCH_RESULTS``); moving to the end
    of the list brings the next older ones under them, page after page, until every
    match is listed: each message once, newest first (the edited one by its edit's text,
    not again by its own older text on a later page)."""
    panel = app.feature.panel
    QTest.keyClick(app.window, Qt.Key.Key_F, CTRL)
    type_and_wait(qtbot, app, "filler", search_feature.SEARCH_RESULTS)
    assert panel.status.text() == (
        f"{search_feature.SEARCH_RESULTS} messages (the newest: scroll down for older ones)"
    )
    assert panel.field.hasFocus()
    shot(app.window, "search-more", tmp_path)
    # Down through the list, as a reader would: End, and the next page comes.
    pages = 1
    while panel.status.text().endswith("scroll down for older ones)") and pages < 30:
        shown = len(hits(app))
        panel.list.setFocus()
        QTest.keyClick(panel.list, Qt.Key.Key_End)
        assert panel.status.text() == f"{shown:,} messages (the newest) · searching older ones…"
        # the next page: more rows, or (its only match found again: the edited
        # message's own text) none, and nothing older
        qtbot.waitUntil(
            lambda n=shown: len(hits(app)) > n or panel.status.text() == f"{OLD:,} messages",
            timeout=10_000,
        )
        pages += 1
    listed = hits(app)
    ids = [h.hit.event_id for h in listed]
    assert len(ids) == len(set(ids)) == OLD  # every filler message once
    assert pages == OLD // search_feature.SEARCH_RESULTS + 1  # the last found nothing new
    assert panel.status.text() == f"{OLD:,} messages"
    times = [h.hit.timestamp_ms for h in listed]
    assert times == sorted(times, reverse=True)
    texts = [h.hit.snippet.text for h in listed]
    assert "filler, edited" in texts and "filler message 0" not in texts  # its edit's, once
    edited = listed[texts.index("filler, edited")].hit
    assert edited.edited and edited.event_id in ids
    # The current row stayed where the reader was: not thrown back to the top.
    assert panel.list.currentIndex().row() >= OLD - search_feature.SEARCH_RESULTS - 1
    # A new search starts again from its newest.
    type_and_wait(qtbot, app, "filler message 1", search_feature.SEARCH_RESULTS)
    assert panel.list.currentIndex().row() == 0


def test_nothing_found_and_hostile_queries(qtbot: Any, app: App) -> None:
    panel = app.feature.panel
    QTest.keyClick(app.window, Qt.Key.Key_F, CTRL)
    for query in ['"', "NEAR(", "*", "((a", "x" * 2000]:
        type_and_wait(qtbot, app, query, 0)
        assert panel.status.text().startswith("No messages found")
    # Typing fast runs one search, for the last text (debounced).
    calls: list[str] = []
    client = app.controller.client
    original = client.search

    def counting(text: str, **kw: Any) -> Any:
        calls.append(text)
        return original(text, **kw)

    client.search = counting  # type: ignore[method-assign]
    panel.field.clear()
    QTest.keyClicks(panel.field, "filler message 599")
    qtbot.waitUntil(lambda: len(hits(app)) == 1, timeout=5_000)
    assert calls == ["filler message 599"]


def test_an_answer_for_another_scope_is_not_shown(qtbot: Any) -> None:
    """The same text searched in one room, then everywhere: the first search's answer,
    arriving late, matches the text but not the scope, and is dropped (before, it was
    shown under "Search all rooms", and Enter opened its first hit)."""
    from PySide6.QtWidgets import QWidget

    from bucket_chat_desktop.gui.widgets.search_panel import SearchPanel

    host = QWidget()
    qtbot.addWidget(host)
    host.resize(800, 600)
    host.show()
    panel = SearchPanel(host)
    panel.open("Search in General", "s1/general")
    panel.field.setText("lunch")
    panel.open("Search all rooms", None)
    before = panel.status.text()
    panel.show_results("lunch", "s1/general", [], False, [])  # the room search, late
    assert panel.status.text() == before
    panel.show_results("lunch", "", [], False, [])  # the answer for this scope
    assert panel.status.text() != before


def test_a_look_alike_sender_is_marked_and_the_tip_is_escaped(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    """Red team: a member named "Bob" whose id imitates Bob's. The timeline marks such a
    sender (⚠, and why in the tip); a search result showed "Bob (bоb@…)" with nothing
    to tell it from Bob, a "✓ Verified" beside it, and its tip was the trust reason as
    Qt guesses it: rich text whenever anything from storage in it looked like markup."""
    panel = app.feature.panel
    QTest.keyClick(app.window, Qt.Key.Key_F, CTRL | SHIFT)
    (found,) = type_and_wait(qtbot, app, "payroll", 1)
    assert found.hit.sender_id == LOOKALIKE and found.sender_name == "Bob"
    assert found.sender_warning  # the same words as the timeline's
    tip = str(panel.model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole))
    assert QtGui.Qt.mightBeRichText(tip)  # so it is rich text, and all of it escaped
    assert "&lt;br&gt;&lt;b&gt;" in tip and "<b>\u2713" not in tip
    assert html.escape(found.sender_warning) in tip and "Verified" in tip
    assert WARNING_MARK in sender_text(found)
    panel.field.clear()
    QTest.keyClicks(panel.field, "Friday")  # Bob, where nobody imitates him
    qtbot.waitUntil(lambda: "Friday" in hits(app)[0].hit.snippet.text, timeout=10_000)
    (plain,) = hits(app)
    assert plain.sender_warning is None and WARNING_MARK not in sender_text(plain)
    panel.field.clear()
    QTest.keyClicks(panel.field, "payroll")
    qtbot.waitUntil(lambda: "payroll" in hits(app)[0].hit.snippet.text, timeout=10_000)
    panel.list.viewport().repaint()
    shot(app.window, "search-lookalike", tmp_path)


def test_a_storage_that_failed_on_an_older_page_is_still_said_on_the_later_ones(
    qtbot: Any, app: App
) -> None:
    """Red team: a storage whose index cannot be searched on an older page (it took too
    long, its database is damaged) drops out of the paging (``next`` no longer names it)
    while the other storages read on. The page that failed said so; the next page, from
    the others only, did not, and the list looked whole with that storage's older
    matches missing from it. For the rest of the search the panel keeps saying which
    storage could not be searched."""
    panel, feature = app.feature.panel, app.feature
    QTest.keyClick(app.window, Qt.Key.Key_F, CTRL)
    type_and_wait(qtbot, app, "filler", search_feature.SEARCH_RESULTS)
    sid = app.general.split("/")[0]
    # The next pages, as the client answers them with a second storage attached ("b"):
    # it fails on the second page, and the third comes from the first storage alone.
    panel._asked_older = True
    failed = SearchResults((), True, (("b", "the search took too long"),), next=((sid, 5),))
    feature._show("filler", app.general, failed, older=True)
    assert "Could not search b: the search took too long" in panel.status.text()
    panel._asked_older = True
    feature._show("filler", app.general, SearchResults((), True, next=((sid, 4),)), older=True)
    assert "Could not search b: the search took too long" in panel.status.text()
    # A new search starts again: every storage is searched, and what failed is not said.
    panel.field.setText("filler message 599")
    qtbot.waitUntil(lambda: len(hits(app)) == 1, timeout=10_000)
    assert panel.status.text() == "1 message"
    assert "Could not search" not in panel.status.text()


def test_a_hit_found_through_an_edit_says_what_its_message_s_row_says(qtbot: Any, app: App) -> None:
    """Whether a result says "arrived late" is what its message's row says: the note of
    the message's own copy. A hit found through an edit's text names the edit's copy
    (its id, path and line), and the note was looked up by that copy: a late message
    edited once lost its mark in search while its row kept it (red team rt92). The
    edit's own copy, noted when the edit arrived late, is said apart: "edit arrived
    late" (``ShownHit.late_edit``), as Previous versions says it beside the edit."""
    QTest.keyClick(app.window, Qt.Key.Key_F, CTRL)
    (found,) = type_and_wait(qtbot, app, "edited", 1)
    hit = found.hit
    assert hit.source_id != hit.event_id and found.late is None  # found through the edit
    result = app.controller.result(app.general)
    assert result is not None
    (row,) = [a for a in result.timeline if a.event.event_id == hit.event_id]
    assert (row.path, row.line) != (hit.path, hit.line)  # the message's copy, not the edit's
    model = app.controller.timeline(app.general)
    late = late_arrival(hit.timestamp_ms, hit.timestamp_ms + 30 * 86_400_000)
    assert late is not None

    def shown_late() -> str | None:
        return shown().late

    def shown() -> ShownHit:
        app.feature._show("edited", app.general, SearchResults((hit,), False), older=False)
        (found,) = hits(app)
        return found

    # the message's id at the edit's place: no copy of anything, says nothing
    model.note_late({late_copy(hit.event_id, hit.path, hit.line): late})
    assert shown_late() is None and shown().late_edit is None
    # the edit's own copy: not what the message's row says, but the edit's own note
    model.note_late({late_copy(hit.source_id, hit.path, hit.line): late})
    assert shown_late() is None
    assert shown().late_edit == late.change_note(THIS_EDIT)
    assert "This edit arrived " in tooltip_html(shown())
    # the message's own copy, as the app notes a message that arrived late: said
    model.note_late({late_copy(hit.event_id, row.path, row.line): late})
    assert shown_late() == late.note
