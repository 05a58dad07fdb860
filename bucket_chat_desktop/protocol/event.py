"""The event schema: untrusted JSON in, a valid ``Event`` or a precise ``Malformed`` out.

Validation is written out by hand (no schema library) because it runs for every event
of every room on every start: it is on the hot path the benchmark measures.
"""

from __future__ import annotations

import json
from binascii import b2a_base64
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple

from orjson import JSONDecodeError as _FastLoadError
from orjson import loads as _fast_loads

from .canonical import b64decode_exact, canonical_text_acyclic
from .findings import Kind

MESSAGE = "m.room.message"
MEMBER = "m.room.member"
MEMBERSHIPS = frozenset({"join", "leave", "invite", "ban", "kick"})

MAX_LINE_BYTES = 256 * 1024
MAX_DEPTH = 16  # nesting allowed inside an event (the event object is depth 1)
BYTES_PER_VALUE = 16
MIN_VALUES = 128
"""A line holds at most one JSON value or key per ``BYTES_PER_VALUE`` of its bytes, or
``MIN_VALUES`` whatever its length (``too-dense``). Once read, a value costs 50 to 70
bytes of memory whatever its text: a segment of lines of ``[{},{},…]`` (3 bytes a value)
took 24 times its size (1.7 GB for 64 MiB, in each worker reading one, and again in the
process that unpacks it: red team rt78), long lines or short (rt81). No event needs more:
its envelope is about 400 bytes for some twenty values and keys, a text is one value
whatever it holds, and ``MIN_VALUES`` leaves room for a message naming ``MAX_MENTIONS``
people with short ids. A short line of ``{}`` now costs at most about 12 times its size
(an honest one, 5 to 6 times)."""


def allowed_values(size: int) -> int:
    """How many JSON values and keys a line of ``size`` bytes may hold."""
    return max(size // BYTES_PER_VALUE, MIN_VALUES)


MAX_TIMESTAMP_MS = 2**53 - 1
MAX_ID_BYTES = 512
"""The most an id-like field may hold, in bytes of UTF-8 (``id_size``): ``event_id``,
``room_id``, ``sender_id``, ``type``, ``signature``, the ``LINK_FIELDS`` and the
``DEVICE_FIELDS``. Counted in bytes, not characters: a reader keeps several of these per
event, and 512 characters outside the BMP were 2 KiB each (red team rt99)."""


def id_size(text: str) -> int:
    """The size of an id-like string as ``MAX_ID_BYTES`` counts it: its bytes of UTF-8
    (a lone surrogate, which JSON can spell, counted as the three bytes of its code)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _ids_fit(*texts: str | None) -> bool:
    """Whether each of ``texts`` (None: absent) holds at most ``MAX_ID_BYTES`` bytes: the
    fast path's check for a line whose ids are not all ASCII."""
    return all(t is None or id_size(t) <= MAX_ID_BYTES for t in texts)


LINK_FIELDS = ("parent_event_id", "prev_event_hash", "sender_key")
"""The optional fields that name another event or a key: an event id (at most
``MAX_ID_BYTES``), a hash or a key (44 characters; another implementation's hash text may
be longer, as its ids may). Each is refused over ``MAX_ID_BYTES`` like the ids themselves:
a reader keeps a reply's parent and a chain link that is not the row before by row, and
unbounded they were 240 KB an event that no rule could ever match (red team rt91)."""
DEVICE_ADD_FIELD = "add_device_key"
DEVICE_ACCEPT_FIELD = "introduced_by"
DEVICE_FIELDS = (DEVICE_ADD_FIELD, DEVICE_ACCEPT_FIELD)
"""The fields of a member event's content that name a key (section 7): a string longer
than ``MAX_ID_BYTES`` is refused as the link fields are (a string is kept by every reader
as the key it names, even while it names none)."""
MAX_WITNESS_ENTRIES = 64
"""Entries of a ``witness`` a reader reads (section 6.1): one with more is ignored whole
(``audit.witness_entries``). Writers name at most this many chains in one event."""

REQUIRED_FIELDS = (
    "event_id",
    "room_id",
    "timestamp_ms",
    "sender_id",
    "type",
    "signature",
    "content",
)


class Event(NamedTuple):
    """A schema-valid event. Its signature is not yet checked: see ``audit``.

    A named tuple rather than a frozen dataclass: rooms hold 100,000s of these and a
    tuple is several times cheaper to build.
    """

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


class _BigInt(ValueError):
    pass


def _int_in_range(text: str) -> int:
    # Every language can represent integers up to 2**53 - 1 exactly (16 digits); longer
    # ones could not be canonicalised the same way everywhere.
    if len(text) < 16:  # at most 15 digits: within range (and the usual case)
        return int(text)
    if len(text.lstrip("-")) > 16 or abs(value := int(text)) > MAX_TIMESTAMP_MS:
        raise _BigInt(text)
    return value


_DECODER = json.JSONDecoder(
    parse_float=_no_float, parse_constant=_no_float, parse_int=_int_in_range
)


class _Refused:
    """Where ``_MARKING`` found a float, a constant or an integer out of range."""


_REFUSED = _Refused()


def _mark_int(text: str) -> Any:
    try:
        return _int_in_range(text)
    except _BigInt:
        return _REFUSED


# Decodes what ``_DECODER`` refuses, with a marker in place of each refused number.
_MARKING = json.JSONDecoder(
    parse_float=lambda _t: _REFUSED, parse_constant=lambda _t: _REFUSED, parse_int=_mark_int
)


def _holds_marker(value: Any) -> bool:
    if value is _REFUSED:
        return True
    if isinstance(value, dict):
        return any(_holds_marker(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_marker(v) for v in value)
    return False


def _decode(text: str) -> Any:
    """``_DECODER.decode(text)``, minus its Python wrapper for the usual line.

    A line that starts with its value and ends with it is what ``decode`` would scan
    from the same position with the same scanner; anything else (leading or trailing
    whitespace or data, no value) goes through ``decode`` for its exact error.
    """
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return _DECODER.decode(text)
    if end != len(text):
        return _DECODER.decode(text)
    return value


_scan_once: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def decode_json_line(line: bytes) -> Any | Malformed:
    """Decode one JSONL line without ever raising.

    An object that orjson decodes (strict UTF-8 and strict JSON: it refuses NaN,
    Infinity and lone surrogate escapes) and that holds no float, no integer outside
    ±(2**53 - 1) and nothing nested deeper than ``MAX_DEPTH`` is exactly what
    ``json`` makes of the line (a third of the time: the reading hot path). Every other
    line takes ``json``, which says what is wrong; ``tests/unit/protocol/test_event.py``
    proves both paths agree on valid and hostile lines.
    """
    if len(line) > MAX_LINE_BYTES:
        return Malformed(
            Kind.LINE_TOO_LONG,
            f"line of {len(line):,} bytes exceeds the {MAX_LINE_BYTES:,}-byte limit; not parsed",
        )
    try:
        value = _fast_loads(line)
    except _FastLoadError:
        pass
    else:
        if type(value) is dict:
            inside = _plain(value, 2)
            if inside >= 0:
                # ``too-dense``: the walk counted the values and keys (a usual event
                # holds some twenty, below ``MIN_VALUES``: one comparison)
                if inside >= MIN_VALUES and (inside + 1) * BYTES_PER_VALUE > len(line):
                    return _dense(line, inside + 1)
                return value
    return _decode_json_line_slow(line)


def json_values(value: Any) -> int:
    """How many JSON values ``value`` holds, itself and object keys included."""
    if type(value) is dict:
        return 1 + len(value) + sum(json_values(v) for v in value.values())
    if type(value) is list:
        return 1 + sum(json_values(v) for v in value)
    return 1


def _too_dense(line: bytes, value: Any) -> Malformed | None:
    """``too-dense`` when the line packs more values than ``allowed_values`` (the slow
    path's check: the fast one counts them in ``_plain``'s walk)."""
    count = json_values(value)
    return _dense(line, count) if count > allowed_values(len(line)) else None


def _dense(line: bytes, count: int) -> Malformed:
    return Malformed(
        Kind.TOO_DENSE,
        f"line packs {count:,} JSON values and keys into {len(line):,} bytes, more than one "
        f"per {BYTES_PER_VALUE} bytes (or {MIN_VALUES}): not read (once read, each costs "
        "50-70 bytes of memory)",
    )


def _plain(container: Any, depth: int) -> int:
    """How many values and keys ``container`` (decoded by orjson; its members sit at
    ``depth``) holds, all levels down, when it holds only text, booleans, null, integers
    within ±(2**53 - 1) and containers whose members sit at ``MAX_DEPTH`` or less; -1 sends
    the line to ``json``. (The count is ``too-dense``'s, made by the walk this check
    makes anyway.)"""
    if type(container) is dict:
        values: Iterable[Any] = container.values()
        count = 2 * len(container)
    else:
        values = container
        count = len(container)
    for value in values:
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is int:
            if -MAX_TIMESTAMP_MS <= value <= MAX_TIMESTAMP_MS:
                continue
            return -1
        if (kind is dict or kind is list) and depth < MAX_DEPTH:
            inside = _plain(value, depth + 1)
            if inside >= 0:
                count += inside
                continue
        return -1  # a float, an integer out of range, or deep nesting
    return count


SHOWN_NUMBER_CHARS = 24
"""Characters of a refused number a finding quotes whole; a longer one is cut in the
middle and its length said (one line of 200,000 digits was a 200 KB finding)."""


def _shown_number(text: str) -> str:
    """A refused number as a finding quotes it: whole when short, else its first and
    last digits around "…" and how many characters it has (never a different value)."""
    if len(text) <= SHOWN_NUMBER_CHARS:
        return text
    return f"{text[:12]}…{text[-6:]} ({len(text):,} characters)"


def _decode_json_line_slow(line: bytes) -> Any | Malformed:
    """``decode_json_line`` with the json module alone: the exact finding for a bad
    line, and the value of any line the fast path leaves."""
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
        value = _decode(text)
    except (_FloatFound, _BigInt) as exc:
        number = _shown_number(exc.args[0])
        found = (
            Malformed(Kind.FLOAT, f"number {number} is not an integer; floats are forbidden")
            if isinstance(exc, _FloatFound)
            else Malformed(Kind.BAD_SCHEMA, f"integer {number} is outside ±(2**53 - 1)")
        )
        # Only a number the line's value keeps counts: one under a key repeated later in
        # its object is replaced by the later value (as every decoder here, orjson's fast
        # path included, makes of it), so it is no part of the event.
        try:
            value = _MARKING.decode(text)
            if _holds_marker(value):
                return found
        except (ValueError, RecursionError):  # deep nesting: the first finding stands
            return found
    except RecursionError:
        return Malformed(Kind.TOO_DEEP, "JSON nested too deeply to parse")
    except ValueError as exc:
        if text.startswith("\ufeff"):  # the json module's words for it name no cause
            return Malformed(
                Kind.BAD_JSON,
                "not JSON: it begins with a byte-order mark (EF BB BF), which "
                "the protocol does not allow (PROTOCOL.md section 4.3)",
            )
        if not text.strip():
            return Malformed(Kind.BAD_JSON, "not JSON: it is empty")
        return Malformed(Kind.BAD_JSON, f"not JSON: {exc}")
    # Counting brackets is C-fast; only a line with many of them needs the real walk.
    # With at most MAX_DEPTH - 1 brackets every value sits at depth MAX_DEPTH or less;
    # MAX_DEPTH brackets can already put a value one level too deep.
    if line.count(b"{") + line.count(b"[") >= MAX_DEPTH and not _depth_ok(value, 1):
        return Malformed(Kind.TOO_DEEP, f"JSON nested deeper than {MAX_DEPTH} levels")
    # A \uD800-\uDFFF escape that is not half of a pair is no character at all: such a
    # string cannot be stored, printed or canonicalised the same way everywhere. Only
    # lines with such an escape pay for the walk (emoji in canonical form are pairs).
    if (b"\\ud" in line or b"\\uD" in line) and has_lone_surrogate(value):
        return Malformed(
            Kind.BAD_ENCODING, "a string holds a lone UTF-16 surrogate (\\uD800-\\uDFFF)"
        )
    dense = _too_dense(line, value)
    return value if dense is None else dense


def has_lone_surrogate(value: Any) -> bool:
    """Whether a string in decoded JSON ``value`` (keys included) holds a UTF-16
    surrogate: after decoding, one is left only where an escape was no proper pair."""
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def parse_event(obj: Any, room_id: str) -> Event | Malformed:
    """Validate a decoded JSON value as an event of ``room_id``.

    Takes ownership of ``obj`` (pass a copy if you keep using it). Nesting depth is
    checked by ``decode_json_line``; callers with other sources must check it themselves
    (and pass no cycle: decoded JSON never holds one).
    """
    # Fast path: one combined test for the shape every well-formed event has. Anything
    # else takes the slow path, which says exactly what is wrong.
    try:
        event_id = obj["event_id"]
        ts = obj["timestamp_ms"]
        sender_id = obj["sender_id"]
        event_type = obj["type"]
        signature = obj["signature"]
        content = obj["content"]
        parent = obj.get("parent_event_id")
        prev = obj.get("prev_event_hash")
        sender_key = obj.get("sender_key")
        good = (
            obj["room_id"] == room_id
            and type(event_id) is str
            and type(ts) is int
            and 0 <= ts <= MAX_TIMESTAMP_MS
            and type(sender_id) is str
            and type(event_type) is str
            and type(signature) is str
            and type(content) is dict
            and (parent is None or (type(parent) is str and len(parent) <= MAX_ID_BYTES))
            and (prev is None or (type(prev) is str and len(prev) <= MAX_ID_BYTES))
            and (
                sender_key is None or (type(sender_key) is str and len(sender_key) <= MAX_ID_BYTES)
            )
            and 0 < len(sender_id) <= MAX_ID_BYTES
            and 0 < len(event_type) <= MAX_ID_BYTES
            and 0 < len(event_id) <= MAX_ID_BYTES
            and len(signature) <= MAX_ID_BYTES
            and (
                (
                    event_id.isascii()
                    and sender_id.isascii()
                    and event_type.isascii()
                    and (parent is None or parent.isascii())
                    and (prev is None or prev.isascii())
                    and (sender_key is None or sender_key.isascii())
                    and signature.isascii()
                )
                or _ids_fit(event_id, sender_id, event_type, parent, prev, sender_key, signature)
            )
            and event_id.startswith(room_id + "::")
            and len(parts := event_id.split("::")) == 3
            and parts[1] != ""
            and parts[2] != ""
        )
    except (KeyError, TypeError, AttributeError):
        good = False
    if not good:
        return _explain(obj, room_id)
    if event_type == MESSAGE:
        if type(content.get("body")) is not str:
            return Malformed(
                Kind.BAD_SCHEMA, "m.room.message content.body must be a string", event_id
            )
    elif event_type == MEMBER:
        if not (type(membership := content.get("membership")) is str and membership in MEMBERSHIPS):
            return Malformed(
                Kind.BAD_SCHEMA,
                f"m.room.member membership must be one of {', '.join(sorted(MEMBERSHIPS))}",
                event_id,
            )
        for name in DEVICE_FIELDS:
            named = content.get(name)
            if type(named) is str and id_size(named) > MAX_ID_BYTES:
                return Malformed(
                    Kind.BAD_SCHEMA,
                    f"m.room.member content.{name} is {id_size(named):,} bytes long, more "
                    f"than the {MAX_ID_BYTES} any key can have",
                    event_id,
                )
    # The signature is popped and put back rather than copying the dict: this keeps
    # canonicalisation cheap on the hot path. Decoded JSON holds no cycle.
    del obj["signature"]
    if (
        len(obj) == 9
        and "parent_event_id" in obj
        and "prev_event_hash" in obj
        and "sender_key" in obj
    ):
        # Exactly the fields build_event writes, all read and type-checked above.
        canonical = nine_fields_text(
            content, event_id, parent, prev, room_id, sender_id, sender_key, ts, event_type
        ).encode("ascii")
    else:  # extension fields, witness, or an optional field left out
        canonical = canonical_text_acyclic(obj).encode("ascii")
    obj["signature"] = signature
    return event_of_parts(
        obj,
        canonical,
        event_id,
        room_id,
        ts,
        sender_id,
        event_type,
        parent,
        prev,
        signature,
        sender_key,
        content,
    )


def nine_fields_text(
    content: Mapping[str, Any],
    event_id: str,
    parent: str | None,
    prev: str | None,
    room_id: str,
    sender_id: str,
    sender_key: str | None,
    ts: int,
    event_type: str,
    tail: str = "",
) -> str:
    """``canonical_json`` text of an event of exactly the nine fields ``build_event``
    writes, and ``tail`` (``',"witness":…'``, the one key sorted after them), written out
    in sorted key order: the hot paths' form, shared by the writer and the reader so
    their bytes cannot drift apart. The caller checked every field's type; ``content``
    must hold no cycle."""
    return nine_fields_json(
        canonical_text_acyclic(content),
        _quote(event_id),
        "null" if parent is None else _quote(parent),
        "null" if prev is None else _quote(prev),
        _quote(room_id),
        _quote(sender_id),
        "null" if sender_key is None else _quote(sender_key),
        int.__repr__(ts),
        _quote(event_type),
        tail,
    )


def nine_fields_json(
    content: str,
    event_id: str,
    parent: str,
    prev: str,
    room_id: str,
    sender_id: str,
    sender_key: str,
    ts: str,
    event_type: str,
    tail: str,
) -> str:
    """The one layout of ``nine_fields_text``, of the fields' canonical JSON texts (a
    writer that knows a text needs no escaping passes it quoted by hand)."""
    # One f-string (one BUILD_STRING, no tuple of twenty pieces to build and join).
    return (
        f'{{"content":{content},"event_id":{event_id},"parent_event_id":{parent}'
        f',"prev_event_hash":{prev},"room_id":{room_id},"sender_id":{sender_id}'
        f',"sender_key":{sender_key},"timestamp_ms":{ts},"type":{event_type}{tail}}}'
    )


def event_of_parts(
    raw: Mapping[str, Any],
    canonical: bytes,
    event_id: str,
    room_id: str,
    ts: int,
    sender_id: str,
    event_type: str,
    parent: str | None,
    prev: str | None,
    signature: str,
    sender_key: str | None,
    content: Mapping[str, Any],
) -> Event:
    """The ``Event`` of checked parts and their canonical bytes, with its hash
    (``hash_bytes(canonical)``): the one place the writer and the reader build one."""
    return _new_event(
        Event,
        (
            raw,
            canonical,
            b2a_base64(sha256(canonical).digest(), newline=False).decode("ascii"),
            event_id,
            room_id,
            ts,
            sender_id,
            event_type,
            parent,
            prev,
            signature,
            sender_key,
            content,
        ),
    )


def event_of_hash(obj: dict[str, Any], event_hash: str) -> Event:
    """The ``Event`` that ``parse_event`` made of ``obj`` in a worker process, which sent
    its hash along; without canonical bytes (``handover.py``). Only for a value decoded
    from a line that ``parse_event`` accepted: nothing is checked here."""
    return _new_event(
        Event,
        (
            obj,
            b"",
            event_hash,
            obj["event_id"],
            obj["room_id"],
            obj["timestamp_ms"],
            obj["sender_id"],
            obj["type"],
            obj.get("parent_event_id"),
            obj.get("prev_event_hash"),
            obj["signature"],
            obj.get("sender_key"),
            obj["content"],
        ),
    )


_new_event = tuple.__new__  # Event's own __new__ adds a Python call per event
_quote = encode_basestring_ascii  # a JSON string, as canonical_json writes it


def _explain(obj: Any, room_id: str) -> Malformed:
    """The precise reason an object is not a valid event (the slow path)."""
    if not isinstance(obj, dict):
        return Malformed(
            Kind.BAD_SCHEMA, f"an event must be a JSON object, not {type(obj).__name__}"
        )
    eid = _str_or_none(obj.get("event_id"))
    missing = [f for f in REQUIRED_FIELDS if f not in obj]
    if missing:
        return Malformed(Kind.BAD_SCHEMA, f"missing field(s): {', '.join(missing)}", eid)
    event_id = obj["event_id"]
    if not isinstance(event_id, str) or not event_id:
        return Malformed(Kind.BAD_SCHEMA, "event_id must be a non-empty string")
    if id_size(event_id) > MAX_ID_BYTES:
        return Malformed(
            Kind.BAD_SCHEMA,
            f"event_id is {id_size(event_id):,} bytes long, more than the {MAX_ID_BYTES} "
            "an event id can have",
        )
    for field in ("room_id", "sender_id", "type", "signature"):
        value = obj[field]
        if not isinstance(value, str):
            return Malformed(Kind.BAD_SCHEMA, f"{field} must be a string", eid)
        if id_size(value) > MAX_ID_BYTES:
            return Malformed(
                Kind.BAD_SCHEMA,
                f"{field} is {id_size(value):,} bytes long, more than the {MAX_ID_BYTES} "
                "it can have",
                eid,
            )
    if obj["room_id"] != room_id:
        return Malformed(
            Kind.WRONG_ROOM,
            f"event belongs to room {obj['room_id']!r}, found in room {room_id!r}",
            eid,
        )
    parts = event_id.split("::")
    if len(parts) != 3 or parts[0] != room_id or not parts[1] or not parts[2]:
        return Malformed(
            Kind.BAD_SCHEMA, "event_id must be '<room_id>::<time>::<unique>' for this room", eid
        )
    ts = obj["timestamp_ms"]
    if type(ts) is not int or not 0 <= ts <= MAX_TIMESTAMP_MS:
        return Malformed(Kind.BAD_SCHEMA, "timestamp_ms must be a non-negative integer", eid)
    if not obj["sender_id"]:
        return Malformed(Kind.BAD_SCHEMA, "sender_id must not be empty", eid)
    if not obj["type"]:
        return Malformed(Kind.BAD_SCHEMA, "type must not be empty", eid)
    if not isinstance(obj["content"], dict):
        return Malformed(Kind.BAD_SCHEMA, "content must be a JSON object", eid)
    for field in LINK_FIELDS:
        value = obj.get(field)
        if value is not None and not isinstance(value, str):
            return Malformed(
                Kind.BAD_SCHEMA,
                f"{field} must be a string or null, not {type(value).__name__}",
                eid,
            )
        if value is not None and id_size(value) > MAX_ID_BYTES:
            return Malformed(
                Kind.BAD_SCHEMA,
                f"{field} is {id_size(value):,} bytes long, more than the "
                f"{MAX_ID_BYTES} any event id, hash or key can have",
                eid,
            )
    return Malformed(Kind.BAD_SCHEMA, "event does not match the schema", eid)


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
