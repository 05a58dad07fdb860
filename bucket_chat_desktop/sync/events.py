"""What the sync engine reports. Plain dataclasses: the GUI bridge turns them into Qt
signals, the CLI prints them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

# A cached row as ``WarmTimeline`` carries it: front ends import it from here (they never
# import ``index``: tests/unit/test_layers.py).
from ..index import TimelineRow as TimelineRow
from ..protocol.audit import Assessed, AuditResult
from ..protocol.event import Event, Malformed
from ..protocol.findings import Finding
from ..protocol.metadata import RoomMetadata
from ..protocol.relations import Relations
from ..protocol.room_state import Roster


@dataclass(frozen=True, slots=True)
class WarmTimeline:
    """The newest cached rows of a room, read from the index before any network call."""

    room_id: str
    rows: list[TimelineRow]
    total: int


class ShownEvent(NamedTuple):
    """One row of a room's timeline as a front end shows it: ``verdict`` is the audit's
    (the verifier's word on the event: its trust state and why), ``event`` the whole event
    with its body. The app's audit keeps no bodies in memory (``RoomLedger``): ``event``
    then comes from this device's index, re-entered through the protocol parser and
    checked to be the event the audit judged (same hash and signature); a cached line
    that is not is a ``Malformed`` that says why (shown as damaged, never trusted)."""

    verdict: Assessed
    event: Event | Malformed


@dataclass(frozen=True, slots=True)
class RoomLoaded:
    """The room's whole timeline was (re)assessed: replace what is shown."""

    room_id: str
    result: AuditResult
    complete: bool  # False while older history is still being fetched
    # the room's metadata as read so far (None until it could be read) and what is wrong
    # with it: a front end shows them with this result and never asks the engine's rooms
    metadata: RoomMetadata | None = None
    metadata_findings: tuple[Finding, ...] = ()
    # How many rows this audit shows (``len(result.timeline)``: a result is never changed
    # once handed out; appends arrive as new results of the same audit) and its newest
    # rows with their bodies, oldest first: the first screen, with no second trip to the
    # engine. Older rows: ``SyncEngine.timeline_page``.
    total: int = 0
    newest: tuple[ShownEvent, ...] = ()
    # Replies, reactions, edits and redactions of ``result`` (PROTOCOL.md section 18):
    # which rows are hidden, what each target looks like. None: not made (no result).
    relations: Relations | None = None
    # Members, devices and display names of ``result``, made on the engine's state
    # thread (a front end never folds a timeline). None: not made (no result).
    roster: Roster | None = None
    # The rows of ``result`` first read since the audit before, from segments first listed
    # once the room was known whole (``RoomState.arrivals``): new words,
    # wherever their date placed them (a row dated weeks back lands far above the
    # newest). (position in ``result``'s timeline, the row with its body), display order.
    arrived: tuple[tuple[int, ShownEvent], ...] = ()
    # This device's clock when the engine began the newest read from storage (a pass, a
    # listing, a notice's download) whose rows ``result`` holds (``RoomState.read_ms``);
    # 0: none yet. How far the room was read is weighed by it (``unread.seen_place``),
    # never by the clock of the delivery: a re-audit of rows held (a confirmation, a pace
    # or a pass's final audit) told after a sleep read nothing then (red team rt101).
    read_ms: int = 0


@dataclass(frozen=True, slots=True)
class EventsAppended:
    """New events that sort after everything already shown, or (``at``) before a few of
    the newest: behind a row dated a little ahead, which sorts last until its date
    (``RoomLedger.try_place``, PROTOCOL.md section 9)."""

    room_id: str
    items: list[Assessed]  # whole events (with bodies), also from a ledger without them
    result: AuditResult
    relations: Relations | None = None  # of ``result``: the aggregates after the append
    roster: Roster | None = None  # of ``result``: members and names after the append
    # None: ``items`` follow every row shown before. Else their position in ``result``'s
    # timeline: the rows shown from there on moved ``len(items)`` down, and ``result``
    # is a new audit (``audit_number``: pages of the one before are refused).
    at: int | None = None
    # The items came from segments first listed once the room was known whole
    # (``RoomLoaded.arrived``): new words wherever they are placed, not history.
    arrived: bool = False
    read_ms: int = 0  # as ``RoomLoaded.read_ms``


@dataclass(frozen=True, slots=True)
class RoomDiscovered:
    room_id: str


@dataclass(frozen=True, slots=True)
class OutboxChanged:
    """Local echo: ``state`` is "sending", "sent" or "failed" (with ``error``)."""

    room_id: str
    events: list[Event]
    state: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SendKept:
    """A send kept in the outbox before it can be signed (``Outbox.hold``: it waits to
    learn where this device's chain continues, the room still being read): shown as
    "sending" at once (``kept``), its row taken away once it is queued (then
    ``OutboxChanged`` shows its events), refused, or discarded by the person
    (``Publisher.discard_held``): ``kept`` false. ``seq`` names the hold; ``drafts``
    are what was typed, not signed yet. ``error``: kept, but a try to
    send it failed ("not sent yet: <why>; it will be tried again"), or it waits for a
    key (or user id) this device no longer signs with ("not sent: the key that was to
    sign it was replaced …"), shown on its row. A hold another send signed first (the
    command line's, ``Outbox.replaced``) gives way to its events' ``OutboxChanged``."""

    room_id: str
    seq: int
    sender_id: str
    sender_key: str
    drafts: tuple[Any, ...]
    kept: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class StorageStatus:
    online: bool
    message: str


@dataclass(frozen=True, slots=True)
class OutboxSetAside:
    """This device's outbox file for the storage was damaged: it was set aside (never
    deleted), and a new one is used. ``message`` says where the copy is and whether
    what waited in it was read back (``sync.outbox.OutboxSetAside``)."""

    message: str


@dataclass(frozen=True, slots=True)
class ChangeFeedStatus:
    """The storage's change feed (an SQS queue, ``storage/feed.py``) is waited on
    (``active``) or failed and the engine polls the bucket instead; ``message`` says
    which queue, or what went wrong and when it is tried again. ``folder``: it is about a
    local folder's watch instead (``Poller.start_watch``), which could not be started:
    the folder is polled."""

    active: bool
    message: str
    folder: bool = False


@dataclass(frozen=True, slots=True)
class IntroductionOffered:
    """Statements in ``room_id`` introduce this device as ``user_id``, by
    ``introducers``, keys the person has not confirmed as theirs (in display order, each
    reported once): nothing was accepted (PROTOCOL.md section 7). The person compares
    fingerprints, then accepts. More than one is suspect: each may be an impostor."""

    room_id: str
    user_id: str
    introducers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SharedKeyQueued:
    """Messages waiting in this device's outbox for ``room_id`` were signed on a place
    of its key's chain that another device using the same key (a restored key backup)
    has written on since: once delivered, every reader sees the chain fork
    (``Publisher.follow_read``). ``waiting``: how many."""

    room_id: str
    waiting: int


EngineEvent = (
    WarmTimeline
    | RoomLoaded
    | EventsAppended
    | RoomDiscovered
    | OutboxChanged
    | SendKept
    | StorageStatus
    | OutboxSetAside
    | ChangeFeedStatus
    | IntroductionOffered
    | SharedKeyQueued
)
