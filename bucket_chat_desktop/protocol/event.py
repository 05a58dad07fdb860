"""The event schema: untrusted JSON in, a valid ``Event`` or a precise ``Malformed`` out.

Validation is written out by hand (no schema library) because it runs for every event
of every room on every start: it is on the hot path the benchmark measures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .canonical import b64decode_exact, canonical_json, hash_bytes
from .findings import Kind

MESSAGE = "m.room.message"
MEMBER = "m.room.member"
MEMBERSHIPS = frozenset({"join", "leave", "invite", "ban", "kick"})

MAX_LINE_BYTES = 256 * 1024
MAX_DEPTH = 16  # nesting allowed inside an event (the event object is depth 1)
MAX_TIMESTAMP_MS = 2**53 - 1
MAX_ID_CHARS = 512

REQUIRED_FIELDS = (
    "event_id",
    "room_id",
    "timestamp_ms",
    "sender_id",
    "type",
    "signature",
    "content",
)


@dataclass(frozen=True, slots=True)
class Event:
    """A schema-valid event. Its signature is not yet checked: see ``audit``."""

    raw: Mapping[str, Any]
    canonical: bytes
    hash: str
    event_id: str
    room_id: str
    timestamp_ms: int
    sender_id: str
    type: str
    parent_event_id: str | None
    prev_event_hash: str | None
    signature: str
    sender_key: str | None
    content: Mapping[str, Any]

    @property
    def order_key(self) -> tuple[int, str]:
        return (self.timestamp_ms, self.event_id)

    @property
    def body(self) -> str | None:
        body = self.content.get("body")
        return body if isinstance(body, str) else None

    def line(self) -> bytes:
        """The JSONL line (with its newline) that stores this event."""
        return (
            json.dumps(
                dict(self.raw), sort_keys=True, separators=(",", ":"), ensure_ascii=True
            ).encode("ascii")
            + b"\n"
        )


@dataclass(frozen=True, slots=True)
class Malformed:
    kind: Kind
    reason: str
    event_id: str | None = None


class _FloatFound(ValueError):
    pass


def _no_float(text: str) -> Any:
    raise _FloatFound(text)


def _depth_ok(value: Any, depth: int) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth_ok(v, depth + 1) for v in value)
    return True


def decode_json_line(line: bytes) -> Any | Malformed:
    """Decode one JSONL line without ever raising."""
    if len(line) > MAX_LINE_BYTES:
        return Malformed(
            Kind.LINE_TOO_LONG,
            f"line of {len(line):,} bytes exceeds the {MAX_LINE_BYTES:,}-byte limit; not parsed",
        )
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Malformed(Kind.BAD_ENCODING, f"not valid UTF-8 at byte {exc.start}")
    try:
        return json.loads(text, parse_float=_no_float, parse_constant=_no_float)
    except _FloatFound as exc:
        return Malformed(
            Kind.FLOAT, f"number {exc.args[0]} is not an integer; floats are forbidden"
        )
    except RecursionError:
        return Malformed(Kind.TOO_DEEP, "JSON nested too deeply to parse")
    except ValueError as exc:
        return Malformed(Kind.BAD_JSON, f"not JSON: {exc}")


def _is_int(value: Any) -> bool:
    return type(value) is int


def _opt_str(obj: Mapping[str, Any], field: str) -> str | Malformed | None:
    value = obj.get(field)
    if value is None or isinstance(value, str):
        return value
    return Malformed(
        Kind.BAD_SCHEMA, f"{field} must be a string or null, not {type(value).__name__}"
    )


def parse_event(obj: Any, room_id: str) -> Event | Malformed:
    """Validate a decoded JSON value as an event of ``room_id``.

    Takes ownership of ``obj`` (pass a copy if you keep using it).
    """
    if not isinstance(obj, dict):
        return Malformed(
            Kind.BAD_SCHEMA, f"an event must be a JSON object, not {type(obj).__name__}"
        )
    missing = [f for f in REQUIRED_FIELDS if f not in obj]
    if missing:
        return Malformed(
            Kind.BAD_SCHEMA,
            f"missing field(s): {', '.join(missing)}",
            _str_or_none(obj.get("event_id")),
        )
    event_id = obj["event_id"]
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_CHARS:
        return Malformed(Kind.BAD_SCHEMA, "event_id must be a non-empty string")
    for field in ("room_id", "sender_id", "type", "signature"):
        value = obj[field]
        if not isinstance(value, str) or len(value) > MAX_ID_CHARS:
            return Malformed(Kind.BAD_SCHEMA, f"{field} must be a string", event_id)
    if obj["room_id"] != room_id:
        return Malformed(
            Kind.WRONG_ROOM,
            f"event belongs to room {obj['room_id']!r}, found in room {room_id!r}",
            event_id,
        )
    parts = event_id.split("::")
    if len(parts) != 3 or parts[0] != room_id or not parts[1] or not parts[2]:
        return Malformed(
            Kind.BAD_SCHEMA,
            "event_id must be '<room_id>::<time>::<unique>' for this room",
            event_id,
        )
    ts = obj["timestamp_ms"]
    if not _is_int(ts) or not 0 <= ts <= MAX_TIMESTAMP_MS:
        return Malformed(Kind.BAD_SCHEMA, "timestamp_ms must be a non-negative integer", event_id)
    if not obj["sender_id"]:
        return Malformed(Kind.BAD_SCHEMA, "sender_id must not be empty", event_id)
    if not obj["type"]:
        return Malformed(Kind.BAD_SCHEMA, "type must not be empty", event_id)
    content = obj["content"]
    if not isinstance(content, dict):
        return Malformed(Kind.BAD_SCHEMA, "content must be a JSON object", event_id)
    parent = _opt_str(obj, "parent_event_id")
    prev = _opt_str(obj, "prev_event_hash")
    sender_key = _opt_str(obj, "sender_key")
    for checked in (parent, prev, sender_key):
        if isinstance(checked, Malformed):
            return Malformed(checked.kind, checked.reason, event_id)
    if not _depth_ok(obj, 1):
        return Malformed(Kind.TOO_DEEP, f"event nested deeper than {MAX_DEPTH} levels", event_id)
    if obj["type"] == MESSAGE:
        body = content.get("body")
        if not isinstance(body, str):
            return Malformed(
                Kind.BAD_SCHEMA, "m.room.message content.body must be a string", event_id
            )
    elif obj["type"] == MEMBER and content.get("membership") not in MEMBERSHIPS:
        return Malformed(
            Kind.BAD_SCHEMA,
            f"m.room.member membership must be one of {', '.join(sorted(MEMBERSHIPS))}",
            event_id,
        )
    # Takes ownership of ``obj``: the signature is popped and put back rather than
    # copying the dict, which keeps canonicalisation off the hot path's profile.
    signature = obj.pop("signature")
    canonical = canonical_json(obj)
    obj["signature"] = signature
    return Event(
        raw=obj,
        canonical=canonical,
        hash=hash_bytes(canonical),
        event_id=event_id,
        room_id=room_id,
        timestamp_ms=ts,
        sender_id=obj["sender_id"],
        type=obj["type"],
        parent_event_id=parent,  # type: ignore[arg-type]
        prev_event_hash=prev,  # type: ignore[arg-type]
        signature=obj["signature"],
        sender_key=sender_key,  # type: ignore[arg-type]
        content=content,
    )


def parse_line(line: bytes, room_id: str) -> Event | Malformed:
    decoded = decode_json_line(line)
    if isinstance(decoded, Malformed):
        return decoded
    return parse_event(decoded, room_id)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def valid_key_text(text: str) -> bytes | None:
    """Raw 32-byte public key from its base64 text, or None."""
    return b64decode_exact(text, 32)
