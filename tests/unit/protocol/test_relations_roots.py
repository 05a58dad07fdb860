"""Relations a member can make costly by their shape, decided in linear time with the
same result as before. A reply's thread root (PROTOCOL.md section 18.2) is found once per
parent (``_Roots``), not walked up to 64 parents for every reply: the same root as the
plain walk (``_root``) on any parent links (chains longer than the bound, loops, tails
into loops, parents not read, an id on two rows), and a chain of replies or a waiting
thread head costs a few look-ups a reply, counted, however deep it is. An append that
takes back many reactions of one sender with one text reads each row a few times, not
the sender's other reactions again for each (``_Chips.remove``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bucket_chat_desktop.protocol import relations as relations_module
from bucket_chat_desktop.protocol.audit import Assessed, TrustState
from bucket_chat_desktop.protocol.event import MESSAGE
from bucket_chat_desktop.protocol.relations import (
    MAX_THREAD_HOPS,
    RowList,
    _root,
    _Roots,
    _Target,
    build,
    extended,
)

from ._support import ROOM, T0, Device


def _known(parents: dict[str, str | None]) -> dict[str, _Target]:
    return {
        i: _Target(n, "alice@example.com", MESSAGE, "verified", None, parent, None)
        for n, (i, parent) in enumerate(parents.items())
    }


def _check(parents: dict[str, str | None], pairs: list[tuple[str, str]], distinct: bool) -> None:
    known = _known(parents)
    roots = _Roots(known, distinct)
    for parent, reply in pairs:
        assert roots(parent, reply) == _root(parent, known, reply), (parent, reply)


def _up(parents: dict[str, str | None], node: str, steps: int) -> str:
    for _ in range(steps):
        node = parents.get(node) or f"n{steps}"
    return node


def _replies(parents: dict[str, str | None]) -> list[tuple[str, str]]:
    """(parent, reply) as ``_decide`` asks: a read reply whose parent is read."""
    return [(p, r) for r, p in parents.items() if p is not None and p in parents]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-2, 40), min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 45), st.integers(0, 80)), max_size=30),
    st.randoms(use_true_random=False),
    st.booleans(),
)
@example([-1, 0], [(1, 1)], random.Random(0), False)  # the reply on its parent's way
def test_the_same_root_as_the_walk_on_any_links(
    links: list[int], odd: list[tuple[int, int]], rnd: random.Random, forest: bool
) -> None:
    # Node i's parent: another node (a loop, a chain, a tail into a loop), none, or an
    # id never read; ``forest``: an earlier node (no loops). Asked in any order, so what
    # is remembered comes from any reply.
    parents: dict[str, str | None] = {
        f"n{i}": (
            None
            if p == -1 or (forest and i == 0)
            else "gone"
            if p == -2
            else f"n{p % i if forest else p}"
        )
        for i, p in enumerate(links)
    }
    pairs = _replies(parents)
    rnd.shuffle(pairs)
    _check(parents, pairs, distinct=True)
    # An id on two related rows: ``known`` holds one of them, so a reply's own entry may
    # name another parent than the one it is asked with, or the reply may be on its
    # parent's way up (a row ``b`` parents up, or one never read); walked as before.
    anything = pairs + [(f"n{a}", _up(parents, f"n{a}", b)) for a, b in odd]
    rnd.shuffle(anything)
    _check(parents, anything, distinct=False)


@pytest.mark.parametrize("length", [MAX_THREAD_HOPS - 1, MAX_THREAD_HOPS, MAX_THREAD_HOPS + 1, 300])
@pytest.mark.parametrize("loop", [0, 1, 2, 5, 70])
def test_the_same_root_on_long_chains_and_loops(length: int, loop: int) -> None:
    """A chain of ``length`` replies above a loop of ``loop`` rows (none: a first row),
    with side branches: every reply's root as the walk finds it, asked top-down,
    bottom-up and shuffled."""
    parents: dict[str, str | None] = {}
    if loop:
        for i in range(loop):
            parents[f"l{i}"] = f"l{(i + 1) % loop}"
        parents["c0"] = "l0"
    else:
        parents["c0"] = None
    for i in range(1, length):
        parents[f"c{i}"] = f"c{i - 1}"
        if i % 7 == 0:
            parents[f"b{i}"] = f"c{i}"  # a branch: two replies to one row
    pairs = _replies(parents)
    for order in (pairs, pairs[::-1], random.Random(length * 100 + loop).sample(pairs, len(pairs))):
        _check(parents, order, distinct=True)


@contextmanager
def _counted_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How often the decisions look a target up (``_Known``: by id, or whether it is read)."""
    calls = [0]

    class Counted(relations_module._Known):
        def __getitem__(self, event_id: str) -> relations_module._Target:
            calls[0] += 1
            return super().__getitem__(event_id)

        def __contains__(self, event_id: object) -> bool:
            calls[0] += 1
            return super().__contains__(event_id)

    monkeypatch.setattr(relations_module, "_Known", Counted)
    yield calls


def _rows(events: list[object]) -> list[Assessed]:
    return [Assessed(ev, TrustState.VERIFIED, "", "p", i) for i, ev in enumerate(events)]  # type: ignore[arg-type]


def test_a_chain_of_replies_costs_a_few_lookups_a_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reply to the one before: the walk asked ``known`` twice a step, 64 steps a
    reply (2.2 s at 20,000 replies); now each row is looked up a few times in all."""
    a = Device("alice@example.com", 1)
    n = 1_000
    events = [a.say(T0, "first", prev=None)]
    for i in range(n):
        events.append(a.say(T0 + 1 + i, f"r{i}", parent=events[-1].event_id, prev=None))
    with _counted_lookups(monkeypatch) as calls:
        rel = build(ROOM, _rows(events))
    assert calls[0] < 8 * n  # was ~126 a reply; 4 now
    # Deeper than the bound, a reply's root is the row 64 above its parent.
    ids = [ev.event_id for ev in events]
    assert rel.thread_root[ids[-1]] == ids[-2 - MAX_THREAD_HOPS]
    assert rel.thread_root[ids[5]] == ids[0]
    assert rel.of(ids[0]).thread == tuple(ids[1 : MAX_THREAD_HOPS + 2])  # type: ignore[union-attr]


def test_a_waiting_thread_head_is_not_walked_again_whole_at_each_arrival(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """k replies to a row R whose parent is not read yet; then the 64 rows above R arrive
    one append at a time, each the parent of the one before. Each arrival places R's
    thread again (its root moves up): that walked each of the k replies up to the top,
    k x 64 steps an arrival (24 s for 5,000 replies in all); now the way is found once an
    arrival. The result is a full build's."""
    a = Device("alice@example.com", 1)
    k = 300
    above: list[object] = []
    parent = None
    for i in range(MAX_THREAD_HOPS):
        ev = a.say(T0 + 10_000 + i, f"x{i}", parent=parent, prev=None)
        above.append(ev)
        parent = ev.event_id
    head = a.say(T0, "R", parent=parent, prev=None)
    kids = [a.say(T0 + 1 + i, f"k{i}", parent=head.event_id, prev=None) for i in range(k)]
    rows = _rows([head, *kids, *reversed(above)])  # the top arrives last
    rel = build(ROOM, rows[: k + 1])
    with _counted_lookups(monkeypatch) as calls:
        for end in range(k + 2, len(rows) + 1):
            rel = extended(rel, RowList(rows[:end]))
    # was 1,419,879 (64 arrivals x ~300 replies x up to 64 steps); 46,910 now
    assert calls[0] < 8 * MAX_THREAD_HOPS * (k + MAX_THREAD_HOPS)
    full = build(ROOM, rows)
    assert rel.thread_root == full.thread_root
    assert rel.aggregates == full.aggregates


class _CountedRows(RowList):
    """A source that counts the rows it makes one at a time (``Source.row``)."""

    made = 0

    def row(self, position: int) -> relations_module.Row:
        _CountedRows.made += 1
        return super().row(position)


@pytest.mark.parametrize("order", ["first", "last", "shuffled"])
def test_an_append_of_many_redactions_of_one_senders_reactions_is_linear(order: str) -> None:
    """k reactions with one text by one sender to one message, then one append that
    redacts them all: each redaction scanned the sender's list and looked up every other
    reaction again (4,000: 6.6 s, against 0.1 s for a full build). Now the rows read are
    counted in the thousands, and the result is a full build's, whichever are taken back
    first; half of them taken back leaves the rest, with their best state."""
    a, m = Device("alice@example.com", 1), Device("mallory@example.com", 13)
    k = 300
    first = a.say(T0, "hi", prev=None)
    reactions = [
        m.emit(T0 + 1 + i, "m.room.reaction", {"relates_to": first.event_id, "reaction": "👍"})
        for i in range(k)
    ]
    taken = list(reactions)
    if order == "last":
        taken.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(taken)
    for kept in (0, k // 2):
        redactions = [
            m.emit(T0 + 10 * k + i, "m.room.redaction", {"redacts": r.event_id})
            for i, r in enumerate(taken[kept:])
        ]
        states = [TrustState.UNVERIFIED if i % 3 else TrustState.VERIFIED for i in range(k)]
        pairs = zip(reactions, states, strict=True)
        VERIFIED = TrustState.VERIFIED
        rows = [
            Assessed(first, TrustState.VERIFIED, "", "p", 0),
            *(Assessed(r, s, "", "p", 1 + i) for i, (r, s) in enumerate(pairs)),
            *(Assessed(r, VERIFIED, "", "p", k + 1 + n) for n, r in enumerate(redactions)),
        ]
        rel = build(ROOM, rows[: k + 1])
        _CountedRows.made = 0
        got = extended(rel, _CountedRows(rows))
        assert _CountedRows.made <= 5 * k  # 4 x k; was ~k²/2 (45,450 with k = 300)
        full = build(ROOM, rows)
        assert got.aggregates == full.aggregates and got.findings == full.findings
        chips = got.of(first.event_id)
        if kept:
            assert chips is not None and chips.reactions[0].count == 1
            (reactor,) = chips.reactions[0].reactors
            assert set(reactor.event_ids) == {r.event_id for r in taken[:kept]}
        else:
            assert chips is None or not chips.reactions


def test_a_reaction_added_and_taken_back_in_the_append_that_took_back_another() -> None:
    """One append: one of Mallory's reactions taken back, a new one with the same text,
    that one taken back too, then another: as a full build decides them."""
    a, m = Device("alice@example.com", 1), Device("mallory@example.com", 13)
    first = a.say(T0, "hi", prev=None)

    def react(ts: int) -> object:
        return m.emit(ts, "m.room.reaction", {"relates_to": first.event_id, "reaction": "👍"})

    def redact(ts: int, ev: object) -> object:
        return m.emit(ts, "m.room.redaction", {"redacts": ev.event_id})  # type: ignore[attr-defined]

    old = [react(T0 + 1), react(T0 + 2)]
    again = react(T0 + 11)
    later = react(T0 + 13)
    events = [first, *old, redact(T0 + 10, old[0]), again, redact(T0 + 12, again), later]
    rows = _rows(events)
    got = extended(build(ROOM, rows[:3]), RowList(rows))
    full = build(ROOM, rows)
    assert got.aggregates == full.aggregates
    (reactor,) = full.of(first.event_id).reactions[0].reactors  # type: ignore[union-attr]
    assert reactor.event_ids == (old[1].event_id, later.event_id)  # type: ignore[attr-defined]
