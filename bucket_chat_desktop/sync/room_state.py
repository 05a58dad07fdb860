"""A room's state as the engine keeps it, and the values front ends get of it.

``RoomState`` belongs to the engine's state thread (``lanes.py``): its ledger, audit,
known segments and notes (``unread``, ``unlisted``, ``vanished``) are changed only by jobs that
run there (``keeper.py``; what a read on the loop could not read goes there through
``note_unread``, in the room's order), so they need no lock. The loop takes of them only
what one look gives — whether a segment is known, whether anything is unread (to decide
a pass), how many segments are known — which may be one job old; it never iterates them
while the state thread may change them. ``lock`` orders the loop's steps that keep
something in a room — what a hint or a refresh read, this device's own delivery, a
re-audit — and is never held across a storage request (docs/SCHEDULING.md, "What takes
a room's lock"). What leaves that thread is immutable: a ``RoomView`` (published at the
end of each job on the room) or a ``CachedRoom``. ``SendScan`` is what sends read from a
room's timeline, kept up to date on the state thread (``publisher.send_context``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..protocol.audit import (
    WITNESS_FIELD,
    Assessed,
    AuditResult,
    IntroductionScan,
    RoomLedger,
    TrustState,
    witness_entries,
)
from ..protocol.event import MEMBER, Event
from ..protocol.findings import Finding, Kind, Severity
from ..protocol.ids import logs_prefix
from ..protocol.metadata import RoomMetadata
from ..protocol.relations import Relations
from ..protocol.relations import build as build_relations
from ..protocol.relations import extended as extended_relations
from ..protocol.relations import inserted as inserted_relations
from ..protocol.room_state import RoomState as MemberFold
from ..protocol.room_state import Roster, conflicted_senders
from ..storage.base import ObjectInfo
from .events import ShownEvent


@dataclass(slots=True)
class RoomState:
    room_id: str
    ledger: RoomLedger
    known: dict[str, int] = field(default_factory=dict)
    # What the storage said of the bytes of segments in ``known`` when they were kept or
    # first listed after (``ObjectInfo.content_tag``; only those that have one): a later
    # listing with another tag is a segment rewritten, even at the same size.
    tags: dict[str, str] = field(default_factory=dict)
    result: AuditResult | None = None
    complete: bool = False  # the final rules apply (the whole history was gone through)
    # What could not be read in the last pass: object path (or listed prefix) -> why. While
    # anything is here the verdict is not final: error findings, no pinning.
    unread: dict[str, str] = field(default_factory=dict)
    unlisted: dict[str, str] = field(default_factory=dict)
    # Segments this device read and checked that storage no longer holds as read (gone,
    # replaced, another size or checksum; ``backfill._note_vanished``): path -> what the
    # listing showed. Their events stay shown, as checked; the verdict is not final. No
    # pass brings them back, so none is made for them (``worth_reading_again``): the
    # safety listing of the newest days compares them again and takes a note back once
    # it lists the segment as read. A path is in ``unread`` or here, never in both.
    vanished: dict[str, str] = field(default_factory=dict)
    # Of the segments in ``vanished`` found changed by their bytes read again
    # (``backfill._recheck``): what the listing showed of them then (path -> its tag,
    # None if none). Not read again while listings show the same; another tag (a
    # restore of the same bytes in parts, composed, from blocks) has them read again.
    judged: dict[str, str | None] = field(default_factory=dict)
    # Objects in the room's day folders refused unread (``room_objects.refusal_of``: over
    # the size limit, or litter under another name than a segment's): path -> (the size
    # refused at, ``backfill.UNKNOWN_SIZE`` for a hint's; the finding, in every audit).
    # Not segments held: never in ``known``, the ledger or the index, so a refusal is
    # never for good. Each listing of their day decides again (``backfill.relist``):
    # gone, the finding goes; listed at another size, read again (kept if it reads);
    # listed as refused, not read again. One over the size limit keeps the room from
    # being final (``partial``), as a segment that could not be read does.
    # Changed only by ``note_refused`` and ``forget_refused``, which keep the two below.
    refused: dict[str, tuple[int, Finding]] = field(default_factory=dict)
    # ``refused`` by day folder (a listing of one day looks at its own: a member who
    # litters thousands of days must not make each listing a walk over all of them),
    # and how many of them are errors (``partial`` is asked after every job).
    refused_folders: dict[str, set[str]] = field(default_factory=dict)
    refused_errors: int = 0
    metadata: RoomMetadata | None = None
    metadata_findings: list[Finding] = field(default_factory=list)
    # Reads of ``metadata`` that failed in a row (a timeout, a server error; the loop's),
    # and when a polling round reads it again (monotonic; ``Poller.poll_once``).
    metadata_failures: int = 0
    metadata_retry_at: float = 0.0
    last_safety: float = 0.0  # the last safety listing, or attempt at one (monotonic)
    # Safety listings (``Poller.refresh``) that failed in a row: the next waits longer
    # (``schedule.safety_wait``). Loop-side.
    safety_failures: int = 0
    # Requests (pages) the room's last safety listing took (``Poller.refresh``): one that
    # took more than ``schedule.SAFETY_COST`` stretches its background period by as much
    # (``schedule.charged_wait``; red team rt94). Loop-side.
    listing_pages: int = 0
    # Days (``logs/<day>/``) the room's background safety listing could not list whole:
    # their folders hold more names than its pages (``poller.SAFETY_PAGES_MAX``; junk a
    # member wrote there) -> what it found (``Poller.refresh``). The room says so
    # (``unchecked``); the other days are listed as ever, and a newest day noted here
    # is looked at a page from just after the newest segment held there (red team rt96).
    # A listing of the room whole (window in front, or read again) clears them. Loop-side.
    over_cost: dict[str, str] = field(default_factory=dict)
    # What the room's last background listing of its days (``logs/``, one level) found
    # when it had to stop (more names right there than ``LEVEL_PAGES_MAX`` pages: junk a
    # member wrote, red team rt102), or None: its older days are then not looked at in
    # the background. A listing of the room's days whole clears it. Loop-side.
    level_over: str | None = None
    # Pages the room's last pass through its history took when its listing of the days
    # was cut short so (``Backfill._read_history``), else 0: a safety round's read again
    # is charged and paid them (``Poller._read_again_ended``). Loop-side.
    cut_pages: int = 0
    # The oldest day (``logs/<date>/``) a message written since the room's last safety
    # listing may be in that the listings of its newest days no longer look at: a local
    # date of a writer west of UTC when that listing began, or the first day a listing
    # left for the next (``ids.days_left_behind``, ``poller.BEHIND_DAYS_MAX`` a round).
    # None: nothing left behind (no safety listing yet). Loop-side.
    listed_from: str | None = None
    # When (wall clock, ms) the room's last pass through its history began
    # (``Poller.reading_from_now``), before it listed the room's days: a read again that
    # lists every day leaves no day behind from then on (``listed_from``). Loop-side.
    pass_began_ms: int | None = None
    # Since when (wall clock, seconds) and why the room's history could not be checked:
    # its safety listing failed (refused by the storage for this room, or twice in a
    # row). A segment removed or rewritten meanwhile is not noticed, so the verdict is
    # not final (``partial``) and the room says so (``unread_findings``) until a listing
    # succeeds. State thread.
    unchecked: tuple[float, str] | None = None
    # A pass of this engine read the room from storage through, with nothing left unread
    # (``Backfill``): only then is this device's newest event in memory its chain's head
    # as stored; a room rebuilt from the index alone holds the room as of the index's
    # last read, which may predate this device's own last sends (red team rt71).
    read_here: bool = False
    # A read on a notice that failed or was not kept (``Poller._read_hints``): the room's
    # safety listing is owed by this time (monotonic), not at its own period (up to 4 h
    # in the background on a bucket with a change feed). None: nothing owed.
    listing_owed_at: float | None = None
    # How many owed listings were taken in a row, the last one when (monotonic): each
    # next one waits four times longer (``Poller._owe_listing``), until a quiet spell.
    owed_streak: int = 0
    owed_taken_at: float = 0.0
    # The segments those reads named (in the order owed, at most ``poller.OWED_PATHS_MAX``;
    # when full, the one of the day farthest from today goes): on a bucket the owed
    # listing lists only from just before each, the days nearest today first
    # (``Poller._list_owed``), not the room's newest days whole. Loop-side.
    owed_paths: dict[str, None] = field(default_factory=dict)
    # More was owed than ``owed_paths`` holds (one was dropped): the next owed listing
    # looks at the room's newest days too, a page each (``Poller._list_owed``). Loop-side.
    owed_newest: bool = False
    released: int = 0  # the date of the held-back row last audited for (``release_due``)
    # The older day a warm pass listed last, besides the newest (``backfill``: one more a
    # pass, in turn, so a segment removed from any day read before is found in time).
    rechecked: str = ""
    # The last full audit: when its job ended (monotonic) and how long it took; and
    # whether an arrival's full audit was put off (``keeper.REAUDIT_SHARE``). State thread.
    audit_ended: float = 0.0
    audit_cost: float = 0.0
    audit_owed: bool = False
    # Whether the last full audit was made by the rules of a partial read (``partial``
    # when it ran, with the final rules): its findings say why. An audit that would
    # change this is never put off (``keeper``): the view's ``partial`` and the reasons
    # in its findings change together. State thread.
    audit_partial: bool = False
    # The last full audit's row count and newest rows with bodies, made on the serial
    # worker with it (``RoomLoaded.total`` / ``.newest``); the result says which audit.
    shown: tuple[AuditResult | None, int, tuple[ShownEvent, ...]] = (None, 0, ())
    # Copies read for the first time into a room already known whole (read through, or
    # rebuilt complete from this device's index; not its first read, nor while part of it
    # could not be read), from segments first listed then, that no ``EventsAppended`` handed
    # out: they wait for the next full audit (``keeper``), which says where it placed them
    # (``arrived``). New words, wherever their date puts them: a member's next message
    # dated weeks back lands far above the newest row, and it is news all the same (red
    # team rt79).
    arrivals: list[Any] = field(default_factory=list)
    # Those of them the last full audit shows: (that audit, their rows with bodies and
    # positions in its timeline, display order) for ``RoomLoaded.arrived``.
    arrived: tuple[AuditResult | None, tuple[tuple[int, ShownEvent], ...]] = (None, ())
    # The audit whose rows the index's saved timeline holds (``AuditResult.audit_number``;
    # 0: none of this session's). Rows appended or placed are written there only while it
    # is the current result's: a progress audit is not saved, and rows written at its
    # positions into the table of an earlier one left gaps and duplicates there.
    saved_audit: int = 0
    # This device's clock (``keeper.now_ms``) when the newest read of the room from
    # storage whose rows the ledger holds began (a pass, a listing, a notice's download;
    # a rebuild from the index: then), 0 before any: each ``RoomLoaded`` and
    # ``EventsAppended`` carries it (``read_ms``). Not moved by what reads nothing from
    # storage (a re-audit, this device's own send). Loop.
    read_ms: int = 0

    @property
    def partial(self) -> bool:
        """Part of the room could not be read: no final verdict, no trust on first use."""
        return bool(
            self.unread
            or self.unlisted
            or self.vanished
            or self.ledger.has_unreadable
            or self.refused_history
            or self.unchecked is not None
        )

    @property
    def refused_history(self) -> bool:
        """Whether an object refused unread stands where history could be (over the
        size limit at a segment's name: an error; litter is a notice)."""
        return self.refused_errors > 0

    def note_refused(self, path: str, size: int, finding: Finding) -> bool:
        """State thread: ``path`` refused unread at ``size`` (``RoomState.refused``).
        True when its finding is new or another than before."""
        before = self.refused.get(path)
        if before is None:
            self.refused_folders.setdefault(_folder_of(path), set()).add(path)
        elif before[1].severity is Severity.ERROR:
            self.refused_errors -= 1
        if finding.severity is Severity.ERROR:
            self.refused_errors += 1
        self.refused[path] = (size, finding)
        return before is None or before[1] != finding

    def forget_refused(self, path: str) -> bool:
        """State thread: ``path`` is no longer refused (gone, read, or unread for now).
        True when it was."""
        got = self.refused.pop(path, None)
        if got is None:
            return False
        folder = _folder_of(path)
        paths = self.refused_folders[folder]
        paths.discard(path)
        if not paths:
            del self.refused_folders[folder]
        if got[1].severity is Severity.ERROR:
            self.refused_errors -= 1
        return True

    def refused_in(self, folder: str) -> list[str]:
        """State thread: what is refused in day folder ``folder``."""
        return list(self.refused_folders.get(folder, ()))

    @property
    def vanished_only(self) -> bool:
        """Partial only because segments read and checked here are no longer in storage as
        read (removed or rewritten), not because a read or a listing failed or an object
        was refused unread: the words front ends use then (``findings.vanished_only``)."""
        return bool(self.vanished) and not (
            self.unread
            or self.unlisted
            or self.ledger.has_unreadable
            or self.refused_history
            or self.unchecked is not None
        )

    def note_unread(self, notes: Mapping[str, str]) -> bool:
        """State thread: note what a read made on the loop could not read (path -> why),
        unless the room holds it by now (kept meanwhile: noting it would put the verdict
        in doubt for nothing). True when anything changed."""
        noted = False
        for path, why in notes.items():
            if path not in self.known and self.unread.get(path) != why:
                self.unread[path] = why
                self.forget_refused(path)  # a refusal's finding is for what is there now
                noted = True
        return noted

    def problem_days(self) -> set[str] | None:
        """The day folders (``logs/<day>/``) of what is noted unread or unlisted: a pass
        that lists those (and the days a warm pass lists) settles every note. None when
        a note names no day folder: the room's list of days could not be read, or a
        note is of another object, or nothing is noted but what storage no longer holds
        (then the room is read all over again)."""
        if not self.worth_reading_again:
            return None
        prefix = logs_prefix(self.room_id)
        days: set[str] = set()
        for path in (*self.unread, *self.unlisted):
            day, sep, _ = path.removeprefix(prefix).partition("/")
            if not path.startswith(prefix) or not day or not sep:
                return None
            days.add(day)
        return days

    @property
    def worth_reading_again(self) -> bool:
        """Whether reading the room all over again (a safety round's pass) can settle
        what is noted: a read or a listing that failed is retried. What is only in
        ``vanished`` is not: no pass brings it back, and one member who removes a segment
        would have every reader list every day of the room at each round. One look (the
        loop may ask: may be one job old)."""
        return bool(self.unlisted or self.unread)

    def note_vanished(self, path: str, why: str) -> None:
        """State thread: storage no longer holds ``path`` (kept) as read."""
        self.unread.pop(path, None)
        self.vanished[path] = why
        self.judged.pop(path, None)

    def note_changed(self, path: str, why: str, listed: str | None) -> None:
        """State thread: the bytes of ``path`` read again are not the ones checked here,
        while the listing showed ``listed`` (not read again while it shows that)."""
        self.note_vanished(path, why)
        self.judged[path] = listed

    def changed_as_listed(self, path: str, listed: str | None) -> bool:
        """State thread: whether ``path`` was found changed by its bytes while listings
        showed ``listed``, as they do now (reading it again would find the same)."""
        return path in self.vanished and path in self.judged and self.judged[path] == listed

    def note_failed(self, path: str, why: str) -> None:
        """State thread: a read of kept ``path`` to compare it failed (retried)."""
        self.vanished.pop(path, None)
        self.judged.pop(path, None)
        self.unread[path] = why

    def listed_as_read(self, path: str) -> None:
        """State thread: a listing shows ``path`` as read, or its bytes were read again
        and are the ones checked here: a note of an earlier look is taken back."""
        self.unread.pop(path, None)
        self.vanished.pop(path, None)
        self.judged.pop(path, None)

    def note_of(self, path: str) -> str | None:
        """State thread: what is noted of ``path`` (either kind), or None."""
        return self.vanished.get(path) or self.unread.get(path)

    def holds(self, item: ObjectInfo) -> bool:
        """Whether listed ``item`` needs no read: kept, or refused unread at the size
        listed (over the limit: never downloaded again while listed so). One look (the
        loop asks: may be one job old)."""
        if item.path in self.known:
            return True
        refused = self.refused.get(item.path)
        return refused is not None and refused[0] == item.size

    def known_in(self, folder: str, held: int) -> list[str]:
        """State thread: the segments of date folder ``folder`` (``.../logs/<date>/``)
        among the first ``held`` the room kept, in the order kept."""
        return self.folders.known_in(self.known, folder, held)

    def known_days(self, held: int) -> set[str]:
        """State thread: the date folders' names (``<date>`` of ``.../logs/<date>/``)
        holding any of the first ``held`` segments the room kept: the days a listing of
        the room's days must show (``backfill.note_days_gone``). No walk over all kept."""
        return {folder.split("/")[3] for folder in self.folders.folders(self.known, held)}

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # ``known`` by date folder (``known_in``; state thread only).
    folders: KnownFolders = field(default_factory=lambda: KnownFolders())
    backfill: asyncio.Task[None] | None = None
    # Why the last pass through the room's history stopped on an error no storage error
    # names (a fault of this program: its type and text), "" when it did not; loop only.
    failure: str = ""
    faults: int = 0  # passes in a row that such a fault stopped (their wait grows)
    # The audit showing rows held back as dated ahead whose time came (``release_due``).
    releasing: asyncio.Task[None] | None = None
    # The full audit put off for what arrived (``RoomKeeper._audit_later``).
    reaudit: asyncio.Task[None] | None = None
    # The read of ``metadata`` in flight or last made (``SyncEngine.open_room``): shared
    # by opens that wait for it, never made under ``lock``.
    metadata_read: asyncio.Task[None] | None = None
    # Published by the state thread after each of its jobs on the room (``room_view``).
    view: RoomView | None = None
    # What a send needs from the timeline, kept up to date incrementally
    # (``publisher.send_context``).
    scan: SendScan | None = None
    # The relations of ``result`` (PROTOCOL.md section 18), made on the state thread when
    # the result changes: (the result they are of, them).
    related: tuple[AuditResult, Relations] | None = None
    # The member fold (protocol ``RoomState``: members, devices, display names) of the
    # current audit and how many of its rows it has folded: continued on appends, begun
    # again on a full audit (state thread only; ``roster``).
    fold: _Fold | None = None
    # The room state handed out for ``result``: (the result it is of, it).
    stated: tuple[AuditResult, Roster] | None = None
    # The last rows placed before shown ones (``RoomLedger.try_place``): (the result
    # before, the result after, where, how many). The relations and the fold of the
    # result before are carried over to the one after, not made again from the start
    # (at the end of the job: ``keeper._publish``, which drops this).
    moved: tuple[AuditResult, AuditResult, int, int] | None = None

    def reads(self) -> list[asyncio.Task[None]]:
        """The room's own reads that run (its history, its metadata, a release): what
        ``SyncEngine.close`` and ``drop_room`` stop."""
        tasks = (self.backfill, self.metadata_read, self.releasing, self.reaudit)
        return [t for t in tasks if t is not None]

    def roster_made_for(self, result: AuditResult | None) -> Roster | None:
        """The room state the state thread made for ``result``, None if it made none
        (any thread: one read of a tuple the state thread replaces whole)."""
        stated = self.stated
        return stated[1] if stated is not None and stated[0] is result else None

    def roster(self) -> Roster | None:
        """State thread: the members, devices and display names of the current result,
        immutable (``protocol.room_state.Roster``). An append folds only the rows it
        added (appends keep every position); a full audit is folded from its first row.
        The GUI thread never folds a timeline: it takes this."""
        result = self.result
        if result is None:
            return None
        stated = self.stated
        if stated is not None and stated[0] is result:
            return stated[1]
        fold, rows = self.fold, len(result.timeline)
        moved = self.moved
        if (
            fold is not None
            and moved is not None
            and moved[1] is result
            and fold.audit_number == moved[0].audit_number
            and fold.rows == len(moved[0].timeline)
        ):
            # Rows placed before others (plain messages of senders other than theirs):
            # folded on top, unless one's sender is new (the fold lists senders first
            # seen first, and that sender comes before the rows that moved).
            at, count = moved[2], moved[3]
            placed = result.timeline[at : at + count]
            if all(fold.state.knows(a.event.sender_id) for a in placed):
                fold.state.add(placed)
                fold.audit_number, fold.rows = result.audit_number, rows
        if fold is None or fold.audit_number != result.audit_number or fold.rows > rows:
            # Each position is folded once, and a timeline shows each event id once.
            fold = self.fold = _Fold(result.audit_number, MemberFold(dedupe=False))
            # conflicts are decided by full audits only: appends never change them
            fold.state.disputed = conflicted_senders(result)
        if fold.rows < rows:
            fold.state.add(result.timeline[fold.rows :])
            fold.rows = rows
        roster = fold.state.roster()
        self.stated = (result, roster)
        return roster

    def carry_scan(self) -> None:
        """State thread, at the end of a job (``keeper._publish``): the send scan carried
        over rows placed before shown ones (``moved``), when it can be exactly
        (``SendScan.placed``); else dropped, and the next send begins it again."""
        scan, moved = self.scan, self.moved
        if scan is None or moved is None or moved[1] is not self.result:
            return
        if not scan.placed(*moved):
            self.scan = None

    def relations_made_for(self, result: AuditResult | None) -> Relations | None:
        """The relations the state thread made for ``result``, None if it made none
        (any thread: one read of a tuple the state thread replaces whole)."""
        related = self.related
        return related[1] if related is not None and related[0] is result else None

    def relations(self) -> Relations | None:
        """State thread: the relations of the current result: extended by an append's
        rows (``relations.extended``, which keeps the old ones when nothing in them can
        change them), built anew after a full audit."""
        result = self.result
        if result is None:
            return None
        old = self.related
        if old is not None and old[0] is result:
            return old[1]
        moved = self.moved
        if old is not None and moved is not None and moved[0] is old[0] and moved[1] is result:
            # rows placed before the last ones: the positions of what moved change
            rel = inserted_relations(old[1], result.timeline, moved[2], moved[3])
        elif (
            old is not None
            and old[0].audit_number == result.audit_number
            and len(old[0].timeline) <= len(result.timeline)
        ):  # an append keeps every position: only the new rows are read, and when they
            # change nothing (plain messages nothing waited for) the old ones come back
            rel = extended_relations(old[1], result.timeline)
        else:
            rel = build_relations(self.room_id, result.timeline)
        self.related = (result, rel)
        return rel


class KnownFolders:
    """A room's known segments grouped by date folder, caught up when asked.

    A full pass lists every date folder and compares each listing with the segments
    kept from that folder (``backfill._note_vanished``). Picking those out of all the
    kept segments for each folder cost folders × segments: a member who spreads 100,000
    one-line segments over 10,000 backdated days made each full pass a billion steps on
    the state thread, where every room's reads and the window's requests wait. Here each
    kept segment is filed once. ``known`` only grows, in the order kept (never a key
    removed; a size changed keeps its place), so the segments kept since the last look
    are its last ones (read in reverse: no walk over the others)."""

    __slots__ = ("_by_folder", "_filed")

    def __init__(self) -> None:
        self._filed = 0
        self._by_folder: dict[str, list[str]] = {}

    def folders(self, known: dict[str, int], held: int) -> list[str]:
        """The folders holding any of the first ``held`` kept, in the order first kept
        into. A folder's list is in the order kept, so its first is the one kept there
        earliest: the folder holds one of the first ``held`` when that one is."""
        self._file(known)
        count = len(known)
        if held >= count:
            return list(self._by_folder)
        late = set(itertools.islice(reversed(known), count - held))
        return [folder for folder, paths in self._by_folder.items() if paths[0] not in late]

    def known_in(self, known: dict[str, int], folder: str, held: int) -> list[str]:
        self._file(known)
        count = len(known)
        paths = self._by_folder.get(folder, [])
        # The first ``held`` kept: a folder's list is in the order kept, so those are a
        # prefix of it, found by their positions among all kept (counted back from the end).
        if held >= count:
            return list(paths)
        late = set(itertools.islice(reversed(known), count - held))
        end = len(paths)
        while end and paths[end - 1] in late:
            end -= 1
        return paths[:end]

    def _file(self, known: dict[str, int]) -> None:
        """File the segments kept since the last look (the last ones of ``known``)."""
        count = len(known)
        if count < self._filed:  # never happens (``known`` only grows): file them again
            self._filed, self._by_folder = 0, {}
        if count > self._filed:
            new = list(itertools.islice(reversed(known), count - self._filed))
            by_folder = self._by_folder
            for path in reversed(new):
                parts = path.split("/", 4)
                if len(parts) == 5:
                    where = f"{parts[0]}/{parts[1]}/{parts[2]}/{parts[3]}/"
                    by_folder.setdefault(where, []).append(path)
            self._filed = count


@dataclass(slots=True)
class _Fold:
    audit_number: int
    state: MemberFold
    rows: int = 0  # timeline rows folded


@dataclass(frozen=True, slots=True)
class RoomView:
    """What a front end may know of a room's state: copied on the engine's serial worker,
    so it is one consistent moment and nobody changes it afterwards. ``result`` is the
    engine's latest audit (compare it by identity with the one shown: ``complete`` and
    ``partial`` describe that audit, not necessarily an older one)."""

    room_id: str
    result: AuditResult | None
    metadata: RoomMetadata | None
    metadata_findings: tuple[Finding, ...]
    complete: bool
    partial: bool
    # Replies, reactions, edits, redactions of ``result``, and its members, devices and
    # display names: None exactly when ``result`` is (``__post_init__``; the state thread
    # makes both with every result it publishes, ``keeper._publish``).
    relations: Relations | None = None
    roster: Roster | None = None
    # ``partial`` only because of segments no longer in storage as read
    # (``RoomState.vanished_only``), at the same moment as ``partial``: the audit's
    # findings may be older (an audit put off for a burst of arrivals).
    vanished: bool = False
    # ``RoomState.failure``: why the last read of the room's history stopped on a fault
    # of this program ("" when it did not), at the moment the view was asked for.
    failure: str = ""

    def __post_init__(self) -> None:
        made = (self.relations is not None, self.roster is not None)
        if made != (self.result is not None,) * 2:
            raise ValueError("a room view has relations and a roster exactly with a result")


@dataclass(frozen=True, slots=True)
class CachedRoom:
    """A room as this device's index knows it: its id, the name its metadata gave (None:
    unknown) and when this device last read it completely (seconds since the epoch)."""

    room_id: str
    name: str | None
    last_read: float | None


def _ranked(
    tips: dict[str, Event],
    named: Mapping[str, Collection[str]],
    since: int | None,
    first: Mapping[str, int],
    trusted: Mapping[str, bool],
) -> list[Event]:
    """``tips`` (each key's newest event, the most recently active last) in the order of
    ``SendScan.witness_order``, but those whose newest event this key's own witnesses
    named already (``named``: key -> hashes): chains ``named`` by this key's own
    witnesses, then (``since``: this key's newest event, None once its witnesses named
    any chain) verified keys first dated no later than ``since``, then other verified
    keys, then the rest; the most recently active first within each. O(keys)."""

    def rank(ev: Event) -> int:
        key = ev.sender_key or ""
        if key in named:
            return 0
        if not trusted.get(key, False):
            return 3
        if since is not None and first.get(key, since + 1) <= since:
            return 1
        return 2

    moved = (
        ev for ev in reversed(tips.values()) if ev.hash not in named.get(ev.sender_key or "", ())
    )
    return sorted(moved, key=rank)  # stable: newest first in a rank


def _since(own: Event | None, named: Mapping[str, Collection[str]]) -> int | None:
    """The date up to which a chain's first row ranks it as in the room when this key
    last wrote (``_ranked``): its newest event's, until its own witnesses named a chain.
    From then on they say what this device had read when it wrote, and a date (the
    writer's word) no longer ranks anyone: a provider backdated 64 made-up ids to before
    Bob's last send, ahead of Carol, who joined after it (red team rt101)."""
    return own.timestamp_ms if own is not None and not named else None


def _named_tips(tips: Mapping[str, Event], named: Mapping[str, Collection[str]]) -> set[str]:
    """The keys whose newest event (``tips``) this key's own witnesses named (``named``):
    the chains known to be named now, which alone leave the witness's queue."""
    return {key for key, ev in tips.items() if ev.hash in named.get(key, ())}


def witness_order_of(
    rows: Iterable[tuple[Event, TrustState]], key_text: str
) -> tuple[list[Event], set[str]]:
    """``SendScan.witness_order`` and ``SendScan.named_tips`` of the rows a send that
    did not open the room has (the newest this device cached, display order): what they
    show of each key. A key they do not show is in neither."""
    tips: dict[str, Event] = {}
    first: dict[str, int] = {}
    trusted: dict[str, bool] = {}
    named: dict[str, set[str]] = {}
    _take_rows(rows, tips, first, trusted, {key_text: named})
    order = _ranked(tips, named, _since(tips.get(key_text), named), first, trusted)
    return order, _named_tips(tips, named)


def _take_rows(
    rows: Iterable[tuple[Event, TrustState]],
    tips: dict[str, Event],
    first: dict[str, int],
    trusted: dict[str, bool],
    witnessed: dict[str, dict[str, set[str]]],
) -> None:
    """Of ``rows`` (display order, each once): each key's newest event (to the end of
    ``tips``: the most recently active last), earliest date, verdict of its newest, and
    what the witnesses of the keys in ``witnessed`` named (key -> the hashes named)."""
    for ev, state in rows:
        key = ev.sender_key
        if not key:
            continue
        tips.pop(key, None)
        tips[key] = ev
        when = first.get(key)
        if when is None or ev.timestamp_ms < when:
            first[key] = ev.timestamp_ms
        trusted[key] = state is TrustState.VERIFIED
        named = witnessed.get(key)
        if named is not None and WITNESS_FIELD in ev.raw:
            _note_witness(named, ev, key)


def _note_witness(named: dict[str, set[str]], ev: Event, key: str) -> None:
    for other, seen in witness_entries(ev.raw[WITNESS_FIELD], key):
        hashes = named.get(other)
        if hashes is None:
            hashes = named[other] = set()
        hashes.add(seen)


@dataclass(slots=True)
class SendScan:
    """What sends read from a room's timeline, brought up to date on the state thread by
    looking only at what was appended since (a full audit makes a new result: then once
    over all of it). A send used to scan the whole timeline on the loop, twice (~20 ms
    at 100,000 events), while the state thread could be appending to it.

    Also what ranks the chains a witness names (``witness_order``): a key costs nothing,
    so anyone who can write to the storage can make 64 chains active after the message
    they mean to delete, and a witness of the most recently active chains named those
    and not the one read before them (red team rt99)."""

    result: AuditResult
    seen: int = 0  # timeline items looked at
    # sender key -> its newest event in display order; the most recently active key last
    tips: dict[str, Event] = field(default_factory=dict)
    offers: dict[tuple[str, str], IntroductionScan] = field(default_factory=dict)
    # sender key -> the earliest date of its rows (order-free: a placement carries it)
    first: dict[str, int] = field(default_factory=dict)
    # sender key -> whether its newest row (``tips``) is verified
    trusted: dict[str, bool] = field(default_factory=dict)
    # a key of this device -> the keys its own witnesses in the room named, each with
    # the hashes named (``named``)
    witnessed: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def _take(self, rows: Sequence[Assessed]) -> None:
        """Each key's newest event, earliest date, verdict and own witnesses, of ``rows``
        (display order, each once; ``_take_rows``): one pass, since each row of a
        ``Timeline`` is made when it is read."""
        pairs = ((a.event, a.state) for a in rows)
        _take_rows(pairs, self.tips, self.first, self.trusted, self.witnessed)

    def catch_up(self) -> None:
        new = self.result.timeline[self.seen :]
        self.seen += len(new)
        self._take(new)
        for scan in self.offers.values():
            scan.feed((a.event, a.state) for a in new)

    def named(self, key_text: str) -> dict[str, set[str]]:
        """The keys the witnesses of ``key_text``'s own events in the room named, each
        with the hashes named: chains this device told the room it had read, in events
        signed by its key (no storage can add a key to it). Read from the room's history,
        so a restart or ``bucket-chat send`` knows them too (red team rt101: a record
        kept in memory only was empty again at each start)."""
        named = self.witnessed.get(key_text)
        if named is None:
            named = self.witnessed[key_text] = {}
            for a in self.result.timeline[: self.seen]:
                ev = a.event
                if ev.sender_key == key_text and WITNESS_FIELD in ev.raw:
                    _note_witness(named, ev, key_text)
        return named

    def witness_order(self, key_text: str) -> list[Event]:
        """Each other device's newest event that this key's own witnesses have not
        named yet (a chain that moved since, or never named), in the order a witness of
        ``key_text`` names their chains (PROTOCOL.md section 6.1), the most trusted first
        and, among equals, the most recently active first:

        1. chains this key's own earlier witnesses named (``named``): read here before;
        2. only while this key's witnesses named no chain yet (its first send with a
           witness; ``_since``): of chains whose newest row is verified, those whose
           first row is dated no later than this key's newest event;
        3. the other verified ones: keys first seen since, or whose dates say they were
           here before although this key's own witnesses never named them;
        4. the rest (a key nobody introduced, a broken chain).

        A witness names at most 64 chains, and a key costs nothing: fresh keys made
        active after a message can no longer push the chain of that message out of the
        witness of a device that read it (red team rt99), and made-up ids backdated to
        before this key's last witness no longer rank ahead of a newcomer (rt101).
        Within a kind the order is by the writers' dates, which a provider chooses for
        its own rows: the publisher puts a chain left out first at its next send
        (``Publisher._witness``; docs/SECURITY.md, "Crowding a witness")."""
        named = self.named(key_text)
        since = _since(self.tips.get(key_text), named)
        return _ranked(self.tips, named, since, self.first, self.trusted)

    def named_tips(self, key_text: str) -> set[str]:
        """The keys whose newest event this key's own witnesses in the room named: the
        chains a queued place is given up for (``Publisher._witness``). O(keys)."""
        return _named_tips(self.tips, self.named(key_text))

    def placed(self, before: AuditResult, after: AuditResult, at: int, count: int) -> bool:
        """Carry this scan over ``count`` rows placed at ``at`` (``RoomLedger.try_place``)
        that made ``after`` of ``before``, the rows of ``before`` from ``at`` on moved
        after them: O(what was appended since the last send + the rows that moved), not a
        rescan of the whole timeline (80-140 ms at 100,000 rows). False when it cannot be
        carried (the scan is of another audit, or the placement is not one this exactly
        carries): the next send begins again.

        Exact, as a scan of ``after`` from its first row: each key's newest row and the
        order of keys by where their newest row is (the witness's most recently active
        first). The keys with a row among the moved ones have their newest row there
        (they are the timeline's last rows): they keep it and their order, after every
        other key. A placed row is its key's newest (its key has no moved row: rows are
        placed only before other senders' rows, and a key signs for one sender; checked
        here all the same), so its key comes before the moved keys and after the rest.
        Offers are untouched: only joins count for them, and placed rows are plain
        messages (checked here too), so the joins are fed in the order a rescan feeds them."""
        if self.result.audit_number != before.audit_number or self.seen > len(before.timeline):
            return False
        end = at + count
        if len(after.timeline) != len(before.timeline) + count or not 0 <= at < end:
            return False
        rows = after.timeline
        placed = rows[at:end]
        if any(a.event.type == MEMBER for a in placed):
            return False
        later: dict[str, Event] = {}  # the moved rows' keys by their newest row, in order
        for a in rows[end:]:
            key = a.event.sender_key
            if key:
                later.pop(key, None)
                later[key] = a.event
        if any(a.event.sender_key in later for a in placed if a.event.sender_key):
            return False
        # The placement can be carried: what ``before`` appended since the last send
        # first, then only the placement is left.
        self.result = before
        self.catch_up()
        tips = self.tips
        for key in later:
            tips.pop(key, None)
        # a placed row is its key's newest; dates and witnesses are sets
        self._take(placed)
        tips.update(later)
        self.result = after
        self.seen = len(rows)
        return True

    def introductions(self, user_id: str, key_text: str) -> IntroductionScan:
        scan = self.offers.get((user_id, key_text))
        if scan is None:
            scan = self.offers[(user_id, key_text)] = IntroductionScan(user_id, key_text)
            scan.feed((a.event, a.state) for a in self.result.timeline[: self.seen])
        return scan


FAULT_NOTE = "reading it stopped on a fault of this program"
"""How the note of a pass a fault of this program stopped begins (``room.unlisted``, on
the room's logs prefix: ``Backfill._said_unread``): its finding is ``read-stopped``."""


UNCHECKED_NOTE = "its history could not be checked since "
"""How the finding of a room whose safety listing keeps failing begins
(``RoomState.unchecked``): the window's banner quotes it."""


def unchecked_text(since: float, why: str) -> str:
    """The finding's words for ``RoomState.unchecked``: since when (local time) and why."""
    at = time.strftime("%Y-%m-%d %H:%M", time.localtime(since))
    return (
        f"{UNCHECKED_NOTE}{at} ({why}): a segment removed or rewritten since then is not "
        "noticed until it can be; the app tries again, less often after each failure"
    )


SAVED_PARTIAL_NOTE = "this device's last read of it could not read all of it"
"""The note (``room.unlisted``, on the room's logs prefix) of a room rebuilt from the
index whose saved audit was made by the final rules of a partial read (``keeper``): what
that read could not read is not kept, so the room stays partial — nobody trusted on first
use, nothing pinned — until a pass reads it whole, and that pass lists every day
(``RoomState.problem_days``)."""


def note_saved_partial(room: RoomState) -> None:
    """State thread (or the one thread of a room no engine holds): ``SAVED_PARTIAL_NOTE``."""
    room.unlisted.setdefault(logs_prefix(room.room_id), SAVED_PARTIAL_NOTE)


def _unlisted_finding(prefix: str, why: str) -> Finding:
    if why.startswith(FAULT_NOTE):
        return Finding(
            Kind.READ_STOPPED,
            f"{why}; what is shown was checked, and the verdict is not final until the "
            "room is read whole",
            prefix,
        )
    if why == SAVED_PARTIAL_NOTE:
        return Finding(
            Kind.UNREAD,
            f"{why} (shown as read then, from this device's cache): the verdict is not "
            "final, and nobody is trusted on first use, until the room is read whole",
            prefix,
        )
    return Finding(
        Kind.UNREAD,
        f"the room could not be listed completely ({why}): what is shown is what could "
        "be read, and the verdict is not final until it can",
        prefix,
    )


def unread_findings(room: RoomState) -> list[Finding]:
    """State thread: what the last pass could not read: errors, so the room is not clean
    (a partial read is never a final verdict, PROTOCOL.md section 16)."""
    out = [_unlisted_finding(prefix, why) for prefix, why in room.unlisted.items()]
    if room.unchecked is not None:
        out.append(Finding(Kind.UNREAD, unchecked_text(*room.unchecked), logs_prefix(room.room_id)))
    notes = [
        (path, Kind.SEGMENT_UNREADABLE, _unread_message(why)) for path, why in room.unread.items()
    ]
    notes.extend(
        (path, Kind.SEGMENT_VANISHED, _vanished_message(why)) for path, why in room.vanished.items()
    )
    out.extend(Finding(kind, text, path) for path, kind, text in sorted(notes))
    return out


def _folder_of(path: str) -> str:
    return path.rsplit("/", 1)[0] + "/"


def refused_findings(room: RoomState) -> list[Finding]:
    """State thread: the findings of the objects refused unread (``RoomState.refused``),
    in every audit of the room (an object over the size limit: an error, so the room is
    not clean; litter: a notice)."""
    return [room.refused[path][1] for path in sorted(room.refused)]


def _unread_message(why: str) -> str:
    return (
        f"this segment could not be read ({why}); its events are missing and the "
        "verdict is not final until it can be read"
    )


def _vanished_message(why: str) -> str:
    # Read and checked before, then gone or changed: its events are shown, as read
    return (
        f"storage no longer holds this segment as this device read it ({why}); the "
        "verdict is not final until it does"
    )
