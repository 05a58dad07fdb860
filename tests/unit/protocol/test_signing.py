"""Building, signing and checking events."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.canonical import canonical_bytes
from bucket_chat_desktop.protocol.event import (
    MAX_DEPTH,
    MAX_ID_BYTES,
    MAX_LINE_BYTES,
    MEMBER,
    MESSAGE,
    Event,
    parse_event,
    parse_line,
)
from bucket_chat_desktop.protocol.ids import InvalidRoomIdError
from bucket_chat_desktop.protocol.signing import (
    SignatureChecker,
    build_event,
    public_key_text,
    sign_mapping,
)

from ._support import ROOM, T0, key

UID = "00000001-0000-4000-8000-000000000001"


def build(**changes: Any) -> Event:
    args: dict[str, Any] = {
        "room_id": ROOM,
        "sender_id": "alice@example.com",
        "event_type": MESSAGE,
        "content": {"body": "hi", "msgtype": "m.text"},
        "timestamp_ms": T0,
        "unique": UID,
        "prev_event_hash": None,
    }
    args.update(changes)
    if "signing_key" not in args:  # (made only when needed: a key's set-up is PyNaCl's)
        args["signing_key"] = key(1)
    return build_event(**args)


def test_public_key_text() -> None:
    k = key(1)
    assert public_key_text(k) == base64.b64encode(bytes(k.verify_key)).decode()


def test_sign_mapping_signs_canonical_bytes_and_copies() -> None:
    body = {"b": 1, "a": "x", "signature": "old"}
    signed = sign_mapping(body, key(1))
    assert body["signature"] == "old"
    raw = base64.b64decode(signed["signature"])
    key(1).verify_key.verify(canonical_bytes(signed), raw)


def test_build_event_fields() -> None:
    ev = build(parent_event_id="p", prev_event_hash=base64.b64encode(bytes(32)).decode())
    assert ev.event_id == f"{ROOM}::2025-09-14T12:00:45.000Z::{UID}"
    assert ev.sender_key == public_key_text(key(1))
    assert ev.parent_event_id == "p"
    assert set(ev.raw) == {
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
    }
    assert SignatureChecker().check(ev) == (True, "Ed25519 signature good")


def test_build_event_is_deterministic() -> None:
    assert build().line() == build().line()
    assert build().signature != build(signing_key=key(2)).signature


def test_build_event_output_satisfies_the_reader() -> None:
    ev = build(content={"body": "é", "extra": {"k": [1, None, True]}})
    parsed = parse_line(ev.line(), ROOM)
    assert isinstance(parsed, Event)
    assert (parsed.canonical, parsed.hash) == (ev.canonical, ev.hash)


def test_build_event_copies_content() -> None:
    content = {"body": "hi"}
    ev = build(content=content)
    content["body"] = "changed"
    assert ev.content["body"] == "hi"


@pytest.mark.parametrize("room_id", ["../x", "a/b", "", ".h"])
def test_build_event_refuses_bad_room(room_id: str) -> None:
    with pytest.raises(InvalidRoomIdError):
        build(room_id=room_id)


@pytest.mark.parametrize(
    "changes",
    [
        {"content": {"body": 1.5}},
        {"content": {"body": "x", "n": float("nan")}},
        {"content": {"nobody": "x"}},
        {"event_type": MEMBER, "content": {"membership": "knock"}},
        {"sender_id": ""},
        {"event_type": ""},
        {"timestamp_ms": -1},
        {"content": {"body": "x" * MAX_LINE_BYTES}},
        {"sender_id": "s" * (MAX_ID_BYTES + 1)},
        {"event_type": "t" * (MAX_ID_BYTES + 1)},
        {"unique": "u" * MAX_ID_BYTES},  # the event id would exceed 512 bytes
        {"unique": ""},
        {"unique": "a::b"},
        {"prev_event_hash": "not a hash"},
        {"parent_event_id": "p" * (MAX_ID_BYTES + 1)},
        # the limits count bytes of UTF-8 (section 12): 257 characters, 513 bytes
        {"sender_id": "\u00e9" * 256 + "s"},
        {"event_type": "\U0001f600" * 129},
        {"unique": "\U0001f600" * 125},
        {"parent_event_id": "\u00e9" * 256 + "p"},
        {"event_type": MEMBER, "content": {"membership": "join", "add_device_key": "\u00e9" * 257}},
        {"event_type": MEMBER, "content": {"membership": "join", "add_device_key": "k" * 513}},
        {"event_type": MEMBER, "content": {"membership": "join", "introduced_by": "k" * 513}},
        {"witness": {f"{n:042d}A=": "A" * 43 + "=" for n in range(65)}},  # ignored whole
    ],
)
def test_build_event_refuses_what_a_reader_would_reject(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="refusing"):
        build(**changes)


def test_build_event_limits_are_inclusive() -> None:
    ev = build(sender_id="s" * MAX_ID_BYTES, event_type="t" * MAX_ID_BYTES)
    assert isinstance(parse_line(ev.line(), ROOM), Event)
    ev = build(sender_id="\u00e9" * (MAX_ID_BYTES // 2), event_type="\U0001f600" * 128)
    assert isinstance(parse_line(ev.line(), ROOM), Event)


def test_build_event_refuses_content_too_deep_for_the_event() -> None:
    # content sits at depth 2 of the event: its innermost value may be at depth 16 at most
    deepest: Any = 1
    for _ in range(MAX_DEPTH - 3):
        deepest = {"a": deepest}
    ok = build(content={"body": "b", "x": deepest})
    assert isinstance(parse_line(ok.line(), ROOM), Event)
    with pytest.raises(ValueError, match="refusing"):
        build(content={"body": "b", "x": {"a": deepest}})


class TestSignatureChecker:
    def test_good(self) -> None:
        assert SignatureChecker().check(build())[0] is True

    def test_no_sender_key_is_unknown_not_bad(self) -> None:
        obj = dict(build().raw)
        del obj["sender_key"]
        ev = parse_event(obj, ROOM)
        assert isinstance(ev, Event)
        ok, why = SignatureChecker().check(ev)
        assert ok is None and "no sender_key" in why

    @pytest.mark.parametrize(
        ("field", "value", "why"),
        [
            ("sender_key", "not base64", "not a valid Ed25519 public key"),
            ("sender_key", base64.b64encode(bytes(31)).decode(), "not a valid Ed25519"),
            ("sender_key", "", "not a valid Ed25519"),
            ("signature", "", "not base64 of 64 bytes"),
            ("signature", base64.b64encode(bytes(63)).decode(), "not base64 of 64 bytes"),
            ("signature", base64.b64encode(bytes(64)).decode(), "does not match"),
            ("sender_key", public_key_text(key(2)), "does not match"),
        ],
    )
    def test_bad(self, field: str, value: str, why: str) -> None:
        obj = dict(build().raw)
        obj[field] = value
        ev = parse_event(obj, ROOM)
        assert isinstance(ev, Event)
        ok, reason = SignatureChecker().check(ev)
        assert ok is False and why in reason

    def test_changed_content_fails(self) -> None:
        obj = dict(build().raw)
        obj["content"] = {"body": "other"}
        ev = parse_event(obj, ROOM)
        assert isinstance(ev, Event)
        assert SignatureChecker().check(ev)[0] is False

    def test_check_bytes(self) -> None:
        k = SigningKey(bytes([9]) * 32)
        sig = base64.b64encode(k.sign(b"msg").signature).decode()
        checker = SignatureChecker()
        assert checker.check_bytes(public_key_text(k), b"msg", sig)[0] is True
        assert checker.check_bytes(public_key_text(k), b"msG", sig)[0] is False
        # cached key objects give the same answers
        assert checker.check_bytes(public_key_text(k), b"msg", sig)[0] is True

    def test_check_bytes_agrees_with_pynacl_verify(self) -> None:
        """The checker calls libsodium's crypto_sign_open itself (no opened message
        copied out): its verdict is VerifyKey.verify's on good, tampered and malformed
        signatures alike, the ones libsodium refuses before any curve arithmetic
        (non-canonical S, small-order R) included."""
        k = SigningKey(bytes([9]) * 32)
        vk = k.verify_key
        msg = b'{"content":{"body":"hi"}}'
        good = k.sign(msg).signature
        order = (2**252 + 27742317777372353535851937790883648493).to_bytes(32, "little")
        cases = [
            (msg, good),
            (msg[:-1], good),
            (msg + b" ", good),
            (b"", good),
            (b"", k.sign(b"").signature),
            (msg, good[:32] + order),  # S = L: not canonical
            (msg, good[:32] + bytes([0xFF]) * 32),  # S far too large
            (msg, bytes(32) + good[32:]),  # R = 0 (small order)
            (msg, bytes([1]) + bytes(31) + good[32:]),  # R = identity
            (msg, bytes(64)),
        ]
        cases += [(msg, good[:i] + bytes([good[i] ^ 1]) + good[i + 1 :]) for i in range(64)]
        checker = SignatureChecker()
        key_text = public_key_text(k)
        for message, signature in cases:
            try:
                vk.verify(message, signature)
                expected = True
            except Exception:
                expected = False
            text = base64.b64encode(signature).decode()
            ok, why = checker.check_bytes(key_text, message, text)
            assert ok is expected, (message, signature.hex())
            assert ("good" in why) is expected


@pytest.mark.parametrize(
    "changes",
    [
        {"content": {"body": "\ud800", "msgtype": "m.text"}},
        {"content": {"body": "hi", "x": ["ok", {"k\udfff": 1}]}},
        {"sender_id": "al\udcffce@example.com"},
        {"unique": "u\udc80"},
        {"parent_event_id": "p\ud83d"},
        {"event_type": "m.\udc00"},
    ],
)
def test_build_event_refuses_a_lone_surrogate_the_reader_would_reject(
    changes: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match="lone UTF-16 surrogate"):
        build(**changes)


def test_build_event_keeps_surrogate_pairs_written_as_escapes() -> None:
    ev = build(content={"body": "smile 😀 \U0001f600", "msgtype": "m.text"})
    assert b"\\ud83d\\ude00" in ev.canonical
    parsed = parse_line(ev.line(), ROOM)
    assert isinstance(parsed, Event) and parsed.canonical == ev.canonical


def test_build_event_takes_a_surrogate_pair_held_as_two_code_points() -> None:
    # "\ud83d\ude00" as two code points is written as the escapes of 😀; a reader
    # decodes them into one character, so the event is valid and is signed.
    ev = build(content={"body": "\ud83d\ude00", "msgtype": "m.text"})
    parsed = parse_line(ev.line(), ROOM)
    assert isinstance(parsed, Event) and parsed.body == "😀"


def test_the_signing_cache_follows_the_key_object_and_never_keeps_it() -> None:
    """build_event keeps a few keys' libsodium secrets (``signing._signer``): by the key
    object's identity, weakly — keys used in turn each sign with their own secret, a
    key object made anew at a gone one's address is not taken for it, at most
    ``_SIGNERS_KEPT`` are kept, and once a key object is gone its secret is no longer
    held."""
    import gc
    import weakref

    from nacl.signing import SigningKey

    from bucket_chat_desktop.protocol import signing

    keys = [SigningKey(bytes([n]) * 32) for n in (7, 8)]
    for n in range(4):
        key = keys[n % 2]
        ev = signing.build_event(
            room_id="room-1",
            sender_id="alice@example.com",
            event_type="m.room.message",
            content={"msgtype": "m.text", "body": f"turn {n}"},
            timestamp_ms=1_760_000_000_000 + n,
            unique=f"00000000-0000-4000-8000-00000000000{n}",
            prev_event_hash=None,
            signing_key=key,
        )
        assert ev.sender_key == signing.public_key_text(key)
        assert signing.SignatureChecker().check(ev) == (True, "Ed25519 signature good")
        assert signing._signers[id(key)][0]() is key
    idents = {id(k) for k in keys}
    del key, keys
    gc.collect()
    assert not idents & signing._signers.keys()  # other tests' keys may still be kept
    # Many keys in turn: at most so many are kept; each signs with its own secret.
    many = [SigningKey(bytes([n]) * 32) for n in range(1, signing._SIGNERS_KEPT + 5)]
    for key in many * 2:
        secret, text = signing._signer(key)
        assert secret == bytes(key) + bytes(key.verify_key)
        assert text == signing.public_key_text(key)
        assert len(signing._signers) <= signing._SIGNERS_KEPT
    # A kept entry whose key object is gone and another at its address: not its secret.
    other = SigningKey(b"\x09" * 32)
    ident = id(other)
    signing._signers[ident] = (weakref.ref(many[0]), b"not this key's", "nor this")
    assert signing._signer(other) == (
        bytes(other) + bytes(other.verify_key),
        signing.public_key_text(other),
    )
    idents = {id(k) for k in many} | {ident}
    del many, key, other
    gc.collect()
    assert not idents & signing._signers.keys()


def test_signing_runs_none_of_pynacl_s_python_code_per_event() -> None:
    """build_event calls libsodium's crypto_sign itself, as the checker calls
    crypto_sign_open: PyNaCl's binding allocates a length output, checks through a
    Python call and copies the whole signed message out (and SigningKey.sign wraps that
    in a SignedMessage), about 1.5 µs of the signing hot path's 5 µs of Python
    (``benchmarks/protocol_throughput.py``). Seen through ``sys.setprofile``: once the
    key's secret is kept, no function of PyNaCl's Python code runs while an event is
    signed; the signature is still SigningKey.sign's of the canonical bytes, for events
    of a few bytes up to the largest a reader takes."""
    import os
    import sys
    from types import FrameType

    import nacl

    signing_key = key(1)
    build(signing_key=signing_key)  # its secret is now kept
    package = os.path.dirname(nacl.__file__) + os.sep
    called: list[str] = []

    def profile(frame: FrameType, what: str, arg: object) -> None:
        if what == "call" and frame.f_code.co_filename.startswith(package):
            called.append(frame.f_code.co_name)

    bodies = ["", "hi", "x" * 1000, "y" * (MAX_LINE_BYTES - 1000)]
    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        built = [
            build(content={"body": body, "msgtype": "m.text"}, signing_key=signing_key)
            for body in bodies
        ]
    finally:
        sys.setprofile(previous)
    assert called == []
    for ev in built:
        assert base64.b64decode(ev.signature) == signing_key.sign(ev.canonical).signature
        assert SignatureChecker().check(ev) == (True, "Ed25519 signature good")


def test_a_key_that_is_not_a_32_byte_seed_is_refused_before_libsodium_reads_it() -> None:
    """libsodium reads 64 bytes of the secret (seed and public key) whatever it is
    given: a key object whose bytes are not a 32-byte seed is refused, not read past."""

    class ShortKey(SigningKey):
        def __bytes__(self) -> bytes:
            return super().__bytes__()[:16]

    with pytest.raises(ValueError, match="32-byte seed"):
        build(signing_key=ShortKey(bytes([5]) * 32))
