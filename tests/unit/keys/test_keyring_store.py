# keyring's backend classes have unannotated constructors.
# mypy: disable-error-code="no-untyped-call"
"""The OS keyring store, and how `open_key_store` chooses between keyring and files.

Tests marked ``keyring`` use a real Secret Service (GNOME Keyring on a private D-Bus
session). Run them with ``tests/with-keyring.sh .venv/bin/pytest tests/unit/keys``; without
it they are skipped. The other tests use keyring's own fail/null backends.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import re
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import SecretService, chainer, fail, null
from nacl.signing import SigningKey

from bucket_chat_desktop.keyring_policy import KEY_SERVICE, STORAGE_SERVICE
from bucket_chat_desktop.keys import (
    KEYRING_SERVICE,
    EncryptedFileStore,
    KeyExistsError,
    KeyNotFoundError,
    KeyringStore,
    KeyStoreUnavailableError,
    PassphraseUnavailableError,
    StoredKeyCorruptError,
    load_or_create_identity,
    open_key_store,
    select_keyring_backend,
)
from bucket_chat_desktop.storage.profiles import ProfileError, ProfileStore
from bucket_chat_desktop.storage.url import parse_storage_url

# One Secret Service for the whole run, and some tests here lock it: every test that uses
# it is marked ``keyring`` and runs alone (tests/conftest.py).

SECRET_SERVICE_ENV = "BUCKET_CHAT_TEST_SECRET_SERVICE"


def _reset_keyring(backend_name: str | None) -> None:
    """Make keyring pick its backend again, as a fresh process with this env would."""
    if backend_name is None:
        os.environ.pop("PYTHON_KEYRING_BACKEND", None)
    else:
        os.environ["PYTHON_KEYRING_BACKEND"] = backend_name
    keyring.core.init_backend()


@pytest.fixture
def keyring_backend_env() -> Iterator[Any]:
    """Set PYTHON_KEYRING_BACKEND for one test; restore it (and keyring's choice) after."""
    before = os.environ.get("PYTHON_KEYRING_BACKEND")
    try:
        yield _reset_keyring
    finally:
        _reset_keyring(before)


@pytest.fixture
def secret_service() -> Iterator[None]:
    if os.environ.get(SECRET_SERVICE_ENV) != "1":
        pytest.skip(
            f"needs a real Secret Service: run inside tests/with-keyring.sh "
            f"(it sets {SECRET_SERVICE_ENV}=1)"
        )
    before = os.environ.get("PYTHON_KEYRING_BACKEND")
    _reset_keyring(None)  # plain auto-detection, as the app sees it
    try:
        yield
    finally:
        _reset_keyring(before)


@pytest.fixture
def user_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}@example.org"


# --- no keyring: fallback and refusal (run everywhere) ---------------------------------


def test_fail_backend_falls_back_to_file_store(
    keyring_backend_env: Any, isolated_home: Path
) -> None:
    keyring_backend_env("keyring.backends.fail.Keyring")
    store = open_key_store("auto")
    assert isinstance(store, EncryptedFileStore)
    assert store.name.startswith("encrypted key file in ")
    assert store.directory == isolated_home / "data" / "keys"
    assert store.selection_reason.startswith("no OS keyring is usable (")
    assert "PYTHON_KEYRING_BACKEND=keyring.backends.fail.Keyring" in store.selection_reason
    # Without a passphrase or a terminal, the user is told why and what to do.
    with pytest.raises(PassphraseUnavailableError) as caught:
        load_or_create_identity(store, "alice@example.org", create=True)
    assert str(caught.value).startswith("No OS keyring is usable here (PYTHON_KEYRING_BACKEND=")
    assert str(caught.value).endswith("set BUCKET_CHAT_PASSPHRASE or run in a terminal.")


def test_fail_backend_refuses_keyring_choice(
    keyring_backend_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring_backend_env("keyring.backends.fail.Keyring")
    with pytest.raises(KeyStoreUnavailableError, match=re.escape("keyring.backends.fail.Keyring")):
        open_key_store("keyring")
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "keyring")
    with pytest.raises(KeyStoreUnavailableError, match="OS keyring cannot be used here"):
        open_key_store()
    with pytest.raises(KeyStoreUnavailableError):
        KeyringStore()


def test_secret_service_without_a_session_bus_is_unusable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    usable, reason = KeyringStore.usable(SecretService.Keyring())
    assert not usable
    assert "DBUS_SESSION_BUS_ADDRESS is unset" in reason


def test_auto_detection_on_a_machine_without_keyring_uses_files(keyring_backend_env: Any) -> None:
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        pytest.skip("this machine has a D-Bus session, so it may well have a keyring")
    keyring_backend_env(None)  # keyring's own auto-detection
    usable, reason = KeyringStore.usable()
    assert not usable
    assert "DBUS_SESSION_BUS_ADDRESS" in reason
    store = open_key_store("auto")
    assert isinstance(store, EncryptedFileStore)
    assert "DBUS_SESSION_BUS_ADDRESS" in store.selection_reason


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (fail.Keyring(), "no OS keyring backend"),
        (null.Keyring(), "disabled"),
    ],
)
def test_builtin_non_keyrings_are_unusable(backend: KeyringBackend, reason: str) -> None:
    assert select_keyring_backend(backend)[0] is None
    usable, why = KeyringStore.usable(backend)
    assert not usable
    assert reason in why


class _LowPriorityKeyring(KeyringBackend):
    """A backend that keyring itself would only use as a last resort."""

    priority = 0.5

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("must not be used")

    def delete_password(self, service: str, username: str) -> None:
        raise AssertionError("must not be used")


class _PlaintextLikeKeyring(_LowPriorityKeyring):
    priority = 5


_PlaintextLikeKeyring.__module__ = "keyrings.alt.file"

# keyring registers every backend class it sees; keep these out of its auto-detection.
for _test_backend in (_LowPriorityKeyring, _PlaintextLikeKeyring):
    KeyringBackend._classes.discard(_test_backend)


def test_low_priority_and_plaintext_backends_are_refused() -> None:
    usable, why = KeyringStore.usable(_LowPriorityKeyring())
    assert not usable and "priority 0.5 < 1" in why
    usable, why = KeyringStore.usable(_PlaintextLikeKeyring())
    assert not usable and "keyrings.alt.file" in why


# --- the real Secret Service ------------------------------------------------------------


@pytest.mark.keyring
def test_keyring_round_trip(secret_service: None, user_id: str, tmp_path: Path) -> None:
    store = KeyringStore(index_path=tmp_path / "identities.json")
    assert store.name == "OS keyring (SecretService Keyring)"
    key = SigningKey.generate()
    assert store.load(user_id) is None
    store.save(user_id, key)
    assert store.load(user_id) == key
    # The documented entry: service bucket-chat, username = user id, secret = b64 seed.
    secret = keyring.get_password(KEYRING_SERVICE, user_id)
    assert secret == base64.b64encode(bytes(key)).decode()
    # The index lists the user id and public key, never the secret.
    index_bytes = (tmp_path / "identities.json").read_bytes()
    assert secret.encode() not in index_bytes
    entries = json.loads(index_bytes)["identities"]
    public = base64.b64encode(bytes(key.verify_key)).decode()
    assert entries == [{"user_id": user_id, "public_key": public, "store": "keyring"}]
    assert store.list_user_ids() == [user_id]


@pytest.mark.keyring
def test_keyring_overwrite_and_delete(secret_service: None, user_id: str, tmp_path: Path) -> None:
    store = KeyringStore(index_path=tmp_path / "identities.json")
    first, second = SigningKey.generate(), SigningKey.generate()
    store.save(user_id, first)
    with pytest.raises(KeyExistsError, match=user_id):
        store.save(user_id, second)
    assert store.load(user_id) == first
    store.save(user_id, second, overwrite=True)
    assert store.load(user_id) == second

    store.delete(user_id)
    assert store.load(user_id) is None
    assert keyring.get_password(KEYRING_SERVICE, user_id) is None
    assert store.list_user_ids() == []
    with pytest.raises(KeyNotFoundError, match=user_id):
        store.delete(user_id)


@pytest.mark.keyring
def test_keyring_entry_that_is_not_a_key(secret_service: None, user_id: str) -> None:
    keyring.set_password(KEYRING_SERVICE, user_id, "hunter2")
    try:
        with pytest.raises(StoredKeyCorruptError, match="not a Bucket Chat signing key"):
            KeyringStore().load(user_id)
    finally:
        keyring.delete_password(KEYRING_SERVICE, user_id)


@pytest.mark.keyring
def test_auto_chooses_the_keyring(secret_service: None, user_id: str, isolated_home: Path) -> None:
    assert KeyringStore.usable() == (True, "SecretService Keyring")
    store = open_key_store("auto")
    assert isinstance(store, KeyringStore)
    assert "SecretService" in store.name
    assert isinstance(open_key_store("keyring"), KeyringStore)
    identity, created = load_or_create_identity(store, user_id, create=True)
    assert created
    again, created = load_or_create_identity(open_key_store(), user_id, create=False)
    assert not created and again == identity
    # The public index went to BUCKET_CHAT_HOME's config folder.
    assert user_id in (isolated_home / "config" / "identities.json").read_text("utf-8")
    store.delete(user_id)


@pytest.mark.keyring
def test_chainer_is_resolved_to_secret_service(secret_service: None) -> None:
    chosen, reason = select_keyring_backend(chainer.ChainerBackend())
    assert isinstance(chosen, SecretService.Keyring), reason


def _unlock_login_keyring(collection: Any) -> None:
    """Unlock without a prompter, through GNOME Keyring's own (unsupported) interface."""
    from secretstorage.defines import SS_PATH
    from secretstorage.util import DBusAddressWrapper, format_secret, open_session

    password = os.environ["BUCKET_CHAT_TEST_KEYRING_PASSWORD"].encode()
    secret = format_secret(open_session(collection.connection), password, "text/plain")
    DBusAddressWrapper(
        SS_PATH, "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface", collection.connection
    ).call("UnlockWithMasterPassword", "o(oayays)", collection.collection_path, secret)


@pytest.mark.keyring
def test_locked_keyring_is_unusable_and_auto_falls_back(secret_service: None) -> None:
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        collection.lock()
        try:
            # keyring's SecretService backend leaves its D-Bus connection open when the
            # unlock prompt fails; collect it here instead of warning in a later test.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                usable, reason = KeyringStore.usable()
                store = open_key_store("auto")
                gc.collect()
            assert not usable
            assert "locked" in reason
            assert isinstance(store, EncryptedFileStore)
            assert "locked" in store.selection_reason
        finally:
            _unlock_login_keyring(collection)
        assert not collection.is_locked()
        assert KeyringStore.usable()[0]
    finally:
        connection.close()


@pytest.mark.keyring
def test_auto_prefers_an_existing_key_file_for_that_user(
    secret_service: None, tmp_path: Path
) -> None:
    files = EncryptedFileStore(tmp_path, lambda _u, _c: "pw")
    key = SigningKey.generate()
    files.save("ssh-user@example.com", key)
    store = open_key_store(
        "auto",
        key_dir=tmp_path,
        user_id="ssh-user@example.com",
        passphrase_provider=lambda _u, _c: "pw",
    )
    assert isinstance(store, EncryptedFileStore)
    assert store.load("ssh-user@example.com") == key
    other = open_key_store("auto", key_dir=tmp_path, user_id="someone-else@example.com")
    assert isinstance(other, KeyringStore)


# -- one policy for the signing keys and the storage secrets (keyring_policy) ----------------

STORAGE_KEYS = {"access_key_id": "AKIAPOLICYTEST000000", "secret_access_key": "policy-secret"}


@pytest.mark.keyring
def test_keys_and_storage_secrets_share_one_backend_under_their_own_services(
    secret_service: None, tmp_path: Path
) -> None:
    store = KeyringStore(index_path=tmp_path / "identities.json")
    profiles = ProfileStore(tmp_path / "storages.json")
    user = f"policy-{uuid.uuid4().hex[:8]}@example.com"
    name = f"policy-{uuid.uuid4().hex[:8]}"
    store.save(user, SigningKey.generate())
    profiles.add(name, parse_storage_url("s3://bucket"), STORAGE_KEYS)
    try:
        chosen, _ = profiles.keyring_backend()
        assert isinstance(store.backend, SecretService.Keyring)
        assert type(chosen) is type(store.backend)
        assert keyring.get_password(KEY_SERVICE, user) is not None
        assert json.loads(keyring.get_password(STORAGE_SERVICE, name) or "") == STORAGE_KEYS
        assert keyring.get_password(STORAGE_SERVICE, user) is None
        assert keyring.get_password(KEY_SERVICE, name) is None
    finally:
        store.delete(user)
        profiles.remove(name)
    assert keyring.get_password(STORAGE_SERVICE, name) is None


@pytest.mark.keyring
def test_a_locked_keyring_reads_the_same_for_keys_and_storage_secrets(
    secret_service: None, tmp_path: Path
) -> None:
    """Both used to say it their own way ("could not keep the keys ...: Failed to unlock
    the collection!"); now each names the keyring as locked, and nothing is written."""
    import secretstorage

    store = KeyringStore(index_path=tmp_path / "identities.json")
    profiles = ProfileStore(tmp_path / "storages.json")
    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        collection.lock()
        try:
            with warnings.catch_warnings():  # see the test above: an unclosed D-Bus link
                warnings.simplefilter("ignore", ResourceWarning)
                usable, reason = KeyringStore.usable()
                with pytest.raises(KeyStoreUnavailableError) as key_error:
                    store.save("locked-out@example.com", SigningKey.generate())
                with pytest.raises(ProfileError) as storage_error:
                    profiles.add("locked", parse_storage_url("s3://bucket"), STORAGE_KEYS)
                gc.collect()
        finally:
            _unlock_login_keyring(collection)
    finally:
        connection.close()
    assert not usable
    for text in (reason, str(key_error.value), str(storage_error.value)):
        assert "OS keyring (SecretService Keyring) is locked and was not unlocked" in text
    assert not profiles.path.exists()
    assert not (tmp_path / "identities.json").exists()
