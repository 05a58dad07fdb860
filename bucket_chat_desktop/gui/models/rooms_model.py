"""The room list: every room of every storage, with preview, unread count and a warning
mark for rooms whose audit has findings."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QPersistentModelIndex, Qt

from ...protocol.untrusted_text import display_name_safe, html_escape, one_line
from ...sync.client import RoomRef
from ..safe import guard

Index = QModelIndex | QPersistentModelIndex
NAME_LIMIT = 200
PREVIEW_LIMIT = 300


class RoomRoles(enum.IntEnum):
    Key = Qt.ItemDataRole.UserRole + 1
    Name = enum.auto()
    Preview = enum.auto()
    LastTs = enum.auto()
    Unread = enum.auto()
    Findings = enum.auto()
    StorageName = enum.auto()
    Online = enum.auto()
    Muted = enum.auto()
    Partial = enum.auto()  # its history could not be read completely
    PreviewWarning = enum.auto()  # why the preview's sender id may imitate another, or ""


@dataclass(slots=True)
class RoomItem:
    key: str  # "<storage id>/<room id>"
    name: str
    storage_name: str
    preview: str = ""
    # a member event's sender id in the preview may imitate another: why (marked ⚠)
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

    @property
    def shown_name(self) -> str:
        """The name as every view shows it: read from the room's metadata (untrusted), so
        cleaned of invisible and bidi characters and capped; the room id when empty."""
        return display_name_safe(self.name, NAME_LIMIT) or self.room_id

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
                )
            case RoomRoles.Key:
                return item.key
            case RoomRoles.Preview:
                return one_line(item.preview, PREVIEW_LIMIT)
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
        return None

    # -- feeding it -----------------------------------------------------------------------

    def item(self, key: str) -> RoomItem | None:
        return next((i for i in self._items if i.key == key), None)

    def row_of(self, key: str) -> int:
        return next((n for n, i in enumerate(self._items) if i.key == key), -1)

    def room_keys(self) -> list[str]:
        return [i.key for i in self._items]

    def add(self, item: RoomItem) -> None:
        if self.item(item.key) is not None:
            return
        at = len(self._items)
        self.beginInsertRows(QModelIndex(), at, at)
        self._items.append(item)
        self.endInsertRows()

    def remove(self, key: str) -> None:
        row = self.row_of(key)
        if row >= 0:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._items[row]
            self.endRemoveRows()

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

    def set_storage_online(self, storage_id: str, online: bool) -> None:
        for item in self._items:
            if item.storage_id == storage_id:
                self.update(item.key, online=online)

    def total_unread(self) -> int:
        return sum(i.unread for i in self._items if not i.muted)
