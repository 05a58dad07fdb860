"""The first-run wizard: who you are, where your rooms live, done.

`run_wizard` shows `SetupWizard` without a nested event loop and awaits it. By the time it
returns a `Settings`, this device's key is in the key store (created, imported from an
encrypted backup, or the one the device already had for that user id), the storage has
been written to the settings file, and the optional first room has been created or
joined. Slow work (Argon2id, key store, storage) runs asynchronously on the app's qasync
loop, with a busy indicator; the dialog never freezes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ... import settings as settings_store
from ...keys import (
    KEY_STORE_ENV,
    PASSPHRASE_ENV,
    EncryptedFileStore,
    Identity,
    KeyExistsError,
    KeysError,
    KeyStore,
    check_user_id,
    default_key_dir,
    export_backup,
    import_backup,
    key_file_name,
    load_or_create_identity,
    open_key_store,
)
from ...keys.passphrase import claim_env_passphrase
from ...osfiles import open_fd
from ...protocol.ids import InvalidRoomIdError, check_room_id
from ...settings import Settings
from ...storage.base import StorageError
from ...storage.open import open_location
from ...storage.profiles import ProfileStore
from ...sync.room_objects import room_exists
from ...sync.writer import RoomError, RoomWriter
from ..safe import guard
from ..style import ACCENT, is_dark
from ..tasks import TaskRunner
from .storage_form import (
    ERROR_COLOR,
    OK_COLOR,
    WARN_COLOR,
    FormGrid,
    Spinner,
    StorageForm,
    esc,
    help_label,
)

log = logging.getLogger("bucket_chat.gui")

STEPS = ("Who you are", "Where your rooms live", "Done")

WIZARD_QSS = """
QWidget#wizardSide { background: %(side)s; }
QLabel#pageTitle { font-size: 18pt; font-weight: 600; }
QLabel#pageSubtitle { color: palette(placeholder-text); }
QLabel#help { color: palette(placeholder-text); }
QLabel#error { color: %(error)s; }
QLabel#fingerprint { font-family: "DejaVu Sans Mono", "Menlo", "Consolas", monospace;
                     font-size: 12pt; letter-spacing: 1px; }
QFrame#card { border: 1px solid %(card_border)s; border-radius: 10px; background: %(card)s; }
QLabel#cardTitle { font-weight: 600; }
"""


def _wizard_qss() -> str:
    dark = is_dark()
    return WIZARD_QSS % {
        "side": ACCENT,
        "error": ERROR_COLOR,
        # a surface the fields (palette base) stand out from, in both themes
        "card": "#272c33" if dark else "#ffffff",
        "card_border": "#3a3f47" if dark else "#d5d9df",
    }


def _label(text: str, name: str, *, rich: bool = False) -> QLabel:
    """A wrapping label; plain text unless ``rich`` (then the caller escapes user text)."""
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    return label


def _card() -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(16, 14, 16, 14)
    layout.setSpacing(8)
    return frame, layout


def _password(placeholder: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    edit.setPlaceholderText(placeholder)
    return edit


def _key_file_exists(user_id: str) -> bool:
    """True when a key file for ``user_id`` exists and would be used (see open_key_store)."""
    if (os.environ.get(KEY_STORE_ENV) or "auto").strip().lower() == "keyring":
        return False
    try:
        return (default_key_dir() / key_file_name(user_id)).exists()
    except (KeysError, OSError):
        return False


def describe_store(store: KeyStore) -> str:
    """Where keys go, for people: "OS keyring (SecretService)" or the encrypted file."""
    if isinstance(store, EncryptedFileStore):
        return f"an encrypted key file in {store.directory}"
    return store.name


# -- decorations -----------------------------------------------------------------------------


class StepsWidget(QWidget):
    """The wizard's side bar: numbered steps, the current one highlighted, done ones ticked."""

    def __init__(self, steps: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps = steps
        self.current = 0
        self.setMinimumHeight(60 + 52 * len(steps))

    def set_current(self, index: int) -> None:
        self.current = index
        self.update()

    @guard()
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        white = QColor("#ffffff")
        faded = QColor(255, 255, 255, 150)
        font = QFont(self.font())
        for i, name in enumerate(self.steps):
            y = 8 + i * 52
            circle = QRectF(4, y, 30, 30)
            if i < self.current:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(255, 255, 255, 60))
                p.drawEllipse(circle)
                pen = QPen(white, 2.4)
                pen.setCapStyle(Qt.PenCapStyle.RoundCap)
                p.setPen(pen)
                x = circle.left()
                p.drawLine(QPointF(x + 9, y + 15), QPointF(x + 13, y + 20))
                p.drawLine(QPointF(x + 13, y + 20), QPointF(x + 21, y + 10))
            elif i == self.current:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(white)
                p.drawEllipse(circle)
                p.setPen(QColor(ACCENT))
                font.setBold(True)
                p.setFont(font)
                p.drawText(circle, Qt.AlignmentFlag.AlignCenter, str(i + 1))
            else:
                p.setPen(QPen(faded, 1.6))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawEllipse(circle.adjusted(1, 1, -1, -1))
                font.setBold(False)
                p.setFont(font)
                p.drawText(circle, Qt.AlignmentFlag.AlignCenter, str(i + 1))
            font.setBold(i == self.current)
            p.setFont(font)
            p.setPen(white if i <= self.current else faded)
            p.drawText(
                QRectF(46, y, self.width() - 50, 30),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                name,
            )
            if i < len(self.steps) - 1:
                p.setPen(QPen(QColor(255, 255, 255, 70), 1.5))
                p.drawLine(19, int(y + 34), 19, int(y + 48))
        p.end()


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
        self.title = _label("Your key fingerprint", "cardTitle")
        self.fingerprint = _label("", "fingerprint")
        self.fingerprint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.where = _label("", "help", rich=True)
        row = QHBoxLayout()
        row.setSpacing(10)
        self.backup_button = QPushButton("Save an encrypted backup…")
        self.backup_button.setAutoDefault(False)
        self.backup_button.clicked.connect(self.open_backup)
        self.backup_status = _label("", "help")
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
            f"{esc(how)} Kept in {esc(where)}. Compare this fingerprint with what the people "
            "you chat with see for you — by phone or in person — to be sure it is you."
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
        self.setStyleSheet(_wizard_qss())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 18)
        layout.setSpacing(12)
        layout.addWidget(_label("Back up your key", "cardTitle"))
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
        self.pass1 = _password("at least 8 characters")
        self.pass2 = _password("repeat it")
        form.add_row("Passphrase", self.pass1)
        form.add_row("Repeat", self.pass2)
        layout.addLayout(form)
        self.error = _label("", "error")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


# -- pages ---------------------------------------------------------------------------------


class Page(QWidget):
    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__()
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(14)
        self.title = _label(title, "pageTitle")
        self.subtitle = _label(subtitle, "pageSubtitle")
        head = QVBoxLayout()
        head.setSpacing(4)
        head.addWidget(self.title)
        head.addWidget(self.subtitle)
        self.layout_.addLayout(head)
        self.layout_.addSpacing(4)


class IdentityPage(Page):
    """User id, display name, and this device's key: new, or imported from a backup."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            "Who you are",
            "Your user id, and a signing key for this device: every message you send is "
            "signed with it, and everyone checks the signature.",
        )
        form = FormGrid()
        self.user_id = QLineEdit(settings.user_id)
        self.user_id.setPlaceholderText("e.g. alice@example.com")
        self.display_name = QLineEdit(settings.displayname)
        self.display_name.setPlaceholderText("e.g. Alice (optional)")
        self.user_error = _label("", "error")
        form.add_row("User id", self.user_id)
        form.add_row("", self.user_error)
        form.set_row_visible(self.user_error, False)
        self.user_form = form
        form.add_row(
            "",
            help_label(
                "How others recognise you. Use the same id on all your devices; an e-mail "
                "address works well."
            ),
        )
        form.add_row("Display name", self.display_name)
        self.layout_.addLayout(form)

        card, box = _card()
        box.addWidget(_label("This device's key", "cardTitle"))
        self.create_radio = QRadioButton("Create a new key for this device")
        self.import_radio = QRadioButton("Import an encrypted key backup")
        self.create_radio.setChecked(True)
        self.mode = QButtonGroup(self)
        self.mode.addButton(self.create_radio, 0)
        self.mode.addButton(self.import_radio, 1)
        box.addWidget(self.create_radio)
        box.addWidget(self.import_radio)

        # One grid for the key's fields, so their labels line up.
        grid = self.key_form = FormGrid()
        grid.setContentsMargins(26, 2, 0, 0)
        row = QHBoxLayout()
        self.backup_path = QLineEdit()
        self.backup_path.setPlaceholderText("the .key file you saved")
        self.backup_browse = QPushButton("Browse…")
        self.backup_browse.setAutoDefault(False)
        self.backup_browse.clicked.connect(self._browse_backup)
        row.addWidget(self.backup_path, 1)
        row.addWidget(self.backup_browse)
        self.backup_pass = _password("the backup's passphrase")
        self.backup_row = grid.add_row("Backup file", row)
        grid.add_row("Backup passphrase", self.backup_pass)
        self.pass1 = _password("protects the key file")
        self.pass2 = _password("repeat it")
        self.pass1_label = QLabel("New passphrase")
        grid.add_row(self.pass1_label, self.pass1)
        grid.add_row("Repeat", self.pass2)
        self.pass_form = grid
        self.store_label = _label("", "help", rich=True)
        self.store_label.setContentsMargins(0, 4, 0, 0)
        box.addWidget(self.store_label)
        box.addLayout(grid)
        self.key_error = _label("", "error")
        self.key_error.hide()
        box.addWidget(self.key_error)
        self.layout_.addWidget(card)

        self.key_card = KeyCard()
        self.key_card.hide()
        self.layout_.addWidget(self.key_card)
        self.layout_.addStretch(1)

        self.import_radio.toggled.connect(lambda _on: self.update_store_hint())
        self.user_id.textChanged.connect(lambda _t: self.update_store_hint())

        self.store: KeyStore | None = None
        self.store_error = ""
        self._open_store()
        self.update_store_hint()

    def _open_store(self) -> None:
        """Which store keys go to (no user id yet): shown, so the user knows."""
        try:
            self.store = open_key_store(passphrase_provider=_no_passphrase)
            self.store_error = ""
        except KeysError as exc:
            self.store = None
            self.store_error = str(exc)

    def uses_file_store(self, user_id: str = "") -> bool:
        if self.store is not None and self.store.kind == "file":
            return True
        return bool(user_id) and _key_file_exists(user_id)

    def existing_key_file(self, user_id: str) -> bool:
        return bool(user_id) and _key_file_exists(user_id)

    def update_store_hint(self) -> None:
        user_id = self.user_id.text().strip()
        if self.store_error:
            self.store_label.setText(
                f"<span style='color:{ERROR_COLOR}'>{esc(self.store_error)}</span>"
            )
        elif self.uses_file_store(user_id):
            why = ""
            if self.store is not None and self.store.kind != "file":
                why = ", as this device already keeps one for this user id"
            elif self.store is not None and "no OS keyring" in self.store.selection_reason:
                why = ", as no OS keyring is usable here"
            elif self.store is not None:
                why = f" ({self.store.selection_reason})"
            self.store_label.setText(
                f"Your key will be kept in: <b>an encrypted key file</b>{esc(why)}."
            )
        elif self.store is not None:
            self.store_label.setText(f"Your key will be kept in: <b>{esc(self.store.name)}</b>.")
        importing = self.import_radio.isChecked()
        self.user_id.setPlaceholderText(
            "taken from the backup" if importing else "e.g. alice@example.com"
        )
        grid = self.key_form
        grid.set_row_visible(self.backup_row, importing)
        grid.set_row_visible(self.backup_pass, importing)
        needs = self.uses_file_store(user_id) and not claim_env_passphrase()
        unlocking = self.existing_key_file(user_id) and not importing
        grid.set_row_visible(self.pass1, needs)
        grid.set_row_visible(self.pass2, needs and not unlocking)
        if unlocking:
            self.pass1.setPlaceholderText("the passphrase of the key already on this device")
            self.pass1_label.setText("Passphrase")
        else:
            self.pass1.setPlaceholderText(
                "for the key file; empty: the backup's" if importing else "protects the key file"
            )
            self.pass1_label.setText("New passphrase")
        if self.uses_file_store(user_id) and claim_env_passphrase():
            self.store_label.setText(
                self.store_label.text() + f" Its passphrase comes from {PASSPHRASE_ENV}."
            )

    def _browse_backup(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Your encrypted key backup", str(Path.home()), "Key backups (*.key);;All (*)"
        )
        if path:
            self.backup_path.setText(path)

    def show_user_error(self, text: str) -> None:
        self.user_error.setText(text)
        self.user_form.set_row_visible(self.user_error, bool(text))

    def show_key_error(self, text: str) -> None:
        self.key_error.setText(text)
        self.key_error.setVisible(bool(text))


def _no_passphrase(user_id: str, creating: bool) -> str:
    raise KeysError("no passphrase was entered")


class StoragePage(Page):
    def __init__(self, profiles: ProfileStore | None) -> None:
        super().__init__(
            "Where your rooms live",
            "There is no chat server: a room is a folder (or a prefix in a bucket) that you "
            "and the people you chat with can reach. You can add more storages later.",
        )
        self.form = StorageForm(profiles=profiles)
        self.layout_.addWidget(self.form)
        self.layout_.addStretch(1)


class DonePage(Page):
    def __init__(self) -> None:
        super().__init__(
            "You're all set",
            "Check the summary. You can open your first room now, or later with the + button.",
        )
        card, box = _card()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        box.addWidget(self.summary)
        self.layout_.addWidget(card)
        self.key_card = KeyCard()
        self.layout_.addWidget(self.key_card)

        room_card, room_box = _card()
        room_box.addWidget(_label("Your first room (optional)", "cardTitle"))
        self.no_room = QRadioButton("Not now")
        self.create_room = QRadioButton("Create a room")
        self.join_room = QRadioButton("Join a room by its id")
        self.no_room.setChecked(True)
        self.room_mode = QButtonGroup(self)
        for i, b in enumerate((self.no_room, self.create_room, self.join_room)):
            self.room_mode.addButton(b, i)
        row = QHBoxLayout()
        row.setSpacing(18)
        row.addWidget(self.no_room)
        row.addWidget(self.create_room)
        row.addWidget(self.join_room)
        row.addStretch(1)
        room_box.addLayout(row)
        self.room_fields = QWidget()
        fields = FormGrid()
        self.room_fields.setLayout(fields)
        self.room_name = QLineEdit()
        self.room_name.setPlaceholderText("e.g. General")
        self.room_id = QLineEdit()
        self.room_id.setPlaceholderText("letters, digits, '.', '_' and '-', e.g. general")
        self.room_name_label = QLabel("Name")
        fields.add_row(self.room_name_label, self.room_name)
        fields.add_row("Room id", self.room_id)
        self.room_form = fields
        self.room_fields.hide()
        room_box.addWidget(self.room_fields)
        self.layout_.addWidget(room_card)
        self.layout_.addStretch(1)
        self._auto_id = True
        self.room_mode.idToggled.connect(lambda _i, _on: self._room_mode_changed())
        self.room_name.textChanged.connect(self._name_changed)
        self.room_id.textEdited.connect(lambda _t: setattr(self, "_auto_id", False))

    def _room_mode_changed(self) -> None:
        self.room_fields.setVisible(not self.no_room.isChecked())
        self.room_form.set_row_visible(self.room_name, self.create_room.isChecked())

    def _name_changed(self, text: str) -> None:
        if self._auto_id:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip().lower()).strip("-.")
            self.room_id.setText(slug[:64])


# -- the wizard ----------------------------------------------------------------------------


class SetupWizard(QDialog):
    """Three pages with Back / Next / Finish. ``result_settings`` is set when finished;
    ``identity`` holds the unlocked key (startup uses it so nobody is asked twice)."""

    def __init__(
        self,
        settings: Settings,
        *,
        profiles: ProfileStore | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.profiles = profiles
        self.identity: Identity | None = None
        self.result_settings: Settings | None = None
        self._identity_for: tuple[str, bool] | None = None  # (user id, imported) of identity
        self._store: KeyStore | None = None  # where the identity is kept
        self._room_done: tuple[str, str] | None = None  # (storage identity, room id) created
        self.tasks = TaskRunner(self)
        self.tasks.failed.connect(lambda what, msg: self._show_status(f"{what}: {msg}", True))
        self._task: asyncio.Task[Any] | None = None
        self._busy_page: QWidget | None = None
        self.setWindowTitle("Welcome to Bucket Chat")
        self.setMinimumSize(QSize(880, 660))
        self.setStyleSheet(_wizard_qss())
        self._build()
        self._show_page(0)

    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        side = QWidget()
        side.setObjectName("wizardSide")
        side.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        side.setFixedWidth(250)
        sv = QVBoxLayout(side)
        sv.setContentsMargins(22, 26, 16, 22)
        sv.setSpacing(6)
        brand = QLabel("<span style='font-size:15pt; font-weight:700'>Bucket Chat</span>")
        brand.setStyleSheet("color: white;")
        tagline = QLabel("Serverless, tamper-evident chat")
        tagline.setWordWrap(True)
        tagline.setStyleSheet("color: rgba(255,255,255,170);")
        sv.addWidget(brand)
        sv.addWidget(tagline)
        sv.addSpacing(30)
        self.steps = StepsWidget(STEPS)
        sv.addWidget(self.steps)
        sv.addStretch(1)
        foot = QLabel("Every message is signed on the sender's device and checked on yours.")
        foot.setWordWrap(True)
        foot.setStyleSheet("color: rgba(255,255,255,170); font-size: 9pt;")
        sv.addWidget(foot)
        outer.addWidget(side)

        main = QVBoxLayout()
        main.setContentsMargins(32, 28, 28, 20)
        main.setSpacing(14)
        self.stack = QStackedWidget()
        self.identity_page = IdentityPage(self.settings)
        self.storage_page = StoragePage(self.profiles)
        self.done_page = DonePage()
        for page in (self.identity_page, self.storage_page, self.done_page):
            self.stack.addWidget(page)
        main.addWidget(self.stack, 1)

        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar = QHBoxLayout()
        bar.setSpacing(10)
        self.spinner = Spinner()
        bar.addWidget(self.spinner)
        bar.addWidget(self.status, 1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAutoDefault(False)
        self.back_button = QPushButton("Back")
        self.back_button.setAutoDefault(False)
        self.next_button = QPushButton("Next")
        self.next_button.setDefault(True)
        self.next_button.setMinimumWidth(110)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.back_button)
        bar.addWidget(self.next_button)
        main.addLayout(bar)
        outer.addLayout(main, 1)

        self.cancel_button.clicked.connect(self.reject)
        self.back_button.clicked.connect(self.back)
        self.next_button.clicked.connect(self.next)

    # -- navigation ----------------------------------------------------------------------

    @property
    def page(self) -> int:
        return self.stack.currentIndex()

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def _show_page(self, index: int) -> None:
        self.stack.setCurrentIndex(index)
        self.steps.set_current(index)
        self.back_button.setVisible(index > 0)
        self.next_button.setText("Start chatting" if index == len(STEPS) - 1 else "Next")
        self._show_status("")
        if index == 2:
            self._fill_summary()
        focus = {0: self.identity_page.user_id, 1: self.storage_page.form.folder_edit}.get(index)
        if focus is not None:
            focus.setFocus()

    def back(self) -> None:
        if not self.busy and self.page > 0:
            self._show_page(self.page - 1)

    def next(self) -> asyncio.Task[Any] | None:
        """Validate the current page and go on (the first and last pages work
        asynchronously: the returned task finishes when they are done)."""
        if self.busy:
            return self._task
        if self.page == 0:
            return self._run(self._identity_step(), "Setting up your key…")
        if self.page == 1:
            if self._check_storage_page():
                self._show_page(2)
            return None
        return self._run(self._finish_step(), "Setting things up…")

    def _run(self, coro: Coroutine[Any, Any, None], text: str) -> asyncio.Task[Any]:
        self._set_busy(True, text)

        async def guarded() -> None:
            try:
                await coro
            finally:
                self._set_busy(False)

        self._task = self.tasks.start(guarded(), text.rstrip("…"))
        return self._task

    def _set_busy(self, busy: bool, text: str = "") -> None:
        for button in (self.next_button, self.back_button):
            button.setEnabled(not busy)
        if busy:
            self._busy_page = self.stack.currentWidget()
        if self._busy_page is not None:  # the page may have changed meanwhile
            self._busy_page.setEnabled(not busy)
        if busy:
            self.spinner.start()
            self._show_status(text)
        else:
            self.spinner.stop()
            if not self.status.property("error"):
                self._show_status("")

    def _show_status(self, text: str, error: bool = False) -> None:
        self.status.setProperty("error", error)
        if error and text:
            self.status.setText(f"<span style='color:{ERROR_COLOR}'>{esc(text)}</span>")
        else:
            self.status.setText(esc(text))

    # -- page 1: the key -----------------------------------------------------------------

    async def _identity_step(self) -> None:
        page = self.identity_page
        page.show_user_error("")
        page.show_key_error("")
        importing = page.import_radio.isChecked()
        user_id = page.user_id.text().strip()
        if user_id or not importing:
            try:
                check_user_id(user_id)
            except KeysError as exc:
                page.show_user_error(str(exc)[0].upper() + str(exc)[1:] + ".")
                page.user_id.setFocus()
                self._show_status("")
                return
        if self.identity is not None and self._identity_for == (user_id, importing):
            self._show_page(1)
            return
        try:
            identity, how = await (
                self._import_key(user_id) if importing else self._create_key(user_id)
            )
        except KeysError as exc:
            page.show_key_error(str(exc))
            self._show_status("")
            return
        self.identity = identity
        self._identity_for = (identity.user_id, importing)
        if not user_id:
            page.user_id.setText(identity.user_id)
            self._identity_for = (identity.user_id, importing)
        where = describe_store(self._store) if self._store is not None else "the key store"
        page.key_card.set_identity(identity, where, how)
        page.key_card.show()
        self.done_page.key_card.set_identity(identity, where, how)
        self._show_page(1)

    def _passphrases(self, user_id: str, *, importing: bool) -> tuple[str, str]:
        """(passphrase for an existing key file, passphrase for a new one); raises
        KeysError when the fields are not filled in right."""
        page = self.identity_page
        env = claim_env_passphrase()  # moved out of the environment at start-up
        if env:
            return env, env
        if not page.uses_file_store(user_id):
            return "", ""
        first, second = page.pass1.text(), page.pass2.text()
        if page.existing_key_file(user_id) and not importing:
            if not first:
                raise KeysError("Enter the passphrase of the key already on this device.")
            return first, first
        if importing and not first:
            backup = page.backup_pass.text()
            return backup, backup
        if not first:
            raise KeysError("Choose a passphrase to protect your key file.")
        if first != second:
            raise KeysError("The two passphrases differ.")
        return first, first

    def _open_store(self, user_id: str, unlock: str, new: str) -> KeyStore:
        def provider(_user: str, creating: bool) -> str:
            value = new if creating else unlock
            if not value:
                raise KeysError("no passphrase was entered")
            return value

        store = open_key_store(user_id=user_id or None, passphrase_provider=provider)
        self._store = store
        return store

    async def _create_key(self, user_id: str) -> tuple[Identity, str]:
        unlock, new = self._passphrases(user_id, importing=False)
        store = await asyncio.to_thread(self._open_store, user_id, unlock, new)
        identity, created = await asyncio.to_thread(
            load_or_create_identity, store, user_id, create=True
        )
        if created:
            return identity, "A new key was created for this device."
        return identity, "This device already had a key for this user id: it is used."

    async def _import_key(self, user_id: str) -> tuple[Identity, str]:
        page = self.identity_page
        path_text = page.backup_path.text().strip()
        if not path_text:
            raise KeysError("Choose the backup file to import.")
        backup_pass = page.backup_pass.text()
        if not backup_pass:
            raise KeysError("Enter the backup's passphrase.")
        path = Path(path_text).expanduser()
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise KeysError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        identity = await asyncio.to_thread(import_backup, data, backup_pass)
        if user_id and identity.user_id != user_id:
            raise KeysError(
                f"This backup holds the key of {identity.user_id}, not of {user_id}: "
                "clear the user id field or correct it."
            )
        user_id = identity.user_id
        unlock, new = self._passphrases(user_id, importing=True)
        store = await asyncio.to_thread(self._open_store, user_id, unlock or backup_pass, new)

        def save() -> str:
            try:
                store.save(user_id, identity.signing_key)
            except KeyExistsError:
                existing = store.load(user_id)
                if existing is not None and bytes(existing) == bytes(identity.signing_key):
                    return "This device already had this key."
                raise KeysError(
                    f"This device already holds a different key for {user_id}. Keep using "
                    "it (choose “Create a new key”), or remove it first with "
                    "'bucket-chat' before importing."
                ) from None
            return "The key was imported from your backup."

        how = await asyncio.to_thread(save)
        return identity, how

    # -- page 2: the storage -------------------------------------------------------------

    def _check_storage_page(self) -> bool:
        form = self.storage_page.form
        problem = form.problem()
        if not problem and form.kind() == "file":
            try:
                location = form.location()
                folder = Path(location.bucket)
                if not folder.exists() and not form.is_default_folder(location):
                    problem = f"the folder {folder} does not exist (create it, or choose another)"
                elif folder.exists() and not folder.is_dir():
                    problem = f"{folder} is not a folder"
            except StorageError as exc:
                problem = str(exc)
        if problem:
            self._show_status(problem[0].upper() + problem[1:], True)
            return False
        if form.wants_secrets() and not form.keyring_usable():
            self._show_status(
                "No OS keyring is usable here, so the keys cannot be saved: choose “Use my "
                "environment” and set the SDK's variables, or start Bucket Chat where a "
                "keyring is available.",
                True,
            )
            return False
        return True

    # -- page 3: summary, first room, finish ---------------------------------------------

    def _fill_summary(self) -> None:
        page = self.identity_page
        form = self.storage_page.form
        user_id = self.identity.user_id if self.identity else page.user_id.text().strip()
        name = page.display_name.text().strip()
        who = f"<b>{esc(user_id)}</b>" + (f" ({esc(name)})" if name else "")
        rows = [
            ("You", who),
            ("Rooms live in", f"{esc(form.describe())} — shown as “{esc(form.display_name())}”"),
        ]
        result = form.last_result
        if result is not None:
            color = {"ok": OK_COLOR, "warning": WARN_COLOR}.get(result.level, ERROR_COLOR)
            rows.append(("Connection", f"<span style='color:{color}'>{esc(result.message)}</span>"))
        self.done_page.summary.setText(
            "<table cellspacing='0' cellpadding='3'>"
            + "".join(
                f"<tr><td style='padding-right:14px; color:palette(placeholder-text)'>{k}</td>"
                f"<td>{v}</td></tr>"
                for k, v in rows
            )
            + "</table>"
        )

    def _room_choice(self) -> tuple[str, str, str]:
        """("", "", "") for none, else (mode, room id, name); raises ValueError."""
        page = self.done_page
        if page.no_room.isChecked():
            return "", "", ""
        room_id = page.room_id.text().strip()
        try:
            check_room_id(room_id)
        except InvalidRoomIdError as exc:
            raise ValueError(f"Room id: {exc}") from exc
        mode = "create" if page.create_room.isChecked() else "join"
        return mode, room_id, page.room_name.text().strip() or room_id

    async def _finish_step(self) -> None:
        assert self.identity is not None
        form = self.storage_page.form
        try:
            mode, room_id, room_name = self._room_choice()
        except ValueError as exc:
            self._show_status(str(exc), True)
            return
        try:
            location, secrets = form.location(), form.secrets()
            problem = await asyncio.to_thread(form.folder_problem, location)
            if problem:
                raise StorageError(problem)
            rooms: list[str] = []
            if mode:
                key = (location.identity(), room_id)
                if self._room_done != key:
                    self._show_status(
                        "Creating the room…" if mode == "create" else "Joining the room…"
                    )
                    await self._open_first_room(location, secrets, mode, room_id, room_name)
                    self._room_done = key
                rooms.append(room_id)
            entry = form.save()
        except (StorageError, RoomError, KeysError) as exc:
            self._show_status(str(exc)[:1].upper() + str(exc)[1:], True)
            return
        entry.rooms = rooms
        settings = self.settings
        settings.user_id = self.identity.user_id
        settings.displayname = self.identity_page.display_name.text().strip()
        if settings.storage(entry.id) is None:
            settings.storages.append(entry)
        else:
            existing = settings.storage(entry.id)
            assert existing is not None
            existing.rooms.extend(r for r in rooms if r not in existing.rooms)
        if rooms:
            settings.last_room = f"{entry.id}/{room_id}"
        try:
            await asyncio.to_thread(settings_store.save, settings)
        except OSError as exc:
            self._show_status(f"Cannot save your settings: {exc.strerror or exc}", True)
            return
        log.info("first-run set-up done for %s on %s", settings.user_id, entry.name)
        self.result_settings = settings
        self.accept()

    async def _open_first_room(
        self, location: Any, secrets: dict[str, str], mode: str, room_id: str, name: str
    ) -> None:
        assert self.identity is not None
        displayname = self.identity_page.display_name.text().strip() or None
        storage = open_location(location, secrets)
        try:
            writer = RoomWriter(
                storage,
                room_id,
                self.identity.user_id,
                self.identity.signing_key,
                displayname=displayname,
            )
            if mode == "create":
                created = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
                await writer.create_room(name, created.replace("+00:00", "Z"))
                return
            if not await room_exists(storage, room_id):
                raise RoomError(
                    f"there is no room {room_id!r} in this storage (check the id, or create it)"
                )
            await writer.load_head()
            if not writer.joined:
                await writer.send([])
        finally:
            await storage.close()

    # -- closing -------------------------------------------------------------------------

    def cancel_tasks(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.storage_page.form.cancel()

    @guard()
    def reject(self) -> None:
        self.cancel_tasks()
        super().reject()

    @guard()
    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel_tasks()
        super().closeEvent(event)


async def run_wizard(
    settings: Settings,
    *,
    profiles: ProfileStore | None = None,
    on_identity: Callable[[Identity], None] | None = None,
) -> Settings | None:
    """Show the first-run wizard and wait for it: the filled-in, saved ``settings``, or
    None if the user cancelled. ``on_identity`` receives the unlocked key on success."""
    wizard = SetupWizard(settings, profiles=profiles)
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    wizard.finished.connect(lambda code: None if done.done() else done.set_result(code))
    wizard.show()
    wizard.raise_()
    wizard.activateWindow()
    try:
        await done
    finally:
        wizard.cancel_tasks()
        wizard.hide()
        wizard.deleteLater()
    if wizard.result_settings is None:
        return None
    if on_identity is not None and wizard.identity is not None:
        on_identity(wizard.identity)
    return wizard.result_settings


__all__ = ["BackupDialog", "KeyCard", "SetupWizard", "run_wizard"]
