"""Another member cannot take back someone's deletion or edit, and an impostor's key
cannot act for a sender while history loads (PROTOCOL.md sections 18.1, 18.3 and 18.4).

Before: mallory signed anything of her own (a typing notice was enough, never a row)
under the event id of alice's redaction or edit; the id was then "shown more than once",
every relation under it was ignored, and alice's deleted message came back, verified,
with nothing on its row. And while older history was still read, a key first seen for
alice was taken provisionally ("verified"), so an impostor's edit replaced her text and
an impostor's redaction hid her message until the history that exposed the key arrived:
as long as the storage, which decides how long that takes, liked."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from bucket_chat_desktop.protocol import relation_drafts as drafting
from bucket_chat_desktop.protocol.audit import PROVISIONAL_REASON, AuditResult, prepare_segment
from bucket_chat_desktop.protocol.event import MEMBER, Event
from bucket_chat_desktop.protocol.findings import Kind
from bucket_chat_desktop.protocol.relations import (
    EDIT,
    REACTION,
    REDACTION,
    TYPING,
    Relations,
    RowList,
    applied,
    applied_ids,
    build,
    extended,
    own_reaction,
    verified_reactions,
)
from bucket_chat_desktop.protocol.signing import build_event

from ._support import ROOM, T0, Device, alice, alice_laptop, audit, bob, ledger, seg


def taking(device: Device, taken: Event, event_type: str, content: dict[str, Any]) -> Event:
    """``device``'s own event of ``event_type``, signed and chained by it, under the
    event id of ``taken``."""
    ev = build_event(
        room_id=ROOM,
        sender_id=device.sender_id,
        event_type=event_type,
        content=content,
        timestamp_ms=taken.timestamp_ms,
        unique=taken.event_id.rsplit("::", 1)[1],
        prev_event_hash=device.prev,
        signing_key=device.key,
    )
    assert ev.event_id == taken.event_id
    device.prev = ev.hash
    return ev


def built(result: AuditResult) -> Relations:
    """The relations of ``result``, checked to be what every way of building gives: from
    the audit's timeline, from plain rows, and appended in two steps cut anywhere."""
    timeline = result.timeline
    full = build(ROOM, timeline)
    rows = RowList(list(timeline), complete=timeline.complete)
    plain = build(ROOM, rows)
    assert plain.aggregates == full.aggregates and plain.findings == full.findings
    for cut in range(len(timeline) + 1):
        more = extended(build(ROOM, timeline[:cut]), timeline)
        assert more.aggregates == full.aggregates and more.findings == full.findings, cut
        assert more.edit_of == full.edit_of, cut
    return full


def mallorys_copy(kind: str, taken: Event, her_message: Event, mallory: Device) -> Event:
    content: dict[str, Any] = {
        TYPING: {"typing": True},
        REACTION: {"relates_to": her_message.event_id, "reaction": "👍"},
        REDACTION: {"redacts": her_message.event_id},
        EDIT: {
            "replaces": her_message.event_id,
            "new_content": {"body": "hers", "msgtype": "m.text"},
        },
        "message": {"body": "a message of hers", "msgtype": "m.text"},
    }[kind]
    return taking(mallory, taken, "m.room.message" if kind == "message" else kind, content)


KINDS = [TYPING, REACTION, REDACTION, EDIT, "message"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_deletion_stays_though_another_member_signs_under_its_id(kind: str) -> None:
    a, m = alice(), bob()
    aj, mj = a.join(T0), m.join(T0 + 1)
    secret = a.say(T0 + 10, "the vault code is 4711")
    red = a.emit(T0 + 20, REDACTION, {"redacts": secret.event_id, "reason": "posted a secret"})
    mine = m.say(T0 + 5, "mallory's own message")
    copy = mallorys_copy(kind, red, mine, m)
    result = audit(seg([aj, secret, red], "a"), seg([mj, mine, copy], "m"))
    assert red.event_id in result.timeline.repeated
    rel = built(result)
    agg = rel.of(secret.event_id)
    assert agg is not None and agg.redacted is not None
    assert agg.redacted.event_id == red.event_id and agg.redacted.reason == "posted a secret"
    # mallory's copy is judged on its own: her own deletion of her own message applies,
    # her reaction (counted for whoever signed it) is ignored, the others change nothing
    theirs = rel.of(mine.event_id)
    if kind == REDACTION:
        assert theirs is not None and theirs.redacted is not None
    elif kind == EDIT:
        assert theirs is not None and theirs.latest is not None
        assert theirs.latest.body == "hers"
    else:
        assert theirs is None
    if kind == REACTION:
        [f] = [f for f in rel.findings if f.event_id == red.event_id]
        assert f.kind is Kind.RELATION_INVALID and "own event id" in f.message
    else:
        assert not [f for f in rel.findings if f.event_id == red.event_id]


@pytest.mark.parametrize("kind", KINDS)
def test_an_edit_stays_though_another_member_signs_under_its_id(kind: str) -> None:
    a, m = alice(), bob()
    aj, mj = a.join(T0), m.join(T0 + 1)
    msg = a.say(T0 + 10, "Transfer $500 to Bob")
    fix = a.emit(
        T0 + 20,
        EDIT,
        {"replaces": msg.event_id, "new_content": {"body": "Do NOT transfer", "msgtype": "m.text"}},
    )
    mine = m.say(T0 + 5, "mallory's own message")
    copy = mallorys_copy(kind, fix, mine, m)
    result = audit(seg([aj, msg, fix], "a"), seg([mj, mine, copy], "m"))
    rel = built(result)
    agg = rel.of(msg.event_id)
    assert agg is not None and agg.latest is not None and agg.latest.body == "Do NOT transfer"
    assert fix.event_id not in rel.edit_of  # whose copy? ``applied`` tells each
    assert applied(rel, fix)


def test_an_edit_of_her_message_under_its_own_edits_id_is_still_not_hers() -> None:
    """Mallory's copy under the id of alice's edit is an edit of alice's message: refused
    as not the sender's, and alice's own edit under that id applies."""
    a, m = alice(), bob()
    aj, mj = a.join(T0), m.join(T0 + 1)
    msg = a.say(T0 + 10, "pay to DE11")
    fix = a.emit(T0 + 20, EDIT, {"replaces": msg.event_id, "new_content": {"body": "pay to DE22"}})
    forged = taking(m, fix, EDIT, {"replaces": msg.event_id, "new_content": {"body": "XX99"}})
    result = audit(seg([aj, msg, fix], "a"), seg([mj, forged], "m"))
    rel = built(result)
    agg = rel.of(msg.event_id)
    assert agg is not None and [e.body for e in agg.edits] == ["pay to DE22"]
    assert [f.kind for f in rel.findings] == [Kind.RELATION_NOT_SENDER]


def test_what_names_a_taken_id_is_still_ambiguous() -> None:
    """A relation naming the taken id (a deletion of alice's edit) cannot say which copy
    it means: ignored, as before."""
    a, m = alice(), bob()
    aj, mj = a.join(T0), m.join(T0 + 1)
    msg = a.say(T0 + 10, "one")
    fix = a.emit(T0 + 20, EDIT, {"replaces": msg.event_id, "new_content": {"body": "two"}})
    undo = a.emit(T0 + 30, REDACTION, {"redacts": fix.event_id})
    copy = taking(m, fix, TYPING, {"typing": True})
    result = audit(seg([aj, msg, fix, undo], "a"), seg([mj, copy], "m"))
    rel = built(result)
    agg = rel.of(msg.event_id)
    assert agg is not None and agg.latest is not None and agg.latest.body == "two"
    [f] = rel.findings
    assert f.event_id == undo.event_id and "names is shown more than once" in f.message


# -- while history loads -----------------------------------------------------------------


def loading(*segments: tuple[str, bytes], pinned: dict[str, set[str]] | None = None) -> AuditResult:
    """The audit of a reader that has not read older history yet (newest first)."""
    return ledger(*segments).audit(pinned, complete=False)


def test_an_impostors_edit_and_deletion_wait_for_history_while_it_loads() -> None:
    a = alice()
    impostor = Device("alice@example.com", 4)  # another key claiming to be alice
    aj = a.join(T0)
    msg = a.say(T0 + 10, "Invoice: pay to DE11")
    forged = impostor.emit(
        T0 + 20, EDIT, {"replaces": msg.event_id, "new_content": {"body": "pay to XX99"}}
    )
    gone = impostor.emit(T0 + 30, REDACTION, {"redacts": msg.event_id})
    segments = (seg([aj, msg], "a"), seg([forged, gone], "i"))
    early = loading(*segments, pinned={a.sender_id: {a.public}})  # alice's key known
    assert early.timeline.complete is False
    # the impostor's rows say "verified" while loading (a key taken provisionally) ...
    assert {r.state.value for r in early.timeline} == {"verified"}
    assert [r.reason for r in early.timeline][2:] == [PROVISIONAL_REASON] * 2
    rel = built(early)
    # ... yet they act for nobody: alice's text stands and her message is not deleted
    assert rel.of(msg.event_id) is None
    assert [f.kind for f in rel.findings] == [Kind.RELATION_NOT_SENDER] * 2
    assert all("until older history is read" in f.message for f in rel.findings)
    final = built(audit(*segments, pinned={a.sender_id: {a.public}}))
    assert final.of(msg.event_id) is None
    assert [f.kind for f in final.findings] == [Kind.RELATION_NOT_SENDER] * 2


def test_a_second_device_acts_once_history_is_read() -> None:
    """Alice's laptop, introduced by her phone, edits her message: while loading the
    introduction may not be read yet, so the edit waits (a finding says so); once the
    history is read it applies."""
    a, laptop = alice(), alice_laptop()
    aj = a.join(T0)
    add = a.emit(T0 + 1, MEMBER, {"membership": "join", "add_device_key": laptop.public})
    acc = laptop.emit(T0 + 2, MEMBER, {"membership": "join", "introduced_by": a.public}, prev=None)
    msg = a.say(T0 + 10, "typo")
    fix = laptop.emit(T0 + 20, EDIT, {"replaces": msg.event_id, "new_content": {"body": "fixed"}})
    segments = (seg([aj, add, msg], "a"), seg([acc, fix], "l"))
    assert built(loading(*segments)).of(msg.event_id) is None
    agg = built(audit(*segments)).of(msg.event_id)
    assert agg is not None and agg.latest is not None and agg.latest.body == "fixed"


def test_the_same_key_acts_while_history_loads() -> None:
    a = alice()
    aj = a.join(T0)
    msg = a.say(T0 + 10, "typo")
    fix = a.emit(T0 + 20, EDIT, {"replaces": msg.event_id, "new_content": {"body": "fixed"}})
    red = a.emit(T0 + 30, REDACTION, {"redacts": msg.event_id})
    rel = built(loading(seg([aj, msg, fix], "a"), seg([red], "b")))
    agg = rel.of(msg.event_id)
    assert agg is not None and agg.redacted is not None and not rel.findings


def test_every_row_of_these_rooms_is_verified() -> None:
    """The rooms above are well formed: their rows are verified, so what they show is
    decided by the relation rules alone, not by a broken chain."""
    a, m = alice(), bob()
    aj, mj = a.join(T0), m.join(T0 + 1)
    secret = a.say(T0 + 10, "x")
    red = a.emit(T0 + 20, REDACTION, {"redacts": secret.event_id})
    copy = taking(m, red, TYPING, {"typing": True})
    result = audit(seg([aj, secret, red], "a"), seg([mj, copy], "m"))
    assert {r.state.value for r in result.timeline} == {"verified"}


def test_rows_appended_by_a_key_taken_while_loading_say_so_too() -> None:
    """Found by the differential test: a full audit said every row of a key taken
    provisionally was provisional, an append said "key pinned" of the rows it added."""
    a = alice()
    impostor = Device("alice@example.com", 4)
    aj = a.join(T0)
    msg = a.say(T0 + 10, "Invoice")
    first = impostor.emit(T0 + 20, "m.room.message", {"body": "one", "msgtype": "m.text"})
    second = impostor.emit(T0 + 30, "m.room.message", {"body": "two", "msgtype": "m.text"})
    led = ledger(seg([aj, msg], "a"), seg([first], "i"))
    pins = {a.sender_id: {a.public}}
    before = led.audit(pins, complete=False)
    assert before.timeline[-1].reason == PROVISIONAL_REASON
    path, data = seg([second], "j")
    added = led.add_prepared(prepare_segment(path, data, ROOM))
    rows = led.try_append(added)
    assert rows is not None and [r.reason for r in rows] == [PROVISIONAL_REASON]
    again = ledger(seg([aj, msg], "a"), seg([first], "i"), (path, data))
    assert [r.reason for r in again.audit(pins, complete=False).timeline][2:] == [
        PROVISIONAL_REASON
    ] * 2


def test_whose_edit_an_id_is_is_never_answered_by_id_alone() -> None:
    """Red team: with both copies applied, ``edit_of`` kept one of them for the id, so
    the command line's live notice printed mallory's text as alice's edit and search
    pointed alice's edit at mallory's message. A taken id is in no ``edit_of``, and
    ``applied`` judges each copy as itself."""
    a, m = alice(), bob()
    aj, mj = a.join(T0), m.join(T0 + 1)
    msg = a.say(T0 + 10, "Transfer $500")
    mine = m.say(T0 + 5, "mallory's own")
    fix = a.emit(
        T0 + 20, EDIT, {"replaces": msg.event_id, "new_content": {"body": "Do NOT transfer"}}
    )
    copy = taking(m, fix, EDIT, {"replaces": mine.event_id, "new_content": {"body": "SEND IT"}})
    forged = taking(m, fix, EDIT, {"replaces": msg.event_id, "new_content": {"body": "XX99"}})
    result = audit(seg([aj, msg, fix], "a"), seg([mj, mine, copy, forged], "m"))
    rel = built(result)
    assert fix.event_id not in rel.edit_of
    assert applied(rel, fix) and applied(rel, copy) and not applied(rel, forged)
    ids = applied_ids(rel)
    assert applied(rel, fix, ids) and not applied(rel, forged, ids)


# -- reactions while history loads (section 18.3) ----------------------------------------


class Approval(NamedTuple):
    alice: Device
    ask: Event  # bob's question
    segments: tuple[tuple[str, bytes], ...]
    pins: dict[str, set[str]]  # alice's and bob's real keys, pinned on this device
    hers: Event | None  # alice's own 👍, with her own key


def approval(planted: int, *, hers: bool = False) -> Approval:
    """Bob asks for an approval by 👍; a key nobody introduced signs ``planted`` 👍 under
    alice's id (``hers``: alice reacts 👍 too, with her pinned key, after them)."""
    a, b = alice(), bob()
    impostor = Device("alice@example.com", 4)  # another key claiming to be alice
    aj, bj = a.join(T0), b.join(T0 + 1)
    ask = b.say(T0 + 10, "Shall we wire the 50k today? React 👍 to approve")
    thumbs = {"relates_to": ask.event_id, "reaction": "👍"}
    fakes = [impostor.emit(T0 + 20 + i, REACTION, thumbs) for i in range(planted)]
    own = a.emit(T0 + 5_000_000, REACTION, thumbs) if hers else None
    segments = (seg([aj, *([own] if own else [])], "a"), seg([bj, ask], "b"), seg(fakes, "i"))
    return Approval(a, ask, segments, {a.sender_id: {a.public}, b.sender_id: {b.public}}, own)


def test_a_reaction_by_a_key_on_trial_is_not_the_users_own_nor_final() -> None:
    """Red team rt85: while history loaded, a key first seen for alice was taken on
    trial (its rows say "verified") and its reaction under her id was called hers: the
    app highlighted the chip as hers, ticked it in the React menu, and a click "took it
    back". It counts, said to be not final, and is nobody's to take back; once the
    history is read its key turns out an impostor's."""
    room = approval(1)
    me = room.alice.sender_id
    early = loading(*room.segments, pinned=room.pins)
    assert early.timeline[-1].reason == PROVISIONAL_REASON
    chip = built(early).of(room.ask.event_id).reactions[0]  # type: ignore[union-attr]
    reactor = chip.by(me)
    assert reactor is not None and reactor.state == "verified" and reactor.provisional
    assert chip.count == 1 and chip.all_verified and not chip.final
    assert own_reaction(chip, me) is None

    whole = built(audit(*room.segments, pinned=room.pins))
    chip = whole.of(room.ask.event_id).reactions[0]  # type: ignore[union-attr]
    reactor = chip.by(me)
    assert reactor is not None and reactor.state == "key-changed" and not reactor.provisional
    assert chip.final and not chip.all_verified and own_reaction(chip, me) is None


def test_one_click_writes_no_redaction_per_reaction_planted_while_history_loads() -> None:
    """Red team rt85: 1,000 reactions planted under alice's id by a key on trial made one
    click on the chip plan 1,000 redactions, signed by alice's real key, of which not one
    applies (another key's reactions). Now the click takes back nothing planted: with
    none of hers, there is nothing of hers to take back; with hers, hers alone."""
    room = approval(1_000)
    me = room.alice.sender_id
    early = loading(*room.segments, pinned=room.pins)
    rel = build(ROOM, early.timeline)
    target = drafting.Target.of(room.ask.event_id, room.ask, rel, early)
    reactor = rel.of(room.ask.event_id).reactions[0].by(me)  # type: ignore[union-attr]
    assert reactor is not None and len(reactor.event_ids) == 1_000
    assert verified_reactions(reactor, rel, early.timeline) == []
    plan = drafting.react(target, me, "👍", remove=True)
    assert plan.drafts == () and plan.unchanged is drafting.Unchanged.NO_REACTION
    # a click on the chip, not hers, adds her own reaction beside the planted ones
    [(kind, _)] = drafting.react(target, me, "👍").drafts
    assert kind == REACTION

    room = approval(1_000, hers=True)
    assert room.hers is not None
    early = loading(*room.segments, pinned=room.pins)
    rel = build(ROOM, early.timeline)
    target = drafting.Target.of(room.ask.event_id, room.ask, rel, early)
    mine = own_reaction(rel.of(room.ask.event_id).reactions[0], me)  # type: ignore[union-attr]
    assert mine is not None and not mine.provisional and len(mine.event_ids) == 1_001
    assert verified_reactions(mine, rel, early.timeline) == [room.hers.event_id]
    assert drafting.react(target, me, "👍").unchanged is drafting.Unchanged.REACTED
    plan = drafting.react(target, me, "👍", remove=True)
    assert plan.drafts == ((REDACTION, {"redacts": room.hers.event_id}),)


def test_taking_back_ones_reaction_leaves_the_planted_one_not_final() -> None:
    """Alice's own 👍 beside one planted under her id while history loads: hers makes
    the chip hers. Her redaction of it (appended: ``built`` also cuts the rows anywhere,
    so the incremental path decides it too) leaves the planted one, not hers nor final."""
    room = approval(1, hers=True)
    assert room.hers is not None
    me = room.alice.sender_id
    take = room.alice.emit(T0 + 6_000_000, REDACTION, {"redacts": room.hers.event_id})
    before = built(loading(*room.segments, pinned=room.pins))
    chip = before.of(room.ask.event_id).reactions[0]  # type: ignore[union-attr]
    assert own_reaction(chip, me) is not None and chip.final
    after = built(loading(*room.segments, seg([take], "t"), pinned=room.pins))
    chip = after.of(room.ask.event_id).reactions[0]  # type: ignore[union-attr]
    reactor = chip.by(me)
    assert reactor is not None and reactor.provisional and len(reactor.event_ids) == 1
    assert own_reaction(chip, me) is None and not chip.final


def test_a_second_devices_reaction_is_the_users_own_once_its_introduction_is_read() -> None:
    """The cost of the rule, and its end: alice's laptop reacted, and her phone's
    statement that introduces the laptop is in older history not read yet. Until it is,
    the laptop's key is on trial and a click does not take its reaction back (an edit or
    a deletion from it waits the same way, 18.4); once it is read, the reaction is hers."""
    a, laptop = alice(), alice_laptop()
    aj = a.join(T0)
    add = a.emit(T0 + 1, MEMBER, {"membership": "join", "add_device_key": laptop.public})
    acc = laptop.emit(T0 + 2, MEMBER, {"membership": "join", "introduced_by": a.public}, prev=None)
    msg = a.say(T0 + 10, "lunch?")
    thumbs = laptop.emit(T0 + 20, REACTION, {"relates_to": msg.event_id, "reaction": "👍"})
    pins = {a.sender_id: {a.public}}
    newest = (seg([msg], "m"), seg([acc, thumbs], "l"))  # alice's older segment not read yet
    early = loading(*newest, pinned=pins)
    on_trial = {r.event.event_id for r in early.timeline if r.reason == PROVISIONAL_REASON}
    assert on_trial == {acc.event_id, thumbs.event_id}  # the laptop's key: on trial
    chip = built(early).of(msg.event_id).reactions[0]  # type: ignore[union-attr]
    assert not chip.final and own_reaction(chip, a.sender_id) is None
    whole = audit(seg([aj, add], "a"), *newest, pinned=pins)
    rel = built(whole)
    mine = own_reaction(rel.of(msg.event_id).reactions[0], a.sender_id)  # type: ignore[union-attr]
    assert mine is not None and not mine.provisional
    assert verified_reactions(mine, rel, whole.timeline) == [thumbs.event_id]
