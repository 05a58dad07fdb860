"""Identities and their signing keys: one Ed25519 key per user per device.

Keys live in the OS keyring when one is usable, else in files encrypted under a
passphrase (`open_key_store` decides and says which). Private key material never
touches the disk in plain text. Every error is a `KeysError` with a message fit for the
user.
"""

from .errors import (
    InvalidKeyStoreChoiceError,
    InvalidUserIdError,
    KeyExistsError,
    KeyFileCorruptError,
    KeyNotFoundError,
    KeysError,
    KeyStoreUnavailableError,
    PassphraseRejectedError,
    PassphraseUnavailableError,
    StoredKeyCorruptError,
    WrongPassphraseError,
)
from .identity import Identity, check_user_id, display_fingerprint, fingerprint_of
from .passphrase import PASSPHRASE_ENV, DefaultPassphraseProvider, PassphraseProvider
from .store import (
    KEY_STORE_ENV,
    KEYRING_SERVICE,
    EncryptedFileStore,
    KeyringStore,
    KeyStore,
    default_key_dir,
    export_backup,
    import_backup,
    key_file_name,
    load_or_create_identity,
    open_key_store,
    read_backup,
    select_keyring_backend,
)

__all__ = [
    "KEYRING_SERVICE",
    "KEY_STORE_ENV",
    "PASSPHRASE_ENV",
    "DefaultPassphraseProvider",
    "EncryptedFileStore",
    "Identity",
    "InvalidKeyStoreChoiceError",
    "InvalidUserIdError",
    "KeyExistsError",
    "KeyFileCorruptError",
    "KeyNotFoundError",
    "KeyStore",
    "KeyStoreUnavailableError",
    "KeyringStore",
    "KeysError",
    "PassphraseProvider",
    "PassphraseRejectedError",
    "PassphraseUnavailableError",
    "StoredKeyCorruptError",
    "WrongPassphraseError",
    "check_user_id",
    "default_key_dir",
    "display_fingerprint",
    "export_backup",
    "fingerprint_of",
    "import_backup",
    "key_file_name",
    "load_or_create_identity",
    "open_key_store",
    "read_backup",
    "select_keyring_backend",
]
