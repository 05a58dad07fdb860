"""One set of rules for what a reaction, an edit or a deletion sends (the app's client
and the command line both follow ``relation_drafts``)."""

from __future__ import annotations

from typing import Any

import pytest

from bucket_chat_desktop.protocol import relation_drafts as drafting
from bucket_chat_desktop.protocol.event import MEMBER, MESSAGE, Event, parse_event
from bucket_chat_desktop.protocol.relations import EDIT, REACTION, REDACTION, Row, build

from ._support import ROOM, T0

ALICE, BOB = "alice@example.com", "bob@example.com"
A_KEY, A_OTHER = "a" * 43 + "=", "c" * 43 + "="


def _ev(n: int, sender: str, kind: str, content: dict[str, Any], key: str | None) -> Event:
    raw: dict[str, Any] = {
        "event_id": f"{ROOM}::2026-01-01T00:00:00.000Z::{n}",
        "room_id": ROOM,
        "timestamp_ms": T0 + n,
        "sender_id": sender,
        "type": kind,
        "parent_event_id": None,
        "prev_event_hash": None,
        "signature": "",
        "content": content,
    }
    if key is not None:
        raw["sender_key"] = key
    ev = parse_event(raw, ROOM)
    assert isinstance(ev, Event)
    return ev


def room() -> tuple[list[Row], dict[str, Event]]:
    events = {
        "join": _ev(0, ALICE, MEMBER, {"membership": "join"}, A_KEY),
        "mine": _ev(1, ALICE, MESSAGE, {"body": "hi", "msgtype": "m.notice"}, A_KEY),
        "bobs": _ev(2, BOB, MESSAGE, {"body": "yo", "msgtype": "m.text"}, None),
        "gone": _ev(3, ALICE, MESSAGE, {"body": "oops", "msgtype": "m.text"}, A_KEY),
        "laptop": _ev(4, ALICE, MESSAGE, {"body": "from my laptop"}, A_OTHER),
    }
    gone = events["gone"].event_id
    mine = events["mine"].event_id
    events["del"] = _ev(5, ALICE, REDACTION, {"redacts": gone}, A_KEY)
    events["react"] = _ev(6, ALICE, REACTION, {"relates_to": mine, "reaction": "👍"}, A_KEY)
    events["edit"] = _ev(
        7,
        ALICE,
        EDIT,
        {"replaces": mine, "new_content": {"body": "hello", "msgtype": "m.notice"}},
        A_KEY,
    )
    rows = [Row(i, ev, "verified") for i, ev in enumerate(events.values())]
    return rows, events


def target(
    name: str,
    *,
    authorized: frozenset[str] = frozenset({A_KEY}),
    introduced: frozenset[tuple[str, str, str]] = frozenset(),
) -> drafting.Target:
    rows, events = room()
    ev = events[name]
    return drafting.Target(
        ev.event_id, ev, build(ROOM, rows), rows, {ALICE: authorized}, introductions=introduced
    )


def test_react_adds_once_and_takes_back_only_ones_own() -> None:
    plan = drafting.react(target("bobs"), ALICE, " 🎉 ")
    assert plan.drafts == ((REACTION, {"relates_to": target("bobs").event_id, "reaction": "🎉"}),)
    assert drafting.react(target("mine"), ALICE, "👍").unchanged is drafting.Unchanged.REACTED
    [(kind, content)] = drafting.react(target("mine"), ALICE, "👍", remove=True).drafts  # type: ignore[misc]
    assert kind == REDACTION and content == {"redacts": room()[1]["react"].event_id}
    gone = drafting.react(target("mine"), BOB, "👍", remove=True)
    assert gone.unchanged is drafting.Unchanged.NO_REACTION and gone.drafts == ()
    with pytest.raises(drafting.Refused, match="was deleted"):
        drafting.react(target("gone"), ALICE, "👍")
    with pytest.raises(drafting.Refused, match="not a message"):
        drafting.react(target("join"), ALICE, "👍")
    for bad in ("", "a\nb", "\u202e", "x" * 65):
        with pytest.raises(drafting.Refused, match="1 to 64 characters"):
            drafting.react(target("bobs"), ALICE, bad)


def test_edit_only_ones_own_message_keeping_its_msgtype() -> None:
    [(kind, content)] = drafting.edit(target("mine"), ALICE, A_KEY, "hello all").drafts  # type: ignore[misc]
    assert kind == EDIT and content["new_content"] == {"body": "hello all", "msgtype": "m.notice"}
    same = drafting.edit(target("mine"), ALICE, A_KEY, "hello")  # the latest edit's text
    assert same.unchanged is drafting.Unchanged.SAME_TEXT
    with pytest.raises(drafting.Refused, match="not yours"):
        drafting.edit(target("bobs"), ALICE, A_KEY, "mine now")
    with pytest.raises(drafting.Refused, match="another device"):  # this key not verified
        drafting.edit(target("laptop", authorized=frozenset({A_OTHER})), ALICE, A_KEY, "here")
    # verified here only (pinned as this device's own, confirmed here): every other
    # reader would ignore it, so it is refused
    with pytest.raises(drafting.Refused, match="another device"):
        drafting.edit(target("laptop", authorized=frozenset({A_KEY, A_OTHER})), ALICE, A_KEY, "x")
    # introduced by the laptop (both sides signed), either way round: done
    for edge in ((ALICE, A_OTHER, A_KEY), (ALICE, A_KEY, A_OTHER)):
        both = frozenset({A_KEY, A_OTHER})
        assert drafting.edit(
            target("laptop", authorized=both, introduced=frozenset({edge})), ALICE, A_KEY, "ok"
        ).drafts
    # an introduction of this key by a third key the laptop never met: still refused
    with pytest.raises(drafting.Refused, match="another device"):
        drafting.edit(
            target(
                "laptop",
                authorized=frozenset({A_KEY, A_OTHER}),
                introduced=frozenset({(ALICE, "third", A_KEY), (BOB, A_OTHER, A_KEY)}),
            ),
            ALICE,
            A_KEY,
            "x",
        )
    with pytest.raises(drafting.Refused, match="was deleted"):
        drafting.edit(target("gone"), ALICE, A_KEY, "back")
    # An edit's edit: the message's rules, and it names the message (no growing chain).
    [(kind, content)] = drafting.edit(target("edit"), ALICE, A_KEY, "again").drafts  # type: ignore[misc]
    assert content == {
        "replaces": target("mine").event_id,
        "new_content": {"body": "again", "msgtype": "m.notice"},
    }
    assert drafting.edit(target("edit"), ALICE, A_KEY, "hello").unchanged is (
        drafting.Unchanged.SAME_TEXT
    )
    with pytest.raises(drafting.Refused, match="only messages can be edited"):
        drafting.edit(target("join"), ALICE, A_KEY, "x")
    with pytest.raises(drafting.Refused, match="needs text"):
        drafting.edit(target("mine"), ALICE, A_KEY, "  ")


def test_delete_only_what_can_be_taken_back() -> None:
    [(kind, content)] = drafting.delete(target("mine"), ALICE, A_KEY, " typo ").drafts  # type: ignore[misc]
    assert kind == REDACTION and content == {"redacts": target("mine").event_id, "reason": "typo"}
    assert drafting.delete(target("gone"), ALICE, A_KEY).unchanged is drafting.Unchanged.DELETED
    with pytest.raises(drafting.Refused, match="membership and keys"):
        drafting.delete(target("join"), ALICE, A_KEY)
    with pytest.raises(drafting.Refused, match="nothing to undo"):
        drafting.delete(target("del"), ALICE, A_KEY)
    with pytest.raises(drafting.Refused, match="not yours"):
        drafting.delete(target("bobs"), ALICE, A_KEY)


def test_a_target_not_read_here_gets_what_can_be_checked_without_it() -> None:
    """One's own message on its way to the storage, or one not read yet: a relation to
    it waits for it (PROTOCOL.md 18.1); its sender and type cannot be checked here."""
    rows, _ = room()
    missing = f"{ROOM}::2026-01-01T00:00:00.000Z::99"
    unread = drafting.Target(missing, None, build(ROOM, rows), rows, {})
    assert drafting.react(unread, ALICE, "👍").drafts[0][1]["relates_to"] == missing
    assert drafting.reply(unread, ["re"]).drafts == (
        (MESSAGE, {"body": "re", "msgtype": "m.text"}, missing),
    )
    assert drafting.edit(unread, ALICE, A_KEY, "x").drafts[0][1]["replaces"] == missing
    assert drafting.delete(unread, ALICE, A_KEY).drafts == ((REDACTION, {"redacts": missing}),)
    assert (
        drafting.react(unread, ALICE, "👍", remove=True).unchanged is drafting.Unchanged.NO_REACTION
    )


def test_an_edit_of_an_edit_follows_the_rules_of_the_message_it_edits() -> None:
    """Red team: an edit of an edit applies to the message (PROTOCOL.md 18.4), but the
    rules were checked against the edit named. An unsigned edit planted under Alice's id
    that "replaces" Bob's message passed as hers, and her edit of it went out: every
    reader ignored it and reported Alice trying to edit Bob's message. Editing an edit of
    a deleted message was not refused either, and a notice became a text."""
    rows, events = room()
    bobs, gone = events["bobs"].event_id, events["gone"].event_id
    planted = _ev(
        8,
        ALICE,
        EDIT,
        {"replaces": bobs, "new_content": {"body": "mine", "msgtype": "m.text"}},
        None,
    )
    late = _ev(
        9,
        ALICE,
        EDIT,
        {"replaces": gone, "new_content": {"body": "back", "msgtype": "m.text"}},
        A_KEY,
    )
    rows += [Row(8, planted, "unverified"), Row(9, late, "verified")]
    rel = build(ROOM, rows)
    auth = {ALICE: frozenset({A_KEY})}

    def at(ev: Event) -> drafting.Target:
        return drafting.Target(ev.event_id, ev, rel, rows, auth)

    with pytest.raises(drafting.Refused, match="readers ignore"):
        drafting.edit(at(planted), ALICE, A_KEY, "innocent")
    with pytest.raises(drafting.Refused, match="edits a deleted message"):
        drafting.edit(at(late), ALICE, A_KEY, "again")
    # One's own edit still in the outbox (not read here) names its message itself.
    pending = _ev(
        10, ALICE, EDIT, {"replaces": events["mine"].event_id, "new_content": {"body": "x"}}, A_KEY
    )
    [(_, content)] = drafting.edit(  # type: ignore[misc]
        drafting.Target(pending.event_id, pending, rel, rows, auth), ALICE, A_KEY, "y"
    ).drafts
    assert content == {
        "replaces": events["mine"].event_id,
        "new_content": {"body": "y", "msgtype": "m.notice"},
    }
    # A message nothing relates to yet has no position in the relations, and the app's
    # rows carry no bodies: the caller hands in the message the edit names (``edited``).
    notice = _ev(12, ALICE, MESSAGE, {"body": "note", "msgtype": "m.notice"}, A_KEY)
    bare = [*rows, Row(len(rows), notice._replace(content={}), "verified")]
    rel_bare = build(ROOM, bare)
    first = _ev(13, ALICE, EDIT, {"replaces": notice.event_id, "new_content": {"body": "x"}}, A_KEY)

    def of_first(edited: Event | None) -> drafting.Plan:
        at = drafting.Target(first.event_id, first, rel_bare, bare, auth, edited)
        return drafting.edit(at, ALICE, A_KEY, "the note")

    [(_, content)] = of_first(notice).drafts  # type: ignore[misc]
    assert content["new_content"] == {"body": "the note", "msgtype": "m.notice"}
    [(_, content)] = of_first(None).drafts  # type: ignore[misc]
    assert content["new_content"]["msgtype"] == "m.text"  # unknown: a plain text
    assert (
        drafting.edit(
            drafting.Target(first.event_id, first, rel_bare, bare, auth, notice),
            ALICE,
            A_KEY,
            "note",
        ).unchanged
        is drafting.Unchanged.SAME_TEXT
    )
    pending_of_bobs = _ev(11, ALICE, EDIT, {"replaces": bobs, "new_content": {"body": "x"}}, A_KEY)
    with pytest.raises(drafting.Refused, match="not yours"):
        drafting.edit(
            drafting.Target(pending_of_bobs.event_id, pending_of_bobs, rel, rows, auth),
            ALICE,
            A_KEY,
            "y",
        )


def test_a_disputed_id_is_a_note_not_a_refusal() -> None:
    """Red team rt45: refusing an introduced device's edit while another key claims the
    id let one member's event stop it for good in the room; readers who confirmed the
    user's key apply it. The front end says who sees it instead."""
    edge = frozenset({(ALICE, A_OTHER, A_KEY)})
    both = frozenset({A_KEY, A_OTHER})
    disputed = target("laptop", authorized=both, introduced=edge)
    disputed = drafting.Target(
        disputed.event_id,
        disputed.event,
        disputed.relations,
        disputed.rows,
        disputed.authorized,
        introductions=edge,
        disputed=frozenset({ALICE}),
    )
    assert drafting.edit(disputed, ALICE, A_KEY, "ok").drafts
    note = drafting.disputed_note(disputed, ALICE)
    assert note is not None and "more than one device claim 'alice@example.com'" in note
    assert drafting.disputed_note(target("laptop"), ALICE) is None
