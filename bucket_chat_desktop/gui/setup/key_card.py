"""The key fingerprint card (shown after the key is made) and its "Back up your key" dialog,
which writes a passphrase-encrypted copy of the key to a file of the user's choice.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...keys import (
    Identity,
    KeysError,
    export_backup,
)
from ...osfiles import write_atomic
from ...protocol.untrusted_text import html_escape
from ..storage.parts import FormGrid, Spinner, help_label
from ..tasks import TaskRunner
from .parts import password_edit, text_label, wizard_qss

log = logging.getLogger("bucket_chat.gui")


class KeyCard(QFrame):
    """This device's key: fingerprint (to compare out of band), where it is kept, and a
    button to save an encrypted backup."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.identity: Identity | None = None
        self.backup_dialog: BackupDialog | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(6)
        self.title = text_label("Your key fingerprint", "cardTitle")
        self.fingerprint = text_label("", "fingerprint")
        self.fingerprint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.where = text_label("", "help", rich=True)
        row = QHBoxLayout()
        row.setSpacing(10)
        self.backup_button = QPushButton("Save an encrypted backup…")
        self.backup_button.setAutoDefault(False)
        self.backup_button.clicked.connect(self.open_backup)
        self.backup_status = text_label("", "help")
        row.addWidget(self.backup_button)
        row.addWidget(self.backup_status, 1)
        layout.addWidget(self.title)
        layout.addWidget(self.fingerprint)
        layout.addWidget(self.where)
        layout.addLayout(row)

    def set_identity(self, identity: Identity, where: str, how: str) -> None:
        self.identity = identity
        self.fingerprint.setText(identity.display_fingerprint)
        self.where.setText(
            f"{html_escape(how)} Kept in {html_escape(where)}. Compare this fingerprint with "
            "what the people you chat with see for you — by phone or in person — to be sure "
            "it is you."
        )

    def open_backup(self) -> None:
        if self.identity is None:
            return
        self.backup_dialog = BackupDialog(self.identity, self.window())
        self.backup_dialog.saved.connect(
            lambda path: self.backup_status.setText(f"Backup saved to {path}")
        )
        self.backup_dialog.open()


class BackupDialog(QDialog):
    """Save the key encrypted under a passphrase (keys.export_backup) to a chosen file."""

    saved = Signal(str)  # the path written

    def __init__(self, identity: Identity, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.identity = identity
        self.saved_path: Path | None = None
        self.tasks = TaskRunner(self)
        self.tasks.failed.connect(lambda _w, msg: self._finish_error(msg))
        self.setWindowTitle("Save an encrypted backup")
        self.setMinimumWidth(520)
        self.setStyleSheet(wizard_qss())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 18)
        layout.setSpacing(12)
        layout.addWidget(text_label("Back up your key", "cardTitle"))
        layout.addWidget(
            help_label(
                "The backup holds this device's signing key, encrypted under the passphrase "
                "you choose here. Keep it somewhere safe: with it and the passphrase you can "
                "restore your identity on a new computer."
            )
        )
        form = FormGrid()
        row = QHBoxLayout()
        self.path_edit = QLineEdit(
            str(Path.home() / f"bucket-chat-key-{_safe(identity.user_id)}.key")
        )
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)
        browse.clicked.connect(self._browse)
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.add_row("Save to", row)
        self.pass1 = password_edit("at least 8 characters")
        self.pass2 = password_edit("repeat it")
        form.add_row("Passphrase", self.pass1)
        form.add_row("Repeat", self.pass2)
        layout.addLayout(form)
        self.error = text_label("", "error")
        layout.addWidget(self.error)
        buttons = QHBoxLayout()
        self.spinner = Spinner()
        buttons.addWidget(self.spinner)
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAutoDefault(False)
        self.cancel_button.clicked.connect(self.reject)
        self.save_button = QPushButton("Save backup")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the encrypted backup", self.path_edit.text(), "Key backups (*.key)"
        )
        if path:
            self.path_edit.setText(path)

    def save(self) -> asyncio.Task[Any] | None:
        text = self.path_edit.text().strip()
        first, second = self.pass1.text(), self.pass2.text()
        problem = ""
        if not text:
            problem = "Choose where to save the backup."
        elif len(first) < 8:
            problem = "Choose a passphrase of at least 8 characters."
        elif first != second:
            problem = "The two passphrases differ."
        if problem:
            self.error.setText(problem)
            return None
        self.error.clear()
        self.save_button.setEnabled(False)
        self.spinner.start()
        return self.tasks.start(self._save(Path(text).expanduser(), first), "Saving the backup")

    async def _save(self, path: Path, passphrase: str) -> None:
        try:
            data = await asyncio.to_thread(export_backup, self.identity, passphrase)
            await asyncio.to_thread(_write_private, path, data)
        except OSError as exc:
            self._finish_error(f"Cannot write {path}: {exc.strerror or exc}")
            return
        except KeysError as exc:
            self._finish_error(str(exc))
            return
        self.spinner.stop()
        self.saved_path = path
        log.info("saved an encrypted key backup of %s to %s", self.identity.user_id, path)
        self.saved.emit(str(path))
        self.accept()

    def _finish_error(self, message: str) -> None:
        self.spinner.stop()
        self.save_button.setEnabled(True)
        self.error.setText(message)


def _safe(user_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in user_id)[:40]


def _write_private(path: Path, data: bytes) -> None:
    """The backup, readable by its owner only, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
