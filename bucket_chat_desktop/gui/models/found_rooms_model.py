"""The join dialog's list: every room a storage listing found, as a table (name, id,
last activity) over a Python list of ids.

A storage's listing may hold 200,000 room ids (``LIST_MAX_OBJECTS``), and a folder any
number: anyone who can write to it can plant them (red team rt88). So nothing here is
done once per listed room on the GUI thread beyond building a few lists in C:

- a row is made only when it is shown (``data``; ``QTableView`` asks for the rows in
  view, where ``QTreeWidget`` held an item per room and ``QTreeView``/``QListView``
  walk every row of the model at each change: measured, 5 to 10 calls into Python a
  row);
- names are read a batch at a time (``set_read``), and a batch judges again only the
  rooms that share a look with a name it read (the room list's ``_judge``: a verdict
  depends only on the rooms of its look, by name or id), against an index of every
  listed id's look made once per listing (``name_looks``: one fold for all of them);
- the filter is a list of the rows that match, made once per change of the text (a
  longer text looks only through what the shorter one matched) and, for a batch read,
  grown or shrunk by the rows of that batch only.
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from ... import timestamps
from ...protocol.room_names import NamedRoom, name_look, name_lookalikes, name_looks
from ...protocol.untrusted_text import display_name_safe, one_line
from ...sync.room_objects import RoomSummary
from ..safe import guard
from ..style import TRUST_COLORS

Index = QModelIndex | QPersistentModelIndex
ROOM_ROLE = Qt.ItemDataRole.UserRole  # a row's room id
HEADERS = ("Name", "Room id", "Last activity")
BAD_SIGNATURE = (
    "This name's signature is invalid: someone other than the room's "
    "creator may have written it, or it was damaged."
)


class Column(enum.IntEnum):
    NAME = 0
    ID = 1
    ACTIVITY = 2


def cleaned(summary: RoomSummary) -> str:
    """A room's name as read from its metadata (anyone with write access sets it),
    cleaned for showing (``display_name_safe``): once per name read, not at every
    keystroke in the filter or every batch of names read."""
    return display_name_safe(summary.name) if summary.name else ""


def _folded(room_ids: list[str]) -> list[str]:
    """Each id case folded: ids are ASCII (``ROOM_ID_RE``), folded at once, joined by a
    character none holds; one by one otherwise."""
    folded = "\n".join(room_ids).casefold().split("\n")
    return folded if len(folded) == len(room_ids) else [r.casefold() for r in room_ids]


class FoundRoomsModel(QAbstractTableModel):
    """The rooms of one listing (``show``), their names as read (``set_read``) and the
    rows the filter lets through (``set_filter``). ``joined``: the rooms the user is in
    on any storage (``NamedRoom``s, first of a key kept), compared by name and id."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.greyed = QBrush()  # the brush of rooms the user is in already (the view's)
        self._clear()

    def _clear(self) -> None:
        self.storage_id = ""
        self._ids: list[str] = []  # every room listed, in the order shown
        self._at: dict[str, int] = {}  # room id -> its place in _ids
        self._shown: list[int] = []  # the places the filter lets through, in order
        self._words = ""  # the filter's text, case folded
        self._folded_ids: list[str] | None = None  # made on the first filter
        self._folded_names: list[str] = []  # by place: the name read, case folded
        self.summaries: dict[str, RoomSummary] = {}
        self.names: dict[str, str] = {}  # room id -> its name as read, cleaned once
        self._warnings: dict[str, str] = {}  # room id -> why its name may pass for another
        self._in: set[str] = set()  # ids of the rooms the user is in on this storage
        # looks: every listed id's (a look -> its places), the read names' (a look -> the
        # places of the rooms so named), and the rooms the user is in elsewhere
        self._id_last: dict[str, int] = {}
        self._id_all: dict[str, list[int]] = {}  # looks of several ids: all, in order
        self._name_look: dict[int, str] = {}
        self._by_name: dict[str, set[int]] = {}
        self._away: list[NamedRoom] = []
        self._away_by_look: dict[str, list[int]] = {}

    # -- feeding it ----------------------------------------------------------------------------

    def clear(self) -> None:
        self.beginResetModel()
        self._clear()
        self.endResetModel()

    def show(
        self,
        storage_id: str,
        order: Sequence[str],
        read: Iterable[RoomSummary],
        joined_here: Iterable[str],
        joined: Iterable[NamedRoom],
    ) -> None:
        """A new listing: the ids ``order``ed as shown, those of ``read`` with their
        names. A few calls for the lot, whatever the number of ids (lists and dicts made
        in C, every id's look folded at once); the rows are made as they are shown."""
        self.beginResetModel()
        self._clear()
        self.storage_id = storage_id
        ids = self._ids = list(order)
        count = len(ids)
        self._at = dict(zip(ids, range(count), strict=True))
        self._shown = list(range(count))
        self._folded_names = [""] * count
        self._in = set(joined_here)
        looks = name_looks(ids)
        last = self._id_last = dict(zip(looks, range(count), strict=True))
        if len(last) < count:  # some ids look alike: each such look's ids, in order
            every = self._id_all
            for place, look in enumerate(looks):
                if last[look] != place:
                    every.setdefault(look, []).append(place)
            for look, places in every.items():
                places.append(last[look])
        prefix = f"{storage_id}/"
        kept: set[str] = set()
        for room in joined:  # a listed room the user is in is judged as listed
            listed = room.key.startswith(prefix) and room.key[len(prefix) :] in self._at
            if listed or room.key in kept:
                continue
            kept.add(room.key)
            n = len(self._away)
            self._away.append(room)
            mine = {name_look(room.room_id), name_look(room.name) if room.name else ""}
            for look in mine - {""}:
                self._away_by_look.setdefault(look, []).append(n)
        self.endResetModel()
        self.set_read(read)

    def set_read(self, read: Iterable[RoomSummary]) -> None:
        """Names read (a batch as it came into view): these rooms' rows, and the rooms
        their names look like, shown again. Work for the batch and the rooms of its
        names' looks, never for the whole listing."""
        changed: set[int] = set()
        looks: set[str] = set()
        for summary in read:
            place = self._at.get(summary.room_id)
            if place is None:
                continue
            name = cleaned(summary)
            self.summaries[summary.room_id] = summary
            self.names[summary.room_id] = name
            self._folded_names[place] = name.casefold()
            old = self._name_look.pop(place, "")
            if old:
                self._by_name[old].discard(place)
                looks.add(old)
            if name:
                look = self._name_look[place] = name_look(name)
                self._by_name.setdefault(look, set()).add(place)
                looks.add(look)
            else:  # no name (or none any more): judged by nothing, as before
                self._warnings.pop(summary.room_id, None)
            changed.add(place)
        changed |= self._judge(looks)
        if changed:
            self._refilter(changed)
            self._changed(changed)

    def _judge(self, looks: set[str]) -> set[int]:
        """Judge again the read rooms whose names have one of ``looks``, against the
        rooms that share it by name or id (what a verdict depends on, as the room list
        does: ``RoomsModel._judge``), in the listing's order; the places whose verdict
        changed."""
        judged: set[int] = set()
        compared: set[int] = set()
        away: set[int] = set()
        for look in looks:
            names = self._by_name.get(look, set())
            judged |= names
            compared |= names
            compared.update(self._id_all.get(look) or self._id_one(look))
            away.update(self._away_by_look.get(look, ()))
        if not judged:
            return set()
        prefix = f"{self.storage_id}/"
        ids = self._ids
        listed = [
            NamedRoom(prefix + ids[p], ids[p], self.names.get(ids[p], "")) for p in sorted(compared)
        ]
        rooms = [*listed, *(self._away[n] for n in sorted(away))]
        verdicts = name_lookalikes(rooms, judge=[prefix + ids[p] for p in judged])
        changed = set()
        for place in judged:
            room_id = ids[place]
            verdict = verdicts.get(prefix + room_id, "")
            if self._warnings.get(room_id, "") != verdict:
                changed.add(place)
                if verdict:
                    self._warnings[room_id] = verdict
                else:
                    self._warnings.pop(room_id, None)
        return changed

    def _id_one(self, look: str) -> list[int]:
        place = self._id_last.get(look)
        return [] if place is None else [place]

    def set_filter(self, text: str) -> None:
        """Show the rooms whose id, or name once read, holds ``text`` (any case). A
        longer text looks only among the rows the shorter one let through."""
        words = text.strip().casefold()
        if words == self._words:
            return
        before, self._words = self._words, words
        if not words:
            shown = list(range(len(self._ids)))
        else:
            if self._folded_ids is None:
                self._folded_ids = _folded(self._ids)
            ids, names = self._folded_ids, self._folded_names
            pool = self._shown if before and before in words else range(len(ids))
            shown = [p for p in pool if words in ids[p] or words in names[p]]
        self.beginResetModel()
        self._shown = shown
        self.endResetModel()

    def _matches(self, place: int) -> bool:
        if not self._words:
            return True
        assert self._folded_ids is not None
        return self._words in self._folded_ids[place] or self._words in self._folded_names[place]

    def _refilter(self, places: Iterable[int]) -> None:
        """A read name may make its room match the filter (or, read again, not): only
        these rows come or go."""
        if not self._words:
            return
        shown = self._shown
        for place in sorted(places):
            at = bisect_left(shown, place)
            there = at < len(shown) and shown[at] == place
            if self._matches(place) and not there:
                self.beginInsertRows(QModelIndex(), at, at)
                shown.insert(at, place)
                self.endInsertRows()
            elif there and not self._matches(place):
                self.beginRemoveRows(QModelIndex(), at, at)
                del shown[at]
                self.endRemoveRows()

    def _changed(self, places: Iterable[int]) -> None:
        rows = [r for r in map(self.row_of_place, places) if r >= 0]
        if rows:
            last = len(HEADERS) - 1
            self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), last))

    # -- reading it ----------------------------------------------------------------------------

    @property
    def listed(self) -> int:
        return len(self._ids)

    @property
    def filtering(self) -> bool:
        return bool(self._words)

    def holds(self, room_id: str) -> bool:
        return room_id in self._at

    def room_id(self, row: int) -> str:
        return self._ids[self._shown[row]]

    def room_ids(self, first: int, count: int) -> list[str]:
        """The ids of ``count`` rows from ``first`` on."""
        return [self._ids[p] for p in self._shown[max(0, first) : max(0, first) + count]]

    def row_of_place(self, place: int) -> int:
        if not self._words:
            return place
        at = bisect_left(self._shown, place)
        return at if at < len(self._shown) and self._shown[at] == place else -1

    def row_of(self, room_id: str) -> int:
        """The row showing ``room_id``, or -1."""
        place = self._at.get(room_id)
        return -1 if place is None else self.row_of_place(place)

    def warning(self, room_id: str) -> str:
        return self._warnings.get(room_id, "")

    # -- the model's side ----------------------------------------------------------------------

    @guard(0)
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._shown)

    @guard(0)
    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    @guard(None)
    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(HEADERS)
        ):
            return HEADERS[section]
        return None

    @guard(None)
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._shown):
            return None
        room_id = self._ids[self._shown[index.row()]]
        column = index.column()
        if role == ROOM_ROLE:
            return room_id
        summary = self.summaries.get(room_id)
        joined = room_id in self._in
        if role == Qt.ItemDataRole.ForegroundRole:
            if joined and column in (Column.NAME, Column.ID):
                return self.greyed
            if column == Column.NAME and summary is not None and self._marks(room_id, summary):
                return QColor(TRUST_COLORS["key-changed"])
            return None
        if summary is None:  # not read yet
            if role == Qt.ItemDataRole.DisplayRole:
                return {Column.NAME: "…", Column.ID: room_id}.get(Column(column), "")
            if role == Qt.ItemDataRole.ToolTipRole and column == Column.NAME:
                return f"Room id: {room_id}\nIts name is read once it is shown."
            return None
        name = self.names.get(room_id, "")
        if role == Qt.ItemDataRole.DisplayRole:
            if column == Column.ID:
                return room_id
            if column == Column.ACTIVITY:
                when = summary.last_activity_ms
                return timestamps.full(when) if when else "—"
            return (f"⚠ {name}" if self._marks(room_id, summary) else name) or "(no name)"
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tip(room_id, summary, joined)
        if role == Qt.ItemDataRole.FontRole and column == Column.NAME and not name:
            font = QFont()
            font.setItalic(True)
            return font
        return None

    def _marks(self, room_id: str, summary: RoomSummary) -> list[str]:
        """Why the room's name is marked: a bad signature (a name its signature does not
        cover: rewritten by someone with write access, or damaged), then whom it may
        pass for (beside the first, never instead)."""
        marks = []
        if (
            summary.metadata is not None
            and summary.metadata.bad_signature
            and self.names.get(room_id)
        ):
            marks.append(BAD_SIGNATURE)
        look = self._warnings.get(room_id)
        if look:
            marks.append(look)
        return marks

    def _tip(self, room_id: str, summary: RoomSummary, joined: bool) -> str:
        tips = [f"Room id: {room_id}", *self._marks(room_id, summary)]
        if summary.problem and summary.metadata is None:
            tips.append(f"Its metadata could not be used: {one_line(summary.problem, 200)}")
        elif summary.problem:  # used, but its name proves nothing (a signature is bad or none)
            tips.append(f"Its name is not proven: {one_line(summary.problem, 200)}")
        if joined:
            tips.append("You are in this room already.")
        if summary.last_activity_ms:
            tips.append("Last activity as its newest segment names say (not checked).")
        return "\n".join(tips)
