"""The room audit: signatures, hash chains, key pinning, trust states and display order.

``RoomLedger`` is fed segments (bytes read from storage) in any order and at any time;
``audit()`` then says, for every event, what could be proven about it, and lists every
finding about the room. Only this module decides a trust state: the UI's "verified" badge
comes from here and nowhere else.
"""

from __future__ import annotations

import binascii
import enum
import itertools
import operator
import re
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from hashlib import blake2b
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import Any, NamedTuple, overload

from .attachments import MSGTYPES as ATTACHMENT_MSGTYPES
from .attachments import is_file_message
from .event import DEVICE_ACCEPT_FIELD as DEVICE_ACCEPT_FIELD
from .event import DEVICE_ADD_FIELD as DEVICE_ADD_FIELD
from .event import DEVICE_FIELDS, MAX_WITNESS_ENTRIES, MEMBER, MESSAGE, Event
from .findings import Finding, Kind, Severity
from .heap import gc_paused
from .ids import iso_utc_ms, place_order
from .prepared import PreparedSegment as PreparedSegment
from .prepared import prepare_segment as prepare_segment
from .relations import EDIT, HIDDEN_TYPES, REACTION, REDACTION, Row, relation_content
from .segment import DecodedSegment, Located, decode_segment
from .signing import SignatureChecker

# Re-exported: front ends ask ``audit`` of a row's verdict (``provisional``, ``on_trial``).
from .trial import PROVISIONAL_REASON as PROVISIONAL_REASON
from .trial import on_trial as on_trial
from .untrusted_text import NAME_LIMIT, display_name_safe

WITNESS_FIELD = "witness"
MAX_LISTED = 20  # places named in one finding's message (a finding stays one line)
# A row dated further ahead of the reader's clock than this is held back, not shown, until
# its time comes closer (section 9.3): placed by its date, it would sort after every
# message written since and stay the room's last row for years. The reference reader
# skips such a line (at one hour too).
HOLD_AHEAD_MS = 60 * 60_000
# How much earlier than a witness (section 6.1) the event after the one it names may be
# dated before a ``dated-before-witness`` notice says so: two clocks an hour apart, or a
# witness signed by a device that had not polled for a while, are ordinary.
WITNESS_SLACK_MS = HOLD_AHEAD_MS
# How many of the last shown rows a new row may be placed before without a full audit
# (``RoomLedger.try_place``): a row dated a little ahead (within the hour, or a clock
# a few seconds fast) is shown and sorts last until its date, and every message that
# arrives meanwhile sorts before it.
INSERT_TAIL = 256
_TAIL_KEPT = INSERT_TAIL + 1  # and the row before them: what they are placed after
_NO_HORIZON = 2**63  # no clock given: nothing is held
_NOTHING_HELD = 2**64  # later than any horizon
_NOTHING_LATE: Mapping[int, int] = MappingProxyType({})  # no row placed after its date


_UNREAD_HISTORY = frozenset(
    {Kind.SEGMENT_UNREADABLE, Kind.SEGMENT_TOO_LARGE, Kind.SEGMENT_ABANDONED}
)


class TrustState(enum.StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    KEY_CHANGED = "key-changed"
    INVALID = "invalid"


class Assessed(NamedTuple):
    """An event with the verdict on it and the sentence that explains the verdict."""

    event: Event
    state: TrustState
    reason: str
    path: str
    line: int


class _Verdicts:
    """The (state, reason) pairs of one ledger's rows, each kept once: a row of a
    ``Timeline`` is its copy and the number of its pair here. The list only grows, on the
    ledger's thread; a result on another thread reads only numbers it holds already."""

    __slots__ = ("_numbers", "pairs")

    def __init__(self) -> None:
        self.pairs: list[tuple[TrustState, str]] = []
        self._numbers: dict[tuple[TrustState, str], int] = {}

    def code(self, state: TrustState, reason: str) -> int:
        pair = (state, reason)
        number = self._numbers.get(pair)
        if number is None:
            number = self._numbers[pair] = len(self.pairs)
            self.pairs.append(pair)
        return number


class Timeline(Sequence[Assessed]):
    """The shown rows of an audit, each made when it is read.

    A row is stored as the number of the ledger's copy in its store (``_Kept``,
    ``_Columns``: the ledger keeps them anyway) and a 4-byte verdict number instead of an
    ``Assessed`` tuple: 8 bytes a row. Reading it gives equal ``Assessed`` values every
    time (not the same objects); a slice is a ``Timeline`` too (a slice of a million rows
    read one by one never holds a million ``Assessed`` at once). Never changed after it
    was made: an append makes a new one (``extended``). The store only grows, so the rows
    a result holds stay what they were."""

    __slots__ = (
        "_codes",
        "_late",
        "_ledger",
        "_pairs",
        "_rows",
        "_store",
        "_tally",
        "complete",
        "repeated",
    )

    def __init__(
        self,
        ledger: RoomLedger | None,
        rows: array[int],
        codes: array[int],
        pairs: list[tuple[TrustState, str]],
        tally: Counter[int] | None = None,
        late: Mapping[int, int] = _NOTHING_LATE,
        repeated: frozenset[str] = frozenset(),
        complete: bool = True,
    ) -> None:
        self._ledger = ledger
        self._store: _Kept | _Columns = ledger._store if ledger is not None else _EMPTY
        self._rows = rows
        # Event ids whose good copies were signed by more than one device key: each
        # key's copy is a row of its own (section 6 step 1), so a look-up by id alone
        # cannot tell which one is meant. They take no relations (section 18.1), and a
        # front end asked for "the" row of one of them refuses. Carried by slices and
        # appends: only a full audit finds a new one (an append never adds a replay).
        self.repeated = repeated
        # The audit's ``complete``: False while older history is still being read, when
        # a key first seen for a sender is taken provisionally (its rows say verified).
        # The relation rules then let no other key act for a message's sender (18.4).
        self.complete = complete
        self._codes = codes
        self._pairs = pairs
        # Where rows placed later than their own date are placed (``placed_by``), by
        # row number, as this audit placed them. A later audit places them anew (a held
        # row shown at last moves its chain's later rows after it): read from the
        # copies, an older result's places would change under it. Only added to, by the
        # appends of the same audit (each looks up its own rows).
        self._late = late
        # Rows per verdict number, counted once when first asked (a header shows it on
        # every room-list change: a count over a million rows each time took ~50 ms);
        # an append adds its own rows' to its parent's.
        self._tally = tally

    @classmethod
    def empty(cls) -> Timeline:
        """A timeline without rows (a room not audited yet)."""
        return cls(None, array("I"), array("I"), [])

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Assessed: ...

    @overload
    def __getitem__(self, index: slice) -> Timeline: ...

    def __getitem__(self, index: int | slice) -> Assessed | Timeline:
        if isinstance(index, slice):  # rows made as they are read, like this one's
            return Timeline(
                self._ledger,
                self._rows[index],
                self._codes[index],
                self._pairs,
                late=self._late,
                repeated=self.repeated,
                complete=self.complete,
            )
        c = self._store.copy(self._rows[index])
        state, reason = self._pairs[self._codes[index]]
        return _new_tuple(Assessed, (_event_of(c), state, reason, c.path, c.line))

    def _copy(self, position: int) -> _Copy:
        """The ledger's copy shown at ``position`` (made anew in a slim ledger)."""
        return self._store.copy(self._rows[position])

    def __iter__(self) -> Iterator[Assessed]:
        return _rows(self._store, self._rows, self._codes, self._pairs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list, so unhashable like one

    def __add__(self, other: Sequence[Assessed]) -> list[Assessed]:
        return [*self, *other]  # as a list's: rows of two places are a list of rows

    def __radd__(self, other: Sequence[Assessed]) -> list[Assessed]:
        return [*other, *self]

    def __repr__(self) -> str:
        return f"Timeline({list(self)!r})"

    def _positions(self, event_id: str) -> list[int]:
        """Where the copies of ``event_id`` are shown, oldest first: found by row number
        (the ledger's ``rows_of``), no rows made and no ids compared."""
        if self._ledger is None:
            return []
        rows = self._rows
        out = [at for row in self._ledger.rows_of(event_id) if (at := _shown_at(rows, row)) >= 0]
        return sorted(out)

    def position_of(self, event_id: str) -> int | None:
        """Where ``event_id`` is shown, or None (no rows made). An id in ``repeated`` is
        shown once per signing key: this is its newest row, and a caller that must not
        pick one of them checks first."""
        at = self._positions(event_id)
        return at[-1] if at else None

    def position_of_hash(self, event_hash: str) -> int | None:
        """Where the event whose hash is ``event_hash`` is shown (its newest row), or
        None: looked for from the newest row back, no rows made."""
        rows, hash_of = self._rows, self._store.hash
        for i in range(len(rows) - 1, -1, -1):
            if hash_of(rows[i]) == event_hash:
                return i
        return None

    def position_of_copy(self, event_id: str, path: str, line: int) -> int | None:
        """Where the copy of ``event_id`` read at (``path``, ``line``) is shown, or None:
        for a caller that knows which row it means (a search hit is one copy)."""
        rows, place = self._rows, self._store.place
        for i in reversed(self._positions(event_id)):
            if place(rows[i]) == (path, line):
                return i
        return None

    def senders(self) -> Iterator[tuple[str, Assessed | None]]:
        """Each row's sender id in order, with the row itself only for a member event: a
        pass for what reads only senders and member events (display names), without
        making every row (about 0.8 µs a row, 80 ms at 100,000 on the GUI thread)."""
        pairs, store = self._pairs, self._store
        sender_of, type_of = store.sender_id, store.type
        for row, code in zip(self._rows, self._codes, strict=True):
            if type_of(row) == MEMBER:
                c = store.copy(row)
                state, reason = pairs[code]
                yield (
                    c.sender_id,
                    _new_tuple(Assessed, (_event_of(c), state, reason, c.path, c.line)),
                )
            else:
                yield sender_of(row), None

    def member_rows(
        self,
    ) -> Iterator[tuple[str, str, str | None, int, TrustState, str, Assessed | None]]:
        """Each row as the member fold reads it (``room_state.RoomState``): event id,
        sender id, sender key, timestamp, verdict and its reason, and the row itself only
        for a member event: the fold of a whole audit without making every row (a
        ``RoomState`` of 100,000 rows took 265 ms on the engine's state thread)."""
        pairs, store = self._pairs, self._store
        for row, code in zip(self._rows, self._codes, strict=True):
            state, reason = pairs[code]
            if store.type(row) == MEMBER:
                c = store.copy(row)
                yield (
                    c.event_id,
                    c.sender_id,
                    c.sender_key,
                    c.timestamp_ms,
                    state,
                    reason,
                    _new_tuple(Assessed, (_event_of(c), state, reason, c.path, c.line)),
                )
            else:
                yield (
                    store.event_id(row),
                    store.sender_id(row),
                    store.sender_key(row),
                    store.timestamp(row),
                    state,
                    reason,
                    None,
                )

    def state_counts(self) -> Iterator[tuple[TrustState, int]]:
        """How many rows have each state (a state may come more than once)."""
        pairs, tally = self._pairs, self._tally
        if tally is None:  # computed at most once per timeline (a race computes it twice)
            tally = self._tally = Counter(self._codes)
        return ((pairs[code][0], n) for code, n in tally.items())

    @property
    def whole(self) -> bool:
        """Whether the rows carry whole events (their ledger kept bodies, and with them
        each signature's text rather than its digest: ``RoomLedger.keeps_bodies``)."""
        return not self._rows or self._store.keeps_bodies

    def _place_of(self) -> Callable[[int], int]:
        late, stamp = self._late, self._store.timestamp
        if not late:
            return stamp
        return lambda row: late.get(row, stamp(row))

    def placed_by(self, latest_ms: int) -> int:
        """How many rows, from the oldest, are placed no later than ``latest_ms``. A row
        is placed at its own date, or at its chain predecessor's place when that is later
        (a row never shows before its predecessor: one dated today after one dated 2100
        is placed in 2100), and display order follows places: they never go down, so the
        rows placed past ``latest_ms`` are the newest ones, found by a binary search (no
        walk over what a hostile writer dated in the future, however much). The places
        are this audit's, whatever a later audit of the same ledger does."""
        return bisect_right(self._rows, latest_ms, key=self._place_of())

    def place_at(self, position: int) -> int:
        """Where the row at ``position`` is placed (``placed_by``): its own date, or its
        chain predecessor's place when that is later (a row dated 1970 after one of today
        is placed today)."""
        return self._place_of()(self._rows[position])

    def positions_of(self, copies: Iterable[_Copy]) -> list[int]:
        """Where each of ``copies`` (the ledger's own, as ``RoomLedger.add_prepared``
        returned them) is shown, in display order; those not shown are left out. The
        copies are grouped by place; for each distinct place the block of rows placed
        then is found by two binary searches (as ``placed_by``) and scanned once for all
        the copies wanted there: no walk over the room, and no walk of a block per copy
        (a member who wrote thousands of rows with one date, or a chain dated 1970 after
        today's row, made 2,000 look-ups in a room of 100,000 rows take seconds)."""
        rows = self._rows
        place = self._place_of()
        by_place: defaultdict[int, set[int]] = defaultdict(set)
        for c in copies:
            by_place[place(c.row)].add(c.row)
        out: list[int] = []
        for when, wanted in by_place.items():
            lo = bisect_left(rows, when, key=place)
            hi = bisect_right(rows, when, lo=lo, key=place)
            out += [i for i in range(lo, hi) if rows[i] in wanted]
        return sorted(out)

    def signature_ids_at(self, positions: Iterable[int]) -> list[str | int]:
        """The ``RoomLedger.signature_id`` of the rows at ``positions`` (a slim ledger's
        rows carry no signature text): those only, not a list of the whole room's to
        read a few (the rows that arrived, in a room of a million)."""
        rows, sig = self._rows, self._store.sig
        return [sig(rows[i]) for i in positions]

    def hash_states(self) -> Iterator[tuple[str, TrustState]]:
        """Each row's event hash and verdict, without making the rows (a rebuild from
        the index compares them all with the saved verdicts: a row made per event took
        about a second at 1,000,000)."""
        pairs, hash_of = self._pairs, self._store.hash
        for row, code in zip(self._rows, self._codes, strict=True):
            yield hash_of(row), pairs[code][0]

    def verdict_rows(self) -> Iterator[tuple[str, str, int, TrustState, str, str]]:
        """Each row's event id, path, line, verdict, its reason and the event's hash, in
        order, without making the rows: what the index saves of an audit
        (``Index.save_audit``). Made row by row (a copy and an ``Event`` each), the
        100,000 rows of a cold sync's final save took ~7 µs each; by column ~4.5."""
        pairs, store = self._pairs, self._store
        event_id, place, hash_of = store.event_id, store.place, store.hash
        for row, code in zip(self._rows, self._codes, strict=True):
            state, reason = pairs[code]
            path, line = place(row)
            yield event_id(row), path, line, state, reason, hash_of(row)

    def verified_keys(self) -> set[tuple[str, str]]:
        """The (sender id, sender key) of every verified row that names a key, without
        making the rows: what trust on first use pins after a whole read
        (``keeper._pin``; row by row ~7 µs each at 100,000, by column ~0.4)."""
        good = {code for code, (state, _) in enumerate(self._pairs) if state is TrustState.VERIFIED}
        sender_of, key_of = self._store.sender_id, self._store.sender_key
        return {
            (sender_of(row), key)
            for row, code in zip(self._rows, self._codes, strict=True)
            if code in good and (key := key_of(row))
        }

    def sender_ids(self) -> list[str]:
        """The senders of the rows, each once, in the order of their first row, without
        making the rows."""
        return list(dict.fromkeys(map(self._store.sender_id, self._rows)))

    def copy_keys(self) -> Iterator[tuple[str, str, int]]:
        """Each row's event id, path and line (which copy it is: an id signed by two
        devices is two rows), without making the rows."""
        store = self._store
        return ((store.event_id(row), *store.place(row)) for row in self._rows)

    def signed_count(self) -> int:
        """How many rows carry a sender key (were signed), without making the rows
        (a million rows made one by one took over a second on the GUI thread)."""
        key_of = self._store.sender_key
        return sum(1 for row in self._rows if key_of(row))

    def related_rows(self, start: int = 0) -> Iterator[Row]:
        """The rows the relation rules read (``relations.Source``): relation events and
        replies from position ``start`` on, without making the other rows."""
        pairs, codes, store = self._pairs, self._codes, self._store
        # a slice, not islice: skipping ``start`` rows one by one cost a walk of the whole
        # room on every append (``relations.extended`` reads an append's rows only)
        rows = self._rows if start <= 0 else self._rows[start:]
        related = store.related
        for i, row in enumerate(rows, max(0, start)):
            if related(row):
                c = store.copy(row)
                state, reason = pairs[codes[i]]
                trial = on_trial(state, reason)
                yield Row(i, _event_of(c), state.value, c.path, c.line, trial)

    def rows_by_id(self, wanted: Collection[str], start: int = 0) -> dict[str, Row]:
        """The rows at ``start`` or later whose event ids are in ``wanted``
        (``relations.Source``): looked for from the newest back, so a target near the
        end (a reaction to a recent message) costs a short walk, not the whole room; the
        copies of each id are known by row number (``RoomLedger.rows_of``): no ids read."""
        out: dict[str, Row] = {}
        if not wanted or self._ledger is None:
            return out
        rows_of = self._ledger.rows_of
        ids = {row: event_id for event_id in set(wanted) for row in rows_of(event_id)}
        left = len(set(ids.values()))
        rows = self._rows
        for i in range(len(rows) - 1, max(0, start) - 1, -1):
            event_id = ids.get(rows[i])
            if event_id is not None and event_id not in out:
                out[event_id] = self.row(i)
                if len(out) == left:
                    break
        return out

    def row(self, position: int) -> Row:
        """The row at ``position`` as the relation rules read it (``relations.Source``)."""
        c = self._store.copy(self._rows[position])
        state, reason = self._pairs[self._codes[position]]
        return Row(position, _event_of(c), state.value, c.path, c.line, on_trial(state, reason))

    def extended(self, rows: array[int], codes: array[int], late: Mapping[int, int]) -> Timeline:
        """This timeline with rows added at its end (of the same ledger and audit;
        ``late``: this audit's places, those of ``rows`` added)."""
        return self.inserted(len(self._rows), rows, codes, late)

    def inserted(
        self, at: int, rows: array[int], codes: array[int], late: Mapping[int, int]
    ) -> Timeline:
        """This timeline with rows placed at position ``at`` (``RoomLedger.try_place``),
        the rows from ``at`` on moved after them; at its end, ``extended``."""
        tally = self._tally
        if tally is not None:
            tally = tally + Counter(codes)
        old, old_codes = self._rows, self._codes
        if at >= len(old):  # an append: no slice copies of a long room's lists
            new_rows, row_codes = old + rows, old_codes + codes
        else:
            new_rows = old[:at] + rows + old[at:]
            row_codes = old_codes[:at] + codes + old_codes[at:]
        return Timeline(
            self._ledger,
            new_rows,
            row_codes,
            self._pairs,
            tally,
            late,
            self.repeated,
            self.complete,
        )


def _shown_at(rows: array[int], row: int) -> int:
    """Where ``row`` is in ``rows`` (a row is shown at most once), or -1: looked for
    in blocks from the newest back, each four times the last (what is looked for is
    mostly recent: a read marker, a search hit), by the array's own search."""
    hi, step = len(rows), 4096
    while hi > 0:
        lo = max(0, hi - step)
        try:
            return lo + rows[lo:hi].index(row)
        except ValueError:
            hi, step = lo, 4 * step
    return -1


def _rows(
    store: _Kept | _Columns,
    rows: array[int],
    codes: array[int],
    pairs: list[tuple[TrustState, str]],
) -> Iterator[Assessed]:
    event, copy = _event_of, store.copy
    for row, code in zip(rows, codes, strict=True):
        c = copy(row)
        state, reason = pairs[code]
        yield _new_tuple(Assessed, (event(c), state, reason, c.path, c.line))


@dataclass(slots=True)
class AuditResult:
    """One audit of a room, handed to front ends as it is: never changed after the ledger
    returned it (an append makes a new result, ``RoomLedger.try_append``), so another
    thread may read it while the ledger goes on."""

    room_id: str
    # Shown events, in display order (never invalid ones).
    timeline: Timeline
    invalid: list[Assessed]
    findings: list[Finding]
    segments: int
    pending_gaps: int = 0
    # Per sender id, the keys that speak for it after the whole walk (section 7): what
    # "signed by <user>" may be said of (room metadata, the members panel).
    authorized: dict[str, frozenset[str]] = field(default_factory=dict)
    # The full audit this result is, or extends by appends: two results with one number
    # agree on every position the shorter one has (a page of either is a page of both).
    # Rows placed before the last ones (``RoomLedger.try_place``) move those: such a
    # result has a number of its own.
    audit_number: int = 0
    # The device introductions both sides signed (section 7), as (sender id, introducing
    # key, introduced key): what every reader of the room can check, whatever keys this
    # device pinned (``relation_drafts`` asks it before acting from another device).
    introductions: frozenset[tuple[str, str, str]] = frozenset()
    # Sender ids whose keys a reader that pinned nothing finds in conflict (section 7):
    # for such a reader none of their keys speaks for them, whatever this device pinned.
    disputed: frozenset[str] = frozenset()

    @property
    def counts(self) -> dict[TrustState, int]:
        counts = dict.fromkeys(TrustState, 0)
        for state, n in self.timeline.state_counts():  # from the verdict numbers: no rows made
            counts[state] += n
        counts[TrustState.INVALID] = len(self.invalid)
        return counts

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def clean(self) -> bool:
        return not self.errors

    @property
    def held(self) -> int:
        """How many events are held back as dated ahead (``HOLD_AHEAD_MS``): not in the
        timeline until their time comes; each has a ``dated-ahead`` finding."""
        return sum(f.kind is Kind.DATED_AHEAD for f in self.findings)


class Placed(NamedTuple):
    """What ``RoomLedger.try_place`` added to the timeline: ``rows``, in display order,
    now at positions ``at`` to ``at + len(rows)``. ``at`` is the old length for rows that
    sort after every shown row (an append); smaller, the rows shown from ``at`` on moved
    ``len(rows)`` places down (an insert: the result has a new ``audit_number``)."""

    at: int
    rows: list[Assessed]
    moved: int = 0  # how many rows shown before now come after the placed ones

    @property
    def inserted(self) -> bool:
        """Whether rows that were shown moved (``at`` is before the old end)."""
        return self.moved > 0


_new_tuple = tuple.__new__
_audit_numbers = itertools.count(1)  # AuditResult.audit_number


_NO_ORDER = (0, "")


class _Copy:
    """One copy of an event as read, with its signature verdict.

    The canonical bytes are dropped once the signature was checked: the hash stands for
    them from then on, and a room of 100,000 events is 45 MB lighter. The event's other
    fields are kept here, by the names ``Event`` gives them, rather than in an ``Event``
    of their own: a second object per event was 160 bytes more than these slots cost
    (72 MB in a room of a million events). ``ev`` makes that ``Event`` when asked (a
    result's rows do: ``Timeline``): equal each time, not the same object."""

    __slots__ = (
        "content",
        "depth",
        "eff",
        "event_id",
        "hash",
        "line",
        "parent_event_id",
        "path",
        "prev_event_hash",
        "problems",
        "raw",
        "room_id",
        "row",
        "sender_id",
        "sender_key",
        "sig",
        "sig_ok",
        "sig_why",
        "signature",
        "timestamp_ms",
        "type",
    )

    def __init__(
        self,
        path: str,
        line: int,
        sig_ok: bool | None,
        sig_why: str,
        ev: Event,
        sig: str | int,
    ) -> None:
        (
            self.raw,
            _,  # canonical bytes: never kept
            self.hash,
            self.event_id,
            self.room_id,
            self.timestamp_ms,
            self.sender_id,
            self.type,
            self.parent_event_id,
            self.prev_event_hash,
            self.signature,
            self.sender_key,
            self.content,
        ) = ev
        self.path = path
        self.line = line
        self.sig_ok = sig_ok
        self.sig_why = sig_why
        # What tells this copy's signature from another's (``_Slimmer.signature_id``).
        self.sig = sig
        self.depth = 0
        self.eff: tuple[int, str] = _NO_ORDER
        self.problems: list[str] | None = None
        self.row = -1  # its number in the ledger's store (``_Kept``, ``_Columns``)

    canonical = b""  # never kept: a class attribute, for ``_event_of``

    @property
    def ev(self) -> Event:
        """The event as kept (no canonical bytes; see ``RoomLedger.__init__``)."""
        return _event_of(self)

    def problem(self, text: str) -> None:
        if self.problems is None:
            self.problems = []
        self.problems.append(text)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(slots=True)
class _Tips:
    """What the last full audit leaves for cheap appends: chain tips and pins."""

    tips: dict[str, _Copy | None]  # per key: the single chain tip, None if not linear
    bound: dict[str, str]
    authorized: dict[str, set[str]]
    reported: set[tuple[str, str]]
    last_row: tuple[int, str, int]
    # The order keys of the last ``INSERT_TAIL`` shown rows and the one before them
    # (``last_row`` the last): where ``try_place`` puts rows that sort before some of them.
    tail: list[tuple[int, str, int]]
    result: AuditResult
    complete: bool
    trust: _Trust
    horizon: int  # rows dated after it are held (``HOLD_AHEAD_MS``)
    held_from: int  # the earliest date among the held rows (``_NOTHING_HELD``: none)
    late: dict[int, int]  # this audit's rows placed later than their dates (``Timeline``)
    # Hashes witnessed and not in the room (``truncated-chain`` findings): one arriving
    # ends its finding, which only a full audit drops.
    unseen: frozenset[str] = frozenset()
    # The keys those findings name without a sender ("a device": none of its events was
    # in the room). The first event of one arriving names it: a full audit says whose.
    nameless: frozenset[str] = frozenset()
    # Per key: the latest date of a shown witness that names its chain's tip (section
    # 6.1). The next event of that chain dated ``WITNESS_SLACK_MS`` before it is a
    # ``dated-before-witness`` notice, which only a full audit gives.
    seen_at: dict[str, int] = field(default_factory=dict)
    # The events those notices name: a witness of one arriving may take its notice away.
    backdated: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Trust:
    """Who may speak for whom, decided before the walk in display order (section 7).

    ``roots``: per sender id without pins, the one key that nobody introduced (trust on
    first use of the *only* such key, not of the earliest-stamped one: timestamps are
    the writer's word). ``conflicts``: sender ids claimed by two or more keys that no
    authorized key introduced, with those keys. ``edges``: introductions both sides
    signed (statement and acceptance). ``signers``: sender ids that sign their events."""

    roots: dict[str, str]
    conflicts: dict[str, list[str]]
    edges: set[tuple[str, str, str]]
    signers: set[str]
    unsigned: set[str]  # sender ids with unsigned events (their verdict hangs on signers)
    settled: bool = True  # False after a partial read: no trust on first use
    # (sender, key) taken provisionally while loading (``_assess``), and the keys they
    # introduced: every row of theirs says so, also the rows an append adds.
    taken: set[tuple[str, str]] = field(default_factory=set)
    # Pinned sender ids whose keys would be a conflict for a reader that pinned nothing
    # (``AuditResult.disputed``).
    disputed: set[str] = field(default_factory=set)


_NOTHING: Mapping[str, Any] = MappingProxyType({})
# A slim ledger keeps the content of these: the audit reads member events', and the
# relation rules (``relations.py``) read relations' (small, except an edit's new text).
_KEEPS_CONTENT = frozenset({MEMBER, REACTION, EDIT, REDACTION})
# and of a file or image message its msgtype alone: the rules refuse an edit of one. One
# shared mapping per msgtype, so a room of files costs no memory for it.
_FILE_CONTENT = {t: MappingProxyType({"msgtype": t}) for t in ATTACHMENT_MSGTYPES}


class _Slimmer:
    """What a ledger shares between its copies: one string object for equal verdict
    texts, one int object per line number, and what tells one signature from another
    (``signature_id``). A whole ledger's copies (``_Kept``) keep the event as read but
    its canonical bytes (the hash stands for them once the signature was checked: 45 MB
    lighter per 100,000 events); a slim ledger (``_Columns``) keeps only what the audit
    reads — ids, sender, key, chain links, timestamp, signature digest, what the rules
    read of a member event's content and of a witness, and a relation's target. A
    message's body and its other fields are then not in memory at all: the app reads them
    from its index page by page (``SyncEngine.timeline_page``)."""

    def __init__(self, keep_bodies: bool) -> None:
        self.keep_bodies = keep_bodies
        self._shared: dict[str | None, str | None] = {None: None}
        # One int object per line number: past 256 each would be its own 32 bytes.
        self._numbers: dict[int, int] = {}

    def share(self, text: str) -> str:
        """One string object for equal verdict texts (a cache hands back a copy per row)."""
        got = self._shared.setdefault(text, text)
        assert got is not None
        return got

    def number(self, line: int) -> int:
        """One int object for equal line numbers (32 bytes an event in long segments)."""
        return self._numbers.setdefault(line, line)

    def signature_id(self, signature: str) -> str | int:
        """What tells one signature from another: the text itself in a ledger that keeps
        bodies; in a slim one a 128-bit BLAKE2b digest of it (44 bytes instead of the
        137 of the text: ~90 MB in a room of a million events). The signature was checked
        already; what is left to do with it is to tell copies apart (a replay) and to
        check that a cached line is the copy checked (``SyncEngine.timeline_page``), and
        two texts with one digest cannot be found (2**64 work)."""
        if self.keep_bodies:
            return signature
        digest = blake2b(signature.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return int.from_bytes(digest, "big")


def is_slim_copy(ev: Event) -> bool:
    """True for a slim ledger's copy of an event (``RoomLedger(keep_bodies=False)``): its
    ``raw`` holds at most the witness and its content only what the rules read (a file
    message's ``msgtype``, a relation's target), so an empty content no longer tells."""
    return "event_id" not in ev.raw


_NAME_FIELDS = ("displayname", "device_name")
# A name longer than this is kept as it is shown (``display_name_safe``): shorter ones
# as read, which costs nothing to rebuild and is what most rooms hold.
_NAME_KEPT = 4 * NAME_LIMIT


def member_content(content: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit and the roster (``room_state``) read of a member event's content,
    and nothing else, for a ledger that keeps no bodies (like ``relation_content`` for a
    relation's). A writer MAY add fields, so a hostile one pads a join to the line limit:
    kept whole, each such event held some 790 KB in the app's ledger (red team rt91).

    The membership (the parser checked it); a name (``displayname``, ``device_name``)
    when it is text, as read, or when longer than ``_NAME_KEPT`` as it is shown
    (``display_name_safe`` gives the same text of either); a key named by a device
    introduction (section 7) when it is text (the parser refused one over 512
    characters), and None when it is not: every reader asks whether the field is there,
    and treats anything but text as naming no key."""
    kept: dict[str, Any] = {"membership": content.get("membership")}
    for name in _NAME_FIELDS:
        text = content.get(name)
        if isinstance(text, str):
            kept[name] = text if len(text) <= _NAME_KEPT else display_name_safe(text)
    for name in DEVICE_FIELDS:
        if name in content:
            named = content[name]
            kept[name] = named if isinstance(named, str) else None
    return kept


def _kept_content(ev: Event) -> Mapping[str, Any]:
    if ev.type == MEMBER:
        return MappingProxyType(member_content(ev.content))
    if ev.type in _KEEPS_CONTENT:  # only the fields the rules read (``relation_content``)
        return MappingProxyType(relation_content(ev.type, ev.content))
    if ev.type == MESSAGE and is_file_message(ev.content):
        return _FILE_CONTENT[ev.content["msgtype"]]
    return _NOTHING


_fields_of = attrgetter(*Event._fields)  # one C call for the 13 fields of a copy


_own_date = attrgetter("timestamp_ms")  # where a row is placed, unless later (``_late``)


def _event_of(c: _Copy) -> Event:
    """``c.ev``: the ``Event`` a row of a result carries (made each time it is read)."""
    return _new_tuple(Event, _fields_of(c))


# A copy's (timestamp_ms, event_id): one C call, no Python frame per copy sorted.
_order_key: Callable[[_Copy], tuple[int, str]] = attrgetter("timestamp_ms", "event_id")


def _plain(c: _Copy) -> bool:
    """A row whose meaning does not hang on the rows around it, nor theirs on it: a
    message that is no reply (``try_place``; what it witnesses hangs on no order)."""
    return c.type == MESSAGE and c.parent_event_id is None


def _is_join(ev: Event | _Copy) -> bool:
    return ev.type == MEMBER and ev.content.get("membership") == "join"


def _parents_first(copies: list[_Copy]) -> list[_Copy]:
    """``copies`` in order, except that one whose chain predecessor is among them comes
    right after it: a batch shares one timestamp, so its random ids alone may put a
    device's message before its own join."""
    present = {c.hash for c in copies}
    placed: set[str] = set()
    waiting: dict[str, list[_Copy]] = {}
    out: list[_Copy] = []
    for c in copies:
        prev = c.prev_event_hash
        if prev is not None and prev in present and prev not in placed:
            waiting.setdefault(prev, []).append(c)
            continue
        stack = [c]
        while stack:
            item = stack.pop()
            out.append(item)
            placed.add(item.hash)
            stack.extend(reversed(waiting.pop(item.hash, [])))
    return out


class _Kept:
    """A whole ledger's store: its copies themselves, by row number (``RoomLedger``
    with ``keep_bodies=True``: they carry bodies, and what they cost is theirs)."""

    keeps_bodies = True

    def __init__(self, slim: _Slimmer) -> None:
        self._slim = slim
        self._copies: list[_Copy] = []
        # ``copy(row)``: the list's own look-up (a full audit asks for every row)
        self.copy: Callable[[int], _Copy] = self._copies.__getitem__
        self._slots: dict[str, int] = {}
        self.heads: array[int] = array("I")  # per event id (its slot): its copy's row

    def __len__(self) -> int:
        return len(self._copies)

    def add(
        self, path: str, line: int, ok: bool | None, why: str, ev: Event, sig: str | int
    ) -> _Copy:
        slim = self._slim
        copy = _Copy(path, slim.number(line), ok, slim.share(why), ev, sig)
        copy.row = len(self._copies)
        self._copies.append(copy)
        return copy

    def find(self, event_id: str) -> int:
        return self._slots.get(event_id, -1)

    def new_slot(self, event_id: str, row: int) -> None:
        self._slots[event_id] = len(self.heads)
        self.heads.append(row)

    def event_id(self, row: int) -> str:
        return self._copies[row].event_id

    def hash(self, row: int) -> str:
        return self._copies[row].hash

    def sig(self, row: int) -> str | int:
        return self._copies[row].sig

    def place(self, row: int) -> tuple[str, int]:
        c = self._copies[row]
        return c.path, c.line

    def timestamp(self, row: int) -> int:
        return self._copies[row].timestamp_ms

    def sender_id(self, row: int) -> str:
        return self._copies[row].sender_id

    def sender_key(self, row: int) -> str | None:
        return self._copies[row].sender_key

    def type(self, row: int) -> str:
        return self._copies[row].type

    def related(self, row: int) -> bool:
        c = self._copies[row]
        return c.parent_event_id is not None or c.type in HIDDEN_TYPES


# ``_Columns`` flags, one byte a row
_ID_WHOLE = 1  # the event id does not start with the room's id: kept whole
_PREV_NONE = 2  # no chain predecessor
_PREV_APART = 4  # a predecessor that is not the key's row before: its hash kept apart
_HASH_TEXT = 8  # a hash that is not base64 of 32 bytes (never made by the parser)
_PARENT = 16  # a reply: its parent's id is kept apart (``_parents``)
_ODD = 32  # a timestamp, room id or line number outside the columns: kept apart
_ID_TIME = 64  # the id's time is the event's timestamp (``ids.iso_utc_ms``): not kept
_ID_UUID = 128  # the id's unique part is a lower-case UUID text: kept as its 16 bytes
_OK_CODES: dict[bool | None, int] = {False: 0, True: 1, None: 2}
_OKS = (False, True, None)
_WIDER = {"B": "H", "H": "I", "I": "Q"}
# the number columns of ``_Columns._numbered``
_SENDER, _KEY, _TYPE, _PATH, _WHY, _LINE = range(6)
_b2a = binascii.b2a_base64
_a2b = binascii.a2b_base64


def _packed_hash(text: str) -> bytes | None:
    """The 32 bytes whose base64 is exactly ``text``, or None (not such a text)."""
    if len(text) != 44 or not text.isascii():
        return None
    try:
        raw = _a2b(text, strict_mode=True)
    except binascii.Error:
        return None
    if len(raw) != 32 or _b2a(raw, newline=False).decode("ascii") != text:
        return None
    return raw


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# A UUID's text as ``_uuid_text`` writes it (lower case): kept as its 16 bytes.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z").match


def _time_text(ms: int) -> str | None:
    try:
        return iso_utc_ms(ms)
    except (OverflowError, OSError, ValueError):
        return None


def _appended(column: array[int], value: int) -> array[int]:
    """``column`` with ``value`` appended: itself, or a wider copy when it is too
    narrow (numbers start at one byte: most rooms have few senders, keys and types)."""
    while True:
        try:
            column.append(value)
            return column
        except OverflowError:
            column = array(_WIDER[column.typecode], column)


class _Columns:
    """A slim ledger's store (``RoomLedger`` with ``keep_bodies=False``, the app's): what
    the audit reads of each copy, as fixed-size records in columns instead of objects.

    A copy of 20 slots with its event id, hash, timestamp and signature digest as objects
    cost about 515 bytes; here an event is about 110: its hash and signature digest as
    raw bytes, its chain link as the number of its predecessor's row (the key's row read
    before it, almost always), its timestamp as a machine integer, its sender, key, type,
    segment, line and signature verdict as numbers (most into one table of shared
    strings), its id without what can be made again — the room's id, a time that is the
    event's timestamp, a UUID text as its 16 bytes — in one byte string. What few events
    have — a reply's parent, the content the rules read, a witness's entries a reader
    reads, a predecessor that is not the row before — is kept apart, by row; never a
    padding no rule reads, and nothing of either of a line refused for its signature.

    ``copy`` makes the ``_Copy`` of a row when it is asked, equal each time (a page, a
    finding, an append, and a full audit for its chain tips, member events and witnesses:
    the audit's rules read the columns, ``RoomLedger._audit_rows``); none is kept. Rows are only
    added: a result holds row numbers (``Timeline``), and a copy found later at an
    earlier place is a new row (``RoomLedger._moved``). Event ids are looked up in an open
    addressing table of slot numbers (``find``): 4 to 8 bytes an id, not a dict entry and
    a string. Another thread may read rows while rows are added: a column replaced by a
    wider one, or the table by a larger one, is replaced whole."""

    keeps_bodies = False

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self._prefix = room_id + "::"
        self._ids = bytearray()
        self._id_ends: array[int] = array("I")
        self._hashes = bytearray()
        self._prevs: array[int] = array("I")  # predecessor's row + 1 (0: none or apart)
        self._sigs = bytearray()
        self._stamps: array[int] = array("q")
        self._numbered: list[array[int]] = [array("B") for _ in range(6)]
        self._oks = bytearray()
        self._flags = bytearray()
        self._strings: list[Any] = [None]
        self._numbers: dict[Any, int] = {None: 0}
        # per key's number: its row read last (its hash is in ``_hashes`` or ``_texts``)
        self._last: dict[int, int] = {}
        # a witness's entries that a reader reads (``witness_entries``), 64 bytes each:
        # the key's 32 bytes, then the hash's
        self._witnesses: dict[int, bytes] = {}
        self._contents: dict[int, Mapping[str, Any]] = {}
        self._parents: dict[int, str] = {}
        self._apart: dict[int, str] = {}  # predecessors' hashes not in ``_prevs``
        self._texts: dict[int, str] = {}  # hashes that are not base64 of 32 bytes
        self._odd: dict[int, tuple[int, str, int]] = {}  # row -> timestamp, room, line
        self.heads: array[int] = array("I")
        self._id_hashes: array[int] = array("I")  # per slot: its id's hash, 32 bits
        # (table, mask), replaced as one when the table grows: another thread may be
        # looking an id up (``Timeline.position_of``)
        self._index: tuple[array[int], int] = (array("I", bytes(4 * 16)), 15)

    def __len__(self) -> int:
        return len(self._flags)

    def _string(self, text: Any) -> int:
        number = self._numbers.get(text)
        if number is None:
            number = self._numbers[text] = len(self._strings)
            self._strings.append(text)
        return number

    def add(
        self, path: str, line: int, ok: bool | None, why: str, ev: Event, sig: str | int
    ) -> _Copy:
        """Keep a copy of ``ev`` read at (``path``, ``line``) as row ``len(self)``;
        returns it as ``copy`` will make it (of ``ev``'s own values: equal)."""
        row = len(self._flags)
        flags = 0
        event_id = ev.event_id
        if event_id.startswith(self._prefix):
            event_id = event_id[len(self._prefix) :]
        else:
            flags |= _ID_WHOLE
        ts = ev.timestamp_ms
        when = _time_text(ts)
        if (
            when is not None
            and event_id.startswith(when)
            and event_id[len(when) :].startswith("::")
        ):
            flags |= _ID_TIME
            event_id = event_id[len(when) + 2 :]
        if _UUID(event_id):
            flags |= _ID_UUID
            self._ids += bytes.fromhex(event_id.replace("-", ""))
        else:
            self._ids += event_id.encode("utf-8", "surrogatepass")
        try:
            self._id_ends.append(len(self._ids))
        except OverflowError:
            self._id_ends = array("Q", self._id_ends)
            self._id_ends.append(len(self._ids))
        packed = _packed_hash(ev.hash)
        if packed is None:
            flags |= _HASH_TEXT
            self._texts[row] = ev.hash
            packed = bytes(32)
        self._hashes += packed
        numbers = self._numbers
        key = numbers.get(ev.sender_key)
        if key is None:
            key = self._string(ev.sender_key)
        prev = ev.prev_event_hash
        last = self._last.get(key)
        self._last[key] = row
        if prev is None:
            flags |= _PREV_NONE
            self._prevs.append(0)
        elif last is not None and self.hash(last) == prev:
            self._prevs.append(last + 1)
        else:
            flags |= _PREV_APART
            self._apart[row] = prev
            self._prevs.append(0)
        assert isinstance(sig, int)  # a slim ledger's signature id: a 128-bit digest
        self._sigs += sig.to_bytes(16, "big")
        room_id, number = ev.room_id, line
        if 0 <= ts < 2**63 and 0 <= line < 2**32 and room_id == self.room_id:
            self._stamps.append(ts)
        else:
            flags |= _ODD
            self._odd[row] = (ts, room_id, line)
            self._stamps.append(0)
            number = 0
        sender = numbers.get(ev.sender_id)
        if sender is None:
            sender = self._string(ev.sender_id)
        kind = numbers.get(ev.type)
        if kind is None:
            kind = self._string(ev.type)
        at = numbers.get(path)
        if at is None:
            at = self._string(path)
        because = numbers.get(why)
        if because is None:
            because = self._string(why)
        numbered = self._numbered
        for which, value in (
            (_SENDER, sender),
            (_KEY, key),
            (_TYPE, kind),
            (_PATH, at),
            (_WHY, because),
            (_LINE, number),
        ):
            try:
                numbered[which].append(value)
            except OverflowError:
                numbered[which] = _appended(numbered[which], value)
        self._oks.append(_OK_CODES[ok])
        parent = ev.parent_event_id
        if parent is not None:
            flags |= _PARENT
            self._parents[row] = parent
        # Of a line refused for its signature, no rule reads a witness or content (it is
        # never shown, and its finding names its place and id): none is kept.
        raw = ev.raw
        witness: Mapping[str, Any] = _NOTHING
        content: Mapping[str, Any] = _NOTHING
        if ok is not False:
            if WITNESS_FIELD in raw:
                entries = witness_entries(raw[WITNESS_FIELD], ev.sender_key)
                if entries:  # none read: as if there were no witness (``_entries``)
                    self._witnesses[row] = b"".join(_a2b(key) + _a2b(seen) for key, seen in entries)
                    witness = MappingProxyType({WITNESS_FIELD: dict(entries)})
            content = _kept_content(ev)
            if content is not _NOTHING:
                self._contents[row] = content
        self._flags.append(flags)
        strings = self._strings
        c: _Copy = _new_copy(_Copy)
        c.raw, c.hash, c.event_id, c.room_id = witness, ev.hash, ev.event_id, room_id
        c.timestamp_ms, c.sender_id, c.type = ts, strings[sender], strings[kind]
        c.parent_event_id, c.prev_event_hash, c.signature = parent, prev, ""
        c.sender_key, c.content, c.path, c.line = strings[key], content, strings[at], line
        c.sig_ok, c.sig_why, c.sig = ok, strings[because], sig
        c.depth, c.eff, c.problems, c.row = 0, _NO_ORDER, None, row
        return c

    def _witness(self, row: int) -> Mapping[str, Any]:
        """The ``raw`` of ``row``'s copy: its witness's entries that a reader reads."""
        packed = self._witnesses[row]
        texts = [
            _b2a(packed[at : at + 32], newline=False).decode("ascii")
            for at in range(0, len(packed), 32)
        ]
        return MappingProxyType({WITNESS_FIELD: dict(zip(texts[::2], texts[1::2], strict=True))})

    def _id_at(self, row: int) -> bytes:
        ends = self._id_ends
        return bytes(self._ids[ends[row - 1] if row else 0 : ends[row]])

    def event_id(self, row: int) -> str:
        flags = self._flags[row]
        kept = self._id_at(row)
        text = _uuid_text(kept) if flags & _ID_UUID else kept.decode("utf-8", "surrogatepass")
        if flags & _ID_TIME:
            text = f"{iso_utc_ms(self.timestamp(row))}::{text}"
        return text if flags & _ID_WHOLE else self._prefix + text

    def hash(self, row: int) -> str:
        if self._flags[row] & _HASH_TEXT:
            return self._texts[row]
        at = 32 * row
        return _b2a(self._hashes[at : at + 32], newline=False).decode("ascii")

    def sig(self, row: int) -> int:
        at = 16 * row
        return int.from_bytes(self._sigs[at : at + 16], "big")

    def place(self, row: int) -> tuple[str, int]:
        odd = self._flags[row] & _ODD
        line = self._odd[row][2] if odd else self._numbered[_LINE][row]
        return self._strings[self._numbered[_PATH][row]], line

    def timestamp(self, row: int) -> int:
        return self._odd[row][0] if self._flags[row] & _ODD else self._stamps[row]

    def sender_id(self, row: int) -> str:
        return self._strings[self._numbered[_SENDER][row]]  # type: ignore[no-any-return]

    def sender_key(self, row: int) -> str | None:
        return self._strings[self._numbered[_KEY][row]]  # type: ignore[no-any-return]

    def type(self, row: int) -> str:
        return self._strings[self._numbered[_TYPE][row]]  # type: ignore[no-any-return]

    def related(self, row: int) -> bool:
        return bool(self._flags[row] & _PARENT) or self.type(row) in HIDDEN_TYPES

    def copy(self, row: int) -> _Copy:
        """The ``_Copy`` of ``row``, as ``_Kept`` would keep the slim event's."""
        flags = self._flags[row]
        strings, numbered = self._strings, self._numbered
        c: _Copy = _new_copy(_Copy)
        c.raw = self._witness(row) if row in self._witnesses else _NOTHING
        if flags & _ODD:
            ts, c.room_id, c.line = self._odd[row]
            c.timestamp_ms = ts
        else:
            c.timestamp_ms = ts = self._stamps[row]
            c.room_id, c.line = self.room_id, numbered[_LINE][row]
        ends = self._id_ends
        kept = bytes(self._ids[ends[row - 1] if row else 0 : ends[row]])
        if flags & _ID_UUID:
            h = kept.hex()
            text = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        else:
            text = kept.decode("utf-8", "surrogatepass")
        if flags & _ID_TIME:
            text = f"{iso_utc_ms(ts)}::{text}"
        c.event_id = text if flags & _ID_WHOLE else self._prefix + text
        hashes = self._hashes
        if flags & _HASH_TEXT:
            c.hash = self._texts[row]
        else:
            at = 32 * row
            c.hash = _b2a(hashes[at : at + 32], newline=False).decode("ascii")
        c.sender_id = strings[numbered[_SENDER][row]]
        c.type = strings[numbered[_TYPE][row]]
        c.parent_event_id = self._parents[row] if flags & _PARENT else None
        if flags & (_PREV_NONE | _PREV_APART):
            c.prev_event_hash = None if flags & _PREV_NONE else self._apart[row]
        else:
            before = self._prevs[row] - 1
            if self._flags[before] & _HASH_TEXT:
                c.prev_event_hash = self._texts[before]
            else:
                at = 32 * before
                c.prev_event_hash = _b2a(hashes[at : at + 32], newline=False).decode("ascii")
        c.signature = ""
        c.sender_key = strings[numbered[_KEY][row]]
        c.content = self._contents.get(row, _NOTHING) if self._contents else _NOTHING
        c.path = strings[numbered[_PATH][row]]
        c.sig_ok = _OKS[self._oks[row]]
        c.sig_why = strings[numbered[_WHY][row]]
        at = 16 * row
        c.sig = int.from_bytes(self._sigs[at : at + 16], "big")
        c.depth = 0
        c.eff = _NO_ORDER
        c.problems = None
        c.row = row
        return c

    # -- event ids: an open addressing table of slot numbers + 1 (0: empty) -------------

    def find(self, event_id: str) -> int:
        """The slot of ``event_id`` (``new_slot``), or -1."""
        h = hash(event_id) & 0xFFFFFFFF
        (table, mask), heads, hashes = self._index, self.heads, self._id_hashes
        i = h & mask
        while True:
            slot = table[i] - 1
            if slot < 0:
                return -1
            if hashes[slot] == h and self.event_id(heads[slot]) == event_id:
                return slot
            i = (i + 1) & mask

    def new_slot(self, event_id: str, row: int) -> None:
        """Give ``event_id`` (not found) the next slot, whose copy is at ``row``."""
        h = hash(event_id) & 0xFFFFFFFF
        self._id_hashes.append(h)
        self.heads.append(row)
        table, mask = self._index
        if 2 * len(self.heads) <= len(table):
            _put(table, mask, h, len(self.heads))
            return
        size = 2 * len(table)
        table, mask = array("I", bytes(4 * size)), size - 1
        for slot, at in enumerate(self._id_hashes):
            _put(table, mask, at, slot + 1)
        self._index = (table, mask)


def _put(table: array[int], mask: int, h: int, number: int) -> None:
    i = h & mask
    while table[i]:
        i = (i + 1) & mask
    table[i] = number


_new_copy = object.__new__
_EMPTY = _Kept(_Slimmer(True))  # the store of a timeline without rows


class RoomLedger:
    """Everything read so far about one room, ready to be audited."""

    def __init__(
        self,
        room_id: str,
        checker: SignatureChecker | None = None,
        *,
        keep_bodies: bool = True,
    ) -> None:
        """``keep_bodies=False``: keep only what the audit needs of each event (see
        ``_Slimmer``); the ``Assessed.event`` of its results then carries no message
        content and no raw fields but a witness: for a caller that reads bodies from
        elsewhere (the app's index), never for one that prints or re-sends events."""
        self.room_id = room_id
        self.checker = checker or SignatureChecker()
        self._slim = _Slimmer(keep_bodies)
        # Every copy kept, by row number; per event id (its slot, in the order ids were
        # first read) the row of its copy (``heads``) or, for distinct copies of one id
        # (a replay), their rows (``_multi``).
        self._store: _Kept | _Columns = _Kept(self._slim) if keep_bodies else _Columns(room_id)
        self._multi: dict[int, list[int]] = {}
        # Only for event ids with distinct copies: where in its list of copies the
        # copy of each (hash, signature) is.
        self._distinct: dict[str, dict[tuple[str, str | int], int]] = {}
        # Per slot, rows that an identical copy at an earlier place replaced
        # (``_moved``): an older result may still show them.
        self._replaced: dict[int, list[int]] = {}
        self._seen_paths: set[str] = set()
        self._refused: set[str] = set()  # of those, objects over the size limit: not read
        self._findings: list[Finding] = []
        self._new_findings: list[Finding] = []
        self._replayed = False
        self._tips: _Tips | None = None
        self._verdicts = _Verdicts()

    @property
    def segment_count(self) -> int:
        return len(self._seen_paths)

    @property
    def result(self) -> AuditResult | None:
        """The latest result: the last audit's, or the new one an append made of it."""
        return self._tips.result if self._tips is not None else None

    @property
    def event_count(self) -> int:
        return len(self._store.heads)

    def has_segment(self, path: str) -> bool:
        return path in self._seen_paths

    def refused(self, path: str) -> bool:
        """Whether ``path`` is kept only as an object refused unread (over the size
        limit): none of its bytes were read or checked here."""
        return path in self._refused

    @property
    def has_unreadable(self) -> bool:
        """Whether an object that stands where history could be was not read (a finding
        ``segment-unreadable``, or ``segment-too-large``: only ever reported for an
        object at a segment's name): then the history is not whole (section 16). A
        member who replaces someone's segments with oversized files must not get an
        impostor trusted on first use in the gap they leave."""
        return any(f.kind in _UNREAD_HISTORY for f in self._findings)

    def add_segment(self, path: str, data: bytes) -> DecodedSegment:
        """Decode, check signatures and keep one segment. Re-adding a path is a no-op."""
        if path in self._seen_paths:
            return DecodedSegment(path)
        decoded = decode_segment(path, data, self.room_id)
        self.add_decoded(decoded)
        return decoded

    def add_segments(self, segments: Iterable[tuple[str, bytes]]) -> list[DecodedSegment]:
        """Bulk ``add_segment`` with the cyclic garbage collector paused.

        Decoding creates only acyclic objects, yet the collector would scan the growing
        room again and again; pausing it makes a cold read of a large room about a fifth
        faster. The collector's previous state is restored.
        """
        with gc_paused():
            return [self.add_segment(path, data) for path, data in segments]

    def add_decoded(self, decoded: DecodedSegment) -> None:
        """Keep a decoded segment, checking its signatures here."""
        check = self.checker.check
        self.add_prepared(PreparedSegment(decoded, [check(loc.event) for loc in decoded.events]))

    def add_prepared(self, prepared: PreparedSegment) -> list[_Copy]:
        """Keep a segment prepared elsewhere; returns the copies that are new."""
        decoded = prepared.decoded
        if decoded.path in self._seen_paths:
            return []
        self._seen_paths.add(decoded.path)
        self._findings.extend(decoded.findings)
        self._new_findings.extend(decoded.findings)
        if not decoded.events and any(f.kind is Kind.SEGMENT_TOO_LARGE for f in decoded.findings):
            self._refused.add(decoded.path)
        added: list[_Copy] = []
        slim = self._slim
        store = self._store
        for located, (ok, why) in zip(decoded.events, prepared.verdicts, strict=True):
            ev = located.event
            slot = store.find(ev.event_id)
            sig = slim.signature_id(ev.signature)
            if slot < 0:
                copy = store.add(located.path, located.line, ok, why, ev, sig)
                store.new_slot(ev.event_id, copy.row)
                added.append(copy)
                continue
            # An identical copy is de-duplicated to the first in (path, line) order, not
            # the first read (section 6 step 1): a cold read goes newest names first, in
            # any order of workers, a rebuild from the index in path order, and a copy
            # planted elsewhere must not move a row (or a replay finding) on a restart.
            rows = self._multi.get(slot)
            if rows is None:
                got = store.heads[slot]
                if store.hash(got) == ev.hash and store.sig(got) == sig:
                    if place_order(located.path, located.line) < place_order(*store.place(got)):
                        store.heads[slot] = self._moved(slot, got, located, ok, why, ev, sig)
                    continue
                rows = [got]
            # Distinct copies of one id are looked up in a mapping: unsigned copies cost
            # nothing to write, and comparing each with all before it was quadratic
            # (20,000 copies: 10 s).
            seen = self._distinct.get(ev.event_id)
            if seen is None:
                first = rows[0]  # the only one so far
                seen = self._distinct[ev.event_id] = {(store.hash(first), store.sig(first)): 0}
            at = seen.get((ev.hash, sig))
            if at is None:
                seen[(ev.hash, sig)] = len(rows)
                copy = store.add(located.path, located.line, ok, why, ev, sig)
                rows.append(copy.row)
                self._multi[slot] = rows
                added.append(copy)
                self._replayed = True
            elif place_order(located.path, located.line) < place_order(*store.place(rows[at])):
                rows[at] = self._moved(slot, rows[at], located, ok, why, ev, sig)
        return added

    def _moved(
        self,
        slot: int,
        kept: int,
        located: Located,
        ok: bool | None,
        why: str,
        ev: Event,
        sig: str | int,
    ) -> int:
        """The row to keep instead of row ``kept``: the identical copy read at
        ``located``, which comes first in (path, line) order. A new row: the last audit's
        results hold ``kept`` (never changed once handed out), and what it derived from
        ``kept`` (its row, its place, a chain tip, a replay finding) names ``kept``'s
        place; only a full audit says it anew, so no append is made on top of that
        audit."""
        self._replayed = True  # ``try_place``: None, a full audit
        store = self._store
        copy = store.add(located.path, located.line, ok, why, ev, sig)
        assert copy.hash == store.hash(kept) and copy.sig == store.sig(kept)
        self._replaced.setdefault(slot, []).append(kept)
        return copy.row

    def rows_of(self, event_id: str) -> list[int]:
        """The rows of every copy of ``event_id`` kept (``Timeline.position_of``)."""
        store = self._store
        slot = store.find(event_id)
        if slot < 0:
            return []
        rows = self._multi.get(slot)
        out = list(rows) if rows is not None else [store.heads[slot]]
        return out + self._replaced.get(slot, [])

    @property
    def keeps_bodies(self) -> bool:
        """Whether the events of this ledger's results are whole (see ``__init__``)."""
        return self._slim.keep_bodies

    def signature_id(self, signature: str) -> str | int:
        """What this ledger keeps to tell ``signature`` from another (a row's
        ``Timeline.signature_ids_at``): the text, or in a slim ledger its digest."""
        return self._slim.signature_id(signature)

    def add_finding(self, finding: Finding) -> None:
        self._findings.append(finding)

    def audit(
        self,
        pinned: Mapping[str, Iterable[str]] | None = None,
        *,
        complete: bool = True,
        partial: bool = False,
        now_ms: int | None = None,
    ) -> AuditResult:
        # The audit allocates only acyclic values; without the pause the cyclic collector
        # rescans the whole room several times per audit (3x slower on 100,000 events).
        with gc_paused():
            return self._audit(pinned, complete, partial, self._horizon_at(now_ms))

    def _horizon_at(self, now_ms: int | None) -> int:
        """The latest date shown by the reader's clock ``now_ms`` (None: no clock,
        nothing held). It never moves back within a ledger: a clock set back does not
        take rows away that were shown."""
        if now_ms is None:
            return _NO_HORIZON
        last = self._tips.horizon if self._tips is not None else 0
        return max(last, now_ms + HOLD_AHEAD_MS)

    @property
    def horizon_ms(self) -> int | None:
        """The latest date the last audit shows (its clock plus ``HOLD_AHEAD_MS``, or
        further if the clock was set back since): what a search of this room may find.
        None: not audited with a clock (nothing held)."""
        if self._tips is None or self._tips.horizon == _NO_HORIZON:
            return None
        return self._tips.horizon

    @property
    def held_from_ms(self) -> int | None:
        """The earliest date among rows the last audit held back (``HOLD_AHEAD_MS``):
        an audit by a clock at that date minus ``HOLD_AHEAD_MS`` shows it. None: none."""
        if self._tips is None or self._tips.held_from == _NOTHING_HELD:
            return None
        return self._tips.held_from

    def _audit(
        self,
        pinned: Mapping[str, Iterable[str]] | None,
        complete: bool,
        partial: bool,
        horizon: int,
    ) -> AuditResult:
        """Assess every event. ``pinned`` maps sender ids to keys this device pinned before.

        ``complete=False`` says older history is still being fetched (newest first): a
        missing chain predecessor is then *pending*, not a gap, and is counted in
        ``pending_gaps`` until back-fill reaches it or the history is complete.

        ``partial=True`` (with ``complete``) says part of the room could not be read: the
        final rules apply, but nobody is trusted on first use — the unread part may hold
        another key of the same sender (section 16). Pinned keys still count.

        ``now_ms``: the reader's clock. A row dated more than ``HOLD_AHEAD_MS`` after it
        is held back (a ``dated-ahead`` finding), and does not hold its chain's later rows
        back with it (section 9). None: every row is shown.
        """
        store = self._store
        # A slim ledger: the same rules over row numbers, without a copy per row; but one
        # holding a date, room id, line or hash the columns keep apart (never made by
        # the parser), whose rows are read as copies here like a whole ledger's.
        if isinstance(store, _Columns) and not store._odd and not store._texts:
            return self._audit_rows(store, pinned, complete, partial, horizon)
        self._new_findings = []
        self._replayed = False
        findings = list(self._findings)
        invalid: list[Assessed] = []
        unsigned: list[_Copy] = []
        by_key: dict[str, list[_Copy]] = defaultdict(list)
        repeated: set[str] = set()

        copy_of = store.copy
        multi = self._multi
        if not multi:  # no event id with distinct copies (no replay): one copy each
            for c in map(copy_of, store.heads):
                ok = c.sig_ok
                if ok is None:
                    unsigned.append(c)
                elif ok is False:
                    self._invalid(c, invalid, findings)
                else:
                    by_key[c.sender_key or ""].append(c)
        for slot, row in enumerate(store.heads if multi else ()):
            choice: _Copy | None = None
            several = multi.get(slot) if multi else None
            if several is None:
                c = copy_of(row)
                if c.sig_ok is False:
                    self._invalid(c, invalid, findings)
                else:
                    choice = c
            else:
                for choice in self._choose(several, invalid, findings, repeated):
                    if choice.sig_ok is None:
                        unsigned.append(choice)
                    else:
                        by_key[choice.sender_key or ""].append(choice)
                continue
            if choice is None:
                continue
            if choice.sig_ok is None:
                unsigned.append(choice)
            else:
                by_key[choice.sender_key or ""].append(choice)

        # Once the whole history is read, the witnesses (section 6.1) are checked against
        # every event's hash and the date of what follows it in its chain.
        after: dict[str, int] | None = {} if complete else None
        chained: list[_Copy] = []
        tips: dict[str, _Copy | None] = {}
        bound: dict[str, str] = {}
        pending: list[int] = [0]
        for key, copies in by_key.items():
            kept, tip, sender = self._check_chain(
                key, copies, findings, invalid, complete, pending, horizon, after
            )
            chained.extend(kept)
            tips[key] = tip
            bound[key] = sender
        rows = [((c.timestamp_ms, c.event_id, 0), c, False) for c in unsigned]
        rows += [((c.eff[0], c.eff[1], c.depth), c, True) for c in chained]
        rows.sort(key=itemgetter(0))
        if repeated or None in tips.values():
            # (path, line) last (section 9): two copies of one id (two keys), or siblings
            # of a fork placed at their predecessor's key, can tie on the rest; the list's
            # order before the sort is the reading order, or a chain's own (date, id)
            # order. Only then (a fork makes a chain's tip None): that key sorted a
            # million shuffled rows in 4.0 s instead of 1.5, with 64 MB more.
            rows.sort(key=lambda r: (r[0], place_order(r[1].path, r[1].line)))
        # Held rows sort last: a row is held by its own date, and a shown row's place is
        # never later than the horizon (a held predecessor does not move it).
        cut = len(rows)
        while cut and rows[cut - 1][0][0] > horizon:
            cut -= 1
        held = [c for _, c, _ in rows[cut:]]
        del rows[cut:]
        # Only a chain tip's order is read again (by try_append); the next full audit
        # computes every other one afresh. 90 bytes an event less between audits. A row
        # placed later than its own date (after a predecessor dated later) has its place
        # noted for this audit's timeline (``Timeline.placed_by``): the next audit moves
        # the copies, not this audit's places.
        ends = {id(t) for t in tips.values() if t is not None}
        late: dict[int, int] = {}
        keeps = store.keeps_bodies  # (a slim ledger's copies are dropped after the audit)
        for c in chained:
            if c.eff[0] != c.timestamp_ms:
                late[c.row] = c.eff[0]
            elif keeps and id(c) not in ends:
                c.eff, c.depth = _NO_ORDER, 0
        authorized: dict[str, set[str]] = {s: set(keys) for s, keys in (pinned or {}).items()}
        trust = _decide_trust(chained, bound, set(authorized), complete)
        _vouched_back(authorized, trust.edges)
        trust.settled = not partial
        trust.unsigned.update(c.sender_id for c in unsigned)
        reported: set[tuple[str, str]] = set()
        shown, codes = self._assess(
            rows, authorized, reported, findings, complete, trust, self._verdicts
        )
        tail = [r[0] for r in rows[-_TAIL_KEPT:]]
        return self._finish(
            (shown, codes, late, repeated),
            held,
            invalid,
            findings,
            pending[0],
            (tips, bound, authorized, reported, trust),
            tail,
            None if after is None else (chained, after, None),
            complete,
            horizon,
        )

    def try_append(self, added: list[_Copy], now_ms: int | None = None) -> list[Assessed] | None:
        """``try_place`` for rows that sort after every shown row only (None otherwise):
        for a caller whose positions must never move."""
        placed = self._place(added, now_ms, insert=False)
        return None if placed is None else placed.rows

    def try_place(self, added: list[_Copy], now_ms: int | None = None) -> Placed | None:
        """Assess copies just added on top of the last audit, if that is exact.

        The common case — new events that continue their device's chain and sort after
        everything shown — costs O(new events) instead of a full audit. Returns None when
        anything else happened (a replay, a fork, an event sorting into the past, a new
        segment-level finding…): the caller then runs ``audit()``. The last result is
        left as it was; ``result`` is a new one with the appended rows. Nothing added
        (a segment read twice): ``result`` stays the very same object, so a front end that
        compares the result it was handed with the engine's latest by identity still
        finds them equal (a copy nobody is ever told about would look newer forever). A
        new segment of copies read before (a retried write) adds no row but one segment:
        a new result then counts it, with the same rows and ``audit_number``.

        ``now_ms`` as for ``audit``: a new row dated past the horizon is held back and
        stays incremental (it sorts after every shown row, and a far-future row does not
        make every later message a full audit); a held row whose time has come needs a
        full audit (None). None keeps the last audit's horizon.

        New rows that sort before some of the last ``INSERT_TAIL`` shown rows (behind a
        row dated a little ahead: shown, it sorts last until its date) are placed where a
        full audit places them, when that is provably the same: the new rows go in one
        place, and they and the rows they go before are plain messages (no relation,
        reply, member event or witness: nothing whose meaning hangs on the order) of
        different senders (a sender's verdicts are decided walking their rows in order,
        section 8). The rows from ``at`` on then move, and the result has a new
        ``audit_number``. Anything else is None.
        """
        return self._place(added, now_ms, insert=True)

    def _place(self, added: list[_Copy], now_ms: int | None, insert: bool) -> Placed | None:
        state = self._tips
        if state is None or self._replayed or self._new_findings:
            return None
        horizon = state.horizon if now_ms is None else self._horizon_at(now_ms)
        if state.held_from <= horizon:
            return None  # a held row is shown now: its chain's later rows move after it
        result = state.result
        timeline = result.timeline
        assert isinstance(timeline, Timeline)  # the ledger's own results hold one
        if not added:
            state.horizon = horizon
            if result.segments != self.segment_count:
                # A new segment of copies read before (a retried write): no row, but one
                # segment more, as a full audit counts them (a new result, same rows).
                state.result = replace(result, segments=self.segment_count)
            return Placed(len(timeline), [])
        if state.unseen and any(c.hash in state.unseen for c in added):
            return None  # a witnessed event came after all: its finding goes (a full audit)
        staged: list[tuple[tuple[int, str, int], _Copy, bool]] = []
        tips = dict(state.tips)
        bound = dict(state.bound)
        last: tuple[int, str, int] | None = None  # the last new row's order
        invalid: list[_Copy] = []
        trust = state.trust
        newcomers: set[str] = set()
        unsigned_from: set[str] = set()
        held: list[_Copy] = []
        # Witnesses of chain tips (section 6.1) and what follows their tips now: a
        # ``dated-before-witness`` notice is a full audit's (``_check_witnesses``).
        watch = state.complete
        seen_at = dict(state.seen_at) if watch else state.seen_at
        named: list[tuple[_Copy, str, _Copy]] = []  # a witness, the key, the tip it names
        following: dict[str, _Copy] = {}  # a tip's hash -> the new event after it
        for c in _parents_first(sorted(added, key=_order_key)):
            ev = c
            if c.sig_ok is False:
                invalid.append(c)
                continue
            if _introduces(ev):
                return None  # introductions are decided by a full audit
            if WITNESS_FIELD in ev.raw:
                if not _witnessed_at_hand(c, state.tips, tips):
                    return None  # a witnessed event perhaps missing: a full audit says
                if watch and c.sig_ok and not _watch_witness(c, state, tips, horizon, named):
                    return None  # it may take a dated-before-witness notice away
            own = (ev.timestamp_ms, ev.event_id)
            if c.sig_ok is None:
                if ev.sender_id in newcomers:
                    return None
                unsigned_from.add(ev.sender_id)
                row = (own[0], own[1], 0)
            else:
                key = ev.sender_key or ""
                if key not in tips:
                    if key in state.nameless:
                        return None  # a truncated-chain finding names its sender now
                    # A new device of someone already known can start a conflict over their
                    # id, or make earlier unsigned lines under it impersonations: only a
                    # newcomer's first join (a new chain root) stays incremental.
                    sender = ev.sender_id
                    if (
                        ev.prev_event_hash is not None
                        or not _is_join(ev)
                        or sender in trust.signers
                        or sender in trust.unsigned
                        or sender in state.authorized
                        or sender in newcomers
                    ):
                        return None
                    newcomers.add(sender)
                    bound[key] = sender
                    c.eff, c.depth = own, 0
                else:
                    tip = tips[key]
                    if tip is None or ev.prev_event_hash != tip.hash or ev.sender_id != bound[key]:
                        return None
                    if watch:
                        if ev.timestamp_ms + WITNESS_SLACK_MS < seen_at.pop(key, -1):
                            return None  # dated before a witness of its predecessor
                        following[tip.hash] = c
                    if tip.timestamp_ms > horizon:  # a held predecessor does not place it
                        c.eff, c.depth = own, 0
                    else:
                        c.eff, c.depth = max(own, tip.eff), tip.depth + 1
                tips[key] = c
                row = (c.eff[0], c.eff[1], c.depth)
            if own[0] > horizon:
                held.append(c)
                continue
            if last is not None and row <= last:
                return None
            last = row
            staged.append((row, c, c.sig_ok is not None))
        if newcomers & unsigned_from:
            return None
        for w, key, event in named:
            after = following.get(event.hash)
            if after is not None:
                if after.timestamp_ms + WITNESS_SLACK_MS < w.timestamp_ms:
                    return None  # dated before this witness of its predecessor
            elif tips.get(key) is event and w.timestamp_ms > seen_at.get(key, -1):
                seen_at[key] = w.timestamp_ms
        at, moved = len(timeline), 0
        tail = state.tail
        if staged and staged[0][0] <= state.last_row:
            if not insert:
                return None
            moved = self._insertable(staged, tail, timeline)
            if not moved:
                return None
            at -= moved
        trust.signers |= newcomers
        trust.unsigned |= unsigned_from
        findings: list[Finding] = []
        shown, codes = self._assess(
            staged,
            state.authorized,
            state.reported,
            findings,
            state.complete,
            trust,
            self._verdicts,
        )
        late = state.late  # shared by this audit's results: each looks up its own rows
        pairs = self._verdicts.pairs
        new: list[Assessed] = []
        for (_, c, _), code in zip(staged, codes, strict=True):
            if c.eff is not _NO_ORDER and c.eff[0] != c.timestamp_ms:
                late[c.row] = c.eff[0]
            new.append(_new_tuple(Assessed, (_event_of(c), *pairs[code], c.path, c.line)))
        refused: list[Assessed] = []
        for c in invalid:
            self._invalid(c, refused, findings)
        findings.extend(_held_finding(c) for c in held)
        # A new result (the old one may be on its way to another thread, or read there):
        # copying the lists of references costs a few milliseconds at a million events.
        keys = [row for row, _, _ in staged]
        if moved:
            placed = timeline.inserted(at, shown, codes, late)
            number = next(_audit_numbers)  # the rows from ``at`` on moved
            keep = len(tail) - moved
            state.tail = (tail[:keep] + keys + tail[keep:])[-_TAIL_KEPT:]
        else:
            placed = timeline.extended(shown, codes, late)
            number = result.audit_number
            state.tail = (tail + keys)[-_TAIL_KEPT:]
            if keys:
                state.last_row = keys[-1]
        state.result = replace(
            result,
            timeline=placed,
            invalid=result.invalid + refused,
            findings=result.findings + findings,
            segments=self.segment_count,
            authorized=_frozen(state.authorized),
            audit_number=number,
        )
        state.tips, state.bound = tips, bound
        state.seen_at = seen_at
        state.horizon = horizon
        state.held_from = min([state.held_from, *(c.timestamp_ms for c in held)])
        self._new_findings = []
        return Placed(at, new, moved)

    def _choose(
        self,
        rows: list[int],
        invalid: list[Assessed],
        findings: list[Finding],
        repeated: set[str],
    ) -> list[_Copy]:
        """The copies shown of an event id read with distinct contents (a replay, section 6
        step 1), each invalid one and the finding said: copies are made of its rows."""
        copy_of = self._store.copy
        # sorted anew, not in place: ``_distinct`` holds positions in the list
        copies = sorted(map(copy_of, rows), key=lambda c: place_order(c.path, c.line))
        event_id = copies[0].event_id
        for c in copies:
            if c.sig_ok is False:
                self._invalid(c, invalid, findings)
        # A copy whose signature checked out is shown before one that carries no
        # key; of those, the first of each signing key (another member may sign
        # an event of their own under this id: it must not hide this one).
        good = [c for c in copies if c.sig_ok]
        chosen: list[_Copy] = []
        if good:
            first_of: dict[str, _Copy] = {}
            for c in good:
                first_of.setdefault(c.sender_key or "", c)
            chosen = list(first_of.values())
        else:
            chosen = [c for c in copies if c.sig_ok is None][:1]
        others = ", ".join(c.where for c in copies[1:MAX_LISTED])
        if len(copies) > MAX_LISTED:
            others += f" and {len(copies) - MAX_LISTED:,} more"
        if len(chosen) > 1:
            repeated.add(event_id)
            names = ", ".join(
                f"{c.sender_id} {(c.sender_key or '')[:8]}…" for c in chosen[:MAX_LISTED]
            )
            shown_how = (
                f"signed by {len(chosen)} devices ({names}); each device's copy is "
                "shown; relations that name this id are ignored"
            )
        else:
            shown_how = "only one copy is shown"
        findings.append(
            Finding(
                Kind.REPLAY,
                f"event id appears {len(copies)} times with different contents "
                f"(also at {others}); {shown_how}",
                copies[0].path,
                copies[0].line,
                event_id,
            )
        )
        return chosen

    # -- the audit of a slim ledger, over row numbers ----------------------------------

    def _audit_rows(
        self,
        store: _Columns,
        pinned: Mapping[str, Iterable[str]] | None,
        complete: bool,
        partial: bool,
        horizon: int,
    ) -> AuditResult:
        """``_audit`` for a slim ledger whose rows are all in the columns (no date, room
        id, line or hash kept apart): the same rules, over row numbers. Chains are row
        links (``_Columns._prevs``; a predecessor kept apart is looked up by its 32 bytes),
        order is by timestamp with ids read only for ties, senders and keys are compared
        as numbers; a copy is made only for a finding, a chain tip, a member event (the
        trust rules read their content), a witness, and every row of a key whose chain is
        not one simple line per root (a fork, a sender mismatch, a hash twice: the key's
        chain is then checked on copies, by ``_check_chain`` itself). Its verdicts are
        ``_audit``'s (every protocol test compares this ledger's with a whole one's)."""
        self._new_findings = []
        self._replayed = False
        findings = list(self._findings)
        invalid: list[Assessed] = []
        unsigned: list[int] = []
        by_num: dict[int, list[int]] = {}
        repeated: set[str] = set()
        copy_of = store.copy
        oks, key_of = store._oks, store._numbered[_KEY]
        multi = self._multi
        heads = store.heads
        for slot, row in enumerate(heads) if multi else zip(itertools.repeat(-1), heads):
            several = multi.get(slot) if multi else None
            if several is None:
                ok = oks[row]
                if ok == 1:
                    got = by_num.get(key_of[row])
                    if got is None:
                        by_num[key_of[row]] = [row]
                    else:
                        got.append(row)
                elif ok == 2:
                    unsigned.append(row)
                else:
                    self._invalid(copy_of(row), invalid, findings)
                continue
            for choice in self._choose(several, invalid, findings, repeated):
                if choice.sig_ok is None:
                    unsigned.append(choice.row)
                else:
                    by_num.setdefault(key_of[choice.row], []).append(choice.row)
        strings = store._strings
        by_key: dict[str, list[int]] = {}
        for number, rows in by_num.items():
            by_key.setdefault(strings[number] or "", []).extend(rows)
        del by_num

        chains = _RowChains(store, complete, horizon, findings, invalid)
        tips: dict[str, _Copy | None] = {}
        bound: dict[str, str] = {}
        for key, rows in by_key.items():
            tips[key], bound[key] = chains.check(key, rows)
        del by_key
        chained = chains.chained
        stamps, effts = store._stamps, chains.effts
        for row in unsigned:
            effts[row] = stamps[row]
            chains.effrow[row] = row
        order = unsigned + chained
        order.sort(key=effts.__getitem__)
        forked = None in tips.values()
        place = store.place
        eff_id, depth = chains.eff_id, chains.depth
        if repeated or forked:
            # (path, line) in ``place_order``, as ``_audit`` sorts them
            _sort_ties(order, effts, lambda r: (eff_id(r), depth[r], place_order(*place(r))))
        else:
            _sort_ties(order, effts, lambda r: (eff_id(r), depth[r]))
        cut = len(order)
        while cut and effts[order[cut - 1]] > horizon:
            cut -= 1
        held = [copy_of(r) for r in order[cut:]]
        del order[cut:]
        late = chains.late
        member = store._numbers.get(MEMBER, -1)
        types = store._numbered[_TYPE]
        problems = chains.problems
        members = [chains.copy(r) for r in chained if types[r] == member]
        authorized: dict[str, set[str]] = {s: set(keys) for s, keys in (pinned or {}).items()}
        trust = _decide_trust(members, bound, set(authorized), complete)
        del members
        _vouched_back(authorized, trust.edges)
        trust.settled = not partial
        senders = store._numbered[_SENDER]
        trust.unsigned.update(strings[senders[r]] for r in unsigned)
        reported: set[tuple[str, str]] = set()
        codes = _assess_rows(
            store, order, problems, authorized, reported, findings, complete, trust, self._verdicts
        )
        witness: _WitnessCheck | None = None
        if chains.after is not None:
            kept = store._witnesses  # only witnesses with an entry a reader reads
            witnesses = [chains.copy(r) for r in chained if r in kept] if kept else []
            witness = (witnesses, chains.after, lambda named: chains.around(named, witnesses))
        tail = [chains.order_key(r) for r in order[-_TAIL_KEPT:]]
        return self._finish(
            (array("I", order), codes, late, repeated),
            held,
            invalid,
            findings,
            chains.pending,
            (tips, bound, authorized, reported, trust),
            tail,
            witness,
            complete,
            horizon,
        )

    def _finish(
        self,
        shown: tuple[array[int], array[int], dict[int, int], set[str]],
        held: list[_Copy],
        invalid: list[Assessed],
        findings: list[Finding],
        pending: int,
        walked: tuple[
            dict[str, _Copy | None],
            dict[str, str],
            dict[str, set[str]],
            set[tuple[str, str]],
            _Trust,
        ],
        tail: list[tuple[int, str, int]],
        witness: _WitnessCheck | None,
        complete: bool,
        horizon: int,
    ) -> AuditResult:
        """The end of a full audit, over copies (``_audit``) or over rows
        (``_audit_rows``) alike: its timeline, the held rows' findings, the witnesses'
        check, the result, and what the next appends start from (``_Tips``). ``shown``
        the shown rows (numbers of the store's copies) in order, their verdict codes, the
        rows placed later than their own dates and the ids with good copies under two
        keys; ``walked`` the chain tips, bound keys, authorised keys, reported findings
        and the trust walk; ``tail`` the order keys of the last shown rows kept
        (``_TAIL_KEPT``); ``witness`` what ``_check_witnesses`` reads (None: the history
        is not complete, nothing checked). Findings are added in that order: the held
        rows', then the witnesses'."""
        rows, codes, late, repeated = shown
        tips, bound, authorized, reported, trust = walked
        timeline = Timeline(
            self,
            rows,
            codes,
            self._verdicts.pairs,
            late=late,
            repeated=frozenset(repeated),
            complete=complete,
        )
        for c in held:
            findings.append(_held_finding(c))
        witnessed = _Witnessed()
        if witness is not None:
            witnesses, after, around = witness
            witnessed = _check_witnesses(witnesses, bound, tips, after, horizon, findings, around)
        last_row = tail[-1] if tail else (-1, "", 0)  # the last shown row's order key
        invalid.sort(key=lambda a: place_order(a.path, a.line))
        result = AuditResult(
            self.room_id,
            timeline,
            invalid,
            findings,
            self.segment_count,
            pending,
            _frozen(authorized),
            next(_audit_numbers),
            frozenset(trust.edges),
            frozenset(trust.conflicts.keys() | trust.disputed),
        )
        held_from = min((c.timestamp_ms for c in held), default=_NOTHING_HELD)
        self._tips = _Tips(
            tips,
            bound,
            authorized,
            reported,
            last_row,
            tail,
            result,
            complete,
            trust,
            horizon,
            held_from,
            late,
            witnessed.unseen,
            witnessed.nameless,
            witnessed.seen_at,
            witnessed.backdated,
        )
        return result

    @staticmethod
    def _insertable(
        staged: list[tuple[tuple[int, str, int], _Copy, bool]],
        tail: list[tuple[int, str, int]],
        timeline: Timeline,
    ) -> int:
        """How many of the last shown rows ``staged`` (in order, sorting before the last
        one) go before, when a full audit provably places them there and says of every
        row what it said (``try_place``); 0 when not."""
        first, final = staged[0][0], staged[-1][0]
        j = bisect_left(tail, first)
        if j == len(tail) or tail[j] == first or final >= tail[j]:
            return 0  # an order key twice (never made), or new rows on both sides of one
        if j == 0 and len(tail) < len(timeline):
            return 0  # perhaps further back than the rows whose order is kept
        moved = len(tail) - j
        if moved > INSERT_TAIL:
            return 0
        jumped = [timeline._copy(i) for i in range(len(timeline) - moved, len(timeline))]
        senders = {c.sender_id for c in jumped}
        if not all(_plain(c) for c in jumped):
            return 0
        if any(not _plain(c) or c.sender_id in senders for _, c, _ in staged):
            return 0
        return moved

    @staticmethod
    def _invalid(c: _Copy, invalid: list[Assessed], findings: list[Finding]) -> None:
        invalid.append(Assessed(c.ev, TrustState.INVALID, c.sig_why, c.path, c.line))
        findings.append(
            Finding(
                Kind.INVALID_SIGNATURE,
                f"{c.sig_why}; event not shown",
                c.path,
                c.line,
                c.event_id,
            )
        )

    # -- chains -------------------------------------------------------------------------

    @staticmethod
    def _check_chain(
        key: str,
        copies: list[_Copy],
        findings: list[Finding],
        invalid: list[Assessed],
        complete: bool,
        pending: list[int],
        horizon: int,
        after: dict[str, int] | None = None,
    ) -> tuple[list[_Copy], _Copy | None, str]:
        """Check one device key's chain; set each kept copy's effective order and depth.

        Returns the kept copies, the chain's single tip (None when it is not a simple
        line) and the sender id the key is bound to. ``after`` (None: not asked) gets the hash
        of every kept event, with the earliest date among the events that follow it in the
        chain (``_NOTHING_HELD``: none), for ``_check_witnesses``.
        """
        copies.sort(key=_order_key)
        # A key is bound to the sender id of its chain root (its join), else its first event.
        root = next((c for c in copies if c.prev_event_hash is None), copies[0])
        bound = root.sender_id
        kept: list[_Copy] = []
        for c in copies:
            c.problems = None  # verdicts of an earlier audit must not leak into this one
            if c.sender_id == bound:
                kept.append(c)
                continue
            why = f"signed by the key of {bound!r} but claims to be from {c.sender_id!r}"
            invalid.append(Assessed(c.ev, TrustState.INVALID, why, c.path, c.line))
            findings.append(Finding(Kind.SENDER_MISMATCH, why, c.path, c.line, c.event_id))
        by_hash = {c.hash: c for c in kept}
        children: dict[str | None, list[_Copy]] = {}
        for c in kept:
            prev = c.prev_event_hash
            kids = children.get(prev)
            if kids is None:
                children[prev] = [c]
            else:
                kids.append(c)
        short = key[:12]
        forked = False
        for prev, kids in children.items():
            if prev in by_hash:  # the usual link: nothing to report but a fork
                if after is not None:
                    # kids are in date order (``copies`` sorted by ``_order_key`` above):
                    # a fork's first is its earliest
                    after[prev] = kids[0].timestamp_ms
                if len(kids) == 1:
                    continue
            if len(kids) > 1:
                forked = True
                where = ", ".join(f"{k.event_id} ({k.where})" for k in kids[:MAX_LISTED])
                if len(kids) > MAX_LISTED:
                    where += f" and {len(kids) - MAX_LISTED:,} more"
                what = "start a chain" if prev is None else f"follow {prev[:12]}…"
                findings.append(
                    Finding(
                        Kind.FORK,
                        f"fork: {len(kids)} events by {bound!r} (key {short}…) {what}: {where}",
                        kids[0].path,
                        kids[0].line,
                        kids[0].event_id,
                    )
                )
                for k in kids:
                    k.problem("its chain forks here")
            if prev is not None and prev not in by_hash and not complete:
                pending[0] += len(kids)
            elif prev is not None and prev not in by_hash:
                for k in kids:
                    findings.append(
                        Finding(
                            Kind.GAP,
                            f"gap: the predecessor of this event by {bound!r} "
                            f"(hash {prev[:12]}…) is not in the room: "
                            "a segment is missing, or an event was modified",
                            k.path,
                            k.line,
                            k.event_id,
                        )
                    )
                    k.problem("its chain predecessor is missing")
            if prev is None:
                for k in kids:
                    if not (k.type == MEMBER and k.content.get("membership") == "join"):
                        findings.append(
                            Finding(
                                Kind.MISSING_JOIN,
                                f"the first event of {bound!r}'s device key {short}… is not a join",
                                k.path,
                                k.line,
                                k.event_id,
                            )
                        )
        # Effective order: an event never shows before its chain predecessor. One pass in
        # order; a child whose parent sorts later waits until the parent is placed (then
        # it and whatever waited on it are placed, last waiting first).
        done: set[str] = set()
        waiting: dict[str, list[_Copy]] = {}
        stack: list[_Copy] = []
        for c in kept:
            prev = c.prev_event_hash
            if prev is not None and prev in by_hash and prev not in done:
                waiting.setdefault(prev, []).append(c)
                continue
            item = c
            while True:
                parent = by_hash.get(item.prev_event_hash or "")
                own = (item.timestamp_ms, item.event_id)
                if parent is not None and parent.timestamp_ms <= horizon:
                    # max(own, parent.eff): the first of equals, as max keeps
                    above = parent.eff
                    item.eff = above if above > own else own
                    item.depth = parent.depth + 1
                else:
                    item.eff = own
                h = item.hash
                done.add(h)
                if waiting:
                    later = waiting.pop(h, None)
                    if later is not None:
                        stack.extend(later)
                if not stack:
                    break
                item = stack.pop()
        for orphans in waiting.values():  # only reachable through a hash cycle: impossible
            for item in orphans:
                item.eff = (item.timestamp_ms, item.event_id)
        ends = [c for c in kept if c.hash not in children]
        if after is not None:
            for c in ends:
                after[c.hash] = _NOTHING_HELD
        tip = ends[0] if len(ends) == 1 and not forked else None
        return kept, tip, bound

    # -- trust ----------------------------------------------------------------------------

    @staticmethod
    def _assess(
        rows: list[tuple[tuple[int, str, int], _Copy, bool]],
        authorized: dict[str, set[str]],
        reported: set[tuple[str, str]],
        findings: list[Finding],
        complete: bool,
        trust: _Trust,
        verdicts: _Verdicts,
    ) -> tuple[array[int], array[int]]:
        """Key pinning in display order (sections 7 and 8). While older history is still
        loading, a key that nobody introduced yet may be introduced further back: it is
        taken provisionally (and pinned by the caller only after a complete audit).

        Returns the rows of a ``Timeline``: each shown copy's row and its verdict's code."""
        copies: array[int] = array("I")
        codes: array[int] = array("I")
        code = verdicts.code
        changed = TrustState.KEY_CHANGED
        provisional, good, impersonation, unsettled = _fixed_codes(verdicts)
        # Keys taken provisionally while loading, and those they introduced: every row of
        # theirs says so (not "key pinned"), not only the first.
        taken = trust.taken
        for _, c, signed in rows:
            ev = c
            sender = ev.sender_id
            if not signed:
                if sender in authorized or sender in trust.signers:
                    copies.append(c.row)
                    codes.append(impersonation)
                    if (sender, "") not in reported:
                        reported.add((sender, ""))
                        findings.append(_impersonation_finding(sender, c))
                else:
                    copies.append(c.row)
                    codes.append(code(TrustState.UNVERIFIED, c.sig_why))
                continue
            key = ev.sender_key or ""
            keys = authorized.get(sender)
            if keys is None:
                claimants = trust.conflicts.get(sender)
                if claimants is not None:
                    copies.append(c.row)
                    codes.append(code(changed, _conflict_reason(claimants)))
                    if (sender, "*") not in reported:
                        reported.add((sender, "*"))
                        findings.append(_key_conflict_finding(sender, claimants, c))
                    continue
                if not trust.settled:
                    copies.append(c.row)
                    codes.append(unsettled)
                    continue
                # Trust on first use of the one key nobody introduced (while loading,
                # of the first key seen, and only on trial: older history may hold
                # another key of theirs, and this one is then an impostor's: section 16).
                first = trust.roots.get(sender, key)
                keys = authorized[sender] = {first}
                if not complete:
                    taken.add((sender, first))
            if key not in keys:
                if not complete:
                    keys.add(key)
                    taken.add((sender, key))
                    copies.append(c.row)
                    codes.append(provisional)
                    continue
                copies.append(c.row)
                codes.append(code(changed, _key_changed_reason(sender)))
                if (sender, key) not in reported:
                    reported.add((sender, key))
                    findings.append(_key_changed_finding(sender, key, c))
            elif c.problems:
                reason = "signature good, but " + " and ".join(c.problems)
                copies.append(c.row)
                codes.append(code(TrustState.UNVERIFIED, reason))
            else:
                copies.append(c.row)
                trial = (sender, key) in taken if taken else False
                codes.append(provisional if trial else good)
                if ev.type == MEMBER and ev.content.get("membership") == "join":  # _is_join
                    added = ev.content.get(DEVICE_ADD_FIELD)
                    # An introduction counts once the new key accepted it (its own join
                    # names this key); while loading, the acceptance may still be on its way.
                    if isinstance(added, str) and (
                        not complete or (sender, key, added) in trust.edges
                    ):
                        if trial and added not in keys:
                            taken.add((sender, added))
                        keys.add(added)
        return copies, codes


def _sort_ties(order: list[int], values: array[int], tiekey: Callable[[int], Any]) -> None:
    """Sort each run of ``order`` (sorted by ``values``, stable) whose values are equal by
    ``tiekey``, stable: ``order`` is then sorted by (value, tiekey). Finding the runs is a
    comparison of neighbours in C; only rows in a run have their ``tiekey`` read."""
    if len(order) < 2:
        return
    seen = list(map(values.__getitem__, order))
    ties = itertools.compress(
        range(1, len(seen)), map(operator.eq, seen, itertools.islice(seen, 1, None))
    )
    del seen
    start = end = -1
    for i in ties:
        if i != end:
            if start >= 0:
                order[start:end] = sorted(order[start:end], key=tiekey)
            start = i - 1
        end = i + 1
    if start >= 0:
        order[start:end] = sorted(order[start:end], key=tiekey)


_MISSING = "its chain predecessor is missing"


class _RowChains:
    """The chains of one audit of a slim ledger (``RoomLedger._audit_rows``), one device
    key at a time, over row numbers. Per row of the store: its effective order (the date
    ``effts`` and the row whose id it takes, ``effrow``, or the id itself in ``eff_text``
    for a key checked on copies) and ``depth``, as ``_check_chain`` sets them on copies;
    the row that follows it in its chain (``follows``) and its key's number in this
    audit (``group``). About 24 bytes a row while the audit runs, and a copy of the hash
    column (32)."""

    def __init__(
        self,
        store: _Columns,
        complete: bool,
        horizon: int,
        findings: list[Finding],
        invalid: list[Assessed],
    ) -> None:
        n = len(store)
        self.store = store
        self.complete = complete
        self.horizon = horizon
        self.findings = findings
        self.invalid = invalid
        self.effts: array[int] = array("q", bytes(8 * n))
        self.effrow: array[int] = array("I", bytes(4 * n))
        self.depth: array[int] = array("I", bytes(4 * n))
        self.follows: array[int] = array("I", bytes(4 * n))  # the next row + 1 (0: none)
        self.group: array[int] = array("I", bytes(4 * n))  # 0: not in a chain checked
        self.eff_text: dict[int, str] = {}
        self.problems: dict[int, list[str]] = {}
        self.late: dict[int, int] = {}
        self.pending = 0
        self.chained: list[int] = []
        self.after: dict[str, int] | None = {} if complete else None
        # Every hash a witness names (a superset of what ``_check_witnesses`` looks up in
        # ``after``): only those are written there for a key checked over rows.
        self.wanted: set[bytes] = set()
        if complete:
            # (``_Columns._witnesses``: 64 bytes an entry, the key's 32 then the hash's)
            for packed in store._witnesses.values():
                for at in range(32, len(packed), 64):
                    self.wanted.add(packed[at : at + 32])
        self._hashes = bytes(store._hashes)
        self._groups = 0

    def eff_id(self, row: int) -> str:
        text = self.eff_text.get(row) if self.eff_text else None
        return text if text is not None else self.store.event_id(self.effrow[row])

    def order_key(self, row: int) -> tuple[int, str, int]:
        """The row's sort key as ``_audit`` has it: (date, id, depth) of its effective
        order."""
        return (self.effts[row], self.eff_id(row), self.depth[row])

    def copy(self, row: int) -> _Copy:
        """The row's copy with the problems this audit found with it."""
        c = self.store.copy(row)
        c.problems = self.problems.get(row)
        return c

    def check(self, key: str, rows: list[int]) -> tuple[_Copy | None, str]:
        """``_check_chain`` of one key's rows: its tip (a copy, with its order) or None,
        and the sender id the key is bound to; ``chained`` gets its kept rows in order."""
        store = self.store
        stamps = store._stamps
        rows.sort(key=stamps.__getitem__)
        _sort_ties(rows, stamps, store.event_id)
        self._groups += 1
        got = self._line(key, rows, self._groups)
        return got if got is not None else self._on_copies(key, rows, self._groups)

    def _line(self, key: str, rows: list[int], g: int) -> tuple[_Copy | None, str] | None:
        """``check`` over rows, for a key whose rows all claim the sender of its root and
        form one simple line from each start (no fork, no hash twice): None otherwise,
        having changed nothing but ``group`` and ``follows`` of its rows."""
        store = self.store
        flags, prevs = store._flags, store._prevs
        senders = store._numbered[_SENDER]
        root = next((r for r in rows if flags[r] & _PREV_NONE), rows[0])
        if len(set(map(senders.__getitem__, rows))) != 1:
            return None  # a sender mismatch
        hb = self._hashes
        index = {hb[32 * r : 32 * r + 32]: r for r in rows}
        if len(index) != len(rows):
            return None  # one hash twice (never made by the parser)
        group, follows = self.group, self.follows
        for r in rows:
            group[r] = g
        starts: list[int] = []  # rows without a predecessor in the chain, in order
        missing: dict[int, str] = {}  # of those, the rows whose predecessor is not here
        gone: set[str] = set()  # the hashes of those predecessors
        rooted = False
        apart = store._apart
        fail = False
        for r in rows:
            if flags[r] & _PREV_NONE:
                if rooted:
                    fail = True  # two roots: a fork
                    break
                rooted = True
                starts.append(r)
                continue
            p = prevs[r] - 1
            if p >= 0 and group[p] == g:
                parent = p
            else:
                text: str | None = None
                if p >= 0:
                    packed: bytes | None = hb[32 * p : 32 * p + 32]
                else:
                    text = apart[r]
                    packed = _packed_hash(text)
                parent = index.get(packed, -1) if packed is not None else -1
                if parent < 0:
                    if text is None:
                        text = store.hash(p)
                    if text in gone:
                        fail = True  # two rows follow one missing event: a fork
                        break
                    gone.add(text)
                    missing[r] = text
                    starts.append(r)
                    continue
            if follows[parent]:
                fail = True  # a fork
                break
            follows[parent] = r + 1
        stamps, effts, effrow, depth = store._stamps, self.effts, self.effrow, self.depth
        horizon = self.horizon
        eid = store.event_id
        late: list[tuple[int, int]] = []
        ends: list[int] = []
        reached = 0
        if not fail:
            for s in starts:
                r = s
                effts[r], effrow[r], depth[r] = stamps[r], r, 0
                reached += 1
                k = follows[r]
                while k:
                    k -= 1
                    own = stamps[k]
                    if stamps[r] <= horizon:
                        pe = effts[r]
                        if own > pe or (own == pe and eid(k) > eid(effrow[r])):
                            effts[k], effrow[k] = own, k
                        else:
                            effts[k], effrow[k] = pe, effrow[r]
                            if pe != own:
                                late.append((k, pe))
                        depth[k] = depth[r] + 1
                    else:
                        effts[k], effrow[k], depth[k] = own, k, 0
                    reached += 1
                    r = k
                    k = follows[r]
                ends.append(r)
        if fail or reached != len(rows):  # (not reached: a hash cycle, never made)
            for r in rows:
                group[r] = follows[r] = 0
            return None
        findings = self.findings
        bound = store._strings[senders[root]]
        short = key[:12]
        for r in starts:
            text = missing.get(r)
            if text is None:
                content = store._contents.get(r, _NOTHING)
                if store.type(r) != MEMBER or content.get("membership") != "join":
                    c = self.copy(r)
                    findings.append(
                        Finding(
                            Kind.MISSING_JOIN,
                            f"the first event of {bound!r}'s device key {short}… is not a join",
                            c.path,
                            c.line,
                            c.event_id,
                        )
                    )
            elif not self.complete:
                self.pending += 1
            else:
                c = self.copy(r)
                findings.append(
                    Finding(
                        Kind.GAP,
                        f"gap: the predecessor of this event by {bound!r} "
                        f"(hash {text[:12]}…) is not in the room: "
                        "a segment is missing, or an event was modified",
                        c.path,
                        c.line,
                        c.event_id,
                    )
                )
                self.problems[r] = [_MISSING]
        after = self.after
        if after is not None and self.wanted:
            for h in self.wanted.intersection(index):
                r = index[h]
                k = follows[r]
                after[_b2a(h, newline=False).decode("ascii")] = (
                    stamps[k - 1] if k else _NOTHING_HELD
                )
        self.late.update(late)
        self.chained.extend(rows)
        if len(ends) != 1:
            return None, bound
        tip = self.copy(ends[0])
        tip.eff, tip.depth = (effts[ends[0]], self.eff_id(ends[0])), depth[ends[0]]
        return tip, bound

    def _on_copies(self, key: str, rows: list[int], g: int) -> tuple[_Copy | None, str]:
        """``check`` by ``_check_chain`` itself, on copies of the key's rows."""
        copies = [self.store.copy(r) for r in rows]
        after: dict[str, int] | None = {} if self.after is not None else None
        pending = [0]
        kept, tip, bound = RoomLedger._check_chain(
            key,
            copies,
            self.findings,
            self.invalid,
            self.complete,
            pending,
            self.horizon,
            after,
        )
        self.pending += pending[0]
        if after and self.after is not None:
            self.after.update(after)
        effts, depth, group = self.effts, self.depth, self.group
        for c in kept:
            r = c.row
            group[r] = g
            effts[r] = c.eff[0]
            self.eff_text[r] = c.eff[1]
            depth[r] = c.depth
            if c.problems:
                self.problems[r] = c.problems
            if c.eff[0] != c.timestamp_ms:
                self.late[r] = c.eff[0]
            self.chained.append(r)
        return tip, bound

    def around(self, named: set[str], witnesses: list[_Copy]) -> list[_Copy]:
        """For ``_backdated``: in chain order, the copies of the rows whose hash or
        predecessor is in ``named``, and the witnesses (``witnesses``, made already)."""
        store = self.store
        flags, prevs, apart = store._flags, store._prevs, store._apart
        wanted = {p for h in named if (p := _packed_hash(h)) is not None}
        made = {c.row: c for c in witnesses}
        hb = self._hashes
        out: list[_Copy] = []
        for r in self.chained:
            c = made.get(r)
            if c is None:
                f = flags[r]
                if f & _PREV_NONE:
                    prev = None
                elif prevs[r]:
                    at = 32 * (prevs[r] - 1)
                    prev = hb[at : at + 32]
                else:
                    prev = _packed_hash(apart[r])
                if hb[32 * r : 32 * r + 32] not in wanted and prev not in wanted:
                    continue
                c = self.copy(r)
            out.append(c)
        return out


def _fixed_codes(verdicts: _Verdicts) -> tuple[int, int, int, int]:
    """The codes of the verdicts whose reason never changes (both full audits): taken on
    trial, pinned, impersonated, not settled yet."""
    code = verdicts.code
    return (
        code(TrustState.VERIFIED, PROVISIONAL_REASON),
        code(TrustState.VERIFIED, PINNED_REASON),
        code(TrustState.KEY_CHANGED, _IMPERSONATION),
        code(TrustState.UNVERIFIED, _UNSETTLED),
    )


def _impersonation_finding(sender: str, c: _Copy) -> Finding:
    """An unsigned row under the name of someone who signs (both full audits)."""
    return Finding(
        Kind.IMPERSONATION,
        f"an unsigned event claims to be from {sender!r}, who signs their events: "
        "someone may be writing under their name",
        c.path,
        c.line,
        c.event_id,
    )


def _key_conflict_finding(sender: str, claimants: Sequence[str], c: _Copy) -> Finding:
    """Several keys claim ``sender`` and none introduced another (both full audits)."""
    fingerprints = ", ".join(f"{k[:12]}…" for k in claimants[:MAX_LISTED])
    if len(claimants) > MAX_LISTED:
        fingerprints += f" and {len(claimants) - MAX_LISTED:,} more"
    return Finding(
        Kind.KEY_CONFLICT,
        f"{len(claimants)} keys claim to be {sender!r} and none was introduced by another "
        f"({fingerprints}): none is trusted until a member confirms one (compare "
        "fingerprints in person)",
        c.path,
        c.line,
        c.event_id,
    )


def _key_changed_reason(sender: str) -> str:
    """The verdict's reason on a row signed with a key no earlier key introduced."""
    return (
        f"signature good, but {sender!r} used another key before and no statement from "
        "that key introduced this one"
    )


def _key_changed_finding(sender: str, key: str, c: _Copy) -> Finding:
    """``sender`` signs with ``key``, which no earlier key of theirs introduced."""
    return Finding(
        Kind.KEY_CHANGED,
        f"{sender!r} now signs with key {key[:12]}…, which no earlier key of theirs introduced",
        c.path,
        c.line,
        c.event_id,
    )


def _assess_rows(
    store: _Columns,
    order: list[int],
    problems: Mapping[int, list[str]],
    authorized: dict[str, set[str]],
    reported: set[tuple[str, str]],
    findings: list[Finding],
    complete: bool,
    trust: _Trust,
    verdicts: _Verdicts,
) -> array[int]:
    """``RoomLedger._assess`` over the rows of a slim ledger (``_audit_rows``): the same
    walk in display order, reading senders, keys and types as numbers in the columns; a
    copy is made only for a finding. Returns each row's verdict code."""
    codes: array[int] = array("I")
    add = codes.append
    code = verdicts.code
    changed = TrustState.KEY_CHANGED
    provisional, good, impersonation, unsettled = _fixed_codes(verdicts)
    taken = trust.taken
    strings, numbered = store._strings, store._numbered
    senders, keys, whys, types = (numbered[i] for i in (_SENDER, _KEY, _WHY, _TYPE))
    oks, contents = store._oks, store._contents
    member = store._numbers.get(MEMBER, -1)
    for r in order:
        sender = strings[senders[r]]
        if oks[r] != 1:  # unsigned (the chained rows' signatures checked out)
            if sender in authorized or sender in trust.signers:
                add(impersonation)
                if (sender, "") not in reported:
                    reported.add((sender, ""))
                    findings.append(_impersonation_finding(sender, store.copy(r)))
            else:
                add(code(TrustState.UNVERIFIED, strings[whys[r]]))
            continue
        key = strings[keys[r]] or ""
        known = authorized.get(sender)
        if known is None:
            claimants = trust.conflicts.get(sender)
            if claimants is not None:
                add(code(changed, _conflict_reason(claimants)))
                if (sender, "*") not in reported:
                    reported.add((sender, "*"))
                    findings.append(_key_conflict_finding(sender, claimants, store.copy(r)))
                continue
            if not trust.settled:
                add(unsettled)
                continue
            first = trust.roots.get(sender, key)
            known = authorized[sender] = {first}
            if not complete:
                taken.add((sender, first))
        if key not in known and not complete:
            known.add(key)
            taken.add((sender, key))
            add(provisional)
            continue
        if key not in known:
            add(code(changed, _key_changed_reason(sender)))
            if (sender, key) not in reported:
                reported.add((sender, key))
                findings.append(_key_changed_finding(sender, key, store.copy(r)))
            continue
        trouble = problems.get(r) if problems else None
        if trouble:
            add(code(TrustState.UNVERIFIED, "signature good, but " + " and ".join(trouble)))
            continue
        trial = (sender, key) in taken
        add(provisional if trial else good)
        if types[r] == member:
            content = contents.get(r, _NOTHING)
            if content.get("membership") == "join":
                added = content.get(DEVICE_ADD_FIELD)
                if isinstance(added, str) and (not complete or (sender, key, added) in trust.edges):
                    if trial and added not in known:
                        taken.add((sender, added))
                    known.add(added)
    return codes


# A verified row's reason: its key is pinned (or trusted on first use of a whole read), or
# only taken on trial while older history loads (``PROVISIONAL_REASON``, section 16: a
# front end shows that row as not final, ``provisional``).
PINNED_REASON = "signature good, chain intact, key pinned for this sender"


def provisional(row: Assessed) -> bool:
    """Whether ``row`` is verified only on trial, while older history loads (a key
    nobody introduced yet: perhaps an impostor's whom older history shows): not a final
    verdict, and no front end may present it as one."""
    return on_trial(row.state, row.reason)


_UNSETTLED = (
    "signature good, but part of the room could not be read: which keys speak for this "
    "sender is not settled until it can"
)

_IMPERSONATION = (
    "no signature, but this sender signs their events with a device key: "
    "this line may have been written by someone else under their name"
)


def _held_finding(c: _Copy) -> Finding:
    when = _utc_text(c.timestamp_ms)
    return Finding(
        Kind.DATED_AHEAD,
        f"an event by {c.sender_id!r} is dated {when}, more than an hour ahead of this "
        "device's clock: it is held back, not shown, until an hour before then (a clock "
        "set wrong, or a message meant to stay the room's last)",
        c.path,
        c.line,
        c.event_id,
    )


def _utc_text(ms: int) -> str:
    try:
        day, clock = iso_utc_ms(ms).split("T")
        return f"{day} {clock[:5]} UTC"
    except (OverflowError, OSError, ValueError):
        return f"{ms:,} ms after 1970 (past the year 9999)"


def _conflict_reason(claimants: list[str]) -> str:
    return (
        f"signature good, but {len(claimants)} keys claim this sender and none introduced "
        "the others: none is trusted until a member confirms one"
    )


def offered_introductions(
    shown: Iterable[tuple[Event, TrustState]], user_id: str, key_text: str
) -> list[str]:
    """The keys whose signed statements introduce ``key_text`` for ``user_id`` and that
    this key has not accepted yet (section 7), in display order. ``shown``: events with
    their trust states, as this device sees them. A statement's key is only *claimed* to
    be this user's: any writer can copy a public key into a statement. A key this key
    introduced itself is never offered: accepting it would close a cycle of introductions,
    which leaves no key of the user free, a key-conflict for every reader."""
    scan = IntroductionScan(user_id, key_text)
    scan.feed(shown)
    return scan.offers()


class IntroductionScan:
    """``offered_introductions`` fed a piece at a time (display order, each event once):
    what a timeline that only grows at its end needs to look at again is what it grew by."""

    __slots__ = ("_answered", "_offered", "key_text", "user_id")

    def __init__(self, user_id: str, key_text: str) -> None:
        self.user_id = user_id
        self.key_text = key_text
        self._answered: set[str] = set()  # keys this key accepted, or introduced itself
        self._offered: dict[str, None] = {}  # ordered, O(1): thousands of offers are cheap

    def feed(self, shown: Iterable[tuple[Event, TrustState]]) -> None:
        user_id, key_text = self.user_id, self.key_text
        for ev, state in shown:
            if ev.sender_id != user_id or not _is_join(ev):
                continue
            if ev.sender_key == key_text:
                by = ev.content.get(DEVICE_ACCEPT_FIELD)
                if isinstance(by, str):
                    self._answered.add(by)
                added = ev.content.get(DEVICE_ADD_FIELD)
                if isinstance(added, str):
                    self._answered.add(added)
            elif (
                state in (TrustState.VERIFIED, TrustState.KEY_CHANGED)  # signed, signature good
                and ev.sender_key is not None
                and ev.content.get(DEVICE_ADD_FIELD) == key_text
            ):
                self._offered[ev.sender_key] = None

    def offers(self) -> list[str]:
        return [k for k in self._offered if k not in self._answered]


def first_confirmed(offered: Iterable[str], confirmed: Collection[str]) -> str | None:
    """The first of ``offered`` (``offered_introductions``) the person confirmed, or None:
    the introduction this device accepts without asking (section 7).

    Only a statement by a key the person *confirmed* as theirs on this device (compared
    fingerprints, ``Index.confirmed_keys``) is accepted by itself. Being verified in the
    room is not enough: a key nobody else claims is trusted on first use there, so an
    impostor writing first in a room the user has not used yet could introduce the real
    device's public key and have that device vouch for it. Every other offer waits for
    the person (``bucket-chat accept-device``, or confirming the fingerprint in the app)."""
    return next((k for k in offered if k in confirmed), None)


def _frozen(authorized: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    return {sender: frozenset(keys) for sender, keys in authorized.items()}


def _introduces(ev: Event | _Copy) -> bool:
    """A device introduction or its acceptance (section 7)."""
    return ev.type == MEMBER and (
        DEVICE_ADD_FIELD in ev.content or DEVICE_ACCEPT_FIELD in ev.content
    )


def _witnessed_at_hand(c: _Copy, *tips: Mapping[str, _Copy | None]) -> bool:
    """Whether every event ``c`` witnesses (section 6.1) is the newest of its chain in
    ``tips``: then it is in the room, and ``_check_witnesses`` would find nothing about
    ``c`` (a witness changes nothing else). Ours names the newest event of each chain
    that moved since its last witness, so in a live room this is every witness but one
    written while its chain moved on meanwhile. False: a full audit decides."""
    for key, seen in _entries(c):
        if not any((t := got.get(key)) is not None and t.hash == seen for got in tips):
            return False
    return True


def _watch_witness(
    c: _Copy,
    state: _Tips,
    tips: Mapping[str, _Copy | None],
    horizon: int,
    named: list[tuple[_Copy, str, _Copy]],
) -> bool:
    """For ``try_place``: the chain tips a new event ``c`` witnesses (each one is at hand,
    ``_witnessed_at_hand``) as ``_check_witnesses`` counts them, added to ``named`` (a
    witness held back as dated ahead, or dated before the event it names, counts for
    nothing). False: it names an event that a ``dated-before-witness`` notice is about
    (a full audit decides whether that notice stays)."""
    for key, seen in _entries(c):
        if seen in state.backdated:
            return False
        if c.timestamp_ms > horizon:
            continue
        for got in (tips, state.tips):
            event = got.get(key)
            if event is not None and event.hash == seen:
                if c.timestamp_ms >= event.timestamp_ms:
                    named.append((c, key, event))
                break
    return True


def _decide_trust(
    chained: list[_Copy], bound: Mapping[str, str], pinned: set[str], complete: bool
) -> _Trust:
    """Section 7: introductions both sides signed, and per sender id the one key nobody
    introduced, or a conflict when there are several (only final once history is
    complete: until then an introduction may still be loading)."""
    keys_of: dict[str, set[str]] = defaultdict(set)
    for key, sender in bound.items():
        keys_of[sender].add(key)
    statements: set[tuple[str, str, str]] = set()
    accepted: set[tuple[str, str, str]] = set()
    for c in chained:
        ev = c
        # (``_is_join`` written out: a call per event)
        if ev.type != MEMBER or c.problems or ev.content.get("membership") != "join":
            continue
        key = ev.sender_key or ""
        added = ev.content.get(DEVICE_ADD_FIELD)
        if isinstance(added, str) and added != key:
            statements.add((ev.sender_id, key, added))
        by = ev.content.get(DEVICE_ACCEPT_FIELD)
        if isinstance(by, str) and by != key:
            accepted.add((ev.sender_id, by, key))
    edges = statements & accepted
    introduced = {(sender, new) for sender, _, new in edges}
    onward: dict[tuple[str, str], list[str]] = defaultdict(list)
    for sender, by, new in edges:
        onward[(sender, by)].append(new)
    roots: dict[str, str] = {}
    conflicts: dict[str, list[str]] = {}
    disputed: set[str] = set()
    for sender, keys in keys_of.items():
        free = sorted(k for k in keys if (sender, k) not in introduced)
        # Keys that introduced each other in a cycle, out of reach of the free key, are
        # claimants too: otherwise a pair of real devices that introduced each other
        # would hand trust on first use to an impostor's one free key.
        stranded = sorted(keys - _reached(sender, free, onward))
        settles = len(free) == 1 and not stranded
        if sender in pinned:
            # What this device pinned decides (other keys are key-changed); a reader
            # that pinned nothing would have a conflict here.
            if not settles and complete:
                disputed.add(sender)
        elif settles:
            roots[sender] = free[0]
        elif complete:
            conflicts[sender] = free + stranded
    return _Trust(roots, conflicts, edges, set(keys_of), set(), disputed=disputed)


def _vouched_back(authorized: dict[str, set[str]], edges: Collection[tuple[str, str, str]]) -> None:
    """Keys of a pinned sender that introduced one of its pinned keys (both sides signed):
    pinned too, from the start of the walk. The introduced key's own join accepted them
    ("introduced_by"): its owner says they are theirs. The walk grows a sender's keys only
    forward (a key introduces the next); without this, a device that pinned its own key
    (the app; the command line since it pins as the app does) showed the device that
    introduced it, and everything that device wrote, as "key changed".

    One pass over the introductions makes a map back (sender, new key) -> the keys that
    introduced it, and each pinned sender's keys are walked back through it, each key
    once: O(introductions) in all. A pass over every introduction per key added (red team
    rt64) took 5 s for a chain of 10,000 one-event keys leading back to a pinned one."""
    if not authorized or not edges:
        return
    back: dict[tuple[str, str], list[str]] = defaultdict(list)
    for sender, by, new in edges:
        if sender in authorized:
            back[(sender, new)].append(by)
    if not back:
        return
    for sender, keys in authorized.items():
        todo = list(keys)
        while todo:
            for by in back.get((sender, todo.pop()), ()):
                if by not in keys:
                    keys.add(by)
                    todo.append(by)


def _reached(
    sender: str, start: list[str], onward: Mapping[tuple[str, str], list[str]]
) -> set[str]:
    """The keys of ``sender`` that introductions lead to from ``start`` (and ``start``)."""
    seen = set(start)
    todo = list(start)
    while todo:
        for new in onward.get((sender, todo.pop()), ()):
            if new not in seen:
                seen.add(new)
                todo.append(new)
    return seen


@dataclass(frozen=True, slots=True)
class _Witnessed:
    """What ``_check_witnesses`` leaves for cheap appends (``_Tips``)."""

    unseen: frozenset[str] = frozenset()
    nameless: frozenset[str] = frozenset()
    seen_at: dict[str, int] = field(default_factory=dict)
    backdated: frozenset[str] = frozenset()


def _witnesses(chained: list[_Copy]) -> Iterator[tuple[_Copy, str, str]]:
    """The entries of the ``witness`` of each event whose own chain link is intact
    (section 6.1): the event, the key and the hash it names — the entries a reader reads
    (``witness_entries``: a key mapped to a hash, at most 64), but a device's witness of
    itself."""
    for c in chained:
        if not c.problems:
            for key, seen in _entries(c):
                yield c, key, seen


def _entries(c: _Copy) -> Iterator[tuple[str, str]]:
    """The entries of ``c``'s ``witness`` (section 6.1): each key and the hash it names
    (``witness_entries``)."""
    return iter(witness_entries(c.raw.get(WITNESS_FIELD), c.sender_key))


def witness_entries(witness: object, own_key: str | None) -> list[tuple[str, str]]:
    """The entries of a ``witness`` that a reader reads (section 6.1), in their order:
    each a key (base64 of 32 bytes) mapped to a hash (the same), but the writer's own
    key (``own_key``); none of a witness that is no object or has more than
    ``MAX_WITNESS_ENTRIES`` entries. Any other entry can name no device and no event
    (a false claim of one costs a writer nothing either way), and a ledger that keeps no
    bodies keeps these alone, as 64 bytes each (``_Columns``): kept whole, a witness
    padded to the line limit held some 790 KB an event in the app (red team rt91)."""
    if not isinstance(witness, dict) or len(witness) > MAX_WITNESS_ENTRIES:
        return []
    return [
        (key, seen)
        for key, seen in witness.items()
        if isinstance(seen, str)
        and key != own_key
        and _packed_hash(key) is not None
        and _packed_hash(seen) is not None
    ]


_WitnessCheck = tuple[list[_Copy], Mapping[str, int], Callable[[set[str]], list[_Copy]] | None]
"""What a full audit's witness check reads (``_check_witnesses``): the copies whose
witnesses are read, every event's hash with the earliest date after it in its chain, and
how to find the copies around some hashes (None: among those copies)."""


def _check_witnesses(
    chained: list[_Copy],
    bound: Mapping[str, str],
    tips: Mapping[str, _Copy | None],
    after: Mapping[str, int],
    horizon: int,
    findings: list[Finding],
    around: Callable[[set[str]], list[_Copy]] | None = None,
) -> _Witnessed:
    """Section 6.1, for the witnesses of events whose own chain link is intact:

    An event another device witnessed must be in the room. Reports each missing witnessed
    event once, at the first event that witnessed it in (path, line) order (not the order
    segments were read in: every reader reports it at the same place), naming who
    witnessed it and whose key it is (``bound``: the sender id each key speaks for).

    A witness says what its writer had read of a chain as of its own date: the event
    that follows the one named, dated more than ``WITNESS_SLACK_MS`` before the witness,
    was written or delivered later than its date, if the witness is true
    (``_backdated``). ``after``: every event's hash, with the earliest date of what
    follows it in its chain (``_check_chain``).

    One look-up and a comparison of dates per witness entry; only witnesses that name an
    event followed by one dated before them (a notice, perhaps) cost a pass over the
    room (``_backdated``)."""
    first: dict[str, tuple[_Copy, str]] = {}  # missing hash -> its first witness, key
    suspect: list[tuple[_Copy, str, str]] = []  # a witness, the key and hash it names
    at_tips: list[tuple[_Copy, str, str]] = []  # the same, naming the end of a chain
    for c in chained:
        if not isinstance(c.raw.get(WITNESS_FIELD), dict) or c.problems:
            continue  # most events: no witness, no generator made
        when = c.timestamp_ms
        shown = when <= horizon
        late = when - WITNESS_SLACK_MS
        for key, seen in _entries(c):
            if seen not in after:
                got = first.get(seen)
                if got is None or place_order(c.path, c.line) < place_order(
                    got[0].path, got[0].line
                ):
                    first[seen] = (c, key)
                continue
            next_at = after[seen]
            if next_at < late:
                if shown:
                    suspect.append((c, key, seen))
            elif next_at == _NOTHING_HELD and shown:
                at_tips.append((c, key, seen))
    nameless: set[str] = set()
    for seen, (c, key) in sorted(
        first.items(), key=lambda item: (place_order(item[1][0].path, item[1][0].line), item[0])
    ):
        owner = bound.get(key)
        who = repr(owner) if owner is not None else "a device"
        if owner is None:
            nameless.add(key)
        findings.append(
            Finding(
                Kind.TRUNCATED_CHAIN,
                f"{c.sender_id!r} says it read event {seen[:12]}… of {who} (key "
                f"{key[:12]}…), which is not in the room: either that device's history "
                f"was cut short (a segment removed) or {c.sender_id!r}'s claim is false",
                c.path,
                c.line,
                c.event_id,
            )
        )
    seen_at: dict[str, int] = {}
    for w, key, seen in at_tips:
        tip = tips.get(key)
        if tip is None or tip.hash != seen or w.timestamp_ms < tip.timestamp_ms:
            continue
        seen_at[key] = max(seen_at.get(key, -1), w.timestamp_ms)
    backdated: set[str] = set()
    if suspect:
        # ``around``: the copies ``_backdated`` reads, of a ledger that makes them when
        # asked (``_RowChains.around``); else every chained copy
        named = {seen for _, _, seen in suspect}
        everyone = chained if around is None else around(named)
        backdated = _backdated(everyone, bound, suspect, findings)
    return _Witnessed(frozenset(first), frozenset(nameless), seen_at, frozenset(backdated))


def _backdated(
    chained: list[_Copy],
    bound: Mapping[str, str],
    suspect: list[tuple[_Copy, str, str]],
    findings: list[Finding],
) -> set[str]:
    """The ``dated-before-witness`` notices (section 6.1), from the witnesses that name an
    event followed by one dated more than ``WITNESS_SLACK_MS`` before them (``suspect``);
    returns the hashes of the events they are about.

    One notice per key, at its earliest such event, naming the earliest witness that
    says so. A witness is its writer's claim, and only a shown one counts (not one held
    back as dated ahead: its date is not yet), not one dated before the event it names
    (its date is false), and not against an event that another witness dated no later
    names (that one had read it then)."""
    named = {seen for _, _, seen in suspect}
    events: dict[str, _Copy] = {}
    following: dict[str, list[_Copy]] = defaultdict(list)
    for c in chained:
        if c.hash in named:
            events[c.hash] = c
        if c.prev_event_hash in named:
            following[c.prev_event_hash].append(c)
    claims: list[tuple[_Copy, _Copy, _Copy]] = []  # a witness, what it names, what follows
    for w, key, seen in suspect:
        event = events[seen]
        if event.sender_key != key or w.timestamp_ms < event.timestamp_ms:
            continue  # named under another key, or a witness dated before what it names
        claims.extend(
            (w, event, s)
            for s in following[seen]
            if s.sender_key == key and s.timestamp_ms + WITNESS_SLACK_MS < w.timestamp_ms
        )
    # When did a witness that counts first name each of those following events?
    later = {s.hash: s for _, _, s in claims}
    read_by: dict[str, int] = {}
    for c, key, seen in _witnesses(chained):
        s = later.get(seen)
        when = c.timestamp_ms
        if s is None or s.sender_key != key or when < s.timestamp_ms:
            continue
        if when < read_by.get(seen, _NOTHING_HELD):
            read_by[seen] = when
    Place = tuple[str, str, int]
    earliest: dict[str, tuple[tuple[int, str, Place, int, Place], _Copy, _Copy]] = {}
    for w, event, s in claims:
        when = w.timestamp_ms
        if read_by.get(s.hash, _NOTHING_HELD) <= when:
            continue  # another witness had read it by then
        key = event.sender_key or ""
        rank = (
            s.timestamp_ms,
            s.event_id,
            place_order(s.path, s.line),
            when,
            place_order(w.path, w.line),
        )
        best = earliest.get(key)
        if best is None or rank < best[0]:
            earliest[key] = (rank, s, w)
    backdated: set[str] = set()
    for _, s, w in sorted(
        earliest.values(), key=lambda item: place_order(item[1].path, item[1].line)
    ):
        backdated.add(s.hash)
        sender, claimant = bound.get(s.sender_key or "", s.sender_id), w.sender_id
        findings.append(
            Finding(
                Kind.DATED_BEFORE_WITNESS,
                f"an event by {sender!r} dated {_utc_text(s.timestamp_ms)} follows the one "
                f"{claimant!r} signed on {_utc_text(w.timestamp_ms)} as the newest by "
                f"{sender!r} they had read: if that claim of {claimant!r} is true, this "
                "event was written or delivered after then (as a message sent late, "
                "after an outage, would be)",
                s.path,
                s.line,
                s.event_id,
            )
        )
    return backdated
