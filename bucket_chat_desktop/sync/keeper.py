"""What the engine's state thread does to a room: the one place a ``RoomState`` changes.

Every other part of the engine hands its work here: the back-fill its slices and audits,
the poller what a hint or a safety listing found, the publisher this device's own sends,
the facade a re-audit. ``RoomKeeper.ingest`` runs the job on the state thread (``lanes.py``)
in the lane given, adds the segments to the room's ledger and the index, audits
(incrementally when that is exact), publishes the room's ``RoomView`` and reports
``EventsAppended`` or ``RoomLoaded``. A room opened from the cache is rebuilt here too
(``warm``): its newest rows from the reader's connection first, then its ledger from the
index without re-checking signatures. Pages of a timeline with their bodies (``page``)
are read on the state thread, so they match the audit they were asked for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..index import Index
from ..protocol.audit import (
    HOLD_AHEAD_MS,
    Assessed,
    AuditResult,
    PreparedSegment,
    RoomLedger,
    Timeline,
    TrustState,
    is_slim_copy,
)
from ..protocol.event import Event, Malformed
from ..protocol.findings import Finding, Kind
from ..protocol.handover import HandoverError, PackedSegment, unpack
from ..protocol.ids import metadata_path
from ..protocol.metadata import (
    MAX_KEPT_METADATA_BYTES,
    RoomMetadata,
    changed_finding,
    kept_form,
    parse_metadata,
)
from ..protocol.relations import Relations
from ..protocol.room_state import Roster
from ..protocol.segment import DecodedSegment, Located
from ..protocol.unread import ARRIVED_ROWS
from ..storage.base import ObjectInfo
from .events import EventsAppended, RoomLoaded, ShownEvent, WarmTimeline
from .memory import release_freed_heap
from .room_objects import refusal_of
from .room_state import (
    RoomState,
    RoomView,
    note_saved_partial,
    refused_findings,
    unread_findings,
)

if TYPE_CHECKING:
    from .engine import SyncEngine

log = logging.getLogger("bucket_chat.sync")

# A segment as read: prepared on a thread, or packed by a worker process and unpacked on
# the state thread as it is kept (no hop to another thread and back per segment).
Fetched = tuple[ObjectInfo, PreparedSegment | PackedSegment]

WARM_ROWS = 100
NEWEST_ROWS = 200  # rows with bodies sent along with each full audit (the first screen)
REBUILD_BATCH = 25  # cached segments parsed at a time when a room is rebuilt, at most
# ... and at most this many of their bytes (or one segment): the parsed events of a batch
# are all in memory at once, about 7 times their size. 25 segments of 1,000 events were
# 100 MB, and the memory allocator kept most of that high-water mark for good.
REBUILD_BYTES = 3 * 1024 * 1024
EAGER_ROWS = 20_000  # a cached room up to this long is parsed off the state thread at once
# At most this share of the state thread's time goes to full audits of one room forced by
# what arrives (``ingest(paced=True)``): after a full audit that took t seconds, the next
# one such arrival forces waits until 3t after it, and whatever arrives meanwhile is
# audited with it. A member can make every segment they write need a full audit (a bad
# line, a fork, a new device); each took about a second at 100,000 events (the audit, its
# relations, its room state and the saved timeline's check), so one such segment a
# second kept the state thread busy for good, and every room's reads and the window's
# requests waited behind it.
REAUDIT_SHARE = 0.25
# Copies read into a room known whole held for the next full audit to place (rows that
# arrived: ``RoomLoaded.arrived``), at most: the newest ``ARRIVED_ROWS`` of them are told.
ARRIVALS_KEPT = 10 * ARRIVED_ROWS


@dataclass(frozen=True, slots=True)
class CachedCopy:
    """A room as the index holds it, read on any connection (see ``read_cached``)."""

    segments: Iterable[tuple[str, list[Any], list[Finding]]]
    known: dict[str, int]
    tags: dict[str, str]  # content tags of ``known`` (``RoomState.tags``)
    # The rules of the last saved audit (``Index.save_audit``): the final ones (a pass
    # read the whole history), and of those, a partial read's (nobody trusted on first
    # use). A room the index knows only as "not complete" (an older version's) is partial.
    history_complete: bool
    history_partial: bool
    # The saved timeline's verdicts below "verified", by event hash: a rebuilt verdict is
    # never better (``warmer_than_saved``). None: they could not be read, or were not
    # (a saved partial read of the whole history is rebuilt as one anyway): either way
    # nothing says a rebuild is not warmer.
    saved: Mapping[str, TrustState] | None
    damaged: set[str]  # listed segments the index could not hand back (once iterated)


def read_cached(index: Index, room_id: str, eager: bool = True) -> CachedCopy:
    """``eager``: parse every cached segment now (a room read on one connection and
    applied on another thread); else a batch at a time as the caller iterates, on this
    connection's thread, so a room of a million events is never parsed into memory all at
    once (each batch is slimmed by the ledger before the next is read)."""
    info = index.room(room_id)
    damaged: set[str] = set()
    known = index.known_segments(room_id)
    tags = index.content_tags(room_id)

    def batches() -> Iterator[tuple[str, list[Any], list[Finding]]]:
        paths = index.segment_paths(room_id)
        start = 0
        while start < len(paths):
            stop, size = start + 1, known.get(paths[start], 0)
            while stop < len(paths) and stop - start < REBUILD_BATCH:
                size += known.get(paths[stop], 0)
                if size > REBUILD_BYTES:
                    break
                stop += 1
            batch, start = paths[start:stop], stop
            got = index.room_segments(room_id, batch)
            # A segment the index lists but cannot hand back is damaged.
            damaged.update(set(batch) - {path for path, _, _ in got})
            yield from got

    complete = bool(info and info["history_complete"])
    partial = not info or bool(info["history_partial"])
    return CachedCopy(
        list(batches()) if eager else batches(),
        known,
        tags,
        complete,
        partial,
        # Saved a partial read of the whole history: the rebuild is audited as one (no
        # trust on first use) whatever it would judge, so the saved verdicts are not read
        # (``RoomKeeper._apply_cached``); None, as if unreadable, should they be used.
        None if complete and partial else index.saved_below_verified(room_id),
        damaged,
    )


# How far a verdict trusts its row, least first: a rebuilt row placed above the saved one
# of the same event is judged better than the read the index saved.
_WARMTH = {
    TrustState.INVALID: 0,
    TrustState.KEY_CHANGED: 1,
    TrustState.UNVERIFIED: 2,
    TrustState.VERIFIED: 3,
}


def warmer_than_saved(result: AuditResult, saved: Mapping[str, TrustState] | None) -> bool:
    """Whether ``result`` (a room rebuilt from the index) judges an event better than the
    saved timeline did (the same event: its hash). None for ``saved`` (the saved verdicts
    could not be read): nothing says it does not, so it may."""
    if saved is None:
        return True
    if not saved:
        return False
    warmth = _WARMTH
    for event_hash, state in result.timeline.hash_states():  # no row made per event
        judged = saved.get(event_hash)
        if judged is not None and warmth[state] > warmth[judged]:
            return True
    return False


def _keep_arrivals(room: RoomState, fresh: list[Any]) -> None:
    """Hold ``fresh`` copies for the next full audit to place (``RoomState.arrivals``),
    the last ``ARRIVALS_KEPT`` of them: a room read whole a month ago, read again, brings
    a month of segments, and each held copy is one binary search after the audit."""
    room.arrivals.extend(fresh)
    del room.arrivals[:-ARRIVALS_KEPT]


def _next_paced_audit(room: RoomState) -> float:
    """When an arrival may next force a full audit of ``room`` (``REAUDIT_SHARE``)."""
    return room.audit_ended + room.audit_cost * (1 / REAUDIT_SHARE - 1)


class RoomKeeper:
    """The state thread's work on the engine's rooms (see the module's docstring). It
    keeps nothing of its own: the rooms are the engine's (``SyncEngine.rooms``), and the
    jobs reach the state thread, the reader and the listener through the engine."""

    def __init__(self, engine: SyncEngine) -> None:
        self._engine = engine

    def release_due(self) -> None:
        """Audit again each room where a row held back as dated ahead is due now
        (``HOLD_AHEAD_MS``; the engine's watchdog asks every second): a room that stays
        quiet still shows it when its time comes. Appends ask the ledger themselves."""
        now = now_ms()
        for room in list(self._engine.rooms.values()):
            held = room.ledger.held_from_ms
            if held is None or held - HOLD_AHEAD_MS > now or room.released == held:
                continue
            if room.releasing is not None and not room.releasing.done():
                continue  # one at a time: the next tick looks again
            room.released = held  # once per held date, even if that audit fails
            # One task a room, replaced by the next (the engine's close cancels it): a
            # member who dates rows a second apart has the room released every second,
            # and a list of every release's task grew all day.
            room.releasing = asyncio.create_task(
                self._release(room), name=f"bc-release-{room.room_id}"
            )

    async def _release(self, room: RoomState) -> None:
        try:
            async with room.lock:
                # Paced like arrivals: a member who dates rows a second apart had the room
                # audited whole every second (``REAUDIT_SHARE``).
                await self.ingest(room, [], complete=None, force_audit=True, paced=True)
        except Exception:  # a task nobody awaits: said here, not lost
            if not self._engine._closed:  # else: the state thread was shut down
                log.exception("%s: the audit for rows whose time came failed", room.room_id)

    async def ingest(
        self,
        room: RoomState,
        fetched: Sequence[Fetched],
        *,
        complete: bool | None,
        force_audit: bool = False,
        audit: bool = True,
        interactive: bool = False,
        paced: bool = False,
        read_ms: int | None = None,
    ) -> None:
        """Add ``fetched`` and audit, on the state thread in the lane given (a back-fill's
        jobs are background; what someone waits for, a message arriving, is interactive).
        ``paced``: what others wrote, found by a hint or a listing: when it needs a full
        audit sooner than ``REAUDIT_SHARE`` allows, that audit is made later, once, for
        all that arrives meanwhile (``_audit_later``).
        ``complete``: whether the final rules apply (only a
        pass through the whole history says so, True or False); None for what arrives
        outside such a pass (a hint, a safety listing, an own send, a re-audit): then the
        room's standing *when the serial worker gets to it* applies. Read earlier, on the
        loop, it may be the provisional False of a pass whose final audit is queued just
        ahead: this ingest would then audit the room provisionally again after that final
        verdict, and no pass would ever make it final again (the safety net only looks at
        complete rooms).
        ``read_ms``: when the read from storage that got ``fetched`` (or, with nothing
        fetched, found nothing new: a pass's end) began, by ``now_ms``: the room was read
        then (``RoomState.read_ms``). None: nothing was read from storage (a re-audit, an
        own send), and what this audit shows was read when the room last was. The
        newest read counts: a pass that began before a notice's read ends after it."""
        if read_ms is not None:
            room.read_ms = max(room.read_ms, read_ms)
        if not fetched and not force_audit:
            return
        (
            appended,
            at,
            result,
            final,
            relations,
            roster,
            arrived,
            late,
        ) = await self._engine._serially(
            self._ingest_serial,
            room,
            fetched,
            complete,
            force_audit,
            audit,
            paced,
            room=room.room_id,
            interactive=interactive,
        )
        if result is None or self._engine.rooms.get(room.room_id) is not room:
            if room.audit_owed and self._engine.rooms.get(room.room_id) is room:
                self._owe_audit(room)
            return  # nothing of a room left is said (``drop_room`` came while it ran)
        if appended is not None:
            if appended:
                self._engine._note_activity()
            # also with no rows: a row held back as dated ahead changed only the findings
            self._engine._emit(
                EventsAppended(
                    room.room_id, appended, result, relations, roster, at, arrived, room.read_ms
                )
            )
        else:
            self._engine._emit(self._room_loaded(room, result, final, relations, roster, late))

    def _owe_audit(self, room: RoomState) -> None:
        """Loop: have the full audit an arrival was refused made when its time comes (one
        task a room; the engine's close and ``drop_room`` stop it: ``RoomState.reads``)."""
        if self._engine._closed or (room.reaudit is not None and not room.reaudit.done()):
            return
        room.reaudit = asyncio.create_task(
            self._audit_later(room), name=f"bc-reaudit-{room.room_id}"
        )

    async def _audit_later(self, room: RoomState) -> None:
        try:
            while room.audit_owed and not self._engine._closed:
                wait = _next_paced_audit(room) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                async with room.lock:
                    if not room.audit_owed or self._engine.rooms.get(room.room_id) is not room:
                        return
                    await self.ingest(room, [], complete=None, force_audit=True)
        except Exception:  # a task nobody awaits: said here, not lost
            if not self._engine._closed:  # else: the state thread was shut down
                log.exception("%s: the audit owed for what arrived failed", room.room_id)

    def _ingest_serial(
        self,
        room: RoomState,
        fetched: Sequence[Fetched],
        complete: bool | None,
        force_audit: bool,
        audit: bool = True,
        paced: bool = False,
    ) -> tuple[
        list[Any] | None,
        int | None,
        AuditResult | None,
        bool,
        Relations | None,
        Roster | None,
        bool,
        tuple[tuple[int, ShownEvent], ...],
    ]:
        """State thread: add segments, audit (incrementally when exact), update the index.
        Returns the appended items (None after a full audit) and where they went when not
        at the end (``EventsAppended.at``), the result, whether the final rules applied,
        the relations and room state (``Roster``) made for the result, whether the
        items arrived (``EventsAppended.arrived``), and the rows a full audit shows of
        the copies that arrived since the one before (``RoomLoaded.arrived``); publishes
        the room's view (``room_view``) when done.

        Those rows are handed back from this job, as the relations and roster are: read
        later on the loop from ``RoomState.arrived``, another full audit queued meanwhile
        had replaced them (its ``_note_arrived`` empties the arrivals), and they were
        never told as news.

        The cached timeline is rewritten only by a complete audit (or the first one), so a
        long back-fill does not rewrite 100,000 rows every few seconds."""
        began = time.monotonic()
        try:
            appended, at, result, final, arrived = self._ingest_here(
                room, self._unpacked(room, fetched), complete, force_audit, audit, paced
            )
        finally:
            self._publish(room)
        late: tuple[tuple[int, ShownEvent], ...] = ()
        if appended is None and result is not None:  # a full audit: what it cost (pacing)
            room.audit_ended = time.monotonic()
            room.audit_cost = room.audit_ended - began
            of, rows = room.arrived  # set by this job's ``_note_arrived``
            if of is result:
                late = rows
        return (
            appended,
            at,
            result,
            final,
            room.relations_made_for(result),
            room.roster_made_for(result),
            arrived,
            late,
        )

    @staticmethod
    def _unpacked(
        room: RoomState, fetched: Sequence[Fetched]
    ) -> list[tuple[ObjectInfo, PreparedSegment]]:
        """``fetched`` with what worker processes packed unpacked (``protocol.handover``).
        A result that does not unpack (a bug, never input) leaves its segment unread, as
        a worker that stopped on it does: the next full pass tries again."""
        out: list[tuple[ObjectInfo, PreparedSegment]] = []
        for info, got in fetched:
            if not isinstance(got, PreparedSegment):
                try:
                    got = unpack(got, room.room_id)
                except HandoverError as exc:
                    log.error("%s: a worker's result does not unpack: %s", info.path, exc)
                    room.unread[info.path] = "a worker process's result for it was not usable"
                    continue
            out.append((info, got))
        return out

    def _ingest_here(
        self,
        room: RoomState,
        fetched: Sequence[tuple[ObjectInfo, PreparedSegment]],
        complete: bool | None,
        force_audit: bool,
        audit: bool,
        paced: bool = False,
    ) -> tuple[list[Any] | None, int | None, AuditResult | None, bool, bool]:
        if complete is None:
            complete = room.complete
        added = []
        # New words (``RoomState.arrivals``): read into a room already known whole (read
        # through, or rebuilt complete from this device's index), not its first read
        whole_before = room.result is not None and room.complete and not room.partial
        fresh: list[Any] = []
        cache: list[tuple[str, int, str | None, PreparedSegment]] = []
        for info, prepared in fetched:
            if room.unread.pop(info.path, None) is not None:
                force_audit = True  # its unreadable-finding must go
            decoded = prepared.decoded
            refusal = refusal_of(info.path, len(decoded.events), decoded.findings)
            if refusal is not None:
                # Refused unread: a note of what the listing shows, not a segment held
                # (``RoomState.refused``); the next listing of its day decides again.
                if info.path not in room.known and room.note_refused(info.path, info.size, refusal):
                    force_audit = True  # a finding new or changed
                continue
            if room.forget_refused(info.path):
                force_audit = True  # read at last: its refusal goes
            if info.path in room.known and room.ledger.has_segment(info.path):
                continue
            copies = room.ledger.add_prepared(prepared)
            added.extend(copies)
            if whole_before and info.path not in room.known:
                fresh.extend(copies)
            room.known[info.path] = info.size
            if info.content_tag:
                room.tags[info.path] = info.content_tag
            cache.append((info.path, info.size, info.content_tag, prepared))
        if self._engine.index is not None and cache:
            # One transaction for the job's segments (a slice: a few of them): a reader
            # of the index sees them all or none (docs/SCHEDULING.md).
            self._engine.index.add_prepared(room.room_id, cache)
        if not audit:
            _keep_arrivals(room, fresh)
            return None, None, None, complete, False
        partial = room.partial
        # Appends stay incremental also while the history is partial: the last full audit
        # already applied those rules (no trust on first use), and whatever changes what is
        # unread (a new unreadable object, an unread one read at last) forces a full audit.
        if room.result is not None and not force_audit and complete == room.complete:
            shown = room.result
            placed = room.ledger.try_place(added, now_ms())
            if placed is not None:
                result = room.result = room.ledger.result  # a new one: the old is handed out
                assert result is not None
                if result is shown:
                    return [], None, None, complete, False  # nothing new (a segment read twice)
                new = placed.rows
                if self._engine.index is not None and new:
                    if room.saved_audit == shown.audit_number:
                        # the saved rows are this audit's: its positions are theirs
                        if placed.inserted:
                            self._engine.index.insert_timeline(room.room_id, placed.at, new)
                        else:
                            self._engine.index.append_timeline(room.room_id, placed.at, new)
                        room.saved_audit = result.audit_number  # an insert's is new
                    # else the saved rows are an earlier audit's (a progress audit is not
                    # saved): they stay as they are, one audit's in its order, until the
                    # pass's final audit rewrites them (the segments are cached already)
                    if complete and not room.partial:
                        self._pin(room.room_id, new)
                if not placed.inserted:
                    return self._whole(new, fetched), None, result, complete, bool(fresh)
                # Rows behind one dated a little ahead, exactly where a full audit puts
                # them: the relations and the fold are carried over, and front ends are
                # told where they go (the rows from there on moved down).
                room.moved = (shown, result, placed.at, len(new))
                return self._whole(new, fetched), placed.at, result, complete, bool(fresh)
        _keep_arrivals(room, fresh)  # not handed out as placed: the full audit says where
        # Put off only while the room's standing stays as the last audit found it: one
        # that is no longer read whole (a segment that could not be read, a day not
        # listed, one refused) or is read whole again is audited at once. Put off, the
        # view said "partial" at once (``_publish``) with no finding saying why, until
        # the owed audit came — up to three times an audit's time, seconds in a long
        # room (a test of it failed so on a loaded machine). Changes of standing come
        # only with listings and reads, so a member still cannot have the room audited
        # whole with every segment they write (``REAUDIT_SHARE``).
        doubt = complete and partial
        if (
            paced
            and room.result is not None
            and doubt == room.audit_partial
            and time.monotonic() < _next_paced_audit(room)
        ):
            room.audit_owed = True  # kept (ledger, index); audited with what comes next
            return None, None, None, complete, False
        room.audit_owed = False
        room.audit_partial = doubt
        first = room.result is None
        pins = (
            self._engine.index.pins(room.room_id) if self._engine.index is not None else {}
        )  # full audits only
        room.result = room.ledger.audit(
            pins, complete=complete, partial=complete and partial, now_ms=now_ms()
        )
        room.complete = complete
        whole = complete and not partial
        room.result.findings.extend(refused_findings(room))
        if complete:
            room.result.findings.extend(unread_findings(room))
            release_freed_heap(room.ledger.event_count)  # a whole read's garbage
        if self._engine.index is not None and (complete or first):
            # the rules as they were, both: a rebuild from the index uses the same
            self._engine.index.save_audit(
                room.room_id, room.result, history_complete=complete, history_partial=partial
            )
            room.saved_audit = room.result.audit_number
            if whole:  # trust on first use only from the whole history
                self._pin(room.room_id, room.result.timeline)
        self._note_shown(room)
        self._note_arrived(room)
        return None, None, room.result, complete, False

    @staticmethod
    def _whole(
        items: list[Any], fetched: Sequence[tuple[ObjectInfo, PreparedSegment]]
    ) -> list[Any]:
        """Appended items with their whole events (a ledger without bodies judged slim
        copies; a member event's too: it keeps only what is read of its content): the
        segments just read still hold them."""
        if not items or all(not is_slim_copy(a.event) for a in items):
            return items
        whole = {
            (loc.path, loc.line): loc.event
            for _, prepared in fetched
            for loc in prepared.decoded.events
        }
        return [a._replace(event=whole.get((a.path, a.line), a.event)) for a in items]

    def _pin(self, room_id: str, items: Iterable[Any]) -> None:
        """Pin the keys of verified events (trust on first use) for their room: only ever
        from an audit of the whole history."""
        assert self._engine.index is not None
        if isinstance(items, Timeline):  # a whole audit's: by column, no row made
            keys = items.verified_keys()
        else:
            keys = {
                (a.event.sender_id, a.event.sender_key)
                for a in items
                if a.state is TrustState.VERIFIED and a.event.sender_key
            }
        self._engine.index.add_pins(keys, room_id=room_id)

    @staticmethod
    def _room_loaded(
        room: RoomState,
        result: AuditResult,
        complete: bool,
        relations: Relations | None = None,
        roster: Roster | None = None,
        arrived: tuple[tuple[int, ShownEvent], ...] | None = None,
    ) -> RoomLoaded:
        """The event, with the room's metadata as read so far (set on the loop thread, where
        this runs, so it is one consistent moment) and the audit's newest rows (when a
        later audit replaced them already, none: the front end asks for a page).
        ``arrived``: the rows that arrived, as the job that made ``result`` handed them
        back; None: as the room holds them now, if they are ``result``'s."""
        shown, total, newest = room.shown
        if shown is not result:
            total, newest = len(result.timeline), ()
        if arrived is None:
            of, arrived = room.arrived
            if of is not result:
                arrived = ()
        if relations is None:  # those the state thread made for this result, if it did
            relations = room.relations_made_for(result)
        if roster is None:
            roster = room.roster_made_for(result)
        return RoomLoaded(
            room.room_id,
            result,
            complete,
            room.metadata,
            tuple(room.metadata_findings),
            total,
            newest,
            relations,
            roster,
            arrived,
            room.read_ms,
        )

    @staticmethod
    def _publish(room: RoomState) -> None:
        """State thread, at the end of each job on the room: its view for front ends (one
        reference assignment, so a reader gets the old view or the new one)."""
        room.view = RoomView(
            room.room_id,
            room.result,
            room.metadata,
            tuple(room.metadata_findings),
            room.complete,
            room.partial,
            room.relations(),
            room.roster(),
            vanished=room.vanished_only,
        )
        room.carry_scan()  # a send's scan, like the relations and the fold
        room.moved = None  # carried over (or not): the result before need not stay alive

    def _note_shown(self, room: RoomState) -> None:
        """Serial thread, after a full audit: its row count and newest rows with bodies."""
        result = room.result
        if result is None:
            return
        total = len(result.timeline)
        room.shown = (result, total, self.page(room, result, total - NEWEST_ROWS, total) or ())

    def _note_arrived(self, room: RoomState) -> None:
        """Serial thread, after a full audit: where it shows the copies that arrived since
        the last one (``RoomState.arrivals``), with their bodies. A binary search each
        (``Timeline.positions_of``), no walk over the room."""
        result, arrivals = room.result, room.arrivals
        room.arrivals = []
        if result is None or not arrivals:
            room.arrived = (result, ())
            return
        timeline = result.timeline
        positions = timeline.positions_of(arrivals)[
            -ARRIVED_ROWS:
        ]  # as many as a re-audit hands on after the newest
        rows = self._with_bodies(room, [timeline[i] for i in positions], timeline, positions)
        room.arrived = (result, tuple(zip(positions, rows, strict=True)))

    def page(
        self,
        room: RoomState,
        result: AuditResult,
        start: int,
        stop: int,
        *,
        pinned: bool = False,
    ) -> tuple[ShownEvent, ...] | None:
        """Serial thread: rows ``start:stop`` of ``result`` with their bodies, or None
        when a later full audit replaced ``result``'s (the caller's positions belong to an
        older one; appends since keep every position). ``pinned``: that audit's own rows
        even when it was replaced (its timeline never changes; each body is still checked
        against the hash and signature that audit judged): what an export, which writes
        one audit whole, reads while polls go on."""
        if room.result is None:
            return None
        if not pinned and room.result.audit_number != result.audit_number:
            return None
        items = result.timeline[max(0, start) : max(0, stop)]
        return self._with_bodies(room, items, items, range(len(items)))

    def _with_bodies(
        self,
        room: RoomState,
        items: Sequence[Assessed],
        timeline: Timeline,
        positions: Sequence[int],
    ) -> tuple[ShownEvent, ...]:
        """Serial thread: ``items`` (the rows of ``timeline`` at ``positions``) with
        their bodies, from this device's index when the ledger keeps none."""
        if room.ledger.keeps_bodies or self._engine.index is None:
            return tuple(ShownEvent(a, a.event) for a in items)
        whole = self._engine.index.events_at(room.room_id, [(a.path, a.line) for a in items])
        signature_id = room.ledger.signature_id
        signatures = timeline.signature_ids_at(positions)  # not the whole room's
        out = []
        for a, ev, sig in zip(items, whole, signatures, strict=True):
            if isinstance(ev, Event) and (
                ev.hash != a.event.hash or signature_id(ev.signature) != sig
            ):
                ev = Malformed(
                    Kind.BAD_SCHEMA,
                    "this device's cached line is not the event the audit checked (the "
                    "cache was changed outside this app)",
                    ev.event_id,
                )
            out.append(ShownEvent(a, ev))
        return tuple(out)

    def set_metadata(
        self, room: RoomState, metadata: RoomMetadata | None, findings: list[Finding]
    ) -> None:
        """State thread: the room's metadata as just read (and its name in the index).

        Metadata is written once (PROTOCOL.md section 10): the first this device used is
        kept in its index, and a read that differs from it (other metadata, none, none
        usable) is a ``metadata-changed`` error, the kept one staying in use."""
        index = self._engine.index
        kept_bytes = index.kept_metadata(room.room_id) if index is not None else None
        if kept_bytes is not None and (metadata is None or kept_form(metadata) != kept_bytes):
            kept, kept_findings = self._kept_metadata(room.room_id, kept_bytes)
            if kept is not None:
                findings = [*kept_findings, changed_finding(kept, metadata, findings)]
                metadata = kept
        room.metadata, room.metadata_findings = metadata, findings
        if index is not None and metadata is not None:
            index.set_room_info(room.room_id, metadata.name, metadata.signed, kept_form(metadata))
        self._publish(room)

    def metadata_unread(self, room: RoomState, why: str) -> None:
        """State thread: the storage answered, but the room's metadata could not be read
        (refused: a file made unreadable, a permission; or it kept changing while read).
        Not "no metadata": an ``unread`` error, so no verdict on the room is final, and
        the metadata this device kept (its first read) stays in use, not a bare room id."""
        finding = Finding(
            Kind.UNREAD,
            f"metadata.json could not be read ({why}): the room's name and creator are not"
            " checked until it can be; it is read again",
            metadata_path(room.room_id),
        )
        metadata, findings = room.metadata, [finding]
        index = self._engine.index
        if metadata is None and index is not None:
            kept_bytes = index.kept_metadata(room.room_id)
            if kept_bytes is not None:
                metadata, kept_findings = self._kept_metadata(room.room_id, kept_bytes)
                findings = [*kept_findings, finding]
        room.metadata, room.metadata_findings = metadata, findings
        self._publish(room)

    @staticmethod
    def _kept_metadata(
        room_id: str, kept_bytes: bytes
    ) -> tuple[RoomMetadata | None, list[Finding]]:
        """The metadata this device kept for the room (its first read), parsed again."""
        return parse_metadata(
            kept_bytes, room_id, metadata_path(room_id), limit=MAX_KEPT_METADATA_BYTES
        )

    def tell_loaded(self, room: RoomState) -> None:
        """Loop: the room's audit told again as a ``RoomLoaded``, for what changed beside
        it (its metadata, read again after a failure); nothing before its first audit
        (that one's ``RoomLoaded`` carries the metadata)."""
        if room.result is not None:
            self._engine._emit(self._room_loaded(room, room.result, room.complete))

    async def warm(self, room: RoomState, *, interactive: bool) -> None:
        """The cached room: its newest rows at once (the reader's connection, never behind
        another room's back-fill), then its ledger rebuilt on the state thread."""
        room_id = room.room_id

        def newest(index: Index) -> tuple[int, list[Any]]:
            total = index.timeline_length(room_id)
            return total, index.newest(room_id, WARM_ROWS) if total else []

        total, rows = await self._engine._read(newest)
        if total and room.result is None:  # else audited meanwhile: newer than the cache
            self._engine._emit(WarmTimeline(room_id, rows, total))
        # A small room is parsed on the reader's connection, off the state thread; a big
        # one a batch at a time on the state thread (never all of it in memory at once).
        cached = await self._engine._read(read_cached, room_id) if total <= EAGER_ROWS else None
        complete = await self._engine._serially(
            self._rebuild_from_index, room, cached, room=room_id, interactive=interactive
        )
        if complete is not None and room.result is not None:
            if not room.read_ms:  # what this device's index holds: read by now
                room.read_ms = now_ms()
            self._engine._emit(self._room_loaded(room, room.result, complete))

    def _rebuild_from_index(self, room: RoomState, cached: CachedCopy | None = None) -> bool | None:
        """State thread (or, for a room no engine owns, any one thread): refill the ledger
        from the cache (signature verdicts kept). ``cached``: read already, elsewhere.

        None, and nothing done, when the room was audited while the open waited for
        this (a busy machine: a second open's rebuild queued behind the first open's
        whole pass, or a poll's news): what it holds is newer than the cache, and a
        rebuild would add the cached segments again and set a final verdict back to a
        provisional one — a room read completely was then never shown as complete."""
        if room.result is not None:
            return None
        index = self._engine.index
        assert index is not None
        if cached is None:
            cached = read_cached(index, room.room_id, eager=False)
        complete = self._apply_cached(room, cached, index.pins(room.room_id))
        release_freed_heap(room.ledger.event_count)
        if room is self._engine.rooms.get(room.room_id):
            if room.result is not None:
                room.complete = complete
                self._adopt_saved(index, room, complete)
                self._note_shown(room)
            self._publish(room)
        return complete

    @staticmethod
    def _adopt_saved(index: Index, room: RoomState, complete: bool) -> None:
        """State thread, after a rebuild from the cache: the saved timeline becomes the
        rebuilt audit's (so rows that arrive are written at their positions). Mostly it
        is that audit's already; when not (the last run quit during a read, whose audits
        after its first screen are not saved; a row held back as dated ahead is due
        now), it is rewritten once here, not left for the next full pass, which a warm
        start with nothing new never makes."""
        result = room.result
        assert result is not None
        if not index.timeline_is(room.room_id, result.timeline):
            index.save_audit(
                room.room_id, result, history_complete=complete, history_partial=room.partial
            )
        room.saved_audit = result.audit_number

    @staticmethod
    def _apply_cached(room: RoomState, cached: CachedCopy, pins: dict[str, set[str]]) -> bool:
        count = 0
        damaged: set[str] = set()
        refused: set[str] = set()
        for path, items, findings in cached.segments:
            if refusal_of(path, len(items), findings) is not None:
                # Cached by an earlier version as if read: not held, the next listing
                # decides again (``RoomState.refused``).
                refused.add(path)
                continue
            events: list[Located] = []
            verdicts: list[tuple[bool | None, str]] = []
            for item in items:
                if isinstance(item.event, Malformed):
                    damaged.add(path)  # logged by the index; never trusted blindly
                    break
                events.append(Located(item.event, path, item.line))  # one path string
                verdicts.append((item.sig_ok, item.sig_why))
            if path in damaged:
                continue
            decoded = DecodedSegment(path, events, list(findings))
            room.ledger.add_prepared(PreparedSegment(decoded, verdicts))
            count += 1
        damaged |= cached.damaged
        # A segment whose cached copy is damaged is not known: it is read (and checked)
        # again from storage, which also repairs the cache; until then it is unread.
        unheld = damaged | refused
        room.known.update({p: size for p, size in cached.known.items() if p not in unheld})
        room.tags.update({p: tag for p, tag in cached.tags.items() if p not in unheld})
        for path in damaged:
            room.unread[path] = "this device's cached copy of it is damaged; it is read again"
        if count == 0:
            return False
        # By the rules of the saved audit, exactly as the keeper's own full audits apply
        # them: the final rules after a pass read the whole history; after a partial one
        # (saved so, or a cached segment abandoned after too many bad lines, or one the
        # cache cannot hand back: ``RoomState.partial``) nobody is trusted on first use,
        # and the rows placed on top of this audit keep to that (``try_place``). What
        # the saved read could not read is not kept: a note keeps the room partial
        # until a pass reads it whole (``SAVED_PARTIAL_NOTE``). A damaged cached segment
        # makes the room partial, not "not complete": the provisional rules take keys on
        # first use, warmer than any final verdict (red team rt78).
        complete = cached.history_complete
        if complete and cached.history_partial:
            note_saved_partial(room)
        room.result = room.ledger.audit(
            pins, complete=complete, partial=complete and room.partial, now_ms=now_ms()
        )
        if not (complete and room.partial) and warmer_than_saved(room.result, cached.saved):
            # Better than the read the index saved (an index from before the rules were
            # saved, where a complete but partial read was kept as "not complete"; a
            # saved timeline that cannot be read): the coldest rules, never warmer. Keys
            # pinned since (a person's confirmation) still count.
            log.warning(
                "%s: rebuilt from the index, an event was judged better than the saved "
                "read judged it: audited as a partial read until the room is read whole",
                room.room_id,
            )
            complete = True
            note_saved_partial(room)
            room.result = room.ledger.audit(pins, complete=True, partial=True, now_ms=now_ms())
        room.audit_partial = complete and room.partial
        room.result.findings.extend(unread_findings(room))
        return complete

    async def cached_room(self, room_id: str) -> RoomView | None:
        """``SyncEngine.cached_room``: rebuilt on the reader's connection (a room nobody
        else holds). None when the index holds nothing of the room."""
        if self._engine.index is None:
            return None
        room = RoomState(room_id, RoomLedger(room_id))

        def rebuild(index: Index) -> tuple[bool, bytes | None]:  # a room nobody else holds
            cached = read_cached(index, room_id, False)
            complete = self._apply_cached(room, cached, index.pins(room_id))
            return complete, index.kept_metadata(room_id)

        room.complete, kept_bytes = await self._engine._read(rebuild)
        if room.result is None:
            return None
        if kept_bytes is not None:  # the name and creator checked at this device's first read
            room.metadata, room.metadata_findings = self._kept_metadata(room_id, kept_bytes)
        self._publish(room)
        return room.view


def now_ms() -> int:
    """This device's clock as the audits read it: rows dated more than ``HOLD_AHEAD_MS``
    after it are held back (and not found by a search: ``SyncEngine.search``)."""
    return int(time.time() * 1000)
