"""Small dialogs: create a room (under a new id, never one the storage holds); join a
room chosen from those found in the storage, or by its id."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QWidget,
)

from ...protocol.ids import (
    InvalidRoomIdError,
    check_new_room_id,
    check_room_id,
    new_room_id,
    room_id_folded,
)
from ...protocol.room_names import NamedRoom
from ...protocol.untrusted_text import one_line
from ...settings import Settings
from ...sync.room_objects import RoomSummary, StorageRooms
from ...sync.rooms import room_id_suffix
from ..models.found_rooms_model import ROOM_ROLE, FoundRoomsModel
from ..safe import guard
from ..tasks import TaskRunner

# storage id -> the rooms it holds (``Controller.list_storage_rooms``): by default their
# ids only (one listing), the names read as they are shown (``Summariser``)
Lister = Callable[[str], Coroutine[Any, Any, StorageRooms]]
# storage id, room ids -> their names and last activity (``ChatClient.summarise_rooms``)
Summariser = Callable[[str, Sequence[str]], Coroutine[Any, Any, Sequence[RoomSummary]]]
READ_AT_ONCE = 40  # rooms whose names one read asks for (those in view, then a page ahead)
NAME_RETRIES = (1.0, 4.0, 15.0)
"""Seconds before a room's name that was not read for a passing reason (no answer in
time, the storage busy, its metadata still being written: ``RoomSummary.passing``) is
asked for again while the dialog is open, once after each: then it stays as it is
until the list is loaded again (red team rt95: such names were kept as read, "(no
name)", and never asked for again while the dialog was open)."""
# the rooms the user is in, on every storage, by their names (``RoomsModel.named_rooms``)
Joined = Callable[[], Iterable[NamedRoom]]
Index = QModelIndex | QPersistentModelIndex


class RoomDialog(QDialog):
    """Create (with a name) or join (by id) a room on one of the user's storages.

    Creating, the id offered is the name's slug and a random tail (``new_room_id``),
    shown and editable: rooms named alike rarely share an id, here or in another storage
    (red team rt73). With a ``lister`` the storage's rooms are listed too: an id one of
    them holds (or holds but for case) is said at once, with a free one to use instead,
    rather than refused only once Create is pressed: every id the listing found, not only
    the first 200 (red team rt75).

    Joining, every room id the listing found is listed (one request, whatever their
    number), and the name and last activity of a room (three requests) are read only once
    it is in view (``summariser``); a filter box finds any room by its id, and by its name
    once read. Before, the first 200 ids in name order were read and the rest only
    counted: 200 rooms named to sort first (``0000-…``) hid every other (red team rt75).

    The list is a table over the listing's ids (``FoundRoomsModel``): its work on the
    GUI thread is for the rows shown and the names read, not for every room listed —
    a member who plants 100,000 room folders froze the window 14 s on opening and 2 s
    per scroll step when each room had its item and every batch of names read judged
    and filtered them all (red team rt88)."""

    def __init__(
        self,
        settings: Settings,
        *,
        create: bool,
        parent: QWidget | None = None,
        lister: Lister | None = None,
        tasks: TaskRunner | None = None,
        joined: Joined | None = None,
        summariser: Summariser | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.creating = create
        self.lister = lister
        self.summariser = summariser
        self.joined = joined
        self.rooms_list: QTableView | None = None
        # joining: the listed rooms, what was read of them (the model), what is being read
        self.rooms = FoundRoomsModel(self)
        self._reading: set[str] = set()
        self._found = StorageRooms(())
        self._read_timer = QTimer(self)
        self._read_timer.setSingleShot(True)
        self._read_timer.setInterval(60)  # a scroll or a typed filter settles first
        self._read_timer.timeout.connect(self._read_shown)
        # names read with a passing failure (``NAME_RETRIES``): how many times each was
        # asked again, and when it is due again (``time.monotonic``; none: no more tries)
        self._retried: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.timeout.connect(self._read_shown)
        # "loading", "naming" (the first rooms), "done", "failed" ("" without a lister)
        self.listing_state = ""
        self._asked = 0  # newest listing request: older answers are dropped
        # the app's task runner (cancelled at shutdown), else one of the dialog's own
        self._tasks = tasks if tasks is not None else TaskRunner(self)
        self._listing: asyncio.Task[Any] | None = None
        # creating: the random tail of the offered id (kept while the name is typed), and
        # the ids the chosen storage holds, once listed
        self._suffix = room_id_suffix()
        self.taken: list[str] = []
        self.setWindowTitle("New room" if create else "Join a room")
        self.setMinimumWidth(420)
        form = QFormLayout(self)
        self.storage = QComboBox()
        for entry in settings.storages:
            self.storage.addItem(entry.name, entry.id)
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. Project Falcon")
        self.room_id = QLineEdit()
        self.room_id.setPlaceholderText("letters, digits, '.', '_' and '-'")
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #d64545;")
        self.problem.setWordWrap(True)
        self.problem.setTextFormat(Qt.TextFormat.PlainText)  # quotes the typed id
        self.free_id = ""  # creating: a free id offered instead of a taken one
        self.use_free = QPushButton()
        self.use_free.setObjectName("useFreeRoomId")
        self.use_free.hide()
        self.use_free.clicked.connect(self._use_free_id)
        form.addRow("Storage", self.storage)
        if create:
            form.addRow("Name", self.name)
            self.name.textChanged.connect(self._name_changed)
        if not create and lister is not None:
            self._build_list(form)
        form.addRow("Room id", self.room_id)
        form.addRow(self.problem)
        if create:
            form.addRow(self.use_free)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Create" if create else "Join")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.room_id.textChanged.connect(self._validate)
        self._auto_id = True
        self.room_id.textEdited.connect(lambda _t: setattr(self, "_auto_id", False))
        self._validate()
        if self.rooms_list is not None or (create and lister is not None):
            self.storage.currentIndexChanged.connect(lambda _i: self.refresh_rooms())
            self.refresh_rooms()

    # -- the rooms found in the storage (join only) --------------------------------------

    def _build_list(self, form: QFormLayout) -> None:
        self.setMinimumWidth(640)
        self.list_status = QLabel()
        self.list_status.setObjectName("help")
        self.list_status.setWordWrap(True)
        self.list_status.setTextFormat(Qt.TextFormat.PlainText)  # quotes storage errors
        # a table: of Qt's views the one that asks only for the rows in view (a tree or
        # a list view walks every row of the model at each change)
        table = self.rooms_list = QTableView()
        table.setObjectName("storageRooms")
        table.setModel(self.rooms)
        self.rooms.greyed = table.palette().placeholderText()
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setShowGrid(False)
        table.setWordWrap(False)
        table.setMinimumHeight(220)
        rows = table.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(table.fontMetrics().height() + 10)
        header = table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setResizeContentsPrecision(0)  # the rows in view, not a thousand of them
        header.setStretchLastSection(False)
        table.selectionModel().currentRowChanged.connect(self._on_room_chosen)
        table.doubleClicked.connect(self._join_index)
        table.installEventFilter(self)
        table.verticalScrollBar().valueChanged.connect(lambda _v: self._read_timer.start())
        self.filter = QLineEdit()
        self.filter.setObjectName("roomFilter")
        self.filter.setPlaceholderText("Filter by room id, or by name once shown")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(lambda _t: self._apply_filter())
        form.addRow("Rooms here", self.list_status)
        form.addRow("Filter", self.filter)
        form.addRow(table)

    def refresh_rooms(self) -> None:
        """List the chosen storage's rooms, off the GUI thread (the answer comes back
        through the event loop); the list says it is loading until then. Creating, there
        is no list: the ids found are kept (``taken``) and the id is checked again."""
        if self.lister is None or (self.rooms_list is None and not self.creating):
            return
        storage_id = self.storage.currentData()
        self.taken = []
        if self.rooms_list is not None:
            self.rooms.clear()
            self._reading.clear()
            self._forget_retries()
        else:
            self._validate()
        if storage_id is None:
            self.listing_state = "failed"
            if self.rooms_list is not None:
                self.list_status.setText("Add a storage first.")
            return
        self._asked += 1
        self.listing_state = "loading"
        if self.rooms_list is not None:
            self.list_status.setText("Looking for rooms in this storage…")
        if self._listing is not None:
            self._listing.cancel()  # another storage was chosen: that answer is not wanted
        self._listing = self._tasks.start(
            self._load(self._asked, str(storage_id)), "Listing the rooms of a storage"
        )

    async def _load(self, asked: int, storage_id: str) -> None:
        assert self.lister is not None
        try:
            found = await self.lister(storage_id)
        except Exception as exc:  # the lister answers with values; anything else is shown
            if asked == self._asked:
                self.listing_state = "failed"
                if self.rooms_list is not None:
                    self.list_status.setText(f"The rooms could not be listed: {one_line(exc, 300)}")
            raise
        if asked != self._asked:
            return
        if self.rooms_list is not None:
            self.show_rooms(found)
            # the rooms at the top are named before the list is "done" (what a person
            # sees first; the rest as they come into view)
            first = list(found.unread[:READ_AT_ONCE])
            if first and self.summariser is not None:
                self.listing_state = "naming"
                self._reading.update(first)
                try:
                    await self._read(asked, storage_id, first)
                finally:
                    if asked == self._asked:
                        self.listing_state = "done"
        else:  # creating: the storage refuses these ids anyway; say so before Create
            self.taken = [*(r.room_id for r in found.rooms), *found.unread]  # every id found
            self.listing_state = "done"
            self._validate()

    def show_rooms(self, found: StorageRooms) -> None:
        """Fill the list with every room found: those whose name and activity came with
        the listing (from this device's cache when the storage did not answer) first,
        newest activity first, then the others by id, their names read as they come into
        view (``_read_shown``). Names come from each room's metadata, which anyone with
        write access can set: cleaned (``display_name_safe``), always beside the room id,
        and marked when a name looks like the name or id of another listed room, or of a
        room the user is in on any storage (``name_lookalikes``). The rows are made as
        they are shown (``FoundRoomsModel``)."""
        assert self.rooms_list is not None
        self._reading.clear()
        self._forget_retries()
        self._found = found
        newest_first = sorted(found.rooms, key=lambda r: -(r.last_activity_ms or 0))
        order = [r.room_id for r in newest_first]
        named = set(order)
        order += [r for r in found.unread if r not in named]
        self.rooms.show(
            str(self.storage.currentData()),
            order,
            newest_first,
            self._joined(),
            self._rooms_in(),
        )
        self.listing_state = "done"
        self._apply_filter()

    def _status(self) -> None:
        """What the list holds, in words (and how many rooms the filter lets through)."""
        found = self._found
        rooms = self.rooms
        count = rooms.listed
        if found.note:
            text = found.note
        elif count:
            text = f"{count:,} room{'s' if count != 1 else ''} found. Double-click one to join it."
        else:
            text = "No rooms in this storage yet. Type an id below to join one that will exist."
        if rooms.filtering:
            shown = rooms.rowCount()
            text += f" {shown:,} match{'es' if shown == 1 else ''} the filter."
        elif len(rooms.summaries) < count:
            text += " Names are read for the rooms in view; the filter finds any by its id."
        if rooms.passing:
            # By what failed: a room whose metadata was read but whose activity listing
            # got no answer has its name (or "(no name)"), not one not read.
            names = len(rooms.names_unread)
            activity = len(rooms.passing - rooms.names_unread)
            said = []
            if names:
                said.append(f"{names:,} name{'s were' if names != 1 else ' was'} not read")
            if activity:
                said.append(
                    f"{'the' if said else 'The'} last activity of {activity:,} "
                    f"room{'s' if activity != 1 else ''} was not read"
                )
            text += f" {' and '.join(said)} this time"
            # "shortly" only while a read is armed (the retry timer) or under way: a
            # retried read that failed leaves none.
            retrying = self._retry_timer.isActive() or bool(self._reading & rooms.passing)
            text += (
                ": asked again shortly."
                if retrying
                else ": open this window again to ask for them again."
            )
        if any(rooms.holds(r) for r in self._joined()):
            text += " Greyed out: rooms you are in already."
        self.list_status.setText(text)

    def _apply_filter(self) -> None:
        """Show the rooms whose id, or name once read, holds what is typed (any case);
        then read the names of those that came into view. The room chosen stays chosen
        if the filter lets it through."""
        if self.rooms_list is None:
            return
        table = self.rooms_list
        current = table.currentIndex()
        chosen = str(current.data(ROOM_ROLE)) if current.isValid() else None
        self.rooms.set_filter(self.filter.text())
        if chosen is not None and not table.currentIndex().isValid():
            row = self.rooms.row_of(chosen)
            if row >= 0:
                table.setCurrentIndex(self.rooms.index(row, 0))
        self._status()
        self._read_timer.start()

    def _in_view(self) -> list[str]:
        """The ids of the rooms in the list's view, then as many again below it."""
        assert self.rooms_list is not None
        table = self.rooms_list
        top = max(0, table.rowAt(0))  # before the first layout (-1): the first rows
        height = table.viewport().height()
        rows = max(10, 2 * height // max(1, table.verticalHeader().defaultSectionSize()))
        return self.rooms.room_ids(top, rows)

    def _read_shown(self) -> None:
        """Read the names and activity of the rooms in view not read yet, and of those
        whose last read failed for a passing reason once they are due again
        (``NAME_RETRIES``): a few dozen at a time; scrolling or filtering reads the
        next."""
        if self.summariser is None or self.rooms_list is None or not self.rooms.listed:
            return
        summaries = self.rooms.summaries
        now = time.monotonic()
        due = self._due
        wanted = [
            r
            for r in self._in_view()
            if (r not in summaries or due.get(r, math.inf) <= now) and r not in self._reading
        ][:READ_AT_ONCE]
        self._retry_later()
        if not wanted:
            return
        self._reading.update(wanted)
        storage_id = str(self.storage.currentData())
        self._tasks.start(
            self._read(self._asked, storage_id, wanted), "Reading the names of a storage's rooms"
        )

    async def _read(self, asked: int, storage_id: str, room_ids: list[str]) -> None:
        assert self.summariser is not None
        try:
            read = await self.summariser(storage_id, room_ids)
        except Exception:
            if asked == self._asked and self.rooms_list is not None:
                # The read failed (said by the task): none of these is asked again by
                # itself (a due entry past its time would arm no timer), and the status
                # no longer says "asked again shortly" of them.
                self._reading.difference_update(room_ids)
                for room_id in room_ids:
                    self._due.pop(room_id, None)
                self._retry_later()
                self._status()
            raise
        finally:
            if asked == self._asked:
                self._reading.difference_update(room_ids)
        if asked != self._asked or self.rooms_list is None:
            return  # another storage was chosen, or the dialog closed
        # these rows, and those whose names look like theirs, shown again; the filter
        # looks at these rows only
        self.rooms.set_read(read)
        now = time.monotonic()
        for summary in read:
            room_id = summary.room_id
            self._due.pop(room_id, None)
            if not summary.passing:
                self._retried.pop(room_id, None)
                continue
            tries = self._retried.get(room_id, 0)
            if tries < len(NAME_RETRIES):
                self._retried[room_id] = tries + 1
                self._due[room_id] = now + NAME_RETRIES[tries]
        self._retry_later()
        self._status()
        self._read_timer.start()  # reads what is in view next

    def _retry_later(self) -> None:
        """Wake ``_read_shown`` when the next name read with a passing failure is due
        (one timer for all; one due while out of view is read when it comes into it)."""
        now = time.monotonic()
        later = min((at for at in self._due.values() if at > now), default=None)
        if later is None:
            self._retry_timer.stop()
        else:
            self._retry_timer.start(max(1, math.ceil((later - now) * 1000)))

    def _forget_retries(self) -> None:
        self._retried.clear()
        self._due.clear()
        self._retry_timer.stop()

    def _rooms_in(self) -> list[NamedRoom]:
        """The rooms the user is in, on every storage: by their names when the app knows
        them (``joined``), and by their ids in any case (the settings hold them)."""
        rooms = list(self.joined()) if self.joined is not None else []
        for entry in self.settings.storages:
            rooms += (
                NamedRoom(f"{entry.id}/{r}", r, "", f"{r} on {one_line(entry.name, 60)}", False)
                for r in entry.rooms
            )
        return rooms

    def _joined(self) -> list[str]:
        entry = self.settings.storage(str(self.storage.currentData()))
        return list(entry.rooms) if entry is not None else []

    def _on_room_chosen(self, index: Index, _prev: Any = None) -> None:
        if index.isValid():
            self.room_id.setText(str(index.data(ROOM_ROLE)))

    def _join_index(self, index: Index) -> None:
        if not index.isValid():
            return
        self._on_room_chosen(index)
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        if ok.isEnabled():
            self.accept()

    @guard(False)
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.rooms_list
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            self._join_index(self.rooms_list.currentIndex())
            return True
        return super().eventFilter(watched, event)

    @guard()
    def done(self, result: int) -> None:
        self._asked += 1  # an answer still on its way is dropped
        if self._listing is not None:
            self._listing.cancel()
        super().done(result)

    def _name_changed(self, text: str) -> None:
        if self._auto_id:
            self.room_id.setText(new_room_id(text, self._suffix))

    def _validate(self) -> None:
        text = self.room_id.text().strip()
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.free_id = ""
        self.use_free.hide()
        try:
            if self.creating:
                check_new_room_id(text, self.taken)  # also: Windows names, case clashes
            else:
                check_room_id(text)
        except InvalidRoomIdError as exc:
            self.problem.setText(str(exc) if text else "")
            ok.setEnabled(False)
            self._fit_height()
            return
        if self.creating and room_id_folded(text) in {room_id_folded(r) for r in self.taken}:
            # the storage would refuse it (rt73: "already exists", even with messages
            # and no metadata): say so now, and offer an id that is free
            self.free_id = self._free_id(text)
            self.problem.setText(
                f"A room with the id {text!r} already exists in this storage. Choose "
                "another id, or join that room (Join a room…) if you trust who wrote there."
            )
            self.use_free.setText(f"Use {self.free_id!r} instead")
            self.use_free.show()
            ok.setEnabled(False)
            self._fit_height()
            return
        self.problem.setText("")
        ok.setEnabled(self.storage.count() > 0)

    def _fit_height(self) -> None:
        """Grow to show the whole of a message set while shown (a wrapped label in a
        form does not ask for the lines it gained: its last line was cut off)."""
        layout = self.layout()
        if self.isVisible() and layout is not None:
            layout.activate()
            needed = layout.totalHeightForWidth(self.width())
            if needed > self.height():
                self.resize(self.width(), needed)

    def _free_id(self, taken_id: str) -> str:
        """``taken_id`` with a random tail that no listed room holds (its first 64
        characters: an id stays within 128)."""
        held = {room_id_folded(r) for r in self.taken}
        base = taken_id[:64].rstrip(".")
        while True:
            free = f"{base}-{room_id_suffix()}"
            if room_id_folded(free) not in held:
                return free

    def _use_free_id(self) -> None:
        if self.free_id:
            self._auto_id = False  # chosen by hand, as if typed
            self.room_id.setText(self.free_id)
            self.room_id.setFocus()

    @property
    def values(self) -> tuple[str, str, str]:
        """(storage id, room id, name)."""
        return (
            str(self.storage.currentData()),
            self.room_id.text().strip(),
            self.name.text().strip(),
        )
