"""Acting on messages in the real window (pytest-qt, offscreen) with a real ChatClient on
a local folder: the hover bar and its reactions, the emoji picker, replying and editing
in the composer (Up edits the last own message), deleting with a confirmation, previous
versions, and the thread panel. Every event the app sends goes through the outbox and
is read back from the storage before it counts.

Set $BUCKET_CHAT_GUI_SHOTS to a folder to keep the screenshots (light and dark).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import shot, wait_for  # tests/gui/conftest.py
from nacl.signing import SigningKey
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from bucket_chat_desktop.gui import emoji_index, safe, theme
from bucket_chat_desktop.gui.controller import Controller, _runs
from bucket_chat_desktop.gui.main_window import MainWindow, TimelineView
from bucket_chat_desktop.gui.models.timeline_model import Roles
from bucket_chat_desktop.gui.relation_actions import RelationActions, install
from bucket_chat_desktop.gui.widgets.emoji_picker import CELL, FREQUENT_TAB, EmojiPicker
from bucket_chat_desktop.gui.widgets.message_actions import (
    DELETE_WORDING,
    ComposerModeBar,
    versions_html,
)
from bucket_chat_desktop.keys.identity import Identity
from bucket_chat_desktop.protocol.relations import EDIT, Aggregate, reaction_key
from bucket_chat_desktop.settings import Settings, StorageSettings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.client import RoomRef
from bucket_chat_desktop.sync.writer import Draft, RoomWriter

ROOM = "heron"
ALICE_ID = "alice@example.com"  # this device
BOB_ID = "bob@example.com"
ALICE = SigningKey(b"\x11" * 32)
BOB = SigningKey(b"\x12" * 32)
T0 = 1_764_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 3 * 60_000
        return self.now


@dataclass
class Room:
    storage: LocalStorage
    bob: RoomWriter
    plan: str = ""  # Alice's message Bob's thread hangs under
    question: str = ""  # Bob's message


async def build_room(root: Path) -> Room:
    storage = LocalStorage(root)
    clock = Clock()
    alice = RoomWriter(storage, ROOM, ALICE_ID, ALICE, displayname="Alice", clock=clock)
    bob = RoomWriter(storage, ROOM, BOB_ID, BOB, displayname="Bob", clock=clock)
    await alice.write_metadata("Heron", "2025-11-24T10:00:00.000Z")
    _, sent = await alice.send([Draft.text("Plan for today: ship the build at 3pm.")])
    plan = sent[-1].event_id
    _, asked = await bob.send([Draft.text("Who tests the installer?\nSecond line.")])
    await bob.send([Draft.text("I can take Windows.", parent=plan)])
    await bob.send([Draft.text("And macOS after lunch.", parent=plan)])
    await alice.send([Draft.text("Thanks Bob!")])
    return Room(storage, bob, plan, asked[-1].event_id)


@dataclass
class App:
    controller: Controller
    window: MainWindow
    actions: RelationActions
    key: str
    room: Room

    def aggregate(self, event_id: str) -> Aggregate | None:
        known = self.controller.relations(self.key)
        return known[1].of(event_id) if known is not None else None

    def row_of(self, body: str) -> int:
        """The newest shown row with ``body`` read back from storage (not an echo)."""
        model = self.window.timeline.model()
        for i in range(model.rowCount() - 1, -1, -1):
            index = model.index(i, 0)
            if index.data(Roles.Body) == body and not index.data(Roles.Echo):
                return i
        return -1

    def event_id(self, body: str) -> str:
        model = self.window.timeline.model()
        return str(model.index(self.row_of(body), 0).data(Roles.EventId))

    def row_of_id(self, event_id: str) -> int:
        model = self.window.timeline.model()
        for i in range(model.rowCount() - 1, -1, -1):
            if model.index(i, 0).data(Roles.EventId) == event_id:
                return i
        return -1

    def hover(self, qtbot: Any, body: str = "", event_id: str = "") -> None:
        """Move the mouse over the row showing ``body`` (or of ``event_id``: an edited
        message may show its latest text): the bar appears on it."""
        view = self.window.timeline
        find = (lambda: self.row_of_id(event_id)) if event_id else (lambda: self.row_of(body))
        qtbot.waitUntil(lambda: find() >= 0)
        index = view.model().index(find(), 0)
        view.scrollTo(index)
        rect = view.visualRect(index)
        QTest.mouseMove(view.viewport(), QPoint(rect.center().x(), rect.bottom() - 6))
        QTest.mouseMove(view.viewport(), QPoint(rect.center().x(), rect.bottom() - 4))
        bar = self.actions.bar
        qtbot.waitUntil(
            lambda: (
                bar.isVisible()
                and bar.target is not None
                and bar.target.event_id == str(index.data(Roles.EventId))
            )
        )


@pytest.fixture
def app(qtbot: Any, qloop: Any, home: Path, tmp_path: Path) -> Iterator[App]:
    safe._reported.clear()
    store = tmp_path / "store"
    room = wait_for(qtbot, build_room(store))
    entry = StorageSettings(str(store), "Team share", [ROOM])
    key = f"{entry.id}/{ROOM}"
    settings = Settings(ALICE_ID, "Alice", [entry], last_room=key)
    controller = Controller(settings, Identity(ALICE_ID, ALICE))
    window = MainWindow(controller)
    qtbot.addWidget(window)
    actions = install(window, controller)
    window.resize(1100, 720)
    window.show()
    controller.start()

    def loaded() -> bool:
        attached = controller.client._storages.get(entry.id)
        state = attached.engine.rooms.get(ROOM) if attached else None
        return (
            controller.current == key
            and state is not None
            and state.complete
            and controller.result(key) is state.result
            and controller.relations(key) is not None
        )

    qtbot.waitUntil(loaded, timeout=15_000)
    yield App(controller, window, actions, key, room)
    theme.apply(QApplication.instance(), "light")
    wait_for(qtbot, controller.shutdown())
    assert safe.failures() == {}  # no Qt callback of the window failed, not even quietly


def shots(widget: Any, name: str, tmp_path: Path) -> None:
    """The widget in the light theme, then in the dark one."""
    app = QApplication.instance()
    for mode in ("light", "dark"):
        theme.apply(app, mode)
        widget.repaint()
        QApplication.processEvents()
        shot(widget, f"{name}_{mode}", tmp_path)
    theme.apply(app, "light")


# -- the hover bar --------------------------------------------------------------------------


def test_hover_bar_appears_over_a_message_and_toggles_a_reaction(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    question = app.room.question
    app.hover(qtbot, "Who tests the installer?\nSecond line.")
    bar = app.actions.bar
    assert bar.target is not None and bar.target.name == "Bob"
    shots(app.window, "hover_bar", tmp_path)

    bar.reaction_buttons["👍"].click()
    qtbot.waitUntil(lambda: app.controller.own_reaction(app.key, question, "👍"), timeout=15_000)
    agg = app.aggregate(question)
    assert agg is not None
    chip = next(c for c in agg.reactions if c.key == "👍")
    assert chip.count == 1 and chip.by(ALICE_ID) is not None

    # the same button again takes the reaction back (a redaction of it)
    app.hover(qtbot, "Who tests the installer?\nSecond line.")
    bar.reaction_buttons["👍"].click()
    qtbot.waitUntil(
        lambda: not app.controller.own_reaction(app.key, question, "👍"), timeout=15_000
    )


def test_edit_and_delete_are_offered_for_own_messages_only(qtbot: Any, app: App) -> None:
    app.hover(qtbot, "Who tests the installer?\nSecond line.")  # Bob's
    bar = app.actions.bar
    assert bar.target is not None and not bar.target.can_edit and not bar.target.can_delete
    assert bar.edit_button.isHidden() and bar.delete_button.isHidden()
    menu = app.actions.build_menu(bar.target, app.window)
    texts = [a.text() for a in menu.actions()]
    assert "Reply" in texts and "Reply in thread" in texts and "Copy text" in texts
    assert "Edit" not in texts and "Delete…" not in texts

    app.hover(qtbot, "Thanks Bob!")  # Alice's, this device's
    assert bar.target is not None and bar.target.can_edit and bar.target.can_delete
    assert not bar.edit_button.isHidden() and not bar.delete_button.isHidden()
    texts = [a.text() for a in app.actions.build_menu(bar.target, app.window).actions()]
    assert "Edit" in texts and "Delete…" in texts

    # membership lines get no bar
    view = app.window.timeline
    model = view.model()
    member = next(
        i for i in range(model.rowCount()) if model.index(i, 0).data(Roles.Kind) == "member"
    )
    assert app.actions.target_at(model.index(member, 0)) is None


def test_keyboard_reaches_the_actions_of_the_current_row(qtbot: Any, app: App) -> None:
    view = app.window.timeline
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    model = view.model()
    # focus lands on the newest message; the bar follows it
    assert view.currentIndex().row() == model.rowCount() - 1
    qtbot.waitUntil(lambda: app.actions.bar.isVisible())
    QTest.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == "Thanks Bob!"
    QTest.keyClick(view, Qt.Key.Key_Up)  # Bob's reply above
    QTest.keyClick(view, Qt.Key.Key_R)
    composer = app.window.composer
    assert composer.reply_to == app.event_id("And macOS after lunch.")
    assert composer.hasFocus()
    assert "Replying to <b>\u2068Bob\u2069</b>" in app.actions.mode_bar.text.text()
    QTest.keyClick(composer, Qt.Key.Key_Escape)
    assert composer.reply_to is None and app.actions.mode_bar.isHidden()


# -- the emoji picker -----------------------------------------------------------------------


def test_picker_search_finds_thumbs_up_and_keyboard_picks(qtbot: Any, tmp_path: Path) -> None:
    picker = EmojiPicker(["🦀"])
    qtbot.addWidget(picker)
    picked: list[str] = []
    picker.picked.connect(picked.append)
    picker.popup_at(QPoint(600, 100))
    qtbot.waitUntil(picker.isVisible)
    # frequent: recent picks first, then the quick reactions
    assert [e.char for e in picker.model.items][:3] == ["🦀", "👍", "❤️"]
    assert picker.group == FREQUENT_TAB
    shots(picker, "emoji_picker", tmp_path)

    QTest.keyClicks(picker.search, "thumbs up")
    assert picker.model.items[0].char == "👍"
    assert "thumbs up" in picker.footer.text()
    QTest.keyClicks(picker.search, "x")  # "thumbs upx": nothing
    assert picker.model.rowCount() == 0 and picker.footer.text() == "No emoji by that name"
    picker.search.clear()
    QTest.keyClicks(picker.search, "heart")
    first = picker.model.items[0].char
    QTest.keyClick(picker.search, Qt.Key.Key_Down)  # arrows move in the grid
    moved = picker.grid.currentIndex().row()
    assert moved > 0
    QTest.keyClick(picker.search, Qt.Key.Key_Return)
    assert picked == [picker.model.items[moved].char] and picked[0] != first
    assert picker.recent[0] == picked[0] and picker.recent[1] == "🦀"
    assert not picker.isVisible()


def test_picker_groups_and_escape(qtbot: Any, qtmodeltester: Any) -> None:
    picker = EmojiPicker()
    qtbot.addWidget(picker)
    qtmodeltester.check(picker.model)
    picker.popup_at(QPoint(600, 100))
    qtbot.waitUntil(picker.isVisible)
    # one grid: the frequent ones, then every group; a group button scrolls to its group
    assert picker.model.rowCount() == len(picker.frequent()) + len(emoji_index.all_emoji())
    picker.tabs["Food & drink"].click()
    assert picker.group == "Food & drink" and picker.tabs["Food & drink"].isChecked()
    current = picker.grid.currentIndex()
    assert current.data(Qt.ItemDataRole.UserRole).group == "Food & drink"
    assert picker.model.items[current.row() - 1].group != "Food & drink"  # its first
    assert 0 <= picker.grid.visualRect(current).top() < 2 * CELL  # scrolled to the top
    picker.grid.scrollToTop()  # scrolling back checks the frequent group again
    assert picker.tabs[FREQUENT_TAB].isChecked()
    QTest.keyClick(picker.search, Qt.Key.Key_Escape)
    assert not picker.isVisible()


def test_emoji_index_names_aliases_and_recent() -> None:
    assert emoji_index.search("+1")[0].char == "👍"
    assert emoji_index.search("tada")[0].char == "🎉"
    assert emoji_index.search("joy")[0].char == "😂"
    assert emoji_index.search("   ") == []
    assert all(emoji_index.lookup(c) is not None for c in emoji_index.FREQUENT)
    names = {e.name for e in emoji_index.all_emoji()}
    assert not any("skin tone" in n for n in names)  # one of each
    assert emoji_index.recent_list(["a", "b", "c"], "b", keep=2) == ["b", "a"]
    assert set(emoji_index.GROUP_NAMES) == {name for name, _ in emoji_index.GROUPS}
    assert emoji_index.GROUP_NAMES[-1] == "Flags"
    # everything offered is a reaction the protocol takes
    assert all(reaction_key(e.char) == e.char for e in emoji_index.all_emoji())
    assert emoji_index.group_of("🇫🇷") == "Flags" and emoji_index.group_of("😀") != "Flags"


def test_more_reactions_opens_the_picker_and_remembers_the_pick(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    app.hover(qtbot, "Thanks Bob!")
    target = app.event_id("Thanks Bob!")
    app.actions.bar.more_button.click()
    picker = app.actions.picker
    assert picker is not None
    qtbot.waitUntil(picker.isVisible)
    QTest.keyClicks(picker.search, "rocket")
    QTest.keyClick(picker.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: app.controller.own_reaction(app.key, target, "🚀"), timeout=15_000)
    assert app.controller.settings.recent_emoji[0] == "🚀"


# -- composer modes -------------------------------------------------------------------------


def test_up_arrow_edits_the_last_own_message_round_trip(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    composer = app.window.composer
    composer.setFocus()
    target = app.event_id("Thanks Bob!")
    QTest.keyClick(composer, Qt.Key.Key_Up)
    assert composer.editing == target
    assert composer.toPlainText() == "Thanks Bob!"
    assert (
        app.actions.mode_bar.isVisible() and "Editing message" in app.actions.mode_bar.text.text()
    )
    shots(app.window, "composer_editing", tmp_path)

    # Escape cancels: the draft written before comes back, nothing is sent
    QTest.keyClick(composer, Qt.Key.Key_Escape)
    assert composer.editing is None and composer.toPlainText() == ""
    assert app.actions.mode_bar.isHidden()

    composer.setPlainText("half a thought")
    composer.moveCursor(composer.textCursor().MoveOperation.Start)
    QTest.keyClick(composer, Qt.Key.Key_Up)  # not empty: Up only moves the cursor
    assert composer.editing is None
    composer.clear()

    # unchanged: Enter sends nothing
    QTest.keyClick(composer, Qt.Key.Key_Up)
    running = app.controller.tasks.running
    QTest.keyClick(composer, Qt.Key.Key_Return)
    assert composer.editing is None and app.controller.tasks.running == running

    QTest.keyClick(composer, Qt.Key.Key_Up)
    composer.selectAll()
    QTest.keyClicks(composer, "Thanks a lot, Bob!")
    QTest.keyClick(composer, Qt.Key.Key_Return)
    assert composer.editing is None and composer.toPlainText() == ""

    def edited() -> bool:
        agg = app.aggregate(target)
        return (
            agg is not None and agg.latest is not None and agg.latest.body == "Thanks a lot, Bob!"
        )

    qtbot.waitUntil(edited, timeout=15_000)
    # Up again starts from the edited text
    QTest.keyClick(composer, Qt.Key.Key_Up)
    assert composer.toPlainText() == "Thanks a lot, Bob!"
    composer.cancel_mode()


def test_editing_ones_unsent_edit_of_a_notice_keeps_it_a_notice(qtbot: Any, app: App) -> None:
    """The app's audit rows carry no bodies (they are paged in): an edit of one's own
    edit still in the outbox, of a notice with no applied edit yet, took the notice's
    msgtype from its bodiless row and went out as plain text."""
    client, ref = app.controller.client, RoomRef.from_key(app.key)
    notice = {"body": "Build 41 is out.", "msgtype": "m.notice"}
    [sent] = wait_for(qtbot, client.send_content(ref, notice))
    qtbot.waitUntil(lambda: app.row_of("Build 41 is out.") >= 0, timeout=15_000)
    engine = client._storages[ref.storage_id].engine
    window = engine.config.batch_window  # what is composed now waits in the outbox
    engine.config = dataclasses.replace(engine.config, batch_window=60.0)

    async def pending(count: int) -> list[dict[str, Any]]:
        """The edits in the outbox, once it holds ``count`` (the notice may still be
        there too, sent, until its activity marker is left)."""
        while True:
            lines = [json.loads(p.line) for p in await client.pending(ref.storage_id)]
            edits = [e for e in lines if e["type"] == EDIT]
            if len(edits) >= count:
                return edits
            await asyncio.sleep(0.02)

    # the first edit through the composer, as a person makes it
    app.hover(qtbot, "Build 41 is out.")
    bar = app.actions.bar
    assert bar.target is not None and bar.target.can_edit
    bar.edit_button.click()
    composer = app.window.composer
    assert composer.editing == sent.event_id
    composer.selectAll()
    QTest.keyClicks(composer, "Build 42 is out.")
    QTest.keyClick(composer, Qt.Key.Key_Return)
    [first] = wait_for(qtbot, pending(1))
    assert first["content"]["new_content"]["msgtype"] == "m.notice"

    # an edit of that edit, still unsent
    app.controller.edit_message(first["event_id"], "Build 43 is out.")
    second = wait_for(qtbot, pending(2))[1]["content"]
    assert second == {
        "replaces": sent.event_id,
        "new_content": {"body": "Build 43 is out.", "msgtype": "m.notice"},
    }

    engine.config = dataclasses.replace(engine.config, batch_window=window)
    assert wait_for(qtbot, client.flush(ref.storage_id))
    row = app.row_of_id(sent.event_id)
    qtbot.waitUntil(
        lambda: app.window.timeline.model().index(row, 0).data(Roles.Body) == "Build 43 is out.",
        timeout=15_000,
    )
    shown = app.window.timeline.model().index(row, 0).data(Roles.Content)
    assert shown["msgtype"] == "m.notice"


def test_reply_round_trip_sends_an_event_with_its_parent(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    question = app.room.question
    app.hover(qtbot, "Who tests the installer?\nSecond line.")
    app.actions.bar.reply_button.click()
    composer = app.window.composer
    assert composer.reply_to == question
    text = app.actions.mode_bar.text.text()
    assert "Replying to <b>\u2068Bob\u2069</b>" in text and "(bob@example.com)" in text
    assert "Who tests the installer?" in text
    assert "Second line" not in text  # the first line only
    shots(app.window, "composer_replying", tmp_path)

    QTest.keyClicks(composer, "Me, on Linux.")
    app.window.send_button.click()  # the button sends as Enter does
    assert composer.reply_to is None and app.actions.mode_bar.isHidden()

    def replied() -> bool:
        known = app.controller.relations(app.key)
        return (
            app.row_of("Me, on Linux.") >= 0
            and known is not None
            and any(
                known[1].thread_root.get(app.event_id("Me, on Linux.")) == question for _ in [0]
            )
        )

    qtbot.waitUntil(replied, timeout=15_000)
    # the event itself names its parent
    model = app.window.timeline.model()
    row = model.row(app.row_of("Me, on Linux."))
    read = wait_for(
        qtbot,
        app.controller.rows_at(
            app.key, [app.controller.relations(app.key)[1].positions[row.event_id]]
        ),
    )
    (shown,) = read.values()
    assert shown.event.parent_event_id == question


def test_a_reply_is_cancelled_when_another_room_is_shown(qtbot: Any, app: App) -> None:
    app.hover(qtbot, "Thanks Bob!")
    app.actions.bar.reply_button.click()
    assert app.window.composer.reply_to is not None
    app.controller.current_changed.emit("")  # what switching rooms signals
    assert app.window.composer.reply_to is None and app.actions.mode_bar.isHidden()


# -- delete ---------------------------------------------------------------------------------


def test_delete_asks_first_and_cancel_sends_nothing(qtbot: Any, app: App, tmp_path: Path) -> None:
    target = app.event_id("Thanks Bob!")
    app.hover(qtbot, "Thanks Bob!")
    app.actions.bar.delete_button.click()
    dialog = app.actions.delete_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    assert dialog.explanation.text() == DELETE_WORDING
    assert "cannot be erased" in DELETE_WORDING and "may have kept a copy" in DELETE_WORDING
    assert dialog.cancel_button.isDefault()  # Enter does not delete
    shots(dialog, "delete_dialog", tmp_path)
    running = app.controller.tasks.running
    dialog.cancel_button.click()
    assert app.controller.tasks.running == running
    assert app.aggregate(target) is None or app.aggregate(target).redacted is None

    app.hover(qtbot, "Thanks Bob!")
    app.actions.bar.delete_button.click()
    dialog = app.actions.delete_dialog
    assert dialog is not None
    QTest.keyClicks(dialog.reason_edit, "wrong room")
    dialog.delete_button.click()

    def deleted() -> bool:
        agg = app.aggregate(target)
        return agg is not None and agg.redacted is not None

    qtbot.waitUntil(deleted, timeout=15_000)
    redacted = app.aggregate(target).redacted  # type: ignore[union-attr]
    assert redacted is not None and redacted.reason == "wrong room"
    assert redacted.state == "verified"
    # a deleted message offers nothing any more
    model = app.window.timeline.model()
    index = model.index(app.row_of("Thanks Bob!"), 0)
    assert not index.isValid() or app.actions.target_at(index) is None


# -- previous versions ----------------------------------------------------------------------


def test_previous_versions_lists_the_original_and_each_edit(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    target = app.event_id("Plan for today: ship the build at 3pm.")
    app.controller.edit_message(target, "Plan for today: ship the build at 4pm.")

    def edited() -> bool:
        agg = app.aggregate(target)
        return agg is not None and len(agg.edits) == 1

    qtbot.waitUntil(edited, timeout=15_000)
    app.controller.edit_message(target, "Plan: ship at 4pm, **tested**.")
    qtbot.waitUntil(lambda: len(app.aggregate(target).edits) == 2, timeout=15_000)  # type: ignore[union-attr]

    app.hover(qtbot, event_id=target)
    assert app.actions.bar.target is not None and app.actions.bar.target.edited
    texts = [a.text() for a in app.actions.build_menu(app.actions.bar.target, app.window).actions()]
    assert "View previous versions…" in texts
    app.window.show_versions(target)
    dialog = app.actions.versions_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.versions[0].body is not None, timeout=10_000)
    original, first, second = dialog.versions
    assert (
        original.label == "Original" and original.body == "Plan for today: ship the build at 3pm."
    )
    assert original.state == "verified" and original.timestamp_ms > 0
    assert (first.label, first.body) == ("Edit 1", "Plan for today: ship the build at 4pm.")
    assert second.body == "Plan: ship at 4pm, **tested**." and second.state == "verified"
    shown = dialog.browser.toPlainText()
    assert shown.index("Edit 2") < shown.index("Edit 1") < shown.index("Original")  # newest first
    assert "<strong>tested</strong>" in versions_html(dialog.versions)  # as the timeline does
    shots(dialog, "versions_dialog", tmp_path)

    # not edited: nothing to show
    app.window.show_versions(app.room.question)
    assert "not edited" in app.window.statusBar().currentMessage()


def test_previous_versions_never_show_another_messages_text_as_the_original(
    qtbot: Any, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team rt85 (a lead): "View previous versions" read the original at the
    timeline position taken when the dialog opened, and showed whatever row it found
    there. A re-audit between the click and the read (here a row placed before the
    message: every position from there on one further) put another message there, whose
    text and trust the dialog showed as this one's original. Now the position is the one
    of the audit read, and the row read must be the message, else it is not shown."""
    target = app.event_id("Plan for today: ship the build at 3pm.")
    app.controller.edit_message(target, "Plan for today: ship the build at 4pm.")

    def edited() -> bool:
        agg = app.aggregate(target)
        return agg is not None and len(agg.edits) == 1

    qtbot.waitUntil(edited, timeout=15_000)
    known = app.controller.relations(app.key)
    assert known is not None
    result, rel = known
    at = rel.positions[target]
    moved = dataclasses.replace(rel, positions={**rel.positions, target: at + 1})
    read = app.controller.rows_at
    answered: list[int] = []

    def before(p: int) -> int:  # where the row at ``p`` after the placing was before it
        return p if p < at else (at - 1 if p == at else p - 1)  # at: the placed row

    async def rows_after_placing(key: str, positions: Any) -> dict[int, Any]:
        wanted = list(positions)
        rows = await read(key, sorted({before(p) for p in wanted}))
        answered.append(len(rows))
        return {p: rows[before(p)] for p in wanted if before(p) in rows}

    def versions() -> Any:
        app.window.show_versions(target)  # the original is read at the loop's next turn
        dialog = app.actions.versions_dialog
        assert dialog is not None and dialog.versions[0].body is None
        return dialog

    # the audit with the placed row came before the read: the message read where it is now
    dialog = versions()
    monkeypatch.setattr(app.controller, "relations", lambda key: (result, moved))
    monkeypatch.setattr(app.controller, "rows_at", rows_after_placing)
    qtbot.waitUntil(lambda: dialog.versions[0].body is not None, timeout=10_000)
    original = dialog.versions[0]
    assert original.body == "Plan for today: ship the build at 3pm.", original
    dialog.close()
    # the audit changed while the row was read (its relations not here yet): the row
    # read is another message's, and the original stays "not loaded yet"
    monkeypatch.setattr(app.controller, "relations", lambda key: known)
    answered.clear()
    dialog = versions()
    qtbot.waitUntil(lambda: answered == [1], timeout=10_000)
    assert dialog.versions[0].body is None
    assert "not loaded yet" in versions_html(dialog.versions)


def test_versions_escape_hostile_text() -> None:
    from bucket_chat_desktop.gui.widgets.message_actions import Version

    html = versions_html(
        [
            Version("Original", T0, "unverified", "<script>x</script>"),
            Version("Edit 1", T0, "invalid", "<img src=x>"),
        ]
    )
    assert "<script>" not in html and "<img" not in html
    assert "not verified" in html and "invalid" in html


def test_versions_spell_out_a_stack_of_combining_marks(qtbot: Any) -> None:
    """A letter under 60 combining marks (in an edit of a hostile member's message) was
    stacked over the versions above and below it in the dialog; marks past four on one
    letter are spelled out now, and real text with marks (decomposed Vietnamese, Hindi)
    is drawn as written."""
    import re

    from bucket_chat_desktop.gui.widgets.message_actions import (
        BODY_MARKS,
        Version,
        VersionsDialog,
    )

    zalgo = "Z" + "\u0301\u0316" * 30 + "algo"
    real = "Tie\u0302\u0301ng Vie\u0323\u0302t, \u0939\u093f\u0928\u094d\u0926\u0940"
    dialog = VersionsDialog("Mallory", sender_id="mallory@example.com")
    qtbot.addWidget(dialog)
    dialog.set_versions(
        [Version("Original", T0, "verified", real), Version("Edit 1", T0 + 1, "verified", zalgo)]
    )
    shown = dialog.browser.toPlainText()
    assert real in shown
    assert "Z" + "\u0301\u0316" * 2 + "\\u0301\\u0316" in shown  # the rest spelled out
    runs = re.findall(r"[\u0300-\u036f]+", shown)
    assert max(len(r) for r in runs) == BODY_MARKS and shown.count("\\u0301") == 28


def test_versions_of_a_message_edited_hundreds_of_times_stay_one_page() -> None:
    from bucket_chat_desktop.gui.widgets.message_actions import MAX_SHOWN_EDITS, Version

    edits = [Version(f"Edit {i}", T0 + i, "verified", f"text {i} " * 2000) for i in range(1, 301)]
    html = versions_html([Version("Original", T0, "verified", "first words"), *edits])
    assert "first words" in html and "Edit 300" in html  # the original and the newest
    assert f"Edit {300 - MAX_SHOWN_EDITS}<" not in html  # the older ones left out...
    assert f"{300 - MAX_SHOWN_EDITS:,} earlier edits are not shown" in html  # ...and said so
    assert len(html) < MAX_SHOWN_EDITS * 40_000


# -- threads --------------------------------------------------------------------------------


def test_thread_panel_shows_replies_sends_into_the_thread_and_follows_new_ones(
    qtbot: Any, app: App, tmp_path: Path
) -> None:
    plan = app.room.plan
    app.hover(qtbot, "Plan for today: ship the build at 3pm.")
    app.actions.bar.thread_button.click()
    panel = app.actions.thread_panel
    qtbot.waitUntil(lambda: panel.isVisible() and panel.model.rowCount() == 3, timeout=10_000)
    bodies = [panel.model.index(i, 0).data(Roles.Body) for i in range(3)]
    assert bodies == [
        "Plan for today: ship the build at 3pm.",
        "I can take Windows.",
        "And macOS after lunch.",
    ]
    assert "2 replies" in panel.subtitle.text() and "Alice" in panel.subtitle.text()
    assert panel.composer.hasFocus()
    shots(app.window, "thread_panel", tmp_path)

    QTest.keyClicks(panel.composer, "Linux is done too.")
    QTest.keyClick(panel.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 4, timeout=15_000)
    assert panel.model.index(3, 0).data(Roles.Body) == "Linux is done too."
    reply_id = str(panel.model.index(3, 0).data(Roles.EventId))
    assert app.controller.relations(app.key)[1].thread_root[reply_id] == plan

    # Bob answers in the thread from his device: the panel follows
    wait_for(qtbot, app.room.bob.send([Draft.text("Great, merging.", parent=plan)]))
    qtbot.waitUntil(lambda: panel.model.rowCount() == 5, timeout=20_000)
    bodies = [panel.model.index(i, 0).data(Roles.Body) for i in range(5)]
    # Bob's clock is in 2025, the app's is now: display order is by time
    assert bodies[3:] == ["Great, merging.", "Linux is done too."]

    # the panel's rows have the message menu, without Reply (its composer replies there)
    index = panel.model.index(4, 0)  # this device's reply
    target = app.actions.target_at(index)
    assert target is not None and target.can_edit and target.text == "Linux is done too."
    texts = [a.text() for a in app.actions.build_menu(target, app.window, True).actions()]
    assert "Edit" in texts and "Delete…" in texts and "Reply" not in texts

    # a reply's "Reply in thread" opens its root's thread
    app.actions.close_thread()
    assert not panel.isVisible()
    app.hover(qtbot, "I can take Windows.")
    app.actions.bar.thread_button.click()
    qtbot.waitUntil(lambda: panel.isVisible() and panel.root_id == plan)
    panel.close_button.click()
    assert not panel.isVisible()


def test_thread_panel_for_a_message_without_replies(qtbot: Any, app: App) -> None:
    question = app.room.question
    app.window.open_thread(question)
    panel = app.actions.thread_panel
    qtbot.waitUntil(lambda: panel.model.rowCount() == 1, timeout=10_000)
    assert panel.note.text() == "No replies yet: write the first one."
    QTest.keyClicks(panel.composer, "Me!")
    QTest.keyClick(panel.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 2, timeout=15_000)
    assert panel.note.isHidden()


def test_thread_panel_shows_edits_and_deletions_of_replies(qtbot: Any, app: App) -> None:
    plan = app.room.plan
    windows = app.event_id("I can take Windows.")
    wait_for(
        qtbot,
        app.room.bob.send(
            [
                Draft(
                    "m.room.edit",
                    {
                        "replaces": windows,
                        "new_content": {"body": "I take Windows and Linux.", "msgtype": "m.text"},
                    },
                ),
                Draft(
                    "m.room.redaction",
                    {"redacts": app.event_id("And macOS after lunch."), "reason": "done"},
                ),
            ]
        ),
    )
    qtbot.waitUntil(
        lambda: (a := app.aggregate(windows)) is not None and a.latest is not None, timeout=20_000
    )
    app.window.open_thread(plan)
    panel = app.actions.thread_panel
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=10_000)
    bodies = [str(panel.model.index(i, 0).data(Roles.Body)) for i in range(3)]
    assert bodies[1] == "I take Windows and Linux."
    assert "macOS" not in bodies[2]
    # Red team (round 24): the panel showed the edited reply's new text with nothing to
    # say it was edited (no "(edited)", no versions: the timeline's row said so), so a
    # "no" changed to a "yes" read as said so from the start. Each row is now what the
    # timeline's is: edited, deleted (with its reason), its reactions.
    edited = panel.model.index(1, 0).data(Roles.Edited)
    assert edited is not None and edited.times == 1
    deleted = panel.model.index(2, 0).data(Roles.Deleted)
    assert deleted is not None and deleted.reason == "done"
    # ...and its reaction chips, which act as the timeline's
    assert isinstance(panel.view, TimelineView)
    panel.view.reaction_clicked.emit(windows, "👍", True)
    qtbot.waitUntil(lambda: bool(panel.model.index(1, 0).data(Roles.Reactions)), timeout=20_000)


def test_runs_group_near_positions() -> None:
    assert _runs([], 32) == []
    assert _runs([3, 5, 40, 100, 101], 32) == [(3, 6), (40, 41), (100, 102)]


def test_shift_tab_from_the_composer_reaches_the_timeline(qtbot: Any, app: App) -> None:
    composer, view = app.window.composer, app.window.timeline
    composer.setFocus()
    qtbot.waitUntil(composer.hasFocus)
    QTest.keyClick(composer, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert view.hasFocus()
    # ...on the newest message, with its bar
    assert view.currentIndex().row() == view.model().rowCount() - 1
    qtbot.waitUntil(app.actions.bar.isVisible)
    QTest.keyClick(view, Qt.Key.Key_Plus)  # more reactions
    picker = app.actions.picker
    assert picker is not None
    qtbot.waitUntil(picker.isVisible)
    QTest.keyClick(picker.search, Qt.Key.Key_Escape)
    assert not picker.isVisible()
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_Escape)
    assert composer.hasFocus()


def test_a_refused_action_is_shown_in_the_status_bar(qtbot: Any, app: App) -> None:
    target = app.event_id("Thanks Bob!")
    app.controller.react(target, "not\na reaction")  # the client refuses it (ValueError)
    qtbot.waitUntil(lambda: "Reacting" in app.window.statusBar().currentMessage())
    assert "1 to 64 characters" in app.window.statusBar().currentMessage()


def test_hostile_names_and_text_are_escaped_in_the_mode_bar(qtbot: Any) -> None:
    bar = ComposerModeBar()
    qtbot.addWidget(bar)
    bar.show_reply("<b>Mallory</b>", "<img src=x> " + "y" * 5000 + "\nsecond")
    text = bar.text.text()
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in text and "<img" not in text
    assert len(text) < 600 and "second" not in text


def test_recent_emoji_in_settings_are_checked_when_read() -> None:
    read = Settings.from_json(
        {"recent_emoji": ["👍", 3, "", "x" * 65, *["🎉"] * 40], "user_id": "a@b"}
    )
    assert read.recent_emoji[0] == "👍" and len(read.recent_emoji) == 24
    assert all(isinstance(e, str) and 0 < len(e) <= 64 for e in read.recent_emoji)
    assert Settings.from_json({"recent_emoji": "👍"}).recent_emoji == []


def test_a_message_under_this_user_id_from_an_unknown_key_is_not_offered_for_editing(
    qtbot: Any, app: App
) -> None:
    """Someone writing as alice@example.com with a key nobody introduced: the app would
    send an edit the protocol ignores (and reports), so it offers none."""
    mallory = RoomWriter(
        app.room.storage, ROOM, ALICE_ID, SigningKey(b"\x13" * 32), displayname="Alice"
    )
    wait_for(qtbot, mallory.send([Draft.text("Alice here, from a new laptop")]))
    qtbot.waitUntil(lambda: app.row_of("Alice here, from a new laptop") >= 0, timeout=20_000)
    model = app.window.timeline.model()
    index = model.index(app.row_of("Alice here, from a new laptop"), 0)
    assert index.data(Roles.Sender) == ALICE_ID and index.data(Roles.Trust) != "verified"
    app.hover(qtbot, "Alice here, from a new laptop")
    target = app.actions.bar.target
    assert target is not None and not target.can_edit and not target.can_delete
    assert app.actions.bar.edit_button.isHidden()
    # and Up still edits this device's own last message, not that one
    composer = app.window.composer
    composer.setFocus()
    QTest.keyClick(composer, Qt.Key.Key_Up)
    assert composer.editing == app.event_id("Thanks Bob!")
    composer.cancel_mode()
