"""Where this device's key goes and how it is made or imported: the identity step's logic,
with no widgets (the page hands over what was typed as a `KeyForm`).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

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


class KeySetup:
    """Makes or imports this device's key; ``store`` is where it was kept (after a call)."""

    def __init__(self) -> None:
        self.store: KeyStore | None = None

    def where(self) -> str:
        return describe_store(self.store) if self.store is not None else "the key store"

    def _open_store(self, user_id: str, unlock: str, new: str) -> KeyStore:
        def provider(_user: str, creating: bool) -> str:
            value = new if creating else unlock
            if not value:
                raise KeysError("no passphrase was entered")
            return value

        store = open_key_store(user_id=user_id or None, passphrase_provider=provider)
        self.store = store
        return store

    async def create(self, form: KeyForm) -> tuple[Identity, str]:
        """The key of ``form.user_id`` on this device, made if there is none: (identity,
        a sentence saying which)."""
        user_id = form.user_id
        unlock, new = passphrases(form, user_id, claim_env_passphrase() or "")
        store = await asyncio.to_thread(self._open_store, user_id, unlock, new)
        identity, created = await asyncio.to_thread(
            load_or_create_identity, store, user_id, create=True
        )
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
        store = await asyncio.to_thread(self._open_store, user_id, unlock or backup_pass, new)

        def save() -> str:
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

        how = await asyncio.to_thread(save)
        return identity, how
