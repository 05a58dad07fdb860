"""Ed25519 signing and checking of events and room metadata (PyNaCl)."""

from __future__ import annotations

import json
import weakref
from binascii import b2a_base64
from collections.abc import Mapping
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from typing import Any

from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _sodium
from nacl.signing import SigningKey, VerifyKey

from .canonical import (
    HASH_TEXT,
    b64decode_exact,
    b64encode,
    canonical_bytes,
    canonical_json,
    canonical_text_acyclic,
    signature_bytes,
)
from .event import (
    BYTES_PER_VALUE,
    DEVICE_FIELDS,
    MAX_DEPTH,
    MAX_ID_BYTES,
    MAX_LINE_BYTES,
    MAX_TIMESTAMP_MS,
    MAX_WITNESS_ENTRIES,
    MEMBER,
    MEMBERSHIPS,
    MESSAGE,
    Event,
    allowed_values,
    event_of_parts,
    has_lone_surrogate,
    id_size,
    json_values,
    nine_fields_json,
)
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
    witness: Mapping[str, str] | None = None,
) -> Event:
    """Build and sign an event. ``unique`` is a fresh uuid4 text, passed in by the caller.

    ``witness`` maps other devices' keys to the hash of the newest event of theirs this
    writer has read (PROTOCOL.md section 6.1); it is signed with the event.

    The inputs are checked against the same rules a reader applies (see ``event.py``), so
    we never publish an event another client would reject.

    This is the signing hot path (``benchmarks/protocol_throughput.py``): the canonical
    bytes are computed once, from the checked parts, and give both the hash and the
    signature; the ``Event`` is built from those parts, never by re-parsing. The bytes
    equal ``canonical_json`` of the unsigned event, which the tests prove on every
    vector and on generated valid and hostile inputs.
    """
    if type(room_id) is not str or room_id not in _good_room_ids:
        check_room_id(room_id)
        if type(room_id) is str and len(_good_room_ids) < 256:
            _good_room_ids.add(room_id)
    body = dict(content)
    problem = _write_problem(sender_id, event_type, body, timestamp_ms, prev_event_hash)
    nested = problem is _NESTED
    if problem and not nested:
        raise ValueError(f"refusing to write an invalid event: {problem}")
    event_id = make_event_id(room_id, timestamp_ms, unique)
    if id_size(event_id) > MAX_ID_BYTES or not unique or "::" in unique:
        raise ValueError(
            "refusing to write an invalid event: event_id must have at most "
            f"{MAX_ID_BYTES} bytes and a non-empty unique part without '::'"
        )
    if type(parent_event_id) is str and id_size(parent_event_id) > MAX_ID_BYTES:
        raise ValueError(
            "refusing to write an invalid event: parent_event_id must have at most "
            f"{MAX_ID_BYTES} bytes"
        )
    if witness and len(witness) > MAX_WITNESS_ENTRIES:
        raise ValueError(
            f"refusing to write a witness of more than {MAX_WITNESS_ENTRIES} entries: "
            "readers ignore it whole"
        )
    secret, sender_key = _signer(signing_key)
    unsigned: dict[str, Any] = {
        "event_id": event_id,
        "room_id": room_id,
        "timestamp_ms": timestamp_ms,
        "sender_id": sender_id,
        "type": event_type,
        "parent_event_id": parent_event_id,
        "prev_event_hash": prev_event_hash,
        "sender_key": sender_key,
        "content": body,
    }
    if witness:
        unsigned["witness"] = dict(witness)
    if (
        type(room_id) is str
        and type(sender_id) is str
        and type(event_type) is str
        and (parent_event_id is None or type(parent_event_id) is str)
        and (prev_event_hash is None or type(prev_event_hash) is str)
    ):
        # canonical_json(unsigned), in the reader's own layout. body is acyclic
        # (_write_problem bounded its depth). The room id (checked above), the hash
        # (HASH_TEXT) and the key (base64) hold no character JSON escapes: quoted by hand.
        content_text = canonical_text_acyclic(body)
        text = nine_fields_json(
            content_text,
            _quote(event_id),
            "null" if parent_event_id is None else _quote(parent_event_id),
            "null" if prev_event_hash is None else f'"{prev_event_hash}"',
            f'"{room_id}"',
            _quote(sender_id),
            f'"{sender_key}"',
            int.__repr__(timestamp_ms),
            _quote(event_type),
            "" if not witness else f',"witness":{_canonical_text(unsigned["witness"])}',
        )
        # Only a text holding a surrogate code point can give a lone surrogate below;
        # an ASCII text holds none (isascii reads a flag, it does not scan). The room
        # id, the hash and the key are ASCII.
        surrogate_possible = bool(witness) or not (
            sender_id.isascii()
            and event_type.isascii()
            and event_id.isascii()
            and (parent_event_id is None or parent_event_id.isascii())
            and "\\ud" not in content_text
        )
    else:  # odd argument types: the general encoder says what it makes of them
        text = _canonical_text(unsigned)
        surrogate_possible = True
    if len(text) > MAX_LINE_BYTES - 200:
        raise ValueError("refusing to write an invalid event: it is too large")
    # Readers refuse a line that packs too many values (``too-dense``); the line is this
    # text and the signature's key and value (two more, 103 bytes more): the allowance
    # of the text alone, the stricter. Text-only content and witness of up to 40 entries
    # hold fewer than ``MIN_VALUES`` (nine fields, two values and keys an entry): counted
    # only otherwise (the signing hot path).
    flat = not nested and len(body) + len(witness or ()) <= 40
    if not flat and json_values(unsigned) + 2 > allowed_values(len(text)):
        raise ValueError(
            "refusing to write an invalid event: it packs more than one JSON value per "
            f"{BYTES_PER_VALUE} bytes, which readers reject (too-dense)"
        )
    # Readers reject a lone surrogate (decode_json_line); the same test on the decoded
    # text, paid only by events with a \udXXX escape (emoji are such pairs).
    if surrogate_possible and "\\ud" in text and has_lone_surrogate(json.loads(text)):
        raise ValueError(
            "refusing to write an invalid event: a string holds a lone UTF-16 surrogate "
            "(\\uD800-\\uDFFF), which readers reject"
        )
    canonical = text.encode("ascii")
    # libsodium's crypto_sign itself, as the checker calls crypto_sign_open: PyNaCl's
    # binding (which SigningKey.sign calls) allocates a length output, checks through a
    # Python call and copies the whole signed message out, and SigningKey.sign wraps
    # that in a SignedMessage; together 1-1.5 µs an event. libsodium writes the
    # signature then the message into ``signed`` (and no length: NULL); its first 64
    # bytes are the signature, base64-encoded straight from the buffer. ``secret`` is
    # 64 bytes (``_signer`` makes sure), as libsodium reads.
    size = len(canonical)
    signed = _new(_BYTES, size + 64)
    if _sign(signed, _NULL, canonical, size, secret) != 0:
        raise RuntimeError("libsodium could not sign the event")
    signature = b2a_base64(_buffer(signed, 64), newline=False).decode("ascii")
    unsigned["signature"] = signature
    event = event_of_parts(
        unsigned,
        canonical,
        event_id,
        room_id,
        timestamp_ms,
        sender_id,
        event_type,
        parent_event_id,
        prev_event_hash,
        signature,
        sender_key,
        body,
    )
    if len(_own_hashes) >= 1024:
        _own_hashes.clear()
    _own_hashes.add(event.hash)
    return event


# The signing keys' libsodium 64-byte secrets (seed and public key) and public key texts,
# made once per key object, not per event; each forgotten when its key object goes (a
# weak reference: the cache never keeps key material alive). By identity (``id``, checked
# through the reference): SigningKey's own ``==`` is a constant-time compare through a C
# call, which cost more than the cache saved. A few keys: a device signs with its own,
# a process with several identities (tests, tools, a benchmark's ten senders taking
# turns) with each in turn, and one remembered key made every change of key pay its
# setup again (about 1.3 µs an event).
_SIGNERS_KEPT = 16
_signers: dict[int, tuple[weakref.ref[SigningKey], bytes, str]] = {}


def _forget_signer(gone: weakref.ref[SigningKey]) -> None:
    # Threads may share the cache: every step is one dict operation, and a key found
    # missing or changed meanwhile only costs its setup again.
    for ident, kept in list(_signers.items()):
        if kept[0] is gone:
            _signers.pop(ident, None)


def _signer(signing_key: SigningKey) -> tuple[bytes, str]:
    kept = _signers.get(id(signing_key))
    if kept is not None and kept[0]() is signing_key:
        return kept[1], kept[2]
    public = bytes(signing_key.verify_key)
    secret, text = bytes(signing_key) + public, _key_text(public)
    if len(secret) != 64:  # libsodium reads 64 bytes of it, whatever it is given
        raise ValueError("a signing key is a 32-byte seed with a 32-byte public key")
    if len(_signers) >= _SIGNERS_KEPT:
        _signers.clear()  # more keys than a process signs with in turn: start again
    _signers[id(signing_key)] = (weakref.ref(signing_key, _forget_signer), secret, text)
    return secret, text


# Most events go to a few rooms: a room id passes the room-id rules once, not per event.
_good_room_ids: set[str] = set()
# The hashes of the events built last: base64 of SHA-256 by construction, and the next
# event of the same chain names one as prev_event_hash. It then needs no pattern match.
# Threads may share both sets: a cleared set only costs the full test again.
_own_hashes: set[str] = set()


@lru_cache(maxsize=64)
def _key_text(public_key: bytes) -> str:
    """A device's public key text, made once: it is in every event the device signs."""
    return b64encode(public_key)


def _canonical_text(value: Any) -> str:
    return canonical_json(value).decode("ascii")


_quote = encode_basestring_ascii  # a JSON string, as canonical_json writes it


_NESTED = " "  # ``_write_problem``: no problem, but the content holds more than texts


def _write_problem(
    sender_id: str, event_type: str, content: dict[str, Any], ts: int, prev: str | None
) -> str | None:
    if not sender_id or not event_type:
        return "sender_id and type must not be empty"
    if id_size(sender_id) > MAX_ID_BYTES or id_size(event_type) > MAX_ID_BYTES:
        return f"sender_id and type have at most {MAX_ID_BYTES} bytes"
    if type(ts) is not int or not 0 <= ts <= MAX_TIMESTAMP_MS:
        return "timestamp_ms must be a non-negative integer"
    if event_type == MESSAGE and not isinstance(content.get("body"), str):
        return "m.room.message content.body must be a string"
    if event_type == MEMBER and content.get("membership") not in MEMBERSHIPS:
        return "m.room.member membership is not valid"
    if event_type == MEMBER and any(
        isinstance(named := content.get(name), str) and id_size(named) > MAX_ID_BYTES
        for name in DEVICE_FIELDS
    ):
        return f"a key named in m.room.member content has at most {MAX_ID_BYTES} bytes"
    if prev is not None and not (
        (prev in _own_hashes or HASH_TEXT.fullmatch(prev))
        if type(prev) is str
        else b64decode_exact(prev, 32)
    ):
        return "prev_event_hash must be base64 of 32 bytes"
    for key, value in content.items():
        if type(key) is not str or type(value) is not str:
            return _content_problem(content, 2) or _NESTED
    return None  # the usual content, text fields only: nothing to walk


def _content_problem(value: Any, depth: int) -> str | None:
    """Floats, non-JSON values and deep nesting are refused before anything is signed."""
    if depth > MAX_DEPTH:
        return f"content is nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return "content keys must be strings"
            problem = _content_problem(v, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for v in value:
            problem = _content_problem(v, depth + 1)
            if problem:
                return problem
    elif isinstance(value, float):
        return "floats are forbidden in events: use integers"
    elif type(value) is int and abs(value) > MAX_TIMESTAMP_MS:
        return "integers in events must lie within ±(2**53 - 1)"
    elif value is not None and not isinstance(value, str | int):
        return f"content holds a {type(value).__name__}, which is not JSON"
    return None


class SignatureChecker:
    """Checks event signatures, caching one ``VerifyKey`` per sender key text.

    The reading hot path (``benchmarks/protocol_throughput.py``): a good signature costs
    one dictionary look-up, one strict base64 decode and the Ed25519 verification, and
    its verdict is a shared constant, not a new tuple per event."""

    def __init__(self) -> None:
        # the public key's bytes once PyNaCl accepted them as a key (VerifyKey), else None
        self._keys: dict[str, bytes | None] = {}

    @property
    def cached_keys(self) -> int:
        return len(self._keys)

    def _key(self, text: str) -> bytes | None:
        raw = b64decode_exact(text, 32)
        key = None
        if raw is not None:
            try:
                key = bytes(VerifyKey(raw))
            except Exception:  # an invalid point is just an unusable key
                key = None
        self._keys[text] = key
        return key

    def check(self, event: Event) -> tuple[bool | None, str]:
        """(True, why) good signature; (False, why) bad; (None, why) nothing to check."""
        if event.sender_key is None:
            return _UNSIGNED
        return self.check_bytes(event.sender_key, event.canonical, event.signature)

    def check_bytes(self, key_text: str, message: bytes, signature_text: str) -> tuple[bool, str]:
        key = self._keys.get(key_text, _UNKNOWN)
        if key is _UNKNOWN:
            key = self._key(key_text)
        if key is None:
            return _BAD_KEY
        signature = signature_bytes(signature_text)
        if signature is None:
            return _BAD_SIGNATURE_TEXT
        # What VerifyKey.verify does (libsodium's crypto_sign_open of signature and
        # message), without its wrappers' checks and copies: the signature is 64 bytes,
        # the key a checked one, and the opened message is not wanted. libsodium writes
        # it only where told (NULL: nowhere), and verifies the same either way; PyNaCl's
        # binding would allocate and copy it out (a microsecond an event, with
        # VerifyKey's own checks).
        if _open(_NULL, _NULL, signature + message, len(message) + 64, key) != 0:
            return _BAD_SIGNATURE
        return _GOOD


_UNKNOWN: Any = object()
_open = _sodium.crypto_sign_open  # PyNaCl's own cffi module: the C functions themselves
_sign = _sodium.crypto_sign
_new = _ffi.new
_BYTES = _ffi.typeof("unsigned char[]")  # looked up once, not parsed per event
_buffer = _ffi.buffer
_NULL = _ffi.NULL
_UNSIGNED = (None, "no sender_key: the signature cannot be checked")
# Why a signature is bad, worded for an event (metadata words them its own way).
BAD_KEY_WHY = "sender_key is not a valid Ed25519 public key"
BAD_SIGNATURE_TEXT_WHY = "signature is not base64 of 64 bytes"
BAD_SIGNATURE_WHY = "Ed25519 signature does not match the event's canonical bytes"
_BAD_KEY = (False, BAD_KEY_WHY)
_BAD_SIGNATURE_TEXT = (False, BAD_SIGNATURE_TEXT_WHY)
_BAD_SIGNATURE = (False, BAD_SIGNATURE_WHY)
_GOOD = (True, "Ed25519 signature good")
