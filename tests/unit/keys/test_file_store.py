"""The encrypted key-file store, the key-file format, backups and identities."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from nacl.pwhash import argon2id
from nacl.signing import SigningKey

from bucket_chat_desktop.keys import (
    DefaultPassphraseProvider,
    EncryptedFileStore,
    Identity,
    InvalidKeyStoreChoiceError,
    InvalidUserIdError,
    KeyExistsError,
    KeyFileCorruptError,
    KeyNotFoundError,
    KeysError,
    KeyStoreUnavailableError,
    PassphraseRejectedError,
    PassphraseUnavailableError,
    WrongPassphraseError,
    export_backup,
    import_backup,
    key_file_name,
    load_or_create_identity,
    open_key_store,
    passphrase,
)

USER = "alice@example.org"
SEED = bytes(range(32))
KEY = SigningKey(SEED)
FAST: dict[str, int] = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}


def saved(store: EncryptedFileStore, user_id: str = USER) -> Path:
    store.save(user_id, KEY)
    return store.path_for(user_id)


def rewrite(path: Path, **changes: Any) -> None:
    document = json.loads(path.read_text("utf-8"))
    document.update(changes)
    path.write_text(json.dumps(document), "utf-8")


# --- round trip and file format --------------------------------------------------------


def test_round_trip(fast_store: EncryptedFileStore, provider: Any, key_dir: Path) -> None:
    path = saved(fast_store)
    assert path.parent == key_dir
    assert fast_store.load(USER) == KEY
    assert fast_store.list_user_ids() == [USER]
    assert provider.calls == [(USER, True), (USER, False)]


def test_file_records_format_public_key_and_default_limits(key_dir: Path, provider: Any) -> None:
    store = EncryptedFileStore(key_dir, provider)  # the real (interactive) limits
    document = json.loads(saved(store).read_text("utf-8"))
    assert set(document) == {
        "format", "user_id", "public_key", "kdf", "opslimit", "memlimit", "salt", "box",
    }  # fmt: skip
    assert document["format"] == "bucket-chat-key-v1"
    assert document["kdf"] == "argon2id"
    assert document["user_id"] == USER
    assert base64.b64decode(document["public_key"]) == bytes(KEY.verify_key)
    assert document["opslimit"] == argon2id.OPSLIMIT_INTERACTIVE
    assert document["memlimit"] == argon2id.MEMLIMIT_INTERACTIVE
    assert len(base64.b64decode(document["salt"])) == argon2id.SALTBYTES
    assert store.load(USER) == KEY


def test_raised_limits_are_stored_and_still_open(key_dir: Path, provider: Any) -> None:
    store = EncryptedFileStore(key_dir, provider, opslimit=3, memlimit=argon2id.MEMLIMIT_MIN)
    path = saved(store)
    assert json.loads(path.read_text("utf-8"))["opslimit"] == 3
    # A store configured with other limits still opens it: the file's limits are used.
    assert EncryptedFileStore(key_dir, provider, **FAST).load(USER) == KEY


def test_missing_key_loads_as_none_without_asking_for_a_passphrase(
    fast_store: EncryptedFileStore, provider: Any
) -> None:
    assert fast_store.load(USER) is None
    assert fast_store.list_user_ids() == []
    assert provider.calls == []


def test_no_plaintext_seed_in_the_file(fast_store: EncryptedFileStore, key_dir: Path) -> None:
    path = saved(fast_store)
    assert [p.name for p in key_dir.iterdir()] == [path.name]  # no temp file left behind
    data = path.read_bytes()
    for needle in (
        SEED,
        base64.b64encode(SEED),
        base64.b64encode(SEED).rstrip(b"="),
        base64.urlsafe_b64encode(SEED).rstrip(b"="),
        SEED.hex().encode(),
        SEED.hex().upper().encode(),
    ):
        assert needle not in data


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_file_is_private_even_with_a_permissive_umask(
    fast_store: EncryptedFileStore, key_dir: Path
) -> None:
    old_umask = os.umask(0)
    try:
        path = saved(fast_store)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700


def test_overwrite_is_refused_unless_asked(fast_store: EncryptedFileStore, provider: Any) -> None:
    path = saved(fast_store)
    before = path.read_bytes()
    other = SigningKey.generate()
    with pytest.raises(KeyExistsError, match="already exists"):
        fast_store.save(USER, other)
    assert path.read_bytes() == before
    assert provider.calls == [(USER, True)]  # refused before asking for a passphrase
    fast_store.save(USER, other, overwrite=True)
    assert fast_store.load(USER) == other


def test_delete(fast_store: EncryptedFileStore) -> None:
    path = saved(fast_store)
    fast_store.delete(USER)
    assert not path.exists()
    assert fast_store.load(USER) is None
    with pytest.raises(KeyNotFoundError, match=USER):
        fast_store.delete(USER)


def test_unwritable_directory_is_a_keys_error(tmp_path: Path, provider: Any) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = EncryptedFileStore(blocker, provider, **FAST)
    with pytest.raises(KeyStoreUnavailableError, match="Cannot create the key folder"):
        store.save(USER, KEY)


# --- wrong passphrase and damaged files -----------------------------------------------


def test_wrong_passphrase(fast_store: EncryptedFileStore, provider: Any) -> None:
    path = saved(fast_store)
    provider.passphrase = "not the passphrase"
    with pytest.raises(WrongPassphraseError) as caught:
        fast_store.load(USER)
    message = str(caught.value)
    assert "Wrong passphrase" in message
    assert USER in message and str(path) in message
    assert "not the passphrase" not in message


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(200))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _wrong_format(path: Path) -> None:
    rewrite(path, format="bucket-chat-key-v0")


def _wrong_kdf(path: Path) -> None:
    rewrite(path, kdf="scrypt")


def _missing_box(path: Path) -> None:
    document = json.loads(path.read_text("utf-8"))
    del document["box"]
    path.write_text(json.dumps(document), "utf-8")


def _short_box(path: Path) -> None:
    rewrite(path, box=base64.b64encode(b"\0" * 40).decode())


def _not_base64_salt(path: Path) -> None:
    rewrite(path, salt="***")


def _json_list(path: Path) -> None:
    path.write_text("[1, 2, 3]", "utf-8")


def _huge_memlimit(path: Path) -> None:
    rewrite(path, memlimit=2**40)


def _string_opslimit(path: Path) -> None:
    rewrite(path, opslimit="2")


def _other_public_key(path: Path) -> None:
    other = bytes(SigningKey.generate().verify_key)
    rewrite(path, public_key=base64.b64encode(other).decode())


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_truncate, "not JSON"),
        (_garbage, "not JSON"),
        (_empty, "not JSON"),
        (_json_list, "not a JSON object"),
        (_wrong_format, "unknown format 'bucket-chat-key-v0'"),
        (_wrong_kdf, "unknown kdf 'scrypt'"),
        (_missing_box, "missing field"),
        (_short_box, "field box holds 40 bytes"),
        (_not_base64_salt, "field salt is not standard base64"),
        (_huge_memlimit, "out of range"),
        (_string_opslimit, "out of range"),
        (_other_public_key, "does not match its secret key"),
    ],
)
def test_damaged_file_names_the_file(
    fast_store: EncryptedFileStore, damage: Any, expected: str
) -> None:
    path = saved(fast_store)
    damage(path)
    with pytest.raises(KeyFileCorruptError) as caught:
        fast_store.load(USER)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_altered_ciphertext_is_reported_without_a_nacl_error(
    fast_store: EncryptedFileStore,
) -> None:
    path = saved(fast_store)
    box = bytearray(base64.b64decode(json.loads(path.read_text("utf-8"))["box"]))
    box[-1] ^= 1
    rewrite(path, box=base64.b64encode(bytes(box)).decode())
    with pytest.raises(WrongPassphraseError, match="altered"):
        fast_store.load(USER)


def test_file_of_another_user_under_this_name_is_refused(
    fast_store: EncryptedFileStore,
) -> None:
    bob = saved(fast_store, "bob@example.org")
    os.replace(bob, fast_store.path_for(USER))
    with pytest.raises(KeyFileCorruptError, match=re.escape("bob@example.org")):
        fast_store.load(USER)
    assert fast_store.list_user_ids() == []  # a misplaced file is not listed


def test_listing_skips_damaged_files(fast_store: EncryptedFileStore, key_dir: Path) -> None:
    saved(fast_store)
    saved(fast_store, "bob@example.org")
    (key_dir / "junk-00000000.key").write_text("{not json")
    (key_dir / "notes.txt").write_text("ignored")
    assert fast_store.list_user_ids() == ["alice@example.org", "bob@example.org"]


# --- hostile and unusual user ids -----------------------------------------------------


@pytest.mark.parametrize(
    "user_id",
    ["../../etc/x", "a/b", "..\\x", "a\x00b", "", "x" * 257, "tab\there", " alice", "\u202eevil"],
)
def test_hostile_user_ids_are_refused(fast_store: EncryptedFileStore, user_id: str) -> None:
    with pytest.raises(InvalidUserIdError):
        fast_store.save(user_id, KEY)
    with pytest.raises(InvalidUserIdError):
        fast_store.load(user_id)
    with pytest.raises(InvalidUserIdError):
        fast_store.delete(user_id)
    with pytest.raises(InvalidUserIdError):
        Identity(user_id, KEY)
    assert not fast_store.directory.exists()


@pytest.mark.parametrize(
    "user_id", ["..", ".", "CON", "a:b", "ünïcødé@例え.jp", "-rf", "x" * 256, "a b@c"]
)
def test_unusual_user_ids_stay_inside_the_directory(
    fast_store: EncryptedFileStore, key_dir: Path, user_id: str
) -> None:
    path = fast_store.path_for(user_id)
    assert path.parent == key_dir
    name = path.name
    assert name.endswith(".key") and not name.startswith(".")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
    assert len(name) <= 80
    assert name == key_file_name(user_id)
    tag = hashlib.sha256(user_id.encode()).hexdigest()[:8]
    assert name.endswith(f"-{tag}.key")
    fast_store.save(user_id, KEY)
    assert fast_store.load(user_id) == KEY
    assert [p.name for p in key_dir.iterdir()] == [name]


def test_ids_that_sanitise_alike_get_different_files(fast_store: EncryptedFileStore) -> None:
    assert fast_store.path_for("a.b") != fast_store.path_for("a_b")
    fast_store.save("a.b", KEY)
    other = SigningKey.generate()
    fast_store.save("a_b", other)
    assert fast_store.load("a.b") == KEY
    assert fast_store.load("a_b") == other


# --- passphrases ----------------------------------------------------------------------


def test_env_var_passphrase(key_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = EncryptedFileStore(key_dir, DefaultPassphraseProvider(), **FAST)
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", "from the environment")
    store.save(USER, KEY)
    assert store.load(USER) == KEY
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", "something else")
    with pytest.raises(WrongPassphraseError):
        store.load(USER)


def test_the_env_passphrase_leaves_the_environment_once_read(
    key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Programs started later (the one opening an attachment) inherit the environment:
    the passphrase is taken out of it, at the C level too, and still serves this process."""
    import subprocess
    import sys

    store = EncryptedFileStore(key_dir, DefaultPassphraseProvider(), **FAST)
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", "from the environment")
    store.save(USER, KEY)
    assert "BUCKET_CHAT_PASSPHRASE" not in os.environ
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('BUCKET_CHAT_PASSPHRASE'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.stdout.strip() == "None"
    assert store.load(USER) == KEY  # asked again: still known to this process


def test_the_cli_claims_the_passphrase_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bucket_chat_desktop.cli.main import main

    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", "typed by a script")
    assert main(["version"]) == 0  # a command that never needs the key
    assert "BUCKET_CHAT_PASSPHRASE" not in os.environ
    assert passphrase.claim_env_passphrase() == "typed by a script"


def test_the_app_claims_the_passphrase_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bucket_chat_desktop import app

    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", "typed by a script")
    with pytest.raises(SystemExit):
        app.main(["--version"])
    assert "BUCKET_CHAT_PASSPHRASE" not in os.environ


def test_without_env_var_or_terminal_the_error_says_what_to_do(key_dir: Path) -> None:
    # pytest replaces stdin, so there is no terminal here.
    store = EncryptedFileStore(key_dir, DefaultPassphraseProvider("no D-Bus session"), **FAST)
    with pytest.raises(PassphraseUnavailableError) as caught:
        store.save(USER, KEY)
    assert str(caught.value) == (
        "No OS keyring is usable here (no D-Bus session) and no passphrase was given: "
        "set BUCKET_CHAT_PASSPHRASE or run in a terminal."
    )
    assert not key_dir.exists()


def test_empty_env_var_counts_as_unset(key_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKET_CHAT_PASSPHRASE", "")
    store = EncryptedFileStore(key_dir, DefaultPassphraseProvider(), **FAST)
    with pytest.raises(PassphraseUnavailableError, match="BUCKET_CHAT_PASSPHRASE"):
        store.save(USER, KEY)


def test_empty_passphrase_is_refused(fast_store: EncryptedFileStore, provider: Any) -> None:
    provider.passphrase = ""
    with pytest.raises(PassphraseRejectedError):
        fast_store.save(USER, KEY)
    assert not fast_store.path_for(USER).exists()


def test_unicode_passphrase_forms_are_equivalent(
    fast_store: EncryptedFileStore, provider: Any
) -> None:
    provider.passphrase = "caf\u00e9"  # precomposed é
    saved(fast_store)
    provider.passphrase = "cafe\u0301"  # e + combining acute accent
    assert fast_store.load(USER) == KEY


# --- identities, backups, choosing the store -----------------------------------------------


def test_load_or_create_identity(fast_store: EncryptedFileStore) -> None:
    with pytest.raises(KeyNotFoundError, match=USER):
        load_or_create_identity(fast_store, USER, create=False)
    created, was_created = load_or_create_identity(fast_store, USER, create=True)
    assert was_created
    loaded, was_created = load_or_create_identity(fast_store, USER, create=False)
    assert not was_created
    assert loaded == created
    again, was_created = load_or_create_identity(fast_store, USER, create=True)
    assert not was_created and again == created


def test_identity_properties() -> None:
    identity = Identity(USER, KEY)
    raw = bytes(KEY.verify_key)
    assert base64.b64decode(identity.public_key_b64, validate=True) == raw
    assert identity.fingerprint == hashlib.sha256(raw).hexdigest()
    assert identity.short_fingerprint == identity.fingerprint[:8]
    groups = identity.display_fingerprint.split(" ")
    assert groups == [identity.fingerprint[i : i + 4] for i in range(0, 32, 4)]
    assert identity.client_id == f"alice-{identity.short_fingerprint}"
    assert SEED.hex() not in repr(identity) and base64.b64encode(SEED).decode() not in repr(
        identity
    )


@pytest.mark.parametrize(
    ("user_id", "user_part"),
    [
        ("bob.smith+chat@example.org", "bobsmithchat"),
        ("@matrix:example.org", "user"),
        ("ünï", "n"),
        ("x" * 60 + "@example.org", "x" * 40),
        ("no-at-sign_here", "no-at-sign_here"),
    ],
)
def test_client_id(user_id: str, user_part: str) -> None:
    identity = Identity(user_id, KEY)
    assert identity.client_id == f"{user_part}-{identity.short_fingerprint}"


def test_backup_round_trip(fast_store: EncryptedFileStore) -> None:
    identity = Identity(USER, KEY)
    backup = export_backup(identity, "backup words", **FAST)
    assert base64.b64encode(SEED) not in backup and SEED not in backup
    assert json.loads(backup)["format"] == "bucket-chat-key-v1"
    assert import_backup(backup, "backup words") == identity
    with pytest.raises(WrongPassphraseError, match="the backup"):
        import_backup(backup, "wrong words")
    with pytest.raises(KeyFileCorruptError, match="the backup"):
        import_backup(backup[:50], "backup words")
    with pytest.raises(PassphraseRejectedError):
        export_backup(identity, "")


def test_a_key_file_is_a_valid_backup(fast_store: EncryptedFileStore, provider: Any) -> None:
    path = saved(fast_store)
    assert import_backup(path.read_bytes(), provider.passphrase) == Identity(USER, KEY)


def test_open_key_store_file_choice(isolated_home: Path, provider: Any) -> None:
    store = open_key_store("file", passphrase_provider=provider)
    assert isinstance(store, EncryptedFileStore)
    assert store.directory == isolated_home / "data" / "keys"
    assert store.name.startswith(f"encrypted key file in {store.directory}")
    assert "Argon2id" in store.name


def test_open_key_store_reads_the_env_var(monkeypatch: pytest.MonkeyPatch, key_dir: Path) -> None:
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "FILE")
    store = open_key_store(key_dir=key_dir)
    assert isinstance(store, EncryptedFileStore)
    assert store.directory == key_dir
    assert store.selection_reason == "BUCKET_CHAT_KEY_STORE=file"
    monkeypatch.setenv("BUCKET_CHAT_KEY_STORE", "vault")
    with pytest.raises(InvalidKeyStoreChoiceError, match="BUCKET_CHAT_KEY_STORE"):
        open_key_store()
    with pytest.raises(KeysError, match="one of auto, keyring, file"):
        open_key_store("disk")
