"""Where a device keeps its signing keys: the OS keyring, or encrypted key files.

`open_key_store` picks the store (``BUCKET_CHAT_KEY_STORE`` = ``auto``, ``keyring`` or
``file``); its ``name`` and ``selection_reason`` say which one is in use and why, for the
CLI and GUI to show. The private key never reaches the disk in plain text: the keyring
holds it in the OS's secret store, a key file holds it encrypted under a passphrase.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from nacl.signing import SigningKey

from ..keyring_policy import KEY_SERVICE, failure, probe, select_keyring_backend
from ..osfiles import (
    FileTooLargeError,
    SpecialFileError,
    ensure_private_dir,
    read_regular_file,
    write_atomic,
)
from ..paths import config_dir, data_dir
from .errors import (
    InvalidKeyStoreChoiceError,
    KeyExistsError,
    KeyFileCorruptError,
    KeyNotFoundError,
    KeysError,
    KeyStoreUnavailableError,
    StoredKeyCorruptError,
)
from .identity import Identity, check_user_id
from .keyfile import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    MAX_KEY_FILE_BYTES,
    decrypt_key,
    encrypt_key,
    read_header,
)
from .passphrase import DefaultPassphraseProvider, PassphraseProvider
from .public_index import PublicIndex

if TYPE_CHECKING:
    from ..keyring_policy import KeyringBackend

log = logging.getLogger("bucket_chat.keys")

KEYRING_SERVICE = KEY_SERVICE  # see keyring_policy
KEY_STORE_ENV = "BUCKET_CHAT_KEY_STORE"
KEY_STORE_CHOICES = ("auto", "keyring", "file")
INDEX_FILE_NAME = "identities.json"


class KeyStore(abc.ABC):
    """One device's signing keys, one per user id.

    ``name`` is a human description of the store, e.g. ``OS keyring (SecretService
    Keyring)``; ``selection_reason`` says why `open_key_store` chose it.
    """

    kind: ClassVar[str]
    name: str
    selection_reason: str = "chosen by the caller"

    @abc.abstractmethod
    def load(self, user_id: str) -> SigningKey | None:
        """The stored key of ``user_id``, or None if there is none."""

    @abc.abstractmethod
    def save(self, user_id: str, key: SigningKey, *, overwrite: bool = False) -> None:
        """Store ``key``; raise `KeyExistsError` if one exists and ``overwrite`` is false."""

    @abc.abstractmethod
    def delete(self, user_id: str) -> None:
        """Remove the key of ``user_id``; raise `KeyNotFoundError` if there is none."""

    @abc.abstractmethod
    def list_user_ids(self) -> list[str]:
        """The user ids with a key in this store, sorted."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# --- OS keyring -------------------------------------------------------------------------


def _seed_text(key: SigningKey) -> str:
    return base64.b64encode(bytes(key)).decode("ascii")


class KeyringStore(KeyStore):
    """Keys in the OS keyring: service ``bucket-chat``, username = user id, secret =
    base64 of the 32-byte seed.

    The keyring cannot list its entries, so user ids and public keys (public data only)
    are also recorded in ``config_dir()/identities.json`` for `list_user_ids`.
    """

    kind = "keyring"

    def __init__(
        self, backend: KeyringBackend | None = None, *, index_path: Path | None = None
    ) -> None:
        chosen, reason = select_keyring_backend(backend)
        if chosen is None:
            raise KeyStoreUnavailableError(f"The OS keyring cannot be used here: {reason}.")
        self.backend = chosen
        self.name = f"OS keyring ({chosen.name})"
        self.index = PublicIndex(index_path or config_dir() / INDEX_FILE_NAME, self.kind)

    @classmethod
    def usable(cls, backend: KeyringBackend | None = None) -> tuple[bool, str]:
        """``(True, backend name)`` if the keyring answers, else ``(False, reason)``.

        Asks the backend for a probe entry that is never written, so a locked keyring,
        a dismissed prompt or a missing D-Bus session shows up here rather than when a
        key is saved. On a desktop whose keyring is locked this may show the system's
        unlock prompt and wait for the user.
        """
        return probe(backend)

    def _failed(self, action: str, exc: Exception) -> KeyStoreUnavailableError:
        text = failure(self.backend, action, exc)
        return KeyStoreUnavailableError(text[:1].upper() + text[1:] + ".")

    def _get(self, user_id: str) -> str | None:
        try:
            return self.backend.get_password(KEYRING_SERVICE, user_id)
        except Exception as exc:
            raise self._failed(f"read the key of {user_id}", exc) from exc

    def load(self, user_id: str) -> SigningKey | None:
        check_user_id(user_id)
        secret = self._get(user_id)
        if secret is None:
            return None
        try:
            seed = base64.b64decode(secret.encode("ascii"), validate=True)
        except (ValueError, binascii.Error):
            seed = b""
        if len(seed) != 32:
            raise StoredKeyCorruptError(
                f"The {self.name} entry for {user_id} (service {KEYRING_SERVICE!r}) is not "
                "a Bucket Chat signing key."
            )
        return SigningKey(seed)

    def save(self, user_id: str, key: SigningKey, *, overwrite: bool = False) -> None:
        check_user_id(user_id)
        identity = Identity(user_id, key)
        if not overwrite and self._get(user_id) is not None:
            raise KeyExistsError(f"The {self.name} already holds a key for {user_id}.")
        secret = _seed_text(key)
        try:
            self.backend.set_password(KEYRING_SERVICE, user_id, secret)
        except Exception as exc:
            raise self._failed(f"store the key of {user_id}", exc) from exc
        if self._get(user_id) != secret:
            raise KeyStoreUnavailableError(
                f"The {self.name} did not keep the key of {user_id} (it reads back different)."
            )
        self.index.add(user_id, identity.public_key_b64)
        log.info(
            "stored the key of %s (%s) in the %s", user_id, identity.short_fingerprint, self.name
        )

    def delete(self, user_id: str) -> None:
        check_user_id(user_id)
        if self._get(user_id) is None:
            self.index.remove(user_id)
            raise KeyNotFoundError(f"The {self.name} holds no key for {user_id}.")
        try:
            self.backend.delete_password(KEYRING_SERVICE, user_id)
        except Exception as exc:
            raise self._failed(f"delete the key of {user_id}", exc) from exc
        self.index.remove(user_id)
        log.info("deleted the key of %s from the %s", user_id, self.name)

    def list_user_ids(self) -> list[str]:
        """User ids recorded in the public index (keys stored by this program)."""
        return sorted(self.index.read())


# --- encrypted key files ------------------------------------------------------------------

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def key_file_name(user_id: str) -> str:
    """``<sanitised user id>-<8 hex of sha256(user id)>.key``: readable, unique, and a
    plain file name whatever the user id contains."""
    check_user_id(user_id)
    readable = _UNSAFE_FILE_CHARS.sub("_", user_id)[:64]
    tag = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:8]
    return f"{readable}-{tag}{EncryptedFileStore.SUFFIX}"


class EncryptedFileStore(KeyStore):
    """One encrypted file per user id in ``directory`` (format ``bucket-chat-key-v1``,
    Argon2id + XSalsa20-Poly1305, see `keyfile`).

    ``passphrase_provider(user_id, creating)`` is asked for the passphrase each time a
    key is loaded or saved, and only after the file has been found and checked.
    """

    kind = "file"
    SUFFIX: ClassVar[str] = ".key"

    def __init__(
        self,
        directory: Path | str,
        passphrase_provider: PassphraseProvider | None = None,
        *,
        opslimit: int = DEFAULT_OPSLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT,
    ) -> None:
        self.directory = Path(directory)
        self.passphrase_provider: PassphraseProvider = (
            passphrase_provider if passphrase_provider is not None else DefaultPassphraseProvider()
        )
        self.opslimit = opslimit
        self.memlimit = memlimit
        self.name = f"encrypted key file in {self.directory} (Argon2id + XSalsa20-Poly1305)"

    def path_for(self, user_id: str) -> Path:
        """The key file of ``user_id``; always directly inside ``directory``."""
        return self.directory / key_file_name(user_id)

    def load(self, user_id: str) -> SigningKey | None:
        path = self.path_for(user_id)
        try:
            data = read_regular_file(path, MAX_KEY_FILE_BYTES)
        except FileNotFoundError:
            return None
        except SpecialFileError as exc:  # a FIFO there would block the app's start for good
            raise KeyFileCorruptError(
                f"The key file {path} is not a regular file ({exc.kind}); it was not read. "
                "Remove it, or put the key file itself there."
            ) from exc
        except FileTooLargeError as exc:
            raise KeyFileCorruptError(
                f"The key file {path} is too large to be a key file (more than "
                f"{MAX_KEY_FILE_BYTES:,} bytes); it was not read."
            ) from exc
        except OSError as exc:
            raise KeyStoreUnavailableError(f"Cannot read the key file {path}: {exc}") from exc
        header = read_header(data, source=str(path))
        if header.user_id != user_id:
            raise KeyFileCorruptError(
                f"{path} holds the key of {header.user_id!r}, not of {user_id!r}."
            )
        passphrase = self.passphrase_provider(user_id, False)
        return decrypt_key(data, passphrase, source=str(path)).signing_key

    def save(self, user_id: str, key: SigningKey, *, overwrite: bool = False) -> None:
        path = self.path_for(user_id)
        identity = Identity(user_id, key)
        if not overwrite and path.exists():
            raise KeyExistsError(f"A key file for {user_id} already exists: {path}")
        passphrase = self.passphrase_provider(user_id, True)
        data = encrypt_key(identity, passphrase, opslimit=self.opslimit, memlimit=self.memlimit)
        try:
            ensure_private_dir(self.directory)
        except OSError as exc:
            raise KeyStoreUnavailableError(
                f"Cannot create the key folder {self.directory}: {exc}"
            ) from exc
        try:
            write_atomic(path, data, overwrite=overwrite)
        except FileExistsError:
            raise KeyExistsError(f"A key file for {user_id} already exists: {path}") from None
        except OSError as exc:
            raise KeyStoreUnavailableError(f"Cannot write the key file {path}: {exc}") from exc
        log.info("stored the key of %s (%s) in %s", user_id, identity.short_fingerprint, path)

    def delete(self, user_id: str) -> None:
        path = self.path_for(user_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise KeyNotFoundError(f"There is no key file for {user_id} ({path}).") from None
        except OSError as exc:
            raise KeyStoreUnavailableError(f"Cannot delete the key file {path}: {exc}") from exc
        log.info("deleted the key file of %s (%s)", user_id, path)

    def list_user_ids(self) -> list[str]:
        """User ids of the valid key files in ``directory`` (read without a passphrase)."""
        user_ids = []
        try:
            paths = sorted(self.directory.glob(f"*{self.SUFFIX}"))
        except OSError:
            return []
        for path in paths:
            try:
                # Never blocks on a FIFO, never reads a device or a huge file (OSError).
                header = read_header(read_regular_file(path, MAX_KEY_FILE_BYTES), source=str(path))
            except (OSError, KeysError) as exc:
                log.warning("skipping unreadable key file %s: %s", path, exc)
                continue
            if key_file_name(header.user_id) != path.name:
                log.warning("skipping %s: it holds the key of %r", path, header.user_id)
                continue
            user_ids.append(header.user_id)
        return sorted(user_ids)


# --- choosing a store and using it --------------------------------------------------------


def default_key_dir() -> Path:
    """Where encrypted key files go by default: ``data_dir()/keys``."""
    return data_dir() / "keys"


def open_key_store(
    preference: str | None = None,
    *,
    key_dir: Path | None = None,
    passphrase_provider: PassphraseProvider | None = None,
    user_id: str | None = None,
) -> KeyStore:
    """The key store to use: ``preference`` or ``$BUCKET_CHAT_KEY_STORE`` or ``auto``.

    ``auto`` uses the OS keyring if `KeyringStore.usable` says so, else encrypted files in
    ``key_dir`` (default ``data_dir()/keys``). ``keyring`` raises
    `KeyStoreUnavailableError` with the reason when the keyring cannot be used. ``file``
    always uses the files. ``passphrase_provider`` defaults to
    `DefaultPassphraseProvider` (env var, then terminal).

    With ``user_id`` in ``auto`` mode, a key file that already exists for that user wins
    over the keyring (a key made over SSH stays the identity in the desktop session), so
    ``auto`` never quietly makes a second identity for one user on one device.
    """
    source = "the key store choice"
    if preference is None:
        preference = os.environ.get(KEY_STORE_ENV) or "auto"
        source = KEY_STORE_ENV
    choice = preference.strip().lower()
    if choice not in KEY_STORE_CHOICES:
        raise InvalidKeyStoreChoiceError(
            f"{source} must be one of {', '.join(KEY_STORE_CHOICES)} (got {preference!r})."
        )
    directory = key_dir if key_dir is not None else default_key_dir()
    if choice == "file":
        store: KeyStore = EncryptedFileStore(
            directory, passphrase_provider or DefaultPassphraseProvider()
        )
        store.selection_reason = (
            f"{KEY_STORE_ENV}=file" if source == KEY_STORE_ENV else "key files were asked for"
        )
        log.info("key store: %s (%s)", store.name, store.selection_reason)
        return store
    if choice == "auto" and user_id is not None:
        files = EncryptedFileStore(directory, passphrase_provider or DefaultPassphraseProvider())
        if files.path_for(user_id).exists():
            files.selection_reason = f"a key file for {user_id} already exists on this device"
            log.info("key store: %s (%s)", files.name, files.selection_reason)
            return files
    usable, reason = KeyringStore.usable()
    if usable:
        store = KeyringStore()
        store.selection_reason = f"the OS keyring ({reason}) is usable"
        log.info("key store: %s", store.name)
        return store
    if choice == "keyring":
        raise KeyStoreUnavailableError(f"The OS keyring cannot be used here: {reason}.")
    store = EncryptedFileStore(directory, passphrase_provider or DefaultPassphraseProvider(reason))
    store.selection_reason = f"no OS keyring is usable ({reason}), so keys go to encrypted files"
    log.info("key store: %s (%s)", store.name, store.selection_reason)
    return store


def load_or_create_identity(
    store: KeyStore, user_id: str, *, create: bool
) -> tuple[Identity, bool]:
    """``(identity, created)``: the stored key of ``user_id``, or a new one if ``create``.

    Without ``create`` a missing key raises `KeyNotFoundError`. A new key is saved
    without overwriting: if another process stored one first, that one is returned.
    """
    check_user_id(user_id)
    key = store.load(user_id)
    if key is not None:
        return Identity(user_id, key), False
    if not create:
        raise KeyNotFoundError(f"There is no signing key for {user_id} in the {store.name}.")
    identity = Identity(user_id, SigningKey.generate())
    try:
        store.save(user_id, identity.signing_key)
    except KeyExistsError:
        key = store.load(user_id)
        if key is None:
            raise
        return Identity(user_id, key), False
    log.info(
        "created a signing key for %s (fingerprint %s) in the %s",
        user_id,
        identity.display_fingerprint,
        store.name,
    )
    return identity, True


def export_backup(
    identity: Identity,
    passphrase: str,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> bytes:
    """The identity encrypted under ``passphrase``, in the key-file format (JSON bytes)."""
    return encrypt_key(identity, passphrase, opslimit=opslimit, memlimit=memlimit)


def read_backup(path: Path) -> bytes:
    """The bytes of the key backup file at ``path`` (one a user picked, perhaps one someone
    sent them): a link to it is followed, but a FIFO, a device or a folder is refused
    without blocking or reading, and so is a file over `MAX_KEY_FILE_BYTES`. Raises
    `KeysError` with a message for the user."""
    try:
        return read_regular_file(path, MAX_KEY_FILE_BYTES)
    except SpecialFileError as exc:
        raise KeyFileCorruptError(
            f"{path} is not a regular file ({exc.kind}), so it cannot be a key backup; "
            "it was not read. Choose the backup file itself."
        ) from exc
    except FileTooLargeError as exc:
        raise KeyFileCorruptError(
            f"{path} is too large to be a key backup (more than {MAX_KEY_FILE_BYTES:,} "
            "bytes; a backup is under 1 KB); it was not read."
        ) from exc
    except OSError as exc:
        raise KeysError(f"Cannot read {path}: {exc.strerror or exc}") from exc


def import_backup(data: bytes, passphrase: str) -> Identity:
    """Open a backup made by `export_backup` (or a key file); errors name "the backup"."""
    return decrypt_key(data, passphrase, source="the backup")


__all__ = [
    "KEYRING_SERVICE",
    "KEY_STORE_ENV",
    "EncryptedFileStore",
    "KeyStore",
    "KeyringStore",
    "default_key_dir",
    "export_backup",
    "import_backup",
    "key_file_name",
    "load_or_create_identity",
    "open_key_store",
    "read_backup",
    "select_keyring_backend",
]
