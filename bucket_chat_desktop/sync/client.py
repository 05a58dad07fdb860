"""The chat client behind the desktop app: one identity, several storages, many rooms.

Qt-free: the GUI drives it through coroutines and receives ``(storage_id, event)`` pairs.
Each storage gets its own ``SyncEngine`` with this device's index and outbox for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from .. import paths
from ..index import Index, SearchHit, index_path_for
from ..protocol.audit import AuditResult
from ..protocol.canonical import b64encode
from ..protocol.chain import Draft
from ..protocol.event import MEMBER, MESSAGE, Event
from ..protocol.ids import check_room_id
from ..protocol.mentions import MAX_MENTIONS, MENTIONS_FIELD
from ..protocol.relations import (
    EDIT,
    REACTION,
    REDACTION,
    own_reaction,
    reaction_key,
    verified_reactions,
)
from ..settings import Settings, StorageSettings
from ..storage import open_storage
from ..storage.base import Storage, StorageError
from .engine import SEARCH_LIMIT, CachedRoom, RoomView, SyncConfig, SyncEngine
from .events import EngineEvent, ShownEvent
from .outbox import Outbox
from .room_objects import RoomSummary, StorageRooms, storage_rooms
from .rooms import create_room, join_room
from .session import outbox_path_for
from .watched import answer_within

log = logging.getLogger("bucket_chat.sync")

Listener = Callable[[str, EngineEvent], None]


@dataclass(frozen=True, slots=True)
class RoomRef:
    storage_id: str
    room_id: str

    @property
    def key(self) -> str:
        return f"{self.storage_id}/{self.room_id}"


@dataclass(frozen=True, slots=True)
class SearchResults:
    """What ``ChatClient.search`` found: ``hits`` newest first, each naming its storage;
    ``more``: older hits may exist; ``errors``: (storage id, why) for each storage whose
    index could not be searched; ``query_cut``: the query was too long and shortened;
    ``backlog``: segments read but not searchable yet (their text is being indexed)."""

    hits: tuple[SearchHit, ...]
    more: bool = False
    errors: tuple[tuple[str, str], ...] = ()
    query_cut: bool = False
    backlog: int = 0


@dataclass(slots=True)
class _Attached:
    settings: StorageSettings
    storage: Storage
    engine: SyncEngine
    index: Index
    outbox: Outbox


class ChatClient:
    def __init__(
        self,
        settings: Settings,
        user_id: str,
        signing_key: SigningKey,
        listener: Listener,
        *,
        data_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.user_id = user_id
        self.key = signing_key
        self._listener = listener
        self._data_dir = data_dir or paths.data_dir()
        self.storages: dict[str, _Attached] = {}
        self.window_focused = False  # see set_window_focused
        self._background: list[asyncio.Task[None]] = []

    # -- storages -----------------------------------------------------------------------

    def _config(self) -> SyncConfig:
        active, focused, idle = self.settings.poll_intervals()
        # The app reads bodies page by page (timeline_page): its rooms keep none in memory.
        return SyncConfig(
            active_interval=active,
            focused_interval=focused,
            idle_interval=idle,
            keep_bodies=False,
        )

    async def attach(self, entry: StorageSettings, *, start: bool = True) -> _Attached:
        """Open a storage, start its engine, and start reading the rooms the user is in."""
        storage = open_storage(entry.spec)
        idx = Index.open(index_path_for(self._data_dir, storage.url), storage.url)
        # This device knows its own key is its user's: pinned, so an impostor claiming our
        # id is "key changed" here, never a conflict that puts our own messages in doubt.
        idx.add_pins([(self.user_id, b64encode(bytes(self.key.verify_key)))], source="own")
        box = Outbox(outbox_path_for(self._data_dir, storage.url))
        sid = entry.id
        engine = SyncEngine(
            storage,
            index=idx,
            outbox=box,
            listener=lambda event: self._listener(sid, event),
            config=self._config(),
        )
        engine.set_window_focused(self.window_focused)
        attached = _Attached(entry, storage, engine, idx, box)
        self.storages[sid] = attached
        if start:
            await engine.start()
            # The room the user was in is read first; the others are read in the
            # background, so a huge room elsewhere never delays the first screen.
            last = self.settings.last_room.split("/", 1)
            first = last[1] if len(last) == 2 and last[0] == entry.id else None
            if first in entry.rooms:
                await engine.open_room(first, focus=True)
            rest = [r for r in entry.rooms if r != first]
            if rest:
                self._background.append(asyncio.create_task(self._open_rooms(engine, rest)))
        return attached

    @staticmethod
    async def _open_rooms(engine: SyncEngine, rooms: list[str]) -> None:
        for room_id in rooms:
            try:
                await engine.open_room(room_id, focus=False)
            except StorageError as exc:
                log.warning("room %s is not available: %s", room_id, exc)

    async def start(self) -> None:
        for entry in self.settings.storages:
            try:
                await self.attach(entry)
            except StorageError as exc:
                log.warning("storage %s is not available: %s", entry.name, exc)

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        for storage_id in list(self.storages):
            await self.detach(storage_id)

    async def detach(self, storage_id: str) -> None:
        """Stop syncing one storage and close its engine, cache and outbox."""
        attached = self.storages.pop(storage_id, None)
        if attached is None:
            return
        with contextlib.suppress(Exception):
            await attached.engine.close()
        with contextlib.suppress(Exception):
            await attached.storage.close()
        attached.index.close()
        attached.outbox.close()

    def engine(self, storage_id: str) -> SyncEngine:
        return self.storages[storage_id].engine

    # -- rooms ----------------------------------------------------------------------------

    def rooms(self) -> list[RoomRef]:
        return [RoomRef(s.id, r) for s in self.settings.storages for r in s.rooms]

    def room_info(self, ref: RoomRef) -> dict[str, Any]:
        attached = self.storages.get(ref.storage_id)
        if attached is None:
            return {}
        return attached.index.room(ref.room_id) or {}

    async def cached_rooms(self, storage_id: str) -> tuple[CachedRoom, ...]:
        """The rooms of one storage this device's index knows (no network access)."""
        attached = self.storages.get(storage_id)
        if attached is None:
            return ()
        return await attached.engine.cached_rooms()

    async def storage_rooms(self, storage_id: str) -> StorageRooms:
        """The rooms a storage holds, with their names and last activity, for a person
        choosing one to join. Never raises for the storage: when it does not answer
        within the interactive deadline (``watched.py``) or fails, the rooms this
        device's index knows come back instead, with a note saying why."""
        attached = self.storages.get(storage_id)
        if attached is None:
            return StorageRooms((), note="This storage is not connected; it could not be read.")
        storage = attached.engine.storage
        now_ms = int(time.time() * 1000)
        try:
            return await answer_within(
                storage, storage_rooms(storage, now_ms), what=attached.settings.name
            )
        except StorageError as exc:
            log.warning("could not list the rooms of %s: %s", attached.settings.name, exc)
            known = await attached.engine.cached_rooms()
            rooms = tuple(RoomSummary(r.room_id, r.name, None) for r in known)
            note = f"Could not list the storage: {exc}."
            if rooms:
                note += " Shown: the rooms this device knows from earlier reads."
            return StorageRooms(rooms, from_cache=True, note=note)

    async def room_view(self, ref: RoomRef) -> RoomView | None:
        """A frozen snapshot of a room's state (latest audit, metadata and its findings,
        complete and partial flags), or None when its storage or room is not read."""
        attached = self.storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.room_view(ref.room_id)

    async def timeline_page(
        self, ref: RoomRef, result: AuditResult, start: int, stop: int
    ) -> tuple[ShownEvent, ...] | None:
        """Rows ``start:stop`` of a room's audit ``result`` (the one a ``RoomLoaded``
        handed over) with their bodies: what the timeline shows as it is scrolled. Read on
        the engine's serial worker; None when that audit was replaced (a ``RoomLoaded``
        with the new one follows) or the storage is not attached."""
        attached = self.storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.timeline_page(ref.room_id, result, start, stop)

    async def search(
        self,
        query: str,
        *,
        storage_id: str | None = None,
        room_id: str | None = None,
        limit: int = SEARCH_LIMIT,
    ) -> SearchResults:
        """Messages holding every term of ``query``, newest first, across every attached
        storage (or ``storage_id``'s) and room (or ``room_id``: with a storage, that
        room; without, that room id wherever it is). Each storage's index is searched on
        its reader thread, all at once; results are frozen. Never raises for what the
        query holds: a storage whose index cannot be searched says why in ``errors``."""
        targets = [
            (sid, attached)
            for sid, attached in self.storages.items()
            if storage_id is None or sid == storage_id
        ]
        pages = await asyncio.gather(
            *(a.engine.search(query, room_id=room_id, limit=limit) for _, a in targets),
            return_exceptions=True,
        )
        hits: list[SearchHit] = []
        errors: list[tuple[str, str]] = []
        more = cut = False
        backlog = 0
        for (sid, _), page in zip(targets, pages, strict=True):
            if isinstance(page, BaseException):
                if isinstance(page, asyncio.CancelledError):
                    raise page
                log.warning("search in storage %s failed: %s", sid, page)
                errors.append((sid, f"{type(page).__name__}: {page}"))
                continue
            if page.error:
                errors.append((sid, page.error))
            more, cut = more or page.more, cut or page.query_cut
            backlog += page.backlog
            hits.extend(dataclasses.replace(h, storage_id=sid) for h in page.hits)
        hits.sort(key=lambda h: (h.key, h.storage_id, h.room_id), reverse=True)
        more = more or len(hits) > limit
        return SearchResults(tuple(hits[:limit]), more, tuple(errors), cut, backlog)

    async def locate(self, ref: RoomRef, result: AuditResult, event_id: str) -> int | None:
        """Where ``event_id`` is in the room's audit ``result`` (a search hit to show in
        context: the timeline then pages around it), or None."""
        attached = self.storages.get(ref.storage_id)
        if attached is None:
            return None
        return await attached.engine.locate(ref.room_id, result, event_id)

    async def confirmed_keys(self, storage_id: str) -> frozenset[str]:
        """The keys the person confirmed in one storage (its index's ``user`` pins)."""
        attached = self.storages.get(storage_id)
        if attached is None:
            return frozenset()
        return await attached.engine.user_confirmed_keys()

    async def mark_verified(self, storage_id: str, sender_id: str, sender_key: str) -> None:
        """Record the person's confirmation of a device key in that storage's index.
        Raises ``KeyError`` for a storage that is not attached, ``sqlite3.Error`` when the
        confirmation cannot be saved."""
        await self.storages[storage_id].engine.mark_verified(sender_id, sender_key)

    async def reaudit(self, ref: RoomRef) -> None:
        """Audit a room again with the current pins (after a confirmation): the engine
        emits ``RoomLoaded``. Nothing is downloaded."""
        attached = self.storages.get(ref.storage_id)
        if attached is not None:
            await attached.engine.reaudit(ref.room_id)

    async def open_room(self, ref: RoomRef) -> None:
        engine = self.engine(ref.storage_id)
        await engine.open_room(ref.room_id, focus=True)

    def focus(self, ref: RoomRef | None) -> None:
        for sid, attached in self.storages.items():
            attached.engine.focus(ref.room_id if ref and ref.storage_id == sid else None)

    def set_window_focused(self, focused: bool) -> None:
        """Someone looks at the app (its window is focused) or not: every engine polls
        often, at once on focus, or sparingly."""
        self.window_focused = focused
        for attached in self.storages.values():
            attached.engine.set_window_focused(focused)

    def set_poll_intervals(self, active: float, focused: float, idle: float) -> None:
        """Running engines poll at these periods (seconds) from their next round."""
        for attached in self.storages.values():
            engine = attached.engine
            engine.config = dataclasses.replace(
                engine.config,
                active_interval=active,
                focused_interval=focused,
                idle_interval=idle,
            )

    def _follow(self, ref: RoomRef) -> None:
        entry = self.settings.storage(ref.storage_id)
        if entry is not None and ref.room_id not in entry.rooms:
            entry.rooms.append(ref.room_id)

    async def create_room(self, storage_id: str, room_id: str, name: str) -> RoomRef:
        """Create the room (`rooms.create_room`: metadata, then this device's join through
        the outbox), follow it and show it."""
        check_room_id(room_id)
        attached = self.storages[storage_id]
        displayname = self.settings.displayname or None
        await create_room(
            attached.engine,
            room_id,
            name,
            self.user_id,
            self.key,
            displayname=displayname,
            show=True,
        )
        ref = RoomRef(storage_id, room_id)
        self._follow(ref)
        return ref

    async def join_room(self, storage_id: str, room_id: str) -> RoomRef:
        check_room_id(room_id)
        attached = self.storages[storage_id]
        await join_room(
            self.engine(storage_id),
            room_id,
            self.user_id,
            self.key,
            displayname=self.settings.displayname or None,
            show=True,
            where=attached.settings.name,
        )
        ref = RoomRef(storage_id, room_id)
        self._follow(ref)
        return ref

    async def leave_room(self, ref: RoomRef) -> None:
        engine = self.engine(ref.storage_id)
        await engine.send(ref.room_id, self.user_id, self.key, [(MEMBER, {"membership": "leave"})])
        entry = self.settings.storage(ref.storage_id)
        if entry is not None and ref.room_id in entry.rooms:
            entry.rooms.remove(ref.room_id)

    async def send_text(
        self,
        ref: RoomRef,
        text: str,
        *,
        reply_to: str | None = None,
        mentions: Sequence[str] = (),
    ) -> list[Event]:
        """Send a text message; ``reply_to``: the event id it answers (a reply, its thread
        is the parent's); ``mentions``: the user ids the text mentions (PROTOCOL.md 19)."""
        if reply_to is not None:
            _check_target(ref, reply_to)
        content: dict[str, Any] = {"body": text, "msgtype": "m.text"}
        if mentions:
            content[MENTIONS_FIELD] = list(mentions)[:MAX_MENTIONS]
        return await self._send(ref, [(MESSAGE, content, reply_to)])

    async def react(self, ref: RoomRef, target_id: str, reaction: str) -> list[Event]:
        """React to a message (PROTOCOL.md 18.3). Raises ValueError for an unusable text."""
        _check_target(ref, target_id)
        key = reaction_key(reaction)
        if key is None:
            raise ValueError(
                "a reaction is 1 to 64 characters (an emoji or a short word), without "
                "line breaks or control characters"
            )
        return await self._send(ref, [(REACTION, {"relates_to": target_id, "reaction": key})])

    async def unreact(self, ref: RoomRef, target_id: str, reaction: str) -> list[Event]:
        """Take back this user's reactions with this text: a redaction of each of them
        that is verified (``relations.verified_reactions``: never one per reaction a
        forger planted under this id); nothing is sent when there is none."""
        _check_target(ref, target_id)
        view = await self.room_view(ref)
        rel = view.relations if view is not None else None
        agg = rel.of(target_id) if rel is not None else None
        key = reaction_key(reaction)
        mine: list[str] = []
        for chip in agg.reactions if agg is not None else ():
            if chip.key == key and rel is not None and view is not None and view.result:
                reactor = own_reaction(chip, self.user_id)
                if reactor is not None:
                    mine = verified_reactions(reactor, rel, view.result.timeline)
        if not mine:
            return []
        return await self._send(ref, [(REDACTION, {"redacts": event_id}) for event_id in mine])

    async def edit_message(self, ref: RoomRef, target_id: str, text: str) -> list[Event]:
        """Replace the text of one's own message (PROTOCOL.md 18.4): the whole new text."""
        _check_target(ref, target_id)
        if not text.strip():
            raise ValueError("an edit needs text (to take a message back, delete it)")
        content = {"replaces": target_id, "new_content": {"body": text, "msgtype": "m.text"}}
        return await self._send(ref, [(EDIT, content)])

    async def delete_event(
        self, ref: RoomRef, target_id: str, reason: str | None = None
    ) -> list[Event]:
        """Redact one's own message or reaction (PROTOCOL.md 18.4). Clients that follow
        the protocol hide it; the original stays in storage (write-once)."""
        _check_target(ref, target_id)
        content: dict[str, Any] = {"redacts": target_id}
        if reason and reason.strip():
            content["reason"] = reason.strip()
        return await self._send(ref, [(REDACTION, content)])

    async def _send(self, ref: RoomRef, drafts: list[Draft]) -> list[Event]:
        engine = self.engine(ref.storage_id)
        return await engine.send(
            ref.room_id,
            self.user_id,
            self.key,
            drafts,
            displayname=self.settings.displayname or None,
        )

    async def send_content(self, ref: RoomRef, content: dict[str, Any]) -> list[Event]:
        engine = self.engine(ref.storage_id)
        return await engine.send(
            ref.room_id,
            self.user_id,
            self.key,
            [(MESSAGE, content)],
            displayname=self.settings.displayname or None,
        )

    def retry_failed(self) -> None:
        for attached in self.storages.values():
            attached.outbox.retry_now()
            attached.engine.wake()


def _check_target(ref: RoomRef, event_id: str) -> None:
    """A relation only ever points into its own room (PROTOCOL.md 18.1)."""
    if not event_id.startswith(ref.room_id + "::"):
        raise ValueError(f"{event_id!r} is not an event of room {ref.room_id!r}")
