"""The "Join a room" and "New room" dialogs on a storage of many rooms (red team rt75).

The join dialog read the name and last activity of the first 200 room ids in name order
(1 listing + 200 metadata reads + 200 activity listings) and only counted the rest: a
member who made 200 rooms named to sort first (``0000-…``) pushed every real room out of
the list. The New room dialog used the same lister to learn the ids taken, and knew only
those 200: an id past them was "free" until the storage refused it.

Now every id the listing found is listed (one listing), names are read only for the rooms
in view (counted here: requests, not time), a filter finds any room by its id and, once
read, by its name, and New room checks against every id.

A member who plants tens of thousands of room folders (red team rt88) froze the window
in the join dialog: an item per room, touched again once in the tree, every id judged
for look-alikes and every row filtered on opening (14 s for 100,000 rooms), and again
for each batch of names read as the user scrolled (2 s a step). Counted here as the
Python and C calls made on the GUI thread (``sys.setprofile``), never as seconds."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import shot
from desk import settings_for
from join_rows import cell, choose, shown, text, tip
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox

from bucket_chat_desktop.gui.models import found_rooms_model
from bucket_chat_desktop.gui.widgets import room_dialogs
from bucket_chat_desktop.gui.widgets.room_dialogs import READ_AT_ONCE, RoomDialog
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.sync.room_objects import (
    RoomSummary,
    StorageRooms,
    storage_rooms,
    summarise_rooms,
)

PLANTED = [f"0000-{n:03d}" for n in range(200)]  # named to sort before every real room
REAL = [f"room-{n:04d}" for n in range(800)]
IDS = sorted([*PLANTED, *REAL, "falcon"])
NAMES = {"falcon": "Project Falcon", "room-0799": "Payroll"}


class Storage:
    """A storage of 1,001 rooms: its listing (ids only, as ``ChatClient.storage_rooms``
    answers by default) and the names read, room by room, counted."""

    def __init__(self) -> None:
        self.read: list[str] = []

    async def lister(self, _storage_id: str) -> StorageRooms:
        return StorageRooms((), more=len(IDS), unread=tuple(IDS))

    async def summariser(self, _storage_id: str, room_ids: Sequence[str]) -> list[RoomSummary]:
        self.read.extend(room_ids)
        return [
            RoomSummary(r, NAMES.get(r, "Cheap" if r.startswith("0000") else f"Team {r}"), None)
            for r in room_ids
        ]


def test_the_join_dialog_lists_every_room_and_reads_names_only_in_view(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """Red team rt75: 200 planted rooms that sort first no longer hide the others."""
    storage = Storage()
    settings = settings_for(tmp_path / "share", ["room-0001"])
    dialog = RoomDialog(
        settings,
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.resize(700, 520)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    assert len(shown(dialog)) == len(IDS)  # every id, not the first 200
    assert "1,001 rooms found" in dialog.list_status.text()
    # the rooms in view are read, not all of them: a page or two of requests
    # (200 rooms of one name: each marked as looking like the others)
    qtbot.waitUntil(lambda: cell(dialog, 0, 0) == "⚠ Cheap", timeout=5_000)
    qtbot.waitUntil(lambda: _settled(dialog), timeout=5_000)  # any further read asked for
    assert 0 < len(storage.read) <= 2 * READ_AT_ONCE
    assert len(set(storage.read)) == len(storage.read)  # none read twice
    assert cell(dialog, len(IDS) - 1, 0) == "…"  # the last room: not read yet

    # a real room past the planted ones is found by its id, and its name read then
    QTest.keyClicks(dialog.filter, "FALCON")
    assert shown(dialog) == ["falcon"]
    assert "1 matches the filter" in dialog.list_status.text()
    qtbot.waitUntil(lambda: text(dialog, "falcon") == "Project Falcon", timeout=5_000)
    shot(dialog, "join-dialog-many-rooms-filtered", tmp_path)

    # once read, a name filters too; a room joined already is still greyed
    dialog.filter.clear()
    QTest.keyClicks(dialog.filter, "project")
    assert shown(dialog) == ["falcon"]
    dialog.filter.clear()
    QTest.keyClicks(dialog.filter, "room-0001")
    assert shown(dialog) == ["room-0001"]
    qtbot.waitUntil(lambda: "Greyed out" in dialog.list_status.text(), timeout=5_000)

    # choosing a room fills the id in
    dialog.filter.clear()
    QTest.keyClicks(dialog.filter, "room-0799")
    assert shown(dialog) == ["room-0799"]
    choose(dialog, "room-0799")
    assert dialog.room_id.text() == "room-0799"
    qtbot.waitUntil(lambda: text(dialog, "room-0799") == "Payroll", timeout=5_000)
    dialog.filter.clear()
    before = len(storage.read)
    dialog.rooms_list.scrollToBottom()  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: text(dialog, "room-0790") == "Team room-0790", timeout=5_000)
    qtbot.waitUntil(lambda: _settled(dialog), timeout=5_000)  # any further read asked for
    assert len(storage.read) - before <= 2 * READ_AT_ONCE  # only what came into view
    shot(dialog, "join-dialog-many-rooms-end", tmp_path)
    dialog.reject()


def test_a_name_read_in_view_is_marked_when_it_looks_like_a_room_the_user_is_in(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """The look-alike marks still hold for names read as they come into view."""
    storage = Storage()
    settings = settings_for(tmp_path / "share", ["payroll"])
    dialog = RoomDialog(
        settings, create=False, lister=storage.lister, summariser=storage.summariser
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    QTest.keyClicks(dialog.filter, "room-0799")
    assert shown(dialog) == ["room-0799"]
    qtbot.waitUntil(lambda: text(dialog, "room-0799") == "⚠ Payroll", timeout=5_000)
    assert "looks like the id of another room you are in" in tip(dialog, "room-0799")
    dialog.reject()


def test_the_room_chosen_stays_chosen_while_the_filter_lets_it_through(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """A filter makes the table's rows anew (no row hidden one by one any more): the room
    chosen is chosen again if it is still shown, and Enter joins it."""
    storage = Storage()
    dialog = RoomDialog(
        settings_for(tmp_path / "share", []),
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    assert dialog.rooms_list is not None
    choose(dialog, "room-0790")
    QTest.keyClicks(dialog.filter, "room-079")
    assert shown(dialog) == [f"room-079{n}" for n in range(10)]
    assert dialog.rooms_list.currentIndex().data(room_dialogs.ROOM_ROLE) == "room-0790"
    QTest.keyClicks(dialog.filter, "9")  # it is filtered out: nothing chosen
    assert not dialog.rooms_list.currentIndex().isValid()
    assert dialog.room_id.text() == "room-0790"  # what was chosen stays typed
    dialog.filter.clear()
    choose(dialog, "falcon")
    QTest.keyClick(dialog.rooms_list, Qt.Key.Key_Return)
    assert dialog.result() == RoomDialog.DialogCode.Accepted
    assert dialog.values[1] == "falcon"


def test_new_room_knows_every_id_the_storage_holds(qtbot: Any, qloop: Any, tmp_path: Path) -> None:
    """Red team rt75: an id past the first 200 was taken for free."""
    storage = Storage()
    dialog = RoomDialog(settings_for(tmp_path / "share", []), create=True, lister=storage.lister)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    QTest.keyClicks(dialog.room_id, "room-0799")  # past the first 200 ids
    assert "already exists" in dialog.problem.text()
    assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
    assert storage.read == []  # the ids are all New room needs: no name was read
    dialog.reject()


def test_typing_in_the_filter_cleans_no_name_again(
    qtbot: Any, qloop: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A room's name is cleaned for showing once, when it is read: each keystroke in the
    filter cleaned every name read again (and each batch of names read, all of them)."""
    storage = Storage()
    dialog = RoomDialog(
        settings_for(tmp_path / "share", []),
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.resize(700, 520)
    dialog.show()
    cleaned: list[str] = []
    real = found_rooms_model.display_name_safe

    def counted(text: str, *args: Any, **kwargs: Any) -> str:
        cleaned.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(found_rooms_model, "display_name_safe", counted)
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=10_000)
    qtbot.waitUntil(lambda: cell(dialog, 0, 0) == "⚠ Cheap", timeout=5_000)
    read = len(storage.read)
    assert len(cleaned) == read  # each name read, cleaned once
    QTest.keyClicks(dialog.filter, "cheap")
    assert len(cleaned) == len(storage.read)  # typing cleaned none again
    assert shown(dialog) and all(r.startswith("0000-") for r in shown(dialog))
    dialog.reject()


MANY_PLANTED = 20_000


@contextmanager
def gui_calls() -> Iterator[Counter[str]]:
    """Every Python and C call made on this (the GUI) thread meanwhile, by name."""
    seen: Counter[str] = Counter()
    me = threading.get_ident()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if threading.get_ident() != me:
            return
        if event == "call":
            seen[frame.f_code.co_name] += 1
        elif event == "c_call":
            seen[getattr(arg, "__name__", "?")] += 1

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(old)


def _planted_folder(tmp_path: Path) -> Path:
    """A shared folder with the user's room and MANY_PLANTED empty room folders beside it."""
    root = tmp_path / "share"
    rooms = root / "rooms"
    rooms.mkdir(parents=True)
    (rooms / "general").mkdir()
    for n in range(MANY_PLANTED):
        (rooms / f"planted-{n:06d}").mkdir()
    return root


def _planted_dialog(
    qtbot: Any, root: Path
) -> tuple[RoomDialog, Callable[[], None], list[Sequence[str]]]:
    storage = LocalStorage(str(root))
    now_ms = int(time.time() * 1000)
    read: list[Sequence[str]] = []

    async def lister(_sid: str) -> StorageRooms:  # as ChatClient.storage_rooms: ids only
        return await storage_rooms(storage, now_ms, 0)

    async def summariser(_sid: str, room_ids: Sequence[str]) -> Sequence[RoomSummary]:
        read.append(list(room_ids))
        return await summarise_rooms(storage, now_ms, room_ids)

    dialog = RoomDialog(
        settings_for(root, ["general"]), create=False, lister=lister, summariser=summariser
    )
    qtbot.addWidget(dialog)
    dialog.resize(700, 520)
    return dialog, dialog.show, read


def _settled(dialog: Any) -> bool:
    """Whether the join dialog reads no names and is not about to: none being read, and
    its read timer (started by a scroll or a batch read) not running."""
    return not dialog._reading and not dialog._read_timer.isActive()


def test_opening_the_join_dialog_on_planted_rooms_works_for_the_rows_shown(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    dialog, show, _read = _planted_dialog(qtbot, _planted_folder(tmp_path))
    with gui_calls() as calls:
        show()
        qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=120_000)
    listed = MANY_PLANTED + 1
    assert dialog.rooms_list is not None
    assert dialog.rooms.rowCount() == listed  # every id is listed (rt75)
    total = sum(calls.values())
    top = ", ".join(f"{n} {c:,}" for n, c in calls.most_common(8))
    # Showing a list may cost a few calls a row; not dozens (each row touched again after
    # it is in the tree, every id judged, every row filtered) on the GUI thread.
    assert total <= 10 * listed, f"{total:,} calls for {listed:,} rooms ({top})"
    dialog.reject()


def test_a_batch_of_names_read_among_planted_rooms_costs_work_for_that_batch(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    dialog, show, read = _planted_dialog(qtbot, _planted_folder(tmp_path))
    show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=120_000)
    qtbot.waitUntil(lambda: _settled(dialog), timeout=30_000)  # the first view's reads
    batches = len(read)
    tree = dialog.rooms_list
    assert tree is not None
    with gui_calls() as calls:
        bar = tree.verticalScrollBar()
        bar.setValue(bar.maximum() // 2)  # the user scrolls to the middle once
        # the batch read and shown, and any next one asked for read too
        qtbot.waitUntil(lambda: len(read) > batches and _settled(dialog), timeout=30_000)
    names = sum(len(b) for b in read[batches:])
    assert 0 < names <= 2 * READ_AT_ONCE
    total = sum(calls.values())
    top = ", ".join(f"{n} {c:,}" for n, c in calls.most_common(8))
    # Work for the names read (reading them is a few hundred calls each), not for the
    # 20,000 rooms that were not: each name judged once, the rows in view made.
    assert calls["name_look"] <= 4 * names, f"name_look {calls['name_look']:,} ({top})"
    assert calls["data"] <= 40 * READ_AT_ONCE, f"data {calls['data']:,} ({top})"
    assert total <= 2_000 * names, f"{total:,} calls for {names} names read ({top})"
    dialog.reject()


class Listed:
    """A storage listing ``count`` room ids at once (ids only), whose names read say
    "Planted" (all of one look) but for ``general``'s."""

    def __init__(self, count: int) -> None:
        self.ids = (*(f"planted-{n:06d}" for n in range(count)), "general")
        self.read: list[str] = []

    async def lister(self, _storage_id: str) -> StorageRooms:
        return StorageRooms((), more=len(self.ids), unread=self.ids)

    async def summariser(self, _storage_id: str, room_ids: Sequence[str]) -> list[RoomSummary]:
        self.read.extend(room_ids)
        return [RoomSummary(r, "General" if r == "general" else "Planted", None) for r in room_ids]


def _opened(qtbot: Any, tmp_path: Path, storage: Listed) -> RoomDialog:
    """The join dialog on ``storage``, shown until its first names are read."""
    dialog = RoomDialog(
        settings_for(tmp_path / "share", ["general"]),
        create=False,
        lister=storage.lister,
        summariser=storage.summariser,
    )
    qtbot.addWidget(dialog)
    dialog.resize(700, 520)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.listing_state == "done", timeout=60_000)
    qtbot.waitUntil(lambda: not dialog._reading, timeout=30_000)
    return dialog


def _showing_cost(dialog: RoomDialog, storage: Listed) -> int:
    """The calls made on the GUI thread to fill the list with the storage's listing
    again and paint what is in view (what opening the dialog does once it is listed)."""
    assert dialog.rooms_list is not None
    found = StorageRooms((), more=len(storage.ids), unread=storage.ids)
    with gui_calls() as calls:
        dialog.show_rooms(found)
        dialog.rooms_list.viewport().repaint()
    return sum(calls.values())


def test_opening_the_join_dialog_costs_the_same_for_5_000_or_50_000_rooms(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """Once listed, the rooms cost the dialog a few lists made in C: its calls are for
    the rows in view and the names read, whatever the number of rooms listed."""
    few_rooms, many_rooms = Listed(5_000), Listed(50_000)
    few, many = _opened(qtbot, tmp_path, few_rooms), _opened(qtbot, tmp_path, many_rooms)
    assert many.rooms.rowCount() == 50_001
    assert 0 < len(many.rooms.summaries) <= 2 * READ_AT_ONCE
    # the rooms read all look alike: every one of them marked, as before
    assert cell(many, 0, 0) == "⚠ Planted"
    tip0 = cell(many, 0, 0, Qt.ItemDataRole.ToolTipRole)
    assert "looks like the name of another room here" in tip0
    few_calls, many_calls = _showing_cost(few, few_rooms), _showing_cost(many, many_rooms)
    # ten times the rooms, the same work (give or take what else the thread does)
    assert many_calls <= 1.25 * few_calls, (few_calls, many_calls)
    assert many_calls <= 10_000, many_calls  # about 20 rows in view, 3 columns
    few.reject()
    many.reject()


def test_a_letter_typed_in_the_filter_of_50_000_rooms_costs_calls_for_the_rows_shown(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    """Each keystroke looks through the ids (and names read) in C, and the table asks for
    the rows in view: no call per room (``setHidden`` on every row, before)."""
    storage = Listed(50_000)
    dialog = _opened(qtbot, tmp_path, storage)
    spent = []
    for letter in "gen":
        with gui_calls() as calls:
            QTest.keyClicks(dialog.filter, letter)
        spent.append(sum(calls.values()))
    assert shown(dialog) == ["general"]
    assert "1 matches the filter" in dialog.list_status.text()
    assert max(spent) <= 3_000, spent
    with gui_calls() as calls:
        dialog.filter.clear()  # every room again
    assert len(shown(dialog)) == 50_001
    assert sum(calls.values()) <= 3_000
    dialog.reject()
