"""What ``ChatClient`` asks of each storage it holds: the reads a front end may make and
the attachments' transfers. The base of ``ChatClient`` (``client.py``), apart only to keep
each file short; front ends import ``ChatClient``, ``RoomRef`` and ``SearchResults`` from
``client.py``.

Every read runs on the storage's engine threads (the reader thread for the index, the
state thread for room state: see ``SyncEngine``) and returns a frozen value. A storage
that is not attached reads as empty (None, ``()``); a step that must reach the storage
raises ``StorageError`` instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..index import Index, SearchHit
from ..index.search import SearchPage
from ..protocol.attachments import FileInfo
from ..protocol.audit import AuditResult
from ..protocol.relations import Relations
from ..protocol.room_state import Confirmed
from ..protocol.unread import ReadMarker, UnreadCount
from ..settings import StorageSettings
from ..storage.base import Storage, StorageError
from . import blobs
from .engine import SEARCH_LIMIT, CachedRoom, RoomView, SyncEngine
from .events import ShownEvent
from .outbox import HeldSend, Outbox, PendingMessage
from .room_objects import RoomSummary, StorageRooms, Within, room_exists
from .room_objects import storage_rooms as list_storage_rooms
from .room_objects import summarise_rooms as summarise_storage_rooms
from .watched import NoAnswerError, OneDeadline, answer_within

log = logging.getLogger("bucket_chat.sync")

T = TypeVar("T")
NOT_CONNECTED = "this room's storage is not connected yet"


@dataclass(frozen=True, slots=True)
class RoomRef:
    storage_id: str
    room_id: str

    @property
    def key(self) -> str:
        return f"{self.storage_id}/{self.room_id}"

    @classmethod
    def from_key(cls, key: str) -> RoomRef:
        """The room a ``key`` names (``storage_id/room_id``; the room id is all after the
        first "/"). A key without a "/" names no room: ``ValueError``, never a room of an
        empty id (a front end's "no room" is the empty key: check it first)."""
        storage_id, slash, room_id = key.partition("/")
        if not slash:
            raise ValueError(f"not a room key: {key[:200]!r}")
        return cls(storage_id, room_id)


@dataclass(frozen=True, slots=True)
class SearchResults:
    """What ``ChatClient.search`` found: ``hits`` newest first, each naming its storage;
    ``more``: older hits may exist; ``errors``: (storage id, why) for each storage whose
    index could not be searched; ``query_cut``: the query was too long and shortened;
    ``backlog``: segments read but not searchable yet (their text is being indexed);
    ``next``: where each storage with older hits reads on (storage id, the ``before`` key:
    None from its newest) — pass it as ``ChatClient.search``'s ``after`` for the next page;
    empty when there is nothing older anywhere."""

    hits: tuple[SearchHit, ...]
    more: bool = False
    errors: tuple[tuple[str, str], ...] = ()
    query_cut: bool = False
    backlog: int = 0
    next: tuple[tuple[str, int | None], ...] = ()


@dataclass(slots=True)
class _Attached:
    """One storage as the client holds it; never handed to a front end."""

    settings: StorageSettings
    storage: Storage  # as opened (blobs go through it); the engine's is its watched wrapper
    engine: SyncEngine
    index: Index | None
    outbox: Outbox | None
    owns_storage: bool = True  # closed with the engine (a session's belongs to its caller)
    # ``ChatClient.attach``'s opens of its rooms, each a task: stopped before the engine
    # closes (a detach right after an attach must not leave them running into it).
    opening: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)


class AttachedStorages:
    """The storages a client holds (``_storages``: storage id -> ``_Attached``, private
    to ``sync/``) and what a front end may ask of each."""

    _storages: dict[str, _Attached]

    def is_attached(self, storage_id: str) -> bool:
        """Whether the storage is connected (its engine runs): only then can it be read."""
        return storage_id in self._storages

    def describe(self, storage_id: str) -> str | None:
        """The attached storage's own description (its folder or bucket), or None."""
        attached = self._storages.get(storage_id)
        return attached.storage.describe() if attached is not None else None

    @property
    def session_storage(self) -> str:
        """The id of the one storage of a ``ChatClient.session``."""
        (storage_id,) = self._storages
        return storage_id

    def room(self, room_id: str) -> RoomRef:
        """``room_id`` in the one storage of a ``ChatClient.session``."""
        return RoomRef(self.session_storage, room_id)

    def _attached(self, storage_id: str) -> _Attached:
        """The attached storage; ``StorageError`` when it is not attached."""
        attached = self._storages.get(storage_id)
        if attached is None:
            raise StorageError(NOT_CONNECTED)
        return attached

    def _engine(self, storage_id: str) -> SyncEngine:
        """The storage's engine; ``StorageError`` when it is not attached."""
        return self._attached(storage_id).engine

    async def within(
        self,
        storage_id: str,
        step: Coroutine[Any, Any, T],
        seconds: float | None = None,
        *,
        what: str | None = None,
    ) -> T:
        """Run ``step`` (a call of this client on that storage) and give it up with
        ``NoAnswerError`` as soon as one of its requests waited ``seconds`` (default: the
        interactive deadline) without an answer (``watched.answer_within``, which says
        which steps are safe to give up). ``what`` names the storage in the error
        (default: its description)."""
        try:
            attached = self._attached(storage_id)
        except StorageError:
            step.close()  # never awaited: closed, so no "never awaited" warning
            raise
        watched = attached.engine.storage
        return await answer_within(watched, step, seconds, what=what or watched.describe())

    async def room_name(self, ref: RoomRef) -> str | None:
        """The room's name as this device's index last recorded it (no network access;
        read on the engine's reader thread), or None."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.room_name(ref.room_id)

    async def cached_rooms(self, storage_id: str) -> tuple[CachedRoom, ...]:
        """The rooms of one storage this device's index knows (no network access)."""
        attached = self._storages.get(storage_id)
        if attached is None:
            return ()
        return await attached.engine.cached_rooms()

    async def cached_room(self, ref: RoomRef) -> RoomView | None:
        """The room as this device's index knows it (no network access): what is shown
        when the storage does not answer; None when the index holds nothing of it."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.cached_room(ref.room_id)

    async def last_read(self, ref: RoomRef) -> float | None:
        """Wall-clock time of this device's last complete read of the room, or None."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.last_read(ref.room_id)

    async def timeline_length(self, ref: RoomRef) -> int:
        """How many rows this device's index holds for the room."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return 0
        return await attached.engine.timeline_length(ref.room_id)

    async def knows_room(self, ref: RoomRef) -> bool:
        """Whether this device has the room locally (index or outbox): it exists then."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return False
        return await attached.engine.knows_room(ref.room_id)

    async def room_exists(self, ref: RoomRef) -> bool:
        """Whether the storage holds the room (asks the storage: see ``within``)."""
        engine = self._engine(ref.storage_id)
        return await room_exists(engine.storage, ref.room_id)

    async def storage_rooms(
        self, storage_id: str, *, limit: int | None = 0, activity: bool = True
    ) -> StorageRooms:
        """The rooms a storage holds, with their names and last activity (the first
        ``limit``; None: all; the others' ids in ``unread``), for a person choosing one
        to join (by default only the ids, one listing: the dialog reads the names of
        the rooms it shows, ``summarise_rooms``) and for ``bucket-chat rooms`` (which
        shows no activity: ``activity=False`` reads one object a room instead of three
        requests). Never raises for the storage: when its listing does not answer within
        the interactive deadline (``watched.py``) or fails, the rooms this device's index
        knows come back instead, with a note saying why (``from_cache``). Each room's
        reads are held to the deadline on their own: a room that gets no answer is
        ``passing``, its name as this device's index last recorded it (if any), and the
        other rooms keep theirs (red team rt95: one stalled room emptied the list). The
        rooms share the deadline (``watched.OneDeadline``): once a read got no answer and
        no read has been answered since, the rooms not yet read are ``passing`` unasked
        (review rev1: each room waiting its own deadline, 1,000 rooms took ≈ 150 s)."""
        attached = self._storages.get(storage_id)
        if attached is None:
            return StorageRooms((), note="This storage is not connected; it could not be read.")
        storage = attached.engine.storage
        now_ms = int(time.time() * 1000)
        try:
            found = await list_storage_rooms(
                storage, now_ms, limit, activity=activity, within=self._steps(attached)
            )
        except StorageError as exc:
            log.warning("could not list the rooms of %s: %s", attached.settings.name, exc)
            known = await attached.engine.cached_rooms()
            rooms = tuple(RoomSummary(r.room_id, r.name, None) for r in known)
            note = f"Could not list the storage: {exc}."
            if rooms:
                note += " Shown: the rooms this device knows from earlier reads."
            reads = [r.last_read for r in known if r.last_read is not None]
            return StorageRooms(
                rooms,
                from_cache=True,
                note=note,
                error=str(exc),
                no_answer=isinstance(exc, NoAnswerError),
                last_read=max(reads, default=None),
            )
        if not any(r.passing and r.name is None for r in found.rooms):
            return found
        names = {r.room_id: r.name for r in await attached.engine.cached_rooms() if r.name}
        rooms = tuple(
            dataclasses.replace(r, name=names.get(r.room_id)) if r.passing and r.name is None else r
            for r in found.rooms
        )
        return dataclasses.replace(found, rooms=rooms)

    @staticmethod
    def _steps(attached: _Attached) -> Within:
        """Each of a batch's reads as a step of its own (``answer_within``), all sharing
        one deadline (``watched.OneDeadline``): once one got no answer and none has been
        answered since, the rest are not asked. One for each batch."""
        return OneDeadline(attached.engine.storage, what=attached.settings.name)

    async def summarise_rooms(
        self, storage_id: str, room_ids: Sequence[str]
    ) -> tuple[RoomSummary, ...]:
        """The name and last activity of each of ``room_ids`` (``storage_rooms`` left
        them unread), in their order: what the join dialog shows, read as rooms come into
        view (red team rt75: it read the first 200 ids by name, and 200 planted rooms
        named to sort first hid every other). Never raises for the storage: a room that
        could not be read comes back without a name, with the reason as its problem;
        one its storage did not answer for in time (each room's reads are held to the
        interactive deadline on their own) is ``passing``, and the others keep their
        names (red team rt95: one stalled room's metadata blanked the whole batch). Once a
        read got no answer and none has been answered since, the rooms not yet read are
        ``passing`` unasked: the batch waits one deadline, not one for every eight rooms."""
        attached = self._storages.get(storage_id)
        if attached is None:
            why = "This storage is not connected; it could not be read."
            return tuple(RoomSummary(r, None, None, why) for r in room_ids)
        storage = attached.engine.storage
        return await summarise_storage_rooms(
            storage, int(time.time() * 1000), room_ids, within=self._steps(attached)
        )

    async def room_view(self, ref: RoomRef) -> RoomView | None:
        """A frozen snapshot of a room's state (latest audit, metadata and its findings,
        complete and partial flags), or None when its storage or room is not read."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.room_view(ref.room_id)

    async def timeline_page(
        self, ref: RoomRef, result: AuditResult, start: int, stop: int, *, pinned: bool = False
    ) -> tuple[ShownEvent, ...] | None:
        """Rows ``start:stop`` of a room's audit ``result`` (the one a ``RoomLoaded``
        handed over) with their bodies: what the timeline shows as it is scrolled. Read on
        the engine's serial worker; None when that audit was replaced (a ``RoomLoaded``
        with the new one follows) or the storage is not attached. ``pinned``: that audit's
        rows even when a later one replaced it — an export writes the audit it started
        with, whole, while polls read the room again."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.timeline_page(ref.room_id, result, start, stop, pinned=pinned)

    async def search(
        self,
        query: str,
        *,
        storage_id: str | None = None,
        room_id: str | None = None,
        limit: int = SEARCH_LIMIT,
        after: Sequence[tuple[str, int | None]] | None = None,
    ) -> SearchResults:
        """Messages holding every term of ``query``, newest first, across every attached
        storage (or ``storage_id``'s) and room (or ``room_id``: with a storage, that
        room; without, that room id wherever it is). Each storage's index is searched on
        its reader thread, all at once; results are frozen. Never raises for what the
        query holds: a storage whose index cannot be searched says why in ``errors``.
        ``after``: the ``next`` of the results before, for the page of older messages
        (only the storages it names are searched, each from where it stopped). A message
        found again on a later page by an older text of it (an edit's) is the front
        end's to drop (``SearchHit.copy`` says which copy a hit is)."""
        from_key: dict[str, int | None] = dict(after) if after is not None else {}
        targets = [
            (sid, attached)
            for sid, attached in self._storages.items()
            if (storage_id is None or sid == storage_id) and (after is None or sid in from_key)
        ]
        pages = await asyncio.gather(
            *(
                a.engine.search(query, room_id=room_id, limit=limit, before=from_key.get(sid))
                for sid, a in targets
            ),
            return_exceptions=True,
        )
        hits: list[SearchHit] = []
        errors: list[tuple[str, str]] = []
        cut = False
        backlog = 0
        read_on: dict[str, int | None] = {}
        for (sid, _), page in zip(targets, pages, strict=True):
            if isinstance(page, BaseException):
                if isinstance(page, asyncio.CancelledError):
                    raise page
                log.warning("search in storage %s failed: %s", sid, page)
                errors.append((sid, f"{type(page).__name__}: {page}"))
                continue
            if page.error:
                errors.append((sid, page.error))
            cut = cut or page.query_cut
            backlog += page.backlog
            if page.more:
                read_on[sid] = page.next_before
            hits.extend(dataclasses.replace(h, storage_id=sid) for h in page.hits)
        # Keys sort like the messages' times in every index (``Index.search``): merged.
        hits.sort(key=lambda h: (h.key, h.storage_id, h.room_id), reverse=True)
        # A storage that stopped reading (its rounds went on hidden hits) may hold newer
        # matches than another's older hits, below where it stopped: those wait for the
        # next page, so the pages together stay newest first.
        stops = [(sid, key) for sid, key in read_on.items() if key is not None]
        shown = [h for h in hits if all(h.key >= key for sid, key in stops if sid != h.storage_id)][
            :limit
        ]
        last_key = {h.storage_id: h.key for h in shown}  # each storage's oldest returned
        returned = {id(h) for h in shown}
        for hit in hits:
            if id(hit) not in returned:
                # a storage with hits left out reads on after its last returned (from
                # where it started if none was)
                read_on[hit.storage_id] = last_key.get(hit.storage_id, from_key.get(hit.storage_id))
        return SearchResults(
            tuple(shown), bool(read_on), tuple(errors), cut, backlog, tuple(read_on.items())
        )

    async def search_read(
        self,
        storage_id: str,
        query: str,
        *,
        room_id: str | None = None,
        limit: int = SEARCH_LIMIT,
        before: int | None = None,
    ) -> SearchPage:
        """``search`` for a client that reads no rooms (the command line): what was read
        but is not searchable yet is indexed first, and the relations of each room with
        hits are rebuilt from the index (``SyncEngine.search_read_rooms``). ``before``:
        the ``next_before`` of the page before, for the older ones."""
        engine = self._engine(storage_id)
        await engine.catch_up_text()
        return await engine.search_read_rooms(query, room_id=room_id, limit=limit, before=before)

    async def locate(
        self, ref: RoomRef, result: AuditResult, event_id: str, at: tuple[str, int] | None = None
    ) -> int | None:
        """Where ``event_id`` is in the room's audit ``result`` (a search hit to show in
        context: the timeline then pages around it), or None. ``at``: the hit's (path,
        line), which tells the copies of an id signed by two devices apart."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.locate(ref.room_id, result, event_id, at)

    async def event_by_id(
        self, ref: RoomRef, result: AuditResult, event_id: str
    ) -> ShownEvent | None:
        """The row of ``event_id`` in the room's audit ``result`` (a ``room_view``'s or a
        ``cached_room``'s) with its body and verdict, or None when that audit does not
        show it: what a reaction, a reply, an edit or a deletion is decided on, in the
        app and the command line alike (``SyncEngine.event_by_id``; an id shown more than
        once is ``relation_drafts.Refused``)."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.event_by_id(ref.room_id, result, event_id)

    async def count_unread(
        self,
        ref: RoomRef,
        result: AuditResult,
        relations: Relations | None,
        marker: ReadMarker,
        own_key: str | None,
    ) -> UnreadCount | None:
        """The unread messages of the room's audit ``result`` (a ``RoomLoaded``'s, with its
        relations) after the person's read marker, counted on the engine's state thread
        (``protocol.unread.count_unread``); None when the storage is not attached."""
        attached = self._storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.count_unread(ref.room_id, result, relations, marker, own_key)

    async def confirmed_keys(self, storage_id: str) -> Confirmed:
        """The (sender id, key) pairs the person confirmed in one storage (its index's
        ``user`` pins)."""
        return await self._storage_pins(storage_id, "user")

    async def own_keys(self, storage_id: str) -> Confirmed:
        """The (user id, key) pairs this device writes as in one storage (its index's
        ``own`` pins: the app's identity, and the command line's once it signed)."""
        return await self._storage_pins(storage_id, "own")

    async def _storage_pins(self, storage_id: str, source: str) -> Confirmed:
        attached = self._storages.get(storage_id)
        if attached is None:
            return frozenset()
        return await attached.engine.storage_pins(source)

    async def pending(self, storage_id: str) -> tuple[PendingMessage, ...]:
        """What waits in the storage's outbox, with the last error of each."""
        attached = self._storages.get(storage_id)
        if attached is None:
            return ()
        return await attached.engine.pending()

    async def held(self, storage_id: str) -> tuple[HeldSend, ...]:
        """The sends kept unsigned in the storage's outbox (typed in the app before this
        device knew where its chain continues), oldest first: ``discard_kept`` lets one
        go."""
        attached = self._storages.get(storage_id)
        if attached is None:
            return ()
        return await attached.engine.held()

    def _blob_storage(self, storage_id: str) -> Storage:
        """Where blobs are written: the storage itself. An upload is one request whose
        progress the client libraries do not report; timed, a large file on a slow link
        would show the storage as not answering while it is being sent."""
        return self._attached(storage_id).storage

    def _blob_reads(self, storage_id: str) -> Storage:
        """Where blobs are read: through the engine's watch (``sync.watched``), so that
        a download that stops getting bytes shows its storage as not answering, as any
        read does, while one that keeps receiving counts as answered as it goes."""
        return self._attached(storage_id).engine.storage

    async def upload_blob(
        self,
        ref: RoomRef,
        path: str | os.PathLike[str],
        *,
        limit_bytes: int,
        progress: blobs.Progress | None = None,
        cancel: asyncio.Event | None = None,
        stage: blobs.Stage | None = None,
        name: str | None = None,
        cache: blobs.BlobCache | None = None,
    ) -> dict[str, Any]:
        """Store a local file as a blob of the room; the message content to send
        (``blobs.upload`` says what it raises; ``StorageError`` when not attached)."""
        return await blobs.upload(
            self._blob_storage(ref.storage_id),
            ref.room_id,
            path,
            limit_bytes=limit_bytes,
            progress=progress,
            cancel=cancel,
            stage=stage,
            name=name,
            cache=cache,
        )

    async def download_blob(
        self,
        ref: RoomRef,
        info: FileInfo,
        dest: str | os.PathLike[str] | None = None,
        *,
        cache: blobs.BlobCache | None = None,
        max_bytes: int | None = None,
        event_id: str | None = None,
    ) -> bytes:
        """The verified bytes of the blob ``info`` announces, also written to ``dest``
        (``blobs.download`` says what it raises; ``StorageError`` when not attached)."""
        return await blobs.download(
            self._blob_reads(ref.storage_id),
            ref.room_id,
            info,
            dest,
            cache=cache,
            max_bytes=max_bytes,
            event_id=event_id,
        )
