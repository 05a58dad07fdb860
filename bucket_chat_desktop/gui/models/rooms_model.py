"""The room list: every room of every storage, with preview, unread count and a warning
mark for rooms whose audit has findings, or whose name looks like another room's name or
id (``room_names.name_lookalikes``, kept up to date as names change)."""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QPersistentModelIndex, Qt

from ...protocol.room_names import NamedRoom, name_look, name_lookalikes
from ...protocol.untrusted_text import display_name_safe, html_escape, one_line
from ...sync.client import RoomRef
from ..safe import guard

Index = QModelIndex | QPersistentModelIndex
NAME_LIMIT = 200
PREVIEW_LIMIT = 300


class RoomRoles(enum.IntEnum):
    Key = Qt.ItemDataRole.UserRole + 1
    Name = enum.auto()
    LastTs = enum.auto()
    Unread = enum.auto()
    Findings = enum.auto()
    StorageName = enum.auto()
    Online = enum.auto()
    Muted = enum.auto()
    Partial = enum.auto()  # its history could not be read completely
    PreviewWarning = enum.auto()  # why the preview's sender id may imitate another, or ""
    PreviewSender = enum.auto()  # who wrote the message previewed, "" for a notice
    PreviewText = enum.auto()  # the preview without its sender: a message's text, a notice
    NameWarning = enum.auto()  # why its name may pass for another room's, or ""
    Place = enum.auto()  # "<room id> · <storage name>": what tells it from a look-alike


@dataclass(slots=True)
class RoomItem:
    key: str  # "<storage id>/<room id>"
    name: str
    storage_name: str
    # the last message's text (without its sender) or a notice of the app's own
    preview_text: str = ""
    # who wrote the message previewed, as its row names them (``controller.room_preview``:
    # a display name, else the id as ``shown_id`` shows it), drawn before its text;
    # "" when the preview is a notice of the app's own (a member event's, a deletion's),
    # which is drawn as one (in italics). Kept apart from the text: the view never has
    # to find the sender in the text (red team rt89)
    preview_sender: str = ""
    # the sender's name or id in the preview may imitate another: why (marked ⚠)
    preview_warning: str = ""
    last_ts: int = 0
    unread: int = 0
    findings: int = 0  # error-level findings of its audit and metadata
    partial: bool = False  # part of its history could not be read: no verdict is final
    # partial only because segments read here are no longer in storage as read (removed
    # or rewritten: ``vanished_only``), not because a read failed
    vanished: bool = False
    online: bool = True
    muted: bool = False
    # its name looks like the name or id of another room the user is in: why (marked ⚠,
    # told apart by its id and storage). Set by the model (``RoomsModel._judge``).
    name_warning: str = ""

    @property
    def shown_name(self) -> str:
        """The name as every view shows it: read from the room's metadata (untrusted), so
        cleaned of invisible and bidi characters and capped; the room id when empty."""
        return display_name_safe(self.name, NAME_LIMIT) or self.room_id

    @property
    def place(self) -> str:
        """Where the room is: its id and its storage's name."""
        return f"{self.room_id} · {one_line(self.storage_name, 60)}"

    @property
    def marked_name(self) -> str:
        """The name for a line of text (a notification's title): marked ⚠ and told apart
        by its id and storage when it looks like another room's."""
        if not self.name_warning:
            return self.shown_name
        return f"⚠ {self.shown_name} ({self.place})"

    def named(self) -> NamedRoom:
        """The room as ``name_lookalikes`` compares it with the others the user is in."""
        name = display_name_safe(self.name, NAME_LIMIT)
        where = f"{self.room_id} on {one_line(self.storage_name, 60)}"
        return NamedRoom(self.key, self.room_id, name, where, here=False)

    @property
    def storage_id(self) -> str:
        return RoomRef.from_key(self.key).storage_id

    @property
    def room_id(self) -> str:
        return RoomRef.from_key(self.key).room_id


def _problems(item: RoomItem) -> str:
    """The warning mark's words, for the tooltip."""
    if item.partial and item.vanished:
        return (
            "<br>⚠ Part of its history was removed or changed in storage after this device "
            "read it: no verdict is final."
        )
    if item.partial:
        return "<br>⚠ Its history could not be read completely: no verdict is final yet."
    if item.findings:
        s = "s" if item.findings != 1 else ""
        return f"<br>⚠ {item.findings:,} problem{s} in its history: see its audit."
    return ""


class RoomsModel(QAbstractListModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[RoomItem] = []
        # What each room's name and id look like (``name_look``), and the rooms of each
        # look: a change of name judges again only the rooms that share a look with it,
        # so thousands of rooms cost no walk of them all per change, none per paint.
        self._look: dict[str, str] = {}  # key -> its name's look ("" without a name)
        self._by_name: dict[str, set[str]] = {}
        self._by_id: dict[str, set[str]] = {}
        self._keyed: dict[str, RoomItem] = {}
        # key -> its row: a storage going offline marks each of its rooms without a walk
        # of the list per room (n²/2 steps per status change: red team rt68)
        self._rows: dict[str, int] = {}
        self._added: dict[str, int] = {}  # key -> when it was added: the order reasons name
        self._adding = itertools.count()

    @guard(0)
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    @guard()
    def roleNames(self) -> dict[int, QByteArray]:
        return {int(r): QByteArray(r.name.encode()) for r in RoomRoles}

    @guard(None)
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        match role:
            case Qt.ItemDataRole.DisplayRole | RoomRoles.Name:
                return item.shown_name
            case Qt.ItemDataRole.ToolTipRole:  # rich text: every piece escaped
                return (
                    f"<b>{html_escape(item.shown_name)}</b><br>{html_escape(item.room_id)} on "
                    f"{html_escape(one_line(item.storage_name))}{_problems(item)}"
                    + (f"<br>⚠ {html_escape(item.preview_warning)}" if item.preview_warning else "")
                    + (f"<br>⚠ {html_escape(item.name_warning)}" if item.name_warning else "")
                )
            case RoomRoles.Key:
                return item.key
            case RoomRoles.PreviewText:
                return one_line(item.preview_text, PREVIEW_LIMIT)
            case RoomRoles.LastTs:
                return item.last_ts
            case RoomRoles.Unread:
                return item.unread
            case RoomRoles.Findings:
                return item.findings
            case RoomRoles.StorageName:
                return item.storage_name
            case RoomRoles.Online:
                return item.online
            case RoomRoles.Muted:
                return item.muted
            case RoomRoles.Partial:
                return item.partial
            case RoomRoles.PreviewWarning:
                return item.preview_warning
            case RoomRoles.PreviewSender:
                return item.preview_sender
            case RoomRoles.NameWarning:
                return item.name_warning
            case RoomRoles.Place:
                return item.place
        return None

    # -- feeding it -----------------------------------------------------------------------

    def item(self, key: str) -> RoomItem | None:
        return self._keyed.get(key)

    def row_of(self, key: str) -> int:
        return self._rows.get(key, -1)

    def room_keys(self) -> list[str]:
        return [i.key for i in self._items]

    def add(self, item: RoomItem) -> None:
        if self.item(item.key) is not None:
            return
        at = len(self._items)
        self.beginInsertRows(QModelIndex(), at, at)
        self._items.append(item)
        self._rows[item.key] = at
        self.endInsertRows()
        self._index(item)
        self._judge({self._look[item.key], name_look(item.room_id)} - {""})

    def remove(self, key: str) -> None:
        row = self.row_of(key)
        if row >= 0:
            self.beginRemoveRows(QModelIndex(), row, row)
            item = self._items.pop(row)
            del self._rows[key]
            for n in range(row, len(self._items)):  # the rows after it move up
                self._rows[self._items[n].key] = n
            self.endRemoveRows()
            looks = {self._look[key], name_look(item.room_id)} - {""}
            self._unindex(item)
            del self._added[key]
            self._judge(looks)

    def update(self, key: str, **changes: Any) -> None:
        row = self.row_of(key)
        if row < 0:
            return
        item = self._items[row]
        changed = False
        for name, value in changes.items():
            if getattr(item, name) != value:
                setattr(item, name, value)
                changed = True
        if changed:
            self.dataChanged.emit(self.index(row), self.index(row))
        if changed and ("name" in changes or "storage_name" in changes):
            old = self._look[key]
            self._unindex(item)
            self._index(item)
            self._judge({old, self._look[key], name_look(item.room_id)} - {""})

    def named_rooms(self) -> list[NamedRoom]:
        """Every room, as ``name_lookalikes`` compares them (the join dialog's)."""
        return [i.named() for i in self._items]

    # -- names that look like another room's ----------------------------------------------

    def _index(self, item: RoomItem) -> None:
        self._keyed[item.key] = item
        self._added.setdefault(item.key, next(self._adding))
        named = item.named()
        look = self._look[item.key] = name_look(named.name) if named.name else ""
        if look:
            self._by_name.setdefault(look, set()).add(item.key)
        self._by_id.setdefault(name_look(item.room_id), set()).add(item.key)

    def _unindex(self, item: RoomItem) -> None:
        look = self._look.pop(item.key, "")
        self._keyed.pop(item.key, None)
        for groups, of in ((self._by_name, look), (self._by_id, name_look(item.room_id))):
            group = groups.get(of)
            if group is not None:
                group.discard(item.key)
                if not group:
                    del groups[of]

    def _judge(self, looks: set[str]) -> None:
        """Judge again the rooms whose names have one of ``looks``, against the rooms
        that share it (by name or id): what a verdict depends on."""
        judged: set[str] = set()
        compared: set[str] = set()
        for look in looks:
            names = self._by_name.get(look, set())
            judged |= names
            compared |= names | self._by_id.get(look, set())
        if not judged:
            return
        ordered = sorted(compared, key=self._added.__getitem__)  # first added first
        verdicts = name_lookalikes((self._keyed[k].named() for k in ordered), judge=judged)
        for key in judged:
            verdict = verdicts.get(key, "")
            if self._keyed[key].name_warning != verdict:
                self.update(key, name_warning=verdict)

    def set_storage_online(self, storage_id: str, online: bool) -> None:
        """Mark the storage's rooms: one walk of the list, one change signal."""
        changed = [
            row
            for row, item in enumerate(self._items)
            if item.online != online and item.storage_id == storage_id
        ]
        for row in changed:
            self._items[row].online = online
        if changed:
            self.dataChanged.emit(
                self.index(changed[0]), self.index(changed[-1]), [RoomRoles.Online]
            )

    def total_unread(self) -> int:
        return sum(i.unread for i in self._items if not i.muted)
