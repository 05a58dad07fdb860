"""The wizard's three pages: who you are (user id, display name, this device's key), where
your rooms live (the storage form), and the summary with an optional first room.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ... import keyring_policy
from ...keyring_policy import in_daemon_thread
from ...keys import (
    PASSPHRASE_ENV,
    KeysError,
    KeyStore,
    open_key_store,
)
from ...keys.passphrase import claim_env_passphrase
from ...protocol.ids import new_room_id
from ...protocol.untrusted_text import html_escape
from ...settings import Settings
from ...storage.profiles import ProfileStore
from ...sync.rooms import room_id_suffix
from ..storage.form import StorageForm
from ..storage.parts import ERROR_COLOR, FormGrid, help_label
from .key_card import KeyCard
from .key_setup import KeyForm, key_file_exists, uses_file_store
from .parts import card_frame, password_edit, text_label

STORE_CHECK_FIRST_WAIT = 0.25  # seconds the page waits for the keyring's answer at once
STORE_CHECK_POLL_MS = 100  # then looks for it this often, the wizard usable meanwhile
KEY_STEP_NO_ANSWER = (
    "The system keyring has not answered for {seconds}, so your key is not ready yet. It "
    "may be waiting for you to unlock it in a window hidden behind this one, or its "
    "service may be stuck: unlock or restart it (logging out and back in does), then "
    "choose Retry. Bucket Chat goes on by itself when the keyring answers; nothing is "
    "made twice. To keep your key in an encrypted key file instead, start Bucket Chat "
    "with {env}=file."
)
KEYRING_NO_ANSWER = (
    "The system keyring has not answered for {seconds} seconds, so your key cannot be "
    "kept there now. It may be waiting for you to unlock it in a window hidden behind this "
    "one, or its service may be stuck: unlock or restart it, then choose Next again."
)

# -- pages ---------------------------------------------------------------------------------


class Page(QWidget):
    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__()
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(14)
        self.title = text_label(title, "pageTitle")
        self.subtitle = text_label(subtitle, "pageSubtitle")
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
        self.user_error = text_label("", "error")
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

        card, box = card_frame()
        box.addWidget(text_label("This device's key", "cardTitle"))
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
        self.backup_pass = password_edit("the backup's passphrase")
        self.backup_row = grid.add_row("Backup file", row)
        grid.add_row("Backup passphrase", self.backup_pass)
        self.pass1 = password_edit("protects the key file")
        self.pass2 = password_edit("repeat it")
        self.pass1_label = QLabel("New passphrase")
        grid.add_row(self.pass1_label, self.pass1)
        grid.add_row("Repeat", self.pass2)
        self.pass_form = grid
        self.store_label = text_label("", "help", rich=True)
        self.store_label.setContentsMargins(0, 4, 0, 0)
        box.addWidget(self.store_label)
        box.addLayout(grid)
        self.key_error = text_label("", "error")
        self.key_error.hide()
        box.addWidget(self.key_error)
        # shown with the key error when the keyring did not answer the key step in time
        self.keyring_retry = QPushButton("Retry")
        self.keyring_retry.setObjectName("keyringRetry")
        self.keyring_retry.setAutoDefault(False)
        self.keyring_retry_row = QWidget()
        retry_row = QHBoxLayout(self.keyring_retry_row)
        retry_row.setContentsMargins(0, 0, 0, 0)
        retry_row.addWidget(self.keyring_retry)
        retry_row.addStretch(1)
        self.keyring_retry_row.hide()
        box.addWidget(self.keyring_retry_row)
        self.layout_.addWidget(card)

        self.key_card = KeyCard()
        self.key_card.hide()
        self.layout_.addWidget(self.key_card)
        self.layout_.addStretch(1)

        self.import_radio.toggled.connect(lambda _on: self.update_store_hint())
        self.user_id.textChanged.connect(lambda _t: self.update_store_hint())

        self.store: KeyStore | None = None
        self.store_error = ""
        # The check of which store keys go to asks the OS keyring: on a thread of its
        # own (a keyring that does not answer must not freeze the wizard), watched here.
        self._store_check: concurrent.futures.Future[KeyStore] | None = None
        self._store_check_started = 0.0
        self._store_watch = QTimer(self)
        self._store_watch.setInterval(STORE_CHECK_POLL_MS)
        self._store_watch.timeout.connect(self._watch_store_check)
        self.check_store()

    @property
    def store_checking(self) -> bool:
        """The keyring has not answered the check yet."""
        return self._store_check is not None and not self._store_check.done()

    def check_store(self) -> None:
        """Which store keys go to (no user id yet): shown, so the user knows. A check
        still waiting for the keyring is waited for, not made twice."""
        if self.store_checking:
            return
        self._store_check = in_daemon_thread(
            lambda: open_key_store(passphrase_provider=_no_passphrase), name="bc-store-check"
        )
        self._store_check_started = time.monotonic()
        # a keyring answers in milliseconds: the page shows the answer from the start
        concurrent.futures.wait([self._store_check], timeout=STORE_CHECK_FIRST_WAIT)
        self._watch_store_check()
        if self.store_checking:
            self._store_watch.start()

    def _watch_store_check(self) -> None:
        check = self._store_check
        if check is None:
            return
        if check.done():
            self._store_watch.stop()
            try:
                self.store = check.result()
                self.store_error = ""
            except KeysError as exc:
                self.store = None
                self.store_error = str(exc)
            except Exception as exc:  # a keyring backend's own error: said, not raised
                self.store = None
                self.store_error = f"The OS keyring could not be checked: {exc}"
        else:
            waited = time.monotonic() - self._store_check_started
            self.store_error = (
                KEYRING_NO_ANSWER.format(seconds=max(1, round(waited)))
                if waited >= keyring_policy.KEYRING_DEADLINE
                else ""
            )
        self.update_store_hint()

    def uses_file_store(self, user_id: str = "") -> bool:
        return uses_file_store(user_id, self.store is not None and self.store.kind == "file")

    def typed_key(self) -> KeyForm:
        """What was typed, for `KeySetup`."""
        return KeyForm(
            user_id=self.user_id.text().strip(),
            importing=self.import_radio.isChecked(),
            passphrase=self.pass1.text(),
            repeat=self.pass2.text(),
            backup_path=self.backup_path.text(),
            backup_passphrase=self.backup_pass.text(),
            default_is_file=self.store is not None and self.store.kind == "file",
        )

    def existing_key_file(self, user_id: str) -> bool:
        return bool(user_id) and key_file_exists(user_id)

    def update_store_hint(self) -> None:
        user_id = self.user_id.text().strip()
        if self.store_checking and not self.store_error:
            self.store_label.setText("Checking the system keyring…")
        elif self.store_error:
            self.store_label.setText(
                f"<span style='color:{ERROR_COLOR}'>{html_escape(self.store_error)}</span>"
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
                f"Your key will be kept in: <b>an encrypted key file</b>{html_escape(why)}."
            )
        elif self.store is not None:
            self.store_label.setText(
                f"Your key will be kept in: <b>{html_escape(self.store.name)}</b>."
            )
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

    def show_key_error(self, text: str, *, retry: bool = False) -> None:
        """``text`` under the key's choices ("" hides it); ``retry``: with a Retry button
        (the keyring did not answer, and its answer is still waited for)."""
        self.key_error.setText(text)
        self.key_error.setVisible(bool(text))
        self.keyring_retry_row.setVisible(bool(text) and retry)

    @property
    def keyring_retry_shown(self) -> bool:
        return not self.keyring_retry_row.isHidden()


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
        card, box = card_frame()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        box.addWidget(self.summary)
        self.layout_.addWidget(card)
        self.key_card = KeyCard()
        self.layout_.addWidget(self.key_card)

        room_card, room_box = card_frame()
        room_box.addWidget(text_label("Your first room (optional)", "cardTitle"))
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
        self._suffix = room_id_suffix()  # kept while the name is typed, and on a retry
        self.room_mode.idToggled.connect(lambda _i, _on: self._room_mode_changed())
        self.room_name.textChanged.connect(self._name_changed)
        self.room_id.textEdited.connect(lambda _t: setattr(self, "_auto_id", False))

    def _room_mode_changed(self) -> None:
        self.room_fields.setVisible(not self.no_room.isChecked())
        self.room_form.set_row_visible(self.room_name, self.create_room.isChecked())

    def _name_changed(self, text: str) -> None:
        if self._auto_id:  # the name's slug and a random tail, as the New room dialog
            self.room_id.setText(new_room_id(text, self._suffix))
