"""The encrypted key format ``bucket-chat-key-v1``, used by key files and backups.

A UTF-8 JSON object::

    {"format": "bucket-chat-key-v1", "user_id": "...", "public_key": "<b64 32 bytes>",
     "kdf": "argon2id", "opslimit": 2, "memlimit": 67108864,
     "salt": "<b64 16 bytes>", "box": "<b64 nacl.secret.SecretBox output>"}

The box holds the 32-byte Ed25519 seed, encrypted with XSalsa20-Poly1305 under a key
derived from the passphrase with Argon2id and the given limits. The limits are stored so
that they can be raised later without breaking old files. The user id and public key
are public and let a program list and show keys without the passphrase.

Everything read here is untrusted: any defect becomes `KeyFileCorruptError` or
`WrongPassphraseError`, never a raw JSON, base64 or nacl exception. That includes what
Python's JSON parser refuses with other errors than its own (a number of thousands of
digits: ``ValueError``; arrays nested a hundred thousand deep: ``RecursionError``), and
anything over `MAX_KEY_FILE_BYTES`, refused before it is parsed.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.utils
from nacl.pwhash import argon2id
from nacl.secret import SecretBox
from nacl.signing import SigningKey

from .errors import (
    InvalidUserIdError,
    KeyFileCorruptError,
    PassphraseRejectedError,
    WrongPassphraseError,
)
from .identity import Identity, check_user_id

FORMAT = "bucket-chat-key-v1"
KDF = "argon2id"
SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
BOX_SIZE = SecretBox.NONCE_SIZE + SecretBox.MACBYTES + SEED_SIZE

DEFAULT_OPSLIMIT: int = argon2id.OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT: int = argon2id.MEMLIMIT_INTERACTIVE
# Files come from disk or from a backup someone hands us: cap the work they can demand.
MAX_OPSLIMIT: int = argon2id.OPSLIMIT_SENSITIVE
MAX_MEMLIMIT: int = argon2id.MEMLIMIT_SENSITIVE

MAX_KEY_FILE_BYTES = 64 * 1024
"""The most a key file or backup may hold: one is about 400 bytes."""

_LIMITS_TEXT = (
    f"opslimit {argon2id.OPSLIMIT_MIN}..{MAX_OPSLIMIT}, "
    f"memlimit {argon2id.MEMLIMIT_MIN}..{MAX_MEMLIMIT} bytes"
)
_FIELDS = ("format", "user_id", "public_key", "kdf", "opslimit", "memlimit", "salt", "box")


@dataclass(frozen=True)
class KeyFileHeader:
    """The public part of an encrypted key: readable without the passphrase."""

    user_id: str
    public_key: bytes
    opslimit: int
    memlimit: int
    salt: bytes
    box: bytes


def _passphrase_bytes(passphrase: str) -> bytes:
    if not isinstance(passphrase, str) or not passphrase:
        raise PassphraseRejectedError("the passphrase must not be empty")
    # The same passphrase typed on another system may arrive in another Unicode form.
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _derive_key(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    key: bytes = argon2id.kdf(
        SecretBox.KEY_SIZE,
        _passphrase_bytes(passphrase),
        salt,
        opslimit=opslimit,
        memlimit=memlimit,
    )
    return key


def encrypt_key(
    identity: Identity,
    passphrase: str,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> bytes:
    """Encrypt ``identity``'s seed under ``passphrase``; return the JSON file content."""
    if not _limits_ok(opslimit, memlimit):
        raise ValueError(f"Argon2id limits out of range: {_LIMITS_TEXT}")
    salt = nacl.utils.random(argon2id.SALTBYTES)
    box = SecretBox(_derive_key(passphrase, salt, opslimit, memlimit))
    sealed = bytes(box.encrypt(bytes(identity.signing_key)))
    document = {
        "format": FORMAT,
        "user_id": identity.user_id,
        "public_key": identity.public_key_b64,
        "kdf": KDF,
        "opslimit": opslimit,
        "memlimit": memlimit,
        "salt": base64.b64encode(salt).decode("ascii"),
        "box": base64.b64encode(sealed).decode("ascii"),
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def read_header(data: bytes, *, source: str) -> KeyFileHeader:
    """Parse and check everything but the secret; ``source`` names the data in messages."""

    def corrupt(why: str) -> KeyFileCorruptError:
        return KeyFileCorruptError(f"{source} is not a valid Bucket Chat key file: {why}")

    if len(data) > MAX_KEY_FILE_BYTES:
        raise corrupt(
            f"it holds {len(data):,} bytes, and a key file never holds more than "
            f"{MAX_KEY_FILE_BYTES:,}"
        )
    try:
        document: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise corrupt(f"it is not JSON ({exc}); the file may be truncated or damaged") from None
    except ValueError:  # Python's words ("use sys.set_int_max_str_digits()") are no help
        raise corrupt("it holds a number too long to be read") from None
    except RecursionError:
        raise corrupt("it is nested too deeply to be JSON this program reads") from None
    if not isinstance(document, dict):
        raise corrupt("it is not a JSON object")
    missing = [name for name in _FIELDS if name not in document]
    if missing:
        raise corrupt(f"missing field(s) {', '.join(missing)}")
    if document["format"] != FORMAT:
        raise corrupt(f"unknown format {document['format']!r} (expected {FORMAT!r})")
    if document["kdf"] != KDF:
        raise corrupt(f"unknown kdf {document['kdf']!r} (expected {KDF!r})")
    user_id = document["user_id"]
    try:
        check_user_id(user_id)
    except InvalidUserIdError as exc:
        raise corrupt(f"bad user_id: {exc}") from None
    opslimit, memlimit = document["opslimit"], document["memlimit"]
    if not _limits_ok(opslimit, memlimit):
        raise corrupt(
            f"Argon2id limits opslimit={opslimit!r} memlimit={memlimit!r} are out of range "
            f"({_LIMITS_TEXT})"
        )
    return KeyFileHeader(
        user_id=user_id,
        public_key=_b64_field(document, "public_key", PUBLIC_KEY_SIZE, corrupt),
        opslimit=opslimit,
        memlimit=memlimit,
        salt=_b64_field(document, "salt", argon2id.SALTBYTES, corrupt),
        box=_b64_field(document, "box", BOX_SIZE, corrupt),
    )


def decrypt_key(data: bytes, passphrase: str, *, source: str) -> Identity:
    """Open an encrypted key; ``source`` names the file or backup in error messages."""
    header = read_header(data, source=source)
    box = SecretBox(_derive_key(passphrase, header.salt, header.opslimit, header.memlimit))
    try:
        seed = box.decrypt(header.box)
    except nacl.exceptions.CryptoError:
        raise WrongPassphraseError(
            f"Wrong passphrase for the key of {header.user_id} in {source} "
            "(or the encrypted part of the file was altered)."
        ) from None
    if len(seed) != SEED_SIZE:
        raise KeyFileCorruptError(f"{source} holds a secret of the wrong size")
    identity = Identity(header.user_id, SigningKey(seed))
    if identity.public_key != header.public_key:
        raise KeyFileCorruptError(
            f"{source}: the public key recorded in the file does not match its secret key"
        )
    return identity


def _limits_ok(opslimit: object, memlimit: object) -> bool:
    return (
        type(opslimit) is int
        and type(memlimit) is int
        and argon2id.OPSLIMIT_MIN <= opslimit <= MAX_OPSLIMIT
        and argon2id.MEMLIMIT_MIN <= memlimit <= MAX_MEMLIMIT
    )


def _b64_field(
    document: dict[str, Any], name: str, size: int, corrupt: Callable[[str], Exception]
) -> bytes:
    value = document[name]
    try:
        if not isinstance(value, str):
            raise ValueError("not text")
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, binascii.Error):
        raise corrupt(f"field {name} is not standard base64") from None
    if len(raw) != size:
        raise corrupt(f"field {name} holds {len(raw)} bytes instead of {size}")
    return raw
