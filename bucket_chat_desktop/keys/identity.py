"""A user's identity on this device: a user id and its Ed25519 signing key."""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from dataclasses import dataclass, field

from nacl.signing import SigningKey, VerifyKey

from ..protocol.ids import client_id_for, key_tag
from .errors import InvalidUserIdError

MAX_USER_ID_LENGTH = 256

# Characters that reorder or hide text: a user id containing them can look like another.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def check_user_id(user_id: str) -> str:
    """Return ``user_id`` if it may be used as a user id, else raise `InvalidUserIdError`.

    A user id is 1-256 characters without control characters, text-direction overrides,
    line separators, ``/`` or ``\\`` and without leading or trailing white space. It is
    checked before it is used to name a file or a keyring entry.
    """
    if not isinstance(user_id, str):
        raise InvalidUserIdError(f"a user id must be text, not {type(user_id).__name__}")
    if not user_id:
        raise InvalidUserIdError("a user id must not be empty")
    if len(user_id) > MAX_USER_ID_LENGTH:
        raise InvalidUserIdError(
            f"a user id has at most {MAX_USER_ID_LENGTH} characters (this one has {len(user_id)})"
        )
    for char in user_id:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS:
            raise InvalidUserIdError(
                f"user id {user_id!r} contains the control character U+{ord(char):04X}"
            )
        if char in "/\\":
            raise InvalidUserIdError(f"user id {user_id!r} must not contain {char!r}")
    if user_id != user_id.strip():
        raise InvalidUserIdError(f"user id {user_id!r} must not start or end with white space")
    return user_id


def fingerprint_of(public_key: bytes) -> str:
    """SHA-256 of a raw 32-byte Ed25519 public key, as 64 lowercase hex digits."""
    return hashlib.sha256(public_key).hexdigest()


def display_fingerprint(public_key: bytes) -> str:
    """The first 32 hex digits of the fingerprint in groups of 4, for reading aloud."""
    digits = fingerprint_of(public_key)[:32]
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


@dataclass(frozen=True)
class Identity:
    """A user id and the device's signing key for it.

    The signing key is secret: it is left out of ``repr`` so it cannot end up in a log.
    """

    user_id: str
    signing_key: SigningKey = field(repr=False)

    def __post_init__(self) -> None:
        check_user_id(self.user_id)
        if not isinstance(self.signing_key, SigningKey):
            raise TypeError("signing_key must be a nacl.signing.SigningKey")

    @property
    def verify_key(self) -> VerifyKey:
        return self.signing_key.verify_key

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return bytes(self.signing_key.verify_key)

    @property
    def public_key_b64(self) -> str:
        """Standard base64 of the raw public key (the protocol's ``sender_key``)."""
        return base64.b64encode(self.public_key).decode("ascii")

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw public key, 64 hex digits."""
        return fingerprint_of(self.public_key)

    @property
    def short_fingerprint(self) -> str:
        """The first 8 hex digits of `fingerprint` (also the tail of `client_id`)."""
        return key_tag(self.public_key)

    @property
    def display_fingerprint(self) -> str:
        """The first 32 hex digits of `fingerprint` in groups of 4, for people to compare."""
        return display_fingerprint(self.public_key)

    @property
    def client_id(self) -> str:
        """This device's client id: sanitised user part of the user id, ``-``, key tag."""
        return client_id_for(self.user_id, self.public_key)
