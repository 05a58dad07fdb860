"""Room metadata: the signed form, the reference's unsigned form, and hostile files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bucket_chat_desktop.protocol.canonical import canonical_json
from bucket_chat_desktop.protocol.findings import Kind, Severity
from bucket_chat_desktop.protocol.ids import InvalidRoomIdError, metadata_path
from bucket_chat_desktop.protocol.metadata import (
    MAX_METADATA_BYTES,
    PROTOCOL,
    VERSION,
    Signer,
    build_metadata,
    check_signer,
    describe,
    parse_metadata,
)
from bucket_chat_desktop.protocol.signing import public_key_text, sign_mapping

from ._support import ROOM, key

PATH = metadata_path(ROOM)


def signed(**changes: Any) -> bytes:
    return build_metadata(
        room_id=changes.get("room_id", ROOM),
        name=changes.get("name", "Café ☕"),
        created_at="2025-09-14T12:00:00.000Z",
        creator_id="alice@example.com",
        signing_key=changes.get("signing_key", key(1)),
    )


def reference(indent: int | None = 2, **extra: Any) -> bytes:
    body = {
        "room_id": ROOM,
        "created_at": "2025-09-14T14:00:00.123456",
        "version": "1.0",
        "protocol": "bucket-chat-v1",
        **extra,
    }
    return json.dumps(body, indent=indent, ensure_ascii=False).encode("utf-8")


def test_build_and_parse_signed() -> None:
    data = signed()
    assert data.endswith(b"\n") and data.isascii()
    meta, findings = parse_metadata(data, ROOM, PATH)
    assert findings == []
    assert meta is not None
    assert meta.signed is True
    assert (meta.room_id, meta.name, meta.created_at) == (
        ROOM,
        "Café ☕",
        "2025-09-14T12:00:00.000Z",
    )
    assert meta.creator_id == "alice@example.com"
    assert meta.creator_key == public_key_text(key(1))
    assert meta.raw["version"] == VERSION == "1.0"
    assert meta.raw["protocol"] == PROTOCOL == "bucket-chat-v1"
    assert set(meta.raw) == {
        "room_id",
        "name",
        "created_at",
        "version",
        "protocol",
        "creator_id",
        "creator_key",
        "signature",
    }
    # Without an audit the signature proves only that *a* key signed.
    claim = "signed; claims to be created by alice@example.com, not checked"
    assert describe(meta) == f"Café ☕ ({claim})"
    alice_keys = {"alice@example.com": frozenset({public_key_text(key(1))})}
    assert describe(meta, alice_keys) == "Café ☕ (signed by alice@example.com)"
    assert check_signer(meta, alice_keys) == (Signer.CONFIRMED, [])


def test_signed_by_a_key_that_is_not_the_creators() -> None:
    """Any key can sign metadata naming alice as creator: "signed by alice" only when
    that key is alice's in the audited room."""
    meta, _ = parse_metadata(signed(), ROOM, PATH)
    assert meta is not None and meta.signed
    others = {"alice@example.com": frozenset({public_key_text(key(2))})}
    state, findings = check_signer(meta, others)
    assert state is Signer.UNKNOWN_KEY
    assert [(f.kind, f.path) for f in findings] == [(Kind.METADATA_SIGNER_UNKNOWN, PATH)]
    assert findings[0].severity is Severity.ERROR
    assert "signed by alice" not in describe(meta, others)
    assert describe(meta, others) == "Café ☕ (signed by an unknown key, not alice@example.com's)"
    # alice never wrote in the room (or is in conflict): only a claim
    assert check_signer(meta, {}) == (Signer.UNCONFIRMED, [])
    assert "not confirmed" in describe(meta, {})


def test_build_refuses_bad_room_id() -> None:
    with pytest.raises(InvalidRoomIdError):
        signed(room_id="../x")


def test_signed_form_is_canonical_json() -> None:
    raw = json.loads(signed())
    assert signed() == canonical_json(raw) + b"\n"


@pytest.mark.parametrize("indent", [None, 2])
def test_reference_unsigned_form_opens(indent: int | None) -> None:
    meta, findings = parse_metadata(reference(indent), ROOM, PATH)
    assert meta is not None and meta.signed is False
    assert meta.creator_key is None and meta.name is None
    assert meta.created_at == "2025-09-14T14:00:00.123456"
    assert [(f.kind, f.path, f.line) for f in findings] == [(Kind.METADATA_UNSIGNED, PATH, None)]
    assert findings[0].severity is Severity.NOTICE
    assert describe(meta) == f"{ROOM} (unsigned)"


def test_reference_form_with_raw_non_ascii_and_crlf() -> None:
    data = reference(2, name="Kölner Runde ☕", description="Grüße").replace(b"\n", b"\r\n")
    assert "ö".encode() in data
    meta, findings = parse_metadata(data + b"\r\n", ROOM, PATH)
    assert meta is not None and meta.name == "Kölner Runde ☕"
    assert [f.kind for f in findings] == [Kind.METADATA_UNSIGNED]


def test_forged_name() -> None:
    data = signed().replace(b'"name":"Caf\\u00e9 \\u2615"', b'"name":"Free Crypto"')
    assert data != signed()
    meta, findings = parse_metadata(data, ROOM, PATH)
    assert [f.kind for f in findings] == [Kind.METADATA_INVALID]
    assert findings[0].severity is Severity.ERROR
    assert "signature" in findings[0].message
    assert meta is not None and meta.signed is False and meta.creator_key is None
    # a forged signature is never shown as none: it says so, and why
    assert check_signer(meta, None) == (Signer.BAD_SIGNATURE, [])
    assert describe(meta) == (
        "Free Crypto (signature invalid: it does not match the metadata's contents — "
        "forged, or changed after signing)"
    )


def test_creator_key_swapped() -> None:
    body = json.loads(signed())
    body["creator_key"] = public_key_text(key(2))  # claims another key, old signature
    meta, findings = parse_metadata(canonical_json(body), ROOM, PATH)
    assert [f.kind for f in findings] == [Kind.METADATA_INVALID]
    assert meta is not None and not meta.signed


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("creator_key", "not a key", "creator_key is not a valid Ed25519 public key"),
        ("signature", "AAAA", "its signature is not base64 of 64 bytes"),
    ],
)
def test_why_a_signature_is_bad_is_worded_for_metadata(field: str, value: str, why: str) -> None:
    body = json.loads(signed())
    body[field] = value
    meta, findings = parse_metadata(canonical_json(body), ROOM, PATH)
    assert meta is not None and meta.bad_signature == why
    assert findings[0].message == f"metadata signature invalid: {why}"
    assert describe(meta) == f"Café ☕ (signature invalid: {why})"


def test_resigned_by_another_key_is_a_valid_signature() -> None:
    # The creator key is whatever the file names: anyone may sign their own metadata.
    body = json.loads(signed())
    body["creator_key"] = public_key_text(key(2))
    resigned = canonical_json(sign_mapping(body, key(2)))
    meta, findings = parse_metadata(resigned, ROOM, PATH)
    assert findings == [] and meta is not None and meta.signed
    assert meta.creator_key == public_key_text(key(2))


@pytest.mark.parametrize("signature", ["", "AAAA", 5, None])
def test_signature_garbage(signature: Any) -> None:
    body = json.loads(signed())
    body["signature"] = signature
    meta, findings = parse_metadata(canonical_json(body), ROOM, PATH)
    assert meta is not None and not meta.signed
    assert [f.kind for f in findings] in ([Kind.METADATA_INVALID], [Kind.METADATA_UNSIGNED])


def test_wrong_room() -> None:
    meta, findings = parse_metadata(signed(room_id="other"), ROOM, PATH)
    assert meta is None
    assert [(f.kind, f.path) for f in findings] == [(Kind.METADATA_INVALID, PATH)]
    assert "other" in findings[0].message


def test_reference_form_of_another_room() -> None:
    meta, findings = parse_metadata(reference().replace(ROOM.encode(), b"x"), ROOM, PATH)
    assert meta is None and [f.kind for f in findings] == [Kind.METADATA_INVALID]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"not json",
        b"[]",
        b'"room-1"',
        b"null",
        b"\xff\xfe",
        b'{"room_id": "room-1", "created_at": 1.5}',
        b'{"room_id": "room-1", "x": NaN}',
        b"[" * 30_000 + b"]" * 30_000,
        b'{"room_id": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        b"{" * 10,
        b'{"room_id": 5}',
        b"\xef\xbb\xbf" + reference(),
    ],
)
def test_garbage_never_raises(data: bytes) -> None:
    meta, findings = parse_metadata(data, ROOM, PATH)
    assert meta is None
    assert [(f.kind, f.path) for f in findings] == [(Kind.METADATA_INVALID, PATH)]


def test_garbage_is_named_in_words_of_its_own() -> None:
    """Red team rt40: "metadata names room None" for metadata without a room id, and the
    json module's "Expecting value: line 1 column 1" for one that begins with a BOM."""
    said = [
        parse_metadata(data, ROOM, PATH)[1][0].message
        for data in (b"{}", b'{"room_id": 5}', b"\xef\xbb\xbf" + reference(), b"")
    ]
    assert said == [
        f"metadata names no room (it has no room_id), expected {ROOM!r}",
        "metadata's room_id must be a string, not int",
        "not JSON: it begins with a byte-order mark (EF BB BF), which the protocol does not "
        "allow (PROTOCOL.md section 4.3)",
        "not JSON: it is empty",
    ]


def test_too_large() -> None:
    data = reference(2, padding="x" * MAX_METADATA_BYTES)
    meta, findings = parse_metadata(data, ROOM, PATH)
    assert meta is None
    assert [f.kind for f in findings] == [Kind.METADATA_INVALID]
    assert "too large" in findings[0].message


def test_non_string_fields_are_ignored_not_fatal() -> None:
    meta, findings = parse_metadata(reference(2, name=["x"], creator_id=5), ROOM, PATH)
    assert meta is not None and meta.name is None and meta.creator_id is None
    assert [f.kind for f in findings] == [Kind.METADATA_UNSIGNED]
