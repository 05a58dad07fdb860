"""``room_names.name_lookalikes``: the one rule the join dialog, the room list and
``bucket-chat rooms`` mark a room's name by."""

from __future__ import annotations

import time

from bucket_chat_desktop.protocol.room_names import NamedRoom, name_lookalikes


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


def test_many_rooms_of_one_name_are_judged_in_linear_time() -> None:
    rooms = [_here(f"r{n}", "General") for n in range(20_000)]
    rooms += [_here(f"x{n}", f"Room {n}") for n in range(20_000)]
    started = time.perf_counter()
    found = name_lookalikes(rooms)
    assert time.perf_counter() - started < 10  # not a walk of its whole group per room
    assert len(found) == 20_000
    assert found["r7"] == (
        "Its name looks like the name of another room here (r0, r1, r2 and 19,996 more)."
    )
    assert name_lookalikes(rooms, judge=["r0", "x3", "nope"]) == {"r0": found["r0"]}
