"""Room state: who is in a room, which device keys they use, what they are called, and how
a membership event is put into words. Pure (no I/O, no Qt): the GUI and the CLI both read
members, names and membership lines from here, so they cannot disagree.

The app folds a room on the engine's state thread (``RoomState``, continued on appends)
and hands out what it says as an immutable ``Roster`` (members and devices, and the
display names as ``Names``) with each audit; a front end reads it and never folds.

Everything here is derived from the audit's verdicts (``Assessed``), never from raw
storage, and every string taken from an event is hostile: names go through
``display_name_safe``; keys are shown only when they are keys.

The display-name rule (PROTOCOL.md section 4.4, "Display names"): a user's display name is
the ``displayname`` of their latest *verified* ``join`` in display order, cleaned by
``display_name_safe`` and capped at ``NAME_LIMIT`` characters. A verified join without a
usable name keeps the previous one; no other membership, and no event that is not
verified (unsigned, key changed, broken chain), names anyone. Without a name the user id
is shown.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .audit import (
    DEVICE_ACCEPT_FIELD,
    DEVICE_ADD_FIELD,
    Assessed,
    AuditResult,
    Timeline,
    TrustState,
)
from .event import MEMBER, valid_key_text
from .findings import Kind
from .heap import gc_paused
from .mentions import MentionTargets
from .untrusted_text import (
    NAME_LIMIT,
    RoomIds,
    display_name_safe,
    one_line,
    shown_id,
    skeleton,
)

# Memberships that take a sender out of the member list.
GONE = frozenset({"leave", "ban", "kick"})
# Devices a member's statements alone (no acceptance: the key has not written) list per
# member; the rest are counted (``MemberRecord.unlisted``). One key can sign 100,000
# joins each naming a "device": listed, they froze the Members panel (red team rt64).
STATEMENT_DEVICES = 16

Confirmed = frozenset[tuple[str, str]]
"""What the user confirmed out of band (compared fingerprints): (sender id, key) pairs.
A confirmation is of a key *as someone's*: the same key signing as someone else, or
named as someone else's device, is not what the user compared."""

# What a membership event says, as a phrase after the sender's name or id.
_PHRASES = {
    "join": "joined the room",
    "leave": "left the room",
    "invite": "was invited",
    "ban": "was banned",
    "kick": "was removed",
}
_UNKNOWN_LIMIT = 40  # characters of an unknown membership word that are shown


def membership_text(
    content: Mapping[str, object], *, with_name: bool = False, claim: str = ""
) -> str:
    """The one wording of an ``m.room.member`` event, a phrase to put after who sent it
    ("joined the room", "left the room", "added a device (key AbCd…)"…).

    Never raises and never builds a word from the membership value: a membership this
    version does not know, or one that is not a string (only possible for what did not
    go through the parser, such as a cached row), is quoted, cleaned and capped.
    ``with_name`` adds the name a join claims (``as "Alice"``); that is the event's
    claim, not the user's display name (see ``display_name_set_by``). ``claim``: what
    ``statement_claim`` says of a statement naming a key that is not the sender's ("names
    your key as theirs"), said instead of "added a device"."""
    membership = content.get("membership")
    if not isinstance(membership, str):
        return "changed their membership (not readable)"
    phrase = _PHRASES.get(membership)
    if phrase is None:
        shown = one_line(membership, _UNKNOWN_LIMIT)
        return f"changed their membership to “{shown}”" if shown else "changed their membership"
    if membership == "join":
        if DEVICE_ADD_FIELD in content:
            what = claim or "added a device"
            phrase = f"{what} ({_key_label(content.get(DEVICE_ADD_FIELD))})"
        elif DEVICE_ACCEPT_FIELD in content:
            by = _key_label(content.get(DEVICE_ACCEPT_FIELD))
            phrase = f"accepted a new device (introduced by {by})"
        if with_name:
            name = display_name_safe(content.get("displayname"))
            if name:
                phrase += f' as "{name}"'
    return phrase


def _key_label(value: object) -> str:
    """A device key named in an event, shortened for reading; never the raw value when it
    is not a key (it could be any text the writer chose)."""
    if isinstance(value, str) and key_bytes(value) is not None:
        return f"key {value[:12]}…"
    return "a malformed key"


def statement_claim(
    sender_id: str,
    content: Mapping[str, object],
    claims: Mapping[str, str],
    own_user: str = "",
    own_key: str = "",
) -> str:
    """What a join naming a device (``add_device_key``) claims when the key is not the
    sender's to name: "names your key as theirs" (this device's own key, on another
    user's statement) or "names bob@…'s key as theirs" (``claims``: keys named by
    statements that write as another id in the room, ``Names.claims``); "" otherwise.
    Public keys can be copied from any room: such a statement makes no device of theirs."""
    added = content.get(DEVICE_ADD_FIELD)
    if content.get("membership") != "join" or not isinstance(added, str) or not added:
        return ""
    if own_key and added == own_key and sender_id != own_user:
        return "names your key as theirs"
    owner = claims.get(added)
    if owner and owner != sender_id:
        return f"names {shown_id(owner)}'s key as theirs"
    return ""


def key_bytes(key: str) -> bytes | None:
    """The 32 raw bytes of a ``sender_key``, or None when it is not one: the reader's own
    test (``valid_key_text``, strict base64), so a text is a key here exactly when an
    event may carry it as one."""
    return valid_key_text(key) if key else None


def display_name_set_by(item: Assessed) -> str:
    """The display name this event gives its sender under the rule in the module
    docstring, or "" when it gives none."""
    ev = item.event
    if (
        item.state is not TrustState.VERIFIED
        or ev.type != MEMBER
        or ev.content.get("membership") != "join"
    ):
        return ""
    return display_name_safe(ev.content.get("displayname"), NAME_LIMIT)


@dataclass(frozen=True, slots=True)
class Names:
    """The display names and sender ids of a room at one moment: what ``DisplayNames``
    folded, frozen (``DisplayNames.frozen``) so it can be handed to another thread and
    read there while the fold goes on. Same questions, same answers."""

    by_id: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    order: tuple[str, ...] = ()  # every sender id, first seen first
    left: frozenset[str] = frozenset()  # latest verified membership: a leave, kick or ban
    # Look-alike ids (sealed: nobody adds to it); equal when the fields above are.
    lookalikes: RoomIds = field(
        default_factory=lambda: RoomIds().sealed_copy(), compare=False, repr=False
    )
    # Keys a member's statement named as a device of theirs that write as another id in
    # the room: key -> that id (``statement_claim``; fed by ``RoomState``).
    claims: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # The mention targets made of these names, once per question (``mention_targets``).
    _targets: dict[tuple[Any, ...], MentionTargets] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @property
    def size(self) -> tuple[int, int]:
        """(senders, names) known."""
        return len(self.order), len(self.by_id)

    def members(self, *, with_left: bool = False) -> list[tuple[str, str]]:
        """(user id, display name or "") of every sender seen, first seen first; without
        ``with_left``, not those whose latest verified membership says they left (an
        unverified "leave" cannot take anyone off the list)."""
        left = frozenset() if with_left else self.left
        names = self.by_id
        return [(uid, names.get(uid, "")) for uid in self.order if uid not in left]

    def name(self, user_id: str) -> str:
        """The user's display name, "" when they have none."""
        return self.by_id.get(user_id, "")

    def called(self, user_id: str, given: Iterable[str] = ()) -> tuple[str, ...]:
        """What the user is called here: the names they gave themself, then this room's
        name for them; each once."""
        return tuple(dict.fromkeys(n for n in (*given, self.name(user_id)) if n))

    def mention_targets(
        self,
        own_user: str = "",
        own_names: tuple[str, ...] = (),
        written: Callable[[str], str] | None = None,
    ) -> MentionTargets:
        """Whom "@..." names among these members (``MentionTargets``), made once per
        question. Without ``own_user``: the members now (what a sent message's
        ``mentions`` field is made of, and the "@" list's rule). With it: every sender,
        those who left too, the user's own id and names (``own_names``) theirs first —
        how a message is read (its highlight, and whether it mentions the user: one
        reading, red team rt81); ``written``: as the text searched writes them."""
        key = (own_user, own_names, written)
        held = self._targets.get(key)
        if held is None:
            members = self.members(with_left=bool(own_user))
            held = self._targets[key] = MentionTargets.of(members, own_user, own_names, written)
        return held

    def shown(self, user_id: str) -> str:
        """What to show for the user: their display name, else their id."""
        return self.by_id.get(user_id) or user_id

    def warning(self, user_id: str) -> str | None:
        """Why the id (or the name it goes by) may imitate another sender's, or None."""
        return self.lookalikes.warning(user_id, self.by_id.get(user_id))


NO_NAMES = Names()


class DisplayNames:
    """The display-name rule folded over a room's events in display order, with the
    room's sender ids (for look-alike warnings). The caller feeds each event once."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self.ids = RoomIds()
        # Senders whose latest verified membership event is a leave, kick or ban.
        self._left: set[str] = set()
        self._frozen: Names | None = None  # the last ``frozen``, while nothing changed
        self._claims: dict[str, str] = {}  # ``Names.claims``

    def claim(self, key: str, owner: str) -> None:
        """A statement named ``key``, which writes as ``owner`` (not the statement's
        sender): ``Names.claims``."""
        if self._claims.get(key) != owner:
            self._claims[key] = owner
            self._frozen = None

    def add(self, item: Assessed) -> None:
        if item.state is TrustState.INVALID:
            return
        ev = item.event
        sender = ev.sender_id
        before = len(self.ids)
        self.ids.add(sender)
        changed = len(self.ids) != before
        name = display_name_set_by(item)
        if name and self._names.get(sender) != name:
            self._names[sender] = name
            changed = True
        if ev.type == MEMBER and item.state is TrustState.VERIFIED:
            membership = ev.content.get("membership")
            if membership == "join":
                if sender in self._left:
                    self._left.discard(sender)
                    changed = True
            elif membership in ("leave", "kick", "ban") and sender not in self._left:
                self._left.add(sender)
                changed = True
        if changed:
            self._frozen = None

    def add_sender(self, sender_id: str) -> None:
        """A shown row that is not a member event: its sender is known, nobody renamed
        (what ``add`` does with such a row)."""
        before = len(self.ids)
        self.ids.add(sender_id)
        if len(self.ids) != before:
            self._frozen = None

    def update(self, items: Iterable[Assessed]) -> None:
        if isinstance(items, Timeline):  # never invalid rows; names only from members
            for sender, item in items.senders():
                if item is None:
                    self.add_sender(sender)
                else:
                    self.add(item)
            return
        for item in items:
            self.add(item)

    def frozen(self) -> Names:
        """The fold so far as an immutable value; the same object again until the fold
        changes what it says (so a caller can tell "nothing changed" by identity)."""
        got = self._frozen
        if got is None:
            got = self._frozen = Names(
                MappingProxyType(dict(self._names)),
                tuple(self.ids.ids()),
                frozenset(self._left),
                self.ids.sealed_copy(),
                MappingProxyType(dict(self._claims)),
            )
        return got

    @property
    def size(self) -> tuple[int, int]:
        """(senders, names) known: changes as either grows (a cheap cache key)."""
        return len(self.ids), len(self._names)

    def members(self, *, with_left: bool = False) -> list[tuple[str, str]]:
        """(user id, display name or "") of every sender seen, first seen first; without
        ``with_left``, not those whose latest verified membership says they left (an
        unverified "leave" cannot take anyone off the list)."""
        left = set() if with_left else self._left
        return [(uid, self._names.get(uid, "")) for uid in self.ids.ids() if uid not in left]

    def name(self, user_id: str) -> str:
        """The user's display name, "" when they have none."""
        return self._names.get(user_id, "")

    def shown(self, user_id: str) -> str:
        """What to show for the user: their display name, else their id."""
        return self._names.get(user_id) or user_id

    def warning(self, user_id: str) -> str | None:
        """Why the id (or the name it goes by) may imitate another sender's, or None."""
        return self.ids.warning(user_id, self._names.get(user_id))


class DeviceState(enum.StrEnum):
    """How far a device key is trusted, strongest first."""

    CONFIRMED = "confirmed"  # the user compared its fingerprint out of band
    VERIFIED = "verified"  # pinned: first key seen, or introduced by a trusted device
    UNVERIFIED = "unverified"  # unsigned, or every event of it has a broken chain
    KEY_CHANGED = "key-changed"  # nothing trusted introduced this key
    DISPUTED = "disputed"  # several keys claim this person, none trusted (key-conflict)


def member_state(devices: Iterable[tuple[DeviceState, bool]]) -> DeviceState:
    """What one member's devices (state, signed) come to, worst news first: any key
    nobody introduced is what the user must see."""
    devices = list(devices)
    states = {state for state, _ in devices}
    if DeviceState.DISPUTED in states:
        return DeviceState.DISPUTED
    if DeviceState.KEY_CHANGED in states:
        return DeviceState.KEY_CHANGED
    signed = [state for state, is_signed in devices if is_signed]
    if signed and all(state is DeviceState.CONFIRMED for state in signed):
        return DeviceState.CONFIRMED
    if states & {DeviceState.VERIFIED, DeviceState.CONFIRMED}:
        return DeviceState.VERIFIED
    return DeviceState.UNVERIFIED


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device key of a member, as the audit saw it."""

    key: str  # standard base64 of the public key; "" for unsigned events
    number: int  # 1-based, in order of first appearance among the member's devices
    state: DeviceState
    events: int
    first_seen: int  # timestamp_ms; 0 when the device has not written yet
    last_seen: int
    name: str  # from the statement that introduced it ("device_name"), cleaned
    introduced_by: str  # the key whose verified statement introduced it
    reason: str  # the audit's sentence for the verdict on its newest event
    # The other sender id this key writes as in the room: a statement named someone
    # else's key as a device of this member's (public keys can be copied). Never theirs.
    speaks_for: str = ""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    user_id: str
    display_name: str  # under the rule; "" when they have none
    membership: str  # the last membership that counts ("" = never said)
    joined: bool  # False: wrote without a join (reference implementation)
    first_seen: int
    last_seen: int
    devices: tuple[DeviceRecord, ...]  # in order of first appearance
    id_warning: str | None  # why the id may imitate another (RoomIds.warning)
    # Keys their statements named as devices past ``STATEMENT_DEVICES`` that have not
    # written: counted, not listed ("and N more named by statements alone").
    unlisted: int = 0

    @property
    def present(self) -> bool:
        """Still a member: never left, was banned or removed."""
        return self.membership not in GONE

    @property
    def shown_name(self) -> str:
        return self.display_name or self.user_id

    @property
    def state(self) -> DeviceState:
        return member_state((d.state, bool(d.key)) for d in self.devices)


def _shown(member: MemberRecord) -> tuple[str, str]:
    """The order members are listed in: by what is shown for them, then by id."""
    return member.shown_name.casefold(), member.user_id


def conflicted_senders(result: AuditResult) -> frozenset[str]:
    """The sender ids of the audit's ``key-conflict`` findings (each names the event it
    was found at). Conflicts are decided by full audits only, so appends never change it."""
    at = {
        (f.event_id, f.path, f.line)
        for f in result.findings
        if f.kind is Kind.KEY_CONFLICT and f.event_id
    }
    if not at:
        return frozenset()
    return frozenset(
        a.event.sender_id for a in result.timeline if (a.event.event_id, a.path, a.line) in at
    )


@dataclass(slots=True)
class _DeviceStats:
    events: int = 0
    first_seen: int = 0
    last_seen: int = 0
    last_state: TrustState | None = None
    last_reason: str = ""
    ever_verified: bool = False
    name: str = ""
    introduced_by: str = ""
    order: int = 0  # first appearance, for a stable device order
    named_only: bool = False  # listed by a statement alone: has not written yet


@dataclass(slots=True)
class _SenderStats:
    first_seen: int = 0
    last_seen: int = 0
    membership: str = ""
    joined: bool = False
    devices: dict[str, _DeviceStats] = field(default_factory=dict)
    named_only: int = 0  # devices listed by a statement alone (``_DeviceStats.named_only``)
    unlisted: set[str] = field(default_factory=set)  # named past the cap, not written


@dataclass(frozen=True, slots=True)
class Roster:
    """A room's state at one moment, made by the member fold (``RoomState.roster``):
    who is in it, their devices, what everyone is called. Immutable, so the engine's
    state thread makes it and a front end only reads it (the GUI thread never folds a
    timeline). The device states are the audit's; what the user confirmed out of band is
    applied by ``members`` (it comes from the user's own action, not from the room)."""

    names: Names = NO_NAMES
    # Everyone ever seen (also who left), sorted by what is shown for them, then id.
    everyone: tuple[MemberRecord, ...] = ()
    disputed: frozenset[str] = frozenset()  # ``RoomState.disputed`` when it was made

    def members(
        self, confirmed: Iterable[tuple[str, str]] = frozenset(), *, everyone: bool = False
    ) -> list[MemberRecord]:
        """Current members (``everyone``: also those who left or were removed), sorted
        by what is shown for them; ``confirmed`` are the (sender id, key) pairs the user
        verified out of band: those devices say so, whatever the audit said. A key
        confirmed as another person's confirms nothing here (``Confirmed``)."""
        by_user: dict[str, set[str]] = {}
        for user, key in confirmed:
            by_user.setdefault(user, set()).add(key)
        out: list[MemberRecord] = []
        for member in self.everyone:
            if not everyone and not member.present:
                continue
            mine = by_user.get(member.user_id)
            if mine and any(d.key in mine for d in member.devices if d.key):
                devices = tuple(
                    replace(d, state=DeviceState.CONFIRMED)
                    if d.key and d.key in mine and not d.speaks_for
                    else d
                    for d in member.devices
                )
                member = replace(member, devices=devices)
            out.append(member)
        return out

    def display_name(self, user_id: str) -> str:
        return self.names.name(user_id)

    def doubted_keys(self) -> frozenset[tuple[str, str]]:
        """The (sender id, key) pairs of devices this room does not trust for that sender
        (key changed, or disputed): another room where the same key is the sender's
        only one, and so trusted on first use there, is told so (``Controller``)."""
        doubt = (DeviceState.KEY_CHANGED, DeviceState.DISPUTED)
        return frozenset(
            (member.user_id, d.key)
            for member in self.everyone
            for d in member.devices
            if d.key and d.state in doubt
        )

    def keys(self) -> frozenset[tuple[str, str]]:
        """Every (sender id, key) pair that wrote in the room (each member's devices with
        a key): what another room's doubts are looked up for (``doubted_elsewhere_note``)."""
        return frozenset(
            (member.user_id, d.key) for member in self.everyone for d in member.devices if d.key
        )

    def others_as(self, user_id: str, own_key: str) -> tuple[DeviceRecord, ...]:
        """The devices that wrote as ``user_id`` with a key other than ``own_key`` and
        that nobody vouched for: no key of theirs this device trusts introduced them,
        nor did this device confirm them (an unsigned event's "device" too). For the user
        of ``own_key``: someone writes as them here, or a device of theirs they never
        introduced — members who have not compared fingerprints cannot tell which."""
        trusted = (DeviceState.VERIFIED, DeviceState.CONFIRMED)
        for member in self.everyone:
            if member.user_id == user_id:
                return tuple(
                    d for d in member.devices if d.key != own_key and d.state not in trusted
                )
        return ()


NO_ONE = Roster()


def others_as_note(user_id: str, keys: int) -> tuple[str, str]:
    """What to tell the user of ``user_id`` when ``keys`` device keys nobody trusts wrote
    as them (``Roster.others_as``), as a headline and what it means for their own
    messages; the app's banner and ``history`` say the same."""
    which = "a key" if keys == 1 else f"{keys} keys"
    return (
        f"Someone wrote as you ({user_id}) in this room with {which} this device does not trust.",
        "Unless it is a device of yours that you never introduced, someone is writing in "
        "your name: members who have not compared fingerprints with you may trust neither "
        "those messages nor yours.",
    )


def with_doubt(warning: str | None, sender_id: str, where: str | None) -> str | None:
    """A sender's warning (``Names.warning``: an id that may imitate another's), and what
    a message signed by a key another room does not trust for its sender says
    (``Roster.doubted_keys`` of that room; ``where``: its name and id as shown, None when
    no room doubts it): the timeline's row and a search result say the same."""
    if where is None:
        return warning
    elsewhere = doubted_elsewhere_note(sender_id, where)
    return f"{warning}; {elsewhere}" if warning else elsewhere


class RoomState:
    """The member fold over an audited timeline, in display order.

    ``add`` continues the fold with the audit's appends, so a new event costs O(1), not a
    walk over the history. Events already folded are skipped: a caller may hand the same
    event again in an append (and a replayed event id is counted once per signing key,
    as a full fold counts it: each key's copy is a row). ``roster`` hands out what the
    fold says as an immutable value, remade only for the members the events since the
    last one touched."""

    def __init__(self, *, dedupe: bool = True) -> None:
        """``dedupe=False``: for a caller that hands each row of one audit's timeline
        exactly once (the engine folds by position):
        no set of every event id folded (~32 MB at a million events)."""
        self._senders: dict[str, _SenderStats] = {}
        # (event id, signing key): an id signed by two keys is two rows (section 6).
        self._seen: set[tuple[str, str]] | None = set() if dedupe else None
        self._order = 0
        self.names = DisplayNames()
        # Senders the audit found in a key conflict: their keys are "disputed", not
        # merely "changed" (``conflicted_senders`` of the latest full audit).
        self.disputed: frozenset[str] = frozenset()
        self._roster: Roster | None = None  # the last one handed out
        self._records: dict[str, MemberRecord] = {}  # its records by user id
        self._sorted: list[MemberRecord] = []  # the same, in the order shown (``_shown``)
        self._touched: set[str] = set()  # senders folded since it was made
        self._known = 0  # sender ids it was made with (``names.ids``, first seen first)
        # Whose look-alike warning a new sender id can change, by skeleton: the ids that
        # are not plain (they imitate the first plain one), and the members whose
        # display name looks like it (``RoomIds.warning``).
        self._suspect: dict[str, list[str]] = {}
        self._named_like: dict[str, set[str]] = {}
        self._name_key: dict[str, str] = {}  # user id -> its display name's skeleton
        # The sender id each key first wrote as (a shown row), and the members whose
        # statements listed a key as their device: a key that writes as someone else is
        # not theirs (``DeviceRecord.speaks_for``), also when it writes after the statement.
        self._speaker: dict[str, str] = {}
        self._named_by: dict[str, set[str]] = {}

    @classmethod
    def of(cls, result: AuditResult) -> RoomState:
        """The state after a full audit."""
        state = cls()
        state.add(result.timeline)
        state.disputed = conflicted_senders(result)
        return state

    def add(self, items: Iterable[Assessed]) -> None:
        """Fold ``items`` (display order). The cyclic collector pauses meanwhile
        (``heap.gc_paused``): a fold of 50,000 new senders allocates a few hundred
        thousand small acyclic objects, and the collections they set off rescanned
        the room's heap for a third of the fold's time."""
        with gc_paused():
            self._add_all(items)

    def _add_all(self, items: Iterable[Assessed]) -> None:
        if isinstance(items, Timeline):  # only member events are made into rows
            for event_id, sender_id, key, ts, state, reason, row in items.member_rows():
                if row is not None:
                    self._add(row)
                elif self._count(event_id, sender_id, key, ts, state, reason) is not None:
                    self.names.add_sender(sender_id)
            return
        for item in items:
            self._add(item)

    def _device(self, sender: _SenderStats, key: str) -> _DeviceStats:
        stats = sender.devices.get(key)
        if stats is None:
            self._order += 1
            stats = sender.devices[key] = _DeviceStats(order=self._order)
        return stats

    def knows(self, sender_id: str) -> bool:
        """Whether a row of ``sender_id`` was folded (listed among the senders)."""
        return sender_id in self._senders

    def _count(
        self,
        event_id: str,
        sender_id: str,
        key: str | None,
        ts: int,
        state: TrustState,
        reason: str,
    ) -> _SenderStats | None:
        """Count one row for its sender and device; None when it does not count (not
        shown, or folded already)."""
        if state is TrustState.INVALID:  # never shown, never counted
            return None
        if self._seen is not None:
            copy = (event_id, key or "")
            if copy in self._seen:
                return None
            self._seen.add(copy)
        self._touched.add(sender_id)
        sender = self._senders.get(sender_id)
        if sender is None:
            sender = self._senders[sender_id] = _SenderStats(first_seen=ts)
        sender.first_seen = min(sender.first_seen, ts)
        sender.last_seen = max(sender.last_seen, ts)
        device = self._device(sender, key or "")
        if device.named_only:  # a statement listed it; now it writes
            device.named_only = False
            sender.named_only -= 1
        if key:
            if key not in self._speaker:
                self._speaker[key] = sender_id
                for named in self._named_by.get(key, ()):
                    if named != sender_id:  # their statement named another's key
                        self._touched.add(named)
                        self.names.claim(key, sender_id)
            if sender.unlisted:
                sender.unlisted.discard(key)
        if device.events == 0:
            device.first_seen = ts
        device.events += 1
        device.first_seen = min(device.first_seen, ts)
        device.last_seen = max(device.last_seen, ts)
        device.last_state = state
        device.last_reason = reason
        device.ever_verified |= state is TrustState.VERIFIED
        return sender

    def _add(self, item: Assessed) -> None:
        ev = item.event
        sender = self._count(
            ev.event_id, ev.sender_id, ev.sender_key, ev.timestamp_ms, item.state, item.reason
        )
        if sender is None:
            return
        self.names.add(item)
        if ev.type != MEMBER:
            return
        membership = ev.content.get("membership")
        if not isinstance(membership, str):
            return
        if membership == "join":
            # Any shown join lists the sender: an unintroduced key joining is exactly
            # what the user must be able to see (its device is then "key changed").
            sender.joined = True
            sender.membership = "join"
        elif item.state is not TrustState.KEY_CHANGED:
            # A key nobody introduced must not be able to make someone look gone.
            sender.membership = membership
        if item.state is not TrustState.VERIFIED or membership != "join":
            return
        added = ev.content.get(DEVICE_ADD_FIELD)
        if not isinstance(added, str) or not added or added == ev.sender_key:
            return
        if key_bytes(added) is None:
            return  # names no device: the timeline says "a malformed key"
        owner = self._speaker.get(added)
        if owner is not None and owner != ev.sender_id:
            self.names.claim(added, owner)  # someone else's key, named as theirs
        new = sender.devices.get(added)
        if new is None:
            if sender.named_only >= STATEMENT_DEVICES:
                sender.unlisted.add(added)  # counted, not listed
                return
            new = self._device(sender, added)
            new.named_only = True
            sender.named_only += 1
            self._named_by.setdefault(added, set()).add(ev.sender_id)
        new.introduced_by = ev.sender_key or ""
        device_name = display_name_safe(ev.content.get("device_name"), NAME_LIMIT)
        if device_name:
            new.name = device_name
        # Its state comes from its own events only: a statement authorizes nothing
        # until the new key accepts it (section 7), and anyone verified can name any
        # key, another person's real one included.
        if new.events == 0:
            new.last_reason = (
                "named by a statement of another device of theirs; this key has not "
                "written yet, so it has not accepted"
            )

    def display_name(self, user_id: str) -> str:
        return self.names.name(user_id)

    def roster(self) -> Roster:
        """What the fold says now, immutable. The last one again when nothing was folded
        since; else only the members it must are made anew: those folded since, and those
        whose look-alike warning a new sender id changes (so a room of thousands of
        members does not remake them all for each newcomer). All of them when the
        disputed keys changed (a full audit). The collector pauses, as in ``add``."""
        with gc_paused():
            return self._roster_now()

    def _roster_now(self) -> Roster:
        names = self.names.frozen()
        old = self._roster
        if (
            old is not None
            and not self._touched
            and old.names is names
            and old.disputed == self.disputed
        ):
            return old
        if old is None or old.disputed != self.disputed:
            self._remake_all(names)
        else:
            affected = set(self._touched)
            if names is not old.names:
                affected |= self._lookalikes_changed()
            for user_id in affected:
                self._remake(user_id, names)
        self._touched.clear()
        self._roster = Roster(names, tuple(self._sorted), self.disputed)
        return self._roster

    def _remake_all(self, names: Names) -> None:
        ids = self.names.ids
        self._records = {u: self._member(u, s, names) for u, s in self._senders.items()}
        self._sorted = sorted(self._records.values(), key=_shown)
        self._known = len(ids)
        self._suspect, self._named_like, self._name_key = {}, {}, {}
        for user_id in ids.ids():
            if not ids.plain(user_id):
                self._suspect.setdefault(ids.skeleton_of(user_id), []).append(user_id)
        for record in self._sorted:
            self._index_name(record)

    def _remake(self, user_id: str, names: Names) -> None:
        old = self._records.get(user_id)
        new = self._member(user_id, self._senders[user_id], names)
        if old is not None:
            at = bisect.bisect_left(self._sorted, _shown(old), key=_shown)
            del self._sorted[at]
        bisect.insort(self._sorted, new, key=_shown)
        self._records[user_id] = new
        self._index_name(new)

    def _index_name(self, record: MemberRecord) -> None:
        user_id = record.user_id
        key = skeleton(record.display_name) if record.display_name else ""
        before = self._name_key.get(user_id, "")
        if key == before:
            return
        if before:
            self._named_like[before].discard(user_id)
        if key:
            self._named_like.setdefault(key, set()).add(user_id)
            self._name_key[user_id] = key
        else:
            self._name_key.pop(user_id, None)

    def _lookalikes_changed(self) -> set[str]:
        """The members whose look-alike warning the sender ids new since the last roster
        can change (``RoomIds.warning`` reads of a skeleton only its first two ids and its
        first two plain ones)."""
        ids = self.names.ids
        new = ids.ids()[self._known :]
        self._known = len(ids)
        for user_id in new:
            if not ids.plain(user_id):
                self._suspect.setdefault(ids.skeleton_of(user_id), []).append(user_id)
        out: set[str] = set()
        for user_id in new:
            key = ids.skeleton_of(user_id)
            head = ids.first_two(key)
            if user_id in head:  # who the others look like, or whose id a name looks like
                out.update(head)
                out.update(self._named_like.get(key, ()))
            if ids.first_plain(key) == user_id:  # the ids not plain imitate it now
                out.update(self._suspect.get(key, ()))
            if ids.second_plain(key) == user_id:  # the first plain one is marked now
                out.add(user_id)
                out.add(ids.first_plain(key) or user_id)
        return out

    def members(
        self, confirmed: Iterable[tuple[str, str]] = frozenset(), *, everyone: bool = False
    ) -> list[MemberRecord]:
        """Current members (``everyone``: also those who left or were removed), sorted
        by what is shown for them; ``confirmed`` are the (sender id, key) pairs the user
        verified out of band (``Roster.members``)."""
        return self.roster().members(confirmed, everyone=everyone)

    def _member(self, user_id: str, sender: _SenderStats, names: Names) -> MemberRecord:
        ordered = sorted(sender.devices.items(), key=lambda kv: kv[1].order)
        devices = (
            self._record(user_id, key, stats, n) for n, (key, stats) in enumerate(ordered, 1)
        )
        return MemberRecord(
            user_id,
            names.name(user_id),
            sender.membership,
            sender.joined,
            sender.first_seen,
            sender.last_seen,
            tuple(devices),
            names.warning(user_id),
            len(sender.unlisted),
        )

    def _record(self, user_id: str, key: str, stats: _DeviceStats, number: int) -> DeviceRecord:
        if stats.last_state is TrustState.KEY_CHANGED:
            disputed = bool(key) and user_id in self.disputed
            state = DeviceState.DISPUTED if disputed else DeviceState.KEY_CHANGED
        elif stats.ever_verified:
            state = DeviceState.VERIFIED
        else:
            state = DeviceState.UNVERIFIED
        owner = self._speaker.get(key, user_id) if key else user_id
        speaks_for = owner if owner != user_id else ""
        reason = stats.last_reason
        if speaks_for:
            state = DeviceState.UNVERIFIED if state is DeviceState.VERIFIED else state
            reason = (
                f"named by a statement of theirs, but this key writes as "
                f"{shown_id(speaks_for)} in this room: it is not a device of theirs"
            )
        return DeviceRecord(
            key,
            number,
            state,
            stats.events,
            stats.first_seen,
            stats.last_seen,
            stats.name,
            stats.introduced_by,
            reason,
            speaks_for,
        )


def doubted_elsewhere_note(sender_id: str, room: str) -> str:
    """What a row signed by a key another room of the storage does not trust for its
    sender says (``Roster.doubted_keys`` there; ``room``: that room's name and id, as
    the app labels it): the timeline's, a search result's and the app's export's words."""
    return (
        f"the key that signed this is not trusted for {shown_id(sender_id)} in the room "
        f"{room}: compare fingerprints in Members"
    )
