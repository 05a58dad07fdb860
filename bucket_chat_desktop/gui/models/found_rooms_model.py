"""The join dialog's list: every room a storage listing found, as a table (name, id,
last activity) over a Python list of ids.

A storage's listing may hold 200,000 room ids (``LIST_MAX_OBJECTS``), and a folder any
number: anyone who can write to it can plant them (red team rt88). So nothing here is
done once per listed room on the GUI thread beyond building a few lists in C:

- a row is made only when it is shown (``data``; ``QTableView`` asks for the rows in
  view, where ``QTreeWidget`` held an item per room and ``QTreeView``/``QListView``
  walk every row of the model at each change: measured, 5 to 10 calls into Python a
  row);
- names are read a batch at a time (``set_read``), and a batch only puts its rooms in
  the groups of their names' looks (kept in order, with how many names are suspect),
  against an index of every listed id's look made once per listing (``name_looks``:
  one fold for all of them). A room's verdict (``name_lookalikes``' rule: it depends
  only on the rooms of its look, by name or id) is worked out when its row is shown,
  from a fixed part of its groups, and kept until a name read changes the look's group:
  20,000 rooms named alike cost a batch no more than two (red team: judging the whole
  look again at each batch, whose warnings all count the group, took a minute);
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
from ...protocol.room_names import (
    MAX_NAMED,
    NamedRoom,
    marked_by_name,
    name_look,
    name_looks,
    said_like,
    suspect_name,
)
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
        # the rooms whose last read failed for a passing reason (no answer in time), and
        # those of them whose name was not read (``RoomSummary.name_read``: the others'
        # activity listing got no answer)
        self.passing: set[str] = set()
        self.names_unread: set[str] = set()
        self.names: dict[str, str] = {}  # room id -> its name as read, cleaned once
        self._in: set[str] = set()  # ids of the rooms the user is in on this storage
        # looks: every listed id's (a look -> its places), the read names' (a look -> the
        # places of the rooms so named, in order), and the rooms the user is in elsewhere
        self._id_looks: list[str] = []  # by place: its id's look
        self._id_last: dict[str, int] = {}
        self._id_all: dict[str, list[int]] = {}  # looks of several ids: all, in order
        self._name_look: dict[int, str] = {}
        self._by_name: dict[str, list[int]] = {}  # in order
        self._suspect: set[int] = set()  # places whose names' own letters are suspect
        self._suspects: dict[str, int] = {}  # a look -> its names' suspects, away ones too
        self._both: dict[str, int] = {}  # a look -> its names' rooms whose ids look so too
        self._away_both: dict[str, int] = {}  # the same of the rooms the user is in elsewhere
        self._away: list[NamedRoom] = []
        self._away_by_name: dict[str, list[int]] = {}
        self._away_by_id: dict[str, list[int]] = {}
        # a look's verdicts (place -> why), worked out as rows are shown and kept until
        # its group changes (its version, bumped by a name read)
        self._version: dict[str, int] = {}
        self._verdicts: dict[str, tuple[int, dict[int, str]]] = {}
        self._unnamed: dict[str, tuple[int, list[NamedRoom], list[NamedRoom]]] = {}

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
        looks = self._id_looks = name_looks(ids)
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
            by_id = name_look(room.room_id)
            self._away_by_id.setdefault(by_id, []).append(n)
            if room.name:
                look = name_look(room.name)
                self._away_by_name.setdefault(look, []).append(n)
                self._suspects[look] = self._suspects.get(look, 0) + suspect_name(room.name)
                self._away_both[look] = self._away_both.get(look, 0) + (look == by_id)
        self.endResetModel()
        self.set_read(read)

    def set_read(self, read: Iterable[RoomSummary]) -> None:
        """Names read (a batch as it came into view): these rooms' rows, and the rooms
        their names look like, shown again. Work for the batch only, whatever the number
        of rooms of its names' looks (red team: 20,000 rooms of one name re-judged at
        each batch took a minute): a batch puts its rooms in their looks' groups and
        bumps those looks' versions; a verdict is worked out when its row is shown."""
        changed: list[int] = []
        others = False  # whether rooms outside the batch may read differently
        for summary in read:
            place = self._at.get(summary.room_id)
            if place is None:
                continue
            name = cleaned(summary)
            self.summaries[summary.room_id] = summary
            if summary.passing:
                self.passing.add(summary.room_id)
            else:
                self.passing.discard(summary.room_id)
            if summary.name_read:
                self.names_unread.discard(summary.room_id)
            else:
                self.names_unread.add(summary.room_id)
            self.names[summary.room_id] = name
            self._folded_names[place] = name.casefold()
            old = self._name_look.pop(place, "")
            if old:
                self._leave(old, place)
            if name:
                look = self._name_look[place] = name_look(name)
                self._join(look, place, suspect_name(name))
                others = others or self._crowded(look)
            if old:
                others = others or self._crowded(old)
            changed.append(place)
        if changed:
            self._refilter(changed)
            if others:  # one range: the view asks again for the rows it shows
                self._changed(range(len(self._ids)))
            else:
                self._changed(changed)

    def _join(self, look: str, place: int, suspect: bool) -> None:
        group = self._by_name.setdefault(look, [])
        group.insert(bisect_left(group, place), place)
        if suspect:
            self._suspect.add(place)
            self._suspects[look] = self._suspects.get(look, 0) + 1
        self._both[look] = self._both.get(look, 0) + (self._id_looks[place] == look)
        self._version[look] = self._version.get(look, 0) + 1

    def _leave(self, look: str, place: int) -> None:
        group = self._by_name[look]
        del group[bisect_left(group, place)]
        if place in self._suspect:
            self._suspect.discard(place)
            self._suspects[look] -= 1
        self._both[look] -= self._id_looks[place] == look
        self._version[look] = self._version.get(look, 0) + 1

    def _crowded(self, look: str) -> bool:
        """Whether a look holds rooms other than one read name's (whose verdicts a
        change of the group changes)."""
        return (
            len(self._by_name.get(look, ())) + len(self._away_by_name.get(look, ())) > 1
            or bool(self._away_by_id.get(look))
            or len(self._id_places(look)) > 1
        )

    def warning(self, room_id: str) -> str:
        """Why the room's name may pass for another's, "" when it may not: worked out
        for its look's group as it stands (``name_lookalikes``' rule), a fixed part of
        the group read however large, and kept until the group changes."""
        place = self._at.get(room_id)
        look = None if place is None else self._name_look.get(place)
        if place is None or look is None:
            return ""
        version = self._version.get(look, 0)
        kept = self._verdicts.get(look)
        if kept is None or kept[0] != version:
            kept = self._verdicts[look] = (version, {})
        verdict = kept[1].get(place)
        if verdict is None:
            verdict = kept[1][place] = self._verdict(look, place, version)
        return verdict

    def _verdict(self, look: str, place: int, version: int) -> str:
        names = self._by_name[look]
        names_away = self._away_by_name.get(look, [])
        mine = place in self._suspect
        others_suspect = self._suspects.get(look, 0) - mine
        by_names = marked_by_name(len(names) + len(names_away), mine, others_suspect)
        reasons: list[str] = []
        if by_names:
            here = [self._listed(p) for p in names[: MAX_NAMED + 1] if p != place]
            away = [self._away[n] for n in names_away[: MAX_NAMED + 1]]
            reasons += said_like("name", here, away, len(names) - 1, len(names_away))
        ids = self._id_places(look)
        ids_away = self._away_by_id.get(look, [])
        if ids or ids_away:
            if by_names:  # the rooms of that id look not named by name already
                _, here, away = self._unnamed_of(look, version)
                here_count = len(ids) - self._both.get(look, 0)
                away_count = len(ids_away) - self._away_both.get(look, 0)
            else:
                here = [self._listed(p) for p in ids[: MAX_NAMED + 1] if p != place]
                away = [self._away[n] for n in ids_away[: MAX_NAMED + 1]]
                here_count = len(ids) - (self._id_looks[place] == look)
                away_count = len(ids_away)
            reasons += said_like("id", here, away, here_count, away_count)
        return " ".join(reasons)

    def _unnamed_of(self, look: str, version: int) -> tuple[int, list[NamedRoom], list[NamedRoom]]:
        """The first rooms whose ids have ``look`` and whose names do not (listed, then
        elsewhere): worked out once per version of the look."""
        kept = self._unnamed.get(look)
        if kept is not None and kept[0] == version:
            return kept
        names = self._by_name.get(look, [])
        here: list[NamedRoom] = []
        for p in self._id_places(look):
            at = bisect_left(names, p)
            if at == len(names) or names[at] != p:
                here.append(self._listed(p))
                if len(here) > MAX_NAMED:
                    break
        away: list[NamedRoom] = []
        for n in self._away_by_id.get(look, []):
            room = self._away[n]
            if not room.name or name_look(room.name) != look:
                away.append(room)
                if len(away) > MAX_NAMED:
                    break
        kept = self._unnamed[look] = (version, here, away)
        return kept

    def _listed(self, place: int) -> NamedRoom:
        room_id = self._ids[place]
        return NamedRoom(f"{self.storage_id}/{room_id}", room_id, self.names.get(room_id, ""))

    def _id_places(self, look: str) -> list[int]:
        every = self._id_all.get(look)
        if every is not None:
            return every
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
            shown = f"⚠ {name}" if self._marks(room_id, summary) else name
            return shown or ("(no name)" if summary.name_read else "(name not read)")
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
        look = self.warning(room_id)
        if look:
            marks.append(look)
        return marks

    def _tip(self, room_id: str, summary: RoomSummary, joined: bool) -> str:
        tips = [f"Room id: {room_id}", *self._marks(room_id, summary)]
        if summary.passing:  # nothing wrong with the room known: it was not read
            what = "Part of it" if summary.name_read else "Its name"
            tips.append(
                f"{what} was not read this time: {one_line(summary.problem, 200)}. It is "
                "asked again a few times while this window is open."
            )
        elif summary.problem and summary.metadata is None:
            tips.append(f"Its metadata could not be used: {one_line(summary.problem, 200)}")
        elif summary.problem:  # used, but its name proves nothing (a signature is bad or none)
            tips.append(f"Its name is not proven: {one_line(summary.problem, 200)}")
        if joined:
            tips.append("You are in this room already.")
        if summary.last_activity_ms:
            tips.append("Last activity as its newest segment names say (not checked).")
        return "\n".join(tips)
