"""The signing fast path equals the straightforward slow path, on every vector and on
generated valid and hostile inputs.

``build_event`` writes the canonical bytes out field by field, checks a hash text with a
pattern, caches room-id checks and formats the event id's time by arithmetic: all for
speed (``benchmarks/protocol_throughput.py``). ``_slow_build_event`` below is the plain
form it replaced (check, build the dict, ``canonical_json`` it, hash, sign, make the
``Event`` by keyword). Ed25519 is deterministic, so equal inputs must give equal events,
signatures included, or the same exception with the same message.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import string
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.canonical import (
    HASH_TEXT,
    b64decode_exact,
    b64encode,
    canonical_json,
    canonical_text_acyclic,
    hash_bytes,
    signature_bytes,
)
from bucket_chat_desktop.protocol.event import (
    MAX_DEPTH,
    MAX_ID_BYTES,
    MAX_LINE_BYTES,
    MAX_TIMESTAMP_MS,
    MEMBER,
    MEMBERSHIPS,
    MESSAGE,
    Event,
    has_lone_surrogate,
    parse_line,
)
from bucket_chat_desktop.protocol.ids import check_room_id, iso_utc_ms
from bucket_chat_desktop.protocol.signing import SignatureChecker, _content_problem, build_event

VECTORS = Path(__file__).resolve().parents[2] / "vectors"

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the slow path ------------------------------------------------------------------------


def _slow_iso_utc_ms(timestamp_ms: int) -> str:
    seconds, millis = divmod(timestamp_ms, 1000)
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"
    )


def _utf8(text: str) -> int:
    # asked as the fast path asks, so a non-text value raises the same AttributeError
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _slow_write_problem(
    sender_id: Any, event_type: Any, content: dict[str, Any], ts: Any, prev: Any
) -> str | None:
    if not sender_id or not event_type:
        return "sender_id and type must not be empty"
    if _utf8(sender_id) > MAX_ID_BYTES or _utf8(event_type) > MAX_ID_BYTES:
        return f"sender_id and type have at most {MAX_ID_BYTES} bytes"
    if type(ts) is not int or not 0 <= ts <= MAX_TIMESTAMP_MS:
        return "timestamp_ms must be a non-negative integer"
    if event_type == MESSAGE and not isinstance(content.get("body"), str):
        return "m.room.message content.body must be a string"
    if event_type == MEMBER and content.get("membership") not in MEMBERSHIPS:
        return "m.room.member membership is not valid"
    if prev is not None and b64decode_exact(prev, 32) is None:
        return "prev_event_hash must be base64 of 32 bytes"
    return _content_problem(content, 2)


def _slow_build_event(
    *,
    room_id: Any,
    sender_id: Any,
    event_type: Any,
    content: Mapping[str, Any],
    timestamp_ms: Any,
    unique: Any,
    prev_event_hash: Any,
    signing_key: SigningKey,
    parent_event_id: Any = None,
    witness: Mapping[str, str] | None = None,
) -> Event:
    check_room_id(room_id)
    body = dict(content)
    problem = _slow_write_problem(sender_id, event_type, body, timestamp_ms, prev_event_hash)
    if problem:
        raise ValueError(f"refusing to write an invalid event: {problem}")
    event_id = f"{room_id}::{_slow_iso_utc_ms(timestamp_ms)}::{unique}"
    if _utf8(event_id) > MAX_ID_BYTES or not unique or "::" in unique:
        raise ValueError(
            "refusing to write an invalid event: event_id must have at most "
            f"{MAX_ID_BYTES} bytes and a non-empty unique part without '::'"
        )
    sender_key = b64encode(bytes(signing_key.verify_key))
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
    canonical = canonical_json(unsigned)
    if len(canonical) > MAX_LINE_BYTES - 200:
        raise ValueError("refusing to write an invalid event: it is too large")
    if has_lone_surrogate(json.loads(canonical)):
        raise ValueError(
            "refusing to write an invalid event: a string holds a lone UTF-16 surrogate "
            "(\\uD800-\\uDFFF), which readers reject"
        )
    signature = b64encode(signing_key.sign(canonical).signature)
    unsigned["signature"] = signature
    return Event(
        raw=unsigned,
        canonical=canonical,
        hash=hash_bytes(canonical),
        event_id=event_id,
        room_id=room_id,
        timestamp_ms=timestamp_ms,
        sender_id=sender_id,
        type=event_type,
        parent_event_id=parent_event_id,
        prev_event_hash=prev_event_hash,
        signature=signature,
        sender_key=sender_key,
        content=body,
    )


def _outcome(builder: Any, args: dict[str, Any]) -> Event | tuple[type, str]:
    try:
        return builder(**args)  # type: ignore[no-any-return]
    except Exception as exc:  # the exception itself is the outcome being compared
        return (type(exc), str(exc))


def _assert_same(args: dict[str, Any]) -> Event | None:
    fast = _outcome(build_event, args)
    slow = _outcome(_slow_build_event, args)
    assert fast == slow
    if isinstance(fast, Event):
        assert type(fast) is Event
        assert dict(fast.raw) == dict(slow.raw)  # type: ignore[union-attr]
        assert list(fast.raw) == list(slow.raw)  # type: ignore[union-attr]
        return fast
    return None


# -- every vector -------------------------------------------------------------------------


def _segment_bytes(segment: dict[str, Any]) -> bytes:
    if "data_base64" in segment:
        return base64.b64decode(segment["data_base64"])
    return str(segment["data"]).encode("utf-8")


def _vector_lines() -> Iterator[tuple[str, str, bytes, dict[str, SigningKey]]]:
    """(name, room id, line, keys by public key text) for every event line in the vectors."""
    files = {path: json.loads(path.read_text("utf-8")) for path in sorted(VECTORS.rglob("*.json"))}
    keys = {  # the broken rooms use the devices listed in the other files
        d["public_key"]: SigningKey(bytes.fromhex(d["seed_hex"]))
        for data in files.values()
        for d in data.get("devices", [])
    }
    for path, data in files.items():
        name = path.relative_to(VECTORS).as_posix()
        for vector in data.get("events", []):
            yield name, vector["room_id"], vector["line"].encode("ascii"), keys
        for segment in data.get("segments", []):
            for number, line in enumerate(_segment_bytes(segment).splitlines(), 1):
                if line.strip():
                    yield f"{name}:{segment['path']}:{number}", data["room_id"], line, keys


_BUILT_FIELDS = {
    "event_id",
    "room_id",
    "timestamp_ms",
    "sender_id",
    "type",
    "parent_event_id",
    "prev_event_hash",
    "sender_key",
    "content",
    "signature",
    "witness",
}


def test_every_vector_event_is_rebuilt_byte_for_byte() -> None:
    rebuilt = signed_alike = 0
    checker = SignatureChecker()
    for name, room_id, line, keys in _vector_lines():
        parsed = parse_line(line, room_id)
        if not isinstance(parsed, Event) or parsed.sender_key not in keys:
            continue
        raw = dict(parsed.raw)
        _, time_text, unique = parsed.event_id.split("::")
        if set(raw) - _BUILT_FIELDS or time_text != _slow_iso_utc_ms(parsed.timestamp_ms):
            continue  # not something build_event writes (extension fields, odd ids)
        args = {
            "room_id": room_id,
            "sender_id": parsed.sender_id,
            "event_type": parsed.type,
            "content": parsed.content,
            "timestamp_ms": parsed.timestamp_ms,
            "unique": unique,
            "prev_event_hash": parsed.prev_event_hash,
            "signing_key": keys[parsed.sender_key],
            "parent_event_id": parsed.parent_event_id,
            "witness": raw.get("witness"),
        }
        if "parent_event_id" not in raw or "prev_event_hash" not in raw:
            continue  # build_event always writes both
        built = _assert_same(args)
        if built is None:
            continue  # refused by both (e.g. a vector of a bad body)
        assert built.canonical == parsed.canonical, name
        assert built.hash == parsed.hash, name
        rebuilt += 1
        if checker.check(parsed)[0]:
            assert built.signature == parsed.signature, name
            assert built.line() == parsed.line(), name
            signed_alike += 1
    assert rebuilt >= 50 and signed_alike >= 40, (rebuilt, signed_alike)


def test_the_vectors_hold_witness_and_non_ascii_events() -> None:
    # The byte-for-byte test above only proves something if the vectors exercise the
    # fields the fast path writes out by hand.
    lines = [line for _, _, line, _ in _vector_lines()]
    assert any(b'"witness":{' in line for line in lines)
    assert any(b"\\u" in line for line in lines)
    assert any(b'"parent_event_id":"' in line for line in lines)


# -- generated inputs, valid and hostile --------------------------------------------------

_KEY = SigningKey(bytes([7]) * 32)
_HASHES = [hash_bytes(bytes([i])) for i in range(4)]

_text = st.text(max_size=24)
_hostile_text = st.one_of(
    _text,
    st.text(alphabet=st.characters(codec="utf-16", exclude_categories=()), max_size=24),
    st.sampled_from(['"', "\\", "\x00", "\u2028", "\ud800", "é", "😀", "a::b", "</script>"]),
    st.text(min_size=MAX_ID_BYTES - 40, max_size=MAX_ID_BYTES + 2),
)
_not_text = st.one_of(
    st.none(), st.integers(), st.binary(max_size=4), st.lists(st.text(), max_size=2)
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
    _hostile_text,
)
_hostile_scalars = st.one_of(
    _scalars,
    st.floats(),
    st.integers(),
    st.binary(max_size=3),
    st.tuples(st.integers()),
    st.sets(st.integers(), max_size=2),
)
_values = st.recursive(
    st.one_of(_scalars, _hostile_scalars),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(_hostile_text, inner, max_size=3),
        st.dictionaries(st.integers(), inner, max_size=2),
    ),
    max_leaves=12,
)


def _deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


_content = st.one_of(
    st.dictionaries(_hostile_text, _hostile_text, max_size=4),
    st.dictionaries(_hostile_text, _values, max_size=4),
    st.fixed_dictionaries({"body": _scalars}, optional={"msgtype": _text, "x": _values}),
    st.fixed_dictionaries(
        {"membership": st.one_of(st.sampled_from(sorted(MEMBERSHIPS)), _scalars)},
        optional={"displayname": _hostile_text},
    ),
    st.builds(lambda n: {"deep": _deep(n)}, st.integers(MAX_DEPTH - 3, MAX_DEPTH + 1)),
    st.builds(lambda n: {"big": "x" * n}, st.sampled_from([10, MAX_LINE_BYTES - 700])),
)


def _respelled_hashes() -> st.SearchStrategy[Any]:
    alphabet = string.ascii_letters + string.digits + "+/"
    return st.one_of(
        st.sampled_from(_HASHES),
        st.builds(lambda b: b64encode(b), st.binary(min_size=30, max_size=34)),
        st.builds(
            lambda h, c: h[:42] + c + "=", st.sampled_from(_HASHES), st.sampled_from(alphabet)
        ),
        st.text(alphabet=alphabet + "=", min_size=42, max_size=46),
        _hostile_text,
        _not_text,
    )


_escapes_text = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=24),
    st.sampled_from(['"', "\\", "\x00", "\u2028", "é", "😀", "</script>", "\x7f", "\udce9"]),
)
_valid_room = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}", fullmatch=True)
_valid_text = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30)
_valid_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
        _escapes_text,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_escapes_text, inner, max_size=3)
    ),
    max_leaves=10,
)


@SETTINGS
@given(
    room_id=_valid_room,
    sender_id=_valid_text,
    event_type=st.one_of(st.sampled_from([MESSAGE, MEMBER]), _valid_text),
    content=st.one_of(
        st.fixed_dictionaries({"body": _escapes_text}, optional={"msgtype": _escapes_text}),
        st.fixed_dictionaries(
            {"membership": st.sampled_from(sorted(MEMBERSHIPS))},
            optional={"displayname": _escapes_text},
        ),
        st.dictionaries(_escapes_text, _valid_json, max_size=4),
    ),
    timestamp_ms=st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS),
    unique=st.one_of(st.uuids().map(str), _valid_text.filter(lambda u: "::" not in u)),
    prev_event_hash=st.one_of(st.none(), st.binary(min_size=32, max_size=32).map(b64encode)),
    parent_event_id=st.one_of(st.none(), _escapes_text),
    witness=st.one_of(
        st.none(),
        st.dictionaries(
            st.binary(min_size=32, max_size=32).map(b64encode),
            st.binary(min_size=32, max_size=32).map(b64encode),
            max_size=3,
        ),
    ),
)
def test_fast_build_event_equals_the_slow_path_on_valid_inputs(**args: Any) -> None:
    built = _assert_same({**args, "signing_key": _KEY})
    event("signed" if built is not None else "refused")
    if built is not None:  # and the reader takes it back unchanged
        parsed = parse_line(built.line()[:-1], args["room_id"])
        assert isinstance(parsed, Event)
        assert parsed.canonical == built.canonical and parsed.hash == built.hash


@SETTINGS
@given(
    room_id=st.one_of(
        st.sampled_from(["room-1", "a", "R.x_y-z", "x" * 128, "x" * 129, ".dot", "a/b", ""]),
        _hostile_text,
        _not_text,
    ),
    sender_id=st.one_of(st.sampled_from(["a@example.com", "jöran@x"]), _hostile_text, _not_text),
    event_type=st.one_of(st.sampled_from([MESSAGE, MEMBER, "org.x"]), _hostile_text, _not_text),
    content=_content,
    timestamp_ms=st.one_of(
        st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS),
        st.integers(),
        st.booleans(),
        st.floats(),
        st.text(max_size=3),
    ),
    unique=st.one_of(st.uuids().map(str), _hostile_text, _not_text),
    prev_event_hash=st.one_of(st.none(), _respelled_hashes()),
    parent_event_id=st.one_of(st.none(), _hostile_text, st.integers()),
    witness=st.one_of(
        st.none(),
        st.just({}),
        st.dictionaries(st.sampled_from(_HASHES), st.sampled_from(_HASHES), max_size=2),
        st.dictionaries(_hostile_text, _scalars, max_size=2),
    ),
)
@example(
    room_id="room-1",
    sender_id="alice@example.com",
    event_type=MESSAGE,
    content={"body": "hi", "msgtype": "m.text"},
    timestamp_ms=1757851245000,
    unique="00000001-0000-4000-8000-000000000001",
    prev_event_hash=_HASHES[0],
    parent_event_id=None,
    witness=None,
)
def test_fast_build_event_equals_the_slow_path_on_hostile_inputs(**args: Any) -> None:
    built = _assert_same({**args, "signing_key": _KEY})
    event("signed" if built is not None else "refused")


@SETTINGS
@given(content=st.dictionaries(_hostile_text, _values, max_size=4))
def test_cyclic_content_is_refused_alike(content: dict[str, Any]) -> None:
    loop: list[Any] = []
    loop.append(loop)
    content["loop"] = loop
    args = {
        "room_id": "room-1",
        "sender_id": "a@x",
        "event_type": "org.x",
        "content": content,
        "timestamp_ms": 1,
        "unique": "u",
        "prev_event_hash": None,
        "signing_key": _KEY,
    }
    _assert_same(args)


# -- the pieces ---------------------------------------------------------------------------


@SETTINGS
@given(
    st.one_of(
        st.builds(lambda b: b64encode(b), st.binary(min_size=31, max_size=33)),
        st.builds(
            lambda h, c: h[:42] + c + h[43:],
            st.sampled_from(_HASHES),
            st.characters(codec="utf-8"),
        ),
        st.builds(lambda h, i: h[:i] + h[i + 1 :], st.sampled_from(_HASHES), st.integers(0, 43)),
        st.builds(lambda h, s: h + s, st.sampled_from(_HASHES), st.sampled_from(["\n", "=", " "])),
        st.text(max_size=50),
        st.text(alphabet=string.ascii_letters + string.digits + "+/=", min_size=43, max_size=45),
    )
)
def test_hash_pattern_accepts_exactly_what_strict_base64_accepts(text: str) -> None:
    assert (HASH_TEXT.fullmatch(text) is not None) == (b64decode_exact(text, 32) is not None)


_SIGNATURES = [b64encode(_KEY.sign(bytes([i])).signature) for i in range(4)]


@SETTINGS
@given(
    st.one_of(
        st.sampled_from(_SIGNATURES),
        st.builds(lambda b: b64encode(b), st.binary(min_size=62, max_size=66)),
        st.builds(  # every character in every place: respelled padding bits and worse
            lambda s, i, c: s[:i] + c + s[i + 1 :],
            st.sampled_from(_SIGNATURES),
            st.integers(0, 87),
            st.one_of(st.characters(codec="utf-8"), st.sampled_from("AQgwBRhx=+/-_")),
        ),
        st.builds(
            lambda s, i: s[:i] + s[i + 1 :], st.sampled_from(_SIGNATURES), st.integers(0, 87)
        ),
        st.builds(
            lambda s, t: s + t, st.sampled_from(_SIGNATURES), st.sampled_from(["\n", "=", " ", "A"])
        ),
        st.text(max_size=100),
        st.text(alphabet=string.ascii_letters + string.digits + "+/=", min_size=86, max_size=90),
        _not_text,
    )
)
def test_signature_decoder_accepts_exactly_what_strict_base64_accepts(text: Any) -> None:
    def outcome(decode: Any) -> Any:
        try:
            return decode(text)
        except Exception as exc:  # the exception is the outcome being compared
            return type(exc)

    assert outcome(signature_bytes) == outcome(lambda t: b64decode_exact(t, 64))


def test_signature_decoder_accepts_every_last_digit_a_signature_can_end_with() -> None:
    endings = {b64encode(bytes([0] * 63 + [b]))[85] for b in range(256)}
    assert endings == set("AQgw")
    for c in string.ascii_letters + string.digits + "+/":
        text = "A" * 85 + c + "=="
        assert (signature_bytes(text) is not None) == (c in endings)
        assert (signature_bytes(text) is not None) == (b64decode_exact(text, 64) is not None)


def test_hash_pattern_accepts_every_last_digit_a_hash_can_end_with() -> None:
    endings = {b64encode(bytes([0] * 31 + [b]))[42] for b in range(256)}
    assert len(endings) == 16
    for c in string.ascii_letters + string.digits + "+/":
        text = "A" * 42 + c + "="
        assert (HASH_TEXT.fullmatch(text) is not None) == (c in endings)


def _decoded_json() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.text(max_size=6), inner, max_size=4),
        ),
        max_leaves=25,
    )


@SETTINGS
@given(_decoded_json())
def test_acyclic_canonical_text_equals_canonical_json(value: Any) -> None:
    assert canonical_text_acyclic(value).encode("ascii") == canonical_json(value)


def _independent_iso() -> Any:
    # The vector generator formats times with its own code (strftime), written apart from
    # the implementation.
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module.iso_utc_ms


_ISO = _independent_iso()


@SETTINGS
@given(st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS))
@example(0)
@example(951782399999)  # the last millisecond before a leap day
@example(951868800000)  # 2000-03-01
@example(253402300799999)  # 9999-12-31T23:59:59.999Z
@example(253402300800000)  # year 10000
@example(MAX_TIMESTAMP_MS)
def test_iso_time_equals_gmtime(ts: int) -> None:
    assert iso_utc_ms(ts) == _slow_iso_utc_ms(ts)
    if ts < 253402300800000:  # strftime's %Y is only portable for four-digit years
        assert iso_utc_ms(ts) == _ISO(ts)


@pytest.mark.parametrize("room_id", ["room-1", "a" * 129, "a/b"])
def test_room_id_check_is_the_same_on_every_call(room_id: str) -> None:
    # The check is cached for valid ids; an invalid id is refused every time, the same way.
    args = {
        "room_id": room_id,
        "sender_id": "a@x",
        "event_type": "org.x",
        "content": {},
        "timestamp_ms": 1,
        "unique": "u",
        "prev_event_hash": None,
        "signing_key": _KEY,
    }
    first = _assert_same(args)
    second = _assert_same(args)
    assert first == second


def test_without_the_c_encoder_the_general_encoder_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Interpreters without json's C accelerator (or with another signature) fall back.
    from bucket_chat_desktop.protocol import canonical

    value = {"b": [1, None, True, "é\n"], "a": {"z": "", "y": -5}}
    fast = canonical_text_acyclic(value)
    monkeypatch.setattr(canonical, "_ACYCLIC", None)
    assert canonical_text_acyclic(value) == fast
    assert fast.encode("ascii") == canonical_json(value)


# -- the reading side: parse_event's written-out canonical bytes, decode's short cut -----

_EVENT_FIELDS = {
    "event_id": "room-1::2025-09-14T12:00:45.000Z::u",
    "room_id": "room-1",
    "timestamp_ms": 1757851245000,
    "sender_id": "alice@example.com",
    "type": MESSAGE,
    "parent_event_id": None,
    "prev_event_hash": None,
    "sender_key": _HASHES[1],
    "content": {"body": "hi", "msgtype": "m.text"},
    "signature": "c2ln",
}


_OPTIONAL = ["parent_event_id", "prev_event_hash", "sender_key"]


@SETTINGS
@given(
    changes=st.one_of(
        st.dictionaries(  # anything anywhere: mostly malformed
            st.one_of(st.sampled_from(sorted(_EVENT_FIELDS)), st.sampled_from(["witness", "a"])),
            st.one_of(_decoded_json(), st.sampled_from(["room-1", "room-1::t::u", _HASHES[2]])),
            max_size=4,
        ),
        st.fixed_dictionaries(  # valid events with odd text, extensions and witnesses
            {},
            optional={
                "parent_event_id": st.one_of(st.none(), _escapes_text),
                "prev_event_hash": st.one_of(st.none(), _escapes_text),
                "sender_key": st.one_of(st.none(), _escapes_text),
                "sender_id": _escapes_text.filter(bool),
                "content": st.dictionaries(st.text(max_size=5), _decoded_json(), max_size=3),
                "type": st.sampled_from(["org.x", "é"]),
                "witness": st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
                "a_first": _decoded_json(),
                "zz": _decoded_json(),
            },
        ),
    ),
    dropped=st.sets(st.sampled_from(_OPTIONAL), max_size=3),
)
def test_parsed_canonical_bytes_equal_canonical_json(
    changes: dict[str, Any], dropped: set[str]
) -> None:
    obj = {**_EVENT_FIELDS, **changes}
    for field in dropped:
        obj.pop(field, None)
    expected = canonical_json({k: v for k, v in obj.items() if k != "signature"})
    parsed = parse_line(json.dumps(obj).encode("utf-8"), "room-1")
    event("parsed" if isinstance(parsed, Event) else "malformed")
    if isinstance(parsed, Event):
        assert parsed.canonical == expected
        assert parsed.hash == hash_bytes(expected)
        assert dict(parsed.raw) == obj


def _json_texts() -> st.SearchStrategy[str]:
    space = st.sampled_from(["", " ", "\n", "\t", " \r\n"])
    return st.one_of(
        st.builds(lambda a, v, b: a + json.dumps(v) + b, space, _decoded_json(), space),
        st.builds(lambda v, tail: json.dumps(v) + tail, _decoded_json(), st.text(max_size=5)),
        st.sampled_from(
            ["", " ", "1.5", '{"a":1e3}', "NaN", '{"a":-Infinity}', "[1,]", '{"a" 1}', "{}{}"]
        ),
        st.sampled_from(['{"n":12345678901234567}', "[-9007199254740992]", "9007199254740991"]),
        st.text(max_size=30),
    )


def _decoded_or_error(decode: Any, text: str) -> Any:
    try:
        return ("value", decode(text))
    except Exception as exc:  # the exception is the outcome being compared
        return ("error", type(exc), str(exc))


@SETTINGS
@given(_json_texts())
def test_decode_short_cut_equals_json_decoder(text: str) -> None:
    from bucket_chat_desktop.protocol import event as event_module

    fast = _decoded_or_error(event_module._decode, text)
    slow = _decoded_or_error(event_module._DECODER.decode, text)
    assert fast == slow


# -- the writer's surrogate short cut -----------------------------------------------------
# build_event decodes its own text to look for a lone surrogate only when some input text
# may hold a surrogate code point (an ASCII text cannot; content is searched for "\ud").
# Each field the writer takes from its caller, alone, with a lone surrogate (refused), a
# pair of them as two code points (accepted: it decodes to one character), an astral
# character (accepted) and a backslash, u, d spelled out (accepted): fast equals slow.

_BASE: dict[str, Any] = {
    "room_id": "room-1",
    "sender_id": "alice@example.com",
    "event_type": "org.example.note",
    "content": {"body": "hi", "msgtype": "m.text"},
    "timestamp_ms": 1757851245000,
    "unique": "00000001-0000-4000-8000-000000000001",
    "prev_event_hash": _HASHES[0],
    "parent_event_id": None,
    "witness": None,
    "signing_key": _KEY,
}
_PLACES = {
    "sender_id": lambda t: {"sender_id": f"alice{t}@example.com"},
    "event_type": lambda t: {"event_type": f"org.x{t}"},
    "unique": lambda t: {"unique": f"u{t}"},
    "parent_event_id": lambda t: {"parent_event_id": f"room-1::p{t}"},
    "body": lambda t: {"content": {"body": f"hi {t}", "msgtype": "m.text"}},
    "member key": lambda t: {"content": {f"k{t}": "v"}},
    "nested": lambda t: {"content": {"a": [1, {"b": t}], "c": None, "d": "x"}},
    "witness key": lambda t: {"witness": {f"k{t}": _HASHES[1]}},
    "witness value": lambda t: {"witness": {_HASHES[2]: f"v{t}"}},
}
_SPELLINGS = [  # (text, signed)
    ("\ud800", False),
    ("x\udfff", False),
    ("\udc00\ud800", False),  # low before high: two lone halves
    ("\ud83d\ude00", True),
    ("😀", True),
    ("\\ud800", True),
]


@pytest.mark.parametrize("place", sorted(_PLACES))
@pytest.mark.parametrize(("text", "signed"), _SPELLINGS, ids=ascii)
def test_each_field_with_a_surrogate_is_refused_or_signed_as_by_the_slow_path(
    place: str, text: str, signed: bool
) -> None:
    built = _assert_same({**_BASE, **_PLACES[place](text)})
    assert (built is not None) is signed


def test_a_hash_this_writer_made_is_taken_as_prev_only_as_spelled() -> None:
    # build_event remembers the hashes it made so that the next event of the chain needs
    # no pattern match for its prev_event_hash: a respelling of one (other padding bits,
    # a line break) is still tested, and refused, as by the slow path.
    first = build_event(**{**_BASE, "prev_event_hash": None})
    assert _assert_same({**_BASE, "prev_event_hash": first.hash}) is not None
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    last = alphabet.index(first.hash[42])  # its two low bits are padding, zero
    respelled = [first.hash[:42] + alphabet[last + bits] + "=" for bits in (1, 2, 3)] + [
        first.hash + "\n",
        first.hash[:-1],
        " " + first.hash,
    ]
    assert all(base64.b64decode(p) == base64.b64decode(first.hash) for p in respelled[:3])
    for prev in respelled:
        assert _assert_same({**_BASE, "prev_event_hash": prev}) is None
