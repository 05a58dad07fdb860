"""Canonical bytes, event hashes and base64 helpers.

The canonical form is pinned by the protocol so that any language can reproduce it:
the event without ``signature``, keys sorted, no spaces, every non-ASCII character
escaped (``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True)``).
Floats are forbidden anywhere in an event, so number formatting never differs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_json(value: Any) -> bytes:
    """Canonical UTF-8 (in fact ASCII) JSON of ``value``."""
    return _ENCODER.encode(value).encode("ascii")


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The encoder ``_ENCODER.encode`` builds on every call, made once: same separators,
# key order and escaping (it is the same C code), but no table of the containers being
# encoded, so it holds no state and threads can share it. Without that table a cycle is
# not detected, hence only for values known to be acyclic.
def _make_acyclic_encoder() -> Any:
    make = getattr(json.encoder, "c_make_encoder", None)  # None without the C accelerator
    if make is None:
        return None
    try:
        return make(
            None,  # no markers: no cycle check
            _no_default,
            json.encoder.encode_basestring_ascii,
            None,  # indent
            ":",
            ",",
            True,  # sort_keys
            False,  # skipkeys
            True,  # allow_nan, as json.JSONEncoder
        )
    except TypeError:  # another interpreter's signature: use the general encoder
        return None


_ACYCLIC = _make_acyclic_encoder()


def canonical_text_acyclic(value: Any) -> str:
    """The text of ``canonical_json(value)`` for a value that holds no cycle (decoded
    JSON, or a structure whose depth was checked): the hot paths' cheaper form.

    An object of one or two text members (a message's ``body`` and ``msgtype``, a
    member event's ``membership``: nearly every event's content) is written out here:
    the C encoder's list of pieces and its join cost more than the whole object. The
    same string escaping (``encode_basestring_ascii``, which the encoder calls too) and
    the same key order (``sorted`` compares ``str`` by code point, as ``sort_keys``
    does); ``tests/unit/protocol/test_canonical.py`` proves the equality.
    """
    if type(value) is dict:
        size = len(value)
        if size == 2:
            (k1, v1), (k2, v2) = value.items()
            if type(k1) is str and type(v1) is str and type(k2) is str and type(v2) is str:
                if k2 < k1:
                    return f"{{{_quote(k2)}:{_quote(v2)},{_quote(k1)}:{_quote(v1)}}}"
                return f"{{{_quote(k1)}:{_quote(v1)},{_quote(k2)}:{_quote(v2)}}}"
        elif size == 1:
            ((k1, v1),) = value.items()
            if type(k1) is str and type(v1) is str:
                return f"{{{_quote(k1)}:{_quote(v1)}}}"
    if _ACYCLIC is None:  # an interpreter without the C accelerator
        return _ENCODER.encode(value)
    return "".join(_ACYCLIC(value, 0))


_quote = json.encoder.encode_basestring_ascii  # what the encoders above call for a str


def canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """The bytes that are signed and hashed: the event without its ``signature``."""
    if "signature" in event:
        event = {k: v for k, v in event.items() if k != "signature"}
    return canonical_json(event)


def hash_bytes(data: bytes) -> str:
    """Standard base64 of SHA-256 of ``data`` (the protocol's hash text form)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def event_hash(event: Mapping[str, Any]) -> str:
    """The event hash that a chain successor names in ``prev_event_hash``."""
    return hash_bytes(canonical_bytes(event))


# The one spelling ``b64decode_exact(text, 32)`` accepts (a hash or a public key): 43
# base64 digits, the last with its two low bits zero (they are padding), then "=".
HASH_TEXT = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode_exact(text: str, size: int) -> bytes | None:
    """Decode strict standard base64 of exactly ``size`` bytes, or None if it is not that.

    Only the one canonical spelling is accepted (re-encoding must give the same text):
    otherwise non-zero padding bits would give many texts for one signature, and a copy
    of an honest event with a respelled signature would look like a replay.
    """
    try:
        raw = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    if len(raw) != size or binascii.b2a_base64(raw, newline=False) != text.encode("ascii"):
        return None
    return raw


def signature_bytes(text: str) -> bytes | None:
    """``b64decode_exact(text, 64)``, for every signature read: the strict decode alone,
    then the one test re-encoding would add. 64 bytes are 21 groups of four digits and
    ``XY==``; strict decoding refuses any other shape, and only the low four bits of
    ``Y`` are padding, which must be zero: ``Y`` is one of ``AQgw``."""
    if type(text) is not str:  # as b64decode_exact: only text is decoded
        return b64decode_exact(text, 64)
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 64 or text[85] not in "AQgw":
        return None
    return raw
