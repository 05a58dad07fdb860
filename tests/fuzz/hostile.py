"""Hypothesis strategies for what a hostile member (or storage provider) can put in a room.

Everything here is built with the project's own signing code, so signed events carry good
signatures and get past the cheap checks: the interesting failures are deeper down. A
``HostileRoom`` is a plain description of a room (segments, metadata, odd file-system
entries); ``write_room`` lays it out in a local folder exactly as a storage would hold it.

The classes covered: every field at and beyond its range (timestamps, ids, names, sizes,
nesting, integers), text with terminal controls, bidi and zero-width characters and lone
surrogates, Markdown bombs and links with odd schemes, content of the wrong types,
attachments whose metadata lies and forged thumbnails, forks, replays and impostors,
byte garbage, truncated and non-UTF-8 lines, segment names at and beyond their edges
(non-UTF-8 file names too), a hostile ``metadata.json``, odd folders beside the room, and
non-regular files (FIFOs, sockets, symlinks to devices, outside files, nowhere or
themselves, directories named like segments, sparse files larger than every limit).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.canonical import b64encode, canonical_json, hash_bytes
from bucket_chat_desktop.protocol.event import (
    MAX_DEPTH,
    MAX_ID_BYTES,
    MAX_TIMESTAMP_MS,
    MEMBER,
    MEMBERSHIPS,
    MESSAGE,
)
from bucket_chat_desktop.protocol.ids import iso_utc_ms, utc_date
from bucket_chat_desktop.protocol.metadata import build_metadata
from bucket_chat_desktop.protocol.signing import public_key_text, sign_mapping

ROOM = "fuzz-room"
T0 = 1_764_000_000_000  # 2025-11-24

# Devices: two members, and a third whose user id looks like the first one's (Cyrillic а).
# ``EventSpec.sender`` lets any of them claim another id (an impostor).
KEYS = [SigningKey(bytes([seed]) * 32) for seed in (11, 12, 13)]
SENDERS = ["alice@example.com", "bob@example.com", "аlice@example.com"]  # Cyrillic а

# -- text -------------------------------------------------------------------------------------

SPECIAL_TEXT = [
    "",
    " ",
    "\x1b[2J\x1b[H",  # clear the terminal
    "\x1b]0;pwned\x07",  # set the window title (OSC)
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",  # terminal hyperlink
    "\x9b31m",  # C1 CSI
    "\x00nul",
    "bell\x07\x08\x08\x08",
    "carriage\rreturn",
    "line\u2028separator\u2029",
    "\u202egnp.exe",  # right-to-left override
    "\u2066isolate\u2069\u200e\u200f\u061c",
    "zero\u200bwidth\u200c\u200d\ufeff",
    "e" + "\u0301" * 300,  # combining-mark tower
    "👩‍👩‍👧‍👦" * 50,
    "\ud800lone\udfff",  # lone surrogates (valid JSON escapes, not encodable as UTF-8)
    "\U0010ffff\ufffe\uffff",
    "аdmin",  # Cyrillic а
    "alice@example.com",
    "A" * 5000,
    "word " * 3000,
    "\t" * 200,
    "\n" * 400,
]

MARKDOWN_BOMBS = [
    "![x](http://evil.example/track.png)",
    "![x](file:///etc/passwd)",
    "![x](data:image/png;base64,AAAA)",
    "![" * 200 + "x" + "](y)" * 200,
    "[click](javascript:alert(1))",
    "[a](vbscript:msgbox) [b](file:///C:/x) [c](\x1b[31m) [d](<>) [e](%zz)",
    "<img src=x onerror=alert(1)><script>alert(1)</script><iframe src=x>",
    "&#x1b;&#0;&#xd800;&#1114112;&amp;&lt;b&gt;",
    "| a " * 300 + "|\n" + "| - " * 300 + "|\n" + "| x " * 300 + "|",
    "\n".join("  " * i + "- item" for i in range(300)),
    "\n".join("1. " * (i % 40 + 1) + "x" for i in range(200)),
    "> " * 500 + "quote",
    "*" * 5000,
    "_" * 3000 + "a" + "_" * 3000,
    "`" * 2000,
    "```\n" + "code\n" * 2000 + "```",
    "#" * 7 + " heading\n" + "# h\n" * 500,
    "[a]: http://x\n" * 300 + "[a]" * 300,
    "http://" + "a" * 4000 + ".example",
    "~~" * 1000,
    "\\" * 4000,
    "<" * 3000,
]

hostile_text = st.one_of(
    st.text(max_size=30),
    st.text(
        alphabet=st.characters(codec=None, categories=["Cc", "Cf", "Zl", "Zp", "Cs"]), max_size=12
    ),
    st.sampled_from(SPECIAL_TEXT + MARKDOWN_BOMBS),
    st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from(SPECIAL_TEXT),
        st.sampled_from(MARKDOWN_BOMBS),
        st.text(max_size=10),
    ),
)


def _bounded_id(text: str) -> str:
    """``text`` cut to what an id may hold: ``MAX_ID_BYTES`` bytes of UTF-8."""
    text = (text or "x")[:MAX_ID_BYTES]
    while len(text.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        text = text[:-1]
    return text


hostile_id = hostile_text.map(_bounded_id)

# -- numbers ----------------------------------------------------------------------------------

EDGE_TIMESTAMPS = [
    0,
    1,
    999,
    2**31 - 1,
    2**31,
    2**32,
    T0,
    253_402_300_799_999,  # 9999-12-31T23:59:59.999Z: the last one datetime can show
    253_402_300_800_000,  # year 10000
    MAX_TIMESTAMP_MS,
]
timestamps = st.one_of(
    st.sampled_from(EDGE_TIMESTAMPS),
    st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS),
    st.integers(min_value=T0, max_value=T0 + 10**7),
)
BEYOND_INTS = [-1, -(2**53), MAX_TIMESTAMP_MS + 1, 2**63, 10**40, -(10**40)]
edge_ints = st.one_of(
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**53 - 1, -(2**53 - 1)]),
    st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
)

# -- JSON values ------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), edge_ints, hostile_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int, leaf: Any = "x") -> Any:
    """A value ``depth`` levels deep (a list or a dict at each level)."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# Deep nesting that still signs (content is depth 2 inside an event) and beyond the limit.
deep_values = st.integers(min_value=1, max_value=MAX_DEPTH - 2).map(nested)

# -- content ----------------------------------------------------------------------------------


def _png(width: int, height: int, idat: bytes) -> bytes:
    """A PNG whose header says ``width`` x ``height``, whatever its data holds."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


THUMBNAILS = [
    b64encode(_png(1, 1, zlib.compress(b"\x00\xff\x00\x00"))),  # a real 1x1 image
    b64encode(_png(60_000, 60_000, zlib.compress(b"\x00" * 4096))),  # decompression bomb
    b64encode(_png(0, 0, b"")),
    b64encode(b"\xff\xd8\xff" + b"\x00" * 64),  # a JPEG that is only a signature
    b64encode(b"\x89PNG\r\n\x1a\n" + b"\xff" * 40_000),  # larger than a reader decodes
    "not base64 at all!",
    "",
]

hostile_info = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(hostile_text, json_values),
            "size": st.one_of(edge_ints, hostile_text, st.none()),
            "w": st.one_of(edge_ints, hostile_text),
            "h": st.one_of(edge_ints, hostile_text),
            "mimetype": st.one_of(
                st.sampled_from(["image/png", "image/svg+xml", "text/html", "x/\x1b"]),
                hostile_text,
            ),
            "sha256": st.one_of(st.text(alphabet="0123456789abcdef", max_size=64), hostile_text),
            "path": hostile_text,
            "url": hostile_text,
            "thumbnail": st.one_of(st.sampled_from(THUMBNAILS), json_values),
        },
    ),
    json_values,  # not a dict at all
)

message_content = st.fixed_dictionaries(
    {"body": hostile_text},
    optional={
        "msgtype": st.one_of(
            st.sampled_from(["m.text", "m.notice", "m.emote", "m.image", "m.file"]), hostile_text
        ),
        "format": st.sampled_from(["org.matrix.custom.html", "markdown", ""]),
        "formatted_body": hostile_text,
        "info": hostile_info,
        "m.relates_to": json_values,
        "deep": deep_values,
        "extra": json_values,
    },
)
member_content = st.fixed_dictionaries(
    {"membership": st.sampled_from(sorted(MEMBERSHIPS))},
    optional={
        "displayname": st.one_of(hostile_text, json_values),
        "avatar_url": hostile_text,
        "add_device_key": st.one_of(st.just(public_key_text(KEYS[1])), hostile_text, json_values),
        "device_name": st.one_of(hostile_text, json_values),
        "reason": hostile_text,
    },
)
other_content = st.dictionaries(hostile_text, json_values, max_size=4)

typed_content = st.one_of(
    st.tuples(st.just(MESSAGE), message_content),
    st.tuples(st.just(MESSAGE), message_content),
    st.tuples(st.just(MEMBER), member_content),
    st.tuples(hostile_id, other_content),
)

# Fields with the wrong type: only a hand-signed raw object can carry these.
WRONG_TYPES: list[tuple[str, Any]] = [
    ("content", []),
    ("content", "text"),
    ("content", None),
    ("content.body", 42),
    ("content.body", {"nested": "body"}),
    ("content.body", None),
    ("content.membership", 1),
    ("content.membership", ["join"]),
    ("content.membership", "JOIN"),
    ("content.info", "not a dict"),
    ("content.info", [1, 2, 3]),
    ("timestamp_ms", "1764000000000"),
    ("timestamp_ms", -1),
    ("timestamp_ms", True),
    ("sender_id", 7),
    ("sender_id", ""),
    ("type", None),
    ("type", ""),
    ("event_id", "no-separators"),
    ("event_id", f"{ROOM}::::"),
    ("event_id", f"other-room::{iso_utc_ms(T0)}::x"),
    ("room_id", "other-room"),
    ("prev_event_hash", 5),
    ("prev_event_hash", "not base64"),
    ("parent_event_id", {"id": "x"}),
    ("sender_key", 12),
    ("sender_key", "AAAA"),
    ("sender_key", b64encode(b"\x00" * 32)),  # a low-order point
    ("signature", 1),
    ("signature", ""),
    ("signature", "A" * 600),
    *(("content.n", n) for n in BEYOND_INTS),  # integers past what every language keeps
    *(("timestamp_ms", n) for n in BEYOND_INTS),
]

# -- events -----------------------------------------------------------------------------------


FORK = "fork"  # ``EventSpec.prev``: name the device's previous head again (a fork)


@dataclass
class EventSpec:
    """One event a device signs: what it says and how it lies."""

    device: int
    ts: int
    event_type: str
    content: Mapping[str, Any]
    unique: str
    chain: bool  # continue the device's hash chain (else a fresh root or a hostile prev)
    prev: str | None = None
    parent: str | None = None
    sender: str | None = None  # claim another sender id than the device's own
    wrong: tuple[str, Any] | None = None  # a field set to a wrong type after signing
    resign: bool = True  # sign again after ``wrong`` (else the signature no longer fits)


event_specs = st.builds(
    EventSpec,
    device=st.integers(min_value=0, max_value=len(KEYS) - 1),
    ts=timestamps,
    event_type=st.just(""),
    content=st.just({}),
    unique=st.one_of(
        st.uuids().map(str), hostile_id.filter(lambda s: "::" not in s and bool(s))
    ).map(lambda s: s[:300]),
    chain=st.booleans(),
    prev=st.one_of(st.none(), st.just(hash_bytes(b"nothing")), st.just(FORK), hostile_id),
    parent=st.one_of(st.none(), hostile_id),
    sender=st.one_of(st.none(), st.sampled_from(SENDERS), hostile_id),  # impostors too
    wrong=st.one_of(st.none(), st.none(), st.sampled_from(WRONG_TYPES)),
    resign=st.booleans(),
).flatmap(
    lambda spec: typed_content.map(
        lambda tc: EventSpec(**{**spec.__dict__, "event_type": tc[0], "content": tc[1]})
    )
)


def sign_event(
    spec: EventSpec, heads: dict[int, str | None], room_id: str = ROOM
) -> dict[str, Any]:
    """The raw event object ``spec`` describes, signed by its device's key.

    Signed by hand (``sign_mapping``, the code ``build_event`` and metadata use) rather than
    through ``build_event``, because a hostile writer does not run our write-side checks.
    """
    key = KEYS[spec.device]
    prev = heads.get(spec.device) if spec.chain else spec.prev
    if prev == FORK:  # the head before the last one: a second successor of it
        prev = heads.get(-1 - spec.device)
    raw: dict[str, Any] = {
        "event_id": f"{room_id}::{iso_utc_ms(spec.ts)}::{spec.unique}",
        "room_id": room_id,
        "timestamp_ms": spec.ts,
        "sender_id": spec.sender or SENDERS[spec.device],
        "type": spec.event_type or "x",
        "parent_event_id": spec.parent,
        "prev_event_hash": prev,
        "sender_key": public_key_text(key),
        "content": dict(spec.content),
    }
    if spec.wrong is not None and spec.resign:
        _set_field(raw, *spec.wrong)
    signed = sign_mapping(raw, key)
    if spec.wrong is not None and not spec.resign:
        _set_field(signed, *spec.wrong)
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    heads[-1 - spec.device] = heads.get(spec.device)
    heads[spec.device] = hash_bytes(canonical_json(unsigned))
    return signed


def _set_field(obj: dict[str, Any], where: str, value: Any) -> None:
    if where.startswith("content."):
        if not isinstance(obj.get("content"), dict):
            obj["content"] = {}
        obj["content"][where.split(".", 1)[1]] = value
    else:
        obj[where] = value


def event_line(obj: Mapping[str, Any]) -> bytes:
    """Our stored form: canonical JSON with the signature, and a newline."""
    return canonical_json(dict(obj)) + b"\n"


# -- lines and segments -----------------------------------------------------------------------

GARBAGE_LINES = [
    b"\xff\xfe\x00garbage",
    b"\xc3\x28",  # invalid UTF-8
    b"\xed\xa0\x80",  # an encoded surrogate
    b"{",
    b"[]",
    b"null",
    b'"just a string"',
    b"1e400",
    b'{"timestamp_ms": 1.5}',
    b'{"a": NaN, "b": Infinity}',
    b'{"n": ' + b"9" * 5000 + b"}",
    b"[" * 100_000 + b"]" * 100_000,  # nesting bomb
    b'{"a":' * 40 + b"1" + b"}" * 40,
    b'{"k": "' + b"x" * 300_000 + b'"}',  # longer than a line may be
    b"\x1b[2J\x1b]0;title\x07",
    b"\x00" * 64,
    b"\r\r\r",
    b'{"event_id": "\\ud800"}',
    b'{"dup": 1, "dup": 2}',
]


@dataclass
class SegmentSpec:
    name: str  # relative to rooms/<room>/logs/ (date folder and file name)
    lines: list[bytes]  # each with its newline unless cut
    crlf: bool = False


def _segment_name(start: int, end: int, client: str) -> str:
    return f"{utc_date(start)}/messages_{start}_{end}_{client}.jsonl"


HOSTILE_NAMES = [
    "2025-11-24/messages_0_0_c.jsonl",
    "2025-11-24/messages_9999999999999999_9999999999999999_c.jsonl",  # beyond 2**53
    "2025-11-24/messages_1_0_c.jsonl",  # start after end
    "2025-11-24/messages_1_2_" + "c" * 128 + ".jsonl",
    "2025-11-24/messages_1_2_" + "c" * 129 + ".jsonl",  # client id too long
    "2025-11-24/messages_1_2_клиент.jsonl",
    "2025-11-24/messages_1_2_\x1b[31mred.jsonl",  # escape in a file name
    "2025-11-24/messages_1_2_\u202etxt.jsonl",
    "2025-11-24/messages_1_2_a\nb.jsonl",  # a newline in a file name
    "2025-11-24/messages_١_٢_c.jsonl",  # Arabic-Indic digits
    "2025-11-24/messages__1_c.jsonl",
    "2025-11-24/messages_1_2_c.jsonl.tmp",
    "2025-11-24/MESSAGES_1_2_c.jsonl",
    "2025-11-24/notes.txt",
    "9999-99-99/messages_1_2_c.jsonl",
    "not-a-date/messages_1_2_c.jsonl",
    "2025-11-24/deeper/messages_1_2_c.jsonl",
    "messages_1_2_c.jsonl",  # no date folder
    "2025-11-24/" + "m" * 250,  # a very long file name
]

line_choice = st.one_of(
    st.just("event"),
    st.just("event"),
    st.just("event"),
    st.sampled_from(["garbage", "binary", "truncate", "blank", "duplicate", "replay"]),
)


@st.composite
def segments(draw: st.DrawFn, specs: list[EventSpec], heads: dict[int, str | None]) -> SegmentSpec:
    """One segment of several lines: signed events mixed with garbage."""
    lines: list[bytes] = []
    times: list[int] = []
    for spec in specs:
        obj = sign_event(spec, heads)
        line = event_line(obj)
        times.append(spec.ts)
        kind = draw(line_choice)
        if kind == "event":
            lines.append(line)
        elif kind == "garbage":
            lines.append(draw(st.sampled_from(GARBAGE_LINES)) + b"\n")
        elif kind == "binary":
            lines.append(draw(st.binary(min_size=1, max_size=80)) + b"\n")
        elif kind == "truncate":
            cut = draw(st.integers(min_value=1, max_value=max(1, len(line) - 2)))
            lines.append(line[:cut] + (b"\n" if draw(st.booleans()) else b""))
        elif kind == "blank":
            lines.extend([b"\n", b"   \n", line])
        elif kind == "replay":  # the same event id, signed again with other contents
            other = EventSpec(**{**spec.__dict__, "content": {"body": "replayed", "n": 1}})
            lines.extend([line, event_line(sign_event(other, heads))])
        else:
            lines.extend([line, line])
    start, end = (min(times), max(times)) if times else (T0, T0)
    name = draw(
        st.one_of(
            st.just(_segment_name(start, end, "c")),
            st.just(_segment_name(start, end, "c")),
            st.builds(_segment_name, timestamps, timestamps, st.just("c")),  # a lying name
            st.sampled_from(HOSTILE_NAMES),
        )
    )
    return SegmentSpec(name, lines, crlf=draw(st.booleans()))


# -- metadata ---------------------------------------------------------------------------------

MAX_META_SPARSE = 3 * 1024**3  # a sparse metadata.json larger than any read should take


@st.composite
def metadata_bytes(draw: st.DrawFn, room_id: str = ROOM) -> bytes | None:
    kind = draw(
        st.sampled_from(["signed", "signed", "unsigned", "missing", "garbage", "json", "large"])
    )
    name = draw(st.one_of(hostile_text, st.just("Fuzz room")))
    if kind == "signed":
        return build_metadata(
            room_id=room_id,
            name=name,
            created_at=draw(hostile_text),
            creator_id=draw(hostile_id),
            signing_key=KEYS[draw(st.integers(0, len(KEYS) - 1))],
        )
    if kind == "unsigned":
        doc = {"room_id": room_id, "name": name, "created_at": "2025-11-24", "version": "1.0"}
        return canonical_json(doc) + b"\n"
    if kind == "missing":
        return None
    if kind == "garbage":
        return draw(st.sampled_from(GARBAGE_LINES))
    if kind == "large":
        return canonical_json({"room_id": room_id, "name": "n" * (70 * 1024)})
    value = draw(json_values)
    if isinstance(value, dict) and draw(st.booleans()):
        value["room_id"] = room_id
        value["signature"] = draw(hostile_text)
        value["creator_key"] = draw(st.one_of(hostile_text, st.just(public_key_text(KEYS[0]))))
    return canonical_json(value)


# -- non-regular files ------------------------------------------------------------------------

# Entries that a local folder may hold where a segment (or metadata.json) should be.
# ``BLOCKING`` ones would hang or exhaust memory in a reader without bounds: tests run them
# in a subprocess under a time and memory limit, never in the test process.
SPECIAL_KINDS = [
    "dir-named-like-segment",
    "dangling-symlink",
    "symlink-loop",
    "symlink-to-outside-file",
    "symlink-to-outside-dir",
    "sparse-huge-segment",
    "empty-segment",
    "metadata-is-dir",
    "non-utf8-name",
    "socket-named-like-segment",
    "odd-room-folders",
]
BLOCKING_KINDS = [
    "fifo-segment",
    "fifo-metadata",
    "symlink-to-dev-zero",
    "sparse-huge-metadata",
]
# Kinds where a segment (or the room's metadata) is present but cannot be read or is not
# read: ``verify`` of such a room must never say CLEAN.
UNREADABLE_KINDS = {
    "fifo-segment",
    "symlink-to-dev-zero",
    "dangling-symlink",
    "symlink-loop",
    "sparse-huge-segment",
    "fifo-metadata",
    "sparse-huge-metadata",
    "metadata-is-dir",
    "socket-named-like-segment",
}


@dataclass
class HostileRoom:
    room_id: str = ROOM
    metadata: bytes | None = None
    segments: list[SegmentSpec] = field(default_factory=list)
    specials: list[str] = field(default_factory=list)

    @property
    def has_unreadable(self) -> bool:
        return any(k in UNREADABLE_KINDS for k in self.specials)


@st.composite
def hostile_rooms(
    draw: st.DrawFn, *, specials: list[str] | None = None, max_segments: int = 4
) -> HostileRoom:
    """A room of several segments by several devices, a hostile metadata.json and some
    odd file-system entries (from ``specials``; none when it is empty)."""
    room = HostileRoom(metadata=draw(metadata_bytes()))
    heads: dict[int, str | None] = {}
    for _ in range(draw(st.integers(min_value=0, max_value=max_segments))):
        specs = draw(st.lists(event_specs, min_size=1, max_size=5))
        room.segments.append(draw(segments(specs, heads)))
    if specials:
        room.specials = draw(st.lists(st.sampled_from(specials), max_size=2, unique=True))
    return room


def special_name(kind: str) -> str:
    return _segment_name(T0, T0 + 1, kind.replace("-", "")[:60])


def write_room(root: Path, room: HostileRoom, outside: Path | None = None) -> Path:
    """Lay ``room`` out under ``root`` (a local storage folder); returns the room folder.

    ``outside`` is a folder beside the storage that symlinks may point into."""
    base = root / "rooms" / room.room_id
    logs = base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if room.metadata is not None:
        (base / "metadata.json").write_bytes(room.metadata)
    for seg in room.segments:
        target = logs / seg.name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            data = b"".join(seg.lines)
            if seg.crlf:
                data = data.replace(b"\n", b"\r\n")
            if target.is_dir():
                continue
            with open(target, "ab") as f:  # two segments may draw the same name
                f.write(data)
        except OSError as exc:  # a name this file system refuses (too long)
            if exc.errno not in (36, 22):  # ENAMETOOLONG, EINVAL
                raise
    outside = outside or root.parent / "outside"
    outside.mkdir(exist_ok=True)
    for kind in room.specials:
        _write_special(base, logs, kind, outside)
    return base


def _write_special(base: Path, logs: Path, kind: str, outside: Path) -> None:
    path = logs / special_name(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "dir-named-like-segment":
        path.mkdir(exist_ok=True)
        (path / "inner.jsonl").write_bytes(b"{}\n")
    elif kind == "dangling-symlink":
        path.symlink_to(outside / "does-not-exist.jsonl")
    elif kind == "symlink-loop":
        path.symlink_to(path)
    elif kind == "symlink-to-outside-file":
        secret = outside / "secret.txt"
        secret.write_bytes(b"root:x:0:0:secret outside the storage\n")
        path.symlink_to(secret)
    elif kind == "symlink-to-outside-dir":
        path.symlink_to(outside, target_is_directory=True)
    elif kind == "sparse-huge-segment":
        with open(path, "wb") as f:
            f.truncate(65 * 1024 * 1024)
    elif kind == "empty-segment":
        path.write_bytes(b"")
    elif kind == "socket-named-like-segment":  # opening it fails at once (ENXIO)
        with contextlib.chdir(path.parent), socket.socket(socket.AF_UNIX) as sock:
            sock.bind(path.name)  # relative: the full path may exceed sun_path's 108 bytes
    elif kind == "odd-room-folders":  # beside the room: other "rooms" a listing meets
        rooms = base.parent
        (rooms / "\x1b[31mred\x07").mkdir(exist_ok=True)  # not a valid room id
        (rooms / ".hidden" / "logs").mkdir(parents=True, exist_ok=True)
        (rooms / "not-a-folder").write_bytes(b"x")
        longest = rooms / ("r" * 128)  # the longest valid room id
        (longest / "logs").mkdir(parents=True, exist_ok=True)
        (longest / "metadata.json").write_bytes(
            canonical_json({"room_id": "r" * 128, "name": "\x1b]0;title\x07\u202e" * 50})
        )
        alias = rooms / "alias-room"
        if not alias.exists():
            alias.symlink_to(base, target_is_directory=True)  # the same room twice
    elif kind == "non-utf8-name":  # listed as a str with lone surrogates (surrogateescape)
        name = os.fsencode(path.parent) + b"/messages_1_2_\xff\xfe.jsonl"
        with open(name, "wb") as f:
            f.write(b"{}\n")
    elif kind == "fifo-segment":
        os.mkfifo(path)
    elif kind == "fifo-metadata":
        meta = base / "metadata.json"
        meta.unlink(missing_ok=True)
        os.mkfifo(meta)
    elif kind == "symlink-to-dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "sparse-huge-metadata":
        meta = base / "metadata.json"
        meta.unlink(missing_ok=True)
        with open(meta, "wb") as f:
            f.truncate(MAX_META_SPARSE)
    elif kind == "metadata-is-dir":
        meta = base / "metadata.json"
        meta.unlink(missing_ok=True)
        meta.mkdir()
    else:
        raise ValueError(kind)


# -- one small room per hostile class, for plain regression tests ------------------------------


def _event(
    device: int, ts: int, event_type: str, content: Mapping[str, Any], **kw: Any
) -> EventSpec:
    # The unique part comes from what the event is, so a room is the same on every run.
    what = repr((device, ts, event_type, content, sorted(kw.items())))
    unique = hashlib.sha256(what.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return EventSpec(device, ts, event_type, content, unique, True, **kw)


def join(device: int = 0, ts: int = T0, **content: Any) -> EventSpec:
    return _event(device, ts, MEMBER, {"membership": "join", **content})


def say(
    body: str, device: int = 0, ts: int = T0 + 1, sender: str | None = None, **content: Any
) -> EventSpec:
    return _event(
        device, ts, MESSAGE, {"body": body, "msgtype": "m.text", **content}, sender=sender
    )


def room_of(
    *items: EventSpec | bytes,
    name: str = "Regression room",
    metadata: bytes | None = None,
    specials: tuple[str, ...] = (),
    date_folder: str | None = None,
) -> HostileRoom:
    """A signed room holding ``items`` (events, or raw lines) in one segment, named as
    our writer names it (or in ``date_folder``: a year past 9999 has five digits, and a
    reader ignores such a folder)."""
    heads: dict[int, str | None] = {}
    lines: list[bytes] = []
    times: list[int] = []
    for item in items:
        if isinstance(item, bytes):
            lines.append(item if item.endswith(b"\n") else item + b"\n")
        else:
            lines.append(event_line(sign_event(item, heads)))
            times.append(item.ts)
    start, end = (min(times), max(times)) if times else (T0, T0)
    if metadata is None:
        metadata = build_metadata(
            room_id=ROOM,
            name=name,
            created_at="2025-11-24T00:00:00.000Z",
            creator_id=SENDERS[0],
            signing_key=KEYS[0],
        )
    name = _segment_name(start, end, "c")
    if date_folder is not None:
        name = f"{date_folder}/{name.split('/', 1)[1]}"
    segment = SegmentSpec(name, lines)
    return HostileRoom(metadata=metadata, segments=[segment], specials=list(specials))


def _wrong_types() -> HostileRoom:
    specs = [join()]
    for i, wrong in enumerate(WRONG_TYPES):
        event_type = MEMBER if "membership" in wrong[0] else MESSAGE
        content = (
            {"membership": "join"} if event_type == MEMBER else {"body": "b", "msgtype": "m.image"}
        )
        specs.append(_event(0, T0 + 10 + i, event_type, content, wrong=wrong))
    return room_of(*specs)


ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil\u2066\x08\x00\u2028"
REGRESSION_ROOMS: dict[str, Any] = {
    "surrogate-in-body": lambda: room_of(join(), say("\ud800 lone \udfff")),
    "surrogate-in-sender": lambda: room_of(join(), say("hi", sender="\udfff@example.com")),
    "surrogate-in-display-name": lambda: room_of(join(displayname="\ud800"), say("hi")),
    "surrogate-in-room-name": lambda: room_of(join(), say("hi"), name="\ud800 room"),
    "escapes-in-room-name": lambda: room_of(join(), say("hi"), name=ESCAPES),
    "escapes-in-sender-and-names": lambda: room_of(
        join(displayname=ESCAPES), say("hi", sender="\x1b[31mmallory" + ESCAPES)
    ),
    "escapes-in-body": lambda: room_of(join(), say(ESCAPES)),
    "confusable-sender": lambda: room_of(join(), join(2), say("it is me, alice", device=2)),
    "far-future-timestamp": lambda: room_of(
        join(ts=253_402_300_800_000),
        say("year 10000", ts=253_402_300_800_001),
        date_folder="9999-12-31",
    ),
    "largest-timestamp": lambda: room_of(
        join(ts=MAX_TIMESTAMP_MS - 1), say("max", ts=MAX_TIMESTAMP_MS), date_folder="9999-12-31"
    ),
    "epoch-timestamp": lambda: room_of(join(ts=0), say("1970", ts=0)),
    "markdown-images": lambda: room_of(join(), *(say(b) for b in MARKDOWN_BOMBS[:4])),
    "markdown-bombs": lambda: room_of(
        join(), *(say(b, ts=T0 + i) for i, b in enumerate(MARKDOWN_BOMBS))
    ),
    "membership-not-a-string": lambda: room_of(
        join(),
        _event(0, T0 + 1, MEMBER, {"membership": "join"}, wrong=("content.membership", ["join"])),
    ),
    "info-not-a-dict": lambda: room_of(
        join(),
        say("f.png", msgtype="m.image", info="not a dict"),
        say("g", msgtype="m.file", info=[1]),
    ),
    "hostile-thumbnails": lambda: room_of(
        join(),
        *(
            say(f"t{i}.png", ts=T0 + i, msgtype="m.image", info={"thumbnail": t, "w": 9, "h": 9})
            for i, t in enumerate(THUMBNAILS)
        ),
    ),
    "lying-attachment-sizes": lambda: room_of(
        join(),
        say("a.png", msgtype="m.image", info={"size": -1, "w": 2**53 - 1, "h": -(2**53 - 1)}),
        say("b.bin", msgtype="m.file", info={"size": 2**53 - 1, "name": "../../etc/passwd"}),
        say("c.png", msgtype="m.image", info={"size": "big", "w": 0, "h": 0, "sha256": "zz"}),
    ),
    "deep-nesting": lambda: room_of(
        join(),
        say("deep", deep=nested(MAX_DEPTH - 3)),
        canonical_json({"content": nested(MAX_DEPTH + 5)}),
    ),
    "huge-body": lambda: room_of(join(), say("x" * 200_000), say("word " * 40_000)),
    "garbage-lines": lambda: room_of(join(), *GARBAGE_LINES, say("after the garbage")),
    "wrong-types": _wrong_types,
}
for _kind in SPECIAL_KINDS:
    REGRESSION_ROOMS[f"odd-entry-{_kind}"] = lambda kind=_kind: room_of(
        join(), say("hi"), specials=(kind,)
    )
