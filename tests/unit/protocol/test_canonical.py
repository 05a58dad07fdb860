"""Canonical bytes, hashes and the strict base64 helpers."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from bucket_chat_desktop.protocol.canonical import (
    b64decode_exact,
    b64encode,
    canonical_bytes,
    canonical_json,
    event_hash,
    hash_bytes,
)


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
