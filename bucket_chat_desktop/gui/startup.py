"""Start-up steps that may need the user: the first-run wizard and unlocking the key."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from ..keyring_policy import in_daemon_thread
from ..keys import (
    Identity,
    KeysError,
    KeyStore,
    PassphraseRejectedError,
    load_or_create_identity,
    open_key_store,
)
from ..keys.passphrase import claim_env_passphrase
from ..protocol.untrusted_text import html_escape
from ..settings import LoadReport, Settings
from .keyring_wait import KeyringGaveUp, wait_for_keyring

log = logging.getLogger("bucket_chat.gui")

# The key the first-run wizard unlocked, by user id: `load_identity` takes it from here so
# nobody types the passphrase twice in the same start-up.
_unlocked: dict[str, Identity] = {}


class PassphraseDialog(QDialog):
    """Ask for a key file's passphrase; twice (and they must match) when ``creating``."""

    def __init__(self, user_id: str, creating: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.creating = creating
        self.setWindowTitle("Protect your key" if creating else "Unlock your key")
        self.setMinimumWidth(440)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 16)
        layout.setSpacing(10)
        prompt = QLabel(
            f"No OS keyring is used here, so the key of <b>{html_escape(user_id)}</b> is kept in "
            "an encrypted file. "
            + ("Choose a passphrase to protect it:" if creating else "Enter its passphrase:")
        )
        prompt.setWordWrap(True)
        layout.addWidget(prompt)
        self.first = QLineEdit()
        self.first.setEchoMode(QLineEdit.EchoMode.Password)
        self.first.setPlaceholderText("Passphrase")
        layout.addWidget(self.first)
        self.second = QLineEdit()
        self.second.setEchoMode(QLineEdit.EchoMode.Password)
        self.second.setPlaceholderText("Repeat the passphrase")
        self.second.setVisible(creating)
        layout.addWidget(self.second)
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #d64545;")
        self.problem.setWordWrap(True)
        layout.addWidget(self.problem)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _check(self) -> None:
        if not self.first.text():
            self.problem.setText("The passphrase must not be empty.")
        elif self.creating and self.first.text() != self.second.text():
            self.problem.setText("The two entries differ.")
        else:
            self.accept()

    @property
    def passphrase(self) -> str:
        return self.first.text()


def _parent() -> QWidget | None:
    return QApplication.activeWindow()


def ask_passphrase(user_id: str, creating: bool) -> str:
    """Passphrase for an encrypted key file (used where no OS keyring is usable).

    ``$BUCKET_CHAT_PASSPHRASE`` was moved out of the environment at start-up (programs
    the app starts must not inherit it): its value is asked of the keys package."""
    given = claim_env_passphrase()
    if given:
        return given
    dialog = PassphraseDialog(user_id, creating, _parent())
    if not dialog.exec() or not dialog.passphrase:
        raise PassphraseRejectedError("no passphrase was entered")
    return dialog.passphrase


# The key-store call of each user id still running (a keyring that did not answer): a
# retry waits for it rather than asking again, so no key is ever created twice.
_pending: dict[str, concurrent.futures.Future[tuple[KeyStore, Identity | None, bool]]] = {}


def _open_in_keyring(user_id: str) -> tuple[KeyStore, Identity | None, bool]:
    """On a worker thread: the key store for ``user_id``, and where that is the OS keyring,
    the key from it (made if there is none). A key file is opened on the GUI thread,
    which asks for its passphrase."""
    store = open_key_store(user_id=user_id, passphrase_provider=ask_passphrase)
    if store.kind == "file":
        return store, None, False
    identity, created = load_or_create_identity(store, user_id, create=True)
    return store, identity, created


async def load_identity(settings: Settings) -> Identity | None:
    """The device key for ``settings.user_id``; a clear message if it cannot be had.

    The keyring is asked on a thread of its own, never on the GUI thread: a keyring that
    does not answer shows a waiting window, then Retry and Quit (`keyring_wait`)."""
    user_id = settings.user_id
    unlocked = _unlocked.pop(user_id, None)
    if unlocked is not None:
        return unlocked
    for _attempt in range(3):
        try:
            pending = _pending.get(user_id)
            if pending is None or pending.done():
                pending = in_daemon_thread(lambda: _open_in_keyring(user_id), name="bc-key-store")
                _pending[user_id] = pending
            try:
                store, identity, created = await wait_for_keyring(pending, user_id=user_id)
            except KeyringGaveUp:
                log.warning("the system keyring did not answer; the user quit")
                return None
            if identity is None:  # a key file: its passphrase is asked here
                identity, created = load_or_create_identity(store, user_id, create=True)
            if created:
                log.info("created a new device key for %s in %s", user_id, store.name)
            return identity
        except KeysError as exc:
            answer = QMessageBox.warning(
                _parent(),
                "Your key",
                f"Bucket Chat could not open your key:\n\n{exc}",
                QMessageBox.StandardButton.Retry | QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Retry:
                return None
        await asyncio.sleep(0)
    return None


async def first_run(settings: Settings) -> Settings | None:
    """Run the first-run wizard; None if the user cancelled."""
    from .setup.wizard import run_wizard

    def remember(identity: Identity) -> None:
        _unlocked[identity.user_id] = identity

    return await run_wizard(settings, on_identity=remember)


def show_safe_mode_notice(window: QWidget, report: Path | None) -> QMessageBox:
    """Safe mode: say that no room was opened, why, and where the crash report is.
    Not modal: the room list works as usual, and opening a room leaves safe mode."""
    if report is not None:
        where = (
            "A crash report was saved to:<br><code>"
            f"{html_escape(str(report))}</code><br>Please include it when you report the "
            "problem."
        )
    else:
        where = "No crash report was written (the app may have been stopped from outside)."
    return _notice(
        "safeModeNotice",
        "Safe mode",
        "<b>Bucket Chat did not close properly last time.</b><br><br>"
        "To be safe it opened no room this time, in case the room that was open caused "
        "the problem. Choose a room from the list to open it as usual.<br><br>" + where,
        window,
    )


def _notice(name: str, title: str, body: str, parent: QWidget | None) -> QMessageBox:
    """A warning shown beside the window, not in its way (not modal); ``body`` is rich
    text whose pieces from elsewhere the caller escaped."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, body, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName(name)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setModal(False)
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.show()
    return box


NOTICE_ITEMS = 12  # dropped entries listed in the settings notice (the log has them all)


def settings_notice(report: LoadReport, parent: QWidget | None) -> QMessageBox:
    """Tell the user that the settings file was damaged: what was left out (or that none
    of it could be used) and where the file as it was is kept. Not modal."""
    path = html_escape(str(report.path))
    if report.kept_aside is not None:
        kept = (
            "The file as it was is kept, untouched, as:<br><code>"
            f"{html_escape(str(report.kept_aside))}</code>"
        )
    else:
        kept = (
            f"<b>It could not be set aside</b> ({html_escape(report.aside_problem)}): copy "
            "it somewhere else now if you want to keep it, before Bucket Chat saves its "
            "settings."
        )
    if report.unreadable:
        title = "Your settings could not be read"
        body = (
            f"<b>Bucket Chat could not use its settings file</b><br><code>{path}</code><br>"
            f"because {html_escape(report.unreadable)}.<br><br>It starts with default "
            "settings: your storages, rooms and preferences are not lost, but you need to "
            "set Bucket Chat up again, or mend the file kept aside and put it back in "
            "its place while Bucket Chat is closed.<br><br>" + kept
        )
    else:
        title = "Part of your settings was left out"
        shown = report.dropped[:NOTICE_ITEMS]
        more = len(report.dropped) - len(shown)
        items = "".join(f"<li>{html_escape(line)}</li>" for line in shown)
        if more:
            items += f"<li>and {more} more (the log lists them)</li>"
        body = (
            "<b>Some entries of your settings file were not usable</b> and were left out; "
            f"everything else was loaded.<br><code>{path}</code><ul>{items}</ul>" + kept
        )
    return _notice("settingsNotice", title, body, parent)


async def until_closed(box: QDialog) -> None:
    """Until ``box`` is closed (any button, Escape, the title bar's close)."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    box.finished.connect(lambda _code: None if done.done() else done.set_result(None))
    if box.isVisible():
        await done
