"""The member fold continued on appends (as the engine's state thread continues it) says
exactly what a full fold of the same rows says: random rooms of joins, renames, leaves,
bans, kicks, messages, key changes, device statements and hostile names and ids, folded
in random slices (some handed twice) with a ``Roster`` taken between them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol.audit import DEVICE_ACCEPT_FIELD, DEVICE_ADD_FIELD, AuditResult
from bucket_chat_desktop.protocol.event import MEMBER, Event
from bucket_chat_desktop.protocol.room_state import (
    DisplayNames,
    RoomState,
    Roster,
    conflicted_senders,
)

from ._support import T0, Device, ledger, seg

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Who writes: plain ids, look-alikes of Alice's (Cyrillic "а", a case variant, an
# invisible character), an id with a bidi override and the plain id it looks like.
# Each has two keys: the second one nobody introduced (a key change) unless a device
# statement of the first names it.
USERS = [
    "alice@example.com",
    "bob@example.com",
    "\u0430lice@example.com",
    "eve\u202e@example.com",
    "ALICE@example.com",  # plain, and looks like the first
    "a\u200blice@example.com",  # an invisible character
    "eve@example.com",  # the plain one the bidi id imitates, when it comes later
]
NAMES = [
    "Alice",
    "Bob",
    "alice@example.com",  # a name that is another member's id
    "EVE@example.com",  # a name that looks like an id that may come later
    "\u202eecilA",
    "  Padded\u200b  ",
    "x" * 300,
    "<b>bold</b>",
    "",
    "Zed",
]

actions = st.tuples(
    st.integers(0, len(USERS) - 1),  # who
    st.integers(0, 1),  # which of their keys
    st.sampled_from(
        ["join", "rename", "leave", "ban", "kick", "invite", "say", "say", "add-device"]
    ),
    st.integers(0, len(NAMES) - 1),
)


@dataclass
class _Room:
    devices: dict[tuple[int, int], Device]
    segments: list[tuple[str, bytes]]


def _build(steps: list[tuple[int, int, str, int]]) -> AuditResult:
    devices = {
        (u, k): Device(USERS[u], 10 + 2 * u + k) for u in range(len(USERS)) for k in range(2)
    }
    segments: list[tuple[str, bytes]] = []
    for n, (u, k, what, name_at) in enumerate(steps):
        dev = devices[(u, k)]
        ts = T0 + n * 1000
        name = NAMES[name_at]
        content: dict[str, Any]
        if what in ("join", "rename"):
            content = {"membership": "join"}
            if name:
                content["displayname"] = name
            if what == "join" and k == 1:
                content[DEVICE_ACCEPT_FIELD] = devices[(u, 0)].public
            ev: Event = dev.emit(ts, MEMBER, content)
        elif what == "add-device":
            other = devices[(u, 1 - k)]
            content = {"membership": "join", DEVICE_ADD_FIELD: other.public, "device_name": name}
            ev = dev.emit(ts, MEMBER, content)
        elif what == "say":
            ev = dev.say(ts, f"message {n}")
        else:
            ev = dev.emit(ts, MEMBER, {"membership": what})
        segments.append(seg([ev], f"c{u}{k}", 0))
    return ledger(*segments).audit()


def _full(rows: Any, disputed: frozenset[str]) -> Roster:
    fold = RoomState()
    fold.add(rows)
    fold.disputed = disputed
    return fold.roster()


@SETTINGS
@given(
    steps=st.lists(actions, min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 30), max_size=10),
    again=st.booleans(),
)
# Slices that change no name and bring no sender (only the members touched are remade):
# a message; a key nobody introduced; a device statement, then the new key's first row.
@example(steps=[(0, 0, "join", 0), (0, 0, "say", 0), (0, 1, "say", 0)], cuts=[1, 2], again=False)
@example(
    steps=[(0, 0, "join", 0), (1, 0, "join", 1), (0, 0, "add-device", 6), (0, 1, "join", 0)],
    cuts=[2, 3],
    again=True,
)
# A second plain id that looks like the first, after two suspect ones filled the group's
# first two: the first plain id's warning changes too (both plain ones are marked).
@example(
    steps=[(0, 0, "join", 0), (2, 0, "join", 0), (5, 0, "join", 0), (4, 0, "join", 0)],
    cuts=[3],
    again=False,
)
@example(  # a ban, a rename, a key change that says "leave": the order and who is gone
    steps=[
        (1, 0, "join", 1),
        (0, 0, "join", 0),
        (1, 0, "ban", 0),
        (0, 0, "rename", 8),
        (0, 1, "leave", 0),
        (2, 0, "join", 2),
        (3, 0, "join", 3),
    ],
    cuts=[2, 3, 4, 5, 6],
    again=False,
)
# A newcomer changes what an earlier member's warning says (only those are remade):
# a second id that is not plain (the first one now looks like it), a plain id after two
# that are not (they imitate it now), an id a member's display name looks like.
@example(steps=[(2, 0, "join", 0), (0, 0, "say", 0), (5, 0, "join", 1)], cuts=[2], again=False)
@example(
    steps=[(2, 0, "join", 0), (5, 0, "join", 1), (1, 0, "say", 0), (4, 0, "join", 1)],
    cuts=[3],
    again=False,
)
@example(steps=[(0, 0, "join", 3), (1, 0, "join", 1), (3, 0, "say", 0)], cuts=[2], again=False)
def test_an_incremental_fold_equals_a_full_fold(
    steps: list[tuple[int, int, str, int]], cuts: list[int], again: bool
) -> None:
    result = _build(steps)
    timeline = result.timeline
    n = len(timeline)
    disputed = conflicted_senders(result)
    full = RoomState.of(result).roster()
    assert full == _full(timeline, disputed)
    # a Timeline is folded without making its rows (``Timeline.member_rows``): the same
    assert full == _full(list(timeline), disputed)

    fold = RoomState()
    fold.disputed = disputed
    start = 0
    for stop in [*sorted({min(c, n) for c in cuts}), n]:
        if stop < start:
            continue
        fold.add(timeline[start:stop])
        if again:  # a caller may hand rows again (also as a list): folded once
            fold.add(list(timeline[max(0, start - 2) : stop]))
        step = fold.roster()
        assert step == _full(timeline[:stop], disputed)
        assert fold.roster() is step  # nothing folded since: the same value
        start = stop
    final = fold.roster()
    assert final == full
    # every question the GUI asks has the same answer
    assert final.members() == full.members()
    assert final.members(everyone=True) == RoomState.of(result).members(everyone=True)
    pairs = {(m.user_id, d.key) for m in full.everyone for d in m.devices if d.key}
    some = frozenset(sorted(pairs)[::2])
    assert final.members(some) == RoomState.of(result).members(some)

    # the timeline's display-name fold (every row, through the Timeline's own pass) and
    # the frozen names agree, look-alike warnings and the "@" list included
    names = DisplayNames()
    names.update(timeline)
    frozen = final.names
    senders = [uid for uid, _ in names.members(with_left=True)]
    assert [uid for uid, _ in frozen.members(with_left=True)] == senders
    assert frozen.members() == names.members()
    assert [(frozen.shown(u), frozen.warning(u)) for u in senders] == [
        (names.shown(u), names.warning(u)) for u in senders
    ]
    assert frozen.warning("stranger@example.com") == names.warning("stranger@example.com")
    assert frozen.size == names.size


def test_a_roster_is_immutable_and_never_changes_when_the_fold_goes_on() -> None:
    """What was handed over stays as it was: the fold's next events make a new value."""
    result = _build([(0, 0, "join", 0), (1, 0, "join", 1), (1, 0, "say", 0)])
    fold = RoomState()
    fold.add(result.timeline[:1])
    first = fold.roster()
    before = (first.members(), first.names.members(), first.names.warning(USERS[2]))
    fold.add(result.timeline[1:])
    later = fold.roster()
    assert later is not first and later.names is not first.names
    assert (first.members(), first.names.members(), first.names.warning(USERS[2])) == before
    assert [m.user_id for m in later.members()] == [USERS[0], USERS[1]]
    try:
        first.names.lookalikes.add("new@example.com")
    except TypeError:
        pass
    else:
        raise AssertionError("a handed-over RoomIds took an id")
    assert type(first.names.by_id).__name__ == "mappingproxy"
