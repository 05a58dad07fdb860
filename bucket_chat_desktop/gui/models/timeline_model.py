"""One room's timeline as a list model.

Rows are the audited events in display order, followed by local echoes of what this
device is still sending. The model never holds the whole history: it holds the rows it
exposes (the newest ``PAGE`` at first, more as the user scrolls up) and one page of older
rows fetched ahead, so scrolling up never waits. Pages come from a *pager* (the
controller asks the ``ChatClient``, which reads them on the engine's worker from the
audit in memory and the index: ``SyncEngine.timeline_page``), each row with the audit's
verdict. A million-event room costs what is on screen, not a million rows. Appends use
``beginInsertRows``; a reset happens only when a re-audit reorders what is shown.

Relations (PROTOCOL.md section 18): reactions, edits, redactions and typing notices are
not rows. Rows are the *shown* rows of the audit; ``Relations.position_of`` /
``row_of`` / ``shown_count`` map them to timeline positions (O(log n) per page, no list
of positions is ever made), pages are asked for by timeline position and their hidden
rows dropped. What relations say about a row comes from ``Relations.aggregates`` when the
row is painted: the latest edit's text, a deletion placeholder, the shown trust (no
better than an applied edit), a reply's quote, a thread root's summary and the reaction
chips (roles ``Edited``, ``Deleted``, ``Quote``, ``Thread``, ``Reactions``). A jump to a
row that is not held loads the page around it (``show_around``); the rows below it are
then paged in as the view is scrolled down (``fetch_newer``).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
)

from ... import timestamps
from ...protocol import relations as relation_rules
from ...protocol.attachments import (
    announced_name,
    is_file_message,
    is_risky_to_open,
    message_text,
    middle_cut,
)
from ...protocol.audit import Assessed, TrustState, on_trial
from ...protocol.event import MEMBER, MESSAGE, Event, Malformed
from ...protocol.relations import HIDDEN_TYPES, Aggregate, ReactionChip, Relations
from ...protocol.room_state import (
    NO_NAMES,
    Confirmed,
    Names,
    membership_text,
    statement_claim,
    with_doubt,
)
from ...protocol.untrusted_text import lookalike_texts, one_line
from ...sync.events import SendKept, ShownEvent, TimelineRow
from ..room_preview import DELETED
from ..safe import guard
from ..style import TRUST_LABELS

PAGE = 200
EARLIER_CHECK = "from this device's earlier check; the room is being read again"
ON_TRIAL = "so far: older history is still being read, and may show another key of theirs"

log = logging.getLogger("bucket_chat.gui")

Index = QModelIndex | QPersistentModelIndex
# pager(start, stop, reply): ask for rows start:stop of the audit shown; ``reply`` is called
# (now or later, on the GUI thread) with them, or with None when that audit was replaced.
Reply = Callable[[Sequence[ShownEvent] | None], None]
Pager = Callable[[int, int, Reply], None]


class Roles(enum.IntEnum):
    EventId = Qt.ItemDataRole.UserRole + 1
    Sender = enum.auto()
    SenderKey = enum.auto()
    Timestamp = enum.auto()
    Body = enum.auto()
    Kind = enum.auto()  # "text", "file", "image", "member", "other"
    Content = enum.auto()
    Trust = enum.auto()  # TrustState value, or "" for a local echo
    TrustReason = enum.auto()
    Echo = enum.auto()  # "", "sending", "waiting" (kept, tried again later), "failed"
    EchoError = enum.auto()
    DayBreak = enum.auto()  # True when the row starts a new (local) day
    Location = enum.auto()  # "path:line" the event was read from
    Own = enum.auto()
    DisplayName = enum.auto()  # from the sender's verified join, else their user id
    Confirmed = enum.auto()  # verified, and the user confirmed its key out of band
    SenderWarning = enum.auto()  # why the sender id may imitate another, or None
    Cached = enum.auto()  # True: the verdict is the index's, from an earlier check
    # True: verified only on trial while older history loads (``audit.provisional``)
    Provisional = enum.auto()
    # Everything a row's height depends on, in one call (the delegate caches heights by it):
    # (event id, location, kind, day break, grouped under the row above, echo state,
    #  version, (chips, the first MAX_CHIPS as (key, number, all verified, look-alike,
    #  final)), quoted,
    #  thread replies, repeated, late note (``Late``), late change note (``LateChange``))
    Layout = enum.auto()
    # Relations (section 18). The body (``Body``) of an edited message is its latest
    # edit's text, of a deleted one "Message deleted"; ``Trust`` is the shown trust
    # (``Aggregate.state``: no better than an applied edit), ``Kind`` "deleted" for a
    # deleted message (no attachment card, no text).
    Version = enum.auto()  # "" / the latest edit's event id / "deleted:<redaction id>"
    Edited = enum.auto()  # None, or Edited(times, timestamp_ms, state) of the latest edit
    Deleted = enum.auto()  # None, or Deleted(timestamp_ms, state, reason)
    Quote = enum.auto()  # None (not a reply), or Quote(parent id, name, text, status, ...)
    Thread = enum.auto()  # None, or ThreadSummary(replies, unread) on a thread root
    Reactions = enum.auto()  # tuple of Chip (key, number, mine, all_verified, who, ...)
    # Its event id was signed by more than one device (``Relations.repeated``): each copy
    # is a row, and none takes edits, a deletion, reactions or replies (PROTOCOL.md 18.1).
    Repeated = enum.auto()
    # The file name a file or image message announces, made safe (``Row.file_name``):
    # what its card, its caption and its menu say, worked out once per row. None for any
    # other row, a deleted one included (its body is no one's to read).
    FileName = enum.auto()
    # None, or what the row says of a message that arrived long after its date (new words
    # placed among older ones: ``Controller``, red team rt79): "Arrived <when>, dated …".
    Late = enum.auto()
    # None, or what the row says of its latest edit (of its deletion, when deleted) that
    # arrived long after its date: "The latest edit arrived <when>, dated …" (``note_late``)
    LateChange = enum.auto()


GROUP_GAP_MS = 5 * 60 * 1000  # a message within this of the one above, same sender: no header
MAX_CHIPS = 24  # chips painted on one message; more are summed up in a "+n" chip


class Edited(NamedTuple):
    times: int  # applied edits
    timestamp_ms: int
    state: str  # the latest applied edit's trust state


class Deleted(NamedTuple):
    timestamp_ms: int
    state: str  # the redaction's trust state
    reason: str | None


class Quote(NamedTuple):
    parent_id: str
    name: str  # the parent's sender's display name (untrusted: cleaned when painted)
    text: str  # first line of the parent's latest text, "" unless status is "ok"
    # "ok"; "loading" (its page is being read); "missing" (not read: "message not
    # loaded yet"); "deleted"; "elsewhere" (another room's: ignored by the rules);
    # "ambiguous" (its id is shown more than once, signed by two devices: the rules quote
    # neither, PROTOCOL.md 18.1)
    status: str
    # the parent's shown trust (no better than its applied edits'): a reply quoting an
    # impostor's message must not make it look like what its named sender said
    trust: str = "verified"
    # the parent's sender as a row's header names them: the real id, and why it may
    # imitate another (``Names.warning``); "" / None while the parent is not read
    sender_id: str = ""
    warning: str | None = None
    # the parent was edited: its latest text is quoted, which may not be the one the
    # reply answered (its sender can change a question after it was answered)
    edited: bool = False


class ThreadSummary(NamedTuple):
    replies: int
    unread: int | None  # replies after the read marker (None: the app has none)


class Reacted(NamedTuple):
    """One reactor of a chip, as its tooltip lists them."""

    name: str  # display name
    sender_id: str
    state: str  # trust state (``Reactor.state``)
    warning: str | None  # why the id may imitate another, or None
    # False: "verified" only on trial while older history loads (``Reactor.provisional``):
    # said so, as a row of that key says it, never shown as a final verdict
    final: bool = True


class Chip(NamedTuple):
    key: str
    number: int  # people who reacted so
    mine: bool  # this user reacted so (clicking takes it back)
    all_verified: bool  # False: at least one reactor is not verified (marked)
    who: tuple[Reacted, ...]
    # its text looks like another chip's of the message, written differently
    # (``lookalike_texts``: "Yes" and "Үes"): marked, and spelled out in its tooltip
    lookalike: bool = False
    # False: a reactor is verified only on trial while older history loads
    # (``ReactionChip.final``): its badge is a ring, as such a row's is
    final: bool = True


@dataclass(slots=True)
class Row:
    event_id: str
    sender_id: str
    sender_key: str
    timestamp_ms: int
    type: str
    content: Mapping[str, Any]
    trust: str
    reason: str
    location: str
    echo: str = ""
    echo_error: str = ""
    cached: bool = False  # shown from the index: its verdict is an earlier check's
    parent: str | None = None  # the event replied to (``parent_event_id``)
    # Worked out once from ``type`` and ``content`` (an event never changes): ``kind``
    # and ``file_name`` are asked for many times a paint and a mouse move.
    _kind: str | None = field(default=None, repr=False, compare=False)
    _file_name: str | None = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        if self._kind is None:
            self._kind = self._kind_of()
        return self._kind

    def _kind_of(self) -> str:
        if self.type == MEMBER:
            return "member"
        if self.type != MESSAGE:
            return "other"
        msgtype = self.content.get("msgtype")
        if msgtype == "m.image" and is_risky_to_open(self.file_name):
            # a file card, never its sender's picture: a thumbnail of a beach passed
            # "holiday.jpg.exe" off as a photo (red team rt55)
            return "file"
        return {"m.file": "file", "m.image": "image"}.get(str(msgtype), "text")

    @property
    def file_name(self) -> str:
        """The file name the row's message announces (``announced_name``), made safe
        once: a name as long as an event line allows (250,000 characters) was cleaned
        again for each of the 17 times a paint of its row asked, and 12 a mouse move (red
        team rt69)."""
        if self._file_name is None:
            self._file_name = announced_name(self.content)
        return self._file_name

    @property
    def body(self) -> str:
        """What the row says: its DisplayRole (a screen reader), "Copy text", a quote. A
        file or image row says "📎 " and its name as its card shows it, never its body."""
        if self.type == MEMBER:
            return membership_text(self.content)
        if is_file_message(self.content):
            return message_text(self.content, self.file_name)
        return message_text(self.content)

    @property
    def day(self) -> dt.date | None:
        """The local day, None for a time past the year 9999 (never raises)."""
        return timestamps.local_day(self.timestamp_ms)

    @staticmethod
    def from_assessed(item: Assessed) -> Row:
        return Row.from_event(item.event, item.state.value, item.reason, f"{item.path}:{item.line}")

    @staticmethod
    def from_event(ev: Event, trust: str, reason: str, location: str, echo: str = "") -> Row:
        return Row(
            ev.event_id,
            ev.sender_id,
            ev.sender_key or "",
            ev.timestamp_ms,
            ev.type,
            ev.content,  # shared, not copied: events are never modified
            trust,
            reason,
            location,
            echo,
            parent=ev.parent_event_id,
        )

    @staticmethod
    def from_shown(item: ShownEvent) -> Row:
        """A row as the engine hands it over: the audit's verdict, the event's body from
        wherever the engine keeps it (a cached line that is not the audited event is
        shown as damaged, never with the verdict)."""
        verdict = item.verdict
        location = f"{verdict.path}:{verdict.line}"
        if isinstance(item.event, Malformed):
            return Row(
                verdict.event.event_id,
                verdict.event.sender_id,
                verdict.event.sender_key or "",
                verdict.event.timestamp_ms,
                "",
                {"body": "This message could not be read from this device's cache."},
                TrustState.INVALID.value,
                f"this device's cached copy of this row is damaged: {item.event.reason}",
                location,
            )
        return Row.from_event(item.event, verdict.state.value, verdict.reason, location)

    @staticmethod
    def from_cached(row: TimelineRow) -> Row:
        """A row of the index, shown before the room's audit arrives. Its event came back
        through the protocol parser (``Index.newest``); a damaged one is shown as such."""
        location = f"{row.path}:{row.line}"
        ev = row.event
        if isinstance(ev, Malformed):
            reason = f"this device's cached copy of this row is damaged: {ev.reason}"
            return Row(
                f"damaged-cache:{location}",
                "",
                "",
                0,
                "",
                {"body": "This cached message could not be shown (the room is read again)."},
                TrustState.INVALID.value,
                reason,
                location,
                cached=True,
            )
        out = Row.from_event(ev, row.state.value, row.reason, location)
        out.cached = True
        return out


class TimelineModel(QAbstractListModel):
    def __init__(self, own_key: str = "", parent: Any = None) -> None:
        super().__init__(parent)
        self.own_key = own_key
        self.own_user = ""  # this user's id: their reactions are highlighted
        # event id -> when a message arrived long after its date, and what its row says
        # (``note_late``): kept for the session, whatever audit shows the row
        self._late: dict[timestamps.LateCopy, timestamps.LateArrival] = {}
        self._above: list[Row] = []  # older rows fetched ahead, not exposed yet
        self._rows: list[Row] = []  # exposed rows: confirmed events, then local echoes
        self._first = 0  # shown-row number of the first exposed row (rows above it: _first)
        # Shown rows of the audit below the last exposed confirmed one and not held (only
        # after a jump to an older row: ``show_around``); paged in by ``fetch_newer``.
        self._below = 0
        self._below_ids: set[str] = set()
        self._pager: Pager | None = None  # by timeline position (what the engine pages)
        self._gen = 0  # which audit the positions belong to (one per set_audit)
        self._asking: int | None = None  # generation of the page request in flight
        self._asking_below: int | None = None
        # The generation whose rows are being merged in (``set_audit`` asked for a page of
        # them): until they are, the rows shown are the audit's before.
        self._merging: int | None = None
        self._wanted = False  # the view asked for older rows before they were here
        # ... and a re-audit came before they did: shown once what is shown is merged
        # into the new audit (the view sits at its top: it will not ask again)
        self._rewant = False
        self.complete = False
        # Relations of the audit shown (never None: an empty one when none came).
        self.relations = Relations("")
        # The read marker as a timeline position (rows at or after it are unread), for
        # the thread summary's unread count; None: the app keeps no read marker.
        self.read_position: int | None = None
        # Quoted parents that are not held, read through the pager: their rows by event
        # id, or "loading" / "missing" (could not be read).
        self._quotes: dict[str, Row | str] = {}
        # Reaction chips by event id, made once per relations and display names.
        self._chip_cache: dict[str, tuple[Chip, ...]] = {}
        # Unread replies by thread root, counted once per relations and read mark
        # (``_unread_mark``): a root's summary is asked at every paint and size of its
        # row, and a count walks every reply of the thread (a member writes 100,000).
        self._unread: dict[str, int] = {}
        self._unread_mark: int | None = None
        self._by_id: dict[str, Row] | None = None
        # Display names under the room-state rule, and every sender id in first-seen
        # order (look-alikes are marked): made on the engine's state thread with the
        # audit (``Roster.names``), never folded here.
        self.names: Names = NO_NAMES
        self.confirmed_keys: Confirmed = frozenset()  # Index.user_verified_keys()
        # (sender id, key) -> another room's name that does not trust it (``set_doubted``)
        self.doubted: Mapping[tuple[str, str], str] = {}
        self._busy = 0  # > 0 while a change is being signalled: no fetchMore then
        self._ids: set[str] | None = None  # ids of confirmed rows, built when first needed

    # -- Qt model API ---------------------------------------------------------------------

    @guard(0)
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    @guard()
    def roleNames(self) -> dict[int, QByteArray]:
        return {int(r): QByteArray(r.name.encode()) for r in Roles}

    @guard(None)  # a row that cannot answer shows as "could not be shown", never a crash
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Roles.Body):
            return self._body(row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.reason
        return self._role(row, index.row(), role)

    def aggregate(self, row: Row) -> Aggregate | None:
        if row.echo or not self.relations.aggregates:
            return None
        return self.relations.aggregates.get(row.event_id)

    def _body(self, row: Row) -> str:
        if row.type == MEMBER:
            # A statement naming this device's key, or a key that writes as someone else
            # in the room, says so ("names your key as theirs"), never "added a device".
            claim = statement_claim(
                row.sender_id, row.content, self.names.claims, self.own_user, self.own_key
            )
            return membership_text(row.content, claim=claim)
        agg = self.aggregate(row)
        if agg is not None:
            if agg.redacted is not None:
                return DELETED
            if agg.latest is not None:
                return agg.latest.body
        return row.body

    def _role(self, row: Row, i: int, role: int) -> Any:
        match role:
            case Roles.EventId:
                return row.event_id
            case Roles.Sender:
                return row.sender_id
            case Roles.SenderKey:
                return row.sender_key
            case Roles.Timestamp:
                return row.timestamp_ms
            case Roles.Kind:
                agg = self.aggregate(row)
                return "deleted" if agg is not None and agg.redacted else row.kind
            case Roles.Content:
                return row.content
            case Roles.FileName:  # None but for a file or image shown as one
                shown = self._role(row, i, Roles.Kind) in ("file", "image")
                return row.file_name if shown else None
            case Roles.Trust:
                return self._trust(row)
            case Roles.TrustReason:
                return self._trust_reason(row)
            case Roles.Echo:
                return row.echo
            case Roles.EchoError:
                return row.echo_error
            case Roles.DayBreak:
                prev = self._rows[i - 1] if i else (self._above[-1] if self._above else None)
                return prev is None or prev.day != row.day
            case Roles.Layout:
                return self._layout(row, i)
            case Roles.Location:
                return row.location
            case Roles.DisplayName:
                return self.names.shown(row.sender_id)
            case Roles.SenderWarning:
                return self._sender_warning(row)
            case Roles.Cached:
                return row.cached
            case Roles.Provisional:
                return on_trial(row.trust, row.reason)
            case Roles.Own:
                return bool(self.own_key) and row.sender_key == self.own_key
            case Roles.Confirmed:
                return (
                    self._trust(row) == TrustState.VERIFIED.value
                    and bool(row.sender_key)
                    and (row.sender_id, row.sender_key) in self.confirmed_keys
                )
            case Roles.Version:
                return _version(self.aggregate(row))
            case Roles.Edited:
                agg = self.aggregate(row)
                latest = agg.latest if agg is not None and not agg.redacted else None
                if agg is None or latest is None:
                    return None
                return Edited(len(agg.edits), latest.timestamp_ms, latest.state)
            case Roles.Deleted:
                agg = self.aggregate(row)
                red = agg.redacted if agg is not None else None
                return None if red is None else Deleted(red.timestamp_ms, red.state, red.reason)
            case Roles.Quote:
                return self._quote(row)
            case Roles.Thread:
                return self._thread(row)
            case Roles.Reactions:
                return self._chips(row)
            case Roles.Repeated:
                return self._repeated(row)
            case Roles.Late:
                return None if row.echo else self._late_note(row)
            case Roles.LateChange:
                return self._late_change_note(row)
        return None

    def _repeated(self, row: Row) -> bool:
        return not row.echo and row.event_id in self.relations.repeated

    def _trust(self, row: Row) -> str:
        agg = self.aggregate(row)
        if agg is None or not agg.edits or agg.redacted is not None:
            return row.trust
        return agg.state(row.trust)

    def _sender_warning(self, row: Row) -> str | None:
        """Why the row's sender may not be who they seem: their id may imitate another's
        (``Names.warning``), or another room of this storage does not trust the key that
        signed it for them (``set_doubted``)."""
        pair = (row.sender_id, row.sender_key)
        where = self.doubted.get(pair) if pair not in self.confirmed_keys else None
        return with_doubt(self.names.warning(row.sender_id), row.sender_id, where)

    def set_doubted(self, doubted: Mapping[tuple[str, str], str]) -> None:
        """(Sender id, key) pairs another room of this storage does not trust, with that
        room's name (``Controller.doubted_elsewhere``): rows signed so get a warning."""
        if doubted == self.doubted:
            return
        self.doubted = doubted
        self._every_row_changed(Roles.SenderWarning)

    def doubts_changed(self, pairs: Collection[tuple[str, str]]) -> None:
        """Another room's doubt of these (sender id, key) pairs reads otherwise now (the
        map ``doubted`` reads through is changed in place): the rows they signed change,
        from the first of them to the last, not every row of every room (red team rt75)."""
        at = [i for i, r in enumerate(self._rows) if (r.sender_id, r.sender_key) in pairs]
        if at:
            self.dataChanged.emit(self.index(at[0]), self.index(at[-1]), [int(Roles.SenderWarning)])

    def _every_row_changed(self, role: Roles) -> None:
        """``role`` of every row held may read otherwise now."""
        if self._rows:
            last = self.index(len(self._rows) - 1)
            self.dataChanged.emit(self.index(0), last, [int(role)])

    def _trust_reason(self, row: Row) -> str:
        shown = self._trust(row)
        if shown == row.trust:
            return row.reason
        return f"{row.reason}; an edit of this message is {TRUST_LABELS.get(shown, shown).lower()}"

    def _layout(self, row: Row, i: int) -> tuple[Any, ...]:
        """``Roles.Layout``. Grouped: same sender as the row above, within
        ``GROUP_GAP_MS``, same day, neither a membership row, not a row that arrived long
        after its date (``Roles.Late``)."""
        prev = self._rows[i - 1] if i else (self._above[-1] if self._above else None)
        day_break = prev is None or prev.day != row.day
        kind = row.kind
        grouped = (
            i > 0
            and prev is not None
            and not day_break
            and kind != "member"
            and prev.kind != "member"
            and prev.sender_key == row.sender_key
            and prev.sender_id == row.sender_id
            and row.timestamp_ms - prev.timestamp_ms < GROUP_GAP_MS
            # one that arrived long after its date stands alone: who wrote it, and its
            # trust mark, not hidden under the sender's old row it was dated next to
            and (row.event_id, row.location) not in self._late
        )
        agg = self.aggregate(row)
        base = (row.event_id, row.location)
        repeated = self._repeated(row)
        if agg is None and self._quoted(row) is None:
            return (
                *base,
                kind,
                day_break,
                grouped,
                row.echo,
                "",
                (0, ()),
                False,
                0,
                repeated,
                self._late_note(row),
                None,
            )
        deleted = agg is not None and agg.redacted is not None
        chips = self._chips(row)
        thread = self._thread(row)
        return (
            *base,
            "deleted" if deleted else kind,
            day_break,
            grouped,
            row.echo,
            _version(agg),
            (
                len(chips),
                tuple(
                    (c.key, c.number, c.all_verified, c.lookalike, c.final)
                    for c in chips[:MAX_CHIPS]
                ),
            ),
            self._quoted(row) is not None and not deleted,
            0 if thread is None else thread.replies,
            repeated,
            self._late_note(row),
            self._late_change_note(row),
        )

    # -- relations of one row --------------------------------------------------------------

    def _chips(self, row: Row) -> tuple[Chip, ...]:
        agg = self.aggregate(row)
        if agg is None or agg.redacted is not None or not agg.reactions:
            return ()
        got = self._chip_cache.get(row.event_id)
        if got is None:
            # compared with every chip of the message: the "+n" chip's tooltip lists more
            alike = lookalike_texts(c.key for c in agg.reactions)
            got = tuple(self._chip(c, c.key in alike) for c in agg.reactions)
            self._chip_cache[row.event_id] = got
        return got

    def _chip(self, chip: ReactionChip, lookalike: bool) -> Chip:
        names = self.names
        who = tuple(
            Reacted(
                names.shown(r.sender_id),
                r.sender_id,
                r.state,
                names.warning(r.sender_id),
                not r.provisional,
            )
            for r in chip.reactors
        )
        # a reaction under this user's id that no key of theirs wrote is not theirs, nor
        # one of a key only on trial while older history loads (an impostor's, perhaps)
        mine = bool(self.own_user) and relation_rules.own_reaction(chip, self.own_user) is not None
        return Chip(chip.key, chip.count, mine, chip.all_verified, who, lookalike, chip.final)

    def _thread(self, row: Row) -> ThreadSummary | None:
        agg = self.aggregate(row)
        if agg is None or not agg.thread:
            return None
        unread: int | None = None
        if self.read_position is not None:
            mark = self.read_position
            if mark != self._unread_mark:
                self._unread, self._unread_mark = {}, mark
            unread = self._unread.get(agg.event_id)
            if unread is None:
                positions = self.relations.positions
                unread = sum(1 for r in agg.thread if positions.get(r, -1) >= mark)
                self._unread[agg.event_id] = unread
        return ThreadSummary(len(agg.thread), unread)

    def _quoted(self, row: Row) -> str | None:
        """The parent a row quotes: none for a reply to a relation event (a reaction,
        an edit, a deletion: not a message, relation-invalid under the rules)."""
        parent_id = row.parent
        if parent_id is None or parent_id == row.event_id:  # a reply to itself: invalid
            return None
        position = self.relations.positions.get(parent_id)
        if position is not None and self.relations.row_of(position) is None:
            return None
        return parent_id

    def _quote(self, row: Row) -> Quote | None:
        parent_id = self._quoted(row)
        if parent_id is None:
            return None
        if parent_id in self.relations.repeated:  # which copy is meant: nobody can say
            return Quote(parent_id, "", "", "ambiguous")
        agg = self.relations.aggregates.get(parent_id)
        deleted = agg is not None and agg.redacted is not None
        parent: Row | str | None = self._held(parent_id)
        if parent is None:
            parent = self._quotes.get(parent_id)
        if parent is None:
            self._ask_quote(parent_id)
            parent = self._quotes.get(parent_id, "missing")
        if isinstance(parent, str):
            if self.relations.room_id and not parent_id.startswith(self.relations.room_id + "::"):
                parent = "elsewhere"  # another room's: the rules ignore it (a finding)
            return Quote(parent_id, "", "", "deleted" if deleted else parent)
        sender = parent.sender_id
        name, warning = self.names.shown(sender), self.names.warning(sender)
        if deleted:
            return Quote(parent_id, name, "", "deleted", sender_id=sender, warning=warning)
        text = agg.latest.body if agg is not None and agg.latest is not None else parent.body
        first = next((line for line in text.splitlines() if line.strip()), "")
        trust = agg.state(parent.trust) if agg is not None else parent.trust
        edited = agg is not None and agg.latest is not None
        # a file's name is cut in the middle: its extension always shows
        shown = (
            middle_cut(one_line(first), 160)
            if parent.kind in ("file", "image")
            else one_line(first, 160)
        )
        return Quote(parent_id, name, shown, "ok", trust, sender, warning, edited)

    def _held(self, event_id: str) -> Row | None:
        """A confirmed row held (exposed or fetched ahead) by its event id."""
        if self._by_id is None:
            self._by_id = {r.event_id: r for r in self._above}
            self._by_id.update((r.event_id, r) for r in self._rows if not r.echo)
        return self._by_id.get(event_id)

    def _ask_quote(self, parent_id: str) -> None:
        """Read a quoted parent that is not held (one row, by its timeline position):
        ``_quotes`` says "loading" until it is there (or "missing")."""
        position = self.relations.positions.get(parent_id)
        if position is None or self._pager is None:
            self._quotes[parent_id] = "missing"
            return
        self._quotes[parent_id] = "loading"
        gen = self._gen

        def got(rows: Sequence[ShownEvent] | None) -> None:
            if gen != self._gen:
                return
            found = Row.from_shown(rows[0]) if rows else None
            # Not the row the relations named: shown as not loaded, never as the parent.
            ok = found is not None and found.event_id == parent_id
            self._quotes[parent_id] = found if found is not None and ok else "missing"
            # Never from inside data(): a synchronous pager answers while Qt asks.
            QTimer.singleShot(0, lambda: self._refresh_quoting(parent_id))

        self._pager(position, position + 1, got)

    def _refresh_quoting(self, parent_id: str) -> None:
        for i, r in enumerate(self._rows):
            if r.parent == parent_id:
                self.dataChanged.emit(self.index(i), self.index(i))

    def note_late(self, notes: Mapping[timestamps.LateCopy, timestamps.LateArrival]) -> None:
        """Messages that arrived long after their date (the copy, ``timestamps.late_copy``
        -> when, and what its row says): placed among older rows, where nobody looks, the
        row says so. The rows shown among them change (their height too). A copy noted
        already keeps its first arrival: when this device first read it, which an export
        writes. Kept by copy, not by id: only the row of the copy that arrived late says
        so, not another member's message under the same id (red team rt89). An edit's or
        a deletion's copy is said on the row of its message, while it is the change that
        row shows (``Roles.LateChange``: its latest edit, or its deletion)."""
        fresh = {k: v for k, v in notes.items() if k not in self._late}
        if not fresh:
            return
        self._late.update(fresh)
        # One pass over the exposed rows, each looked up in ``fresh`` (a row's own copy,
        # or the change it shows): never a pass per note (review rev2: a member's
        # thousands of backdated edits were notes x rows on the GUI thread).
        for i in range(self._echo_start()):
            row = self._rows[i]
            if (row.event_id, row.location) in fresh or self._change_copy(row) in fresh:
                self.dataChanged.emit(self.index(i), self.index(i))

    def _late_note(self, row: Row) -> str | None:
        late = self._late.get((row.event_id, row.location))
        return late.note if late is not None else None

    def _change_copy(self, row: Row) -> timestamps.LateCopy | None:
        """The copy of the change a row shows: its deletion's, else its latest edit's."""
        agg = self.aggregate(row)
        if agg is None:
            return None
        if agg.redacted is not None:
            red = agg.redacted
            return timestamps.change_copy(red.event_id, red.path, red.line)
        latest = agg.latest
        if latest is None:
            return None
        return timestamps.change_copy(latest.event_id, latest.path, latest.line)

    def _late_change_note(self, row: Row) -> str | None:
        """What the row says of the change it shows (its latest edit, or its deletion)
        when that arrived long after its date (``note_late``): the row's own date, and
        the edit's shown in Previous versions, are the sender's word."""
        copy = self._change_copy(row)
        late = self._late.get(copy) if copy is not None else None
        if late is None:
            return None
        agg = self.aggregate(row)
        deleted = agg is not None and agg.redacted is not None
        return late.change_note(timestamps.DELETION if deleted else timestamps.LATEST_EDIT)

    def late_arrivals(self) -> dict[timestamps.LateCopy, timestamps.LateArrival]:
        """A copy of the late arrivals noted this session (``note_late``), by copy:
        what leaves the app (an export, a search result) says what the row says."""
        return dict(self._late)

    def late_arrival(self, copy: timestamps.LateCopy) -> timestamps.LateArrival | None:
        return self._late.get(copy)

    def locate(self, event_id: str) -> int | None:
        """The exposed row showing ``event_id``, None when it is not exposed."""
        for i in range(self._echo_start() - 1, -1, -1):
            if self._rows[i].event_id == event_id:
                return i
        return None

    def set_read_mark(self, event_id: str) -> None:
        """The room's first unread message (the "New messages" line): replies at or after
        it count as unread in their thread's summary. An empty id, or one not held: no
        mark (the summaries then say only how many replies)."""
        row = self.locate(event_id) if event_id else None
        position = None if row is None else self.relations.position_of(self._first + row)
        if position == self.read_position:
            return
        self.read_position = position
        if self._rows:  # thread summaries change size: every row is asked again
            self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1))

    def shown_row_of(self, event_id: str) -> int | None:
        """The shown-row number (over the whole audit) of a row named by the relations
        (never one of an id shown more than once: they name none)."""
        position = self.relations.positions.get(event_id)
        return None if position is None else self.relations.row_of(position)

    # Older history is paged in at the *top*, so it is not offered through Qt's
    # canFetchMore/fetchMore: item views call those by themselves whenever the last row is
    # visible, and a view kept at the bottom would page in the whole history. The view
    # asks for older rows explicitly when the user scrolls to the top.
    @guard(False)
    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return False

    def can_fetch_older(self) -> bool:
        return (bool(self._above) or self._first > 0) and not self._busy

    def can_fetch_newer(self) -> bool:
        """Rows below those shown are not held (after a jump to an older row)."""
        return self._below > 0

    def fetch_older(self) -> None:
        """Reveal the next page of older rows above those shown (fetched ahead; if they
        are not here yet, they are shown as soon as they are), and fetch the next."""
        # A slot of one of our own change signals may ask for more: a nested insert
        # would corrupt the model, so not now.
        if self._busy:
            return
        if not self._above:
            if self._first > 0:
                self._wanted = True
                self._fetch_ahead()
            return
        page = self._above[-PAGE:]
        self.beginInsertRows(QModelIndex(), 0, len(page) - 1)
        del self._above[-len(page) :]
        self._rows[:0] = page
        self._first -= len(page)
        self.endInsertRows()
        if len(self._above) < PAGE:
            self._fetch_ahead()

    def fetch_newer(self) -> None:
        """Page in the rows below those shown (only after ``show_around``)."""
        if self._busy or self._below <= 0 or self._asking_below == self._gen:
            return
        start = self._first + self._echo_start()
        stop = start + min(PAGE, self._below)
        gen = self._asking_below = self._gen

        def got(rows: Sequence[ShownEvent] | None) -> None:
            if self._asking_below == gen:
                self._asking_below = None
            if rows is None or gen != self._gen or start != self._first + self._echo_start():
                return
            fresh = [Row.from_shown(x) for x in rows][: self._below]
            self._below -= len(fresh)
            if self._below == 0:
                self._below_ids.clear()
            self._insert_confirmed(fresh)

        self._page(start, stop, got)

    def _fetch_ahead(self) -> None:
        """Ask the pager for the page above what is held (one request at a time)."""
        top = self._first - len(self._above)
        if self._pager is None or top <= 0 or self._asking == self._gen:
            return
        gen = self._asking = self._gen
        self._page(max(0, top - PAGE), top, lambda rows: self._on_page(gen, top, rows))

    def _page(self, start: int, stop: int, reply: Reply) -> None:
        """Shown rows ``start:stop``: the timeline positions they span are asked for, the
        hidden rows among them (relation events) dropped."""
        if self._pager is None:
            return
        rel = self.relations
        if stop <= start:
            reply(())
            return
        first = rel.position_of(start) if rel.hidden else start
        end = rel.position_of(stop - 1) + 1 if rel.hidden else stop
        if not rel.hidden:
            self._pager(first, end, reply)
            return

        def shown(rows: Sequence[ShownEvent] | None) -> None:
            if rows is None:
                reply(None)
                return
            reply([x for n, x in enumerate(rows) if rel.row_of(first + n) is not None])

        self._pager(first, end, shown)

    def _on_page(self, gen: int, top: int, rows: Sequence[ShownEvent] | None) -> None:
        if self._asking == gen:
            self._asking = None
        if rows is None:
            return  # that audit was replaced: its successor's RoomLoaded is on its way
        if gen != self._gen or top != self._first - len(self._above):
            self._fetch_ahead()  # what is held moved on: the page above it now
            return
        fresh = [Row.from_shown(x) for x in rows]
        self._above[:0] = fresh
        if self._ids is not None:
            self._ids.update(r.event_id for r in fresh)
        self._by_id = None
        if self._wanted:
            self._wanted = False
            self.fetch_older()

    def show_around(self, row: int, done: Callable[[int], None] | None = None) -> None:
        """Show the page around shown row ``row`` of the audit (a jump to a quoted
        message that is not held): what is held is replaced by that page (a reset), the
        rows below it are paged in as the view scrolls down. ``done`` gets the model row
        of ``row`` once it is shown."""
        if self._pager is None:
            return
        exposed = self._echo_start()
        shown_total = self._first + exposed + self._below
        if not 0 <= row < shown_total:
            return
        if self._first <= row < self._first + exposed:
            if done is not None:
                done(row - self._first)
            return
        start = max(0, row - PAGE // 2)
        stop = min(shown_total, start + PAGE)
        self._gen += 1  # pages asked for before belong to what was held
        gen = self._gen

        def got(rows: Sequence[ShownEvent] | None) -> None:
            if rows is None or gen != self._gen:
                return
            echoes = self._rows[self._echo_start() :]
            fresh = [Row.from_shown(x) for x in rows]
            self._ids = None
            self._by_id = None
            self.beginResetModel()
            self._above = []
            self._rows = fresh + echoes
            self._first = start
            self._below = max(0, shown_total - start - len(fresh))
            self._below_ids = set()
            self.endResetModel()
            self._fetch_ahead()
            if done is not None and start <= row < start + len(fresh):
                done(row - start)

        self._page(start, stop, got)

    # Every change is bracketed, so fetchMore can tell it is called from inside one.
    def beginInsertRows(self, parent: Index, first: int, last: int) -> None:
        self._busy += 1
        super().beginInsertRows(parent, first, last)

    def endInsertRows(self) -> None:
        try:
            super().endInsertRows()
        finally:
            self._busy -= 1

    def beginRemoveRows(self, parent: Index, first: int, last: int) -> None:
        self._busy += 1
        super().beginRemoveRows(parent, first, last)

    def endRemoveRows(self) -> None:
        try:
            super().endRemoveRows()
        finally:
            self._busy -= 1

    def beginResetModel(self) -> None:
        self._busy += 1
        super().beginResetModel()

    def endResetModel(self) -> None:
        try:
            super().endResetModel()
        finally:
            self._busy -= 1

    # -- feeding it -----------------------------------------------------------------------

    def set_confirmed_keys(self, keys: Confirmed) -> None:
        """(Sender id, key) pairs the user confirmed out of band: their verified events
        show "confirmed"; the key signing as someone else does not."""
        if keys == self.confirmed_keys:
            return
        self.confirmed_keys = keys
        self._every_row_changed(Roles.Confirmed)
        self._every_row_changed(Roles.SenderWarning)  # a confirmed key is doubted nowhere

    @property
    def total(self) -> int:
        """Shown rows of the audit (those above and below the exposed ones too), and
        echoes."""
        return self._first + len(self._rows) + self._below

    @property
    def held(self) -> int:
        """Rows this model holds in memory (exposed and fetched ahead)."""
        return len(self._above) + len(self._rows)

    def row(self, i: int) -> Row:
        return self._rows[i]

    def _echo_start(self) -> int:
        i = len(self._rows)
        while i and self._rows[i - 1].echo:
            i -= 1
        return i

    def show_cached(self, rows: Sequence[TimelineRow]) -> None:
        """The index's newest rows, shown before the room is read (no crypto, no network).
        Relation events are not rows (their aggregates come with the audit). Rows of this
        device's sends (echo, kept) that came first stay below them (review a, B2: a kept
        send resumed at start hid the room's whole history until its audit)."""
        echoes = self._echo_start()
        if echoes or self._above:
            return
        deleted = _deleted_among(rows) | {r.event_id for r in self._rows}  # echoed: once
        rows = [
            x
            for x in rows
            if isinstance(x.event, Malformed)
            or (x.event.type not in HIDDEN_TYPES and x.event.event_id not in deleted)
        ]
        converted = [Row.from_cached(x) for x in rows]
        # A damaged row has no time of its own: it takes its neighbour's, so it starts
        # no day of its own (1970) and sits where it was.
        damaged = [isinstance(x.event, Malformed) for x in rows]
        ts = next((r.timestamp_ms for r, bad in zip(converted, damaged, strict=True) if not bad), 0)
        for r, bad in zip(converted, damaged, strict=True):
            if bad:
                r.timestamp_ms = ts
            else:
                ts = r.timestamp_ms
        if any(damaged):
            log.warning("%d cached row(s) of this room are damaged; shown as such", sum(damaged))
        self._ids = None
        self._by_id = None
        self.beginResetModel()
        self._rows = converted + self._rows
        self.endResetModel()

    def set_timeline(
        self,
        items: Sequence[Assessed],
        complete: bool,
        relations: Relations | None = None,
        names: Names | None = None,
    ) -> None:
        """A full (re)audit given whole (events with bodies), paged from that list: for
        callers that hold a room's result themselves (tests, tools, a thread's rows);
        ``names``: the room's display names (None: none, ids are shown)."""
        whole = list(items)

        def pager(start: int, stop: int, reply: Reply) -> None:
            reply([ShownEvent(a, a.event) for a in whole[max(0, start) : max(0, stop)]])

        newest = [ShownEvent(a, a.event) for a in whole[-PAGE:]]
        self.set_audit(len(whole), newest, complete, names, pager, relations)

    def set_audit(
        self,
        total: int,
        newest: Sequence[ShownEvent],
        complete: bool,
        names: Names | None,
        pager: Pager | None,
        relations: Relations | None = None,
    ) -> None:
        """A full (re)audit of ``total`` timeline rows, of which ``newest`` are the last
        (with bodies); ``names``: the audit's display names and sender ids, made on the
        engine's state thread (``Roster.names``; None: none); ``pager`` fetches other rows of
        this audit by timeline position; ``relations``: the audit's (which rows are not
        shown, what relations say about the others). What is shown is kept wherever the
        order allows."""
        self.complete = complete
        self._gen += 1
        self._pager = pager
        self._rewant = self._rewant or self._wanted
        self._wanted = False
        self._quotes = {}
        self._chip_cache = {}
        self._unread = {}
        self.relations = relations if relations is not None else Relations("")
        rel = self.relations
        self.names = names if names is not None else NO_NAMES
        if rel.hidden:
            at = total - len(newest)
            newest = [x for n, x in enumerate(newest) if rel.row_of(at + n) is not None]
            total = rel.shown_count(total)
        if self._below:
            # A page in the middle was shown (a jump): the new audit starts at its newest.
            self._below = 0
            self._below_ids = set()
            self._above = []
            del self._rows[: self._echo_start()]
        new = [Row.from_shown(x) for x in newest]
        base = total - len(new)
        exposed = self._echo_start()
        if exposed > len(new) and base > 0 and pager is not None:
            # The user scrolled above the newest page: the rows shown get this audit's
            # verdicts from a page of it (a moment later), or a reset if it moved on.
            # Until then nothing is fetched ahead: positions belong to the new audit.
            gen = self._asking = self._merging = self._gen
            want = min(exposed, total) - len(new)
            self._above = []
            self._ids = None
            self._by_id = None

            def merge(rows: Sequence[ShownEvent] | None) -> None:
                if self._asking == gen:
                    self._asking = None
                if self._merging == gen:
                    self._merging = None
                if gen == self._gen and rows is not None:
                    self._merge([Row.from_shown(x) for x in rows] + new, total)

            self._page(base - want, base, merge)
            return
        self._merge(new, total)

    def _merge(self, new: list[Row], total: int) -> None:
        """Show ``new``, the last rows of an audit of ``total`` rows."""
        self._ids = None
        self._by_id = None
        base = total - len(new)
        echoes = [r for r in self._rows[self._echo_start() :] if r.echo]
        confirmed = {r.event_id for r in new}
        echoes = [e for e in echoes if e.event_id not in confirmed]
        old_ids = [r.event_id for r in self._rows[: self._echo_start()]]
        start = _find([r.event_id for r in new], old_ids)
        if old_ids and start >= 0:
            # What is shown is still a contiguous run: older rows go above (fetched
            # ahead), newer ones are appended, verdicts that changed are refreshed.
            exposed = len(old_ids)
            self._above = new[:start]
            self._first = base + start
            for i in range(exposed):
                self._rows[i] = new[start + i]
            if exposed:
                self.dataChanged.emit(self.index(0), self.index(exposed - 1))
            self._drop_confirmed_echoes(confirmed)
            self._insert_confirmed(new[start + exposed :])
            wanted, self._rewant = self._rewant, False
            # Older rows that arrived above a short page (history read newest first, or a
            # backdated writer) are shown at once: a view that does not scroll yet has no
            # top to scroll to, so it would never ask for them. So are those the view
            # asked for before this audit came.
            if self._first > 0 and (wanted or self._echo_start() < PAGE):
                self.fetch_older()
            else:
                self._fetch_ahead()
            return
        self._rewant = False  # what is shown is replaced: the view starts over
        self.beginResetModel()
        self._above = new[:-PAGE] if len(new) > PAGE else []
        self._rows = new[-PAGE:] + echoes
        self._first = total - len(self._rows) + len(echoes)
        self.endResetModel()
        if self._first > 0 and len(new) < PAGE // 2:
            # The newest rows were mostly relation events: too few to fill a view that
            # could then not scroll to ask for more. Show the page above as it comes.
            self.fetch_older()
        else:
            self._fetch_ahead()

    def append(
        self,
        items: Sequence[Assessed],
        relations: Relations | None = None,
        names: Names | None = None,
    ) -> None:
        """Rows that sort after everything shown, and the relations and display names
        of the audit with them (None: unchanged). Relation events are not rows: the rows
        they change are refreshed (``dataChanged``, their height measured again), nothing
        moves."""
        # An append may repeat rows a full re-audit already brought (the engine's result
        # object is shared), so rows already shown are skipped.
        shown = self._confirmed_ids()
        fresh = [a for a in items if a.event.event_id not in shown]
        old = self.relations
        if relations is not None:
            self.relations = relations
            self._unread = {}  # threads and their replies' positions as these relations say
        renamed = False
        if names is not None and names is not self.names:
            self.names, renamed = names, True
        if relations is not None or renamed:
            self._chip_cache = {}  # display names or reactions changed
        visible = [a for a in fresh if a.event.type not in HIDDEN_TYPES]
        rows = [Row.from_assessed(a) for a in visible]
        self._drop_confirmed_echoes({a.event.event_id for a in fresh})
        if self._below:
            rows = [r for r in rows if r.event_id not in self._below_ids]
            self._below_ids.update(r.event_id for r in rows)
            self._below += len(rows)
        else:
            self._insert_confirmed(rows)
        if self.relations is not old:
            self._relations_changed(old)

    def place(
        self,
        at: int,
        items: Sequence[Assessed],
        relations: Relations | None,
        names: Names | None,
        pager: Pager | None,
    ) -> bool:
        """Rows placed at timeline position ``at`` of a new audit, before its newest rows
        (behind one dated a little ahead: ``EventsAppended.at``), the rows from there on
        moved down; ``relations`` and ``names`` are the new audit's, ``pager`` pages it.
        Inserted where they go (``beginInsertRows``), the row below them asked again (it
        follows another row now: its day break and grouping). False, with nothing
        changed, when what is held cannot take them exactly: a page in the middle is shown
        (after a jump), a re-audit's rows are still being merged in, they go above the
        rows shown, or one is shown already. The caller then shows the audit anew."""
        rel = relations if relations is not None else self.relations
        count = len(items)
        shown_at = rel.row_of(at) if rel.hidden else at
        exposed = self._echo_start()
        if (
            shown_at is None
            or self._below
            or self._merging == self._gen
            or not 0 <= shown_at - self._first <= exposed
            or any(a.event.type in HIDDEN_TYPES for a in items)
            or not self._confirmed_ids().isdisjoint(a.event.event_id for a in items)
        ):
            return False
        local = shown_at - self._first
        # Positions from ``at`` on moved: pages asked of the audit before are dropped, and
        # what is fetched from now on is this audit's.
        self._gen += 1
        self._pager = pager
        self._asking = self._asking_below = None
        if self.read_position is not None and self.read_position >= at:
            self.read_position += count
        old = self.relations
        self.relations = rel
        if names is not None and names is not self.names:
            self.names = names
        self._chip_cache = {}
        self._unread = {}  # positions from ``at`` on moved
        # a quoted parent asked of the audit before is asked again when next painted
        waiting = [k for k, v in self._quotes.items() if v == "loading"]
        for parent_id in waiting:
            del self._quotes[parent_id]
            QTimer.singleShot(0, lambda p=parent_id: self._refresh_quoting(p))
        rows = [Row.from_assessed(a) for a in items]
        self._drop_confirmed_echoes({r.event_id for r in rows})  # below: ``local`` stays
        if self._ids is not None:
            self._ids.update(r.event_id for r in rows)
        self._by_id = None
        if rows:
            self.beginInsertRows(QModelIndex(), local, local + count - 1)
            self._rows[local:local] = rows
            self.endInsertRows()
            below = local + count
            if below < self._echo_start():
                self.dataChanged.emit(self.index(below), self.index(below))
        if self.relations is not old:
            self._relations_changed(old)
        if len(self._above) < PAGE:
            self._fetch_ahead()
        return True

    def _relations_changed(self, old: Relations) -> None:
        """Refresh the exposed rows whose aggregate (or quoted parent's) changed."""
        new = self.relations
        before, after = old.aggregates, new.aggregates
        changed = [
            i
            for i, r in enumerate(self._rows)
            if not r.echo
            and (
                before.get(r.event_id) != after.get(r.event_id)
                or (r.parent is not None and before.get(r.parent) != after.get(r.parent))
            )
        ]
        for i in changed:
            self.dataChanged.emit(self.index(i), self.index(i))

    def _confirmed_ids(self) -> set[str]:
        if self._ids is None:
            self._ids = {r.event_id for r in self._above}
            self._ids.update(r.event_id for r in self._rows if not r.echo)
        return self._ids

    def _insert_confirmed(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        at = self._echo_start()
        if self._ids is not None:
            self._ids.update(r.event_id for r in rows)
        self._by_id = None
        self.beginInsertRows(QModelIndex(), at, at + len(rows) - 1)
        self._rows[at:at] = rows
        self.endInsertRows()

    def _drop_confirmed_echoes(self, confirmed: set[str]) -> None:
        i = len(self._rows) - 1
        while i >= 0 and self._rows[i].echo:
            if self._rows[i].event_id in confirmed:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._rows[i]
                self.endRemoveRows()
            i -= 1

    def set_kept(self, kept: SendKept) -> None:
        """A send kept before it could be signed (``SendKept``): its drafts shown as
        "sending" at once, as rows of their own (ids ``kept-<hold>-<n>``: no event
        exists yet), "waiting" with the reason when a try to send it failed (it is tried
        again: "sending" once more); taken away once it is queued (its events' echo
        follows) or refused."""
        prefix = f"kept-{kept.seq}-"
        shown = [i for i, r in enumerate(self._rows) if r.echo and r.event_id.startswith(prefix)]
        if not kept.kept:
            for i in reversed(shown):
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._rows[i]
                self.endRemoveRows()
            return
        echo = "waiting" if kept.error else "sending"
        if shown:  # tried again, or not sent yet: its rows say which
            for i in shown:
                self._rows[i].echo = echo
                self._rows[i].echo_error = kept.error
                self.dataChanged.emit(self.index(i), self.index(i))
            return
        now = dt.datetime.now(dt.UTC)
        stamp = int(now.timestamp() * 1000)
        fresh = [
            Row(
                f"{prefix}{n}",
                kept.sender_id,
                kept.sender_key,
                stamp,
                draft[0],
                draft[1],
                "",
                "not yet sent",
                "outbox",
                echo,
                echo_error=kept.error,
                parent=draft[2] if len(draft) > 2 else None,
            )
            for n, draft in enumerate(kept.drafts)
            if draft[0] not in HIDDEN_TYPES
        ]
        if fresh:
            at = len(self._rows)
            self.beginInsertRows(QModelIndex(), at, at + len(fresh) - 1)
            self._rows.extend(fresh)
            self.endInsertRows()

    def set_echo(self, events: Sequence[Event], state: str, error: str = "") -> None:
        """Local echo of this device's events: "sending", "failed" or "sent". Relation
        events (a reaction, an edit, a deletion) have no row: they show on their target
        once the room reads them."""
        if state == "sent":
            return  # the confirmed event replaces the echo when the room reads it
        events = [ev for ev in events if ev.type not in HIDDEN_TYPES]
        known = {r.event_id: i for i, r in enumerate(self._rows) if r.echo}
        confirmed = {r.event_id for r in self._rows[: self._echo_start()]}
        fresh = []
        for ev in events:
            if ev.event_id in confirmed:
                continue
            if ev.event_id in known:
                i = known[ev.event_id]
                self._rows[i].echo = state
                self._rows[i].echo_error = error
                self.dataChanged.emit(self.index(i), self.index(i))
            else:
                row = Row.from_event(ev, "", "not yet sent", "outbox", state)
                row.echo_error = error
                fresh.append(row)
        if fresh:
            at = len(self._rows)
            self.beginInsertRows(QModelIndex(), at, at + len(fresh) - 1)
            self._rows.extend(fresh)
            self.endInsertRows()


def kept_hold(event_id: str) -> int | None:
    """The hold (``SendKept.seq``) a row of a send kept unsigned shows (its id
    ``kept-<hold>-<n>``: ``TimelineModel.set_kept``), None for any other row."""
    kind, _, rest = event_id.partition("-")
    seq, _, n = rest.partition("-")
    if kind != "kept" or not seq.isdigit() or not n.isdigit():
        return None
    return int(seq)


def _version(agg: Aggregate | None) -> str:
    """What a row's text depends on beyond its own event (the delegate's cache key)."""
    if agg is None:
        return ""
    if agg.redacted is not None:
        return f"deleted:{agg.redacted.event_id}"
    latest = agg.latest
    return latest.event_id if latest is not None else ""


def _find(haystack: list[str], needle: list[str]) -> int:
    """Start of ``needle`` as a contiguous run in ``haystack`` (or -1). Linear: the run's
    first id is located by dict lookup, then compared once."""
    if not needle:
        return -1
    positions = {eid: i for i, eid in enumerate(haystack)}
    start = positions.get(needle[0], -1)
    if start < 0 or haystack[start : start + len(needle)] != needle:
        return -1
    return start


def _deleted_among(rows: Sequence[TimelineRow]) -> frozenset[str]:
    """The cached rows a cached deletion among them takes back (the relation rules on
    these rows and their cached verdicts). Shown before the audit, such a row would show
    the text its sender deleted until the audit's relations arrive: it is left out.

    Read as history still loading (``relations.RowList(complete=False)``): only a
    deletion signed by the message's own key counts here. A cached "verified" may be a
    key the saving audit took provisionally (an impostor's, while older history was
    read), and that key's deletion would hide someone's message until the audit came.
    A deletion from the sender's other device waits for the audit."""
    events = [
        relation_rules.Row(i, x.event, x.state.value)
        for i, x in enumerate(rows)
        if isinstance(x.event, Event)
    ]
    if not any(r.event.type == relation_rules.REDACTION for r in events):
        return frozenset()
    rel = relation_rules.build(
        events[0].event.room_id, relation_rules.RowList(events, complete=False)
    )
    return frozenset(k for k, agg in rel.aggregates.items() if agg.redacted is not None)
