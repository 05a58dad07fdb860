"""Write directly into a room, without the outbox: a room's creation (its signed metadata
and the creator's join) and what tests and benchmarks set up.

Everything the app and the CLI *send* goes through the engine and the outbox
(``engine.send``); both continue the chain with the one ``protocol/chain.py``."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nacl.signing import SigningKey

from ..protocol.audit import DEVICE_ACCEPT_FIELD, DEVICE_ADD_FIELD, prepare_segment
from ..protocol.canonical import b64encode
from ..protocol.chain import OwnChain, continue_chain, own_chain
from ..protocol.event import MEMBER, MESSAGE, Event
from ..protocol.ids import (
    InvalidRoomIdError,
    check_new_room_id,
    check_room_id,
    client_id_for,
    logs_prefix,
    metadata_path,
    parse_segment_path,
)
from ..protocol.metadata import build_metadata
from ..protocol.segment import MAX_SEGMENT_BYTES, encode_segment, path_for
from ..protocol.signing import public_key_text
from ..storage.base import (
    AlreadyExistsError,
    ObjectInfo,
    Storage,
    StorageAuthError,
    StorageError,
    UnreadableObjectError,
)
from .room_objects import has_history, list_rooms, read_metadata

log = logging.getLogger("bucket_chat.sync")

MAX_NAME_ATTEMPTS = 20
MADE_HERE_WITHIN_MS = 15 * 60_000
"""How recent a room's metadata signed by this device must be to be its own earlier try
whose answer was lost (``RoomWriter._made_here``)."""
READ_CONCURRENCY = 8  # segments read at once while looking for this device's last event


class RoomError(Exception):
    """A room-level problem a user can act on (room missing, already exists, …)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Draft:
    """What the user wants to say: an event type and its content."""

    event_type: str
    content: Mapping[str, Any]
    parent: str | None = None  # the event it replies to (a thread's parent)

    @staticmethod
    def text(body: str, parent: str | None = None) -> Draft:
        return Draft(MESSAGE, {"body": body, "msgtype": "m.text"}, parent)


async def read_room_segments(
    storage: Storage, room_id: str, client_id: str
) -> list[tuple[str, bytes]]:
    """Every segment of the room, downloaded to find this device's chain (``client_id``)
    when nothing local knows it.

    Every segment is read, not only those named after this device: names are not
    signed, and a storage that moved this device's newest segment under another device's
    name would otherwise have the next event fork the chain (both of its events then
    unverified, a fork finding blaming this device). What cannot be read *now* (a
    passing failure) raises, and so do refused credentials: the head is asked for again
    later rather than guessed.

    An object that can never be read as it is (a FIFO, too large, one this device may
    not read) is skipped, under this device's name too, with a warning naming it; the
    room's read names it as unread as well. Red team rt57: raised for an object under
    this device's name (its client id is public: it names its segments in every room),
    one file of mode 000 planted there kept the device from ever joining the room or
    sending its first message. The risk taken: if that object really is this device's
    newest segment (made unreadable after it was written), the next event continues an
    older head and forks the chain, which every reader reports (a fork finding naming
    this device), where before nothing could be sent. Unless nothing at all could be
    read: then the refusal says nothing about one object (credentials that may list but
    not read, a folder nobody may read), and it raises."""

    def own(client: str) -> bool:
        return client == client_id or client.startswith(client_id + "-r")

    items = await storage.list_objects(logs_prefix(room_id))
    gate = asyncio.Semaphore(READ_CONCURRENCY)
    refused: list[StorageError] = []  # this device's name, refused for good

    async def fetch(item: ObjectInfo) -> tuple[str, bytes] | None:
        name = parse_segment_path(item.path)
        if name is None:
            return None
        mine = own(name.client_id)
        # Not something this device wrote (it writes plain objects under the limit):
        # someone squats on our name. Say so, and look for the chain elsewhere.
        if item.special is not None:
            if mine:
                log.warning(
                    "ignoring %s while looking for this device's last event: "
                    "not a regular file: %s",
                    item.path,
                    item.special,
                )
            return None
        try:
            async with gate:
                return item.path, await storage.get(item.path, max_bytes=MAX_SEGMENT_BYTES)
        except UnreadableObjectError as exc:
            if mine:
                log.warning(
                    "ignoring %s while looking for this device's last event: %s", item.path, exc
                )
            return None
        except StorageError as exc:
            if exc.transient or isinstance(exc, StorageAuthError):
                raise  # ask again later rather than guess the head
            if mine:
                refused.append(exc)  # said below, once it is known that others were read
                return None
            log.info("could not read %s while looking for this device's events: %s", item.path, exc)
            return None

    tasks = [asyncio.ensure_future(fetch(item)) for item in items]
    try:
        got = [got for got in await asyncio.gather(*tasks) if got is not None]
    except BaseException:
        for task in tasks:
            task.cancel()  # one failed (or the step was given up): stop the others
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if refused and not got:
        raise refused[0]
    for exc in refused:
        log.warning(
            "ignoring an object named like this device's segments while looking for its "
            "last event: %s. If it is one of this device's (made unreadable), its next "
            "event continues an older one and forks its chain, which readers report",
            exc,
        )
    return got


async def own_chain_off_loop(
    segments: Sequence[tuple[str, bytes]],
    *,
    room_id: str,
    user_id: str,
    key_text: str,
    confirmed: Collection[str] = (),
    now_ms: int | None,
    pool: Executor | None = None,
) -> OwnChain:
    """This device's chain in segments read from storage (``read_room_segments``): each
    decoded and its signatures checked once, on ``pool`` (the engine's verify pool; else
    the loop's default executor), never on the event loop, which may be the app's (Qt);
    then the head and introductions from the verifier's verdicts (``protocol/chain.py``),
    those dated more than ``HOLD_AHEAD_MS`` after ``now_ms`` held back as readers hold
    them (``own_chain``)."""
    loop = asyncio.get_running_loop()
    prepared = await asyncio.gather(
        *(
            loop.run_in_executor(pool, prepare_segment, path, data, room_id)
            for path, data in segments
        )
    )
    chain = await asyncio.to_thread(
        own_chain,
        prepared,
        room_id=room_id,
        user_id=user_id,
        key_text=key_text,
        confirmed=confirmed,
        now_ms=now_ms,
    )
    if chain.heads > 1:
        log.warning("device chain in %s has %d heads; continuing the newest", room_id, chain.heads)
    return chain


class RoomWriter:
    """Writes this device's events. One writer per device and room at a time.

    The chain head is recovered from every segment of the room (``read_room_segments``),
    so a restart or a second machine never forks the chain.
    """

    def __init__(
        self,
        storage: Storage,
        room_id: str,
        user_id: str,
        signing_key: SigningKey,
        *,
        displayname: str | None = None,
        clock: Callable[[], int] = now_ms,
        unique: Callable[[], str] = lambda: str(uuid.uuid4()),
        confirmed: Collection[str] = (),
    ) -> None:
        self.storage = storage
        self.room_id = room_id
        self.user_id = user_id
        self.key = signing_key
        self.key_text = b64encode(bytes(signing_key.verify_key))
        self.client_id = client_id_for(user_id, bytes(signing_key.verify_key))
        self.displayname = displayname
        self._clock = clock
        self._unique = unique
        self._head: Event | None = None
        self._loaded = False
        # The key whose statement introduced this device (PROTOCOL.md section 7): named in
        # this device's first join, which accepts the introduction.
        self.introduced_by: str | None = None
        # Keys the person confirmed as this user's (Index.confirmed_keys): only their
        # introductions of this device are accepted without asking.
        self.confirmed: frozenset[str] = frozenset(confirmed)
        self.offered: list[str] = []  # introductions seen, confirmed or not

    async def load_head(self) -> Event | None:
        """Find this device's newest event in the room (None if it never wrote here),
        from every segment of the room, each decoded and checked once."""
        segments = await read_room_segments(self.storage, self.room_id, self.client_id)
        chain = await own_chain_off_loop(
            segments,
            room_id=self.room_id,
            user_id=self.user_id,
            key_text=self.key_text,
            confirmed=self.confirmed,
            now_ms=now_ms(),  # this device's clock, whatever ``clock`` stamps with
        )
        self._head, self.introduced_by, self.offered = (
            chain.head,
            chain.introduced_by,
            list(chain.offered),
        )
        self._loaded = True
        return self._head

    @property
    def joined(self) -> bool:
        return self._head is not None

    def prepare(self, drafts: Sequence[Draft]) -> list[Event]:
        """Sign ``drafts`` as the next events of the chain (a join first if needed)."""
        if not self._loaded:
            raise RuntimeError("call load_head() first")
        join: dict[str, Any] = {"membership": "join"}
        if self.displayname:
            join["displayname"] = self.displayname
        if self.introduced_by:
            join[DEVICE_ACCEPT_FIELD] = self.introduced_by
        events = continue_chain(
            self._head,
            [(d.event_type, d.content, d.parent) for d in drafts],
            room_id=self.room_id,
            sender_id=self.user_id,
            signing_key=self.key,
            timestamp_ms=self._clock(),
            unique=self._unique,
            join=join,
        )
        if events:
            self._head = events[-1]
        return events

    async def publish(self, events: Sequence[Event]) -> str:
        """Write ``events`` as one create-only segment; returns its path."""
        data = encode_segment(events)
        for attempt in range(MAX_NAME_ATTEMPTS):
            path = path_for(events, self.client_id, attempt)
            try:
                await self.storage.put_if_absent(path, data)
                return path
            except AlreadyExistsError:
                continue  # a different segment holds that name: pick another
        raise StorageError(f"could not find a free segment name after {MAX_NAME_ATTEMPTS} tries")

    async def send(self, drafts: Sequence[Draft]) -> tuple[str, list[Event]]:
        if not self._loaded:
            await self.load_head()
        saved = self._head
        events = self.prepare(drafts)
        try:
            return await self.publish(events), events
        except BaseException:
            self._head = saved  # nothing was published: the chain continues from before
            raise

    async def write_metadata(self, name: str, created_at: str) -> str:
        """Create the room's signed metadata (create-only); RoomError if the room exists
        — its metadata, or only segments someone wrote under its id (``room_exists``'s
        rule, the one joining uses) — or its id would share a folder with another
        room's on Windows or macOS, or someone wrote in it while it was being made."""
        check_room_id(self.room_id)  # InvalidRoomIdError before any storage call
        try:
            check_new_room_id(self.room_id, await list_rooms(self.storage))
        except InvalidRoomIdError as exc:
            raise RoomError(str(exc)) from exc
        path = metadata_path(self.room_id)
        if await has_history(self.storage, self.room_id) and not await self.storage.exists(path):
            # Red team rt73: a member wrote a join and "Welcome! Send the files here"
            # under the id a moment before, no metadata; "Created room" made the user
            # the signed creator of a room someone else opened and spoke in first.
            # (Metadata there too: the create-only put below says so, or finds this
            # device's own earlier try.)
            raise RoomError(
                f"a room with the id {self.room_id!r} already exists in this storage (it "
                "has messages but no metadata): choose another id, or join it if you trust "
                "who wrote there"
            )
        data = build_metadata(
            room_id=self.room_id,
            name=name,
            created_at=created_at,
            creator_id=self.user_id,
            signing_key=self.key,
        )
        try:
            await self.storage.put_if_absent(path, data)
        except AlreadyExistsError as exc:
            if not await self._made_here(name):
                raise RoomError(f"room {self.room_id!r} already exists") from exc
            # This device made it, under this name: a first try the service stored and
            # whose answer was lost (red team rt52: the retry said only "already
            # exists", as if someone else had the room). Made, as asked.
            log.info("room %s: made by an earlier try of this device", self.room_id)
            return path
        if await has_history(self.storage, self.room_id):
            # Segments written between the look above and the metadata: this device's
            # own join is not written yet, so they are someone else's, there before the
            # room was made. The metadata stays (written once); the join is not sent.
            raise RoomError(
                f"room {self.room_id!r} was created (its metadata is signed by you), but "
                "someone else wrote messages in it at the same moment, before your join, "
                "which was not sent: read the room before you trust it, and join it only "
                "if you trust who wrote there"
            )
        return path

    async def _made_here(self, name: str) -> bool:
        """Whether the room's metadata (there already) is this device's first try:
        signed by its key for this user, under ``name``, dated within
        ``MADE_HERE_WITHIN_MS`` of now. The date too: the key is the same on every
        storage, and a copy of a room this device made elsewhere long ago, put here with
        someone's segments beside it, was taken for a room just made (red team rt53)."""
        try:
            meta, _ = await read_metadata(self.storage, self.room_id)
        except StorageError:
            return False
        if not (
            meta is not None
            and meta.signed
            and meta.creator_key == public_key_text(self.key)
            and meta.creator_id == self.user_id
            and meta.name == name
            and meta.created_at
        ):
            return False
        try:
            made = datetime.fromisoformat(meta.created_at).timestamp() * 1000
        except (TypeError, ValueError, OverflowError):
            return False
        return abs(now_ms() - made) <= MADE_HERE_WITHIN_MS

    async def create_room(self, name: str, created_at: str) -> str:
        """Signed metadata, then this device's join (published directly, no outbox)."""
        await self.write_metadata(name, created_at)
        await self.load_head()
        if self._head is None:
            path, _ = await self.send([])
            return path
        return metadata_path(self.room_id)

    async def add_device(self, new_key_text: str, device_name: str | None = None) -> str:
        await self.load_head()
        if self._head is None:
            raise RoomError(
                f"this device has not joined {self.room_id!r}: it cannot introduce another device"
            )
        content: dict[str, Any] = {"membership": "join", DEVICE_ADD_FIELD: new_key_text}
        if self.displayname:
            content["displayname"] = self.displayname
        if device_name:
            content["device_name"] = device_name
        path, _ = await self.send([Draft(MEMBER, content)])
        return path
