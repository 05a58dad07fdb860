"""Small dialogs: create a room, join a room by id."""

from __future__ import annotations

import re

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from ...protocol.ids import InvalidRoomIdError, check_room_id
from ...settings import Settings


def _suggest_id(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip().lower()).strip("-.")
    return slug[:64] or ""


class RoomDialog(QDialog):
    """Create (with a name) or join (by id) a room on one of the user's storages."""

    def __init__(self, settings: Settings, *, create: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.creating = create
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
        form.addRow("Storage", self.storage)
        if create:
            form.addRow("Name", self.name)
            self.name.textChanged.connect(self._name_changed)
        form.addRow("Room id", self.room_id)
        form.addRow(self.problem)
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

    def _name_changed(self, text: str) -> None:
        if self._auto_id:
            self.room_id.setText(_suggest_id(text))

    def _validate(self) -> None:
        text = self.room_id.text().strip()
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        try:
            check_room_id(text)
        except InvalidRoomIdError as exc:
            self.problem.setText(str(exc) if text else "")
            ok.setEnabled(False)
            return
        self.problem.setText("")
        ok.setEnabled(self.storage.count() > 0)

    @property
    def values(self) -> tuple[str, str, str]:
        """(storage id, room id, name)."""
        return (
            str(self.storage.currentData()),
            self.room_id.text().strip(),
            self.name.text().strip(),
        )
