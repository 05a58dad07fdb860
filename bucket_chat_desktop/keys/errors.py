"""Errors of the keys package.

Every message is meant to be shown to the user as it is: it names the user id, the file
or the store involved and, where there is one, what to do about it. No message ever
contains key material or a passphrase.
"""

from __future__ import annotations


class KeysError(Exception):
    """Base of every error raised by ``bucket_chat_desktop.keys``."""


class InvalidUserIdError(KeysError, ValueError):
    """A user id that cannot be used (empty, too long, control characters, slashes...)."""


class KeyExistsError(KeysError):
    """A key is already stored for this user id and ``overwrite`` was not given."""


class KeyNotFoundError(KeysError):
    """No key is stored for this user id."""


class StoredKeyCorruptError(KeysError):
    """A stored key could be read but is not a valid key."""


class KeyFileCorruptError(StoredKeyCorruptError):
    """An encrypted key file (or backup) is truncated, garbled or of an unknown format."""


class WrongPassphraseError(KeysError):
    """The passphrase does not open the encrypted key."""


class PassphraseUnavailableError(KeysError):
    """A passphrase is needed but none can be obtained (no env var, no terminal)."""


class PassphraseRejectedError(KeysError):
    """The passphrase given is not acceptable (empty, or the two entries differ)."""


class KeyStoreUnavailableError(KeysError):
    """The requested key store cannot be used here, or it failed while being used."""


class InvalidKeyStoreChoiceError(KeysError, ValueError):
    """``BUCKET_CHAT_KEY_STORE`` (or the preference passed in) names no known store."""
