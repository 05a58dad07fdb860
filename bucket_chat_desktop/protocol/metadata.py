"""Room metadata: ``rooms/<room_id>/metadata.json``, written create-only by the creator."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey

from .canonical import canonical_bytes, canonical_json
from .event import Malformed, decode_json_line
from .findings import Finding, Kind
from .ids import check_room_id, metadata_path
from .signing import (
    BAD_KEY_WHY,
    BAD_SIGNATURE_TEXT_WHY,
    BAD_SIGNATURE_WHY,
    SignatureChecker,
    public_key_text,
    sign_mapping,
)
from .untrusted_text import display_name_safe, one_line

PROTOCOL = "bucket-chat-v1"
VERSION = "1.0"
MAX_METADATA_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RoomMetadata:
    room_id: str
    name: str | None
    created_at: str | None
    creator_id: str | None
    creator_key: str | None
    signed: bool  # True only when the creator's signature was checked and is good
    raw: dict[str, Any]
    # Why the signature it carries is not good ("" when it is good or there is none): a
    # forged or damaged signature proves nothing, like none, but is never called unsigned.
    bad_signature: str = ""


def build_metadata(
    *, room_id: str, name: str, created_at: str, creator_id: str, signing_key: SigningKey
) -> bytes:
    """Signed metadata bytes (canonical JSON and a newline)."""
    check_room_id(room_id)
    body = {
        "room_id": room_id,
        "name": name,
        "created_at": created_at,
        "version": VERSION,
        "protocol": PROTOCOL,
        "creator_id": creator_id,
        "creator_key": public_key_text(signing_key),
    }
    return canonical_json(sign_mapping(body, signing_key)) + b"\n"


def parse_metadata(
    data: bytes,
    room_id: str,
    path: str,
    checker: SignatureChecker | None = None,
    *,
    limit: int = MAX_METADATA_BYTES,
) -> tuple[RoomMetadata | None, list[Finding]]:
    """Parse metadata; the reference implementation's unsigned four-field form opens too.

    ``limit`` bounds what is read from storage; a reader's own ``kept_form`` may be larger
    than the file it came from (``MAX_KEPT_METADATA_BYTES``)."""
    if len(data) > limit:
        return None, [
            Finding(Kind.METADATA_INVALID, f"metadata is {len(data):,} bytes; too large", path)
        ]
    decoded = decode_json_line(data.strip())
    if isinstance(decoded, Malformed):
        return None, [Finding(Kind.METADATA_INVALID, decoded.reason, path)]
    if not isinstance(decoded, dict):
        return None, [Finding(Kind.METADATA_INVALID, "metadata must be a JSON object", path)]
    if decoded.get("room_id") != room_id:
        named = decoded.get("room_id")
        if named is None:
            said = f"metadata names no room (it has no room_id), expected {room_id!r}"
        elif not isinstance(named, str):
            said = f"metadata's room_id must be a string, not {type(named).__name__}"
        else:
            said = f"metadata names room {named!r}, expected {room_id!r}"
        return None, [Finding(Kind.METADATA_INVALID, said, path)]
    findings: list[Finding] = []
    text = {
        k: decoded.get(k) if isinstance(decoded.get(k), str) else None
        for k in ("name", "created_at", "creator_id", "creator_key", "signature")
    }
    signed = False
    bad_signature = ""
    if text["signature"] is None or text["creator_key"] is None:
        findings.append(
            Finding(
                Kind.METADATA_UNSIGNED,
                "room metadata is unsigned (reference-implementation form)",
                path,
            )
        )
    else:
        ok, why = (checker or SignatureChecker()).check_bytes(
            text["creator_key"], canonical_bytes(decoded), text["signature"]
        )
        if ok:
            signed = True
        else:
            bad_signature = _METADATA_WHY.get(why, why)
            findings.append(
                Finding(Kind.METADATA_INVALID, f"metadata signature invalid: {bad_signature}", path)
            )
    meta = RoomMetadata(
        room_id=room_id,
        name=text["name"],
        created_at=text["created_at"],
        creator_id=text["creator_id"],
        creator_key=text["creator_key"] if signed else None,
        signed=signed,
        raw=decoded,
        bad_signature=bad_signature,
    )
    return meta, findings


# The checker words its reasons for an event; the same reasons, for metadata.
_METADATA_WHY = {
    BAD_KEY_WHY: "creator_key is not a valid Ed25519 public key",
    BAD_SIGNATURE_TEXT_WHY: "its signature is not base64 of 64 bytes",
    BAD_SIGNATURE_WHY: (
        "it does not match the metadata's contents — forged, or changed after signing"
    ),
}


class Signer(enum.StrEnum):
    """What a good metadata signature says about who wrote it (PROTOCOL.md section 10)."""

    CONFIRMED = "confirmed"  # creator_key speaks for creator_id in the audited room
    UNCONFIRMED = "unconfirmed"  # creator_id has no trusted key here: only a claim
    UNKNOWN_KEY = "unknown-key"  # creator_id's trusted keys do not include creator_key
    NOT_CHECKED = "not-checked"  # no audit to check against (e.g. a room list)
    UNSIGNED = "unsigned"  # written without a signature (the reference form)
    BAD_SIGNATURE = "bad-signature"  # carries a signature that does not verify


def check_signer(
    meta: RoomMetadata, authorized: Mapping[str, frozenset[str]] | None
) -> tuple[Signer, list[Finding]]:
    """Whether the metadata's signing key is one the audit trusts for ``creator_id``.

    ``authorized`` is ``AuditResult.authorized`` (None: not audited)."""
    if meta.bad_signature:  # its finding came with the metadata (metadata-invalid)
        return Signer.BAD_SIGNATURE, []
    if not meta.signed or meta.creator_key is None or meta.creator_id is None:
        return Signer.UNSIGNED, []
    if authorized is None:
        return Signer.NOT_CHECKED, []
    keys = authorized.get(meta.creator_id)
    if not keys:
        return Signer.UNCONFIRMED, []
    if meta.creator_key in keys:
        return Signer.CONFIRMED, []
    finding = Finding(
        Kind.METADATA_SIGNER_UNKNOWN,
        f"metadata is signed by key {meta.creator_key[:12]}…, which is not a key of its "
        f"claimed creator {meta.creator_id!r} in this room: someone else wrote it",
        metadata_path(meta.room_id),
    )
    return Signer.UNKNOWN_KEY, [finding]


def signer_text(meta: RoomMetadata, signer: Signer) -> str:
    """A short phrase for people: who signed the metadata, only as far as it is known."""
    who = meta.creator_id or "?"
    return {
        Signer.CONFIRMED: f"signed by {who}",
        Signer.UNCONFIRMED: f"signed by a key that claims to be {who}, not confirmed",
        Signer.UNKNOWN_KEY: f"signed by an unknown key, not {who}'s",
        Signer.NOT_CHECKED: f"signed; claims to be created by {who}, not checked",
        Signer.UNSIGNED: "unsigned",
        Signer.BAD_SIGNATURE: f"signature invalid: {meta.bad_signature}",
    }[signer]


def describe(meta: RoomMetadata, authorized: Mapping[str, frozenset[str]] | None = None) -> str:
    """``name (who signed it)``; say "signed by <creator>" only when the audit allows."""
    name = meta.name or meta.room_id
    return f"{name} ({signer_text(meta, check_signer(meta, authorized)[0])})"


MAX_KEPT_METADATA_BYTES = 6 * MAX_METADATA_BYTES
"""How large ``kept_form`` can be: canonical JSON escapes DEL and every character past
ASCII as six bytes (``\\u007f``, ``\\u00e9``; twelve for a pair of surrogates), so metadata
the reader took in raw UTF-8 grows up to six times when kept (a raw DEL is one byte)."""


UNUSABLE_TITLE = "its metadata.json could not be used: name and creator unknown"


def unusable(room_id: str, meta: RoomMetadata | None, findings: Sequence[Finding]) -> bool:
    """Whether the room has a ``metadata.json`` that could not be used — not read (a
    FIFO, too large, refused, changing while read) or not valid — as against none: a
    title then says so, never "(no metadata)" (red team rt52)."""
    if meta is not None:
        return False
    path = metadata_path(room_id)
    return any(f.path == path and f.kind is not Kind.METADATA_MISSING for f in findings)


def kept_form(meta: RoomMetadata) -> bytes:
    """What a reader keeps of metadata it used, to know it again: its canonical JSON
    (the same value re-indented or with its members reordered is the same metadata)."""
    return canonical_json(meta.raw)


def _said(meta: RoomMetadata) -> str:
    name = display_name_safe(meta.name, 80) if meta.name else "(no name)"
    who = one_line(meta.creator_id, 80) if meta.creator_id else "nobody named"
    when = one_line(meta.created_at, 40) if meta.created_at else "no date"
    signed = "signed" if meta.signed else ("badly signed" if meta.bad_signature else "unsigned")
    return f"“{name}”, created by {who} at {when} ({signed})"


def changed_finding(
    kept: RoomMetadata, now: RoomMetadata | None, now_findings: Sequence[Finding]
) -> Finding:
    """``metadata-changed``: the metadata this reader used before (``kept``) is no longer
    what the storage holds — other metadata (``now``), none, or none usable. Metadata is
    written once, create-only, by the room's creator (section 10): any change is someone
    rewriting the room's name and creator, and the reader keeps showing ``kept``."""
    if now is not None:
        what = f"it now says {_said(now)}"
    elif any(f.kind is Kind.METADATA_MISSING for f in now_findings):
        what = "it is no longer in storage"
    else:
        why = "; ".join(f.message for f in now_findings) or "unreadable"
        what = f"what is there now cannot be used ({one_line(why, 200)})"
    return Finding(
        Kind.METADATA_CHANGED,
        f"metadata.json changed after this device read it: it said {_said(kept)}; {what}. "
        "Room metadata is written once, by its creator: the first one read is kept",
        metadata_path(kept.room_id),
    )


__all__ = [
    "MAX_KEPT_METADATA_BYTES",
    "RoomMetadata",
    "Signer",
    "build_metadata",
    "changed_finding",
    "check_signer",
    "describe",
    "kept_form",
    "parse_metadata",
    "signer_text",
]
