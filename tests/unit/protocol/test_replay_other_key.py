"""A member signs an event of their own under another member's event id (PROTOCOL.md
section 6 step 1): each key's first good copy is shown, in its own chain, and the id
takes no relations (section 18.1). Before, only the first copy by path was shown: the
other member's message vanished from every reader's timeline."""

from __future__ import annotations

from typing import Any

import pytest

from bucket_chat_desktop.protocol import relation_drafts as drafting
from bucket_chat_desktop.protocol.audit import AuditResult, TrustState
from bucket_chat_desktop.protocol.event import MESSAGE, Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.relations import build, extended
from bucket_chat_desktop.protocol.room_state import RoomState
from bucket_chat_desktop.protocol.signing import build_event
from bucket_chat_desktop.protocol.unread import arrived

from ._support import ROOM, T0, Device, alice, audit, bob, ledger, seg, verdicts


def under(device: Device, taken: Event, body: str, **content: Any) -> Event:
    """``device``'s own event, signed and chained by it, under ``taken``'s event id."""
    ev = build_event(
        room_id=ROOM,
        sender_id=device.sender_id,
        event_type=MESSAGE,
        content={"body": body, "msgtype": "m.text", **content},
        timestamp_ms=taken.timestamp_ms,
        unique=taken.event_id.rsplit("::", 1)[1],
        prev_event_hash=device.prev,
        signing_key=device.key,
    )
    assert ev.event_id == taken.event_id
    device.prev = ev.hash
    return ev


def room() -> tuple[dict[str, Event], Device, Device]:
    """alice's segment sorts first and holds her copy of bob's b2."""
    a, b = alice(), bob()
    a1 = a.join(T0)
    b1 = b.join(T0 + 1000)
    b2 = b.say(T0 + 3000, "lunch at noon?")
    x = under(a, b2, "lunch is cancelled")
    b3 = b.say(T0 + 4000, "see you there")
    return {"a1": a1, "x": x, "b1": b1, "b2": b2, "b3": b3}, a, b


def shown(result: AuditResult) -> list[tuple[str, str, TrustState]]:
    return [(r.event.sender_id[:3], r.event.body or "", r.state) for r in result.timeline]


def test_each_keys_copy_is_shown_in_its_own_chain() -> None:
    ev, _, _ = room()
    first = seg([ev["a1"], ev["x"]], "a")
    later = seg([ev["b1"], ev["b2"], ev["b3"]], "b")
    assert first[0] < later[0]
    result = audit(first, later)  # the slim ledger agrees, row for row
    v = TrustState.VERIFIED
    # x and b2 tie on (timestamp, id, depth): (path, line) decides, the same for all
    assert shown(result) == [
        ("ali", "", v),
        ("bob", "", v),
        ("ali", "lunch is cancelled", v),
        ("bob", "lunch at noon?", v),
        ("bob", "see you there", v),
    ]
    assert [f.kind for f in result.findings] == [Kind.REPLAY]  # no gap in bob's chain
    replay = result.findings[0]
    assert (replay.path, replay.line) == (first[0], 2)
    assert "signed by 2 devices (alice@example.com" in replay.message
    assert "bob@example.com" in replay.message and "relations that name this id are ignored" in (
        replay.message
    )
    assert result.timeline.repeated == {ev["b2"].event_id}
    assert result.timeline[1:].repeated == result.timeline.repeated  # slices carry it
    # which row is which copy, for a caller that knows it (a search hit)
    tl = result.timeline
    assert tl.position_of_copy(ev["b2"].event_id, later[0], 2) == 3
    assert tl.position_of_copy(ev["b2"].event_id, first[0], 2) == 2
    assert tl.position_of_copy(ev["b2"].event_id, later[0], 3) is None


def test_the_order_does_not_depend_on_the_reading_order() -> None:
    ev, _, _ = room()
    first = seg([ev["a1"], ev["x"]], "a")
    later = seg([ev["b1"], ev["b2"], ev["b3"]], "b")
    one, other = ledger(first, later).audit(), ledger(later, first).audit()
    assert verdicts(one) == verdicts(other)


def test_copies_of_one_key_keep_the_first_copy_rule() -> None:
    ev, _, b = room()
    b.prev = ev["b1"].hash
    again = under(b, ev["b2"], "lunch at one?")  # bob's own second copy
    result = audit(seg([ev["b1"], ev["b2"], ev["b3"]], "b"), seg([again], "c"))
    assert [r.event.body for r in result.timeline] == [None, "lunch at noon?", "see you there"]
    assert result.timeline.repeated == frozenset()
    assert "only one copy is shown" in result.findings[0].message


def relations_room() -> tuple[dict[str, Event], AuditResult]:
    ev, a, b = room()
    b2 = ev["b2"]
    a2 = a.say(T0 + 5000, "who is coming?")
    ok = b.emit(T0 + 6000, "m.room.reaction", {"relates_to": a2.event_id, "reaction": "👍"})
    # alice's reaction under bob's reaction's id: both rows of that id are ignored too
    copied = build_event(
        room_id=ROOM,
        sender_id=a.sender_id,
        event_type="m.room.reaction",
        content={"relates_to": a2.event_id, "reaction": "🎉"},
        timestamp_ms=ok.timestamp_ms,
        unique=ok.event_id.rsplit("::", 1)[1],
        prev_event_hash=a.prev,
        signing_key=a.key,
    )
    a.prev = copied.hash
    e1 = b.emit(T0 + 7000, "m.room.edit", {"replaces": b2.event_id, "new_content": {"body": "x"}})
    e2 = b.emit(T0 + 8000, "m.room.edit", {"replaces": e1.event_id, "new_content": {"body": "y"}})
    r1 = a.emit(T0 + 9000, "m.room.reaction", {"relates_to": b2.event_id, "reaction": "👍"})
    d1 = b.emit(T0 + 10_000, "m.room.redaction", {"redacts": b2.event_id})
    q1 = b.say(T0 + 11_000, "as I said", parent=b2.event_id)
    q2 = a.say(T0 + 12_000, "and me", parent=q1.event_id)
    ev.update(a2=a2, ok=ok, copied=copied, e1=e1, e2=e2, r1=r1, d1=d1, q1=q1, q2=q2)
    result = audit(
        seg([ev["a1"], ev["x"], a2, copied, r1, q2], "a"),
        seg([ev["b1"], b2, ev["b3"], ok, e1, e2, d1, q1], "b"),
    )
    return ev, result


def test_an_id_shown_twice_takes_no_relations() -> None:
    ev, result = relations_room()
    b2 = ev["b2"].event_id
    assert result.timeline.repeated == {b2, ev["ok"].event_id}
    rel = build(ROOM, result.timeline)
    assert rel.repeated == result.timeline.repeated
    assert b2 not in rel.aggregates and b2 not in rel.positions
    # a2 gets neither reaction: their id is shown twice (bob's and alice's)
    assert ev["a2"].event_id not in rel.aggregates
    refused = {f.event_id: f for f in rel.findings}
    for name in ("e1", "e2", "r1", "d1", "q1"):
        assert refused[ev[name].event_id].kind is Kind.RELATION_INVALID, name
        assert "shown more than once" in refused[ev[name].event_id].message
    assert len([f for f in rel.findings if f.event_id == ev["ok"].event_id]) == 2
    # q2 answers q1 (itself shown once): q1 roots its own thread, under nothing
    assert rel.thread_root == {ev["q2"].event_id: ev["q1"].event_id}
    assert rel.waiting == 0 and not rel.waiting_for
    # the relation rows are hidden, both copies of the reaction's id among them
    hidden = [result.timeline[p].event.event_id for p in rel.hidden]
    assert hidden.count(ev["ok"].event_id) == 2


def test_relations_built_in_steps_equal_a_full_build() -> None:
    _, result = relations_room()
    tl = result.timeline
    full = build(ROOM, tl)
    for k in range(len(tl) + 1):
        assert extended(build(ROOM, tl[:k]), tl) == full, k


def test_what_acts_on_an_id_shown_twice_is_refused() -> None:
    ev, result = relations_room()
    rel = build(ROOM, result.timeline)
    target = drafting.Target(ev["b2"].event_id, ev["b2"], rel, result.timeline, result.authorized)
    with pytest.raises(drafting.Refused, match="shown more than once"):
        drafting.react(target, "carol@example.com", "👍")
    with pytest.raises(drafting.Refused, match="shown more than once"):
        drafting.reply(target, ["hm"])
    with pytest.raises(drafting.Refused, match="shown more than once"):
        drafting.edit(target, "bob@example.com", ev["b2"].sender_key or "", "new")
    with pytest.raises(drafting.Refused, match="shown more than once"):
        drafting.delete(target, "bob@example.com", ev["b2"].sender_key or "")


def test_members_count_each_keys_copy() -> None:
    ev, _, _ = room()
    result = audit(seg([ev["a1"], ev["x"]], "a"), seg([ev["b1"], ev["b2"], ev["b3"]], "b"))
    for state in (RoomState.of(result), RoomState()):
        if not state.knows("bob@example.com"):
            state.add(list(result.timeline))
            state.add(list(result.timeline))  # handed again: counted once per copy
        counts = {m.user_id: sum(d.events for d in m.devices) for m in state.roster().members()}
        assert counts == {"alice@example.com": 2, "bob@example.com": 3}


def test_a_copy_read_later_arrives_though_its_id_was_shown() -> None:
    """The other key's copy, read in a later round, is news: it is not the row of that
    id that was shown before."""
    ev, _, _ = room()
    bobs = seg([ev["b1"], ev["b2"], ev["b3"]], "b")
    old = audit(seg([ev["a1"]], "a"), bobs)
    new = audit(seg([ev["a1"]], "a"), bobs, seg([ev["x"]], "c"))
    got = arrived(old.timeline, new.timeline, {}, T0 + 60_000, T0)
    assert [r.event.body for r in got] == ["lunch is cancelled"]
