"""Ed25519 signing and checking of events and room metadata (PyNaCl)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .canonical import b64decode_exact, b64encode, canonical_bytes
from .event import Event, Malformed, parse_event
from .ids import check_room_id, make_event_id


def public_key_text(signing_key: SigningKey) -> str:
    return b64encode(bytes(signing_key.verify_key))


def sign_mapping(unsigned: Mapping[str, Any], signing_key: SigningKey) -> dict[str, Any]:
    """Return a copy of ``unsigned`` with ``signature`` over its canonical bytes."""
    body = {k: v for k, v in unsigned.items() if k != "signature"}
    signature = signing_key.sign(canonical_bytes(body)).signature
    body["signature"] = b64encode(signature)
    return body


def build_event(
    *,
    room_id: str,
    sender_id: str,
    event_type: str,
    content: Mapping[str, Any],
    timestamp_ms: int,
    unique: str,
    prev_event_hash: str | None,
    signing_key: SigningKey,
    parent_event_id: str | None = None,
) -> Event:
    """Build and sign an event. ``unique`` is a fresh uuid4 text, passed in by the caller."""
    check_room_id(room_id)
    unsigned: dict[str, Any] = {
        "event_id": make_event_id(room_id, timestamp_ms, unique),
        "room_id": room_id,
        "timestamp_ms": timestamp_ms,
        "sender_id": sender_id,
        "type": event_type,
        "parent_event_id": parent_event_id,
        "prev_event_hash": prev_event_hash,
        "sender_key": public_key_text(signing_key),
        "content": dict(content),
    }
    parsed = parse_event(sign_mapping(unsigned, signing_key), room_id)
    if isinstance(parsed, Malformed):  # our own output must satisfy our own reader
        raise ValueError(f"refusing to write an invalid event: {parsed.reason}")
    return parsed


class SignatureChecker:
    """Checks event signatures, caching one ``VerifyKey`` per sender key text."""

    def __init__(self) -> None:
        self._keys: dict[str, VerifyKey | None] = {}

    def _key(self, text: str) -> VerifyKey | None:
        try:
            return self._keys[text]
        except KeyError:
            raw = b64decode_exact(text, 32)
            key = None
            if raw is not None:
                try:
                    key = VerifyKey(raw)
                except Exception:  # an invalid point is just an unusable key
                    key = None
            self._keys[text] = key
            return key

    def check(self, event: Event) -> tuple[bool | None, str]:
        """(True, why) good signature; (False, why) bad; (None, why) nothing to check."""
        if event.sender_key is None:
            return None, "no sender_key: the signature cannot be checked"
        return self.check_bytes(event.sender_key, event.canonical, event.signature)

    def check_bytes(self, key_text: str, message: bytes, signature_text: str) -> tuple[bool, str]:
        key = self._key(key_text)
        if key is None:
            return False, "sender_key is not a valid Ed25519 public key"
        signature = b64decode_exact(signature_text, 64)
        if signature is None:
            return False, "signature is not base64 of 64 bytes"
        try:
            key.verify(message, signature)
        except BadSignatureError:
            return False, "Ed25519 signature does not match the event's canonical bytes"
        return True, "Ed25519 signature good"
