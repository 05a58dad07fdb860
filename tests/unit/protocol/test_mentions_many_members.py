"""Red team rt80: what a sent message says it mentions (its ``mentions`` field, PROTOCOL.md
section 19: "so a client need not parse text to know whom to notify") in a room with many
members.

``mentions_in`` searched for the room's ids first, then its display names, and the search
(``mentions._trie``) keeps only the first ``MAX_TARGETS`` (500) of them. So in a room of
500 members or more no display name counts at all ("@Carol Smith" mentions nobody), and
past a few hundred members a member whose name is cut off is mentioned as whoever kept a
shorter name that fits: a hostile member dating a flood of joins back (dates are the
writer's word) puts their ids and a name "Carol" first, and the user's "@Carol Smith"
(what the ``@`` list inserts for her) goes out with the field naming the impostor."""

from __future__ import annotations

import sys
from typing import Any

from nacl.signing import SigningKey

from bucket_chat_desktop.protocol.mentions import (
    AMBIGUOUS,
    MentionTargets,
    mentions_in,
    mentions_me,
    with_mentions,
)
from bucket_chat_desktop.protocol.room_state import RoomState

from ._support import T0, Device, ledger, seg


def _room(flood: int, *, backdated: bool) -> list[tuple[str, str]]:
    """Carol Smith writes; a hostile member adds ``flood`` ids, each its own valid key
    with a join (the first calls itself "Carol"). The members the composer completes and
    ``mentions_in`` reads (``Names.members``, first seen first)."""
    carol = Device("carol@example.com", 5)
    segments = [seg([carol.join(T0, displayname="Carol Smith"), carol.say(T0 + 1, "hi")], "carol")]
    events = []
    start = T0 - 10**11 if backdated else T0 + 10
    for i in range(flood):
        d = Device(f"m{i:05d}@evil.example", 1)
        d.key = SigningKey((i + 100).to_bytes(4, "big") * 8)
        events.append(d.join(start + i, displayname="Carol" if i == 0 else f"M {i}"))
    for at in range(0, len(events), 300):
        segments.append(seg(events[at : at + 300], f"flood{at}"))
    state = RoomState.of(ledger(*segments).audit())
    members = state.roster().names.members()
    assert ("carol@example.com", "Carol Smith") in members
    return members


def test_a_display_name_mention_counts_in_a_room_of_600_members() -> None:
    members = _room(600, backdated=False)
    assert len(members) == 601
    assert mentions_in("@Carol Smith can you look?", members) == ["carol@example.com"]
    assert with_mentions({"body": "@Carol Smith ping"}, members).get("mentions") == [
        "carol@example.com"
    ]


def test_an_id_mention_counts_whatever_the_number_of_members() -> None:
    """Carol's own id, spelled out, after 600 ids a member dated back: nobody."""
    members = _room(600, backdated=True)
    assert mentions_in("@carol@example.com can you look?", members) == ["carol@example.com"]


def test_a_backdated_flood_does_not_get_someone_elses_mention() -> None:
    """300 backdated ids, the first named "Carol": the user writes "@Carol Smith" and the
    message's field named m00000@evil.example (notified, shown as the one mentioned by
    clients that read the field), not Carol."""
    members = _room(300, backdated=True)
    assert members[0] == ("m00000@evil.example", "Carol")  # the flood comes first
    found = mentions_in("@Carol Smith can you look?", members)
    assert "m00000@evil.example" not in found
    assert found == ["carol@example.com"]


# -- the rules, whatever the room's size -------------------------------------------------------

CAROL = ("carol@example.com", "Carol Smith")
OTHER_CAROL = ("carol.smith@elsewhere.example", "Carol Smith")


def test_a_name_two_members_go_by_names_neither_in_any_order() -> None:
    """Which of two members named alike came first is the writers' word (dates are): the
    name is ambiguous and names nobody; each is still mentioned by id (what the ``@``
    list writes for them)."""
    for members in ([CAROL, OTHER_CAROL], [OTHER_CAROL, CAROL]):
        assert mentions_in("@Carol Smith hi", members) == []
        assert mentions_in("@carol smith hi", members) == []
        assert mentions_in("@carol@example.com hi", members) == ["carol@example.com"]
        targets = MentionTargets.of(members)
        assert targets.owner("Carol Smith") == AMBIGUOUS
        assert targets.spans("@Carol Smith") == [(0, 12, AMBIGUOUS)]


def test_the_longest_name_wins_and_a_shorter_one_is_not_its_stand_in() -> None:
    """A mention of "Carol Smith" names Carol Smith, never "Carol"; when that is ambiguous
    it names nobody rather than falling back to "Carol"."""
    carol_only = ("m0@evil.example", "Carol")
    assert mentions_in("@Carol Smith, see", [carol_only, CAROL]) == [CAROL[0]]
    assert mentions_in("@Carol Smith, see", [carol_only, CAROL, OTHER_CAROL]) == []
    assert mentions_in("@Carol, see", [carol_only, CAROL, OTHER_CAROL]) == ["m0@evil.example"]


def test_an_id_beats_a_display_name_written_like_it() -> None:
    """A member calling themself "carol@example.com" cannot take Carol's id mention."""
    impostor = ("m0@evil.example", "carol@example.com")
    for members in ([impostor, CAROL], [CAROL, impostor]):
        assert mentions_in("@carol@example.com hi", members) == [CAROL[0]]


def test_the_users_own_names_are_theirs_first() -> None:
    """The user's own id and names name the user, whoever else goes by them."""
    members = [("m0@evil.example", "Carol Smith"), CAROL]
    targets = MentionTargets.of(members, CAROL[0], ("Carol Smith",))
    assert targets.spans("hey @Carol Smith") == [(4, 16, CAROL[0])]
    assert targets.owner("carol smith") == CAROL[0]
    assert MentionTargets.of(members).owner("Carol Smith") == AMBIGUOUS


def _lines(call: Any) -> int:
    """Lines of Python ``call`` runs: work counted, not timed."""
    lines = 0

    def trace(frame: object, event: str, arg: object) -> object:
        nonlocal lines
        lines += event == "line"
        return trace

    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(None)
    return lines


def test_every_one_of_20000_members_counts_and_a_search_costs_what_the_text_does() -> None:
    members = [(f"user{i:06d}@example.com", f"Member {i}") for i in range(20_000)]
    members.append(CAROL)
    targets = MentionTargets.of(members)
    assert len(targets) == 2 * len(members)
    body = "@Carol Smith and @user019999@example.com, @Member 5 and @Member 123456"
    expected = [CAROL[0], "user019999@example.com", "user000005@example.com"]
    assert targets.named_in(body) == expected
    assert mentions_in(body, members) == expected
    few = MentionTargets.of([CAROL, members[5], members[19_999]])
    assert few.named_in(body) == expected
    # the members are looked up (bisect, in C), never walked: the same work for 3 or 20,001
    assert _lines(lambda: targets.named_in(body)) <= 2 * _lines(lambda: few.named_in(body))


# Red team rt81: whom a mention names was decided twice, by two rules. The timeline
# highlights "@Alice Cooper" as Carol's (``MentionTargets``: every member's names, the
# longest wherever several fit), but whether a message mentions the user — its accent and
# its notification — was ``mentions_me`` over the user's own names alone, so the "@Alice"
# inside "@Alice Cooper" counted as the user's: a member who goes by the user's name with
# a word more pinged the user with every mention of themself.
ME = "alice@example.com"
ROOM_OF_ALICES = [(ME, "Alice"), ("carol@example.com", "Alice Cooper"), ("bob@example.com", "Bob")]


def _text(body: str, **more: Any) -> dict[str, Any]:
    return {"body": body, "msgtype": "m.text", **more}


def test_a_longer_name_of_another_member_is_not_a_mention_of_the_user() -> None:
    body = "@Alice Cooper the deploy is yours"
    targets = MentionTargets.of(ROOM_OF_ALICES, ME, ("Alice",))
    spans = targets.spans(body)
    assert [(body[a:b], whom) for a, b, whom in spans] == [("@Alice Cooper", "carol@example.com")]
    # the row's accent and the notification follow the same reading as the highlight
    assert not mentions_me(_text(body), ME, targets), (
        "highlighted as Carol's mention, yet notified and accented as the user's"
    )
    # and what a sender puts in the field agrees
    assert mentions_in(body, ROOM_OF_ALICES) == ["carol@example.com"]


def test_the_user_is_still_mentioned_by_their_own_name_id_or_the_field() -> None:
    targets = MentionTargets.of(ROOM_OF_ALICES, ME, ("Alice",))
    assert mentions_me(_text("@Alice the deploy is yours"), ME, targets)
    assert mentions_me(_text("@alice@example.com, see"), ME, targets)
    assert mentions_me(_text("@Alice Coop, see"), ME, targets)  # not Carol's whole name
    assert mentions_me(_text("@Alice Cooper and @Alice"), ME, targets)
    # what the user calls themself beats another member's name written the same
    twin = MentionTargets.of([*ROOM_OF_ALICES, ("m0@evil.example", "Alice")], ME, ("Alice",))
    assert mentions_me(_text("@Alice see"), ME, twin)
    # the field, when it is valid, names the user whatever the body says
    assert mentions_me(_text("@Alice Cooper see", mentions=[ME]), ME, targets)
    assert not mentions_me(_text("@Alice Cooper see", mentions=["carol@example.com"]), ME, targets)
    assert not mentions_me(_text("@Bob see"), ME, targets)
    assert not mentions_me(_text("@Alice see"), "", targets)


def test_whether_the_user_is_mentioned_costs_what_the_text_does_not_the_members() -> None:
    members = [(f"user{i:06d}@example.com", f"Alice {i}") for i in range(20_000)]
    many = MentionTargets.of([*members, *ROOM_OF_ALICES], ME, ("Alice",))
    few = MentionTargets.of(ROOM_OF_ALICES, ME, ("Alice",))
    body = _text("@Alice 19999 and @Alice Cooper, then @Alice 5 " * 20)
    assert not mentions_me(body, ME, many)
    assert mentions_me(body, ME, few)  # "@Alice" before " 19999": no member goes by it here
    assert _lines(lambda: mentions_me(body, ME, many)) <= 2 * _lines(
        lambda: mentions_me(body, ME, few)
    )
