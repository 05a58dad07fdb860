"""What relations look like in the timeline (PROTOCOL.md section 18), through the real
model, delegate and view, offscreen: relation events are not rows (also across pages),
an edited message shows its latest text and an "(edited)" marker, a deleted one a
placeholder without its text, a reply the quote of its parent (a click jumps to it,
loading the page around it), a thread root its reply count (a click asks for the thread
panel), reactions chips with counts (an unverified reactor is marked, this user's own is
highlighted, a click toggles it); hostile relations change nothing they must not.

Rows are signed events of several people, judged as the audit would (``Assessed``), with
the relations the protocol's rules make of them (``relations.build``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import roster_of
from nacl.signing import SigningKey
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QListView

from bucket_chat_desktop.gui import safe, theme
from bucket_chat_desktop.gui.main_window import TimelineView
from bucket_chat_desktop.gui.models.timeline_model import (
    MAX_CHIPS,
    PAGE,
    Chip,
    Roles,
    TimelineModel,
)
from bucket_chat_desktop.gui.style import TRUST_COLORS
from bucket_chat_desktop.gui.widgets.message_delegate import (
    WARNING_MARK,
    MessageDelegate,
    chip_tooltip,
    more_tooltip,
)
from bucket_chat_desktop.protocol import relations
from bucket_chat_desktop.protocol.audit import PROVISIONAL_REASON, Assessed, TrustState
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.relations import EDIT, HIDDEN_TYPES, REACTION, REDACTION
from bucket_chat_desktop.protocol.signing import build_event

ROOM = "relroom"
T0 = 1_764_000_000_000
ALICE = ("alice@example.com", SigningKey(b"\x01" * 32), "Alice")
BOB = ("bob@example.com", SigningKey(b"\x02" * 32), "Bob")
CAROL = ("carol@example.com", SigningKey(b"\x03" * 32), "Carol")
# Bob's id with a Cyrillic "о", under a name that carries markup
IMPOSTOR = ("b\u043eb@example.com", SigningKey(b"\x04" * 32), "Bob <b>CEO</b>")
# Another key claiming Alice's own id (its rows: verified on trial while history loads)
ALICE_ELSEWHERE = ("alice@example.com", SigningKey(b"\x05" * 32), "Alice")

Who = tuple[str, SigningKey, str]


class Scene:
    """A room's rows in display order, each signed by its sender and judged."""

    def __init__(self) -> None:
        self.items: list[Assessed] = []
        self.heads: dict[str, str] = {}
        self.t = T0

    def add(
        self,
        who: Who,
        kind: str,
        content: dict[str, Any],
        parent: str | None = None,
        state: TrustState = TrustState.VERIFIED,
        reason: str | None = None,
    ) -> Event:
        user, key, _ = who
        self.t += 30_000
        ev = build_event(
            room_id=ROOM,
            sender_id=user,
            event_type=kind,
            content=content,
            timestamp_ms=self.t,
            unique=str(uuid.uuid4()),
            prev_event_hash=self.heads.get(user),
            signing_key=key,
            parent_event_id=parent,
        )
        self.heads[user] = ev.hash
        if reason is None:
            reason = "signature and chain check out" if state is TrustState.VERIFIED else "not sure"
        path = f"rooms/{ROOM}/logs/{user}.jsonl"
        self.items.append(Assessed(ev, state, reason, path, len(self.items) + 1))
        return ev

    def join(self, who: Who) -> Event:
        return self.add(who, MEMBER, {"membership": "join", "displayname": who[2]})

    def msg(self, who: Who, text: str, parent: str | None = None, **kw: Any) -> Event:
        return self.add(who, MESSAGE, {"body": text, "msgtype": "m.text"}, parent, **kw)

    def react(self, who: Who, target: Event, key: str, **kw: Any) -> Event:
        return self.add(who, REACTION, {"relates_to": target.event_id, "reaction": key}, **kw)

    def edit(self, who: Who, target: Event, text: str, **kw: Any) -> Event:
        content = {"replaces": target.event_id, "new_content": {"body": text, "msgtype": "m.text"}}
        return self.add(who, EDIT, content, **kw)

    def redact(self, who: Who, target: Event, reason: str | None = None) -> Event:
        content: dict[str, Any] = {"redacts": target.event_id}
        if reason:
            content["reason"] = reason
        return self.add(who, REDACTION, content)

    def relations(self, upto: int | None = None) -> relations.Relations:
        return relations.build(ROOM, self.items[:upto])


def model_of(scene: Scene, upto: int | None = None) -> TimelineModel:
    model = TimelineModel(b64encode(bytes(ALICE[1].verify_key)))
    model.own_user = ALICE[0]
    items = scene.items[:upto]
    model.set_timeline(items, True, scene.relations(upto), roster_of(items).names)
    return model


def row_of(model: TimelineModel, event_id: str) -> int:
    found = model.locate(event_id)
    assert found is not None, event_id
    return found


def chat(scene: Scene) -> dict[str, Event]:
    """Bob asks, people react, Bob fixes a typo, Carol replies, Bob takes one back."""
    for who in (ALICE, BOB, CAROL):
        scene.join(who)
    ask = scene.msg(BOB, "Shall we ship teh release on Friday?")
    scene.react(ALICE, ask, "👍")
    scene.react(CAROL, ask, "👍", state=TrustState.UNVERIFIED)
    scene.react(CAROL, ask, "🎉")
    scene.edit(BOB, ask, "Shall we ship the release on Friday?\nNotes follow.")
    answer = scene.msg(CAROL, "Yes, Friday works for me.", parent=ask.event_id)
    scene.msg(ALICE, "Same here.", parent=ask.event_id)
    oops = scene.msg(BOB, "the secret password is hunter2")
    scene.redact(BOB, oops, "wrong room")
    tail = scene.msg(ALICE, "Let's go then.")
    return {"ask": ask, "answer": answer, "oops": oops, "tail": tail}


def test_relation_rows_are_hidden_and_their_targets_show_them(qtmodeltester: Any) -> None:
    scene = Scene()
    ev = chat(scene)
    model = model_of(scene)
    qtmodeltester.check(model)
    kinds = [scene.items[i].event.type for i in range(len(scene.items))]
    shown = [k for k in kinds if k not in HIDDEN_TYPES]
    assert model.rowCount() == len(shown) == model.total
    assert all(model.row(i).type not in HIDDEN_TYPES for i in range(model.rowCount()))

    ask = model.index(row_of(model, ev["ask"].event_id))
    assert ask.data(Roles.Body) == "Shall we ship the release on Friday?\nNotes follow."
    edited = ask.data(Roles.Edited)
    assert edited is not None and edited.times == 1 and edited.state == "verified"
    chips = {c.key: c for c in ask.data(Roles.Reactions)}
    assert chips["👍"].number == 2 and chips["👍"].mine and not chips["👍"].all_verified
    assert chips["🎉"].number == 1 and not chips["🎉"].mine and chips["🎉"].all_verified
    tip = chip_tooltip(chips["👍"])
    assert "Alice" in tip and "Carol" in tip and "Unverified" in tip
    thread = ask.data(Roles.Thread)
    assert thread is not None and thread.replies == 2 and thread.unread is None
    model.read_position = len(scene.items) - 4  # Alice's reply and later are unread
    assert ask.data(Roles.Thread).unread == 1
    # the "New messages" line sets the mark by event id (gui/social.py): the same count
    model.read_position = None
    replies = ask.data(Roles.Thread).replies
    first_reply = scene.items[len(scene.items) - 4].event.event_id
    shown_reply = next(
        (i for i in range(model.rowCount()) if model.row(i).event_id == first_reply), None
    )
    assert shown_reply is not None  # Alice's reply is a row of its own
    model.set_read_mark(first_reply)
    assert model.read_position == len(scene.items) - 4
    assert ask.data(Roles.Thread).unread == 1 and ask.data(Roles.Thread).replies == replies
    model.set_read_mark("")  # the line gone: no unread count
    assert model.read_position is None and ask.data(Roles.Thread).unread is None

    answer = model.index(row_of(model, ev["answer"].event_id))
    quote = answer.data(Roles.Quote)
    assert quote.status == "ok" and quote.name == "Bob"
    assert quote.text == "Shall we ship the release on Friday?"  # the latest, first line

    oops = model.index(row_of(model, ev["oops"].event_id))
    assert oops.data(Roles.Kind) == "deleted"
    deleted = oops.data(Roles.Deleted)
    assert deleted.reason == "wrong room" and deleted.state == "verified"
    for role in [*Roles, Qt.ItemDataRole.DisplayRole]:
        value = oops.data(role)
        if role not in (Roles.Content,) and isinstance(value, str):
            assert "hunter2" not in value
    assert oops.data(Roles.Reactions) == ()


def test_an_edit_less_trusted_than_its_message_shows_its_trust() -> None:
    scene = Scene()
    scene.join(BOB)
    msg = scene.msg(BOB, "original")
    scene.edit(BOB, msg, "changed", state=TrustState.UNVERIFIED)
    model = model_of(scene)
    index = model.index(row_of(model, msg.event_id))
    assert index.data(Roles.Body) == "changed"
    assert index.data(Roles.Trust) == "unverified"
    assert "edit" in index.data(Roles.TrustReason)


def test_hostile_relations_change_nothing_they_must_not(qtbot: Any) -> None:
    scene = Scene()
    for who in (ALICE, BOB, CAROL):
        scene.join(who)
    msg = scene.msg(BOB, "Bob's own words")
    scene.edit(CAROL, msg, "Carol's forged words")  # another sender's edit
    scene.redact(CAROL, msg)  # and another sender's deletion
    scene.react(CAROL, msg, "\u202e👍")  # a bidi override: the rules reject it
    long_key = "ab" * 32  # 64 characters: allowed, must not break the layout
    scene.react(ALICE, msg, long_key)
    rel = scene.relations()
    assert {f.kind for f in rel.findings} >= {Kind.RELATION_NOT_SENDER, Kind.RELATION_INVALID}
    model = model_of(scene)
    index = model.index(row_of(model, msg.event_id))
    assert index.data(Roles.Body) == "Bob's own words"
    assert index.data(Roles.Edited) is None and index.data(Roles.Deleted) is None
    chips = index.data(Roles.Reactions)
    assert [c.key for c in chips] == [long_key]
    assert all("\u202e" not in c.key for c in chips)

    view, delegate = _view(qtbot, model, 420)
    rect = view.visualRect(index)
    regions = delegate.regions(index, rect, view.font())
    [(what, _chip, chip_rect)] = regions.parts
    assert what == "chip" and chip_rect.right() <= rect.right()
    assert chip_rect.width() < 200  # elided, not 64 characters wide
    assert rect.height() < 160


def test_pages_skip_relation_rows_and_appended_relations_update_their_target(
    qtmodeltester: Any,
) -> None:
    """600 messages, each followed by a reaction to it: pages hold only messages, in
    order, and what is held stays bounded; a relation-only append changes its target's
    row in place (no row inserted, the row's height key changes)."""
    scene = Scene()
    scene.join(ALICE)
    scene.join(BOB)
    texts = []
    for i in range(600):
        m = scene.msg(BOB if i % 3 else ALICE, f"message {i}")
        texts.append(m.event_id)
        scene.react(ALICE, m, "👀")
    model = model_of(scene)
    qtmodeltester.check(model)
    assert model.total == 602 and model.rowCount() == PAGE // 2  # the newest 200 positions
    while model.rowCount() < model.total:
        model.fetch_older()
    assert [model.row(i).event_id for i in range(2, 602)] == texts
    assert all(model.index(i).data(Roles.Reactions)[0].number == 1 for i in range(2, 602))

    last = scene.items[-2].event  # the newest message
    before = model.index(model.rowCount() - 1).data(Roles.Layout)
    changed: list[int] = []
    model.dataChanged.connect(lambda a, b, *_: changed.extend(range(a.row(), b.row() + 1)))
    start = len(scene.items)
    scene.react(CAROL, last, "🚀")
    scene.edit(BOB if scene.items[-4].event.sender_id == BOB[0] else ALICE, last, "edited!")
    model.append(scene.items[start:], scene.relations())
    assert model.rowCount() == 602  # nothing inserted
    assert changed == [model.rowCount() - 1, model.rowCount() - 1][: len(changed)] and changed
    index = model.index(model.rowCount() - 1)
    assert [c.key for c in index.data(Roles.Reactions)] == ["👀", "🚀"]
    assert index.data(Roles.Layout) != before


def _view(qtbot: Any, model: TimelineModel, width: int = 640) -> tuple[TimelineView, Any]:
    view = TimelineView()
    qtbot.addWidget(view)
    delegate = MessageDelegate(view)
    view.setItemDelegate(delegate)
    view.setModel(model)
    view.resize(width, 560)
    view.show()
    qtbot.waitExposed(view)
    view.executeDelayedItemsLayout()
    return view, delegate


def _part(
    delegate: Any, view: TimelineView, event_id: str, what: str, key: str = ""
) -> tuple[Any, QRect]:
    """A painted piece of a row (scrolled into view): its payload and where it is."""
    model = view.model()
    index = model.index(row_of(model, event_id))
    view.scrollTo(index)
    view.executeDelayedItemsLayout()
    regions = delegate.regions(index, view.visualRect(index), view.font())
    if what in ("quote", "thread"):
        return None, getattr(regions, what)
    return next((p, r) for w, p, r in regions.parts if w == what and (not key or p.key == key))


def test_clicks_toggle_chips_jump_to_quotes_and_open_threads(qtbot: Any) -> None:
    scene = Scene()
    ev = chat(scene)
    model = model_of(scene)
    view, delegate = _view(qtbot, model)
    chip, rect = _part(delegate, view, ev["ask"].event_id, "chip")
    assert isinstance(chip, Chip) and chip.key == "👍" and chip.mine
    with qtbot.waitSignal(view.reaction_clicked) as got:
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert got.args == [ev["ask"].event_id, "👍", False]  # mine: take it back
    _, rect2 = _part(delegate, view, ev["ask"].event_id, "chip", "🎉")
    with qtbot.waitSignal(view.reaction_clicked) as got:
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect2.center())
    assert got.args == [ev["ask"].event_id, "🎉", True]  # not mine: add it

    _, thread = _part(delegate, view, ev["ask"].event_id, "thread")
    with qtbot.waitSignal(view.threadRequested) as got:
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=thread.center())
    assert got.args == [ev["ask"].event_id]

    _, quote = _part(delegate, view, ev["answer"].event_id, "quote")
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=quote.center())
    assert view.flash_id == ev["ask"].event_id
    assert view.currentIndex().row() == row_of(model, ev["ask"].event_id)


def test_a_quote_of_a_message_not_held_loads_the_page_around_it(qtbot: Any) -> None:
    scene = Scene()
    scene.join(ALICE)
    scene.join(BOB)
    first = scene.msg(BOB, "the very first plan")
    for i in range(700):
        scene.msg(ALICE if i % 2 else BOB, f"filler {i}")
        if i % 4 == 0:
            scene.react(BOB, first, f"{i}")
    reply = scene.msg(ALICE, "About that first plan", parent=first.event_id)
    model = model_of(scene)
    view, delegate = _view(qtbot, model)
    assert model.locate(first.event_id) is None  # not held
    index = model.index(row_of(model, reply.event_id))
    # its parent is read through the pager, by its timeline position
    qtbot.waitUntil(lambda: index.data(Roles.Quote).status == "ok")
    assert index.data(Roles.Quote).text == "the very first plan"
    _, quote = _part(delegate, view, reply.event_id, "quote")
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=quote.center())
    qtbot.waitUntil(lambda: view.flash_id == first.event_id)
    assert model.locate(first.event_id) is not None
    assert model.held <= 2 * PAGE + 10
    # the rows below come back as the view is scrolled down, then new rows append again
    assert model.can_fetch_newer()
    bar = view.verticalScrollBar()
    for _ in range(20):
        if not model.can_fetch_newer():
            break
        bar.setValue(bar.maximum())
        qtbot.wait(5)
    assert not model.can_fetch_newer()
    assert model.row(model.rowCount() - 1).event_id == reply.event_id
    more = scene.msg(BOB, "a new one")
    model.append(scene.items[-1:], scene.relations())
    assert model.row(model.rowCount() - 1).event_id == more.event_id


def test_relation_echoes_and_cached_rows_are_not_rows() -> None:
    scene = Scene()
    ev = chat(scene)
    model = TimelineModel()
    reaction = next(a.event for a in scene.items if a.event.type == REACTION)
    model.set_echo([reaction], "sending")
    assert model.rowCount() == 0
    model.set_echo([ev["tail"]], "sending")
    assert model.rowCount() == 1


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_render_relations(qtbot: Any, qapp: QApplication, mode: str, tmp_path: Path) -> None:
    """Every piece painted, light and dark (PNGs in the test's tmp_path to look at)."""
    theme.apply(qapp, mode)
    try:
        scene = Scene()
        chat(scene)
        model = model_of(scene)
        view, _ = _view(qtbot, model, 700)
        view.resize(700, 760)
        view.scrollToBottom()
        qtbot.wait(20)
        assert view.grab().save(str(tmp_path / f"relations-{mode}.png"))
    finally:
        theme.apply(qapp, "light")


def test_a_reaction_above_the_view_grows_its_row_and_the_view_does_not_move(qtbot: Any) -> None:
    scene = Scene()
    scene.join(ALICE)
    scene.join(BOB)
    msgs = [scene.msg(BOB if i % 2 else ALICE, f"line {i}") for i in range(120)]
    model = model_of(scene)
    view, _ = _view(qtbot, model)
    bar = view.verticalScrollBar()
    qtbot.wait(50)  # it opens at the bottom (a moment after the model is set)
    bar.setValue(bar.maximum() // 2)
    qtbot.wait(50)
    assert bar.value() == bar.maximum() // 2
    top = view.indexAt(QPoint(4, 4))
    assert top.isValid() and top.row() > 10
    y = view.visualRect(top).top()
    above = model.index(top.row() - 5)
    height = view.visualRect(above).height()
    target = next(m for m in msgs if m.event_id == above.data(Roles.EventId))
    start = len(scene.items)
    scene.react(BOB, target, "🎉")
    model.append(scene.items[start:], scene.relations())
    qtbot.waitUntil(lambda: view.visualRect(above).height() > height)
    qtbot.wait(50)
    assert abs(view.visualRect(top).top() - y) <= 1  # the same row at the same place


def test_the_current_rows_chips_are_reachable_by_keyboard(qtbot: Any, tmp_path: Path) -> None:
    scene = Scene()
    ev = chat(scene)
    model = model_of(scene)
    view, _ = _view(qtbot, model)
    view.setFocus()
    view.setCurrentIndex(model.index(row_of(model, ev["ask"].event_id)))
    QTest.keyClick(view, Qt.Key.Key_Right)
    assert view.chip_focus == (ev["ask"].event_id, 0)
    QTest.keyClick(view, Qt.Key.Key_Right)
    QTest.keyClick(view, Qt.Key.Key_Right)  # stays on the last chip
    assert view.chip_focus == (ev["ask"].event_id, 1)
    assert view.grab().save(str(tmp_path / "relations-keyboard.png"))
    with qtbot.waitSignal(view.reaction_clicked) as got:
        QTest.keyClick(view, Qt.Key.Key_Space)
    assert got.args == [ev["ask"].event_id, "🎉", True]
    QTest.keyClick(view, Qt.Key.Key_Down)
    assert view.chip_focus is None


def test_a_flood_of_reactions_and_dangling_replies_stay_bounded(qtbot: Any) -> None:
    """300 different reactions on one message: a bounded number of chips and a "+n";
    a reply to another room's message or to one never read says so, never crashes."""
    scene = Scene()
    scene.join(ALICE)
    scene.join(BOB)
    msg = scene.msg(BOB, "react to me")
    for i in range(300):
        scene.react(ALICE, msg, f"r{i}")
    elsewhere = scene.msg(ALICE, "about that", parent="otherroom::2025-01-01T00:00:00.000Z::x")
    unknown = scene.msg(ALICE, "and this", parent=f"{ROOM}::2025-01-01T00:00:00.000Z::nope")
    reaction = scene.items[-3].event
    to_relation = scene.msg(BOB, "a reply to a reaction", parent=reaction.event_id)
    model = model_of(scene)
    view, delegate = _view(qtbot, model)
    index = model.index(row_of(model, msg.event_id))
    assert len(index.data(Roles.Reactions)) == 300
    rect = view.visualRect(index)
    regions = delegate.regions(index, rect, view.font())
    kinds = [what for what, _, _ in regions.parts]
    assert kinds.count("chip") == MAX_CHIPS - 1 and kinds[-1] == "more"
    assert rect.height() < 400
    more = delegate.part_tooltip(index, rect, view.font(), regions.parts[-1][2].center()) or ""
    first_hidden = f"r{MAX_CHIPS - 1}"
    assert f"<b>{first_hidden}</b> · 1" in more  # one line per chip, the first 40
    assert f"and {300 - (MAX_CHIPS - 1) - 40:,} more reactions" in more and "r299" not in more
    assert model.index(row_of(model, elsewhere.event_id)).data(Roles.Quote).status == "elsewhere"
    assert model.index(row_of(model, unknown.event_id)).data(Roles.Quote).status == "missing"
    odd = model.index(row_of(model, to_relation.event_id))  # relation-invalid: no quote
    assert odd.data(Roles.Quote) is None and odd.data(Roles.Layout)[8] is False


class _CountingPositions(dict[str, int]):
    """``Relations.positions`` that counts the look-ups made of it."""

    def __init__(self, positions: Any) -> None:
        super().__init__(positions)
        self.gets = 0

    def get(self, key: Any, default: Any = None) -> Any:
        self.gets += 1
        return super().get(key, default)


def test_a_thread_roots_unread_count_is_counted_once_per_relations_and_read_mark(
    qtbot: Any,
) -> None:
    """Red team rt85: a member writes thousands of replies to one message, dated before
    it (the root stays the newest row, on screen). With the "New messages" line set (as
    ``Social`` sets it on opening a room with unread messages), every ``Thread`` and
    ``Layout`` answer for the root counted its unread replies by walking the whole
    thread: four walks a repaint (80,070 look-ups at 20,000 replies), more per hover; a
    second of the GUI thread for 20 mouse moves at 100,000. Now one count per relations
    and read mark: a repaint looks up nothing of the thread, a moved mark counts once,
    and new relations count again (a reply arrives)."""
    import dataclasses

    scene = Scene()
    for who in (BOB, CAROL):
        scene.join(who)
    root = scene.msg(BOB, "root")
    replies = 5_000
    for i in range(replies):
        scene.msg(CAROL, f"r{i}", parent=root.event_id)
    scene.items.append(scene.items.pop(2))  # the root last: its replies dated before it
    plain = scene.relations()
    counting = _CountingPositions(plain.positions)
    rel = dataclasses.replace(plain, positions=counting)
    model = TimelineModel()
    model.set_timeline(scene.items, True, rel)
    view, _delegate = _view(qtbot, model)
    row = model.locate(root.event_id)
    assert row is not None
    index = model.index(row)

    def unread(mark: int) -> int:
        return sum(1 for r in plain.aggregates[root.event_id].thread if plain.positions[r] >= mark)

    model.set_read_mark(model.row(model.rowCount() - 5).event_id)
    view.scrollTo(index)
    view.viewport().repaint()
    assert index.data(Roles.Thread).unread == unread(model.read_position) == 4  # rows below
    counting.gets = 0
    view.viewport().repaint()
    for _ in range(20):  # a hover asks the row's layout again
        index.data(Roles.Layout)
        index.data(Roles.Thread)
    assert counting.gets < 100, f"{counting.gets:,} look-ups ({replies:,} replies)"
    # the line moved up: counted once more, right
    model.set_read_mark(model.row(model.rowCount() - 101).event_id)
    counting.gets = 0
    assert index.data(Roles.Thread).unread == unread(model.read_position) == 100
    view.viewport().repaint()
    assert replies <= counting.gets < replies + 100
    # a reply arrives: the relations change, the count with them
    start = len(scene.items)
    scene.msg(CAROL, "one more", parent=root.event_id)
    model.append(scene.items[start:], scene.relations())
    assert index.data(Roles.Thread).unread == 101
    assert index.data(Roles.Thread).replies == replies + 1


def test_a_reply_to_itself_quotes_nothing_and_is_no_thread(qtbot: Any) -> None:
    """Red team: an event id is the writer's choice, so a reply can name itself as its
    parent. Before, it quoted itself and was the root of a thread holding itself ("1
    reply", a thread panel with the root under itself); now it is a plain message."""
    scene = Scene()
    scene.join(BOB)
    scene.t += 30_000

    def build(parent: str | None) -> Event:
        return build_event(
            room_id=ROOM,
            sender_id=BOB[0],
            event_type=MESSAGE,
            content={"body": "I reply to myself", "msgtype": "m.text"},
            timestamp_ms=scene.t,
            unique="selfref",
            prev_event_hash=scene.heads.get(BOB[0]),
            signing_key=BOB[1],
            parent_event_id=parent,
        )

    ev = build(build(None).event_id)
    assert ev.parent_event_id == ev.event_id
    scene.items.append(Assessed(ev, TrustState.VERIFIED, "ok", "p", len(scene.items) + 1))
    model = model_of(scene)
    index = model.index(row_of(model, ev.event_id))
    assert index.data(Roles.Quote) is None and index.data(Roles.Thread) is None
    assert [f.kind for f in scene.relations().findings] == [Kind.RELATION_INVALID]
    view, delegate = _view(qtbot, model)
    regions = delegate.regions(index, view.visualRect(index), view.font())
    assert not [what for what, _, _ in regions.parts if what in ("quote", "thread")]


def test_the_more_chip_tooltip_of_a_reaction_flood_stays_small(qtbot: Any) -> None:
    """Red team: 5,000 distinct reaction texts by one member. The "+n" chip's tooltip
    was every hidden chip's full tooltip (470 KB of rich text here, 4.8 MB and about 2 s
    of Qt layout at 50,000); now 40 lines and a count, whatever the flood."""
    scene = Scene()
    scene.join(ALICE)
    scene.join(BOB)
    msg = scene.msg(BOB, "react to me")
    for i in range(5_000):
        scene.react(CAROL, msg, f"k{i}", state=TrustState.UNVERIFIED)
    model = model_of(scene)
    view, delegate = _view(qtbot, model)
    index = model.index(row_of(model, msg.event_id))
    rect = view.visualRect(index)
    regions = delegate.regions(index, rect, view.font())
    tip = delegate.part_tooltip(index, rect, view.font(), regions.parts[-1][2].center()) or ""
    assert len(tip) < 4_000 and tip.count("<br>") == 40
    assert "⚠ not all verified" in tip and "and 4,937 more reactions" in tip


def test_a_reaction_planted_under_ones_id_is_not_shown_as_ones_own() -> None:
    """Red team: a reaction under this user's id from no key of theirs counts (marked
    unverified), but the chip is not highlighted as theirs: a click adds their own
    reaction instead of trying to take back one they never wrote."""
    scene = Scene()
    scene.join(ALICE)
    scene.join(BOB)
    msg = scene.msg(BOB, "react to me")
    scene.react(ALICE, msg, "👍", state=TrustState.UNVERIFIED)
    scene.react(ALICE, msg, "🎉")
    model = model_of(scene)
    chips = {c.key: c for c in model.index(row_of(model, msg.event_id)).data(Roles.Reactions)}
    assert not chips["👍"].mine and not chips["👍"].all_verified
    assert chips["🎉"].mine and chips["🎉"].all_verified


def _on_trial_chips(scene: Scene) -> tuple[Event, TimelineModel]:
    """While older history loads: a key nobody introduced yet reacts 👍 under Alice's
    (the user's) id, and Carol's key, also on trial, 🎉 beside Bob's (pinned)."""
    for who in (ALICE, BOB, CAROL):
        scene.join(who)
    ask = scene.msg(BOB, "Wire the 50k today? 👍 to approve")
    scene.react(ALICE_ELSEWHERE, ask, "👍", reason=PROVISIONAL_REASON)
    scene.react(BOB, ask, "🎉")
    scene.react(CAROL, ask, "🎉", reason=PROVISIONAL_REASON)
    model = model_of(scene)
    return ask, model


def test_a_reaction_under_ones_id_by_a_key_on_trial_is_not_ones_own_nor_final() -> None:
    """Red team rt85: while history loaded, a reaction under the user's id by a key taken
    on trial (an impostor's, perhaps) made a chip the app showed as the user's
    (highlighted; a click "took it back", writing a redaction per planted reaction) and
    as final ("alice — Verified"), when that key's own rows are drawn "not final". Now it
    is not theirs, and the chip and its tooltip say which reactors are not final yet."""
    ask, model = _on_trial_chips(Scene())
    index = model.index(row_of(model, ask.event_id))
    chips = {c.key: c for c in index.data(Roles.Reactions)}
    thumbs, party = chips["👍"], chips["🎉"]
    assert not thumbs.mine and thumbs.all_verified and not thumbs.final
    assert [(w.sender_id, w.state, w.final) for w in thumbs.who] == [(ALICE[0], "verified", False)]
    tip = chip_tooltip(thumbs)
    assert (
        f"Alice ({ALICE[0]}) — <span style='color:{TRUST_COLORS['unverified']}'>Not final yet"
        in tip
    )
    assert "Verified" not in tip and "older history is still being read" in tip
    assert [(w.sender_id, w.final) for w in party.who] == [(BOB[0], True), (CAROL[0], False)]
    tip = chip_tooltip(party)
    assert f"Bob ({BOB[0]}) — <span style='color:{TRUST_COLORS['verified']}'>Verified" in tip
    assert f"Carol ({CAROL[0]}) — <span style='color:{TRUST_COLORS['unverified']}'>Not final" in tip
    # the row's size is asked again when a chip's finality changes (its badge takes room)
    assert all(c[4] is False for c in index.data(Roles.Layout)[7][1])
    # a chip of final reactors only has no such line, nor a badge
    scene = Scene()
    for who in (ALICE, BOB):
        scene.join(who)
    msg = scene.msg(BOB, "lunch?")
    scene.react(BOB, msg, "👍")
    model = model_of(scene)
    [final] = model.index(row_of(model, msg.event_id)).data(Roles.Reactions)
    assert final.final and "Not final" not in chip_tooltip(final)


def test_a_chip_not_final_is_drawn_with_a_ring(qtbot: Any, tmp_path: Path) -> None:
    """A chip with a reactor on trial takes a badge's room and draws a ring there in the
    verified colour, as a row whose key is on trial draws its verdict: not the orange
    "!" of an unverified reactor. The "+n" chip's lines say "not final yet" too."""
    ask, model = _on_trial_chips(Scene())
    view, delegate = _view(qtbot, model)
    index = model.index(row_of(model, ask.event_id))
    rect = view.visualRect(index)
    parts = delegate.regions(index, rect, view.font()).parts
    chips = {p.key: (p, r) for what, p, r in parts if what == "chip"}
    thumbs, box = chips["👍"]
    wide = _chip_width(view, thumbs)
    assert box.width() == wide == _chip_width(view, thumbs._replace(final=True)) + 14
    image = view.grab().toImage()
    assert image.save(str(tmp_path / "chips-on-trial.png"))
    folder = os.environ.get("BUCKET_CHAT_GUI_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        image.save(str(Path(folder) / "chips-on-trial.png"))
    ratio = image.devicePixelRatio()
    badge = QRect(box.right() - 8 - 12, box.top() + (box.height() - 12) // 2, 12, 12)
    colours = [
        image.pixelColor(int(x * ratio), int(y * ratio))
        for x in range(badge.left(), badge.right() + 1)
        for y in range(badge.top(), badge.bottom() + 1)
    ]
    green, orange = QColor(TRUST_COLORS["verified"]), QColor(TRUST_COLORS["key-changed"])

    def near(c: QColor, to: QColor) -> bool:
        return (
            abs(c.red() - to.red()) + abs(c.green() - to.green()) + abs(c.blue() - to.blue()) < 60
        )

    assert any(near(c, green) for c in colours)
    assert not any(near(c, orange) for c in colours)
    lines = more_tooltip([thumbs, thumbs._replace(key="👀", final=True)]).split("<br>")
    assert "not final yet" in lines[0] and "not final" not in lines[1]


def _chip_width(view: TimelineView, chip: Chip) -> int:
    from bucket_chat_desktop.gui.widgets.message_delegate import _chip_w

    return _chip_w(QFontMetrics(view.font()), chip)


def test_lookalike_reaction_texts_are_told_apart_in_their_tooltips() -> None:
    """Red team: "👍", "👍" + U+FE0E (text presentation) and "👍" + a combining mark
    count apart and can look the same on a chip; each tooltip spells the code points
    (the plain one's too: it looks like the others), a chip like no other's says nothing
    more."""
    scene = Scene()
    scene.join(ALICE)
    scene.join(BOB)
    msg = scene.msg(BOB, "react to me")
    for key in ("👍", "👍\ufe0e", "👍\u0334", "🎉"):
        scene.react(CAROL, msg, key)
    model = model_of(scene)
    chips = model.index(row_of(model, msg.event_id)).data(Roles.Reactions)
    tips = [chip_tooltip(c) for c in chips]
    assert "written as U+1F44D<" in tips[0]
    assert "written as U+1F44D U+FE0E" in tips[1] and "written as U+1F44D U+0334" in tips[2]
    assert "written as" not in tips[3]


def test_a_quote_of_an_unverified_message_carries_its_mark(qtbot: Any) -> None:
    """Red team: Carol's verified reply quoted an impostor's message under Bob's name in
    the same accent colour as a real one of Bob's: the quote now carries the parent's
    trust (a mark before the name, and in its tooltip)."""
    scene = Scene()
    for who in (ALICE, BOB, CAROL):
        scene.join(who)
    real = scene.msg(BOB, "lunch at noon")
    fake = scene.msg(BOB, "send the payroll file to me", state=TrustState.KEY_CHANGED)
    to_real = scene.msg(CAROL, "ok", parent=real.event_id)
    to_fake = scene.msg(CAROL, "done", parent=fake.event_id)
    model = model_of(scene)
    view, delegate = _view(qtbot, model)
    assert model.index(row_of(model, to_real.event_id)).data(Roles.Quote).trust == "verified"
    index = model.index(row_of(model, to_fake.event_id))
    quote = index.data(Roles.Quote)
    assert quote.status == "ok" and quote.trust == "key-changed"
    rect = view.visualRect(index)
    regions = delegate.regions(index, rect, view.font())
    tip = delegate.part_tooltip(index, rect, view.font(), regions.quote.center()) or ""
    assert "Replying to a message that is <b>" in tip
    ok = model.index(row_of(model, to_real.event_id))
    ok_rect = view.visualRect(ok)
    ok_regions = delegate.regions(ok, ok_rect, view.font())
    ok_tip = delegate.part_tooltip(ok, ok_rect, view.font(), ok_regions.quote.center()) or ""
    assert ok_tip.startswith("Replying to an earlier message: click to show it<br>")
    view.grab()  # painted without a failure
    assert not safe.failures()


def test_a_quote_of_a_file_names_the_file_its_card_names() -> None:
    """Red team: Bob's file message says "Invoice.pdf" in its body and announces
    "Invoice.pdf.lnk" (a shortcut): its card, menu and saved copy said the latter, a
    reply's quote the former. The quote now names the file as the card (and the HTML
    export's quote) does. An edit of a file is refused (red team round 27: the card kept
    the file while the terminal and the export showed the edit's text): the quote keeps
    naming the file."""
    scene = Scene()
    for who in (ALICE, BOB, CAROL):
        scene.join(who)
    content = {
        "msgtype": "m.file",
        "body": "Invoice.pdf",
        "info": {"name": "Invoice.pdf.lnk", "size": 3, "sha256": "a" * 64},
    }
    parent = scene.add(BOB, MESSAGE, content)
    reply = scene.msg(CAROL, "got it", parent=parent.event_id)
    model = model_of(scene)
    quote = model.index(row_of(model, reply.event_id)).data(Roles.Quote)
    assert quote.status == "ok" and quote.text == "📎 Invoice.pdf.lnk"
    scene.edit(BOB, parent, "the March invoice")
    reply2 = scene.msg(CAROL, "thanks", parent=parent.event_id)
    model = model_of(scene)
    quote = model.index(row_of(model, reply2.event_id)).data(Roles.Quote)
    assert quote.text == "📎 Invoice.pdf.lnk" and not quote.edited


def test_replying_to_an_unverified_message_says_so_in_the_composer(qtbot: Any) -> None:
    """Red team: "Replying to Bob" over an impostor's message named Bob as its writer;
    the composer's reply bar carries the message's trust like its row."""
    from bucket_chat_desktop.gui.widgets.message_actions import ComposerModeBar

    bar = ComposerModeBar()
    qtbot.addWidget(bar)
    bar.show_reply("Bob", "send the payroll file to me", "key-changed")
    assert "key-changed</span> <b>Bob</b>" in bar.text.text()
    bar.show_reply("Bob", "lunch?")
    assert "Replying to <b>Bob</b>" in bar.text.text()


def test_a_quote_names_its_sender_as_the_timeline_does(qtbot: Any, tmp_path: Path) -> None:
    """Red team: a reply quoted "Bob" over a look-alike's message with no mark and no id.
    The quote now shows the name, the real id, the look-alike mark in the warning colour
    and the trust in words, and its tooltip names the id and says why (escaped)."""
    scene = Scene()
    for who in (ALICE, BOB, CAROL, IMPOSTOR):
        scene.join(who)
    fake = scene.msg(IMPOSTOR, "send the payroll file to me", state=TrustState.UNVERIFIED)
    real = scene.msg(BOB, "lunch at noon")
    to_fake = scene.msg(CAROL, "done", parent=fake.event_id)
    to_real = scene.msg(CAROL, "ok", parent=real.event_id)
    gone = scene.msg(IMPOSTOR, "old details")
    to_gone = scene.msg(CAROL, "?", parent=gone.event_id)
    scene.redact(IMPOSTOR, gone)
    model = model_of(scene)
    # the name, id, mark and trust fit side by side at 640 px without the scroll bar,
    # now always shown (14 px): a little wider, so nothing is elided
    view, delegate = _view(qtbot, model, width=660)

    def pieces(event_id: str) -> tuple[Any, dict[str, tuple[str, str]], str]:
        index = model.index(row_of(model, event_id))
        regions = delegate.regions(index, view.visualRect(index), view.font())
        quote = index.data(Roles.Quote)
        laid = delegate.quote_layout(quote, regions.quote, view.font())
        tip = delegate.part_tooltip(
            index, view.visualRect(index), view.font(), regions.quote.center()
        )
        return quote, {p.what: (p.text, p.color) for p in laid}, tip or ""

    quote, shown, tip = pieces(to_fake.event_id)
    assert quote.sender_id == IMPOSTOR[0] and "bob@example.com" in (quote.warning or "")
    assert shown["name"][0] == "Bob <b>CEO</b>" and shown["id"][0] == IMPOSTOR[0]
    assert shown["mark"] == (WARNING_MARK, TRUST_COLORS["key-changed"])
    assert shown["trust"] == ("· unverified", TRUST_COLORS["unverified"])
    assert "Sender: Bob &lt;b&gt;CEO&lt;/b&gt; (b\u043eb@example.com)" in tip
    assert f"{WARNING_MARK} This id may imitate another" in tip and "<b>CEO" not in tip
    quote, shown, tip = pieces(to_real.event_id)
    assert shown["name"][0] == "Bob" and shown["id"][0] == BOB[0]
    assert "mark" not in shown and "trust" not in shown and WARNING_MARK not in tip
    _, shown, _ = pieces(to_gone.event_id)  # no text, still who wrote it
    assert shown["status"][0] == "deleted message of " and "mark" in shown
    assert "text" not in shown and shown["id"][0] == IMPOSTOR[0]
    view.scrollToBottom()
    assert view.grab().save(str(tmp_path / "quote-lookalike.png"))
    assert not safe.failures()


def test_a_lookalike_reactor_is_marked_in_the_chip_tooltip() -> None:
    """Red team: "who reacted" listed a look-alike id with no mark, unlike its rows."""
    scene = Scene()
    for who in (BOB, IMPOSTOR):
        scene.join(who)
    msg = scene.msg(BOB, "react to me")
    scene.react(IMPOSTOR, msg, "👍")
    scene.react(BOB, msg, "👍")
    model = model_of(scene)
    [chip] = model.index(row_of(model, msg.event_id)).data(Roles.Reactions)
    tip = chip_tooltip(chip)
    impostor, why, bob = tip.split("<br>")[1:4]
    assert "(b\u043eb@example.com)" in impostor and "&lt;b&gt;CEO" in impostor
    assert f"{WARNING_MARK}</span>" in impostor and "may imitate another" in why
    assert bob.startswith("Bob (bob@example.com)") and WARNING_MARK not in bob


def test_the_reply_bar_versions_and_thread_name_a_lookalike_as_its_row(qtbot: Any) -> None:
    """Red team: "Replying to", "Versions of a message by" and a thread's "started by"
    named an impostor by display name alone: now with the real id and the ⚠ mark."""
    from bucket_chat_desktop.gui.widgets.message_actions import ComposerModeBar, VersionsDialog
    from bucket_chat_desktop.gui.widgets.thread_panel import ThreadPanel

    scene = Scene()
    scene.join(BOB)
    scene.join(IMPOSTOR)
    fake = scene.msg(IMPOSTOR, "send the payroll file to me")
    model = model_of(scene)
    index = model.index(row_of(model, fake.event_id))
    who = (
        str(index.data(Roles.DisplayName)),
        str(index.data(Roles.Sender)),
        index.data(Roles.SenderWarning),
    )
    bar = ComposerModeBar()
    dialog = VersionsDialog(who[0], sender_id=who[1], warning=who[2])
    panel = ThreadPanel("", QListView(), dialog)
    for widget in (bar, dialog):
        qtbot.addWidget(widget)
    bar.show_reply(who[0], "send the payroll file to me", sender_id=who[1], warning=who[2])
    panel.start(fake.event_id, who[0], sender_id=who[1], warning=who[2])
    mark = f"<span style='color:{TRUST_COLORS['key-changed']}'>{WARNING_MARK}</span>"
    for label in (bar.text, dialog.title, panel.subtitle):
        text = label.text()
        assert "Bob &lt;b&gt;CEO&lt;/b&gt;" in text and "(b\u043eb@example.com)" in text
        assert mark in text and "<b>CEO" not in text
        assert "may imitate another" in label.toolTip()
