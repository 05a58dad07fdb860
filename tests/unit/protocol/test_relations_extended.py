"""``relations.extended``: relations of a timeline with rows appended, made from the
relations of the shorter one by reading only the new rows, are exactly what a full
``build`` makes of the longer one — for any rows, hostile ones too, split anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol import relations as relations_module
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event, parse_event
from bucket_chat_desktop.protocol.relations import (
    EDIT,
    REACTION,
    REDACTION,
    TYPING,
    Relations,
    Row,
    RowList,
    build,
    extended,
    inserted,
)

from ._support import ROOM, T0

SENDERS = ("alice@example.com", "bob@example.com", "mallory@example.com")
KEYS = (None, "a" * 43 + "=", "b" * 43 + "=")
STATES = ("verified", "unverified", "key-changed")


def _id(n: int, room: str = ROOM) -> str:
    return f"{room}::2026-01-01T00:00:00.000Z::{n}"


def _row(position: int, spec: tuple[Any, ...]) -> Row:
    kind, target, sender, key, state, variant = spec
    content: dict[str, Any]
    event_type = MESSAGE
    parent = None
    # Targets: an earlier or later row, one never written, or another room's.
    aim = _id(target) if target >= 0 else (_id(10_000) if target == -1 else _id(1, "other"))
    if kind == "message":
        content = {"body": f"m{position}", "msgtype": "m.text"}
    elif kind == "reply":
        content = {"body": f"r{position}", "msgtype": "m.text"}
        parent = aim
    elif kind == "file":  # its edits are refused (an edit of an edit of it too)
        info = {"name": f"f{position}.pdf", "size": 1, "sha256": "0" * 64}
        msgtype = ("m.file", "m.image", "m.file", "m.file")[variant]
        content = {"body": f"f{position}", "msgtype": msgtype, "info": info}
    elif kind == "reaction":
        event_type = REACTION
        content = {"relates_to": aim, "reaction": ("👍", "🎉", "", "\u202e")[variant]}
    elif kind == "edit":
        event_type = EDIT
        body = ("fixed", "again", "", "x")[variant]
        content = {"replaces": aim, "new_content": {"body": body, "msgtype": "m.text"}}
    elif kind == "redaction":
        event_type = REDACTION
        content = {"redacts": aim} if variant != 2 else {"redacts": 7}
    elif kind == "typing":
        event_type = TYPING
        content = {}
    else:
        event_type = MEMBER
        content = {"membership": "join", "displayname": "x"}
    raw: dict[str, Any] = {
        "event_id": _id(position),
        "room_id": ROOM,
        "timestamp_ms": T0 + position,
        "sender_id": sender,
        "type": event_type,
        "parent_event_id": parent,
        "prev_event_hash": None,
        "signature": "",
        "content": content,
    }
    if key is not None:
        raw["sender_key"] = key
    ev = parse_event(raw, ROOM)
    assert isinstance(ev, Event), ev
    return Row(position, ev, state)


KINDS = (
    *("message", "message", "file", "reply", "reaction", "reaction", "edit", "edit"),
    *("redaction", "typing"),
)
specs = st.lists(
    st.tuples(
        st.sampled_from((*KINDS, "member")),
        st.integers(-2, 40),
        st.sampled_from(SENDERS),
        st.sampled_from(KEYS),
        st.sampled_from(STATES),
        st.integers(0, 3),
    ),
    max_size=40,
)


def same(a: Relations, b: Relations) -> None:
    assert a.aggregates == b.aggregates
    assert list(a.hidden) == list(b.hidden)
    assert a.thread_root == b.thread_root
    assert a.findings == b.findings
    assert a.waiting == b.waiting and a.waiting_for == b.waiting_for
    assert a.positions == b.positions
    assert a.edit_of == b.edit_of
    assert a.read is not None and b.read is not None  # what waits for what, for the next
    waits_a, waits_b = a.read.waits, b.read.waits
    assert {k: sorted(v) for k, v in waits_a.items()} == {k: sorted(v) for k, v in waits_b.items()}
    assert a.read.split == b.read.split


@contextmanager
def counting_full_decisions() -> Iterator[list[int]]:
    """Counts the calls of ``_decide`` (every relation decided again) while it lasts."""
    decided: list[int] = []
    real = relations_module._decide

    def counted(*args: Any) -> Relations:
        decided.append(1)
        return real(*args)

    relations_module._decide = counted  # type: ignore[assignment]
    try:
        yield decided
    finally:
        relations_module._decide = real  # type: ignore[assignment]


@settings(max_examples=300, deadline=None)
@given(specs, st.lists(st.integers(0, 40), max_size=6))
def test_extending_at_any_splits_equals_a_full_build(
    spec_list: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    """Rows split anywhere: relations and replies read before their targets (they wait),
    targets arriving in a later append (the rows that waited are decided again, and what
    they change: an edit of an edit joins an older message's edits, a thread headed by a
    waiting reply joins its root's), redactions, edits and reactions of every kind. Once
    the relations hold a relation or a reply, no append decides every relation again."""
    rows = [_row(i, s) for i, s in enumerate(spec_list)]
    ends = sorted({min(c, len(rows)) for c in cuts} | {len(rows)})
    rel = build(ROOM, RowList(rows[: ends[0]]))
    same(rel, build(ROOM, rows[: ends[0]]))
    for end in ends[1:]:
        assert rel.read is not None
        decided_alone = bool(rel.read.relations or rel.read.replies)
        with counting_full_decisions() as decided:
            rel = extended(rel, RowList(rows[:end]))
        assert not (decided_alone and decided)
        same(rel, build(ROOM, RowList(rows[:end])))


# Small rooms appended a few rows at a time, each row naming any row of the room, before
# or after it (what a member writing out of order makes): most appends bring a row
# something waited for, and the rows that waited meet the threads and edits of others.
ahead = st.lists(
    st.tuples(
        st.sampled_from(
            ("reply", "reply", "reaction", "edit", "edit", "redaction", "message", "file")
        ),
        st.integers(0, 11),  # which row it names
        st.sampled_from((SENDERS[0], SENDERS[0], SENDERS[0], SENDERS[1])),  # mostly alice,
        st.sampled_from((KEYS[1], KEYS[1], KEYS[1], None)),  # whose edits mostly apply
        st.sampled_from((*STATES, "verified")),
        st.integers(0, 3),
    ),
    min_size=2,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(ahead, st.lists(st.integers(1, 4), min_size=1, max_size=10))
def test_rows_arriving_after_what_names_them_equal_a_full_build(
    spec_list: list[tuple[Any, ...]], sizes: list[int]
) -> None:
    """The arrival of a waited-for row decides only what waited for it (and what that
    changes): threads of replies written before their parents, chains of edits of edits
    written out of order, redactions before what they redact, two senders' keys and
    states mixed; equal to a full build after every batch, never a full decision."""
    rows = [_row(i, s) for i, s in enumerate(spec_list)]
    end = 0
    rel = build(ROOM, [])
    for size in [*sizes, len(rows)]:
        if end >= len(rows):
            break
        end = min(len(rows), end + size)
        assert rel.read is not None
        decided_alone = bool(rel.read.relations or rel.read.replies)
        with counting_full_decisions() as decided:
            rel = extended(rel, rows[:end])
        assert not (decided_alone and decided)
        same(rel, build(ROOM, rows[:end]))


@settings(max_examples=300, deadline=None)
@given(
    specs,
    st.integers(0, 40),
    st.lists(
        st.tuples(
            st.sampled_from(("message", "message", "message", "reply", "reaction")),
            st.integers(0, 45),
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_rows_placed_before_the_last_ones_equal_a_full_build(
    spec_list: list[tuple[Any, ...]],
    at: int,
    placed: list[tuple[str, int]],
    waited: bool,
) -> None:
    """Rows placed behind the last ones (``RoomLedger.try_place``): the positions of the
    rows that moved change; a placed row that is a relation, one something waited for, or
    related rows among those that moved make a full build. Equal to a full build."""
    base = [_row(i, s) for i, s in enumerate(spec_list)]
    at = min(at, len(base))
    first = len(base) if waited else 100  # ids the base rows may name (they wait), or not
    new = [
        _row(first + j, (kind, target, SENDERS[0], KEYS[1], "verified", 0))
        for j, (kind, target) in enumerate(placed)
    ]
    rows = [r._replace(position=i) for i, r in enumerate(base[:at] + new + base[at:])]
    rel = inserted(build(ROOM, base), RowList(rows), at, len(new))
    same(rel, build(ROOM, RowList(rows)))


def test_plain_rows_placed_before_plain_ones_keep_every_decision(monkeypatch: Any) -> None:
    """The case it is for: messages behind one dated a little ahead, reactions above."""
    rows = [_row(0, ("message", 0, *SENDERS[:1], KEYS[1], "verified", 0))]
    rows.append(_row(1, ("reaction", 0, SENDERS[1], KEYS[2], "verified", 0)))
    rows.append(_row(2, ("message", 0, SENDERS[2], None, "unverified", 0)))
    rows.append(_row(3, ("reply", 0, SENDERS[1], KEYS[2], "verified", 0)))
    rows.append(_row(4, ("reaction", 6, SENDERS[1], KEYS[2], "verified", 0)))  # names a later one
    rows.append(_row(5, ("message", 0, SENDERS[2], None, "unverified", 0)))
    rows.append(_row(6, ("message", 0, SENDERS[2], None, "unverified", 0)))  # dated ahead
    rel = build(ROOM, rows)
    new = _row(50, ("message", 0, SENDERS[0], KEYS[1], "verified", 0))
    placed = [r._replace(position=i) for i, r in enumerate([*rows[:5], new, *rows[5:]])]
    with counting_full_decisions() as decided:
        got = inserted(rel, RowList(placed), 5, 1)
    assert not decided and got.aggregates is rel.aggregates
    assert got.positions[_id(6)] == 7
    same(got, build(ROOM, RowList(placed)))


# Appended reactions, edits and replies naming earlier rows only (what a live room appends
# most): ``extended`` decides only these, on top of the earlier decisions.
later = st.lists(
    st.tuples(
        st.sampled_from(("reaction", "reaction", "reply", "edit", "redaction", "typing")),
        st.integers(0, 39),  # an earlier row (a reaction to a redacted, hidden or member row...)
        st.sampled_from(SENDERS),
        st.sampled_from(KEYS),
        st.sampled_from(STATES),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(specs, st.lists(later, min_size=1, max_size=4))
def test_appended_reactions_edits_and_replies_decided_alone_equal_a_full_build(
    spec_list: list[tuple[Any, ...]], batches: list[list[tuple[Any, ...]]]
) -> None:
    rows = [_row(i, s) for i, s in enumerate(spec_list)]
    rel = build(ROOM, rows)
    for batch in batches:
        for spec in batch:
            aim = spec[1] % len(rows) if rows else -1
            rows.append(_row(len(rows), (spec[0], aim, *spec[2:])))
        rel = extended(rel, rows)
        same(rel, build(ROOM, rows))


def test_a_reaction_to_an_old_message_is_found_without_reading_the_room_again() -> None:
    """The new rows are read, and a target named for the first time is looked for from
    the newest row back; a target looked for before is looked for among new rows only."""
    rows = [_row(i, ("message", 0, SENDERS[0], None, "verified", 0)) for i in range(50)]
    rows.append(_row(50, ("reaction", 10_001, SENDERS[1], None, "verified", 0)))  # waits

    class Counting(RowList):
        looked: list[tuple[frozenset[str], int]]

        def rows_by_id(self, wanted: Any, start: int = 0) -> dict[str, Row]:
            self.looked.append((frozenset(wanted), start))
            return super().rows_by_id(wanted, start)

        def related_rows(self, start: int = 0) -> Any:
            self.looked.append((frozenset(), start))
            return super().related_rows(start)

    rel = build(ROOM, rows)
    assert rel.waiting_for == {_id(10_001)}
    more = [*rows, _row(51, ("reaction", 3, SENDERS[1], None, "verified", 1))]
    src = Counting(more)
    src.looked = []
    rel = extended(rel, src)
    assert src.looked == [
        (frozenset(), 51),  # the new rows only
        (frozenset({_id(10_001)}), 51),  # waited for: only among the new rows
        (frozenset({_id(3)}), 0),  # named anew: anywhere
    ]
    chip = rel.aggregates[_id(3)].reactions[0]
    assert chip.key == "🎉" and rel.waiting_for == {_id(10_001)}
    same(rel, build(ROOM, more))


def test_new_reactions_and_replies_are_decided_alone(monkeypatch: Any) -> None:
    """Earlier decisions are not made again when only reactions and replies to rows
    read before are appended (the common case); anything else decides all again."""
    decided: list[int] = []
    real = relations_module._decide
    monkeypatch.setattr(relations_module, "_decide", lambda *a: decided.append(1) or real(*a))
    alice, bob = SENDERS[0], SENDERS[1]
    rows = [_row(i, ("message", 0, alice, KEYS[1], "verified", 0)) for i in range(5)]
    rows.append(_row(5, ("reaction", 1, bob, None, "unverified", 0)))
    rows.append(_row(6, ("reply", 1, bob, None, "unverified", 0)))
    rows.append(_row(7, ("redaction", 2, alice, KEYS[1], "verified", 0)))
    rel = build(ROOM, rows)
    assert decided == [1] and rel.aggregates[_id(2)].redacted is not None
    for spec in (
        ("reaction", 1, bob, KEYS[2], "verified", 0),  # bob's 👍 again, now verified
        ("reaction", 1, bob, None, "key-changed", 0),  # and once more: still verified
        ("reaction", 1, alice, KEYS[1], "verified", 1),
        ("reply", 6, alice, KEYS[1], "verified", 0),  # in the thread under row 1
        ("reaction", 5, alice, KEYS[1], "verified", 0),  # to a reaction: a finding
        ("reply", 5, alice, KEYS[1], "verified", 0),  # to a reaction: a finding
        ("reaction", 2, bob, None, "unverified", 0),  # to a deleted message: nothing
        ("reaction", 3, bob, None, "unverified", 1),  # row 3, named for the first time
    ):
        rows.append(_row(len(rows), spec))
        rel = extended(rel, rows)
        same(rel, build(ROOM, rows))
    assert decided == [1] + [1] * 8  # the full builds of ``same`` only
    chip = rel.aggregates[_id(1)].reactions
    assert [(c.key, [(r.sender_id, r.state) for r in c.reactors]) for c in chip] == [
        ("👍", [(bob, "verified")]),
        ("🎉", [(alice, "verified")]),
    ]
    assert len(chip[0].reactors[0].event_ids) == 3
    assert rel.aggregates[_id(1)].thread == (_id(6), _id(11))
    assert rel.aggregates[_id(2)].reactions == () and rel.positions[_id(3)] == 3
    assert [f.kind.value for f in rel.findings] == ["relation-invalid"] * 2
    rows.append(_row(len(rows), ("redaction", 1, alice, KEYS[1], "verified", 0)))
    rel = extended(rel, rows)  # a redaction: it takes back only what row 1 was given
    assert decided == [1] * 9
    same(rel, build(ROOM, rows))


def test_typing_notices_appended_change_only_what_is_hidden() -> None:
    rows = [_row(0, ("message", 0, SENDERS[0], None, "verified", 0))]
    rows.append(_row(1, ("reaction", 0, SENDERS[1], None, "verified", 0)))
    rel = build(ROOM, rows)
    for i in range(2, 30):
        rows.append(_row(i, ("typing", 0, SENDERS[2], None, "unverified", 0)))
        before = rel
        rel = extended(rel, rows)
        assert rel.aggregates is before.aggregates  # no decision made again
        same(rel, build(ROOM, rows))
    assert list(rel.hidden) == list(range(1, 30))


def test_appended_edits_are_decided_alone(monkeypatch: Any) -> None:
    """An edit appended (the common case after reactions) is decided on its own, like a
    reaction: a room where a member planted tens of thousands of reactions made every
    edit decide all of them again (0.47 s at 50,000 reactions on the state thread,
    before the edited text showed). Edits of edits, edits of a deleted message, someone
    else's and an edit waiting for its original's edit all come out as a full build's."""
    decided: list[int] = []
    real = relations_module._decide
    monkeypatch.setattr(relations_module, "_decide", lambda *a: decided.append(1) or real(*a))
    alice, bob = SENDERS[0], SENDERS[1]
    rows = [_row(i, ("message", 0, alice, KEYS[1], "verified", 0)) for i in range(4)]
    rows.append(_row(4, ("reaction", 1, bob, None, "unverified", 0)))
    rows.append(_row(5, ("redaction", 2, alice, KEYS[1], "verified", 0)))
    rows.append(_row(6, ("edit", 30, alice, KEYS[1], "verified", 0)))  # waits for row 30
    rel = build(ROOM, rows)
    assert decided == [1]
    for spec in (
        ("edit", 1, alice, KEYS[1], "verified", 0),  # applies
        ("edit", 7, alice, KEYS[1], "verified", 1),  # an edit of that edit: row 1 again
        ("edit", 1, bob, None, "unverified", 0),  # not the sender's: a finding
        ("edit", 2, alice, KEYS[1], "verified", 0),  # of a deleted message: nothing
        ("edit", 3, alice, KEYS[1], "verified", 2),  # no usable text: a finding
        ("edit", 4, alice, KEYS[1], "verified", 0),  # of a reaction: a finding
        ("edit", 6, alice, KEYS[1], "verified", 0),  # of an edit still waiting: waits
        ("edit", 1, alice, None, "unverified", 3),  # alice's id, unsigned: not hers
    ):
        rows.append(_row(len(rows), spec))
        before = len(decided)
        rel = extended(rel, rows)
        assert len(decided) == before  # decided alone
        same(rel, build(ROOM, rows))
    agg = rel.aggregates[_id(1)]
    assert [e.body for e in agg.edits] == ["fixed", "again"]
    assert rel.edit_of == {_id(7): _id(1), _id(8): _id(1)}
    assert rel.waiting_for == {_id(30)} and rel.waiting == 2


def test_appended_redactions_are_decided_alone(monkeypatch: Any) -> None:
    """A redaction appended (a deletion, a reaction taken back) takes back only what its
    target was given, without deciding every relation of the room again: a chip loses a
    reactor (its best state made again from what is left) or goes, or moves behind
    another when it was its first; an edit leaves its message; a message loses its
    edits and chips. A redaction before its target in one append, too."""
    decided: list[int] = []
    real = relations_module._decide
    monkeypatch.setattr(relations_module, "_decide", lambda *a: decided.append(1) or real(*a))
    alice, bob = SENDERS[0], SENDERS[1]
    rows = [_row(i, ("message", 0, alice, KEYS[1], "verified", 0)) for i in range(3)]
    rows += [
        _row(3, ("reaction", 1, bob, KEYS[2], "verified", 1)),  # 🎉 first
        _row(4, ("reaction", 1, bob, None, "unverified", 0)),  # 👍
        _row(5, ("reaction", 1, bob, KEYS[2], "verified", 0)),  # 👍 again, verified
        _row(6, ("reaction", 1, alice, KEYS[1], "verified", 1)),  # 🎉
        _row(7, ("edit", 2, alice, KEYS[1], "verified", 0)),
        _row(8, ("reaction", 2, bob, None, "unverified", 0)),
    ]
    rel = build(ROOM, rows)
    steps: list[list[tuple[Any, ...]]] = [
        [("redaction", 5, bob, KEYS[2], "verified", 0)],  # bob's verified 👍: unverified now
        [("redaction", 3, bob, KEYS[2], "verified", 0)],  # 🎉's first: 👍 first now
        [("redaction", 7, alice, KEYS[1], "verified", 0)],  # the edit: row 2 unedited
        [("redaction", 3, bob, KEYS[2], "verified", 0)],  # again: changes nothing
        [("redaction", 4, alice, KEYS[1], "verified", 0)],  # not alice's: a finding
        [("redaction", 2, alice, KEYS[1], "verified", 0)],  # row 2 and its chip go
    ]
    for batch in steps:
        for spec in batch:
            rows.append(_row(len(rows), spec))
        before = len(decided)
        rel = extended(rel, rows)
        assert len(decided) == before
        same(rel, build(ROOM, rows))
    chips = rel.aggregates[_id(1)].reactions
    assert [(c.key, [(r.sender_id, r.state) for r in c.reactors]) for c in chips] == [
        ("👍", [(bob, "unverified")]),
        ("🎉", [(alice, "verified")]),
    ]
    assert rel.aggregates[_id(2)].redacted is not None and rel.edit_of == {}
    # In one append: a redaction, then the reaction it names, then an edit it names.
    n = len(rows)
    rows.append(_row(n, ("redaction", n + 1, bob, None, "unverified", 0)))
    rows.append(_row(n + 1, ("reaction", 1, bob, None, "unverified", 0)))
    rows.append(_row(n + 2, ("redaction", n + 3, alice, KEYS[1], "verified", 0)))
    rows.append(_row(n + 3, ("edit", 0, alice, KEYS[1], "verified", 0)))
    rel = extended(rel, rows)
    same(rel, build(ROOM, rows))
    assert _id(0) not in rel.aggregates and rel.aggregates[_id(n + 1)].redacted is not None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(SENDERS), st.integers(0, 1), st.sampled_from(STATES)),
        min_size=1,
        max_size=25,
    ),
    st.lists(st.lists(st.integers(0, 24), min_size=1, max_size=6), min_size=1, max_size=4),
)
def test_reactions_taken_back_in_any_order_equal_a_full_build(
    reactions: list[tuple[str, int, str]], batches: list[list[int]]
) -> None:
    """Chips that lose reactions appended as redactions (a reactor's first, its only one,
    a chip's first: reactors and chips move) come out as a full build's."""
    rows = [_row(0, ("message", 0, SENDERS[0], None, "verified", 0))]
    rows += [
        _row(i + 1, ("reaction", 0, sender, None, state, variant))
        for i, (sender, variant, state) in enumerate(reactions)
    ]
    rel = build(ROOM, rows)
    for batch in batches:
        for n in batch:
            aim = 1 + n % len(reactions)
            sender = rows[aim].event.sender_id
            rows.append(_row(len(rows), ("redaction", aim, sender, None, "unverified", 0)))
        rel = extended(rel, rows)
        same(rel, build(ROOM, rows))


def test_an_append_of_many_reactions_to_one_big_chip_makes_it_once(monkeypatch: Any) -> None:
    """Red team: one segment of 2,000 reactions to a message 50,000 members reacted to
    took 3.6 s in ``extended`` (each reaction copied the whole chip; a full build took
    0.26 s). Now the chip is changed as a draft and made once, not once a reaction."""
    made: list[int] = []
    real = relations_module.ReactionChip
    monkeypatch.setattr(relations_module, "ReactionChip", lambda *a: made.append(1) or real(*a))

    def reaction(i: int) -> Row:  # by a sender of its own
        row = _row(i, ("reaction", 0, SENDERS[0], None, "unverified", 0))
        return row._replace(event=row.event._replace(sender_id=f"u{i}@example.com"))

    rows = [_row(0, ("message", 0, SENDERS[0], None, "verified", 0))]
    rows += [reaction(i) for i in range(1, 1001)]
    rel = build(ROOM, rows)
    rows += [reaction(i) for i in range(1001, 1301)]
    made.clear()
    rel = extended(rel, rows)
    assert len(made) == 1
    same(rel, build(ROOM, rows))
    assert rel.aggregates[_id(0)].reactions[0].count == 1300


def test_a_row_that_arrives_decides_only_what_waited_for_it(monkeypatch: Any) -> None:
    """Red team: a member names an id in one segment and writes it in the next; each such
    pair made ``extended`` decide every relation of the room again (~430 ms at 50,000
    reactions). Now only what waited is decided, each in its place: an edit of an edit
    between its message's other edits, a reply (and the thread it headed) among its
    root's replies, its finding among the findings, a waiting reaction that was redacted
    meanwhile not counted."""
    decided: list[int] = []
    real = relations_module._decide
    monkeypatch.setattr(relations_module, "_decide", lambda *a: decided.append(1) or real(*a))
    alice, key = SENDERS[0], KEYS[1]
    specs = [
        ("message", 0, alice, key, "verified", 0),  # 0
        ("edit", 8, alice, key, "verified", 0),  # 1: an edit of row 8, an edit of row 0
        ("edit", 0, alice, key, "verified", 1),  # 2: applies to row 0 at once
        ("reply", 9, alice, key, "verified", 0),  # 3: waits for row 9
        ("reply", 3, alice, key, "verified", 0),  # 4: in the thread under row 3
        ("reply", 0, alice, key, "verified", 0),  # 5: in the thread under row 0
        ("reaction", 10, alice, key, "verified", 0),  # 6: waits for row 10
        ("redaction", 6, alice, key, "verified", 0),  # 7: takes row 6 back
        ("edit", 0, alice, key, "verified", 0),  # 8: arrives (for row 1)
        ("reply", 0, alice, key, "verified", 0),  # 9: arrives (for rows 3 and 4)
        ("message", 0, alice, key, "verified", 0),  # 10: arrives (for row 6)
        ("reaction", 15, alice, key, "verified", 0),  # 11: waits for row 15
        ("reaction", 12, alice, key, "verified", 0),  # 12: to itself, a finding
        ("reply", 15, alice, key, "verified", 0),  # 13: waits for row 15
        ("reply", 14, alice, key, "verified", 0),  # 14: to itself, a finding
        ("reaction", 0, alice, key, "verified", 0),  # 15: arrives: 11 and 13 are refused
    ]
    rows = [_row(i, s) for i, s in enumerate(specs)]
    rel = build(ROOM, rows[:8])
    for end in (11, 15, 16):
        rel = extended(rel, rows[:end])
        same(rel, build(ROOM, rows[:end]))
    assert decided == [1, 1, 1, 1]  # the first build and those of ``same`` only
    first = rel.aggregates[_id(0)]
    assert [e.event_id for e in first.edits] == [_id(1), _id(2), _id(8)]
    assert first.thread == (_id(3), _id(4), _id(5), _id(9))
    assert _id(10) not in rel.aggregates  # its only reaction was taken back
    # Relations' findings, then replies', each in display order.
    assert [f.event_id for f in rel.findings] == [_id(11), _id(12), _id(13), _id(14)]


class _Slice(RowList):
    """The first rows of a room whose ``repeated`` ids are the whole room's (what
    ``audit.Timeline`` slices keep)."""

    def __init__(self, rows: list[Row], repeated: frozenset[str]) -> None:
        super().__init__(rows)
        self._repeated = repeated


def _copies(rows: list[Row], picks: list[tuple[int, int]]) -> list[Row]:
    """``rows`` with some rows signed under an earlier row's id (``(row, earlier)``)."""
    rows = list(rows)
    for at, of in picks:
        if rows and at % len(rows) > of % len(rows):
            i, j = at % len(rows), of % len(rows)
            rows[i] = rows[i]._replace(
                event=rows[i].event._replace(event_id=rows[j].event.event_id)
            )
    return rows


@settings(max_examples=400, deadline=None)
@given(
    specs,
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=4),
    st.lists(st.integers(0, 40), max_size=6),
)
def test_rows_under_repeated_ids_extended_at_any_split_equal_a_full_build(
    spec_list: list[tuple[Any, ...]], picks: list[tuple[int, int]], cuts: list[int]
) -> None:
    """Edits and redactions signed under an id shown twice are judged copy by copy
    (PROTOCOL.md 18.1): appends that touch what they decided are decided in full, the
    others alone; equal to a full build at every split either way."""
    rows = _copies([_row(i, s) for i, s in enumerate(spec_list)], picks)
    repeated = RowList(rows).repeated
    ends = sorted({min(c, len(rows)) for c in cuts} | {len(rows)})
    rel = build(ROOM, _Slice(rows[: ends[0]], repeated))
    for end in ends[1:]:
        rel = extended(rel, _Slice(rows[:end], repeated))
        same(rel, build(ROOM, _Slice(rows[:end], repeated)))


def test_a_planted_copy_does_not_make_every_later_reaction_a_full_decision() -> None:
    """The red team's case: mallory signs a redaction under the id of alice's deletion of
    a message. Reactions and edits of other messages appended after it are decided alone
    (before: each made a full second pass over the room's relations, 651 ms at 100,000
    relations); a new edit of the message the copies bear on is decided in full."""
    alice = (SENDERS[0], KEYS[1], "verified")
    mallory = (SENDERS[2], KEYS[2], "verified")
    rows = [_row(i, ("message", 0, *alice, 0)) for i in range(20)]
    rows.append(_row(20, ("redaction", 3, *alice, 0)))  # alice deletes row 3
    planted = _row(21, ("redaction", 4, *mallory, 0))
    rows.append(planted._replace(event=planted.event._replace(event_id=_id(20))))
    rows += [_row(22, ("edit", 5, *alice, 0)), _row(23, ("reaction", 6, *alice, 0))]
    repeated = RowList(rows).repeated
    assert repeated == {_id(20)}
    rel = build(ROOM, _Slice(rows, repeated))
    assert rel.of(_id(3)) is not None and rel.of(_id(3)).redacted is not None  # type: ignore[union-attr]
    for i, spec in enumerate(
        [("reaction", 7, *alice, 1), ("edit", 5, *alice, 1), ("redaction", 23, *alice, 0)]
    ):
        rows.append(_row(24 + i, spec))
        with counting_full_decisions() as decided:
            rel = extended(rel, _Slice(rows, repeated))
        assert not decided, spec
        same(rel, build(ROOM, _Slice(rows, repeated)))
    for spec in [("edit", 3, *alice, 1), ("edit", 4, *alice, 1), ("redaction", 4, *alice, 0)]:
        rows.append(_row(len(rows), spec))
        with counting_full_decisions() as decided:
            rel = extended(rel, _Slice(rows, repeated))
        assert decided, spec
        same(rel, build(ROOM, _Slice(rows, repeated)))
