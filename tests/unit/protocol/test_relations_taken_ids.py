"""Another member cannot take back someone's deletion or edit, and an impostor's key
cannot act for a sender while history loads (PROTOCOL.md sections 18.1 and 18.4).

Before: mallory signed anything of her own (a typing notice was enough, never a row)
under the event id of alice's redaction or edit; the id was then "shown more than once",
every relation under it was ignored, and alice's deleted message came back, verified,
with nothing on its row. And while older history was still read, a key first seen for
alice was taken provisionally ("verified"), so an impostor's edit replaced her text and
an impostor's redaction hid her message until the history that exposed the key arrived:
as long as the storage, which decides how long that takes, liked."""

from __future__ import annotations

from typing import Any

import pytest

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
