"""Qt's model tester on every list model of the GUI, fed with real audited rooms.

The C++ ``QAbstractItemModelTester`` stays connected to the model and re-checks it after
every signal, so each feeding path (reset, inserts at the top by ``fetchMore``, appends,
in-place refreshes, local echoes coming and going) is checked as it happens; its
complaints are Qt warnings, which fail any test (``qt_log_level_fail`` in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import roster_of
from nacl.signing import SigningKey
from PySide6.QtCore import QModelIndex, QPersistentModelIndex
from PySide6.QtGui import QImage, QPainter

from bucket_chat_desktop.gui.models.members_model import DeviceState, MemberRoles, MembersModel
from bucket_chat_desktop.gui.models.rooms_model import RoomItem, RoomRoles, RoomsModel
from bucket_chat_desktop.gui.models.timeline_model import PAGE, Roles, TimelineModel
from bucket_chat_desktop.index import TimelineRow
from bucket_chat_desktop.protocol.audit import Assessed, AuditResult, RoomLedger, TrustState
from bucket_chat_desktop.protocol.canonical import b64encode
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event, Malformed
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.relations import REACTION
from bucket_chat_desktop.protocol.room_state import RoomState
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.events import SendKept, ShownEvent
from bucket_chat_desktop.sync.writer import Draft, RoomWriter
from bucket_chat_desktop.timestamps import late_arrival, late_copy

TESTERS = pytest.mark.parametrize("force_py", [False, True], ids=["qt-tester", "py-tester"])

ROOM = "models"
ALICE = SigningKey(b"\x01" * 32)
BOB = SigningKey(b"\x02" * 32)
BOB_PHONE = SigningKey(b"\x04" * 32)
CAROL = SigningKey(b"\x03" * 32)
T0 = 1_764_000_000_000
AnyIndex = QModelIndex | QPersistentModelIndex


def key_text(key: SigningKey) -> str:
    return b64encode(bytes(key.verify_key))


class Clock:
    def __init__(self, start: int = T0, step: int = 60_000) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> int:
        self.now += self.step
        return self.now


def writer(
    storage: LocalStorage, user: str, key: SigningKey, name: str, clock: Clock
) -> RoomWriter:
    return RoomWriter(storage, ROOM, user, key, displayname=name, clock=clock)


async def _read(storage: LocalStorage) -> RoomLedger:
    ledger = RoomLedger(ROOM)
    for item in await storage.list_objects(f"rooms/{ROOM}/logs/"):
        ledger.add_segment(item.path, await storage.get(item.path))
    return ledger


class Room:
    """A real room on disk and its writers, for feeding the models."""

    def __init__(self, root: Path) -> None:
        self.storage = LocalStorage(root)
        self.clock = Clock()
        self.alice = writer(self.storage, "alice@example.com", ALICE, "Alice", self.clock)
        self.bob = writer(self.storage, "bob@example.com", BOB, "Bob", self.clock)
        self.carol = writer(self.storage, "carol@example.com", CAROL, "Carol", self.clock)

    def run(self, coro: object) -> object:
        return asyncio.run(coro)  # type: ignore[arg-type]

    def audit(self) -> AuditResult:
        ledger = asyncio.run(_read(self.storage))
        return ledger.audit()


@pytest.fixture
def room(tmp_path: Path) -> Room:
    return Room(tmp_path / "store")


def _chatter(room: Room, messages: int) -> AuditResult:
    """Three people talk: ``messages`` messages each, in batches (several per segment)."""

    async def go() -> None:
        for w in (room.alice, room.bob, room.carol):
            await w.send([])  # join
        done = 0
        while done < messages:
            n = min(37, messages - done)
            for w in (room.alice, room.bob, room.carol):
                await w.send([Draft.text(f"{w.user_id} says {done + i}") for i in range(n)])
            done += n

    asyncio.run(go())
    return room.audit()


def _ids(model: TimelineModel) -> list[str]:
    return [str(model.index(i).data(Roles.EventId)) for i in range(model.rowCount())]


def _cached(items: list[Assessed]) -> list[TimelineRow]:
    return [
        TimelineRow(pos, a.event, a.state, a.reason, a.path, a.line) for pos, a in enumerate(items)
    ]


def lines_run(fn: Callable[[], Any]) -> int:
    """Python lines run while ``fn`` runs (``sys.settrace``): work counted, not timed."""
    count = 0

    def trace(_frame: Any, event: str, _arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


# -- rooms ------------------------------------------------------------------------------------


@TESTERS
def test_rooms_model(qtmodeltester: Any, force_py: bool) -> None:
    model = RoomsModel()
    qtmodeltester.check(model, force_py=force_py)
    for i, name in enumerate(["General", "Project Falcon", "Random"]):
        model.add(RoomItem(f"s{i % 2}/room-{i}", name, f"Storage {i % 2}"))
    model.add(RoomItem("s0/room-0", "duplicate", "Storage 0"))  # ignored
    assert model.rowCount() == 3
    model.update("s1/room-1", unread=3, preview_text="hi", last_ts=T0, findings=2)
    model.update("s1/room-1", unread=3)  # no change, no signal
    model.update("nope/room", unread=1)  # unknown: ignored
    model.set_storage_online("s0", False)
    assert model.index(0).data(RoomRoles.Online) is False
    assert model.index(1).data(RoomRoles.Online) is True
    assert model.total_unread() == 3
    model.remove("s1/room-1")
    model.remove("s1/room-1")
    assert model.room_keys() == ["s0/room-0", "s0/room-2"]
    assert model.index(5).data(RoomRoles.Name) is None


def test_a_storage_going_offline_is_not_quadratic_in_its_rooms(qtbot: Any) -> None:
    """Red team rt68: ``set_storage_online`` called ``update`` per room, and ``update``
    found the room's row by walking the list (``row_of``): n²/2 steps each time the
    storage's status flipped or its error text changed (every failed or recovered poll
    of a flaky or hostile provider). 5,000 rooms: 0.6 s per flip; 20,000: 8 s. Counted as
    Python lines run, not timed."""
    rooms = 3_000
    model = RoomsModel()
    for i in range(rooms):
        storage = "s1" if i % 3 else "s2"
        model.add(RoomItem(f"{storage}/room-{i:05d}", f"Room {i}", "Team", last_ts=i))
    changes: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda top, bottom, *_: changes.append((top.row(), bottom.row())))
    lines = lines_run(lambda: model.set_storage_online("s1", False))
    assert lines <= 200 * rooms, f"{lines:,} Python lines run to mark {rooms:,} rooms offline"
    online = {k: model.item(k).online for k in model.room_keys()}  # type: ignore[union-attr]
    assert online == {k: k.startswith("s2/") for k in model.room_keys()}
    assert changes == [(1, rooms - 1)]  # one signal over the rooms marked
    changes.clear()
    model.set_storage_online("s1", False)  # no change, no signal
    assert changes == []
    # the rows stay known as rooms come and go
    model.remove("s2/room-00000")
    model.remove("s1/room-01000")
    assert [model.row_of(k) for k in model.room_keys()] == list(range(rooms - 2))
    assert model.row_of("s1/room-01000") == -1


def test_the_rooms_model_marks_names_that_look_like_another_rooms_as_they_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Red team rt60: two rooms the user is in, on two storages, both named "Payroll"
    read the same in the room list. Each is marked (``NameWarning``), told apart by its
    id and storage (``Place``, ``marked_name``); a rename or a room left judges again
    only the rooms sharing the old or new look, never the whole list."""
    import bucket_chat_desktop.gui.models.rooms_model as rooms_model

    model = RoomsModel()
    for n in range(2_000):  # a long list of rooms of other names
        model.add(RoomItem(f"s0/room-{n}", f"Room {n}", "Company"))
    model.add(RoomItem("s0/salaries", "Payroll", "Company"))
    model.add(RoomItem("s1/pay-2", "", "Partner share"))  # its name is not known yet
    assert model.item("s0/salaries").name_warning == ""
    judged: list[int] = []
    real = rooms_model.name_lookalikes

    def counting(rooms: Any, judge: Any = None) -> dict[str, str]:
        rooms = list(rooms)
        judged.append(len(rooms))
        return real(rooms, judge)

    monkeypatch.setattr(rooms_model, "name_lookalikes", counting)
    model.update("s1/pay-2", name="Payr\u043ell")  # a Cyrillic "о": only it is marked
    assert judged == [2]
    row = model.index(model.row_of("s1/pay-2"))
    assert row.data(RoomRoles.NameWarning) == (
        "Its name looks like the name of another room you are in (salaries on Company)."
    )
    assert row.data(RoomRoles.Place) == "pay-2 · Partner share"
    assert "<br>⚠ Its name looks like the name of another room" in row.data(0x0003)
    assert model.item("s1/pay-2").marked_name == "⚠ Payr\u043ell (pay-2 · Partner share)"
    assert model.item("s0/salaries").name_warning == ""  # plain, imitated: not marked
    model.update("s1/pay-2", name="Payroll")  # the same letters: both marked
    assert model.item("s0/salaries").name_warning.endswith("(pay-2 on Partner share).")
    assert model.item("s0/salaries").marked_name == "⚠ Payroll (salaries · Company)"
    model.update("s1/pay-2", name="Partner payroll")
    assert model.item("s1/pay-2").name_warning == model.item("s0/salaries").name_warning == ""
    model.add(RoomItem("s1/payments", "Invoices", "Partner share"))  # the name of an id
    model.update("s1/pay-2", name="Payments")
    assert model.item("s1/pay-2").name_warning == (
        "Its name looks like the id of another room you are in (payments on Partner share)."
    )
    model.remove("s1/payments")
    assert model.item("s1/pay-2").name_warning == ""
    assert max(judged) <= 3, judged  # the rooms of one look, never the 2,000 others
    assert model.item("s0/room-7").name_warning == ""
    assert [r.key for r in model.named_rooms()][-2:] == ["s0/salaries", "s1/pay-2"]


class Recording(QPainter):  # paints as usual, and keeps the texts drawn
    def __init__(self, device: QImage) -> None:
        super().__init__(device)
        self.texts: list[str] = []

    def drawText(self, *args: Any) -> None:
        self.texts.append(str(args[-1]))
        super().drawText(*args)


def room_list(qtbot: Any, width: int) -> tuple[RoomsModel, Any, Any]:
    """One room ("s0/falcon") in a real list view with the room list's own delegate."""
    from PySide6.QtWidgets import QListView

    from bucket_chat_desktop.gui.widgets.room_delegate import RoomDelegate

    model = RoomsModel()
    model.add(RoomItem("s0/falcon", "Project Falcon", "Storage 0"))
    view = QListView()
    qtbot.addWidget(view)
    view.setModel(model)
    delegate = RoomDelegate(view)
    view.setItemDelegate(delegate)
    view.resize(width, 200)
    view.show()
    return model, view, delegate


def test_the_room_list_badge_shows_counts_as_the_count_rule_caps_them(qtbot: Any) -> None:
    """One rule for the unread badge: numbers up to 99, then "99+"; a count stops at
    ``UNREAD_CAP`` (100), the first count the badge shows as "99+". Painted by the room
    list's own delegate in a real list view."""
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QStyleOptionViewItem

    from bucket_chat_desktop.protocol.unread import UNREAD_CAP

    model, view, delegate = room_list(qtbot, 320)

    def texts(unread: int) -> list[str]:
        model.update("s0/falcon", unread=unread)
        image = QImage(320, 58, QImage.Format.Format_ARGB32)
        painter = Recording(image)
        option = QStyleOptionViewItem()
        option.initFrom(view)
        option.rect = view.visualRect(model.index(0))
        option.rect.moveTop(0)
        delegate.paint(painter, option, model.index(0))
        painter.end()
        return painter.texts

    assert "7" in texts(7) and "99" in texts(UNREAD_CAP - 1)  # every count below the cap
    capped = texts(UNREAD_CAP)  # where a count stops: more than the 99 shown
    assert "99+" in capped and str(UNREAD_CAP) not in capped
    assert UNREAD_CAP == 100


# -- timeline ---------------------------------------------------------------------------------


@TESTERS
def test_timeline_model_every_feeding_path(qtmodeltester: Any, room: Room, force_py: bool) -> None:
    result = _chatter(room, 160)  # 3 joins + 480 messages
    items = result.timeline
    assert len(items) == 483 and all(a.state is TrustState.VERIFIED for a in items)
    model = TimelineModel(key_text(ALICE))
    qtmodeltester.check(model, force_py=force_py)

    # 1. first audit of a room: a reset showing the newest page, older pages hidden
    model.set_timeline(items[:300], complete=False)
    assert model.total == 300
    assert _ids(model) == [a.event.event_id for a in items[300 - model.rowCount() : 300]]
    assert model.rowCount() >= PAGE

    # 2. back-fill by scrolling up: older pages are inserted at the top
    while model.can_fetch_older():
        model.fetch_older()
    assert _ids(model) == [a.event.event_id for a in items[:300]]
    assert model.index(0).data(Roles.DayBreak) is True

    # 3. incremental audit: appended at the end
    model.append(items[300:310])
    assert _ids(model)[-1] == items[309].event.event_id

    # 4. local echo of two messages this device is sending, then failing
    pending = _prepare(room, ["one", "two"])
    model.set_echo(pending, "sending")
    assert [model.index(i).data(Roles.Echo) for i in (310, 311)] == ["sending", "sending"]
    model.set_echo(pending, "failed", "no network")
    assert model.index(311).data(Roles.EchoError) == "no network"
    model.set_echo(pending, "sent")  # no change until the room reads them

    # 5. a full re-audit whose order keeps what is shown: appended in place, echoes kept
    model.set_timeline(items[:330], complete=True)
    assert model.total == 330 + 2
    assert _ids(model)[-2:] == [ev.event_id for ev in pending]

    # 6. the echoed events arrive: confirmed rows replace the echoes
    asyncio.run(room.alice.publish(pending))
    confirmed = [
        a for a in room.audit().timeline if a.event.event_id in {e.event_id for e in pending}
    ]
    model.append(confirmed)
    assert not any(model.index(i).data(Roles.Echo) for i in range(model.rowCount()))
    assert _ids(model)[-2:] == [ev.event_id for ev in pending]

    # 7. a re-audit that reorders history (an event vanished): reset, newest page shown
    shorter = items[:100] + items[101:330]
    model.set_timeline(shorter, complete=True)
    assert model.total == len(shorter)
    assert _ids(model)[-1] == shorter[-1].event.event_id


def test_timeline_model_fetch_more_during_a_change(qtmodeltester: Any, room: Room) -> None:
    items = _chatter(room, 300).timeline  # 903 events: four and a half pages
    model = TimelineModel(key_text(ALICE))  # the model as it is
    model.set_timeline(items, complete=True)
    qtmodeltester.check(model)  # fetches a page or two itself, correctly
    before, hidden = model.rowCount(), model.total - model.rowCount()
    assert hidden > PAGE
    model.fetch_older()  # what scrolling to the top does
    assert model.rowCount() == before + PAGE
    assert len(set(_ids(model))) == model.rowCount()


class Deferred:
    """A pager whose replies wait until the test delivers them (as the engine's worker
    answers a moment later), over a room's whole timeline."""

    def __init__(self, items: list[Assessed]) -> None:
        self.items = items
        self.asked: list[tuple[int, int, Any]] = []

    def __call__(self, start: int, stop: int, reply: Any) -> None:
        self.asked.append((start, stop, reply))

    def answer(self, rows: Any = "page") -> None:
        start, stop, reply = self.asked.pop(0)
        if rows == "page":
            rows = [ShownEvent(a, a.event) for a in self.items[max(0, start) : stop]]
        reply(rows)


def _paged(
    qtmodeltester: Any, room: Room
) -> tuple[list[Assessed], Deferred, TimelineModel, list[ShownEvent]]:
    """A 903-event room's timeline model showing its newest page, paged by a ``Deferred``
    pager (the page ahead asked for, not answered yet)."""
    items = list(_chatter(room, 300).timeline)
    pager = Deferred(items)
    model = TimelineModel(key_text(ALICE))
    qtmodeltester.check(model)
    newest = [ShownEvent(a, a.event) for a in items[-PAGE:]]
    model.set_audit(len(items), newest, True, None, pager)
    return items, pager, model, newest


def test_timeline_model_holds_what_it_shows_and_pages_in_the_rest(
    qtmodeltester: Any, room: Room
) -> None:
    items, pager, model, newest = _paged(qtmodeltester, room)
    assert model.rowCount() == PAGE and model.total == len(items)
    assert model.held == PAGE  # not the room: the page ahead is on its way
    assert [(a, b) for a, b, _ in pager.asked] == [(903 - 2 * PAGE, 903 - PAGE)]
    pager.answer()
    assert model.held == 2 * PAGE and model.rowCount() == PAGE

    model.fetch_older()  # scrolled to the top: the page fetched ahead goes in at once
    assert model.rowCount() == 2 * PAGE and _ids(model)[0] == items[903 - 2 * PAGE].event.event_id
    model.fetch_older()  # the next page is not here yet: it goes in when it arrives
    assert model.rowCount() == 2 * PAGE
    pager.answer()
    assert model.rowCount() == 3 * PAGE
    assert model.held <= model.rowCount() + PAGE

    # a re-audit (same order) while a page is on its way: the old reply is dropped
    assert pager.asked
    model.set_audit(len(items), newest, True, None, pager)
    assert model.rowCount() == 3 * PAGE  # what is shown stays (its verdicts: a new page)
    stale = pager.asked.pop(0)
    stale[2]([ShownEvent(a, a.event) for a in items[:5]])
    assert _ids(model) == [a.event.event_id for a in items[903 - 3 * PAGE :]]
    while pager.asked:
        pager.answer()
    assert _ids(model) == [a.event.event_id for a in items[903 - 3 * PAGE :]]
    assert model.held == 4 * PAGE  # a page above, fetched ahead under the first audit

    # a re-audit that changes old verdicts: until its page of what is shown arrives,
    # scrolling up shows none of the rows fetched under the old audit
    pager.items = [a._replace(state=TrustState.KEY_CHANGED) for a in items[:-PAGE]]
    pager.items += items[-PAGE:]
    model.set_audit(len(items), newest, True, None, pager)
    model.fetch_older()
    assert model.rowCount() == 3 * PAGE
    while pager.asked:
        pager.answer()
    states = {model.index(i).data(Roles.Trust) for i in range(model.rowCount() - PAGE)}
    assert states == {TrustState.KEY_CHANGED.value}
    assert len(set(_ids(model))) == model.rowCount()  # every row once, in order
    assert _ids(model) == [a.event.event_id for a in items[903 - model.rowCount() :]]

    # an audit replaced on the engine's side answers None: nothing changes
    model.fetch_older()
    while pager.asked:
        pager.answer(None)
    assert model.rowCount() >= 3 * PAGE

    # a cached body that is not the audited event shows as damaged, never verified
    bad = Malformed(Kind.BAD_SCHEMA, "not the event the audit checked")
    shown = [ShownEvent(a, a.event) for a in items[-PAGE:-1]] + [ShownEvent(items[-1], bad)]
    model = TimelineModel(key_text(ALICE))
    model.set_audit(len(items), shown, True, None, None)
    last = model.index(model.rowCount() - 1)
    assert last.data(Roles.EventId) == items[-1].event.event_id
    assert last.data(Roles.Trust) == TrustState.INVALID.value
    assert "not the event the audit checked" in last.data(Roles.TrustReason)
    assert "could not be read" in last.data(Roles.Body)


@TESTERS
def test_a_kept_send_shows_sending_until_its_events_take_its_place(
    qtmodeltester: Any, room: Room, force_py: bool
) -> None:
    """A send kept before it can be signed (the room still read: ``SendKept``) shows as
    "sending" at once, one row per message (a reaction has none), never twice; once
    queued, its events' echo takes its place; refused, its row goes."""
    items = _chatter(room, 5).timeline
    model = TimelineModel(key_text(ALICE))
    qtmodeltester.check(model, force_py=force_py)
    model.set_timeline(items, complete=False)
    shown = model.rowCount()
    me = ("alice@example.com", key_text(ALICE))
    drafts = ((MESSAGE, {"body": "kept", "msgtype": "m.text"}), (REACTION, {"reaction": "+"}))
    model.set_kept(SendKept(ROOM, 1, *me, drafts, True))
    model.set_kept(SendKept(ROOM, 1, *me, drafts, True))  # said again (a restart): once
    assert model.rowCount() == shown + 1
    row = model.row(shown)
    assert (row.body, row.echo, row.sender_id) == ("kept", "sending", me[0])
    pending = _prepare(room, ["kept"])
    model.set_echo(pending, "sending")
    model.set_kept(SendKept(ROOM, 1, *me, (), False))
    assert _ids(model)[shown:] == [pending[0].event_id]
    assert model.row(shown).echo == "sending"
    model.set_kept(SendKept(ROOM, 2, *me, drafts, True))
    model.set_kept(SendKept(ROOM, 2, *me, drafts, False))  # refused: nothing queued
    assert _ids(model)[shown:] == [pending[0].event_id]


@TESTERS
def test_a_kept_send_not_sent_yet_says_why_until_it_is_tried_again(
    qtmodeltester: Any, room: Room, force_py: bool
) -> None:
    """A kept send whose try failed (``SendKept.error``) shows "waiting" with the reason
    on the rows already shown (not "sending" for the whole run), and "sending" again,
    with no reason, when it is tried again."""
    items = _chatter(room, 5).timeline
    model = TimelineModel(key_text(ALICE))
    qtmodeltester.check(model, force_py=force_py)
    model.set_timeline(items, complete=False)
    shown = model.rowCount()
    me = ("alice@example.com", key_text(ALICE))
    drafts = ((MESSAGE, {"body": "kept", "msgtype": "m.text"}),)
    why = "not sent yet: the storage did not answer; it will be tried again"
    model.set_kept(SendKept(ROOM, 1, *me, drafts, True))
    model.set_kept(SendKept(ROOM, 1, *me, drafts, True, why))
    assert model.rowCount() == shown + 1
    index = model.index(shown)
    assert (index.data(Roles.Echo), index.data(Roles.EchoError)) == ("waiting", why)
    model.set_kept(SendKept(ROOM, 1, *me, drafts, True))  # tried again
    assert (index.data(Roles.Echo), index.data(Roles.EchoError)) == ("sending", "")
    model.set_kept(SendKept(ROOM, 2, *me, drafts, True, why))  # said first at a start
    assert model.row(shown + 1).echo == "waiting"
    assert model.rowCount() == shown + 2


@TESTERS
def test_a_kept_send_shown_before_the_cached_rows_does_not_hide_them(
    qtmodeltester: Any, room: Room, force_py: bool
) -> None:
    """Review a, B2: at a start the kept send's row (``resume_held``) can come before
    the index's rows; those still show, above it, not the kept message alone until the
    room's audit ends."""
    items = _chatter(room, 5).timeline
    model = TimelineModel(key_text(ALICE))
    qtmodeltester.check(model, force_py=force_py)
    me = ("alice@example.com", key_text(ALICE))
    drafts = ((MESSAGE, {"body": "kept", "msgtype": "m.text"}),)
    model.set_kept(SendKept(ROOM, 1, *me, drafts, True))
    model.show_cached(_cached(items))
    assert _ids(model) == [a.event.event_id for a in items] + ["kept-1-0"]
    assert model.row(len(items)).echo == "sending"
    model.show_cached(_cached(items))  # real rows shown now: ignored
    assert model.rowCount() == len(items) + 1


def _prepare(room: Room, texts: list[str]) -> list[Event]:
    async def go() -> list[Event]:
        await room.alice.load_head()
        return room.alice.prepare([Draft.text(t) for t in texts])

    return asyncio.run(go())


@TESTERS
def test_timeline_model_from_cache_then_audit(
    qtmodeltester: Any, room: Room, force_py: bool
) -> None:
    items = _chatter(room, 90).timeline
    model = TimelineModel(key_text(ALICE))
    qtmodeltester.check(model, force_py=force_py)
    model.show_cached(_cached(items[-120:]))  # the index's newest rows, before any audit
    assert model.rowCount() == 120
    assert model.index(0).data(Roles.Trust) == "verified"
    model.show_cached(_cached(items))  # ignored once something is shown
    assert model.rowCount() == 120
    # the cached rows are a contiguous run
    model.set_timeline(items, complete=True, names=roster_of(items).names)
    assert model.total == len(items)
    assert _ids(model)[-1] == items[-1].event.event_id
    own = [model.index(i).data(Roles.Own) for i in range(model.rowCount())]
    assert any(own) and not all(own)
    names = {model.index(i).data(Roles.DisplayName) for i in range(model.rowCount())}
    assert names <= {"Alice", "Bob", "Carol"}


# -- members ----------------------------------------------------------------------------------


def _member_room(room: Room) -> AuditResult:
    async def go() -> None:
        await room.alice.send([Draft.text("hello")])
        await room.bob.send([Draft.text("hi")])
        await room.bob.add_device(key_text(BOB_PHONE), device_name="Bob's phone")
        phone = writer(room.storage, "bob@example.com", BOB_PHONE, "Bob", room.clock)
        phone.confirmed = frozenset({key_text(BOB)})  # Bob confirmed his laptop on it
        await phone.send([Draft.text("from my phone")])
        await room.carol.send([Draft.text("bye soon")])

    asyncio.run(go())
    return room.audit()


def test_a_statement_nobody_accepted_makes_no_device_verified(room: Room) -> None:
    """Bob (verified) states that he added a device whose key is Alice's real one, and
    the room's audit authorizes nothing (Alice never accepted). The members panel listed
    that key on Bob's card as a verified device of his, before it wrote a line."""

    async def go() -> None:
        await room.alice.send([Draft.text("hello")])
        await room.bob.send([Draft.text("hi")])
        await room.bob.add_device(key_text(ALICE), device_name="Bob's phone")
        await room.bob.add_device(key_text(BOB_PHONE), device_name="Bob's tablet")

    asyncio.run(go())
    result = room.audit()
    assert key_text(ALICE) not in result.authorized["bob@example.com"]
    model = MembersModel("carol@example.com", key_text(CAROL))
    model.set_state(roster_of(result))
    bob = model.member(model.row_of("bob@example.com"))
    states = {d.key: d.state for d in bob.devices}
    assert states[key_text(BOB)] is DeviceState.VERIFIED
    assert states[key_text(ALICE)] is DeviceState.UNVERIFIED
    assert states[key_text(BOB_PHONE)] is DeviceState.UNVERIFIED
    assert bob.state is DeviceState.VERIFIED
    tablet = next(d for d in bob.devices if d.key == key_text(BOB_PHONE))
    assert tablet.events == 0 and "has not accepted" in tablet.reason


@TESTERS
def test_members_model_fold_and_updates(qtmodeltester: Any, room: Room, force_py: bool) -> None:
    result = _member_room(room)
    model = MembersModel("alice@example.com", key_text(ALICE))
    qtmodeltester.check(model, force_py=force_py)
    model.set_state(None)
    assert model.rowCount() == 0

    # incremental (as the engine's state thread folds appends): the first events, then
    # the rest appended (inserts in sorted place)
    fold = RoomState()
    fold.add(result.timeline[:2])
    model.set_state(fold.roster())
    assert [m.user_id for m in model.members] == ["alice@example.com"]
    fold.add(result.timeline[2:])
    model.set_state(fold.roster())
    fold.add(result.timeline[2:])  # the same events again: counted once
    model.set_state(fold.roster())
    assert [m.display_name for m in model.members] == ["Alice", "Bob", "Carol"]
    bob = model.member(model.row_of("bob@example.com"))
    assert [d.events for d in sorted(bob.devices, key=lambda d: d.number)] == [3, 2]
    phone = next(d for d in bob.devices if d.key == key_text(BOB_PHONE))
    assert phone.name == "Bob's phone" and phone.introduced_by == key_text(BOB)
    assert phone.state is DeviceState.VERIFIED
    alice = model.index(model.row_of("alice@example.com"))
    assert alice.data(MemberRoles.Own) is True
    assert alice.data(MemberRoles.State) == "verified"
    assert alice.data(MemberRoles.DeviceCount) == 1

    # the user confirms Bob's laptop: one row changes
    model.confirm("bob@example.com", key_text(BOB))
    bob = model.member(model.row_of("bob@example.com"))
    assert {d.key: d.state for d in bob.devices}[key_text(BOB)] is DeviceState.CONFIRMED
    assert bob.state is DeviceState.VERIFIED  # the phone is not confirmed yet
    model.confirm("bob@example.com", key_text(BOB_PHONE))
    assert model.member(model.row_of("bob@example.com")).state is DeviceState.CONFIRMED

    # Carol leaves: her row is removed
    asyncio.run(room.carol.send([Draft(MEMBER, {"membership": "leave"})]))
    full = room.audit()
    fold.add(full.timeline[-1:])
    model.set_state(fold.roster())
    assert model.row_of("carol@example.com") == -1

    # Bob renames himself "Zed": members reorder (a reset)
    asyncio.run(room.bob.send([Draft(MEMBER, {"membership": "join", "displayname": "Zed"})]))
    model.set_state(roster_of(room.audit()))
    assert [m.display_name for m in model.members] == ["Alice", "Zed"]


def test_members_model_key_changed_and_unintroduced_leave(qtmodeltester: Any, room: Room) -> None:
    _member_room(room)
    intruder = SigningKey(b"\x09" * 32)
    fake = writer(room.storage, "alice@example.com", intruder, "Alice", room.clock)
    asyncio.run(fake.send([Draft(MEMBER, {"membership": "leave"})]))  # join, then "leave"
    model = MembersModel("bob@example.com", key_text(BOB))
    qtmodeltester.check(model)
    # Without pins two keys claim alice: a conflict, neither device is trusted.
    model.set_state(roster_of(room.audit()))
    alice = model.member(model.row_of("alice@example.com"))
    assert {d.state for d in alice.devices} == {DeviceState.DISPUTED}
    assert alice.state is DeviceState.DISPUTED
    # Bob's device pinned alice's key earlier: only the intruder's key is not hers.
    pinned = {"alice@example.com": {key_text(ALICE)}}
    model.set_state(roster_of(asyncio.run(_read(room.storage)).audit(pinned)))
    alice = model.member(model.row_of("alice@example.com"))  # a key nobody introduced
    assert alice.state is DeviceState.KEY_CHANGED  # cannot make her look gone
    states = {d.key: d.state for d in alice.devices}
    assert states == {
        key_text(ALICE): DeviceState.VERIFIED,
        key_text(intruder): DeviceState.KEY_CHANGED,
    }
    assert alice.devices[0].key == key_text(intruder)  # the device in use first
    assert alice.devices[0].can_confirm
    bob = model.member(model.row_of("bob@example.com"))
    assert [d.own for d in sorted(bob.devices, key=lambda d: d.number)] == [True, False]


# -- one room state for the members panel, the timeline and the room list -------------------


def _membership_room(room: Room) -> AuditResult:
    """Alice and Bob; Bob signs an "invite" and Carol a "leave", each carrying a display
    name (verified, but not joins), then Dave is banned: every event is signed and
    verified."""

    async def go() -> None:
        await room.alice.send([Draft.text("hello")])
        await room.bob.send([Draft.text("hi")])
        await room.bob.send([Draft(MEMBER, {"membership": "invite", "displayname": "Zed"})])
        await room.carol.send([Draft(MEMBER, {"membership": "leave", "displayname": "Alice"})])
        dave = writer(room.storage, "dave@example.com", SigningKey(b"\x05" * 32), "", room.clock)
        await dave.send([Draft(MEMBER, {"membership": "ban"})])

    asyncio.run(go())
    return room.audit()


def test_timeline_and_members_use_one_display_name_rule(room: Room) -> None:
    """Only a verified join names its sender: the timeline used to take the name of any
    verified member event, so Bob's "invite" renamed him "Zed" in the timeline while the
    members panel still said "Bob"."""
    result = _membership_room(room)
    assert {a.state for a in result.timeline} == {TrustState.VERIFIED}
    timeline = TimelineModel()
    timeline.set_timeline(result.timeline, True, names=roster_of(result).names)
    members = MembersModel()
    members.set_state(roster_of(result))
    shown = {
        str(timeline.index(i).data(Roles.Sender)): timeline.index(i).data(Roles.DisplayName)
        for i in range(timeline.rowCount())
    }
    assert shown == {
        "alice@example.com": "Alice",
        "bob@example.com": "Bob",
        "carol@example.com": "Carol",
        "dave@example.com": "dave@example.com",
    }
    listed = {m.user_id: m.display_name for m in members.members}
    assert listed == {"alice@example.com": "Alice", "bob@example.com": "Bob"}
    assert all(shown[user] == name for user, name in listed.items())
    # appended events follow the same rule
    grown = TimelineModel()
    grown.set_timeline(result.timeline[:2], False, names=roster_of(result.timeline[:2]).names)
    grown.append(result.timeline, names=roster_of(result).names)
    assert grown.names.shown("bob@example.com") == "Bob"


def test_membership_rows_and_previews_are_worded_once(room: Room) -> None:
    """The room list's preview glued "ed" to the membership ("leaveed", "baned")."""
    from bucket_chat_desktop.gui.controller import _preview

    result = _membership_room(room)
    timeline = TimelineModel()
    timeline.set_timeline(result.timeline, True)
    members = [
        (str(timeline.index(i).data(Roles.Sender)), timeline.index(i).data(Roles.Body))
        for i in range(timeline.rowCount())
        if timeline.index(i).data(Roles.Kind) == "member"
    ]
    assert members == [
        ("alice@example.com", "joined the room"),
        ("bob@example.com", "joined the room"),
        ("bob@example.com", "was invited"),
        ("carol@example.com", "joined the room"),  # the writer joins before the leave
        ("carol@example.com", "left the room"),
        ("dave@example.com", "joined the room"),
        ("dave@example.com", "was banned"),
    ]
    previews = [_preview(a.event) for a in result.timeline if a.event.type == MEMBER]
    assert previews == [f"{user} {text}" for user, text in members]


def test_members_model_takes_a_roster_of_thousands_without_a_quadratic_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Red team: the panel's check that the members it shows are still in order built a
    set of them once per member: every roster of a room where one member had written
    under 8,000 sender ids (one unsigned segment) froze the GUI thread 0.8 s (12,000:
    ~1.8 s), for every message anyone sent after. Counted, not timed: the sets an
    update builds do not grow with the members (the timing is benchmarks/gui_bench.py's
    to measure, not a test's to assert)."""
    from bucket_chat_desktop.gui.models import members_model
    from bucket_chat_desktop.protocol.event import parse_event

    built = [0]

    def counted_set(*args: Any) -> set[Any]:
        built[0] += 1
        return set(*args)

    def row(n: int, sender: str) -> Assessed:
        ev = parse_event(
            {
                "event_id": f"room-1::2026-01-01T00:00:00.000Z::{n}",
                "room_id": "room-1",
                "timestamp_ms": 1_767_225_600_000 + n,
                "sender_id": sender,
                "type": "m.room.message",
                "parent_event_id": None,
                "prev_event_hash": None,
                "signature": "",
                "content": {"body": "x", "msgtype": "m.text"},
            },
            "room-1",
        )
        assert isinstance(ev, Event)
        return Assessed(ev, TrustState.UNVERIFIED, "unsigned", "p", n)

    fold = RoomState()
    fold.add([row(n, f"user{n:05d}@example.com") for n in range(12_000)])
    model = MembersModel("alice@example.com", key_text(ALICE))
    model.set_state(fold.roster())
    fold.add([row(12_000, "user00001@example.com"), row(12_001, "newcomer@example.com")])
    monkeypatch.setattr(members_model, "set", counted_set, raising=False)
    model.set_state(fold.roster())
    assert built[0] <= 4, f"{built[0]:,} sets built for one update of 12,001 members"
    assert model.rowCount() == 12_001 and model.row_of("newcomer@example.com") is not None


def test_older_rows_asked_for_before_a_re_audit_are_shown_when_they_come(
    qtmodeltester: Any, room: Room
) -> None:
    """The view at its top asked for older rows (their page on its way), then a re-audit
    came: the page of the new audit went in above, unseen, and a view already at its top
    never asks again (its scroll value does not change). They are shown when they come."""
    items, pager, model, newest = _paged(qtmodeltester, room)
    pager.answer()
    model.fetch_older()  # the page fetched ahead goes in; the next is asked for
    model.fetch_older()  # scrolled to the top again: it goes in when it arrives
    assert model.rowCount() == 2 * PAGE
    model.set_audit(len(items), newest, True, None, pager)  # a poll's re-audit, same order
    while pager.asked:
        pager.answer()
    assert model.rowCount() == 3 * PAGE
    assert _ids(model) == [a.event.event_id for a in items[903 - 3 * PAGE :]]


def test_timeline_model_places_rows_before_the_newest(qtmodeltester: Any, room: Room) -> None:
    """Rows placed before the newest ones (behind a row dated a little ahead,
    ``EventsAppended.at``) are inserted where they go; the page asked of the audit before
    is dropped and asked again of the new one; what it cannot place exactly it refuses
    (the controller then shows the audit anew)."""
    items, pager, model, _newest = _paged(qtmodeltester, room)
    placed = [Assessed(ev, TrustState.VERIFIED, "good", "p", 1) for ev in _prepare(room, ["x"])]
    at = len(items) - 2
    after = items[:at] + placed + items[at:]
    fresh = Deferred(after)
    model.read_position = len(items) - 1
    assert model.place(at, placed, None, None, fresh)
    assert _ids(model) == [a.event.event_id for a in after[-PAGE - 1 :]]
    assert model.total == len(after) and model.read_position == len(items)
    pager.answer()  # the page asked of the audit before: dropped
    assert model.held == PAGE + 1
    assert [(a, b) for a, b, _ in fresh.asked] == [(len(items) - 2 * PAGE, len(items) - PAGE)]
    fresh.answer()
    model.fetch_older()
    assert _ids(model) == [a.event.event_id for a in after[-2 * PAGE - 1 :]]
    # refused: a row shown already, rows above those shown, a page in the middle shown
    assert not model.place(at, placed, None, None, fresh)
    assert not model.place(len(after) - 2 * PAGE - 2, placed[:0], None, None, fresh)
    while fresh.asked:
        fresh.answer()
    model.show_around(10)
    fresh.answer()
    assert model.can_fetch_newer()
    other = [Assessed(ev, TrustState.VERIFIED, "good", "p", 2) for ev in _prepare(room, ["y"])]
    assert not model.place(len(after) - 1, other, None, None, fresh)


def test_a_late_arrival_keeps_when_it_first_came(qtmodeltester: Any, room: Room) -> None:
    """What a row says of a message that arrived long after its date (``note_late``),
    and what an export and a search result take from it (``late_arrivals``): noted again
    by a later audit, it keeps its first arrival, when this device first read it."""
    items = _chatter(room, 5).timeline
    model = TimelineModel(key_text(ALICE))
    qtmodeltester.check(model)
    model.set_timeline(items, complete=True)
    ev = items[-1].event
    first = late_arrival(ev.timestamp_ms, ev.timestamp_ms + 86_400_000)
    again = late_arrival(ev.timestamp_ms, ev.timestamp_ms + 2 * 86_400_000)
    assert first is not None and again is not None
    changed: list[int] = []
    model.dataChanged.connect(lambda top, _bottom, *_: changed.append(top.row()))
    copy = late_copy(ev.event_id, items[-1].path, items[-1].line)
    model.note_late({copy: first})
    assert changed == [len(items) - 1]
    model.note_late({copy: again})
    assert changed == [len(items) - 1]  # nothing changed
    assert model.index(len(items) - 1).data(Roles.Late) == first.note
    assert model.late_arrivals() == {copy: first} == {copy: model.late_arrival(copy)}
    model.late_arrivals().clear()  # a copy: what leaves the app cannot change the rows
    assert model.late_arrival(copy) == first


def test_a_late_arrival_is_said_of_its_copy_only(qtmodeltester: Any, room: Room) -> None:
    """Red team rt89: the note was kept by event id; a member's copy under another's id
    (PROTOCOL.md 18.1: each copy is a row) put it on the other's message, read on time.
    A note names the copy (where it was read): a row of the same id read elsewhere, or
    the same place under another id, says nothing."""
    items = _chatter(room, 5).timeline
    model = TimelineModel(key_text(ALICE))
    qtmodeltester.check(model)
    model.set_timeline(items, complete=True)
    ev, last = items[-1].event, len(items) - 1
    late = late_arrival(ev.timestamp_ms, ev.timestamp_ms + 86_400_000)
    assert late is not None
    changed: list[int] = []
    model.dataChanged.connect(lambda top, _bottom, *_: changed.append(top.row()))
    model.note_late({late_copy(ev.event_id, items[-1].path, items[-1].line + 1): late})
    model.note_late({late_copy(ev.event_id, "elsewhere.jsonl", items[-1].line): late})
    model.note_late({late_copy(items[-2].event.event_id, items[-1].path, items[-1].line): late})
    assert changed == [] and model.index(last).data(Roles.Late) is None
    assert model.late_arrival(late_copy(ev.event_id, items[-1].path, items[-1].line)) is None


def test_noting_many_late_changes_is_one_pass_over_the_rows_not_one_per_note(
    room: Room,
) -> None:
    """Review rev2: each noted copy of an edit or a deletion (which has no row of its
    own) was looked for among every row, then every row was asked for the change it
    shows: notes x rows on the GUI thread, for a member's thousands of backdated edits.
    Now one pass whatever the notes: 400 notes cost about what one does (Python lines
    counted, not timed), and a note of no row changes nothing."""
    items = _chatter(room, 40).timeline
    model = TimelineModel(key_text(ALICE))
    model.set_timeline(items, complete=True)
    ev = items[-1].event
    late = late_arrival(ev.timestamp_ms, ev.timestamp_ms + 86_400_000)
    assert late is not None
    changed: list[int] = []
    model.dataChanged.connect(lambda top, _bottom, *_: changed.append(top.row()))

    def notes(first: int, count: int) -> dict[Any, Any]:
        return {late_copy(f"edit-{n}", "edits.jsonl", n): late for n in range(first, first + count)}

    one = lines_run(lambda: model.note_late(notes(0, 1)))
    many = lines_run(lambda: model.note_late(notes(1, 400)))
    assert len(items) > 100
    assert many < one + 400 * 4, (one, many)  # was about 400 x rows more
    assert changed == []
