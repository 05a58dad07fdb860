"""The chat client: the one object the desktop app and the command line talk to.

One identity, one or several storages, many rooms. Qt-free: a front end drives it through
coroutines and receives ``(storage_id, event)`` pairs (the past-tense dataclasses of
``events.py``). Each storage gets its own ``SyncEngine`` with this device's index and
outbox for it; those stay in here. What a front end gets back is a frozen value (a
``RoomView``, a page of ``ShownEvent``, a tuple), read on the engine's threads, never a
live object (docs/design/front-end-seam.md).

The app builds one around its settings (``ChatClient(...)``, ``start``); the command line
and the first-run wizard open one around a single storage (``ChatClient.session``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from .. import keyring_policy, paths
from ..index import Index
from ..index.search import SearchHit, SearchPage, Snippet
from ..keyring_policy import in_daemon_thread
from ..protocol import relation_drafts as drafting
from ..protocol.audit import AuditResult
from ..protocol.canonical import b64encode
from ..protocol.chain import Draft
from ..protocol.event import MEMBER, MESSAGE, Event
from ..protocol.ids import check_room_id
from ..protocol.relations import EDIT, target_of
from ..settings import Settings, StorageSettings
from ..storage import open_location, open_storage
from ..storage.base import Storage, StorageError
from ..storage.open import names_profile, storage_keys
from ..storage.url import StorageLocation
from .client_storages import AttachedStorages, RoomRef, SearchResults, _Attached
from .device_files import index_file, open_device_outbox
from .engine import SyncConfig, SyncEngine
from .events import EngineEvent, OutboxSetAside, StorageStatus
from .outbox import HeldDiscard, Outbox
from .outbox import OutboxSetAside as SetAside
from .rooms import create_room, join_room
from .stopping import close_in_turn, stop_tasks

log = logging.getLogger("bucket_chat.sync")


async def _open_waiting_for_keyring(entry: StorageSettings) -> Storage:
    """``entry``'s storage. A named storage's keys come from the OS keyring, which may
    not answer (a stuck Secret Service, an unlock prompt nobody sees): they are read on
    a daemon thread of their own, never on the loop (the GUI thread) nor in the default
    executor (joined at exit), and past `KEYRING_DEADLINE` seconds a `StorageError` says
    so (the read goes on; nothing waits for it). A read still under way when the storage
    is opened again (``ChatClient``'s retries) is waited for again, never asked twice:
    a stuck keyring costs one thread per storage, not one per try."""
    spec = entry.spec
    if not names_profile(spec):
        return open_storage(spec)
    future = _KEYS_ASKED.get(spec)
    if future is None or future.done():  # an answer nobody took may be stale: ask anew
        future = in_daemon_thread(lambda: storage_keys(spec), name="bc-storage-keys")
        _KEYS_ASKED[spec] = future
    wrapped = asyncio.wrap_future(future)
    wrapped.add_done_callback(lambda f: None if f.cancelled() else f.exception())
    deadline = keyring_policy.KEYRING_DEADLINE
    await asyncio.wait({wrapped}, timeout=deadline)
    if not future.done():
        seconds = max(1, round(deadline))
        raise StorageError(
            f"the system keyring has not answered for {seconds} seconds when asked for the "
            f"keys of storage {entry.name!r}: it may be waiting for you to unlock it in a "
            "window hidden behind others, or its service may be stuck; unlock or restart "
            "it; Bucket Chat tries again by itself"
        )
    if _KEYS_ASKED.get(spec) is future:
        del _KEYS_ASKED[spec]  # answered: the next open asks anew
    location, secrets = future.result()
    return open_location(location, secrets)


# A named storage's keys asked of the keyring and not taken yet, by storage spec
# (``_open_waiting_for_keyring``).
_KEYS_ASKED: dict[
    str, concurrent.futures.Future[tuple[StorageLocation, dict[str, str] | None]]
] = {}

# Seconds between tries to open a storage that could not be opened at start (its keys
# not read, its index busy...): then at most every ``REOPEN_WAITS[-1]`` seconds.
REOPEN_WAITS = (30.0, 60.0, 120.0, 300.0, 600.0)


# Seconds ``attach`` waits for the engine of a storage detached under the same id to stop
# and close its index and outbox before it opens them all the same.
CLOSE_WAIT = 10.0

Listener = Callable[[str, EngineEvent], None]
# The values the client hands out, for front ends (which never import ``index``).
__all__ = [
    "NOT_OPENED",
    "ChatClient",
    "Listener",
    "OutboxDamagedError",
    "RoomRef",
    "SearchHit",
    "SearchPage",
    "SearchResults",
    "Snippet",
    "SyncConfig",
]


class OutboxDamagedError(StorageError):
    """``ChatClient.session``: this device's outbox for the storage was damaged and set
    aside (``open_outbox``); the message says where the copy is. Nothing was done."""


class ChatClient(AttachedStorages):
    """See the module's docstring. Every method that reads a storage's index or room state
    runs on that storage's engine threads and returns a frozen value; a storage that is
    not attached reads as empty (None, ``()``) unless the method says it raises."""

    def __init__(
        self,
        settings: Settings,
        user_id: str,
        signing_key: SigningKey | None,
        listener: Listener,
        *,
        data_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.user_id = user_id
        self.key = signing_key  # None: a reading session; ``sign_as`` before sending
        self._listener = listener
        self._data_dir = data_dir or paths.data_dir()
        self._storages: dict[str, _Attached] = {}
        # Per storage id: its outbox was damaged when attached, and set aside (said to
        # the listener too: ``OutboxSetAside``).
        self.outbox_set_aside: dict[str, SetAside] = {}
        self.window_focused = False  # see set_window_focused
        self._background: list[asyncio.Task[None]] = []
        # storage id -> the task trying again to open it (``_reopen_later``)
        self._reopening: dict[str, asyncio.Future[None]] = {}
        self._reopen_now: dict[str, asyncio.Event] = {}  # set: the next try is due now
        # Attaching a storage opens its files off the loop: meanwhile its id maps to that
        # attach's claim here. The last of ``attach`` and ``detach`` of an id wins: one that
        # no longer holds the claim when its files are open closes them and attaches nothing.
        self._claims: dict[str, object] = {}
        # A storage detached: set once its engine stopped and its files are closed, which
        # an attach of the same id waits for (at most ``close_wait`` seconds).
        self._released: dict[str, asyncio.Event] = {}
        # Per storage id: held by the attach opening its files, until they are open (and
        # attached) or closed again. Two attaches of one id opened one new index at once
        # (added, removed, added again): one took the other's half-made tables for a
        # broken index and moved it aside under the other's connection.
        self._opening: dict[str, asyncio.Lock] = {}
        self._closes: set[asyncio.Task[None]] = set()  # detached storages still closing
        self.close_wait = CLOSE_WAIT
        # Sends that wait to learn where this device's chain continues are kept in the
        # outbox meanwhile and sent by the next start (the app: what left the composer is
        # never lost to a quit). A command's send is awaited by its user (not kept).
        self.keep_unsent = True

    @classmethod
    @contextlib.asynccontextmanager
    async def session(
        cls,
        storage: Storage,
        *,
        identity: tuple[str, SigningKey] | None = None,
        displayname: str | None = None,
        index: bool = True,
        outbox: bool = True,
        start: bool = False,
        listener: Callable[[EngineEvent], None] | None = None,
        config: SyncConfig | None = None,
        data_dir: Path | None = None,
    ) -> AsyncIterator[ChatClient]:
        """A client of one storage, for the command line and the first-run wizard: no app
        settings, this device's index (unless not ``index``) and outbox (unless not
        ``outbox``) for that storage, an engine that polls only with ``start``. Rooms are
        read only when asked (``open_room``); ``room`` names them. ``identity`` (user id,
        key) signs what is sent (or ``sign_as`` later), with ``displayname``. The storage
        stays the caller's: it is not closed on exit; everything else is."""
        user_id, key = identity if identity is not None else ("", None)
        entry = StorageSettings(storage.url, "this storage")
        settings = Settings(user_id=user_id, displayname=displayname or "", storages=[entry])
        client = cls(
            settings,
            user_id,
            key,
            lambda _sid, event: listener(event) if listener is not None else None,
            data_dir=data_dir,
        )
        client.keep_unsent = False
        try:
            await client._add(
                entry,
                storage,
                index=index,
                outbox=outbox,
                config=config,
                owned=False,
                pin_own=identity is not None,  # as the app does (``attach``)
            )
            set_aside = client.outbox_set_aside.get(entry.id)
            if set_aside is not None:
                # A command ends there, with one line (exit 2): run again, it goes on with
                # the new outbox, whose head is read from the storage (no fork).
                raise OutboxDamagedError(
                    f"{set_aside}. Nothing was done: run the command again to go on with "
                    "the new outbox"
                )
            if start:
                await client._storages[entry.id].engine.start()
            yield client
        finally:
            await client.close()

    async def sign_as(self, user_id: str, signing_key: SigningKey) -> None:
        """Sign what this client sends from now on as ``user_id`` with ``signing_key`` (a
        session whose key is loaded once the room is known to exist); the key is pinned
        as this device's own in every attached storage's index (``SyncEngine.pin_own``)."""
        self.user_id, self.key = user_id, signing_key
        self.settings.user_id = user_id
        key_text = b64encode(bytes(signing_key.verify_key))
        for attached in list(self._storages.values()):
            await attached.engine.pin_own(user_id, key_text)

    def _signer(self) -> tuple[str, SigningKey]:
        if self.key is None:
            raise RuntimeError("this client has no signing key: nothing can be sent")
        return self.user_id, self.key

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

    async def _add(
        self,
        entry: StorageSettings,
        storage: Storage,
        *,
        index: bool = True,
        outbox: bool = True,
        config: SyncConfig | None = None,
        owned: bool = True,
        pin_own: bool = False,
    ) -> _Attached | None:
        """Attach ``storage`` as ``entry``: its index (``index``) and outbox (``outbox``)
        opened, its engine made (not started). ``pin_own``: this device's key is pinned as
        its user's. None when the storage was detached (or attached again) meanwhile:
        nothing of this call is left open then (an ``owned`` storage is closed too).

        The files are opened on a thread, never the loop (the GUI thread): SQLite waits
        there up to its busy timeout (30 s) for a write under way. They are opened once
        the engine of a storage detached under the same id released them (``_release``:
        at most ``close_wait`` seconds; then all the same, SQLite's locks keep them
        whole)."""
        sid = entry.id
        claim = self._claims[sid] = object()
        if sid in self._storages:  # attached again: the one attached until now goes
            self._close(self._storages.pop(sid))
        await self._release(sid)
        gate = self._opening.setdefault(sid, asyncio.Lock())
        await gate.acquire()
        gate_kept = False  # by the files opened for a caller that went away, until closed
        try:
            if self._claims.get(sid) is not claim:  # another attach or a detach meanwhile
                files = None
            else:
                own = None
                if pin_own and self.key is not None:
                    own = (self.user_id, b64encode(bytes(self.key.verify_key)))
                opening = asyncio.ensure_future(
                    asyncio.to_thread(_open_files, storage, self._data_dir, index, outbox, own)
                )
                try:
                    files = await asyncio.shield(opening)
                except asyncio.CancelledError:  # the files are closed once open, off the loop
                    gate_kept = True
                    closing = asyncio.ensure_future(_close_when_open(opening, gate))
                    self._closes.add(closing)  # ``close`` waits for it too
                    closing.add_done_callback(self._closes.discard)
                    raise
                if self._claims.get(sid) is not claim:
                    await asyncio.to_thread(files.close)
                    files = None
        finally:
            if not gate_kept:
                gate.release()
        if files is None:
            log.info("storage %s was detached while it was being attached", entry.name)
            if owned:
                await storage.close()
            return None
        del self._claims[sid]
        engine: SyncEngine | None = None

        def deliver(event: EngineEvent) -> None:
            # An engine detached still speaks while it stops (its last status, a room's
            # audit); the storage may be attached again under the same id meanwhile. Only
            # the engine attached now speaks for the storage.
            current = self._storages.get(sid)
            if current is not None and current.engine is engine:
                self._listener(sid, event)

        try:
            engine = SyncEngine(
                storage, index=files.index, outbox=files.outbox, listener=deliver, config=config
            )
        except BaseException:
            files.close()
            raise
        engine.set_window_focused(self.window_focused)
        attached = _Attached(entry, storage, engine, files.index, files.outbox, owned)
        self._storages[sid] = attached
        if files.set_aside is not None:
            # Said, never only logged: the storage is attached all the same (its index
            # and reading are whole), with a new outbox (red team rt71).
            self.outbox_set_aside[sid] = files.set_aside
            self._listener(sid, OutboxSetAside(str(files.set_aside)))
        return attached

    async def _release(self, storage_id: str) -> None:
        """Until the engine of ``storage_id`` detached before stopped and closed its files,
        at most ``close_wait`` seconds; the loop runs on meanwhile."""
        released = self._released.get(storage_id)
        if released is None or released.is_set():
            return
        try:
            await asyncio.wait_for(released.wait(), self.close_wait)
        except TimeoutError:
            log.warning(
                "storage %s: its engine of before is still closing after %g s; its index "
                "and outbox are opened all the same",
                storage_id,
                self.close_wait,
            )

    async def attach(self, entry: StorageSettings, *, start: bool = True) -> None:
        """Open a storage, start its engine, and start reading the rooms the user is in.
        Returns once they are started, not read: each room opens on its own (from this
        device's index, then from the storage), so a storage that does not answer for
        one room holds up neither the others nor the caller (docs/SCHEDULING.md).

        A storage attached under this id already is replaced; one detached before, whose
        engine still stops, is waited for (``_add``). The last of ``attach`` and
        ``detach`` of an id wins: detached before this returns, nothing is attached."""
        sid = entry.id
        claim = self._claims[sid] = object()  # a detach while the keyring is asked wins
        try:
            storage = await _open_waiting_for_keyring(entry)
        finally:
            if self._claims.get(sid) is claim:
                del self._claims[sid]
            else:
                claim = None
        if claim is None:
            log.info("storage %s was detached while its keys were being read", entry.name)
            return
        # This device knows its own key is its user's: pinned, so an impostor claiming our
        # id is "key changed" here, never a conflict that puts our own messages in doubt.
        attached = await self._add(entry, storage, config=self._config(), pin_own=True)
        if attached is None:
            return
        set_aside = self.outbox_set_aside.pop(sid, None)  # said once (``_add``), logged once
        if set_aside is not None:
            log.warning("storage %s: %s", entry.name, set_aside)
        engine = attached.engine
        if start:
            await engine.start()
            # The room the user was in is opened first and focused: its rebuild from the
            # index goes ahead of the others' (the state thread's interactive lane), and
            # the others' back-fills stand aside while it is shown (``interacted``).
            last = self.settings.last_room.split("/", 1)
            first = last[1] if len(last) == 2 and last[0] == entry.id else None
            order = sorted(entry.rooms, key=lambda r: r != first)  # stable: first, then the rest
            self._background = [t for t in self._background if not t.done()]
            for room_id in order:
                task = asyncio.create_task(
                    self._open_room(engine, room_id, focus=room_id == first),
                    name=f"bc-open-{entry.id}-{room_id}",
                )
                self._background.append(task)
                attached.opening.append(task)
            if self.keep_unsent and self.key is not None:
                # What an earlier run took from the user but could not sign before it
                # ended (``Outbox.hold``): sent now, once the rooms' reads are under way.
                engine.resume_held(self.user_id, self.key, entry.rooms)

    @staticmethod
    async def _open_room(engine: SyncEngine, room_id: str, *, focus: bool) -> None:
        """One room of ``attach``, as a task of its own: a failure is logged, never lost."""
        try:
            await engine.open_room(room_id, focus=focus)
        except StorageError as exc:
            log.warning("room %s is not available: %s", room_id, exc)
        except Exception:
            log.exception("opening room %s failed", room_id)

    async def start(self) -> None:
        """Attach every storage in the settings. One that fails, for whatever reason (a
        fault of the program too: a watch that raised RecursionError once ended the
        start with a traceback), is logged and the others are attached all the same."""
        for entry in self.settings.storages:
            try:
                await self.attach(entry)
            except StorageError as exc:
                log.warning("storage %s is not available: %s", entry.name, exc)
                # said where the storages' state is shown (the app's status line), not
                # only logged: its rooms would look merely quiet
                self._listener(entry.id, StorageStatus(False, f"{NOT_OPENED} {exc}"))
                self._reopen_later(entry)  # a keyring unlocked later, an index let go of
            except Exception:
                log.exception("opening storage %s failed", entry.name)
                said = f"{NOT_OPENED} a fault of this program (the log has the details)"
                self._listener(entry.id, StorageStatus(False, said))

    def _reopen_later(self, entry: StorageSettings) -> None:
        """Try again to open a storage ``start`` could not (``REOPEN_WAITS``), until it
        opens, is removed from the settings, is attached or detached otherwise, or the
        client closes. Each failure is said again (its reason may have changed)."""
        sid = entry.id
        old = self._reopening.pop(sid, None)
        if old is not None:
            old.cancel()

        now = self._reopen_now[sid] = asyncio.Event()

        async def run() -> None:
            for n in itertools.count():
                with contextlib.suppress(TimeoutError):  # the wait ends, or "Try now"
                    await asyncio.wait_for(now.wait(), REOPEN_WAITS[min(n, len(REOPEN_WAITS) - 1)])
                now.clear()
                if self.settings.storage(sid) is not entry or sid in self._storages:
                    return
                try:
                    await self.attach(entry)
                except StorageError as exc:
                    log.info("storage %s is still not available: %s", entry.name, exc)
                    self._listener(sid, StorageStatus(False, f"{NOT_OPENED} {exc}"))
                    continue
                except Exception:  # a fault of this program: said, and tried again
                    log.exception("opening storage %s failed", entry.name)
                    said = f"{NOT_OPENED} a fault of this program (the log has the details)"
                    self._listener(sid, StorageStatus(False, said))
                    continue
                log.info("storage %s opened on a later try", entry.name)
                self._listener(sid, StorageStatus(True, ""))
                return

        task = asyncio.ensure_future(run())
        self._reopening[sid] = task
        self._background.append(task)

        def done(t: asyncio.Future[None]) -> None:
            if self._reopening.get(sid) is t:
                self._reopening.pop(sid, None)
                self._reopen_now.pop(sid, None)

        task.add_done_callback(done)

    def reopening(self, storage_id: str) -> bool:
        """Whether a try to open ``storage_id`` waits (``reopen_now`` can hasten it)."""
        return storage_id in self._reopening

    def reopen_now(self, storage_id: str) -> bool:
        """Try now to open a storage that could not be opened (the user asked: "Try
        now"), rather than at the end of its wait; the waits go on from there. False when
        no try is waiting for it (it opened, or was never refused)."""
        now = self._reopen_now.get(storage_id)
        if now is None or storage_id not in self._reopening:
            return False
        now.set()  # a try already under way finishes first; the next follows at once
        return True

    async def close(self) -> None:
        """Stop every storage's opens and engines (those detached before and still
        stopping too); an attach under way attaches nothing. A cancellation of the caller
        is raised once they are stopped (never absorbed: it was before)."""
        background, self._background = self._background, []
        self._claims.clear()
        await close_in_turn(
            lambda: stop_tasks(background),
            *(lambda sid=sid: self.detach(sid) for sid in list(self._storages)),
            self._closed,
            what="the client",
        )

    async def _closed(self) -> None:
        """Until every storage detached has closed (its close is never cancelled)."""
        if self._closes:
            await asyncio.wait(list(self._closes))

    def detach(self, storage_id: str) -> Coroutine[Any, Any, None]:
        """Stop syncing one storage: it is not attached from this call on (nothing its
        engine says after reaches the listener, even when the storage is attached again
        under the same id before that engine stopped; an attach of it under way attaches
        nothing), and its engine, cache and outbox start closing (a task of the client:
        ``close`` waits for it too); the answer is awaited until they are closed. An
        awaiting caller cancelled stops waiting, not the closing."""
        self._claims.pop(storage_id, None)
        reopening = self._reopening.pop(storage_id, None)
        self._reopen_now.pop(storage_id, None)
        if reopening is not None:
            reopening.cancel()
        attached = self._storages.pop(storage_id, None)
        return _until(self._close(attached) if attached is not None else None)

    def _close(self, attached: _Attached) -> asyncio.Task[None]:
        """Start closing a storage no longer attached, as a task of the client."""
        sid = attached.settings.id
        released = self._released[sid] = asyncio.Event()
        task = asyncio.ensure_future(self._close_attached(attached, released))
        self._closes.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._closes.discard(task)
            if self._released.get(sid) is released:
                del self._released[sid]

        task.add_done_callback(done)
        return task

    @staticmethod
    async def _close_attached(attached: _Attached, released: asyncio.Event) -> None:
        """Close the opens, the engine, the files (on a thread: SQLite may wait there for
        a lock), then ``released`` is set (an attach of the same id waits for it), then
        the storage (a connection's close that hangs holds up nothing)."""
        index, outbox = attached.index, attached.outbox

        async def files() -> None:  # after the engine that writes them
            try:
                await asyncio.to_thread(_Files(index, outbox).close)
            finally:
                released.set()

        async def storage() -> None:
            if attached.owns_storage:
                await attached.storage.close()

        try:
            await close_in_turn(
                lambda: stop_tasks(attached.opening),  # the opens run on the engine: first
                attached.engine.close,
                files,
                storage,
                what=attached.settings.name,
            )
        finally:
            released.set()

    # -- rooms ----------------------------------------------------------------------------

    def rooms(self) -> list[RoomRef]:
        return [RoomRef(s.id, r) for s in self.settings.storages for r in s.rooms]

    async def mark_verified(self, storage_id: str, sender_id: str, sender_key: str) -> None:
        """Record the person's confirmation of a device key in that storage's index.
        Raises ``KeyError`` for a storage that is not attached, ``sqlite3.Error`` when the
        confirmation cannot be saved."""
        await self._storages[storage_id].engine.mark_verified(sender_id, sender_key)

    async def reaudit(self, ref: RoomRef) -> None:
        """Audit a room again with the current pins (after a confirmation): the engine
        emits ``RoomLoaded``. Nothing is downloaded."""
        attached = self._storages.get(ref.storage_id)
        if attached is not None:
            await attached.engine.reaudit(ref.room_id)

    async def open_room(self, ref: RoomRef, *, focus: bool = True, wait: bool = False) -> None:
        """Read the room: what the index has first, then what is new in the storage (the
        engine's events report it; ``room_view`` gives the result). ``focus``: it is the
        room on screen (polled first). ``wait``: return only once the whole history is
        read (the command line); else the older history is read in the background."""
        engine = self._engine(ref.storage_id)
        await engine.open_room(ref.room_id, background=not wait, focus=focus)

    def focus(self, ref: RoomRef | None) -> None:
        for sid, attached in self._storages.items():
            attached.engine.focus(ref.room_id if ref and ref.storage_id == sid else None)

    def set_window_focused(self, focused: bool) -> None:
        """Someone looks at the app (its window is focused) or not: every engine polls
        often, at once on focus, or sparingly."""
        self.window_focused = focused
        for attached in self._storages.values():
            attached.engine.set_window_focused(focused)

    def set_poll_intervals(self, active: float, focused: float, idle: float) -> None:
        """Running engines poll at these periods (seconds) from their next round."""
        for attached in self._storages.values():
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

    async def create_room(
        self, storage_id: str, room_id: str, name: str, *, show: bool = True
    ) -> RoomRef:
        """Create the room (``rooms.create_room``: metadata, then this device's join
        through the outbox) and follow it; ``show``: read it and make it the room on
        screen first (the app; the command line and the wizard only create it). The one
        way every room is made: the app, ``create-room``, ``chat`` and the wizard."""
        check_room_id(room_id)
        engine = self._engine(storage_id)
        user_id, key = self._signer()
        displayname = self.settings.displayname or None
        await create_room(engine, room_id, name, user_id, key, displayname=displayname, show=show)
        ref = RoomRef(storage_id, room_id)
        self._follow(ref)
        return ref

    async def join_room(self, storage_id: str, room_id: str, *, show: bool = True) -> RoomRef:
        """Join the room (``rooms.join_room``) and follow it; ``show`` as for
        ``create_room``."""
        check_room_id(room_id)
        engine = self._engine(storage_id)
        user_id, key = self._signer()
        await join_room(
            engine,
            room_id,
            user_id,
            key,
            displayname=self.settings.displayname or None,
            show=show,
            where=self._storages[storage_id].settings.name,
        )
        ref = RoomRef(storage_id, room_id)
        self._follow(ref)
        if self.keep_unsent:
            # What was kept for this room and not sent when its storage was removed (or
            # the room left): sent now that the room is joined again (``Outbox.hold``).
            engine.resume_held(user_id, key, [room_id])
        return ref

    async def leave_room(self, ref: RoomRef) -> None:
        """Queue this device's leave (delivered like any send) and stop reading the room:
        it is polled no more, nothing of it is read or reported from then on
        (``SyncEngine.drop_room``), and it is no longer followed. ``join_room`` reads it
        again from the start."""
        user_id, key = self._signer()
        engine = self._engine(ref.storage_id)
        await engine.send(ref.room_id, user_id, key, [(MEMBER, {"membership": "leave"})])
        await engine.drop_room(ref.room_id)
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
        is the parent's); ``mentions``: the user ids the text mentions (PROTOCOL.md 19).
        A refusal (``relation_drafts.Refused``, a ValueError) says why nothing was sent."""
        if reply_to is not None:
            target = await self._relation_target(ref, reply_to)
            return await self._carry_out(ref, drafting.reply(target, [text], mentions))
        return await self.send(ref, [(MESSAGE, drafting.text_content(text, mentions))])

    # Reactions, edits and deletions follow ``protocol.relation_drafts`` (the rules the
    # command line follows too): a refusal raises ``Refused`` (a ValueError, its text
    # says why); when the room says so already nothing is sent and the list is empty.

    async def react(self, ref: RoomRef, target_id: str, reaction: str) -> list[Event]:
        """React to a message (PROTOCOL.md 18.3)."""
        drafting.reaction_text(reaction)  # refused before anything is read
        target = await self._relation_target(ref, target_id)
        return await self._carry_out(ref, drafting.react(target, self._signer()[0], reaction))

    async def unreact(self, ref: RoomRef, target_id: str, reaction: str) -> list[Event]:
        """Take back this user's reactions with this text: a redaction of each of them
        that is verified (never one per reaction a forger planted under this id)."""
        drafting.reaction_text(reaction)
        target = await self._relation_target(ref, target_id)
        user_id = self._signer()[0]
        return await self._carry_out(ref, drafting.react(target, user_id, reaction, remove=True))

    async def edit_message(self, ref: RoomRef, target_id: str, text: str) -> list[Event]:
        """Replace the text of one's own message (PROTOCOL.md 18.4): the whole new text."""
        user_id, key = self._signer()
        if not text.strip():
            raise drafting.Refused("an edit needs text (to take a message back, delete it)")
        own = b64encode(bytes(key.verify_key))

        def decide(target: drafting.Target) -> drafting.Plan:
            return drafting.edit(target, user_id, own, text)

        target = await self._relation_target(ref, target_id, edit=decide)
        return await self._carry_out(ref, decide(target))

    async def delete_event(
        self, ref: RoomRef, target_id: str, reason: str | None = None
    ) -> list[Event]:
        """Redact one's own message or reaction (PROTOCOL.md 18.4). Clients that follow
        the protocol hide it; the original stays in storage (write-once)."""
        user_id, key = self._signer()
        target = await self._relation_target(ref, target_id)
        own = b64encode(bytes(key.verify_key))
        return await self._carry_out(ref, drafting.delete(target, user_id, own, reason))

    async def _relation_target(
        self,
        ref: RoomRef,
        event_id: str,
        *,
        edit: Callable[[drafting.Target], drafting.Plan] | None = None,
    ) -> drafting.Target:
        """The event ``event_id`` as the room's latest audit shows it, with its content
        (``event_by_id``: the app's audit keeps no bodies, they come from this device's
        index); else one of this device's own on its way to the storage (the outbox);
        else not read here. For a new edit (``edit``: its rules) of an edit, the message
        that edit edits too, read the same way (``Target.edited``: its msgtype and text
        decide the new edit's) — only once ``edit`` refused nothing the audit's verdict
        decides without it (whose the edit and its message are, whether readers apply
        it, whether the message is deleted): a message whose cached line is damaged
        would hide that refusal behind "cannot read"."""
        _check_target(ref, event_id)
        view = await self.room_view(ref)
        if view is None or view.result is None:
            raise drafting.Refused("this room is not read yet; nothing sent")
        result, rel = view.result, view.relations
        assert rel is not None  # made with every result (``RoomView``)
        event = await self._read_event(ref, result, event_id)
        target = drafting.Target.of(event_id, event, rel, result)
        if edit is None or event is None or event.type != EDIT:
            return target
        edit(target)  # what the audit refuses, refused before anything more is read
        named = rel.edit_of.get(event_id) or target_of(event)
        if named is None or not named.startswith(ref.room_id + "::"):
            return target
        edited = await self._read_event(ref, result, named)
        return dataclasses.replace(target, edited=edited)

    async def _read_event(self, ref: RoomRef, result: AuditResult, event_id: str) -> Event | None:
        """``event_id`` with its content: its row in ``result``, else this device's own
        event of that id in the outbox, else None (not read here). A row this device
        cannot read (its cached line damaged) is refused: nothing is sent."""
        shown = await self.event_by_id(ref, result, event_id)
        if shown is not None:
            if not isinstance(shown.event, Event):
                raise drafting.Refused(f"this device cannot read {event_id!r} now; nothing sent")
            return shown.event
        for waiting in await self.pending(ref.storage_id):
            if waiting.event_id == event_id and waiting.room_id == ref.room_id:
                return waiting.event()
        return None

    async def _carry_out(self, ref: RoomRef, plan: drafting.Plan) -> list[Event]:
        if plan.unchanged is not None:
            return []
        return await self.send(ref, list(plan.drafts))

    async def send(
        self, ref: RoomRef, drafts: Sequence[Draft], *, require_joined: bool = False
    ) -> list[Event]:
        """Sign ``drafts`` and commit them to the outbox (durable on return; the engine
        publishes them). ``SyncEngine.send`` says what it raises; ``require_joined``:
        only from a device that joined the room already (an introduction)."""
        user_id, key = self._signer()
        engine = self._engine(ref.storage_id)
        return await engine.send(
            ref.room_id,
            user_id,
            key,
            drafts,
            displayname=self.settings.displayname or None,
            require_joined=require_joined,
            keep=self.keep_unsent,
        )

    async def discard_kept(
        self, storage_id: str, seq: int, room_id: str | None = None
    ) -> HeldDiscard:
        """Let the send kept unsigned as ``seq`` in the storage's outbox (only one of
        ``room_id``, when given) go for good, only while it is still kept
        (``SyncEngine.discard_held``): the answer says whether it was discarded, or
        signed meanwhile by another send (then it is queued, and shown so), or no longer
        kept. ``StorageError`` when the storage is not attached."""
        return await self._engine(storage_id).discard_held(room_id, seq)

    def held_signed(self, storage_id: str) -> list[Event]:
        """What this client's sends on the storage signed first for the app
        (``SyncEngine.held_signed``): messages it kept, sent along."""
        return self._engine(storage_id).held_signed

    async def send_content(self, ref: RoomRef, content: dict[str, Any]) -> list[Event]:
        return await self.send(ref, [(MESSAGE, content)])

    async def flush(
        self, storage_id: str, timeout: float | None = None, *, give_up_offline: bool = False
    ) -> bool:
        """Publish what the storage's outbox holds now; True when it is empty
        (``SyncEngine.flush`` says when it gives up early)."""
        engine = self._engine(storage_id)
        return await engine.flush(timeout, give_up_offline=give_up_offline)

    def retry_failed(self) -> None:
        for attached in self._storages.values():
            if attached.outbox is not None:
                attached.outbox.retry_now()
            attached.engine.wake()


@dataclasses.dataclass(frozen=True, slots=True)
class _Files:
    """A storage's index and outbox on this device, as ``_open_files`` opened them;
    ``set_aside``: the outbox was damaged, and a new one is used (``open_outbox``)."""

    index: Index | None
    outbox: Outbox | None
    set_aside: SetAside | None = None

    def close(self) -> None:
        """Close both (blocking: on a thread, never the loop)."""
        try:
            if self.index is not None:
                self.index.close()
        finally:
            if self.outbox is not None:
                self.outbox.close()


def _open_files(
    storage: Storage,
    data_dir: Path,
    index: bool,
    outbox: bool,
    own: tuple[str, str] | None,
) -> _Files:
    """Open (creating) this device's index (with ``index``) and outbox (with ``outbox``)
    of ``storage`` in ``data_dir``, named after the storage's identity
    (``device_files``), ``own`` (user id, key) pinned in the index. A damaged outbox is
    set aside and a new one opened (``open_outbox``). Blocking: SQLite may wait up to its
    busy timeout for another connection's write, so it runs on a thread. Nothing is left
    open when one of them cannot be opened."""
    try:
        idx = Index.open(index_file(data_dir, storage), storage.url) if index else None
    except sqlite3.OperationalError as exc:  # busy (``IndexBusy``), unreadable, no room
        raise DeviceFilesError(f"this device's index of {storage.describe()}", exc) from exc
    try:
        if idx is not None and own is not None:
            idx.add_pins([own], source="own")
        box, set_aside = open_device_outbox(data_dir, storage) if outbox else (None, None)
    except BaseException as exc:
        if idx is not None:
            idx.close()
        if isinstance(exc, sqlite3.OperationalError):
            raise DeviceFilesError(f"this device's files of {storage.describe()}", exc) from exc
        raise
    return _Files(idx, box, set_aside)


# How a ``StorageStatus`` of a storage ``start`` could not open begins (the app says so).
NOT_OPENED = "not opened:"


class DeviceFilesError(StorageError):
    """This device's index or outbox of a storage could not be opened: busy past the
    bounded wait (another Bucket Chat program creating or upgrading it), or not readable
    or writable here. Nothing was changed or moved; the message says which and why (the
    command line's exit status 2 and one line, never a traceback; the app's log)."""

    def __init__(self, what: str, exc: sqlite3.OperationalError) -> None:
        super().__init__(f"{what} could not be opened: {exc}")


async def _close_when_open(opening: asyncio.Future[_Files], gate: asyncio.Lock) -> None:
    """Files opened for a caller that went away: closed once open (off the loop), then
    ``gate`` released (the next attach of the id opens them). An open that failed left
    nothing open."""
    try:
        with contextlib.suppress(Exception):
            files = await asyncio.shield(opening)
            await asyncio.to_thread(files.close)
    finally:
        gate.release()


async def _until(closing: asyncio.Task[None] | None) -> None:
    """``detach``'s answer: until ``closing`` ends; a caller cancelled stops waiting."""
    if closing is not None:
        await asyncio.shield(closing)


def _check_target(ref: RoomRef, event_id: str) -> None:
    """A relation only ever points into its own room (PROTOCOL.md 18.1)."""
    if not event_id.startswith(ref.room_id + "::"):
        raise ValueError(f"{event_id!r} is not an event of room {ref.room_id!r}")
