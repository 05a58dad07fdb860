"""``room_names.name_lookalikes``: the one rule the join dialog, the room list and
``bucket-chat rooms`` mark a room's name by."""

from __future__ import annotations

import itertools
import sys

from bucket_chat_desktop.protocol.room_names import (
    NamedRoom,
    name_look,
    name_lookalikes,
    name_looks,
)


def _here(room_id: str, name: str) -> NamedRoom:
    return NamedRoom(room_id, room_id, name)


def test_a_name_like_another_listed_rooms_name_or_id_is_marked() -> None:
    rooms = [
        _here("general", "General"),
        _here("payroll", "Payroll 2026"),
        _here("announce", "G\u0435neral"),  # a Cyrillic "е"
        _here("payroll-new", "payroll"),  # another room's id
        _here("quiet", ""),
    ]
    assert name_lookalikes(rooms) == {
        # of two that look the same, the one with suspect letters (not General)
        "announce": "Its name looks like the name of another room here (general).",
        "payroll-new": "Its name looks like the id of another room here (payroll).",
    }


def test_rooms_the_user_is_in_elsewhere_count_and_are_named_as_such() -> None:
    """Red team rt60: "Payroll" on a partner's share beside the Payroll the user is in
    on the company's (two plain names: both are marked, as neither can be told to be
    the real one); a listed room that is also joined is judged once, as listed."""
    listed = [_here("p/pay-2", "Payroll"), _here("p/lunch", "Lunch")]
    joined = [
        NamedRoom("c/salaries", "salaries", "Payroll", "salaries on Company", here=False),
        NamedRoom("p/lunch", "lunch", "Lunch", "lunch on Partner", here=False),
        NamedRoom("c/lunch-2", "lunch-2", "", "lunch-2 on Company", here=False),
    ]
    assert name_lookalikes([*listed, *joined], judge=["p/pay-2", "p/lunch"]) == {
        "p/pay-2": (
            "Its name looks like the name of another room you are in (salaries on Company)."
        )
    }
    assert "c/salaries" in name_lookalikes([*listed, *joined])


def test_a_plain_name_imitated_by_look_alike_letters_still_marks_an_id_it_looks_like() -> None:
    rooms = [
        _here("x", "Payroll"),  # plain: the look-alike name is the one marked, but ...
        _here("payroll", "Payr\u043ell"),  # a Cyrillic "о"
    ]
    assert name_lookalikes(rooms) == {
        "x": "Its name looks like the id of another room here (payroll).",  # ... an id
        "payroll": "Its name looks like the name of another room here (x).",
    }


def _work(rooms: list[NamedRoom]) -> int:
    """Lines of Python ``name_lookalikes`` runs for ``rooms``: work counted, not timed."""
    lines = 0

    def trace(frame: object, event: str, arg: object) -> object:
        nonlocal lines
        lines += event == "line"
        return trace

    sys.settrace(trace)
    try:
        name_lookalikes(rooms)
    finally:
        sys.settrace(None)
    return lines


def test_many_rooms_of_one_name_are_judged_in_linear_work() -> None:
    def rooms(n: int) -> list[NamedRoom]:
        named = [_here(f"r{i}", "General") for i in range(n)]
        return named + [_here(f"x{i}", f"Room {i}") for i in range(n)]

    assert _work(rooms(4_000)) < 6 * _work(rooms(1_000))  # a walk per room: 16 times
    found = name_lookalikes(rooms(20_000))
    assert len(found) == 20_000
    assert found["r7"] == (
        "Its name looks like the name of another room here (r0, r1, r2 and 19,996 more)."
    )
    assert name_lookalikes(rooms(20_000), judge=["r0", "x3", "nope"]) == {"r0": found["r0"]}


def test_rooms_whose_ids_differ_in_case_only_are_judged_in_linear_work() -> None:
    """Red team rt62: room ids are case-sensitive and a look folds case, so 2**k rooms
    "payroll…", "Payroll…", "pAyroll…" named alike share one id look, and each room's
    reason by id walked the whole group: 8,192 rooms took 4.3 s (1,024: 0.07 s)."""

    def rooms(k: int) -> list[NamedRoom]:
        base = "payrollxyzabc"[:k]
        ids = [
            "".join(c.upper() if up else c for c, up in zip(base, bits, strict=True))
            for bits in itertools.product((False, True), repeat=k)
        ]
        return [_here(i, base) for i in ids]

    assert _work(rooms(12)) < 16 * _work(rooms(9))  # 8 times the rooms; quadratic: 64
    found = name_lookalikes([*rooms(3), _here("other", "Pay")])
    assert found["pay"] == (
        "Its name looks like the name of another room here (paY, pAy, pAY and 5 more)."
    )


def test_a_name_with_an_invisible_variation_selector_is_marked() -> None:
    """Red team rt62: "Payro\ufe0ell" (a variation selector after the o) reads "Payroll"
    in a terminal and in Qt, but its skeleton kept the selector: listed unmarked beside
    the real Payroll, in the join dialog, the room list and ``bucket-chat rooms``."""
    for selector in ("\ufe0e", "\ufe0f", "\U000e0100"):
        rooms = [_here("payroll-2", "Payroll"), _here("pay-x", f"Payro{selector}ll")]
        found = name_lookalikes(rooms)
        assert found["pay-x"] == "Its name looks like the name of another room here (payroll-2)."
        assert "payroll-2" not in found  # the one with the invisible letter is marked


def test_the_looks_of_many_room_ids_are_those_of_each_in_a_few_calls() -> None:
    """``name_looks`` folds every id listed at once (the join dialog compares each name
    it reads with up to 200,000 of them): what ``name_look`` says of each, pairs that
    fold ("rn", "cl", "vv", "1", "0", "I") included, never folded across two ids."""
    ids = ["General", "payro1l", "r", "n", "c", "l-cI", "v", "v", "0ps", "a.b_c-d", "RN", ""]
    ids += [f"Room-{n:05d}" for n in range(2_000)]
    calls = 0

    def count(_frame: object, event: str, _arg: object) -> None:
        nonlocal calls
        calls += event in ("call", "c_call")

    sys.setprofile(count)
    try:
        looks = name_looks(ids)
    finally:
        sys.setprofile(None)
    assert looks == [name_look(r) for r in ids]
    assert looks[2:4] == ["r", "n"]  # "r" then "n": not one "m"
    assert calls < 40, calls
    # anything that is not a room id (a "/", a space, other letters) is looked at alone
    for odd in (["a/b", "rn"], ["a b", "c"], ["G\u0435neral", "general"], ["x\ty"]):
        assert name_looks(odd) == [name_look(t) for t in odd]
    assert name_looks([]) == []
