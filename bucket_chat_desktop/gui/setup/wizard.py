"""The first-run wizard: who you are, where your rooms live, done.

`run_wizard` shows `SetupWizard` without a nested event loop and awaits it. By the time it
returns a `Settings`, this device's key is in the key store (created, imported from an
encrypted backup, or the one the device already had for that user id), the storage has
been written to the settings file, and the optional first room has been created or
joined. Slow work (Argon2id, key store, storage) runs asynchronously on the app's qasync
loop, with a busy indicator; the dialog never freezes.

The pages are in `pages`, the key step's logic in `key_setup`, the look in `parts`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ... import settings as settings_store
from ...keys import (
    KEY_STORE_ENV,
    Identity,
    KeysError,
    check_user_id,
)
from ...protocol.ids import InvalidRoomIdError, check_room_id
from ...protocol.untrusted_text import html_escape
from ...settings import Settings
from ...storage.base import StorageError
from ...storage.open import open_location
from ...storage.profiles import ProfileStore
from ...sync.client import ChatClient
from ...sync.selfcheck import TEST_NO_ANSWER
from ...sync.watched import NoAnswerError
from ...sync.writer import RoomError
from ..safe import guard
from ..storage.parts import ERROR_COLOR, OK_COLOR, WARN_COLOR, Spinner
from ..tasks import TaskRunner
from .key_setup import KeyringNoAnswer, KeySetup
from .pages import KEY_STEP_NO_ANSWER, DonePage, IdentityPage, StoragePage
from .parts import STEPS, StepsWidget, wizard_qss

log = logging.getLogger("bucket_chat.gui")

FIRST_ROOM_DELIVERY = 15.0  # seconds the wizard waits for the first room's join to go out


def _seconds(waited: float) -> str:
    n = max(1, round(waited))
    return f"{n} second" + ("" if n == 1 else "s")


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
        self.keys = KeySetup()  # makes or imports the key, and knows where it is kept
        self.keys.on_waiting = lambda: self._show_status(
            "Waiting for the system keyring… If it asks you to unlock it, do so in its window."
        )
        self._room_done: tuple[str, str] | None = None  # (storage identity, room id) created
        self.tasks = TaskRunner(self)
        self.tasks.failed.connect(lambda what, msg: self._show_status(f"{what}: {msg}", True))
        self._task: asyncio.Task[Any] | None = None
        self._busy_page: QWidget | None = None
        self.setWindowTitle("Welcome to Bucket Chat")
        self.setMinimumSize(QSize(880, 660))
        self.setStyleSheet(wizard_qss())
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
        self.identity_page.keyring_retry.clicked.connect(self.next)

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
            self.status.setText(f"<span style='color:{ERROR_COLOR}'>{html_escape(text)}</span>")
        else:
            self.status.setText(html_escape(text))

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
        if page.store_checking and not page.existing_key_file(user_id):
            # the keyring does not answer (yet): making the key would wait for it too
            page.show_key_error(
                "No key was made: the system keyring still does not answer."
                if page.store_error
                else "The system keyring has not answered yet: a moment, please."
            )
            self._show_status("")
            return
        form = page.typed_key()
        try:
            identity, how = await (
                self.keys.import_key(form) if importing else self.keys.create(form)
            )
        except KeyringNoAnswer as exc:
            # the call goes on: Retry (or Next) waits for it again, and its answer, when
            # it comes, is taken by itself while this still shows
            page.show_key_error(
                KEY_STEP_NO_ANSWER.format(seconds=_seconds(exc.waited), env=KEY_STORE_ENV),
                retry=True,
            )
            self._show_status("")
            self._take_late_answer(exc.future, page.user_id.text())
            return
        except KeysError as exc:
            page.show_key_error(str(exc))
            self._show_status("")
            return
        self.identity = identity
        self._identity_for = (identity.user_id, importing)
        if not user_id:
            page.user_id.setText(identity.user_id)
            self._identity_for = (identity.user_id, importing)
        where = self.keys.where()
        page.key_card.set_identity(identity, where, how)
        page.key_card.show()
        self.done_page.key_card.set_identity(identity, where, how)
        self._show_page(1)

    def _take_late_answer(self, future: concurrent.futures.Future[Any], typed: str) -> None:
        """When the keyring answers the key step's call while its no-answer message still
        shows (and the user id is as it was), the step goes on by itself."""

        def answered(_done: asyncio.Future[Any]) -> None:
            if not _done.cancelled():
                _done.exception()  # retrieved: the step reads it from the call
            try:
                page = self.identity_page
                again = (
                    self.isVisible()
                    and self.page == 0
                    and not self.busy
                    and page.keyring_retry_shown
                    and page.user_id.text() == typed
                )
            except RuntimeError:  # the wizard is gone
                return
            if again:
                self.next()

        asyncio.wrap_future(future).add_done_callback(answered)

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
        who = f"<b>{html_escape(user_id)}</b>" + (f" ({html_escape(name)})" if name else "")
        rows = [
            ("You", who),
            (
                "Rooms live in",
                f"{html_escape(form.describe())} — shown as “{html_escape(form.display_name())}”",
            ),
        ]
        result = form.result()  # only a test of the storage as the form says it now
        if result is not None:
            color = {"ok": OK_COLOR, "warning": WARN_COLOR}.get(result.level, ERROR_COLOR)
            rows.append(
                ("Connection", f"<span style='color:{color}'>{html_escape(result.message)}</span>")
            )
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
            entry = await form.save_async()
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
        """The room is made or joined the one way every room is (``ChatClient.create_room``
        / ``join_room``, as the app and the command line do), with this device's outbox and
        index: a join that cannot go out now is delivered when the app starts."""
        assert self.identity is not None
        displayname = self.identity_page.display_name.text().strip() or None
        signer = (self.identity.user_id, self.identity.signing_key)
        storage = open_location(location, secrets)
        try:
            async with ChatClient.session(
                storage, identity=signer, displayname=displayname
            ) as client:
                sid = client.session_storage
                # A person waits: given up once a request has had no answer for as long
                # as the connection test allows one (not the storage's own timeout times
                # its retries, 90 s by default, behind "Creating the room…").
                if mode == "create":
                    step = client.create_room(sid, room_id, name, show=False)
                else:
                    step = client.join_room(sid, room_id, show=False)
                try:
                    await client.within(sid, step, TEST_NO_ANSWER)
                except NoAnswerError as exc:
                    if mode == "join":
                        raise StorageError(f"{exc}; nothing was joined: try again") from exc
                    raise StorageError(
                        f"{exc}; the room may have been made all the same: try again, and "
                        "if it then exists, join it by its id"
                    ) from exc
                try:
                    delivered = await client.within(
                        sid, client.flush(sid, timeout=FIRST_ROOM_DELIVERY)
                    )
                except NoAnswerError:
                    delivered = False
        finally:
            await storage.close()
        if not delivered:
            log.warning("the join of room %s waits in the outbox for the app", room_id)

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


__all__ = ["SetupWizard", "run_wizard"]
