"""The wizard's key step without its widgets (``gui/setup/key_setup.py``): which passphrase
is asked for when, and creating or importing a key into real encrypted key files under a
temporary ``BUCKET_CHAT_HOME``. The pages that feed it are driven in test_wizard.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.gui.setup.key_setup import KeyForm, KeySetup, passphrases
from bucket_chat_desktop.keys import (
    EncryptedFileStore,
    Identity,
    KeysError,
    default_key_dir,
    export_backup,
)

USER = "alice@example.com"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BUCKET_CHAT_HOME", str(home))
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "file")
    monkeypatch.delenv("BUCKET_CHAT_PASSPHRASE", raising=False)
    return home


def test_the_environment_passphrase_wins() -> None:
    form = KeyForm(USER, passphrase="typed", repeat="other", default_is_file=True)
    assert passphrases(form, USER, "from-env") == ("from-env", "from-env")


def test_no_file_store_needs_no_passphrase() -> None:
    assert passphrases(KeyForm(USER), USER, "") == ("", "")


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (KeyForm(USER, default_is_file=True), "Choose a passphrase"),
        (KeyForm(USER, passphrase="a", repeat="b", default_is_file=True), "differ"),
    ],
)
def test_a_new_key_file_needs_the_same_passphrase_twice(form: KeyForm, message: str) -> None:
    with pytest.raises(KeysError, match=message):
        passphrases(form, USER, "")
    good = KeyForm(USER, passphrase="same", repeat="same", default_is_file=True)
    assert passphrases(good, USER, "") == ("same", "same")


def test_an_existing_key_file_asks_for_its_passphrase_once() -> None:
    EncryptedFileStore(default_key_dir(), lambda _u, _c: "old").save(USER, SigningKey.generate())
    with pytest.raises(KeysError, match="key already on this device"):
        passphrases(KeyForm(USER), USER, "")
    assert passphrases(KeyForm(USER, passphrase="old"), USER, "") == ("old", "old")


def test_an_import_without_a_new_passphrase_keeps_the_backups() -> None:
    form = KeyForm("", importing=True, backup_passphrase="backup", default_is_file=True)
    assert passphrases(form, USER, "") == ("backup", "backup")


def test_create_then_create_again_uses_the_same_key() -> None:
    setup = KeySetup()
    form = KeyForm(USER, passphrase="pw-1234", repeat="pw-1234", default_is_file=True)
    first, how = asyncio.run(setup.create(form))
    assert "new key" in how and "encrypted key file" in setup.where()
    again, how = asyncio.run(KeySetup().create(KeyForm(USER, passphrase="pw-1234")))
    assert "already had a key" in how
    assert bytes(again.signing_key) == bytes(first.signing_key)


def test_import_checks_the_file_the_passphrase_and_the_user_id(tmp_path: Path) -> None:
    key = SigningKey.generate()
    backup = tmp_path / "backup.key"
    backup.write_bytes(export_backup(Identity(USER, key), "backup-pass"))
    setup = KeySetup()

    def attempt(**fields: object) -> str:
        form = KeyForm(**{"user_id": "", "importing": True, **fields})  # type: ignore[arg-type]
        with pytest.raises(KeysError) as caught:
            asyncio.run(setup.import_key(form))
        return str(caught.value)

    assert "Choose the backup file" in attempt()
    assert "backup's passphrase" in attempt(backup_path=str(backup))
    assert "Cannot read" in attempt(backup_path=str(tmp_path / "gone"), backup_passphrase="x")
    assert "not of bob@example.com" in attempt(
        user_id="bob@example.com", backup_path=str(backup), backup_passphrase="backup-pass"
    )
    form = KeyForm(
        "", importing=True, backup_path=str(backup), backup_passphrase="backup-pass",
        default_is_file=True,
    )  # fmt: skip
    identity, how = asyncio.run(setup.import_key(form))
    assert identity.user_id == USER and bytes(identity.signing_key) == bytes(key)
    assert "imported" in how
    assert asyncio.run(setup.import_key(form))[1] == "This device already had this key."
