"""Where this device's key goes and how it is made or imported: the identity step's logic,
with no widgets (the page hands over what was typed as a `KeyForm`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ... import keyring_policy
from ...keyring_policy import in_daemon_thread
from ...keys import (
    KEY_STORE_ENV,
    EncryptedFileStore,
    Identity,
    KeyExistsError,
    KeysError,
    KeyStore,
    default_key_dir,
    import_backup,
    key_file_name,
    load_or_create_identity,
    open_key_store,
    read_backup,
)
from ...keys.passphrase import claim_env_passphrase
from ..keyring_wait import SHOW_AFTER, answered_within

T = TypeVar("T")


def key_file_exists(user_id: str) -> bool:
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


def uses_file_store(user_id: str, default_is_file: bool) -> bool:
    """True when the key goes to (or comes from) an encrypted key file, which needs a
    passphrase: the default store is a file, or a key file for ``user_id`` already exists."""
    return default_is_file or (bool(user_id) and key_file_exists(user_id))


@dataclass(frozen=True, slots=True)
class KeyForm:
    """What the identity page holds, as plain values (`IdentityPage.key_form`)."""

    user_id: str
    importing: bool = False
    passphrase: str = ""
    repeat: str = ""
    backup_path: str = ""
    backup_passphrase: str = ""
    default_is_file: bool = False  # the store chosen without a user id is a key file


def passphrases(form: KeyForm, user_id: str, env: str) -> tuple[str, str]:
    """(passphrase for an existing key file, passphrase for a new one) for ``user_id``
    (the form's, or the one inside an imported backup); ``env`` is the passphrase given
    in the environment, which wins. Raises KeysError when the fields are not filled in right."""
    if env:
        return env, env
    if not uses_file_store(user_id, form.default_is_file):
        return "", ""
    first, second = form.passphrase, form.repeat
    if user_id and key_file_exists(user_id) and not form.importing:
        if not first:
            raise KeysError("Enter the passphrase of the key already on this device.")
        return first, first
    if form.importing and not first:
        return form.backup_passphrase, form.backup_passphrase
    if not first:
        raise KeysError("Choose a passphrase to protect your key file.")
    if first != second:
        raise KeysError("The two passphrases differ.")
    return first, first


class KeyringNoAnswer(Exception):
    """The system keyring did not answer the key step within `KEYRING_DEADLINE` seconds.

    The call goes on (``future``, on a daemon thread): the next attempt for ``user_id``
    waits for that same call, so a key is never made twice."""

    def __init__(self, user_id: str, waited: float, future: concurrent.futures.Future[Any]) -> None:
        super().__init__(f"the system keyring has not answered for {waited:.0f} s")
        self.user_id = user_id
        self.waited = waited
        self.future = future


@dataclass(slots=True)
class _Call:
    """A keyring call of the key step, still running or not yet taken."""

    request: tuple[str, ...]
    future: concurrent.futures.Future[Any]
    started: float


class KeySetup:
    """Makes or imports this device's key; ``store`` is where it was kept (after a call).

    The calls that may ask the OS keyring (choosing the store probes it; a keyring store
    reads and writes the key there) run on a daemon thread of their own
    (`keyring_policy.in_daemon_thread`): one stuck in the keyring never freezes the wizard
    nor keeps the app from exiting. After `SHOW_AFTER` seconds ``on_waiting`` is called;
    after `KEYRING_DEADLINE` seconds `KeyringNoAnswer` is raised and the call goes on. One
    call per user id at a time: a retry waits for the call already made."""

    def __init__(self) -> None:
        self.store: KeyStore | None = None
        self.on_waiting: Callable[[], None] | None = None
        self._pending: dict[str, _Call] = {}
        # the passphrases last typed for each user id: a call that waited for the keyring
        # and then opens a key file uses what is typed now, not what was typed before
        self._typed: dict[str, tuple[str, str]] = {}

    def where(self) -> str:
        return describe_store(self.store) if self.store is not None else "the key store"

    def _open_store(self, user_id: str) -> KeyStore:
        def provider(_user: str, creating: bool) -> str:
            unlock, new = self._typed.get(user_id, ("", ""))
            value = new if creating else unlock
            if not value:
                raise KeysError("no passphrase was entered")
            return value

        return open_key_store(user_id=user_id or None, passphrase_provider=provider)

    async def _in_keyring(self, user_id: str, request: tuple[str, ...], call: Callable[[], T]) -> T:
        """``call``'s result, run on a daemon thread; a call of this user id still running
        (a keyring that did not answer) is waited for first, and taken if it is this
        ``request``. Raises `KeyringNoAnswer` past the deadline."""
        while True:
            pending = self._pending.get(user_id)
            if pending is None:
                future = in_daemon_thread(call, name="bc-wizard-key")
                pending = _Call(request, future, time.monotonic())
                self._pending[user_id] = pending
            began = time.monotonic()
            if not await answered_within(pending.future, SHOW_AFTER):
                if self.on_waiting is not None:
                    self.on_waiting()
                left = keyring_policy.KEYRING_DEADLINE - (time.monotonic() - began)
                if not await answered_within(pending.future, left):
                    raise KeyringNoAnswer(
                        user_id, time.monotonic() - pending.started, pending.future
                    )
            if self._pending.get(user_id) is pending:
                del self._pending[user_id]
            if pending.request == request:
                result: T = pending.future.result()
                return result
            # an earlier call of another kind for this user id has ended: now this one

    async def create(self, form: KeyForm) -> tuple[Identity, str]:
        """The key of ``form.user_id`` on this device, made if there is none: (identity,
        a sentence saying which)."""
        user_id = form.user_id
        self._typed[user_id] = passphrases(form, user_id, claim_env_passphrase() or "")

        def in_keyring() -> tuple[KeyStore, tuple[Identity, bool] | None]:
            store = self._open_store(user_id)
            if store.kind == "file":  # unlocked or made below (Argon2id: it ends)
                return store, None
            return store, load_or_create_identity(store, user_id, create=True)

        store, made = await self._in_keyring(user_id, ("create",), in_keyring)
        self.store = store
        if made is None:
            made = await asyncio.to_thread(load_or_create_identity, store, user_id, create=True)
        identity, created = made
        if created:
            return identity, "A new key was created for this device."
        return identity, "This device already had a key for this user id: it is used."

    async def import_key(self, form: KeyForm) -> tuple[Identity, str]:
        """The key inside the backup file ``form.backup_path``, saved to this device's key
        store: (identity, a sentence saying what happened)."""
        path_text = form.backup_path.strip()
        if not path_text:
            raise KeysError("Choose the backup file to import.")
        backup_pass = form.backup_passphrase
        if not backup_pass:
            raise KeysError("Enter the backup's passphrase.")
        path = Path(path_text).expanduser()
        # Someone may have sent a "backup" that is a FIFO (reading it would wait forever,
        # the wizard busy with no way out), /dev/zero or a huge file: refused unread.
        data = await asyncio.to_thread(read_backup, path)
        identity = await asyncio.to_thread(import_backup, data, backup_pass)
        if form.user_id and identity.user_id != form.user_id:
            raise KeysError(
                f"This backup holds the key of {identity.user_id}, not of {form.user_id}: "
                "clear the user id field or correct it."
            )
        user_id = identity.user_id
        unlock, new = passphrases(form, user_id, claim_env_passphrase() or "")
        self._typed[user_id] = (unlock or backup_pass, new)

        def save(store: KeyStore) -> str:
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

        def in_keyring() -> tuple[KeyStore, str | None]:
            store = self._open_store(user_id)
            if store.kind == "file":  # saved below (Argon2id: it ends)
                return store, None
            return store, save(store)

        request = ("import", identity.public_key_b64)
        store, how = await self._in_keyring(user_id, request, in_keyring)
        self.store = store
        if how is None:
            how = await asyncio.to_thread(save, store)
        return identity, how
