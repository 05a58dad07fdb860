"""Red-team cases against the protocol layer: what a member with write access to the
room folder can plant, checked against the promises in docs/SECURITY.md."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from bucket_chat_desktop.protocol.audit import RoomLedger
from bucket_chat_desktop.protocol.untrusted_text import RoomIds, id_warning

from ._support import ROOM, T0, audit, kinds, named_path, raw_line


def _case_variants(base: str, n: int) -> list[str]:
    """``n`` distinct ids that all look like ``base`` (they differ only in case)."""
    letters = [i for i, c in enumerate(base) if c.isalpha()]
    out = []
    for k in range(n):
        chars = list(base)
        for bit, pos in enumerate(letters):
            if k >> bit & 1:
                chars[pos] = chars[pos].upper()
        out.append("".join(chars))
    return out


def test_thousands_of_lookalike_ids_cost_linear_work() -> None:
    """Unsigned lines cost nothing to write, and case variants of one id share one
    skeleton. Asking about each id walked the whole group, and past the 4,096-entry cache
    every step recomputed ``id_warning``: 8,000 such ids made ``verify`` run for minutes.
    Measured in work done (cache misses), not in seconds."""
    ids = _case_variants("alicebobcarol@example.com", 4300)
    id_warning.cache_clear()
    room = RoomIds()
    room.update(ids)
    answers = [room.warning(i) for i in ids[:40]]
    assert id_warning.cache_info().misses <= len(ids) + 40
    # ... and the answers are the same as before: no plain id owns the look, each is
    # marked — the first as looking like the second, the others like the first.
    assert answers[0] is not None and ids[1] in answers[0]
    assert all(a is not None and ids[0] in a for a in answers[1:])


def test_lookalike_verdicts_follow_suspect_characters_not_first_seen() -> None:
    room = RoomIds()
    room.update(["alice@example.com", "\u0430lice@example.com"])
    assert room.lookalike_of("alice@example.com") is None
    assert room.lookalike_of("\u0430lice@example.com") == "alice@example.com"
    # a second plain id that looks the same: both plain ids are marked, whichever came
    # first (a writer dates its own events: "first" can be backdated)
    room.add("ALICE@example.com")
    assert room.lookalike_of("alice@example.com") == "ALICE@example.com"
    assert room.lookalike_of("ALICE@example.com") == "alice@example.com"
    assert room.lookalike_of("\u0430lice@example.com") == "alice@example.com"
    # a suspect id seen first does not own the look: the plain one is not marked for it
    first = RoomIds()
    first.update(["\u0430lice@example.com", "alice@example.com"])
    assert first.lookalike_of("alice@example.com") is None
    assert first.lookalike_of("\u0430lice@example.com") == "alice@example.com"
    # an id never added is compared with the room's ids
    assert room.lookalike_of("Alice@example.com") == "alice@example.com"
    lone = RoomIds()
    lone.add("\u0430lice@example.com")
    assert lone.lookalike_of("\u0430lice@example.com") is None


def _python_calls(fn: Callable[[], object]) -> int:
    """How many Python-level calls (generator steps included) ``fn`` makes: a measure of
    work that does not depend on the machine's speed."""
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def _copies_of_one_id(n: int) -> bytes:
    lines = [
        raw_line(
            {
                "event_id": f"{ROOM}::t::same",
                "room_id": ROOM,
                "timestamp_ms": T0,
                "sender_id": "mallory@example.com",
                "type": "m.room.message",
                "signature": "",
                "content": {"body": str(k)},
            }
        )
        for k in range(n)
    ]
    return b"".join(lines)


def test_many_copies_of_one_event_id_cost_linear_work() -> None:
    """Unsigned copies of one event id cost nothing to write; each new copy was compared
    with every copy before it (20,000 copies: 10 s of ``verify``, a 64 MB segment: hours).
    The replay finding names a bounded number of places."""
    small, large = _copies_of_one_id(500), _copies_of_one_id(2000)
    path = named_path(T0, T0, "x")
    work_small = _python_calls(lambda: RoomLedger(ROOM).add_segment(path, small))
    work_large = _python_calls(lambda: RoomLedger(ROOM).add_segment(path, large))
    assert work_large < 6 * work_small  # 4x the copies: linear, not 16x
    result = audit((path, large))
    assert kinds(result.findings) == ["replay"]
    assert "and 1,980 more" in result.findings[0].message
    assert len(result.findings[0].message) < 5_000
    assert len(result.timeline) == 1


def test_ids_with_overlay_marks_or_foreign_punctuation_are_marked() -> None:
    """Neither a look-alike letter nor an invisible character, so nothing marked them:
    a stroke overlaid on the last letter, and a full stop from another script."""
    for forged in ("alice@example.com\u0335", "alice@example\u06d4com", "alice@example\u0701com"):
        assert id_warning(forged) is not None, forged
        room = RoomIds()
        room.update(["alice@example.com", forged])
        assert room.warning(forged) is not None
    # letters with accents are letters: they stay plain
    assert id_warning("jos\u00e9@example.com") is None
    assert id_warning("jose\u0301@example.com") is None


def _python_lines(fn: Callable[[], object]) -> int:
    """How many lines of Python ``fn`` runs: work done, whatever the machine's speed."""
    lines = 0

    def trace(frame: object, event: str, arg: object) -> Any:
        nonlocal lines
        if event == "line":
            lines += 1
        return trace

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return lines


def test_where_two_long_look_alike_ids_differ_costs_linear_work() -> None:
    """Red team: the "Where they differ" note compared ids with difflib: 0.3 s for two
    412-character ids of l and I, asked for every row painted and every member — a room
    of 200 such ids held ``history`` for a minute. Now linear; and two ids of one
    length are described by the characters at the same places, not as insertions."""
    from bucket_chat_desktop.protocol.untrusted_text import id_difference

    real = "l" * 400 + "@example.com"
    fake = "".join("lI"[i % 2] for i in range(400)) + "@example.com"
    note: list[str | None] = []
    work = _python_lines(lambda: note.append(id_difference.__wrapped__(fake, real)))
    assert work < 20 * len(real), work
    text = note[0]
    assert text is not None and "does not have" not in text
    assert text.startswith("Where they differ: character 2 is U+0049 LATIN CAPITAL LETTER I")
    assert "(and 198 more places)" in text
    # of two lengths: what lies between the common start and end
    rn = id_difference("rnallory@x", "mallory@x")
    assert rn is not None and "characters 1–2 are U+0072" in rn and "U+006D" in rn
