"""The rows of rooms the person may switch to are measured before the switch.

A list view whose rows differ in height asks its delegate every row's size when a model
is set. The first switch to a room therefore measured all the rows its model holds (up
to ``PAGE``, 200) on the GUI thread, at the switch: 40-90 ms of the GUI thread alone, and
250-550 ms when it fell at a back-fill's start, with the worker processes starting and
the first screen verified on threads (``benchmarks/gui_bench.py --switch-only``: every
switch over 100 ms was a room's first). The delegate keeps sizes by row, width and font
(``MessageDelegate.row_size``); so the rows of the rooms on screen in the room list
(``AHEAD_ROOMS`` at most) are measured beforehand at the width and font the view lays
rows out at (``MessageDelegate.measure_ahead``), ``ROWS_PER_TURN`` at a time, one batch
per turn of the event loop: a click or a key press waits for one batch at most. A room's
rows are measured again when its model changes (rows in, a reset, a row's layout), and
every room's when the width or the font changes. What a switch then lays out is cached:
a first switch costs what a switch back costs. docs/SCHEDULING.md tells the rest.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPoint, QTimer
from PySide6.QtWidgets import QListView

from .controller import Controller
from .models.rooms_model import RoomRoles
from .models.timeline_model import Roles
from .widgets.message_delegate import MessageDelegate

AHEAD_ROOMS = 8  # rooms on screen in the room list, from the top one shown, measured ahead
ROWS_PER_TURN = 8  # rows measured in one turn of the event loop (about 0.3 ms each)
# ...and the characters of their bodies laid out in one turn: a hostile body of 20,000
# characters costs 40-90 ms, eight of them held a click 0.3-1.6 s (red team rt103). A turn
# measures at least one row, whatever it costs (``MAX_SHOWN_CHARS`` bounds one body).
TURN_CHARS = 4_000


class RowWarmer(QObject):
    """Measures ahead the rows of the rooms shown in ``room_list`` (see the module)."""

    def __init__(
        self,
        controller: Controller,
        room_list: QListView,
        delegate: MessageDelegate,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._controller = controller
        self._list = room_list
        self._delegate = delegate
        self._ahead: list[str] = []  # the rooms measured ahead, in the list's order
        # rooms whose model's changes are followed, by the model followed (a room left
        # and joined again has a new one), and the other way round
        self._watched: dict[str, QObject] = {}
        self._keys: dict[QObject, str] = {}
        self._dirty: dict[str, None] = {}  # rooms to measure, in order
        self._walk: tuple[str, int] | None = None  # the room being measured, its next row
        self._timer = QTimer(self)
        self._timer.setInterval(0)  # a batch per turn of the loop, while there is work
        self._timer.timeout.connect(self.turn)
        self._first = 0  # the room list's row of the first of them
        rooms = controller.rooms
        # Only a change at or above the rooms on screen can change which they are or
        # bring their rows (a room's preview changes as its rows come): thousands of
        # rooms updated at a start cost a comparison each, not a look.
        # (Bound methods only: a connection ends with this object, never calls it dead.)
        rooms.dataChanged.connect(self._on_rooms_changed)
        rooms.rowsInserted.connect(self._on_rooms_moved)
        rooms.rowsRemoved.connect(self._on_rooms_moved)
        rooms.modelReset.connect(self._look)
        room_list.verticalScrollBar().valueChanged.connect(self._look)
        controller.current_changed.connect(self._look)
        delegate.sizing_changed.connect(self._all_again)
        self._look()

    @property
    def idle(self) -> bool:
        """Nothing is left to measure (tests, benchmarks)."""
        return not self._timer.isActive()

    def _on_rooms_changed(self, top: QModelIndex, bottom: QModelIndex, *_: Any) -> None:
        if top.row() < self._first + AHEAD_ROOMS and bottom.row() >= self._first:
            self._look()

    def _on_rooms_moved(self, _parent: QModelIndex, first: int, _last: int) -> None:
        if first < self._first + AHEAD_ROOMS:  # rooms in or out above the last one shown
            self._look()

    def _look(self, *_: Any) -> None:
        """Which rooms are on screen in the room list now: follow their models."""
        rooms = self._controller.rooms
        top = self._list.indexAt(QPoint(1, 1))
        first = self._first = top.row() if top.isValid() else 0
        keys = [
            str(rooms.index(row).data(RoomRoles.Key))
            for row in range(first, min(rooms.rowCount(), first + AHEAD_ROOMS))
        ]
        before, self._ahead = set(self._ahead), keys
        for key in keys:
            model = self._controller.made_timeline(key)
            if model is None:
                continue  # none yet: its rows will come with a change of its room's item
            if self._watched.get(key) is model:
                if key not in before:  # back in view: what changed meanwhile was not measured
                    self._mark(key)
                continue
            old = self._watched.get(key)
            if old is not None:  # the room was left and joined again: its new model
                self._keys.pop(old, None)
            self._watched[key] = model
            self._keys[model] = key
            model.modelReset.connect(self._on_rows)
            model.rowsInserted.connect(self._on_rows)
            model.rowsRemoved.connect(self._on_rows)
            model.dataChanged.connect(self._on_rows_changed)
            self._mark(key)

    def _on_rows(self, *_: Any) -> None:
        key = self._keys.get(self.sender())
        if key is not None:
            self._mark(key)

    def _on_rows_changed(self, _first: QModelIndex, _last: QModelIndex, roles: Any = ()) -> None:
        # as the view: only a change of what a row's height depends on
        if not roles or int(Roles.Layout) in [int(r) for r in roles]:
            self._on_rows()

    def _mark(self, key: str) -> None:
        if key in self._ahead and key != self._controller.current:
            self._dirty[key] = None
            if not self._timer.isActive():
                self._timer.start()

    def _all_again(self) -> None:
        """The view lays rows out at another width or font: what was measured ahead is
        measured again at it."""
        for key in self._ahead:
            self._mark(key)

    def turn(self) -> None:
        """Measure the next ``ROWS_PER_TURN`` rows (one turn of the loop), fewer when
        their bodies would lay out more than ``TURN_CHARS`` characters."""
        measured = spent = 0
        while measured < ROWS_PER_TURN:
            if self._walk is None:
                if not self._dirty:
                    self._timer.stop()
                    return
                key = next(iter(self._dirty))
                del self._dirty[key]
                self._walk = (key, 0)
            key, row = self._walk
            model = self._controller.made_timeline(key)
            if (
                model is None
                or key == self._controller.current  # the view measures it itself
                or key not in self._ahead
                or row >= model.rowCount()
            ):
                self._walk = None
                continue
            index = model.index(row, 0)
            cost = self._delegate.ahead_cost(index)
            if measured and spent + cost > TURN_CHARS:
                return  # the next turn begins with it
            spent += cost
            if not self._delegate.measure_ahead(index):
                # the view has laid nothing out yet: its first layout says the width
                self._walk = None
                self._dirty.clear()
                self._timer.stop()
                return
            self._walk = (key, row + 1)
            measured += 1
