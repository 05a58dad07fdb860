"""Writing: signing and queueing this device's messages, and publishing the outbox.

``send`` signs drafts and commits them to the outbox (``outbox.py``, on the engine's
outbox thread) before any network access whenever this device knows where its own chain
continues: from its outbox, which keeps the head once a send seeded it. A first send
in a room (or one after the outbox was lost) takes it from the room as this engine read
it completely from storage (``_local_head``: the audit's verdicts, never a second
download), else asks the storage, and gives up in seconds if it does not answer (a
guessed head forks the chain; so does the index's, which may predate this device's own
last sends). Such a send of the app (``keep``) is kept in the outbox first, unsigned
(``Outbox.hold``, shown "sending" at once: ``SendKept``), so a quit while it waits for
the room's read loses nothing: ``resume_held`` sends it at the next start (or when its
room is joined again, or, when that failed, once the room's read completes:
``retry_held``), through this same ``send``; and any send signs the older holds of its
room and key first (``Outbox.enqueue``), so the order typed is the order signed. What
a send needs from the timeline (``send_context``: the verdict, the introductions of this
device on offer, each device's newest event for the witness) is read on the state
thread in the room's order. The
publisher's task batches what was composed within ``batch_window`` into one segment,
writes it create-only, hands it to the ``RoomKeeper`` as this device's own news, and
leaves an activity marker.

Each room's segments are written by a task of the room's own (``_lane``), one after the
other in the outbox's order (one write in flight per room: its chain stays in order), at
most ``SEND_AT_ONCE`` rooms at once. A write that gets no answer (a dead connection, until
the storage's own timeout) holds up that room's sends only: a round that finds a room's
lane still writing leaves the room to it, and the lane wakes the publisher for what came
due meanwhile once it ends. A segment that could not be stored stops its lane, and its
chain's later segments wait for it (``Outbox.due``): no reader sees a chain with a hole
while the older one backs off (docs/SCHEDULING.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
import uuid
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from nacl.signing import SigningKey

from ..index import Index
from ..protocol.activity import marker_path
from ..protocol.audit import (
    DEVICE_ACCEPT_FIELD,
    HOLD_AHEAD_MS,
    first_confirmed,
    offered_introductions,
    prepare_segment,
)
from ..protocol.canonical import b64encode
from ..protocol.chain import Draft, chain_head, continue_chain
from ..protocol.event import MAX_WITNESS_ENTRIES, MEMBER, Event
from ..protocol.ids import client_id_for, room_option
from ..protocol.untrusted_text import terminal_safe
from ..storage.base import (
    AlreadyExistsError,
    ObjectInfo,
    StorageError,
)
from . import keeper as room_keeper
from .events import IntroductionOffered, OutboxChanged, SendKept, SharedKeyQueued
from .outbox import Discard, HeldDiscard, OutSegment
from .room_state import RoomState, SendScan, witness_order_of
from .stopping import stop_tasks
from .watched import NoAnswerError, answer_within
from .writer import RoomError, own_chain_off_loop, read_room_segments

if TYPE_CHECKING:
    from .engine import SyncEngine
    from .keeper import RoomKeeper

log = logging.getLogger("bucket_chat.sync")

MAX_WITNESS = MAX_WITNESS_ENTRIES  # other devices' chains named in one event's witness
WITNESS_ROWS = 500  # newest cached rows a send that did not open the room witnesses from
WITNESS_QUEUE_KEPT = 1024  # chains left out of a witness kept in the queue (the first)
MAX_OFFERS_TOLD = 3  # keys one warning names when several offer to introduce this device
# Rooms whose segments are written at once: one that hangs holds one place only.
SEND_AT_ONCE = 8
MARKER_RETRIES = (5.0, 20.0, 60.0)
"""Seconds after which an activity marker whose write failed for a reason that may pass
(no answer, a server error) is written again, each time under a name of that moment:
at most this many more times, then it is let go (readers' next listing of the room
finds the message). Let go at once, a message whose marker met a passing failure
reached readers who poll the markers only with their safety listing: 15 minutes later
with the window in front, 4 hours behind other windows."""

NAMES_PER_TRY = 50
"""Names a delivery try may take past the segment's stored one (``-r<n>``, n counted from
there; ``_deliver``). Beyond them the try ends in ``NamesTakenError``, a passing failure:
the outbox tries again with its back-off (up to a minute), with 50 more. Red team rt57:
one budget of 50 for the segment's whole life, with the 50th name stored, failed the
message for good, and every later message of the device in the room behind it."""

Drafts = Sequence[Draft]  # (event type, content[, parent event id]) of each event to send


class _Delivery(enum.Enum):
    """How one try at a segment ended (``Publisher._deliver``)."""

    DONE = "done"  # stored, its activity marker written: off the outbox
    STORED = "stored"  # stored, the marker failed: the chain may go on after it
    NOT_STORED = "not stored"  # the chain's later segments wait for it


class NamesTakenError(AlreadyExistsError):
    """A delivery try found ``NAMES_PER_TRY`` + 1 names in a row taken (someone guesses
    this device's segment names and takes them, or many writers share its client id).
    Passing: the next try takes the names after them. Said as "sending", with this
    reason, never as the storage being offline (it answered every write)."""

    transient = True


class NotQueuedError(StorageError):
    """A send could not even be queued (nothing local knows the chain's head and the
    storage did not tell): nothing was signed, nothing is lost but the attempt."""


def signable(
    room_id: str,
    user_id: str,
    signing_key: SigningKey,
    drafts: Sequence[Draft],
    displayname: str | None,
) -> None:
    """Raise what signing ``drafts`` would (``ValueError``: too large, too dense, not
    text): they are built once against no head and thrown away, so a send that could
    never be signed is refused before it is kept (``Outbox.hold``)."""
    join: dict[str, Any] = {"membership": "join"}
    if displayname:
        join["displayname"] = displayname
    continue_chain(
        None,
        drafts,
        room_id=room_id,
        sender_id=user_id,
        signing_key=signing_key,
        timestamp_ms=time.time_ns() // 1_000_000,
        unique=lambda: str(uuid.uuid4()),
        join=join,
    )


class SendStoppedError(StorageError):
    """The engine closed under a send that was not queued yet (its storage was removed,
    or attached again): its message says whether the text is kept (``Outbox.hold``)."""


def _merged(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """Both lists of keys in order, each key once."""
    return list(dict.fromkeys([*first, *second]))


def send_context(
    room: RoomState, user_id: str, key_text: str
) -> tuple[bool, list[str], list[Event], set[str]] | None:
    """State thread: what a send needs from the room's timeline — whether its verdict
    is final, the introductions of ``key_text`` on offer, each device's newest event
    not named yet, in the order its witness names them (``SendScan.witness_order``), and
    the keys whose newest event its witnesses named (``SendScan.named_tips``). Kept in
    ``room.scan`` and brought up to date from what was appended since the last send:
    O(new events), not O(history); rows placed before shown ones (behind a row dated a little ahead)
    were carried over at the end of their job (``RoomState.carry_scan``). None when the
    room has no audit yet."""
    result = room.result
    if result is None:
        return None
    scan = room.scan
    if (
        scan is None
        or scan.result.audit_number != result.audit_number
        or scan.seen > len(result.timeline)
    ):
        scan = room.scan = SendScan(result)  # a full audit, or a placement not carried
    scan.result = result  # appends make a new result of the same audit: the rest of it
    scan.catch_up()
    settled = room.complete and not room.partial
    offers = scan.introductions(user_id, key_text).offers() if settled else []
    return settled, offers, scan.witness_order(key_text), scan.named_tips(key_text)


UNSENT_HINT = "right-click to copy its text or discard it"
"""The end of the row of a kept send that is not sent and will not be by itself (it can
never be signed, or waits for a key this device no longer has): what the person can do
(``Publisher.discard_held``)."""


def _stranded(kept_as: str, user_id: str) -> str:
    """Why a send kept for another key or user id is not sent (``resume_held``): short
    enough for its row, the end saying how to get the text back."""
    if kept_as != user_id:
        return (
            f"not sent: it was typed as {terminal_safe(kept_as)}, and this device now sends "
            f"as {terminal_safe(user_id)}; {UNSENT_HINT}"
        )
    return (
        "not sent: the key that was to sign it was replaced on this device (restoring "
        f"that key sends it); {UNSENT_HINT}"
    )


class Publisher:
    """This device's sends and the outbox's publishing (see the module's docstring). It
    keeps what the engine has said or accepted already (introductions, witnesses) and
    when it last published; the outbox, its thread and the rooms are the engine's."""

    def __init__(self, engine: SyncEngine, keeper: RoomKeeper) -> None:
        self._engine = engine
        self._keeper = keeper  # this device's own segments go there once written
        self._wake = asyncio.Event()
        self._last_publish = -1e9
        self._accepted: set[tuple[str, str, str]] = set()
        self._told: set[tuple[str, str, str]] = set()  # offers this engine has reported
        self._witnessed: dict[tuple[str, str], dict[str, str]] = {}
        # Per room: its lane writing the segments of a round (``_lane``), and the rooms a
        # round left to a lane still writing (the lane wakes the publisher when it ends).
        self._lanes: dict[str, asyncio.Task[int]] = {}
        self._left: set[str] = set()
        self._markers: set[asyncio.Task[None]] = set()  # markers written again later
        self._send_slots = asyncio.Semaphore(SEND_AT_ONCE)
        # Per room: the user and key of a resume that could not send what was kept there
        # (``resume_held``), tried again when the room's read completes (``retry_held``).
        self._unsent: dict[str, tuple[str, SigningKey]] = {}
        self._shown_unsent: dict[int, str] = {}  # holds said "not sent yet": their rooms
        self._discarded: set[int] = set()  # holds the person let go here (``discard_held``)
        # Holds this engine's own sends signed (``Outbox.enqueue``: the one sent and the
        # older ones signed first), so a discard that came too late says who sent them.
        self._signed_here: set[int] = set()
        # Events of holds (kept by the app) that this engine's sends signed first
        # (``Outbox.enqueue``): not in those sends' answers, told apart (the command line).
        self.held_signed: list[Event] = []

    async def send(
        self,
        room_id: str,
        user_id: str,
        signing_key: SigningKey,
        drafts: Drafts,
        displayname: str | None,
        *,
        require_joined: bool = False,
        keep: bool = False,
        held: int | None = None,
    ) -> list[Event]:
        """``SyncEngine.send``: where this device's chain continues (see the module's
        docstring), what the timeline offers and asks (introductions, the witness), then
        one commit on the outbox thread and a publish at the leading edge of the window.

        With ``keep``, a send that must first learn where the chain continues (no head in
        the outbox: it may wait for the room's whole read) is kept in the outbox first,
        unsigned (``Outbox.hold``): a quit or a crash meanwhile loses nothing, the next
        start sends it (``resume_held``). ``held``: such a hold, sent now. An engine
        closed under the send (its storage removed) ends it with ``SendStoppedError``,
        which says whether the text is kept."""
        outbox = self._engine.outbox
        if outbox is None:
            raise RuntimeError("this engine has no outbox")
        key_text = b64encode(bytes(signing_key.verify_key))
        hold = held
        try:
            if (
                hold is None
                and keep
                and not require_joined
                and not await self._engine._outboxed(outbox.has_head, room_id, key_text)
            ):
                # What can never be signed (too large, too dense, not text) is refused
                # here, before it is kept: a hold that cannot be signed would stand
                # before every later send of the room (review a, A1).
                await self._engine._outboxed(
                    signable, room_id, user_id, signing_key, drafts, displayname
                )
                hold = await self._engine._outboxed(
                    outbox.hold, room_id, key_text, user_id, displayname, list(drafts)
                )
                self._engine._emit(SendKept(room_id, hold, user_id, key_text, tuple(drafts), True))
            try:
                return await self._send(
                    room_id, user_id, signing_key, drafts, displayname, require_joined, hold
                )
            except Exception as exc:
                if hold is not None and not self._engine._closed:
                    # Refused, and said so: not kept. ``hold`` tells the wording below
                    # whether it still is. An engine closed under the send (its storage
                    # removed) keeps it: it goes out once the room is opened there again.
                    # A hold gone meanwhile was signed by another send (the command
                    # line's, in another process: ``Outbox.enqueue``): it is queued, and
                    # saying "nothing was queued" would have it typed and sent twice.
                    made = hold
                    if held is None:
                        gone = not await self._engine._outboxed(outbox.drop_held, made)
                        hold = None
                    else:
                        gone = not await self._engine._outboxed(outbox.is_held, made)
                    if gone and made in self._discarded:
                        log.info(  # the person let it go (``discard_held``): nothing to say
                            "a message kept for room %r was discarded while its try failed",
                            terminal_safe(room_id),
                        )
                    elif gone:
                        log.info(
                            "a message kept for room %r was signed by another send of this "
                            "device while its own try failed (%s): it is queued",
                            terminal_safe(room_id),
                            exc,
                        )
                    if gone:
                        await self._signed_elsewhere(room_id, made, user_id, key_text)
                        return []
                    if held is None:
                        self._engine._emit(
                            SendKept(room_id, made, user_id, key_text, tuple(drafts), False)
                        )
                raise
        except asyncio.CancelledError:
            # A job the closing engine's pools cancelled, not this send (a quit): said.
            task = asyncio.current_task()
            if not self._engine._closed or (task is not None and task.cancelling()):
                raise
            raise SendStoppedError(self._stopped(room_id, hold is not None)) from None
        except Exception as exc:
            if not self._engine._closed or isinstance(exc, SendStoppedError):
                raise
            raise SendStoppedError(self._stopped(room_id, hold is not None)) from exc

    def _stopped(self, room_id: str, kept: bool) -> str:
        """What a send cut off by the engine's close says (``SendStoppedError``)."""
        said = (
            f"not sent: {self._engine.storage.describe()} was closed (removed in Settings, "
            "or opened again) before this message could be signed"
        )
        if kept:
            return said + (
                "; it is kept on this device and goes out once the app opens room "
                f"{terminal_safe(room_id)!r} on that storage again"
            )
        return said + "; nothing of it was kept"

    async def resume_held(self, user_id: str, signing_key: SigningKey, rooms: set[str]) -> None:
        """Send what ``send`` kept (``Outbox.hold``) in ``rooms`` by this key and user,
        oldest first in each room, the rooms at once. One that cannot be sent now stays
        kept, its rows say why ("not sent yet": ``SendKept.error``), and it is tried
        again when the room's read completes (``retry_held``); any send in the room
        meanwhile signs it first (``Outbox.enqueue``), so nothing overtakes it; the rows
        of holds said "not sent yet" and signed since by another process of this device
        (the command line) go."""
        outbox = self._engine.outbox
        if outbox is None:
            return
        key_text = b64encode(bytes(signing_key.verify_key))
        waiting: dict[str, list[Any]] = {}
        kept = await self._engine._outboxed(outbox.held)
        gone = set(self._shown_unsent) - {h.seq for h in kept}
        for h in kept:
            if h.room_id not in rooms:
                continue
            if h.sender_key == key_text and h.user_id == user_id:
                waiting.setdefault(h.room_id, []).append(h)
                self._engine._emit(SendKept(h.room_id, h.seq, user_id, key_text, h.drafts, True))
            else:
                # Kept for a key (or a user id) this device no longer signs with: never
                # signed here unless it comes back (its key restored), yet never hidden
                # (red team rt92: after the key was replaced, the typed text stayed in
                # the outbox unseen for good). Its row shows the text and says why.
                self._engine._emit(
                    SendKept(
                        h.room_id,
                        h.seq,
                        h.user_id,
                        h.sender_key,
                        h.drafts,
                        True,
                        _stranded(h.user_id, user_id),
                    )
                )
        for seq, room_id in sorted(self._shown_unsent.items()):
            if seq in gone and room_id in rooms:
                del self._shown_unsent[seq]
                await self._signed_elsewhere(room_id, seq, user_id, key_text)

        async def room(holds: list[Any]) -> None:
            for n, h in enumerate(holds):
                if h.seq not in {x.seq for x in await self._engine._outboxed(outbox.held)}:
                    # Signed already, by a send that came first (here or in another
                    # process of this device): its rows give way to its events' own.
                    await self._signed_elsewhere(h.room_id, h.seq, user_id, key_text)
                    continue
                try:
                    await self.send(
                        h.room_id, user_id, signing_key, h.drafts, h.displayname, held=h.seq
                    )
                except SendStoppedError:
                    return  # the engine closed: kept for when the room is opened again
                except ValueError as exc:  # can never be signed: said, the rest go on
                    self._tell_refused(h.room_id, h.seq, user_id, key_text, h.drafts, str(exc))
                    continue
                except (StorageError, RoomError) as exc:
                    why = str(exc.__cause__ or exc)  # the storage's answer, not the advice
                    self._unsent[h.room_id] = (user_id, signing_key)
                    for later in holds[n:]:  # all of the room's stay behind it, in order
                        self._shown_unsent[later.seq] = later.room_id
                        self._engine._emit(
                            SendKept(
                                later.room_id,
                                later.seq,
                                user_id,
                                key_text,
                                later.drafts,
                                True,
                                f"not sent yet: {why}; it will be tried again",
                            )
                        )
                    log.warning(
                        "a message kept for room %r is not sent yet (tried again when the "
                        "room is read): %s",
                        terminal_safe(h.room_id),
                        exc,
                    )
                    return
                except Exception:
                    log.exception(
                        "sending a message kept for room %r failed", terminal_safe(h.room_id)
                    )
                    return

        await asyncio.gather(*(room(holds) for holds in waiting.values()))

    async def discard_held(self, room_id: str | None, seq: int) -> HeldDiscard:
        """The person lets kept send ``seq`` of ``room_id`` go (its row's "Discard…", or
        ``bucket-chat outbox discard``): taken off the outbox only while it is still a
        hold (``Outbox.discard_held``, one transaction), and its rows go. One that another
        send signed meanwhile (this engine's own, once the room's read completed, or the
        command line's, in its own process) is not discarded: its rows give way to the
        events it was signed as, "sending" (``_signed_elsewhere``), and the answer says
        SIGNED, with ``signed_here`` when this engine's send signed it (GONE too, for the
        hold a send of this engine was sending). One no longer kept at all (discarded, or
        sent long ago, by another process of this device) has its rows go too: nothing is left to
        send or to discard. A send of this engine that was waiting to sign it finds it
        gone, and queues nothing (``Outbox.enqueue``). ``room_id`` None: whichever room
        it is kept for (the command line names it by its number alone)."""
        outbox = self._engine.outbox
        if outbox is None:
            raise RuntimeError("this engine has no outbox")
        answer = await self._engine._outboxed(outbox.discard_held, seq, room_id)
        if answer.outcome is not Discard.DISCARDED and seq in self._signed_here:
            answer = dataclasses.replace(answer, signed_here=True)  # sent by this engine
        self._shown_unsent.pop(seq, None)
        hold = answer.hold
        first = answer.signed[0] if answer.signed else None
        if room_id is None:
            room_id = hold.room_id if hold is not None else first.room_id if first else None
        if room_id is None:
            return answer  # kept nowhere: no row to take away
        if answer.outcome is Discard.SIGNED:
            await self._signed_elsewhere(
                room_id,
                seq,
                first.sender_id if first is not None else "",
                (first.sender_key or "") if first is not None else "",
            )
            return answer
        if hold is not None:
            self._discarded.add(seq)
            log.info("a message kept for room %r was discarded", terminal_safe(room_id))
        self._engine._emit(
            SendKept(
                room_id,
                seq,
                hold.user_id if hold is not None else "",
                hold.sender_key if hold is not None else "",
                (),
                False,
            )
        )
        return answer

    def retry_held(self, room_id: str) -> None:
        """The room's read completed (``Backfill``): resume again what a resume could not
        send in it (``resume_held``), now that this engine knows where the chain goes on."""
        unsent = self._unsent.pop(room_id, None)
        if unsent is not None:
            self._engine.resume_held(unsent[0], unsent[1], [room_id])

    async def _send(
        self,
        room_id: str,
        user_id: str,
        signing_key: SigningKey,
        drafts: Drafts,
        displayname: str | None,
        require_joined: bool,
        held: int | None,
    ) -> list[Event]:
        """``send``, its drafts kept under ``held`` (None: not kept)."""
        outbox = self._engine.outbox
        assert outbox is not None
        self._engine.interacted()
        key_text = b64encode(bytes(signing_key.verify_key))
        introducer: str | None = None
        offered: list[str] = []
        confirmed: set[str] = set()
        if self._engine.index is not None:
            confirmed = await self._engine._read(Index.confirmed_keys, user_id)
        if not await self._engine._outboxed(outbox.has_head, room_id, key_text):
            # No head in the outbox (a first send in the room, or the outbox was lost):
            # where the chain continues comes from this engine's complete read of the
            # room, else from the storage, which is given up in seconds when it does not
            # answer (a guessed head forks the chain; so does the index's, which may
            # predate this device's own last sends: ``_local_head``).
            known, head = await self._local_head(room_id, signing_key)
            reading = (
                self._engine.rooms[room_id].backfill if room_id in self._engine.rooms else None
            )
            if not known and reading is not None and not reading.done():
                # This engine is reading the room right now: wait for that read (given up
                # like any interactive step when the storage stops answering; the read
                # goes on) rather than download and verify every segment a second time.
                async def read_through(task: asyncio.Task[None]) -> None:
                    try:
                        await asyncio.shield(task)
                    except asyncio.CancelledError:
                        if not task.cancelled():  # this send was cancelled, not the read
                            raise

                with contextlib.suppress(NoAnswerError):
                    await answer_within(
                        self._engine.storage,
                        read_through(reading),
                        what=self._engine.storage.describe(),
                    )
                known, head = await self._local_head(room_id, signing_key)
            # Another process of this device (a command's send) may have learnt the head
            # meanwhile, and recorded it: the chain continues from there, with no read
            # of the storage (which may not answer this engine: red team rt92).
            seeded = not known and await self._engine._outboxed(outbox.has_head, room_id, key_text)
            if not known and not seeded:
                client_id = client_id_for(user_id, bytes(signing_key.verify_key))
                try:
                    segments = await answer_within(
                        self._engine.storage,
                        read_room_segments(self._engine.storage, room_id, client_id),
                        what=self._engine.storage.describe(),
                    )
                except StorageError as exc:
                    raise NotQueuedError(
                        f"nothing was queued: {exc}. This device's outbox does not know "
                        f"where its own chain continues in room {room_id!r} (its first "
                        "message here, or the outbox was lost), and only the storage can "
                        "tell (guessing would fork it); try again when the storage answers"
                    ) from exc
                # Decoded and checked once, on the pool (never on the loop); what every
                # reader holds back as dated ahead is not offered (nor accepted) before
                # its time, by the clock the engine's audits read (a room's horizon
                # never moves back: ``SyncEngine._horizon``).
                clock = room_keeper.now_ms() + HOLD_AHEAD_MS
                chain = await own_chain_off_loop(
                    segments,
                    room_id=room_id,
                    user_id=user_id,
                    key_text=key_text,
                    confirmed=confirmed,
                    now_ms=self._engine._horizon(room_id, clock) - HOLD_AHEAD_MS,
                    pool=self._engine._pool,
                )
                head, introducer, offered = chain.head, chain.introduced_by, list(chain.offered)
            if not seeded:
                await self._engine._outboxed(outbox.seed_head, room_id, key_text, head)
        else:
            # The outbox's head is this device's own last event; another device holding
            # this key (a restored key backup) may have written after it since, and this
            # engine may have read that (red team rt72): continue from there.
            await self.follow_read(room_id, key_text, interactive=True)
        if require_joined and not await self._engine._outboxed(outbox.has_chain, room_id, key_text):
            raise RoomError(
                f"this device has not joined {room_id!r} yet: it cannot introduce another device"
            )
        room = self._engine.rooms.get(room_id)
        context = None
        if room is not None:
            # On the state thread, in this room's order: the timeline as its last job
            # left it, never one an append is changing meanwhile.
            context = await self._engine._serially(
                send_context, room, user_id, key_text, room=room_id, interactive=True
            )
        seen: Iterable[Event]
        named: set[str] = set()  # keys whose newest event this key's witnesses named
        if context is not None:
            settled, offers, seen, named = context
            # Asked even when this device's own view trusts this key (its own pin): the
            # acceptance is for every other reader.
            if introducer is None and settled:  # a provisional view may lack statements
                offered = _merged(offered, offers)
                introducer = first_confirmed(offered, confirmed)
        elif self._engine.index is not None:  # not open here (the CLI): what this device cached
            rows = await self._engine._read(Index.newest, room_id, WITNESS_ROWS)
            cached = [(row.event, row.state) for row in rows if isinstance(row.event, Event)]
            seen, named = witness_order_of(cached, key_text)
            if introducer is None:
                offered = _merged(offered, offered_introductions(cached, user_id, key_text))
                introducer = first_confirmed(offered, confirmed)
        else:
            seen = ()
        if introducer is None:
            self._tell_unconfirmed(room_id, user_id, key_text, offered)
        acceptance: tuple[str, str, str] | None = None
        if introducer is not None and (room_id, key_text, introducer) not in self._accepted:
            acceptance = (room_id, key_text, introducer)
            # Accept the introduction by another device of ours (PROTOCOL.md section 7):
            # until this join is stored, that device's statement counts for nothing.
            join: dict[str, Any] = {"membership": "join", DEVICE_ACCEPT_FIELD: introducer}
            if displayname:
                join["displayname"] = displayname
            drafts = [(MEMBER, join), *drafts]
        queue = await self._engine._outboxed(outbox.witness_queue, room_id, key_text)
        witness, queue = self._witness(room_id, key_text, seen, queue, named)
        drained: list[int] = []  # older holds of the room and key, signed first
        older: list[Event] = []  # their events, first in the answer
        refused: list[tuple[int, str, Drafts]] = []  # older holds that can never be signed
        events = await self._engine._outboxed(
            lambda: outbox.enqueue(
                room_id=room_id,
                user_id=user_id,
                signing_key=signing_key,
                drafts=drafts,
                clock=lambda: time.time_ns() // 1_000_000,
                unique=lambda: str(uuid.uuid4()),
                displayname=displayname,
                witness=witness,
                held=held,
                drained=drained,
                refused=refused,
                older=older,
                witness_queue=queue,
            )
        )
        for seq, why, kept in refused:  # set aside: kept, shown, and no longer in the way
            self._tell_refused(room_id, seq, user_id, key_text, kept, why)
        if not events:  # its hold was queued already (another process of this device)
            assert held is not None
            await self._signed_elsewhere(room_id, held, user_id, key_text)
            return events
        # Told only now (the outbox kept the queue with the events): a send refused (or
        # signed by another process) named nobody, and a chain marked told before waited
        # until it moved again.
        self._witnessed.setdefault((room_id, key_text), {}).update(witness)
        self._signed_here.update(drained)
        if held is not None:
            self._signed_here.add(held)
        if acceptance is not None:  # queued: not again (a refused send left it to the next)
            self._accepted.add(acceptance)
        self._engine._emit(OutboxChanged(room_id, events, "sending"))
        for seq in drained:  # their rows give way to their events' own, shown just above
            self._engine._emit(SendKept(room_id, seq, user_id, key_text, (), False))
        if held is not None:  # its row gives way to the events' own
            self._engine._emit(SendKept(room_id, held, user_id, key_text, tuple(drafts), False))
        self.held_signed.extend(older)
        events = events[len(older) :]  # this send's own: the caller's answer
        self._engine._note_activity()
        # Leading edge: a message after a quiet spell goes out at once; during a burst,
        # what arrives within the window after the last publish shares one segment.
        delay = max(0.0, self._last_publish + self._engine.config.batch_window - time.monotonic())
        if delay:
            asyncio.get_running_loop().call_later(delay, self._wake.set)
        else:
            self._wake.set()
        return events

    async def _signed_elsewhere(self, room_id: str, seq: int, user_id: str, key_text: str) -> None:
        """Hold ``seq`` was signed by another send first (``Outbox.enqueue`` signs the
        older holds of its room and key), maybe in another process of this device (the
        command line): its rows give way to the events it was signed as
        (``Outbox.replaced``), shown as they stand in the outbox ("sending", or "failed"
        with the reason; one already stored stays "sending" until the room reads it, as
        this engine's own do), never as not sent (red team rt92: the app said "nothing
        was queued" of a message the command had queued, and it was typed again)."""
        outbox = self._engine.outbox
        assert outbox is not None
        events = await self._engine._outboxed(outbox.replaced, seq)
        if events:
            waiting = {p.event_id: p for p in await self._engine._outboxed(outbox.pending, room_id)}
            shown: list[tuple[str, str, list[Event]]] = []
            for ev in events:
                p = waiting.get(ev.event_id)
                state = "failed" if p is not None and p.state == "failed" else "sending"
                error = (p.error or "") if p is not None else ""
                if shown and shown[-1][:2] == (state, error):
                    shown[-1][2].append(ev)
                else:
                    shown.append((state, error, [ev]))
            for state, error, part in shown:
                self._engine._emit(OutboxChanged(room_id, part, state, error))
            await self._engine._outboxed(outbox.forget_replaced, seq)
        self._engine._emit(SendKept(room_id, seq, user_id, key_text, (), False))

    def _tell_refused(
        self, room_id: str, seq: int, user_id: str, key_text: str, drafts: Drafts, why: str
    ) -> None:
        """A kept send that can never be signed (``ValueError`` from signing it): its row
        says so; it stays kept on this device, and the room's later sends go out."""
        self._shown_unsent[seq] = room_id
        self._engine._emit(
            SendKept(
                room_id,
                seq,
                user_id,
                key_text,
                tuple(drafts),
                True,
                f"not sent: {why}; {UNSENT_HINT}",
            )
        )
        log.warning("a message kept for room %r cannot be sent: %s", terminal_safe(room_id), why)

    def _tell_unconfirmed(
        self, room_id: str, user_id: str, key_text: str, offered: Sequence[str]
    ) -> None:
        """Statements introduce this device, by keys the person has not confirmed as
        theirs: say how to accept, once per room and key, and accept nothing. One event
        and one warning per send however many keys make the claim (anyone can make
        thousands), naming at most ``MAX_OFFERS_TOLD`` of them."""
        new = [k for k in offered if (room_id, key_text, k) not in self._told]
        if not new:
            return
        self._told.update((room_id, key_text, k) for k in new)  # said once is enough
        self._engine._emit(IntroductionOffered(room_id, user_id, tuple(new)))
        room, user = terminal_safe(room_id), terminal_safe(user_id)
        command = f"bucket-chat accept-device {room_option(room)} --key"
        if len(new) == 1:
            log.warning(
                "device key %s… says it introduced this device as %s in %r. Not accepted: "
                "this device cannot tell your other device from someone who copied this "
                "device's public key. If it is yours (compare with 'bucket-chat show-key' "
                "there), run: %s %s",
                new[0][:12],
                user,
                room,
                command,
                new[0],
            )
            return
        # Several claims: no list of commands to paste at once, since each key accepted
        # is vouched for, and an impostor may well be among them.
        more = len(new) - MAX_OFFERS_TOLD
        log.warning(
            "%s device keys say they introduced this device as %s in %r; an impostor may "
            "be among them. Nothing was accepted. Compare each with 'bucket-chat show-key' "
            "on your other devices and accept only those that match, one at a time: "
            "%s <that key>. The keys: %s%s",
            f"{len(new):,}",
            user,
            room,
            command,
            ", ".join(new[:MAX_OFFERS_TOLD]),
            f" and {more:,} more (someone may be flooding the room)" if more > 0 else "",
        )

    def _witness(
        self,
        room_id: str,
        key_text: str,
        seen: Iterable[Event],
        queue: dict[str, int],
        named: Collection[str],
    ) -> tuple[dict[str, str], dict[str, int]]:
        """The other devices' newest events this device has read, for the witness of its
        next event (PROTOCOL.md section 6.1): only chains that moved since this key's
        witnesses last named them (``seen`` leaves out what its witnesses in the room
        named; ``told`` adds what this engine's sends named that the room has not shown
        yet), at most ``MAX_WITNESS``; and the queue to keep if it is sent.

        More than that moving between two sends is a queue (``queue``, kept in the
        outbox: each chain left out, with the turn of the send that first found it
        unnamed): the chains left out longest first, then in the order of ``seen`` (the
        first event of a key is its chain's tip), ranked by trust
        (``SendScan.witness_order``; of a room not open here, the same over the rows this
        device cached: ``witness_order_of``). A chain left out keeps its place while its
        head moves on, and whatever is found after it queues behind it, across restarts
        and ``bucket-chat send``: the next send names it, unless more than
        ``MAX_WITNESS`` chains left out with it wait too. Without the queue, 64 chains a
        provider planted and moved again before each send ranked ahead of a newcomer at
        every send (red team rt101).

        A queued chain leaves the queue only once it is known to be named: its newest
        event named by this key's witnesses in the room (``named``) or by this engine's
        sends (``told``). One that ``seen`` does not show keeps its place: a send that
        did not open the room sees the newest ``WITNESS_ROWS`` cached rows only, and 500
        rows written after a chain's last one made each ``bucket-chat send`` forget it
        (review rev1). At most ``WITNESS_QUEUE_KEPT`` wait, those left out longest."""
        told = self._witnessed.get((room_id, key_text), {})
        turn = max(queue.values(), default=0) + 1
        moved: list[Event] = []
        met: set[str] = set()
        for ev in seen:
            key = ev.sender_key
            if not key or key == key_text or key in met:
                continue
            met.add(key)
            if told.get(key) != ev.hash:
                moved.append(ev)
        waiting = {ev.sender_key or "": queue.get(ev.sender_key or "", turn) for ev in moved}
        moved.sort(key=lambda ev: waiting[ev.sender_key or ""])  # stable: ``seen``'s order
        witness = {ev.sender_key or "": ev.hash for ev in moved[:MAX_WITNESS]}
        left = [(waiting[ev.sender_key or ""], ev.sender_key or "") for ev in moved[MAX_WITNESS:]]
        # Not seen: named at its newest event (it leaves), or not among what was read
        # (it keeps its place); a chain seen but not moved was named by this engine.
        left.extend(
            (t, key)
            for key, t in queue.items()
            if key not in met and key not in named and key != key_text
        )
        # Within a turn, chains this engine never named come before those it named and
        # that moved again: cut to ``WITNESS_QUEUE_KEPT``, a full queue dropped a newcomer
        # while 64 chains the provider moved again after each send kept their places
        # (red team rt104). Otherwise stable: the moved first within a turn.
        left.sort(key=lambda item: (item[0], item[1] in told))
        return witness, {key: t for t, key in left[:WITNESS_QUEUE_KEPT]}

    async def follow_read(
        self, room_id: str, key_text: str | None = None, *, interactive: bool = False
    ) -> None:
        """Move the outbox's head of ``key_text`` (None: of every key it keeps a head for
        in the room) to where this engine's complete read of the room from storage
        (``RoomState.read_here``) shows that key's chain continues after it.

        One key on two devices (a restored key backup, which the first-run wizard offers)
        is two outboxes of one chain. Each outbox's head was only ever advanced by its own
        sends, so a device that had read the other's newer event still continued its own
        older one: a fork of the key's chain, reported by every reader for good, both
        messages unverified (red team rt72). The head moves only forward: onto the newest
        tip among the events that descend from it (signed by this key, in the verified
        timeline), never onto one that does not (a read from before this device's last
        send, a head that another process of this device queued). With none read, or no
        read from storage in this run, the head stays (``README``: both devices sync
        before writing). Messages still waiting in the outbox were signed on the old
        head: if another device wrote on that same place meanwhile, delivering them forks
        the chain whatever is done now; that is said (``_tell_taken``), not hidden.

        Called by a send whose outbox has a head, and when a read of the room from storage
        ends (``Backfill``): so ``bucket-chat sync`` then ``bucket-chat send`` continue what
        the sync read."""
        outbox = self._engine.outbox
        room = self._engine.rooms.get(room_id)
        if outbox is None or room is None or not room.read_here:
            return
        for key, head in await self._engine._outboxed(outbox.heads_in, room_id):
            if key_text is not None and key != key_text:
                continue
            unsent = await self._engine._outboxed(outbox.unsent, room_id, key)
            tip, taken = await self._engine._serially(
                self._read_after, room, key, head, unsent, room=room_id, interactive=interactive
            )
            if taken:
                self._tell_taken(room_id, key, len(unsent), taken)
            if tip is None:
                continue
            if await self._engine._outboxed(outbox.follow_head, room_id, key, head, tip):
                log.info(
                    "room %r: key %s… wrote after this device's last event (another device "
                    "with the same key): this device continues its chain from %s",
                    terminal_safe(room_id),
                    key[:12],
                    terminal_safe(tip.event_id),
                )

    def _read_after(
        self, room: RoomState, key_text: str, head: Event | None, unsent: Sequence[Event]
    ) -> tuple[Event | None, list[Event]]:
        """State thread: the newest tip of ``key_text``'s chain that descends from ``head``
        (None: nothing of the key read; every event of the key is after it) in the room's
        verified timeline, as a whole event (None: none, or not whole here); and the
        events read that take the place of ``unsent``'s first (same previous event, not
        one of them). Nothing unless the room was read completely from storage here. The
        timeline never holds an event whose signature failed (those are
        ``result.invalid``), so each counted is signed by this key.

        Of two tips after the head (the chain already forked by two other writers), the
        newest by date is continued, as ``chain_head`` does for a first send: readers
        report that fork whichever is taken, and the newest is where the person last
        wrote."""
        result = room.result
        if result is None or not room.complete or room.partial or not room.read_here:
            return None, []
        timeline = result.timeline
        # What descends from the head (or shares the place of the first unsent event) is
        # shown after it: a row never shows before its predecessor. Only the rows from
        # there on are made (a row made is ~1 µs: a whole room of a million, at every
        # send, held the state thread a second); the place is found from the newest row
        # back by id alone. Not found (never read here): every row is looked at.
        since = unsent[0].prev_event_hash if unsent else (head.hash if head else None)
        at = timeline.position_of_hash(since) if since is not None else None
        start = at if at is not None else 0
        rows = timeline[start:] if start else timeline
        items = [a for a in rows if a.event.sender_key == key_text]
        if not items:
            return None, []
        taken: list[Event] = []
        if unsent:
            ours = {e.hash for e in unsent}
            first = unsent[0].prev_event_hash
            taken = [
                a.event
                for a in items
                if a.event.prev_event_hash == first and a.event.hash not in ours
            ]
        if head is None:
            after = items
        else:
            children: dict[str | None, list[Any]] = {}
            for a in items:
                children.setdefault(a.event.prev_event_hash, []).append(a)
            reached = {head.hash}
            after, frontier = [], [head.hash]
            while frontier:
                for a in children.get(frontier.pop(), ()):
                    if a.event.hash not in reached:
                        reached.add(a.event.hash)
                        after.append(a)
                        frontier.append(a.event.hash)
        tip = chain_head(a.event for a in after)[0]
        if tip is None:
            return None, taken
        if room.ledger.keeps_bodies:
            return tip, taken
        # The audit's copy is slim: the outbox continues the chain from the whole line.
        at = next(a for a in reversed(after) if a.event is tip)
        return self._whole_head(room, at), taken

    def _tell_taken(self, room_id: str, key_text: str, waiting: int, taken: list[Event]) -> None:
        """Messages queued here were signed on a place of the chain that another device
        with this key has written on since: once delivered, readers see a fork. Said once
        per room and key."""
        if (room_id, key_text, "taken") in self._told:
            return
        self._told.add((room_id, key_text, "taken"))
        log.warning(
            "room %r: %d event(s) waiting in this device's outbox were signed before another "
            "device using the same key wrote there (%s). Once delivered, every reader sees "
            "this key's chain fork and marks both devices' messages unverified. Each device "
            "should have its own key, or sync before writing: see README, 'Several devices'",
            terminal_safe(room_id),
            waiting,
            ", ".join(terminal_safe(e.event_id) for e in taken[:3]),
        )
        self._engine._emit(SharedKeyQueued(room_id, waiting))  # the app's status bar

    async def _local_head(self, room_id: str, signing_key: SigningKey) -> tuple[bool, Event | None]:
        """``(True, this device's newest event)`` when this engine's complete read of the
        room from storage knows it (in memory: ``RoomState.read_here``); ``(False,
        None)`` when only the storage can tell. Events count only with a good signature
        by this device's key.

        Never the index alone (red team rt71): it holds the room as of its last read,
        and a send of this device made since (a ``bucket-chat send``, which opens no room;
        the messages of an outbox lost or damaged since) is not in it. With no head in
        the outbox, its head taken from the index continued an older event: the device
        forked its own chain, which every reader reports. Only a first send in a room (or
        after the outbox was lost) gets here: the outbox keeps the head from then on."""
        key_text = b64encode(bytes(signing_key.verify_key))
        room = self._engine.rooms.get(room_id)

        def from_memory() -> tuple[bool, Event | None]:  # state thread: the room's owner
            if room is None or room.result is None or not room.complete or room.partial:
                return False, None
            if not room.read_here:  # rebuilt from the index, not read from storage yet
                return False, None
            # The verifier's verdicts: the timeline never holds an event whose signature
            # failed (those are ``result.invalid``).
            items = [a for a in room.result.timeline if a.event.sender_key == key_text]
            head = chain_head(a.event for a in items)[0]
            if head is None or room.ledger.keeps_bodies:
                return True, head
            # The audit's copy is slim: the outbox continues the chain from the whole line.
            at = next(a for a in reversed(items) if a.event is head)
            whole = self._whole_head(room, at)
            return (True, whole) if whole is not None else (False, None)

        if room is not None:
            known, head = await self._engine._serially(from_memory, room=room_id, interactive=True)
            if known:
                return True, head
        return False, None

    def _whole_head(self, room: RoomState, at: Any) -> Event | None:
        """Serial thread: this device's chain head as its whole cached event, or None."""
        if self._engine.index is None:
            return None
        (ev,) = self._engine.index.events_at(room.room_id, [(at.path, at.line)])
        if isinstance(ev, Event) and ev.hash == at.event.hash:
            return ev
        return None

    async def run(self) -> None:
        """The publisher's task: a round each time it wakes, waiting for none of the rooms'
        writes (each room's lane goes on by itself)."""
        try:
            await self._say_parked()
        except Exception:
            log.exception("reading the outbox failed")
        while not self._engine._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            try:
                await self.publish_round(wait=0.0)
            except Exception:
                log.exception("publishing failed")

    async def _say_parked(self) -> None:
        """Say once, at start, which messages an earlier run left "failed" (an error only
        the user can fix, or behind one in their chain: ``Outbox.pending``). No round
        tries them again before their slow back-off ends (``outbox.REFUSED_RETRY``, up to
        an hour) or the user asks (``retry_now``), so nothing else would soon: a
        window opened after a restart showed neither them nor their "Not sent — click to
        retry", and they went out only after the user sent another and clicked that."""
        outbox = self._engine.outbox
        assert outbox is not None
        said: list[tuple[str, str, list[Event]]] = []
        for waiting in await self._engine._outboxed(outbox.pending):
            if waiting.state != "failed":
                continue  # a round tries these, and says how it went
            ev = waiting.event()
            if ev is None:
                continue  # not this device's own bytes: nothing to show
            error = waiting.error or "not sent"
            if said and said[-1][:2] == (waiting.room_id, error):
                said[-1][2].append(ev)
            else:
                said.append((waiting.room_id, error, [ev]))
        for room_id, error, events in said:
            self._engine._emit(OutboxChanged(room_id, events, "failed", error))

    async def publish_round(self, *, everything: bool = False, wait: float | None = None) -> int:
        """``SyncEngine.publish_round`` (also the publisher's task, each time it wakes):
        batch what waits, then have each room's lane write its due segments. Waits for
        the lanes of the rooms with something due at most ``wait`` seconds (None: until
        they end); returns the segments that the lanes this round started and that ended
        meanwhile delivered."""
        outbox = self._engine.outbox
        assert outbox is not None
        now = time.time()
        quiet = time.monotonic() - self._last_publish >= self._engine.config.batch_window
        cutoff = now if (everything or quiet) else now - self._engine.config.batch_window
        self._last_publish = time.monotonic()
        for room_id, key in await self._engine._outboxed(outbox.waiting_groups, cutoff):
            seg_id = await self._engine._outboxed(outbox.take_batch, room_id, key)
            parked = (
                None
                if seg_id is None
                else await self._engine._outboxed(outbox.parked_before, seg_id)
            )
            if seg_id is not None and parked is not None:
                # Behind a message only the user can get out (retry): not sent either.
                seg = await self._engine._outboxed(outbox.segment, seg_id)
                if seg is not None:
                    self._engine._emit(OutboxChanged(room_id, seg.events(), "failed", parked))
        rooms: dict[str, list[OutSegment]] = {}
        for seg in await self._engine._outboxed(outbox.due, now):  # oldest first
            rooms.setdefault(seg.room_id, []).append(seg)
        started: set[asyncio.Task[int]] = set()
        lanes: set[asyncio.Task[int]] = set()
        for room_id, segments in rooms.items():
            lane = self._lanes.get(room_id)
            if lane is not None and not lane.done():
                self._left.add(room_id)  # still writing: the lane wakes us when it ends
            elif not self._engine._closed:
                lane = asyncio.create_task(self._lane(room_id, segments), name=f"bc-send-{room_id}")
                lane.add_done_callback(self._lane_ended)
                self._lanes[room_id] = lane
                started.add(lane)
            else:
                continue
            lanes.add(lane)
        if not lanes or wait == 0.0:
            return 0
        done, _ = await asyncio.wait(lanes, timeout=wait)
        ended = [t for t in done if not t.cancelled()]
        for lane in ended:  # a bug reaches whoever waits for the round, as before lanes
            exc = lane.exception()
            if exc is not None:
                raise exc
        return sum(t.result() for t in ended if t in started)

    async def _lane(self, room_id: str, segments: Sequence[OutSegment]) -> int:
        """One room's segments, one after the other (its chain's order): the delivered.

        A segment whose bytes could not be stored stops the lane: the ones after it in
        its chain wait for it (``Outbox.due``), or readers would see them without the
        event their chain links to."""
        delivered = 0
        blocked: set[str] = set()  # devices (client ids) whose chain waits for a segment
        for seg in segments:
            if self._engine._closed:
                break
            if seg.client_id in blocked:
                continue
            async with self._send_slots:
                outcome = await self._deliver(seg)
            if outcome is _Delivery.DONE:
                delivered += 1
            elif outcome is _Delivery.NOT_STORED:
                blocked.add(seg.client_id)
        return delivered

    def _lane_ended(self, lane: asyncio.Task[int]) -> None:
        """A room's lane ended: a failure that is no storage error (those ``_deliver``
        notes) is said, never lost; a round that left the room to it runs again."""
        room_id = next((r for r, t in self._lanes.items() if t is lane), None)
        if room_id is not None:
            del self._lanes[room_id]
            if room_id in self._left:
                self._left.discard(room_id)
                self._wake.set()
        if not lane.cancelled() and lane.exception() is not None:
            log.error("%s failed", lane.get_name(), exc_info=lane.exception())

    async def close(self) -> None:
        """Stop the rooms' lanes (``SyncEngine.close``). A write cut off is written
        again by the next start: the same bytes under the same name (``outbox.py``)."""
        await stop_tasks([*self._lanes.values(), *self._markers])

    async def _deliver(self, seg: OutSegment) -> _Delivery:
        outbox = self._engine.outbox
        assert outbox is not None
        path = seg.path
        stored = seg.state != "assigned"
        try:
            if not stored:
                # The name last chosen is stored (``Outbox.rename``): a try that was cut
                # off, or met its own bytes there, goes on from it. Each try takes at
                # most ``NAMES_PER_TRY`` more, counted from there (not from 0: then a
                # segment that ever reached the cap could never be tried again).
                attempt = seg.attempt
                while True:
                    try:
                        await self._engine.storage.put_if_absent(path, seg.data)
                        break
                    except AlreadyExistsError as exc:
                        attempt += 1
                        if attempt > seg.attempt + NAMES_PER_TRY:
                            raise NamesTakenError(
                                f"{attempt - seg.attempt} names in a row are taken for this "
                                f"segment, up to {path}: someone may be taking this "
                                "device's segment names; tried again later with the names "
                                "after them"
                            ) from exc
                        path = await self._engine._outboxed(outbox.rename, seg.id, attempt)
                stored = True
                await self._engine._outboxed(outbox.mark_written, seg.id)
                await self._ingest_own(seg.room_id, path, seg.data)
            failed = await self._mark(path)
            if failed is not None and failed.transient:
                # Markers are only hints (readers list rooms anyway): the message is
                # stored, and a booby-trapped marker folder (a link), a service whose
                # answers name other checksums, or one that refuses to read a marker
                # back, must not make it look unsent. Retried by the outbox, each try
                # wrote a marker of a new name (hundreds a minute), and the message said
                # "queued" for ever. A passing failure is tried again a few times.
                task = asyncio.create_task(self._mark_later(path), name=f"bc-marker-{path}")
                self._markers.add(task)
                task.add_done_callback(self._markers.discard)
            await self._engine._outboxed(outbox.mark_done, seg.id)
        except StorageError as exc:
            error, transient = str(exc), exc.transient
            retry = await self._engine._outboxed(
                lambda: outbox.mark_failed(seg.id, error, transient=transient, now=time.time())
            )
            # Names taken are no sign of a storage away: it answered every write.
            self._engine._set_online(
                not exc.transient or isinstance(exc, NamesTakenError), str(exc)
            )
            events = seg.events() if seg.state == "assigned" else []
            if events:
                state = "sending" if exc.transient else "failed"
                self._engine._emit(OutboxChanged(seg.room_id, events, state, str(exc)))
                # The messages after it in its chain wait for it (``Outbox.due``): they
                # say so too, as ``Outbox.pending`` does, not "sending" with no reason.
                for later in await self._engine._outboxed(outbox.waiting_behind, seg.id):
                    self._engine._emit(
                        OutboxChanged(later.room_id, later.events(), state, str(exc))
                    )
            asyncio.get_running_loop().call_later(max(0.05, retry - time.time()), self._wake.set)
            return _Delivery.STORED if stored else _Delivery.NOT_STORED
        self._engine._set_online(True, "")
        if seg.state == "assigned":
            self._engine._emit(OutboxChanged(seg.room_id, seg.events(), "sent"))
        return _Delivery.DONE

    async def _mark(self, path: str) -> StorageError | None:
        """Write the activity marker of segment ``path``, named by this moment: None when
        it is there, else why not (said in the log)."""
        marker = marker_path(time.time_ns() // 1_000_000, path)
        try:
            await self._engine.storage.put_if_absent(marker, b"")
        except AlreadyExistsError:
            pass
        except StorageError as exc:
            log.warning("activity marker not written: %s", exc)
            return exc
        return None

    async def _mark_later(self, path: str) -> None:
        """``MARKER_RETRIES``: the marker of ``path`` written again, until it is there."""
        for delay in MARKER_RETRIES:
            await asyncio.sleep(delay)
            if self._engine._closed:
                return
            failed = await self._mark(path)
            if failed is None:
                log.info("activity marker of %s written on a later try", path)
                return
            if not failed.transient:
                return  # trying again cannot help (said)
        log.warning(
            "activity marker of %s let go: readers find the message with their next "
            "listing of the room",
            path,
        )

    async def _ingest_own(self, room_id: str, path: str, data: bytes) -> None:
        room = self._engine.rooms.get(room_id)
        if room is None or path in room.known:
            return
        tag = self._engine.storage.tag_of_written(data)
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(
            self._engine._pool, prepare_segment, path, data, room_id
        )
        async with room.lock:
            if path in room.known:  # a hint or a listing kept it meanwhile
                return
            if self._engine._dropped(room):  # left meanwhile: nothing of it is kept
                return
            await self._keeper.ingest(
                room,
                [(ObjectInfo(path, len(data), tag), prepared)],
                complete=None,
                interactive=True,
            )

    async def flush(self, timeout: float | None = None, *, give_up_offline: bool = False) -> bool:
        """``SyncEngine.flush``: rounds of publishing every 0.2 s until the outbox is
        empty, the time is up, or only what a user must fix is left."""
        outbox = self._engine.outbox
        if outbox is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            await self._engine._outboxed(outbox.retry_now)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            await self.publish_round(everything=True, wait=remaining)
            if await self._engine._outboxed(outbox.is_empty):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if give_up_offline and not self._engine.online:
                return False
            left = await self._engine._outboxed(outbox.pending)
            if left and all(p.state == "failed" for p in left):
                return False
            await asyncio.sleep(0.2)
