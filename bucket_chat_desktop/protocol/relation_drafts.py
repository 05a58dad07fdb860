"""What a reaction, an edit or a deletion sends, or why it sends nothing.

One set of rules for every front end (the app through ``ChatClient``, the command line):
each refuses (``Refused``, a sentence) what every reader would ignore or that makes no
sense — an edit of someone else's message, a reaction to a deleted one, a deletion of a
membership — and sends nothing when the room already says so (``Plan.unchanged``): a
second identical reaction, an edit to the text shown, a deletion of a deleted message.
Pure: the caller hands in the target as its audit shows it.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .audit import AuditResult
from .chain import Draft
from .event import MEMBER, MESSAGE, Event, has_lone_surrogate
from .mentions import MAX_MENTIONS, MENTIONS_FIELD
from .relations import (
    EDIT,
    EDITABLE_MSGTYPES,
    REACTION,
    REDACTION,
    TYPING,
    Aggregate,
    Relations,
    own_reaction,
    reaction_key,
    target_of,
    verified_reactions,
)


class Refused(ValueError):
    """The action is not sent: the message says why."""


def refuse_repeated(event_id: str, repeated: Collection[str]) -> None:
    """``Refused`` when ``event_id`` is shown more than once (signed by more than one
    device, PROTOCOL.md section 6 step 1): a relation names an id, not a copy, and the
    rules apply none to it (section 18.1)."""
    if event_id in repeated:
        raise Refused(
            f"{event_id!r} is shown more than once: two devices signed events under this "
            "id (see the room's audit), and replies, reactions, edits and deletions of it "
            "apply to neither; nothing sent"
        )


@dataclass(frozen=True, slots=True)
class Target:
    """The event acted on, as one audit shows it. ``event`` None: not read here (yet) —
    what points at it waits for it (PROTOCOL.md 18.1), and only what can be checked
    without it is (the app's own message, still on its way to the storage, is one)."""

    event_id: str
    event: Event | None  # with its content (a message's text and msgtype)
    relations: Relations  # of that audit
    rows: Sequence[Any]  # that audit's timeline (what ``relations`` were built from)
    authorized: Mapping[str, frozenset[str]]  # ``AuditResult.authorized``
    # For an edit: the message it edits, with its content, as the caller read it. The
    # app's audit rows carry no bodies, and a message nothing relates to yet has no
    # position in ``relations``: without it, an edit of one's own edit still in the
    # outbox cannot know the message's msgtype (a notice would become a text).
    edited: Event | None = None
    # ``AuditResult.introductions``: (sender id, introducing key, introduced key)
    introductions: frozenset[tuple[str, str, str]] = frozenset()
    # ``AuditResult.disputed``: sender ids whose keys a reader with no pins cannot settle.
    # Not a refusal: such a reader trusts neither the message nor its edit, one who
    # confirmed the user's key applies the edit (a front end says so: ``disputed_note``).
    disputed: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, event_id: str, event: Event | None, relations: Relations, result: AuditResult
    ) -> Target:
        """The target ``event_id`` as the audit ``result`` (with its ``relations``) has
        it: its rows, who speaks for whom, its introductions, its disputed ids."""
        return cls(
            event_id,
            event,
            relations,
            result.timeline,
            result.authorized,
            introductions=result.introductions,
            disputed=result.disputed,
        )

    @property
    def aggregate(self) -> Aggregate | None:
        return self.relations.of(self.event_id)

    @property
    def deleted(self) -> bool:
        agg = self.aggregate
        return agg is not None and agg.redacted is not None

    def describe(self) -> str:
        ev = self.event
        if ev is None:
            return repr(self.event_id)
        kind = {
            MESSAGE: "a message",
            MEMBER: "a membership event",
            REACTION: "a reaction",
            EDIT: "an edit",
            REDACTION: "a deletion",
        }.get(ev.type, f"an event of type {ev.type!r}")
        return f"{ev.event_id!r} ({kind} by {ev.sender_id!r})"


class Unchanged(enum.Enum):
    """Why nothing is sent: the room says so already (each front end words it)."""

    NO_REACTION = "no reaction of yours to take back"
    REACTED = "you reacted so already"
    SAME_TEXT = "the message says that already"
    DELETED = "deleted already"


@dataclass(frozen=True, slots=True)
class Plan:
    drafts: tuple[Draft, ...] = ()
    unchanged: Unchanged | None = None  # set when there is nothing to send


def reply(target: Target, texts: Sequence[str], mentions: Sequence[str] = ()) -> Plan:
    """Messages answering ``target`` (each a reply in its thread)."""
    refuse_repeated(target.event_id, target.relations.repeated)
    if target.deleted:
        raise Refused(f"{target.describe()} was deleted: nothing to reply to")
    if target.event is not None and target.event.type != MESSAGE:
        raise Refused(f"{target.describe()} is not a message: only messages get replies")
    parent = target.event_id
    return Plan(tuple((MESSAGE, text_content(t, mentions), parent) for t in texts))


def text_content(text: str, mentions: Sequence[str] = ()) -> dict[str, Any]:
    """A text message's content, with the user ids it mentions (PROTOCOL.md 19)."""
    content: dict[str, Any] = {"body": text, "msgtype": "m.text"}
    if mentions:
        content[MENTIONS_FIELD] = list(mentions)[:MAX_MENTIONS]
    return content


def reaction_text(text: str) -> str:
    """The reaction as counted (``relations.reaction_key``), or ``Refused``."""
    key = reaction_key(text)
    if key is None or has_lone_surrogate(key):
        raise Refused(
            "a reaction is 1 to 64 characters (an emoji or a short word), without line "
            "breaks or control characters, with something visible; nothing sent"
        )
    return key


def react(target: Target, user_id: str, text: str, *, remove: bool = False) -> Plan:
    """Add ``user_id``'s reaction ``text`` to a message, or (``remove``) take back each
    of their verified reactions with that text (``relations.verified_reactions``: never
    one per reaction a forger planted under their id)."""
    key = reaction_text(text)
    refuse_repeated(target.event_id, target.relations.repeated)
    if target.deleted:
        raise Refused(f"{target.describe()} was deleted: nothing to react to")
    if target.event is not None and target.event.type != MESSAGE:
        raise Refused(f"{target.describe()} is not a message: only messages get reactions")
    agg = target.aggregate
    chip = next((c for c in (agg.reactions if agg else ()) if c.key == key), None)
    mine = own_reaction(chip, user_id) if chip is not None else None
    if remove:
        if mine is None:
            return Plan(unchanged=Unchanged.NO_REACTION)
        ids = verified_reactions(mine, target.relations, target.rows)
        return Plan(tuple((REDACTION, {"redacts": event_id}) for event_id in ids))
    if mine is not None:
        return Plan(unchanged=Unchanged.REACTED)
    return Plan(((REACTION, {"relates_to": target.event_id, "reaction": key}),))


def edit(target: Target, user_id: str, public_key: str, text: str) -> Plan:
    """Replace the text of one's own message (its msgtype kept: a notice stays one), or
    of one's own edit (it applies to the message that edit edits)."""
    if not text.strip():
        raise Refused("an edit needs text (to take a message back, delete it); nothing sent")
    ev = target.event
    if ev is not None and ev.type not in (MESSAGE, EDIT):
        raise Refused(f"{target.describe()} is not a message: only messages can be edited")
    if ev is not None and ev.type == EDIT:
        # An edit of an edit applies to the message it edits (PROTOCOL.md 18.4): the
        # rules are that message's (whose it is, whether it is deleted, its msgtype and
        # the text it shows), and the new edit names it, not a longer chain.
        target = _edited(target, ev)
        ev = target.event
    refuse_repeated(target.event_id, target.relations.repeated)
    if target.deleted:
        raise Refused(f"{target.describe()} was deleted: nothing to edit")
    _refuse_not_own(target, user_id, public_key, "edit")
    agg = target.aggregate
    latest = agg.latest if agg is not None else None
    # The msgtype shown now: the latest applied edit's, else the message's own.
    msgtype = latest.msgtype if latest is not None else ev.content.get("msgtype") if ev else None
    if not isinstance(msgtype, str) or msgtype not in EDITABLE_MSGTYPES:
        msgtype = "m.text"
    now = latest.body if latest is not None else None
    if (now if now is not None else ev.body if ev is not None else None) == text:
        return Plan(unchanged=Unchanged.SAME_TEXT)
    content = {"replaces": target.event_id, "new_content": {"body": text, "msgtype": msgtype}}
    return Plan(((EDIT, content),))


def _edited(target: Target, edit_event: Event) -> Target:
    """The message the edit ``target`` edits, as a target of its own. An edit read here
    that the room did not apply (someone else's, planted under this user's id, or one of
    a message that is not theirs) is refused: an edit of it would be judged against a
    message that is not the user's and ignored, reported as theirs. One's own edit still
    on its way to the storage names its message itself."""
    rel = target.relations
    original = rel.edit_of.get(target.event_id)
    if original is None:
        named = target_of(edit_event)
        named_agg = rel.of(named) if named is not None else None
        if named_agg is not None and named_agg.redacted is not None:
            raise Refused(f"{target.describe()} edits a deleted message: nothing to edit")
        if target.event_id in rel.positions:  # read here, and not applied
            raise Refused(
                f"{target.describe()} is an edit that readers ignore (not by its message's "
                "sender, or of a message not read here): edit the message itself"
            )
        if named is None:
            raise Refused(f"{target.describe()} names no message to edit")
        original = named
    given = target.edited
    if given is not None and given.event_id == original:
        event: Event | None = given
    else:
        position = rel.positions.get(original)
        event = target.rows[position].event if position is not None else None
    return replace(target, event_id=original, event=event, edited=None)


def delete(target: Target, user_id: str, public_key: str, reason: str | None = None) -> Plan:
    """Redact one's own message or reaction; ``reason`` (optional) goes with it."""
    reason = (reason or "").strip()
    if has_lone_surrogate(reason):
        raise Refused("the reason holds bytes that are not valid UTF-8 text; nothing sent")
    ev = target.event
    kind = ev.type if ev is not None else None
    if kind == MEMBER:
        raise Refused(
            f"{target.describe()} cannot be deleted: membership and keys cannot be taken "
            "back (leave the room instead)"
        )
    if kind in (REDACTION, TYPING):
        raise Refused(f"{target.describe()} cannot be deleted: there is nothing to undo")
    refuse_repeated(target.event_id, target.relations.repeated)
    _refuse_not_own(target, user_id, public_key, "delete")
    if target.deleted:
        return Plan(unchanged=Unchanged.DELETED)
    content: dict[str, Any] = {"redacts": target.event_id}
    if reason:
        content["reason"] = reason
    return Plan(((REDACTION, content),))


def disputed_note(target: Target, user_id: str) -> str | None:
    """What to tell ``user_id`` acting in a room where keys of more than one device claim
    their id (``Target.disputed``), else None."""
    if user_id not in target.disputed:
        return None
    return (
        f"keys of more than one device claim {user_id!r} in this room: a reader who has not "
        "confirmed which are yours trusts neither your messages nor this (they show as key "
        "changed); members who compared fingerprints with you see it"
    )


def _speaks_for(target: Target, user_id: str, sender_key: str, public_key: str) -> bool:
    """Whether every reader lets ``public_key`` act for ``user_id``'s message sent with
    ``sender_key``: verified for them here, and joined to that key by introductions both
    sides signed. A key this device pinned as its own, or one the person confirmed here,
    is verified on this device only: another reader who never pinned it would ignore
    the edit (a second device never introduced, whose own pin made it "the" key here)."""
    if public_key not in target.authorized.get(user_id, frozenset()):
        return False
    linked: dict[str, set[str]] = {}
    for sender, by, new in target.introductions:
        if sender == user_id:
            linked.setdefault(by, set()).add(new)
            linked.setdefault(new, set()).add(by)
    seen, todo = {sender_key}, [sender_key]
    while todo:
        for key in linked.get(todo.pop(), ()):
            if key not in seen:
                seen.add(key)
                todo.append(key)
    return public_key in seen


def _refuse_not_own(target: Target, user_id: str, public_key: str, verb: str) -> None:
    """Only the sender may edit or delete (anyone else's would be ignored and reported
    by every reader); from another device only once that device is verified for them."""
    ev = target.event
    if ev is None:
        return  # not read here: its sender is not known (every reader checks it)
    if ev.sender_id != user_id:
        raise Refused(
            f"{target.describe()} is not yours: only its sender can {verb} it "
            "(anyone else's would be ignored and reported by every reader)"
        )
    if ev.sender_key in (None, public_key):
        return
    if not _speaks_for(target, user_id, ev.sender_key, public_key):
        raise Refused(
            f"{target.describe()} was sent from another device, and this device's key is "
            f"not verified for {user_id!r} in this room: every reader would ignore this "
            f"{verb}. Do it from that device, or introduce this one (add-device there, "
            "accept-device here)."
        )
