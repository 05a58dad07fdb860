"""The "where do the rooms live" form: a folder or an S3 / GCS / Azure bucket, its options,
its credentials, and a Test connection button.

Used by the first-run wizard and by Settings → Add storage. Nothing is saved until the
caller calls `StorageForm.save`: a folder or a bucket without keys becomes a plain spec (a
path or URL), a bucket with keys becomes a named storage profile whose keys go to the OS
keyring (``storage.profiles``), never to a file. Where no keyring is usable the form says
so: keys can still be tested here but must then come from the environment.

The test itself is `check.check_storage`; the small widgets are in `parts`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ... import keyring_policy, paths
from ...keyring_policy import in_daemon_thread
from ...protocol.untrusted_text import html_escape
from ...settings import StorageSettings
from ...storage.base import StorageError
from ...storage.profiles import ProfileStore, StorageProfile
from ...storage.url import StorageLocation, StorageUrlError, parse_storage_url
from ...sync.selfcheck import (
    CheckResult,
)
from ..keyring_wait import answered_within
from ..tasks import TaskRunner
from .check import KIND_LABELS, KIND_NAMES, KINDS, check_storage, folder_problem
from .credentials import CredentialsForm
from .parts import WARN_COLOR, FormGrid, Spinner, help_label, result_html, segment_qss

log = logging.getLogger("bucket_chat.gui")


@dataclass(slots=True)
class _Saving:
    """A named storage being saved: its keys go to the OS keyring, on a daemon thread."""

    request: tuple[str, tuple[tuple[str, str], ...], str]  # (url, keys, display name)
    future: concurrent.futures.Future[StorageProfile]
    started: float
    waited_from: float


STALE_NOTE = "The storage was changed during the test: test the connection again."

# What a connection test tests: the location and the keys (sorted name, value pairs).
_Fields = tuple[StorageLocation, tuple[tuple[str, str], ...]]


# -- the form -----------------------------------------------------------------------------


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text.strip()).strip("-_")
    return slug[:60] or "storage"


class StorageForm(CredentialsForm):
    """Choose and describe a storage; test it; save it.

    ``profiles`` is where bucket keys are saved (the user's `ProfileStore` by default);
    ``default_folder`` is the suggested local folder (``paths.default_store_dir()``), the
    only folder that is created when missing.
    """

    changed = Signal()
    checked = Signal(str, str)  # level ("ok", "warning", "error"), message

    def __init__(
        self,
        *,
        profiles: ProfileStore | None = None,
        default_folder: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.profiles = profiles if profiles is not None else ProfileStore()
        self._saving: _Saving | None = None  # a save whose keys the keyring has not taken
        self.default_folder = default_folder or paths.default_store_dir()
        self.tasks = TaskRunner(self)
        self.tasks.failed.connect(lambda _what, msg: self._show_result(CheckResult("error", msg)))
        self.last_result: CheckResult | None = None
        self._check_task: asyncio.Task[Any] | None = None
        # The fields the running test, or ``last_result``, is about: a result is shown and
        # kept only while the form still says exactly these (red team rt88).
        self._tested: _Fields | None = None
        self._build()
        self.set_kind("file")

    # -- construction --------------------------------------------------------------------

    def _build(self) -> None:
        self.setStyleSheet("QLabel#help { color: palette(placeholder-text); }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(12)

        row = QHBoxLayout()
        row.setSpacing(0)
        self.kind_group = QButtonGroup(self)
        self.kind_buttons: dict[str, QPushButton] = {}
        for i, kind in enumerate(KINDS):
            button = QPushButton(KIND_LABELS[kind])
            button.setCheckable(True)
            button.setAutoDefault(False)
            position = "first" if i == 0 else "last" if i == len(KINDS) - 1 else "middle"
            button.setStyleSheet(segment_qss(position))
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            self.kind_group.addButton(button, i)
            self.kind_buttons[kind] = button
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)
        self.kind_group.idClicked.connect(lambda i: self.set_kind(KINDS[i]))

        # One form for every kind, rows shown or hidden: the labels stay aligned.
        self.fields = form = FormGrid()
        layout.addLayout(form)
        self._build_folder(form)
        self._build_cloud(form)
        self.name_edit = QLineEdit()
        self.name_edit.textChanged.connect(lambda _t: self.changed.emit())
        form.add_row("Shown as", self.name_edit)

        test_row = QHBoxLayout()
        test_row.setSpacing(10)
        self.test_button = QPushButton("Test connection")
        self.test_button.setAutoDefault(False)
        self.test_button.setToolTip(
            "Write, read and remove a small test object, and check that the store refuses "
            "to overwrite it"
        )
        self.test_button.clicked.connect(self.test_connection)
        self.spinner = Spinner()
        self.result_label = QLabel()
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        test_row.addWidget(self.test_button, 0, Qt.AlignmentFlag.AlignTop)
        test_row.addWidget(self.spinner, 0, Qt.AlignmentFlag.AlignVCenter)
        test_row.addWidget(self.result_label, 1)
        layout.addLayout(test_row)

    def _build_folder(self, form: FormGrid) -> None:
        row = QHBoxLayout()
        row.setSpacing(6)
        self.folder_edit = QLineEdit(str(self.default_folder))
        self.folder_edit.textChanged.connect(self._on_edited)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setAutoDefault(False)
        self.browse_button.clicked.connect(self._browse_folder)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.browse_button)
        self.folder_row = form.add_row("Folder", row)
        self.folder_help = help_label(
            "Rooms are folders inside it. To chat with others, choose a folder you all "
            "reach — a network share, or a Dropbox, OneDrive or Syncthing folder: everyone "
            "who points Bucket Chat at it is in the same rooms."
        )
        form.add_row("", self.folder_help)

    def _build_cloud(self, form: FormGrid) -> None:
        self.bucket_edit = QLineEdit()
        self.prefix_edit = QLineEdit()
        self.prefix_edit.setPlaceholderText("optional, e.g. team/chat")
        self.endpoint_edit = QLineEdit()
        self.region_edit = QLineEdit()
        self.region_edit.setPlaceholderText("optional, e.g. eu-west-1")
        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText("optional")
        self.account_edit = QLineEdit()
        self.account_edit.setPlaceholderText("e.g. mystorageaccount")
        self.queue_edit = QLineEdit()  # S3 only: the bucket's notifications (storage/sqs.py)
        self.queue_edit.setPlaceholderText("optional: SQS queue with the bucket's notifications")
        self.queue_edit.setToolTip(
            "New messages then arrive within a second or two without polling the bucket "
            "while the window is in front (up to 15 s more behind other windows, to keep "
            "the requests down). One queue per device; docs/STORAGE.md, “Push "
            "notifications on S3”, says how to set it up."
        )
        self.queue_edit.textChanged.connect(self._on_edited)
        self.bucket_label = QLabel("Bucket")
        form.add_row(self.bucket_label, self.bucket_edit)
        form.add_row("Prefix", self.prefix_edit)
        form.add_row("Endpoint URL", self.endpoint_edit)
        form.add_row("Region", self.region_edit)
        form.add_row("Project", self.project_edit)
        form.add_row("Account name", self.account_edit)
        form.add_row("Queue URL", self.queue_edit)
        for edit in (
            self.bucket_edit,
            self.prefix_edit,
            self.endpoint_edit,
            self.region_edit,
            self.project_edit,
            self.account_edit,
        ):
            edit.textChanged.connect(self._on_edited)
        self.s3_credentials = self._build_s3_credentials()
        self.gs_credentials = self._build_gs_credentials()
        self.az_credentials = self._build_az_credentials()
        form.add_row("Credentials", self.s3_credentials)
        form.add_row("Credentials", self.gs_credentials)
        form.add_row("Credentials", self.az_credentials)
        self.keyring_note = help_label("")
        form.add_row("", self.keyring_note)
        self.cloud_rows: list[QWidget] = [
            self.bucket_edit,
            self.prefix_edit,
            self.endpoint_edit,
        ]

    # -- behaviour -----------------------------------------------------------------------

    def kind(self) -> str:
        return KINDS[max(0, self.kind_group.checkedId())]

    def set_kind(self, kind: str) -> None:
        self.kind_buttons[kind].setChecked(True)
        form = self.fields
        cloud = kind != "file"
        form.set_row_visible(self.folder_row, not cloud)
        form.set_row_visible(self.folder_help, not cloud)
        for widget in self.cloud_rows:
            form.set_row_visible(widget, cloud)
        form.set_row_visible(self.region_edit, kind == "s3")
        form.set_row_visible(self.queue_edit, kind == "s3")
        form.set_row_visible(self.project_edit, kind == "gs")
        form.set_row_visible(self.account_edit, kind == "az")
        form.set_row_visible(self.s3_credentials, kind == "s3")
        form.set_row_visible(self.gs_credentials, kind == "gs")
        form.set_row_visible(self.az_credentials, kind == "az")
        if cloud:
            self.bucket_label.setText("Container" if kind == "az" else "Bucket")
            self.bucket_edit.setPlaceholderText(
                "my-container" if kind == "az" else "my-bucket (must exist already)"
            )
            self.endpoint_edit.setPlaceholderText(
                {
                    "s3": "optional: MinIO, Cloudflare R2, Backblaze… https://host:port",
                    "gs": "optional: an emulator, e.g. http://127.0.0.1:4443",
                    "az": "optional: Azurite or a custom endpoint",
                }[kind]
            )
        self._on_edited()

    def _on_edited(self, *_args: Any) -> None:
        """A location or key field changed. A test's result is about the fields it tested:
        when they are not what the form says now, a running test is stopped and a result
        is dropped (red team rt88: a test of bucket A finished after the user had typed
        bucket B, and showed and kept "Connection works" for B, into the wizard's
        summary). An edit that leaves them as they were (a kind clicked again, a space
        typed and taken back) keeps the result."""
        if self._tested is None or self._fields() != self._tested:
            if self.testing:
                self._stop_test()
                self.result_label.setText(STALE_NOTE)
            else:
                self.result_label.clear()
            self.last_result = None
            self._tested = None
        self.name_edit.setPlaceholderText(self._default_name())
        self._update_keyring_note()
        self.changed.emit()

    def _update_keyring_note(self) -> None:
        if not self.wants_secrets():
            self.fields.set_row_visible(self.keyring_note, False)
            return
        backend, why = self.profiles.keyring_backend()
        if backend is not None:
            shown = html_escape(backend.name)
            text = f"Keys are kept in your OS keyring ({shown}), never in a file."
        else:
            reason = "" if why.startswith("no OS keyring") else f" ({html_escape(why)})"
            text = (
                f"<span style='color:{WARN_COLOR}'>No OS keyring is usable here{reason}, "
                "so keys cannot be saved.</span> You can test them, but to use this storage "
                "choose “Use my environment” and set the SDK's variables before starting "
                "Bucket Chat."
            )
        self.keyring_note.setText(text)
        self.fields.set_row_visible(self.keyring_note, True)

    def keyring_usable(self) -> bool:
        return self.profiles.keyring_backend()[0] is not None

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Where your rooms live", self.folder_edit.text() or str(Path.home())
        )
        if folder:
            self.folder_edit.setText(folder)

    def location(self) -> StorageLocation:
        """The storage as filled in; raises `StorageError` saying what to fix."""
        kind = self.kind()
        if kind == "file":
            text = self.folder_edit.text().strip()
            if not text:
                raise StorageUrlError("choose a folder")
            folder = Path(text).expanduser()
            if not folder.is_absolute():
                raise StorageUrlError("give the folder's full path (or use Browse…)")
            return StorageLocation("file", str(folder))
        bucket = self.bucket_edit.text().strip()
        if not bucket:
            raise StorageUrlError(f"enter the {'container' if kind == 'az' else 'bucket'} name")
        options: dict[str, str] = {}

        def put(name: str, edit: QLineEdit) -> None:
            value = edit.text().strip()
            if value:
                options[name] = value

        put("endpoint_url", self.endpoint_edit)
        if kind == "s3":
            put("region", self.region_edit)
            put("queue_url", self.queue_edit)
            if self.s3_env_radio.isChecked():
                put("profile", self.s3_profile)
        elif kind == "gs":
            put("project", self.project_edit)
            if self.gs_keyfile_radio.isChecked():
                key_file = self.gs_keyfile.text().strip()
                if not key_file:
                    raise StorageUrlError("choose the service-account key file")
                options["credentials_file"] = key_file
        elif kind == "az":
            put("account_name", self.account_edit)
        prefix = self.prefix_edit.text().strip().strip("/")
        url = f"{kind}://{bucket}" + (f"/{prefix}" if prefix else "")
        location = parse_storage_url(url)
        return location.with_options(options) if options else location

    def problem(self) -> str:
        """What must be fixed before testing or saving ("" when nothing)."""
        try:
            self.location()
            self.secrets()
        except StorageError as exc:
            return str(exc)
        return ""

    def _default_name(self) -> str:
        kind = self.kind()
        if kind == "file":
            text = self.folder_edit.text().strip()
            if not text or Path(text).expanduser() == self.default_folder:
                return "This computer"
            return Path(text).name or text
        bucket = self.bucket_edit.text().strip() or "bucket"
        prefix = self.prefix_edit.text().strip().strip("/")
        return f"{bucket}/{prefix}" if prefix else bucket

    def display_name(self) -> str:
        return self.name_edit.text().strip() or self._default_name()

    def describe(self) -> str:
        """One line for summaries: what and where."""
        try:
            location = self.location()
        except StorageError:
            return KIND_NAMES[self.kind()]
        if location.kind == "file":
            return f"the folder {location.bucket}"
        return f"the {KIND_NAMES[location.kind]} {location.root()}"

    # -- testing -------------------------------------------------------------------------

    @property
    def testing(self) -> bool:
        return self._check_task is not None and not self._check_task.done()

    def _fields(self) -> _Fields | None:
        """What a test tests: the location and the keys as filled in (None when
        incomplete)."""
        try:
            return self.location(), tuple(sorted(self.secrets().items()))
        except StorageError:
            return None

    def result(self) -> CheckResult | None:
        """The test's result for the storage as the form says it now; None when it was
        not tested (or was changed since)."""
        if self.last_result is None or self._tested != self._fields():
            return None
        return self.last_result

    def test_connection(self) -> asyncio.Task[Any] | None:
        """Start the connection test on the running loop; the result shows below the
        button and is emitted as `checked`. Returns the task (None if the form is
        incomplete: the problem is shown instead)."""
        if self.testing:
            return self._check_task
        try:
            location, secrets = self.location(), self.secrets()
        except StorageError as exc:
            self._tested = None  # about the form as it is: incomplete
            self._show_result(CheckResult("error", str(exc)))
            return None
        create = location.kind == "file" and self.is_default_folder(location)
        tested: _Fields = (location, tuple(sorted(secrets.items())))
        self._tested = tested
        self.last_result = None
        self.test_button.setEnabled(False)
        self.spinner.start()
        self.result_label.setText("Testing the connection…")
        task = self.tasks.start(
            self._run_check(location, secrets, create, tested), "Testing the connection"
        )
        self._check_task = task
        return task

    async def _run_check(
        self, location: StorageLocation, secrets: dict[str, str], create: bool, tested: _Fields
    ) -> CheckResult:
        mine = asyncio.current_task()
        try:
            result = await check_storage(location, secrets, create_folder=create)
        finally:
            if self._check_task is mine:  # not stopped and replaced by a newer test
                self.spinner.stop()
                self.test_button.setEnabled(True)
        if self._check_task is not mine:
            return result  # stopped: the fields changed, or the dialog closed
        if self._fields() == tested:
            self._show_result(result)
        else:  # changed without an edit signal (set from code): not this storage's answer
            self._tested = self.last_result = None
            self.result_label.setText(STALE_NOTE)
        return result

    def _show_result(self, result: CheckResult) -> None:
        self.last_result = result
        self.result_label.setText(result_html(result.level, result.message))
        self.checked.emit(result.level, result.message)

    def _stop_test(self) -> None:
        if self._check_task is not None and not self._check_task.done():
            self._check_task.cancel()
        self._check_task = None
        self.spinner.stop()
        self.test_button.setEnabled(True)

    def cancel(self) -> None:
        """Stop a running test (the dialog is closing)."""
        self._stop_test()

    def is_default_folder(self, location: StorageLocation) -> bool:
        return Path(location.bucket).expanduser().absolute() == self.default_folder.absolute()

    # -- saving ---------------------------------------------------------------------------

    def folder_problem(self, location: StorageLocation) -> str:
        """Why a folder location cannot be used ("" if it can), creating the default
        folder if it is missing (other folders must exist). Touches no widget: it may run
        in a worker thread."""
        if location.kind != "file":
            return ""
        return folder_problem(Path(location.bucket), self.is_default_folder(location))

    def prepare_folder(self) -> None:
        """`folder_problem` for the form's location, raised as `StorageError`."""
        problem = self.folder_problem(self.location())
        if problem:
            raise StorageError(problem)

    def save(self) -> StorageSettings:
        """The settings entry for this storage; bucket keys are saved as a named storage
        profile (keys in the OS keyring). Raises `StorageError` (`ProfileError`) if the
        form is incomplete or the keys cannot be kept.

        The keyring is asked on a daemon thread of its own, and waited for here at most
        `KEYRING_DEADLINE` seconds (the callers are synchronous); one that does not answer
        is said so, and saving again waits for the same call (`save_async` on the loop)."""
        saving = self._start_save()
        if isinstance(saving, StorageSettings):
            return saving
        left = keyring_policy.KEYRING_DEADLINE - (time.monotonic() - saving.waited_from)
        concurrent.futures.wait([saving.future], timeout=max(0.0, left))
        return self._saved(saving)

    async def save_async(self) -> StorageSettings:
        """`save`, waiting for the keyring on the event loop."""
        saving = self._start_save()
        if isinstance(saving, StorageSettings):
            return saving
        await answered_within(saving.future, keyring_policy.KEYRING_DEADLINE)
        return self._saved(saving)

    def _start_save(self) -> StorageSettings | _Saving:
        location, values = self.location(), self.secrets()
        name = self.display_name()
        if location.kind == "file":
            self.prepare_folder()
            return StorageSettings(str(Path(location.bucket).expanduser()), name)
        if not values:
            return StorageSettings(location.url(), name)
        request = (location.url(), tuple(sorted(values.items())), name)
        saving = self._saving
        if saving is not None and saving.request == request:
            saving.waited_from = time.monotonic()  # the same keys again: the same call
            return saving
        existing = {p.name for p in self.profiles.list()}
        base = _slug(name)
        profile_name, n = base, 2
        while profile_name in existing:
            profile_name, n = f"{base}-{n}", n + 1
        profiles = self.profiles
        future = in_daemon_thread(
            lambda: profiles.add(profile_name, location, values), name="bc-storage-save"
        )
        self._saving = _Saving(request, future, time.monotonic(), time.monotonic())
        return self._saving

    def _saved(self, saving: _Saving) -> StorageSettings:
        if not saving.future.done():
            waited = max(1, round(time.monotonic() - saving.started))
            raise StorageError(
                f"the system keyring has not answered for {waited} seconds, so this "
                "storage's keys are not saved yet: it may be waiting for you to unlock it in "
                "a window hidden behind others, or its service may be stuck; unlock or "
                "restart it, then try again (the same request is waited for, nothing is "
                "saved twice)"
            )
        if self._saving is saving:
            self._saving = None
        profile = saving.future.result()
        log.info("saved storage profile %s (%s)", profile.name, profile.location.root())
        return StorageSettings(profile.name, saving.request[2])
