"""One room's timeline as a list model.

Rows are the audited events in display order, followed by local echoes of what this
device is still sending. The model never holds the whole history: it holds the rows it
exposes (the newest ``PAGE`` at first, more as the user scrolls up) and one page of older
rows fetched ahead, so scrolling up never waits. Pages come from a *pager* (the
controller asks the ``ChatClient``, which reads them on the engine's worker from the
audit in memory and the index: ``SyncEngine.timeline_page``), each row with the audit's
verdict. A million-event room costs what is on screen, not a million rows. Appends use
``beginInsertRows``; a reset happens only when a re-audit reorders what is shown.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QPersistentModelIndex, Qt

from ... import timestamps
from ...index import TimelineRow
from ...protocol.audit import Assessed, TrustState
from ...protocol.event import MEMBER, MESSAGE, Event, Malformed
from ...protocol.room_state import DisplayNames, membership_text
from ...sync.events import ShownEvent
from ..safe import guard

PAGE = 200
EARLIER_CHECK = "from this device's earlier check; the room is being read again"

log = logging.getLogger("bucket_chat.gui")

Index = QModelIndex | QPersistentModelIndex
# pager(start, stop, reply): ask for rows start:stop of the audit shown; ``reply`` is called
# (now or later, on the GUI thread) with them, or with None when that audit was replaced.
Reply = Callable[[Sequence[ShownEvent] | None], None]
Pager = Callable[[int, int, Reply], None]
# reveal's answer: the row showing the message, or -1 and why it is not shown.
Revealed = Callable[[int, str], None]
REVEAL_TRIES = 3


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
    Echo = enum.auto()  # "", "sending", "failed"
    EchoError = enum.auto()
    DayBreak = enum.auto()  # True when the row starts a new (local) day
    Location = enum.auto()  # "path:line" the event was read from
    Own = enum.auto()
    DisplayName = enum.auto()  # from the sender's verified join, else their user id
    Confirmed = enum.auto()  # verified, and the user confirmed its key out of band
    SenderWarning = enum.auto()  # why the sender id may imitate another, or None
    Cached = enum.auto()  # True: the verdict is the index's, from an earlier check
    # Everything a row's height depends on, in one call (the delegate caches heights by it):
    # (event id, location, kind, day break, grouped under the row above, echo state)
    Layout = enum.auto()


GROUP_GAP_MS = 5 * 60 * 1000  # a message within this of the one above, same sender: no header


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

    @property
    def kind(self) -> str:
        if self.type == MEMBER:
            return "member"
        if self.type != MESSAGE:
            return "other"
        msgtype = self.content.get("msgtype")
        return {"m.file": "file", "m.image": "image"}.get(str(msgtype), "text")

    @property
    def body(self) -> str:
        if self.type == MEMBER:
            return membership_text(self.content)
        body = self.content.get("body")
        return body if isinstance(body, str) else ""

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
        self._above: list[Row] = []  # older rows fetched ahead, not exposed yet
        self._rows: list[Row] = []  # exposed rows: confirmed events, then local echoes
        self._first = 0  # audit position of the first exposed row (rows above it: _first)
        self._pager: Pager | None = None
        self._gen = 0  # which audit the positions belong to (one per set_audit)
        self._asking: int | None = None  # generation of the page request in flight
        self._wanted = False  # the view asked for older rows before they were here
        self.complete = False
        # Display names under the room-state rule, and every sender id in first-seen
        # order (look-alikes are marked).
        self.names = DisplayNames()
        self.confirmed_keys: frozenset[str] = frozenset()  # Index.user_verified_keys()
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
            return row.body
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.reason
        return self._role(row, index.row(), role)

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
                return row.kind
            case Roles.Content:
                return row.content
            case Roles.Trust:
                return row.trust
            case Roles.TrustReason:
                return row.reason
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
                return self.names.warning(row.sender_id)
            case Roles.Cached:
                return row.cached
            case Roles.Own:
                return bool(self.own_key) and row.sender_key == self.own_key
            case Roles.Confirmed:
                return (
                    row.trust == TrustState.VERIFIED.value
                    and bool(row.sender_key)
                    and row.sender_key in self.confirmed_keys
                )
        return None

    def _layout(self, row: Row, i: int) -> tuple[str, str, str, bool, bool, str]:
        """``Roles.Layout``. Grouped: same sender as the row above, within
        ``GROUP_GAP_MS``, same day, neither a membership row."""
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
        )
        return (row.event_id, row.location, kind, day_break, grouped, row.echo)

    # Older history is paged in at the *top*, so it is not offered through Qt's
    # canFetchMore/fetchMore: item views call those by themselves whenever the last row is
    # visible, and a view kept at the bottom would page in the whole history. The view
    # asks for older rows explicitly when the user scrolls to the top.
    @guard(False)
    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return False

    def can_fetch_older(self) -> bool:
        return (bool(self._above) or self._first > 0) and not self._busy

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

    def _fetch_ahead(self) -> None:
        """Ask the pager for the page above what is held (one request at a time)."""
        top = self._first - len(self._above)
        if self._pager is None or top <= 0 or self._asking == self._gen:
            return
        gen = self._asking = self._gen
        self._pager(max(0, top - PAGE), top, lambda rows: self._on_page(gen, top, rows))

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
        if self._wanted:
            self._wanted = False
            self.fetch_older()

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

    # -- a message found by search, in context -------------------------------------------

    def reveal(self, pos: int, event_id: str, done: Revealed, *, tries: int = REVEAL_TRIES) -> None:
        """Expose the audit's row ``pos`` (which should be ``event_id``) with half a page
        above it and everything below it, down to the newest rows (the timeline stays one
        run): rows not held are asked of the pager in one request. ``done`` gets the
        row showing the event, or -1 and why it cannot be shown, now or when the rows
        arrive."""
        held_top = self._first - len(self._above)
        if pos >= self._first or self._pager is None:
            done(*self._row_of(event_id))
            return
        start = max(0, pos - PAGE // 2)
        if start >= held_top:
            self._expose_from(start)
            done(*self._row_of(event_id))
            return
        gen = self._asking = self._gen

        def arrived(rows: Sequence[ShownEvent] | None) -> None:
            if self._asking == gen:
                self._asking = None
            if rows is None or gen != self._gen:
                done(-1, "the room was checked again meanwhile; try once more")
            elif held_top != self._first - len(self._above) or self._busy:
                if tries > 1:  # what is held moved on while the rows were read: again
                    self.reveal(pos, event_id, done, tries=tries - 1)
                else:
                    done(-1, "the room kept changing; try once more")
            else:
                fresh = [Row.from_shown(x) for x in rows]
                self._above[:0] = fresh
                if self._ids is not None:
                    self._ids.update(r.event_id for r in fresh)
                self._expose_from(start)
                done(*self._row_of(event_id))

        self._pager(start, held_top, arrived)

    def _expose_from(self, start: int) -> None:
        """Move the held rows from audit position ``start`` on into the exposed rows."""
        held_top = self._first - len(self._above)
        cut = max(0, start - held_top)
        page = self._above[cut:]
        if not page or self._busy:
            return
        self.beginInsertRows(QModelIndex(), 0, len(page) - 1)
        del self._above[cut:]
        self._rows[:0] = page
        self._first -= len(page)
        self.endInsertRows()
        if len(self._above) < PAGE:
            self._fetch_ahead()

    def _row_of(self, event_id: str) -> tuple[int, str]:
        for i, row in enumerate(self._rows):
            if row.event_id == event_id and not row.echo:
                return i, ""
        return -1, "this message is not shown in the room's timeline"

    # -- feeding it -----------------------------------------------------------------------

    def set_confirmed_keys(self, keys: frozenset[str]) -> None:
        """Keys the user confirmed out of band: their verified events show "confirmed"."""
        if keys == self.confirmed_keys:
            return
        self.confirmed_keys = keys
        if self._rows:
            last = self.index(len(self._rows) - 1)
            self.dataChanged.emit(self.index(0), last, [int(Roles.Confirmed)])

    @property
    def total(self) -> int:
        """Rows of the audit shown (those above the exposed ones too), and echoes."""
        return self._first + len(self._rows)

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
        """The index's newest rows, shown before the room is read (no crypto, no network)."""
        if self._rows or self._above:
            return
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
        self.beginResetModel()
        self._rows = converted
        self.endResetModel()

    def set_timeline(self, items: Sequence[Assessed], complete: bool) -> None:
        """A full (re)audit given whole (events with bodies), paged from that list: for
        callers that hold a room's result themselves (tests, tools)."""
        whole = list(items)

        def pager(start: int, stop: int, reply: Reply) -> None:
            reply([ShownEvent(a, a.event) for a in whole[max(0, start) : max(0, stop)]])

        newest = [ShownEvent(a, a.event) for a in whole[-PAGE:]]
        self.set_audit(len(whole), newest, complete, whole, pager)

    def set_audit(
        self,
        total: int,
        newest: Sequence[ShownEvent],
        complete: bool,
        members: Iterable[Assessed],
        pager: Pager | None,
    ) -> None:
        """A full (re)audit of ``total`` rows, of which ``newest`` are the last (with
        bodies); ``members``: the audit's rows (for senders and display names: the events
        of a ledger without bodies are enough); ``pager`` fetches other rows of this
        audit. What is shown is kept wherever the order allows."""
        self.complete = complete
        self._gen += 1
        self._pager = pager
        self._wanted = False
        self.names = DisplayNames()
        self.names.update(members)
        new = [Row.from_shown(x) for x in newest]
        base = total - len(new)
        exposed = self._echo_start()
        if exposed > len(new) and base > 0 and pager is not None:
            # The user scrolled above the newest page: the rows shown get this audit's
            # verdicts from a page of it (a moment later), or a reset if it moved on.
            # Until then nothing is fetched ahead: positions belong to the new audit.
            gen = self._asking = self._gen
            want = min(exposed, total) - len(new)
            self._above = []
            self._ids = None

            def merge(rows: Sequence[ShownEvent] | None) -> None:
                if self._asking == gen:
                    self._asking = None
                if gen == self._gen and rows is not None:
                    self._merge([Row.from_shown(x) for x in rows] + new, total)

            pager(base - want, base, merge)
            return
        self._merge(new, total)

    def _merge(self, new: list[Row], total: int) -> None:
        """Show ``new``, the last rows of an audit of ``total`` rows."""
        self._ids = None
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
            # Older rows that arrived above a short page (history read newest first, or a
            # backdated writer) are shown at once: a view that does not scroll yet has no
            # top to scroll to, so it would never ask for them.
            if self._first > 0 and self._echo_start() < PAGE:
                self.fetch_older()
            else:
                self._fetch_ahead()
            return
        self.beginResetModel()
        self._above = new[:-PAGE] if len(new) > PAGE else []
        self._rows = new[-PAGE:] + echoes
        self._first = total - len(self._rows) + len(echoes)
        self.endResetModel()
        self._fetch_ahead()

    def append(self, items: Sequence[Assessed]) -> None:
        # An append may repeat rows a full re-audit already brought (the engine's result
        # object is shared), so rows already shown are skipped.
        shown = self._confirmed_ids()
        fresh = [a for a in items if a.event.event_id not in shown]
        self.names.update(fresh)
        rows = [Row.from_assessed(a) for a in fresh]
        self._drop_confirmed_echoes({r.event_id for r in rows})
        self._insert_confirmed(rows)

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

    def set_echo(self, events: Sequence[Event], state: str, error: str = "") -> None:
        """Local echo of this device's events: "sending", "failed" or "sent"."""
        if state == "sent":
            return  # the confirmed event replaces the echo when the room reads it
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


TRUST_LABELS = {
    TrustState.VERIFIED.value: "Verified",
    TrustState.UNVERIFIED.value: "Unverified",
    TrustState.KEY_CHANGED.value: "Key changed",
    "": "Sending",
}
