"""The relation rules (PROTOCOL.md section 17): replies and threads, reactions, edits and
redactions, on rows exactly as an audit shows them."""

from __future__ import annotations

import json
from typing import Any

from bucket_chat_desktop.protocol.attachments import file_content
from bucket_chat_desktop.protocol.audit import AuditResult, RoomLedger
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event, parse_event
from bucket_chat_desktop.protocol.relations import (
    EDIT,
    EDIT_OF_FILE,
    REACTION,
    REDACTION,
    TYPING,
    Relations,
    Row,
    build,
    extended,
    reaction_key,
)

from ._support import ROOM, T0, Device, alice, alice_laptop, audit, bob, named_path, raw_line, seg


def relations(result: AuditResult, room_id: str = ROOM) -> Relations:
    """Built from the audit's timeline (the fast path) and from plain rows: the same."""
    fast = build(room_id, result.timeline)  # type: ignore[arg-type]
    rows = [Row(i, a.event, a.state.value, a.path, a.line) for i, a in enumerate(result.timeline)]
    slow = build(room_id, rows)
    assert fast.aggregates == slow.aggregates and fast.findings == slow.findings
    assert list(fast.hidden) == list(slow.hidden) and fast.thread_root == slow.thread_root
    assert fast.waiting == slow.waiting and fast.positions == slow.positions
    # Appended in two steps, split anywhere, on the audit's own timeline: the same.
    timeline = result.timeline
    for cut in range(len(timeline)):
        more = extended(build(room_id, timeline[:cut]), timeline)  # type: ignore[arg-type]
        assert more.aggregates == fast.aggregates and more.findings == fast.findings
        assert list(more.hidden) == list(fast.hidden) and more.positions == fast.positions
        assert more.waiting_for == fast.waiting_for and more.thread_root == fast.thread_root
    # A ledger that keeps no bodies (the app's) keeps what the rules read: the same.
    slim = RoomLedger(room_id, keep_bodies=False)
    for path in sorted({a.path for a in result.timeline}):
        slim.add_segment(path, _data[path])
    slim_rel = build(room_id, slim.audit().timeline)  # type: ignore[arg-type]
    assert slim_rel.aggregates == fast.aggregates and slim_rel.findings == fast.findings
    return fast


_data: dict[str, bytes] = {}


def run(*devices_events: tuple[Device, list[Event]], room_id: str = ROOM) -> AuditResult:
    segments = []
    for i, (_, events) in enumerate(devices_events):
        s = seg(events, f"c{i}")
        _data[s[0]] = s[1]
        segments.append(s)
    return audit(*segments, room_id=room_id)


def unsigned_reaction(sender_id: str, ts: int, target: str, text: str = "👍") -> tuple[str, bytes]:
    """A reaction as the reference implementation writes it: no ``sender_key``, unverified."""
    ev = {
        "event_id": f"{ROOM}::2025-09-14T14:00:46.000000Z::{ts}",
        "room_id": ROOM,
        "timestamp_ms": ts,
        "sender_id": sender_id,
        "type": REACTION,
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "",
        "content": {"relates_to": target, "reaction": text},
    }
    path = named_path(ts, ts, "ref")
    _data[path] = raw_line(ev)
    return path, _data[path]


def react(d: Device, ts: int, target: str, text: str = "👍") -> Event:
    return d.emit(ts, REACTION, {"relates_to": target, "reaction": text})


def edit(d: Device, ts: int, target: str, body: str, **extra: Any) -> Event:
    return d.emit(
        ts, EDIT, {"replaces": target, "new_content": {"body": body, "msgtype": "m.text"}, **extra}
    )


def redact(d: Device, ts: int, target: str, reason: str | None = None) -> Event:
    content: dict[str, Any] = {"redacts": target}
    if reason is not None:
        content["reason"] = reason
    return d.emit(ts, REDACTION, content)


def kinds(rel: Relations) -> list[str]:
    return sorted(f.kind.value for f in rel.findings)


def test_plain_room_has_no_relations() -> None:
    a = alice()
    result = run((a, [a.join(T0), a.say(T0 + 1, "hi")]))
    rel = relations(result)
    assert rel.aggregates == {} and list(rel.hidden) == [] and rel.findings == ()
    assert rel.row_of(1) == 1 and rel.position_of(1) == 1


def test_reactions_count_once_per_sender_and_text_and_hide_their_rows() -> None:
    a, b = alice(), bob()
    aj, msg = a.join(T0), a.say(T0 + 10, "ship it?")
    a_events = [aj, msg, react(a, T0 + 30, msg.event_id), react(a, T0 + 31, msg.event_id)]
    b_events = [
        b.join(T0 + 5),
        react(b, T0 + 20, msg.event_id),
        react(b, T0 + 21, msg.event_id, " 🎉 "),
    ]
    result = run((a, a_events), (b, b_events))
    rel = relations(result)
    agg = rel.of(msg.event_id)
    assert agg is not None
    chips = {c.key: c for c in agg.reactions}
    assert list(chips) == ["👍", "🎉"]  # first reaction first
    assert chips["👍"].count == 2 and chips["🎉"].count == 1  # alice's second 👍 counted once
    assert [r.sender_id for r in chips["👍"].reactors] == ["bob@example.com", "alice@example.com"]
    assert len(chips["👍"].by("alice@example.com").event_ids) == 2  # type: ignore[union-attr]
    assert chips["👍"].all_verified and rel.findings == ()
    # 7 rows, 4 of them reactions: 3 shown rows, mapped both ways.
    assert len(result.timeline) == 7 and len(rel.hidden) == 4
    shown = [rel.position_of(r) for r in range(rel.shown_count(7))]
    assert [result.timeline[p].event.type for p in shown] == [MEMBER, MEMBER, "m.room.message"]
    assert [rel.row_of(p) for p in shown] == [0, 1, 2]
    assert all(rel.row_of(p) is None for p in rel.hidden)


def test_a_reaction_by_an_unverified_sender_stays_marked_in_the_chip() -> None:
    a, b = alice(), bob()
    msg = a.say(T0 + 10, "hello")
    b_events = [b.join(T0 + 1), react(b, T0 + 20, msg.event_id)]
    s1, s2 = seg([a.join(T0), msg], "a"), seg(b_events, "b")
    _data.update([s1, s2])
    result = audit(s1, s2, unsigned_reaction("mallory@example.com", T0 + 30, msg.event_id))
    states = {a.event.sender_id: a.state.value for a in result.timeline}
    assert states["mallory@example.com"] != "verified"
    chip = relations(result).of(msg.event_id).reactions[0]  # type: ignore[union-attr]
    assert chip.count == 2 and not chip.all_verified
    assert chip.by("mallory@example.com").state == states["mallory@example.com"]  # type: ignore[union-attr]
    assert chip.state == states["mallory@example.com"]


def test_edit_by_the_sender_applies_and_the_latest_wins_edit_of_edit_goes_to_original() -> None:
    a = alice()
    msg = a.say(T0 + 10, "teh plan")
    e1 = edit(a, T0 + 20, msg.event_id, "the plan")
    e2 = edit(a, T0 + 30, e1.event_id, "the plan (v2)")  # an edit of the edit
    result = run((a, [a.join(T0), msg, e1, e2]))
    rel = relations(result)
    agg = rel.of(msg.event_id)
    assert agg is not None and [e.body for e in agg.edits] == ["the plan", "the plan (v2)"]
    assert agg.latest.body == "the plan (v2)" and agg.state("verified") == "verified"  # type: ignore[union-attr]
    assert rel.of(e1.event_id) is None and rel.findings == ()


def test_an_edit_of_a_file_or_image_message_is_refused() -> None:
    """A file's card shows the file: an edit's text would replace it in one view (the
    terminal, the export) and not in another (the card). Refused, however it is aimed:
    at the file, or at an edit of it; the sender's own edit of a text still applies."""
    a = alice()
    doc = a.emit(T0 + 10, MESSAGE, file_content("contract.pdf", 3, "application/pdf", "0" * 64))
    img = file_content("p.png", 3, "image/png", "1" * 64, width=2, height=2)
    pic = a.emit(T0 + 11, MESSAGE, img)
    e1 = edit(a, T0 + 20, doc.event_id, "Here is the FINAL signed contract (v2)")
    e2 = edit(a, T0 + 21, e1.event_id, "v3")  # an edit of the refused edit
    e3 = edit(a, T0 + 22, pic.event_id, "a picture of something else")
    msg = a.say(T0 + 30, "teh plan")
    e4 = edit(a, T0 + 31, msg.event_id, "the plan")
    result = run((a, [a.join(T0), doc, pic, e1, e2, e3, msg, e4]))
    rel = relations(result)
    assert rel.of(doc.event_id) is None and rel.of(pic.event_id) is None
    refused = {f.event_id: f for f in rel.findings}
    assert set(refused) == {e1.event_id, e2.event_id, e3.event_id}
    assert all(f.kind.value == "relation-invalid" for f in refused.values())
    assert all(EDIT_OF_FILE in f.message for f in refused.values())
    assert rel.of(msg.event_id).latest.body == "the plan"  # type: ignore[union-attr]
    assert rel.edit_of == {e4.event_id: msg.event_id}


def test_edit_or_redaction_by_another_sender_is_ignored_and_reported() -> None:
    a, b = alice(), bob()
    msg = a.say(T0 + 10, "pay to account 1")
    forged = edit(b, T0 + 20, msg.event_id, "pay to account 2")
    gone = redact(b, T0 + 30, msg.event_id)
    result = run((a, [a.join(T0), msg]), (b, [b.join(T0 + 1), forged, gone]))
    rel = relations(result)
    assert rel.of(msg.event_id) is None
    assert kinds(rel) == ["relation-not-sender", "relation-not-sender"]
    f = rel.findings[0]
    assert f.event_id == forged.event_id and f.path is not None and f.line == 2
    assert "bob@example.com" in f.message and "alice@example.com" in f.message


def test_an_unverified_edit_claiming_the_sender_cannot_change_a_verified_message() -> None:
    a = alice()
    msg = a.say(T0 + 10, "meet at 5")
    impostor = Device("alice@example.com", 4)  # another key claiming to be alice
    forged = edit(impostor, T0 + 20, msg.event_id, "meet at 6")
    result = run((a, [a.join(T0), msg]), (impostor, [forged]))
    rel = relations(result)
    assert rel.of(msg.event_id) is None
    assert kinds(rel) == ["relation-not-sender"] and "another key" in rel.findings[0].message


def test_an_edit_from_the_senders_second_device_applies() -> None:
    a, laptop = alice(), alice_laptop()
    aj = a.join(T0)
    add = a.emit(T0 + 1, MEMBER, {"membership": "join", "add_device_key": laptop.public})
    acc = laptop.emit(
        T0 + 2,
        MEMBER,
        {"membership": "join", "introduced_by": a.public},
        prev=None,
    )
    msg = a.say(T0 + 10, "typo")
    fix = edit(laptop, T0 + 20, msg.event_id, "fixed")
    result = run((a, [aj, add, msg]), (laptop, [acc, fix]))
    assert {x.state.value for x in result.timeline} == {"verified"}
    agg = relations(result).of(msg.event_id)
    assert agg is not None and agg.latest.body == "fixed"  # type: ignore[union-attr]


def test_redaction_takes_the_message_with_its_edits_and_reactions() -> None:
    a, b = alice(), bob()
    msg = a.say(T0 + 10, "oops")
    e1 = edit(a, T0 + 20, msg.event_id, "oops!")
    r1 = react(b, T0 + 25, msg.event_id)
    red = redact(a, T0 + 30, msg.event_id, "wrong room")
    result = run((a, [a.join(T0), msg, e1, red]), (b, [b.join(T0 + 1), r1]))
    agg = relations(result).of(msg.event_id)
    assert agg is not None and agg.redacted is not None
    assert agg.redacted.reason == "wrong room" and agg.redacted.event_id == red.event_id
    assert agg.edits == () and agg.reactions == ()


def test_removing_a_reaction_is_a_redaction_of_it_by_its_sender() -> None:
    a, b = alice(), bob()
    msg = a.say(T0 + 10, "lunch?")
    mine = react(b, T0 + 20, msg.event_id, "🍕")
    result = run(
        (a, [a.join(T0), msg]), (b, [b.join(T0 + 1), mine, redact(b, T0 + 30, mine.event_id)])
    )
    rel = relations(result)
    assert rel.of(msg.event_id) is None or rel.of(msg.event_id).reactions == ()  # type: ignore[union-attr]
    # alice cannot take bob's reaction away
    a2, b2 = alice(), bob()
    msg2 = a2.say(T0 + 10, "lunch?")
    his = react(b2, T0 + 20, msg2.event_id, "🍕")
    result = run(
        (a2, [a2.join(T0), msg2, redact(a2, T0 + 30, his.event_id)]), (b2, [b2.join(T0 + 1), his])
    )
    rel = relations(result)
    assert rel.of(msg2.event_id).reactions[0].count == 1  # type: ignore[union-attr]
    assert kinds(rel) == ["relation-not-sender"]


def test_a_relation_whose_target_is_not_read_yet_waits_without_a_finding() -> None:
    a, b = alice(), bob()
    later = a.say(T0 + 10, "not yet read")  # its segment is not fed
    result = run(
        (
            b,
            [
                b.join(T0 + 1),
                react(b, T0 + 20, later.event_id),
                b.say(T0 + 30, "re", parent=later.event_id),
            ],
        )
    )
    rel = relations(result)
    assert rel.findings == () and rel.waiting == 2 and rel.aggregates == {}
    # once the target's segment is read, both apply
    result = run((a, [a.join(T0), later]), (b, list(_events_of(result, "bob@example.com"))))
    rel = relations(result)
    agg = rel.of(later.event_id)
    assert (
        rel.waiting == 0
        and agg is not None
        and agg.reactions[0].count == 1
        and len(agg.thread) == 1
    )


def _events_of(result: AuditResult, sender: str) -> list[Event]:
    return [x.event for x in result.timeline if x.event.sender_id == sender]


def test_a_target_in_another_room_is_a_finding() -> None:
    a, b = alice(), bob()
    elsewhere = Device("alice@example.com", 1, "other-room").say(T0, "in another room")
    result = run(
        (a, [a.join(T0), a.say(T0 + 5, "here")]),
        (
            b,
            [
                b.join(T0 + 1),
                react(b, T0 + 10, elsewhere.event_id),
                b.say(T0 + 20, "reply across rooms", parent=elsewhere.event_id),
                redact(b, T0 + 30, elsewhere.event_id),
            ],
        ),
    )
    rel = relations(result)
    assert kinds(rel) == ["relation-cross-room"] * 3
    assert all("other-room" in f.message for f in rel.findings)
    assert rel.aggregates == {} and rel.thread_root == {}


def test_threads_gather_every_reply_under_the_root() -> None:
    a, b = alice(), bob()
    root = a.say(T0 + 10, "topic")
    r1 = b.say(T0 + 20, "first reply", parent=root.event_id)
    r2 = a.say(T0 + 30, "reply to the reply", parent=r1.event_id)
    other = a.say(T0 + 40, "unrelated")
    result = run((a, [a.join(T0), root, r2, other]), (b, [b.join(T0 + 1), r1]))
    rel = relations(result)
    assert rel.of(root.event_id).thread == (r1.event_id, r2.event_id)  # type: ignore[union-attr]
    assert rel.thread_root == {r1.event_id: root.event_id, r2.event_id: root.event_id}
    assert rel.of(other.event_id) is None and list(rel.hidden) == []  # replies are rows
    # where each thread row is, for a thread panel or a jump to the quoted parent
    at = {a.event.event_id: i for i, a in enumerate(result.timeline)}
    assert {k: rel.positions[k] for k in (root.event_id, r1.event_id, r2.event_id)} == {
        k: at[k] for k in (root.event_id, r1.event_id, r2.event_id)
    }


def test_typing_is_never_a_row_nor_a_finding() -> None:
    a = alice()
    result = run((a, [a.join(T0), a.emit(T0 + 5, TYPING, {"typing": True}), a.say(T0 + 9, "x")]))
    rel = relations(result)
    assert rel.findings == () and list(rel.hidden) == [1] and rel.shown_count(3) == 2


def test_malformed_relations_are_findings_and_change_nothing() -> None:
    a = alice()
    msg = a.say(T0 + 10, "x")
    join = a.join(T0)
    bad = [
        a.emit(T0 + 20, REACTION, {"relates_to": msg.event_id, "reaction": ""}),
        a.emit(T0 + 21, REACTION, {"relates_to": msg.event_id, "reaction": "x" * 65}),
        a.emit(T0 + 22, REACTION, {"relates_to": msg.event_id, "reaction": "\u202e👍"}),
        a.emit(T0 + 23, REACTION, {"relates_to": 7, "reaction": "👍"}),
        a.emit(T0 + 24, EDIT, {"replaces": msg.event_id, "new_content": "text"}),
        a.emit(T0 + 25, EDIT, {"replaces": msg.event_id, "new_content": {"body": "  "}}),
        a.emit(T0 + 26, EDIT, {"replaces": join.event_id, "new_content": {"body": "leave"}}),
        a.emit(T0 + 27, REDACTION, {"redacts": join.event_id}),
        a.emit(T0 + 28, REDACTION, {}),
    ]
    result = run((a, [join, msg, *bad]))
    rel = relations(result)
    assert kinds(rel) == ["relation-invalid"] * 9
    assert rel.aggregates == {} and len(rel.hidden) == 9


def test_an_edit_loop_or_an_edit_whose_original_is_gone_changes_nothing() -> None:
    a = alice()
    msg = a.say(T0 + 10, "x")
    e1 = edit(a, T0 + 20, msg.event_id, "y")
    gone = redact(a, T0 + 30, e1.event_id)  # taking back an edit: the original text again
    result = run((a, [a.join(T0), msg, e1, gone]))
    agg = relations(result).of(msg.event_id)
    assert agg is None or agg.edits == ()


def test_reaction_keys() -> None:
    assert reaction_key(" 👍 ") == "👍" and reaction_key("👨\u200d👩\u200d👧") is not None
    assert reaction_key("e\u0301") == "\u00e9"  # NFC: one chip for both spellings
    for bad in ("", "  ", "a\nb", "x" * 65, "\u202eab", "\x1b[31m", 5, None):
        assert reaction_key(bad) is None
    # Red team: joiners, selectors and combining marks alone made a chip that shows nothing.
    for blank in ("\u200d", "\ufe0f", "\u200d\ufe0f\u0301", "\u0301\u0301"):
        assert reaction_key(blank) is None
    assert reaction_key("\u2764\ufe0f") == "\u2764\ufe0f" and reaction_key("+1") == "+1"
    # Red team (round 24): the line breaks that are not controls. "👍" + U+2028 + "👍"
    # was a chip drawn on two lines and clipped to slivers of the emoji, counted apart
    # from the plain "👍" it passed for.
    for broken in ("👍\u2028👍", "👍\u2029👍", "ok\u2029ok"):
        assert reaction_key(broken) is None
    # ... and letters drawn as nothing: a chip as blank as one of joiners alone.
    for blank in ("\u2800", "\u3164", "\u115f\u1160", "\uffa0\u200d", "\u17b4"):
        assert reaction_key(blank) is None
    assert reaction_key("\u2801") == "\u2801"  # a braille letter with dots is seen


def test_a_reply_to_a_reaction_is_a_finding_not_a_hidden_thread() -> None:
    a, b = alice(), bob()
    msg = a.say(T0 + 10, "x")
    r = react(b, T0 + 20, msg.event_id)
    reply = a.say(T0 + 30, "replying to a reaction", parent=r.event_id)
    result = run((a, [a.join(T0), msg, reply]), (b, [b.join(T0 + 1), r]))
    rel = relations(result)
    assert kinds(rel) == ["relation-invalid"] and rel.thread_root == {}
    assert rel.of(r.event_id) is None


def test_waiting_relations_name_what_they_wait_for() -> None:
    a, b = alice(), bob()
    later = a.say(T0 + 10, "not yet read")
    result = run((b, [b.join(T0 + 1), react(b, T0 + 20, later.event_id)]))
    rel = relations(result)
    assert rel.waiting == 1 and rel.waiting_for == {later.event_id}


def _plain(n: int, parent: int | None = None) -> Row:
    """Row ``n``: an unsigned message whose id its writer chose (ids are not hashes)."""
    ev = parse_event(
        {
            "event_id": f"{ROOM}::2026-01-01T00:00:00.000Z::{n}",
            "room_id": ROOM,
            "timestamp_ms": T0 + n,
            "sender_id": "mallory@example.com",
            "type": "m.room.message",
            "parent_event_id": None
            if parent is None
            else f"{ROOM}::2026-01-01T00:00:00.000Z::{parent}",
            "prev_event_hash": None,
            "signature": "",
            "content": {"body": f"m{n}", "msgtype": "m.text"},
        },
        ROOM,
    )
    assert isinstance(ev, Event)
    return Row(n, ev, "unverified")


def test_a_reply_is_never_its_own_thread_root() -> None:
    """Red team: a reply to itself, and a loop of two replies, planted by a writer who
    picks event ids. Before, each was the root of a thread holding itself ("1 reply",
    a thread panel listing the root under itself)."""
    rows = [_plain(1, parent=1), _plain(2, parent=3), _plain(3, parent=2), _plain(4, parent=2)]
    rel = build(ROOM, rows)
    self_reply, two, three, four = (r.event.event_id for r in rows)
    assert kinds(rel) == ["relation-invalid"] and "itself" in rel.findings[0].message
    assert rel.findings[0].event_id == self_reply and self_reply not in rel.thread_root
    assert rel.of(self_reply) is None  # no thread, no reply count
    assert rel.thread_root[two] == three and rel.thread_root[three] == two
    assert rel.thread_root[four] == three  # up from 2, the loop closes at 3
    for root, agg in rel.aggregates.items():
        assert root not in agg.thread


def test_padded_relations_cost_the_slim_ledger_nothing_and_decide_the_same() -> None:
    """Red team: writers MAY add fields, so a hostile member pads reactions, edits and
    redactions to the line limit. The app's ledger keeps no message body, but it kept
    these contents whole: 800 padded reactions held 200 MB. It now keeps only what the
    rules read, and ``relations()`` checks the result is the same as from whole events.
    A target longer than any event id names nothing (relation-invalid); a reason is kept
    to its first 1,000 characters."""
    a, b = alice(), bob()
    pad = "x" * 100_000
    msg = a.say(T0 + 10, "pad me")
    new = {"body": "fixed", "msgtype": "m.text", "pad": pad}
    a_events = [
        a.join(T0),
        msg,
        a.emit(T0 + 40, EDIT, {"replaces": msg.event_id, "new_content": new, "pad": pad}),
        redact(a, T0 + 50, msg.event_id, "why " * 50_000),
    ]
    long_target = f"{ROOM}::" + "z" * 600
    b_events = [
        b.join(T0 + 1),
        b.emit(T0 + 20, REACTION, {"relates_to": msg.event_id, "reaction": "👍", "pad": pad}),
        b.emit(T0 + 30, REACTION, {"relates_to": msg.event_id, "reaction": pad}),
        b.emit(T0 + 31, REACTION, {"relates_to": long_target, "reaction": "👍"}),
        b.emit(T0 + 32, EDIT, {"replaces": msg.event_id, "new_content": pad}),
    ]
    result = run((a, a_events), (b, b_events))
    rel = relations(result)  # the slim ledger decides the same (checked inside)
    agg = rel.of(msg.event_id)
    assert agg is not None and agg.redacted is not None
    assert agg.redacted.reason == "why " * 250  # its first 1,000 characters
    assert rel.waiting == 0  # the over-long target does not wait for ever
    assert kinds(rel).count("relation-invalid") == 2  # over-long target, over-long text
    slim = RoomLedger(ROOM, keep_bodies=False)
    for path in sorted({x.path for x in result.timeline}):
        slim.add_segment(path, _data[path])
    kept = sum(len(json.dumps(dict(x.event.content))) for x in slim.audit().timeline)
    assert kept < 5_000, kept


def test_an_edit_of_itself_or_in_a_loop_is_named_so() -> None:
    """Red team rt40: an edit naming itself (or two naming each other) was "an edit whose
    original is not there", the words for one whose message is missing."""

    def edit_row(n: int, target: int) -> Row:
        ev = parse_event(
            {
                "event_id": f"{ROOM}::2026-01-01T00:00:00.000Z::{n}",
                "room_id": ROOM,
                "timestamp_ms": T0 + n,
                "sender_id": "mallory@example.com",
                "type": EDIT,
                "parent_event_id": None,
                "prev_event_hash": None,
                "signature": "",
                "content": {
                    "replaces": f"{ROOM}::2026-01-01T00:00:00.000Z::{target}",
                    "new_content": {"body": "ghost"},
                },
            },
            ROOM,
        )
        assert isinstance(ev, Event)
        return Row(n, ev, "unverified")

    rel = build(ROOM, [_plain(1), edit_row(2, 2), edit_row(3, 4), edit_row(4, 3)])
    assert kinds(rel) == ["relation-invalid"] * 3
    assert all("leads to no message" in f.message for f in rel.findings), rel.findings
    assert rel.aggregates == {}


def test_an_applied_edit_and_deletion_say_where_their_copy_was_read() -> None:
    """A front end notes an edit or a deletion that arrived long after its date by the
    copy that arrived (its id and where it was read: an id can be signed twice, 18.1),
    and finds the note again from the aggregate: each applied change carries its row's
    place, the same whether built whole, extended or from a ledger without bodies."""
    a = alice()
    msg = a.say(T0 + 10, "teh plan")
    other = a.say(T0 + 11, "oops")
    e1 = edit(a, T0 + 20, msg.event_id, "the plan")
    red = redact(a, T0 + 30, other.event_id)
    result = run((a, [a.join(T0), msg, other, e1, red]))
    where = {r.event.event_id: (r.path, r.line) for r in result.timeline}
    rel = relations(result)
    edited, deleted = rel.of(msg.event_id), rel.of(other.event_id)
    assert edited is not None and edited.latest is not None
    assert (edited.latest.path, edited.latest.line) == where[e1.event_id]
    assert deleted is not None and deleted.redacted is not None
    assert (deleted.redacted.path, deleted.redacted.line) == where[red.event_id]
    assert where[e1.event_id] != where[red.event_id]
