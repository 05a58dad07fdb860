"""The first-run wizard, driven through its widgets: real key store (encrypted files in a
temporary home), real local folders, and the real S3 emulator for the cloud form."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import PASSPHRASE, MemoryKeyring, run  # tests/gui/conftest.py
from keyring.backends import fail
from nacl.signing import SigningKey
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QTextDocumentFragment
from PySide6.QtWidgets import QApplication, QRadioButton

from bucket_chat_desktop import settings as settings_store
from bucket_chat_desktop.gui import startup
from bucket_chat_desktop.gui.setup.key_card import BackupDialog
from bucket_chat_desktop.gui.setup.wizard import SetupWizard, run_wizard
from bucket_chat_desktop.gui.storage.check import check_storage
from bucket_chat_desktop.gui.storage.form import StorageForm
from bucket_chat_desktop.keys import (
    EncryptedFileStore,
    Identity,
    default_key_dir,
    export_backup,
    import_backup,
    open_key_store,
)
from bucket_chat_desktop.protocol.event import MEMBER
from bucket_chat_desktop.protocol.segment import decode_segment
from bucket_chat_desktop.settings import Settings
from bucket_chat_desktop.storage.local import LocalStorage
from bucket_chat_desktop.storage.profiles import ProfileStore
from bucket_chat_desktop.storage.url import StorageLocation
from bucket_chat_desktop.sync.outbox import Outbox
from bucket_chat_desktop.sync.room_objects import room_exists
from bucket_chat_desktop.sync.session import outbox_path_for
from bucket_chat_desktop.sync.writer import RoomWriter

pytestmark = pytest.mark.usefixtures("qloop", "home")

USER = "alice@example.com"
SHOTS = Path("/tmp")


# -- helpers -------------------------------------------------------------------------------


def click(qtbot: Any, button: Any) -> None:
    assert button.isEnabled(), f"{button.text()} is disabled"
    if isinstance(button, QRadioButton):  # the middle of a wide radio button is not on it
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=QPoint(8, button.height() // 2))
    else:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def visible_wizard() -> SetupWizard | None:
    found = [
        w for w in QApplication.topLevelWidgets() if isinstance(w, SetupWizard) and w.isVisible()
    ]
    return found[0] if found else None


def start(qtbot: Any, settings: Settings, **kwargs: Any) -> tuple[asyncio.Task[Any], SetupWizard]:
    task = asyncio.ensure_future(run_wizard(settings, **kwargs))
    qtbot.waitUntil(lambda: visible_wizard() is not None, timeout=5000)
    wizard = visible_wizard()
    assert wizard is not None
    return task, wizard


def fill_identity(qtbot: Any, wizard: SetupWizard, user_id: str = USER) -> None:
    page = wizard.identity_page
    page.user_id.clear()
    qtbot.keyClicks(page.user_id, user_id)
    qtbot.keyClicks(page.display_name, "Alice")


def go_next(qtbot: Any, wizard: SetupWizard, expected_page: int) -> None:
    click(qtbot, wizard.next_button)
    qtbot.waitUntil(lambda: not wizard.busy, timeout=20000)
    assert wizard.page == expected_page, wizard.status.text()


def use_folder(qtbot: Any, form: StorageForm, folder: Path) -> None:
    form.folder_edit.clear()
    qtbot.keyClicks(form.folder_edit, str(folder))


def test_connection(qtbot: Any, form: StorageForm, timeout: int = 30000) -> str:
    click(qtbot, form.test_button)
    qtbot.waitUntil(lambda: form.last_result is not None and not form.testing, timeout=timeout)
    assert form.last_result is not None
    return form.last_result.level


test_connection.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def stored_key(user_id: str, passphrase: str = PASSPHRASE) -> SigningKey | None:
    store = EncryptedFileStore(default_key_dir(), lambda _u, _c: passphrase)
    return store.load(user_id)


# -- the whole way through -------------------------------------------------------------------


def test_the_wizard_sets_up_key_storage_and_a_first_room(qtbot: Any, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    settings = Settings()
    remembered: list[Identity] = []
    task, wizard = start(qtbot, settings, on_identity=remembered.append)
    wizard.grab().save(str(SHOTS / "bucket-chat-wizard-1.png"))

    page = wizard.identity_page
    assert page.create_radio.isChecked()
    assert "encrypted key file" in page.store_label.text()
    assert "BUCKET_CHAT_PASSPHRASE" in page.store_label.text()
    fill_identity(qtbot, wizard)
    go_next(qtbot, wizard, 1)
    key = stored_key(USER)
    assert key is not None, "the key is in the store once the first page is done"
    fingerprint = Identity(USER, key).display_fingerprint
    assert page.key_card.fingerprint.text() == fingerprint

    form = wizard.storage_page.form
    assert form.kind() == "file"
    assert form.folder_edit.text() == str(settings_store.paths.default_store_dir())
    use_folder(qtbot, form, shared)
    assert test_connection(qtbot, form) == "ok"
    assert "Connection works" in form.result_label.text()
    assert not form.spinner.isVisible()
    assert not list((shared / ".bucket-chat-probe").glob("*")), "the probes are removed"
    wizard.grab().save(str(SHOTS / "bucket-chat-wizard-2.png"))
    form.name_edit.setText("Team share")
    go_next(qtbot, wizard, 2)

    done = wizard.done_page
    assert USER in done.summary.text() and str(shared) in done.summary.text()
    assert done.key_card.fingerprint.text() == fingerprint
    done.create_room.setChecked(True)
    qtbot.keyClicks(done.room_name, "General Chat")
    # the name's slug and a random tail, as the New room dialog (red team rt73)
    room = done.room_id.text()
    assert re.fullmatch(r"general-chat-[a-z0-9]{4}", room), room
    wizard.grab().save(str(SHOTS / "bucket-chat-wizard-3.png"))
    assert wizard.next_button.text() == "Start chatting"
    click(qtbot, wizard.next_button)
    qtbot.waitUntil(task.done, timeout=20000)

    result = task.result()
    assert result is settings
    assert (result.user_id, result.displayname) == (USER, "Alice")
    assert [(s.spec, s.name, s.rooms) for s in result.storages] == [
        (str(shared), "Team share", [room])
    ]
    assert result.last_room == f"{result.storages[0].id}/{room}"
    saved = settings_store.load()
    assert saved.to_json() == result.to_json()
    assert run(room_exists(LocalStorage(shared), room), qtbot)
    # made the one way every room is (sync.rooms): the join went through this device's
    # outbox, which the app opens for that storage, and is delivered
    outbox = outbox_path_for(settings_store.paths.data_dir(), LocalStorage(shared).identity)
    assert outbox.exists() and Outbox(outbox).pending() == []
    logs = shared / "rooms" / room / "logs"
    joins = [
        (at.event.sender_id, dict(at.event.content))
        for seg in sorted(logs.rglob("*.jsonl"))
        for at in decode_segment(seg.name, seg.read_bytes(), room).events
    ]
    assert joins == [(USER, {"membership": "join", "displayname": "Alice"})]
    assert [i.user_id for i in remembered] == [USER]
    assert bytes(remembered[0].signing_key) == bytes(key)


def test_load_identity_after_the_wizard_asks_for_nothing(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BUCKET_CHAT_PASSPHRASE")

    def no_dialog(user_id: str, creating: bool) -> str:
        raise AssertionError("asked for the passphrase again")

    monkeypatch.setattr(startup, "ask_passphrase", no_dialog)
    settings = Settings()
    task = asyncio.ensure_future(startup.first_run(settings))
    qtbot.waitUntil(lambda: visible_wizard() is not None)
    wizard = visible_wizard()
    assert wizard is not None
    fill_identity(qtbot, wizard)
    qtbot.keyClicks(wizard.identity_page.pass1, "a long passphrase")
    qtbot.keyClicks(wizard.identity_page.pass2, "a long passphrase")
    go_next(qtbot, wizard, 1)
    go_next(qtbot, wizard, 2)
    click(qtbot, wizard.next_button)
    qtbot.waitUntil(task.done, timeout=20000)
    assert task.result() is settings
    assert settings_store.paths.default_store_dir().is_dir(), "the default folder is made"
    identity = run(startup.load_identity(settings), qtbot)
    assert identity is not None
    assert bytes(identity.signing_key) == bytes(stored_key(USER, "a long passphrase") or b"")


def test_cancel_returns_none_and_saves_nothing(qtbot: Any) -> None:
    task, wizard = start(qtbot, Settings())
    fill_identity(qtbot, wizard)
    click(qtbot, wizard.cancel_button)
    qtbot.waitUntil(task.done)
    assert task.result() is None
    assert not settings_store.settings_path().exists()


# -- who you are ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_id", "message"),
    [
        ("", "must not be empty"),
        ("alice/bob", "must not contain"),
        ("alice\u202ebob", "control character"),
    ],
)
def test_an_unusable_user_id_is_explained(qtbot: Any, user_id: str, message: str) -> None:
    wizard = SetupWizard(Settings())
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.identity_page.user_id.setText(user_id)
    go_next(qtbot, wizard, 0)
    assert wizard.identity_page.user_error.isVisible()
    assert message in wizard.identity_page.user_error.text()
    assert not default_key_dir().exists() or not list(default_key_dir().iterdir())


def test_the_file_store_passphrase_is_asked_in_the_dialog(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BUCKET_CHAT_PASSPHRASE")
    wizard = SetupWizard(Settings())
    qtbot.addWidget(wizard)
    wizard.show()
    page = wizard.identity_page
    assert page.pass1.isVisible() and page.pass2.isVisible()
    fill_identity(qtbot, wizard)
    go_next(qtbot, wizard, 0)
    assert "Choose a passphrase" in page.key_error.text()
    qtbot.keyClicks(page.pass1, "first choice")
    qtbot.keyClicks(page.pass2, "second choice")
    go_next(qtbot, wizard, 0)
    assert "differ" in page.key_error.text()
    page.pass2.setText("first choice")
    go_next(qtbot, wizard, 1)
    assert stored_key(USER, "first choice") is not None


def test_an_existing_key_for_the_user_id_is_kept(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_key_store(passphrase_provider=lambda _u, _c: "old passphrase")
    before = SigningKey.generate()
    store.save(USER, before)
    monkeypatch.delenv("BUCKET_CHAT_PASSPHRASE")
    wizard = SetupWizard(Settings())
    qtbot.addWidget(wizard)
    wizard.show()
    page = wizard.identity_page
    fill_identity(qtbot, wizard)
    assert not page.pass2.isVisible(), "an existing key file is unlocked, not re-created"
    qtbot.keyClicks(page.pass1, "wrong")
    go_next(qtbot, wizard, 0)
    assert "passphrase" in page.key_error.text().lower()
    page.pass1.setText("old passphrase")
    go_next(qtbot, wizard, 1)
    assert wizard.identity is not None
    assert bytes(wizard.identity.signing_key) == bytes(before)
    assert "already had a key" in page.key_card.where.text()


def write_backup(tmp_path: Path, user_id: str, passphrase: str) -> tuple[Path, Identity]:
    identity = Identity(user_id, SigningKey.generate())
    path = tmp_path / "alice-backup.key"
    path.write_bytes(export_backup(identity, passphrase))
    return path, identity


def test_a_key_is_imported_from_an_encrypted_backup(qtbot: Any, tmp_path: Path) -> None:
    path, identity = write_backup(tmp_path, "bob@example.org", "backup passphrase")
    wizard = SetupWizard(Settings())
    qtbot.addWidget(wizard)
    wizard.show()
    page = wizard.identity_page
    click(qtbot, page.import_radio)
    assert page.backup_path.isVisible() and page.backup_pass.isVisible()
    qtbot.keyClicks(page.backup_path, str(path))
    qtbot.keyClicks(page.backup_pass, "backup passphrase")
    wizard.grab().save(str(SHOTS / "bucket-chat-wizard-1-import.png"))
    go_next(qtbot, wizard, 1)
    assert page.user_id.text() == "bob@example.org", "the user id comes from the backup"
    key = stored_key("bob@example.org")
    assert key is not None and bytes(key) == bytes(identity.signing_key)
    assert page.key_card.fingerprint.text() == identity.display_fingerprint
    assert "imported" in page.key_card.where.text()


def test_a_wrong_backup_passphrase_shows_an_error(qtbot: Any, tmp_path: Path) -> None:
    path, _ = write_backup(tmp_path, USER, "backup passphrase")
    wizard = SetupWizard(Settings())
    qtbot.addWidget(wizard)
    wizard.show()
    page = wizard.identity_page
    page.import_radio.setChecked(True)
    page.backup_path.setText(str(path))
    page.backup_pass.setText("not the passphrase")
    go_next(qtbot, wizard, 0)
    assert page.key_error.isVisible()
    assert "passphrase" in page.key_error.text().lower()
    assert wizard.identity is None
    assert stored_key(USER) is None
    wizard.grab().save(str(SHOTS / "bucket-chat-wizard-1-wrong-passphrase.png"))


def test_a_backup_of_someone_else_is_refused(qtbot: Any, tmp_path: Path) -> None:
    path, _ = write_backup(tmp_path, "bob@example.org", "backup passphrase")
    wizard = SetupWizard(Settings())
    qtbot.addWidget(wizard)
    page = wizard.identity_page
    page.user_id.setText(USER)
    page.import_radio.setChecked(True)
    page.backup_path.setText(str(path))
    page.backup_pass.setText("backup passphrase")
    go_next(qtbot, wizard, 0)
    assert "holds the key of bob@example.org" in page.key_error.text()


def wizard_importing(qtbot: Any, path: Path) -> SetupWizard:
    wizard = SetupWizard(Settings())
    qtbot.addWidget(wizard)
    wizard.show()
    page = wizard.identity_page
    page.import_radio.setChecked(True)
    page.backup_path.setText(str(path))
    page.backup_pass.setText("backup passphrase")
    return wizard


def long_opslimit_backup(tmp_path: Path) -> Path:
    """opslimit of 5000 digits: Python's parser says "Exceeds the limit (4300 digits) ...
    use sys.set_int_max_str_digits()" (a ValueError the key step did not catch)."""
    path, _ = write_backup(tmp_path, USER, "backup passphrase")
    text = json.dumps(json.loads(path.read_bytes()))
    path.write_text(text.replace('"opslimit": 2', '"opslimit": ' + "9" * 5000), "utf-8")
    assert "9" * 5000 in path.read_text("utf-8")
    return path


def nested_backup(tmp_path: Path) -> Path:
    """Small, but nested too deep for the parser (a RecursionError)."""
    path = tmp_path / "alice-backup.key"
    path.write_bytes(b"[" * 60_000)
    return path


def huge_backup(tmp_path: Path) -> Path:
    path = tmp_path / "alice-backup.key"
    with path.open("wb") as handle:
        handle.truncate(1 << 30)
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (long_opslimit_backup, "not a valid Bucket Chat key file: it holds a number too long"),
        (nested_backup, "not a valid Bucket Chat key file: it is nested too deeply"),
        (huge_backup, "is too large to be a key backup"),
    ],
    ids=["digits", "nested", "huge"],
)
def test_a_hostile_backup_is_explained_in_the_key_step(
    qtbot: Any, tmp_path: Path, make: Any, expected: str
) -> None:
    """What the key step once let through showed as Python's own words on the status line
    ("... use sys.set_int_max_str_digits()", "Unexpected error (RecursionError)")."""
    wizard = wizard_importing(qtbot, make(tmp_path))
    go_next(qtbot, wizard, 0)
    page = wizard.identity_page
    assert page.key_error.isVisible()
    assert expected in page.key_error.text()
    status = QTextDocumentFragment.fromHtml(wizard.status.text()).toPlainText()
    assert "set_int_max_str_digits" not in status and "RecursionError" not in status, status
    assert wizard.identity is None and stored_key(USER) is None
    wizard.grab().save(str(SHOTS / f"bucket-chat-wizard-1-hostile-backup-{make.__name__}.png"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_backup_that_is_a_named_pipe_does_not_hang_the_wizard(qtbot: Any, tmp_path: Path) -> None:
    """A "backup" that is a FIFO was read whole in a worker thread that never came back:
    the wizard stayed busy for good, and the thread kept the app from exiting."""
    fifo = tmp_path / "alice-backup.key"
    os.mkfifo(fifo)
    wizard = wizard_importing(qtbot, fifo)
    try:
        click(qtbot, wizard.next_button)
        qtbot.waitUntil(lambda: not wizard.busy, timeout=5000)
    finally:
        try:  # a reader still blocked on it reads end of file and lets go
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            pass
        else:
            os.close(fd)
        qtbot.waitUntil(lambda: not wizard.busy, timeout=10000)
    page = wizard.identity_page
    assert wizard.page == 0 and page.key_error.isVisible()
    assert "is not a regular file (FIFO), so it cannot be a key backup" in page.key_error.text()
    assert wizard.next_button.isEnabled(), "the wizard is usable again"
    wizard.grab().save(str(SHOTS / "bucket-chat-wizard-1-fifo-backup.png"))


def test_an_encrypted_backup_can_be_saved(qtbot: Any, tmp_path: Path) -> None:
    wizard = SetupWizard(Settings())
    qtbot.addWidget(wizard)
    wizard.show()
    fill_identity(qtbot, wizard)
    go_next(qtbot, wizard, 1)
    click(qtbot, wizard.back_button)
    card = wizard.identity_page.key_card
    assert card.isVisible() and wizard.identity_page.isEnabled()
    click(qtbot, card.backup_button)
    dialog = card.backup_dialog
    assert isinstance(dialog, BackupDialog) and dialog.isVisible()
    target = tmp_path / "backup" / "alice.key"
    dialog.path_edit.setText(str(target))
    qtbot.keyClicks(dialog.pass1, "short")
    qtbot.keyClicks(dialog.pass2, "short")
    click(qtbot, dialog.save_button)
    assert "at least 8" in dialog.error.text()
    dialog.pass1.setText("backup passphrase")
    dialog.pass2.setText("backup passphrase")
    dialog.grab().save(str(SHOTS / "bucket-chat-wizard-backup.png"))
    click(qtbot, dialog.save_button)
    qtbot.waitUntil(lambda: dialog.saved_path is not None, timeout=10000)
    assert not dialog.isVisible()
    assert target.stat().st_mode & 0o077 == 0, "the backup is private to the user"
    restored = import_backup(target.read_bytes(), "backup passphrase")
    assert wizard.identity is not None
    assert bytes(restored.signing_key) == bytes(wizard.identity.signing_key)
    assert str(target) in card.backup_status.text()


# -- where rooms live ----------------------------------------------------------------------


def wizard_on_storage_page(qtbot: Any, **kwargs: Any) -> SetupWizard:
    wizard = SetupWizard(Settings(), **kwargs)
    qtbot.addWidget(wizard)
    wizard.show()
    fill_identity(qtbot, wizard)
    go_next(qtbot, wizard, 1)
    return wizard


def test_test_connection_reports_an_unusable_folder(qtbot: Any, tmp_path: Path) -> None:
    wizard = wizard_on_storage_page(qtbot)
    form = wizard.storage_page.form
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    use_folder(qtbot, form, blocker / "rooms")
    assert test_connection(qtbot, form) == "error"
    assert "does not exist" in form.result_label.text()
    use_folder(qtbot, form, blocker)
    assert test_connection(qtbot, form) == "error"
    assert "is not a folder" in form.result_label.text()
    wizard.grab().save(str(SHOTS / "bucket-chat-wizard-2-error.png"))
    go_next(qtbot, wizard, 1)
    assert "is not a folder" in wizard.status.text()
    use_folder(qtbot, form, tmp_path / "missing")
    go_next(qtbot, wizard, 1)
    assert "does not exist" in wizard.status.text()
    assert not (tmp_path / "missing").exists(), "only the default folder is ever created"


def test_a_folder_that_cannot_be_written_fails_the_test(qtbot: Any, tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / ".bucket-chat-probe").write_text("a file where the probe folder goes")
    result = run(check_storage(StorageLocation("file", str(folder))), qtbot)
    assert result.level == "error"
    assert str(folder) in result.message


def test_joining_an_existing_room_by_id(qtbot: Any, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    bob = RoomWriter(LocalStorage(shared), "lobby", "bob@example.org", SigningKey.generate())
    run(bob.create_room("Lobby", "2026-01-01T00:00:00.000Z"), qtbot)
    wizard = wizard_on_storage_page(qtbot)
    use_folder(qtbot, wizard.storage_page.form, shared)
    go_next(qtbot, wizard, 2)
    done = wizard.done_page
    done.join_room.setChecked(True)
    assert not done.room_name.isVisible()
    qtbot.keyClicks(done.room_id, "no-such-room")
    click(qtbot, wizard.next_button)
    qtbot.waitUntil(lambda: not wizard.busy)
    shown = QTextDocumentFragment.fromHtml(wizard.status.text()).toPlainText()
    assert "no room 'no-such-room'" in shown
    assert wizard.result_settings is None
    done.room_id.setText("lobby")
    click(qtbot, wizard.next_button)
    qtbot.waitUntil(lambda: wizard.result_settings is not None, timeout=20000)
    assert wizard.result_settings is not None
    assert wizard.result_settings.storages[0].rooms == ["lobby"]
    segments = sorted((shared / "rooms" / "lobby").rglob("*.jsonl"))
    events = [json.loads(line) for p in segments for line in p.read_text().splitlines()]
    joins = [e for e in events if e["type"] == MEMBER and e["sender_id"] == USER]
    assert len(joins) == 1 and joins[0]["content"]["membership"] == "join"
    # joined the one way every room is joined (sync.rooms): through this device's outbox
    outbox = outbox_path_for(settings_store.paths.data_dir(), LocalStorage(shared).identity)
    assert outbox.exists() and Outbox(outbox).pending() == []


# -- the cloud form ------------------------------------------------------------------------


def test_the_form_builds_urls_and_keeps_secrets_out_of_them(qtbot: Any) -> None:
    form = StorageForm(profiles=ProfileStore(backend=fail.Keyring()))
    qtbot.addWidget(form)
    form.set_kind("s3")
    assert "bucket" in form.problem()
    form.bucket_edit.setText("team-chat")
    form.prefix_edit.setText("/acme/chat/")
    form.endpoint_edit.setText("https://minio.example:9000")
    form.region_edit.setText("eu-west-1")
    assert "access key" in form.problem()
    form.s3_key_id.setText("AKIAEXAMPLE")
    form.s3_secret.setText("s3cr3t")
    assert form.problem() == ""
    url = form.location().url()
    assert url == (
        "s3://team-chat/acme/chat?endpoint_url=https%3A%2F%2Fminio.example%3A9000&region=eu-west-1"
    )
    assert "s3cr3t" not in url
    assert form.secrets() == {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t"}
    assert form.keyring_note.isVisible() or not form.isVisible()
    assert "No OS keyring is usable" in form.keyring_note.text()

    form.set_kind("gs")
    form.gs_keyfile.setText("/keys/sa.json")
    form.project_edit.setText("acme")
    assert form.location().url() == (
        "gs://team-chat/acme/chat?credentials_file=%2Fkeys%2Fsa.json"
        "&endpoint_url=https%3A%2F%2Fminio.example%3A9000&project=acme"
    )
    assert form.secrets() == {}

    form.set_kind("az")
    form.endpoint_edit.clear()
    form.az_key_radio.setChecked(True)
    form.az_key.setText("a2V5")
    assert "account name" in form.problem()
    form.account_edit.setText("acmestore")
    assert form.location().url() == "az://team-chat/acme/chat?account_name=acmestore"
    assert form.secrets() == {"account_key": "a2V5"}
    form.az_env_radio.setChecked(True)
    assert form.secrets() == {}
    assert not form.wants_secrets()

    form.endpoint_edit.setText("not a url")
    assert "endpoint_url" in form.problem()


def test_a_bracket_in_a_password_is_a_problem_that_quotes_none_of_it(qtbot: Any) -> None:
    """A '[' … ']' in a password (MinIO's, pasted): urlsplit's ValueError, which quotes
    the bracketed piece, escaped problem() (Next, Test connection) to the crash reporter
    (red team rt66)."""
    piece = "rXUtnFEMI"
    form = StorageForm(profiles=ProfileStore(backend=fail.Keyring()))
    qtbot.addWidget(form)
    form.set_kind("s3")
    form.bucket_edit.setText("team-chat")
    form.s3_key_id.setText("AKIAEXAMPLE")
    form.s3_secret.setText("s3cr3t")
    assert form.problem() == ""
    fields = [
        (form.endpoint_edit, f"https://minio:pa[{piece}]word@127.0.0.1:9000", "credentials"),
        (
            form.queue_edit,
            f"https://AKIA:pa[{piece}]@sqs.eu-west-1.amazonaws.com/1/q",
            "credentials",
        ),
        (form.endpoint_edit, f"https://[{piece}", "cannot be read"),
        (form.queue_edit, f"https://sqs[{piece}]/1/q", "cannot be read"),
        (form.bucket_edit, f"team[{piece}]", "cannot be read"),
    ]
    for edit, text, said in fields:
        before = edit.text()
        edit.setText(text)
        problem = form.problem()
        assert said in problem and piece not in problem, problem
        assert form.test_connection() is None  # the problem is shown instead
        assert piece not in form.result_label.text()
        assert piece not in form.describe()
        edit.setText(before)
    assert form.problem() == ""


def test_a_closed_port_fails_fast_with_one_line(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    form = StorageForm(profiles=ProfileStore(backend=fail.Keyring()))
    qtbot.addWidget(form)
    form.show()
    form.set_kind("s3")
    form.bucket_edit.setText("team-chat")
    form.endpoint_edit.setText(f"http://127.0.0.1:{port}")
    form.s3_key_id.setText("AKIAEXAMPLE")
    form.s3_secret.setText("s3cr3t")
    click(qtbot, form.test_button)
    assert form.spinner.spinning, "a busy indicator while the test runs"
    assert not form.test_button.isEnabled()
    qtbot.waitUntil(lambda: form.last_result is not None, timeout=30000)
    assert form.last_result is not None and form.last_result.level == "error"
    assert "refused" in form.last_result.message
    assert "\n" not in form.last_result.message
    assert form.test_button.isEnabled() and not form.spinner.spinning


def _load_emulators() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "integration" / "_emulators.py"
    spec = importlib.util.spec_from_file_location("_bucket_chat_emulators", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Any]]:
    """The S3 emulator of the integration tests: (endpoint, admin keys, module)."""
    emu = _load_emulators()
    proc = emu.moto_emulator(tmp_path_factory.mktemp("moto"))
    try:
        proc.start()
        proc.wait_ready()
        admin, _reader = emu.s3_setup(proc.endpoint)
    except emu.EmulatorError as exc:
        proc.stop()
        pytest.fail(f"the S3 emulator did not start: {exc}", pytrace=False)
    try:
        yield proc.endpoint, admin, emu
    finally:
        proc.stop()


@pytest.fixture
def s3_bucket(moto: tuple[str, Any, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, Any]:
    endpoint, admin, emu = moto
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = f"gui-{uuid.uuid4().hex[:12]}"
    emu.s3_create_bucket(endpoint, admin, bucket)
    return endpoint, bucket, admin


def fill_s3(form: StorageForm, endpoint: str, bucket: str, admin: Any) -> None:
    form.set_kind("s3")
    form.bucket_edit.setText(bucket)
    form.prefix_edit.setText("chat")
    form.endpoint_edit.setText(endpoint)
    form.region_edit.setText("eu-west-1")
    form.s3_key_id.setText(admin.access_key_id)
    form.s3_secret.setText(admin.secret_access_key)


def test_s3_storage_end_to_end_against_the_emulator(
    qtbot: Any, s3_bucket: tuple[str, str, Any], memory_keyring: MemoryKeyring
) -> None:
    endpoint, bucket, admin = s3_bucket
    profiles = ProfileStore(backend=memory_keyring)
    wizard = wizard_on_storage_page(qtbot, profiles=profiles)
    form = wizard.storage_page.form
    click(qtbot, form.kind_buttons["s3"])
    fill_s3(form, endpoint, bucket, admin)
    assert (
        "OS keyring" in form.keyring_note.text() and "never in a file" in form.keyring_note.text()
    )
    assert test_connection(qtbot, form) == "ok", form.result_label.text()
    assert "Connection works" in form.result_label.text()
    wizard.grab().save(str(SHOTS / "bucket-chat-wizard-2-s3.png"))
    go_next(qtbot, wizard, 2)
    wizard.done_page.create_room.setChecked(True)
    wizard.done_page.room_name.setText("General")
    click(qtbot, wizard.next_button)
    qtbot.waitUntil(lambda: wizard.result_settings is not None, timeout=30000)
    settings = wizard.result_settings
    assert settings is not None
    entry = settings.storages[0]
    assert entry.rooms == [wizard.done_page.room_id.text()]
    profile = profiles.get(entry.spec)
    assert profile is not None, "keys make a named storage profile"
    assert profile.location.root() == f"s3://{bucket}/chat"
    assert profiles.secrets(profile)["secret_access_key"] == admin.secret_access_key
    assert admin.secret_access_key not in settings_store.settings_path().read_text()
    assert admin.secret_access_key not in profiles.path.read_text()


def test_s3_with_wrong_keys_shows_the_error(qtbot: Any, s3_bucket: tuple[str, str, Any]) -> None:
    endpoint, bucket, admin = s3_bucket
    form = StorageForm(profiles=ProfileStore(backend=fail.Keyring()))
    qtbot.addWidget(form)
    fill_s3(form, endpoint, bucket, admin)
    form.s3_secret.setText("not-the-secret")
    assert test_connection(qtbot, form) == "error"
    message = form.last_result.message if form.last_result else ""
    assert "\n" not in message and message


def test_keys_without_a_keyring_cannot_be_kept(qtbot: Any, s3_bucket: tuple[str, str, Any]) -> None:
    endpoint, bucket, admin = s3_bucket
    wizard = wizard_on_storage_page(qtbot, profiles=ProfileStore(backend=fail.Keyring()))
    form = wizard.storage_page.form
    fill_s3(form, endpoint, bucket, admin)
    assert test_connection(qtbot, form) == "ok", "keys can still be tested"
    go_next(qtbot, wizard, 1)
    assert "No OS keyring is usable here" in wizard.status.text()
    form.s3_env_radio.setChecked(True)
    assert form.problem() == ""
    go_next(qtbot, wizard, 2)
