"""Generate the Bucket Chat Protocol v1 test vectors in this folder.

    python tests/vectors/make_vectors.py           # (re)write the vector files
    python tests/vectors/make_vectors.py --check   # exit 1 if a file would change

This script is a second, deliberately independent writer of the protocol: it uses only
the standard library and PyNaCl, never ``bucket_chat_desktop``, so that the vectors check
the implementation rather than repeat it. Keys come from fixed seeds, timestamps and uuids
are fixed and Ed25519 signatures are deterministic, so every run writes the same bytes.

Every expectation below (finding kinds, lines, trust states, display order) is written by
hand from the specification in ``docs/PROTOCOL.md``; none is computed by the reader under
test. See that document's "Test vectors" section for the file formats.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

HERE = Path(__file__).resolve().parent

ROOM = "vector-room"
OTHER_ROOM = "other-room"
T0 = 1757851245000  # 2025-09-14T12:00:45.000Z
SECOND = 1000

# ---------------------------------------------------------------------------------------
# The protocol, written out again from the specification


def canonical(body: dict[str, Any]) -> bytes:
    """Canonical bytes: the object without ``signature``, sorted keys, no spaces, ASCII."""
    rest = {k: v for k, v in body.items() if k != "signature"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sha256_b64(data: bytes) -> str:
    return b64(hashlib.sha256(data).digest())


def iso_utc_ms(ts: int) -> str:
    t = time.gmtime(ts // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ts % 1000:03d}Z"


def utc_date(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts // 1000))


def fixed_uuid(n: int) -> str:
    """A fixed text in uuid4 form (version 4, RFC 4122 variant)."""
    return f"{n:08x}-0000-4000-8000-{n:012x}"


@dataclass(frozen=True)
class Device:
    name: str
    sender_id: str
    seed: bytes

    @property
    def key(self) -> SigningKey:
        return SigningKey(self.seed)

    @property
    def public(self) -> bytes:
        return bytes(self.key.verify_key)

    @property
    def public_text(self) -> str:
        return b64(self.public)

    @property
    def client_id(self) -> str:
        user = re.sub(r"[^A-Za-z0-9_-]", "", self.sender_id.split("@", 1)[0])[:40] or "user"
        return f"{user}-{hashlib.sha256(self.public).hexdigest()[:8]}"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sender_id": self.sender_id,
            "seed_hex": self.seed.hex(),
            "public_key": self.public_text,
            "client_id": self.client_id,
        }


ALICE = Device("alice", "alice@example.com", bytes([0x01]) * 32)
BOB = Device("bob", "bob@example.com", bytes([0x02]) * 32)
ALICE2 = Device("alice-laptop", "alice@example.com", bytes([0x03]) * 32)
MALLORY = Device("mallory", "alice@example.com", bytes([0x04]) * 32)  # claims to be alice
REFERENCE = Device("reference", "jöran@example.com", bytes([0x05]) * 32)
DEVICES = (ALICE, BOB, ALICE2, MALLORY, REFERENCE)


@dataclass(frozen=True)
class Ev:
    """One event as written: the object and the exact line stored for it."""

    name: str
    obj: dict[str, Any]
    line: bytes

    @property
    def event_id(self) -> str:
        return str(self.obj["event_id"])

    @property
    def ts(self) -> int:
        return int(self.obj["timestamp_ms"])

    @property
    def hash(self) -> str:
        return sha256_b64(canonical(self.obj))


def stored_line(obj: dict[str, Any]) -> bytes:
    """How this implementation stores an event: canonical form with the signature."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def event(
    name: str,
    device: Device,
    ts: int,
    n: int,
    content: dict[str, Any],
    *,
    prev: Ev | str | None,
    kind: str = "m.room.message",
    room_id: str = ROOM,
    parent: str | None = None,
    sender_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Ev:
    body: dict[str, Any] = {
        "event_id": f"{room_id}::{iso_utc_ms(ts)}::{fixed_uuid(n)}",
        "room_id": room_id,
        "timestamp_ms": ts,
        "sender_id": sender_id or device.sender_id,
        "type": kind,
        "parent_event_id": parent,
        "prev_event_hash": prev.hash if isinstance(prev, Ev) else prev,
        "sender_key": device.public_text,
        "content": content,
    }
    body.update(extra or {})
    body["signature"] = b64(device.key.sign(canonical(body)).signature)
    return Ev(name, body, stored_line(body))


def join(
    name: str, device: Device, ts: int, n: int, introduced_by: Device | None = None, **kw: Any
) -> Ev:
    content = {"membership": "join", "displayname": device.name.capitalize()}
    if introduced_by is not None:  # the new device accepts the introduction (section 7)
        content["introduced_by"] = introduced_by.public_text
    return event(name, device, ts, n, content, kind="m.room.member", prev=None, **kw)


def msg(name: str, device: Device, ts: int, n: int, body: str, prev: Ev, **kw: Any) -> Ev:
    return event(name, device, ts, n, {"body": body, "msgtype": "m.text"}, prev=prev, **kw)


def altered(ev: Ev, name: str, **changes: Any) -> Ev:
    """``ev`` with fields changed but its signature left as it was (a tampered copy)."""
    obj = json.loads(json.dumps(ev.obj))
    for key, value in changes.items():
        if key == "body":
            obj["content"]["body"] = value
        else:
            obj[key] = value
    return Ev(name, obj, stored_line(obj))


@dataclass
class Segment:
    path: str
    data: bytes
    # where each event line sits: (name, line number)
    lines: list[tuple[str, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        try:
            out["data"] = self.data.decode("utf-8")
        except UnicodeDecodeError:
            out["data_base64"] = b64(self.data)
        return out


def seg_path(room_id: str, start: int, end: int, client_id: str, date: str | None = None) -> str:
    folder = date or utc_date(start)
    return f"rooms/{room_id}/logs/{folder}/messages_{start}_{end}_{client_id}.jsonl"


def segment(
    items: list[Ev | bytes],
    *,
    device: Device | None = None,
    client_id: str | None = None,
    path: str | None = None,
    room_id: str = ROOM,
) -> Segment:
    """A segment of events (and raw lines, given as bytes, that are not events)."""
    events = [x for x in items if isinstance(x, Ev)]
    if path is None:
        cid = client_id or (device or ALICE).client_id
        path = seg_path(room_id, min(e.ts for e in events), max(e.ts for e in events), cid)
    data = b""
    lines: list[tuple[str, int]] = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, Ev):
            lines.append((item.name, number))
            data += item.line
        else:
            data += item
    return Segment(path, data, lines)


# ---------------------------------------------------------------------------------------
# events.json: single events whose canonical bytes exercise the escaping rules


def events_vectors() -> list[dict[str, Any]]:
    a1 = join("alice-join", ALICE, T0, 1)
    deepest: Any = 1  # event 1, content 2, x 3, then 13 objects: the 1 is at depth 16
    for _ in range(13):
        deepest = {"a": deepest}
    tricky_keys = {"b": 1, "a": 2, "B": 3, "_": 4, "aa": 5, "é": 6, "\uffff": 7, "😀": 8}
    cases: list[tuple[Ev, str]] = [
        (a1, "a device's first event: its join (prev_event_hash null)"),
        (
            msg("plain", ALICE, T0 + 2 * SECOND, 2, "Hello Bob", a1),
            "a plain text message chained to the join",
        ),
        (
            msg("non-ascii", ALICE, T0 + 3 * SECOND, 3, "héllo wörld — ça va? 👋 日本語", a1),
            "non-ASCII text: escaped as \\uXXXX (UTF-16 surrogate pairs above U+FFFF)",
        ),
        (
            msg(
                "escapes",
                ALICE,
                T0 + 4 * SECOND,
                4,
                'quote " backslash \\ slash / tab \t newline \n cr \r bs \b ff \f nul \x00 '
                "bell \x07 del \x7f ls \u2028 <b>&amp;</b>",
                a1,
            ),
            'JSON escapes: short forms \\" \\\\ \\b \\f \\n \\r \\t; every other character '
            "outside U+0020..U+007E as \\u00XX (lowercase hex), DEL included; '/' not escaped",
        ),
        (
            event(
                "key-order",
                ALICE,
                T0 + 5 * SECOND,
                5,
                {"body": "sorted keys", "msgtype": "m.text", "keys": tricky_keys},
                prev=a1,
            ),
            "keys sorted by Unicode code point (U+FFFF sorts before U+1F600, unlike UTF-16 order)",
        ),
        (
            event(
                "integers",
                ALICE,
                T0 + 6 * SECOND,
                6,
                {
                    "body": "numbers",
                    "msgtype": "m.text",
                    "n": [0, -1, 2**53 - 1, -(2**53 - 1), 10**15],
                    "flags": [True, False, None],
                    "empty": [{}, [], ""],
                },
                prev=a1,
            ),
            "integers within ±(2**53 - 1) are written in full (no exponent, no .0); "
            "true/false/null; empty values",
        ),
        (
            event(
                "unknown-fields",
                ALICE,
                T0 + 7 * SECOND,
                7,
                {"body": "extra", "msgtype": "m.text"},
                prev=a1,
                extra={"x_extension": {"nested": [1, {"k": None}]}, "a_first": "sorted in"},
            ),
            "unknown top-level fields are kept, signed and hashed like the others",
        ),
        (
            event(
                "reply",
                BOB,
                T0 + 8 * SECOND,
                8,
                {"body": "a reply", "msgtype": "m.text"},
                prev=None,
                parent=a1.event_id,
            ),
            "parent_event_id set (a reply); signed by bob's key",
        ),
        (
            event(
                "device-add",
                ALICE,
                T0 + 9 * SECOND,
                9,
                {
                    "membership": "join",
                    "displayname": "Alice",
                    "add_device_key": ALICE2.public_text,
                },
                kind="m.room.member",
                prev=a1,
            ),
            "a device-add statement: alice's first key introduces her second key",
        ),
        (
            event("depth-16", ALICE, T0 + 10 * SECOND, 11, {"body": "deep", "x": deepest}, prev=a1),
            "nesting at the limit: the innermost value is at depth 16 (the event is depth 1)",
        ),
        (
            event("epoch", ALICE2, 0, 10, {"body": "", "msgtype": "m.text"}, prev=None),
            "timestamp 0 and an empty body; event id time 1970-01-01T00:00:00.000Z",
        ),
    ]
    by_key = {d.public_text: d for d in DEVICES}
    out = []
    for ev, description in cases:
        device = by_key[ev.obj["sender_key"]]
        out.append(
            {
                "name": ev.name,
                "description": description,
                "seed_hex": device.seed.hex(),
                "public_key": device.public_text,
                "client_id": device.client_id,
                "room_id": ev.obj["room_id"],
                "event": ev.obj,
                "canonical": canonical(ev.obj).decode("ascii"),
                "hash": ev.hash,
                "signature": ev.obj["signature"],
                "line": ev.line.decode("ascii"),
            }
        )
    return out


# ---------------------------------------------------------------------------------------
# Room cases: segments plus what a reader must conclude


@dataclass
class Target:
    """What section 18 makes of one target event (by hand; states are looked up)."""

    name: str
    edits: list[str] = field(default_factory=list)  # applied edits, display order
    redacted: str | None = None  # the redaction that applies
    # chips, first counted reaction first: (key, [(sender_id, [reaction names])])
    reactions: list[tuple[str, list[tuple[str, list[str]]]]] = field(default_factory=list)
    thread: list[str] = field(default_factory=list)  # replies under this root


@dataclass
class Case:
    name: str
    description: str
    segments: list[Segment]
    timeline: list[tuple[str, str]]  # (event name, trust state) in display order
    invalid: list[str] = field(default_factory=list)  # event names, see location rule
    findings: list[tuple[str, str, int | None]] = field(default_factory=list)
    pinned: dict[str, list[str]] | None = None
    metadata: tuple[str, bytes, bool | None] | None = None  # path, bytes, signed?
    room_id: str = ROOM
    # Section 18, by hand: relation findings as (kind, event name), at the shown copy
    relation_findings: list[tuple[str, str]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)  # every target with an aggregate
    hidden: list[str] = field(default_factory=list)  # shown rows that are not messages
    waiting: int = 0

    def locate(self, name: str) -> tuple[str, int]:
        """The first (path, line) holding the event called ``name``; segments are sorted."""
        spots = sorted((s.path, line) for s in self.segments for n, line in s.lines if n == name)
        if not spots:
            raise KeyError(name)
        return spots[0]

    def to_json(self, names: dict[str, Ev]) -> dict[str, Any]:
        paths = [s.path for s in self.segments]
        if paths != sorted(paths) or len(set(paths)) != len(paths):
            raise ValueError(f"{self.name}: list segments sorted by path, each once")
        findings = []
        for kind, path, line in self.findings:
            findings.append({"kind": kind, "severity": severity(kind), "path": path, "line": line})
        for kind, name in self.relation_findings:
            path, line = self.locate(name)
            findings.append({"kind": kind, "severity": "error", "path": path, "line": line})
        findings.sort(key=lambda f: (f["path"], f["line"] or 0, f["kind"]))

        def row(name: str, state: str) -> dict[str, Any]:
            path, line = self.locate(name)
            return {
                "name": name,
                "event_id": names[name].event_id,
                "state": state,
                "path": path,
                "line": line,
            }

        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "room_id": self.room_id,
            "pinned": self.pinned,
        }
        if self.metadata is not None:
            mpath, mdata, signed = self.metadata
            out["metadata"] = {"path": mpath, "data": mdata.decode("utf-8"), "signed": signed}
        out["segments"] = [s.to_json() for s in self.segments]
        out["expect"] = {
            "findings": findings,
            "timeline": [row(n, s) for n, s in self.timeline],
            "invalid": sorted(
                (row(n, "invalid") for n in self.invalid), key=lambda r: (r["path"], r["line"])
            ),
            "relations": self.relations_json(names),
        }
        return out

    def relations_json(self, names: dict[str, Ev]) -> dict[str, Any]:
        """``expect.relations``: the hand-written outcome of section 18, with the trust
        states of section 18.5 looked up in the hand-written timeline."""
        states = dict(self.timeline)
        order = [n for n, _ in self.timeline]
        if not set(self.hidden) <= set(order) or self.hidden != sorted(
            self.hidden, key=order.index
        ):
            raise ValueError(f"{self.name}: hidden rows are shown rows, in display order")
        relation_rows = [n for n in order if names[n].obj["type"] in RELATION_TYPES]
        if relation_rows != self.hidden:
            raise ValueError(f"{self.name}: exactly the relation events are hidden")

        def ref(name: str) -> dict[str, Any]:
            return {"name": name, "event_id": names[name].event_id}

        def edit(name: str) -> dict[str, Any]:
            new = names[name].obj["content"]["new_content"]
            return {
                **ref(name),
                "state": states[name],
                "body": new["body"],
                "msgtype": new.get("msgtype", "m.text"),
            }

        def chip(key: str, reactors: list[tuple[str, list[str]]]) -> dict[str, Any]:
            people = [
                {
                    "sender_id": sender,
                    "state": best(*(states[n] for n in events)),
                    "events": [ref(n) for n in events],
                }
                for sender, events in reactors
            ]
            return {
                "key": key,
                "count": len(people),
                "state": worst(*(p["state"] for p in people)),
                "reactors": people,
            }

        targets = []
        for t in sorted(self.targets, key=lambda t: order.index(t.name)):
            redacted = None
            if t.redacted is not None:
                reason = names[t.redacted].obj["content"].get("reason")
                redacted = {**ref(t.redacted), "state": states[t.redacted], "reason": reason}
            edits = [edit(n) for n in t.edits]
            targets.append(
                {
                    **ref(t.name),
                    "state": worst(states[t.name], *(states[n] for n in t.edits)),
                    "body": edits[-1]["body"] if edits else None,
                    "edits": edits,
                    "redacted": redacted,
                    "reactions": [chip(k, r) for k, r in t.reactions],
                    "thread": [ref(n) for n in t.thread],
                }
            )
        return {
            "targets": targets,
            "hidden": [ref(n) for n in self.hidden],
            "waiting": self.waiting,
        }


RELATION_TYPES = {"m.room.reaction", "m.room.edit", "m.room.redaction", "m.room.typing"}
RANK = ["verified", "unverified", "key-changed", "invalid"]  # best first (section 18.5)


def worst(*states: str) -> str:
    return max(states, key=RANK.index)


def best(*states: str) -> str:
    return min(states, key=RANK.index)


NOTICES = {
    "unexpected-object",
    "missing-join",
    "metadata-unsigned",
    "metadata-missing",
    "empty-segment",
}


def severity(kind: str) -> str:
    return "notice" if kind in NOTICES else "error"


V, U, K = "verified", "unverified", "key-changed"


def metadata_bytes(device: Device, room_id: str = ROOM, name: str = "Vector Room") -> bytes:
    body: dict[str, Any] = {
        "room_id": room_id,
        "name": name,
        "created_at": "2025-09-14T12:00:00.000Z",
        "version": "1.0",
        "protocol": "bucket-chat-v1",
        "creator_id": device.sender_id,
        "creator_key": device.public_text,
    }
    body["signature"] = b64(device.key.sign(canonical(body)).signature)
    return (
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        + b"\n"
    )


META_PATH = f"rooms/{ROOM}/metadata.json"


def chain_case() -> tuple[Case, dict[str, Ev]]:
    """A clean room: two users, a second device introduced properly, a reply, clock skew."""
    a1 = join("a1", ALICE, T0, 101)
    b1 = join("b1", BOB, T0 + 1 * SECOND, 102)
    a2 = msg("a2", ALICE, T0 + 2 * SECOND, 103, "Hello Bob", a1)
    b2 = msg("b2", BOB, T0 + 3 * SECOND, 104, "Hi Alice — ça va? 👋", b1)
    a3 = event(
        "a3",
        ALICE,
        T0 + 4 * SECOND,
        105,
        {"membership": "join", "displayname": "Alice", "add_device_key": ALICE2.public_text},
        kind="m.room.member",
        prev=a2,
    )
    # alice's phone clock is behind: a4 is stamped before a3 yet follows it in her chain
    a4 = msg("a4", ALICE, T0 + 3 * SECOND + 500, 106, "(sent with a slow clock)", a3)
    c1 = join("c1", ALICE2, T0 + 5 * SECOND, 107, introduced_by=ALICE)
    c2 = msg("c2", ALICE2, T0 + 6 * SECOND, 108, "now from my laptop", c1)
    b3 = msg("b3", BOB, T0 + 6 * SECOND + 500, 109, "welcome, laptop", b2, parent=c2.event_id)
    segments = sorted(
        [
            segment([a1, a2], device=ALICE),
            segment([b1, b2], device=BOB),
            segment([a3, a4], device=ALICE),
            segment([c1, c2], device=ALICE2),
            segment([b3], device=BOB),
        ],
        key=lambda s: s.path,
    )
    case = Case(
        "chain",
        "A valid room: alice (two devices, the second introduced by add_device_key and "
        "accepting it with introduced_by) and bob. "
        "a4 carries an earlier timestamp than its chain predecessor a3 and is shown after it.",
        segments,
        timeline=[
            ("a1", V),
            ("b1", V),
            ("a2", V),
            ("b2", V),
            ("a3", V),
            ("a4", V),
            ("c1", V),
            ("c2", V),
            ("b3", V),
        ],
        metadata=(META_PATH, metadata_bytes(ALICE), True),
        targets=[Target("c2", thread=["b3"])],  # b3 replies to c2: a thread of one
    )
    return case, {e.name: e for e in (a1, b1, a2, b2, a3, a4, c1, c2, b3)}


def base_room() -> dict[str, Ev]:
    """The room most broken cases start from: alice a1..a4, bob b1..b3."""
    a1 = join("a1", ALICE, T0, 1)
    b1 = join("b1", BOB, T0 + 1 * SECOND, 2)
    a2 = msg("a2", ALICE, T0 + 2 * SECOND, 3, "one", a1)
    b2 = msg("b2", BOB, T0 + 3 * SECOND, 4, "hi", b1)
    a3 = msg("a3", ALICE, T0 + 4 * SECOND, 5, "two", a2)
    a4 = msg("a4", ALICE, T0 + 5 * SECOND, 6, "three", a3)
    b3 = msg("b3", BOB, T0 + 6 * SECOND, 7, "bye", b2)
    return {e.name: e for e in (a1, b1, a2, b2, a3, a4, b3)}


def sort_segments(*segments: Segment) -> list[Segment]:
    return sorted(segments, key=lambda s: s.path)


BASE_TIMELINE = [("a1", V), ("b1", V), ("a2", V), ("b2", V), ("a3", V), ("a4", V), ("b3", V)]


def broken_cases() -> list[tuple[Case, dict[str, Ev]]]:
    r = base_room()
    a1, b1, a2, b2, a3, a4, b3 = (r[k] for k in ("a1", "b1", "a2", "b2", "a3", "a4", "b3"))
    cases: list[tuple[Case, dict[str, Ev]]] = []

    def add(case: Case, *extra: Ev) -> None:
        names = dict(r)
        names.update({e.name: e for e in extra})
        cases.append((case, names))

    # bad signature: b3 carries a signature by bob's key over other bytes
    b3_bad = altered(b3, "b3", signature=b64(BOB.key.sign(b"not this event").signature))
    bob = segment([b1, b2, b3_bad], device=BOB)
    add(
        Case(
            "bad-signature",
            "b3's signature is a valid Ed25519 signature by bob's key, but over other bytes. "
            "b3 is invalid: never shown, always reported.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob),
            timeline=[x for x in BASE_TIMELINE if x[0] != "b3"],
            invalid=["b3"],
            findings=[("invalid-signature", bob.path, 3)],
        )
    )

    # modified body: a2's body changed after signing; its successor names a missing hash
    a2_mod = altered(a2, "a2", body="one (edited by someone else)")
    alice = segment([a1, a2_mod, a3, a4], device=ALICE)
    add(
        Case(
            "modified-body",
            "a2's body was changed after signing. a2 fails its signature; a3 names a2's "
            "original hash, which no event in the room has: a gap at a3.",
            sort_segments(alice, segment([b1, b2, b3], device=BOB)),
            timeline=[("a1", V), ("b1", V), ("b2", V), ("a3", U), ("a4", V), ("b3", V)],
            invalid=["a2"],
            findings=[("invalid-signature", alice.path, 2), ("gap", alice.path, 3)],
        )
    )

    # gap: the segment holding a3 is missing
    a_first, a_last = segment([a1, a2], device=ALICE), segment([a4], device=ALICE)
    add(
        Case(
            "gap",
            "The segment holding a3 is missing: a4's predecessor is not in the room.",
            sort_segments(a_first, a_last, segment([b1, b2, b3], device=BOB)),
            timeline=[("a1", V), ("b1", V), ("a2", V), ("b2", V), ("a4", U), ("b3", V)],
            findings=[("gap", a_last.path, 1)],
        )
    )

    # fork: two different events both follow a2
    a3_fork = msg("a3x", ALICE, T0 + 4 * SECOND + 500, 50, "two (other history)", a2)
    alice, fork = segment([a1, a2, a3, a4], device=ALICE), segment([a3_fork], device=ALICE)
    add(
        Case(
            "fork",
            "a3 and a3x both name a2 as predecessor. One fork finding, at the child with "
            "the lowest (timestamp_ms, event_id); both children unverified; a4 (after a3) "
            "is verified again.",
            sort_segments(alice, fork, segment([b1, b2, b3], device=BOB)),
            timeline=[
                ("a1", V),
                ("b1", V),
                ("a2", V),
                ("b2", V),
                ("a3", U),
                ("a3x", U),
                ("a4", V),
                ("b3", V),
            ],
            findings=[("fork", alice.path, 3)],
        ),
        a3_fork,
    )

    # replay, both copies validly signed: same event id, different content
    b2_other = msg("b2x", BOB, b2.ts, 4, "hi (a second, different text)", b1)
    assert b2_other.event_id == b2.event_id
    bob, again = segment([b1, b2, b3], device=BOB), segment([b2_other], device=BOB)
    add(
        Case(
            "replay-both-valid",
            "bob signed two different events with the same event id. One replay finding at "
            "the first copy by (path, line); that copy is shown, the other is dropped.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob, again),
            timeline=BASE_TIMELINE,
            findings=[("replay", bob.path, 2)],
        ),
        b2_other,
    )

    # replay, the second copy forged (body changed, signature kept)
    b2_forged = altered(b2, "b2f", body="send me your password")
    bob, again = segment([b1, b2, b3], device=BOB), segment([b2_forged], device=BOB)
    add(
        Case(
            "replay-forged",
            "A forged copy of b2 (same event id, body changed, signature kept) in another "
            "segment: invalid-signature for the copy, replay for the event id; b2 is shown.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob, again),
            timeline=BASE_TIMELINE,
            invalid=["b2f"],
            findings=[("replay", bob.path, 2), ("invalid-signature", again.path, 1)],
        ),
        b2_forged,
    )

    # replay by another key: alice signs an event of her own under bob's event id b2 and
    # her segment sorts first. Both copies are shown (each its key's first good copy, in
    # its own chain: bob's has no gap); relations naming the id apply to neither.
    b2_alice = msg("b2a", ALICE, b2.ts, 4, "bob never said this", a4)
    assert b2_alice.event_id == b2.event_id
    e1 = edit("e1", BOB, T0 + 7 * SECOND, 31, b2, "hi (edited)", b3)
    r1 = react("r1", ALICE, T0 + 8 * SECOND, 32, b2, "👍", b2_alice)
    q1 = msg("q1", BOB, T0 + 9 * SECOND, 33, "as I said", e1, parent=b2.event_id)
    alice = segment([a1, a2, a3, a4, b2_alice, r1], device=ALICE)
    bob = segment([b1, b2, b3, e1, q1], device=BOB)
    add(
        Case(
            "replay-other-key",
            "alice signed an event of her own (b2a) under bob's event id b2, in a segment "
            "that sorts first. Both copies are shown, each in its own key's chain (b2a "
            "after a4, bob's chain without a gap); one replay finding at the first copy. "
            "The id takes no relations: bob's edit e1, alice's reaction r1 and bob's reply "
            "q1 are relation-invalid (q1 is shown, in no thread).",
            sort_segments(alice, bob),
            timeline=[
                ("a1", V),
                ("b1", V),
                ("a2", V),
                ("b2", V),
                ("a3", V),
                ("a4", V),
                ("b2a", V),
                ("b3", V),
                ("e1", V),
                ("r1", V),
                ("q1", V),
            ],
            findings=[("replay", alice.path, 5)],
            relation_findings=[
                ("relation-invalid", "e1"),
                ("relation-invalid", "r1"),
                ("relation-invalid", "q1"),
            ],
            hidden=["e1", "r1"],
        ),
        b2_alice,
        e1,
        r1,
        q1,
    )

    # identical duplicate: the same segment stored twice under two names
    bob = segment([b1, b2, b3], device=BOB)
    copy = segment([b1, b2, b3], client_id=BOB.client_id + "-r1")
    add(
        Case(
            "identical-duplicate",
            "bob's segment stored twice under two names (a retried write). Identical copies "
            "are silently de-duplicated: no finding.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob, copy),
            timeline=BASE_TIMELINE,
        )
    )

    # wrong room: a valid event of another room inside this room's segment
    stray = join("stray", BOB, b2.ts + 100, 60, room_id=OTHER_ROOM)
    bob = segment([b1, stray.line, b2, b3], device=BOB)
    add(
        Case(
            "wrong-room",
            "Line 2 of bob's segment is a validly signed event of room 'other-room'. It is "
            "reported and skipped; the events around it are kept.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob),
            timeline=BASE_TIMELINE,
            findings=[("wrong-room", bob.path, 2)],
        )
    )

    # float: a line with a non-integer number
    float_line = b2.line.replace(b'"msgtype":"m.text"', b'"msgtype":"m.text","ratio":0.5')
    assert float_line != b2.line
    bob = segment([b1, b2, float_line, b3], device=BOB)
    add(
        Case(
            "float",
            "Line 3 of bob's segment holds the number 0.5. Floats are forbidden anywhere; "
            "the line is reported and skipped.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob),
            timeline=BASE_TIMELINE,
            findings=[("float-not-allowed", bob.path, 3)],
        )
    )

    # a second key without an introduction: a conflict over alice's name
    m1 = join("m1", MALLORY, T0 + 4 * SECOND + 500, 70)
    m2 = msg("m2", MALLORY, T0 + 5 * SECOND + 500, 71, "it's me, alice, new phone", m1)
    mall = segment([m1, m2], device=MALLORY)
    alice = segment([a1, a2, a3, a4], device=ALICE)
    add(
        Case(
            "key-conflict",
            "A second key signs as alice@example.com and no key of alice introduced it. Two "
            "keys claim alice and neither introduced the other: every event of both is "
            "key-changed, one key-conflict finding at alice's first event in display order.",
            sort_segments(alice, segment([b1, b2, b3], device=BOB), mall),
            timeline=[
                ("a1", K),
                ("b1", V),
                ("a2", K),
                ("b2", V),
                ("a3", K),
                ("m1", K),
                ("a4", K),
                ("m2", K),
                ("b3", V),
            ],
            findings=[("key-conflict", alice.path, 1)],
        ),
        m1,
        m2,
    )
    add(
        Case(
            "key-changed",
            "The same room, read by a reader that pinned alice's key before: mallory's "
            "events are key-changed; one finding, at its first event in display order.",
            sort_segments(alice, segment([b1, b2, b3], device=BOB), mall),
            timeline=[
                ("a1", V),
                ("b1", V),
                ("a2", V),
                ("b2", V),
                ("a3", V),
                ("m1", K),
                ("a4", V),
                ("m2", K),
                ("b3", V),
            ],
            findings=[("key-changed", mall.path, 1)],
            pinned={ALICE.sender_id: [ALICE.public_text]},
        ),
        m1,
        m2,
    )

    # the backdated impostor: stamped before alice's first event, "introducing" her key
    i1 = join("i1", MALLORY, T0 - 2 * SECOND, 72)
    i2 = event(
        "i2",
        MALLORY,
        T0 - 1 * SECOND,
        73,
        {"membership": "join", "add_device_key": ALICE.public_text},
        kind="m.room.member",
        prev=i1,
    )
    imp = segment([i1, i2], device=MALLORY)
    add(
        Case(
            "impostor-backdated",
            "An un-introduced key signs as alice, stamped before alice's first event, and "
            "states that it introduces alice's real key. Alice never accepted that: both "
            "keys claim alice, a key-conflict; nothing of either is verified.",
            sort_segments(alice, segment([b1, b2, b3], device=BOB), imp),
            timeline=[
                ("i1", K),
                ("i2", K),
                ("a1", K),
                ("b1", V),
                ("a2", K),
                ("b2", V),
                ("a3", K),
                ("a4", K),
                ("b3", V),
            ],
            findings=[("key-conflict", imp.path, 1)],
        ),
        i1,
        i2,
    )

    # an unsigned line under the name of a user who signs
    u1 = {
        "event_id": f"{ROOM}::{iso_utc_ms(T0 + 4 * SECOND + 200)}::{fixed_uuid(74)}",
        "room_id": ROOM,
        "timestamp_ms": T0 + 4 * SECOND + 200,
        "sender_id": ALICE.sender_id,
        "type": "m.room.message",
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "bm90IGNoZWNrYWJsZQ==",
        "content": {"body": "pay mallory", "msgtype": "m.text"},
    }
    unsigned = Ev("u1", u1, stored_line(u1))
    forged = segment([unsigned], client_id="alice")
    add(
        Case(
            "impersonation",
            "An unsigned (reference-style) event claims to be from alice, who signs her "
            "events: shown key-changed, one impersonation finding.",
            sort_segments(alice, segment([b1, b2, b3], device=BOB), forged),
            timeline=[*BASE_TIMELINE[:4], ("a3", V), ("u1", K), ("a4", V), ("b3", V)],
            findings=[("impersonation", forged.path, 1)],
        ),
        unsigned,
    )

    # bob witnessed alice's newest event; her newest segment was deleted afterwards
    w3 = event(
        "b3",
        BOB,
        T0 + 6 * SECOND,
        75,
        {"body": "bye", "msgtype": "m.text"},
        prev=b2,
        extra={"witness": {ALICE.public_text: a4.hash}},
    )
    bob = segment([b1, b2, w3], device=BOB)
    add(
        Case(
            "truncated-chain",
            "bob's b3 witnesses a4, alice's newest event; the segment holding a4 is gone. "
            "alice's remaining chain is intact, but a truncated-chain finding names the "
            "missing event at bob's witnessing event.",
            sort_segments(segment([a1, a2, a3], device=ALICE), bob),
            timeline=[x for x in BASE_TIMELINE if x[0] != "a4"],
            findings=[("truncated-chain", bob.path, 3)],
        ),
        w3,
    )

    # pinned: the reader had pinned another key for alice before
    alice = segment([a1, a2, a3, a4], device=ALICE)
    add(
        Case(
            "pinned-key",
            "The reader pinned a different key for alice (MALLORY's) before opening the "
            "room: every event of alice's key is key-changed.",
            sort_segments(alice, segment([b1, b2, b3], device=BOB)),
            timeline=[("a1", K), ("b1", V), ("a2", K), ("b2", V), ("a3", K), ("a4", K), ("b3", V)],
            findings=[("key-changed", alice.path, 1)],
            pinned={ALICE.sender_id: [MALLORY.public_text]},
        )
    )

    # a device used before the statement that introduces it
    c1 = join("c1", ALICE2, T0 + 2 * SECOND + 500, 80, introduced_by=ALICE)
    a_add = event(
        "a5",
        ALICE,
        T0 + 5 * SECOND + 500,
        81,
        {"membership": "join", "add_device_key": ALICE2.public_text},
        kind="m.room.member",
        prev=a4,
    )
    c2 = msg("c2", ALICE2, T0 + 7 * SECOND, 82, "laptop, after the statement", c1)
    laptop = segment([c1, c2], device=ALICE2)
    add(
        Case(
            "device-used-before-added",
            "alice's laptop key writes c1 before alice's phone key introduces it (a5). c1 is "
            "key-changed; from the statement on (display order) the key is trusted: c2 "
            "is verified.",
            sort_segments(
                segment([a1, a2, a3, a4, a_add], device=ALICE),
                segment([b1, b2, b3], device=BOB),
                laptop,
            ),
            timeline=[
                ("a1", V),
                ("b1", V),
                ("a2", V),
                ("c1", K),
                ("b2", V),
                ("a3", V),
                ("a4", V),
                ("a5", V),
                ("b3", V),
                ("c2", V),
            ],
            findings=[("key-changed", laptop.path, 1)],
        ),
        c1,
        a_add,
        c2,
    )

    # a device-add statement in a non-join member event does not introduce the key
    a_leave = event(
        "a5",
        ALICE,
        T0 + 5 * SECOND + 500,
        83,
        {"membership": "leave", "add_device_key": ALICE2.public_text},
        kind="m.room.member",
        prev=a4,
    )
    c1b = join("c1", ALICE2, T0 + 6 * SECOND + 500, 84, introduced_by=ALICE)
    laptop = segment([c1b], device=ALICE2)
    add(
        Case(
            "device-add-not-join",
            "add_device_key inside a membership 'leave' event introduces nothing: for a "
            "reader that pinned alice's phone key, the laptop key is key-changed.",
            sort_segments(
                segment([a1, a2, a3, a4, a_leave], device=ALICE),
                segment([b1, b2, b3], device=BOB),
                laptop,
            ),
            timeline=[*BASE_TIMELINE[:-1], ("a5", V), ("b3", V), ("c1", K)],
            findings=[("key-changed", laptop.path, 1)],
            pinned={ALICE.sender_id: [ALICE.public_text]},
        ),
        a_leave,
        c1b,
    )

    # sender mismatch: bob's key signs an event claiming to be from alice
    lie = msg("lie", BOB, T0 + 7 * SECOND, 90, "I am alice", b3, sender_id=ALICE.sender_id)
    bob = segment([b1, b2, b3, lie], device=BOB)
    add(
        Case(
            "sender-mismatch",
            "bob's key (bound to bob@example.com by its join) signs an event whose "
            "sender_id is alice@example.com. Invalid: never shown, always reported.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob),
            timeline=BASE_TIMELINE,
            invalid=["lie"],
            findings=[("sender-mismatch", bob.path, 4)],
        ),
        lie,
    )

    # missing join: bob's first event is a message
    n1 = event("n1", BOB, T0 + 1 * SECOND, 91, {"body": "no join first"}, prev=None)
    n2 = msg("n2", BOB, T0 + 3 * SECOND, 92, "still verified", n1)
    bob = segment([n1, n2], device=BOB)
    add(
        Case(
            "missing-join",
            "bob's chain starts with a message, not a join: a notice, not an error; the "
            "events stay verified.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob),
            timeline=[("a1", V), ("n1", V), ("a2", V), ("n2", V), ("a3", V), ("a4", V)],
            findings=[("missing-join", bob.path, 1)],
        ),
        n1,
        n2,
    )

    # truncated last line (a write cut off)
    cut = b3.line[: len(b3.line) // 2]
    bob = segment([b1, b2, cut], path=seg_path(ROOM, b1.ts, b2.ts, BOB.client_id))
    add(
        Case(
            "truncated",
            "bob's segment ends in half a line with no newline: a truncated write. The "
            "events before it are kept.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob),
            timeline=[x for x in BASE_TIMELINE if x[0] != "b3"],
            findings=[("truncated", bob.path, 3)],
        )
    )

    # the segment's name lies about its timestamps
    liar_path = seg_path(ROOM, T0 - 60 * SECOND, T0 + 2 * SECOND, ALICE.client_id)
    liar = segment([a1, a2], path=liar_path)
    add(
        Case(
            "name-lies",
            "A segment named messages_<start>_<end>_… whose start is a minute before its "
            "first event. Reported for the object (no line); the events are still used.",
            sort_segments(liar, segment([a3, a4], device=ALICE), segment([b1, b2, b3], device=BOB)),
            timeline=BASE_TIMELINE,
            findings=[("segment-name-mismatch", liar.path, None)],
        )
    )

    # bad lines of several kinds between good ones
    # event at depth 1, content 2, x 3, 14 nested objects: the innermost 1 is at depth 17
    nested: Any = 1
    for _ in range(14):
        nested = {"a": nested}
    deep = event("deep", BOB, b2.ts + 200, 93, {"body": "deep", "x": nested}, prev=None)
    bob = segment(
        [b1, b"\xff\xfe not utf-8\n", b2, b"{not json\n", deep.line, b"\n", b3],
        device=BOB,
    )
    add(
        Case(
            "bad-lines",
            "Invalid UTF-8 (line 2), not JSON (line 4), nesting deeper than 16 (line 5) and "
            "a blank line (6, ignored) between bob's good events.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob),
            timeline=[("a1", V), ("b1", V), ("a2", V), ("b2", V), ("a3", V), ("a4", V), ("b3", V)],
            findings=[
                ("bad-encoding", bob.path, 2),
                ("bad-json", bob.path, 4),
                ("too-deep", bob.path, 5),
            ],
        )
    )

    # schema: a field missing, and a bool where the timestamp goes
    no_content = {k: v for k, v in b2.obj.items() if k != "content"}
    bool_ts = dict(b2.obj, timestamp_ms=True)
    bob = segment(
        [
            b1,
            stored_line(no_content),
            stored_line(bool_ts),
            b2,
            b3,
        ],
        device=BOB,
    )
    add(
        Case(
            "bad-schema",
            "Line 2 lacks content; line 3 has true as timestamp_ms. Both are bad-schema.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob),
            timeline=BASE_TIMELINE,
            findings=[("bad-schema", bob.path, 2), ("bad-schema", bob.path, 3)],
        )
    )

    # CRLF line ends, blank lines and no final newline are all fine
    crlf = b"\r\n\r\n".join(e.line.rstrip(b"\n") for e in (b1, b2, b3))
    bob = Segment(
        seg_path(ROOM, b1.ts, b3.ts, BOB.client_id), crlf, [("b1", 1), ("b2", 3), ("b3", 5)]
    )
    add(
        Case(
            "crlf-and-blank-lines",
            "bob's segment uses CRLF, has blank lines between events and no final newline. "
            "Nothing to report.",
            sort_segments(segment([a1, a2, a3, a4], device=ALICE), bob),
            timeline=BASE_TIMELINE,
        )
    )

    # an empty segment
    empty = Segment(seg_path(ROOM, T0, T0, "nobody"), b"", [])
    add(
        Case(
            "empty-segment",
            "A segment object with no bytes: a notice.",
            sort_segments(
                empty, segment([a1, a2, a3, a4], device=ALICE), segment([b1, b2, b3], device=BOB)
            ),
            timeline=BASE_TIMELINE,
            findings=[("empty-segment", empty.path, None)],
        )
    )

    # room metadata: forged and wrong room
    good_meta = metadata_bytes(ALICE)
    forged = good_meta.replace(b'"name":"Vector Room"', b'"name":"Free Crypto Room"')
    assert forged != good_meta
    clean = [segment([a1, a2, a3, a4], device=ALICE), segment([b1, b2, b3], device=BOB)]
    add(
        Case(
            "metadata-forged",
            "metadata.json with its name changed after signing: metadata-invalid; the room "
            "opens with the metadata shown as carrying an invalid signature.",
            sort_segments(*clean),
            timeline=BASE_TIMELINE,
            findings=[("metadata-invalid", META_PATH, None)],
            metadata=(META_PATH, forged, False),
        )
    )
    add(
        Case(
            "metadata-signer-unknown",
            "metadata.json validly signed by mallory's key but naming alice as creator; "
            "alice's key in the room is another one: metadata-signer-unknown. The metadata "
            "is used (its signature is good) but must not be shown as signed by alice.",
            sort_segments(*clean),
            timeline=BASE_TIMELINE,
            findings=[("metadata-signer-unknown", META_PATH, None)],
            metadata=(META_PATH, metadata_bytes(MALLORY), True),
        )
    )
    add(
        Case(
            "metadata-wrong-room",
            "metadata.json (validly signed) names another room: metadata-invalid, not used.",
            sort_segments(*clean),
            timeline=BASE_TIMELINE,
            findings=[("metadata-invalid", META_PATH, None)],
            metadata=(META_PATH, metadata_bytes(ALICE, room_id=OTHER_ROOM), None),
        )
    )
    return cases


# ---------------------------------------------------------------------------------------
# relations.json and broken/relation-*.json: section 18


def react(
    name: str,
    device: Device,
    ts: int,
    n: int,
    target: Ev | str,
    text: Any,
    prev: Ev | None,
    **kw: Any,
) -> Ev:
    tid = target.event_id if isinstance(target, Ev) else target
    content = {"relates_to": tid, "reaction": text}
    return event(name, device, ts, n, content, kind="m.room.reaction", prev=prev, **kw)


def edit(
    name: str,
    device: Device,
    ts: int,
    n: int,
    target: Ev | str,
    body: str,
    prev: Ev | None,
    msgtype: str = "m.text",
    **kw: Any,
) -> Ev:
    tid = target.event_id if isinstance(target, Ev) else target
    content = {"replaces": tid, "new_content": {"body": body, "msgtype": msgtype}}
    return event(name, device, ts, n, content, kind="m.room.edit", prev=prev, **kw)


def redact(
    name: str,
    device: Device,
    ts: int,
    n: int,
    target: Ev | str,
    prev: Ev | None,
    reason: str | None = None,
    **kw: Any,
) -> Ev:
    tid = target.event_id if isinstance(target, Ev) else target
    content: dict[str, Any] = {"redacts": tid}
    if reason is not None:
        content["reason"] = reason
    return event(name, device, ts, n, content, kind="m.room.redaction", prev=prev, **kw)


def missing_id(n: int, ts: int = T0 + 30 * SECOND, room_id: str = ROOM) -> str:
    """An event id of the form of ``room_id`` that no event in the vectors has."""
    return f"{room_id}::{iso_utc_ms(ts)}::{fixed_uuid(n)}"


def relations_case() -> tuple[Case, dict[str, Ev]]:
    """A clean room with every relation of section 18 and no finding."""

    def at(k: int) -> int:
        return T0 + k * SECOND

    a1 = join("a1", ALICE, at(0), 301)
    b1 = join("b1", BOB, at(1), 302)
    a2 = msg("a2", ALICE, at(2), 303, "Lunch at noon?", a1)
    a3 = event(
        "a3",
        ALICE,
        at(3),
        304,
        {"membership": "join", "displayname": "Alice", "add_device_key": ALICE2.public_text},
        kind="m.room.member",
        prev=a2,
    )
    c1 = join("c1", ALICE2, at(4), 305, introduced_by=ALICE)
    # a thread of two under a2: bob replies to a2, alice (laptop) replies to that reply
    b2 = msg("b2", BOB, at(5), 306, "Yes! Where?", b1, parent=a2.event_id)
    c2 = msg("c2", ALICE2, at(6), 307, "The usual place", c1, parent=b2.event_id)
    # reactions: bob twice with the same emoji (counted once), alice with spaces around it
    b3 = react("b3", BOB, at(7), 308, a2, "👍", b2)
    b4 = react("b4", BOB, at(8), 309, a2, "👍", b3)
    # one text in two spellings: decomposed (alice) and precomposed (bob) are one chip
    a4 = react("a4", ALICE, at(9), 310, b2, "e\u0301", a3)
    b5 = react("b5", BOB, at(10), 311, b2, "\u00e9", b4)
    a5 = react("a5", ALICE, at(11), 312, a2, " 👍 ", a4)
    # an edit, and an edit of the edit from alice's other (introduced) device
    a6 = edit("a6", ALICE, at(12), 313, a2, "Lunch at 12:30?", a5)
    c3 = edit("c3", ALICE2, at(13), 314, a6, "Lunch at 13:00?", c2)
    # a message with an edit and a reaction, then redacted: all three go
    b6 = msg("b6", BOB, at(14), 315, "see you tomorow", b5)
    b7 = edit("b7", BOB, at(15), 316, b6, "see you tomorrow", b6)
    a7 = react("a7", ALICE, at(16), 317, b6, "😂", a6)
    b8 = redact("b8", BOB, at(17), 318, b6, b7, reason="wrong room")
    # a reaction taken back by its sender: a redaction of the reaction
    a8 = react("a8", ALICE, at(18), 319, b2, "\u2764\ufe0f", a7)
    a9 = redact("a9", ALICE, at(19), 320, a8, a8)
    # waiting: a reaction and a reply whose targets are not in the room (yet)
    b9 = react("b9", BOB, at(20), 321, missing_id(399), "🎉", b8)
    b10 = event("b10", BOB, at(21), 322, {"typing": True}, kind="m.room.typing", prev=b9)
    c4 = msg("c4", ALICE2, at(22), 323, "about that older message", c3, parent=missing_id(398))
    evs = [
        a1,
        b1,
        a2,
        a3,
        c1,
        b2,
        c2,
        b3,
        b4,
        a4,
        b5,
        a5,
        a6,
        c3,
        b6,
        b7,
        a7,
        b8,
        a8,
        a9,
        b9,
        b10,
        c4,
    ]
    segments = sort_segments(
        segment([a1, a2, a3, a4, a5], device=ALICE),
        segment([a6, a7, a8, a9], device=ALICE),
        segment([b1, b2, b3, b4, b5], device=BOB),
        segment([b6, b7, b8, b9, b10], device=BOB),
        segment([c1, c2, c3, c4], device=ALICE2),
    )
    case = Case(
        "relations",
        "A clean room with relations (section 18). a2 has a thread of two (b2 replies to "
        "a2, c2 to b2), a 👍 chip of bob (two reactions, counted once) and alice (' 👍 ', "
        "spaces removed), and two applied edits: a6, then c3 from alice's laptop editing "
        "a6, which applies to a2. b2 has one 'é' chip written in two spellings (NFD by "
        "alice, NFC by bob); alice's ❤️ (a8) on it is taken back by her redaction a9. b6 "
        "is redacted by bob (b8): its edit b7 and alice's reaction a7 go with it. b9 reacts "
        "to and c4 replies to events not in the room: they wait (2). b10 is a typing "
        "notice: hidden, no finding. No finding at all.",
        segments,
        timeline=[(e.name, V) for e in evs],
        hidden=[
            "b3",
            "b4",
            "a4",
            "b5",
            "a5",
            "a6",
            "c3",
            "b7",
            "a7",
            "b8",
            "a8",
            "a9",
            "b9",
            "b10",
        ],
        targets=[
            Target(
                "a2",
                edits=["a6", "c3"],
                reactions=[("👍", [(BOB.sender_id, ["b3", "b4"]), (ALICE.sender_id, ["a5"])])],
                thread=["b2", "c2"],
            ),
            Target(
                "b2", reactions=[("\u00e9", [(ALICE.sender_id, ["a4"]), (BOB.sender_id, ["b5"])])]
            ),
            Target("b6", redacted="b8"),
            Target("a8", redacted="a9"),
        ],
        waiting=2,
        metadata=(META_PATH, metadata_bytes(ALICE), True),
    )
    return case, {e.name: e for e in evs}


def relation_broken_cases() -> list[tuple[Case, dict[str, Ev]]]:
    r = base_room()
    a1, b1, a2, b2, a3, a4, b3 = (r[k] for k in ("a1", "b1", "a2", "b2", "a3", "a4", "b3"))
    alice = segment([a1, a2, a3, a4], device=ALICE)
    cases: list[tuple[Case, dict[str, Ev]]] = []

    def add(case: Case, *extra: Ev) -> None:
        names = dict(r)
        names.update({e.name: e for e in extra})
        cases.append((case, names))

    def after(seconds: float) -> int:
        return T0 + int(seconds * SECOND)

    # another sender's edit and redaction
    x1 = edit("x1", BOB, after(7), 401, a2, "one (as bob would have it)", b3)
    x2 = redact("x2", BOB, after(8), 402, a3, x1, reason="bob does not like it")
    bob = segment([b1, b2, b3, x1, x2], device=BOB)
    add(
        Case(
            "relation-not-sender",
            "bob edits alice's a2 (x1) and redacts alice's a3 (x2): neither applies, each "
            "is relation-not-sender; a2 keeps its text and a3 stays shown.",
            sort_segments(alice, bob),
            timeline=[*BASE_TIMELINE, ("x1", V), ("x2", V)],
            relation_findings=[("relation-not-sender", "x1"), ("relation-not-sender", "x2")],
            hidden=["x1", "x2"],
        ),
        x1,
        x2,
    )

    # an impostor key (claims alice, never introduced) edits alice's message
    m1 = join("m1", MALLORY, after(5.5), 403)
    m2 = edit("m2", MALLORY, after(6.5), 404, a2, "one (send coins to mallory)", m1)
    # reactions keep their senders' states: bob's verified 👍 and the impostor's
    # key-changed 👍 (as alice) make a key-changed chip; alice's own 🎉 and the impostor's
    # make alice a verified reactor (a sender's best state among its reactions)
    m3 = react("m3", MALLORY, after(7.5), 405, a2, "👍", m2)
    ok = react("ok", BOB, after(8), 406, a2, "👍", b3)
    a5 = react("a5", ALICE, after(8.5), 407, a2, "🎉", a4)
    m4 = react("m4", MALLORY, after(9), 408, a2, "🎉", m3)
    mall = segment([m1, m2, m3, m4], device=MALLORY)
    add(
        Case(
            "relation-impostor-edit",
            "A key that claims alice but was never introduced (mallory's; alice's key is "
            "pinned) edits alice's a2 (m2): the edit is key-changed, speaks for nobody and "
            "does not apply (relation-not-sender); a2 keeps its text and stays verified. "
            "Its reactions count, marked: the 👍 chip of bob (verified) and 'alice' (m3, "
            "key-changed) is key-changed; in the 🎉 chip alice is verified (her own a5 is "
            "her best reaction) although m4 is key-changed.",
            sort_segments(
                segment([a1, a2, a3, a4, a5], device=ALICE),
                segment([b1, b2, b3, ok], device=BOB),
                mall,
            ),
            timeline=[
                *BASE_TIMELINE[:-1],
                ("m1", K),
                ("b3", V),
                ("m2", K),
                ("m3", K),
                ("ok", V),
                ("a5", V),
                ("m4", K),
            ],
            findings=[("key-changed", mall.path, 1)],
            relation_findings=[("relation-not-sender", "m2")],
            pinned={ALICE.sender_id: [ALICE.public_text]},
            hidden=["m2", "m3", "ok", "a5", "m4"],
            targets=[
                Target(
                    "a2",
                    reactions=[
                        ("👍", [(ALICE.sender_id, ["m3"]), (BOB.sender_id, ["ok"])]),
                        ("🎉", [(ALICE.sender_id, ["a5", "m4"])]),
                    ],
                )
            ],
        ),
        m1,
        m2,
        m3,
        ok,
        a5,
        m4,
    )

    # applied relations that are not verified: the aggregates stay marked
    lost1 = msg("lost1", ALICE, after(6.5), 407, "never stored", a4)
    e1 = edit("e1", ALICE, after(7), 408, a2, "one (first fix)", lost1)
    e2 = edit("e2", ALICE, after(8), 409, a2, "one (second fix)", e1)
    lost2 = msg("lost2", ALICE, after(9), 410, "never stored either", e2)
    d1 = redact("d1", ALICE, after(10), 411, a3, lost2, reason="never mind")
    later = segment([e1, e2, d1], device=ALICE)
    add(
        Case(
            "relation-unverified",
            "Two of alice's events are missing from storage, so her edit e1 and her "
            "redaction d1 follow gaps and are unverified; e2, after e1, is verified. Both "
            "edits apply to a2 (e2 gives the text), and a2 is shown unverified: an edited "
            "message is no more trusted than any of its applied edits. a3 is redacted, "
            "and the deletion is unverified like d1.",
            sort_segments(alice, later, segment([b1, b2, b3], device=BOB)),
            timeline=[*BASE_TIMELINE, ("e1", U), ("e2", V), ("d1", U)],
            findings=[("gap", later.path, 1), ("gap", later.path, 3)],
            hidden=["e1", "e2", "d1"],
            targets=[Target("a2", edits=["e1", "e2"]), Target("a3", redacted="d1")],
        ),
        e1,
        e2,
        d1,
    )

    # targets in another room
    elsewhere = missing_id(499, room_id=OTHER_ROOM)
    y1 = react("y1", BOB, after(7), 411, elsewhere, "👍", b3)
    y2 = msg("y2", BOB, after(8), 412, "replying over there", y1, parent=elsewhere)
    y3 = edit("y3", ALICE, after(9), 413, elsewhere, "edited over there", a4)
    y4 = redact("y4", ALICE, after(10), 414, elsewhere, y3)
    # a room id that is a prefix of this one's is another room too
    y5 = react("y5", BOB, after(11), 415, missing_id(498, room_id=ROOM[:-1]), "👍", y2)
    add(
        Case(
            "relation-cross-room",
            "A reaction (y1), a reply (y2), an edit (y3) and a redaction (y4) naming an "
            f"event of {OTHER_ROOM!r}, and a reaction (y5) naming one of {ROOM[:-1]!r}: "
            "each is relation-cross-room and ignored; the reply is still shown, without a "
            "thread.",
            sort_segments(
                segment([a1, a2, a3, a4, y3, y4], device=ALICE),
                segment([b1, b2, b3, y1, y2, y5], device=BOB),
            ),
            timeline=[*BASE_TIMELINE, ("y1", V), ("y2", V), ("y3", V), ("y4", V), ("y5", V)],
            relation_findings=[("relation-cross-room", n) for n in ("y1", "y2", "y3", "y4", "y5")],
            hidden=["y1", "y3", "y4", "y5"],
        ),
        y1,
        y2,
        y3,
        y4,
        y5,
    )

    # malformed content
    def rel(
        name: str, device: Device, ts: int, n: int, kind: str, content: dict[str, Any], prev: Ev
    ) -> Ev:
        return event(name, device, ts, n, content, kind=kind, prev=prev)

    R, E, D = "m.room.reaction", "m.room.edit", "m.room.redaction"
    good = react("ok", BOB, after(7), 420, a2, "👍", b3)
    z1 = rel("z1", BOB, after(8), 421, R, {"reaction": "👍"}, good)
    z2 = rel("z2", BOB, after(9), 422, R, {"relates_to": 42, "reaction": "👍"}, z1)
    z3 = rel("z3", BOB, after(10), 423, R, {"relates_to": "", "reaction": "👍"}, z2)
    z4 = rel("z4", BOB, after(11), 424, R, {"relates_to": a2.event_id}, z3)
    z5 = react("z5", BOB, after(12), 425, a2, "   ", z4)
    z6 = react("z6", BOB, after(13), 426, a2, "ok\u202e", z5)  # a bidi override
    z7 = react("z7", BOB, after(14), 427, a2, "x" * 65, z6)
    z8 = react("z8", BOB, after(15), 428, a2, "two\nlines", z7)
    z9 = react("z9", BOB, after(15.5), 429, a2, "\u200d\ufe0f\u0301", z8)  # shows nothing
    z10 = react("z10", BOB, after(15.7), 430, a2, "👍\u2028👍", z9)  # a line separator
    z11 = react("z11", BOB, after(15.8), 436, a2, "\u2800\u3164", z10)  # blank letters only
    w1 = rel("w1", ALICE, after(8.5), 431, E, {"replaces": a2.event_id}, a4)
    w2 = edit("w2", ALICE, after(9.5), 432, a2, "  ", w1)
    w3 = edit("w3", ALICE, after(10.5), 433, a2, "file.pdf", w2, msgtype="m.file")
    w4 = rel(
        "w4", ALICE, after(11.5), 434, E, {"replaces": a2.event_id, "new_content": {"body": 7}}, w3
    )
    w5 = rel("w5", ALICE, after(12.5), 435, D, {"reason": "no target"}, w4)
    bad = [z1, z2, z3, z4, z5, z6, z7, z8, z9, z10, z11, w1, w2, w3, w4, w5]
    timeline = sorted(
        [*BASE_TIMELINE, ("ok", V), *((e.name, V) for e in bad)],
        key=lambda x: {**r, "ok": good, **{e.name: e for e in bad}}[x[0]].ts,
    )
    add(
        Case(
            "relation-invalid-content",
            "Relations whose content is unusable, each relation-invalid and ignored: "
            "reactions without relates_to (z1), with a number (z2) or an empty string (z3) "
            "as target, without a text (z4), with a blank one (z5), a bidi control (z6), "
            "65 characters (z7), a line break (z8), only a joiner, a selector and a combining "
            "mark (z9: a chip showing nothing), a U+2028 line separator (z10), only letters "
            "that show nothing (z11: a braille blank and a Hangul filler); edits "
            "without new_content (w1), with a blank body (w2), msgtype m.file (w3), a "
            "number as body (w4); a redaction "
            "without redacts (w5). bob's good 👍 (ok) still counts.",
            sort_segments(
                segment([a1, a2, a3, a4, w1, w2, w3, w4, w5], device=ALICE),
                segment(
                    [b1, b2, b3, good, z1, z2, z3, z4, z5, z6, z7, z8, z9, z10, z11], device=BOB
                ),
            ),
            timeline=timeline,
            relation_findings=[("relation-invalid", e.name) for e in bad],
            hidden=[n for n, _ in timeline if n == "ok" or n[0] in "zw"],
            targets=[Target("a2", reactions=[("👍", [(BOB.sender_id, ["ok"])])])],
        ),
        good,
        *bad,
    )

    # acting on what cannot be acted on
    v1 = react("v1", BOB, after(7), 441, a1, "👋", b3)  # a member event
    v2 = react("v2", ALICE, after(7.5), 442, b2, "🙂", a4)  # good, then taken back
    v3 = react("v3", BOB, after(8), 443, v2, "🤔", v1)  # a reaction to a reaction
    v4 = edit("v4", ALICE, after(8.5), 444, a1, "Alice (renamed)", v2)  # edit of a member event
    v5 = edit("v5", ALICE, after(9), 445, v2, "😀", v4)  # edit of a reaction
    v6 = redact("v6", ALICE, after(9.5), 446, v2, v5)  # good: alice takes v2 back
    v7 = redact("v7", ALICE, after(10), 447, v6, v6)  # no undo: a redaction of a redaction
    v8 = redact("v8", ALICE, after(10.5), 448, a1, v7)  # a member event cannot be taken back
    v9 = msg("v9", BOB, after(11), 449, "replying to a reaction", v3, parent=v2.event_id)
    evs = [v1, v2, v3, v4, v5, v6, v7, v8, v9]
    add(
        Case(
            "relation-invalid-target",
            "Relations acting on what they cannot act on, each relation-invalid: bob reacts "
            "to alice's join (v1) and to alice's reaction v2 (v3); alice edits her join (v4) "
            "and her reaction (v5), redacts her redaction v6 (v7) and her join (v8); bob "
            "replies to the reaction v2 (v9: no row to quote or hang a thread on; the reply "
            "is still shown). v6, alice taking back her reaction v2, applies.",
            sort_segments(
                segment([a1, a2, a3, a4, v2, v4, v5, v6, v7, v8], device=ALICE),
                segment([b1, b2, b3, v1, v3, v9], device=BOB),
            ),
            timeline=[*BASE_TIMELINE, *((e.name, V) for e in evs)],
            relation_findings=[
                ("relation-invalid", n) for n in ("v1", "v3", "v4", "v5", "v7", "v8", "v9")
            ],
            hidden=[e.name for e in evs if e is not v9],
            targets=[Target("v2", redacted="v6")],
        ),
        *evs,
    )
    return cases


# ---------------------------------------------------------------------------------------
# reference.json: a room written by the reference implementation (v0.1.0)


def reference_case() -> tuple[Case, dict[str, Ev]]:
    """Unsigned events as the reference writes them: pydantic field order, raw UTF-8."""
    room = "ref-room"
    order = (
        "event_id",
        "room_id",
        "timestamp_ms",
        "sender_id",
        "type",
        "parent_event_id",
        "prev_event_hash",
        "signature",
        "content",
    )

    def ref_event(name: str, ts: int, local: str, n: int, kind: str, content: dict[str, Any]) -> Ev:
        # local: the writer's local wall time, as datetime.fromtimestamp(ts/1000).isoformat()
        obj: dict[str, Any] = {
            "event_id": f"{room}::{local}Z::{fixed_uuid(n)}",
            "room_id": room,
            "timestamp_ms": ts,
            "sender_id": REFERENCE.sender_id,
            "type": kind,
            "parent_event_id": None,
            "prev_event_hash": None,
            "signature": "",
            "content": content,
        }
        # The reference signs, but publishes no key: a signature nobody can check.
        obj["signature"] = b64(REFERENCE.key.sign(canonical(obj)).signature)
        obj = {k: obj[k] for k in order}
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        return Ev(name, obj, text.encode("utf-8") + b"\n")

    # The writer's clock is UTC+2: 23:30 UTC on the 14th is the 15th locally.
    ts1, ts2 = 1757892600123, 1757892660456  # 2025-09-14T23:30:00.123Z, 23:31:00.456Z
    r1 = ref_event(
        "r1",
        ts1,
        "2025-09-15T01:30:00.123000",
        201,
        "m.room.member",
        {"membership": "join", "displayname": "jöran@example.com"},
    )
    r2 = ref_event(
        "r2",
        ts2,
        "2025-09-15T01:31:00.456000",
        202,
        "m.room.message",
        {"body": "Grüße aus Köln 🍺", "msgtype": "m.text"},
    )
    # reference client id: the user part with str.isalnum() or '_' kept: 'jöran'
    segments = [
        segment([e], path=seg_path(room, e.ts, e.ts, "jöran", date="2025-09-15"), room_id=room)
        for e in (r1, r2)
    ]
    meta = {
        "room_id": room,
        "created_at": "2025-09-15T01:29:59.000001",
        "version": "1.0",
        "protocol": "bucket-chat-v1",
    }
    meta_bytes = json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8")
    meta_path = f"rooms/{room}/metadata.json"
    case = Case(
        "reference",
        "A room written by the reference implementation v0.1.0: unsigned metadata (4 fields, "
        "indent=2), one event per segment, local-time event ids and date folders, raw UTF-8, "
        "a non-ASCII client id, no sender_key. Every event is unverified; only notices.",
        sorted(segments, key=lambda s: s.path),
        timeline=[("r1", U), ("r2", U)],
        findings=[("metadata-unsigned", meta_path, None)],
        metadata=(meta_path, meta_bytes, False),
        room_id=room,
    )
    return case, {"r1": r1, "r2": r2}


# ---------------------------------------------------------------------------------------


def dump(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def build() -> dict[str, bytes]:
    """Every vector file, by path relative to this folder."""
    files: dict[str, bytes] = {}
    files["events.json"] = dump(
        {
            "about": "Single signed events: check canonical bytes, hash, signature, line.",
            "devices": [d.describe() for d in DEVICES],
            "events": events_vectors(),
        }
    )
    chain, chain_names = chain_case()
    files["chain.json"] = dump(
        {"devices": [d.describe() for d in DEVICES], **chain.to_json(chain_names)}
    )
    ref, ref_names = reference_case()
    files["reference.json"] = dump(ref.to_json(ref_names))
    rel, rel_names = relations_case()
    files["relations.json"] = dump(
        {"devices": [d.describe() for d in DEVICES], **rel.to_json(rel_names)}
    )
    for case, names in broken_cases() + relation_broken_cases():
        files[f"broken/{case.name}.json"] = dump(case.to_json(names))
    return files


def main(argv: list[str]) -> int:
    files = build()
    stale = sorted(
        str(p.relative_to(HERE))
        for p in (HERE / "broken").glob("*.json")
        if str(p.relative_to(HERE)) not in files
    )
    if "--check" in argv:
        changed = [
            name
            for name, data in files.items()
            if not (HERE / name).exists() or (HERE / name).read_bytes() != data
        ]
        for name in changed + stale:
            print(f"out of date: {name}")
        return 1 if changed or stale else 0
    for name in stale:
        (HERE / name).unlink()
    for name, data in files.items():
        target = HERE / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print(f"wrote {len(files)} files to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
