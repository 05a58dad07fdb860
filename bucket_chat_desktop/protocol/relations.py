"""Relations between events: replies and threads, reactions, edits and redactions.

Pure: fed the shown rows of an audit (display order, each with its trust state), it
decides which relation events apply and what each target then looks like. Every client
that follows PROTOCOL.md section 18 comes to the same result from the same rows:

- A relation whose target is not (yet) among the rows *waits*: it is not an error, and it
  applies once its target is read.
- A target in another room (the event id's room part differs) is a finding
  (``relation-cross-room``); the relation is ignored.
- An edit or redaction applies only when it is the target's sender's: the same
  ``sender_id`` and, for a signed target, the same key or a key verified for that sender
  (their other device). An unsigned or unintroduced key cannot speak for a signed
  message. Otherwise it is ignored and reported (``relation-not-sender``).
- An edit of an edit applies to the original; the latest applied edit (display order)
  gives the text. A redacted event's edits and reactions go with it. An edit of a file or
  image message (``m.file``, ``m.image``) is refused (``relation-invalid``): its card shows
  the file, which no edit's text may replace.
- A reaction counts once per sender and reaction text. Every aggregate keeps the trust
  state of each event it is made of: a chip says which of its senders are unverified, an
  edited message is no more trusted than its least trusted applied edit.
- ``m.room.typing`` is never a row and never a finding (section 18.6).

Content is never encrypted today; the rules read only ``type``, the target id, the
sender and the trust state, plus the reaction text, the edit's ``new_content`` and the
``msgtype`` of the message an edit targets, so a
later encrypted form can keep the target id in the clear and carry the rest sealed.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from array import array
from bisect import bisect_right, insort
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from heapq import merge
from typing import Any, NamedTuple, Protocol, runtime_checkable

from .attachments import is_file_message
from .event import MAX_ID_BYTES, MEMBER, MESSAGE, Event, id_size
from .findings import Finding, Kind
from .heap import gc_paused
from .trial import on_trial
from .untrusted_text import BLANK_LETTERS

REACTION = "m.room.reaction"
EDIT = "m.room.edit"
REDACTION = "m.room.redaction"
TYPING = "m.room.typing"

# Types that never make a row of their own in a timeline.
HIDDEN_TYPES = frozenset({REACTION, EDIT, REDACTION, TYPING})
# Relations that still act when another key signed something under their own id: each
# acts only for its own sender's message (section 18.4), so the copies cannot be
# confused. A reaction counts for whoever signed it and is ignored then (18.1).
_OWN_ID_MAY_REPEAT = frozenset({EDIT, REDACTION})
# The content field naming the target, per relation type.
TARGET_FIELD = {REACTION: "relates_to", EDIT: "replaces", REDACTION: "redacts"}

MAX_REACTION_CHARS = 64  # one emoji sequence or a short word, not a message
MAX_EDIT_HOPS = 16  # an edit of an edit of ... (a loop or a very long chain stops here)
MAX_THREAD_HOPS = 64  # a reply's way up to its thread root
EDITABLE_MSGTYPES = frozenset({"m.text", "m.notice", "m.emote"})
EDIT_OF_FILE = "an edit of a file or image message (a file is sent again, never edited)"
MAX_REASON_CHARS = 1_000  # of a redaction's reason: what is kept and shown

# Trust states as they come from the audit, ordered from best to worst.
_RANK = {"verified": 0, "unverified": 1, "key-changed": 2, "invalid": 3}


def worst(*states: str) -> str:
    """The least trusted of ``states`` (an aggregate is as trusted as its worst part)."""
    return max(states, key=lambda s: _RANK.get(s, 3))


# A reaction row verified only on trial, while older history loads (``Row.trial``), as
# the reaction rules rank a sender's reactions to pick their best: below a final
# "verified", above "unverified". Never leaves this module: a ``Reactor`` says
# "verified" and ``provisional`` (``_reactor``).
_ON_TRIAL = "verified, on trial"
_REACTOR_RANK = {"verified": 0, _ON_TRIAL: 1, "unverified": 2, "key-changed": 3, "invalid": 4}


def _reacted(r: Row) -> str:
    """A reaction row's verdict as a reactor's best is picked from."""
    return _ON_TRIAL if r.trial else r.state


def _reactor_rank(verdict: str) -> int:
    return _REACTOR_RANK.get(verdict, 4)


def _reactor(sender_id: str, verdict: str, event_ids: Sequence[str]) -> Reactor:
    if verdict == _ON_TRIAL:
        return Reactor(sender_id, "verified", tuple(event_ids), provisional=True)
    return Reactor(sender_id, verdict, tuple(event_ids))


class Row(NamedTuple):
    """What the rules read of one shown row."""

    position: int  # in the timeline the rows came from
    event: Event
    state: str
    path: str | None = None  # where the shown copy was read (for findings)
    line: int | None = None
    # Verified only on trial, while older history loads (``trial.on_trial``: a key
    # nobody introduced yet, perhaps an impostor's): not a final verdict.
    trial: bool = False


@dataclass(frozen=True, slots=True)
class Reactor:
    sender_id: str
    state: str  # the best trust state among this sender's reactions with this text
    event_ids: tuple[str, ...]  # their reaction events (removing ours redacts each)
    # That best state is "verified" only on trial, while older history loads: none of
    # these reactions was written by a key known to be this sender's (a key nobody
    # introduced yet, perhaps an impostor's). Not final, and not theirs to show as
    # theirs or to take back until the history is read (section 18.3).
    provisional: bool = False


@dataclass(frozen=True, slots=True)
class ReactionChip:
    key: str  # the reaction text as written (NFC)
    reactors: tuple[Reactor, ...]  # first reaction first

    @property
    def count(self) -> int:
        return len(self.reactors)

    @property
    def state(self) -> str:
        return worst(*(r.state for r in self.reactors))

    @property
    def all_verified(self) -> bool:
        """Every reactor's state is verified (some perhaps only on trial: ``final``)."""
        return all(r.state == "verified" for r in self.reactors)

    @property
    def final(self) -> bool:
        """No reactor is verified only on trial (``Reactor.provisional``): what the chip
        says of them stands once older history is read, as a row's verdict does."""
        return not any(r.provisional for r in self.reactors)

    def by(self, sender_id: str) -> Reactor | None:
        for r in self.reactors:
            if r.sender_id == sender_id:
                return r
        return None


@dataclass(frozen=True, slots=True)
class Edit:
    event_id: str
    timestamp_ms: int
    state: str
    body: str
    msgtype: str
    # Where the copy applied was read (its row's): which copy a note of a front end's
    # is of (an id can be signed twice, section 18.1). None: the rows did not say.
    path: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Redacted:
    event_id: str  # the redaction event
    timestamp_ms: int
    state: str
    reason: str | None
    path: str | None = None  # where the copy applied was read (as ``Edit``'s)
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Aggregate:
    """What relations say about one event."""

    event_id: str
    edits: tuple[Edit, ...] = ()  # applied, in display order: the latest gives the text
    redacted: Redacted | None = None
    reactions: tuple[ReactionChip, ...] = ()
    thread: tuple[str, ...] = ()  # for a thread root: every reply under it, display order

    @property
    def latest(self) -> Edit | None:
        return self.edits[-1] if self.edits else None

    def state(self, own_state: str) -> str:
        """The trust state to show for the target: no better than its applied edits."""
        return worst(own_state, *(e.state for e in self.edits)) if self.edits else own_state

    def shown_state(self, own_state: str) -> str:
        """``state``, and for a deleted target no better than its redaction either (one
        badge for the row, as the CLI and the export show it)."""
        state = self.state(own_state)
        return worst(state, self.redacted.state) if self.redacted is not None else state


@dataclass(frozen=True, slots=True)
class Relations:
    """The relations of one audit's rows. Never changed once made (safe to hand to a
    front end on another thread)."""

    room_id: str
    aggregates: Mapping[str, Aggregate] = field(default_factory=dict)
    # Positions (in the timeline fed) of rows that are not shown as messages of their
    # own: relation events and typing notices. Sorted.
    hidden: Sequence[int] = field(default_factory=lambda: array("q"))
    # Reply event id -> its thread root's event id.
    thread_root: Mapping[str, str] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    waiting: int = 0  # relations whose target is not among the rows (yet)
    # Timeline position of every relation event, reply and target read (a thread's
    # replies, a quoted parent, an edit's original): where a front end finds their rows.
    positions: Mapping[str, int] = field(default_factory=dict)
    # The target ids those waiting relations name: a row with one of these ids changes
    # the relations when it arrives; any other plain row does not.
    waiting_for: frozenset[str] = frozenset()
    # Applied edit id -> the message it edits (search finds a message by its edits).
    edit_of: Mapping[str, str] = field(default_factory=dict)
    # What ``build`` read of the rows, for ``extended`` (never read by front ends).
    read: _Read | None = field(default=None, compare=False, repr=False)

    def of(self, event_id: str) -> Aggregate | None:
        return self.aggregates.get(event_id)

    @property
    def repeated(self) -> frozenset[str]:
        """Event ids shown more than once (signed by more than one device key, section 6
        step 1): they take no relations, and a reply to one quotes nothing (ambiguous)."""
        return self.read.repeated if self.read is not None else frozenset()

    # Shown rows <-> timeline positions, in O(log hidden).

    def shown_count(self, total: int) -> int:
        return total - len(self.hidden)

    def position_of(self, row: int) -> int:
        """The timeline position of the ``row``-th shown row (0-based)."""
        hidden = self.hidden
        lo, hi = row, row + len(hidden)
        while lo < hi:  # the smallest p with p - hidden_at_or_before(p) == row, p shown
            mid = (lo + hi) // 2
            if mid - bisect_right(hidden, mid) < row:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def row_of(self, position: int) -> int | None:
        """The shown row of a timeline position, None when that position is hidden."""
        i = bisect_right(self.hidden, position)
        if i and self.hidden[i - 1] == position:
            return None
        return position - i


def applied(rel: Relations, ev: Event, ids: Collection[str] | None = None) -> bool:
    """Whether this copy of a relation event took effect (its target shows it);
    ``ids``: ``applied_ids(rel)``, made once by a caller that asks of many.

    By id, but for an id shown more than once (another key signed something under it,
    section 18.1): then each copy is judged as itself — an edit by its text on the message
    it names, a redaction by the message it names — so a copy planted under the id of an
    applied edit or deletion is never said to be applied, nor the other way round."""
    if ev.type not in TARGET_FIELD:
        return False
    if ev.event_id not in rel.repeated:
        return ev.event_id in (applied_ids(rel) if ids is None else ids)
    target = target_of(ev)
    agg = rel.of(target) if target is not None else None
    if agg is None:
        return False
    if ev.type == REDACTION:
        return agg.redacted is not None and agg.redacted.event_id == ev.event_id
    if ev.type == EDIT:
        text = edit_content(ev)
        return text is not None and any(
            e.event_id == ev.event_id and (e.body, e.msgtype) == text for e in agg.edits
        )
    return False  # a reaction under a taken id is ignored (section 18.1)


def applied_ids(rel: Relations) -> frozenset[str]:
    """The ids of the relation events that took effect (see ``applied`` for an id shown
    more than once)."""
    out: set[str] = set()
    for agg in rel.aggregates.values():
        out.update(e.event_id for e in agg.edits)
        if agg.redacted is not None:
            out.add(agg.redacted.event_id)
        for chip in agg.reactions:
            for reactor in chip.reactors:
                out.update(reactor.event_ids)
    return frozenset(out)


def own_reaction(chip: ReactionChip, user_id: str) -> Reactor | None:
    """``user_id``'s reactions in ``chip`` when at least one of them is verified (written
    by a key verified for them) and not only on trial: theirs to show as theirs and to
    take back. Anyone can write an unsigned reaction, or one signed by a key of their own,
    under another's id: it counts (marked unverified), but it is not that person's
    reaction. Nor, while older history loads, is one whose key is only taken on trial
    (``Reactor.provisional``): an impostor's key is taken so until the history that
    exposes it is read, and the app's own key and every key known to be the user's are
    pinned, never on trial."""
    reactor = chip.by(user_id)
    if reactor is None or reactor.state != "verified" or reactor.provisional:
        return None
    return reactor


def verified_reactions(reactor: Reactor, rel: Relations, timeline: Sequence[Any]) -> list[str]:
    """The reaction events of ``reactor`` whose own verdict is verified, and final
    (``timeline``: the rows ``rel`` was built from, ``audit.Assessed`` or ``Row``).
    Taking back one's reaction redacts these only: a member who planted 100,000
    reactions under your id would otherwise have your one click write 100,000
    redactions — signed by an unintroduced key, or by one only on trial while older
    history loads."""
    out = []
    for event_id in reactor.event_ids:
        position = rel.positions.get(event_id)
        if position is None:
            continue
        row = as_row(position, timeline[position])
        if row.state == "verified" and not row.trial:
            out.append(event_id)
    return out


def target_of(ev: Event) -> str | None:
    """The event id a relation event points at, or None (not a relation, or malformed)."""
    name = TARGET_FIELD.get(ev.type)
    if name is None:
        return None
    target = ev.content.get(name)
    # Longer than an event id can be (section 12): it names nothing, ever.
    return target if isinstance(target, str) and 0 < id_size(target) <= MAX_ID_BYTES else None


def redaction_reason(content: Mapping[str, Any]) -> str | None:
    """A redaction's reason as kept and shown: its first ``MAX_REASON_CHARS``; None when
    there is none (a reason is a sentence, not a place to park a quarter megabyte)."""
    reason = content.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return None
    return reason[:MAX_REASON_CHARS]


def relation_content(event_type: str, content: Mapping[str, Any]) -> dict[str, Any]:
    """What the rules read of a relation's content, and nothing else, for a copy that
    keeps no bodies (``audit.RoomLedger(keep_bodies=False)``). Writers MAY add fields,
    so a hostile one pads a reaction to the line limit (256 KiB); kept whole, 800 such
    reactions held 200 MB in the app that keeps no message body at all. ``build`` comes
    to the same result from this as from the whole content. Of a message, the rules read
    only whether it announces a file (an edit of one is refused): its ``msgtype`` then."""
    kept: dict[str, Any] = {}
    if event_type == MESSAGE:
        if is_file_message(content):
            kept["msgtype"] = content["msgtype"]
        return kept
    name = TARGET_FIELD.get(event_type)
    if name is None:
        return kept
    target = content.get(name)
    if isinstance(target, str) and id_size(target) <= MAX_ID_BYTES:
        kept[name] = target
    if event_type == REACTION:
        text = content.get("reaction")
        if isinstance(text, str) and len(text) <= 4 * MAX_REACTION_CHARS:
            kept["reaction"] = text
    elif event_type == EDIT:
        new = content.get("new_content")
        if isinstance(new, Mapping):
            kept["new_content"] = {k: new[k] for k in ("body", "msgtype") if k in new}
    elif event_type == REDACTION:
        reason = redaction_reason(content)
        if reason is not None:
            kept["reason"] = reason
    return kept


def reaction_key(text: object) -> str | None:
    """The reaction text as counted: NFC, surrounding spaces removed; None if unusable."""
    if not isinstance(text, str) or len(text) > 4 * MAX_REACTION_CHARS:
        return None
    return _reaction_key(text)


# Controls and format characters (bidi overrides), and the line breaks that are not
# controls: U+2028 LINE SEPARATOR (Zl) and U+2029 PARAGRAPH SEPARATOR (Zp) broke a chip
# into lines, clipped to a sliver of an emoji that passed for the plain one.
_NOT_IN_A_CHIP = frozenset({"Cc", "Cf", "Zl", "Zp"})


@functools.lru_cache(maxsize=4096)  # a room uses a few dozen texts, thousands of times
def _reaction_key(text: str) -> str | None:
    key = unicodedata.normalize("NFC", text.strip())
    if not key or len(key) > MAX_REACTION_CHARS or "\n" in key:
        return None
    if any(unicodedata.category(ch) in _NOT_IN_A_CHIP and ch not in "\u200d\ufe0f" for ch in key):
        return None  # controls, bidi overrides and line breaks have no place in a badge
    if not any(unicodedata.category(ch)[0] in "LNPS" and ch not in BLANK_LETTERS for ch in key):
        # only joiners, selectors or marks, or letters that are drawn as nothing (a
        # braille blank, Hangul fillers): a chip showing nothing
        return None
    return key


def edit_content(ev: Event) -> tuple[str, str] | None:
    """(body, msgtype) of an edit's ``new_content``; None when it is not usable."""
    new = ev.content.get("new_content")
    if not isinstance(new, Mapping):
        return None
    body = new.get("body")
    msgtype = new.get("msgtype", "m.text")
    if not isinstance(body, str) or not body.strip() or not isinstance(msgtype, str):
        return None
    if msgtype not in EDITABLE_MSGTYPES:
        return None
    return body, msgtype


def _in_room(room_id: str, event_id: str) -> bool:
    return event_id.startswith(room_id + "::")


class _Target(NamedTuple):
    position: int
    sender_id: str
    type: str
    state: str
    target: str | None  # for an edit: what it replaces
    parent: str | None
    key: str | None  # the signing key (None: unsigned)
    attachment: bool = False  # a file or image message: its edits are refused


@runtime_checkable
class Source(Protocol):
    """Where ``build`` reads rows from: a timeline (``audit.Timeline`` is one)."""

    def __len__(self) -> int: ...

    def related_rows(self, start: int = 0) -> Iterator[Row]:
        """Every row of a hidden type or with a ``parent_event_id``, in display order,
        from position ``start`` on."""
        ...

    def rows_by_id(self, wanted: Collection[str], start: int = 0) -> dict[str, Row]:
        """The rows whose event ids are in ``wanted``, at position ``start`` or later."""
        ...

    @property
    def repeated(self) -> frozenset[str]:
        """The event ids shown more than once (``audit.Timeline.repeated``)."""
        ...

    @property
    def complete(self) -> bool:
        """False while older history is still being read (``audit.Timeline.complete``):
        a row's "verified" may then be a key taken provisionally."""
        ...

    def row(self, position: int) -> Row:
        """The row at ``position``."""
        ...


def as_row(position: int, r: Any) -> Row:
    """``r`` as the rules read it: a ``Row`` as it is, an ``audit.Assessed`` row (at
    ``position``) with its verdict's trial (``trial.on_trial``) worked out."""
    if isinstance(r, Row):
        return r
    return Row(position, r.event, str(r.state), r.path, r.line, on_trial(r.state, r.reason))


class RowList:
    """A plain list of rows as a ``Source`` (tests, callers with rows at hand): ``Row``s,
    or ``audit.Assessed`` rows in display order (numbered here)."""

    def __init__(self, rows: Iterable[Any], complete: bool = True) -> None:
        self.complete = complete
        self.rows = [as_row(i, r) for i, r in enumerate(rows)]
        seen: set[str] = set()
        twice: set[str] = set()
        for r in self.rows:
            (twice if r.event.event_id in seen else seen).add(r.event.event_id)
        self._repeated = frozenset(twice)

    @property
    def repeated(self) -> frozenset[str]:
        return self._repeated

    def __len__(self) -> int:
        return len(self.rows)

    def related_rows(self, start: int = 0) -> Iterator[Row]:
        return (
            r
            for r in self.rows[start:]
            if r.event.type in HIDDEN_TYPES or r.event.parent_event_id is not None
        )

    def rows_by_id(self, wanted: Collection[str], start: int = 0) -> dict[str, Row]:
        return {r.event.event_id: r for r in self.rows[start:] if r.event.event_id in wanted}

    def row(self, position: int) -> Row:
        return self.rows[position]


@dataclass(frozen=True, slots=True)
class _Read:
    """What ``build`` read of rows ``0:length``, kept so that ``extended`` reads only the
    rows appended since: the first pass's output (it looks at each related row alone) and
    the targets looked up, as timeline positions (the rows stay in the timeline: a
    hostile flood of relations costs a dict entry each here, not a copy of each event).
    Never changed once made: ``extended`` copies what it adds to."""

    length: int
    related: dict[str, int]  # every related row's id -> its position, display order
    relations: array[int]  # relation events with a target in this room
    replies: array[int]  # replies with a parent in this room
    early: tuple[Finding, ...]  # the first pass's findings, in row order
    hidden: array[int]
    wanted: frozenset[str]  # the ids relations and replies name
    outside: dict[str, int]  # wanted rows that are not related rows themselves
    absent: frozenset[str]  # wanted ids not among rows 0:length
    # How many of the second pass's findings its relations made (its replies made the
    # rest): where ``extended`` puts those of new relations.
    split: int = 0
    # The second pass's waiting relations and replies: the id each waits for -> their
    # positions. When a row with such an id is appended, ``extended`` decides these again
    # (and what they can change), not every relation of the room.
    waits: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # No event id among the related rows twice (a timeline shows each id once but those
    # in ``repeated``, never read as related rows): where a decision goes in display
    # order is found from its id.
    distinct: bool = True
    # Ids shown more than once (``Source.repeated``): no relation names one of them, and
    # only an edit or a redaction is one of them (judged copy by copy, ``_Pass.read``).
    repeated: frozenset[str] = frozenset()
    complete: bool = True  # ``Source.complete``: see ``_speaks_for``
    # The events whose aggregates an edit or a redaction under an id in ``repeated`` may
    # change (their targets and, for an edit, its original): ``_added`` leaves decisions
    # about these to ``_decide``, which judges such copies one by one. Any other relation
    # is appended to alone: a planted copy does not make every later reaction in the room
    # a full second pass.
    tangled: frozenset[str] = frozenset()


class _Pass:
    """The first pass over related rows, in display order (``_Read`` in the making);
    ``rows``: the rows it read, by position (at hand for the second pass)."""

    def __init__(
        self,
        read: _Read | None = None,
        repeated: frozenset[str] = frozenset(),
        complete: bool = True,
    ) -> None:
        self.repeated = read.repeated if read else repeated
        self.complete = read.complete if read else complete
        self.related: dict[str, int] = dict(read.related) if read else {}
        self.relations: array[int] = array("q", read.relations) if read else array("q")
        self.replies: array[int] = array("q", read.replies) if read else array("q")
        self.early: list[Finding] = list(read.early) if read else []
        self.hidden: array[int] = array("q", read.hidden) if read else array("q")
        self.wanted: set[str] = set(read.wanted) if read else set()
        self.distinct = read.distinct if read else True
        self.tangled: set[str] = set(read.tangled) if read else set()
        self.rows: dict[int, Row] = {}

    def read(self, room_id: str, rows: Iterable[Row]) -> None:
        repeated = self.repeated
        for r in rows:
            ev = r.event
            self.rows[r.position] = r
            # An id shown more than once is never a target nor found as one (section 18.1).
            own = ev.event_id in repeated
            if not own:
                if ev.event_id in self.related:
                    self.distinct = False
                self.related[ev.event_id] = r.position
            if ev.type in HIDDEN_TYPES:
                self.hidden.append(r.position)
                if ev.type == TYPING:
                    continue
                target = target_of(ev)
                if target is None:
                    self.early.append(_finding(Kind.RELATION_INVALID, r, _why_invalid(ev)))
                    continue
                if not _in_room(room_id, target):
                    self.early.append(_cross_room(r, target))
                    continue
                # Its own id shown twice: an edit or a redaction still acts, copy by copy,
                # for the one sender it can act for (``_speaks_for``); another member who
                # signs anything under its id cannot take it back (section 18.1). Nothing
                # can name it: its id is on no related row, and naming it is ambiguous.
                if target in repeated or (own and ev.type not in _OWN_ID_MAY_REPEAT):
                    self.early.append(_ambiguous(r, own and target not in repeated))
                    continue
                if own:  # decided copy by copy by ``_decide`` only (``_Read.tangled``)
                    self.tangled.add(target)
                self.relations.append(r.position)
                self.wanted.add(target)
            elif ev.parent_event_id is not None:
                parent = ev.parent_event_id
                if not _in_room(room_id, parent):
                    self.early.append(_cross_room(r, parent))
                    continue
                if own or parent in repeated:
                    self.early.append(_ambiguous(r, own))
                    continue
                self.replies.append(r.position)
                self.wanted.add(parent)

    def done(self, length: int, outside: dict[str, int]) -> _Read:
        wanted = frozenset(self.wanted)
        return _Read(
            length,
            self.related,
            self.relations,
            self.replies,
            tuple(self.early),
            self.hidden,
            wanted,
            outside,
            frozenset(wanted - self.related.keys() - outside.keys()),
            distinct=self.distinct,
            repeated=self.repeated,
            complete=self.complete,
            tangled=frozenset(self.tangled),
        )


class _Rows:
    """Rows by position: those at hand, else the source's."""

    def __init__(self, at_hand: dict[int, Row], src: Source) -> None:
        self._at_hand = at_hand
        self._src = src

    def __call__(self, position: int) -> Row:
        r = self._at_hand.get(position)
        return r if r is not None else self._src.row(position)


def build(room_id: str, source: Source | Iterable[Any]) -> Relations:
    """The relations among the shown rows of one audit (display order). Runs with the
    cyclic collector paused (``heap.gc_paused``): it allocates tens of thousands of small
    acyclic objects beside a big room, and the collector rescanning that room while they
    were made took more than half of the time (measured at 100,000 events)."""
    with gc_paused():
        return _build(room_id, source)


def _build(room_id: str, source: Source | Iterable[Any]) -> Relations:
    src = source if isinstance(source, Source) else RowList(source)
    first = _Pass(repeated=src.repeated, complete=src.complete)
    first.read(room_id, src.related_rows())
    # The targets: those that are related rows themselves (an edited edit, a reply's
    # parent that is a reply) are at hand; the rest is one look-up. Every related row's
    # own target is wanted, so the chains an edit or a thread walk are all known.
    found = src.rows_by_id(first.wanted - first.related.keys())
    first.rows.update((r.position, r) for r in found.values())
    outside = {k: r.position for k, r in found.items()}
    return _decide(room_id, first.done(len(src), outside), _Rows(first.rows, src))


def extended(old: Relations, source: Source | Iterable[Any]) -> Relations:
    """``build(old.room_id, source)`` for a ``source`` that is the rows ``old`` was built
    from with rows appended (the same audit: appends keep every position), reading only
    the appended rows and looking up only targets not looked up before: equal to a full
    build (``tests/unit/protocol/test_relations_extended.py``), without the two passes
    over the whole room a full build makes (213 ms at 100,000 events). Appended rows that
    change nothing (plain messages no relation waited for) give back ``old`` itself."""
    with gc_paused():
        return _extended(old, source)


def _extended(old: Relations, source: Source | Iterable[Any]) -> Relations:
    src = source if isinstance(source, Source) else RowList(source)
    read = old.read
    if read is None or len(src) < read.length or src.complete != read.complete:
        return _build(old.room_id, src)
    room_id = old.room_id
    added = list(src.related_rows(read.length))
    if any(r.event.event_id in read.related or r.event.event_id in read.outside for r in added):
        return _build(room_id, src)  # an id read twice: not an extension of what was read
    # Targets not found before were not among the old rows: looked for among the new
    # ones only (also plain rows: a message that relations waited for).
    arrived = src.rows_by_id(read.absent, read.length) if read.absent else {}
    if not added and not arrived:
        # Plain rows nothing waited for: no decision changes, and ``old`` itself is the
        # answer (a front end sees by identity that nothing changed); the next extension
        # reads on from where ``old`` stopped.
        return old
    more = _Pass(read)
    more.read(room_id, added)
    if (
        len(more.relations) == len(read.relations)
        and len(more.replies) == len(read.replies)
        and not arrived
    ):  # typing notices or refused relations only: no decision changes
        positions = old.positions
        done = more.done(len(src), read.outside)
        if read.relations or read.replies:  # the new related rows (an id shown twice is not)
            positions = {**positions, **dict(_new_rows(read, done))}
        late = old.findings[len(read.early) :]
        return replace(
            old,
            hidden=more.hidden,
            findings=(*more.early, *late),
            positions=positions,
            read=replace(done, split=read.split, waits=read.waits),
        )
    wanted = more.wanted - more.related.keys() - read.outside.keys()
    found = {k: r for k, r in arrived.items() if k in wanted}
    fresh = wanted - read.absent  # newly named: anywhere (a reaction to last week's message)
    if fresh:
        found.update(src.rows_by_id(fresh))
    more.rows.update((r.position, r) for r in found.values())
    outside = {**read.outside, **{k: r.position for k, r in found.items()}}
    done = more.done(len(src), outside)
    rows = _Rows(more.rows, src)
    if (
        (read.relations or read.replies)
        and done.distinct
        and not any(r.event.event_id in read.repeated for r in added)
    ):
        # An earlier decision changes only when a row it named arrives (it waited for
        # that row): those are decided again, the new relations and replies on top of
        # them, and a redaction takes back only what its target was given. Unless one of
        # them touches what a copy under a repeated id was judged on (``_Read.tangled``).
        try:
            return _added(old, done, rows, len(read.relations), len(read.replies), arrived)
        except _Tangled:
            pass
    return _decide(room_id, done, rows)


class _Tangled(Exception):
    """``_added`` met a decision that an edit or a redaction under a repeated id bears
    on (``_Read.tangled``): ``_decide`` makes it. Raised before anything was changed:
    ``_added`` changes only copies of what ``old`` holds."""


def inserted(old: Relations, source: Source | Iterable[Any], at: int, count: int) -> Relations:
    """``build(old.room_id, source)`` for a ``source`` that is the rows ``old`` was built
    from with ``count`` rows placed at position ``at`` (``RoomLedger.try_place``: rows
    behind one dated a little ahead). When the placed rows are plain (no relation, no
    reply), nothing waited for them and no related row is among those that moved, no
    decision changes: only the positions of targets that moved do. Else a full build.
    Equal to a full build either way (``tests/unit/protocol/test_relations_extended.py``)."""
    src = source if isinstance(source, Source) else RowList(source)
    read = old.read
    if read is None or read.length + count != len(src) or not 0 <= at <= read.length:
        return build(old.room_id, src)
    placed = [src.row(p) for p in range(at, at + count)]
    ids = {r.event.event_id for r in placed}
    if (
        any(r.event.type in HIDDEN_TYPES or r.event.parent_event_id is not None for r in placed)
        or (read.hidden and read.hidden[-1] >= at)
        or (read.replies and read.replies[-1] >= at)
        or not ids.isdisjoint(read.absent)
        or not ids.isdisjoint(read.related)
        or not ids.isdisjoint(read.outside)
    ):
        return build(old.room_id, src)

    def moved(positions: Mapping[str, int]) -> dict[str, int]:
        return {k: p + count if p >= at else p for k, p in positions.items()}

    outside = read.outside
    if any(p >= at for p in outside.values()):
        outside = moved(outside)
    positions = old.positions
    if any(p >= at for p in positions.values()):
        positions = moved(positions)
    return replace(
        old, positions=positions, read=replace(read, length=read.length + count, outside=outside)
    )


class _Known(Mapping[str, _Target]):
    """The targets of ``read`` as ``_decide`` knows them, each made when first asked:
    most related rows are never a target (a room's reactions), and making every one
    was a third of a full build's second pass."""

    def __init__(self, read: _Read, rows: _Rows) -> None:
        self._related = read.related
        self._outside = read.outside
        self._rows = rows
        self._made: dict[str, _Target] = {}

    def __getitem__(self, event_id: str) -> _Target:
        got = self._made.get(event_id)
        if got is not None:
            return got
        position = self._related.get(event_id)
        if position is None:
            position = self._outside[event_id]
        got = self._made[event_id] = _target(self._rows(position))
        return got

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._related or event_id in self._outside

    def __iter__(self) -> Iterator[str]:
        return itertools.chain(self._related, self._outside)

    def __len__(self) -> int:
        return len(self._related) + len(self._outside)


def _added(
    old: Relations,
    read: _Read,
    rows: _Rows,
    had_relations: int,
    had_replies: int,
    arrived: Collection[str] = (),
) -> Relations:
    """``old`` with the relations and replies ``read`` holds past the first
    ``had_relations`` / ``had_replies`` decided as ``_decide`` decides them (in display
    order, after every earlier one), without deciding the others again. The aggregates
    they change are changed as drafts (``_Draft``) and made once at the end: an append of
    k relations to one target costs O(k + its size), not O(k x its size).

    ``arrived``: appended rows with an id that something waited for. They change only the
    decisions that waited for them (``_Read.waits``): every id a decision looks up is one
    a relation or reply names, and each such id was either known before (and is the same
    row now) or waited for. Those relations and replies are decided again first, in
    display order, each put where a full build puts it (an edit among its message's
    edits, a finding among the findings, a reply in its thread), and with them the
    replies of a thread a waiting reply headed (their way up to a root stopped there, at
    a parent unknown; it goes on now). A waiting relation's target is the row that
    arrived, so what it adds to starts empty; a waiting edit of an edit can add to an
    older message. Cost: O(what waited + the threads and edits it joins), not O(room)."""
    old_read = old.read
    assert old_read is not None
    known = _Known(read, rows)
    tangled = read.tangled
    related = read.related
    late = old.findings[len(old_read.early) :]
    by_relations, by_replies = list(late[: old_read.split]), list(late[old_read.split :])
    aggregates = dict(old.aggregates)
    drafts: dict[str, _Draft] = {}
    edit_of: dict[str, str] | None = None  # copied when it changes
    waits: dict[str, tuple[int, ...]] | None = None  # copied when it changes
    woken: list[int] = []  # positions of what waited for a row that arrived
    if arrived:
        waits = dict(old_read.waits)
        for event_id in arrived:
            woken.extend(waits.pop(event_id, ()))
        woken.sort()
    waiting = old.waiting - len(woken)
    new_waits: dict[str, list[int]] = {}

    def wait(event_id: str, position: int) -> None:
        new_waits.setdefault(event_id, []).append(position)

    def draft(event_id: str) -> _Draft:
        got = drafts.get(event_id)
        if got is None:
            got = drafts[event_id] = _Draft(aggregates.get(event_id) or Aggregate(event_id))
        return got

    def redacted(event_id: str) -> bool:
        got = drafts.get(event_id)
        if got is not None:
            return got.redacted is not None
        agg = aggregates.get(event_id)
        return agg is not None and agg.redacted is not None

    def edit_position(e: Edit) -> int:
        return related[e.event_id]

    def decide(p: int, r: Row, out: list[Finding]) -> None:
        """The relation ``r`` at position ``p``, after every one decided so far."""
        nonlocal edit_of
        ev = r.event
        target_id = target_of(ev)
        assert target_id is not None
        if ev.event_id in read.repeated:
            raise _Tangled  # a copy under a repeated id (woken): judged copy by copy
        found = known.get(target_id)
        if found is None:
            wait(target_id, p)
        elif ev.type == REDACTION:
            if target_id in tangled or (
                found.type == EDIT
                and (old.edit_of if edit_of is None else edit_of).get(target_id, "") in tangled
            ):
                raise _Tangled  # what it takes back holds or held a copy's decision
            if (refused := _refused_redaction(r, found, read.complete)) is not None:
                out.append(refused)
                return
            if redacted(target_id):
                return  # the first applies; later ones change nothing
            # What it takes back: the target's edits and reactions (its thread stays), an
            # applied edit from its message, a counted reaction from its chip.
            edit_of = dict(old.edit_of) if edit_of is None else edit_of
            target = draft(target_id)
            target.redacted = Redacted(
                ev.event_id, ev.timestamp_ms, r.state, redaction_reason(ev.content), r.path, r.line
            )
            for e in target.edit_list():
                edit_of.pop(e.event_id, None)
            target.take_back()
            if found.type == EDIT:
                original = edit_of.pop(target_id, None)
                if original is not None:
                    draft(original).gone.add(target_id)
            elif found.type == REACTION:
                reaction = rows(found.position).event
                reacted, key = target_of(reaction), reaction_key(reaction.content.get("reaction"))
                if reacted is not None and key is not None and not redacted(reacted):
                    draft(reacted).chip_set().remove(key, reaction.sender_id, target_id, read, rows)
        elif ev.type == EDIT:
            verdict = _judge_edit(old.room_id, r, target_id, known, read.repeated, read.complete)
            if isinstance(verdict, Finding):
                out.append(verdict)
            elif verdict.original in tangled or target_id in tangled:
                raise _Tangled  # its place among edits a copy's decision may hold
            elif verdict.waits:
                wait(verdict.original, p)
            elif not redacted(verdict.original) and not redacted(ev.event_id):
                # Applied: a redaction of it was decided already (an earlier row's, or
                # one before it in this append), or takes it back when decided
                # (``gone``). Its place among the message's edits: the last, or (one
                # that waited) between them.
                body, msgtype = edit_content(ev)  # type: ignore[misc]
                edit = Edit(ev.event_id, ev.timestamp_ms, r.state, body, msgtype, r.path, r.line)
                insort(draft(verdict.original).edit_list(), edit, key=edit_position)
                # (an edit whose own id is shown twice is never here: ``_decide`` only)
                edit_of = dict(old.edit_of) if edit_of is None else edit_of
                edit_of[ev.event_id] = verdict.original
        elif (refused := _refused_reaction(r, found)) is not None:
            out.append(refused)
        elif not redacted(target_id) and not redacted(ev.event_id):
            # Counted. The last among its target's reactions: one that waited is decided before
            # the appended ones, and every reaction to the row that arrived waited.
            key = reaction_key(ev.content.get("reaction"))
            assert key is not None
            draft(target_id).chip_set().add(key, r)

    woken_rows = [(p, rows(p)) for p in woken]
    found_again: list[Finding] = []
    for p, r in woken_rows:
        if r.event.type in HIDDEN_TYPES:
            decide(p, r, found_again)
    if found_again and tangled and any(f.event_id in read.repeated for f in by_relations):
        raise _Tangled  # a copy's finding: where it goes among these, its id cannot say
    by_relations = _in_order(by_relations, found_again, related)
    for p in read.relations[had_relations:]:
        decide(p, rows(p), by_relations)

    thread_root = dict(old.thread_root)
    roots = _Roots(known, read.distinct)

    def place(p: int, r: Row, refusals: list[Finding]) -> str | None:
        """A reply's thread root (recorded), or None: its parent is not read yet (it
        waits for it) or it is refused (the finding goes to ``refusals``)."""
        up = r.event.parent_event_id
        assert up is not None
        if up not in known:
            wait(up, p)
            return None
        if (refused := _refused_reply(r, known[up])) is not None:
            refusals.append(refused)
            return None
        root = thread_root[r.event.event_id] = roots(up, r.event.event_id)
        return root

    again = [(p, r) for p, r in woken_rows if r.event.type not in HIDDEN_TYPES]
    if again:
        for reply in [r.event.event_id for _, r in again]:
            agg = aggregates.get(reply)  # its thread: replies whose root it was
            if agg is not None:
                again += [(related[m], rows(related[m])) for m in agg.thread]
        again.sort(key=lambda pr: pr[0])
        found_again = []
        moved: set[str] = set()
        left: set[str] = set()  # roots that lose replies
        regrouped: dict[str, list[str]] = {}  # root -> replies it gains, display order
        for p, r in again:
            reply = r.event.event_id
            was = thread_root.pop(reply, None)
            if was is not None:
                moved.add(reply)
                left.add(was)
            if (root := place(p, r, found_again)) is not None:
                regrouped.setdefault(root, []).append(reply)
        for root in sorted(left | regrouped.keys()):
            thread = draft(root).thread_list()
            kept = [m for m in thread if m not in moved] if moved else thread
            thread[:] = merge(kept, regrouped.get(root, ()), key=related.__getitem__)
        by_replies = _in_order(by_replies, found_again, related)
    for p in read.replies[had_replies:]:
        r = rows(p)
        if (root := place(p, r, by_replies)) is not None:
            draft(root).thread_list().append(r.event.event_id)
    for event_id, changed in drafts.items():
        agg = changed.done(read)
        if agg.edits or agg.redacted is not None or agg.reactions or agg.thread:
            aggregates[event_id] = agg
        else:  # ``_decide`` makes no aggregate for an event nothing applies to
            aggregates.pop(event_id, None)
    if new_waits:
        waits = dict(old_read.waits) if waits is None else waits
        for event_id, positions in new_waits.items():
            waits[event_id] = (*waits.get(event_id, ()), *positions)
            waiting += len(positions)
    return Relations(
        old.room_id,
        aggregates,
        read.hidden,
        thread_root,
        (*read.early, *by_relations, *by_replies),
        waiting,
        {
            **old.positions,
            **dict(_new_rows(old_read, read)),
        },
        old.waiting_for if waits is None else frozenset(waits),
        old.edit_of if edit_of is None else edit_of,
        replace(read, split=len(by_relations), waits=old_read.waits if waits is None else waits),
    )


def _in_order(
    findings: list[Finding], more: list[Finding], related: Mapping[str, int]
) -> list[Finding]:
    """``findings`` and ``more``, each in the display order of the related rows they are
    about, as one list in that order (what a full build's second pass makes)."""
    if not more:
        return findings

    def position(f: Finding) -> int:
        assert f.event_id is not None
        return related[f.event_id]

    return list(merge(findings, more, key=position))


class _Draft:
    """One aggregate an append changes (``_added``), each part copied into a mutable
    form when it is first changed and made immutable again once (``done``)."""

    __slots__ = ("agg", "chips", "edits", "gone", "redacted", "thread")

    def __init__(self, agg: Aggregate) -> None:
        self.agg = agg
        self.redacted = agg.redacted
        self.edits: list[Edit] | None = None
        self.gone: set[str] = set()  # applied edits redacted since
        self.chips: _Chips | None = None
        self.thread: list[str] | None = None

    def edit_list(self) -> list[Edit]:
        if self.edits is None:
            self.edits = list(self.agg.edits)
        return self.edits

    def chip_set(self) -> _Chips:
        if self.chips is None:
            self.chips = _Chips(self.agg.reactions)
        return self.chips

    def thread_list(self) -> list[str]:
        if self.thread is None:
            self.thread = list(self.agg.thread)
        return self.thread

    def take_back(self) -> None:
        """Redacted: its edits and reactions go with it (its thread stays)."""
        self.edits, self.chips = [], _Chips(())

    def done(self, read: _Read) -> Aggregate:
        agg = self.agg
        edits = agg.edits if self.edits is None else tuple(self.edits)
        if self.gone:
            edits = tuple(e for e in edits if e.event_id not in self.gone)
        return Aggregate(
            agg.event_id,
            edits,
            self.redacted,
            agg.reactions if self.chips is None else self.chips.chips(read),
            agg.thread if self.thread is None else tuple(self.thread),
        )


class _Chips:
    """One target's reaction chips while an append changes them: per reaction text, per
    sender, [best state, reaction ids in display order, ``_Taken`` or None], as
    ``_decide`` counts them."""

    __slots__ = ("by_key", "moved")

    def __init__(self, chips: Iterable[ReactionChip]) -> None:
        self.by_key: dict[str, dict[str, list[Any]]] = {
            c.key: {
                r.sender_id: [_ON_TRIAL if r.provisional else r.state, list(r.event_ids), None]
                for r in c.reactors
            }
            for c in chips
        }
        self.moved = False  # a reactor's first reaction was taken back: order them again

    def add(self, key: str, r: Row) -> None:
        """A reaction after every one counted (display order)."""
        per = self.by_key.setdefault(key, {})
        got = per.get(r.event.sender_id)
        verdict = _reacted(r)
        if got is None:
            per[r.event.sender_id] = [verdict, [r.event.event_id], None]
            return
        if _reactor_rank(verdict) < _reactor_rank(got[0]):
            got[0] = verdict
        got[1].append(r.event.event_id)
        taken: _Taken | None = got[2]
        if taken is not None:
            taken.live.add(r.event.event_id)
            taken.states[verdict] = taken.states.get(verdict, 0) + 1

    def remove(self, key: str, sender_id: str, event_id: str, read: _Read, rows: _Rows) -> None:
        """A counted reaction redacted: its sender's state is made again from the rest.
        O(1) after the first of a sender's reactions to one text taken back in an append
        (``_Taken``): a list scan and a look-up of every other reaction each time made an
        append of k such redactions O(k²) (4,000: 6.6 s, against 0.1 s for a full build)."""
        per = self.by_key.get(key)
        got = per.get(sender_id) if per is not None else None
        if per is None or got is None:
            return
        ids: list[str] = got[1]
        taken: _Taken | None = got[2]
        if taken is None:
            taken = got[2] = _Taken(ids, [_reacted(rows(read.related[i])) for i in ids])
        if event_id not in taken.live:
            return
        self.moved |= taken.first(ids) == event_id
        taken.take(event_id, _reacted(rows(read.related[event_id])))
        if not taken.live:
            del per[sender_id]
            if not per:
                del self.by_key[key]
            return
        got[0] = taken.best(ids, read, rows)

    def chips(self, read: _Read) -> tuple[ReactionChip, ...]:
        by_key: dict[str, dict[str, list[Any]]] = {
            key: {
                s: got if got[2] is None else [got[0], got[2].kept(got[1]), None]
                for s, got in per.items()
            }
            for key, per in self.by_key.items()
        }
        if self.moved:  # first reaction first: chips and reactors by their first one

            def first(ids: list[str]) -> int:
                return read.related[ids[0]]

            ordered = {
                key: sorted(per.items(), key=lambda kv: first(kv[1][1]))
                for key, per in by_key.items()
            }
            items = sorted(ordered.items(), key=lambda kv: first(kv[1][0][1][1]))
            by_key = {key: dict(senders) for key, senders in items}
        return tuple(
            ReactionChip(
                key,
                tuple(_reactor(s, verdict, ids) for s, (verdict, ids, _) in per.items()),
            )
            for key, per in by_key.items()
        )


class _Taken:
    """One sender's reactions with one text to one target, some taken back in this append:
    which are left (``live``; the list of ids keeps its order and is cleaned once, in
    ``kept``), how many of them have each verdict (``_reacted``), and where the first one
    left is."""

    __slots__ = ("gone", "head", "live", "states")

    def __init__(self, ids: list[str], states: list[str]) -> None:
        self.live = set(ids)
        self.gone: set[str] = set()
        self.head = 0  # ids before this one are gone
        self.states: dict[str, int] = {}
        for state in states:
            self.states[state] = self.states.get(state, 0) + 1

    def first(self, ids: list[str]) -> str:
        while ids[self.head] in self.gone:
            self.head += 1
        return ids[self.head]

    def take(self, event_id: str, state: str) -> None:
        self.live.discard(event_id)
        self.gone.add(event_id)
        self.states[state] -= 1
        if not self.states[state]:
            del self.states[state]

    def best(self, ids: list[str], read: _Read, rows: _Rows) -> str:
        """The best verdict left: the one of lowest rank; were two left with that rank (no
        audit's states are), the first of them in display order, as a walk finds it."""
        rank = min(_reactor_rank(s) for s in self.states)
        tied = [s for s in self.states if _reactor_rank(s) == rank]
        if len(tied) == 1:
            return tied[0]
        return next(
            _reacted(rows(read.related[i]))
            for i in self.kept(ids)
            if _reactor_rank(_reacted(rows(read.related[i]))) == rank
        )

    def kept(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i not in self.gone] if self.gone else ids


def _new_rows(old: _Read, new: _Read) -> Iterator[tuple[str, int]]:
    """The related rows and looked-up targets ``new`` holds and ``old`` does not: the
    last entries of each map (``extended`` adds to copies of ``old``'s, and reads in
    full a room where an appended id was read before), not a walk over all of them
    (that walk was half of an append's cost at 15,000 reactions)."""
    return itertools.chain(
        itertools.islice(reversed(new.related.items()), len(new.related) - len(old.related)),
        itertools.islice(reversed(new.outside.items()), len(new.outside) - len(old.outside)),
    )


def _refused_reaction(r: Row, target: _Target) -> Finding | None:
    """Why the reaction ``r`` to ``target`` counts for nothing, or None when it counts."""
    if target.type in HIDDEN_TYPES or target.type == MEMBER:
        return _finding(Kind.RELATION_INVALID, r, "a reaction to something that is not a message")
    if reaction_key(r.event.content.get("reaction")) is None:
        return _finding(Kind.RELATION_INVALID, r, _why_invalid(r.event))
    return None


def _refused_redaction(r: Row, target: _Target, complete: bool = True) -> Finding | None:
    """Why the redaction ``r`` of ``target`` takes nothing back, or None when it does."""
    if target.type == MEMBER:
        return _finding(
            Kind.RELATION_INVALID,
            r,
            "a redaction of a member event (membership and keys cannot be taken back)",
        )
    if target.type in (REDACTION, TYPING):
        return _finding(Kind.RELATION_INVALID, r, "a redaction of a redaction (nothing to undo)")
    if not _speaks_for(r, target, complete):
        return _not_sender(r, "a redaction", target, complete)
    return None


def _refused_reply(r: Row, parent: _Target) -> Finding | None:
    """Why the reply ``r`` to ``parent`` is in no thread, or None when it is."""
    if parent.type in HIDDEN_TYPES:  # no row to quote or to hang a thread on
        return _finding(Kind.RELATION_INVALID, r, "a reply to a reaction, edit or redaction")
    if r.event.parent_event_id == r.event.event_id:  # only a forger names itself
        return _finding(Kind.RELATION_INVALID, r, "a reply to itself")
    return None


def _target(r: Row) -> _Target:
    ev = r.event
    return _Target(
        r.position,
        ev.sender_id,
        ev.type,
        r.state,
        target_of(ev) if ev.type == EDIT else None,
        ev.parent_event_id if ev.type not in HIDDEN_TYPES else None,
        ev.sender_key,
        ev.type == MESSAGE and is_file_message(ev.content),
    )


def _decide(room_id: str, read: _Read, rows: _Rows) -> Relations:
    """The second pass: which relations apply, and what each target then looks like."""
    findings = list(read.early)
    hidden = read.hidden
    if not read.relations and not read.replies:
        return Relations(room_id, {}, hidden, {}, tuple(findings), read=read)
    relations, replies = list(map(rows, read.relations)), list(map(rows, read.replies))
    known = _Known(read, rows)

    waits: dict[str, list[int]] = {}  # what waits for what (``_Read.waits``)
    redactions: dict[str, Redacted] = {}
    edits: list[tuple[str, Row]] = []
    reactions: list[tuple[str, Row]] = []
    tangled = set(read.tangled)  # ``_Read.tangled``: here with the originals of edits
    repeated = read.repeated
    for p, r in zip(read.relations, relations, strict=True):
        ev = r.event
        target_id = target_of(ev)
        assert target_id is not None
        if ev.event_id in repeated:
            tangled.add(target_id)
        found = known.get(target_id)
        if found is None:
            waits.setdefault(target_id, []).append(p)
            continue
        if ev.type == REACTION:
            refused = _refused_reaction(r, found)
            if refused is not None:
                findings.append(refused)
            else:
                reactions.append((target_id, r))
            continue
        if ev.type == EDIT:
            verdict = _judge_edit(room_id, r, target_id, known, read.repeated, read.complete)
            if isinstance(verdict, Finding):
                findings.append(verdict)
            else:
                if ev.event_id in repeated:
                    tangled.add(verdict.original)
                if verdict.waits:  # the edited edit is here, its original not yet
                    waits.setdefault(verdict.original, []).append(p)
                else:
                    edits.append((verdict.original, r))
            continue
        # a redaction
        refused = _refused_redaction(r, found, read.complete)
        if refused is not None:
            findings.append(refused)
        elif target_id not in redactions:  # the first applies; later ones change nothing
            redactions[target_id] = Redacted(
                ev.event_id, ev.timestamp_ms, r.state, redaction_reason(ev.content), r.path, r.line
            )

    aggregates: dict[str, dict[str, Any]] = {}

    def slot(event_id: str) -> dict[str, Any]:
        got = aggregates.get(event_id)
        if got is None:
            got = aggregates[event_id] = {}
        return got

    for target_id, red in redactions.items():
        slot(target_id)["redacted"] = red
    for original_id, r in edits:
        if original_id in redactions or r.event.event_id in redactions:
            continue
        # An edit whose own target (an edit) was redacted still applies to the original:
        # the redaction took back that edit's text, not this one's.
        body, msgtype = edit_content(r.event)  # type: ignore[misc]
        slot(original_id).setdefault("edits", []).append(
            Edit(r.event.event_id, r.event.timestamp_ms, r.state, body, msgtype, r.path, r.line)
        )
    chips: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for target_id, r in reactions:
        if target_id in redactions or r.event.event_id in redactions:
            continue
        key = reaction_key(r.event.content.get("reaction"))
        assert key is not None
        per_sender = chips.setdefault(target_id, {}).setdefault(key, {})
        got = per_sender.get(r.event.sender_id)
        seen = _reacted(r)
        if got is None:
            per_sender[r.event.sender_id] = [seen, [r.event.event_id]]
        else:
            if _reactor_rank(seen) < _reactor_rank(got[0]):
                got[0] = seen
            got[1].append(r.event.event_id)
    for target_id, by_key in chips.items():
        slot(target_id)["reactions"] = tuple(
            ReactionChip(key, tuple(_reactor(s, v, ids) for s, (v, ids) in senders.items()))
            for key, senders in by_key.items()
        )

    split = len(findings) - len(read.early)
    roots = _Roots(known, read.distinct)
    thread_root: dict[str, str] = {}
    threads: dict[str, list[str]] = {}
    for p, r in zip(read.replies, replies, strict=True):
        up = r.event.parent_event_id
        assert up is not None
        if up not in known:
            waits.setdefault(up, []).append(p)
            continue
        refused = _refused_reply(r, known[up])
        if refused is not None:
            findings.append(refused)
            continue
        root = roots(up, r.event.event_id)
        thread_root[r.event.event_id] = root
        threads.setdefault(root, []).append(r.event.event_id)
    for root, ids in threads.items():
        slot(root)["thread"] = tuple(ids)

    return Relations(
        room_id,
        {k: Aggregate(k, **tuple_fields(v)) for k, v in aggregates.items()},
        hidden,
        thread_root,
        tuple(findings),
        sum(map(len, waits.values())),
        {**read.related, **read.outside},
        frozenset(waits),
        {
            e.event_id: target
            for target, a in aggregates.items()
            for e in a.get("edits", ())
            if e.event_id not in read.repeated  # whose copy? ``applied`` tells each
        },
        replace(
            read,
            split=split,
            waits={k: tuple(v) for k, v in waits.items()},
            tangled=frozenset(tangled),
        ),
    )


class _Original(NamedTuple):
    original: str  # the message an edit applies to, or (``waits``) the one it waits for
    waits: bool = False


def _judge_edit(
    room_id: str,
    r: Row,
    target_id: str,
    known: Mapping[str, _Target],
    repeated: frozenset[str] = frozenset(),
    complete: bool = True,
) -> _Original | Finding:
    """What the edit ``r`` of ``target_id`` (known) comes to, but for redactions: the
    message it applies to, the original it waits for (an edit of an edit read before its
    message), or why it is refused. One rule for ``_decide`` and ``_added``."""
    original_id, original = _original(target_id, known)
    if original_id in repeated:  # an edit of an edit of a message shown twice
        return _ambiguous(r, False)
    if original is None or original_id is None:
        if original_id is not None and original_id not in known and _in_room(room_id, original_id):
            return _Original(original_id, waits=True)
        if original_id is None:  # the edits it follows come back to one of them
            return _finding(
                Kind.RELATION_INVALID,
                r,
                "an edit that leads to no message: the edits it follows loop back (it "
                f"edits itself, or an edit of it) or run deeper than {MAX_EDIT_HOPS}",
            )
        return _finding(Kind.RELATION_INVALID, r, "an edit whose original is not there")
    if original.type != MESSAGE:
        return _finding(Kind.RELATION_INVALID, r, "an edit of something that is not a message")
    if original.attachment:  # its card shows the file; an edit's text would replace it
        return _finding(Kind.RELATION_INVALID, r, EDIT_OF_FILE)
    if not _speaks_for(r, original, complete):
        return _not_sender(r, "an edit", original, complete)
    if edit_content(r.event) is None:
        return _finding(Kind.RELATION_INVALID, r, _why_invalid(r.event))
    return _Original(original_id)


def tuple_fields(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _original(target_id: str, known: Mapping[str, _Target]) -> tuple[str | None, _Target | None]:
    """Follow an edit of an edit down to the original (bounded): (its id, what is known
    of it; None when not read); (None, None) for a loop of edits or too long a chain."""
    seen = set()
    current: str | None = target_id
    for _ in range(MAX_EDIT_HOPS):
        if current is None or current in seen:
            return None, None
        seen.add(current)
        t = known.get(current)
        if t is None:
            return current, None
        if t.type != EDIT:
            return current, t
        current = t.target
    return None, None


def _root(parent: str, known: Mapping[str, _Target], reply: str) -> str:
    """The thread root above ``parent``: its topmost known ancestor (bounded). A loop of
    replies stops where it closes, and never at ``reply`` itself: a reply is not its own
    thread's root (in a loop of two, each is a reply in the other's thread)."""
    current = parent
    seen = {current, reply}
    for _ in range(MAX_THREAD_HOPS):
        t = known.get(current)
        if t is None or t.parent is None or t.parent not in known or t.parent in seen:
            return current
        current = t.parent
        seen.add(current)
    return current


_CYCLE = ("", -1)  # ``_Roots``: a way up that runs into a loop


class _Roots:
    """``_root`` for every reply of one decision (``_decide``, ``_added``), each parent
    looked up once. ``_root`` walks up to ``MAX_THREAD_HOPS`` parents for each reply, and
    each step asks ``known`` twice: a chain of replies, each to the one before, cost 64
    steps a reply (2.2 s at 20,000 replies), and a thread whose head waited for its
    parent was walked again whole at each of the 64 arrivals above it (24 s for 5,000
    replies). Here each reply's way up is remembered as (top, steps to it) once it is
    known to end without a loop, so a reply costs a few look-ups however deep it is; a
    way that runs into a loop is walked as ``_root`` walks it, each step one dict
    look-up. The same root as ``_root`` in every case
    (``test_relations_roots.py``): a way with no loop cannot pass the reply itself (its
    parent is the first step), unless its id is on two related rows (``distinct``).
    Further than the bound, the ancestor ``MAX_THREAD_HOPS`` up is found by lifts of
    powers of two, each remembered (``_lift``)."""

    def __init__(self, known: Mapping[str, _Target], distinct: bool) -> None:
        self._known = known
        self._distinct = distinct
        self._up: dict[str, str | None] = {}  # id -> its parent when that is known, else None
        self._top: dict[str, tuple[str, int]] = {}  # id -> (its top, steps), or _CYCLE
        self._lifts: dict[int, dict[str, str]] = {}  # 2**k -> id -> its ancestor 2**k up

    def up(self, event_id: str) -> str | None:
        try:
            return self._up[event_id]
        except KeyError:
            pass
        known = self._known
        t = known.get(event_id)
        parent = t.parent if t is not None else None
        got = self._up[event_id] = parent if parent is not None and parent in known else None
        return got

    def _top_of(self, event_id: str) -> tuple[str, int]:
        tops, up = self._top, self.up
        path: list[str] = []
        on_path: set[str] = set()
        current: str | None = event_id
        while True:
            assert current is not None
            got = tops.get(current)
            if got is not None:
                break
            if current in on_path:
                got = _CYCLE
                break
            on_path.add(current)
            path.append(current)
            nxt = up(current)
            if nxt is None:
                got = (current, -1)  # the top itself is the last on the path: 0 steps
                break
            current = nxt
        top, steps = got
        for node in reversed(path):
            if got is not _CYCLE:
                steps += 1
                got = (top, steps)
            tops[node] = got
        return tops[event_id]

    def _lift(self, event_id: str, steps: int) -> str:
        """The ancestor ``steps`` (a power of two) parents up, on a way without a loop
        that is at least that long: from two lifts of half as many, each remembered."""
        if steps == 1:
            got = self.up(event_id)
            assert got is not None
            return got
        lifts = self._lifts.setdefault(steps, {})
        found = lifts.get(event_id)
        if found is None:
            half = steps // 2
            found = lifts[event_id] = self._lift(self._lift(event_id, half), half)
        return found

    def __call__(self, parent: str, reply: str) -> str:
        if self._distinct:
            top, steps = self._top_of(parent)
            if steps >= 0:  # no loop: the top, or as far up as the bound goes
                if steps <= MAX_THREAD_HOPS:
                    return top
                current, bit = parent, 1
                while bit <= MAX_THREAD_HOPS:
                    if MAX_THREAD_HOPS & bit:
                        current = self._lift(current, bit)
                    bit *= 2
                return current
        current = parent
        seen = {current, reply}
        up = self.up
        for _ in range(MAX_THREAD_HOPS):
            nxt = up(current)
            if nxt is None or nxt in seen:
                return current
            current = nxt
            seen.add(current)
        return current


def _speaks_for(r: Row, target: _Target, complete: bool = True) -> bool:
    """An edit or redaction acts only for the target's own sender: the same sender id,
    and for a signed target the same key or a key verified for that sender (another
    device of theirs). An unsigned event can only act on an unsigned one.

    While older history is still read (``complete`` False) only the same key: a key
    first seen then is taken provisionally (its rows say verified), and an impostor's
    key would act for the sender until the history that tells them apart was read — as
    long as the storage, which decides how long reading takes, liked."""
    if r.event.sender_id != target.sender_id:
        return False
    if target.key is None:
        return True
    return r.event.sender_key == target.key or (complete and r.state == "verified")


def _ambiguous(r: Row, own: bool) -> Finding:
    """Why ``r`` relates to nothing: its own id, or the one it names, is shown more than
    once (another device signed an event of its own under it, section 6 step 1)."""
    if own:
        what = "its own event id is shown more than once (signed by more than one device)"
    else:
        what = "the event it names is shown more than once (signed by more than one device)"
    kind = "a reply" if r.event.type not in HIDDEN_TYPES else "a relation"
    return _finding(Kind.RELATION_INVALID, r, f"{kind} ignored: {what}")


def _finding(kind: Kind, r: Row, message: str) -> Finding:
    return Finding(kind, message, r.path, r.line, r.event.event_id)


def _why_invalid(ev: Event) -> str:
    name = TARGET_FIELD.get(ev.type)
    if name is not None and target_of(ev) is None:
        return f"a {ev.type} without a usable content.{name} (an event id)"
    if ev.type == REACTION:
        return (
            "a reaction whose text is empty, too long (over "
            f"{MAX_REACTION_CHARS} characters), holds control characters or shows nothing"
        )
    if ev.type == EDIT:
        return "an edit without a usable new_content (a text body and a text msgtype)"
    return f"a malformed {ev.type}"


def _cross_room(r: Row, target: str) -> Finding:
    what = "a reply" if r.event.type not in HIDDEN_TYPES else f"a {r.event.type}"
    room = target.split("::", 1)[0]
    return _finding(
        Kind.RELATION_CROSS_ROOM,
        r,
        f"{what} pointing at an event of another room ({room!r}); ignored",
    )


def _not_sender(r: Row, what: str, target: _Target, complete: bool = True) -> Finding:
    if r.event.sender_id != target.sender_id:
        who = f"{r.event.sender_id!r}, not the message's sender {target.sender_id!r}"
    elif not complete and r.state == "verified":
        who = (
            f"{r.event.sender_id!r} with another key than the message's; ignored until "
            "older history is read and shows whether that key is theirs"
        )
        return _finding(Kind.RELATION_NOT_SENDER, r, f"{what} by {who}")
    else:
        who = (
            f"{r.event.sender_id!r} with another key than the message's, "
            f"not verified for that sender ({r.state})"
        )
    return _finding(Kind.RELATION_NOT_SENDER, r, f"{what} by {who}; ignored")
