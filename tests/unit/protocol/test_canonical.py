"""Canonical bytes, hashes and the strict base64 helpers."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.canonical import (
    b64decode_exact,
    b64encode,
    canonical_bytes,
    canonical_json,
    canonical_text_acyclic,
    event_hash,
    hash_bytes,
)
from bucket_chat_desktop.protocol.event import MESSAGE, Malformed, parse_line
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.signing import build_event


def test_canonical_json_sorts_keys_and_has_no_spaces() -> None:
    assert canonical_json({"b": 1, "a": [1, 2, {"d": None, "c": True}]}) == (
        b'{"a":[1,2,{"c":true,"d":null}],"b":1}'
    )


def test_canonical_json_is_the_pinned_json_dumps_call() -> None:
    value = {"z": "é ☕ 😀", "a": {"y": [False, None, -3]}, "\uffff": 1, "😀": 2}
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert canonical_json(value) == expected.encode("ascii")


def test_non_ascii_is_escaped_with_surrogate_pairs() -> None:
    assert canonical_json({"body": "é😀"}) == b'{"body":"\\u00e9\\ud83d\\ude00"}'


def test_control_characters_and_specials() -> None:
    text = '"\\/\b\f\n\r\t\x00\x1f\x7f'
    assert canonical_json(text) == b'"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\\u007f"'


def test_keys_sort_by_code_point_not_utf16() -> None:
    # U+FFFF < U+1F600 by code point; in UTF-16 the surrogate 0xD83D sorts first.
    assert canonical_json({"😀": 1, "\uffff": 2}) == b'{"\\uffff":2,"\\ud83d\\ude00":1}'


def test_insertion_order_does_not_matter() -> None:
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})


def test_big_integers_are_written_in_full() -> None:
    assert canonical_json([2**53 - 1, -(2**63), 10**30]) == (
        b"[9007199254740991,-9223372036854775808,1000000000000000000000000000000]"
    )


def test_canonical_bytes_drops_signature_without_touching_input() -> None:
    event = {"b": 1, "signature": "sig", "a": 2}
    assert canonical_bytes(event) == b'{"a":2,"b":1}'
    assert event == {"b": 1, "signature": "sig", "a": 2}


def test_canonical_bytes_of_unsigned_mapping() -> None:
    assert canonical_bytes({"a": 1}) == b'{"a":1}'


def test_hash_is_base64_sha256_of_canonical_bytes() -> None:
    event = {"a": 1, "signature": "x"}
    digest = hashlib.sha256(b'{"a":1}').digest()
    assert event_hash(event) == base64.b64encode(digest).decode()
    assert hash_bytes(b'{"a":1}') == event_hash(event)
    assert len(base64.b64decode(event_hash(event))) == 32


def test_hash_ignores_signature() -> None:
    assert event_hash({"a": 1, "signature": "one"}) == event_hash({"a": 1, "signature": "two"})


def test_b64encode_is_standard_alphabet_with_padding() -> None:
    assert b64encode(b"\xfb\xff") == "+/8="


@pytest.mark.parametrize("size", [32, 64])
def test_b64decode_exact_round_trip(size: int) -> None:
    raw = bytes(range(size))
    assert b64decode_exact(b64encode(raw), size) == raw


@pytest.mark.parametrize(
    "text",
    [
        "",
        "AAAA",  # three bytes, not 32
        base64.b64encode(bytes(32)).decode()[:-1],  # padding missing
        base64.b64encode(bytes(32)).decode() + "\n",
        " " + base64.b64encode(bytes(32)).decode(),
        base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # '-' and '_' are not standard
        "é" * 44,
        "=" + base64.b64encode(bytes(32)).decode()[1:],
    ],
)
def test_b64decode_exact_rejects(text: str) -> None:
    assert b64decode_exact(text, 32) is None


def test_b64decode_exact_wrong_size() -> None:
    assert b64decode_exact(b64encode(bytes(31)), 32) is None
    assert b64decode_exact(b64encode(bytes(33)), 32) is None


# -- the hot paths' canonical text equals the documented json.dumps call ------------------
# canonical_text_acyclic writes objects of one or two text members itself (nearly every
# event's content); everything else goes to json's C encoder. Both must give exactly the
# text of the call that docs/PROTOCOL.md section 5 pins.


def _documented(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# Every code point, lone surrogates included (the serializer writes them back as
# escapes; refusing them is the reader's and build_event's job, tested below), and the
# characters the escaping rules single out.
_text = st.text(
    st.one_of(
        st.characters(exclude_categories=()),
        st.sampled_from(['"', "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f"]),
        st.sampled_from(["\x80", "\xe9", "\u2014", "\ud7ff", "\ue000", "\uffff", "\U0001f600"]),
        st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]),
    ),
    max_size=8,
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # big integers too: the serializer writes them in full
    st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
    _text,
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=10,
)


@settings(
    max_examples=600,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.one_of(
        st.dictionaries(_text, _text, min_size=1, max_size=2),  # the written-out shape
        st.dictionaries(_text, _scalars, max_size=3),  # near it: other scalars, 0 or 3
        _json,
    )
)
@example({"body": "é 😀 \ud800", "msgtype": "m.text"})
@example({"msgtype": "m.text", "body": "x"})  # members given in reverse order
@example({"\uffff": "a", "😀": "b"})  # code point order, not UTF-16 order
@example({"😀": "b", "\uffff": "a"})
@example({"a": 2**64})
@example({"a": True, "b": "x"})
def test_fast_canonical_text_equals_the_documented_call(value: Any) -> None:
    text = _documented(value)
    assert canonical_text_acyclic(value) == text
    assert canonical_json(value) == text.encode("ascii")


class _Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {_Text("body"): "x", "msgtype": "m.text"},
        {"body": _Text("x"), "msgtype": "m.text"},
        {"membership": _Text("join")},
        {1: "x"},
        {"a": "x", 2: "y"},  # keys json cannot sort: the same TypeError
    ],
)
def test_members_that_are_not_plain_text_take_the_encoder(value: Any) -> None:
    def outcome(encode: Any) -> Any:
        try:
            return encode(value)
        except TypeError as exc:
            return TypeError, str(exc)

    assert outcome(canonical_text_acyclic) == outcome(_documented)


_KEY = SigningKey(bytes(range(32)))


@pytest.mark.parametrize(
    "content",
    [
        {"body": "\ud800", "msgtype": "m.text"},
        {"msgtype": "m.text", "body": "x\udfff"},
        {"body": "x", "\udc00": "y"},
    ],
)
def test_a_lone_surrogate_in_written_out_content_is_refused(content: dict[str, str]) -> None:
    # The writer refuses it before signing...
    with pytest.raises(ValueError, match="lone UTF-16 surrogate"):
        build_event(
            room_id="room-1",
            sender_id="alice@example.com",
            event_type=MESSAGE,
            content=content,
            timestamp_ms=1_757_851_245_000,
            unique="u",
            prev_event_hash=None,
            signing_key=_KEY,
        )
    # ... and a reader refuses a line that holds one, whoever signed it.
    event = {
        "content": content,
        "event_id": "room-1::2025-09-14T12:00:45.000Z::u",
        "parent_event_id": None,
        "prev_event_hash": None,
        "room_id": "room-1",
        "sender_id": "alice@example.com",
        "sender_key": None,
        "signature": "",
        "timestamp_ms": 1_757_851_245_000,
        "type": MESSAGE,
    }
    parsed = parse_line(_documented(event).encode("ascii"), "room-1")
    assert isinstance(parsed, Malformed)
    assert parsed.kind is Kind.BAD_ENCODING
