"""Room state: the member fold, the one display-name rule and the one membership wording,
fed real signed segments through the real audit (and hostile content where the wording
takes a mapping)."""

from __future__ import annotations

from typing import Any

import pytest

from bucket_chat_desktop.protocol.audit import (
    DEVICE_ACCEPT_FIELD,
    DEVICE_ADD_FIELD,
    Assessed,
    AuditResult,
    TrustState,
)
from bucket_chat_desktop.protocol.event import MEMBER
from bucket_chat_desktop.protocol.room_state import (
    DeviceState,
    DisplayNames,
    RoomState,
    conflicted_senders,
    display_name_set_by,
    membership_text,
)
from bucket_chat_desktop.protocol.untrusted_text import MAX_MARKS, NAME_LIMIT

from ._support import T0, Device, alice, alice_laptop, audit, bob, raw_line, seg

ALICE = "alice@example.com"
BOB = "bob@example.com"


def names_of(result: AuditResult) -> dict[str, str]:
    """Both folds of the rule: the member list's and the timeline's must agree."""
    state = RoomState.of(result)
    names = DisplayNames()
    names.update(result.timeline)
    members = {m.user_id: m.display_name for m in state.members(everyone=True)}
    assert members == {u: names.name(u) for u in members}
    return members


# -- membership wording ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("membership", "text"),
    [
        ("join", "joined the room"),
        ("leave", "left the room"),
        ("invite", "was invited"),
        ("ban", "was banned"),
        ("kick", "was removed"),
    ],
)
def test_each_membership_has_its_own_words(membership: str, text: str) -> None:
    assert membership_text({"membership": membership}) == text
    assert not membership_text({"membership": membership}).endswith(f"{membership}ed")


def test_device_statements_are_worded_with_a_short_key() -> None:
    key = Device(ALICE, 5).public
    added = {"membership": "join", DEVICE_ADD_FIELD: key, "device_name": "phone"}
    assert membership_text(added) == f"added a device (key {key[:12]}…)"
    accepted = {"membership": "join", DEVICE_ACCEPT_FIELD: key}
    assert membership_text(accepted) == f"accepted a new device (introduced by key {key[:12]}…)"
    # only a join introduces a device: the same field in a leave is not worded as one
    assert membership_text({"membership": "leave", DEVICE_ADD_FIELD: key}) == "left the room"


@pytest.mark.parametrize(
    "value",
    [None, 7, ["k"], {"k": 1}, "", "not base64!", "\u202e" + "A" * 43 + "=", "QUJD" * 5000],
)
def test_a_key_that_is_not_a_key_is_never_shown(value: Any) -> None:
    text = membership_text({"membership": "join", DEVICE_ADD_FIELD: value})
    assert text == "added a device (a malformed key)"
    text = membership_text({"membership": "join", DEVICE_ACCEPT_FIELD: value})
    assert text == "accepted a new device (introduced by a malformed key)"


@pytest.mark.parametrize("value", [None, 1, 1.5, True, ["join"], {"join": 1}])
def test_a_membership_that_is_not_a_string_is_worded_safely(value: Any) -> None:
    assert membership_text({"membership": value}) == "changed their membership (not readable)"
    assert membership_text({}) == "changed their membership (not readable)"


def test_an_unknown_membership_is_quoted_cleaned_and_capped() -> None:
    assert membership_text({"membership": "knock"}) == "changed their membership to “knock”"
    hostile = "\u202eevil\u200b\n" + "x" * 5000
    text = membership_text({"membership": hostile})
    assert "\u202e" not in text and "\u200b" not in text and "\n" not in text
    assert len(text) < 80 and text.endswith("…”")
    assert membership_text({"membership": "\u200b\u202e"}) == "changed their membership"


def test_the_claimed_name_is_added_only_when_asked_and_cleaned() -> None:
    content = {"membership": "join", "displayname": "  \u202eAl\u200bice\u2066  "}
    assert membership_text(content) == "joined the room"
    assert membership_text(content, with_name=True) == 'joined the room as "Alice"'
    huge = {"membership": "join", "displayname": "B" * 100_000}
    claimed = membership_text(huge, with_name=True)
    assert len(claimed) < len("joined the room as ") + NAME_LIMIT + 3
    assert membership_text({"membership": "leave", "displayname": "X"}, with_name=True) == (
        "left the room"
    )
    assert membership_text({"membership": "join", "displayname": 5}, with_name=True) == (
        "joined the room"
    )


# -- the display-name rule ------------------------------------------------------------------


def test_the_latest_verified_join_names_the_user() -> None:
    a = alice()
    events = [
        a.join(T0, displayname="Alice"),
        a.say(T0 + 1, "hi"),
        a.emit(T0 + 2, MEMBER, {"membership": "join", "displayname": "Ally"}),
        a.emit(T0 + 3, MEMBER, {"membership": "join"}),  # no name: keeps "Ally"
        a.emit(T0 + 4, MEMBER, {"membership": "join", "displayname": "\u200b\u2067"}),
        a.emit(T0 + 5, MEMBER, {"membership": "join", "displayname": 42}),
    ]
    result = audit(seg(events, "a"))
    assert {x.state for x in result.timeline} == {TrustState.VERIFIED}
    assert names_of(result) == {ALICE: "Ally"}


@pytest.mark.parametrize("membership", ["leave", "invite", "ban", "kick"])
def test_no_other_membership_renames_anyone(membership: str) -> None:
    a, b = alice(), bob()
    result = audit(
        seg([a.join(T0, displayname="Alice")], "a"),
        seg(
            [
                b.join(T0 + 1, displayname="Bob"),
                b.emit(T0 + 2, MEMBER, {"membership": membership, "displayname": "Alice"}),
            ],
            "b",
        ),
    )
    assert names_of(result) == {ALICE: "Alice", BOB: "Bob"}
    state = RoomState.of(result)
    present = [m.user_id for m in state.members()]
    assert present == ([ALICE, BOB] if membership == "invite" else [ALICE])


def test_a_key_changed_event_does_not_rename_or_remove_the_real_user() -> None:
    a = alice()
    impostor = Device(ALICE, 9)
    result = audit(
        seg([a.join(T0, displayname="Alice"), a.say(T0 + 1, "hi")], "a"),
        seg(
            [
                impostor.join(T0 + 2, displayname="Alice (new phone)"),
                impostor.emit(T0 + 3, MEMBER, {"membership": "join", "displayname": "Mallory"}),
                impostor.emit(T0 + 4, MEMBER, {"membership": "leave"}),
            ],
            "i",
        ),
        pinned={ALICE: [a.public]},
    )
    assert [x.state for x in result.timeline][2:] == [TrustState.KEY_CHANGED] * 3
    assert all(display_name_set_by(x) == "" for x in result.timeline[2:])
    assert names_of(result) == {ALICE: "Alice"}
    (member,) = RoomState.of(result).members()  # still a member: a leave cannot remove her
    assert member.display_name == "Alice" and member.present
    states = {d.key: d.state for d in member.devices}
    assert states == {a.public: DeviceState.VERIFIED, impostor.public: DeviceState.KEY_CHANGED}


def test_a_join_with_a_broken_chain_does_not_rename() -> None:
    a = alice()
    first = a.join(T0, displayname="Alice")
    a.say(T0 + 1, "lost")  # never stored: the next link is a gap
    later = a.emit(T0 + 2, MEMBER, {"membership": "join", "displayname": "Gap"})
    result = audit(seg([first], "a"), seg([later], "a2"))
    assert [x.state for x in result.timeline] == [TrustState.VERIFIED, TrustState.UNVERIFIED]
    assert names_of(result) == {ALICE: "Alice"}


def test_unsigned_lines_name_nobody() -> None:
    line = raw_line(
        {
            "event_id": "room-1::2025-09-14T14:00:41.123000Z::00000001-0000-4000-8000-0000000",
            "room_id": "room-1",
            "timestamp_ms": T0,
            "sender_id": "joran@example.com",
            "type": MEMBER,
            "parent_event_id": None,
            "prev_event_hash": None,
            "signature": "bm90IGNoZWNrYWJsZQ==",
            "content": {"membership": "join", "displayname": "Alice"},
        }
    )
    result = audit((f"rooms/room-1/logs/2025-09-14/messages_{T0}_{T0}_joran.jsonl", line))
    assert [x.state for x in result.timeline] == [TrustState.UNVERIFIED]
    assert names_of(result) == {"joran@example.com": ""}
    (member,) = RoomState.of(result).members()
    assert member.shown_name == "joran@example.com"
    assert [d.state for d in member.devices] == [DeviceState.UNVERIFIED]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\u202eecilA", "ecilA"),  # bidi override removed, letters kept
        ("A\u200b\u200bl\u2060ice", "Alice"),  # invisible characters removed
        ("Al\nice\t\tB", "Al ice B"),  # line breaks and tabs become single spaces
        ("Z" * 10_000, "Z" * (NAME_LIMIT - 1) + "…"),  # capped, the cut shown
        ("e" + "\u0301" * 500, "e" + "\u0301" * MAX_MARKS),  # marks capped per letter
    ],
)
def test_hostile_display_names_are_cleaned_before_they_are_kept(raw: str, shown: str) -> None:
    a = alice()
    result = audit(seg([a.join(T0, displayname=raw)], "a"))
    assert names_of(result)[ALICE] == shown


def test_a_name_that_looks_like_another_id_is_marked() -> None:
    a, b = alice(), bob()
    result = audit(
        seg([a.join(T0, displayname="Alice")], "a"),
        seg([b.join(T0 + 1, displayname=ALICE)], "b"),
    )
    members = {m.user_id: m for m in RoomState.of(result).members()}
    assert members[BOB].id_warning and members[ALICE].id_warning is None


# -- members and devices --------------------------------------------------------------------


def test_devices_introductions_and_repeated_appends() -> None:
    phone, laptop = alice(), alice_laptop()
    events_phone = [
        phone.join(T0, displayname="Alice"),
        phone.emit(
            T0 + 1,
            MEMBER,
            {"membership": "join", DEVICE_ADD_FIELD: laptop.public, "device_name": "\u202elaptop"},
        ),
    ]
    events_laptop = [laptop.join(T0 + 2, **{DEVICE_ACCEPT_FIELD: phone.public})]
    result = audit(seg(events_phone, "p"), seg(events_laptop, "l"))
    state = RoomState()
    state.add(result.timeline[:2])
    state.add(result.timeline)  # the engine may hand events again: folded once
    # a key confirmed as someone else's confirms nothing of hers (a key is public)
    (other,) = state.members(confirmed={(BOB, phone.public)})
    assert all(d.state is not DeviceState.CONFIRMED for d in other.devices)
    (member,) = state.members(confirmed={(ALICE, phone.public)})
    assert [(d.number, d.key, d.events) for d in member.devices] == [
        (1, phone.public, 2),
        (2, laptop.public, 1),
    ]
    by_key = {d.key: d for d in member.devices}
    assert by_key[phone.public].state is DeviceState.CONFIRMED
    assert by_key[laptop.public].state is DeviceState.VERIFIED
    assert by_key[laptop.public].introduced_by == phone.public
    assert by_key[laptop.public].name == "laptop"
    assert member.joined and member.membership == "join"
    texts = [membership_text(x.event.content) for x in result.timeline]
    assert texts == [
        "joined the room",
        f"added a device (key {laptop.public[:12]}…)",
        f"accepted a new device (introduced by key {phone.public[:12]}…)",
    ]


def test_a_conflict_marks_the_keys_disputed() -> None:
    a, other = alice(), Device(ALICE, 9)
    result = audit(seg([a.join(T0)], "a"), seg([other.join(T0 + 1)], "o"))
    (member,) = RoomState.of(result).members()
    assert {d.state for d in member.devices} == {DeviceState.DISPUTED}


def test_others_as_names_the_keys_nobody_vouched_for_that_wrote_as_a_user() -> None:
    phone, laptop, other = alice(), alice_laptop(), Device(ALICE, 9)
    events_phone = [
        phone.join(T0),
        phone.emit(T0 + 1, MEMBER, {"membership": "join", DEVICE_ADD_FIELD: laptop.public}),
    ]
    events_laptop = [laptop.join(T0 + 2, **{DEVICE_ACCEPT_FIELD: phone.public})]
    introduced = audit(seg(events_phone, "p"), seg(events_laptop, "l"))
    # a device of her own that she introduced is hers, whichever device asks
    assert RoomState.of(introduced).roster().others_as(ALICE, phone.public) == ()
    assert RoomState.of(introduced).roster().others_as(ALICE, laptop.public) == ()
    assert RoomState.of(introduced).roster().others_as(BOB, phone.public) == ()
    # read as the app and the command line read: with the device's own key pinned
    segments = seg(events_phone, "p"), seg(events_laptop, "l"), seg([other.join(T0 + 3)], "o")
    for own in (phone, laptop):
        forged = audit(*segments, pinned={ALICE: [own.public]})
        (claim,) = RoomState.of(forged).roster().others_as(ALICE, own.public)
        assert claim.key == other.public and claim.state is DeviceState.KEY_CHANGED
    # first in the room, the forger and she dispute the id: her own key is never listed
    disputed = audit(seg([other.join(T0)], "o"), seg([phone.join(T0 + 1)], "p"))
    assert conflicted_senders(disputed) == {ALICE}  # read with nothing pinned
    (claim,) = RoomState.of(disputed).roster().others_as(ALICE, phone.public)
    assert claim.key == other.public and claim.state is DeviceState.DISPUTED


def test_invalid_events_are_never_counted() -> None:
    a = alice()
    ev = a.join(T0, displayname="Alice")
    item = Assessed(ev, TrustState.INVALID, "bad signature", "p", 1)
    state = RoomState()
    state.add([item])
    assert state.members(everyone=True) == [] and state.display_name(ALICE) == ""
    names = DisplayNames()
    names.add(item)
    assert names.shown(ALICE) == ALICE


def test_the_command_line_lists_who_left_with_all_and_words_events_once() -> None:
    from bucket_chat_desktop.cli import format as fmt

    a, b = alice(), bob()
    result = audit(
        seg([a.join(T0, displayname="Alice"), a.emit(T0 + 1, MEMBER, {"membership": "ban"})], "a"),
        seg([b.join(T0 + 2), b.emit(T0 + 3, MEMBER, {"membership": "leave"})], "b"),
    )
    state = RoomState.of(result)
    assert state.members() == []
    heads = [fmt.member_lines(m)[0] for m in state.members(everyone=True)]
    assert heads == [
        '"Alice"  alice@example.com  [verified]  (was banned)',
        "bob@example.com  [verified]  (left the room)",
    ]
    lines = [fmt.describe_event(x) for x in result.timeline]
    assert lines == [
        '* joined the room as "Alice"',
        "* was banned",
        "* joined the room",
        "* left the room",
    ]


def test_display_names_members_leave_out_who_left_but_the_mentions_list_keeps_them() -> None:
    """What "@" completes: senders whose latest verified membership is a leave are not
    offered (a join brings them back); highlighting old mentions keeps everyone."""
    a, b, c = alice(), bob(), Device("carol@example.com", 7)
    result = audit(
        seg([a.join(T0, displayname="Alice"), a.say(T0 + 5, "hi")], "a"),
        seg(
            [b.join(T0 + 1, displayname="Bob"), b.emit(T0 + 2, MEMBER, {"membership": "leave"})],
            "b",
        ),
        seg(
            [
                c.join(T0 + 3, displayname="Carol"),
                c.emit(T0 + 4, MEMBER, {"membership": "leave"}),
                c.emit(T0 + 6, MEMBER, {"membership": "join"}),
            ],
            "c",
        ),
    )
    names = DisplayNames()
    names.update(result.timeline)
    assert [uid for uid, _ in names.members()] == [ALICE, "carol@example.com"]
    assert [uid for uid, _ in names.members(with_left=True)] == [ALICE, BOB, "carol@example.com"]


def _statement(dev: Device, ts: int, named: str) -> Any:
    return dev.emit(ts, MEMBER, {"membership": "join", DEVICE_ADD_FIELD: named})


def test_a_statement_naming_a_key_that_writes_as_someone_else_makes_no_device_of_theirs() -> None:
    """Red team rt64: a member's verified join naming another member's public key listed it
    as a device of theirs, "added by another of their devices". The key writes as bob (in
    display order before the statement, or after it): the record says so, whatever
    comes first, and the names the timeline reads say whose key it is."""
    from bucket_chat_desktop.protocol.room_state import statement_claim

    m, b, c = Device("mallory@example.com", 66), bob(), Device("carol@example.com", 3)
    mine = [m.join(T0), _statement(m, T0 + 2, b.public), _statement(m, T0 + 3, c.public)]
    result = audit(seg(mine, "m"), seg([b.join(T0 + 1)], "b"), seg([c.join(T0 + 4)], "c"))
    state = RoomState.of(result)
    (mallory,) = [x for x in state.members() if x.user_id == "mallory@example.com"]
    by_key = {d.key: d for d in mallory.devices}
    assert by_key[b.public].speaks_for == BOB
    assert by_key[c.public].speaks_for == "carol@example.com"  # wrote after the statement
    assert by_key[m.public].speaks_for == "" and by_key[m.public].state is DeviceState.VERIFIED
    for key in (b.public, c.public):
        assert by_key[key].state is not DeviceState.VERIFIED
        assert "not a device of theirs" in by_key[key].reason
    claims = state.roster().names.claims
    assert claims == {b.public: BOB, c.public: "carol@example.com"}
    text = membership_text(
        mine[1].content, claim=statement_claim(m.sender_id, mine[1].content, claims)
    )
    assert text == f"names {BOB}'s key as theirs (key {b.public[:12]}…)"
    # This device's own key on another user's statement; never on the user's own.
    own = statement_claim(m.sender_id, mine[1].content, {}, ALICE, b.public)
    assert own == "names your key as theirs"
    assert statement_claim(BOB, mine[1].content, {}, BOB, b.public) == ""


def test_statements_alone_list_a_few_devices_and_count_the_rest() -> None:
    """Red team rt64: one key signed 100,000 joins each naming a "device" (any text), and
    the fold listed every one. A text that is no key names nothing; statements alone (the
    keys have not written) list ``STATEMENT_DEVICES`` per member, and count the rest; a
    key that writes (accepts) is listed whatever came before."""
    from bucket_chat_desktop.protocol.room_state import STATEMENT_DEVICES

    m = Device("mallory@example.com", 66)
    named = [Device("mallory@example.com", 100 + i) for i in range(STATEMENT_DEVICES + 5)]
    events = [m.join(T0), _statement(m, T0 + 1, "device-1"), _statement(m, T0 + 2, "bm90IGEga2V5")]
    events += [_statement(m, T0 + 10 + i, d.public) for i, d in enumerate(named)]
    events.append(_statement(m, T0 + 50, named[0].public))  # named again: counted once
    late = named[-1]  # past the cap: it accepts and writes
    wrote = [late.join(T0 + 60, **{DEVICE_ACCEPT_FIELD: m.public})]
    result = audit(seg(events, "m"), seg(wrote, "l"))
    (mallory,) = RoomState.of(result).members()
    keys = [d.key for d in mallory.devices]
    assert keys == [m.public, *(d.public for d in named[:STATEMENT_DEVICES]), late.public]
    assert mallory.unlisted == 4  # named[16..19]; named[20] wrote, so it is listed
    assert "device-1" not in keys
