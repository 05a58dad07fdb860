"""The join dialog's list as a test reads it: its rows (the model's, as shown) by
column, and choosing one as a person would."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt

from bucket_chat_desktop.gui.widgets.room_dialogs import RoomDialog

DISPLAY = Qt.ItemDataRole.DisplayRole
TIP = Qt.ItemDataRole.ToolTipRole


def shown(dialog: RoomDialog) -> list[str]:
    """The ids of the rooms the list shows (those the filter lets through), in order."""
    model = dialog.rooms
    return [model.room_id(r) for r in range(model.rowCount())]


def cell(dialog: RoomDialog, row: int, column: int, role: int = DISPLAY) -> str:
    return str(dialog.rooms.index(row, column).data(role) or "")


def text(dialog: RoomDialog, room_id: str, column: int = 0, role: int = DISPLAY) -> str:
    """What the row of ``room_id`` shows in ``column`` ("" when it is not shown)."""
    row = dialog.rooms.row_of(room_id)
    return cell(dialog, row, column, role) if row >= 0 else ""


def tip(dialog: RoomDialog, room_id: str, column: int = 0) -> str:
    return text(dialog, room_id, column, TIP)


def rows(dialog: RoomDialog) -> dict[str, list[str]]:
    """Room id -> its name, id and last activity as shown."""
    return {r: [text(dialog, r, c) for c in range(3)] for r in shown(dialog)}


def index(dialog: RoomDialog, room_id: str) -> QModelIndex:
    return dialog.rooms.index(dialog.rooms.row_of(room_id), 0)


def choose(dialog: RoomDialog, room_id: str) -> None:
    """Make the room's row the current one (a click, or the arrow keys)."""
    assert dialog.rooms_list is not None
    dialog.rooms_list.setCurrentIndex(index(dialog, room_id))
